#include "engine/node.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <unordered_map>

#include "engine/backup.h"
#include "engine/partition_file.h"
#include "io/block.h"
#include "io/record_reader.h"
#include "io/fault.h"
#include "io/file_util.h"

namespace walcut {

namespace fs = std::filesystem;

Node::Node(const NodeOptions& options) : options_(options) {}

Node::~Node() { (void)close(); }

Result<std::unique_ptr<Node>> Node::open(const NodeOptions& options) {
  std::unique_ptr<Node> node(new Node(options));
  // One open at a time (read-only ones may share), before anything is read.
  // A new node's directory is made first so that it can be locked; any
  // other missing directory fails below, with nothing written.
  if (!options.read_only && !options.meta.node_id.empty()) {
    WALCUT_RETURN_IF_ERROR(make_directories(options.dir));
  }
  const FileLock::Mode mode = options.read_only ? FileLock::Mode::kShared : FileLock::Mode::kExclusive;
  Result<FileLock> lock = FileLock::lock_directory(options.dir, options.dir, /*wait=*/false, mode);
  if (lock.ok()) {
    node->lock_ = std::move(lock).value();
  } else if (lock.status().code() != StatusCode::kNotFound) {
    return lock.status();
  }
  // A backup waiting in restore/ goes first, before the node serves anything.
  if (!options.read_only) {
    Result<std::string> restored =
        apply_waiting_backup(options.dir, options.meta.node_id.empty() ? nullptr : &options.meta);
    if (!restored.ok()) return restored.status();
    node->recovery_.restored_backup = std::move(restored).value();
  }
  Result<NodeMeta> meta = read_node_meta(options.dir);
  if (meta.ok()) {
    const NodeMeta& want = options.meta;
    if ((!want.node_id.empty() && want.node_id != meta->node_id) || (want.cluster_id != 0 && want.cluster_id != meta->cluster_id)) {
      return Status::invalid_argument(options.dir + ": holds node " + meta->node_id + " of cluster " +
                                      std::to_string(meta->cluster_id) + ", expected node " + want.node_id +
                                      " of cluster " + std::to_string(want.cluster_id));
    }
    node->meta_ = meta.value();
  } else if (meta.status().code() == StatusCode::kNotFound && !options.read_only) {
    WALCUT_RETURN_IF_ERROR(node->create());
  } else {
    return meta.status();
  }
  WALCUT_RETURN_IF_ERROR(node->recover());
  return node;
}

Status Node::create() {
  const NodeMeta& m = options_.meta;
  if (m.node_id.empty() || m.node_index >= m.baseline.size() || m.baseline[m.node_index] != m.node_id) {
    return Status::invalid_argument("node " + m.node_id + " must be at index " + std::to_string(m.node_index) +
                                    " of the baseline");
  }
  WALCUT_RETURN_IF_ERROR(validate_node_names(m));
  WALCUT_RETURN_IF_ERROR(validate_groups(m.groups));
  WALCUT_RETURN_IF_ERROR(make_directories(options_.dir + "/db"));
  meta_ = m;
  meta_.checkpoint_id = 0;
  meta_.checkpoint = {};
  recovery_.created = true;
  return write_node_meta(options_.dir, meta_);
}

Status Node::recover() {
  affinity_ = Affinity(meta_.groups, meta_.baseline);
  cut_.reset(meta_.node_id, meta_.last_cut_id);
  for (const CacheGroup& g : meta_.groups) {
    for (uint16_t p = 0; p < g.partitions; ++p) {
      if (affinity_.owns(g.id, p, meta_.node_index)) partitions_.emplace(PartitionId{g.id, p}, Partition{});
    }
  }
  WALCUT_RETURN_IF_ERROR(load_partitions());
  WALCUT_RETURN_IF_ERROR(replay_wal());
  if (options_.read_only) return {};
  WriterOptions w = options_.wal;
  w.dir = wal_dir();
  w.cluster_id = meta_.cluster_id;
  w.node_index = meta_.node_index;
  Result<std::unique_ptr<WalWriter>> writer = WalWriter::open(w);
  if (!writer.ok()) return writer.status();
  wal_ = std::move(writer).value();
  return {};
}

Status Node::load_partitions() {
  const std::string db = options_.dir + "/db";
  for (auto& [id, part] : partitions_) {
    const CacheGroup& g = *meta_.group(id.first);
    std::string path = partition_path(db, g, id.second);
    std::error_code ec;
    if (!fs::exists(path, ec)) continue;  // never checkpointed with data
    Result<PartitionFile> file = read_partition_file(path);
    if (!file.ok()) return file.status();
    const PartitionFileInfo& info = file->info;
    if (info.group_id != g.id || info.partition != id.second || info.node_index != meta_.node_index) {
      return Status::corruption(path + ": holds group " + std::to_string(info.group_id) + " partition " +
                                std::to_string(info.partition) + " of node " + std::to_string(info.node_index));
    }
    for (const auto& [key, v] : file->entries) replayed_newest_order_ = std::max(replayed_newest_order_, v.version.order);
    part = Partition(std::move(file->entries));
    ++recovery_.partitions_loaded;
  }
  return {};
}

// Replays the records after the checkpoint. A transaction's changes are
// applied at its COMMITTED record; one that never committed (its node
// died first, so it was never acknowledged) leaves no trace.
Status Node::replay_wal() {
  Result<std::vector<std::string>> all = list_segment_files(wal_dir());
  if (!all.ok() && fs::exists(wal_dir())) return all.status();
  std::vector<std::string> paths;  // none when wal/ is missing
  for (const std::string& p : all.ok() ? all.value() : std::vector<std::string>{}) {
    if (*parse_segment_file_name(fs::path(p).filename().string()) >= meta_.checkpoint.segment) paths.push_back(p);
  }
  recovery_.replay_from = meta_.checkpoint;
  replayed_newest_cut_ = meta_.last_cut_id;
  if (paths.empty()) {
    if (meta_.wal_durable_end == WalPointer{}) return {};
    return Status::corruption(wal_dir() + ": no WAL segment from " + std::to_string(meta_.checkpoint.segment) +
                              " on, but node.meta records the WAL synced up to " + meta_.wal_durable_end.to_string());
  }
  BlockReaderOptions ro;
  ro.cluster_id = meta_.cluster_id;
  ro.node_index = meta_.node_index;
  ro.durable_end = meta_.wal_durable_end;  // damage before it is corruption, not a torn tail
  Result<std::unique_ptr<BlockReader>> reader = BlockReader::open(paths, ro);
  if (!reader.ok()) return reader.status();

  struct OwnedEntry {
    DataEntry view;
    std::string key, value;
  };
  std::map<Version, std::vector<OwnedEntry>> pending;
  auto apply = [&](const DataEntry& e) {
    if (Partition* p = partition(e.group_id, e.partition)) p->apply(e);
  };
  Status s = for_each_record(**reader, [&](const Block&, const RecordView& r) -> Status {
    if (meta_.checkpoint_id != 0 && r.pointer <= meta_.checkpoint) return {};
    ++recovery_.records_replayed;
    if (r.type == RecordType::kData) {
      return for_each_data_entry(r.payload, [&](const DataEntry& e) {
        replayed_newest_order_ = std::max({replayed_newest_order_, e.write_version.order, e.near_xid.order});
        if (e.near_xid.is_null()) {
          apply(e);
          ++recovery_.atomic_updates_applied;
          return;
        }
        OwnedEntry o{e, to_string(e.key), to_string(e.value)};
        pending[e.near_xid].push_back(std::move(o));
      });
    }
    if (r.type == RecordType::kIncSnapshotStart) {
      Result<RecordPayload> p = decode_payload(r.type, r.payload);
      if (!p.ok()) return Status::corruption("record " + r.pointer.to_string() + ": " + p.status().message());
      replayed_newest_cut_ = std::max(replayed_newest_cut_, std::get<IncSnapshotStartRecord>(p.value()).cut_id);
      return {};
    }
    if (r.type != RecordType::kTx) return {};
    Result<RecordPayload> p = decode_payload(r.type, r.payload);
    if (!p.ok()) return Status::corruption("record " + r.pointer.to_string() + ": " + p.status().message());
    const TxRecord& tx = std::get<TxRecord>(p.value());
    replayed_newest_cut_ = std::max(replayed_newest_cut_, tx.cut_id);
    replayed_newest_order_ = std::max(replayed_newest_order_, tx.near_xid.order);
    auto it = pending.find(tx.near_xid);
    if (!options_.read_only) {
      std::vector<DataEntry> data;
      if (it != pending.end()) {
        for (OwnedEntry& o : it->second) {
          o.view.key = as_bytes(o.key);
          o.view.value = as_bytes(o.value);
          data.push_back(o.view);
        }
      }
      note_replayed(replayed_tx_[tx.near_xid], tx, data);
    }
    // Writes a TX record carries are never applied here: PREPARED's wait for an outcome, and a COMMITTED
    // logged again after a checkpoint has its DATA before it, in the partition files.
    if (tx.state == TxState::kPrepared) return {};
    if (tx.state == TxState::kCommitted) {
      if (it != pending.end()) {
        for (OwnedEntry& o : it->second) {
          o.view.key = as_bytes(o.key);
          o.view.value = as_bytes(o.value);
          apply(o.view);
        }
      }
      ++recovery_.transactions_applied;
    } else {
      ++recovery_.transactions_discarded;
    }
    if (it != pending.end()) pending.erase(it);
    return {};
  });
  WALCUT_RETURN_IF_ERROR(s);
  recovery_.transactions_discarded += pending.size();
  recovery_.wal_end = (*reader)->end();
  open_tx_ = replayed_tx_;  // logged again at the next checkpoint while the cluster has not resolved them
  return {};
}

// The latest TX record of a transaction over what was known of it; `data`,
// the DATA entries logged with a COMMITTED record, become its writes, so
// that a copy logged again at a checkpoint keeps the commit version.
void Node::note_replayed(TxLogged& logged, const TxRecord& tx, const std::vector<DataEntry>& data) {
  logged.state = tx.state;
  logged.cut_id = tx.cut_id;
  logged.participants = tx.participants;
  if (!data.empty() && tx.state == TxState::kCommitted) {
    Bytes payload;
    for (const DataEntry& e : data) append_data_entry(payload, e);
    finish_data_payload(payload, static_cast<uint32_t>(data.size()));
    logged.commit_version = data.front().write_version;
    logged.writes = std::move(payload);
  } else if (tx.has_writes) {
    logged.writes = Bytes(tx.writes.begin(), tx.writes.end());
    if (tx.state == TxState::kCommitted && tx.writes.size() > 4) {
      (void)for_each_data_entry(tx.writes, [&](const DataEntry& e) { logged.commit_version = e.write_version; });
    }
  } else if (tx.state != TxState::kPrepared) {
    logged.writes.reset();
  }
}

Partition* Node::partition(uint32_t group_id, uint16_t partition) {
  auto it = partitions_.find(PartitionId{group_id, partition});
  return it == partitions_.end() ? nullptr : &it->second;
}

namespace {

Bytes data_payload(const std::vector<TxWrite>& writes, const Version& xid, const Version& version,
                   const std::function<bool(const TxWrite&)>& exists, const std::function<bool(const TxWrite&)>& held) {
  Bytes payload;
  uint32_t n = 0;
  for (const TxWrite& w : writes) {
    if (!held(w)) continue;
    DataEntry e;
    e.group_id = w.group_id;
    e.partition = w.partition;
    e.op = !w.value ? EntryOp::kDelete : exists(w) ? EntryOp::kUpdate : EntryOp::kCreate;
    e.write_version = version;
    e.near_xid = xid;
    e.key = as_bytes(w.key);
    if (w.value) e.value = as_bytes(*w.value);
    append_data_entry(payload, e);
    ++n;
  }
  finish_data_payload(payload, n);
  return payload;
}

}  // namespace

Status Node::prepare(const Version& xid, uint64_t cut_id, const std::vector<TxParticipant>& participants,
                     const std::vector<TxWrite>& writes) {
  if (!wal_) return Status::invalid_argument(options_.dir + ": node is read-only or closed");
  auto held = [&](const TxWrite& w) { return partitions_.count(PartitionId{w.group_id, w.partition}) > 0; };
  auto exists = [&](const TxWrite& w) { return read(w.group_id, w.partition, w.key).has_value(); };
  Bytes data = data_payload(writes, xid, Version{}, exists, held);  // the commit version is not known yet
  // Shared with a cut's START: a PREPARED record before START is in the
  // active set START takes.
  std::shared_lock<std::shared_mutex> apply_lock(apply_mu_);
  WALCUT_RETURN_IF_ERROR(wal_->append(TxRecord{TxState::kPrepared, xid, cut_id, participants, true, data}).status());
  note_transaction(xid, TxLogged{TxState::kPrepared, {}, cut_id, participants, std::move(data)});
  cut_.tx_prepared(xid);
  return {};
}

void Node::note_transaction(const Version& xid, TxLogged logged) {
  std::lock_guard<std::mutex> lock(open_tx_mu_);
  open_tx_[xid] = std::move(logged);
}

void Node::forget_transaction(const Version& xid) {
  std::lock_guard<std::mutex> lock(open_tx_mu_);
  open_tx_.erase(xid);
}

void Node::forget_transactions() {
  std::lock_guard<std::mutex> lock(open_tx_mu_);
  open_tx_.clear();
}

Status Node::rollback(const Version& xid, uint64_t cut_id, const std::vector<TxParticipant>& participants) {
  if (!wal_) return Status::invalid_argument(options_.dir + ": node is read-only or closed");
  {
    std::shared_lock<std::shared_mutex> apply_lock(apply_mu_);
    WALCUT_RETURN_IF_ERROR(wal_->append(TxRecord{TxState::kRolledBack, xid, cut_id, participants}).status());
    note_transaction(xid, TxLogged{TxState::kRolledBack, {}, cut_id, participants, std::nullopt});
    cut_.tx_finished(xid, false, cut_id);
  }
  return finish_cut_if_ready();
}

Status Node::commit(const Version& xid, const Version& commit_version, uint64_t cut_id,
                    const std::vector<TxParticipant>& participants, const std::vector<TxWrite>& writes) {
  if (!wal_) return Status::invalid_argument(options_.dir + ": node is read-only or closed");
  auto held = [&](const TxWrite& w) { return partitions_.count(PartitionId{w.group_id, w.partition}) > 0; };
  auto exists = [&](const TxWrite& w) { return read(w.group_id, w.partition, w.key).has_value(); };
  Bytes data = data_payload(writes, xid, commit_version, exists, held);
  Bytes committed = encode_payload(TxRecord{TxState::kCommitted, xid, cut_id, participants});
  RecordRef records[] = {{RecordType::kData, data}, {RecordType::kTx, committed}};
  {
    std::shared_lock<std::shared_mutex> apply_lock(apply_mu_);
    WALCUT_RETURN_IF_ERROR(wal_->append(records).status());
    {
      std::lock_guard<std::mutex> lock(partitions_mu_);
      WALCUT_RETURN_IF_ERROR(
          for_each_data_entry(data, [&](const DataEntry& e) { partition(e.group_id, e.partition)->apply(e); }));
    }
    note_transaction(xid, TxLogged{TxState::kCommitted, commit_version, cut_id, participants, std::move(data)});
    cut_.tx_finished(xid, true, cut_id);
  }
  return finish_cut_if_ready();
}

Status Node::apply_atomic(const TxWrite& write, const Version& version) {
  if (!wal_) return Status::invalid_argument(options_.dir + ": node is read-only or closed");
  if (partitions_.count(PartitionId{write.group_id, write.partition}) == 0) {
    return Status::invalid_argument("node " + meta_.node_id + " holds no copy of group " +
                                    std::to_string(write.group_id) + " partition " + std::to_string(write.partition));
  }
  auto exists = [&](const TxWrite& w) { return read(w.group_id, w.partition, w.key).has_value(); };
  Bytes data = data_payload({write}, Version{}, version, exists, [](const TxWrite&) { return true; });
  std::shared_lock<std::shared_mutex> apply_lock(apply_mu_);
  WALCUT_RETURN_IF_ERROR(wal_->append(RecordType::kData, data).status());
  std::lock_guard<std::mutex> lock(partitions_mu_);
  return for_each_data_entry(data, [&](const DataEntry& e) { partition(e.group_id, e.partition)->apply(e); });
}

std::optional<StoredValue> Node::read(uint32_t group_id, uint16_t partition_id, const std::string& key) const {
  std::lock_guard<std::mutex> lock(partitions_mu_);
  auto it = partitions_.find(PartitionId{group_id, partition_id});
  if (it == partitions_.end()) return std::nullopt;
  const StoredValue* v = it->second.find(key);
  return v ? std::optional<StoredValue>(*v) : std::nullopt;
}

std::map<PartitionId, std::shared_ptr<const EntryMap>> Node::share_partitions() const {
  std::lock_guard<std::mutex> lock(partitions_mu_);
  std::map<PartitionId, std::shared_ptr<const EntryMap>> out;
  for (const auto& [id, p] : partitions_) out.emplace(id, p.share());
  return out;
}

Result<Node::Image> Node::append_marker(const RecordPayload& payload) {
  if (!wal_) return Status::invalid_argument(options_.dir + ": node is read-only or closed");
  std::unique_lock<std::shared_mutex> apply_lock(apply_mu_);
  Result<WalPointer> p = wal_->append(payload);
  if (!p.ok()) return p.status();
  WALCUT_RETURN_IF_ERROR(wal_->sync());
  return Image{p.value(), share_partitions()};
}

Status Node::checkpoint(const std::function<bool(const Version&)>& still_open) {
  if (!wal_) return Status::invalid_argument(options_.dir + ": node is read-only or closed");
  std::lock_guard<std::mutex> one(checkpoint_mu_);
  const uint64_t id = meta_.checkpoint_id + 1;
  WalPointer pointer;
  std::vector<std::pair<PartitionId, std::shared_ptr<const EntryMap>>> dirty;
  {
    std::unique_lock<std::shared_mutex> apply_lock(apply_mu_);
    Result<WalPointer> p = wal_->append(CheckpointRecord{id});
    if (!p.ok()) return p.status();
    pointer = p.value();
    WALCUT_RETURN_IF_ERROR(log_open_transactions_again(still_open));
    std::lock_guard<std::mutex> lock(partitions_mu_);
    for (auto& [pid, part] : partitions_) {
      if (!part.dirty()) continue;
      dirty.emplace_back(pid, part.share());
      part.mark_clean();
    }
  }
  // Written without holding commits back: the images are copy-on-write.
  auto redirty = [&](Status s) {
    std::lock_guard<std::mutex> lock(partitions_mu_);
    for (auto& [pid, image] : dirty) partitions_.at(pid).mark_dirty();
    return s;
  };
  const std::string db = options_.dir + "/db";
  std::map<std::string, bool> group_dirs;
  for (auto& [pid, image] : dirty) {
    const CacheGroup& g = *meta_.group(pid.first);
    std::string dir = db + "/" + g.name;
    if (group_dirs.emplace(dir, true).second) {
      Status made = make_directories(dir);
      if (!made.ok()) return redirty(made);
    }
    Status s = write_partition_file(partition_path(db, g, pid.second), {pid.first, pid.second, meta_.node_index}, *image);
    if (!s.ok()) return redirty(s);
    fault::point("checkpoint.partition");
  }
  group_dirs.emplace(db, true);  // a new group directory's own entry
  for (const auto& [dir, unused] : group_dirs) {
    Status s = sync_dir(dir);
    if (!s.ok()) return redirty(s);
  }
  // node.meta may name the CHECKPOINT record only once the record is durable,
  // or a crash could leave recovery skipping records written after it.
  {
    Status synced = wal_->sync();
    if (!synced.ok()) return redirty(synced);
  }
  fault::point("checkpoint.before_meta");
  NodeMeta next = meta_;
  next.checkpoint_id = id;
  next.checkpoint = pointer;
  next.wal_durable_end = wal_->durable_end();
  Status s = write_node_meta(options_.dir, next);
  if (!s.ok()) return redirty(s);
  adopt(next);
  return drop_old_segments();
}

// After a CHECKPOINT record, under the exclusive apply lock: the last TX record of every transaction still open in
// the cluster, so that a replay from this checkpoint (a crash of the whole cluster) can resolve it.
Status Node::log_open_transactions_again(const std::function<bool(const Version&)>& still_open) {
  std::lock_guard<std::mutex> lock(open_tx_mu_);
  for (auto it = open_tx_.begin(); it != open_tx_.end();) {
    if (!still_open || !still_open(it->first)) {
      it = open_tx_.erase(it);
      continue;
    }
    const TxLogged& l = it->second;
    TxRecord again{l.state, it->first, l.cut_id, l.participants, l.writes.has_value(), {}, true};
    if (l.writes) again.writes = *l.writes;
    WALCUT_RETURN_IF_ERROR(wal_->append(again).status());
    ++it;
  }
  return {};
}

Status Node::keep_wal_from(uint64_t segment) {
  return update_meta([&](NodeMeta& m) { m.wal_keep_from_segment = segment; });
}

Status Node::set_topology_version(uint32_t v) {
  return update_meta([&](NodeMeta& m) { m.topology_version = v; });
}

Status Node::update_meta(const std::function<void(NodeMeta&)>& change) {
  if (options_.read_only) return Status::invalid_argument(options_.dir + ": node is read-only");
  std::lock_guard<std::mutex> one(checkpoint_mu_);
  NodeMeta next = meta_;
  change(next);
  if (wal_) next.wal_durable_end = wal_->durable_end();
  WALCUT_RETURN_IF_ERROR(write_node_meta(options_.dir, next));
  adopt(next);
  return {};
}

// Only the fields that change while the node runs: identity, baseline and
// groups are read by other threads without a lock and never change.
void Node::adopt(const NodeMeta& next) {
  if (meta_.topology_version != next.topology_version) meta_.topology_version = next.topology_version;
  meta_.checkpoint_id = next.checkpoint_id;
  meta_.checkpoint = next.checkpoint;
  meta_.wal_keep_from_segment = next.wal_keep_from_segment;
  meta_.last_cut_id = next.last_cut_id;
  meta_.wal_durable_end = next.wal_durable_end;
}

// Segments wholly before the checkpoint are not needed for recovery; they
// go unless a snapshot keeps them for its increments.
Status Node::drop_old_segments() {
  uint64_t keep_from = std::min(meta_.checkpoint.segment, meta_.wal_keep_from_segment);
  Result<std::vector<std::string>> segments = list_segment_files(wal_dir());
  if (!segments.ok()) return segments.status();
  for (const std::string& p : segments.value()) {
    if (*parse_segment_file_name(fs::path(p).filename().string()) >= keep_from) break;
    std::error_code ec;
    fs::remove(p, ec);
    if (ec) return Status::from_error_code("remove " + p, ec);
  }
  return {};
}

Status Node::backup(const std::string& path) {
  if (path_is_within(path, options_.dir)) {
    return Status::invalid_argument(path + ": inside the directory of node " + meta_.node_id + " (" + options_.dir +
                                    ") that it would back up; write the backup outside the node");
  }
  BackupMeta m;
  std::map<PartitionId, std::shared_ptr<const EntryMap>> image;
  if (wal_) {
    // The consistent point: no commit is between its WAL append and its apply.
    std::unique_lock<std::shared_mutex> apply_lock(apply_mu_);
    m.consistent = wal_->next_pointer();
    image = share_partitions();
  } else {
    m.consistent = recovery_.wal_end.next;
    image = share_partitions();
  }
  {
    std::lock_guard<std::mutex> one(checkpoint_mu_);
    m.node = meta_;
  }
  return write_backup_file(path, m, image);
}

Status Node::observe_cut(uint64_t id) {
  Result<bool> is_new = cut_.is_new(id);
  if (!is_new.ok() || !is_new.value()) return is_new.status();
  if (!wal_) return Status::invalid_argument(options_.dir + ": node is read-only or closed");
  {
    // Commits held: the active set START takes matches the WAL up to it.
    std::unique_lock<std::shared_mutex> apply_lock(apply_mu_);
    WALCUT_RETURN_IF_ERROR(cut_.start(id, [&] { return wal_->append(IncSnapshotStartRecord{id}); }));
  }
  return finish_cut_if_ready();
}

Status Node::finish_cut_if_ready() {
  return cut_.finish_cut_if_ready([&](const IncSnapshotFinishRecord& finish) -> Result<WalPointer> {
    // FINISH and the rollover in one request: no record lands between them,
    // so an increment is a set of whole segments.
    Result<WalPointer> at = wal_->append_then_rollover(finish);
    if (!at.ok()) return at;
    WALCUT_RETURN_IF_ERROR(update_meta([&](NodeMeta& m) { m.last_cut_id = finish.cut_id; }));
    return at;
  });
}

void Node::crash() {
  if (wal_) wal_->abandon();
  wal_.reset();
  lock_.release();
}

// Records in node.meta where the synced WAL ends, so that the next open
// takes damage before that point for corruption, not a torn tail.
Status Node::close() {
  Status s;
  if (wal_) {
    s = wal_->close();
    fault::point("node.close");  // WAL synced, its end not yet in node.meta
    if (s.ok()) s = update_meta([](NodeMeta&) {});
  }
  wal_.reset();
  lock_.release();
  return s;
}

}  // namespace walcut
