// The walcut CLI run as a child process, for what walcut_restore_bench
// cannot measure in its own process: the peak RSS of a restore (wait4's
// ru_maxrss, free of the bench's own allocations) and a restore under a
// cgroup v2 memory limit. Also the byte-for-byte comparison of two
// restored trees, and the restored partition files' bytes.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/status.h"

namespace walcut::bench {

struct ChildRun {
  double wall_s = 0;            // fork to wait4
  bool exited = false;          // exited normally; otherwise killed by `signal`
  int exit_code = -1;
  int signal = 0;
  uint64_t max_rss_bytes = 0;   // ru_maxrss of the child
  std::string stdout_text;
  std::string stderr_text;
  // "exit 0", "killed by signal 9 (Killed)"
  std::string describe() const;
};

// A cgroup v2 made for one child, with memory.max set; removed (rmdir) on
// destruction.
class MemoryCgroup {
 public:
  // Where a child cgroup gets the memory controller: the cgroup v2 mount
  // when it hands `memory` to its children, else this process's own
  // cgroup in the v1 memory hierarchy; or an error saying why neither.
  static Result<std::string> find_root();
  // Makes ROOT/NAME limited to `memory_max_bytes` (v2 memory.max with
  // memory.swap.max = 0; v1 memory.limit_in_bytes and memsw at the same),
  // so the limit is not met by swapping.
  static Result<std::unique_ptr<MemoryCgroup>> create(const std::string& root, const std::string& name,
                                                      uint64_t memory_max_bytes);
  ~MemoryCgroup();
  MemoryCgroup(const MemoryCgroup&) = delete;
  MemoryCgroup& operator=(const MemoryCgroup&) = delete;

  const std::string& dir() const { return dir_; }
  uint64_t memory_peak_bytes() const;  // memory.peak (v1 max_usage_in_bytes); 0 where absent
  uint64_t oom_kills() const;          // `oom_kill` of memory.events (v1 memory.oom_control)

 private:
  MemoryCgroup(std::string dir, bool v1) : dir_(std::move(dir)), v1_(v1) {}
  std::string dir_;
  bool v1_;
};

// Forks the process that starts the children of run_child(). Call it
// first thing, before threads and large allocations: a child's ru_maxrss
// includes the resident memory of the process it is forked from, so that
// one must stay small. The spawner ends when this process does.
Status start_spawner();

// Runs argv[0] with `argv` through the spawner, its stdout and stderr into
// files under `scratch_dir` (read back into the result), inside `cgroup`
// when not null: the child moves itself in before exec, so nothing it
// allocates is charged elsewhere. An error only when the child could not
// be started.
Result<ChildRun> run_child(const std::vector<std::string>& argv, const std::string& scratch_dir,
                           const MemoryCgroup* cgroup);

// `CLI snapshot restore --help`: its text says which flags the CLI has,
// its peak RSS is the floor under every child's.
Result<ChildRun> restore_help(const std::string& cli, const std::string& scratch_dir);

// The first difference between trees `a` and `b` ("path: what differs"), or
// "" when they hold the same directories and files, byte for byte, leaving
// out the relative path `skip` in both.
Result<std::string> first_tree_difference(const std::string& a, const std::string& b, const std::string& skip);

// Bytes of the partition files of a restored cluster directory: every
// regular file under `DEST/<node>/db/`.
Result<uint64_t> restored_partition_bytes(const std::string& dest);

}  // namespace walcut::bench
