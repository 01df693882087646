// Faults: node crashes and restarts, lost and duplicated messages. A
// transaction in doubt is resolved the same way on every copy; a cut a
// crash interrupts is a failed increment that restore and check refuse;
// over many seeds every complete increment restores to what the history
// says, and is consistent by the checker that reads the increments' WAL.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "cut/increment.h"
#include "engine/snapshot.h"
#include "replay/restore.h"
#include "tests/testing/cluster_fixture.h"
#include "tests/testing/command.h"
#include "tests/testing/cut_checker.h"
#include "tests/testing/history_reference.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wal_fixture.h"
#include "tools/sim/simulator.h"

namespace walcut {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

// ---- Recovery of a transaction in doubt, message by message.

// Three nodes, one TRANSACTIONAL group without backups; keys whose only
// copy is on node 1 and on node 2; the coordinator is node 0.
class InDoubt : public ::testing::Test {
 protected:
  void SetUp() override {
    ClusterOptions o = testing::small_cluster_options(dir_.path() + "/cluster", 3);
    o.groups = {CacheGroup{1, "accounts", CacheMode::kTransactional, 8, 0}};
    o.wal.fill_blocks = false;
    auto c = Cluster::open(o);
    ASSERT_TRUE(c.ok()) << c.status().to_string();
    c_ = std::move(c).value();
    c_->messenger().set_queued(true);
    for (int i = 0; on1_.empty() || on2_.empty(); ++i) {
      std::string k = "key" + std::to_string(i);
      uint16_t p = c_->affinity().primary(1, partition_of(o.groups[0], k));
      if (p == 1 && on1_.empty()) on1_ = k;
      if (p == 2 && on2_.empty()) on2_ = k;
    }
    std::vector<TxWrite> writes{c_->make_write("accounts", on1_, "a").value(),
                                c_->make_write("accounts", on2_, "b").value()};
    flight_ = c_->submit(0, writes, true, [&](const TxFlight& f) { ended_ = f; });
  }
  void deliver(MessageKind kind, uint16_t to) {
    auto& pending = c_->messenger().pending();
    for (size_t i = 0; i < pending.size(); ++i) {
      if (pending[i].kind == kind && pending[i].to == to) return c_->messenger().deliver(i);
    }
    FAIL() << "no pending " << message_kind_name(kind) << " to node " << to;
  }
  void deliver_all() {
    while (!c_->messenger().pending().empty()) c_->messenger().deliver(0);
  }
  std::optional<std::string> value(uint16_t node, const std::string& key) {
    std::optional<StoredValue> v = c_->node(node).read(1, partition_of(c_->meta().groups[0], key), key);
    return v ? std::optional<std::string>(v->value) : std::nullopt;
  }

