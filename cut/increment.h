// Incremental snapshots: after a full snapshot, each consistent cut adds an
// increment holding every node's WAL segments since the previous one.
//
// Layout under <snapshots>/<name>/increments/<16-digit index>/:
//   <node id>.smf                  the node's increment metadata and manifest
//   wal/<node id>/<index>.wal      its whole segments, up to the FINISH record's
// docs/snapshot-format.md is the specification.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/snapshot.h"

namespace walcut {

class Cluster;

struct IncrementMeta {
  std::string snapshot_name;
  uint64_t index = 0;   // 1, 2, ...
  uint64_t cut_id = 0;
  uint64_t cluster_id = 0;
  uint16_t node_index = 0;
  std::string node_id;
  std::vector<CacheGroup> groups;
  WalPointer start;     // the node's INC_SNAPSHOT_START record
  WalPointer finish;    // its INC_SNAPSHOT_FINISH record
  uint64_t included_count = 0;
  uint64_t excluded_count = 0;
  uint64_t first_segment = 0;  // the increment's segments, both ends included
  uint64_t last_segment = 0;
  std::vector<ManifestEntry> files;  // wal/<node id>/<index>.wal, by path
  // The file offsets of the blocks holding `start` and `finish`, each in
  // its segment (format version 2); 0: not recorded (version 1), the
  // blocks are found by reading their segments from the start.
  uint64_t start_block = 0;
  uint64_t finish_block = 0;
};

Bytes encode_increment_meta(const IncrementMeta& m);
Result<IncrementMeta> decode_increment_meta(ByteSpan bytes, const std::string& what);
// The directory of increment `index` of a snapshot, and the same relative to
// the snapshot directory ("increments/<16 digits>").
std::string increment_dir(const std::string& snapshot_dir, uint64_t index);
std::string increment_rel_dir(uint64_t index);
// "wal/<node id>": a node's segments in an increment, and
// "wal/<node id>/<16 digits>.wal", one of them (as its manifest spells it).
std::string increment_wal_dir(const std::string& node_id);
std::string increment_segment_path(const std::string& node_id, uint64_t segment);
// The increments a snapshot has: 1..N without gaps, or an error naming the gap.
Result<uint64_t> increment_count(const std::string& snapshot_dir);
// A cut that could not complete (a node crashed while it ran) leaves its
// increment directory holding only this file, whose text says why.
inline constexpr const char* kFailedIncrementFile = "FAILED";
// Why increment `index` failed, or nullopt when it did not.
Result<std::optional<std::string>> increment_failure(const std::string& snapshot_dir, uint64_t index);
// The error that refuses failed increment `index` (kNotFound), naming it and its cut.
Status refuse_failed_increment(const std::string& snapshot_dir, uint64_t index, const std::string& why);
// The .smf files of increment `index`, sorted by node id; a failed
// increment is refused (refuse_failed_increment()). Each file must be of a
// node of the full snapshot's baseline, one file a node: the baseline is
// read from the full snapshot, or given by a caller that has read it.
Result<std::vector<IncrementMeta>> read_increment_metas(const std::string& snapshot_dir, uint64_t index);
Result<std::vector<IncrementMeta>> read_increment_metas(const std::string& snapshot_dir, uint64_t index,
                                                        const std::vector<std::string>& baseline);

struct IncrementReport {
  std::string dir;
  uint64_t index = 0;
  uint64_t cut_id = 0;
  uint64_t segments = 0;
  uint64_t bytes = 0;
  uint64_t included = 0;  // sums over nodes
  uint64_t excluded = 0;
};

// Checks that <snapshots_root>/<name> is a full snapshot of this cluster
// with the same cache groups, and returns the next increment's index.
Result<uint64_t> check_increment_base(Cluster& cluster, const std::string& snapshots_root, const std::string& name);

// Takes an incremental snapshot of the running cluster (immediate message
// delivery): starts a cut, waits until every node has finished it, then
// writes the increment.
Result<IncrementReport> take_incremental_snapshot(Cluster& cluster, const std::string& snapshots_root,
                                                  const std::string& name);

// Writes the increment of cut `cut_id`, which every node has finished:
// copies each node's segments since the previous increment (or the full
// snapshot's CLUSTER_SNAPSHOT segment) up to its FINISH segment into a
// staging directory with the .smf files, fsyncs, renames it in place, and
// lets the nodes drop those segments later.
// Records that cut `cut_id` could not complete: the next increment index
// becomes a failed increment (kFailedIncrementFile saying `why`), which
// restore and check refuse; the next complete increment's segments
// continue from the last complete one's. Returns the index.
Result<uint64_t> write_failed_increment(Cluster& cluster, const std::string& snapshots_root, const std::string& name,
                                        uint64_t cut_id, const std::string& why);

Result<IncrementReport> write_increment(Cluster& cluster, const std::string& snapshots_root, const std::string& name,
                                        uint64_t cut_id);

}  // namespace walcut
