#include "engine/node_meta.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "engine/meta_codec.h"
#include "engine/meta_identity.h"
#include "io/crc32c.h"
#include "io/file_util.h"

namespace walcut {

namespace {
constexpr uint64_t kMagic = 0x3141544d'54434c57ull;  // "WLCTMTA1"
constexpr uint32_t kVersion = 2;     // 2 added wal_durable_end
constexpr uint32_t kVersionOne = 1;  // still read: no durable end

}  // namespace

const CacheGroup* NodeMeta::group(uint32_t id) const {
  for (const CacheGroup& g : groups) {
    if (g.id == id) return &g;
  }
  return nullptr;
}

const CacheGroup* NodeMeta::group(const std::string& name) const {
  for (const CacheGroup& g : groups) {
    if (g.name == name) return &g;
  }
  return nullptr;
}

// Layout: the metadata frame (engine/meta_codec.h) around the body.
Bytes encode_node_meta(const NodeMeta& m) {
  Bytes body;
  Encoder e(body);
  put_node_identity(e, m);
  put_strings(e, m.baseline);
  put_groups(e, m.groups);
  e.u32(m.topology_version);
  e.u64(m.checkpoint_id);
  e.u64(m.checkpoint.segment);
  e.u64(m.checkpoint.offset);
  e.u64(m.wal_keep_from_segment);
  e.u64(m.last_cut_id);
  e.u64(m.wal_durable_end.segment);
  e.u64(m.wal_durable_end.offset);
  return frame_metadata(kMagic, kVersion, body);
}

Result<NodeMeta> decode_node_meta(ByteSpan bytes, const std::string& what) {
  Result<ByteSpan> body = unframe_metadata(bytes, kMagic, {kVersionOne, kVersion}, what, "node.meta");
  if (!body.ok()) return body.status();
  const bool one = load_u32(bytes.data() + 8) == kVersionOne;
  Decoder d(body.value());
  NodeMeta m;
  get_node_identity(d, m);
  m.baseline = get_strings(d);
  m.groups = get_groups(d);
  m.topology_version = d.u32();
  m.checkpoint_id = d.u64();
  m.checkpoint.segment = d.u64();
  m.checkpoint.offset = d.u64();
  m.wal_keep_from_segment = d.u64();
  m.last_cut_id = d.u64();
  if (!one) {
    m.wal_durable_end.segment = d.u64();
    m.wal_durable_end.offset = d.u64();
  }
  if (d.failed() || d.remaining() != 0) return Status::corruption(what + ": malformed body");
  WALCUT_RETURN_IF_ERROR(check_node_identity({nullptr, m.node_index, m.node_id, &m.baseline, m.groups}, what));
  return m;
}

Status validate_node_names(const NodeMeta& m) {
  return validate_identity_names({nullptr, m.node_index, m.node_id, &m.baseline, m.groups});
}

Status write_node_meta(const std::string& dir, const NodeMeta& m) {
  return replace_file_synced(dir + "/" + kNodeMetaFile, encode_node_meta(m));
}

Result<NodeMeta> read_node_meta(const std::string& dir) {
  std::string path = dir + "/" + kNodeMetaFile;
  std::error_code ec;  // a path that cannot be looked at is read, for the reader's errno
  if (!std::filesystem::exists(path, ec) && !ec) return Status::not_found(path + ": no such file");
  Result<Bytes> bytes = read_framed_file(path);
  if (!bytes.ok()) return bytes.status();
  return decode_node_meta(bytes.value(), path);
}

}  // namespace walcut
