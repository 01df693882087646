// The entries replay routes to one partition copy, kept compact as they
// arrive: a sorted run (replay/entry_run.h) holding the newest entry of
// each key seen so far, and a tail of entries appended in WAL order since
// the last compaction. When the tail reaches a quarter of the sorted run
// (at least kTailMinBytes), it is sorted by key (stable: the last write of
// a key wins) and merged into the run.
//
// Why not a hash table per copy: an entry routed here costs one append to
// a buffer that stays in cache; the sort and merge run over a few kilobytes
// at a time, sequentially. A table probe per entry is a cache miss into a
// structure spread over the whole restore (docs/restore.md, "Replay").
//
// Memory: the sorted run (exact) plus the tail, at most about 1.25x the
// newest entries' bytes plus kTailMinBytes. Not thread-safe: one owner at a
// time (a replay stripe).
#pragma once

#include <cstdint>

#include "io/records.h"
#include "replay/entry_run.h"

namespace walcut {

class PartitionBucket {
 public:
  static constexpr size_t kTailMinBytes = 2 << 10;
  static constexpr size_t kTailShare = 8;  // the tail is merged at 1/kTailShare of the run

  // Appends one WAL entry (a delete as a tombstone). Returns the change of
  // bytes() it caused.
  int64_t add(const DataEntry& e);
  // Merges the tail into the sorted run. Returns the change of bytes().
  int64_t compact();

  // The sorted run; compact() first for all entries.
  const RunBuffer& sorted() const { return sorted_; }
  // Hands the sorted run over (compact() first) and frees the tail: the
  // bucket is empty afterwards.
  RunBuffer take();
  // Memory held.
  size_t bytes() const { return sorted_.capacity() + tail_.capacity(); }
  bool empty() const { return sorted_.empty() && tail_.empty(); }

 private:
  RunBuffer sorted_;
  RunBuffer tail_;
  uint32_t tail_entries_ = 0;
};

// Merges sorted runs into one sorted run where, for a key in several, the
// entry of the later run wins. `runs` in increasing priority. Appends to
// `out`.
void merge_sorted_runs(std::span<const ByteSpan> runs, RunBuffer& out);

}  // namespace walcut
