#include "replay/entry_chunks.h"

#include <sys/mman.h>

#include <algorithm>
#include <cassert>
#include <cstdlib>
#include <new>
#include <utility>

#include <sanitizer/asan_interface.h>

namespace walcut {
namespace {

std::byte* allocate(size_t n) {
  void* p = std::malloc(n);
  if (p == nullptr) throw std::bad_alloc();
  return static_cast<std::byte*>(p);
}

}  // namespace

ChunkPool& ChunkPool::shared() {
  static ChunkPool pool;
  return pool;
}

std::byte* ChunkPool::get(int cls, bool huge_page) { return get_fitting(cls, cls, huge_page); }

std::byte* ChunkPool::get_fitting(int& cls, int smallest, bool huge_page) {
  std::lock_guard<std::mutex> lock(mu_);
  std::byte* p;
  for (int c = cls; c >= smallest; --c) {
    if (free_[c].empty()) continue;
    p = free_[c].back();
    free_[c].pop_back();
    ASAN_UNPOISON_MEMORY_REGION(p, kClassBytes[c]);
    cls = c;
    return p;
  }
  const size_t n = kClassBytes[cls];
  // Counted under the lock: release_free() must never find every chunk
  // back while one it cannot see yet is being cut from a slab.
  p = huge_page ? cut(n) : nullptr;
  if (p == nullptr) p = allocate(n);
  allocated_bytes_ += n;
  return p;
}

// n bytes from the newest slab, or from a new one. The rest of a slab too
// short for n (under the largest chunk, 3% of a slab) is never used, and
// never touched: not resident.
std::byte* ChunkPool::cut(size_t n) {
  if (static_cast<size_t>(slab_end_ - slab_next_) < n) {
    void* m = ::mmap(nullptr, 2 * kSlabBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return nullptr;  // malloc's then
    // Aligned to its size, so that one huge page can back it; the
    // mapping's unaligned ends are given back at once.
    auto* base = static_cast<std::byte*>(m);
    auto* slab = reinterpret_cast<std::byte*>((reinterpret_cast<uintptr_t>(base) + kSlabBytes - 1) & ~(kSlabBytes - 1));
    if (slab > base) ::munmap(base, slab - base);
    if (base + 2 * kSlabBytes > slab + kSlabBytes) ::munmap(slab + kSlabBytes, base + 2 * kSlabBytes - (slab + kSlabBytes));
    ::madvise(slab, kSlabBytes, MADV_HUGEPAGE);  // a hint: refused, the pages are 4 KiB
    ASAN_POISON_MEMORY_REGION(slab, kSlabBytes);  // under ASan, what is not cut, or is pooled, is poisoned
    slabs_.insert(std::upper_bound(slabs_.begin(), slabs_.end(), slab), slab);
    slab_next_ = slab;
    slab_end_ = slab + kSlabBytes;
  }
  std::byte* p = slab_next_;
  slab_next_ += n;
  ASAN_UNPOISON_MEMORY_REGION(p, n);
  return p;
}

bool ChunkPool::in_slab(const std::byte* p) const {
  auto after = std::upper_bound(slabs_.begin(), slabs_.end(), p);
  return after != slabs_.begin() && p < *(after - 1) + kSlabBytes;
}

void ChunkPool::put(std::byte* chunk, int cls) {
  ASAN_POISON_MEMORY_REGION(chunk, kClassBytes[cls]);
  std::lock_guard<std::mutex> lock(mu_);
  free_[cls].push_back(chunk);
}

void ChunkPool::release_free() {
  std::lock_guard<std::mutex> lock(mu_);
  size_t in_slabs = 0;  // bytes of the free chunks cut from slabs
  for (int c = 0; c < kClasses; ++c) {
    std::vector<std::byte*> kept;
    for (std::byte* p : free_[c]) {
      if (in_slab(p)) {
        kept.push_back(p);
        continue;
      }
      ASAN_UNPOISON_MEMORY_REGION(p, kClassBytes[c]);
      std::free(p);
      allocated_bytes_ -= kClassBytes[c];
    }
    in_slabs += kept.size() * kClassBytes[c];
    free_[c] = std::move(kept);
  }
  if (in_slabs != allocated_bytes_) return;  // a bucket still holds chunks: the slabs stay
  for (std::byte* slab : slabs_) {
    ASAN_UNPOISON_MEMORY_REGION(slab, kSlabBytes);
    ::munmap(slab, kSlabBytes);
  }
  for (auto& list : free_) list = {};
  slabs_ = {};
  slab_next_ = slab_end_ = nullptr;
  allocated_bytes_ -= in_slabs;
}

size_t ChunkPool::free_bytes() {
  std::lock_guard<std::mutex> lock(mu_);
  size_t bytes = 0;
  for (int c = 0; c < kClasses; ++c) bytes += free_[c].size() * kClassBytes[c];
  return bytes;
}

EntryChunks& EntryChunks::operator=(EntryChunks&& o) noexcept {
  if (this != &o) {
    release();
    chunks_ = std::exchange(o.chunks_, {});
    end_ = std::exchange(o.end_, nullptr);
    left_ = std::exchange(o.left_, 0);
    used_ = std::exchange(o.used_, 0);
    held_ = std::exchange(o.held_, 0);
    huge_pages_ = o.huge_pages_;
  }
  return *this;
}

// A new chunk for an entry of n bytes: small chunks while the entries are
// few (thousands of partitions hold a few KiB each), larger ones as they grow
// (fewer chunks, less room lost at their ends); the slack stays under about
// a quarter of what is held.
void EntryChunks::add_chunk(size_t n) {
  int cls = held_ < (4 << 10) ? 0 : held_ < (32 << 10) ? 1 : held_ < (128 << 10) ? 2 : held_ < (512 << 10) ? 3 : 4;
  int smallest = 0;  // the smallest class the entry fits in
  while (smallest < ChunkPool::kClasses && ChunkPool::kClassBytes[smallest] < n) ++smallest;
  cls = std::max(cls, smallest);
  Chunk c{};
  if (cls == ChunkPool::kClasses) {
    c = {allocate(n), n, -1};
  } else {
    std::byte* p = ChunkPool::shared().get_fitting(cls, smallest, huge_pages_);
    c = {p, ChunkPool::kClassBytes[cls], cls};
  }
  if (reinterpret_cast<uintptr_t>(c.data) + c.capacity > (uintptr_t{1} << kAddressBits)) {
    give_back(c);  // never on Linux without asking mmap for more: the index could not hold it
    throw std::bad_alloc();
  }
  chunks_.push_back(c);
  end_ = c.data;
  left_ = c.capacity;
  held_ += c.capacity;
}

void EntryChunks::give_back(const Chunk& c) {
  if (c.cls < 0) {
    std::free(c.data);
  } else {
    ChunkPool::shared().put(c.data, c.cls);
  }
}

void EntryChunks::release() {
  for (const Chunk& c : chunks_) give_back(c);
  chunks_.clear();
  end_ = nullptr;
  left_ = 0;
  used_ = held_ = 0;
}

}  // namespace walcut
