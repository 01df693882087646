// The replay pipeline: one node's WAL segments of increments 1..N, read in
// order, decoded and filtered through the consistent cut on every thread,
// and handed to a sink, each partition's entries in WAL order
// (docs/architecture.md, "The path of a block").
//
// One worker per thread, each taking the next step there is: apply its
// own apply group's part of the next batch (a partition belongs to one
// group, and a group's parts go to the worker of the same number, so a
// partition's entries stay in one core's cache), else read the next batch
// (one reader at a time: CRC, LZ4, records, the cut filter, entries sorted
// into groups, on the thread the kernel copied the bytes on), else apply
// another group's next part, else wait. Each group applies the batches in
// WAL order: sink.apply_many() (docs/restore.md, "The pipeline").
//
// Memory in flight: at most 2 * threads + 2 batches of up to 1 MiB of
// blocks each, their decompressed payloads and their entries' views, plus
// the reader's buffers (queue depth x chunk size).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "cut/replay_filter.h"
#include "engine/group.h"
#include "engine/snapshot.h"
#include "io/chunk_reader.h"
#include "replay/sink.h"

namespace walcut {

// Where a restore, a replay or a check stands, for a progress display.
struct ReplayProgress {
  const char* phase = "replay";  // restore: "verify", "replay", "finish", "publish"; check: "check"
  std::string node;              // the node whose work was counted last; empty: none in particular
  uint64_t bytes_done = 0;       // of this phase
  uint64_t bytes_total = 0;      // of this phase; replay: the blocks up to each node's FINISH
  uint64_t entries = 0;          // replay: entries applied; finish: entries written
};

struct ReplayOptions {
  unsigned threads = 0;             // 0: every core
  ReadOptions io;                   // io.on_chunk sees the segments as the replay reads them, in order
  std::vector<std::string> groups;  // only these cache groups (empty: all)
  std::function<void(const ReplayProgress&)> progress;  // from a reading thread
  const std::atomic<bool>* cancel = nullptr;            // set to stop; the result is kCancelled
  // After a batch, when pause_due() says so (asked before the next batch
  // is applied, while others apply, and after the last), the replay waits
  // for every batch before to be applied and calls at_pause() with no
  // apply running: the built-in restore spills its buckets here when they
  // pass its budget.
  std::function<bool()> pause_due;
  std::function<Status()> at_pause;
  // Read the node's segments newest first, each front to back, into a
  // sink that takes them so (ReplaySink::takes_newest_first; else WAL
  // order): the sink keeps a key's entry of the newest segment and copies
  // nothing for the older ones. Batches then end at segment ends, and a
  // pause waits for the next segment to begin (each spill holds whole
  // segments, newer than what follows).
  bool newest_first = false;
};

struct ReplayReport {
  uint64_t segments = 0;
  uint64_t blocks = 0;
  uint64_t records = 0;
  uint64_t entries_applied = 0;
  uint64_t entries_filtered = 0;  // outside the cut, or of groups not asked for
  uint64_t bytes_read = 0;
  std::string io_engine;
  // Workers the replay ran (of several replays, the most): the threads
  // asked for, at most as many as oneTBB's arena runs at once.
  unsigned workers = 0;
  // Batches the replay allocated (of several replays, the most): at most
  // twice the 2 * workers + 2 that may be read and not yet applied at
  // once, however long the WAL.
  unsigned batches = 0;

  void add(const ReplayReport& o);
};

// The segments of one node's increments 1..N, as a restore reads them.
struct NodeWal {
  uint16_t node_index = 0;
  std::string node_id;  // for progress
  uint64_t cluster_id = 0;
  std::vector<std::string> segment_paths;  // in order
  uint64_t segment_bytes = 0;              // their sizes, summed
};

// The block bytes a replay of `inc` reads up to its FINISH block: every
// segment but the last whole (less its header), the last up to the end of
// the FINISH block (ReplayFilter::finish_block_end). Exact but for the
// zeros after each earlier segment's SEGMENT_END, which the replay takes
// off the total (ProgressHub::trim) as it reaches them.
uint64_t bytes_to_finish(const NodeIncrements& inc, const ReplayFilter& filter);

// Progress of the nodes a restore replays at once: counted from every
// pipeline, reported from whichever reading thread finds the callback free.
class ProgressHub {
 public:
  ProgressHub(const std::function<void(const ReplayProgress&)>& fn, const char* phase, uint64_t bytes_total)
      : fn_(fn), phase_(phase), bytes_total_(bytes_total) {}
  // Counts `bytes` done for `node` and reports, unless another thread is reporting.
  void read(uint64_t bytes, const std::string& node);
  void applied(uint64_t entries) { applied_ += entries; }
  // Takes bytes that will not be read (a segment's zeros after SEGMENT_END) off the total.
  void trim(uint64_t bytes) { bytes_total_ -= bytes; }
  // Adds bytes to read again (a restore's later pass over a WAL) to the total.
  void grow(uint64_t bytes) { bytes_total_ += bytes; }
  // Counts `bytes` done without reporting (work beside another hub's).
  void count(uint64_t bytes) { bytes_read_ += bytes; }
  // Reports now, waiting for the callback if another thread holds it.
  void report();

 private:
  void call(const std::string& node);

  const std::function<void(const ReplayProgress&)>& fn_;
  const char* phase_;
  std::atomic<uint64_t> bytes_total_;
  std::atomic<uint64_t> bytes_read_{0}, applied_{0};
  std::mutex mu_;
};

// Whether every name of `names` is a group of `groups`: kInvalidArgument
// naming the first that is not, and the snapshot directory.
Status check_group_names(const std::vector<std::string>& names, const std::vector<CacheGroup>& groups,
                         const std::string& snapshot_dir);

// Node `node_index`'s metadata of the full snapshot at `snapshot_dir`, with
// `groups` checked against its cache groups (check_group_names). A node the
// snapshot does not have is kNotFound.
Result<SnapshotMeta> read_node_snapshot_meta(const std::string& snapshot_dir, uint16_t node_index,
                                             const std::vector<std::string>& groups);

// Replays node `node_index`'s increments 1..n of a snapshot into `sink`:
// the library's way to restore into a store of one's own, after
// load_snapshot_node() (replay/snapshot_load.h). The sink's begin() comes
// first. n = 0 is the full snapshot alone: the snapshot, node and groups
// are checked, begin() is called, and nothing is replayed.
Status replay_node(const std::string& snapshot_dir, uint64_t n, uint16_t node_index, ReplaySink& sink,
                   const ReplayOptions& options, ReplayReport& report);

// Replays `wal` through `filter` into `sink`. Fails with kCorruption, naming
// the segment and offset, on any damaged block, and when the WAL ends
// before the filter's FINISH record.
Status replay_wal(const NodeWal& wal, const ReplayFilter& filter, const std::vector<CacheGroup>& groups,
                  ReplaySink& sink, const ReplayOptions& options, ProgressHub& progress, ReplayReport& report);

}  // namespace walcut
