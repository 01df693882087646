// Shared by restore and check: how many threads a call uses, running one
// task per node a bounded number at a time, and the first error of many
// threads.
#pragma once

#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/task_arena.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <utility>

#include "io/status.h"

namespace walcut {

// `threads`, or every thread of the current oneTBB arena when 0.
inline unsigned thread_count(unsigned threads) {
  return threads > 0 ? threads : static_cast<unsigned>(std::max(1, tbb::this_task_arena::max_concurrency()));
}

// f(), its oneTBB work on at most `threads` threads (0: all of the
// current arena's), in an arena of its own, no larger than the current
// one. Not a tbb::global_control: destroying one starts the default's
// threads again, and when none can be started (out of memory, the very
// exception that ended f() unwinding through it) oneTBB throws from its
// destructor and the process ends.
template <typename F>
auto with_threads(unsigned threads, F&& f) -> decltype(f()) {
  if (threads == 0) return f();
  tbb::task_arena arena(static_cast<int>(std::min(threads, thread_count(0))));
  return arena.execute(std::forward<F>(f));
}

// fn(i) for every i in [0, n), at most `width` at a time. Each wave is one
// parallel_for, so a thread that steals work while its own call waits on
// nested oneTBB work can only start another task of the same wave: the
// memory of `width` tasks bounds what is in flight.
// `after_wave(from, to)` runs once each wave [from, to) is done; its first
// error ends the waves and is returned.
template <typename Fn, typename After>
Status for_each_in_waves(size_t n, size_t width, const Fn& fn, const After& after_wave) {
  width = std::max<size_t>(width, 1);
  for (size_t from = 0; from < n; from += width) {
    const size_t to = std::min(n, from + width);
    tbb::parallel_for(from, to, fn);
    WALCUT_RETURN_IF_ERROR(after_wave(from, to));
  }
  return {};
}
template <typename Fn>
void for_each_in_waves(size_t n, size_t width, const Fn& fn) {
  (void)for_each_in_waves(n, width, fn, [](size_t, size_t) { return Status{}; });
}

// x % d for 32-bit x and a d fixed once, by two multiplications instead of
// a division (exact: Lemire, Kaser and Kurz, "Faster remainder by direct
// computation", 2019). Routing each decoded entry to its apply group with
// `%` spent most of the decode's time waiting on the divider.
class Remainder {
 public:
  explicit Remainder(uint32_t d) : d_(d), m_(UINT64_MAX / d + 1) {}  // d = 1: m_ wraps to 0, and x % 1 = 0
  uint32_t of(uint32_t x) const { return static_cast<uint32_t>((static_cast<unsigned __int128>(m_ * x) * d_) >> 64); }

 private:
  uint64_t d_;
  uint64_t m_;
};

// The first error of many threads.
class FirstError {
 public:
  void set(Status s) {
    std::lock_guard<std::mutex> lock(mu_);
    if (status_.ok() && !s.ok()) status_ = std::move(s);
  }
  bool failed() const {
    std::lock_guard<std::mutex> lock(mu_);
    return !status_.ok();
  }
  Status get() const {
    std::lock_guard<std::mutex> lock(mu_);
    return status_;
  }

 private:
  mutable std::mutex mu_;
  Status status_;
};

}  // namespace walcut
