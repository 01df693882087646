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

// Asks glibc's malloc to keep blocks up to 32 MiB in its heap, where a
// freed block is reused, instead of mapping each one over its (moving)
// mmap threshold alone and unmapping it when freed, and to keep up to
// 256 MiB free at the top of its heaps instead of giving it back at 128
// KiB: a restore's finish allocates and frees a few buffers the size of a
// partition for every partition, and fresh pages fault in slowly (fat
// shape: 0.47x the time for the first, 0.86x for the second;
// docs/benchmarks.md). Neither raises the peak much: what is kept is
// reused, and what the verify leaves is given back (below).
// The buckets' memory does not depend on it: it comes in pooled chunks
// (replay/entry_chunks.h). Process-wide, so the library never calls it:
// the CLI does, a host program decides for itself. False where malloc is
// not glibc's.
bool reuse_freed_memory();

// Gives the pages malloc holds free back to the kernel (glibc's
// malloc_trim), whatever the thresholds above. A restore calls it once,
// between the verify and the replay: the verify's buffers, freed in one
// thread's heap, stayed resident while the replay's threads filled
// others (3-4 MB of `small`'s peak with two pipelines). Nothing where
// malloc is not glibc's.
void give_back_free_memory();

}  // namespace walcut
