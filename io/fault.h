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
// Turns crashing off.
void disarm();

// A named crash point in a write path.
void point(const char* name);
// How many of `n` bytes the next write may write before the process dies
// (n when no crash is due). Call crash_now() after writing that many.
size_t writable_bytes(size_t n);
[[noreturn]] void crash_now();

}  // namespace walcut::fault
