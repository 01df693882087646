// Kill the whole cluster at a crash point, reopen it, and check that every
// node holds every transaction it acknowledged, whole, and the one in
// flight either whole or not at all.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <random>

#include "engine/cluster.h"
#include "io/fault.h"
#include "tests/testing/cluster_fixture.h"
#include "tests/testing/temp_dir.h"

namespace walcut {
namespace {

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
  ::_exit(0);
}

// Runs the child to its crash; returns how many transactions it acknowledged.
int crash_run(const std::string& dir, const std::function<void()>& arm) {
  int fds[2];
  EXPECT_EQ(::pipe(fds), 0);
  pid_t pid = ::fork();
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

}  // namespace
}  // namespace walcut
