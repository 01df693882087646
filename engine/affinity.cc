#include "engine/affinity.h"

#include <xxhash.h>

#include <algorithm>
#include <cassert>

#include "io/coding.h"

namespace walcut {

std::vector<uint16_t> partition_owners(const CacheGroup& g, uint16_t partition, const std::vector<std::string>& baseline) {
  assert(!baseline.empty());
  std::vector<std::pair<uint64_t, uint16_t>> scores;
  scores.reserve(baseline.size());
  std::byte seed_bytes[8];
  store_u32(seed_bytes, g.id);
  store_u32(seed_bytes + 4, partition);
  uint64_t seed = XXH3_64bits(seed_bytes, sizeof seed_bytes);
  for (size_t i = 0; i < baseline.size(); ++i) {
    uint64_t score = XXH3_64bits_withSeed(baseline[i].data(), baseline[i].size(), seed);
    scores.emplace_back(score, static_cast<uint16_t>(i));
  }
  std::sort(scores.begin(), scores.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  size_t copies = std::min<size_t>(baseline.size(), size_t{g.backups} + 1);
  std::vector<uint16_t> owners;
  for (size_t i = 0; i < copies; ++i) owners.push_back(scores[i].second);
  return owners;
}

Affinity::Affinity(const std::vector<CacheGroup>& groups, const std::vector<std::string>& baseline) {
  for (const CacheGroup& g : groups) {
    group_ids_.push_back(g.id);
    auto& parts = table_.emplace_back(g.partitions);
    for (uint16_t p = 0; p < g.partitions; ++p) parts[p] = partition_owners(g, p, baseline);
  }
}

const std::vector<uint16_t>& Affinity::owners(uint32_t group_id, uint16_t partition) const {
  auto it = std::find(group_ids_.begin(), group_ids_.end(), group_id);
  assert(it != group_ids_.end());
  return table_[static_cast<size_t>(it - group_ids_.begin())][partition];
}

bool Affinity::owns(uint32_t group_id, uint16_t partition, uint16_t node) const {
  const auto& o = owners(group_id, partition);
  return std::find(o.begin(), o.end(), node) != o.end();
}

}  // namespace walcut
