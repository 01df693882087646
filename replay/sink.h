// Where replay puts entries. A program that links walcut implements
// ReplaySink to restore into its own store.
#pragma once

#include <cstdint>

#include "io/block.h"
#include "io/records.h"
#include "io/status.h"

namespace walcut {

// One entry to apply to one node's copy of one partition. Key and value
// point into replay's buffers: copy what you keep.
struct ReplayEntry {
  uint16_t node_index = 0;
  const DataEntry* entry = nullptr;  // group, partition, op, versions, key, value
};

class ReplaySink {
 public:
  virtual ~ReplaySink() = default;
  // Called once per applied entry. Entries of one (node, group, partition)
  // arrive in WAL order, one call at a time; calls for different partitions
  // may run at the same time on different threads. A non-ok status stops
  // the replay.
  virtual Status apply(const ReplayEntry& e) = 0;
  // Whether on_record() wants the records that are not DATA.
  virtual bool wants_records() const { return false; }
  // Sees each record other than DATA from the full snapshot's
  // CLUSTER_SNAPSHOT record up to (not including) increment N's FINISH,
  // with whether the filter keeps its transaction (TX records; true for
  // the rest). Called from the decode stage: in any order, from several
  // threads.
  virtual Status on_record(uint16_t node_index, const RecordView& r, bool kept) {
    (void)node_index, (void)r, (void)kept;
    return {};
  }
};

}  // namespace walcut
