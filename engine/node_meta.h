// node.meta: a node's identity, topology, groups and last checkpoint.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/group.h"
#include "io/status.h"
#include "io/wal_format.h"

namespace walcut {

struct NodeMeta {
  uint64_t cluster_id = 0;
  uint16_t node_index = 0;
  std::string node_id;                // the consistent id: also the node's directory name
  std::vector<std::string> baseline;  // node ids by node index
  std::vector<CacheGroup> groups;
  // Raised each time the cluster starts, so versions issued after a restart
  // order after every version issued before it.
  uint32_t topology_version = 0;
  uint64_t checkpoint_id = 0;         // 0: never checkpointed
  WalPointer checkpoint;              // the CHECKPOINT record recovery replays after
  // WAL segments from this index on are kept for a snapshot's increments;
  // kKeepNone when no snapshot needs any.
  uint64_t wal_keep_from_segment = kKeepNone;
  uint64_t last_cut_id = 0;  // the newest consistent cut this node finished
  // Every byte of the WAL before this point (segment, logical offset) was
  // synced when node.meta was written; {} (version 1 files): not known.
  WalPointer wal_durable_end;
  static constexpr uint64_t kKeepNone = ~0ull;

  const CacheGroup* group(uint32_t id) const;
  const CacheGroup* group(const std::string& name) const;
};

inline constexpr const char* kNodeMetaFile = "node.meta";

// Encodes (version 2) and decodes (version 1 or 2) the file's bytes
// (magic, version, fields, CRC32C).
Bytes encode_node_meta(const NodeMeta& m);
Result<NodeMeta> decode_node_meta(ByteSpan bytes, const std::string& what);
// The node id and every id of the baseline pass validate_name (io/names.h).
Status validate_node_names(const NodeMeta& m);

// Writes <dir>/node.meta atomically: temporary file, fdatasync, rename,
// directory fsync.
Status write_node_meta(const std::string& dir, const NodeMeta& m);
// Reads and verifies <dir>/node.meta; kNotFound when there is none, an I/O
// error naming the errno when it cannot be read (a directory, no permission).
Result<NodeMeta> read_node_meta(const std::string& dir);

}  // namespace walcut
