#include "replay/huge_arena.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <new>

namespace walcut {

namespace {
constexpr size_t kHugePageBytes = 2 << 20;
constexpr size_t kAlign = 64;

size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }
}  // namespace

HugeArena::~HugeArena() {
  for (const Region& r : regions_) ::munmap(r.base, r.bytes);
}

std::byte* HugeArena::allocate(size_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  return allocate_locked(n);
}

std::byte* HugeArena::allocate_locked(size_t n) {
  n = round_up(std::max<size_t>(n, 1), kAlign);
  if (n > left_) {
    // A fresh region, 2 MiB-aligned so that huge pages can back all of it.
    const size_t want = round_up(std::max(region_bytes_, n), kHugePageBytes);
    const size_t mapped = want + kHugePageBytes;
    void* p = ::mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    auto start = reinterpret_cast<uintptr_t>(p);
    uintptr_t aligned = round_up(start, kHugePageBytes);
    if (aligned > start) ::munmap(p, aligned - start);
    const size_t tail = mapped - (aligned - start) - want;
    if (tail > 0) ::munmap(reinterpret_cast<void*>(aligned + want), tail);
    ::madvise(reinterpret_cast<void*>(aligned), want, MADV_HUGEPAGE);  // a hint: ignored where refused
    regions_.push_back(Region{reinterpret_cast<void*>(aligned), want});
    next_ = reinterpret_cast<std::byte*>(aligned);
    left_ = want;
  }
  std::byte* p = next_;
  next_ += n;
  left_ -= n;
  return p;
}

std::byte* HugeArena::take_slab() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!free_slabs_.empty()) {
    std::byte* s = free_slabs_.back();
    free_slabs_.pop_back();
    return s;
  }
  return allocate_locked(kSlabBytes);
}

void HugeArena::give_back_slab(std::byte* slab) {
  std::lock_guard<std::mutex> lock(mu_);
  free_slabs_.push_back(slab);
}

size_t HugeArena::mapped_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = 0;
  for (const Region& r : regions_) n += r.bytes;
  return n;
}

}  // namespace walcut
