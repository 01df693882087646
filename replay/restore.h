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
  // this plus the pipeline's bound (docs/restore.md, "Memory"). Each spill
  // file holds a descriptor until it is read back: a restore of data far
  // past the budget needs the process's limit on open files raised (the
  // CLI raises its soft limit to the hard one).
  uint64_t memory_limit = 0;
  // How many times a node's WAL may be read: past the budget, a pass
  // before the last drops its fullest copies for the next to read again,
  // the last spills (docs/restore.md, "Passes"). 0 or 1: once, spilling.
  // Each pass finishes at least half of the copies it routes.
  unsigned max_passes = 1;
  // The order each node's segments are replayed in (docs/restore.md,
  // "Newest first"); the restored tree is the same either way. kAuto:
  // newest first while far from the budget (a spill waits for a segment's
  // end there), else in WAL order.
  enum class Order { kAuto, kNewestFirst, kWalOrder };
  Order replay_order = Order::kAuto;
  ReadOptions io;
  std::function<void(const RestoreProgress&)> progress;  // from a reading thread
  const std::atomic<bool>* cancel = nullptr;             // set to stop; the result is kCancelled
  // Read and verify everything the restore would read, write nothing (no
  // dest, lock or staging): restore_snapshot() reports what it would restore,
  // and refuses a dest the restore would refuse.
  bool dry_run = false;
};

struct RestoreReport {
  std::string snapshot_dir;        // as the options name them
  uint64_t increment = 0;
  std::string dest;
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
  unsigned replay_passes = 0;  // the most times a node's WAL was read (0: none was; docs/restore.md, "Passes")
  uint64_t reread_bytes = 0;   // the restored nodes' WAL blocks read again by later passes (peers': in peer_bytes_read)
  unsigned nodes_at_once = 0;  // nodes' WALs replayed side by side (docs/restore.md, step 3; 0: none was read)
  bool newest_first = false;   // the WALs were replayed newest segment first (RestoreOptions::replay_order)
  double verify_s = 0, replay_s = 0, finish_s = 0, publish_s = 0;  // publish: RESTORED, sync, rename
  double total_s = 0;              // the whole call
  bool already_restored = false;   // dest held this very restore already (a dry run: would do nothing)
  bool dry_run = false;            // nothing written: partition_files counts the files a restore would write
  uint64_t groups = 0;             // cache groups restored
  uint64_t partitions = 0;         // (group, partition) pairs the restored nodes hold copies of
  uint64_t partition_bytes = 0;    // the snapshot's partition files read
  std::string io_engine;

  // The replay's rates: WAL block bytes (in MiB, 2^20 bytes) and entries applied, per second.
  double replay_mib_per_s() const { return replay_s > 0 ? static_cast<double>(bytes_read) / (1 << 20) / replay_s : 0; }
  double replay_entries_per_s() const { return replay_s > 0 ? static_cast<double>(entries_applied) / replay_s : 0; }
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
// is read only to refuse what the restore would refuse. What the options
// ask of the snapshot (--node, --groups, the increment) is checked before
// anything is created.
Result<RestoreReport> restore_snapshot(const RestoreOptions& options);

// The report as JSON text (keys sorted, indented by 2), as `walcut snapshot
// restore --json` prints it: a dry run's report has the keys of a dry run
// (docs/cli.md, "Dry run"), a restore's those of a restore.
std::string to_json(const RestoreReport& report);

}  // namespace walcut
