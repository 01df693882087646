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

// Every node that logs records for a flight: the primaries and backups of
// a transaction, the owners of an atomic update's partition.
std::set<uint16_t> nodes_of(const std::vector<TxParticipant>& participants) {
  std::set<uint16_t> out;
  for (const TxParticipant& p : participants) {
    out.insert(p.primary);
    out.insert(p.backups.begin(), p.backups.end());
  }
  return out;
}

std::set<uint16_t> nodes_of(const TxFlight& f, const Affinity& affinity) {
  std::set<uint16_t> out = nodes_of(f.participants);
  if (f.phase == TxFlight::Phase::kAtomic) {
    for (const TxWrite& w : f.writes) {
      const std::vector<uint16_t>& owners = affinity.owners(w.group_id, w.partition);
      out.insert(owners.begin(), owners.end());
    }
  }
  return out;
}


// A transaction's writes as a node logged them (a DATA payload).
std::vector<TxWrite> writes_of(const Bytes& payload) {
  std::vector<TxWrite> out;
  (void)for_each_data_entry(payload, [&](const DataEntry& e) {
    std::optional<std::string> value;
    if (e.op != EntryOp::kDelete) value = to_string(e.value);
    out.push_back(TxWrite{e.group_id, e.partition, to_string(e.key), std::move(value)});
  });
  return out;
}

}  // namespace

Verdict judge_in_doubt(const std::set<uint16_t>& participants, const std::map<uint16_t, TxLogged>& votes,
                       const std::vector<std::string>& node_ids) {
  // Ignite's rule: commit when a participant committed or all prepared, roll back otherwise.
  Verdict v;
  std::optional<uint16_t> rolled_back, unprepared;
  for (uint16_t n : participants) {
    auto it = votes.find(n);
    if (it == votes.end()) {
      if (!unprepared) unprepared = n;
    } else if (it->second.state == TxState::kCommitted) {
      v.committed_by = n;
    } else if (it->second.state == TxState::kRolledBack) {
      rolled_back = n;
    }
  }
  v.commit = v.committed_by || (!rolled_back && !unprepared);
  if (v.committed_by) {
    v.recovery = "committed: node " + node_ids[*v.committed_by] + " had committed it";
  } else if (v.commit) {
    v.recovery = "committed: every participant had prepared it";
  } else if (rolled_back) {
    v.recovery = "rolled back: node " + node_ids[*rolled_back] + " had rolled it back";
  } else {
    v.recovery = "rolled back: node " + node_ids[*unprepared] + " had not prepared it";
  }
  return v;
}

Result<std::unique_ptr<Cluster>> Cluster::open(const ClusterOptions& options) {
  if (options.node_ids.empty()) return Status::invalid_argument("a cluster needs at least one node");
  if (options.node_ids.size() > 65535) return Status::invalid_argument("too many nodes");
  // Each id names the node's directory.
  for (const std::string& id : options.node_ids) WALCUT_RETURN_IF_ERROR(validate_name("node id", id));
  std::unique_ptr<Cluster> c(new Cluster());
  c->options_ = options;
  uint32_t topology = 0;
  std::vector<std::map<Version, TxLogged>> replayed;  // per node
  for (size_t i = 0; i < options.node_ids.size(); ++i) {
    NodeOptions n = c->node_options(i);
    Result<std::unique_ptr<Node>> node = Node::open(n);
    if (!node.ok()) return node.status();
    if ((*node)->meta().baseline != options.node_ids || (*node)->meta().groups != options.groups) {
      return Status::invalid_argument(n.dir + ": its baseline or cache groups differ from the cluster's");
    }
    replayed.push_back((*node)->take_replayed_transactions());
    topology = std::max(topology, (*node)->meta().topology_version);
    c->nodes_.push_back(std::move(node).value());
  }
  for (auto& node : c->nodes_) WALCUT_RETURN_IF_ERROR(node->set_topology_version(topology + 1));
  c->topology_version_ = topology + 1;
  c->meta_ = c->nodes_[0]->meta();
  c->affinity_ = c->nodes_[0]->affinity();
  // No cut id a node's WAL shows is used again: a cut the crash interrupted failed.
  for (auto& node : c->nodes_) c->last_started_cut_ = std::max(c->last_started_cut_, node->replayed_newest_cut_id());
  for (auto& node : c->nodes_) node->adopt_cut_id(c->last_started_cut_);
  // Versions issued from here order after every one the files show, within the new topology version too.
  for (auto& node : c->nodes_) c->order_ = std::max(c->order_.load(), node->replayed_newest_order());
  WALCUT_RETURN_IF_ERROR(c->resolve_at_open(std::move(replayed)));
  c->messenger_.set_handler([p = c.get()](const Message& m) { p->handle(m); });
  // Every message carries its sender's newest cut id (docs/consistent-cut.md).
  c->messenger_.set_stamp([p = c.get()](Message& m) {
    if (p->nodes_[m.from]) m.cut_id = p->nodes_[m.from]->cut().stamp(m.cut_id);
  });
  return c;
}

