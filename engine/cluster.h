// Cluster: a fixed baseline of nodes in one process, transactions across
// them (two-phase commit), atomic updates, checkpoints and full snapshots.
//
// Layout: <dir>/<node id>/... (see node.h), one directory per node.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <deque>
#include <map>
#include <optional>
#include <memory>
#include <tuple>
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

// How the recovery of a transaction in doubt decides (docs/engine.md,
// "Recovery of a transaction in doubt"), from what each participant logged.
struct Verdict {
  bool commit = false;
  std::optional<uint16_t> committed_by;  // a participant that logged COMMITTED
  std::string recovery;                  // "committed: ...", "rolled back: ..."
};
Verdict judge_in_doubt(const std::set<uint16_t>& participants, const std::map<uint16_t, TxLogged>& votes,
                       const std::vector<std::string>& node_ids);

// A transaction's outcome as the WALs told it when the cluster opened.
struct TxOutcome {
  bool committed = false;
  Version commit_version;
  uint64_t cut_id = 0;    // the decision's cut id
  std::string recovery;   // how it was resolved at open; empty when every node had ended it
};

// A transaction in flight, as its coordinator sees it.
struct TxFlight {
  enum class Phase { kPreparing, kPrepared, kCommitting, kRollingBack, kAtomic, kDone };
  Version xid;
  uint16_t coordinator = 0;
  std::vector<TxWrite> writes;
  std::vector<TxParticipant> participants;
  Phase phase = Phase::kPreparing;
  enum class Then { kWait, kCommit, kRollback };
  Then then = Then::kWait;  // what to do once every participant has prepared
  bool committed = false;       // ended with COMMITTED everywhere
  size_t waiting = 0;           // answers still due in this phase
  Status status;                // the first failure
  Version commit_version;
  uint64_t tx_cut_id = 0;       // the coordinator's cut id when it decided to commit
  std::function<void(const TxFlight&)> done;
  // What each participant (node index) logged, as its call returned.
  std::map<uint16_t, TxLogged> logged;
  // Ended by the recovery of a transaction in doubt: how it was resolved.
  std::string recovery;
  // An atomic update that a node's crash cut short: its copies may differ.
  bool interrupted = false;
};

// A transaction: writes are buffered, then committed with 2PC from the
// coordinator node. Locks its keys from prepare to the end. Not
// thread-safe; use one per thread. Needs immediate message delivery.
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
  std::shared_ptr<TxFlight> flight_;
  bool finished_ = false;
  bool holds_gate_ = false;
};

class Cluster {
 public:
  // Creates the node directories, or opens (recovers) existing ones.
  static Result<std::unique_ptr<Cluster>> open(const ClusterOptions& options);
  ~Cluster();

  size_t size() const { return nodes_.size(); }
  // Node `index`, which must be up.
  Node& node(uint16_t index) { return *nodes_[index]; }
  // The identity, baseline and groups of the cluster (node 0's node.meta at open).
  const NodeMeta& meta() const { return meta_; }
  const Affinity& affinity() const { return affinity_; }
  Messenger& messenger() { return messenger_; }
  const CacheGroup* group(const std::string& name) const { return meta().group(name); }

  // A transaction coordinated by node `coordinator` (blocking calls).
  Transaction begin(uint16_t coordinator = 0);
  // An ATOMIC group's update: primary first, then its backups. An empty
  // value removes the key. Blocking.
  Status atomic_put(const std::string& group, std::string key, std::optional<std::string> value,
                    uint16_t from = 0);
  // The value on the key's primary.
  std::optional<std::string> get(const std::string& group, const std::string& key) const;

  // ---- Non-blocking calls, for a simulation that queues messages. The
  // caller keeps conflicting transactions apart (try_lock_keys).
  // Resolves a group name and key into a write.
  Result<TxWrite> make_write(const std::string& group, std::string key, std::optional<std::string> value) const;
  // Starts a transaction: prepare, then commit (or roll back when
  // `commit` is false or a prepare fails). `done` runs when it has ended.
  std::shared_ptr<TxFlight> submit(uint16_t coordinator, std::vector<TxWrite> writes, bool commit,
                                   std::function<void(const TxFlight&)> done);
  // Starts an atomic update from node `from`; `done` runs when every copy has it.
  std::shared_ptr<TxFlight> submit_atomic(uint16_t from, TxWrite write, std::function<void(const TxFlight&)> done);
  bool try_lock_keys(const std::vector<TxWrite>& writes);
  void unlock_keys(const std::vector<TxWrite>& writes);

  // Starts consistent cut `id` (newer than any node knows and than any cut
  // started before): the coordinator, node 0, sends START to every node.
  // One cut at a time: refused (kInvalidArgument, naming the node) while a
  // node still runs a cut or is down.
  Result<uint64_t> start_cut();
  // Held by take_incremental_snapshot() from its cut to its increment, so
  // that a second one waits instead of interleaving.
  std::mutex& increments_mutex() { return increments_mu_; }

