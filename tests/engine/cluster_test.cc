// Two-phase commit, rollbacks and atomic updates: every copy agrees.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>
#include <thread>

#include "engine/affinity.h"
#include "engine/cluster.h"
#include "engine/partition_file.h"
#include "io/block.h"
#include "io/file_util.h"
#include "io/record_reader.h"
#include "tests/testing/cluster_fixture.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wal_fixture.h"

namespace walcut {
namespace {

using testing::Expected;
using testing::TempDir;

// The TX records of each state a node logged for `xid`.
std::map<TxState, int> tx_records(Node& node, const Version& xid) {
  EXPECT_TRUE(node.wal()->sync().ok());
  std::map<TxState, int> seen;
  auto reader = BlockReader::open(list_segment_files(node.wal_dir()).value(), {});
  EXPECT_TRUE(for_each_record(*reader.value(), [&](const Block&, const RecordView& r) {
                if (r.type != RecordType::kTx) return Status{};
                TxRecord tx = std::get<TxRecord>(decode_payload(r.type, r.payload).value());
                if (tx.near_xid == xid) ++seen[tx.state];
                return Status{};
              }).ok());
  return seen;
}

TEST(Affinity, IsAPureFunctionWithDistinctOwners) {
  CacheGroup g{7, "g", CacheMode::kTransactional, 64, 2};
  std::vector<std::string> baseline{"a", "b", "c", "d", "e"};
  std::vector<int> primaries(baseline.size());
  for (uint16_t p = 0; p < g.partitions; ++p) {
    auto owners = partition_owners(g, p, baseline);
    ASSERT_EQ(owners.size(), 3u);
    EXPECT_EQ(owners, partition_owners(g, p, baseline));
    EXPECT_EQ(std::set<uint16_t>(owners.begin(), owners.end()).size(), 3u);
    ++primaries[owners[0]];
  }
  for (int n : primaries) EXPECT_GT(n, 0) << "every node is primary for some partitions";
  // Rendezvous: removing a node moves only the partitions it owned.
  std::vector<std::string> smaller{"a", "b", "c", "d"};
  for (uint16_t p = 0; p < g.partitions; ++p) {
    auto before = partition_owners(g, p, baseline);
    if (before[0] != 4) {
      EXPECT_EQ(partition_owners(g, p, smaller)[0], before[0]);
    }
  }
  CacheGroup lone{8, "h", CacheMode::kTransactional, 4, 5};
  EXPECT_EQ(partition_owners(lone, 0, {"x", "y"}).size(), 2u) << "backups are capped by the node count";
}

TEST(Cluster, TransactionsAcrossSeveralPrimariesReachEveryCopy) {
  TempDir dir;
  auto c = Cluster::open(testing::small_cluster_options(dir.path()));
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  Expected want;
  for (int t = 0; t < 30; ++t) {
    Transaction tx = (*c)->begin(static_cast<uint16_t>(t % 4));
    for (int k = 0; k < 6; ++k) {
      std::string key = "k" + std::to_string((t * 7 + k * 13) % 50);
      if ((t + k) % 5 == 0) {
        ASSERT_TRUE(tx.remove("accounts", key).ok());
        want["accounts"].erase(key);
      } else {
        std::string value = "v" + std::to_string(t) + "." + std::to_string(k);
        ASSERT_TRUE(tx.put("accounts", key, value).ok());
        want["accounts"][key] = value;
      }
    }
    ASSERT_TRUE(tx.commit().ok());
    ASSERT_EQ(testing::compare_copies(**c, want), "") << "after transaction " << t;
  }
  // The last transaction: PREPARED and COMMITTED once on each participant, nothing elsewhere.
  Transaction tx = (*c)->begin(1);
  ASSERT_TRUE(tx.put("accounts", "x1", "1").ok());
  ASSERT_TRUE(tx.put("accounts", "x2", "2").ok());
  ASSERT_TRUE(tx.put("accounts", "x3", "3").ok());
  Version xid = tx.xid();
  ASSERT_TRUE(tx.commit().ok());
  std::set<uint16_t> involved;
  for (const char* k : {"x1", "x2", "x3"}) {
    const CacheGroup& g = *(*c)->group("accounts");
    for (uint16_t n : (*c)->affinity().owners(g.id, partition_of(g, k))) involved.insert(n);
  }
  for (uint16_t n = 0; n < (*c)->size(); ++n) {
    auto seen = tx_records((*c)->node(n), xid);
    int expect = involved.count(n) ? 1 : 0;
    EXPECT_EQ(seen[TxState::kPrepared], expect) << "node " << n;
    EXPECT_EQ(seen[TxState::kCommitted], expect) << "node " << n;
  }
}

TEST(Cluster, RolledBackTransactionsLeaveNoCopyChanged) {
  TempDir dir;
  auto c = Cluster::open(testing::small_cluster_options(dir.path()));
  ASSERT_TRUE(c.ok());
  Transaction first = (*c)->begin();
  ASSERT_TRUE(first.put("accounts", "a", "1").ok());
  ASSERT_TRUE(first.commit().ok());
  Transaction tx = (*c)->begin(2);
  ASSERT_TRUE(tx.put("accounts", "a", "2").ok());
  ASSERT_TRUE(tx.put("accounts", "b", "2").ok());
  ASSERT_TRUE(tx.prepare().ok());
  Version xid = tx.xid();
  ASSERT_TRUE(tx.rollback().ok());
  EXPECT_EQ(testing::compare_copies(**c, {{"accounts", {{"a", "1"}}}}), "");
  int rolled_back = 0;
  for (uint16_t n = 0; n < (*c)->size(); ++n) {
    auto seen = tx_records((*c)->node(n), xid);
    EXPECT_EQ(seen[TxState::kPrepared], seen[TxState::kRolledBack]) << "node " << n;
    EXPECT_EQ(seen[TxState::kCommitted], 0);
    rolled_back += seen[TxState::kRolledBack];
  }
  EXPECT_GE(rolled_back, 3) << "a key has three copies";
  // A transaction dropped without commit rolls back too, and frees its keys.
  {
    Transaction dropped = (*c)->begin();
    ASSERT_TRUE(dropped.put("accounts", "a", "3").ok());
    ASSERT_TRUE(dropped.prepare().ok());
  }
  Transaction after = (*c)->begin();
  ASSERT_TRUE(after.put("accounts", "a", "4").ok());
  ASSERT_TRUE(after.commit().ok());
  EXPECT_EQ(testing::compare_copies(**c, {{"accounts", {{"a", "4"}}}}), "");
}

TEST(Cluster, AtomicUpdatesReachPrimaryAndBackups) {
  TempDir dir;
  auto c = Cluster::open(testing::small_cluster_options(dir.path()));
  ASSERT_TRUE(c.ok());
  Expected want;
  for (int i = 0; i < 40; ++i) {
    std::string key = "e" + std::to_string(i % 15);
    if (i % 6 == 5) {
      ASSERT_TRUE((*c)->atomic_put("events", key, std::nullopt, static_cast<uint16_t>(i % 4)).ok());
      want["events"].erase(key);
    } else {
      ASSERT_TRUE((*c)->atomic_put("events", key, "v" + std::to_string(i), static_cast<uint16_t>(i % 4)).ok());
      want["events"][key] = "v" + std::to_string(i);
    }
    ASSERT_EQ(testing::compare_copies(**c, want), "") << "after update " << i;
  }
  EXPECT_EQ((*c)->get("events", "e1"), want["events"]["e1"]);
  EXPECT_EQ((*c)->atomic_put("accounts", "k", "v").code(), StatusCode::kInvalidArgument);
  Transaction tx = (*c)->begin();
  EXPECT_EQ(tx.put("events", "k", "v").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(tx.put("nope", "k", "v").code(), StatusCode::kInvalidArgument);
}

TEST(Cluster, ConcurrentTransactionsOnSharedKeysKeepCopiesEqual) {
  TempDir dir;
  auto c = Cluster::open(testing::small_cluster_options(dir.path()));
  ASSERT_TRUE(c.ok());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      for (int i = 0; i < 50; ++i) {
        Transaction tx = (*c)->begin(static_cast<uint16_t>(t));
        for (int k = 0; k < 3; ++k) ASSERT_TRUE(tx.put("accounts", "k" + std::to_string(rng() % 20), std::to_string(t * 1000 + i)).ok());
        ASSERT_TRUE(tx.commit().ok());
        ASSERT_TRUE((*c)->atomic_put("events", "e" + std::to_string(rng() % 10), std::to_string(i), static_cast<uint16_t>(t)).ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  // Whatever the interleaving, every copy equals its primary.
  for (const CacheGroup& g : (*c)->meta().groups) {
    for (uint16_t p = 0; p < g.partitions; ++p) {
      const auto& owners = (*c)->affinity().owners(g.id, p);
      EntryMap primary = *(*c)->node(owners[0]).share_partitions().at({g.id, p});
      for (size_t i = 1; i < owners.size(); ++i) {
        EXPECT_EQ(*(*c)->node(owners[i]).share_partitions().at({g.id, p}), primary) << g.name << " " << p;
      }
    }
  }
}

TEST(Cluster, ReopeningRecoversFromCheckpointAndWal) {
  TempDir dir;
  Expected want;
  ClusterOptions o = testing::small_cluster_options(dir.path());
  for (int round = 0; round < 3; ++round) {
    auto c = Cluster::open(o);
    ASSERT_TRUE(c.ok()) << c.status().to_string();
    ASSERT_EQ(testing::compare_copies(**c, want), "") << "after reopening, round " << round;
    for (int i = 0; i < 30; ++i) {
      Transaction tx = (*c)->begin();
      std::string key = "k" + std::to_string((round * 30 + i) % 37);
      ASSERT_TRUE(tx.put("accounts", key, "r" + std::to_string(round) + "." + std::to_string(i)).ok());
      ASSERT_TRUE(tx.commit().ok());
      want["accounts"][key] = "r" + std::to_string(round) + "." + std::to_string(i);
      ASSERT_TRUE((*c)->atomic_put("events", key, "a" + std::to_string(i)).ok());
      want["events"][key] = "a" + std::to_string(i);
      if (i == 15) {
        ASSERT_TRUE((*c)->checkpoint().ok());
      }
    }
    EXPECT_GT((*c)->node(0).meta().topology_version, static_cast<uint32_t>(round));
  }
  auto c = Cluster::open(o);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(testing::compare_copies(**c, want), "");
  EXPECT_GT((*c)->node(0).recovery().partitions_loaded, 0u);
  EXPECT_GT((*c)->node(0).recovery().transactions_applied, 0u);
}

TEST(Cluster, CheckpointDropsSegmentsNobodyNeeds) {
  TempDir dir;
  ClusterOptions o = testing::small_cluster_options(dir.path(), 2);
  o.wal.segment_bytes = 64 << 10;
  auto c = Cluster::open(o);
  ASSERT_TRUE(c.ok());
  for (int i = 0; i < 300; ++i) {
    Transaction tx = (*c)->begin();
    ASSERT_TRUE(tx.put("accounts", "k" + std::to_string(i % 40), std::string(1000, 'x')).ok());
    ASSERT_TRUE(tx.commit().ok());
  }
  size_t before = list_segment_files((*c)->node(0).wal_dir())->size();
  ASSERT_GT(before, 3u);
  ASSERT_TRUE((*c)->checkpoint().ok());
  size_t after = list_segment_files((*c)->node(0).wal_dir())->size();
  EXPECT_EQ(after, 1u) << "segments before the checkpoint's segment go";
}

TEST(Node, RefusesADamagedPartitionFileNamingIt) {
  TempDir dir;
  ClusterOptions o = testing::small_cluster_options(dir.path(), 2);
  {
    auto c = Cluster::open(o);
    ASSERT_TRUE(c.ok());
    for (int i = 0; i < 20; ++i) {
      Transaction tx = (*c)->begin();
      ASSERT_TRUE(tx.put("accounts", "k" + std::to_string(i), "v").ok());
      ASSERT_TRUE(tx.commit().ok());
    }
    ASSERT_TRUE((*c)->checkpoint().ok());
  }
  const CacheGroup& g = o.groups[0];
  std::string victim;
  for (uint16_t p = 0; p < g.partitions && victim.empty(); ++p) {
    std::string path = partition_path(dir.path() + "/node0/db", g, p);
    if (std::filesystem::exists(path) && std::filesystem::file_size(path) > 100) victim = path;
  }
  ASSERT_FALSE(victim.empty());
  Bytes b = testing::read_file(victim);
  b[b.size() / 2] ^= std::byte{1};
  testing::write_file(victim, b);
  Bytes wal_before = testing::read_file(list_segment_files(dir.path() + "/node0/wal")->back());
  auto c = Cluster::open(o);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kCorruption);
  EXPECT_NE(c.status().message().find(victim), std::string::npos) << c.status().message();
  EXPECT_EQ(testing::read_file(list_segment_files(dir.path() + "/node0/wal")->back()), wal_before)
      << "a refused open writes nothing";
}

}  // namespace
}  // namespace walcut
