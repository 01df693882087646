// Kill the whole cluster at a crash point, reopen it, and check that every
// node holds every transaction it acknowledged, whole, and the one in
// flight either whole or not at all.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <random>

#include "engine/cluster.h"
#include "engine/meta_codec.h"
#include "io/fault.h"
#include "tests/testing/fork.h"
#include "tests/testing/cluster_fixture.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wal_fixture.h"

namespace walcut {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

constexpr int kTransactions = 400;

// Transaction i of the workload: a few puts and removes, from a seed.
std::vector<std::pair<std::string, std::optional<std::string>>> workload_tx(int i) {
  std::mt19937 rng(1000 + i);
  std::vector<std::pair<std::string, std::optional<std::string>>> writes;
  int n = 1 + static_cast<int>(rng() % 5);
  for (int k = 0; k < n; ++k) {
    std::string key = "k" + std::to_string(rng() % 60);
    if (rng() % 6 == 0) {
      writes.emplace_back(key, std::nullopt);
    } else {
      writes.emplace_back(key, "t" + std::to_string(i) + "." + std::string(rng() % 600, 'a' + k));
    }
  }
  return writes;
}

ClusterOptions crash_options(const std::string& dir) {
  ClusterOptions o = testing::small_cluster_options(dir, 3);
  o.wal.segment_bytes = 64 << 10;  // many rollovers
  o.wal.block_bytes = 2048;        // many blocks per group
  return o;
}

// The child: runs the workload and reports each acknowledged transaction
// on `fd`, until the crash point ends it.
[[noreturn]] void run_child(const std::string& dir, int fd, const std::function<void()>& arm) {
  auto c = Cluster::open(crash_options(dir));
  if (!c.ok()) ::_exit(2);
  arm();
  for (int i = 0; i < kTransactions; ++i) {
    Transaction tx = (*c)->begin(static_cast<uint16_t>(i % 3));
    for (auto& [key, value] : workload_tx(i)) {
      Status s = value ? tx.put("accounts", key, *value) : tx.remove("accounts", key);
      if (!s.ok()) ::_exit(3);
    }
    if (!tx.commit().ok()) ::_exit(4);
    char acked = 1;
    if (::write(fd, &acked, 1) != 1) ::_exit(5);
    if (i % 25 == 24 && !(*c)->checkpoint().ok()) ::_exit(6);
  }
  if (!(*c)->close().ok()) ::_exit(7);
  ::_exit(0);
}

// Runs the child to its crash; returns how many transactions it acknowledged.
int crash_run(const std::string& dir, const std::function<void()>& arm) {
  int fds[2];
  EXPECT_EQ(::pipe(fds), 0);
  pid_t pid = testing::fork_child();
  if (pid == 0) {
    ::close(fds[0]);
    run_child(dir, fds[1], arm);
  }
  ::close(fds[1]);
  int acked = 0;
  char b;
  while (::read(fds[0], &b, 1) == 1) ++acked;
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), fault::kCrashExitCode) << "the child did not reach its crash point";
  return acked;
}

// The state after the first n transactions of the workload.
std::map<std::string, std::string> state_after(int n) {
  std::map<std::string, std::string> s;
  for (int i = 0; i < n; ++i) {
    for (auto& [key, value] : workload_tx(i)) {
      if (value) s[key] = *value;
      else s.erase(key);
    }
  }
  return s;
}

// Every copy a node holds matches the acknowledged state, or that state
// plus the one transaction in flight: the same choice on all of the node's
// partitions.
void check_recovered(const std::string& dir, int acked) {
  auto c = Cluster::open(crash_options(dir));
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  const CacheGroup& g = *(*c)->group("accounts");
  auto before = state_after(acked), after = state_after(acked + 1);
  for (uint16_t n = 0; n < (*c)->size(); ++n) {
    auto parts = (*c)->node(n).share_partitions();
    auto matches = [&](const std::map<std::string, std::string>& want) {
      for (const auto& [pid, entries] : parts) {
        if (pid.first != g.id) continue;
        std::map<std::string, std::string> have, expect;
        for (const auto& [k, v] : *entries) have[k] = v.value;
        for (const auto& [k, v] : want) {
          if (partition_of(g, k) == pid.second) expect[k] = v;
        }
        if (have != expect) return false;
      }
      return true;
    };
    EXPECT_TRUE(matches(before) || matches(after))
        << "node " << n << " holds neither the " << acked << " acknowledged transactions nor those and the next";
  }
}

TEST(Recovery, KilledMidWriteAtManyByteOffsets) {
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 12; ++trial) {
    TempDir dir;
    uint64_t bytes = 20000 + rng() % 400000;
    SCOPED_TRACE("crash after " + std::to_string(bytes) + " bytes");
    int acked = crash_run(dir.path(), [&] { fault::crash_after_bytes(bytes); });
    ASSERT_LT(acked, kTransactions);
    check_recovered(dir.path(), acked);
  }
}

