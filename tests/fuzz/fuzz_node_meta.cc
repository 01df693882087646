// node.meta (docs/node-format.md), through decode_node_meta().
#include "engine/node_meta.h"
#include "tests/fuzz/fuzz_meta.h"

using namespace walcut;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::decode_both_ways(data, size, [](ByteSpan b) { (void)decode_node_meta(b, "fuzz/node.meta"); });
  return 0;
}
