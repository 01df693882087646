#include "tools/sim/simulator.h"

#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <random>

#include "engine/cluster.h"
#include "cut/increment.h"
#include "engine/snapshot.h"
#include "io/fault.h"
#include "io/file_util.h"

namespace walcut::sim {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string hex(const std::string& s) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

// A seeded source of numbers, the same on every platform (no std
// distributions, whose output the standard leaves open).
class Rng {
 public:
  explicit Rng(uint64_t seed) : x_(seed * 0x9E3779B97F4A7C15ull + 0xD1B54A32D192ED03ull) {}
  uint64_t next() {  // splitmix64
    uint64_t z = (x_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  uint64_t below(uint64_t n) { return n == 0 ? 0 : next() % n; }
  double unit() { return static_cast<double>(next() >> 11) / 9007199254740992.0; }

 private:
  uint64_t x_;
};

// Zipf(s = 1) over [0, n): the cumulative weights, searched by bisection.
class Zipf {
 public:
  explicit Zipf(uint64_t n) : cdf_(n) {
    double sum = 0;
    for (uint64_t i = 0; i < n; ++i) cdf_[i] = (sum += 1.0 / static_cast<double>(i + 1));
    for (double& c : cdf_) c /= sum;
  }
  uint64_t draw(Rng& rng) const {
    return static_cast<uint64_t>(std::lower_bound(cdf_.begin(), cdf_.end(), rng.unit()) - cdf_.begin());
  }

 private:
  std::vector<double> cdf_;
};

class Simulation {
 public:
  Simulation(const Options& o, std::function<void(const std::string&)> progress)
      : o_(o), rng_(o.seed), progress_(std::move(progress)) {}

  Result<Report> run();

 private:
  Status setup();
  std::string draw_key(uint32_t group_slot);
  std::string draw_value();
  void start_transaction();
  void start_atomic_update();
  Status step();
  Status drain();
  Status deliver(size_t i);
  void crash_some_node();
  Status crash_cluster();
  void tx_ended(const TxFlight& f, const std::vector<TxWrite>& writes);
  void atomic_ended(const TxFlight& f, const TxWrite& w);
  void kill(uint16_t victim, json& line);
  Status snapshot_step(uint16_t node, const std::function<Status()>& run);
  Status restart_due_nodes();
  bool all_up() const;
  Status take_full_snapshot_now();
  Status check_cut();
  void note(const std::string& s) {
    if (progress_) progress_(s);
  }

  Options o_;
  Rng rng_;
  std::function<void(const std::string&)> progress_;
  ClusterOptions cluster_options_;
  std::unique_ptr<Cluster> cluster_;
  // The operations in flight, for a crash of the whole cluster to end: xid -> writes, and the atomic updates.
  std::map<Version, std::vector<TxWrite>> tx_in_flight_;
  std::map<Version, TxWrite> atomic_in_flight_;
  std::vector<CacheGroup> groups_;
  std::unique_ptr<Zipf> zipf_;
  std::ofstream history_;
  Report report_;
  uint64_t now_ = 0;  // simulation steps
  uint64_t started_ = 0, completed_ = 0, in_flight_ = 0;
  bool full_taken_ = false;
  uint64_t cuts_started_ = 0;
  uint64_t running_cut_ = 0;            // 0: none
  std::map<uint64_t, uint64_t> cut_increment_;  // cut id -> increment index
  uint64_t checkpoints_done_ = 0;
  Status failure_;  // the first operation that failed
  std::map<uint16_t, uint64_t> restarts_;   // node down -> step it comes back at
  std::set<uint64_t> duplicated_;           // message ids whose copy is still on its way
  std::string cut_failure_;                 // why the running cut cannot complete
  std::string snapshot_victim_;             // the node whose crash failed the last full snapshot attempt
};

Status Simulation::setup() {
  std::error_code ec;
  if (fs::exists(o_.out, ec) && !fs::is_empty(o_.out, ec)) {
    return Status::invalid_argument("--out " + o_.out + ": exists and is not empty");
  }
  if (o_.nodes == 0 || o_.nodes > 1000) return Status::invalid_argument("--nodes must be 1..1000");
  if (o_.groups + o_.atomic_groups == 0) return Status::invalid_argument("at least one cache group is needed");
  if (o_.groups == 0 && o_.txs > 0) return Status::invalid_argument("--txs needs a TRANSACTIONAL group (--groups >= 1)");
  if (o_.partitions == 0 || o_.partitions > 65535) return Status::invalid_argument("--partitions must be 1..65535");
  if (o_.keys == 0) return Status::invalid_argument("--keys must be at least 1");
  if (o_.tx_size == 0 || o_.in_flight == 0) return Status::invalid_argument("--tx-size and --in-flight must be at least 1");
  if ((o_.crash_rate > 0 || o_.cluster_crash_rate > 0) && o_.fill_blocks) {
    // A crash would lose the open block's acknowledged records, which no recovery can bring back.
    return Status::invalid_argument(
        "--crash-rate and --cluster-crash-rate need --wal-mode log-only: a crashed node would lose the commits of its "
        "open block");
  }
  if (o_.crash_rate > 10000 || o_.cluster_crash_rate > 10000 || o_.message_loss > 50 || o_.message_dup > 100) {
    return Status::invalid_argument(
        "--crash-rate and --cluster-crash-rate must be 0..10000, --message-loss 0..50, --message-dup 0..100");
  }
  WALCUT_RETURN_IF_ERROR(make_directories(o_.out));
  ClusterOptions c;
  c.dir = o_.out + "/cluster";
  c.cluster_id = o_.seed + 1;
  for (uint32_t i = 0; i < o_.nodes; ++i) c.node_ids.push_back("node" + std::to_string(i));
  for (uint32_t g = 0; g < o_.groups + o_.atomic_groups; ++g) {
    bool atomic = g >= o_.groups;
    std::string name = atomic ? "atomic" + std::to_string(g - o_.groups) : "tx" + std::to_string(g);
    c.groups.push_back(CacheGroup{g + 1, name, atomic ? CacheMode::kAtomic : CacheMode::kTransactional,
                                  static_cast<uint16_t>(o_.partitions), static_cast<uint16_t>(o_.backups)});
  }
  groups_ = c.groups;
  c.wal.segment_bytes = o_.segment_bytes;
  c.wal.codec = o_.codec;
  c.wal.sync = SyncPolicy::kNone;
  c.wal.fill_blocks = o_.fill_blocks;
  cluster_options_ = c;
  Result<std::unique_ptr<Cluster>> cluster = Cluster::open(c);
  if (!cluster.ok()) return cluster.status();
  cluster_ = std::move(cluster).value();
  cluster_->messenger().set_queued(true);
  if (!o_.stamp_messages) cluster_->messenger().set_stamp(nullptr);
  if (o_.key_dist == KeyDist::kZipf) zipf_ = std::make_unique<Zipf>(o_.keys);
  // Created with the modes of every file first; the stream then writes into it.
  Result<int> history = create_file(o_.out + "/history.jsonl", O_TRUNC | O_WRONLY);
  if (!history.ok()) return history.status();
  ::close(history.value());
  history_.open(o_.out + "/history.jsonl");
  if (!history_) return Status::io_error("create " + o_.out + "/history.jsonl");
  return {};
}

std::string Simulation::draw_key(uint32_t) {
  uint64_t k = zipf_ ? zipf_->draw(rng_) : rng_.below(o_.keys);
  char buf[24];
  std::snprintf(buf, sizeof buf, "k%08llu", static_cast<unsigned long long>(k));
  return buf;
}

std::string Simulation::draw_value() {
  std::string v(o_.value_bytes, '\0');
  for (size_t i = 0; i < v.size(); i += 8) {
    uint64_t r = rng_.next();
    for (size_t j = 0; j < 8 && i + j < v.size(); ++j) v[i + j] = static_cast<char>('a' + ((r >> (8 * j)) & 15));
  }
  return v;
}

// Transactions: a few writes to TRANSACTIONAL groups, over one or more
// primaries; some roll back.
void Simulation::start_transaction() {
  std::vector<TxWrite> writes;
  uint32_t n = 1 + static_cast<uint32_t>(rng_.below(o_.tx_size));
  for (uint32_t i = 0; i < n; ++i) {
    const CacheGroup& g = groups_[rng_.below(o_.groups)];
    std::string key = draw_key(g.id);
    bool dup = std::any_of(writes.begin(), writes.end(), [&](const TxWrite& w) { return w.group_id == g.id && w.key == key; });
    if (dup) continue;
    std::optional<std::string> value;
    if (rng_.below(10) != 0) value = draw_value();
    writes.push_back(cluster_->make_write(g.name, key, value).value());
  }
  if (!cluster_->try_lock_keys(writes)) return;  // a conflicting transaction is in flight: try another later
  bool commit = rng_.below(100) >= o_.rollback_percent;
  auto coordinator = static_cast<uint16_t>(rng_.below(o_.nodes));
  if (!cluster_->up(coordinator)) {  // its clients wait for it to come back: try another later
    cluster_->unlock_keys(writes);
    return;
  }
  ++started_;
  ++in_flight_;
  std::shared_ptr<TxFlight> f =
      cluster_->submit(coordinator, writes, commit, [this, writes](const TxFlight& f) { tx_ended(f, writes); });
  if (f->phase != TxFlight::Phase::kDone) tx_in_flight_[f->xid] = writes;
}

// A transaction ended: its history line.
void Simulation::tx_ended(const TxFlight& f, const std::vector<TxWrite>& writes) {
  tx_in_flight_.erase(f.xid);
  cluster_->unlock_keys(writes);
  // Not a rollback: the run fails, unless a participant was down (it rolled back).
  if (!f.status.ok() && f.status.code() != StatusCode::kCancelled && failure_.ok()) failure_ = f.status;
  --in_flight_;
  ++completed_;
  json j{{"kind", "tx"}, {"xid", f.xid.to_string()}};
  if (!f.status.ok()) j["error"] = f.status.message();
  if (!f.recovery.empty()) {
    j["recovery"] = f.recovery;
    ++report_.recovered;
  }
  if (f.committed && o_.faults()) {
    // Failed cuts make the increment unknown here: the decision's cut id tells the restores that hold it.
    ++report_.committed;
    j["commit_seq"] = f.commit_version.order;
    j["outcome"] = "committed";
    j["cut"] = full_taken_ ? json(f.tx_cut_id) : json(nullptr);
    j["before_full_snapshot"] = !full_taken_;
  } else if (f.committed) {
    ++report_.committed;
    j["commit_seq"] = f.commit_version.order;
    j["outcome"] = "committed";
    // In restore k iff it was decided before cut k began on its coordinator.
    if (!full_taken_) {
      j["increment"] = 0;
    } else {
      // Restored by the first cut newer than the one its coordinator knew
      // when it decided to commit: a started one, or the next to start.
      auto it = cut_increment_.upper_bound(f.tx_cut_id);
      uint64_t next = cuts_started_ + 1;
      j["increment"] = it != cut_increment_.end() ? json(it->second) : next <= o_.increments ? json(next) : json(nullptr);
    }
  } else {
    ++report_.rolled_back;
    j["commit_seq"] = nullptr;
    j["outcome"] = "rolled_back";
    j[o_.faults() ? "cut" : "increment"] = nullptr;
  }
  json w = json::array();
  for (const TxWrite& x : f.writes) {
    w.push_back({{"group", groups_[x.group_id - 1].name}, {"partition", x.partition}, {"key", hex(x.key)},
                 {"value", x.value ? json(hex(*x.value)) : json(nullptr)}});
  }
  j["writes"] = std::move(w);
  history_ << j.dump() << '\n';
}

void Simulation::start_atomic_update() {
  const CacheGroup& g = groups_[o_.groups + rng_.below(o_.atomic_groups)];
  std::optional<std::string> value;
  if (rng_.below(10) != 0) value = draw_value();
  TxWrite w = cluster_->make_write(g.name, draw_key(g.id), value).value();
  if (!cluster_->try_lock_keys({w})) return;
  auto from = static_cast<uint16_t>(rng_.below(o_.nodes));
  if (!cluster_->up(from)) {
    cluster_->unlock_keys({w});
    return;
  }
  ++in_flight_;
  std::shared_ptr<TxFlight> f = cluster_->submit_atomic(from, w, [this, w](const TxFlight& f) { atomic_ended(f, w); });
  if (f->phase != TxFlight::Phase::kDone) atomic_in_flight_[f->xid] = w;
}

// An atomic update ended: its history line.
void Simulation::atomic_ended(const TxFlight& f, const TxWrite& w) {
  atomic_in_flight_.erase(f.xid);
  cluster_->unlock_keys({w});
  const bool cut_short = f.interrupted || f.status.code() == StatusCode::kCancelled;
  if (!f.status.ok() && !cut_short && failure_.ok()) failure_ = f.status;
  --in_flight_;
  ++report_.atomic_updates;
  json j{{"kind", "atomic"}, {"commit_seq", f.xid.order}, {"group", groups_[w.group_id - 1].name},
         {"partition", w.partition}, {"key", hex(w.key)}, {"value", w.value ? json(hex(*w.value)) : json(nullptr)}};
  if (cut_short) j["interrupted"] = true;  // a crash cut it short: its copies may differ
  history_ << j.dump() << '\n';
}

// Delivers one message, drawn among those whose time has come; with
// faults on, first restarts the nodes due and maybe crashes one.
Status Simulation::step() {
  WALCUT_RETURN_IF_ERROR(failure_);
  if (o_.faults()) WALCUT_RETURN_IF_ERROR(restart_due_nodes());
  if (o_.crash_rate > 0 && rng_.below(10000) < o_.crash_rate) crash_some_node();
  if (o_.cluster_crash_rate > 0 && rng_.below(10000) < o_.cluster_crash_rate) WALCUT_RETURN_IF_ERROR(crash_cluster());
  WALCUT_RETURN_IF_ERROR(failure_);
  auto& pending = cluster_->messenger().pending();
  uint64_t earliest = UINT64_MAX;
  for (const auto& [node, at] : restarts_) earliest = std::min(earliest, at);
  if (pending.empty()) {
    if (!restarts_.empty()) {
      now_ = std::max(now_ + 1, earliest);
      return {};
    }
    // Work in flight with no message to carry it on would never end.
    if (in_flight_ > 0) {
      return Status::invalid_argument("simulation stalled: " + std::to_string(in_flight_) +
                                      " operations in flight and no message pending");
    }
    return {};
  }
  std::vector<size_t> ready;
  for (size_t i = 0; i < pending.size(); ++i) {
    if (pending[i].not_before <= now_) ready.push_back(i);
    earliest = std::min(earliest, pending[i].not_before);
  }
  if (ready.empty()) {
    now_ = earliest;
    return {};
  }
  WALCUT_RETURN_IF_ERROR(deliver(ready[rng_.below(ready.size())]));
  ++now_;
  ++report_.messages;
  return {};
}

// Hands pending()[i] to its node, unless the network loses it (its sender
// sends it again later) or it is the copy of one already delivered.
Status Simulation::deliver(size_t i) {
  Messenger& messenger = cluster_->messenger();
  auto& pending = messenger.pending();
  if (duplicated_.erase(pending[i].id) > 0) {
    pending.erase(pending.begin() + static_cast<long>(i));  // the transport knows its id: dropped on arrival
    return {};
  }
  if (o_.message_loss > 0 && rng_.below(100) < o_.message_loss) {
    Message& m = pending[i];
    history_ << json{{"from", m.from}, {"kind", "message_lost"}, {"message", message_kind_name(m.kind)}, {"step", now_},
                     {"to", m.to}, {"xid", m.xid.to_string()}}.dump() << '\n';
    ++report_.messages_lost;
    m.not_before = now_ + kResendSteps;
    return {};
  }
  if (o_.message_dup > 0 && rng_.below(100) < o_.message_dup) {
    Message copy = pending[i];
    copy.not_before = now_ + 1 + rng_.below(kResendSteps);
    history_ << json{{"from", copy.from}, {"kind", "message_duplicated"}, {"message", message_kind_name(copy.kind)},
                     {"step", now_}, {"to", copy.to}, {"xid", copy.xid.to_string()}}.dump() << '\n';
    ++report_.messages_duplicated;
    duplicated_.insert(copy.id);
    pending.push_back(std::move(copy));
  }
  messenger.deliver(i);
  return {};
}

bool Simulation::all_up() const {
  for (uint16_t i = 0; i < cluster_->size(); ++i) {
    if (!cluster_->up(i)) return false;
  }
  return true;
}

// Kills a node drawn among those up: at once, or while it handles a
// message, its writes torn at a byte drawn from the seed.
void Simulation::crash_some_node() {
  std::vector<uint16_t> up;
  for (uint16_t i = 0; i < cluster_->size(); ++i) {
    if (cluster_->up(i)) up.push_back(i);
  }
  if (up.empty()) return;
  const uint16_t victim = up[rng_.below(up.size())];
  json j{{"kind", "crash"}, {"node", cluster_->meta().baseline[victim]}, {"step", now_}};
  auto& pending = cluster_->messenger().pending();
  std::vector<size_t> to_victim;
  for (size_t i = 0; i < pending.size(); ++i) {
    const Message& m = pending[i];
    if (m.not_before <= now_ && m.to == victim && !duplicated_.count(m.id)) to_victim.push_back(i);
  }
  j["during"] = nullptr;
  j["torn_at_byte"] = nullptr;
  if (!to_victim.empty() && rng_.below(2) == 0) {
    const size_t i = to_victim[rng_.below(to_victim.size())];
    const uint64_t budget = rng_.below(4096);
    j["during"] = message_kind_name(pending[i].kind);
    fault::tear_after_bytes(budget);
    cluster_->messenger().deliver(i);
    ++now_;
    ++report_.messages;
    if (fault::torn()) j["torn_at_byte"] = budget;  // the write that crossed it got only its bytes before it
    fault::disarm();
  }
  kill(victim, j);
}

// The crash itself: its history line, the cut it fails, its restart.
void Simulation::kill(uint16_t victim, json& line) {
  if (running_cut_ != 0 && cut_failure_.empty()) {
    cut_failure_ = "node " + cluster_->meta().baseline[victim] + " crashed while it ran";
  }
  history_ << line.dump() << '\n';
  ++report_.crashes;
  cluster_->crash_node(victim);
  restarts_[victim] = now_ + 1 + rng_.below(uint64_t{o_.restart_max_ms} * kStepsPerMs + 1);
}

// A step of node `node`'s part of the full snapshot (its marker, its
// node.meta, one of its files) counts as a delivery step for crashes: the
// node may die before it, or while it writes, its writes torn.
Status Simulation::snapshot_step(uint16_t node, const std::function<Status()>& run) {
  if (rng_.below(10000) >= o_.crash_rate) return run();
  json j{{"during", "full_snapshot"}, {"kind", "crash"}, {"node", cluster_->meta().baseline[node]}, {"step", now_},
         {"torn_at_byte", nullptr}};
  Status s;
  if (rng_.below(2) == 0) {
    const uint64_t budget = rng_.below(4096);
    fault::tear_after_bytes(budget);
    s = run();
    if (fault::torn()) j["torn_at_byte"] = budget;
    fault::disarm();
  }
  snapshot_victim_ = cluster_->meta().baseline[node];
  kill(node, j);
  return s;
}

// Every node dies at once (one time in two while one of them handles a
// message, its writes torn), and the cluster reopens at once: Cluster::open
// resolves from the WALs what was in flight, and the history says how.
Status Simulation::crash_cluster() {
  json j{{"during", nullptr}, {"kind", "cluster_crash"}, {"node", nullptr}, {"step", now_}, {"torn_at_byte", nullptr}};
  auto& pending = cluster_->messenger().pending();
  std::vector<size_t> ready;
  for (size_t i = 0; i < pending.size(); ++i) {
    const Message& m = pending[i];
    if (m.not_before <= now_ && cluster_->up(m.to) && !duplicated_.count(m.id)) ready.push_back(i);
  }
  if (!ready.empty() && rng_.below(2) == 0) {
    const size_t i = ready[rng_.below(ready.size())];
    const uint64_t budget = rng_.below(4096);
    j["during"] = message_kind_name(pending[i].kind);
    j["node"] = cluster_->meta().baseline[pending[i].to];
    fault::tear_after_bytes(budget);
    cluster_->messenger().deliver(i);
    ++now_;
    ++report_.messages;
    if (fault::torn()) j["torn_at_byte"] = budget;
    fault::disarm();
  }
  history_ << j.dump() << '\n';
  ++report_.cluster_crashes;
  if (running_cut_ != 0 && cut_failure_.empty()) cut_failure_ = "the whole cluster crashed while it ran";
  cluster_->crash();
  cluster_.reset();
  restarts_.clear();  // every node comes back now
  duplicated_.clear();
  Result<std::unique_ptr<Cluster>> reopened = Cluster::open(cluster_options_);
  if (!reopened.ok()) return reopened.status();
  cluster_ = std::move(reopened).value();
  cluster_->messenger().set_queued(true);
  if (!o_.stamp_messages) cluster_->messenger().set_stamp(nullptr);
  history_ << json{{"kind", "cluster_restart"}, {"step", now_}}.dump() << '\n';
  std::map<Version, TxOutcome> outcomes = cluster_->take_outcomes_at_open();
  std::map<Version, std::vector<TxWrite>> txs = std::move(tx_in_flight_);
  std::map<Version, TxWrite> atomics = std::move(atomic_in_flight_);
  tx_in_flight_.clear();
  atomic_in_flight_.clear();
  for (auto& [xid, writes] : txs) {
    TxFlight f;
    f.xid = xid;
    f.writes = writes;
    auto o = outcomes.find(xid);
    if (o != outcomes.end()) {
      f.committed = o->second.committed;
      f.commit_version = o->second.commit_version;
      f.tx_cut_id = o->second.cut_id;
      f.recovery = o->second.recovery;
    } else {
      f.recovery = "rolled back: no node had prepared it";
    }
    tx_ended(f, writes);
  }
  for (auto& [xid, w] : atomics) {
    TxFlight f;
    f.xid = xid;
    f.interrupted = true;
    atomic_ended(f, w);
  }
  return {};
}

Status Simulation::restart_due_nodes() {
  for (auto it = restarts_.begin(); it != restarts_.end();) {
    if (it->second > now_) {
      ++it;
      continue;
    }
    const uint16_t node = it->first;
    it = restarts_.erase(it);
    history_ << json{{"kind", "restart"}, {"node", cluster_->meta().baseline[node]}, {"step", now_}}.dump() << '\n';
    WALCUT_RETURN_IF_ERROR(cluster_->restart_node(node));
  }
  return {};
}

Status Simulation::drain() {
  while (in_flight_ > 0 || !cluster_->messenger().pending().empty() || !restarts_.empty()) {
    WALCUT_RETURN_IF_ERROR(step());
  }
  return {};
}

Status Simulation::take_full_snapshot_now() {
  SnapshotOptions so;
  if (o_.crash_rate > 0) {
    so.run_step = [this](uint16_t node, const std::function<Status()>& run) { return snapshot_step(node, run); };
  }
  for (;;) {
    WALCUT_RETURN_IF_ERROR(drain());  // the crashed node, if any, is back
    Result<SnapshotReport> r = take_full_snapshot(*cluster_, o_.out + "/snapshots", o_.snapshot_name, so);
    if (r.ok()) break;
    if (r.status().code() != StatusCode::kCancelled) return r.status();
    // A crash interrupted it: nothing was published. Taken again once the node is back.
    ++report_.failed_full_snapshots;
    const std::string why = "node " + snapshot_victim_ + " crashed while it was taken";
    history_ << json{{"failed", why}, {"kind", "full_snapshot"}, {"name", o_.snapshot_name}}.dump() << '\n';
    note("full snapshot " + o_.snapshot_name + " failed: " + why);
  }
  full_taken_ = true;
  history_ << json{{"kind", "full_snapshot"}, {"name", o_.snapshot_name}}.dump() << '\n';
  note("full snapshot " + o_.snapshot_name + " after " + std::to_string(completed_) + " transactions");
  return {};
}

// Starts the next cut with START delayed per node, or writes the running
// one's increment once every node has finished it.
Status Simulation::check_cut() {
  if (running_cut_ == 0) {
    // One cut at a time, with every node up: otherwise wait.
    if (o_.faults() && !all_up()) return {};
    Result<uint64_t> started = cluster_->start_cut();
    if (!started.ok() && o_.faults()) return {};
    if (!started.ok()) return started.status();
    const uint64_t id = started.value();
    cut_increment_[id] = ++cuts_started_;
    running_cut_ = id;
    cut_failure_.clear();
    for (Message& m : cluster_->messenger().pending()) {
      if (m.kind == MessageKind::kCutStart && m.cut_id == id) {
        m.not_before = now_ + rng_.below(uint64_t{o_.cut_delay_max_ms} * kStepsPerMs + 1);
      }
    }
    return {};
  }
  if (!cut_failure_.empty()) {
    Result<uint64_t> index = write_failed_increment(*cluster_, o_.out + "/snapshots", o_.snapshot_name, running_cut_,
                                                    cut_failure_);
    if (!index.ok()) return index.status();
    report_.failed_increments += 1;
    json line{{"cut", running_cut_}, {"failed", cut_failure_}, {"index", index.value()}, {"kind", "increment"}};
    history_ << line.dump() << '\n';
    note("increment " + std::to_string(index.value()) + " failed: cut " + std::to_string(running_cut_) + ": " +
         cut_failure_);
    running_cut_ = 0;
    return {};
  }
  for (uint16_t i = 0; i < cluster_->size(); ++i) {
    if (!cluster_->node(i).cut().finished_cut(running_cut_)) return {};
  }
  Result<IncrementReport> r = write_increment(*cluster_, o_.out + "/snapshots", o_.snapshot_name, running_cut_);
  if (!r.ok()) return r.status();
  report_.increments += 1;
  report_.included += r->included;
  report_.excluded += r->excluded;
  json line{{"kind", "increment"}, {"index", r->index}};
  if (o_.faults()) line["cut"] = running_cut_;
  history_ << line.dump() << '\n';
  note("increment " + std::to_string(r->index) + ": " + std::to_string(r->included) + " included, " +
       std::to_string(r->excluded) + " excluded");
  running_cut_ = 0;
  return {};
}

Result<Report> Simulation::run() {
  auto t0 = std::chrono::steady_clock::now();
  WALCUT_RETURN_IF_ERROR(setup());
  const uint64_t full_at = o_.txs / 10;
  auto cut_at = [&](uint64_t k) { return full_at + (o_.txs - full_at) * k / (uint64_t{o_.increments} + 1); };
  auto checkpoint_at = [&](uint64_t j) { return o_.txs * j / (uint64_t{o_.checkpoints} + 1); };
  while (started_ < o_.txs || in_flight_ > 0) {
    if (!full_taken_ && completed_ >= full_at) WALCUT_RETURN_IF_ERROR(take_full_snapshot_now());
    // Fill the free slots: mostly transactions, an atomic update in four.
    for (int tries = 0; in_flight_ < o_.in_flight && started_ < o_.txs && tries < 4; ++tries) {
      if (o_.atomic_groups > 0 && rng_.below(4) == 0) {
        start_atomic_update();
      } else {
        start_transaction();
      }
    }
    WALCUT_RETURN_IF_ERROR(step());
    if (full_taken_ && (running_cut_ != 0 || (cuts_started_ < o_.increments && completed_ >= cut_at(cuts_started_ + 1)))) {
      WALCUT_RETURN_IF_ERROR(check_cut());
    }
    if (checkpoints_done_ < o_.checkpoints && completed_ >= checkpoint_at(checkpoints_done_ + 1)) {
      WALCUT_RETURN_IF_ERROR(cluster_->checkpoint());
      ++checkpoints_done_;
    }
    if (completed_ % 100000 == 0 && completed_ > 0 && in_flight_ == 0) note(std::to_string(completed_) + " transactions");
  }
  if (!full_taken_) WALCUT_RETURN_IF_ERROR(take_full_snapshot_now());
  // Cuts not reached yet run at the end, with nothing else in flight.
  while (running_cut_ != 0 || cuts_started_ < o_.increments) {
    WALCUT_RETURN_IF_ERROR(check_cut());
    WALCUT_RETURN_IF_ERROR(step());
  }
  WALCUT_RETURN_IF_ERROR(drain());
  WALCUT_RETURN_IF_ERROR(failure_);
  history_.close();
  if (!history_) return Status::io_error("write " + o_.out + "/history.jsonl");
  WALCUT_RETURN_IF_ERROR(cluster_->close());
  for (uint32_t i = 0; i < o_.nodes; ++i) {
    Result<std::vector<std::string>> segs = list_segment_files(o_.out + "/cluster/node" + std::to_string(i) + "/wal");
    if (!segs.ok()) return segs.status();
    for (const std::string& p : segs.value()) {
      std::error_code ec;
      uint64_t bytes = fs::file_size(p, ec);
      if (ec) return Status::from_error_code("stat " + p, ec);
      report_.wal_bytes += bytes;
    }
  }
  report_.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return report_;
}

}  // namespace

Result<Report> run(const Options& options, const std::function<void(const std::string&)>& progress) {
  Simulation sim(options, progress);
  return sim.run();
}

}  // namespace walcut::sim