NodeOptions Cluster::node_options(size_t i) const {
  NodeOptions n;
  n.dir = options_.dir + "/" + options_.node_ids[i];
  n.meta.cluster_id = options_.cluster_id;
  n.meta.node_index = static_cast<uint16_t>(i);
  n.meta.node_id = options_.node_ids[i];
  n.meta.baseline = options_.node_ids;
  n.meta.groups = options_.groups;
  n.wal = options_.wal;
  return n;
}

Cluster::~Cluster() { (void)close(); }

Version Cluster::next_version(uint16_t node) {
  return Version{topology_version_, static_cast<uint32_t>(node) + 1, ++order_};
}

Transaction Cluster::begin(uint16_t coordinator) { return Transaction(*this, coordinator, next_version(coordinator)); }

Result<uint64_t> Cluster::start_cut() {
  std::lock_guard<std::mutex> one(cut_start_mu_);
  std::vector<uint64_t> known{last_started_cut_};
  for (auto& n : nodes_) {
    if (!n) return Status::invalid_argument("no cut while a node is down");
    if (n->cut().running()) {
      return Status::invalid_argument("node " + n->meta().node_id + " still runs cut " +
                                      std::to_string(n->cut().cut_id()) + ": one cut at a time");
    }
    known.insert(known.end(), {n->cut().cut_id(), n->meta().last_cut_id});
  }
  // A node that never started the previous cut (it failed first) skips it: a late START or stamp of it
  // must not start it while the new one runs.
  for (auto& n : nodes_) n->adopt_cut_id(last_started_cut_);
  const uint64_t id = next_cut_id(known);
  last_started_cut_ = id;
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
  if (!nodes_[m.to]) {
    // A request to a node that is down fails at once, as a refused connection does; anything else is lost.
    if (is_request(m.kind) && m.kind != MessageKind::kCutStart) {
      reply(m, Status::cancelled("node " + options_.node_ids[m.to] + " is down"));
    }
    return;
  }
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
    case MessageKind::kPrepareRequest: s = node.prepare(m.xid, m.tx_cut_id, m.participants, m.writes); break;
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
  if (s.ok() && m.kind != MessageKind::kAtomicUpdateRequest) note_logged(m);
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

// The participant's own memory of what it logged, kept in the flight for a
// recovery that needs it after its coordinator or another participant died.
void Cluster::note_logged(const Message& m) {
  TxLogged l;
  l.state = m.kind == MessageKind::kPrepareRequest  ? TxState::kPrepared
            : m.kind == MessageKind::kCommitRequest ? TxState::kCommitted
                                                    : TxState::kRolledBack;
  if (l.state == TxState::kCommitted) {
    l.commit_version = m.version;
    l.cut_id = m.tx_cut_id;
  }
  std::lock_guard<std::mutex> lock(flights_mu_);
  auto it = flights_.find(m.xid);
  if (it != flights_.end()) it->second->logged[m.to] = l;
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
    if (kind == MessageKind::kPrepareRequest || kind == MessageKind::kCommitRequest) m.writes = f.writes;
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
  forget_everywhere(*f);
  if (f->done) f->done(*f);
}

// Ended on every node: no checkpoint needs to log its records again.
void Cluster::forget_everywhere(const TxFlight& f) {
  for (uint16_t n : nodes_of(f, affinity_)) {
    if (nodes_[n]) nodes_[n]->forget_transaction(f.xid);
  }
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
  f->writes = {write};
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
  const std::unique_ptr<Node>& primary = nodes_[affinity().primary(g->id, p)];
  if (!primary) return std::nullopt;
  std::optional<StoredValue> v = primary->read(g->id, p, key);
  if (!v) return std::nullopt;
  return v->value;
}

Status Cluster::checkpoint() {
  // A transaction not yet ended everywhere keeps its records after each node's checkpoint (Node::checkpoint).
  auto still_open = [this](const Version& xid) {
    std::lock_guard<std::mutex> lock(flights_mu_);
    return flights_.count(xid) > 0 || in_doubt_.count(xid) > 0;
  };
  for (auto& n : nodes_) {
    if (n) WALCUT_RETURN_IF_ERROR(n->checkpoint(still_open));
  }
  return {};
}

Status Cluster::close() {
  Status first;
  for (auto& n : nodes_) {
    if (!n) continue;
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

// ---- Crashes of single nodes

void Cluster::crash_node(uint16_t index) {
  const std::string who = "node " + options_.node_ids[index];
  nodes_[index]->crash();
  nodes_[index].reset();
  std::vector<std::shared_ptr<TxFlight>> interrupted;
  std::set<Version> cut_short;  // every flight this crash ends or puts in doubt
  {
    std::lock_guard<std::mutex> lock(flights_mu_);
    for (auto it = flights_.begin(); it != flights_.end();) {
      std::shared_ptr<TxFlight> f = it->second;
      std::set<uint16_t> nodes = nodes_of(*f, affinity_);
      if (f->coordinator != index && !nodes.count(index)) {
        ++it;
        continue;
      }
      cut_short.insert(f->xid);
      if (f->phase == TxFlight::Phase::kAtomic) {
        f->interrupted = true;
        interrupted.push_back(f);
      } else {
        // What each participant logged and acknowledged is on its disk,
        // the dead one's too (a process crash keeps what reached the
        // kernel); a checkpoint since may hide it from that node's replay.
        InDoubt& d = in_doubt_[f->xid];
        d.flight = f;
        d.participants = nodes;
        d.votes = f->logged;
      }
      it = flights_.erase(it);
    }
    for (auto it = forwards_.begin(); it != forwards_.end();) {
      const bool mine = cut_short.count(std::get<0>(it->first)) || std::get<1>(it->first) == index;
      it = mine ? forwards_.erase(it) : std::next(it);
    }
  }
  std::deque<Message>& pending = messenger_.pending();
  for (auto it = pending.begin(); it != pending.end();) {
    bool drop = it->to == index || it->from == index ||
                (it->kind != MessageKind::kCutStart && cut_short.count(it->xid));
    it = drop ? pending.erase(it) : std::next(it);
  }
  for (const std::shared_ptr<TxFlight>& f : interrupted) {
    f->phase = TxFlight::Phase::kDone;
    if (f->done) f->done(*f);
  }
  resolve_in_doubt();
}

Status Cluster::restart_node(uint16_t index) {
  if (nodes_[index]) return Status::invalid_argument("node " + options_.node_ids[index] + " is up");
  Result<std::unique_ptr<Node>> node = Node::open(node_options(index));
  if (!node.ok()) return node.status();
  nodes_[index] = std::move(node).value();
  Node& n = *nodes_[index];
  uint64_t newest = last_started_cut_;
  for (auto& other : nodes_) {
    if (other) newest = std::max(newest, other->cut().cut_id());
  }
  n.adopt_cut_id(newest);
  std::map<Version, TxLogged> replayed = n.take_replayed_transactions();
  for (auto& [xid, d] : in_doubt_) {
    if (!d.participants.count(index)) continue;
    // The replay may know more: an outcome whose call failed after its record was written (a torn
    // rollover). It knows less of what a checkpoint since hides.
    auto r = replayed.find(xid);
    if (r != replayed.end() && (!d.votes.count(index) || r->second.state != TxState::kPrepared)) {
      d.votes[index] = r->second;
    }
    auto v = d.votes.find(index);
    if (v != d.votes.end() && v->second.state == TxState::kPrepared) n.hold_in_doubt(xid);
  }
  resolve_in_doubt();
  return {};
}

void Cluster::resolve_in_doubt() {
  for (auto it = in_doubt_.begin(); it != in_doubt_.end();) {
    InDoubt& d = it->second;
    if (std::any_of(d.participants.begin(), d.participants.end(), [&](uint16_t n) { return !nodes_[n]; })) {
      ++it;
      continue;
    }
    std::shared_ptr<TxFlight> f = d.flight;
    const Verdict v = judge_in_doubt(d.participants, d.votes, options_.node_ids);
    f->recovery = v.recovery;
    if (v.committed_by) {
      f->commit_version = d.votes.at(*v.committed_by).commit_version;
      f->tx_cut_id = d.votes.at(*v.committed_by).cut_id;
    } else if (v.commit) {
      // The recovery decides here, so it stamps the newest cut id any participant knows, as a coordinator would.
      f->commit_version = next_version(f->coordinator);
      f->tx_cut_id = 0;
      for (uint16_t n : d.participants) f->tx_cut_id = std::max(f->tx_cut_id, nodes_[n]->cut().cut_id());
    }
    const bool commit = v.commit;
    for (uint16_t n : d.participants) {
      Status s = settle(n, f->xid, f->participants, d.votes, commit, f->commit_version, f->tx_cut_id, f->writes);
      if (f->status.ok() && !s.ok()) f->status = s;
    }
    f->committed = commit && f->status.ok();
    f->phase = TxFlight::Phase::kDone;
    it = in_doubt_.erase(it);
    forget_everywhere(*f);
    if (f->done) f->done(*f);
  }
}

// Logs the outcome on node `n` where it is not logged yet: DATA and COMMITTED
// (observing the decision's cut id first, as for a stamped CommitRequest),
// or ROLLED_BACK where the node prepared.
Status Cluster::settle(uint16_t n, const Version& xid, const std::vector<TxParticipant>& participants,
                       const std::map<uint16_t, TxLogged>& votes, bool commit, const Version& commit_version,
                       uint64_t cut_id, const std::vector<TxWrite>& writes) {
  auto v = votes.find(n);
  if (commit && (v == votes.end() || v->second.state != TxState::kCommitted)) {
    WALCUT_RETURN_IF_ERROR(nodes_[n]->observe_cut(cut_id));  // every record carrying a cut id follows its START
    return nodes_[n]->commit(xid, commit_version, cut_id, participants, writes);
  }
  if (!commit && v != votes.end() && v->second.state == TxState::kPrepared) {
    return nodes_[n]->rollback(xid, 0, participants);
  }
  return {};
}

// All nodes reopened together (a crash of the whole cluster): every
// transaction that some node prepared and did not end is resolved on all of
// its nodes from their WALs, by the rule of resolve_in_doubt, each node
// committing the writes its own PREPARED record carries.
Status Cluster::resolve_at_open(std::vector<std::map<Version, TxLogged>> replayed) {
  std::map<Version, std::map<uint16_t, TxLogged>> txs;  // xid -> node -> its last TX record
  for (uint16_t n = 0; n < replayed.size(); ++n) {
    for (auto& [xid, logged] : replayed[n]) txs[xid][n] = std::move(logged);
  }
  for (auto& [xid, votes] : txs) {
    TxOutcome& out = outcomes_at_open_[xid];
    const bool open = std::any_of(votes.begin(), votes.end(),
                                  [](const auto& v) { return v.second.state == TxState::kPrepared; });
    if (!open) {  // ended on every node that logged it
      for (const auto& [n, l] : votes) {
        if (l.state != TxState::kCommitted) continue;
        out = TxOutcome{true, l.commit_version, l.cut_id, ""};
      }
      continue;
    }
    const std::vector<TxParticipant> participants = votes.begin()->second.participants;
    const Verdict v = judge_in_doubt(nodes_of(participants), votes, options_.node_ids);
    out.recovery = v.recovery;
    out.committed = v.commit;
    if (v.committed_by) {
      out.commit_version = votes.at(*v.committed_by).commit_version;
      out.cut_id = votes.at(*v.committed_by).cut_id;
    } else if (v.commit) {
      out.commit_version = next_version(static_cast<uint16_t>(xid.node_order - 1));
      out.cut_id = last_started_cut_;  // the newest cut id of the cluster, which every node adopted
    }
    for (uint16_t n : nodes_of(participants)) {
      auto mine = votes.find(n);
      std::vector<TxWrite> writes;
      if (mine != votes.end() && mine->second.writes) writes = writes_of(*mine->second.writes);
      if (v.commit && mine != votes.end() && mine->second.state == TxState::kPrepared && !mine->second.writes) {
        // A PREPARED record written before PREPARED carried the writes: that copy cannot be completed.
        out.recovery += "; node " + options_.node_ids[n] + "'s PREPARED record carries no writes";
        continue;
      }
      WALCUT_RETURN_IF_ERROR(settle(n, xid, participants, votes, v.commit, out.commit_version, out.cut_id, writes));
    }
  }
  for (auto& node : nodes_) node->forget_transactions();  // every transaction of the WALs has ended
  return {};
}

void Cluster::crash() {
  for (uint16_t i = 0; i < nodes_.size(); ++i) {
    if (nodes_[i]) nodes_[i]->crash();
    nodes_[i].reset();
  }
  std::lock_guard<std::mutex> lock(flights_mu_);
  flights_.clear();
  forwards_.clear();
  in_doubt_.clear();
  messenger_.pending().clear();
}

}  // namespace walcut
