#include "replay/partition_bucket.h"

#include <algorithm>
#include <cstdlib>
#include <new>

namespace walcut {
namespace {

uint64_t key_prefix(std::string_view key) {
  unsigned char b[8] = {};
  std::memcpy(b, key.data(), std::min<size_t>(8, key.size()));
  uint64_t v = 0;
  for (unsigned char c : b) v = v << 8 | c;
  return v;
}

// Keys in unsigned byte order, a prefix first (std::string_view's order).
int compare_keys(std::string_view a, std::string_view b) {
  int c = std::memcmp(a.data(), b.data(), std::min(a.size(), b.size()));
  if (c != 0) return c;
  return a.size() < b.size() ? -1 : a.size() > b.size() ? 1 : 0;
}

// Copies the entry at p to out.
void copy_entry(const std::byte* p, RunBuffer& out) {
  size_t n = run_entry_size(p);
  std::memcpy(out.append(n), p, n);
}

// What compaction decided for a tail entry.
enum : uint8_t { kNew = 0, kInPlace = 1, kReplaces = 2 };

}  // namespace

void RunBuffer::release() {
  std::free(data_);
  data_ = nullptr;
  size_ = capacity_ = 0;
}

void RunBuffer::resize_capacity(size_t n) {
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

// A position in a run, moved forward by key: through the run's index when
// it has one (a sequential scan of prefixes that stay in cache), else from
// entry to entry.
class PartitionBucket::Cursor {
 public:
  explicit Cursor(const Run& run) : run_(run) {}
  // Moves to the first entry whose key is not below `key`; whether it is `key`.
  bool seek(std::string_view key, uint64_t prefix) {
    const std::byte* p = run_.bytes.data();
    const size_t size = run_.bytes.size();
    if (!run_.offset.empty()) {
      const size_t n = run_.offset.size();
      while (i_ < n && (run_.prefix[i_] < prefix ||
                        (run_.prefix[i_] == prefix && compare_keys(run_entry_key(p + run_.offset[i_]), key) < 0))) {
        ++i_;
      }
      at_ = i_ < n ? run_.offset[i_] : size;
      return i_ < n && run_.prefix[i_] == prefix && run_entry_key(p + at_) == key;
    }
    int c = -1;
    while (at_ < size && (c = compare_keys(run_entry_key(p + at_), key)) < 0) at_ += run_entry_size(p + at_);
    return at_ < size && c == 0;
  }
  size_t at() const { return at_; }

 private:
  const Run& run_;
  size_t i_ = 0;
  size_t at_ = 0;
};

void PartitionBucket::index(Run& run) {
  run.prefix.clear();
  run.offset.clear();
  if (run.bytes.size() < kIndexMinBytes) return;
  const std::byte* p = run.bytes.data();
  for (size_t at = 0; at < run.bytes.size(); at += run_entry_size(p + at)) {
    run.prefix.push_back(key_prefix(run_entry_key(p + at)));
    run.offset.push_back(static_cast<uint32_t>(at));
  }
}

size_t PartitionBucket::run_bytes() const {
  size_t n = 0;
  for (const Run& r : runs_) n += r.bytes.size();
  return n;
}

void PartitionBucket::recount() {
  bytes_ = tail_.capacity();
  for (const Run& r : runs_) bytes_ += r.memory();
}

int64_t PartitionBucket::add(const DataEntry& e) {
  const size_t before = bytes_;
  const bool tombstone = e.op == EntryOp::kDelete;
  std::string_view key(reinterpret_cast<const char*>(e.key.data()), e.key.size());
  const size_t n = run_entry_bytes(e);
  const size_t limit = std::max(kTailMinBytes, run_bytes() / kTailShare);
  // The tail holds what it may before the next compaction, no more.
  if (tail_.size() + n > tail_.capacity()) {
    bytes_ -= tail_.capacity();
    tail_.reserve(std::max(tail_.size() + n, limit));
    bytes_ += tail_.capacity();
  }
  store_run_entry(tail_.append(n), key, e.value, e.write_version, tombstone);
  ++tail_entries_;
  if (tail_.size() >= limit) compact();
  return static_cast<int64_t>(bytes_) - static_cast<int64_t>(before);
}

int64_t PartitionBucket::compact() {
  if (tail_entries_ == 0) return 0;
  const size_t before = bytes_;
  thread_local std::vector<TailRef> refs;
  thread_local std::vector<uint8_t> fate;
  refs.clear();
  refs.reserve(tail_entries_);
  const std::byte* base = tail_.data();
  for (size_t at = 0; at < tail_.size(); at += run_entry_size(base + at)) {
    refs.push_back({key_prefix(run_entry_key(base + at)), static_cast<uint32_t>(at), static_cast<uint32_t>(refs.size())});
  }
  std::sort(refs.begin(), refs.end(), [&](const TailRef& a, const TailRef& b) {
    if (a.prefix != b.prefix) return a.prefix < b.prefix;
    int c = compare_keys(run_entry_key(base + a.offset), run_entry_key(base + b.offset));
    return c != 0 ? c < 0 : a.seq < b.seq;
  });
  // The tail's newest entry per key, in key order.
  size_t unique = 0;
  for (size_t i = 0; i < refs.size(); ++i) {
    const bool superseded = i + 1 < refs.size() && refs[i + 1].prefix == refs[i].prefix &&
                            run_entry_key(base + refs[i + 1].offset) == run_entry_key(base + refs[i].offset);
    if (!superseded) refs[unique++] = refs[i];
  }
  refs.resize(unique);
  fate.assign(unique, kNew);
  // Each key's newest holder among the runs, newest run first.
  for (size_t r = runs_.size(); r-- > 0;) {
    Run& run = runs_[r];
    Cursor cursor(run);
    for (size_t i = 0; i < unique; ++i) {
      if (fate[i] != kNew) continue;
      if (!cursor.seek(run_entry_key(base + refs[i].offset), refs[i].prefix)) continue;
      std::byte* old = run.bytes.data() + cursor.at();
      const size_t n = run_entry_size(base + refs[i].offset);
      if (run_entry_size(old) == n) {
        std::memcpy(old, base + refs[i].offset, n);
        fate[i] = kInPlace;
      } else {
        dead_bytes_ += run_entry_size(old);
        fate[i] = kReplaces;
      }
    }
  }
  // The rest, a new run.
  Run fresh;
  size_t fresh_bytes = 0;
  for (size_t i = 0; i < unique; ++i) {
    if (fate[i] != kInPlace) fresh_bytes += run_entry_size(base + refs[i].offset);
  }
  if (fresh_bytes > 0) {
    fresh.bytes.reserve(fresh_bytes);
    for (size_t i = 0; i < unique; ++i) {
      if (fate[i] != kInPlace) copy_entry(base + refs[i].offset, fresh.bytes);
    }
    index(fresh);
    runs_.push_back(std::move(fresh));
  }
  tail_.clear();
  tail_entries_ = 0;
  // Small runs are merged at once: copying them costs less than walking
  // several at every compaction.
  const size_t total = run_bytes();
  const size_t max_runs = total < kIndexMinBytes ? 1 : kMaxRuns;
  if (runs_.size() > max_runs || dead_bytes_ > std::max(kTailMinBytes, (total - dead_bytes_) / kDeadShare)) merge_runs();
  recount();
  return static_cast<int64_t>(bytes_) - static_cast<int64_t>(before);
}

// The runs as one, dead entries gone.
void PartitionBucket::merge_runs() {
  if (runs_.size() <= 1 && dead_bytes_ == 0) return;
  std::vector<ByteSpan> spans;
  for (const Run& r : runs_) spans.push_back(r.bytes.span());
  Run merged;
  merged.bytes.reserve(run_bytes() - dead_bytes_);
  merge_sorted_runs(spans, merged.bytes);
  index(merged);
  runs_.clear();
  runs_.push_back(std::move(merged));
  dead_bytes_ = 0;
}

RunBuffer PartitionBucket::take() {
  compact();
  merge_runs();
  RunBuffer out = runs_.empty() ? RunBuffer{} : std::move(runs_.front().bytes);
  runs_.clear();
  tail_.release();
  dead_bytes_ = 0;
  recount();
  return out;
}

void merge_sorted_runs(std::span<const ByteSpan> runs, RunBuffer& out) {
  std::vector<size_t> at(runs.size(), 0);
  for (;;) {
    // The smallest key among the runs' heads, and the last run holding it.
    int best = -1;
    std::string_view best_key;
    for (size_t r = 0; r < runs.size(); ++r) {
      if (at[r] >= runs[r].size()) continue;
      std::string_view k = run_entry_key(runs[r].data() + at[r]);
      if (best < 0 || compare_keys(k, best_key) <= 0) {
        best = static_cast<int>(r);
        best_key = k;
      }
    }
    if (best < 0) return;
    copy_entry(runs[best].data() + at[best], out);
    for (size_t r = 0; r < runs.size(); ++r) {
      if (at[r] < runs[r].size() && run_entry_key(runs[r].data() + at[r]) == best_key) {
        at[r] += run_entry_size(runs[r].data() + at[r]);
      }
    }
  }
}

}  // namespace walcut
