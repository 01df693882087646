// The restore's built-in sink: routes each entry replay applies to the
// bucket of its partition copy (replay/partition_bucket.h), and spills the
// buckets to a file when the restore's memory budget is reached. The
// partitions are finished afterwards, one at a time (replay/partition_finish.h).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <vector>

#include "replay/partition_bucket.h"
#include "replay/sink.h"
#include "replay/spill_file.h"

namespace walcut {

// Bytes held by every bucket of a restore, against its budget.
class MemoryGauge {
 public:
  // A budget past what the signed count can hold is as good as none.
  explicit MemoryGauge(uint64_t budget_bytes)
      : budget_bytes_(std::min<uint64_t>(budget_bytes, std::numeric_limits<int64_t>::max())) {}
  void add(int64_t delta) {
    int64_t now = bytes_.fetch_add(delta, std::memory_order_relaxed) + delta;
    int64_t peak = peak_.load(std::memory_order_relaxed);
    while (now > peak && !peak_.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
    }
  }
  bool over_budget() const { return bytes_.load(std::memory_order_relaxed) > static_cast<int64_t>(budget_bytes_); }
  int64_t bytes() const { return bytes_.load(std::memory_order_relaxed); }
  uint64_t budget_bytes() const { return budget_bytes_; }
  uint64_t peak_bytes() const { return static_cast<uint64_t>(peak_.load(std::memory_order_relaxed)); }

 private:
  const uint64_t budget_bytes_;
  std::atomic<int64_t> bytes_{0};
  std::atomic<int64_t> peak_{0};
};

// The entries routed to one partition copy: what is in memory, and what
// was spilled, in the order spilled.
struct alignas(64) RoutedCopy {
  PartitionBucket bucket;  // first: what replay reads of a copy is in its first cache line
  uint32_t group_id = 0;
  uint16_t partition = 0;
  // Its node's segments are replayed newest first: each slice spilled
  // holds newer entries than the slices after it and the bucket (else
  // older).
  bool newest_first = false;
  std::vector<SpillSlice> spilled;
  bool replayed = false;  // every entry of it is routed: it can be finished
};

class RouteSink final : public ReplaySink {
 public:
  // One node's copies to route to; an entry of any other copy is refused
  // as corruption (the node's WAL holds only what affinity gives it),
  // unless `others_ignored` (a node read only for some of its copies).
  RouteSink(std::vector<RoutedCopy*> copies, MemoryGauge& gauge, bool others_ignored);

  Status apply(const ReplayEntry& e) override { return apply_many(e.node_index, std::span(e.entry, 1)); }
  Status apply_many(uint16_t, std::span<const DataEntry> entries) override { return route(entries, 0); }
  bool takes_newest_first() const override { return true; }
  Status apply_segment(uint16_t, uint32_t segment, std::span<const DataEntry> entries) override {
    return route(entries, segment);
  }

  // Writes every bucket that holds entries as one slice each, and empties
  // them: consecutive copies of about equal bytes to each of up to
  // `pieces` files made by `new_file` (no more files than such copies),
  // each written by a thread of its own (this one and helpers started
  // for it), so a pause's spill is not one core's work while the
  // replay's other workers wait for it. Call between batches (no apply
  // running). Returns the bytes written.
  Result<uint64_t> spill(size_t pieces, const std::function<Result<std::unique_ptr<SpillWriter>>()>& new_file);
  // Drops the fullest buckets until the gauge is at most `target` bytes or
  // half the copies it routes are dropped, and routes nothing more to
  // them: their entries are to be read again, in a later pass over the
  // WAL (so a pass finishes at least half of its copies). Appends the
  // copies dropped to `dropped`. Only copies never spilled. Call between
  // batches (no apply running).
  void drop_fullest(uint64_t target, std::vector<RoutedCopy*>& dropped);

 private:
  RoutedCopy* find(uint32_t group_id, uint16_t partition) const;
  // Each entry to its copy's bucket, added in `epoch` (PartitionBucket::add).
  Status route(std::span<const DataEntry> entries, uint32_t epoch);

  struct Group {
    uint32_t id;
    std::vector<RoutedCopy*> by_partition;  // null: not routed here
  };
  std::vector<Group> groups_;
  MemoryGauge& gauge_;
  const bool others_ignored_;
  RoutedCopy dropped_;  // where a dropped copy's place points: its entries are skipped
  const size_t copies_;       // routed at the start
  size_t dropped_count_ = 0;  // by drop_fullest
};

}  // namespace walcut