  TempDir dir_;
  std::unique_ptr<Cluster> c_;
  std::string on1_, on2_;
  std::shared_ptr<TxFlight> flight_;
  std::optional<TxFlight> ended_;
};

TEST_F(InDoubt, CoordinatorDiesAfterEveryonePreparedAndRecoveryCommitsOnEveryCopy) {
  deliver(MessageKind::kPrepareRequest, 1);
  deliver(MessageKind::kPrepareRequest, 2);
  c_->crash_node(0);  // the answers are lost with it; both participants hold PREPARED
  ASSERT_TRUE(ended_.has_value()) << "both participants are up: resolved at once";
  EXPECT_TRUE(ended_->committed);
  EXPECT_EQ(ended_->recovery, "committed: every participant had prepared it");
  EXPECT_EQ(value(1, on1_), "a");
  EXPECT_EQ(value(2, on2_), "b");
  EXPECT_EQ(c_->in_doubt(), 0u);
}

TEST_F(InDoubt, ParticipantDiesBeforePreparingAndTheOthersRollBack) {
  deliver(MessageKind::kPrepareRequest, 1);
  c_->crash_node(2);  // its PrepareRequest is lost: it never prepared
  EXPECT_FALSE(ended_.has_value()) << "node 2 takes part: the transaction waits for it";
  EXPECT_EQ(c_->in_doubt(), 1u);
  ASSERT_TRUE(c_->restart_node(2).ok());
  ASSERT_TRUE(ended_.has_value());
  EXPECT_FALSE(ended_->committed);
  EXPECT_EQ(ended_->recovery, "rolled back: node node2 had not prepared it");
  deliver_all();
  EXPECT_EQ(value(1, on1_), std::nullopt);
  EXPECT_EQ(value(2, on2_), std::nullopt);
  // Node 1's PREPARED has its outcome: a cut started now finishes everywhere.
  uint64_t cut = c_->start_cut().value();
  deliver_all();
  for (uint16_t n = 0; n < 3; ++n) EXPECT_TRUE(c_->node(n).cut().finished_cut(cut).has_value()) << n;
}

TEST_F(InDoubt, ACommitThatReachedOneParticipantIsCommittedOnTheOthersAfterTheCoordinatorDies) {
  deliver(MessageKind::kPrepareRequest, 1);
  deliver(MessageKind::kPrepareRequest, 2);
  deliver(MessageKind::kPrepareResponse, 0);
  deliver(MessageKind::kPrepareResponse, 0);
  deliver(MessageKind::kCommitRequest, 1);  // node 2's CommitRequest is still on its way
  c_->crash_node(0);
  ASSERT_TRUE(ended_.has_value());
  EXPECT_TRUE(ended_->committed);
  EXPECT_EQ(ended_->recovery, "committed: node node1 had committed it");
  EXPECT_EQ(ended_->commit_version, flight_->commit_version) << "the version node 1 logged";
  EXPECT_EQ(value(1, on1_), "a");
  EXPECT_EQ(value(2, on2_), "b");
  ASSERT_TRUE(c_->restart_node(0).ok());
}

TEST_F(InDoubt, AParticipantThatCommittedAndDiedComesBackWithItAndTheOtherCommitsToo) {
  deliver(MessageKind::kPrepareRequest, 1);
  deliver(MessageKind::kPrepareRequest, 2);
  deliver(MessageKind::kPrepareResponse, 0);
  deliver(MessageKind::kPrepareResponse, 0);
  deliver(MessageKind::kCommitRequest, 2);
  c_->crash_node(2);  // committed on disk; node 1 is still only prepared
  EXPECT_FALSE(ended_.has_value());
  ASSERT_TRUE(c_->restart_node(2).ok());
  ASSERT_TRUE(ended_.has_value());
  EXPECT_TRUE(ended_->committed);
  EXPECT_EQ(ended_->recovery, "committed: node node2 had committed it");
  EXPECT_EQ(value(1, on1_), "a");
  EXPECT_EQ(value(2, on2_), "b");
}

TEST_F(InDoubt, ACommitLoggedAgainAtACheckpointKeepsItsVersionThroughAnotherCrash) {
  deliver(MessageKind::kPrepareRequest, 1);
  deliver(MessageKind::kPrepareRequest, 2);
  deliver(MessageKind::kPrepareResponse, 0);
  deliver(MessageKind::kPrepareResponse, 0);
  deliver(MessageKind::kCommitRequest, 2);
  const Version logged = flight_->commit_version;  // what node 2 logged; recovery writes into the same flight
  ASSERT_FALSE(logged.is_null());
  c_->crash_node(1);  // the transaction waits for node 1
  c_->crash_node(2);
  ASSERT_TRUE(c_->restart_node(2).ok());
  ASSERT_TRUE(c_->checkpoint().ok());  // node 2's COMMITTED is now before its checkpoint, and logged again after it
  c_->crash_node(2);
  ASSERT_TRUE(c_->restart_node(2).ok());
  ASSERT_TRUE(c_->restart_node(1).ok());
  ASSERT_TRUE(ended_.has_value());
  EXPECT_EQ(ended_->recovery, "committed: node node2 had committed it");
  EXPECT_EQ(ended_->commit_version, logged) << "the version node 2 logged, not a null one";
  std::optional<StoredValue> v = c_->node(1).read(1, partition_of(c_->meta().groups[0], on1_), on1_);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->version, logged);
}

// ---- A crash of the whole cluster: every node dies, and they reopen together.

