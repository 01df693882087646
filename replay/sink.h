// Where replay puts entries. A program that links walcut implements
// ReplaySink to restore into its own store.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "engine/group.h"
#include "io/block.h"
#include "io/records.h"
#include "io/status.h"

namespace walcut {

// One entry to apply to one node's copy of one partition. Key and value
// point into replay's buffers: copy what you keep. The group's name and
// mode come once per node, through ReplaySink::begin().
struct ReplayEntry {
  uint16_t node_index = 0;
  const DataEntry* entry = nullptr;  // group, partition, op, versions, key, value
};

class ReplaySink {
 public:
  virtual ~ReplaySink() = default;
  // Called once per node replayed, before any other call for that node:
  // the snapshot's cache groups (id, name, mode, partitions), to name the
  // group_id of the entries that follow. A non-ok status stops the replay.
  virtual Status begin(uint16_t node_index, const std::vector<CacheGroup>& groups) {
    (void)node_index, (void)groups;
    return {};
  }
  // Called once per applied entry. Entries of one (node, group, partition)
  // arrive in WAL order, one call at a time; calls for different partitions
  // may run at the same time on different threads. A non-ok status stops
  // the replay.
  virtual Status apply(const ReplayEntry& e) = 0;
  // The same for several entries of one node, in order: replay hands each
  // apply group's part of a batch over in one call. Override it to work on
  // several entries at once (the built-in sink starts its cache misses
  // entries ahead); the default calls apply() for each. It may run oneTBB
  // work of its own: the call is isolated (tbb::this_task_arena::isolate),
  // so its waits never take up another batch's apply.
  virtual Status apply_many(uint16_t node_index, std::span<const DataEntry> entries) {
    for (const DataEntry& e : entries) {
      Status s = apply(ReplayEntry{node_index, &e});
      if (!s.ok()) return s;
    }
    return {};
  }
  // Whether the sink takes a node's segments newest first, through
  // apply_segment() (ReplayOptions::newest_first; the built-in restore's
  // sink does). Then, of each key of a copy, the entry to keep is the
  // last of the newest segment that holds the key.
  virtual bool takes_newest_first() const { return false; }
  // Newest first: the entries of one node's segment `segment` (1 for the
  // node's newest, then up as the replay goes back), each apply group's
  // part of a batch in one call. A partition's segments come newest
  // first, and its entries of a segment in WAL order, one call at a time.
  virtual Status apply_segment(uint16_t node_index, uint32_t segment, std::span<const DataEntry> entries) {
    (void)node_index, (void)segment, (void)entries;
    return Status::invalid_argument("this sink takes entries in WAL order only");
  }
  // Whether on_record() wants the records that are not DATA.
  virtual bool wants_records() const { return false; }
  // Sees each record other than DATA from the full snapshot's
  // CLUSTER_SNAPSHOT record up to (not including) increment N's FINISH,
  // with whether the filter keeps its transaction (TX records; true for
  // the rest). Called where batches are decoded: in any order, from several
  // threads.
  virtual Status on_record(uint16_t node_index, const RecordView& r, bool kept) {
    (void)node_index, (void)r, (void)kept;
    return {};
  }
};

}  // namespace walcut
