#include "engine/backup.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "engine/meta_identity.h"
#include "engine/partition_file.h"
#include "io/crc32c.h"
#include "io/fault.h"
#include "io/file_util.h"

namespace walcut {

namespace fs = std::filesystem;

namespace {

// File: u64 magic | u32 version | sections... Each section:
//   u32 type | u64 body bytes | body | u32 crc32c of type, length and body.
// Sections: META once, PARTITION per partition, END last (section count).
constexpr uint64_t kMagic = 0x314b4142'54434c57ull;  // "WLCTBAK1"
constexpr uint32_t kVersion = 1;
enum SectionType : uint32_t { kMeta = 1, kPartition = 2, kEnd = 3 };

void put_section(Bytes& out, uint32_t type, const Bytes& body) {
  size_t at = out.size();
  Encoder e(out);
  e.u32(type);
  e.u64(body.size());
  e.bytes(body);
  e.u32(crc32c(ByteSpan(out).subspan(at)));
}

}  // namespace

Status write_backup_file(const std::string& path, const BackupMeta& meta,
                         const std::map<PartitionId, std::shared_ptr<const EntryMap>>& partitions) {
  const std::string tmp = path + ".tmp";
  Result<int> created = create_file(tmp, O_TRUNC | O_WRONLY);
  if (!created.ok()) return created.status();
  const int fd = created.value();
  uint64_t offset = 0, sections = 0;
  auto flush = [&](Bytes& buf) {
    Status s = pwrite_all(fd, buf, offset, tmp);
    offset += buf.size();
    buf.clear();
    return s;
  };
  Bytes out;
  Encoder header(out);
  header.u64(kMagic);
  header.u32(kVersion);
  // META: the node's metadata (length-prefixed) and the consistent pointer.
  Bytes body = encode_node_meta(meta.node);
  const auto meta_bytes = static_cast<uint32_t>(body.size());
  body.insert(body.begin(), 4, std::byte{0});
  store_u32(body.data(), meta_bytes);
  Encoder m(body);
  m.u64(meta.consistent.segment);
  m.u64(meta.consistent.offset);
  put_section(out, kMeta, body);
  ++sections;
  Status s;
  for (const auto& [pid, entries] : partitions) {
    body.clear();
    Encoder p(body);
    p.u32(pid.first);
    p.u16(pid.second);
    p.u64(entries->size());
    for (const auto& [key, v] : *entries) {
      p.u32(static_cast<uint32_t>(key.size()));
      p.u32(static_cast<uint32_t>(v.value.size()));
      put_version(p, v.version);
      p.bytes(as_bytes(key));
      p.bytes(as_bytes(v.value));
    }
    put_section(out, kPartition, body);
    ++sections;
    if (out.size() >= (1 << 20) && !(s = flush(out)).ok()) break;
  }
  if (s.ok()) {
    body.clear();
    Encoder end(body);
    end.u64(sections + 1);
    put_section(out, kEnd, body);
    s = flush(out);
  }
  if (s.ok()) s = sync_file(fd, tmp);
  ::close(fd);
  if (s.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) s = Status::from_errno("rename " + tmp, errno);
  if (!s.ok()) {
    ::unlink(tmp.c_str());
    return s;
  }
  std::string dir = std::filesystem::path(path).parent_path().string();
  return sync_dir(dir.empty() ? "." : dir);
}

Result<BackupContents> read_backup_file(const std::string& path) {
  Result<Bytes> file = read_file_bytes(path);
  if (!file.ok()) return file.status();
  ByteSpan bytes = file.value();
  auto bad = [&](uint64_t at, const std::string& what) {
    return Status::corruption(path + ": " + what + " at offset " + std::to_string(at));
  };
  WALCUT_RETURN_IF_ERROR(check_meta_magic(bytes, kMagic, path, "backup"));
  Result<uint32_t> version = check_meta_version(bytes, {kVersion}, path, "backup");
  if (!version.ok()) return version.status();
  BackupContents out;
  uint64_t pos = 12, sections = 0;
  bool have_meta = false, ended = false;
  while (!ended) {
    if (bytes.size() - pos < 16) return bad(pos, "the file ends inside a section header");
    uint32_t type = load_u32(bytes.data() + pos);
    uint64_t body_bytes = load_u64(bytes.data() + pos + 4);
    if (body_bytes > bytes.size() - pos - 16) return bad(pos, "section runs past the end of the file");
    ByteSpan section = bytes.subspan(pos, 12 + body_bytes);
    if (load_u32(bytes.data() + pos + 12 + body_bytes) != crc32c(section)) return bad(pos, "section checksum mismatch");
    Decoder d(section.subspan(12));
    ++sections;
    if (type == kMeta && !have_meta) {
      uint32_t n = d.u32();
      ByteSpan meta_bytes = d.bytes(n);
      if (d.failed()) return bad(pos, "malformed META section");
      Result<NodeMeta> nm = decode_node_meta(meta_bytes, path + " (node metadata)");
      if (!nm.ok()) return nm.status();
      out.meta.node = nm.value();
      out.meta.consistent.segment = d.u64();
      out.meta.consistent.offset = d.u64();
      have_meta = true;
    } else if (type == kPartition && have_meta) {
      uint32_t group = d.u32();
      uint16_t partition = d.u16();
      uint64_t count = d.u64();
      EntryMap entries;
      for (uint64_t i = 0; i < count && !d.failed(); ++i) {
        uint32_t key_bytes = d.u32(), value_bytes = d.u32();
        Version v = get_version(d);
        std::string key = to_string(d.bytes(key_bytes));
        std::string value = to_string(d.bytes(value_bytes));
        if (!entries.empty() && key <= entries.rbegin()->first) return bad(pos, "keys out of order");
        entries.emplace_hint(entries.end(), std::move(key), StoredValue{std::move(value), v});
      }
      if (!out.meta.node.group(group) || partition >= out.meta.node.group(group)->partitions) {
        return bad(pos, "partition of an unknown group");
      }
      if (!out.partitions.emplace(std::make_pair(group, partition), std::move(entries)).second) {
        return bad(pos, "partition listed twice");
      }
    } else if (type == kEnd && have_meta) {
      if (d.u64() != sections) return bad(pos, "section count differs from the END section's");
      ended = true;
    } else {
      return bad(pos, "unexpected section type " + std::to_string(type));
    }
    if (d.failed() || d.remaining() != 0) return bad(pos, "malformed section");
    pos += 16 + body_bytes;
  }
  if (pos != bytes.size()) return bad(pos, "bytes after the END section");
  return out;
}

namespace {

// The backup waiting in `restore_dir`, or "" when none is. With none, a
// marker left by a finished restore is removed; one naming a backup that
// is gone is a restore cut short.
Result<std::string> waiting_backup(const std::string& restore_dir, const std::string& marker) {
  std::error_code ec;
  if (!fs::is_directory(restore_dir, ec)) return std::string();
  Result<std::vector<DirEntry>> entries = list_directory(restore_dir);
  if (!entries.ok()) return entries.status();
  std::vector<std::string> backups;
  for (const DirEntry& e : entries.value()) {
    if (fs::path(e.path).extension() == kBackupExtension) backups.push_back(restore_dir + "/" + e.path);
  }
  if (backups.size() > 1) return Status::invalid_argument(restore_dir + ": more than one backup waiting; leave one");
  if (!backups.empty()) return backups.front();
  if (!fs::exists(marker, ec)) return std::string();
  // The marker says "done" once node.meta names the restored state.
  Result<Bytes> says = read_file_bytes(marker);
  if (says.ok() && to_string(says.value()) == "done\n") {
    fs::remove(marker, ec);
    WALCUT_RETURN_IF_ERROR(sync_dir(restore_dir));
    return std::string();
  }
  return Status::corruption(marker + ": a restore from " + (says.ok() ? to_string(says.value()) : std::string("?")) +
                            " was interrupted and that backup is gone; put it back in " + restore_dir +
                            " to finish the restore");
}

// The backup must be of the node being opened: the one its node.meta
// names, or else the one it is opened as.
Status check_backup_identity(const std::string& path, const NodeMeta& backup, const std::string& node_dir,
                             const NodeMeta* expected) {
  Result<NodeMeta> existing = read_node_meta(node_dir);
  const NodeMeta* want = existing.ok() ? &existing.value() : expected;
  if (want && (want->node_id != backup.node_id || want->cluster_id != backup.cluster_id)) {
    return Status::invalid_argument(path + ": a backup of node " + backup.node_id + " of cluster " +
                                    std::to_string(backup.cluster_id) + ", but this is node " + want->node_id +
                                    " of cluster " + std::to_string(want->cluster_id) + "; refusing it");
  }
  if (!existing.ok() && existing.status().code() != StatusCode::kNotFound) return existing.status();
  return {};
}

// The APPLYING marker, naming the backup: from here every step is redone by the next open.
Status mark_applying(const std::string& marker, const std::string& restore_dir, const std::string& path) {
  std::error_code ec;
  if (fs::exists(marker, ec)) return {};
  WALCUT_RETURN_IF_ERROR(write_file_synced(marker, as_bytes(fs::path(path).filename().string())));
  return sync_dir(restore_dir);
}

// The backup's partitions written to <node_dir>/db.restore, beside the live ones.
Status stage_partitions(const std::string& node_dir, const BackupContents& b) {
  const NodeMeta& bm = b.meta.node;
  const std::string staged = node_dir + "/db.restore";
  std::error_code ec;
  fs::remove_all(staged, ec);
  for (const CacheGroup& g : bm.groups) WALCUT_RETURN_IF_ERROR(make_directories(staged + "/" + g.name));
  for (const auto& [pid, entries] : b.partitions) {
    const CacheGroup& g = *bm.group(pid.first);
    WALCUT_RETURN_IF_ERROR(
        write_partition_file(partition_path(staged, g, pid.second), {pid.first, pid.second, bm.node_index}, entries));
  }
  for (const CacheGroup& g : bm.groups) WALCUT_RETURN_IF_ERROR(sync_dir(staged + "/" + g.name));
  return sync_dir(staged);
}

// db/ swapped for the staged partitions; the old WAL belongs to the old state.
Status swap_in_staged(const std::string& node_dir) {
  const std::string db = node_dir + "/db", staged = node_dir + "/db.restore";
  std::error_code ec;
  fs::remove_all(db + ".old", ec);
  if (fs::exists(db, ec)) fs::rename(db, db + ".old", ec);
  if (ec) return Status::from_error_code("rename " + db, ec);
  fault::point("backup.swapping");
  fs::rename(staged, db, ec);
  if (ec) return Status::from_error_code("rename " + staged, ec);
  fs::remove_all(db + ".old", ec);
  fs::remove_all(node_dir + "/wal", ec);
  if (ec) return Status::from_error_code("remove " + node_dir + "/wal", ec);
  return sync_dir(node_dir);
}

// node.meta of the restored state: the partitions are a checkpoint, the WAL starts anew.
Status write_restored_meta(const std::string& node_dir, const NodeMeta& backup) {
  NodeMeta next = backup;
  next.checkpoint_id = backup.checkpoint_id + 1;
  next.checkpoint = {};
  next.wal_keep_from_segment = NodeMeta::kKeepNone;
  next.wal_durable_end = {};  // the backup's is its old WAL's
  return write_node_meta(node_dir, next);
}

// The restored state stands: the marker says so before the backup file goes, then goes too.
Status finish_restore(const std::string& marker, const std::string& restore_dir, const std::string& path) {
  WALCUT_RETURN_IF_ERROR(replace_file_synced(marker, as_bytes(std::string("done\n"))));
  std::error_code ec;
  fs::remove(path, ec);
  if (ec) return Status::from_error_code("remove " + path, ec);
  WALCUT_RETURN_IF_ERROR(sync_dir(restore_dir));
  fault::point("backup.file_removed");
  fs::remove(marker, ec);
  return sync_dir(restore_dir);
}

}  // namespace

Result<std::string> apply_waiting_backup(const std::string& node_dir, const NodeMeta* expected) {
  const std::string restore_dir = node_dir + "/" + kRestoreDir;
  const std::string marker = restore_dir + "/APPLYING";
  Result<std::string> path = waiting_backup(restore_dir, marker);
  if (!path.ok() || path->empty()) return path;
  Result<BackupContents> b = read_backup_file(path.value());
  if (!b.ok()) return b.status().with_context("refusing the backup");
  WALCUT_RETURN_IF_ERROR(check_backup_identity(path.value(), b->meta.node, node_dir, expected));
  WALCUT_RETURN_IF_ERROR(mark_applying(marker, restore_dir, path.value()));
  fault::point("backup.marked");
  WALCUT_RETURN_IF_ERROR(stage_partitions(node_dir, b.value()));
  fault::point("backup.staged");
  WALCUT_RETURN_IF_ERROR(swap_in_staged(node_dir));
  fault::point("backup.swapped");
  WALCUT_RETURN_IF_ERROR(write_restored_meta(node_dir, b->meta.node));
  fault::point("backup.meta_written");
  WALCUT_RETURN_IF_ERROR(finish_restore(marker, restore_dir, path.value()));
  return path;
}

}  // namespace walcut