class WholeCluster : public InDoubt {
 protected:
  // Every node dies (the coordinator last, so that nothing is resolved while some live), then the cluster reopens.
  void crash_all_and_reopen() {
    for (uint16_t n : {2, 1, 0}) c_->crash_node(n);
    c_.reset();
    ClusterOptions o = testing::small_cluster_options(dir_.path() + "/cluster", 3);
    o.groups = {CacheGroup{1, "accounts", CacheMode::kTransactional, 8, 0}};
    o.wal.fill_blocks = false;
    auto c = Cluster::open(o);
    ASSERT_TRUE(c.ok()) << c.status().to_string();
    c_ = std::move(c).value();
  }
  void commit_on_node1_only() {
    deliver(MessageKind::kPrepareRequest, 1);
    deliver(MessageKind::kPrepareRequest, 2);
    deliver(MessageKind::kPrepareResponse, 0);
    deliver(MessageKind::kPrepareResponse, 0);
    deliver(MessageKind::kCommitRequest, 1);  // node 2's CommitRequest is still on its way
  }
};

TEST_F(WholeCluster, KilledBetweenThePrimariesCommittedRecordsEveryCopyHasTheTransactionAfterReopen) {
  commit_on_node1_only();
  crash_all_and_reopen();
  EXPECT_EQ(value(1, on1_), "a");
  EXPECT_EQ(value(2, on2_), "b") << "node 2 had only PREPARED: the reopen commits it from its PREPARED record";
}

TEST_F(WholeCluster, KilledAfterEveryonePreparedTheReopenCommitsEverywhereAndSaysWhy) {
  deliver(MessageKind::kPrepareRequest, 1);
  deliver(MessageKind::kPrepareRequest, 2);
  const Version xid = flight_->xid;
  crash_all_and_reopen();
  EXPECT_EQ(value(1, on1_), "a");
  EXPECT_EQ(value(2, on2_), "b");
  std::map<Version, TxOutcome> outcomes = c_->take_outcomes_at_open();
  ASSERT_TRUE(outcomes.count(xid));
  EXPECT_TRUE(outcomes[xid].committed);
  EXPECT_EQ(outcomes[xid].recovery, "committed: every participant had prepared it");
}

TEST_F(WholeCluster, KilledBeforeOneParticipantPreparedTheReopenRollsBackEverywhere) {
  deliver(MessageKind::kPrepareRequest, 1);
  const Version xid = flight_->xid;
  crash_all_and_reopen();
  EXPECT_EQ(value(1, on1_), std::nullopt);
  EXPECT_EQ(value(2, on2_), std::nullopt);
  std::map<Version, TxOutcome> outcomes = c_->take_outcomes_at_open();
  EXPECT_FALSE(outcomes[xid].committed);
  EXPECT_EQ(outcomes[xid].recovery, "rolled back: node node2 had not prepared it");
  // Resolved on disk too: the next reopen finds nothing in doubt and the same state.
  crash_all_and_reopen();
  EXPECT_EQ(c_->take_outcomes_at_open()[xid].recovery, "");
}

TEST_F(WholeCluster, ACheckpointAfterOneCopyCommittedDoesNotHideItsCommitFromTheReopen) {
  commit_on_node1_only();
  ASSERT_TRUE(c_->checkpoint().ok());  // node 1's COMMITTED and node 2's PREPARED are before their CHECKPOINT
  crash_all_and_reopen();
  EXPECT_EQ(value(1, on1_), "a");
  EXPECT_EQ(value(2, on2_), "b");
}

// ---- One cut at a time.

TEST(Cuts, ASecondCutWhileOneRunsIsRefusedNamingTheNode) {
  TempDir dir;
  auto c = Cluster::open(testing::small_cluster_options(dir.path() + "/cluster", 3));
  ASSERT_TRUE(c.ok());
  (*c)->messenger().set_queued(true);
  auto tx = (*c)->submit(0, {(*c)->make_write("accounts", "k", "v").value()}, true, {});
  while ((*c)->messenger().pending().front().kind == MessageKind::kPrepareRequest) (*c)->messenger().deliver(0);
  Result<uint64_t> first = (*c)->start_cut();
  ASSERT_TRUE(first.ok());
  while ((*c)->messenger().pending().back().kind == MessageKind::kCutStart) {
    // The STARTs first: the prepared transaction is waited for.
    (*c)->messenger().deliver((*c)->messenger().pending().size() - 1);
  }
  Result<uint64_t> second = (*c)->start_cut();
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("still runs cut " + std::to_string(first.value())), std::string::npos)
      << second.status().message();
  while (!(*c)->messenger().pending().empty()) (*c)->messenger().deliver(0);
  EXPECT_EQ((*c)->start_cut().value(), first.value() + 1) << "once it finished, the next one starts";
}

