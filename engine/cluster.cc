#include "engine/cluster.h"

#include <algorithm>
#include <filesystem>

#include "io/names.h"

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

MessageKind request_kind(MessageKind k) {
  switch (k) {
    case MessageKind::kPrepareResponse: return MessageKind::kPrepareRequest;
    case MessageKind::kCommitResponse: return MessageKind::kCommitRequest;
    case MessageKind::kRollbackResponse: return MessageKind::kRollbackRequest;
    default: return MessageKind::kAtomicUpdateRequest;
  }
}

}  // namespace

Result<std::unique_ptr<Cluster>> Cluster::open(const ClusterOptions& options) {
  if (options.node_ids.empty()) return Status::invalid_argument("a cluster needs at least one node");
  if (options.node_ids.size() > 65535) return Status::invalid_argument("too many nodes");
  // Each id names the node's directory.
  for (const std::string& id : options.node_ids) WALCUT_RETURN_IF_ERROR(validate_name("node id", id));
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
  c->topology_version_ = topology + 1;
  c->messenger_.set_handler([p = c.get()](const Message& m) { p->handle(m); });
  // Every message carries its sender's newest cut id (docs/consistent-cut.md).
  c->messenger_.set_stamp([p = c.get()](Message& m) { m.cut_id = p->nodes_[m.from]->cut().stamp(m.cut_id); });
  return c;
}

Cluster::~Cluster() { (void)close(); }

Version Cluster::next_version(uint16_t node) {
  return Version{topology_version_, static_cast<uint32_t>(node) + 1, ++order_};
}

Transaction Cluster::begin(uint16_t coordinator) { return Transaction(*this, coordinator, next_version(coordinator)); }

uint64_t Cluster::start_cut() {
  std::vector<uint64_t> known;
  for (auto& n : nodes_) known.insert(known.end(), {n->cut().cut_id(), n->meta().last_cut_id});
  const uint64_t id = next_cut_id(known);
  for (uint16_t i = 0; i < nodes_.size(); ++i) {
    Message m;
    m.kind = MessageKind::kCutStart;
    m.from = 0;
    m.to = i;
    m.cut_id = id;
    messenger_.send(m);
  }
  return id;
}

// ---- A node's side of each message.

void Cluster::handle(const Message& m) {
  // The receiver learns of a newer cut before it acts on the message.
  Status cut = nodes_[m.to]->observe_cut(m.cut_id);
  if (m.kind == MessageKind::kCutStart) return;
  if (is_request(m.kind)) {
    if (!cut.ok()) return reply(m, cut);
    handle_request(m);
  } else {
    handle_response(m);
  }
}

void Cluster::handle_request(const Message& m) {
  Node& node = *nodes_[m.to];
  Status s;
  std::vector<uint16_t> targets;
  switch (m.kind) {
    case MessageKind::kPrepareRequest: s = node.prepare(m.xid, m.tx_cut_id, m.participants); break;
    case MessageKind::kCommitRequest: s = node.commit(m.xid, m.version, m.tx_cut_id, m.participants, m.writes); break;
    case MessageKind::kRollbackRequest: s = node.rollback(m.xid, m.tx_cut_id, m.participants); break;
    case MessageKind::kAtomicUpdateRequest: {
      s = node.apply_atomic(m.writes.front(), m.version);
      const std::vector<uint16_t>& owners = affinity().owners(m.writes.front().group_id, m.writes.front().partition);
      if (!m.forwarded) targets.assign(owners.begin() + 1, owners.end());
      break;
    }
    default: s = Status::invalid_argument(std::string("unexpected message ") + message_kind_name(m.kind));
  }
  if (m.kind != MessageKind::kAtomicUpdateRequest && !m.forwarded) targets = forward_targets(m.participants, m.to);
  if (!s.ok() || targets.empty()) return reply(m, s);
  {
    std::lock_guard<std::mutex> lock(flights_mu_);
    forwards_[{m.xid, m.to, m.kind}] = Forward{m, targets.size(), {}};
  }
  for (uint16_t t : targets) {
    Message fwd = m;
    fwd.from = m.to;
    fwd.to = t;
    fwd.forwarded = true;
    fwd.cut_id = 0;
    messenger_.send(fwd);
  }
}

void Cluster::reply(const Message& request, const Status& s) {
  Message r;
  r.kind = response_kind(request.kind);
  r.from = request.to;
  r.to = request.from;
  r.forwarded = request.forwarded;
  r.xid = request.xid;
  r.status = s;
  messenger_.send(r);
}

