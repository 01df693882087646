#include "engine/increment.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "engine/meta_codec.h"
#include "io/crc32c.h"
#include "io/file_util.h"

namespace walcut {

namespace fs = std::filesystem;

namespace {
constexpr uint64_t kMagic = 0x31434e49'54434c57ull;  // "WLCTINC1"
constexpr uint32_t kVersion = 1;

void put_pointer(Encoder& e, const WalPointer& p) {
  e.u64(p.segment);
  e.u64(p.offset);
}
WalPointer get_pointer(Decoder& d) {
  WalPointer p;
  p.segment = d.u64();
  p.offset = d.u64();
  return p;
}

// Copies `from` to `to` in 1 MiB pieces, fsyncs it, and returns its entry.
Result<ManifestEntry> copy_file(const std::string& from, const std::string& to, const std::string& rel) {
  std::ifstream in(from, std::ios::binary);
  if (!in) return Status::io_error("open " + from + ": cannot read");
  int fd = ::open(to.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0) return Status::from_errno("create " + to, errno);
  ManifestEntry e{rel, 0, 0};
  std::vector<char> buf(1 << 20);
  Status s;
  while (s.ok() && in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    auto n = static_cast<size_t>(in.gcount());
    if (n == 0) break;
    ByteSpan piece{reinterpret_cast<const std::byte*>(buf.data()), n};
    s = pwrite_all(fd, piece, e.bytes, to);
    e.crc32c = crc32c(piece, e.crc32c);
    e.bytes += n;
  }
  if (s.ok() && in.bad()) s = Status::io_error("read " + from);
  if (s.ok()) s = sync_file(fd, to);
  ::close(fd);
  if (!s.ok()) return s;
  return e;
}

}  // namespace

// Layout: the metadata frame (engine/meta_codec.h) around the body.
Bytes encode_increment_meta(const IncrementMeta& m) {
  Bytes body;
  Encoder e(body);
  put_string(e, m.snapshot_name);
  e.u64(m.index);
  e.u64(m.cut_id);
  e.u64(m.cluster_id);
  e.u16(m.node_index);
  put_string(e, m.node_id);
  put_groups(e, m.groups);
  put_pointer(e, m.start);
  put_pointer(e, m.finish);
  e.u64(m.included_count);
  e.u64(m.excluded_count);
  e.u64(m.first_segment);
  e.u64(m.last_segment);
  put_manifest(e, m.files);
  return frame_metadata(kMagic, kVersion, body);
}

Result<IncrementMeta> decode_increment_meta(ByteSpan bytes, const std::string& what) {
  Result<ByteSpan> body = unframe_metadata(bytes, kMagic, kVersion, what, "increment metadata file");
  if (!body.ok()) return body.status();
  Decoder d(body.value());
  IncrementMeta m;
  m.snapshot_name = get_string(d);
  m.index = d.u64();
  m.cut_id = d.u64();
  m.cluster_id = d.u64();
  m.node_index = d.u16();
  m.node_id = get_string(d);
  m.groups = get_groups(d);
  m.start = get_pointer(d);
  m.finish = get_pointer(d);
  m.included_count = d.u64();
  m.excluded_count = d.u64();
  m.first_segment = d.u64();
  m.last_segment = d.u64();
  m.files = get_manifest(d);
  if (d.failed() || d.remaining() != 0) return Status::corruption(what + ": malformed body");
  return m;
}

std::string increment_dir(const std::string& snapshot_dir, uint64_t index) {
  char name[32];
  std::snprintf(name, sizeof name, "%016llu", static_cast<unsigned long long>(index));
  return snapshot_dir + "/increments/" + name;
}

Result<uint64_t> increment_count(const std::string& snapshot_dir) {
  std::vector<uint64_t> found;
  std::error_code ec;
  if (!fs::exists(snapshot_dir + "/increments", ec)) return uint64_t{0};
  Result<std::vector<DirEntry>> entries = list_directory(snapshot_dir + "/increments");
  if (!entries.ok()) return entries.status();
  for (const DirEntry& e : entries.value()) {
    const std::string& n = e.path;
    if (n.size() == 16 && std::all_of(n.begin(), n.end(), ::isdigit)) found.push_back(std::stoull(n));
  }
  std::sort(found.begin(), found.end());
  for (size_t i = 0; i < found.size(); ++i) {
    if (found[i] != i + 1) {
      return Status::corruption(snapshot_dir + ": increment " + std::to_string(i + 1) + " is missing (found " +
                                std::to_string(found[i]) + ")");
    }
  }
  return static_cast<uint64_t>(found.size());
}

Result<std::vector<IncrementMeta>> read_increment_metas(const std::string& snapshot_dir, uint64_t index) {
  std::string dir = increment_dir(snapshot_dir, index);
  Result<std::vector<std::string>> names = list_meta_files(dir);
  if (!names.ok()) return Status::not_found(names.status().message());
  if (names->empty()) return Status::not_found(dir + ": no .smf files");
  // One file per node of the full snapshot's baseline, as there.
  Result<std::vector<SnapshotMeta>> base = read_snapshot_metas(snapshot_dir);
  if (!base.ok()) return base.status();
  const std::vector<std::string>& baseline = base->front().baseline;
  WALCUT_RETURN_IF_ERROR(match_baseline(dir, baseline, names.value()));
  std::vector<IncrementMeta> metas;
  for (const std::string& name : names.value()) {
    const std::string p = dir + "/" + name;
    std::ifstream in(p, std::ios::binary);
    std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    Result<IncrementMeta> m = decode_increment_meta(as_bytes(s), p);
    if (!m.ok()) return m.status();
    WALCUT_RETURN_IF_ERROR(meta_file_holds(p, m->node_index, m->node_id, baseline));
    metas.push_back(std::move(m).value());
  }
  return metas;
}

Result<uint64_t> check_increment_base(Cluster& cluster, const std::string& snapshots_root, const std::string& name) {
  const std::string dir = snapshots_root + "/" + name;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return Status::not_found(dir + ": the base full snapshot is missing: take a full snapshot named " + name + " first");
  }
  Result<std::vector<SnapshotMeta>> base = read_snapshot_metas(dir);
  if (!base.ok()) return base.status();
  for (const SnapshotMeta& m : base.value()) {
    if (m.cluster_id != cluster.meta().cluster_id || m.baseline != cluster.meta().baseline) {
      return Status::invalid_argument(dir + ": the full snapshot is of another cluster or baseline");
    }
    if (m.groups != cluster.meta().groups) {
      return Status::invalid_argument(dir + ": the cache groups changed since the full snapshot; take a new full snapshot");
    }
  }
  Result<uint64_t> count = increment_count(dir);
  if (!count.ok()) return count.status();
  return count.value() + 1;
}

