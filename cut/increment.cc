#include "cut/increment.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>

#include "engine/cluster.h"
#include "engine/meta_codec.h"
#include "engine/meta_identity.h"
#include "io/block_reader.h"
#include "io/crc32c.h"
#include "io/file_util.h"
#include "io/names.h"

namespace walcut {

namespace fs = std::filesystem;

namespace {
constexpr uint64_t kMagic = 0x31434e49'54434c57ull;  // "WLCTINC1"
// 2: the cut records' blocks (IncrementMeta::start_block, finish_block)
// after the manifest; 1, without them, is still read.
constexpr uint32_t kVersion = 2;

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
  Result<int> created = create_file(to, O_TRUNC | O_WRONLY);
  if (!created.ok()) return created.status();
  const int fd = created.value();
  ManifestEntry e{rel, 0, 0};
  Status s = read_file_pieces(
      from, 0,
      [&](ByteSpan piece) {
        WALCUT_RETURN_IF_ERROR(pwrite_all(fd, piece, e.bytes, to));
        e.crc32c = crc32c(piece, e.crc32c);
        e.bytes += piece.size();
        return Status{};
      },
      /*follow=*/true);
  if (s.ok()) s = sync_file(fd, to);
  ::close(fd);
  if (!s.ok()) return s;
  return e;
}

// Every manifest path is wal/<node id>/<16 digits>.wal, each once, sorted.
Status check_manifest_paths(const IncrementMeta& m) {
  WALCUT_RETURN_IF_ERROR(check_manifest_order(m.files));
  const std::string prefix = increment_wal_dir(m.node_id) + "/";
  for (const ManifestEntry& f : m.files) {
    if (!f.path.starts_with(prefix) || !parse_segment_file_name(f.path.substr(prefix.size()))) {
      return Status::invalid_argument("manifest path '" + f.path + "' is not " + prefix + "<16 digits>.wal");
    }
  }
  return {};
}

}  // namespace

// Layout: the metadata frame (engine/meta_codec.h) around the body.
Bytes encode_increment_meta(const IncrementMeta& m) {
  Bytes body;
  Encoder e(body);
  put_string(e, m.snapshot_name);
  e.u64(m.index);
  e.u64(m.cut_id);
  put_node_identity(e, m);
  put_groups(e, m.groups);
  put_pointer(e, m.start);
  put_pointer(e, m.finish);
  e.u64(m.included_count);
  e.u64(m.excluded_count);
  e.u64(m.first_segment);
  e.u64(m.last_segment);
  put_manifest(e, m.files);
  e.u64(m.start_block);
  e.u64(m.finish_block);
  return frame_metadata(kMagic, kVersion, body);
}

Result<IncrementMeta> decode_increment_meta(ByteSpan bytes, const std::string& what) {
  Result<ByteSpan> body = unframe_metadata(bytes, kMagic, {kVersion, 1}, what, "increment metadata file");
  if (!body.ok()) return body.status();
  const uint32_t version = load_u32(bytes.data() + 8);  // the frame's, one of those (engine/meta_codec.h)
  Decoder d(body.value());
  IncrementMeta m;
  m.snapshot_name = get_string(d);
  m.index = d.u64();
  m.cut_id = d.u64();
  get_node_identity(d, m);
  m.groups = get_groups(d);
  m.start = get_pointer(d);
  m.finish = get_pointer(d);
  m.included_count = d.u64();
  m.excluded_count = d.u64();
  m.first_segment = d.u64();
  m.last_segment = d.u64();
  m.files = get_manifest(d);
  if (version >= 2) {
    m.start_block = d.u64();
    m.finish_block = d.u64();
  }
  if (d.failed() || d.remaining() != 0) return Status::corruption(what + ": malformed body");
  if (version >= 2 && std::min(m.start_block, m.finish_block) < kSegmentHeaderBytes) {
    return Status::corruption(what + ": a cut record's block at offset " +
                              std::to_string(std::min(m.start_block, m.finish_block)) + ", inside the segment header");
  }
  // No baseline here: read_increment_metas checks the node against the full snapshot's.
  WALCUT_RETURN_IF_ERROR(check_node_identity({&m.snapshot_name, m.node_index, m.node_id, nullptr, m.groups}, what));
  Status s = check_manifest_paths(m);
  if (!s.ok()) return Status::corruption(what + ": " + s.message());
  return m;
}

std::string increment_dir(const std::string& snapshot_dir, uint64_t index) {
  return snapshot_dir + "/" + increment_rel_dir(index);
}