TEST(Recovery, KilledMidRollover) {
  for (const char* point : {"wal.rollover", "wal.create_segment"}) {
    for (uint64_t count : {1, 4}) {
      TempDir dir;
      SCOPED_TRACE(std::string(point) + " #" + std::to_string(count));
      int acked = crash_run(dir.path(), [&] { fault::crash_at_point(point, count); });
      check_recovered(dir.path(), acked);
    }
  }
}

TEST(Recovery, KilledMidCheckpoint) {
  for (const auto& at : std::vector<std::pair<const char*, uint64_t>>{
           {"checkpoint.partition", 1}, {"checkpoint.partition", 7}, {"checkpoint.before_meta", 1},
           {"checkpoint.partition", 30}, {"checkpoint.before_meta", 2}}) {
    const char* point = at.first;  // plain variables: clang 14 lets no lambda capture a structured binding
    const uint64_t count = at.second;
    TempDir dir;
    SCOPED_TRACE(std::string(point) + " #" + std::to_string(count));
    int acked = crash_run(dir.path(), [&] { fault::crash_at_point(point, count); });
    check_recovered(dir.path(), acked);
  }
}

// Closing syncs each node's WAL, then records its end in node.meta: a
// crash in between leaves the older durable end, which must only make the
// next open less strict.
TEST(Recovery, KilledWhileClosing) {
  TempDir dir;
  int acked = crash_run(dir.path(), [] { fault::crash_at_point("node.close", 2); });  // node0 closed, node1 not
  EXPECT_EQ(acked, kTransactions);
  check_recovered(dir.path(), acked);
}

// Every file under `dir` with its bytes.
std::map<std::string, Bytes> files_under(const std::string& dir) {
  std::map<std::string, Bytes> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) out[fs::relative(e.path(), dir).string()] = testing::read_file(e.path().string());
  }
  return out;
}

// A cluster that ran `n` transactions of the workload and was closed cleanly.
void run_and_close(const std::string& dir, int n) {
  auto c = Cluster::open(crash_options(dir));
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  for (int i = 0; i < n; ++i) {
    Transaction tx = (*c)->begin(static_cast<uint16_t>(i % 3));
    for (auto& [key, value] : workload_tx(i)) {
      ASSERT_TRUE((value ? tx.put("accounts", key, *value) : tx.remove("accounts", key)).ok());
    }
    ASSERT_TRUE(tx.commit().ok());
    if (i == n / 2) {
      ASSERT_TRUE((*c)->checkpoint().ok());
    }
  }
  ASSERT_TRUE((*c)->close().ok());
}

// Opening the node, read-only or not, is refused as corruption naming the
// file, and changes none of its files.
void expect_refused(const std::string& node_dir, const std::string& names) {
  const auto before = files_under(node_dir);
  for (bool read_only : {false, true}) {
    NodeOptions o;
    o.dir = node_dir;
    o.read_only = read_only;
    auto node = Node::open(o);
    ASSERT_FALSE(node.ok()) << "read_only " << read_only;
    EXPECT_EQ(node.status().code(), StatusCode::kCorruption) << node.status().to_string();
    EXPECT_NE(node.status().message().find(names), std::string::npos) << node.status().message();
  }
  EXPECT_EQ(files_under(node_dir), before) << "a refused node's files must stay as they were";
}

// The WAL writers sync only at rollover and close (policy `none`): a byte
// flipped in the last segment of a node closed cleanly hit synced bytes, so
// it is corruption, not a torn tail to drop with the commits after it.
TEST(Recovery, DamageInTheWalOfACleanlyClosedNodeIsCorruption) {
  TempDir dir;
  run_and_close(dir.path(), 120);
  const std::string node = dir.path() + "/node0";
  std::vector<std::string> segments = testing::segments_of(node + "/wal");
  const std::string last = segments.back();
  Bytes b = testing::read_file(last);
  size_t written = b.size();
  while (written > 0 && b[written - 1] == std::byte{0}) --written;
  ASSERT_GT(written, 64u * 1024 / 10) << "the last segment should hold some blocks";
  b[written * 8 / 10] ^= std::byte{0x01};
  testing::write_file(last, b);
  expect_refused(node, last + " at offset ");
}

TEST(Recovery, WalOfACleanlyClosedNodeCutShortOrMissingItsLastSegmentIsCorruption) {
  TempDir dir;
  run_and_close(dir.path(), 120);
  const std::string node = dir.path() + "/node1";
  std::vector<std::string> segments = testing::segments_of(node + "/wal");
  ASSERT_GE(segments.size(), 2u);
  const std::string last = segments.back();
  const Bytes original = testing::read_file(last);
  size_t written = original.size();
  while (written > 0 && original[written - 1] == std::byte{0}) --written;
  testing::write_file(last, ByteSpan(original).first(written / 2));
  expect_refused(node, last);
  fs::rename(last, last + ".moved");
  expect_refused(node, "is missing");
  fs::rename(last + ".moved", last);
  fs::rename(node + "/wal", dir.path() + "/wal.moved");
  expect_refused(node, node + "/wal: no WAL segment");
  fs::rename(dir.path() + "/wal.moved", node + "/wal");
  testing::write_file(last, original);
  NodeOptions o;
  o.dir = node;
  auto whole = Node::open(o);
  ASSERT_TRUE(whole.ok()) << whole.status().to_string();
  EXPECT_FALSE((*whole)->recovery().wal_end.torn);
}

