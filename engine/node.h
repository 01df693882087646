// A node: its WAL, its partition copies, checkpoints and crash recovery.
//
// A node owns the directory <dir> = <cluster>/<node id>:
//   node.meta                     identity, baseline, groups, last checkpoint
//   wal/NNNNNNNNNNNNNNNN.wal      its write-ahead log
//   db/<group>/part-<p>.bin       partition copies as of the last checkpoint
// It holds in memory every partition copy that affinity gives it (as
// primary or backup). The Cluster drives it with the 2PC calls below; a
// program can also drive one node directly.
#pragma once

#include <atomic>
#include <functional>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <vector>

#include "cut/cut_tracker.h"
#include "engine/affinity.h"
#include "engine/node_meta.h"
#include "engine/partition.h"
#include "io/block_reader.h"
#include "io/file_util.h"
#include "io/wal_writer.h"

namespace walcut {

// One write of a transaction. `value` is empty for a remove.
struct TxWrite {
  uint32_t group_id = 0;
  uint16_t partition = 0;
  std::string key;
  std::optional<std::string> value;
};

struct NodeOptions {
  std::string dir;
  // For a new node (no node.meta yet): identity, baseline and groups.
  // An existing node's node.meta wins; a mismatch with these is refused.
  NodeMeta meta;
  // The WAL writer's settings (dir, identity are filled in by the node).
  WriterOptions wal;
  // Open without writing anything: no WAL writer, no files changed.
  bool read_only = false;
  // Either way the node holds an flock on <dir> until close(): exclusive,
  // or shared when read-only. A directory another open holds is refused
  // at once: "<dir>: busy: ...".
};

// What opening the node found and did.
struct RecoveryReport {
  bool created = false;
  uint64_t partitions_loaded = 0;       // partition files read
  WalPointer replay_from;               // the checkpoint replay started after
  uint64_t records_replayed = 0;
  uint64_t transactions_applied = 0;    // COMMITTED after the checkpoint
  uint64_t transactions_discarded = 0;  // prepared or logged, never committed
  uint64_t atomic_updates_applied = 0;
  LogEnd wal_end;                       // how the WAL ended (torn tail or clean)
  std::string restored_backup;          // the backup applied before anything else, if any
};

// What a node has logged for a transaction: PREPARED, COMMITTED (with the
// commit version and decision cut id it logged) or ROLLED_BACK.
struct TxLogged {
  TxState state = TxState::kPrepared;
  Version commit_version;
  uint64_t cut_id = 0;
  std::vector<TxParticipant> participants;
  // The writes to this node's partitions as a DATA payload: PREPARED's
  // (versionless), or COMMITTED's. None from a PREPARED record written
  // before PREPARED carried them.
  std::optional<Bytes> writes;
};

class Node {
 public:
  // Opens <dir>: creates a new node, or recovers an existing one (load the
  // partition files of the last checkpoint, replay the WAL after it,
  // discarding transactions that never committed; a torn WAL tail is
  // dropped). Refuses damaged partition files, naming them.
  static Result<std::unique_ptr<Node>> open(const NodeOptions& options);
  ~Node();

  const NodeMeta& meta() const { return meta_; }
  const Affinity& affinity() const { return affinity_; }
  const RecoveryReport& recovery() const { return recovery_; }
  const std::string& dir() const { return options_.dir; }
  uint16_t index() const { return meta_.node_index; }

  // ---- 2PC participant. Each returns once its records are durable (per
  // the WAL's sync policy); the caller acknowledges only after that.
  // Logs PREPARED with the writes to partitions this node holds, so that
  // the transaction can be committed from the WAL alone.
  Status prepare(const Version& xid, uint64_t cut_id, const std::vector<TxParticipant>& participants,
                 const std::vector<TxWrite>& writes);
  // Logs DATA (the writes to partitions this node holds) and COMMITTED in
  // one append, then applies them.
  Status commit(const Version& xid, const Version& commit_version, uint64_t cut_id,
                const std::vector<TxParticipant>& participants, const std::vector<TxWrite>& writes);
  // Logs ROLLED_BACK.
  Status rollback(const Version& xid, uint64_t cut_id, const std::vector<TxParticipant>& participants);
  // An ATOMIC group's single-key update: logs DATA, applies it.
  Status apply_atomic(const TxWrite& write, const Version& version);

  // The current value of a key in a partition this node holds.
  std::optional<StoredValue> read(uint32_t group_id, uint16_t partition, const std::string& key) const;
  // Every partition copy this node holds, for dumps and checks.
  std::map<PartitionId, std::shared_ptr<const EntryMap>> share_partitions() const;