void Cluster::handle_response(const Message& m) {
  if (m.forwarded) {
    // A backup answered the primary: answer the coordinator when all have.
    Message origin;
    Status status;
    {
      std::lock_guard<std::mutex> lock(flights_mu_);
      auto it = forwards_.find({m.xid, m.to, request_kind(m.kind)});
      if (it == forwards_.end()) return;
      Forward& f = it->second;
      if (f.status.ok() && !m.status.ok()) f.status = m.status;
      if (--f.waiting > 0) return;
      origin = std::move(f.request);
      status = f.status;
      forwards_.erase(it);
    }
    return reply(origin, status);
  }
  std::shared_ptr<TxFlight> f;
  {
    std::lock_guard<std::mutex> lock(flights_mu_);
    auto it = flights_.find(m.xid);
    if (it == flights_.end()) return;
    f = it->second;
  }
  if (f->status.ok() && !m.status.ok()) f->status = m.status;
  if (--f->waiting == 0) advance(f);
}

// ---- The coordinator's side.

void Cluster::send_to_primaries(TxFlight& f, MessageKind kind) {
  f.waiting = f.participants.size();
  for (const TxParticipant& p : f.participants) {
    Message m;
    m.kind = kind;
    m.from = f.coordinator;
    m.to = p.primary;
    m.xid = f.xid;
    m.version = f.commit_version;
    m.tx_cut_id = f.tx_cut_id;
    m.participants = f.participants;
    if (kind == MessageKind::kCommitRequest) m.writes = f.writes;
    messenger_.send(m);
  }
}

void Cluster::start_prepare(const std::shared_ptr<TxFlight>& f) {
  std::map<uint16_t, std::set<uint16_t>> backups;
  for (const TxWrite& w : f->writes) {
    const std::vector<uint16_t>& owners = affinity().owners(w.group_id, w.partition);
    backups[owners.front()].insert(owners.begin() + 1, owners.end());
  }
  for (auto& [primary, b] : backups) f->participants.push_back(TxParticipant{primary, {b.begin(), b.end()}});
  {
    std::lock_guard<std::mutex> lock(flights_mu_);
    flights_[f->xid] = f;
  }
  f->phase = TxFlight::Phase::kPreparing;
  send_to_primaries(*f, MessageKind::kPrepareRequest);
}

void Cluster::start_commit(const std::shared_ptr<TxFlight>& f) {
  f->phase = TxFlight::Phase::kCommitting;
  f->commit_version = next_version(f->coordinator);
  f->tx_cut_id = nodes_[f->coordinator]->cut().cut_id();  // the decision's cut
  send_to_primaries(*f, MessageKind::kCommitRequest);
}

void Cluster::start_rollback(const std::shared_ptr<TxFlight>& f) {
  f->phase = TxFlight::Phase::kRollingBack;
  send_to_primaries(*f, MessageKind::kRollbackRequest);
}

void Cluster::advance(const std::shared_ptr<TxFlight>& f) {
  switch (f->phase) {
    case TxFlight::Phase::kPreparing:
      if (!f->status.ok()) return start_rollback(f);
      f->phase = TxFlight::Phase::kPrepared;
      if (f->then == TxFlight::Then::kCommit) start_commit(f);
      if (f->then == TxFlight::Then::kRollback) start_rollback(f);
      return;
    case TxFlight::Phase::kCommitting: f->committed = f->status.ok(); break;
    default: break;
  }
  f->phase = TxFlight::Phase::kDone;
  {
    std::lock_guard<std::mutex> lock(flights_mu_);
    flights_.erase(f->xid);
  }
  if (f->done) f->done(*f);
}

std::shared_ptr<TxFlight> Cluster::submit(uint16_t coordinator, std::vector<TxWrite> writes, bool commit,
                                          std::function<void(const TxFlight&)> done) {
  auto f = std::make_shared<TxFlight>();
  f->xid = next_version(coordinator);
  f->coordinator = coordinator;
  f->writes = std::move(writes);
  f->then = commit ? TxFlight::Then::kCommit : TxFlight::Then::kRollback;
  f->done = std::move(done);
  start_prepare(f);
  return f;
}

std::shared_ptr<TxFlight> Cluster::submit_atomic(uint16_t from, TxWrite write, std::function<void(const TxFlight&)> done) {
  auto f = std::make_shared<TxFlight>();
  f->xid = next_version(from);
  f->coordinator = from;
  f->phase = TxFlight::Phase::kAtomic;
  f->done = std::move(done);
  f->waiting = 1;
  {
    std::lock_guard<std::mutex> lock(flights_mu_);
    flights_[f->xid] = f;
  }
  Message m;
  m.kind = MessageKind::kAtomicUpdateRequest;
  m.from = from;
  m.to = affinity().primary(write.group_id, write.partition);
  m.xid = f->xid;
  m.version = f->xid;
  m.writes = {std::move(write)};
  messenger_.send(m);
  return f;
}

Result<TxWrite> Cluster::make_write(const std::string& group, std::string key, std::optional<std::string> value) const {
  const CacheGroup* g = group_or_null(group);
  if (!g) return Status::invalid_argument("no cache group named " + group);
  uint16_t p = partition_of(*g, key);
  return TxWrite{g->id, p, std::move(key), std::move(value)};
}

// ---- The gate