  // ---- Faults, for a simulation with queued delivery (docs/engine.md,
  // "Crashes of single nodes").
  bool up(uint16_t index) const { return nodes_[index] != nullptr; }
  // Node `index`'s process dies (Node::crash). The messages to and from it
  // are lost. Every transaction it coordinates or takes part in is in
  // doubt: its coordinator stops driving it, its messages are dropped, and
  // recovery resolves it once all its participants are up. Every atomic
  // update it takes part in ends, interrupted. Recovery trusts that what a
  // node acknowledged survives its crash: the WAL must not hold records in
  // an open block (WriterOptions::fill_blocks off, or kEveryCommit).
  void crash_node(uint16_t index);
  // Opens node `index` again (it recovers from its files), lets it learn
  // the newest cut id, and resolves the transactions in doubt whose
  // participants are now all up.
  Status restart_node(uint16_t index);
  // Transactions in doubt, waiting for a participant to come back.
  size_t in_doubt() const { return in_doubt_.size(); }
  // Every node's process dies at once (Node::crash), as a power cut leaves
  // them; the messages and flights in memory are gone. Only the destructor
  // and open() of a new Cluster on the directory may follow.
  void crash();
  // The outcome of every transaction the nodes' WALs showed at open (those
  // after their checkpoints), those in doubt resolved on every copy
  // (docs/engine.md, "A crash of the whole cluster"); handed over once.
  std::map<Version, TxOutcome> take_outcomes_at_open() { return std::move(outcomes_at_open_); }

  Status checkpoint();
  Status close();

  // Holds new transactions and waits for those in flight, for a snapshot.
  // New ones wait from the moment it is asked for, so a steady stream of
  // transactions cannot keep it waiting. Releases on destruction.
  class Pause {
   public:
    explicit Pause(Cluster& c);
    ~Pause();
    Pause(const Pause&) = delete;
    Pause& operator=(const Pause&) = delete;

   private:
    Cluster& c_;
  };
  Pause pause_transactions() { return Pause(*this); }

  // A new version ordered after every version this coordinator issued.
  Version next_version(uint16_t node);

 private:
  friend class Transaction;
  Cluster() = default;
  void handle(const Message& m);
  void handle_request(const Message& m);
  void handle_response(const Message& m);
  void reply(const Message& request, const Status& s);
  void note_logged(const Message& m);
  void send_to_primaries(TxFlight& f, MessageKind kind);
  void advance(const std::shared_ptr<TxFlight>& f);
  void start_commit(const std::shared_ptr<TxFlight>& f);
  void start_rollback(const std::shared_ptr<TxFlight>& f);
  void start_prepare(const std::shared_ptr<TxFlight>& f);
  void lock_keys(const std::vector<TxWrite>& writes);
  const CacheGroup* group_or_null(const std::string& name) const { return meta().group(name); }

  NodeOptions node_options(size_t index) const;
  // Commits or rolls back, on every participant, each transaction in doubt
  // whose participants are all up (docs/engine.md, "Recovery of a transaction in doubt").
  void resolve_in_doubt();
  Status resolve_at_open(std::vector<std::map<Version, TxLogged>> replayed);
  Status settle(uint16_t n, const Version& xid, const std::vector<TxParticipant>& participants,
                const std::map<uint16_t, TxLogged>& votes, bool commit, const Version& commit_version, uint64_t cut_id,
                const std::vector<TxWrite>& writes);
  void forget_everywhere(const TxFlight& f);
  std::map<Version, TxOutcome> outcomes_at_open_;

  ClusterOptions options_;
  NodeMeta meta_;
  Affinity affinity_;
  std::vector<std::unique_ptr<Node>> nodes_;  // null while a node is down
  std::mutex cut_start_mu_;
  uint64_t last_started_cut_ = 0;
  std::mutex increments_mu_;
  // A transaction whose coordinator or participant died, until resolved.
  struct InDoubt {
    std::shared_ptr<TxFlight> flight;
    std::set<uint16_t> participants;          // primaries and backups
    std::map<uint16_t, TxLogged> votes;       // what each participant logged; none when absent
  };
  std::map<Version, InDoubt> in_doubt_;
  Messenger messenger_;
  std::atomic<uint64_t> order_{0};
  uint32_t topology_version_ = 0;  // raised at open, fixed after
  // Transactions hold it shared from prepare to their end; a snapshot
  // holds it exclusive to let the ones in flight finish and start no new ones.
  std::shared_mutex gate_;
  void enter_gate();  // waits while a pause is asked for, then holds the gate shared
  std::mutex pause_mu_;
  std::condition_variable pause_cv_;
  bool pausing_ = false;
  std::mutex locks_mu_;
  std::condition_variable locks_cv_;
  std::set<std::pair<uint32_t, std::string>> locked_keys_;

  // Coordinator and forwarding state of requests in flight.
  struct Forward {
    Message request;  // to answer when the backups have answered
    size_t waiting = 0;
    Status status;
  };
  std::mutex flights_mu_;
  std::map<Version, std::shared_ptr<TxFlight>> flights_;
  std::map<std::tuple<Version, uint16_t, MessageKind>, Forward> forwards_;
};

}  // namespace walcut