// ---- A crash while a full snapshot is taken.

// Three nodes with data; `crash_at` counts the steps of node 1's part of
// the snapshot (its marker, its node.meta, each of its files) and crashes
// it before that one.
class SnapshotCrash : public ::testing::Test {
 protected:
  void SetUp() override {
    ClusterOptions o = testing::small_cluster_options(dir_.path() + "/cluster", 3);
    o.wal.fill_blocks = false;
    auto c = Cluster::open(o);
    ASSERT_TRUE(c.ok()) << c.status().to_string();
    c_ = std::move(c).value();
    for (int i = 0; i < 40; ++i) {
      Transaction tx = c_->begin(static_cast<uint16_t>(i % 3));
      ASSERT_TRUE(tx.put("accounts", "key" + std::to_string(i), "v" + std::to_string(i)).ok());
      ASSERT_TRUE(tx.commit().ok());
    }
    c_->messenger().set_queued(true);  // crash_node and restart_node are for queued delivery
  }
  Result<SnapshotReport> take(int crash_at) {
    SnapshotOptions so;
    int steps = 0;
    so.run_step = [&](uint16_t node, const std::function<Status()>& run) -> Status {
      if (node == 1 && ++steps == crash_at) {
        c_->crash_node(1);
        return {};
      }
      return run();
    };
    return take_full_snapshot(*c_, dir_.path() + "/snapshots", "snp", so);
  }

  TempDir dir_;
  std::unique_ptr<Cluster> c_;
};

TEST_F(SnapshotCrash, ACrashedNodeFailsTheSnapshotNothingIsPublishedAndTheNextAttemptSucceeds) {
  // Step 1: its marker; 2: its node.meta; 3 and on: its files.
  for (int crash_at : {1, 2, 3, 6}) {
    Result<SnapshotReport> r = take(crash_at);
    ASSERT_FALSE(r.ok()) << "crash at step " << crash_at;
    EXPECT_EQ(r.status().code(), StatusCode::kCancelled);
    EXPECT_NE(r.status().message().find("node node1 crashed while the full snapshot was taken"), std::string::npos)
        << r.status().message();
    EXPECT_FALSE(fs::exists(dir_.path() + "/snapshots/snp")) << "crash at step " << crash_at;
    EXPECT_FALSE(fs::exists(dir_.path() + "/snapshots/.snp.staging")) << "crash at step " << crash_at;
    ASSERT_TRUE(c_->restart_node(1).ok());
  }
  ASSERT_TRUE(take(0).ok());
  RestoreOptions ro;
  ro.snapshot_dir = dir_.path() + "/snapshots/snp";
  ro.dest = dir_.path() + "/restored";
  ro.threads = 1;
  Result<RestoreReport> rep = restore_snapshot(ro);
  ASSERT_TRUE(rep.ok()) << rep.status().to_string();
  EXPECT_EQ(rep->nodes, 3u);
}

TEST_F(SnapshotCrash, AnUnfinishedSnapshotDirectoryIsRefusedNamingIt) {
  // The process taking it fails before it publishes: the staging directory stays, and is no snapshot.
  SnapshotOptions so;
  int steps = 0;
  so.run_step = [&](uint16_t node, const std::function<Status()>& run) -> Status {
    return node == 2 && ++steps == 3 ? Status::io_error("disk full") : run();  // its first file
  };
  ASSERT_FALSE(take_full_snapshot(*c_, dir_.path() + "/snapshots", "snp", so).ok());
  const std::string staging = dir_.path() + "/snapshots/.snp.staging";
  ASSERT_TRUE(fs::exists(staging + "/node0.smf")) << "node 0's part was written";
  RestoreOptions ro;
  ro.snapshot_dir = staging;
  ro.dest = dir_.path() + "/restored";
  Result<RestoreReport> rep = restore_snapshot(ro);
  ASSERT_FALSE(rep.ok());
  EXPECT_EQ(rep.status().code(), StatusCode::kNotFound);
  EXPECT_NE(rep.status().message().find(staging + ": holds INCOMPLETE"), std::string::npos) << rep.status().message();
  EXPECT_FALSE(fs::exists(ro.dest));
  int code = 0;
  std::string out = testing::run_command(std::string(WALCUT_CLI) + " snapshot check " + testing::shell_quote(staging) +
                                         " 2>&1", &code);
  EXPECT_EQ(code, 3) << out;
  EXPECT_NE(out.find("holds INCOMPLETE"), std::string::npos) << out;
}