Cluster::Pause::Pause(Cluster& c) : c_(c) {
  {
    std::lock_guard<std::mutex> lock(c_.pause_mu_);
    c_.pausing_ = true;
  }
  c_.gate_.lock();
}

Cluster::Pause::~Pause() {
  c_.gate_.unlock();
  {
    std::lock_guard<std::mutex> lock(c_.pause_mu_);
    c_.pausing_ = false;
  }
  c_.pause_cv_.notify_all();
}

void Cluster::enter_gate() {
  std::unique_lock<std::mutex> lock(pause_mu_);
  pause_cv_.wait(lock, [&] { return !pausing_; });
  gate_.lock_shared();
}

// ---- Key locks

bool Cluster::try_lock_keys(const std::vector<TxWrite>& writes) {
  std::lock_guard<std::mutex> lock(locks_mu_);
  for (const TxWrite& w : writes) {
    if (locked_keys_.count({w.group_id, w.key})) return false;
  }
  for (const TxWrite& w : writes) locked_keys_.emplace(w.group_id, w.key);
  return true;
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

// ---- Blocking calls (immediate delivery)

Status Cluster::atomic_put(const std::string& group, std::string key, std::optional<std::string> value, uint16_t from) {
  const CacheGroup* g = group_or_null(group);
  if (!g) return Status::invalid_argument("no cache group named " + group);
  if (g->mode != CacheMode::kAtomic) return Status::invalid_argument("cache group " + group + " is TRANSACTIONAL: use a transaction");
  Result<TxWrite> w = make_write(group, std::move(key), std::move(value));
  std::vector<TxWrite> writes{w.value()};
  enter_gate();
  std::shared_lock<std::shared_mutex> gate(gate_, std::adopt_lock);
  lock_keys(writes);
  Status s;
  submit_atomic(from, w.value(), [&](const TxFlight& f) { s = f.status; });
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
      flight_(std::move(o.flight_)), finished_(o.finished_), holds_gate_(o.holds_gate_) {
  o.finished_ = true;
  o.holds_gate_ = false;
}

Transaction::~Transaction() {
  if (!finished_) (void)rollback();
}

Status Transaction::put(const std::string& group, std::string key, std::string value) {
  const CacheGroup* g = cluster_->group_or_null(group);
  if (!g) return Status::invalid_argument("no cache group named " + group);
  if (g->mode != CacheMode::kTransactional) return Status::invalid_argument("cache group " + group + " is ATOMIC: use atomic_put");
  if (flight_ || finished_) return Status::invalid_argument("transaction " + xid_.to_string() + " is already prepared");
  writes_.push_back(cluster_->make_write(group, std::move(key), std::move(value)).value());
  return {};
}

Status Transaction::remove(const std::string& group, std::string key) {
  const CacheGroup* g = cluster_->group_or_null(group);
  if (!g) return Status::invalid_argument("no cache group named " + group);
  if (g->mode != CacheMode::kTransactional) return Status::invalid_argument("cache group " + group + " is ATOMIC: use atomic_put");
  if (flight_ || finished_) return Status::invalid_argument("transaction " + xid_.to_string() + " is already prepared");
  writes_.push_back(cluster_->make_write(group, std::move(key), std::nullopt).value());
  return {};
}

Status Transaction::prepare() {
  if (flight_ || finished_) return {};
  if (cluster_->messenger_.queued()) return Status::invalid_argument("blocking transactions need immediate delivery; use submit()");
  // The last write of a key wins; each key is sent once.
  std::vector<TxWrite> unique;
  for (auto it = writes_.rbegin(); it != writes_.rend(); ++it) {
    bool seen = std::any_of(unique.begin(), unique.end(),
                            [&](const TxWrite& u) { return u.group_id == it->group_id && u.key == it->key; });
    if (!seen) unique.push_back(*it);
  }
  std::reverse(unique.begin(), unique.end());
  writes_ = std::move(unique);
  cluster_->enter_gate();
  holds_gate_ = true;
  cluster_->lock_keys(writes_);
  flight_ = std::make_shared<TxFlight>();
  flight_->xid = xid_;
  flight_->coordinator = coordinator_;
  flight_->writes = writes_;
  cluster_->start_prepare(flight_);  // immediate delivery: done when it returns
  if (flight_->phase == TxFlight::Phase::kDone) {
    finished_ = true;
    release();
    return flight_->status;
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
  cluster_->start_commit(flight_);
  finished_ = true;
  release();
  return flight_->status;
}

Status Transaction::rollback() {
  if (finished_) return {};
  finished_ = true;
  Status result;
  if (flight_) {
    cluster_->start_rollback(flight_);
    result = flight_->status;
  }
  release();
  return result;
}

void Transaction::release() {
  if (flight_) cluster_->unlock_keys(writes_);
  if (holds_gate_) cluster_->gate_.unlock_shared();
  holds_gate_ = false;
}

}  // namespace walcut
