// The increments a restore or a check of increment N reads: each node's
// increments 1..N, checked to belong to its full snapshot and to continue
// one another, with the segment files they list.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "cut/increment.h"
#include "engine/snapshot.h"
#include "io/status.h"

namespace walcut {

// One node's increments 1..N.
struct NodeIncrements {
  SnapshotMeta base;                      // its full snapshot's metadata, without the manifest (files)
  std::vector<IncrementMeta> increments;  // the complete ones of 1..N, in order
  std::vector<std::string> segment_paths;  // every segment of them, in order
  uint64_t segment_bytes = 0;              // their sizes, summed, as listed
};

// Why a chain was refused, for a caller that reports it as a finding:
// the directory or file at fault and what is wrong with it.
struct ChainFault {
  std::string where;
  std::string what;
};

// The metadata of increments already read (read_increment_metas()), by
// index: read_node_increments() for several nodes of one snapshot, given
// the same one, reads each increment's files once instead of once a node.
using IncrementMetasRead = std::map<uint64_t, Result<std::vector<IncrementMeta>>>;

// Checks, for the node of `base`, that increments 1..n each hold its
// metadata, of the same cluster, node, snapshot and groups, that their
// segments continue from the full snapshot's CLUSTER_SNAPSHOT segment
// without a gap, and that every segment file they list is there, under
// the snapshot directory, with its listed size. A failure is kCorruption
// naming the directory or file (or the I/O error), also set in `fault`.
// Failed increments before n are skipped (NodeIncrements::increments
// holds only the complete ones); a failed increment n is refused
// (refuse_failed_increment(), kNotFound), also set in `fault`.
Result<NodeIncrements> read_node_increments(const std::string& snapshot_dir, const SnapshotMeta& base, uint64_t n,
                                            ChainFault* fault = nullptr, IncrementMetasRead* read = nullptr);
// Whether the snapshot has increments 1..n without a gap: kInvalidArgument
// when it has fewer (the fault says "has K increments, N asked for").
Status check_increment_count(const std::string& snapshot_dir, uint64_t n, ChainFault* fault = nullptr);

// read_node_increments() for every node of `bases` (a snapshot's full
// metadata, read_snapshot_metas()), after check_increment_count().
Result<std::vector<NodeIncrements>> read_increment_chain(const std::string& snapshot_dir,
                                                         const std::vector<SnapshotMeta>& bases, uint64_t n);

}  // namespace walcut
