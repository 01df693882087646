#include "engine/group.h"

#include <xxhash.h>

#include <set>

#include "io/names.h"

namespace walcut {

const char* cache_mode_name(CacheMode m) {
  switch (m) {
    case CacheMode::kTransactional: return "TRANSACTIONAL";
    case CacheMode::kAtomic: return "ATOMIC";
  }
  return "?";
}

Status validate_groups(const std::vector<CacheGroup>& groups) {
  std::set<uint32_t> ids;
  std::set<std::string> names;
  for (const CacheGroup& g : groups) {
    WALCUT_RETURN_IF_ERROR(validate_name("cache group name", g.name));
    if (g.partitions == 0) return Status::invalid_argument("cache group " + g.name + " has no partitions");
    if (g.mode != CacheMode::kTransactional && g.mode != CacheMode::kAtomic) {
      return Status::invalid_argument("cache group " + g.name + " has an unknown mode");
    }
    if (!ids.insert(g.id).second) return Status::invalid_argument("cache group id " + std::to_string(g.id) + " is used twice");
    if (!names.insert(g.name).second) return Status::invalid_argument("cache group name " + g.name + " is used twice");
  }
  return {};
}

uint16_t partition_of(const CacheGroup& g, const std::string& key) {
  return static_cast<uint16_t>(XXH3_64bits(key.data(), key.size()) % g.partitions);
}

}  // namespace walcut
