// Entries of a run (replay/entry_run.h) kept in fixed-size chunks instead
// of one growing buffer: a bucket grows without moving what it holds (no
// copy, no realloc), and the chunks a bucket frees (a spill, a finish, a
// rewrite) go back to a pool the next buckets take them from. One growing
// buffer per bucket left holes of every size in malloc's heap, which the
// next node's buckets could not fill (the large shape under --memory-limit
// 96M peaked at 197 MiB), or, mapped alone and unmapped when freed, had
// every page of every bucket fault in anew (3.4x the unconstrained time);
// chunks of five sizes fill each other's places.
#pragma once

#include <cstddef>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <vector>

namespace walcut {

// Free chunks of each size, shared by the buckets of every restore in the
// process (thread-safe). The pool keeps at most what the buckets once held
// together, and release_free() hands it back.
//
// A chunk is malloc's, or, when its buckets ask for huge pages, cut from a
// 2 MiB slab mapped on its own and asked to be one huge page (MADV_HUGEPAGE):
// a node's buckets spread tens of MiB of entries that replay reaches at
// random, and with 4 KiB pages nearly every entry placed missed the TLB as
// well as the cache (replay 6% faster on `small`, docs/benchmarks.md). The
// cost is memory: a huge page is resident whole, so the chunks' unused
// ends count too, and the slabs are unmapped only once every chunk cut
// from them is back. A restore asks for them only when its budget is far
// from reached (replay/restore.cc), for its own buckets: restores side by
// side in one process each keep their choice, though a free chunk goes to
// whichever bucket asks next.
class ChunkPool {
 public:
  static constexpr int kClasses = 5;
  static constexpr size_t kClassBytes[kClasses] = {1 << 10, 2 << 10, 4 << 10, 16 << 10, 64 << 10};

  static constexpr size_t kSlabBytes = 2 << 20;

  static ChunkPool& shared();
  ~ChunkPool() { release_free(); }

  // A free chunk of the class, or a new one: cut from a huge-page slab
  // when `huge_page` (a hint: where the kernel gives none, the slab has
  // 4 KiB pages), else malloc's.
  std::byte* get(int cls, bool huge_page = false);
  // A free chunk of class `cls`, else a free one of the largest smaller
  // class down to `smallest`, else a new one of `cls`; `cls` is set to
  // the chunk's class. The chunks a bucket's index leaves as it grows
  // (1 KiB, then 2 KiB, ...) are then taken by entries before new ones
  // are cut (4 MB of `small`'s 120 MB were left in the pool before).
  std::byte* get_fitting(int& cls, int smallest, bool huge_page);
  void put(std::byte* chunk, int cls);
  // Frees every pooled chunk malloc gave, and unmaps the slabs once every
  // chunk cut from them is back (a restore calls it when it ends).
  void release_free();
  size_t free_bytes();
  // Bytes of the chunks it has made (malloc'd or cut from a slab) and not
  // freed: in buckets or pooled.
  size_t allocated_bytes() const { return allocated_bytes_.load(std::memory_order_relaxed); }

 private:
  std::byte* cut(size_t n);
  bool in_slab(const std::byte* p) const;

  std::atomic<size_t> allocated_bytes_{0};  // changed under mu_ only
  std::mutex mu_;
  std::vector<std::byte*> free_[kClasses];
  std::vector<std::byte*> slabs_;   // in address order
  std::byte* slab_next_ = nullptr;  // the uncut rest of the newest slab
  std::byte* slab_end_ = nullptr;
};

// Entries appended one after another into chunks; an entry never spans two
// chunks (one larger than the largest chunk gets a chunk of its own). An
// entry stays where it was put until release(): a bucket's index holds
// its address (replay/partition_bucket.h), and nothing stands between the
// two. Not thread-safe.
class EntryChunks {
 public:
  // Every entry's address fits in this many bits (a bucket's index slot
  // holds it beside a part of the key's hash).
  static constexpr int kAddressBits = 48;

  EntryChunks() = default;
  ~EntryChunks() { release(); }
  EntryChunks(EntryChunks&& o) noexcept { *this = std::move(o); }
  EntryChunks& operator=(EntryChunks&& o) noexcept;
  EntryChunks(const EntryChunks&) = delete;
  EntryChunks& operator=(const EntryChunks&) = delete;

  // n bytes for one entry, uninitialised.
  std::byte* append(size_t n) {
    if (left_ < n) add_chunk(n);
    std::byte* p = end_;
    end_ += n;
    left_ -= n;
    used_ += n;
    return p;
  }
  // Starts loading the memory the next append() gives, if in a chunk now.
  void prefetch_end() const {
    if (left_ > 0) __builtin_prefetch(end_, 1);
  }
  // Gives every chunk back to the pool.
  void release();
  // Whether the chunks it takes from now on are asked to be huge pages
  // (ChunkPool::get); kept through release() and a move.
  void use_huge_pages(bool on) { huge_pages_ = on; }
  bool huge_pages() const { return huge_pages_; }

  // Bytes of the entries appended, and of the chunks holding them.
  size_t size() const { return used_; }
  size_t bytes_held() const { return held_; }
  bool empty() const { return used_ == 0; }

 private:
  struct Chunk {
    std::byte* data;
    size_t capacity;
    int cls;  // -1: the chunk of one large entry, malloc'd for it
  };
  void add_chunk(size_t n);
  static void give_back(const Chunk& c);  // to the pool, or to malloc when its own

  // What append() reads comes first: a bucket's first cache line holds it.
  std::byte* end_ = nullptr;  // where the next entry goes
  size_t left_ = 0;           // bytes from end_ to the end of the last chunk
  size_t used_ = 0;
  size_t held_ = 0;
  std::vector<Chunk> chunks_;
  bool huge_pages_ = false;
};

}  // namespace walcut