Result<IncrementReport> take_incremental_snapshot(Cluster& cluster, const std::string& snapshots_root,
                                                  const std::string& name) {
  Result<uint64_t> next = check_increment_base(cluster, snapshots_root, name);
  if (!next.ok()) return next.status();
  uint64_t cut_id = cluster.start_cut();
  for (uint16_t i = 0; i < cluster.size(); ++i) {
    Result<Node::CutResult> done = cluster.node(i).wait_cut(cut_id);
    if (!done.ok()) return done.status();
  }
  return write_increment(cluster, snapshots_root, name, cut_id);
}

Result<IncrementReport> write_increment(Cluster& cluster, const std::string& snapshots_root, const std::string& name,
                                        uint64_t cut_id) {
  Result<uint64_t> index = check_increment_base(cluster, snapshots_root, name);
  if (!index.ok()) return index.status();
  const std::string snap = snapshots_root + "/" + name;
  const std::string final_dir = increment_dir(snap, index.value());
  const std::string staging = snap + "/increments/.staging";
  std::error_code ec;
  fs::remove_all(staging, ec);
  fs::create_directories(staging, ec);
  if (ec) return Status::io_error("create " + staging + ": " + ec.message());
  WALCUT_RETURN_IF_ERROR(sync_dir(snap));  // increments/ itself, made the first time
  Result<std::vector<SnapshotMeta>> base = read_snapshot_metas(snap);
  if (!base.ok()) return base.status();
  std::vector<IncrementMeta> previous;
  if (index.value() > 1) {
    Result<std::vector<IncrementMeta>> prev = read_increment_metas(snap, index.value() - 1);
    if (!prev.ok()) return prev.status();
    previous = std::move(prev).value();
  }
  IncrementReport report;
  report.dir = final_dir;
  report.index = index.value();
  report.cut_id = cut_id;
  std::vector<uint64_t> keep_from(cluster.size());
  for (uint16_t i = 0; i < cluster.size(); ++i) {
    Node& node = cluster.node(i);
    std::optional<Node::CutResult> cut = node.finished_cut(cut_id);
    if (!cut) return Status::invalid_argument("node " + node.meta().node_id + " has not finished cut " + std::to_string(cut_id));
    IncrementMeta m;
    m.snapshot_name = name;
    m.index = index.value();
    m.cut_id = cut_id;
    m.cluster_id = node.meta().cluster_id;
    m.node_index = i;
    m.node_id = node.meta().node_id;
    m.groups = node.meta().groups;
    m.start = cut->start;
    m.finish = cut->finish;
    m.included_count = cut->included.size();
    m.excluded_count = cut->excluded.size();
    auto same_node = [&](const auto& meta) { return meta.node_index == i; };
    auto b = std::find_if(base->begin(), base->end(), same_node);
    auto p = std::find_if(previous.begin(), previous.end(), same_node);
    if (b == base->end() || (!previous.empty() && p == previous.end())) {
      return Status::corruption(snap + ": no metadata for node " + node.meta().node_id);
    }
    m.first_segment = previous.empty() ? b->snapshot_pointer.segment : p->last_segment + 1;
    m.last_segment = cut->finish.segment;
    std::string wal_rel = "wal/" + m.node_id;
    fs::create_directories(staging + "/" + wal_rel, ec);
    if (ec) return Status::io_error("create " + staging + "/" + wal_rel + ": " + ec.message());
    for (uint64_t seg = m.first_segment; seg <= m.last_segment; ++seg) {
      std::string rel = wal_rel + "/" + segment_file_name(seg);
      Result<ManifestEntry> e = copy_file(node.wal_dir() + "/" + segment_file_name(seg), staging + "/" + rel, rel);
      if (!e.ok()) return e.status();
      report.bytes += e->bytes;
      ++report.segments;
      m.files.push_back(e.value());
    }
    report.included += m.included_count;
    report.excluded += m.excluded_count;
    keep_from[i] = m.last_segment + 1;
    WALCUT_RETURN_IF_ERROR(write_file_synced(staging + "/" + m.node_id + ".smf", encode_increment_meta(m)));
  }
  WALCUT_RETURN_IF_ERROR(sync_tree(staging));
  if (::rename(staging.c_str(), final_dir.c_str()) != 0) return Status::from_errno("rename " + staging, errno);
  WALCUT_RETURN_IF_ERROR(sync_dir(snap + "/increments"));
  for (uint16_t i = 0; i < cluster.size(); ++i) WALCUT_RETURN_IF_ERROR(cluster.node(i).keep_wal_from(keep_from[i]));
  return report;
}

}  // namespace walcut
