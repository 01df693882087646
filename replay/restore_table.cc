#include "replay/restore_table.h"

#include <xxhash.h>

#include <algorithm>

#include "io/stream_copy.h"

namespace walcut {

namespace {
constexpr size_t kSlabBytes = HugeArena::kSlabBytes;
constexpr uint64_t kCompactAboveBytes = 4 << 20;
constexpr size_t kAlign = 16;  // streaming stores want 16-byte destinations
constexpr size_t kFirstSlots = 16;

size_t round_up(size_t n) { return (std::max<size_t>(n, 1) + kAlign - 1) / kAlign * kAlign; }
}  // namespace

uint64_t RestoreTable::hash(std::string_view key) {
  uint64_t h = XXH3_64bits(key.data(), key.size());
  return h == 0 ? 1 : h;
}

RestoreTable::~RestoreTable() { free_slabs(slabs_); }

void RestoreTable::swap(RestoreTable& o) noexcept {
  std::swap(arena_, o.arena_);
  slots_.swap(o.slots_);
  std::swap(mask_, o.mask_);
  std::swap(size_, o.size_);
  std::swap(tombstones_, o.tombstones_);
  slabs_.swap(o.slabs_);
  std::swap(next_, o.next_);
  std::swap(left_, o.left_);
  std::swap(arena_bytes_, o.arena_bytes_);
  std::swap(live_bytes_, o.live_bytes_);
  std::swap(wasted_bytes_, o.wasted_bytes_);
  spare_.swap(o.spare_);
  std::swap(spare_capacity_, o.spare_capacity_);
}

RestoreTable::Slab RestoreTable::new_slab(size_t n) {
  if (!arena_) return Slab{new std::byte[n], n};
  return Slab{n == HugeArena::kSlabBytes ? arena_->take_slab() : arena_->allocate(n), n};
}

// Slabs of the arena's size go back to it for other tables; larger ones
// stay until the arena goes.
void RestoreTable::free_slabs(std::vector<Slab>& slabs) {
  for (const Slab& s : slabs) {
    if (!arena_) {
      delete[] s.bytes;
    } else if (s.size == HugeArena::kSlabBytes) {
      arena_->give_back_slab(s.bytes);
    }
  }
  slabs.clear();
}

std::byte* RestoreTable::allocate(size_t n) {
  n = round_up(n);
  if (n > left_) {
    Slab slab = new_slab(std::max(n, kSlabBytes));
    slabs_.push_back(slab);
    arena_bytes_ += slab.size;
    wasted_bytes_ += left_;  // the tail of the previous slab is never used
    next_ = slab.bytes;
    left_ = slab.size;
  }
  std::byte* p = next_;
  next_ += n;
  left_ -= n;
  return p;
}

std::byte* RestoreTable::allocate_value(size_t need) {
  if (need == spare_capacity_ && !spare_.empty()) {
    std::byte* p = spare_.back();
    spare_.pop_back();
    wasted_bytes_ -= need;
    return p;
  }
  return allocate(need);
}

void RestoreTable::release(std::byte* p, uint32_t capacity) {
  wasted_bytes_ += capacity;
  if (spare_.empty()) spare_capacity_ = capacity;
  if (capacity == spare_capacity_) spare_.push_back(p);
}

size_t RestoreTable::probe(std::string_view key, uint64_t h) const {
  for (size_t i = h & mask_;; i = (i + 1) & mask_) {
    const Slot& s = slots_[i];
    if (s.hash == 0 || (s.hash == h && key_of(s) == key)) return i;
  }
}

void RestoreTable::grow() {
  std::byte* old_bytes = nullptr;
  size_t old_size = 0;
  {
    std::vector<Slot, ArenaAllocator<Slot>> old{ArenaAllocator<Slot>(arena_)};
    old.swap(slots_);
    slots_.assign(old.empty() ? kFirstSlots : 2 * old.size(), Slot{});
    mask_ = slots_.size() - 1;
    for (const Slot& s : old) {
      if (s.hash == 0) continue;
      size_t i = s.hash & mask_;
      while (slots_[i].hash != 0) i = (i + 1) & mask_;
      slots_[i] = s;
    }
    old_bytes = reinterpret_cast<std::byte*>(old.data());
    old_size = old.capacity() * sizeof(Slot);
  }
  // The arena would hold the outgrown array until the restore ends: give
  // it back as slabs instead.
  if (arena_) {
    for (size_t off = 0; off + kSlabBytes <= old_size; off += kSlabBytes) arena_->give_back_slab(old_bytes + off);
  }
}

void RestoreTable::set_key(Slot& s, std::string_view key, uint64_t h) {
  s.hash = h;
  s.key_size = static_cast<uint32_t>(key.size());
  if (key.size() <= kInlineKeyBytes) {
    std::memcpy(s.inline_key, key.data(), key.size());
    return;
  }
  char* k = reinterpret_cast<char*>(allocate(key.size()));
  std::memcpy(k, key.data(), key.size());
  s.key_ptr = k;
  s.key_capacity = static_cast<uint32_t>(round_up(key.size()));
  live_bytes_ += s.key_capacity;
}

void RestoreTable::put(std::string_view key, ByteSpan value, const Version& version, uint64_t h) {
  if (h == 0) h = 1;
  if (full()) grow();
  Slot& s = slots_[probe(key, h)];
  const size_t need = round_up(value.size());
  if (s.hash != 0 && need <= s.capacity && 2 * need >= s.capacity) {
    // Reused in place: it fits and would not waste more than half (a tombstone has no place).
    stream_copy(s.value, value.data(), value.size());
    s.value_size = static_cast<uint32_t>(value.size());
    s.version = version;
    return;
  }
  std::byte* p = allocate_value(need);
  if (!value.empty()) std::memcpy(p, value.data(), value.size());
  if (s.hash == 0) {
    set_key(s, key, h);
    ++size_;
  } else if (s.value == nullptr) {  // a deleted key comes back
    --tombstones_;
    ++size_;
  } else {  // moves: the old bytes are left behind
    live_bytes_ -= s.capacity;
    release(s.value, s.capacity);
  }
  s.value = p;
  s.value_size = static_cast<uint32_t>(value.size());
  s.capacity = static_cast<uint32_t>(need);
  s.version = version;
  live_bytes_ += need;
  compact_if_wasteful();
}

void RestoreTable::remove(std::string_view key, const Version& version, uint64_t h) {
  if (h == 0) h = 1;
  if (full()) grow();
  Slot& s = slots_[probe(key, h)];
  if (s.hash == 0) {
    set_key(s, key, h);
    ++tombstones_;
  } else if (s.value != nullptr) {
    live_bytes_ -= s.capacity;
    release(s.value, s.capacity);
    s.value = nullptr;
    s.value_size = 0;
    s.capacity = 0;
    --size_;
    ++tombstones_;
  }
  s.version = version;
  compact_if_wasteful();
}

std::optional<RestoreTable::Value> RestoreTable::find(std::string_view key) const {
  if (size_ == 0) return std::nullopt;
  const Slot& s = slots_[probe(key, hash(key))];
  if (s.value == nullptr) return std::nullopt;  // empty, or a tombstone
  return value_of(s);
}

void RestoreTable::compact_if_wasteful() {
  if (wasted_bytes_ <= live_bytes_ || wasted_bytes_ <= kCompactAboveBytes) return;
  stream_fence();  // the copies below read what streaming stores wrote
  std::vector<Slab> old;
  old.swap(slabs_);
  next_ = nullptr;
  left_ = 0;
  arena_bytes_ = 0;
  wasted_bytes_ = 0;
  spare_.clear();
  for (Slot& s : slots_) {
    if (s.hash == 0) continue;
    if (s.value != nullptr) {
      std::byte* p = allocate(s.capacity);
      if (s.value_size > 0) std::memcpy(p, s.value, s.value_size);
      s.value = p;
    }
    if (s.key_size > kInlineKeyBytes) {
      char* k = reinterpret_cast<char*>(allocate(s.key_size));
      std::memcpy(k, s.key_ptr, s.key_size);
      s.key_ptr = k;
    }
  }
  free_slabs(old);
}

std::vector<std::pair<std::string_view, RestoreTable::Value>> RestoreTable::sorted() const {
  std::vector<std::pair<std::string_view, Value>> out;
  out.reserve(size_);
  for_each([&](std::string_view k, const Value& v) { out.emplace_back(k, v); });
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return out;
}

}  // namespace walcut
