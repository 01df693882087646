// The entries replay routes to one partition copy, kept compact as they
// arrive: the placed entries (in pooled chunks, replay/entry_chunks.h) and
// an open-addressing index from each key to its newest entry. Each entry
// is placed as it comes, in WAL order:
// - a write of a key whose newest entry has the same size overwrites it in
//   place: replay is mostly updates of values of one size, which then cost
//   one probe and one copy, and no memory;
// - any other write (a new key, another size, a delete of a live key) is
//   appended, or put where a dead entry of its size was, and the key's
//   old entry is dead; when dead bytes pass an eighth of the live ones
//   the entries are rewritten without them.
// sorted() sorts pointers to the live entries by key once, for the
// partition's finish (replay/partition_finish.h) or a spill file.
//
// Newest segment first (a restore's replay reads a node's segments from
// the last to the first, each front to back: replay/pipeline.h): an add
// names its segment by an epoch, 1 for the newest and up. A key found
// whose entry came from an earlier epoch (a newer segment) keeps it, and
// the add copies nothing: for a WAL of overwrites, most adds are a probe
// and a compare. Within an epoch, WAL order as above. A slot records the
// epoch its entry was placed in, modulo 255 (1-255; 0: before the bucket's
// last 255 epochs, or in WAL order): when its epochs pass a multiple of
// 255, the bucket sets every slot's to 0, so an epoch's value never
// names an older epoch's slots.
//
// Placed one at a time, entries routed to thousands of copies miss the
// cache at the index slot and at the key's newest entry: the caller loads
// them some entries ahead (prefetch_slot, prefetch_place; the restore's
// sink does, replay/route_sink.cc), so the misses of many entries
// overlap. Without that, a tail of entries placed together while the
// copy's index was in cache was the faster design (docs/restore.md,
// "Replay"). Why an index and not sorted runs merged now and then:
// nothing is copied again until the one sort at the end.
//
// Memory: the live entries, dead ones up to an eighth of them, the
// chunks' slack (about an eighth of what they hold past 32 KiB, at most a
// quarter below), and 8 bytes per index slot (the index grows at 7/8
// full: under 16/7 slots per key; an index of 1-64 KiB is a pool chunk,
// up to twice that). Not thread-safe: one owner at a time (a
// replay apply group).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "io/records.h"
#include "replay/entry_chunks.h"
#include "replay/entry_run.h"

namespace walcut {

// Frees a bucket's index: a pool chunk (ChunkPool, on the entries' huge
// pages when they use them: an index is reached at random, like the
// entries) from 1 KiB to the largest class, else malloc's.
struct BucketIndexFree {
  int cls = -1;  // the chunk's class; -1: malloc's
  void operator()(uint64_t* p) const;
};

class PartitionBucket {
 public:
  static constexpr size_t kDeadShare = 8;  // rewritten when dead bytes pass 1/kDeadShare of the live
  static constexpr size_t kDeadMinBytes = 2 << 10;  // and this

  // The hash of a key, as add() takes it.
  static uint64_t hash(std::string_view key);
  // Places one WAL entry (a delete as a tombstone); `hash` is hash(key).
  // Returns the change of bytes() it caused. `epoch` 0: in WAL order, the
  // newest entry of a key wins; else the entry's segment counted from the
  // newest (1), never smaller than the bucket's last: an entry of a key
  // placed in an earlier epoch wins (see above).
  int64_t add(const DataEntry& e, uint64_t hash, uint32_t epoch = 0);
  int64_t add(const DataEntry& e) {
    return add(e, hash({reinterpret_cast<const char*>(e.key.data()), e.key.size()}));
  }
  // Start loading what an add of a key with this hash reads and writes,
  // in two steps some entries apart: the key's index slot, then (once
  // the slot is in cache) its newest entry and the end of the entries.
  // `bytes`: the size of the entry the add will write (run_entry_bytes).
  void prefetch_slot(uint64_t hash) const;
  void prefetch_place(uint64_t hash, size_t bytes) const;
  // Drops the dead entries now. Returns the change of bytes().
  int64_t compact();
  // The newest entry of every key (tombstones included) in key order:
  // pointers into the bucket, valid until clear().
  SortedEntries sorted();
  // Frees every entry.
  void clear();
  // Memory held.
  size_t bytes() const { return entries_.bytes_held() + index_bytes(); }
  bool empty() const { return live_ == 0; }
  // Whether the chunks it takes are asked to be huge pages
  // (replay/entry_chunks.h); a restore sets it before the first add.
  void use_huge_pages(bool on) { entries_.use_huge_pages(on); }
  // How many times its entries were rewritten without the dead ones.
  uint64_t rewrites() const { return rewrites_; }

