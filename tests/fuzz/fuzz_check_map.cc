// A check map file, as `walcut snapshot check --reduce` reads it: the JSON
// through node_check_from_json(), then the reduce over what it gave.
#include <cstddef>
#include <cstdint>
#include <string>

#include "replay/check.h"

using namespace walcut;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  Result<NodeCheck> c = node_check_from_json(text, "fuzz/map.json");
  if (c.ok()) (void)reduce_checks({c.value()});
  return 0;
}
