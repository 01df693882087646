// Cluster: a fixed baseline of nodes in one process, transactions across
// them (two-phase commit), atomic updates, checkpoints and full snapshots.
//
// Layout: <dir>/<node id>/... (see node.h), one directory per node.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <string>
#include <vector>

#include "engine/messenger.h"
#include "engine/node.h"

namespace walcut {

struct ClusterOptions {
  std::string dir;
  uint64_t cluster_id = 1;
  std::vector<std::string> node_ids;  // the baseline; node index = position
  std::vector<CacheGroup> groups;
  WriterOptions wal;                  // per-node WAL settings (dir and identity filled in)
};

class Cluster;

// A transaction: writes are buffered, then committed with 2PC from the
// coordinator node. Locks its keys from prepare to the end. Not
// thread-safe; use one per thread.
class Transaction {
 public:
  Transaction(Transaction&& other) noexcept;
  Transaction& operator=(Transaction&&) = delete;
  ~Transaction();
  Status put(const std::string& group, std::string key, std::string value);
  Status remove(const std::string& group, std::string key);
  // Phase one: PREPARED on every participating primary and backup.
  Status prepare();
  // Prepares if needed, then commits on every participant; returns once
  // every copy logged COMMITTED: the transaction is acknowledged.
  Status commit();
  // Before prepare: forgets the writes. After: ROLLED_BACK on every participant.
  Status rollback();
  const Version& xid() const { return xid_; }

 private:
  friend class Cluster;
  Transaction(Cluster& c, uint16_t coordinator, Version xid) : cluster_(&c), coordinator_(coordinator), xid_(xid) {}
  void release();
  Cluster* cluster_;
  uint16_t coordinator_;
  Version xid_;
  std::vector<TxWrite> writes_;
  std::vector<TxParticipant> participants_;
  bool prepared_ = false;
  bool finished_ = false;
  bool holds_gate_ = false;
};

class Cluster {
 public:
  // Creates the node directories, or opens (recovers) existing ones.
  static Result<std::unique_ptr<Cluster>> open(const ClusterOptions& options);
  ~Cluster();

  size_t size() const { return nodes_.size(); }
  Node& node(uint16_t index) { return *nodes_[index]; }
  const NodeMeta& meta() const { return nodes_[0]->meta(); }
  const Affinity& affinity() const { return nodes_[0]->affinity(); }
  Messenger& messenger() { return messenger_; }
  const CacheGroup* group(const std::string& name) const { return meta().group(name); }

  // A transaction coordinated by node `coordinator`.
  Transaction begin(uint16_t coordinator = 0);
  // An ATOMIC group's update: primary first, then its backups. An empty
  // value removes the key.
  Status atomic_put(const std::string& group, std::string key, std::optional<std::string> value,
                    uint16_t from = 0);
  // The value on the key's primary.
  std::optional<std::string> get(const std::string& group, const std::string& key) const;

  Status checkpoint();
  Status close();

  // Holds new transactions and waits for those in flight, for a snapshot.
  // Returned object releases on destruction.
  class Pause {
   public:
    explicit Pause(std::shared_mutex& m) : lock_(m) {}
   private:
    std::unique_lock<std::shared_mutex> lock_;
  };
  Pause pause_transactions() { return Pause(gate_); }

  // A new version ordered after every version this coordinator issued.
  Version next_version(uint16_t node);

 private:
  friend class Transaction;
  Cluster() = default;
  Message handle(const Message& m);
  void lock_keys(const std::vector<TxWrite>& writes);
  void unlock_keys(const std::vector<TxWrite>& writes);
  const CacheGroup* group_or_null(const std::string& name) const { return meta().group(name); }

  ClusterOptions options_;
  std::vector<std::unique_ptr<Node>> nodes_;
  Messenger messenger_;
  std::atomic<uint64_t> order_{0};
  // Transactions hold it shared from prepare to their end; a snapshot
  // holds it exclusive to let the ones in flight finish and start no new ones.
  std::shared_mutex gate_;
  std::mutex locks_mu_;
  std::condition_variable locks_cv_;
  std::set<std::pair<uint32_t, std::string>> locked_keys_;
};

}  // namespace walcut
