// The replay filter of an increment (docs/consistent-cut.md, "Restore"):
// which WAL entries a restore of increment N applies, decided from an
// entry's WAL pointer and its transaction's version alone, so it runs in
// the parallel decode stage.
#pragma once

#include <algorithm>
#include <cassert>
#include <vector>

#include "cut/increment_chain.h"
#include "io/chunk_reader.h"
#include "io/records.h"
#include "io/status.h"
#include "io/wal_format.h"

namespace walcut {

struct ReplayFilter {
  WalPointer snapshot;   // the full snapshot's CLUSTER_SNAPSHOT record: older entries are in its files
  WalPointer all_until;  // increment N-1's FINISH (N = 1: the snapshot record)
  WalPointer start;      // increment N's START
  WalPointer finish;     // increment N's FINISH: nothing from here on
  std::vector<Version> included;  // sorted
  std::vector<Version> excluded;  // sorted
  uint64_t finish_block_end = 0;  // file offset just past the block holding FINISH, in the last segment

  enum class Verdict { kSkip, kApply, kStop };

  // Whether the pointers are in WAL order (snapshot <= all_until <= start
  // < finish) and the sets sorted, as decide() needs. Cost: one pass over the sets.
  bool ordered() const {
    return snapshot <= all_until && all_until <= start && start < finish &&
           std::is_sorted(included.begin(), included.end()) && std::is_sorted(excluded.begin(), excluded.end());
  }

  // Cost: two binary searches at most.
  Verdict decide(const WalPointer& p, const Version& xid) const {
    assert(snapshot <= all_until && all_until <= start && start < finish);
    if (p < snapshot) return Verdict::kSkip;
    if (p >= finish) return Verdict::kStop;
    if (p < all_until) return Verdict::kApply;
    if (p < start) return in(excluded, xid) && !xid.is_null() ? Verdict::kSkip : Verdict::kApply;
    if (xid.is_null()) return Verdict::kApply;  // ATOMIC updates: outside the cut, repaired after replay
    return in(included, xid) ? Verdict::kApply : Verdict::kSkip;
  }

 private:
  static bool in(const std::vector<Version>& v, const Version& x) { return std::binary_search(v.begin(), v.end(), x); }
};

// The filter of increment N, the last of node.increments (at least one;
// failed increments are not among them), for one node: the pointers from
// its metadata and the previous complete increment's, the sets from its
// FINISH record (read from the increment's last segment).
//
// How much of the segments it reads: kWholeSegments, every block of each
// segment holding one of the cut records, checked (a replay reads them
// next; the last one is checked to end with FINISH); kCutRecordBlocks, for
// a node no part of the restore replays, only the blocks holding them
// where the metadata records them (read_block_at(): format version 2),
// else as kWholeSegments.
enum class FilterRead { kWholeSegments, kCutRecordBlocks };
Result<ReplayFilter> load_replay_filter(const NodeIncrements& node, const ReadOptions& io,
                                        FilterRead read = FilterRead::kWholeSegments);
// The same from a snapshot directory: node `node_index`'s increments 1..n
// read and checked first (read_node_increments()).
Result<ReplayFilter> load_replay_filter(const std::string& snapshot_dir, uint64_t n, uint16_t node_index,
                                        const ReadOptions& io);

}  // namespace walcut
