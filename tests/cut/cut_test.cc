// The consistent cut: every increment is closed under happened-before and
// each transaction is whole across its nodes, judged from the WAL files of
// the increments; the simulator is deterministic.
#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "cut/increment.h"
#include "engine/snapshot.h"
#include "tests/testing/cluster_fixture.h"
#include "tests/testing/cut_checker.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wal_fixture.h"
#include "tools/sim/simulator.h"

namespace walcut {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

sim::Options options_for(uint64_t seed, const std::string& out) {
  sim::Options o;
  o.out = out;
  o.seed = seed;
  o.nodes = 3 + static_cast<uint32_t>(seed % 3);
  o.groups = 2;
  o.atomic_groups = 1;
  o.partitions = 16;
  o.backups = 1 + static_cast<uint32_t>(seed % 2);
  o.keys = 40;  // few keys: transactions conflict and chain
  o.value_bytes = 16;
  o.txs = 800;
  o.tx_size = 1 + static_cast<uint32_t>(seed % 5);
  o.in_flight = 4 + static_cast<uint32_t>(seed % 4) * 4;
  o.increments = 3;
  o.cut_delay_max_ms = static_cast<uint32_t>(seed % 4) * 5;
  o.segment_bytes = 256 << 10;
  o.checkpoints = 2;
  return o;
}

TEST(Cut, IncrementsAreConsistentOverManySeedsAndDelays) {
  uint64_t excluded = 0, checked = 0;
  for (uint64_t seed = 1; seed <= 16; ++seed) {
    TempDir dir;
    sim::Options o = options_for(seed, dir.path() + "/out");
    Result<sim::Report> r = sim::run(o);
    ASSERT_TRUE(r.ok()) << "seed " << seed << ": " << r.status().to_string();
    ASSERT_EQ(r->increments, 3u);
    testing::CutCheck c = testing::check_increments(o.out + "/snapshots/snp");
    ASSERT_EQ(c.violation, "") << "seed " << seed;
    EXPECT_EQ(c.increments, 3u);
    EXPECT_GT(c.in_last, 0u) << "seed " << seed;
    excluded += r->excluded;
    checked += c.transactions;
  }
  EXPECT_GT(excluded, 0u) << "no seed put a transaction in flight across a cut";
  EXPECT_GT(checked, 5000u);
}

// Without the cut id on messages a node starts its cut only on START, and a
// transaction can commit before the cut on one node and after it on
// another: the checker must see that, or it proves nothing above.
TEST(Cut, WithoutPiggybackedIdsTheCheckerFindsInconsistency) {
  int violations = 0;
  for (uint64_t seed = 1; seed <= 8 && violations == 0; ++seed) {
    TempDir dir;
    sim::Options o = options_for(seed, dir.path() + "/out");
    o.cut_delay_max_ms = 20;
    o.in_flight = 16;
    o.stamp_messages = false;
    ASSERT_TRUE(sim::run(o).ok());
    if (!testing::check_increments(o.out + "/snapshots/snp").violation.empty()) ++violations;
  }
  EXPECT_GT(violations, 0);
}

TEST(Gen, TheSameSeedGivesIdenticalBytes) {
  TempDir a, b;
  sim::Options o = options_for(7, a.path() + "/out");
  o.codec = Codec::kLz4;
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
  o.seed = 8;
  o.out = b.path() + "/other";
  ASSERT_TRUE(sim::run(o).ok());
  EXPECT_NE(testing::read_file(a.path() + "/out/history.jsonl"), testing::read_file(b.path() + "/other/history.jsonl"));
}

// Deliver the first pending message of `kind` to node `to`.
void deliver(Cluster& c, MessageKind kind, uint16_t to) {
  auto& pending = c.messenger().pending();
  for (size_t i = 0; i < pending.size(); ++i) {
    if (pending[i].kind == kind && pending[i].to == to) return c.messenger().deliver(i);
  }
  FAIL() << "no pending " << message_kind_name(kind) << " to node " << to;
}

void deliver_all(Cluster& c) {
  while (!c.messenger().pending().empty()) c.messenger().deliver(0);
}

// The schedule of Ignite's IncrementalSnapshotOrderingTest: START reaches
// node 1 long before node 2; a transaction is prepared on node 1 after its
// START and on node 2 before its START, then committed on node 2, which has
// still not seen START. The stamp on node 1's answer makes the coordinator
// decide with the new cut id, and the commit's stamp starts node 2's cut
// before it commits, so node 2 puts it in its excluded set: the transaction
// is after the cut on both nodes, never restored on one and missing on the
// other.
TEST(Cut, DelayedStartMessageCase) {
  TempDir dir;
  ClusterOptions o = testing::small_cluster_options(dir.path() + "/cluster", 3);
  o.groups = {CacheGroup{1, "accounts", CacheMode::kTransactional, 8, 0}};
  auto c = Cluster::open(o);
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(take_full_snapshot(**c, dir.path() + "/snaps", "s").ok());
  (*c)->messenger().set_queued(true);
  // Two keys: one whose only copy is on node 1, one on node 2.
  const CacheGroup& g = o.groups[0];
  std::string on1, on2;
  for (int i = 0; on1.empty() || on2.empty(); ++i) {
    std::string k = "key" + std::to_string(i);
    uint16_t p = (*c)->affinity().primary(g.id, partition_of(g, k));
    if (p == 1 && on1.empty()) on1 = k;
    if (p == 2 && on2.empty()) on2 = k;
  }
  // The prepare requests leave node 0 before any node knows the cut.
  bool committed = false;
  auto tx = (*c)->submit(0, {(*c)->make_write("accounts", on1, "a").value(), (*c)->make_write("accounts", on2, "b").value()},
                         true, [&](const TxFlight& f) { committed = f.committed; });
  uint64_t cut = (*c)->start_cut().value();
  deliver(**c, MessageKind::kCutStart, 1);  // the START messages to nodes 0 and 2 stay in flight
  deliver(**c, MessageKind::kPrepareRequest, 1);   // prepared on node 1 after its START
  deliver(**c, MessageKind::kPrepareRequest, 2);   // and on node 2, before its START
  deliver(**c, MessageKind::kPrepareResponse, 0);  // node 1's answer carries the new cut id
  deliver(**c, MessageKind::kPrepareResponse, 0);
  EXPECT_EQ(tx->tx_cut_id, cut) << "the coordinator decided knowing the new cut";
  EXPECT_TRUE((*c)->node(0).cut().finished_cut(cut).has_value()) << "node 0 started (and finished) its cut on that answer";
  deliver(**c, MessageKind::kCommitRequest, 2);    // node 2 commits before START reaches it
  auto two = (*c)->node(2).cut().finished_cut(cut);
  deliver_all(**c);
  ASSERT_TRUE(committed);
  ASSERT_TRUE(two.has_value()) << "node 2 must have finished the cut when the commit arrived";
  EXPECT_EQ(two->excluded, std::vector<Version>{tx->xid});
  EXPECT_TRUE(two->included.empty());
  for (uint16_t n = 0; n < 3; ++n) ASSERT_TRUE((*c)->node(n).cut().finished_cut(cut).has_value());
  ASSERT_TRUE(write_increment(**c, dir.path() + "/snaps", "s", cut).ok());
  testing::CutCheck check = testing::check_increments(dir.path() + "/snaps/s");
  EXPECT_EQ(check.violation, "");
  EXPECT_EQ(check.in_last, 0u) << "the transaction belongs after the cut";
}

TEST(Increment, BlockingIncrementsWhileWritersRun) {
  TempDir dir;
  auto c = Cluster::open(testing::small_cluster_options(dir.path() + "/cluster"));
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(take_full_snapshot(**c, dir.path() + "/snaps", "s").ok());
  std::atomic<bool> stop{false};
  std::vector<std::thread> writers;
  for (int t = 0; t < 3; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; !stop; ++i) {
        Transaction tx = (*c)->begin(static_cast<uint16_t>(t));
        ASSERT_TRUE(tx.put("accounts", "k" + std::to_string((i * 5 + t) % 30), std::to_string(i)).ok());
        ASSERT_TRUE(tx.put("accounts", "j" + std::to_string((i + t) % 20), std::to_string(i)).ok());
        ASSERT_TRUE(tx.commit().ok());
      }
    });
  }
  for (int k = 1; k <= 3; ++k) {
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    auto r = take_incremental_snapshot(**c, dir.path() + "/snaps", "s");
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_EQ(r->index, static_cast<uint64_t>(k));
    EXPECT_GT(r->segments, 0u);
  }
  stop = true;
  for (auto& w : writers) w.join();
  testing::CutCheck check = testing::check_increments(dir.path() + "/snaps/s");
  EXPECT_EQ(check.violation, "");
  EXPECT_GT(check.in_last, 0u);
}

TEST(Increment, RefusesAMissingBaseOrChangedGroups) {
  TempDir dir;
  ClusterOptions o = testing::small_cluster_options(dir.path() + "/a");
  auto a = Cluster::open(o);
  ASSERT_TRUE(a.ok());
  auto missing = take_incremental_snapshot(**a, dir.path() + "/snaps", "nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("base full snapshot is missing"), std::string::npos);
  ASSERT_TRUE(take_full_snapshot(**a, dir.path() + "/snaps", "s").ok());
  o.dir = dir.path() + "/b";
  o.groups.push_back(CacheGroup{3, "extra", CacheMode::kTransactional, 8, 1});
  auto b = Cluster::open(o);
  ASSERT_TRUE(b.ok());
  auto changed = take_incremental_snapshot(**b, dir.path() + "/snaps", "s");
  ASSERT_FALSE(changed.ok());
  EXPECT_NE(changed.status().message().find("cache groups changed"), std::string::npos) << changed.status().message();
  EXPECT_FALSE(fs::exists(dir.path() + "/snaps/s/increments/0000000000000001"));
}

}  // namespace
}  // namespace walcut
