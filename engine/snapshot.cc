#include "engine/snapshot.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>

#include "engine/partition_file.h"
#include "io/crc32c.h"
#include "io/file_util.h"

namespace walcut {

namespace fs = std::filesystem;

namespace {
constexpr uint64_t kMagic = 0x31464d53'54434c57ull;  // "WLCTSMF1"
constexpr uint32_t kVersion = 1;

void put_string(Encoder& e, const std::string& s) {
  e.u16(static_cast<uint16_t>(s.size()));
  e.bytes(as_bytes(s));
}
std::string get_string(Decoder& d) { return to_string(d.bytes(d.u16())); }

Result<Bytes> read_whole(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::io_error("open " + path + ": cannot read");
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto* p = reinterpret_cast<const std::byte*>(s.data());
  return Bytes(p, p + s.size());
}

Status write_file_synced(const std::string& path, ByteSpan bytes) {
  int fd = ::open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0) return Status::from_errno("create " + path, errno);
  Status s = pwrite_all(fd, bytes, 0, path);
  if (s.ok()) s = sync_file(fd, path);
  ::close(fd);
  return s;
}

Status sync_tree(const std::string& root) {
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec); it != fs::recursive_directory_iterator(); ++it) {
    if (it->is_directory()) WALCUT_RETURN_IF_ERROR(sync_dir(it->path().string()));
  }
  if (ec) return Status::io_error("list " + root + ": " + ec.message());
  return sync_dir(root);
}
}  // namespace

// Layout: u64 magic | u32 version | u32 body bytes | body | u32 crc32c of all before it.
Bytes encode_snapshot_meta(const SnapshotMeta& m) {
  Bytes body;
  Encoder e(body);
  put_string(e, m.name);
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
  e.u64(m.snapshot_pointer.segment);
  e.u64(m.snapshot_pointer.offset);
  e.u32(static_cast<uint32_t>(m.files.size()));
  for (const ManifestEntry& f : m.files) {
    put_string(e, f.path);
    e.u64(f.bytes);
    e.u32(f.crc32c);
  }
  Bytes out;
  Encoder o(out);
  o.u64(kMagic);
  o.u32(kVersion);
  o.u32(static_cast<uint32_t>(body.size()));
  o.bytes(body);
  o.u32(crc32c(out));
  return out;
}

Result<SnapshotMeta> decode_snapshot_meta(ByteSpan bytes, const std::string& what) {
  if (bytes.size() < 20) return Status::corruption(what + ": " + std::to_string(bytes.size()) + " bytes, too short");
  Decoder h(bytes);
  if (h.u64() != kMagic) return Status::corruption(what + ": not a walcut snapshot metadata file (bad magic at offset 0)");
  uint32_t version = h.u32();
  uint32_t body_bytes = h.u32();
  if (version != kVersion) return Status::corruption(what + ": unsupported .smf version " + std::to_string(version));
  if (bytes.size() != 16 + size_t{body_bytes} + 4) {
    return Status::corruption(what + ": file is " + std::to_string(bytes.size()) + " bytes, its header says " +
                              std::to_string(16 + size_t{body_bytes} + 4));
  }
  if (load_u32(bytes.data() + 16 + body_bytes) != crc32c(bytes.first(16 + body_bytes))) {
    return Status::corruption(what + ": checksum mismatch at offset " + std::to_string(16 + body_bytes));
  }
  Decoder d(bytes.subspan(16, body_bytes));
  SnapshotMeta m;
  m.name = get_string(d);
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
  m.snapshot_pointer.segment = d.u64();
  m.snapshot_pointer.offset = d.u64();
  uint32_t files = d.u32();
  for (uint32_t i = 0; i < files && !d.failed(); ++i) {
    ManifestEntry f;
    f.path = get_string(d);
    f.bytes = d.u64();
    f.crc32c = d.u32();
    m.files.push_back(std::move(f));
  }
  if (d.failed() || d.remaining() != 0) return Status::corruption(what + ": malformed body");
  Status s = validate_groups(m.groups);
  if (!s.ok()) return Status::corruption(what + ": " + s.message());
  if (m.node_index >= m.baseline.size() || m.baseline[m.node_index] != m.node_id) {
    return Status::corruption(what + ": node " + m.node_id + " is not at index " + std::to_string(m.node_index) +
                              " of its baseline");
  }
  return m;
}

Result<SnapshotMeta> read_snapshot_meta(const std::string& path) {
  Result<Bytes> bytes = read_whole(path);
  if (!bytes.ok()) return bytes.status();
  return decode_snapshot_meta(bytes.value(), path);
}

