// Entries as a restore keeps them between the WAL and the partition file.
//
// One entry is laid out as in a partition file (docs/partition-format.md):
//   u32 key_bytes | u32 value_bytes | version (16 bytes) | key | value
// except that value_bytes = kTombstoneMark marks a delete (no value bytes
// follow): the delete's version must survive until the ATOMIC repair has
// compared the copies of a partition, then it is dropped.
//
// A run is a byte string of such entries. A sorted run has strictly
// increasing keys (unsigned bytes, a prefix first), one entry per key.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

#include "io/coding.h"
#include "io/records.h"

namespace walcut {

inline constexpr uint32_t kTombstoneMark = 0xFFFFFFFFu;
inline constexpr size_t kRunEntryFixedBytes = 4 + 4 + kVersionBytes;

// One entry of a run, pointing into the run's bytes.
struct RunEntry {
  std::string_view key;
  ByteSpan value;  // empty for a tombstone
  Version version;
  bool tombstone = false;
};

// Bytes entry e takes in a run.
inline size_t run_entry_bytes(const DataEntry& e) {
  return kRunEntryFixedBytes + e.key.size() + (e.op == EntryOp::kDelete ? 0 : e.value.size());
}

// Writes entry e at p (run_entry_bytes(e) bytes).
inline void store_run_entry(std::byte* p, std::string_view key, ByteSpan value, const Version& v, bool tombstone) {
  store_u32(p, static_cast<uint32_t>(key.size()));
  store_u32(p + 4, tombstone ? kTombstoneMark : static_cast<uint32_t>(value.size()));
  store_version(p + 8, v);
  std::memcpy(p + kRunEntryFixedBytes, key.data(), key.size());
  if (!tombstone && !value.empty()) std::memcpy(p + kRunEntryFixedBytes + key.size(), value.data(), value.size());
}

inline std::string_view run_entry_key(const std::byte* p) {
  return {reinterpret_cast<const char*>(p + kRunEntryFixedBytes), load_u32(p)};
}

// Whether two keys are equal. A key of 8 to 16 bytes is compared by two
// overlapping loads each, not a call: replay compares the key of nearly
// every entry it places with the key's newest entry.
inline bool same_key(std::string_view a, std::string_view b) {
  const size_t n = a.size();
  if (n != b.size()) return false;
  if (n < 8 || n > 16) return n == 0 || std::memcmp(a.data(), b.data(), n) == 0;  // an empty view may hold no pointer
  uint64_t a0, a1, b0, b1;
  std::memcpy(&a0, a.data(), 8);
  std::memcpy(&a1, a.data() + n - 8, 8);
  std::memcpy(&b0, b.data(), 8);
  std::memcpy(&b1, b.data() + n - 8, 8);
  return ((a0 ^ b0) | (a1 ^ b1)) == 0;
}

// Bytes the entry at p takes.
inline size_t run_entry_size(const std::byte* p) {
  uint32_t value_bytes = load_u32(p + 4);
  return kRunEntryFixedBytes + load_u32(p) + (value_bytes == kTombstoneMark ? 0 : value_bytes);
}

inline RunEntry run_entry_at(const std::byte* p) {
  RunEntry e;
  uint32_t key_bytes = load_u32(p);
  uint32_t value_bytes = load_u32(p + 4);
  e.version = load_version(p + 8);
  e.key = {reinterpret_cast<const char*>(p + kRunEntryFixedBytes), key_bytes};
  e.tombstone = value_bytes == kTombstoneMark;
  if (!e.tombstone) e.value = ByteSpan(p + kRunEntryFixedBytes + key_bytes, value_bytes);
  return e;
}

// Entries in key order, one per key, as pointers into the runs or
// buckets that hold them (which must outlive it).
using SortedEntries = std::vector<const std::byte*>;

// Pointers to the entries of a run, in its order.
inline SortedEntries entries_of(ByteSpan run) {
  SortedEntries out;
  for (size_t at = 0; at < run.size(); at += run_entry_size(run.data() + at)) out.push_back(run.data() + at);
  return out;
}

// Checks that `run` is a whole number of well-formed entries (lengths in
// range) and, when `sorted`, that keys strictly increase. For runs read
// back from a spill file: the CRC covers the disk, this covers the writer.
bool run_is_well_formed(ByteSpan run, bool sorted, uint64_t* entries = nullptr);

// A growable byte buffer that does not zero what it allocates (a vector's
// resize does). Cost of append: amortised O(1); capacity at most 1.5x the
// size, or exactly what reserve() asked.
class RunBuffer {
 public:
  RunBuffer() = default;
  ~RunBuffer() { release(); }
  RunBuffer(RunBuffer&& o) noexcept { take_from(o); }
  RunBuffer& operator=(RunBuffer&& o) noexcept {
    if (this != &o) {
      release();
      take_from(o);
    }
    return *this;
  }
  RunBuffer(const RunBuffer&) = delete;
  RunBuffer& operator=(const RunBuffer&) = delete;

  // n more bytes at the end, uninitialised: the caller fills them.
  std::byte* append(size_t n) {
    if (size_ + n > capacity_) resize_capacity(std::max(size_ + n, capacity_ + capacity_ / 2 + 256));
    std::byte* p = data_ + size_;
    size_ += n;
    return p;
  }
  void reserve(size_t n) {
    if (n > capacity_) resize_capacity(n);
  }
  void clear() { size_ = 0; }
  // Frees the memory.
  void release();
  // Sets the capacity to n >= size() bytes (may move).
  void set_capacity(size_t n) { resize_capacity(std::max(n, size_)); }

  std::byte* data() { return data_; }
  const std::byte* data() const { return data_; }
  size_t size() const { return size_; }
  size_t capacity() const { return capacity_; }
  bool empty() const { return size_ == 0; }
  ByteSpan span() const { return {data_, size_}; }

 private:
  void resize_capacity(size_t n);
  void take_from(RunBuffer& o) {
    data_ = o.data_;
    size_ = o.size_;
    capacity_ = o.capacity_;
    o.data_ = nullptr;
    o.size_ = o.capacity_ = 0;
  }

  std::byte* data_ = nullptr;
  size_t size_ = 0;
  size_t capacity_ = 0;
};

// Appends the entries `entries` points at to `out`, one after another.
inline void append_entries(const SortedEntries& entries, RunBuffer& out) {
  for (const std::byte* p : entries) {
    const size_t n = run_entry_size(p);
    std::memcpy(out.append(n), p, n);
  }
}

}  // namespace walcut
