// Restore: a full snapshot plus increments 1..N replayed through the cut
// filter, published atomically as a cluster directory.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "cut/replay_filter.h"
#include "engine/increment.h"
#include "engine/snapshot.h"
#include "io/chunk_reader.h"
#include "replay/sink.h"

namespace walcut {

struct RestoreProgress {
  uint64_t bytes_read = 0;
  uint64_t bytes_total = 0;  // of the segments to replay
  uint64_t entries_applied = 0;
};

struct RestoreOptions {
  std::string snapshot_dir;
  uint64_t increment = 0;                // 0: the full snapshot alone
  std::string dest;                      // a cluster directory, published whole
  bool wait = false;                     // another run holds dest's lock: wait for it (else fail at once: busy)
  std::vector<std::string> groups;       // only these (empty: all)
  std::optional<std::string> node;       // only this node's part
  unsigned threads = 0;                  // 0: every core
  ReadOptions io;
  std::function<void(const RestoreProgress&)> progress;  // from the reading thread
  const std::atomic<bool>* cancel = nullptr;             // set to stop; the result is kCancelled
};

struct RestoreReport {
  uint64_t nodes = 0;
  uint64_t partition_files = 0;
  uint64_t segments = 0;
  uint64_t blocks = 0;
  uint64_t records = 0;
  uint64_t entries_applied = 0;
  uint64_t entries_filtered = 0;   // outside the cut, or of groups not asked for
  uint64_t atomic_repaired = 0;    // ATOMIC copies changed to the newest version
  uint64_t bytes_read = 0;
  double verify_s = 0, load_s = 0, replay_s = 0, repair_s = 0, checkpoint_s = 0, publish_s = 0;
  bool already_restored = false;   // dest held this very restore already
  std::string io_engine;
};

// The replay filter of node `node_index` for increment `n` (n >= 1): reads
// its FINISH record for the included and excluded sets.
Result<ReplayFilter> load_replay_filter(const std::string& snapshot_dir, uint64_t n, uint16_t node_index,
                                        const ReadOptions& io);

// Replays one node's increments 1..n into `sink` through the filter.
// Blocks are read in order, decoded and filtered on all threads, and
// applied in WAL order per partition. Memory in flight: at most
// `tokens` batches of up to 1 MiB of blocks each, plus their decompressed
// payloads.
Status replay_node(const std::string& snapshot_dir, uint64_t n, uint16_t node_index, ReplaySink& sink,
                   const RestoreOptions& options, RestoreReport& report);

// The whole restore into options.dest (see docs/restore.md): verify, load,
// replay, repair ATOMIC groups, checkpoint, publish. One run at a time per
// dest (an flock on "<dest>.lock"; another run is an I/O error, "busy",
// unless `wait`). A crash leaves dest absent or complete; running again
// succeeds. A dest that holds this restore is verified against what its
// RESTORED file records before "already restored" is believed.
Result<RestoreReport> restore_snapshot(const RestoreOptions& options);

}  // namespace walcut