std::string increment_wal_dir(const std::string& node_id) { return "wal/" + node_id; }

std::string increment_segment_path(const std::string& node_id, uint64_t segment) {
  return increment_wal_dir(node_id) + "/" + segment_file_name(segment);
}

std::string increment_rel_dir(uint64_t index) {
  char name[32];
  std::snprintf(name, sizeof name, "%016llu", static_cast<unsigned long long>(index));
  return std::string("increments/") + name;
}

Result<uint64_t> increment_count(const std::string& snapshot_dir) {
  std::error_code ec;
  if (!fs::exists(snapshot_dir + "/increments", ec) && !ec) return uint64_t{0};
  Result<std::vector<DirEntry>> entries = list_directory(snapshot_dir + "/increments");
  if (!entries.ok()) return entries.status();
  std::vector<uint64_t> found;
  for (const DirEntry& e : entries.value()) {
    // 16 digits: the segment file name's number without ".wal".
    if (std::optional<uint64_t> k = parse_segment_file_name(e.path + ".wal")) found.push_back(*k);
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

Result<std::optional<std::string>> increment_failure(const std::string& snapshot_dir, uint64_t index) {
  // Under the snapshot, not through a link out of it: the note is quoted in errors.
  Result<std::string> under = path_under(snapshot_dir, increment_rel_dir(index) + "/" + kFailedIncrementFile);
  if (!under.ok()) return under.status();
  const std::string& path = under.value();
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return std::optional<std::string>();
    return Status::from_errno("stat " + path, errno);
  }
  Result<Bytes> text = read_file_prefix(path, 4096);  // untrusted: a message, not a file dump
  if (!text.ok()) return text.status();
  std::string note = to_string(text.value());
  while (!note.empty() && note.back() == '\n') note.pop_back();
  std::string why;
  // Quoted on terminals and in JSON: printable ASCII as it is, every
  // other byte (controls, and the UTF-8 of C1 controls or of bidi
  // overrides) and the backslash escaped.
  for (char c : note) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f && u != '\\') {
      why += c;
    } else {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", u);
      why += escaped;
    }
  }
  return std::optional<std::string>(why);
}

Status refuse_failed_increment(const std::string& snapshot_dir, uint64_t index, const std::string& why) {
  return Status::not_found(increment_dir(snapshot_dir, index) + ": increment " + std::to_string(index) +
                           " failed (" + why + "): it holds no restorable state; use an earlier or a later increment");
}

namespace {

// read_increment_metas(), the baseline read from the full snapshot when
// `known` is null.
Result<std::vector<IncrementMeta>> increment_metas(const std::string& snapshot_dir, uint64_t index,
                                                   const std::vector<std::string>* known) {
  std::string dir = increment_dir(snapshot_dir, index);
  Result<std::optional<std::string>> failed = increment_failure(snapshot_dir, index);
  if (!failed.ok()) return failed.status();
  if (failed->has_value()) return refuse_failed_increment(snapshot_dir, index, **failed);
  Result<std::vector<std::string>> names = list_meta_files(dir);
  if (!names.ok()) return names.status();
  if (names->empty()) return Status::not_found(dir + ": no .smf files");
  // One file per node of the full snapshot's baseline, as there.
  std::vector<SnapshotMeta> base;
  if (known == nullptr) {
    Result<std::vector<SnapshotMeta>> read = read_snapshot_metas(snapshot_dir);
    if (!read.ok()) return read.status();
    base = std::move(read).value();
    known = &base.front().baseline;
  }
  const std::vector<std::string>& baseline = *known;
  std::vector<IncrementMeta> metas;
  for (const std::string& n : names.value()) {
    Result<std::string> path = path_under(snapshot_dir, increment_rel_dir(index) + "/" + n);  // no link out of it
    if (!path.ok()) return path.status();
    const std::string& p = path.value();
    Result<Bytes> bytes = read_framed_file(p);
    if (!bytes.ok()) return bytes.status();
    Result<IncrementMeta> m = decode_increment_meta(bytes.value(), p);
    if (!m.ok()) return m.status();
    WALCUT_RETURN_IF_ERROR(meta_file_holds(p, m->node_index, m->node_id, baseline));
    // One increment is one cut, which every node finished: a file of
    // another cut (a failed one's records are in the WAL too) is refused.
    if (!metas.empty() && m->cut_id != metas.front().cut_id) {
      return Status::corruption(p + ": of cut " + std::to_string(m->cut_id) + ", where " + dir + "/" +
                                meta_file_name(metas.front().node_id) + " is of cut " +
                                std::to_string(metas.front().cut_id) + ": an increment is one cut of every node");
    }
    metas.push_back(std::move(m).value());
  }
  WALCUT_RETURN_IF_ERROR(match_baseline(dir, baseline, names.value()));
  return metas;
}

}  // namespace