  // Writes the partitions changed since the last checkpoint, then records
  // the checkpoint in node.meta, then drops WAL segments nobody needs.
  // Commits are held only while the CHECKPOINT record is appended, and
  // after it the last TX record of each transaction `still_open` says has
  // not ended on every node (with its writes), so that a replay from the
  // checkpoint still finds what this node logged for it.
  Status checkpoint(const std::function<bool(const Version&)>& still_open = {});
  // The cluster learned that the transaction ended on every node: it need
  // not be logged again at a checkpoint.
  void forget_transaction(const Version& xid);
  void forget_transactions();

  // Appends `payload` under the exclusive apply lock and returns its
  // pointer together with an image of every partition consistent with it:
  // every record before the pointer is in the image, none after.
  struct Image {
    WalPointer pointer;
    std::map<PartitionId, std::shared_ptr<const EntryMap>> partitions;
  };
  Result<Image> append_marker(const RecordPayload& payload);
  // Keeps WAL segments from `segment` on (for a snapshot's increments).
  Status keep_wal_from(uint64_t segment);
  // Persists a new topology version (the cluster raises it at each start).
  Status set_topology_version(uint32_t v);

  // ---- The consistent cut (cut/cut_tracker.h): starts cut `id` if it is
  // newer than the one the node knows, logging its START record.
  Status observe_cut(uint64_t id);
  // The node's cut state: its newest cut id, its finished cuts.
  const CutTracker& cut() const { return cut_; }
  // A restarted node learns the newest cut id of the cluster (CutTracker::adopt).
  void adopt_cut_id(uint64_t id) { cut_.adopt(id); }

  // ---- Online backup (engine/backup.h). Writes every partition this node
  // holds, as of one WAL pointer, to `path`. Commits are held only while
  // that point is marked (a copy-on-write image of the partitions is
  // taken); the file is written while they go on. Works on a read-only
  // node too (a node that is not running), at the end of its WAL. A path
  // inside the node's own directory is refused (kInvalidArgument).
  Status backup(const std::string& path);

  // Syncs the WAL, records its durable end in node.meta, and closes it,
  // then lets go of the directory's lock. No checkpoint: the next open
  // replays.
  Status close();
  // The node's process dies: nothing more is written or synced (what an
  // open WAL block holds is lost), node.meta is left as it is, and the
  // directory's lock is let go. The files are as a crash leaves them.
  void crash();

  // The transactions whose TX records open() replayed (after the
  // checkpoint), with the last state each reached, handed over once, for
  // the recovery of transactions in doubt.
  std::map<Version, TxLogged> take_replayed_transactions() { return std::move(replayed_tx_); }
  // The newest cut id open() saw: last_cut_id, START records and TX records' decision ids.
  uint64_t replayed_newest_cut_id() const { return replayed_newest_cut_; }
  // The greatest `order` of a version in the partitions and WAL open() read.
  uint64_t replayed_newest_order() const { return replayed_newest_order_; }
  // A transaction replayed as PREPARED that the cluster will resolve: the
  // next cut waits for its outcome, as for one prepared since open.
  void hold_in_doubt(const Version& xid) { cut_.tx_prepared(xid); }

  WalWriter* wal() { return wal_.get(); }
  std::string wal_dir() const { return options_.dir + "/wal"; }

 private:
  explicit Node(const NodeOptions& options);
  Status create();
  Status recover();
  Status load_partitions();
  Status replay_wal();
  Partition* partition(uint32_t group_id, uint16_t partition);
  Status drop_old_segments();
  Status update_meta(const std::function<void(NodeMeta&)>& change);
  void adopt(const NodeMeta& next);

  NodeOptions options_;
  FileLock lock_;  // on options_.dir, from open to close
  NodeMeta meta_;
  Affinity affinity_;
  RecoveryReport recovery_;
  std::unique_ptr<WalWriter> wal_;

  // Commits hold it shared from their WAL append to their apply; a
  // checkpoint or snapshot marker holds it exclusive, so its image matches
  // its WAL pointer.
  mutable std::shared_mutex apply_mu_;
  // Guards the partition map's contents.
  mutable std::mutex partitions_mu_;
  std::map<PartitionId, Partition> partitions_;
  std::mutex checkpoint_mu_;  // one checkpoint at a time

  // Logs FINISH once the running cut has no transaction left to wait for.
  Status finish_cut_if_ready();
  CutTracker cut_;
  std::map<Version, TxLogged> replayed_tx_;  // from open() until taken
  uint64_t replayed_newest_cut_ = 0;
  uint64_t replayed_newest_order_ = 0;
  // What this node logged for each transaction not known to have ended on every node.
  void note_transaction(const Version& xid, TxLogged logged);
  void note_replayed(TxLogged& logged, const TxRecord& tx, const std::vector<DataEntry>& data);
  Status log_open_transactions_again(const std::function<bool(const Version&)>& still_open);
  std::mutex open_tx_mu_;
  std::map<Version, TxLogged> open_tx_;
};

}  // namespace walcut
