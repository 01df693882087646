// A node's full snapshot handed to a store of one's own, entry by entry:
// with replay_node() (replay/pipeline.h) after it, the library's restore of
// one node into any store (docs/restore.md, "Restoring into your own store").
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "engine/group.h"
#include "engine/partition.h"
#include "replay/pipeline.h"

namespace walcut {

// One entry of one partition file. Key and value point into the file's
// bytes, valid for the call: copy what you keep.
struct SnapshotEntry {
  uint16_t node_index = 0;
  const CacheGroup* group = nullptr;  // id, name, mode, partitions
  uint16_t partition = 0;
  std::string_view key;
  ByteSpan value;
  Version version;
};

// A non-ok status stops the load; load_snapshot_node() returns it.
using SnapshotEntryFn = std::function<Status(const SnapshotEntry&)>;

struct SnapshotLoadReport {
  uint64_t files = 0;    // partition files read
  uint64_t bytes = 0;    // their bytes
  uint64_t entries = 0;  // entries handed to the callback
};

// Hands every entry of node `node_index`'s copies in the full snapshot at
// `snapshot_dir` to `fn`: the copies the node owns (of options.groups, or
// all), file by file in group then partition order, each file's entries in
// key order, one call at a time on the calling thread. Each file must be in
// the manifest, and its size and CRC32C are checked against it before its
// first entry is handed over (a damaged file hands nothing over); then it
// is read with every check of scan_partition_file() and must hold the copy
// its path names. Any fault is kCorruption naming the file; the entries
// already handed over are then to be dropped. A group the snapshot does not
// have is kInvalidArgument naming it, a node it does not have kNotFound.
// Uses options.groups, cancel and progress (phase "load", bytes of the
// files); counts are added to `report`.
Status load_snapshot_node(const std::string& snapshot_dir, uint16_t node_index, const SnapshotEntryFn& fn,
                          const ReplayOptions& options, SnapshotLoadReport& report);

}  // namespace walcut
