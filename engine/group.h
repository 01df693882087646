// Cache groups: the unit of partitioning and of the transaction mode.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "io/status.h"

namespace walcut {

enum class CacheMode : uint8_t {
  kTransactional = 1,  // two-phase commit; changes land with the transaction
  kAtomic = 2,         // single-key updates, primary first, then backups
};
const char* cache_mode_name(CacheMode m);  // "TRANSACTIONAL", "ATOMIC"

struct CacheGroup {
  uint32_t id = 0;
  std::string name;
  CacheMode mode = CacheMode::kTransactional;
  uint16_t partitions = 1024;
  uint16_t backups = 1;
  bool operator==(const CacheGroup&) const = default;
};

// The key (group id, partition) of a partition copy.
using PartitionId = std::pair<uint32_t, uint16_t>;

// Checks ids and names are unique, partitions in 1..65535, names usable as
// a directory name (validate_name).
Status validate_groups(const std::vector<CacheGroup>& groups);

// The partition of a key: a stable hash of the key bytes, modulo the count.
uint16_t partition_of(const CacheGroup& g, const std::string& key);

}  // namespace walcut
