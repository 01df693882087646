// Online backup and its restore at start-up.
#include "engine/backup.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "engine/cluster.h"
#include "io/fault.h"
#include "tests/testing/cluster_fixture.h"
#include "tests/testing/command.h"
#include "tests/testing/fork.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wal_fixture.h"

namespace walcut {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

// Every file under `dir` with its bytes.
std::map<std::string, Bytes> snapshot_files(const std::string& dir) {
  std::map<std::string, Bytes> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) out[fs::relative(e.path(), dir).string()] = testing::read_file(e.path().string());
  }
  return out;
}

std::map<PartitionId, EntryMap> node_state(const std::string& dir) {
  NodeOptions o;
  o.dir = dir;
  o.read_only = true;
  auto node = Node::open(o);
  EXPECT_TRUE(node.ok()) << node.status().to_string();
  std::map<PartitionId, EntryMap> out;
  if (!node.ok()) return out;
  for (auto& [pid, entries] : (*node)->share_partitions()) {
    if (!entries->empty()) out[pid] = *entries;
  }
  return out;
}

std::map<PartitionId, EntryMap> non_empty(const std::map<PartitionId, EntryMap>& m) {
  std::map<PartitionId, EntryMap> out;
  for (const auto& [pid, e] : m) {
    if (!e.empty()) out[pid] = e;
  }
  return out;
}

// A node directory holding only restore/<name>.backup.
std::string waiting_node(const std::string& root, const std::string& backup) {
  fs::create_directories(root + "/restore");
  fs::copy_file(backup, root + "/restore/" + fs::path(backup).filename().string());
  return root;
}

TEST(Backup, TakenWhileWritersCommitRestoresTheStateAtItsPoint) {
  TempDir dir;
  auto c = Cluster::open(testing::small_cluster_options(dir.path() + "/cluster", 3));
  ASSERT_TRUE(c.ok());
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> commits{0};
  std::vector<std::thread> writers;
  for (int t = 0; t < 3; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; !stop; ++i) {
        Transaction tx = (*c)->begin(static_cast<uint16_t>(t));
        ASSERT_TRUE(tx.put("accounts", "k" + std::to_string((i * 7 + t) % 90), std::to_string(t) + "." + std::to_string(i)).ok());
        ASSERT_TRUE(tx.commit().ok());
        ASSERT_TRUE((*c)->atomic_put("events", "e" + std::to_string(i % 20), std::to_string(i), static_cast<uint16_t>(t)).ok());
        ++commits;
      }
    });
  }
  while (commits < 100) std::this_thread::yield();
  const std::string file = dir.path() + "/node1.backup";
  ASSERT_TRUE((*c)->node(1).backup(file).ok());
  uint64_t after = commits;
  while (commits < after + 50) std::this_thread::yield();  // writers went on
  stop = true;
  for (auto& w : writers) w.join();
  ASSERT_TRUE((*c)->close().ok());

  Result<BackupContents> b = read_backup_file(file);
  ASSERT_TRUE(b.ok()) << b.status().to_string();
  // The state at the consistent point, from the node's own WAL.
  auto expected = non_empty(testing::replay_node_wal(dir.path() + "/cluster/node1/wal", b->meta.consistent));
  std::map<PartitionId, EntryMap> in_backup;
  for (const auto& [pid, e] : b->partitions) {
    if (!e.empty()) in_backup[pid] = e;
  }
  EXPECT_EQ(in_backup, expected);
  EXPECT_FALSE(expected.empty());
  // And a node rebuilt from it holds exactly that.
  std::string fresh = waiting_node(dir.path() + "/fresh", file);
  NodeOptions o;
  o.dir = fresh;
  auto node = Node::open(o);
  ASSERT_TRUE(node.ok()) << node.status().to_string();
  EXPECT_FALSE((*node)->recovery().restored_backup.empty());
  ASSERT_TRUE((*node)->close().ok());
  EXPECT_EQ(node_state(fresh), expected);
  EXPECT_TRUE(fs::is_empty(fresh + "/restore")) << "the backup is removed once applied";
}

