// How much memory a restore may hold: the default of --memory-limit.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace walcut {

// The machine's physical memory, in bytes.
uint64_t physical_memory_bytes();

// The memory limit of the cgroup this process runs in (cgroup v2
// memory.max, or v1 memory.limit_in_bytes), the smallest along its path
// to the root; nullopt when there is none or it cannot be read.
// `proc_self_cgroup` and `cgroup_root` are for tests.
std::optional<uint64_t> cgroup_memory_limit_bytes(const std::string& proc_self_cgroup = "/proc/self/cgroup",
                                                  const std::string& cgroup_root = "/sys/fs/cgroup");

// Half of the smaller of physical memory and the cgroup's limit.
uint64_t default_memory_limit_bytes();

// What glibc's malloc does with a large block that is freed (its mmap
// threshold, fixed instead of moving with the program's history):
// - kReuse: blocks up to 32 MiB come from its heap, where a freed block is
//   reused: a restore allocates and frees a few buffers the size of a
//   partition for every partition, and fresh pages fault in slowly (fat
//   shape: 0.47x the time, docs/benchmarks.md);
// - kReturn: blocks over 128 KiB are mapped alone and unmapped when freed,
//   so that what a spill frees leaves the process at once: under a tight
//   --memory-limit (96M in a 160 MiB cgroup) the heap's freed blocks kept
//   the process over its cgroup's limit.
// Process-wide, so the library never calls it: the CLI does (kReuse, and
// kReturn for a restore given --memory-limit), a host program decides for
// itself. False where malloc is not glibc's.
enum class FreedMemory { kReuse, kReturn };
bool set_freed_memory(FreedMemory policy);

// Gives the memory malloc holds free back to the system (glibc's
// malloc_trim; nothing elsewhere, nor after set_freed_memory(kReuse)). A
// restore calls it after each spill and each wave of finished partitions:
// the buckets it just freed lie between blocks still in use, in every
// thread's arena, where malloc would keep them resident (under
// --memory-limit 96M, 172 MiB of RSS without it). Under kReuse they are
// kept on purpose: the next node's buckets take them, and a trim of a
// fragmented heap is a madvise, and a TLB flush, per free block (small
// shape: 0.24 s a call).
void return_freed_memory();

}  // namespace walcut
