#include "replay/partition_bucket.h"

#include <algorithm>
#include <cassert>
#include <cstdlib>
#include <new>

namespace walcut {
namespace {

// How many slots ahead a scan of the index loads the entries' keys.
constexpr size_t kAhead = 8;

uint64_t key_prefix(std::string_view key) {
  unsigned char b[8] = {};
  std::memcpy(b, key.data(), std::min<size_t>(8, key.size()));
  uint64_t v = 0;
  for (unsigned char c : b) v = v << 8 | c;
  return v;
}

// A hash of the key for the index (keys are short: a few multiplies).
uint64_t hash_key(std::string_view key) {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ key.size();
  size_t at = 0;
  for (; at + 8 <= key.size(); at += 8) {
    uint64_t v;
    std::memcpy(&v, key.data() + at, 8);
    h = (h ^ v) * 0xBF58476D1CE4E5B9ull;
    h ^= h >> 31;
  }
  // The last 1-7 bytes by at most two overlapping loads, never a byte
  // loop or a call: a key is hashed once per entry.
  const size_t n = key.size() - at;
  const char* p = key.data() + at;
  uint64_t v = 0;
  if (n >= 4) {
    uint32_t lo, hi;
    std::memcpy(&lo, p, 4);
    std::memcpy(&hi, p + n - 4, 4);
    v = lo | (static_cast<uint64_t>(hi) << 32);
  } else if (n > 0) {
    v = static_cast<uint64_t>(static_cast<unsigned char>(p[0])) |
        static_cast<uint64_t>(static_cast<unsigned char>(p[n / 2])) << 8 |
        static_cast<uint64_t>(static_cast<unsigned char>(p[n - 1])) << 16;
  }
  h = (h ^ v) * 0x94D049BB133111EBull;
  return h ^ (h >> 29);
}

}  // namespace

void RunBuffer::release() {
  std::free(data_);
  data_ = nullptr;
  size_ = capacity_ = 0;
}

void RunBuffer::resize_capacity(size_t n) {
  if (size_ == 0) release();  // nothing to carry over: no copy by realloc
  // realloc: a large buffer is its own mapping, which glibc moves with
  // mremap, without copying it or faulting its pages in anew.
  void* p = std::realloc(data_, n);
  if (p == nullptr) throw std::bad_alloc();
  data_ = static_cast<std::byte*>(p);
  capacity_ = n;
}

bool run_is_well_formed(ByteSpan run, bool sorted, uint64_t* entries) {
  size_t at = 0;
  uint64_t count = 0;
  std::string_view last;
  while (at < run.size()) {
    if (run.size() - at < kRunEntryFixedBytes) return false;
    const std::byte* p = run.data() + at;
    uint64_t key_bytes = load_u32(p);
    uint32_t value_bytes = load_u32(p + 4);
    uint64_t need = kRunEntryFixedBytes + key_bytes + (value_bytes == kTombstoneMark ? 0 : value_bytes);
    if (need > run.size() - at) return false;
    std::string_view key = run_entry_key(p);
    if (sorted && count > 0 && compare_keys(last, key) >= 0) return false;
    last = key;
    at += need;
    ++count;
  }
  if (entries) *entries = count;
  return true;
}

void BucketIndexFree::operator()(uint64_t* p) const {
  if (cls < 0) {
    std::free(p);
  } else {
    ChunkPool::shared().put(reinterpret_cast<std::byte*>(p), cls);
  }
}

PartitionBucket::Slots PartitionBucket::new_slots(size_t count, bool huge_pages) {
  const size_t n = count * sizeof(uint64_t);
  int cls = 0;
  while (cls < ChunkPool::kClasses && ChunkPool::kClassBytes[cls] < n) ++cls;
  void* p;
  if (cls == ChunkPool::kClasses || n < ChunkPool::kClassBytes[0]) {  // under 1 KiB: not worth a chunk
    cls = -1;
    p = std::calloc(count, sizeof(uint64_t));
    if (p == nullptr) throw std::bad_alloc();
  } else {
    p = ChunkPool::shared().get(cls, huge_pages);
    std::memset(p, 0, n);  // every slot free
  }
  return Slots(static_cast<uint64_t*>(p), BucketIndexFree{cls});
}

template <typename F>
void PartitionBucket::for_each_used_slot(uint64_t* slots, size_t count, F&& f) {
  for (size_t k = 0; k < std::min(kAhead, count); ++k) __builtin_prefetch(entry_of(slots[k]));
  for (size_t k = 0; k < count; ++k) {
    if (k + kAhead < count) __builtin_prefetch(entry_of(slots[k + kAhead]));
    if (slots[k] != 0) f(slots[k]);
  }
}

void PartitionBucket::grow_index() {
  const size_t old_count = slot_count_;
  if (old_count >= (size_t{1} << 31)) throw std::bad_alloc();  // 16 GiB of index: a count past uint32_t
  const Slots old = std::move(slots_);
  slot_count_ = old_count == 0 ? 16 : static_cast<uint32_t>(old_count * 2);
  slots_ = new_slots(slot_count_, entries_.huge_pages());
  const size_t mask = slot_count_ - 1;
  for_each_used_slot(old.get(), old_count, [&](uint64_t s) {
    size_t i = hash_key(run_entry_key(entry_of(s))) & mask;
    while (slots_[i] != 0) i = (i + 1) & mask;
    slots_[i] = s;
  });
}

uint64_t PartitionBucket::hash(std::string_view key) { return hash_key(key); }

int64_t PartitionBucket::add(const DataEntry& e, uint64_t hash, uint32_t epoch) {
  if (epoch != epoch_) begin_epoch(epoch);
  const size_t before = bytes();
  const std::string_view key(reinterpret_cast<const char*>(e.key.data()), e.key.size());
  std::byte* at = place(key, run_entry_bytes(e), hash, epoch);
  if (at == nullptr) return 0;  // a newer segment's entry of the key stays
  store_run_entry(at, key, e.value, e.write_version, e.op == EntryOp::kDelete);
  drop_dead_if_wasteful();
  return static_cast<int64_t>(bytes()) - static_cast<int64_t>(before);
}

void PartitionBucket::begin_epoch(uint32_t epoch) {
  assert(epoch > epoch_ && "epochs only grow, from a WAL-order start");
  if (epoch_ != 0 && (epoch - 1) / kEpochsPerSweep != (epoch_ - 1) / kEpochsPerSweep) {
    for (size_t i = 0; i < slot_count_; ++i) slots_[i] &= ~kEpochMask;  // every entry now of an older epoch
  }
  epoch_ = epoch;
}

void PartitionBucket::prefetch_slot(uint64_t hash) const {
  if (slot_count_ > 0) __builtin_prefetch(&slots_[hash & (slot_count_ - 1)]);
}

void PartitionBucket::prefetch_place(uint64_t hash, size_t bytes) const {
  prefetch_newest(hash, bytes);
  entries_.prefetch_end();
}

void PartitionBucket::prefetch_newest(uint64_t hash, size_t bytes) const {
  if (slot_count_ == 0) return;
  const uint64_t tag = tag_of(hash);
  const size_t mask = slot_count_ - 1;
  for (size_t i = hash & mask; slots_[i] != 0; i = (i + 1) & mask) {
    if ((slots_[i] & kTagMask) == tag) {
      const std::byte* p = entry_of(slots_[i]);
      if (epoch_ != 0 && (slots_[i] & kEpochMask) != epoch_bits(epoch_)) {
        // Newest first, a newer segment's entry: the add reads its key
        // (a short one) and leaves it.
        __builtin_prefetch(p);
        __builtin_prefetch(p + kRunEntryFixedBytes + 15);
        return;
      }
      // The lines the add may overwrite, to be written (up to 4: a larger
      // entry's copy is long enough for the hardware to stream the rest).
      const uintptr_t first = address_of(p) & ~uintptr_t{63};
      const uintptr_t end = std::min(address_of(p) + bytes, first + 4 * 64);
      for (uintptr_t line = first; line < end; line += 64) {
        __builtin_prefetch(reinterpret_cast<const void*>(line), 1);
      }
      return;
    }
  }
}

void PartitionBucket::drop_dead_if_wasteful() {
  if (dead_bytes_ > std::max<uint64_t>(kDeadMinBytes, (entries_.size() - dead_bytes_) / kDeadShare)) drop_dead();
}

// Where the newest entry of `key`, n bytes, goes: over the key's newest
// entry when it has the same size, else at the end.
std::byte* PartitionBucket::place(std::string_view key, size_t n, uint64_t h, uint32_t epoch) {
  if ((live_ + 1) * 8 > size_t{slot_count_} * 7) grow_index();
  const uint64_t tag = tag_of(h);
  const uint64_t now = epoch_bits(epoch);
  const size_t mask = slot_count_ - 1;
  size_t i = h & mask;
  for (; slots_[i] != 0; i = (i + 1) & mask) {
    const uint64_t s = slots_[i];
    if ((s & kTagMask) != tag) continue;
    std::byte* old = entry_of(s);
    if (!same_key(run_entry_key(old), key)) continue;
    if ((s & kEpochMask) != now) return nullptr;  // newest first: placed in an earlier epoch, a newer segment
    const size_t old_bytes = run_entry_size(old);
    if (old_bytes == n) return old;
    dead_bytes_ += old_bytes;
    remember_hole(old, old_bytes);
    break;
  }
  if (slots_[i] == 0) ++live_;
  assert(live_ * 8 <= size_t{slot_count_} * 7 && "the index has a free slot for every probe to end at");
  std::byte* p = take_hole(n);
  if (p == nullptr) p = entries_.append(n);
  slots_[i] = tag | now | address_of(p);
  return p;
}

void PartitionBucket::remember_hole(const std::byte* entry, size_t n) {
  if (n >= (size_t{1} << (64 - kAddressBits))) return;
  if (hole_count_ == kHoles) {  // the oldest is forgotten: it stays dead until a rewrite
    std::copy(holes_ + 1, holes_ + kHoles, holes_);
    --hole_count_;
  }
  holes_[hole_count_++] = static_cast<uint64_t>(n) << kAddressBits | address_of(entry);
}

std::byte* PartitionBucket::take_hole(size_t n) {
  for (int h = 0; h < hole_count_; ++h) {
    if ((holes_[h] >> kAddressBits) != n) continue;
    std::byte* p = entry_of(holes_[h]);
    std::copy(holes_ + h + 1, holes_ + hole_count_, holes_ + h);
    --hole_count_;
    dead_bytes_ -= n;
    return p;
  }
  return nullptr;
}

int64_t PartitionBucket::compact() {
  const size_t before = bytes();
  if (dead_bytes_ > 0) drop_dead();
  return static_cast<int64_t>(bytes()) - static_cast<int64_t>(before);
}

void PartitionBucket::drop_dead() {
  EntryChunks kept;
  kept.use_huge_pages(entries_.huge_pages());
  for_each_used_slot(slots_.get(), slot_count_, [&](uint64_t& s) {
    const std::byte* p = entry_of(s);
    const size_t n = run_entry_size(p);
    std::byte* q = kept.append(n);
    std::memcpy(q, p, n);
    s = (s & ~kAddressMask) | address_of(q);
  });
  assert(kept.size() + dead_bytes_ == entries_.size() && "dead bytes are exactly what the rewrite drops");
  entries_ = std::move(kept);
  dead_bytes_ = 0;
  hole_count_ = 0;
  ++rewrites_;
}

SortedEntries PartitionBucket::sorted() {
  // The live entries by key: the key's first 8 bytes, big-endian, so most
  // comparisons are one integer compare; ties go to the bytes.
  struct Ref {
    uint64_t prefix;
    const std::byte* entry;
  };
  std::vector<Ref> refs;  // not thread_local: see hash_key_and() in engine/partition_file.cc
  refs.reserve(live_);
  for_each_used_slot(slots_.get(), slot_count_,
                     [&](uint64_t s) { refs.push_back({key_prefix(run_entry_key(entry_of(s))), entry_of(s)}); });
  assert(refs.size() == live_ && "one slot per live key");
  std::sort(refs.begin(), refs.end(), [&](const Ref& a, const Ref& b) {
    if (a.prefix != b.prefix) return a.prefix < b.prefix;
    return compare_keys(run_entry_key(a.entry), run_entry_key(b.entry)) < 0;
  });
  SortedEntries out(refs.size());
  for (size_t i = 0; i < refs.size(); ++i) out[i] = refs[i].entry;
  return out;
}

void PartitionBucket::clear() {
  entries_.release();
  slots_.reset();
  epoch_ = 0;
  slot_count_ = 0;
  live_ = 0;
  dead_bytes_ = 0;
  hole_count_ = 0;
}

SortedEntries merge_sorted(std::span<const SortedEntries> lists) {
  SortedEntries out;
  size_t total = 0;
  for (const SortedEntries& l : lists) total += l.size();
  out.reserve(total);
  if (lists.size() == 2) {
    // A copy's file and its bucket, the usual case: one comparison per
    // entry out.
    const SortedEntries &a = lists[0], &b = lists[1];
    size_t i = 0, j = 0;
    while (i < a.size() && j < b.size()) {
      const int c = compare_keys(run_entry_key(a[i]), run_entry_key(b[j]));
      if (c < 0) {
        out.push_back(a[i++]);
      } else {
        out.push_back(b[j++]);  // the later list's entry of a key wins
        i += c == 0;
      }
    }
    out.insert(out.end(), a.begin() + static_cast<ptrdiff_t>(i), a.end());
    out.insert(out.end(), b.begin() + static_cast<ptrdiff_t>(j), b.end());
    return out;
  }
  std::vector<size_t> at(lists.size(), 0);
  for (;;) {
    // The smallest key among the lists' heads, and the last list holding it.
    int best = -1;
    std::string_view best_key;
    for (size_t r = 0; r < lists.size(); ++r) {
      if (at[r] >= lists[r].size()) continue;
      std::string_view k = run_entry_key(lists[r][at[r]]);
      if (best < 0 || compare_keys(k, best_key) <= 0) {
        best = static_cast<int>(r);
        best_key = k;
      }
    }
    if (best < 0) return out;
    out.push_back(lists[best][at[best]]);
    for (size_t r = 0; r < lists.size(); ++r) {
      if (at[r] < lists[r].size() && same_key(run_entry_key(lists[r][at[r]]), best_key)) ++at[r];
    }
  }
}

}  // namespace walcut
