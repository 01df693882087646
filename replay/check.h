// Snapshot check (docs/check.md): structure, full snapshot data and
// increment data, as a map per node and a reduce over the maps, so each
// host of a real cluster can map its own part and one host reduces.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "engine/group.h"
#include "engine/partition_file.h"
#include "io/chunk_reader.h"
#include "replay/pipeline.h"

namespace walcut {

// A finding: what is wrong, where, and the two hashes when copies differ.
struct Finding {
  std::string kind;    // "structure", "partition", "increment-partition", "transactions", "partially-committed"
  std::string where;   // file, or node / group / partition
  std::string detail;
  std::string file;               // the file it is about; empty when it is about no one file
  std::optional<uint64_t> offset;  // the byte offset in `file` that `detail` names, when it names one
};

// Comparisons the reduce left out because a map lacks what they need.
struct NotCompared {
  std::string where;               // a node (all its comparisons of `kinds`), or "<group> partition <p>"
  std::vector<std::string> kinds;  // "partition", "increment-partition", "transactions"
  std::string why;
};

// The map result of one node. Order-independent hashes only.
struct NodeCheck {
  uint16_t node_index = 0;
  std::string node_id;
  uint64_t increment = 0;
  bool increments_read = false;  // increments 1..increment read to the end: incremental and tx are whole
  std::vector<Finding> findings;                          // structure problems found by the map
  std::map<PartitionId, PartitionHashes> full;            // this node's copies in the full snapshot
  std::map<PartitionId, PartitionHashes> incremental;     // entries restored from increments 1..N (TRANSACTIONAL)
  std::map<uint16_t, uint64_t> tx_hash;                   // other primary -> hash of transactions both were primaries of
  std::map<uint16_t, uint64_t> tx_count;
  std::vector<std::string> baseline;                      // for the reduce's affinity
  std::vector<CacheGroup> groups;
  uint64_t files = 0, segments = 0, entries = 0, bytes_read = 0;
  // The first file walcut could not read for a reason of its own process
  // or user (permissions, its limits on open files or memory), which says
  // nothing of the snapshot: the map fails with it (exit 3) instead of
  // reporting a finding. Not in map files.
  Status unreadable;
};

struct CheckOptions {
  std::string snapshot_dir;
  std::optional<uint64_t> increment;  // also check increments 1..N
  ReadOptions io;
  unsigned threads = 0;
  // Phase "check": the partition files and the segments up to each FINISH
  // read so far, of every node mapped; from the reading threads.
  std::function<void(const ReplayProgress&)> progress;
};

struct CheckReport {
  std::vector<NodeCheck> nodes;
  std::vector<Finding> findings;  // map findings and reduce conflicts
  std::vector<NotCompared> not_compared;
  double seconds = 0;
  uint64_t bytes_read = 0;
  bool clean() const { return findings.empty(); }
};

// The map of one node (by id). Fails only when the snapshot cannot be
// checked at all (no metadata); damage is reported as findings.
Result<NodeCheck> map_node(const CheckOptions& o, const std::string& node_id);
// Compares copies and node pairs across the maps.
CheckReport reduce_checks(std::vector<NodeCheck> maps);
// Map every node, then reduce.
Result<CheckReport> check_snapshot(const CheckOptions& o);

// The map result as JSON text, and back (for --map-out / --reduce).
std::string node_check_to_json(const NodeCheck& c);
Result<NodeCheck> node_check_from_json(const std::string& text, const std::string& what);

}  // namespace walcut