Result<std::vector<IncrementMeta>> read_increment_metas(const std::string& snapshot_dir, uint64_t index) {
  return increment_metas(snapshot_dir, index, nullptr);
}

Result<std::vector<IncrementMeta>> read_increment_metas(const std::string& snapshot_dir, uint64_t index,
                                                        const std::vector<std::string>& baseline) {
  return increment_metas(snapshot_dir, index, &baseline);
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
  std::lock_guard<std::mutex> one(cluster.increments_mutex());  // a second one waits: cuts never interleave
  Result<uint64_t> started = cluster.start_cut();
  if (!started.ok()) return started.status();
  const uint64_t cut_id = started.value();
  for (uint16_t i = 0; i < cluster.size(); ++i) {
    Result<CutResult> done = cluster.node(i).cut().wait_cut(cut_id);
    if (!done.ok()) return done.status();
  }
  return write_increment(cluster, snapshots_root, name, cut_id);
}

namespace {

// The file offset of the block that holds each record `wanted` points at,
// in the segments of `wal_dir` (of cluster `cluster_id`, node
// `node_index`): each segment's blocks read from its start once, as a
// restore without them would.
Status find_blocks(const std::string& wal_dir, std::initializer_list<std::pair<WalPointer, uint64_t*>> wanted,
                   uint64_t cluster_id, uint16_t node_index) {
  for (const auto& [p, block] : wanted) *block = 0;
  // A record of `segment` not found yet (a block's offset is never 0).
  auto missing_in = [&](uint64_t segment) -> const WalPointer* {
    for (const auto& [q, block] : wanted) {
      if (q.segment == segment && *block == 0) return &q;
    }
    return nullptr;
  };
  for (const auto& [p, found] : wanted) {
    if (*found != 0) continue;  // found in its segment, read for another record
    const std::string path = wal_dir + "/" + segment_file_name(p.segment);
    BlockReaderOptions ro;
    ro.mode = TailMode::kStrict;
    ro.cluster_id = cluster_id;
    ro.node_index = node_index;
    Result<std::unique_ptr<BlockReader>> reader = BlockReader::open({path}, ro);
    if (!reader.ok()) return reader.status();
    Block b;
    while (missing_in(p.segment)) {
      Result<bool> more = (*reader)->next(b);
      if (!more.ok()) return more.status();
      if (!more.value()) break;
      for (const auto& [q, block] : wanted) {
        if (b.holds(q)) *block = b.file_offset;
      }
    }
    if (const WalPointer* q = missing_in(p.segment)) {
      return Status::corruption(path + ": no block holds the record at " + q->to_string());
    }
  }
  return {};
}

// One node's part of increment `m.index`: its metadata from its finished
// `cut`, its segments since `base` or `previous` copied into `staging`, and
// its .smf written there. Adds the segments and set sizes to `report`.
Result<IncrementMeta> stage_node_increment(Node& node, const CutResult& cut, IncrementMeta m,
                                           const std::string& staging, const SnapshotMeta& base,
                                           const IncrementMeta* previous, IncrementReport& report) {
  m.cluster_id = node.meta().cluster_id;
  m.node_id = node.meta().node_id;
  m.groups = node.meta().groups;
  m.start = cut.start;
  m.finish = cut.finish;
  m.included_count = cut.included.size();
  m.excluded_count = cut.excluded.size();
  m.first_segment = previous ? previous->last_segment + 1 : base.snapshot_pointer.segment;
  m.last_segment = cut.finish.segment;
  Result<std::string> wal_dir = path_under(staging, increment_wal_dir(m.node_id));
  if (!wal_dir.ok()) return wal_dir.status();
  WALCUT_RETURN_IF_ERROR(make_directories(wal_dir.value()));
  for (uint64_t seg = m.first_segment; seg <= m.last_segment; ++seg) {
    std::string rel = increment_segment_path(m.node_id, seg);
    Result<ManifestEntry> e =
        copy_file(node.wal_dir() + "/" + segment_file_name(seg), wal_dir.value() + "/" + segment_file_name(seg), rel);
    if (!e.ok()) return e.status();
    report.bytes += e->bytes;
    ++report.segments;
    m.files.push_back(e.value());
  }
  // Where the cut records are, so that a restore that does not replay this
  // node reads their blocks alone (cut/replay_filter.h).
  WALCUT_RETURN_IF_ERROR(find_blocks(wal_dir.value(), {{m.start, &m.start_block}, {m.finish, &m.finish_block}},
                                     m.cluster_id, node.meta().node_index));
  report.included += m.included_count;
  report.excluded += m.excluded_count;
  Result<std::string> smf = path_under(staging, meta_file_name(m.node_id));
  if (!smf.ok()) return smf.status();
  WALCUT_RETURN_IF_ERROR(write_file_synced(smf.value(), encode_increment_meta(m)));
  return m;
}

}  // namespace