class Refusals : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = Cluster::open(testing::small_cluster_options(dir_.path() + "/cluster", 2));
    ASSERT_TRUE(c.ok());
    for (int i = 0; i < 30; ++i) {
      Transaction tx = (*c)->begin();
      ASSERT_TRUE(tx.put("accounts", "k" + std::to_string(i), "v").ok());
      ASSERT_TRUE(tx.commit().ok());
    }
    ASSERT_TRUE((*c)->node(0).backup(dir_.path() + "/node0.backup").ok());
  }
  // Drops `backup` into node1's restore/, opens node1, and checks that it
  // was refused with `message`, its files untouched, the backup left there.
  void expect_refused(const std::string& backup, const std::string& message) {
    const std::string node1 = dir_.path() + "/cluster/node1";
    auto before = snapshot_files(node1);
    fs::create_directories(node1 + "/restore");
    const std::string waiting = node1 + "/restore/x.backup";
    fs::copy_file(backup, waiting, fs::copy_options::overwrite_existing);
    NodeOptions o;
    o.dir = node1;
    auto node = Node::open(o);
    ASSERT_FALSE(node.ok());
    EXPECT_NE(node.status().message().find(message), std::string::npos) << node.status().message();
    EXPECT_TRUE(fs::exists(waiting)) << "the refused file stays for a person to look at";
    fs::remove(waiting);
    fs::remove(node1 + "/restore");
    EXPECT_EQ(snapshot_files(node1), before) << "the node's data is byte-identical";
  }
  TempDir dir_;
};

TEST_F(Refusals, BackupOfAnotherNode) { expect_refused(dir_.path() + "/node0.backup", "a backup of node node0"); }

TEST_F(Refusals, DamagedBackup) {
  Bytes b = testing::read_file(dir_.path() + "/node0.backup");
  b[40] ^= std::byte{0x40};  // inside the META section's body
  testing::write_file(dir_.path() + "/bad.backup", b);
  expect_refused(dir_.path() + "/bad.backup", "checksum mismatch at offset");
  b.resize(b.size() - 10);
  testing::write_file(dir_.path() + "/short.backup", b);
  expect_refused(dir_.path() + "/short.backup", "refusing the backup");
}

TEST_F(Refusals, BackupOfAnotherCluster) {
  TempDir other;
  ClusterOptions o = testing::small_cluster_options(other.path() + "/cluster", 2);
  o.cluster_id = 777;
  auto c = Cluster::open(o);
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE((*c)->node(1).backup(other.path() + "/n1.backup").ok());
  expect_refused(other.path() + "/n1.backup", "of cluster 777");
}

// Kill the start-up restore at each step and at random bytes: the next
// open finishes it (new state, file gone), or finds it not begun (the
// node's own files untouched, the file waiting); never half applied.
TEST(Backup, KilledDuringStartUpRestoreAtEveryStep) {
  TempDir dir;
  ClusterOptions co = testing::small_cluster_options(dir.path() + "/cluster", 2);
  {
    auto c = Cluster::open(co);
    ASSERT_TRUE(c.ok());
    for (int i = 0; i < 40; ++i) {
      Transaction tx = (*c)->begin();
      ASSERT_TRUE(tx.put("accounts", "k" + std::to_string(i), "old").ok());
      ASSERT_TRUE(tx.commit().ok());
    }
    ASSERT_TRUE((*c)->node(0).backup(dir.path() + "/b.backup").ok());
    for (int i = 0; i < 40; ++i) {  // the node moves on after the backup
      Transaction tx = (*c)->begin();
      ASSERT_TRUE(tx.put("accounts", "k" + std::to_string(i), "new").ok());
      ASSERT_TRUE(tx.commit().ok());
    }
  }
  const std::string pristine = dir.path() + "/pristine";
  fs::copy(dir.path() + "/cluster/node0", pristine, fs::copy_options::recursive);
  Result<BackupContents> b = read_backup_file(dir.path() + "/b.backup");
  ASSERT_TRUE(b.ok());
  std::map<PartitionId, EntryMap> want;
  for (const auto& [pid, e] : b->partitions) {
    if (!e.empty()) want[pid] = e;
  }
  std::vector<std::function<void()>> crashes;
  for (const char* p : {"backup.marked", "backup.staged", "backup.swapping", "backup.swapped", "backup.meta_written",
                        "backup.file_removed"}) {
    crashes.push_back([p] { fault::crash_at_point(p); });
  }
  for (uint64_t bytes : {10, 200, 1000, 2500, 4000}) crashes.push_back([bytes] { fault::crash_after_bytes(bytes); });
  for (size_t i = 0; i < crashes.size(); ++i) {
    SCOPED_TRACE("crash " + std::to_string(i));
    const std::string node = dir.path() + "/node-" + std::to_string(i);
    fs::copy(pristine, node, fs::copy_options::recursive);
    fs::create_directories(node + "/restore");
    fs::copy_file(dir.path() + "/b.backup", node + "/restore/b.backup");
    auto before = snapshot_files(node);
    pid_t pid = testing::fork_child();
    if (pid == 0) {
      crashes[i]();
      NodeOptions o;
      o.dir = node;
      ::_exit(Node::open(o).ok() ? 0 : 1);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), fault::kCrashExitCode) << "the crash point was not reached";
    bool waiting = fs::exists(node + "/restore/b.backup"), marked = fs::exists(node + "/restore/APPLYING");
    if (waiting && !marked) {
      EXPECT_EQ(snapshot_files(node), before) << "not begun: nothing changed";
    }
    NodeOptions o;
    o.dir = node;
    auto reopened = Node::open(o);
    ASSERT_TRUE(reopened.ok()) << reopened.status().to_string();
    ASSERT_TRUE((*reopened)->close().ok());
    EXPECT_FALSE(fs::exists(node + "/restore/b.backup"));
    EXPECT_FALSE(fs::exists(node + "/restore/APPLYING"));
    EXPECT_EQ(node_state(node), want);
  }
}

