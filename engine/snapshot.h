// Full snapshots: every node's partitions at one cluster-wide point.
//
// Layout under <snapshots>/<name>/:
//   <node id>.smf                            metadata and manifest of one node
//   db/<node id>/<group>/part-<p>.bin        its partition copies
// docs/snapshot-format.md is the specification.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/node_meta.h"
#include "engine/partition_file.h"

namespace walcut {

class Cluster;

struct ManifestEntry {
  std::string path;  // relative to the snapshot directory
  uint64_t bytes = 0;
  uint32_t crc32c = 0;
  bool operator==(const ManifestEntry&) const = default;
};

// One node's <node id>.smf.
struct SnapshotMeta {
  std::string name;
  uint64_t cluster_id = 0;
  uint16_t node_index = 0;
  std::string node_id;
  std::vector<std::string> baseline;
  std::vector<CacheGroup> groups;
  uint32_t topology_version = 0;
  WalPointer snapshot_pointer;        // the node's CLUSTER_SNAPSHOT record
  std::vector<ManifestEntry> files;   // every file of this node, sorted by path
};

// The metadata of node `node_index` among a snapshot's or an increment's
// (any type with a node_index), or nullptr.
template <typename Meta>
const Meta* find_node_meta(const std::vector<Meta>& metas, uint16_t node_index) {
  for (const Meta& m : metas) {
    if (m.node_index == node_index) return &m;
  }
  return nullptr;
}
// "<node id>.smf": a node's metadata file in a snapshot or an increment.
std::string meta_file_name(const std::string& node_id);
// "db/<node id>": a node's partition files in a snapshot, and
// "db/<node id>/<group>/part-<p>.bin", one of them (as its manifest spells it).
std::string snapshot_db_dir(const std::string& node_id);
std::string snapshot_partition_path(const std::string& node_id, const std::string& group, uint16_t partition);

// `m`'s manifest entry for `rel` (a path relative to the snapshot
// directory, as snapshot_partition_path() spells it), or nullptr.
const ManifestEntry* find_listed(const SnapshotMeta& m, const std::string& rel);
// The file at `path`, of its manifest entry's size: kCorruption naming
// `path` when it differs, found before the file is read (one far larger
// than listed is not read into memory) and again after. A symbolic link
// at `path` is kCorruption, not followed: the restore checked its paths
// for links before, and the file may have been swapped for one since.
Result<Bytes> read_listed_size(const std::string& path, const ManifestEntry& listed);
// The same, and of its manifest entry's CRC32C.
Result<Bytes> read_listed_file(const std::string& path, const ManifestEntry& listed);
// Copy `want` (group, partition, node) of a full snapshot from its file at
// `path`: read_listed_file() when `listed` is given, then every check of
// scan_partition_file() (`each`, may be empty, sees the entries in key
// order), then the copy the file's header names must be `want`. Any
// difference is kCorruption naming `path`.
Result<PartitionFileScan> scan_snapshot_partition(const std::string& path, const ManifestEntry* listed,
                                                  const PartitionFileInfo& want, const PartitionEntryFn& each);

Bytes encode_snapshot_meta(const SnapshotMeta& m);
Result<SnapshotMeta> decode_snapshot_meta(ByteSpan bytes, const std::string& what);
// "<dir>/<node id>.smf", read and verified.
Result<SnapshotMeta> read_snapshot_meta(const std::string& path);
// The .smf files of a snapshot directory, sorted by node id: exactly one
// <node id>.smf per node of the baseline they all share, each holding
// that node (match_baseline, meta_file_holds). Anything else is
// kCorruption naming the file. A directory holding INCOMPLETE (a full
// snapshot that did not finish) is kNotFound.
Result<std::vector<SnapshotMeta>> read_snapshot_metas(const std::string& snapshot_dir);

// The names of the .smf files of `dir`, sorted.
Result<std::vector<std::string>> list_meta_files(const std::string& dir);
// Whether `names` (.smf files of `dir`) are exactly one "<node id>.smf" per
// node of `baseline`: a missing or an extra file is kCorruption naming it.
// Nothing is read; only the names count.
Status match_baseline(const std::string& dir, const std::vector<std::string>& baseline,
                      const std::vector<std::string>& names);
// Whether the metadata file `path` holds the node its name says, at that
// node's index of `baseline`; kCorruption naming it otherwise.
Status meta_file_holds(const std::string& path, uint16_t node_index, const std::string& node_id,
                       const std::vector<std::string>& baseline);

struct SnapshotOptions {
  // Runs after the snapshot point is fixed on every node and transactions
  // have resumed, before any file is written: tests hold it to show that
  // writers go on while the files are written.
  std::function<void()> before_write;
  // Runs each step of node `node`'s part of the snapshot: its CLUSTER_SNAPSHOT marker, its node.meta, each of its
  // files. A simulation may crash the node there (Cluster::crash_node), before the step or during it (its writes
  // torn). Unset, the step just runs.
  std::function<Status(uint16_t node, const std::function<Status()>& step)> run_step;
};

// The file in a full snapshot's staging directory until it is complete:
// read_snapshot_metas refuses a directory that holds it.
inline constexpr const char* kIncompleteSnapshotFile = "INCOMPLETE";

struct SnapshotReport {
  std::string dir;
  uint64_t files = 0;
  uint64_t bytes = 0;
  uint64_t pause_us = 0;  // how long new transactions were held
};

// Takes a full snapshot named `name` into <snapshots_root>/<name>, like
// Ignite's exchange: hold new transactions and wait for those in flight;
// write CLUSTER_SNAPSHOT on every node together with a copy-on-write image
// of its partitions; resume transactions; write the files and manifests
// into a staging directory; fsync; rename it into place. Refuses a name
// that exists. Each node then keeps its WAL from the snapshot's segment on.
// A node that crashes while the snapshot is taken (it is down after one of
// its steps) makes it fail with kCancelled naming the node, its staging
// directory removed: nothing is published, and the caller may take it again.
Result<SnapshotReport> take_full_snapshot(Cluster& cluster, const std::string& snapshots_root, const std::string& name,
                                          const SnapshotOptions& options = {});

}  // namespace walcut