// ---- walcut gen with faults, over many seeds.

sim::Options fault_options(uint64_t seed, const std::string& out) {
  sim::Options o;
  o.out = out;
  o.seed = seed;
  o.nodes = 3 + static_cast<uint32_t>(seed % 2);
  o.groups = 2;
  o.atomic_groups = 1;
  o.partitions = 8;
  o.backups = 1 + static_cast<uint32_t>(seed % 2);
  o.keys = 24;  // few keys: transactions conflict and chain
  o.value_bytes = 8;
  o.txs = 120;
  o.tx_size = 1 + static_cast<uint32_t>(seed % 4);
  o.in_flight = 4 + static_cast<uint32_t>(seed % 3) * 4;
  o.increments = 3;
  o.cut_delay_max_ms = static_cast<uint32_t>(seed % 3) * 5;
  o.segment_bytes = 64 << 10;
  o.checkpoints = 2;
  o.fill_blocks = false;
  o.crash_rate = 20 + static_cast<uint32_t>(seed % 4) * 20;
  o.restart_max_ms = 1 + static_cast<uint32_t>(seed % 5);
  o.message_loss = static_cast<uint32_t>(seed % 3) * 5;
  o.message_dup = static_cast<uint32_t>(seed % 2) * 5;
  o.cluster_crash_rate = static_cast<uint32_t>(seed % 3) * 5;
  return o;
}

// Every copy of every TRANSACTIONAL key in the generated cluster, opened
// (which resolves what a crash of the whole cluster left in doubt), holds
// what the history's committed transactions wrote: all or nothing of each.
std::string compare_cluster_to_history(const sim::Options& o) {
  Result<NodeMeta> meta = read_node_meta(o.out + "/cluster/node0");
  if (!meta.ok()) return meta.status().to_string();
  ClusterOptions co;
  co.dir = o.out + "/cluster";
  co.cluster_id = meta->cluster_id;
  co.node_ids = meta->baseline;
  co.groups = meta->groups;
  co.wal.fill_blocks = false;
  Result<std::unique_ptr<Cluster>> c = Cluster::open(co);
  if (!c.ok()) return c.status().to_string();
  testing::State want = testing::reference(o.out + "/history.jsonl", testing::kEveryCommitted);
  for (const CacheGroup& g : co.groups) {
    if (g.mode != CacheMode::kTransactional) continue;
    for (uint16_t n = 0; n < co.node_ids.size(); ++n) {
      for (const auto& [pid, entries] : (*c)->node(n).share_partitions()) {
        if (pid.first != g.id) continue;
        std::map<std::string, std::string> have, expect;
        for (const auto& [k, v] : *entries) have[k] = v.value;
        for (const auto& [k, v] : want[g.name]) {
          if (partition_of(g, k) == pid.second) expect[k] = v;
        }
        if (have != expect) {
          return "node " + co.node_ids[n] + " group " + g.name + " partition " + std::to_string(pid.second) + ": " +
                 std::to_string(have.size()) + " keys, the history has " + std::to_string(expect.size());
        }
      }
    }
  }
  return "";
}

// The seeds the suite runs: 200, but 20 in a sanitizer build (WALCUT_SANITIZE),
// where each generated cluster costs about ten times as much.
#ifdef WALCUT_SANITIZED_BUILD
constexpr uint64_t kSuiteSeeds = 20;
#else
constexpr uint64_t kSuiteSeeds = 200;
#endif

uint64_t seeds_from_env(uint64_t fallback) {
  const char* n = std::getenv("WALCUT_FAULT_SEEDS");
  return n ? std::strtoull(n, nullptr, 10) : fallback;
}

