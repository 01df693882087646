#include "engine/node_meta.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>

#include "io/crc32c.h"
#include "io/file_util.h"

namespace walcut {

namespace {
constexpr uint64_t kMagic = 0x3141544d'54434c57ull;  // "WLCTMTA1"
constexpr uint32_t kVersion = 1;

void put_string(Encoder& e, const std::string& s) {
  e.u16(static_cast<uint16_t>(s.size()));
  e.bytes(as_bytes(s));
}
std::string get_string(Decoder& d) { return to_string(d.bytes(d.u16())); }
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

// Layout: u64 magic | u32 version | u32 body bytes | body | u32 crc32c of all before it.
Bytes encode_node_meta(const NodeMeta& m) {
  Bytes body;
  Encoder e(body);
  e.u64(m.cluster_id);
  e.u16(m.node_index);
  put_string(e, m.node_id);
  e.u16(static_cast<uint16_t>(m.baseline.size()));
  for (const std::string& id : m.baseline) put_string(e, id);
  e.u16(static_cast<uint16_t>(m.groups.size()));
  for (const CacheGroup& g : m.groups) {
    e.u32(g.id);
    put_string(e, g.name);
    e.u8(static_cast<uint8_t>(g.mode));
    e.u16(g.partitions);
    e.u16(g.backups);
  }
  e.u32(m.topology_version);
  e.u64(m.checkpoint_id);
  e.u64(m.checkpoint.segment);
  e.u64(m.checkpoint.offset);
  e.u64(m.wal_keep_from_segment);
  e.u64(m.last_cut_id);
  Bytes out;
  Encoder o(out);
  o.u64(kMagic);
  o.u32(kVersion);
  o.u32(static_cast<uint32_t>(body.size()));
  o.bytes(body);
  o.u32(crc32c(out));
  return out;
}

Result<NodeMeta> decode_node_meta(ByteSpan bytes, const std::string& what) {
  if (bytes.size() < 20) return Status::corruption(what + ": " + std::to_string(bytes.size()) + " bytes, too short");
  Decoder h(bytes);
  if (h.u64() != kMagic) return Status::corruption(what + ": not a walcut node.meta (bad magic at offset 0)");
  uint32_t version = h.u32();
  uint32_t body_bytes = h.u32();
  if (version != kVersion) return Status::corruption(what + ": unsupported node.meta version " + std::to_string(version));
  if (bytes.size() != 16 + size_t{body_bytes} + 4) {
    return Status::corruption(what + ": file is " + std::to_string(bytes.size()) + " bytes, its header says " +
                              std::to_string(16 + size_t{body_bytes} + 4));
  }
  if (load_u32(bytes.data() + 16 + body_bytes) != crc32c(bytes.first(16 + body_bytes))) {
    return Status::corruption(what + ": checksum mismatch at offset " + std::to_string(16 + body_bytes));
  }
  Decoder d(bytes.subspan(16, body_bytes));
  NodeMeta m;
  m.cluster_id = d.u64();
  m.node_index = d.u16();
  m.node_id = get_string(d);
  for (uint16_t n = d.u16(), i = 0; i < n && !d.failed(); ++i) m.baseline.push_back(get_string(d));
  for (uint16_t n = d.u16(), i = 0; i < n && !d.failed(); ++i) {
    CacheGroup g;
    g.id = d.u32();
    g.name = get_string(d);
    g.mode = static_cast<CacheMode>(d.u8());
    g.partitions = d.u16();
    g.backups = d.u16();
    m.groups.push_back(std::move(g));
  }
  m.topology_version = d.u32();
  m.checkpoint_id = d.u64();
  m.checkpoint.segment = d.u64();
  m.checkpoint.offset = d.u64();
  m.wal_keep_from_segment = d.u64();
  m.last_cut_id = d.u64();
  if (d.failed() || d.remaining() != 0) return Status::corruption(what + ": malformed body");
  if (m.node_index >= m.baseline.size() || m.baseline[m.node_index] != m.node_id) {
    return Status::corruption(what + ": node " + m.node_id + " is not at index " + std::to_string(m.node_index) +
                              " of its baseline");
  }
  Status s = validate_groups(m.groups);
  if (!s.ok()) return Status::corruption(what + ": " + s.message());
  return m;
}

Status write_node_meta(const std::string& dir, const NodeMeta& m) {
  std::string path = dir + "/" + kNodeMetaFile;
  std::string tmp = path + ".tmp";
  Bytes bytes = encode_node_meta(m);
  int fd = ::open(tmp.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0) return Status::from_errno("create " + tmp, errno);
  Status s = pwrite_all(fd, bytes, 0, tmp);
  if (s.ok()) s = sync_file(fd, tmp);
  ::close(fd);
  if (s.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) s = Status::from_errno("rename " + tmp, errno);
  if (!s.ok()) {
    ::unlink(tmp.c_str());
    return s;
  }
  return sync_dir(dir);
}

Result<NodeMeta> read_node_meta(const std::string& dir) {
  std::string path = dir + "/" + kNodeMetaFile;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return Status::not_found(path + ": no such file");
  std::ifstream in(path, std::ios::binary);
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) return Status::io_error("read " + path);
  return decode_node_meta(as_bytes(s), path);
}

}  // namespace walcut
