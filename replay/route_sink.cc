#include "replay/route_sink.h"

#include <algorithm>
#include <exception>
#include <functional>
#include <system_error>
#include <thread>

namespace walcut {

RouteSink::RouteSink(std::vector<RoutedCopy*> copies, MemoryGauge& gauge, bool others_ignored)
    : gauge_(gauge), others_ignored_(others_ignored), copies_(copies.size()) {
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

Status RouteSink::route(std::span<const DataEntry> entries, uint32_t epoch) {
  int64_t delta = 0;
  // Copies are thousands and each add would wait for memory four times
  // over: what the entry kStep * k ahead touches is loaded in steps (k = 4:
  // its key, in the decoded block, which the L2 no longer holds; 3: its
  // copy, and its key is hashed; 2: its index slot; 1: its newest entry and
  // the end of the copy's entries), so the misses of many entries overlap.
  constexpr size_t kStep = 8, kRing = 4 * kStep;
  struct Ahead {
    RoutedCopy* copy;
    uint64_t hash;
  };
  Ahead ring[kRing];
  auto look = [&](size_t i) -> const Ahead& {
    Ahead& a = ring[i % kRing];
    const DataEntry& d = entries[i];
    a = {find(d.group_id, d.partition), PartitionBucket::hash({reinterpret_cast<const char*>(d.key.data()), d.key.size()})};
    if (a.copy) __builtin_prefetch(a.copy);  // the bucket's first line: all an overwrite in place reads of it
    return a;
  };
  for (size_t i = 0; i < std::min(entries.size(), 4 * kStep); ++i) __builtin_prefetch(entries[i].key.data());
  for (size_t i = 0; i < std::min(entries.size(), 3 * kStep); ++i) look(i);
  for (size_t i = 0; i < entries.size(); ++i) {
    if (i + 4 * kStep < entries.size()) __builtin_prefetch(entries[i + 4 * kStep].key.data());
    if (i + 3 * kStep < entries.size()) look(i + 3 * kStep);
    if (i + 2 * kStep < entries.size()) {
      const Ahead& a = ring[(i + 2 * kStep) % kRing];
      if (a.copy) a.copy->bucket.prefetch_slot(a.hash);
    }
    if (i + kStep < entries.size()) {
      const Ahead& a = ring[(i + kStep) % kRing];
      if (a.copy) a.copy->bucket.prefetch_place(a.hash, run_entry_bytes(entries[i + kStep]));
    }
    const DataEntry& d = entries[i];
    const Ahead& a = ring[i % kRing];
    RoutedCopy* c = a.copy;
    if (c == nullptr) {
      if (others_ignored_) continue;
      gauge_.add(delta);
      return Status::corruption("an entry of group " + std::to_string(d.group_id) + " partition " +
                                std::to_string(d.partition) + " in the WAL of a node that holds no copy of it");
    }
    if (c == &dropped_) continue;  // read again in a later pass
    delta += c->bucket.add(d, a.hash, epoch);
  }
  gauge_.add(delta);
  return {};
}

Result<uint64_t> RouteSink::spill(size_t pieces,
                                  const std::function<Result<std::unique_ptr<SpillWriter>>()>& new_file) {
  std::vector<RoutedCopy*> held;
  for (Group& g : groups_) {
    for (RoutedCopy* c : g.by_partition) {
      if (c != nullptr && c != &dropped_ && !c->bucket.empty()) held.push_back(c);
    }
  }
  // Consecutive copies of about equal bytes to each file, at least one
  // each; the first part on this thread, the others each on a thread of
  // its own.
  const size_t parts = std::min(std::max<size_t>(pieces, 1), held.size());
  if (parts == 0) return uint64_t{0};
  std::vector<uint64_t> upto(held.size() + 1, 0);  // bytes of held[0, i)
  for (size_t i = 0; i < held.size(); ++i) upto[i + 1] = upto[i] + held[i]->bucket.bytes();
  std::vector<size_t> from(parts + 1, held.size());
  from[0] = 0;
  for (size_t part = 1; part < parts; ++part) {
    size_t i = from[part - 1] + 1;
    const size_t last = held.size() - (parts - part);
    while (i < last && upto[i] < upto.back() * part / parts) ++i;
    from[part] = i;
  }
  std::vector<std::unique_ptr<SpillWriter>> outs;
  for (size_t part = 0; part < parts; ++part) {
    Result<std::unique_ptr<SpillWriter>> w = new_file();
    if (!w.ok()) return w.status();
    outs.push_back(std::move(w).value());
  }
  std::vector<Status> results(outs.size());
  std::vector<std::exception_ptr> thrown(outs.size());
  auto spill_part = [&](size_t part) {
    try {
      Status s;
      for (size_t i = from[part]; i < from[part + 1] && s.ok(); ++i) {
        RoutedCopy* c = held[i];
        const int64_t before = static_cast<int64_t>(c->bucket.bytes());
        Result<SpillSlice> slice = outs[part]->append(c->bucket.sorted());
        c->bucket.clear();
        gauge_.add(-before);
        if (slice.ok()) {
          c->spilled.push_back(std::move(slice).value());
        } else {
          s = slice.status();
        }
      }
      Status finished = outs[part]->finish();
      results[part] = s.ok() ? finished : s;
    } catch (...) {
      thrown[part] = std::current_exception();
    }
  };
  std::vector<std::thread> helpers;
  helpers.reserve(outs.size());
  std::vector<size_t> here{0};  // the parts this thread writes
  here.reserve(outs.size());
  for (size_t part = 1; part < outs.size(); ++part) {
    try {
      helpers.emplace_back(spill_part, part);
    } catch (const std::system_error&) {  // no thread to be had: written here
      here.push_back(part);
    }
  }
  for (size_t part : here) spill_part(part);
  for (std::thread& t : helpers) t.join();
  for (const std::exception_ptr& e : thrown) {
    if (e) std::rethrow_exception(e);
  }
  for (Status& s : results) WALCUT_RETURN_IF_ERROR(std::move(s));
  uint64_t written = 0;
  for (const std::unique_ptr<SpillWriter>& w : outs) written += w->bytes_written();
  return written;
}

void RouteSink::drop_fullest(uint64_t target, std::vector<RoutedCopy*>& dropped) {
  std::vector<RoutedCopy*> held;
  for (Group& g : groups_) {
    for (RoutedCopy* c : g.by_partition) {
      if (c != nullptr && c != &dropped_ && c->spilled.empty()) held.push_back(c);
    }
  }
  std::sort(held.begin(), held.end(),
            [](const RoutedCopy* a, const RoutedCopy* b) { return a->bucket.bytes() > b->bucket.bytes(); });
  for (size_t i = 0;
       i < held.size() && 2 * (dropped_count_ + 1) <= copies_ && gauge_.bytes() > static_cast<int64_t>(target); ++i) {
    RoutedCopy* c = held[i];
    ++dropped_count_;
    gauge_.add(-static_cast<int64_t>(c->bucket.bytes()));
    c->bucket.clear();
    for (Group& g : groups_) {
      if (g.id == c->group_id) g.by_partition[c->partition] = &dropped_;
    }
    dropped.push_back(c);
  }
}

}  // namespace walcut