TEST(Faults, EveryCompleteIncrementRestoresTheHistoryAndEveryFailedOneIsRefused) {
  // scripts/fault-campaign.sh runs thousands: WALCUT_FAULT_SEEDS, from WALCUT_FAULT_FIRST_SEED.
  const char* first_env = std::getenv("WALCUT_FAULT_FIRST_SEED");
  const uint64_t first = first_env ? std::strtoull(first_env, nullptr, 10) : 1;
  const uint64_t seeds = seeds_from_env(kSuiteSeeds);
  sim::Report sum;
  uint64_t restored = 0, refused = 0;
  for (uint64_t seed = first; seed < first + seeds; ++seed) {
    TempDir dir;
    sim::Options o = fault_options(seed, dir.path() + "/gen");
    Result<sim::Report> r = sim::run(o);
    ASSERT_TRUE(r.ok()) << "seed " << seed << ": " << r.status().to_string();
    sum.crashes += r->crashes;
    sum.cluster_crashes += r->cluster_crashes;
    sum.recovered += r->recovered;
    sum.messages_lost += r->messages_lost;
    sum.messages_duplicated += r->messages_duplicated;
    sum.increments += r->increments;
    sum.failed_increments += r->failed_increments;
    sum.failed_full_snapshots += r->failed_full_snapshots;
    const std::string snap = o.out + "/snapshots/snp";
    ASSERT_EQ(compare_cluster_to_history(o), "") << "seed " << seed;
    testing::CutCheck check = testing::check_increments(snap);
    ASSERT_EQ(check.violation, "") << "seed " << seed;
    ASSERT_EQ(check.increments, o.increments) << "seed " << seed;
    ASSERT_EQ(check.failed, r->failed_increments) << "seed " << seed;
    for (uint64_t k = 0; k <= o.increments; ++k) {
      RestoreOptions ro;
      ro.snapshot_dir = snap;
      ro.increment = k;
      ro.dest = dir.path() + "/restored-" + std::to_string(k);
      ro.threads = 1;
      Result<RestoreReport> rep = restore_snapshot(ro);
      Result<std::optional<std::string>> failed = increment_failure(snap, k);
      if (k > 0 && failed.value()) {
        ASSERT_FALSE(rep.ok()) << "seed " << seed << ": failed increment " << k << " restored";
        EXPECT_EQ(rep.status().code(), StatusCode::kNotFound);
        EXPECT_NE(rep.status().message().find("increment " + std::to_string(k) + " failed (cut "), std::string::npos)
            << rep.status().message();
        EXPECT_FALSE(fs::exists(ro.dest));
        ++refused;
        continue;
      }
      ASSERT_TRUE(rep.ok()) << "seed " << seed << " increment " << k << ": " << rep.status().to_string();
      ASSERT_EQ(testing::compare_restored(ro.dest, testing::reference(o.out + "/history.jsonl", k)), "")
          << "seed " << seed << " increment " << k;
      fs::remove_all(ro.dest);
      ++restored;
    }
  }
  // The faults happened, and both kinds of increment were judged.
  EXPECT_GT(sum.crashes, seeds);
  EXPECT_GT(sum.recovered, seeds);
  EXPECT_GT(sum.messages_lost, 0u);
  EXPECT_GT(sum.messages_duplicated, 0u);
  EXPECT_GT(sum.increments, seeds);
  EXPECT_GT(refused, 0u);
  EXPECT_GT(sum.failed_full_snapshots, 0u) << "crashes hit full snapshots too";
  EXPECT_GT(sum.cluster_crashes, seeds / 10) << "and the whole cluster";
  std::printf("%llu seeds: %llu crashes, %llu of the whole cluster, %llu full snapshots a crash interrupted (taken again), %llu transactions "
              "recovered, %llu increments restored (full snapshots included), %llu failed ones refused\n",
              static_cast<unsigned long long>(seeds), static_cast<unsigned long long>(sum.crashes),
              static_cast<unsigned long long>(sum.cluster_crashes), static_cast<unsigned long long>(sum.failed_full_snapshots),
              static_cast<unsigned long long>(sum.recovered), static_cast<unsigned long long>(restored),
              static_cast<unsigned long long>(refused));
}

