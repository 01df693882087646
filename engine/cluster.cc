#include "engine/cluster.h"

#include <algorithm>
#include <filesystem>

namespace walcut {

namespace {

// The nodes a participant forwards a request to: its backups that are not
// primaries of the transaction and that no earlier primary forwards to,
// so every node gets each request exactly once.
std::vector<uint16_t> forward_targets(const std::vector<TxParticipant>& participants, uint16_t self) {
  std::set<uint16_t> primaries, taken;
  for (const TxParticipant& p : participants) primaries.insert(p.primary);
  for (const TxParticipant& p : participants) {
    std::vector<uint16_t> mine;
    for (uint16_t b : p.backups) {
      if (primaries.count(b) || !taken.insert(b).second) continue;
      mine.push_back(b);
    }
    if (p.primary == self) return mine;
  }
  return {};
}

MessageKind response_kind(MessageKind k) {
  switch (k) {
    case MessageKind::kPrepareRequest: return MessageKind::kPrepareResponse;
    case MessageKind::kCommitRequest: return MessageKind::kCommitResponse;
    case MessageKind::kRollbackRequest: return MessageKind::kRollbackResponse;
    default: return MessageKind::kAtomicUpdateResponse;
  }
}

}  // namespace

Result<std::unique_ptr<Cluster>> Cluster::open(const ClusterOptions& options) {
  if (options.node_ids.empty()) return Status::invalid_argument("a cluster needs at least one node");
  if (options.node_ids.size() > 65535) return Status::invalid_argument("too many nodes");
  std::unique_ptr<Cluster> c(new Cluster());
  c->options_ = options;
  uint32_t topology = 0;
  for (size_t i = 0; i < options.node_ids.size(); ++i) {
    NodeOptions n;
    n.dir = options.dir + "/" + options.node_ids[i];
    n.meta.cluster_id = options.cluster_id;
    n.meta.node_index = static_cast<uint16_t>(i);
    n.meta.node_id = options.node_ids[i];
    n.meta.baseline = options.node_ids;
    n.meta.groups = options.groups;
    n.wal = options.wal;
    Result<std::unique_ptr<Node>> node = Node::open(n);
    if (!node.ok()) return node.status();
    if ((*node)->meta().baseline != options.node_ids || (*node)->meta().groups != options.groups) {
      return Status::invalid_argument(n.dir + ": its baseline or cache groups differ from the cluster's");
    }
    topology = std::max(topology, (*node)->meta().topology_version);
    c->nodes_.push_back(std::move(node).value());
  }
  for (auto& node : c->nodes_) WALCUT_RETURN_IF_ERROR(node->set_topology_version(topology + 1));
  c->messenger_.set_handler([p = c.get()](const Message& m) { return p->handle(m); });
  return c;
}

Cluster::~Cluster() { (void)close(); }

Version Cluster::next_version(uint16_t node) {
  return Version{meta().topology_version, static_cast<uint32_t>(node) + 1, ++order_};
}

Transaction Cluster::begin(uint16_t coordinator) { return Transaction(*this, coordinator, next_version(coordinator)); }

// A node's side of every request: act on its own copy, forward to the
// backups it is responsible for, answer.
Message Cluster::handle(const Message& m) {
  Message r;
  r.kind = response_kind(m.kind);
  r.from = m.to;
  r.to = m.from;
  r.xid = m.xid;
  Node& node = *nodes_[m.to];
  switch (m.kind) {
    case MessageKind::kPrepareRequest: r.status = node.prepare(m.xid, m.tx_cut_id, m.participants); break;
    case MessageKind::kCommitRequest:
      r.status = node.commit(m.xid, m.version, m.tx_cut_id, m.participants, m.writes);
      break;
    case MessageKind::kRollbackRequest: r.status = node.rollback(m.xid, m.tx_cut_id, m.participants); break;
    case MessageKind::kAtomicUpdateRequest: {
      r.status = node.apply_atomic(m.writes.front(), m.version);
      const TxWrite& w = m.writes.front();
      const std::vector<uint16_t>& owners = affinity().owners(w.group_id, w.partition);
      if (r.status.ok() && owners.front() == m.to) {
        for (size_t i = 1; i < owners.size() && r.status.ok(); ++i) {
          Message fwd = m;
          fwd.from = m.to;
          fwd.to = owners[i];
          r.status = messenger_.call(fwd).status;
        }
      }
      return r;
    }
    default: r.status = Status::invalid_argument(std::string("unexpected message ") + message_kind_name(m.kind));
  }
  for (uint16_t b : forward_targets(m.participants, m.to)) {
    if (!r.status.ok()) break;
    Message fwd = m;
    fwd.from = m.to;
    fwd.to = b;
    r.status = messenger_.call(fwd).status;
  }
  return r;
}

void Cluster::lock_keys(const std::vector<TxWrite>& writes) {
  std::set<std::pair<uint32_t, std::string>> keys;
  for (const TxWrite& w : writes) keys.emplace(w.group_id, w.key);
  std::unique_lock<std::mutex> lock(locks_mu_);
  // All at once, so two transactions never hold parts of each other's set.
  locks_cv_.wait(lock, [&] {
    return std::none_of(keys.begin(), keys.end(), [&](const auto& k) { return locked_keys_.count(k) > 0; });
  });
  locked_keys_.insert(keys.begin(), keys.end());
}

void Cluster::unlock_keys(const std::vector<TxWrite>& writes) {
  {
    std::lock_guard<std::mutex> lock(locks_mu_);
    for (const TxWrite& w : writes) locked_keys_.erase({w.group_id, w.key});
  }
  locks_cv_.notify_all();
}

Status Cluster::atomic_put(const std::string& group, std::string key, std::optional<std::string> value, uint16_t from) {
  const CacheGroup* g = group_or_null(group);
  if (!g) return Status::invalid_argument("no cache group named " + group);
  if (g->mode != CacheMode::kAtomic) return Status::invalid_argument("cache group " + group + " is TRANSACTIONAL: use a transaction");
  TxWrite w{g->id, partition_of(*g, key), std::move(key), std::move(value)};
  std::vector<TxWrite> writes{w};
  std::shared_lock<std::shared_mutex> gate(gate_);
  lock_keys(writes);
  Message m;
  m.kind = MessageKind::kAtomicUpdateRequest;
  m.from = from;
  m.to = affinity().primary(g->id, w.partition);
  m.version = next_version(from);
  m.writes = writes;
  Status s = messenger_.call(m).status;
  unlock_keys(writes);
  return s;
}

std::optional<std::string> Cluster::get(const std::string& group, const std::string& key) const {
  const CacheGroup* g = group_or_null(group);
  if (!g) return std::nullopt;
  uint16_t p = partition_of(*g, key);
  std::optional<StoredValue> v = nodes_[affinity().primary(g->id, p)]->read(g->id, p, key);
  if (!v) return std::nullopt;
  return v->value;
}

Status Cluster::checkpoint() {
  for (auto& n : nodes_) WALCUT_RETURN_IF_ERROR(n->checkpoint());
  return {};
}

Status Cluster::close() {
  Status first;
  for (auto& n : nodes_) {
    Status s = n->close();
    if (first.ok() && !s.ok()) first = s;
  }
  return first;
}

// ---- Transaction

Transaction::Transaction(Transaction&& o) noexcept
    : cluster_(o.cluster_), coordinator_(o.coordinator_), xid_(o.xid_), writes_(std::move(o.writes_)),
      participants_(std::move(o.participants_)), prepared_(o.prepared_), finished_(o.finished_),
      holds_gate_(o.holds_gate_) {
  o.finished_ = true;
  o.prepared_ = false;
  o.holds_gate_ = false;
}

Transaction::~Transaction() {
  if (!finished_) (void)rollback();
}

Status Transaction::put(const std::string& group, std::string key, std::string value) {
  const CacheGroup* g = cluster_->group_or_null(group);
  if (!g) return Status::invalid_argument("no cache group named " + group);
  if (g->mode != CacheMode::kTransactional) return Status::invalid_argument("cache group " + group + " is ATOMIC: use atomic_put");
  if (prepared_ || finished_) return Status::invalid_argument("transaction " + xid_.to_string() + " is already prepared");
  uint16_t p = partition_of(*g, key);
  writes_.push_back(TxWrite{g->id, p, std::move(key), std::move(value)});
  return {};
}

Status Transaction::remove(const std::string& group, std::string key) {
  const CacheGroup* g = cluster_->group_or_null(group);
  if (!g) return Status::invalid_argument("no cache group named " + group);
  if (g->mode != CacheMode::kTransactional) return Status::invalid_argument("cache group " + group + " is ATOMIC: use atomic_put");
  if (prepared_ || finished_) return Status::invalid_argument("transaction " + xid_.to_string() + " is already prepared");
  uint16_t p = partition_of(*g, key);
  writes_.push_back(TxWrite{g->id, p, std::move(key), std::nullopt});
  return {};
}

Status Transaction::prepare() {
  if (prepared_ || finished_) return {};
  // The last write of a key wins; each key is sent once.
  std::vector<TxWrite> unique;
  for (auto it = writes_.rbegin(); it != writes_.rend(); ++it) {
    bool seen = std::any_of(unique.begin(), unique.end(),
                            [&](const TxWrite& u) { return u.group_id == it->group_id && u.key == it->key; });
    if (!seen) unique.push_back(*it);
  }
  std::reverse(unique.begin(), unique.end());
  writes_ = std::move(unique);
  cluster_->gate_.lock_shared();
  holds_gate_ = true;
  cluster_->lock_keys(writes_);
  std::map<uint16_t, std::set<uint16_t>> backups;
  for (const TxWrite& w : writes_) {
    const std::vector<uint16_t>& owners = cluster_->affinity().owners(w.group_id, w.partition);
    auto& b = backups[owners.front()];
    b.insert(owners.begin() + 1, owners.end());
  }
  for (auto& [primary, b] : backups) participants_.push_back(TxParticipant{primary, {b.begin(), b.end()}});
  prepared_ = true;
  for (const TxParticipant& p : participants_) {
    Message m;
    m.kind = MessageKind::kPrepareRequest;
    m.from = coordinator_;
    m.to = p.primary;
    m.xid = xid_;
    m.participants = participants_;
    Status s = cluster_->messenger_.call(m).status;
    if (!s.ok()) {
      (void)rollback();
      return s;
    }
  }
  return {};
}

Status Transaction::commit() {
  if (finished_) return Status::invalid_argument("transaction " + xid_.to_string() + " has ended");
  if (writes_.empty()) {
    finished_ = true;
    return {};
  }
  WALCUT_RETURN_IF_ERROR(prepare());
  Version version = cluster_->next_version(coordinator_);
  Status result;
  for (const TxParticipant& p : participants_) {
    Message m;
    m.kind = MessageKind::kCommitRequest;
    m.from = coordinator_;
    m.to = p.primary;
    m.xid = xid_;
    m.version = version;
    m.participants = participants_;
    m.writes = writes_;
    Status s = cluster_->messenger_.call(m).status;
    if (result.ok() && !s.ok()) result = s;
  }
  finished_ = true;
  release();
  return result;
}

Status Transaction::rollback() {
  if (finished_) return {};
  finished_ = true;
  Status result;
  if (prepared_) {
    for (const TxParticipant& p : participants_) {
      Message m;
      m.kind = MessageKind::kRollbackRequest;
      m.from = coordinator_;
      m.to = p.primary;
      m.xid = xid_;
      m.participants = participants_;
      Status s = cluster_->messenger_.call(m).status;
      if (result.ok() && !s.ok()) result = s;
    }
  }
  release();
  return result;
}

void Transaction::release() {
  if (prepared_) cluster_->unlock_keys(writes_);
  prepared_ = false;
  if (holds_gate_) cluster_->gate_.unlock_shared();
  holds_gate_ = false;
}

}  // namespace walcut
