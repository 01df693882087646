#include "engine/snapshot.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <filesystem>

#include "engine/cluster.h"
#include "engine/meta_codec.h"
#include "engine/meta_identity.h"
#include "engine/partition_file.h"
#include "io/crc32c.h"
#include "io/file_util.h"
#include "io/names.h"

namespace walcut {

namespace fs = std::filesystem;

namespace {
constexpr uint64_t kMagic = 0x31464d53'54434c57ull;  // "WLCTSMF1"
constexpr uint32_t kVersion = 1;

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

// Whether `path` is db/<node id>/<group>/part-<p>.bin of one of the node's
// groups, p below its partition count: the only files a manifest may list.
bool is_partition_path(const SnapshotMeta& m, const std::string& path) {
  const std::string prefix = snapshot_db_dir(m.node_id) + "/";
  size_t slash = path.find('/', prefix.size());
  if (!path.starts_with(prefix) || slash == std::string::npos) return false;
  const std::string group = path.substr(prefix.size(), slash - prefix.size());
  auto g = std::find_if(m.groups.begin(), m.groups.end(), [&](const CacheGroup& c) { return c.name == group; });
  std::optional<uint16_t> p = parse_partition_file_name(path.substr(slash + 1));
  return g != m.groups.end() && p && *p < g->partitions;
}

// Every manifest path is one of the node's partition files, each once, sorted.
Status check_manifest_paths(const SnapshotMeta& m) {
  WALCUT_RETURN_IF_ERROR(check_manifest_order(m.files));
  for (const ManifestEntry& f : m.files) {
    if (!is_partition_path(m, f.path)) {
      return Status::invalid_argument("manifest path '" + f.path + "' is not db/" + m.node_id +
                                      "/<group>/part-<p>.bin of one of the node's groups");
    }
  }
  return {};
}
}  // namespace

std::string meta_file_name(const std::string& node_id) { return node_id + ".smf"; }

std::string snapshot_db_dir(const std::string& node_id) { return "db/" + node_id; }

std::string snapshot_partition_path(const std::string& node_id, const std::string& group, uint16_t partition) {
  return snapshot_db_dir(node_id) + "/" + group + "/" + partition_file_name(partition);
}

const ManifestEntry* find_listed(const SnapshotMeta& m, const std::string& rel) {
  auto it = std::lower_bound(m.files.begin(), m.files.end(), rel,
                             [](const ManifestEntry& e, const std::string& r) { return e.path < r; });
  return it != m.files.end() && it->path == rel ? &*it : nullptr;
}

Result<Bytes> read_listed_size(const std::string& path, const ManifestEntry& listed) {
  auto other_size = [&](uint64_t bytes) {
    return Status::corruption(path + ": " + std::to_string(bytes) + " bytes, the manifest says " +
                              std::to_string(listed.bytes));
  };
  // The size first, then again after the read: the file may change in between.
  Result<Bytes> bytes = read_file_bytes_no_follow(
      path, [&](uint64_t size) { return size == listed.bytes ? Status{} : other_size(size); });
  if (!bytes.ok()) return bytes.status();
  if (bytes->size() != listed.bytes) return other_size(bytes->size());
  return bytes;
}

Result<Bytes> read_listed_file(const std::string& path, const ManifestEntry& listed) {
  Result<Bytes> bytes = read_listed_size(path, listed);
  if (!bytes.ok()) return bytes.status();
  if (crc32c(bytes.value()) != listed.crc32c) return Status::corruption(path + ": checksum differs from the manifest");
  return bytes;
}

Result<PartitionFileScan> scan_snapshot_partition(const std::string& path, const ManifestEntry* listed,
                                                  const PartitionFileInfo& want, const PartitionEntryFn& each) {
  Result<Bytes> bytes = listed ? read_listed_file(path, *listed) : read_file_bytes(path);
  if (!bytes.ok()) return bytes.status();
  Result<PartitionFileScan> scan = scan_partition_file(path, bytes.value(), each);
  if (!scan.ok()) return scan.status();
  const PartitionFileInfo& info = scan->info;
  if (info.group_id != want.group_id || info.partition != want.partition || info.node_index != want.node_index) {
    return Status::corruption(path + ": holds group " + std::to_string(info.group_id) + " partition " +
                              std::to_string(info.partition) + " of node " + std::to_string(info.node_index) +
                              ", not the copy its name says");
  }
  return scan;
}

// Layout: the metadata frame (engine/meta_codec.h) around the body.
Bytes encode_snapshot_meta(const SnapshotMeta& m) {
  Bytes body;
  Encoder e(body);
  put_string(e, m.name);
  put_node_identity(e, m);
  put_strings(e, m.baseline);
  put_groups(e, m.groups);
  e.u32(m.topology_version);
  e.u64(m.snapshot_pointer.segment);
  e.u64(m.snapshot_pointer.offset);
  put_manifest(e, m.files);
  return frame_metadata(kMagic, kVersion, body);
}

Result<SnapshotMeta> decode_snapshot_meta(ByteSpan bytes, const std::string& what) {
  Result<ByteSpan> body = unframe_metadata(bytes, kMagic, {kVersion}, what, "snapshot metadata file");
  if (!body.ok()) return body.status();
  Decoder d(body.value());
  SnapshotMeta m;
  m.name = get_string(d);
  get_node_identity(d, m);
  m.baseline = get_strings(d);
  m.groups = get_groups(d);
  m.topology_version = d.u32();
  m.snapshot_pointer.segment = d.u64();
  m.snapshot_pointer.offset = d.u64();
  m.files = get_manifest(d);
  if (d.failed() || d.remaining() != 0) return Status::corruption(what + ": malformed body");
  WALCUT_RETURN_IF_ERROR(check_node_identity({&m.name, m.node_index, m.node_id, &m.baseline, m.groups}, what));
  Status s = check_manifest_paths(m);
  if (!s.ok()) return Status::corruption(what + ": " + s.message());
  return m;
}

Result<SnapshotMeta> read_snapshot_meta(const std::string& path) {
  Result<Bytes> bytes = read_framed_file(path);
  if (!bytes.ok()) return bytes.status();
  return decode_snapshot_meta(bytes.value(), path);
}

Result<std::vector<SnapshotMeta>> read_snapshot_metas(const std::string& snapshot_dir) {
  const std::string incomplete = snapshot_dir + "/" + kIncompleteSnapshotFile;
  struct stat st;
  if (::lstat(incomplete.c_str(), &st) == 0) {
    return Status::not_found(snapshot_dir + ": holds " + kIncompleteSnapshotFile +
                             ": a full snapshot that did not finish is not a snapshot; take it again");
  }
  Result<std::vector<std::string>> names = list_meta_files(snapshot_dir);
  if (!names.ok()) return names.status();
  if (names->empty()) return Status::not_found(snapshot_dir + ": no .smf files: not a snapshot");
  std::vector<SnapshotMeta> metas;
  for (const std::string& name : names.value()) {
    Result<std::string> under = path_under(snapshot_dir, name);  // not a link out of the snapshot
    if (!under.ok()) return under.status();
    const std::string& path = under.value();
    Result<SnapshotMeta> m = read_snapshot_meta(path);
    if (!m.ok()) return m.status();
    metas.push_back(std::move(m).value());
    if (metas.back().baseline != metas.front().baseline) {
      return Status::corruption(path + ": its baseline (" + joined(metas.back().baseline) + ") differs from " +
                                snapshot_dir + "/" + names->front() + "'s (" + joined(metas.front().baseline) + ")");
    }
    const SnapshotMeta& last = metas.back();
    WALCUT_RETURN_IF_ERROR(meta_file_holds(path, last.node_index, last.node_id, metas.front().baseline));
  }
  WALCUT_RETURN_IF_ERROR(match_baseline(snapshot_dir, metas.front().baseline, names.value()));
  std::sort(metas.begin(), metas.end(),
            [](const SnapshotMeta& a, const SnapshotMeta& b) { return a.node_id < b.node_id; });
  return metas;
}

Result<std::vector<std::string>> list_meta_files(const std::string& dir) {
  Result<std::vector<DirEntry>> entries = list_directory(dir);
  if (!entries.ok()) return entries.status();
  std::vector<std::string> names;
  for (const DirEntry& e : entries.value()) {
    if (fs::path(e.path).extension() == ".smf") names.push_back(e.path);
  }
  return names;
}

Status match_baseline(const std::string& dir, const std::vector<std::string>& baseline,
                      const std::vector<std::string>& names) {
  for (const std::string& name : names) {
    const std::string id = fs::path(name).stem().string();
    if (std::find(baseline.begin(), baseline.end(), id) == baseline.end()) {
      return Status::corruption(dir + "/" + name + ": " + id + " is not a node of the snapshot's baseline (" +
                                joined(baseline) + "): an extra metadata file");
    }
  }
  for (const std::string& id : baseline) {
    if (std::find(names.begin(), names.end(), id + ".smf") == names.end()) {
      return Status::corruption(dir + "/" + id + ".smf: missing: node " + id + " of the snapshot's baseline (" +
                                joined(baseline) + ") has no metadata file");
    }
  }
  return {};
}

Status meta_file_holds(const std::string& path, uint16_t node_index, const std::string& node_id,
                       const std::vector<std::string>& baseline) {
  const std::string named = fs::path(path).stem().string();
  if (named != node_id) {
    return Status::corruption(path + ": holds node " + node_id + "'s metadata, not " + named + "'s");
  }
  if (node_index >= baseline.size() || baseline[node_index] != node_id) {
    return Status::corruption(path + ": node " + node_id + " is not at index " + std::to_string(node_index) +
                              " of the snapshot's baseline (" + joined(baseline) + ")");
  }
  return {};
}

namespace {

// One node's partition files and its .smf, from its image, into `staging`,
// each file one `step`; adds the files and bytes to `report`.
Status write_node_files(const NodeMeta& nm, const std::string& name, const Node::Image& image,
                        const std::string& staging, const std::function<Status(const std::function<Status()>&)>& step,
                        SnapshotReport& report) {
  SnapshotMeta sm;
  sm.name = name;
  sm.cluster_id = nm.cluster_id;
  sm.node_index = nm.node_index;
  sm.node_id = nm.node_id;
  sm.baseline = nm.baseline;
  sm.groups = nm.groups;
  sm.topology_version = nm.topology_version;
  sm.snapshot_pointer = image.pointer;
  for (const auto& [pid, entries] : image.partitions) {
    const CacheGroup& g = *nm.group(pid.first);
    std::string rel = snapshot_partition_path(nm.node_id, g.name, pid.second);
    Result<std::string> path = path_under(staging, rel);
    if (!path.ok()) return path.status();
    WALCUT_RETURN_IF_ERROR(step([&, &pid = pid, &entries = entries]() -> Status {
      WALCUT_RETURN_IF_ERROR(make_directories(fs::path(path.value()).parent_path().string()));
      WALCUT_RETURN_IF_ERROR(write_partition_file(path.value(), {pid.first, pid.second, nm.node_index}, *entries));
      // Read back: the manifest checksums what is on disk, not what was meant.
      Result<Bytes> written = read_file_bytes(path.value());
      if (!written.ok()) return written.status();
      sm.files.push_back(ManifestEntry{rel, written->size(), crc32c(written.value())});
      report.bytes += written->size();
      ++report.files;
      return {};
    }));
  }
  std::sort(sm.files.begin(), sm.files.end(), [](const auto& a, const auto& b) { return a.path < b.path; });
  Result<std::string> smf = path_under(staging, meta_file_name(nm.node_id));
  if (!smf.ok()) return smf.status();
  return step([&] { return write_file_synced(smf.value(), encode_snapshot_meta(sm)); });
}

}  // namespace

Result<SnapshotReport> take_full_snapshot(Cluster& cluster, const std::string& snapshots_root, const std::string& name,
                                          const SnapshotOptions& options) {
  WALCUT_RETURN_IF_ERROR(validate_name("snapshot name", name));
  const std::string final_dir = snapshots_root + "/" + name;
  const std::string staging = snapshots_root + "/." + name + ".staging";
  std::error_code ec;
  if (fs::exists(final_dir, ec)) return Status::invalid_argument(final_dir + ": a snapshot of that name exists");
  fs::remove_all(staging, ec);
  WALCUT_RETURN_IF_ERROR(make_directories(staging));
  // Until the last step, the staging directory says it is no snapshot: read it by mistake and it is refused.
  const std::string incomplete = staging + "/" + kIncompleteSnapshotFile;
  const std::string why_incomplete = "full snapshot " + name + " was being taken and did not finish\n";
  WALCUT_RETURN_IF_ERROR(write_file_synced(incomplete, as_bytes(why_incomplete)));
  // Each step of a node's part; a node that crashed in it fails the snapshot, and nothing is published.
  auto step = [&](uint16_t i, const std::function<Status()>& run) -> Status {
    Status s = options.run_step ? options.run_step(i, run) : run();
    if (cluster.up(i)) return s;
    fs::remove_all(staging, ec);
    return Status::cancelled(final_dir + ": node " + cluster.meta().baseline[i] +
                             " crashed while the full snapshot was taken: not published; take it again");
  };

  // 1. The snapshot point: no transaction in flight, every node marks it.
  std::vector<Node::Image> images(cluster.size());
  auto paused_at = std::chrono::steady_clock::now();
  {
    Cluster::Pause pause = cluster.pause_transactions();
    for (uint16_t i = 0; i < cluster.size(); ++i) {
      WALCUT_RETURN_IF_ERROR(step(i, [&]() -> Status {
        Result<Node::Image> image = cluster.node(i).append_marker(ClusterSnapshotRecord{name});
        if (!image.ok()) return image.status();
        images[i] = std::move(image).value();
        return {};
      }));
    }
  }
  // Increments start from these segments: keep them from now on.
  for (uint16_t i = 0; i < cluster.size(); ++i) {
    WALCUT_RETURN_IF_ERROR(step(i, [&] { return cluster.node(i).keep_wal_from(images[i].pointer.segment); }));
  }
  SnapshotReport report;
  report.dir = final_dir;
  report.pause_us = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - paused_at).count());
  if (options.before_write) options.before_write();

  // 2. The files, from the images, while transactions go on.
  for (uint16_t i = 0; i < cluster.size(); ++i) {
    auto node_step = [&](const std::function<Status()>& run) { return step(i, run); };
    WALCUT_RETURN_IF_ERROR(write_node_files(cluster.node(i).meta(), name, images[i], staging, node_step, report));
  }
  if (::unlink(incomplete.c_str()) != 0) return Status::from_errno("remove " + incomplete, errno);
  WALCUT_RETURN_IF_ERROR(sync_tree(staging));
  if (::rename(staging.c_str(), final_dir.c_str()) != 0) return Status::from_errno("rename " + staging, errno);
  WALCUT_RETURN_IF_ERROR(sync_dir(snapshots_root));
  return report;
}

}  // namespace walcut