// A restore cut short whose backup someone then removed is not taken for a
// finished one: the node refuses to open until the backup is back.
TEST(Backup, InterruptedRestoreWhoseBackupIsGoneIsRefused) {
  TempDir dir;
  {
    auto c = Cluster::open(testing::small_cluster_options(dir.path() + "/cluster", 2));
    ASSERT_TRUE(c.ok());
    Transaction tx = (*c)->begin();
    ASSERT_TRUE(tx.put("accounts", "k", "v").ok());
    ASSERT_TRUE(tx.commit().ok());
    ASSERT_TRUE((*c)->node(0).backup(dir.path() + "/b.backup").ok());
  }
  const std::string node = dir.path() + "/cluster/node0";
  fs::create_directories(node + "/restore");
  fs::copy_file(dir.path() + "/b.backup", node + "/restore/b.backup");
  pid_t pid = testing::fork_child();
  if (pid == 0) {
    fault::crash_at_point("backup.swapping");
    NodeOptions o;
    o.dir = node;
    ::_exit(Node::open(o).ok() ? 0 : 1);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_EQ(WEXITSTATUS(status), fault::kCrashExitCode);
  fs::remove(node + "/restore/b.backup");
  NodeOptions o;
  o.dir = node;
  auto refused = Node::open(o);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("was interrupted"), std::string::npos) << refused.status().message();
  fs::copy_file(dir.path() + "/b.backup", node + "/restore/b.backup");
  auto reopened = Node::open(o);
  ASSERT_TRUE(reopened.ok()) << reopened.status().to_string();
  EXPECT_EQ((*reopened)->read(1, partition_of(CacheGroup{1, "accounts", CacheMode::kTransactional, 32, 2}, "k"), "k")->value, "v");
}

TEST(BackupCommand, RoundTripThroughTheCli) {
  TempDir dir;
  const std::string cli = WALCUT_CLI;
  int code = -1;
  testing::run_command(cli + " gen --out " + dir.path() + "/gen --seed 4 --txs 500 --increments 1", &code);
  ASSERT_EQ(code, 0);
  testing::run_command(cli + " backup " + dir.path() + "/gen/cluster " + dir.path() + "/backups", &code);
  ASSERT_EQ(code, 0);
  for (const char* n : {"node0", "node2"}) {
    std::string fresh = dir.path() + "/fresh-" + n;
    fs::create_directories(fresh + "/restore");
    fs::copy_file(dir.path() + "/backups/" + n + ".backup", fresh + "/restore/" + n + ".backup");
    std::string out = testing::run_command(cli + " node recover " + fresh, &code);
    EXPECT_EQ(code, 0) << out;
    EXPECT_NE(out.find("applied backup"), std::string::npos) << out;
    EXPECT_EQ(testing::run_command(cli + " dump " + fresh),
              testing::run_command(cli + " dump " + dir.path() + "/gen/cluster/" + n));
  }
  testing::run_command(cli + " node recover " + dir.path() + "/nowhere 2>/dev/null", &code);
  EXPECT_NE(code, 0);
}

// A small generated cluster: 3 nodes, 8 partitions per group, 1 MiB segments.
constexpr const char* kSmallGen = "--seed 4 --txs 200 --increments 1 --nodes 3 --partitions 8 --segment-mib 1";

// A backup written into the node it backs up would overwrite the node's
// own files (or wait in its restore/ to be applied): refused.
TEST(Backup, PathInsideTheNodeIsRefused) {
  TempDir dir;
  auto c = Cluster::open(testing::small_cluster_options(dir.path() + "/cluster", 2));
  ASSERT_TRUE(c.ok());
  Transaction tx = (*c)->begin();
  ASSERT_TRUE(tx.put("accounts", "k", "v").ok());
  ASSERT_TRUE(tx.commit().ok());
  const std::string node = (*c)->node(0).dir();
  const Bytes meta = testing::read_file(node + "/node.meta");
  for (const std::string& inside : {node + "/node.meta", node + "/restore/x.backup", node + "/db/../b.backup",
                                    dir.path() + "/cluster/./node0/b.backup"}) {
    Status s = (*c)->node(0).backup(inside);
    ASSERT_FALSE(s.ok()) << inside;
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << inside;
    EXPECT_NE(s.message().find("inside the directory of node node0"), std::string::npos) << s.message();
  }
  EXPECT_EQ(testing::read_file(node + "/node.meta"), meta);
  EXPECT_FALSE(fs::exists(node + "/restore"));
  EXPECT_FALSE(fs::exists(node + "/b.backup"));
  EXPECT_TRUE((*c)->node(0).backup(dir.path() + "/cluster/node0.backup").ok()) << "beside the node is fine";
}

