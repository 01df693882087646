// Affinity: which nodes hold each partition, primary first.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/group.h"

namespace walcut {

// Rendezvous (highest random weight) hashing over the baseline: every node
// scores each partition by a hash of (group id, partition, node id); the
// highest scores hold it, the best as primary. A pure function of its
// arguments, so every node and every tool computes the same answer.
// Cost: O(nodes log nodes) per partition.
std::vector<uint16_t> partition_owners(const CacheGroup& g, uint16_t partition,
                                       const std::vector<std::string>& baseline);

// The owners of every partition of every group, computed once.
class Affinity {
 public:
  Affinity() = default;
  Affinity(const std::vector<CacheGroup>& groups, const std::vector<std::string>& baseline);
  // Primary first, then min(backups, nodes - 1) backups.
  const std::vector<uint16_t>& owners(uint32_t group_id, uint16_t partition) const;
  uint16_t primary(uint32_t group_id, uint16_t partition) const { return owners(group_id, partition).front(); }
  bool owns(uint32_t group_id, uint16_t partition, uint16_t node) const;

 private:
  std::vector<uint32_t> group_ids_;
  std::vector<std::vector<std::vector<uint16_t>>> table_;  // [group slot][partition] -> owners
};

}  // namespace walcut