 private:
  // A slot: 0 when free, else the entry's address in the low 48 bits (no
  // user-space address on Linux is longer; EntryChunks checks), the epoch
  // it was placed in in the next 8 (see above), and the top 8 bits of the
  // key's hash.
  static constexpr int kAddressBits = EntryChunks::kAddressBits;
  static constexpr uint64_t kAddressMask = (uint64_t{1} << kAddressBits) - 1;
  static constexpr uint64_t kEpochMask = uint64_t{0xff} << kAddressBits;
  static constexpr uint64_t kTagMask = ~(kAddressMask | kEpochMask);
  static constexpr uint32_t kEpochsPerSweep = 255;
  static uint64_t tag_of(uint64_t hash) { return hash & kTagMask; }
  // An epoch's value in a slot.
  static uint64_t epoch_bits(uint32_t epoch) {
    return epoch == 0 ? 0 : static_cast<uint64_t>((epoch - 1) % kEpochsPerSweep + 1) << kAddressBits;
  }
  static std::byte* entry_of(uint64_t slot) { return reinterpret_cast<std::byte*>(slot & kAddressMask); }
  static uint64_t address_of(const std::byte* p) { return reinterpret_cast<uintptr_t>(p); }
  std::byte* place(std::string_view key, size_t n, uint64_t hash, uint32_t epoch);
  void begin_epoch(uint32_t epoch);
  void prefetch_newest(uint64_t hash, size_t bytes) const;
  void drop_dead_if_wasteful();
  void grow_index();
  void drop_dead();
  // Calls f(uint64_t& slot) for every used slot, in slot order, loading
  // the entries some slots ahead (each call reads its entry's key).
  template <typename F>
  void for_each_used_slot(uint64_t* slots, size_t count, F&& f);
  void remember_hole(const std::byte* entry, size_t n);
  std::byte* take_hole(size_t n);

  // What an add of a key whose newest entry has the same size reads is
  // the first 64 bytes, one cache line (a restore loads a bucket's first
  // lines ahead; RoutedCopy is aligned to 64): the index, the counts and
  // the first 32 bytes of the entries (where the next one goes).
  using Slots = std::unique_ptr<uint64_t[], BucketIndexFree>;
  static Slots new_slots(size_t count, bool huge_pages);
  // The index's memory: its slots, or the pool chunk holding them.
  size_t index_bytes() const {
    const int cls = slots_.get_deleter().cls;
    return slot_count_ == 0 ? 0 : cls < 0 ? slot_count_ * sizeof(uint64_t) : ChunkPool::kClassBytes[cls];
  }
  Slots slots_;  // slot_count_ of them, a power of two, or none
  uint32_t slot_count_ = 0;
  uint32_t epoch_ = 0;  // of the last add: 0, WAL order
  size_t live_ = 0;  // keys
  uint64_t dead_bytes_ = 0;
  EntryChunks entries_;
  // A few dead entries whose place the next entry of the same size takes
  // (a delete then a write of a key changes its entry's size both times):
  // each its address in the low 48 bits, its size above.
  static constexpr int kHoles = 4;
  int hole_count_ = 0;
  uint64_t holes_[kHoles] = {};
  uint64_t rewrites_ = 0;
};

// Merges lists of entries in key order into one where, for a key in
// several, the entry of the later list wins. `lists` in increasing
// priority. Nothing is copied but pointers.
SortedEntries merge_sorted(std::span<const SortedEntries> lists);

}  // namespace walcut