TEST(Faults, TheSameSeedGivesIdenticalBytes) {
  TempDir a, b;
  sim::Options o = fault_options(11, a.path() + "/out");
  ASSERT_TRUE(sim::run(o).ok());
  o.out = b.path() + "/out";
  ASSERT_TRUE(sim::run(o).ok());
  size_t files = 0;
  for (const auto& e : fs::recursive_directory_iterator(a.path() + "/out")) {
    if (!e.is_regular_file()) continue;
    std::string rel = fs::relative(e.path(), a.path()).string();
    ASSERT_TRUE(fs::exists(b.path() + "/" + rel)) << rel;
    EXPECT_EQ(testing::read_file(e.path().string()), testing::read_file(b.path() + "/" + rel)) << rel;
    ++files;
  }
  EXPECT_GT(files, 20u);
  const std::string history = to_string(testing::read_file(a.path() + "/out/history.jsonl"));
  EXPECT_NE(history.find("\"kind\":\"crash\""), std::string::npos);
}

// The first seed of the campaign's shape with a failed increment (followed
// by a complete one, when `complete_next`): its index, 0 if none.
uint64_t run_with_failed_increment(const std::string& dir, bool complete_next, sim::Options& o) {
  for (uint64_t seed = 1; seed < 100; ++seed) {
    o = fault_options(seed, dir + "/gen" + std::to_string(seed));
    if (!sim::run(o).ok()) return 0;
    const std::string snap = o.out + "/snapshots/snp";
    for (uint64_t k = 1; k <= o.increments; ++k) {
      if (!increment_failure(snap, k).value()) continue;
      if (!complete_next || (k < o.increments && !increment_failure(snap, k + 1).value())) return k;
    }
  }
  return 0;
}

TEST(Faults, CliRefusesAFailedIncrementNamingItsCut) {
  TempDir dir;
  sim::Options o;
  const uint64_t failed_index = run_with_failed_increment(dir.path(), false, o);
  ASSERT_GT(failed_index, 0u);
  const std::string snap = o.out + "/snapshots/snp";
  const std::string k = std::to_string(failed_index);
  using testing::shell_quote;
  int code = 0;
  const std::string cli = WALCUT_CLI;
  const std::string dest = shell_quote(dir.path() + "/r");
  const std::string args = " --increment " + k + " --dest " + dest + " 2>&1";
  std::string out = testing::run_command(cli + " snapshot restore " + shell_quote(snap) + args, &code);
  EXPECT_EQ(code, 3) << out;
  EXPECT_NE(out.find("increment " + k + " failed (cut "), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(dir.path() + "/r"));
  out = testing::run_command(cli + " snapshot check " + shell_quote(snap) + " --increment " + k + " 2>&1", &code);
  EXPECT_EQ(code, 1) << out;
  EXPECT_NE(out.find("increment " + k + " failed (cut "), std::string::npos) << out;
  const std::string inc_dir = increment_dir(snap, failed_index);
  EXPECT_EQ(out.find(inc_dir + ": " + inc_dir), std::string::npos) << "the directory is named once: " << out;
}

TEST(Faults, SnapshotInfoListsAFailedIncrementAndRefusesToStopAtIt) {
  TempDir dir;
  sim::Options o;
  const uint64_t failed_index = run_with_failed_increment(dir.path(), true, o);
  ASSERT_GT(failed_index, 0u);
  const std::string snap = testing::shell_quote(o.out + "/snapshots/snp");
  const std::string k = std::to_string(failed_index);
  const std::string cli = WALCUT_CLI;
  int code = 0;
  std::string out = testing::run_command(cli + " snapshot info " + snap + " 2>&1", &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("increment " + k + ": failed (cut "), std::string::npos) << out;
  EXPECT_NE(out.find("increment " + std::to_string(failed_index + 1) + ": cut "), std::string::npos) << out;
  out = testing::run_command(cli + " snapshot info --json " + snap + " 2>&1", &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("\"failed\": \"cut "), std::string::npos) << out;
  out = testing::run_command(cli + " snapshot info --increment " + k + " " + snap + " 2>&1", &code);
  EXPECT_EQ(code, 3) << out;
  EXPECT_NE(out.find("increment " + k + " failed (cut "), std::string::npos) << out;
}

}  // namespace
}  // namespace walcut
