// Memory for the tables of a restore, in 2 MiB-aligned regions marked for
// transparent huge pages (madvise MADV_HUGEPAGE). A restore touches its
// tables' slots and values at random across hundreds of MB: with 4 KiB pages
// nearly every entry also misses the TLB, and every fresh page is a fault.
// On the benchmark VM huge pages made the replay 10-15% faster and cut the
// kernel's share by a quarter (docs/benchmarks.md).
//
// Blocks are handed out by a bump pointer and freed all at once with the
// arena; slabs of kSlabBytes may be given back for reuse. Thread-safe (one
// mutex; tables ask for a slab per 64 KiB of values). Where the kernel has
// no THP, or refuses madvise, the regions are ordinary memory.
#pragma once

#include <cstddef>
#include <mutex>
#include <new>
#include <type_traits>
#include <vector>

namespace walcut {

class HugeArena {
 public:
  static constexpr size_t kSlabBytes = 64 << 10;

  explicit HugeArena(size_t region_bytes = 64 << 20) : region_bytes_(region_bytes) {}
  ~HugeArena();
  HugeArena(const HugeArena&) = delete;
  HugeArena& operator=(const HugeArena&) = delete;

  // n bytes, 64-byte aligned, valid until the arena is destroyed.
  std::byte* allocate(size_t n);
  // A kSlabBytes block: a given-back slab, else a fresh one.
  std::byte* take_slab();
  void give_back_slab(std::byte* slab);

  size_t mapped_bytes() const;

 private:
  struct Region {
    void* base;
    size_t bytes;
  };
  std::byte* allocate_locked(size_t n);

  const size_t region_bytes_;
  mutable std::mutex mu_;
  std::vector<Region> regions_;
  std::vector<std::byte*> free_slabs_;
  std::byte* next_ = nullptr;
  size_t left_ = 0;
};

// A std::allocator that takes from a HugeArena when it has one (freeing is
// then the arena's), and from the heap otherwise.
template <typename T>
struct ArenaAllocator {
  using value_type = T;
  using propagate_on_container_move_assignment = std::true_type;
  using propagate_on_container_swap = std::true_type;
  HugeArena* arena = nullptr;

  ArenaAllocator() = default;
  explicit ArenaAllocator(HugeArena* a) : arena(a) {}
  template <typename U>
  ArenaAllocator(const ArenaAllocator<U>& o) : arena(o.arena) {}

  T* allocate(size_t n) {
    if (arena) return reinterpret_cast<T*>(arena->allocate(n * sizeof(T)));
    return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{alignof(T)}));
  }
  void deallocate(T* p, size_t) {
    if (!arena) ::operator delete(p, std::align_val_t{alignof(T)});
  }
  template <typename U>
  bool operator==(const ArenaAllocator<U>& o) const {
    return arena == o.arena;
  }
};

}  // namespace walcut
