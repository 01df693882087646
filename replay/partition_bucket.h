// The entries replay routes to one partition copy, kept compact as they
// arrive: a few sorted runs (replay/entry_run.h) and a tail of entries in
// WAL order. When the tail reaches a quarter of the runs' bytes (at least
// kTailMinBytes), it is sorted by key (the last write of a key wins), and
// then:
// - a key a run holds in an entry of the same size is overwritten there, in
//   place: replay is mostly updates of values of one size, which then cost
//   neither memory nor a copy of the run;
// - the rest (new keys, other sizes, deletes of live keys) becomes a new
//   run, newer than the others; an entry it replaces in an older run is
//   dead;
// - when there are more than kMaxRuns runs, or dead bytes pass an eighth
//   of the live ones, the runs are merged into one.
// take() merges what is left into one sorted run, for the partition's
// finish (replay/partition_finish.h) or a spill file.
//
// Why not a hash table per copy (as restore had): an entry costs one append
// to a buffer that stays in cache, and the sort and the walk over a run are
// sequential. Why several runs: inserting new keys into one run would copy
// it for every tail; a new run copies nothing, and merging a few runs now
// and then copies each byte about twice (docs/restore.md, "Replay").
//
// Memory: the live entries, dead ones up to an eighth of them, the tail (a
// quarter of the runs), and for a run of kIndexMinBytes or more 12 bytes of
// index per entry. Not thread-safe: one owner at a time (a replay stripe).
#pragma once

#include <cstdint>
#include <vector>

#include "io/records.h"
#include "replay/entry_run.h"

namespace walcut {

class PartitionBucket {
 public:
  static constexpr size_t kTailMinBytes = 2 << 10;
  static constexpr size_t kTailShare = 4;  // the tail is sorted at 1/kTailShare of the runs
  static constexpr size_t kDeadShare = 8;  // runs are merged when dead bytes pass 1/kDeadShare of the live
  // A tail of a quarter and eight runs, not an eighth and four: on 1 KiB
  // values each merge copies the whole bucket, and these copy half as
  // often (fat shape, increment 1: 0.68x the CPU, 0.75x the peak RSS;
  // small: 0.98x).
  static constexpr size_t kMaxRuns = 8;

  // Appends one WAL entry (a delete as a tombstone). Returns the change of
  // bytes() it caused.
  int64_t add(const DataEntry& e);
  // Sorts the tail into the runs. Returns the change of bytes().
  int64_t compact();
  // Every entry as one sorted run (the newest per key, tombstones
  // included), leaving the bucket empty.
  RunBuffer take();
  // Memory held.
  size_t bytes() const { return bytes_; }
  bool empty() const { return runs_.empty() && tail_.empty(); }

 private:
  static constexpr size_t kIndexMinBytes = 32 << 10;
  // A run, and once it is large enough for a walk over it to miss the
  // cache, the key prefix and offset of each of its entries.
  struct Run {
    RunBuffer bytes;
    std::vector<uint64_t> prefix;
    std::vector<uint32_t> offset;
    size_t memory() const { return bytes.capacity() + prefix.capacity() * 8 + offset.capacity() * 4; }
  };
  // A tail entry while it is sorted: the key's first 8 bytes, big-endian,
  // so most comparisons are one integer compare; ties go to the bytes,
  // then to the WAL order.
  struct TailRef {
    uint64_t prefix;
    uint32_t offset;
    uint32_t seq;
  };
  class Cursor;
  static void index(Run& run);
  size_t run_bytes() const;
  void merge_runs();
  void recount();

  std::vector<Run> runs_;  // oldest first
  RunBuffer tail_;
  uint32_t tail_entries_ = 0;
  uint64_t dead_bytes_ = 0;  // in runs, shadowed by a newer run
  size_t bytes_ = 0;         // memory held, kept by recount()
};

// Merges sorted runs into one sorted run where, for a key in several, the
// entry of the later run wins. `runs` in increasing priority. Appends to
// `out`.
void merge_sorted_runs(std::span<const ByteSpan> runs, RunBuffer& out);

}  // namespace walcut