Result<IncrementReport> write_increment(Cluster& cluster, const std::string& snapshots_root, const std::string& name,
                                        uint64_t cut_id) {
  Result<uint64_t> index = check_increment_base(cluster, snapshots_root, name);
  if (!index.ok()) return index.status();
  const std::string snap = snapshots_root + "/" + name;
  const std::string final_dir = increment_dir(snap, index.value());
  const std::string staging = snap + "/increments/.staging";
  std::error_code ec;
  fs::remove_all(staging, ec);
  WALCUT_RETURN_IF_ERROR(make_directories(staging));
  WALCUT_RETURN_IF_ERROR(sync_dir(snap));  // increments/ itself, made the first time
  Result<std::vector<SnapshotMeta>> base = read_snapshot_metas(snap);
  if (!base.ok()) return base.status();
  // The segments continue from the last complete increment: a failed one holds none.
  std::vector<IncrementMeta> previous;
  for (uint64_t k = index.value() - 1; k >= 1 && previous.empty(); --k) {
    Result<std::optional<std::string>> failed = increment_failure(snap, k);
    if (!failed.ok()) return failed.status();
    if (failed->has_value()) continue;
    Result<std::vector<IncrementMeta>> prev = read_increment_metas(snap, k, base->front().baseline);
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
    std::optional<CutResult> cut = node.cut().finished_cut(cut_id);
    if (!cut) {
      return Status::invalid_argument("node " + node.meta().node_id + " has not finished cut " + std::to_string(cut_id));
    }
    const SnapshotMeta* b = find_node_meta(base.value(), i);
    const IncrementMeta* p = find_node_meta(previous, i);
    if (!b || (!previous.empty() && !p)) {
      return Status::corruption(snap + ": no metadata for node " + node.meta().node_id);
    }
    IncrementMeta m;
    m.snapshot_name = name;
    m.index = index.value();
    m.cut_id = cut_id;
    m.node_index = i;
    Result<IncrementMeta> staged = stage_node_increment(node, *cut, std::move(m), staging, *b, p, report);
    if (!staged.ok()) return staged.status();
    keep_from[i] = staged->last_segment + 1;
  }
  WALCUT_RETURN_IF_ERROR(sync_tree(staging));
  if (::rename(staging.c_str(), final_dir.c_str()) != 0) return Status::from_errno("rename " + staging, errno);
  WALCUT_RETURN_IF_ERROR(sync_dir(snap + "/increments"));
  for (uint16_t i = 0; i < cluster.size(); ++i) WALCUT_RETURN_IF_ERROR(cluster.node(i).keep_wal_from(keep_from[i]));
  return report;
}

Result<uint64_t> write_failed_increment(Cluster& cluster, const std::string& snapshots_root, const std::string& name,
                                        uint64_t cut_id, const std::string& why) {
  Result<uint64_t> index = check_increment_base(cluster, snapshots_root, name);
  if (!index.ok()) return index.status();
  const std::string snap = snapshots_root + "/" + name;
  const std::string staging = snap + "/increments/.staging";
  std::error_code ec;
  fs::remove_all(staging, ec);
  WALCUT_RETURN_IF_ERROR(make_directories(staging));
  WALCUT_RETURN_IF_ERROR(sync_dir(snap));
  const std::string text = "cut " + std::to_string(cut_id) + " failed: " + why + "\n";
  WALCUT_RETURN_IF_ERROR(write_file_synced(staging + "/" + kFailedIncrementFile, as_bytes(text)));
  WALCUT_RETURN_IF_ERROR(sync_dir(staging));
  const std::string final_dir = increment_dir(snap, index.value());
  if (::rename(staging.c_str(), final_dir.c_str()) != 0) return Status::from_errno("rename " + staging, errno);
  WALCUT_RETURN_IF_ERROR(sync_dir(snap + "/increments"));
  return index.value();
}

}  // namespace walcut
