#include "replay/partition_bucket.h"

#include <algorithm>
#include <cassert>
#include <vector>

namespace walcut {
namespace {

// A tail entry while it is sorted: the key's first 8 bytes, big-endian, so
// most comparisons are one integer compare; ties go to the bytes, then to
// the WAL order.
struct TailRef {
  uint64_t prefix;
  uint32_t offset;
  uint32_t seq;  // kDone once written into the run
};
constexpr uint32_t kDone = ~0u;

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

}  // namespace

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

int64_t PartitionBucket::add(const DataEntry& e) {
  const size_t before = bytes();
  const bool tombstone = e.op == EntryOp::kDelete;
  std::string_view key(reinterpret_cast<const char*>(e.key.data()), e.key.size());
  const size_t n = run_entry_bytes(e);
  const size_t limit = std::max(kTailMinBytes, sorted_.size() / kTailShare);
  // The tail holds what it may before the next compaction, no more.
  if (tail_.size() + n > tail_.capacity()) tail_.reserve(std::max(tail_.size() + n, limit));
  store_run_entry(tail_.append(n), key, e.value, e.write_version, tombstone);
  ++tail_entries_;
  int64_t delta = static_cast<int64_t>(bytes()) - static_cast<int64_t>(before);
  if (tail_.size() >= limit) delta += compact();
  return delta;
}

int64_t PartitionBucket::compact() {
  if (tail_entries_ == 0) return 0;
  const size_t before = bytes();
  thread_local std::vector<TailRef> refs;
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
  // A key the run holds in an entry of the same size is overwritten where
  // it is: replay is mostly updates of values of one size, and those then
  // cost no copy of the run. The rest (new keys, other sizes, deletes of
  // live keys) is merged below.
  std::byte* run = sorted_.data();
  size_t at = 0, pending = 0;
  for (TailRef& r : refs) {
    std::string_view key = run_entry_key(base + r.offset);
    int c = -1;
    while (at < sorted_.size() && (c = compare_keys(run_entry_key(run + at), key)) < 0) at += run_entry_size(run + at);
    const size_t n = run_entry_size(base + r.offset);
    if (at < sorted_.size() && c == 0 && run_entry_size(run + at) == n) {
      std::memcpy(run + at, base + r.offset, n);
      r.seq = kDone;
    } else {
      ++pending;
    }
  }
  if (pending == 0) {
    tail_.clear();
    tail_entries_ = 0;
    return static_cast<int64_t>(bytes()) - static_cast<int64_t>(before);
  }
  // Merged with the run into a buffer of this thread's (it only grows),
  // then copied back: the run's own buffer grows in steps of 1/kTailShare,
  // so a compaction rarely asks the allocator for anything.
  thread_local RunBuffer out;
  out.clear();
  out.reserve(sorted_.size() + tail_.size());
  at = 0;
  for (const TailRef& r : refs) {
    if (r.seq == kDone) continue;
    std::string_view key = run_entry_key(base + r.offset);
    int c = -1;
    while (at < sorted_.size() && (c = compare_keys(run_entry_key(run + at), key)) < 0) {
      copy_entry(run + at, out);
      at += run_entry_size(run + at);
    }
    if (at < sorted_.size() && c == 0) at += run_entry_size(run + at);  // replaced
    copy_entry(base + r.offset, out);
  }
  if (at < sorted_.size()) std::memcpy(out.append(sorted_.size() - at), run + at, sorted_.size() - at);
  if (out.size() > sorted_.capacity()) {
    sorted_.clear();
    sorted_.reserve(out.size() + out.size() / kTailShare);
  }
  sorted_.clear();
  std::memcpy(sorted_.append(out.size()), out.data(), out.size());
  tail_.clear();
  tail_entries_ = 0;
  return static_cast<int64_t>(bytes()) - static_cast<int64_t>(before);
}

RunBuffer PartitionBucket::take() {
  compact();
  tail_.release();
  return std::move(sorted_);
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