// A node.meta of version 1 has no durable end: it still opens, and the
// reader falls back to sync_start alone.
TEST(Recovery, NodeMetaOfVersion1IsStillRead) {
  TempDir dir;
  run_and_close(dir.path(), 30);
  const std::string node = dir.path() + "/node2";
  NodeMeta meta = read_node_meta(node).value();
  ASSERT_NE(meta.wal_durable_end, WalPointer{});
  Bytes v2 = encode_node_meta(meta);
  const uint32_t body_bytes = load_u32(v2.data() + 12);
  Bytes body(v2.begin() + 16, v2.begin() + 16 + body_bytes - 16);  // without the durable end
  Bytes v1 = frame_metadata(load_u64(v2.data()), 1, body);
  testing::write_file(node + "/" + kNodeMetaFile, v1);
  Result<NodeMeta> read = read_node_meta(node);
  ASSERT_TRUE(read.ok()) << read.status().to_string();
  EXPECT_EQ(read->wal_durable_end, WalPointer{});
  EXPECT_EQ(read->checkpoint, meta.checkpoint);
  EXPECT_EQ(read->last_cut_id, meta.last_cut_id);
  NodeOptions o;
  o.dir = node;
  auto opened = Node::open(o);
  ASSERT_TRUE(opened.ok()) << opened.status().to_string();
  ASSERT_TRUE((*opened)->close().ok());
  EXPECT_EQ(load_u32(testing::read_file(node + "/" + kNodeMetaFile).data() + 8), 2u) << "rewritten as version 2";
  EXPECT_NE(read_node_meta(node)->wal_durable_end, WalPointer{});
}

TEST(Recovery, ReopenedClusterGoesOnWritingAfterACrash) {
  TempDir dir;
  int acked = crash_run(dir.path(), [] { fault::crash_after_bytes(150000); });
  {
    auto c = Cluster::open(crash_options(dir.path()));
    ASSERT_TRUE(c.ok()) << c.status().to_string();
    Transaction tx = (*c)->begin();
    ASSERT_TRUE(tx.put("accounts", "after", "crash").ok());
    ASSERT_TRUE(tx.commit().ok());
  }
  auto c = Cluster::open(crash_options(dir.path()));
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ((*c)->get("accounts", "after"), "crash");
  (void)acked;
}

// One open of a node directory at a time: a second open, in this process or
// another, is refused at once as busy until the first closes; read-only
// opens share the directory with each other but not with a writer.
TEST(NodeDirectory, SecondOpenIsBusyUntilTheFirstCloses) {
  TempDir dir;
  ClusterOptions co = testing::small_cluster_options(dir.path() + "/cluster", 2);
  {
    auto c = Cluster::open(co);
    ASSERT_TRUE(c.ok()) << c.status().to_string();
    Transaction tx = (*c)->begin();
    ASSERT_TRUE(tx.put("accounts", "k", "v").ok());
    ASSERT_TRUE(tx.commit().ok());
    NodeOptions o;
    o.dir = (*c)->node(0).dir();
    for (bool read_only : {false, true}) {
      o.read_only = read_only;
      auto second = Node::open(o);
      ASSERT_FALSE(second.ok()) << "read_only " << read_only;
      EXPECT_EQ(second.status().code(), StatusCode::kIoError);
      EXPECT_NE(second.status().message().find(o.dir + ": busy: another walcut process holds a lock on it"),
                std::string::npos)
          << second.status().message();
    }
    auto again = Cluster::open(co);
    ASSERT_FALSE(again.ok());
    EXPECT_NE(again.status().message().find("busy"), std::string::npos) << again.status().message();
  }
  NodeOptions o;
  o.dir = dir.path() + "/cluster/node0";
  o.read_only = true;
  auto reader1 = Node::open(o);
  auto reader2 = Node::open(o);
  ASSERT_TRUE(reader1.ok()) << reader1.status().to_string();
  ASSERT_TRUE(reader2.ok()) << "read-only opens share: " << reader2.status().to_string();
  o.read_only = false;
  EXPECT_FALSE(Node::open(o).ok()) << "a writer waits for no reader";
  ASSERT_TRUE((*reader1)->close().ok());
  ASSERT_TRUE((*reader2)->close().ok());
  auto writer = Node::open(o);
  ASSERT_TRUE(writer.ok()) << "closed means unlocked: " << writer.status().to_string();
  const CacheGroup accounts{1, "accounts", CacheMode::kTransactional, 32, 2};
  EXPECT_EQ((*writer)->read(accounts.id, partition_of(accounts, "k"), "k")->value, "v");
}

}  // namespace
}  // namespace walcut
