// One partition copy while it is restored. Built for replay's pattern:
// millions of overwrites of values of one size, some deletes and inserts,
// then one pass in key order for the checkpoint.
//
// Why not a library map: on the benchmark VM an entry applied to
// boost::unordered_flat_map costs three cache misses (group metadata, the
// element, the old value's lines read before they are overwritten), each
// about 200 ns, and that library has no way to start them early. Here:
// - slots are one cache line each (hash, key of up to 16 bytes inline,
//   value pointer, sizes, version), in one open-addressed array with
//   linear probing;
// - a delete leaves a tombstone: the slot keeps its key and the delete's
//   version and gives its value's bytes back, so merging copies by newest
//   version (the ATOMIC repair) sees the delete. Tombstones are not entries:
//   size(), find(), for_each() and sorted() skip them;
// - prefetch(hash) lets the caller start the slot's miss entries ahead;
// - an overwrite that fits is copied with streaming stores
//   (io/stream_copy.h), so the old value is never read;
// - values (and keys over 16 bytes) live in the table's arena of 64 KiB
//   slabs: a partition loaded in key order is laid out in key order, and
//   freeing a table frees a few slabs, not one allocation per value.
//   A value's bytes left behind by a delete or a move are kept for the
//   next value of the same size (one size at a time: a table's values
//   mostly share one); other bytes left behind are counted, and when they
//   exceed the live bytes and 4 MiB, live values move to fresh slabs.
//   Memory: at most about twice the live values, plus 64 bytes per slot
//   (an entry or a tombstone) at a load factor of at least 0.35.
// - Given a HugeArena (restore gives one per node), slots and slabs come
//   from its huge-page regions, and slabs a table gives back are reused,
//   as is a slot array outgrown (cut into slabs). Fresh memory is the
//   dearest thing a restore touches (docs/restore.md, "Memory").
//
// Not thread-safe: one owner at a time (a replay stripe). Overwrites use
// streaming stores, which are weakly ordered: call stream_fence() before
// another thread reads the table (replay does at the end of each stripe's
// part of a batch).
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "io/records.h"
#include "replay/huge_arena.h"

namespace walcut {

class RestoreTable {
 public:
  struct Value {
    ByteSpan bytes;
    Version version;
    bool deleted = false;  // a tombstone: the key's last change was a delete at `version`
    bool operator==(const Value& o) const {
      return version == o.version && deleted == o.deleted && bytes.size() == o.bytes.size() &&
             (bytes.empty() || std::memcmp(bytes.data(), o.bytes.data(), bytes.size()) == 0);
    }
  };

  // With an arena, slots and values come from it (huge pages) and it frees
  // them; without, from the heap.
  explicit RestoreTable(HugeArena* arena = nullptr) : arena_(arena), slots_(ArenaAllocator<Slot>(arena)) {}
  ~RestoreTable();
  RestoreTable(RestoreTable&& o) noexcept { swap(o); }
  RestoreTable& operator=(RestoreTable&& o) noexcept {
    RestoreTable gone(std::move(*this));
    swap(o);
    return *this;
  }
  RestoreTable(const RestoreTable&) = delete;
  RestoreTable& operator=(const RestoreTable&) = delete;

  static uint64_t hash(std::string_view key);
  // Starts loading the slot where `h` would be found.
  void prefetch(uint64_t h) const {
    if (!slots_.empty()) __builtin_prefetch(&slots_[h & mask_], 1);
  }

  // Sets key's value (a CREATE or UPDATE). `h` is hash(key).
  void put(std::string_view key, ByteSpan value, const Version& version, uint64_t h);
  void put(std::string_view key, ByteSpan value, const Version& version) { put(key, value, version, hash(key)); }
  // Deletes key at `version` (a DELETE), present or not: its value goes
  // and a tombstone with `version` stays.
  void remove(std::string_view key, const Version& version, uint64_t h);
  void remove(std::string_view key, const Version& version) { remove(key, version, hash(key)); }
  // Absent or deleted: nullopt. The bytes are valid until the next change.
  std::optional<Value> find(std::string_view key) const;
  size_t size() const { return size_; }  // entries, tombstones not counted
  size_t tombstone_count() const { return tombstones_; }

