#include "replay/route_sink.h"

#include <algorithm>

namespace walcut {

RouteSink::RouteSink(std::vector<RoutedCopy*> copies, MemoryGauge& gauge, bool others_ignored)
    : gauge_(gauge), others_ignored_(others_ignored) {
  for (RoutedCopy* c : copies) {
    auto g = std::find_if(groups_.begin(), groups_.end(), [&](const Group& x) { return x.id == c->group_id; });
    if (g == groups_.end()) g = groups_.insert(groups_.end(), Group{c->group_id, {}});
    if (g->by_partition.size() <= c->partition) g->by_partition.resize(c->partition + 1u, nullptr);
    g->by_partition[c->partition] = c;
  }
}

RoutedCopy* RouteSink::find(uint32_t group_id, uint16_t partition) const {
  for (const Group& g : groups_) {
    if (g.id == group_id) return partition < g.by_partition.size() ? g.by_partition[partition] : nullptr;
  }
  return nullptr;
}

Status RouteSink::apply_many(uint16_t, std::span<const DataEntry> entries) {
  int64_t delta = 0;
  // Copies are thousands, and each add would wait for its copy's memory:
  // what the entries ahead will touch is loaded in steps, kStep apart (the
  // copy, then its tail's last chunk, then the bytes the add writes).
  constexpr size_t kStep = 8;
  auto copy_at = [&](size_t i) { return i < entries.size() ? find(entries[i].group_id, entries[i].partition) : nullptr; };
  for (size_t i = 0; i < entries.size(); ++i) {
    if (RoutedCopy* c = copy_at(i + 3 * kStep)) __builtin_prefetch(c);
    if (RoutedCopy* c = copy_at(i + 2 * kStep)) c->bucket.prefetch_tail();
    if (RoutedCopy* c = copy_at(i + kStep)) c->bucket.prefetch_add();
    const DataEntry& d = entries[i];
    RoutedCopy* c = find(d.group_id, d.partition);
    if (c == nullptr) {
      if (others_ignored_) continue;
      gauge_.add(delta);
      return Status::corruption("an entry of group " + std::to_string(d.group_id) + " partition " +
                                std::to_string(d.partition) + " in the WAL of a node that holds no copy of it");
    }
    delta += c->bucket.add(d);
  }
  gauge_.add(delta);
  return {};
}

Status RouteSink::spill(SpillWriter& out) {
  for (Group& g : groups_) {
    for (RoutedCopy* c : g.by_partition) {
      if (c == nullptr || c->bucket.empty()) continue;
      const int64_t before = static_cast<int64_t>(c->bucket.bytes());
      Result<SpillSlice> slice = out.append(c->bucket.sorted());
      c->bucket.clear();
      gauge_.add(-before);
      if (!slice.ok()) return slice.status();
      c->spilled.push_back(std::move(slice).value());
    }
  }
  return out.finish();
}

}  // namespace walcut
