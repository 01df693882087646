// The identity part every node metadata file shares (node.meta, a full
// snapshot's and an increment's <node id>.smf, and a backup, whose META
// section holds a node.meta): the header's magic and version, the node's
// cluster id, index and id, and the check of the names, baseline slot and
// groups. One codec and one check for all four; each format keeps its own
// field order around these parts, so no file's bytes change.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "engine/group.h"
#include "engine/meta_codec.h"
#include "io/coding.h"
#include "io/status.h"

namespace walcut {

// u64 magic at offset 0: kCorruption "<what>: not a walcut <kind> (bad magic
// at offset 0)" when it differs or the file is shorter than the 12-byte header.
Status check_meta_magic(ByteSpan file, uint64_t magic, const std::string& what, const char* kind);
// u32 version at offset 8 (after check_meta_magic): kCorruption "<what>:
// unsupported <kind> version <v> at offset 8" unless it is one of `accepted`.
Result<uint32_t> check_meta_version(ByteSpan file, std::initializer_list<uint32_t> accepted, const std::string& what,
                                    const char* kind);

// u64 cluster id | u16 node index | u16-length node id: these three fields,
// in this order, in node.meta and in both .smf files (each type has them
// under these names).
template <typename Meta>
void put_node_identity(Encoder& e, const Meta& m);
template <typename Meta>
void get_node_identity(Decoder& d, Meta& m);

// What check_node_identity looks at; a format without a snapshot name or a
// baseline leaves it null.
struct NodeIdentityView {
  const std::string* snapshot_name = nullptr;
  uint16_t node_index = 0;
  const std::string& node_id;
  const std::vector<std::string>* baseline = nullptr;
  const std::vector<CacheGroup>& groups;
};
// The snapshot name, the node id and every id of the baseline are valid names
// (io/names.h); kInvalidArgument naming the first that is not.
Status validate_identity_names(const NodeIdentityView& id);
// The decoded identity's check, in this order: the snapshot name, the node id
// and every id of the baseline are valid names (io/names.h); the node is at
// its index of the baseline; the groups are valid. kCorruption "<what>: <why>".
Status check_node_identity(const NodeIdentityView& id, const std::string& what);

template <typename Meta>
void put_node_identity(Encoder& e, const Meta& m) {
  e.u64(m.cluster_id);
  e.u16(m.node_index);
  put_string(e, m.node_id);
}

template <typename Meta>
void get_node_identity(Decoder& d, Meta& m) {
  m.cluster_id = d.u64();
  m.node_index = d.u16();
  m.node_id = get_string(d);
}

}  // namespace walcut