  // Every entry, in no particular order: fn(key, value).
  template <typename Fn>
  void for_each(Fn&& fn) const {
    for (const Slot& s : slots_) {
      if (s.hash != 0 && s.value != nullptr) fn(key_of(s), value_of(s));
    }
  }
  // Every entry and every tombstone (value.deleted), in no particular order.
  template <typename Fn>
  void for_each_with_tombstones(Fn&& fn) const {
    for (const Slot& s : slots_) {
      if (s.hash != 0) fn(key_of(s), value_of(s));
    }
  }
  // Every entry in key order. Valid until the next change.
  std::vector<std::pair<std::string_view, Value>> sorted() const;

  // For tests of the memory bound.
  uint64_t arena_bytes() const { return arena_bytes_; }
  uint64_t live_bytes() const { return live_bytes_; }
  size_t slot_count() const { return slots_.size(); }

 private:
  static constexpr size_t kInlineKeyBytes = 16;
  struct alignas(64) Slot {
    uint64_t hash = 0;  // 0: empty (a key whose hash is 0 is stored as 1)
    std::byte* value = nullptr;  // null in a tombstone; a value owns at least 16 bytes
    uint32_t value_size = 0;
    uint32_t capacity = 0;  // arena bytes reserved at `value`
    uint32_t key_size = 0;
    uint32_t key_capacity = 0;  // arena bytes of a key stored outside
    Version version;
    union {
      char inline_key[kInlineKeyBytes];
      const char* key_ptr;
    };
    Slot() : inline_key{} {}
  };
  static_assert(sizeof(Slot) == 64);

  static std::string_view key_of(const Slot& s) {
    return {s.key_size <= kInlineKeyBytes ? s.inline_key : s.key_ptr, s.key_size};
  }
  static Value value_of(const Slot& s) { return {ByteSpan(s.value, s.value_size), s.version, s.value == nullptr}; }
  // The slot holding key, or the empty slot where it would go.
  size_t probe(std::string_view key, uint64_t h) const;
  struct Slab {
    std::byte* bytes;
    size_t size;
  };
  void swap(RestoreTable& o) noexcept;
  std::byte* allocate(size_t n);
  // Bytes for a value of n bytes (rounded up): a spare of that size if
  // there is one. release() makes them spare or waste.
  std::byte* allocate_value(size_t need);
  void release(std::byte* p, uint32_t capacity);
  Slab new_slab(size_t n);
  void free_slabs(std::vector<Slab>& slabs);
  // Whether one more key would take entries and tombstones past 0.7 of the slots.
  bool full() const { return 10 * (size_ + tombstones_ + 1) > 7 * slots_.size(); }
  void grow();
  void set_key(Slot& s, std::string_view key, uint64_t h);
  void compact_if_wasteful();

  HugeArena* arena_ = nullptr;
  std::vector<Slot, ArenaAllocator<Slot>> slots_;
  size_t mask_ = 0;
  size_t size_ = 0;        // slots holding a value
  size_t tombstones_ = 0;  // slots holding a tombstone
  std::vector<Slab> slabs_;
  std::byte* next_ = nullptr;  // free bytes of the last slab
  size_t left_ = 0;
  uint64_t arena_bytes_ = 0;   // all slabs
  uint64_t live_bytes_ = 0;    // reserved for present values and keys
  uint64_t wasted_bytes_ = 0;  // reserved and left behind (spares included)
  std::vector<std::byte*> spare_;  // left behind, each spare_capacity_ bytes
  uint32_t spare_capacity_ = 0;
};

}  // namespace walcut