TEST(BackupCommand, DestinationInsideTheSourceNodeIsRefused) {
  TempDir dir;
  const std::string cli = WALCUT_CLI;
  int code = -1;
  testing::run_command(cli + " gen --out " + dir.path() + "/gen " + kSmallGen, &code);
  ASSERT_EQ(code, 0);
  const std::string cluster = dir.path() + "/gen/cluster";
  const auto before = snapshot_files(cluster);
  std::string out =
      testing::run_command(cli + " backup " + cluster + "/node1 " + cluster + "/node1/node.meta 2>&1", &code);
  EXPECT_EQ(code, 2) << out;
  EXPECT_NE(out.find("inside the directory of node node1"), std::string::npos) << out;
  out = testing::run_command(cli + " backup " + cluster + " " + cluster + "/node2/backups 2>&1", &code);
  EXPECT_EQ(code, 2) << out;
  EXPECT_NE(out.find("inside the node directory " + cluster + "/node2"), std::string::npos) << out;
  EXPECT_EQ(snapshot_files(cluster), before) << "nothing written in the cluster";
}

// The CLI verbs open nodes as the engine does, so they refuse a node
// another process has open, at once, with exit 3.
TEST(BackupCommand, NodeOpenElsewhereIsBusy) {
  TempDir dir;
  const std::string cli = WALCUT_CLI;
  int code = -1;
  testing::run_command(cli + " gen --out " + dir.path() + "/gen " + kSmallGen, &code);
  ASSERT_EQ(code, 0);
  const std::string node = dir.path() + "/gen/cluster/node1";
  {
    NodeOptions o;
    o.dir = node;
    auto open = Node::open(o);
    ASSERT_TRUE(open.ok()) << open.status().to_string();
    std::string out = testing::run_command(cli + " node recover " + node + " 2>&1", &code);
    EXPECT_EQ(code, 3) << out;
    EXPECT_NE(out.find(node + ": busy: another walcut process holds a lock on it"), std::string::npos) << out;
    out = testing::run_command(cli + " backup " + node + " " + dir.path() + "/n1.backup 2>&1", &code);
    EXPECT_EQ(code, 3) << out;
    EXPECT_NE(out.find("busy"), std::string::npos) << out;
    EXPECT_FALSE(fs::exists(dir.path() + "/n1.backup"));
  }
  std::string out = testing::run_command(cli + " backup " + node + " " + dir.path() + "/n1.backup 2>&1", &code);
  EXPECT_EQ(code, 0) << "once closed: " << out;
  out = testing::run_command(cli + " node recover " + node + " 2>&1", &code);
  EXPECT_EQ(code, 0) << out;
}

// The reproduction: `walcut gen` closes its nodes cleanly (their
// WAL writers sync at close only), then one byte flips at 80% of the written
// part of a node's last segment. Recovery and backup refuse it (exit 3) and
// leave the node's files as they were, instead of dropping committed data.
TEST(NodeCommands, RecoverAndBackupRefuseDamageInTheWalOfACleanlyClosedNode) {
  TempDir dir;
  const std::string cli = WALCUT_CLI;
  int code = -1;
  testing::run_command(cli + " gen --out " + dir.path() + "/gen --seed 3 --txs 800 --increments 1", &code);
  ASSERT_EQ(code, 0);
  const std::string node = dir.path() + "/gen/cluster/node0";
  const std::string last = testing::segments_of(node + "/wal").back();
  Bytes b = testing::read_file(last);
  size_t written = b.size();
  while (written > 0 && b[written - 1] == std::byte{0}) --written;
  b[written * 8 / 10] ^= std::byte{0x01};
  testing::write_file(last, b);
  const auto before = snapshot_files(node);
  std::string out = testing::run_command(cli + " node recover " + node + " 2>&1", &code);
  EXPECT_EQ(code, 3) << out;
  EXPECT_NE(out.find(last + " at offset"), std::string::npos) << out;
  EXPECT_EQ(out.find("torn WAL tail dropped"), std::string::npos) << out;
  out = testing::run_command(cli + " backup " + node + " " + dir.path() + "/node0.backup 2>&1", &code);
  EXPECT_EQ(code, 3) << out;
  EXPECT_FALSE(fs::exists(dir.path() + "/node0.backup"));
  EXPECT_EQ(snapshot_files(node), before) << "a refused node's files must stay as they were";
}

}  // namespace
}  // namespace walcut
