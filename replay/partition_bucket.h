// The entries replay routes to one partition copy, kept compact as they
// arrive: a tail of entries in WAL order, the placed entries (both in
// pooled chunks, replay/entry_chunks.h), and an open-addressing index from each key to its
// newest placed entry. When the tail reaches a quarter of the buffer (at
// least kTailMinBytes), its entries are placed, in WAL order:
// - a write of a key whose newest entry has the same size overwrites it in
//   place: replay is mostly updates of values of one size, which then cost
//   one probe and one copy, and no memory;
// - any other write (a new key, another size, a delete of a live key) is
//   appended and the key's old entry is dead; when dead bytes pass an
//   eighth of the live ones the entries are rewritten without them.
// sorted() sorts pointers to the live entries by key once, for the
// partition's finish (replay/partition_finish.h) or a spill file.
//
// Why a tail: placed one at a time, entries routed to thousands of copies
// would miss the cache at every probe; placed together, they find the
// copy's index and entries in cache (small shape: 1.34x the CPU without
// it). An entry of kDirectBytes or more is placed at once, after the
// tail: fat shape in the same time and 0.92x the peak RSS (no tail to
// hold). Why an index and not sorted runs merged now and then (as the
// bucket had): nothing is copied again until the one sort at the end;
// small entries over 4096 partitions spent a third of the replay merging
// runs as new keys arrived (docs/restore.md, "Replay").
//
// Memory: the live entries, dead ones up to an eighth of them, the
// chunks' slack (about a quarter at most), the tail (a quarter), and 8
// bytes per index slot (under 8/3 slots per key). Not thread-safe: one owner at a
// time (a replay stripe).
#pragma once

#include <cstdint>
#include <vector>

#include "io/records.h"
#include "replay/entry_chunks.h"
#include "replay/entry_run.h"

namespace walcut {

class PartitionBucket {
 public:
  // Entries wait in a tail of at least kTailMinBytes, 1/kTailShare of the
  // entries, and are placed together, while the bucket's index and entries
  // stay in cache.
  static constexpr size_t kTailMinBytes = 2 << 10;
  static constexpr size_t kTailShare = 4;
  static constexpr size_t kDirectBytes = 512;  // an entry this large is placed at once, not copied into the tail first
  static constexpr size_t kDeadShare = 8;  // rewritten when dead bytes pass 1/kDeadShare of the live

  // Appends one WAL entry (a delete as a tombstone). Returns the change of
  // bytes() it caused.
  int64_t add(const DataEntry& e);
  // Places the tail and drops the dead entries now. Returns the change of bytes().
  int64_t compact();
  // The newest entry of every key (tombstones included) in key order:
  // pointers into the bucket, valid until clear().
  SortedEntries sorted();
  // Frees every entry.
  void clear();
  // Start loading what the next add() reads and writes: the tail's last
  // chunk, then (once that is in cache) the bytes it writes.
  void prefetch_tail() const { tail_.prefetch_last_chunk(); }
  void prefetch_add() const { tail_.prefetch_end(); }
  // Memory held.
  size_t bytes() const { return entries_.bytes_held() + tail_.bytes_held() + slots_.capacity() * sizeof(uint64_t); }
  bool empty() const { return live_ == 0 && tail_.empty(); }

 private:
  // A slot: 0 when free, else the entry's location + 1 in the low 40 bits
  // and the top 24 bits of the key's hash.
  static constexpr int kLocationBits = EntryChunks::kLocationBits;
  static constexpr uint64_t kLocationMask = (uint64_t{1} << kLocationBits) - 1;
  std::byte* entry_of(uint64_t slot) { return entries_.at((slot & kLocationMask) - 1); }
  std::byte* place(std::string_view key, size_t n, uint64_t hash);
  // Starts loading the newest entry of the key with this hash, if placed.
  void prefetch_newest(uint64_t hash) const;
  void place_tail();
  void drop_dead_if_wasteful();
  void grow_index();
  void drop_dead();

  EntryChunks entries_;
  EntryChunks tail_;  // entries as they arrived, not placed yet
  std::vector<uint64_t> slots_;  // a power of two in size, or empty
  size_t live_ = 0;              // keys
  uint64_t dead_bytes_ = 0;
};

// Merges lists of entries in key order into one where, for a key in
// several, the entry of the later list wins. `lists` in increasing
// priority. Nothing is copied but pointers.
SortedEntries merge_sorted(std::span<const SortedEntries> lists);

}  // namespace walcut
