// Full snapshots: consistent with their CLUSTER_SNAPSHOT records, taken
// without stopping writers while the files are written; and `walcut dump`.
#include "engine/snapshot.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "engine/partition_file.h"
#include "io/crc32c.h"
#include "tests/testing/cluster_fixture.h"
#include "tests/testing/command.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wal_fixture.h"

namespace walcut {
namespace {

using testing::TempDir;

TEST(FullSnapshot, EqualsTheStateAtItsRecordWhileWritersGoOn) {
  TempDir dir;
  auto c = Cluster::open(testing::small_cluster_options(dir.path() + "/cluster"));
  ASSERT_TRUE(c.ok());
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> commits{0};
  std::vector<std::thread> writers;
  for (int t = 0; t < 3; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; !stop; ++i) {
        Transaction tx = (*c)->begin(static_cast<uint16_t>(t));
        ASSERT_TRUE(tx.put("accounts", "k" + std::to_string((i * 7 + t) % 80), std::to_string(t) + ":" + std::to_string(i)).ok());
        ASSERT_TRUE(tx.put("accounts", "j" + std::to_string((i * 3 + t) % 50), std::to_string(i)).ok());
        ASSERT_TRUE(tx.commit().ok());
        ASSERT_TRUE((*c)->atomic_put("events", "e" + std::to_string(i % 30), std::to_string(i), static_cast<uint16_t>(t)).ok());
        ++commits;
      }
    });
  }
  while (commits < 50) std::this_thread::yield();
  uint64_t during = 0;
  SnapshotOptions o;
  // Hold the file writing until writers have committed 100 more
  // transactions: they are not stopped while the files are written.
  o.before_write = [&] {
    uint64_t at = commits;
    while (commits < at + 100) std::this_thread::yield();
    during = commits - at;
  };
  auto report = take_full_snapshot(**c, dir.path() + "/snapshots", "snap1", o);
  ASSERT_TRUE(report.ok()) << report.status().to_string();
  stop = true;
  for (auto& w : writers) w.join();
  EXPECT_GE(during, 100u);

  auto metas = read_snapshot_metas(dir.path() + "/snapshots/snap1");
  ASSERT_TRUE(metas.ok()) << metas.status().to_string();
  ASSERT_EQ(metas->size(), 4u);
  ASSERT_TRUE((*c)->close().ok());
  std::map<std::pair<uint32_t, uint16_t>, EntryMap> by_partition;
  for (const SnapshotMeta& m : metas.value()) {
    // The node's WAL up to its CLUSTER_SNAPSHOT record is what the files hold.
    auto expected = testing::replay_node_wal(dir.path() + "/cluster/" + m.node_id + "/wal", m.snapshot_pointer);
    size_t files = 0;
    for (const ManifestEntry& f : m.files) {
      std::string path = dir.path() + "/snapshots/snap1/" + f.path;
      Bytes bytes = testing::read_file(path);
      EXPECT_EQ(bytes.size(), f.bytes);
      EXPECT_EQ(crc32c(bytes), f.crc32c);
      auto pf = read_partition_file(path);
      ASSERT_TRUE(pf.ok()) << pf.status().to_string();
      PartitionId pid{pf->info.group_id, pf->info.partition};
      EXPECT_EQ(pf->entries, expected[pid]) << path;
      auto [it, fresh] = by_partition.emplace(pid, pf->entries);
      if (!fresh) {
        EXPECT_EQ(it->second, pf->entries) << "copies of " << path << " disagree";
      }
      ++files;
    }
    EXPECT_GT(files, 0u);
  }
  // The snapshot keeps its node's WAL from its segment on.
  auto node0 = read_node_meta(dir.path() + "/cluster/node0");
  ASSERT_TRUE(node0.ok());
  EXPECT_EQ(node0->wal_keep_from_segment, metas->front().snapshot_pointer.segment);
}

TEST(FullSnapshot, RefusesAnExistingNameAndLeavesNoStagingBehind) {
  TempDir dir;
  auto c = Cluster::open(testing::small_cluster_options(dir.path() + "/cluster", 2));
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(take_full_snapshot(**c, dir.path() + "/snaps", "s").ok());
  auto again = take_full_snapshot(**c, dir.path() + "/snaps", "s");
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.status().message().find("exists"), std::string::npos);
  EXPECT_FALSE(take_full_snapshot(**c, dir.path() + "/snaps", "a/b").ok());
  size_t entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path() + "/snaps")) {
    EXPECT_EQ(e.path().filename(), "s");
    ++entries;
  }
  EXPECT_EQ(entries, 1u);
}

TEST(DumpCommand, ClusterAndSnapshotDumpsCompareWithDiff) {
  TempDir dir;
  const std::string cluster_dir = dir.path() + "/cluster";
  {
    auto c = Cluster::open(testing::small_cluster_options(cluster_dir, 3));
    ASSERT_TRUE(c.ok());
    for (int i = 0; i < 20; ++i) {
      Transaction tx = (*c)->begin();
      ASSERT_TRUE(tx.put("accounts", "key" + std::to_string(i), "value" + std::to_string(i)).ok());
      ASSERT_TRUE(tx.commit().ok());
      ASSERT_TRUE((*c)->atomic_put("events", "ev" + std::to_string(i % 5), "x").ok());
    }
    ASSERT_TRUE(take_full_snapshot(**c, dir.path() + "/snaps", "s1").ok());
  }
  const std::string cli = WALCUT_CLI;
  int code = -1;
  std::string live = testing::run_command(cli + " dump " + cluster_dir, &code);
  EXPECT_EQ(code, 0);
  std::string snap = testing::run_command(cli + " dump " + dir.path() + "/snaps/s1", &code);
  EXPECT_EQ(code, 0);
  EXPECT_EQ(live, snap);
  EXPECT_EQ(testing::run_command(cli + " dump " + dir.path() + "/snaps/s1/db"), snap);
  // 20 accounts keys with 3 copies each, 5 events keys with 2.
  EXPECT_EQ(std::count(live.begin(), live.end(), '\n'), 20 * 3 + 5 * 2);
  std::string one_node = testing::run_command(cli + " dump " + cluster_dir + "/node1 --group accounts --json");
  ASSERT_FALSE(one_node.empty());
  std::string first = one_node.substr(0, one_node.find('\n'));
  for (const char* field : {"\"node\":\"node1\"", "\"group\":\"accounts\"", "\"partition\":", "\"key\":\"6b6579",
                            "\"value\":\"76616c7565", "\"version\":\""}) {
    EXPECT_NE(first.find(field), std::string::npos) << first;
  }
  testing::run_command(cli + " dump " + dir.path() + "/nowhere 2>/dev/null", &code);
  EXPECT_EQ(code, 2);
  // The dump of a node directory changed nothing in it.
  std::string again = testing::run_command(cli + " dump " + cluster_dir);
  EXPECT_EQ(again, live);
}

}  // namespace
}  // namespace walcut
