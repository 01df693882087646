// An increment's <node id>.smf (docs/snapshot-format.md), through decode_increment_meta().
#include "cut/increment.h"
#include "tests/fuzz/fuzz_meta.h"

using namespace walcut;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::decode_both_ways(data, size, [](ByteSpan b) { (void)decode_increment_meta(b, "fuzz/node0.smf"); });
  return 0;
}
