// Restore: a full snapshot plus increments 1..N replayed through the cut
// filter, published atomically as a cluster directory (docs/restore.md).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "io/chunk_reader.h"
#include "replay/pipeline.h"

namespace walcut {

using RestoreProgress = ReplayProgress;

struct RestoreOptions {
  std::string snapshot_dir;
  uint64_t increment = 0;                // 0: the full snapshot alone
  std::string dest;                      // a cluster directory, published whole
  bool wait = false;                     // another run holds dest's lock: wait for it (else fail at once: busy)
  std::vector<std::string> groups;       // only these (empty: all)
  std::optional<std::string> node;       // only this node's part (ATOMIC repair included)
  unsigned threads = 0;                  // 0: every core
  // The bytes of routed entries held in memory before they are spilled to
  // the staging directory; 0: default_memory_limit_bytes(). Peak memory is
  // this plus the pipeline's bound (docs/restore.md, "Memory").
  uint64_t memory_limit = 0;
  ReadOptions io;
  std::function<void(const RestoreProgress&)> progress;  // from a reading thread
  const std::atomic<bool>* cancel = nullptr;             // set to stop; the result is kCancelled
  // Read and verify everything the restore would read, write nothing (no
  // dest, lock or staging): restore_snapshot() reports what it would restore.
  bool dry_run = false;
};

struct RestoreReport {
  uint64_t nodes = 0;
  uint64_t partition_files = 0;    // written
  uint64_t segments = 0;
  uint64_t blocks = 0;
  uint64_t records = 0;
  uint64_t entries_applied = 0;    // routed to the restored copies
  uint64_t entries_filtered = 0;   // outside the cut, or of groups not asked for
  uint64_t atomic_repaired = 0;    // entries of restored ATOMIC copies changed to the newest version
  uint64_t bytes_read = 0;         // WAL blocks of the restored nodes
  uint64_t peer_nodes = 0;         // nodes read only for their ATOMIC copies (--node)
  uint64_t peer_bytes_read = 0;
  uint64_t memory_limit = 0;       // the budget used
  uint64_t routed_bytes_peak = 0;  // routed entries held in memory at most
  uint64_t spill_files = 0;
  uint64_t spilled_bytes = 0;
  double verify_s = 0, replay_s = 0, finish_s = 0, publish_s = 0;  // publish: RESTORED, sync, rename
  bool already_restored = false;   // dest held this very restore already
  bool dry_run = false;            // nothing written: partition_files counts the files a restore would write
  uint64_t groups = 0;             // cache groups restored
  uint64_t partitions = 0;         // (group, partition) pairs the restored nodes hold copies of
  uint64_t partition_bytes = 0;    // the snapshot's partition files read
  std::string io_engine;
};

// The whole restore into options.dest (docs/restore.md): verify, replay
// (routing entries to their partition copies, spilling past the memory
// limit), finish each partition (merge with its snapshot file, ATOMIC
// repair, write), sync, publish. One run at a time per dest (an flock on
// "<dest>.lock"; another run is an I/O error, "busy", unless `wait`). A
// crash leaves dest absent or complete; running again succeeds. A dest
// that holds this restore is verified against what its RESTORED file
// records before "already restored" is believed. With `dry_run`: the same
// reads and checks (the first damage is the error), then the report; dest
// is not looked at.
Result<RestoreReport> restore_snapshot(const RestoreOptions& options);

}  // namespace walcut