Result<std::vector<SnapshotMeta>> read_snapshot_metas(const std::string& snapshot_dir) {
  std::vector<std::string> paths;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(snapshot_dir, ec)) {
    if (entry.path().extension() == ".smf") paths.push_back(entry.path().string());
  }
  if (ec) return Status::io_error("list " + snapshot_dir + ": " + ec.message());
  if (paths.empty()) return Status::not_found(snapshot_dir + ": no .smf files: not a snapshot");
  std::sort(paths.begin(), paths.end());
  std::vector<SnapshotMeta> metas;
  for (const std::string& p : paths) {
    Result<SnapshotMeta> m = read_snapshot_meta(p);
    if (!m.ok()) return m.status();
    metas.push_back(std::move(m).value());
  }
  return metas;
}

Result<SnapshotReport> take_full_snapshot(Cluster& cluster, const std::string& snapshots_root, const std::string& name,
                                          const SnapshotOptions& options) {
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..") {
    return Status::invalid_argument("snapshot name '" + name + "' is not usable as a directory name");
  }
  const std::string final_dir = snapshots_root + "/" + name;
  const std::string staging = snapshots_root + "/." + name + ".staging";
  std::error_code ec;
  if (fs::exists(final_dir, ec)) return Status::invalid_argument(final_dir + ": a snapshot of that name exists");
  fs::remove_all(staging, ec);
  fs::create_directories(staging, ec);
  if (ec) return Status::io_error("create " + staging + ": " + ec.message());

  // 1. The snapshot point: no transaction in flight, every node marks it.
  std::vector<Node::Image> images;
  auto paused_at = std::chrono::steady_clock::now();
  {
    Cluster::Pause pause = cluster.pause_transactions();
    for (uint16_t i = 0; i < cluster.size(); ++i) {
      Result<Node::Image> image = cluster.node(i).append_marker(ClusterSnapshotRecord{name});
      if (!image.ok()) return image.status();
      images.push_back(std::move(image).value());
    }
  }
  // Increments start from these segments: keep them from now on.
  for (uint16_t i = 0; i < cluster.size(); ++i) {
    WALCUT_RETURN_IF_ERROR(cluster.node(i).keep_wal_from(images[i].pointer.segment));
  }
  SnapshotReport report;
  report.dir = final_dir;
  report.pause_us = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - paused_at).count());
  if (options.before_write) options.before_write();

  // 2. The files, from the images, while transactions go on.
  for (uint16_t i = 0; i < cluster.size(); ++i) {
    const NodeMeta& nm = cluster.node(i).meta();
    SnapshotMeta sm;
    sm.name = name;
    sm.cluster_id = nm.cluster_id;
    sm.node_index = nm.node_index;
    sm.node_id = nm.node_id;
    sm.baseline = nm.baseline;
    sm.groups = nm.groups;
    sm.topology_version = nm.topology_version;
    sm.snapshot_pointer = images[i].pointer;
    for (const auto& [pid, entries] : images[i].partitions) {
      const CacheGroup& g = *nm.group(pid.first);
      std::string rel = "db/" + nm.node_id + "/" + g.name + "/" + partition_file_name(pid.second);
      fs::create_directories(fs::path(staging + "/" + rel).parent_path(), ec);
      if (ec) return Status::io_error("create directory for " + staging + "/" + rel + ": " + ec.message());
      WALCUT_RETURN_IF_ERROR(write_partition_file(staging + "/" + rel, {pid.first, pid.second, nm.node_index}, *entries));
      // Read back: the manifest checksums what is on disk, not what was meant.
      Result<Bytes> written = read_whole(staging + "/" + rel);
      if (!written.ok()) return written.status();
      sm.files.push_back(ManifestEntry{rel, written->size(), crc32c(written.value())});
      report.bytes += written->size();
      ++report.files;
    }
    std::sort(sm.files.begin(), sm.files.end(), [](const auto& a, const auto& b) { return a.path < b.path; });
    WALCUT_RETURN_IF_ERROR(write_file_synced(staging + "/" + nm.node_id + ".smf", encode_snapshot_meta(sm)));
  }
  WALCUT_RETURN_IF_ERROR(sync_tree(staging));
  if (::rename(staging.c_str(), final_dir.c_str()) != 0) return Status::from_errno("rename " + staging, errno);
  WALCUT_RETURN_IF_ERROR(sync_dir(snapshots_root));
  return report;
}

}  // namespace walcut
