// Crash points for tests: a process that is told to die at a named point,
// or after a number of written bytes, ends there with _exit, leaving its
// files as a power cut or kill would (the torn write included).
//
// Off by default; each check costs one relaxed atomic load.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace walcut::fault {

inline constexpr int kCrashExitCode = 86;

// Dies at the `count`-th time `point(name)` is reached (1 = the first).
void crash_at_point(const std::string& name, uint64_t count = 1);
// Dies inside the write that reaches `bytes` written bytes in total, after
// writing only the part before that limit.
void crash_after_bytes(uint64_t bytes);
// The same tear without ending the process, for a simulation that kills
// one node of many in this process: the write that reaches `bytes` writes
// only its part before the limit and fails, and so does every later write
// (writing nothing) until disarm(): the writer is dead from there on.
void tear_after_bytes(uint64_t bytes);
// Whether a tear_after_bytes() limit was reached since it was armed.
bool torn();
// Turns crashing off.
void disarm();

// A named crash point in a write path.
void point(const char* name);
// How many of `n` bytes the next write may write before the process dies
// (n when no crash is due). Call crash_now() after writing that many.
size_t writable_bytes(size_t n);
[[noreturn]] void crash_now();
// After writing writable_bytes() of a write: true when the process is to
// die (crash_after_bytes), false when the write is to fail (tear_after_bytes).
bool tear_is_fatal();

// An allocation that fails, for tests of running out of memory: the
// `count`-th time allocation_fails(name) is asked (1 = the first), it
// says yes, once. Independent of the crash points above.
void fail_allocation_at(const std::string& name, uint64_t count = 1);
// Whether the allocation at this named point is to fail (the caller
// throws std::bad_alloc, or takes the path of a null from malloc).
bool allocation_fails(const char* name);

}  // namespace walcut::fault
