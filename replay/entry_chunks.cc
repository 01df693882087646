#include "replay/entry_chunks.h"

#include <cassert>
#include <cstdlib>
#include <new>
#include <utility>

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

std::byte* ChunkPool::get(int cls) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!free_[cls].empty()) {
      std::byte* p = free_[cls].back();
      free_[cls].pop_back();
      return p;
    }
  }
  allocated_bytes_ += kClassBytes[cls];
  return allocate(kClassBytes[cls]);
}

void ChunkPool::put(std::byte* chunk, int cls) {
  std::lock_guard<std::mutex> lock(mu_);
  free_[cls].push_back(chunk);
}

void ChunkPool::release_free() {
  std::lock_guard<std::mutex> lock(mu_);
  for (int c = 0; c < kClasses; ++c) {
    for (std::byte* p : free_[c]) std::free(p);
    allocated_bytes_ -= free_[c].size() * kClassBytes[c];
    free_[c] = {};
  }
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
    used_ = std::exchange(o.used_, 0);
    held_ = std::exchange(o.held_, 0);
  }
  return *this;
}

// A new chunk for an entry of n bytes: small chunks while the entries are
// few (thousands of partitions hold a few KiB each), larger ones as they grow
// (fewer chunks, less room lost at their ends); the slack stays under about
// a quarter of what is held.
void EntryChunks::add_chunk(size_t n) {
  int cls = held_ < (4 << 10) ? 0 : held_ < (32 << 10) ? 1 : held_ < (256 << 10) ? 2 : 3;
  while (cls < ChunkPool::kClasses && ChunkPool::kClassBytes[cls] < n) ++cls;
  Chunk c{};
  if (cls == ChunkPool::kClasses) {
    c = {allocate(n), 0, n, -1};
  } else {
    c = {ChunkPool::shared().get(cls), 0, ChunkPool::kClassBytes[cls], cls};
  }
  assert(chunks_.size() < (size_t{1} << (kLocationBits - kOffsetBits)) && "the chunk's index fits a location");
  chunks_.push_back(c);
  held_ += c.capacity;
}

std::byte* EntryChunks::append(size_t n, uint64_t* location) {
  if (chunks_.empty() || chunks_.back().capacity - chunks_.back().used < n) add_chunk(n);
  Chunk& c = chunks_.back();
  *location = (chunks_.size() - 1) << kOffsetBits | c.used;
  std::byte* p = c.data + c.used;
  c.used += n;
  used_ += n;
  return p;
}

void EntryChunks::release() {
  for (const Chunk& c : chunks_) {
    if (c.cls < 0) {
      std::free(c.data);
    } else {
      ChunkPool::shared().put(c.data, c.cls);
    }
  }
  chunks_.clear();
  used_ = held_ = 0;
}

}  // namespace walcut
