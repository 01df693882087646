// The library's restore of one node into a store of one's own: the full
// snapshot through load_snapshot_node(), then replay_node(), checked
// against the partition files and the built-in restore.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <atomic>
#include <span>
#include <thread>
#include <utility>
#include <vector>
#include <set>
#include <tuple>

#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/task_arena.h>

#include "engine/affinity.h"
#include "engine/partition_file.h"
#include "replay/pipeline.h"
#include "replay/restore.h"
#include "replay/snapshot_load.h"
#include "tests/testing/temp_dir.h"
#include "tools/sim/simulator.h"

namespace walcut {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

// (group name, partition, key) -> value
using Store = std::map<std::tuple<std::string, uint16_t, std::string>, std::string>;

sim::Options small_cluster(const std::string& out) {
  sim::Options o;
  o.out = out;
  o.seed = 7;
  o.nodes = 3;
  o.partitions = 16;
  o.keys = 60;
  o.value_bytes = 24;
  o.txs = 500;
  o.increments = 2;
  o.segment_bytes = 128 << 10;
  return o;
}

// A snapshot generated once for the whole suite.
class LibraryRestore : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    sim::Options o = small_cluster(dir_->path() + "/gen");
    ASSERT_TRUE(sim::run(o).ok());
    snap_ = o.out + "/snapshots/snp";
    increments_ = o.increments;
  }
  static void TearDownTestSuite() { delete dir_; }
  static SnapshotMeta meta(uint16_t node) { return *find_node_meta(read_snapshot_metas(snap_).value(), node); }

  static inline TempDir* dir_ = nullptr;
  static inline std::string snap_;
  static inline uint64_t increments_ = 0;
};

// Keeps what it is given, named by group, the way a store of one's own would.
class StoreSink final : public ReplaySink {
 public:
  explicit StoreSink(Store& store) : store_(store) {}
  Status begin(uint16_t, const std::vector<CacheGroup>& groups) override {
    for (const CacheGroup& g : groups) names_[g.id] = g.name;
    ++begins_;
    return {};
  }
  Status apply(const ReplayEntry& e) override {
    const DataEntry& d = *e.entry;
    auto name = names_.find(d.group_id);
    if (name == names_.end()) return Status::invalid_argument("group id " + std::to_string(d.group_id) + " unnamed");
    std::lock_guard<std::mutex> lock(mu_);
    auto key = std::make_tuple(name->second, d.partition, to_string(d.key));
    if (d.op == EntryOp::kDelete) {
      store_.erase(key);
    } else {
      store_[key] = to_string(d.value);
    }
    ++applied_;
    return {};
  }
  int begins_ = 0;
  uint64_t applied_ = 0;
  std::map<uint32_t, std::string> names_;

 private:
  Store& store_;
  std::mutex mu_;
};

SnapshotEntryFn into(Store& store) {
  return [&store](const SnapshotEntry& e) {
    store[{e.group->name, e.partition, std::string(e.key)}] = to_string(e.value);
    return Status{};
  };
}

TEST_F(LibraryRestore, TheCallbackGetsExactlyThePartitionFilesOfTheNode) {
  for (uint16_t node = 0; node < 3; ++node) {
    const SnapshotMeta m = meta(node);
    std::map<std::tuple<std::string, uint16_t, std::string>, std::pair<std::string, Version>> got, want;
    SnapshotLoadReport report;
    Status s = load_snapshot_node(
        snap_, node,
        [&](const SnapshotEntry& e) {
          EXPECT_EQ(e.node_index, node);
          got[{e.group->name, e.partition, std::string(e.key)}] = {to_string(e.value), e.version};
          return Status{};
        },
        ReplayOptions{}, report);
    ASSERT_TRUE(s.ok()) << s.to_string();
    Affinity aff(m.groups, m.baseline);
    uint64_t files = 0;
    for (const CacheGroup& g : m.groups) {
      for (uint16_t p = 0; p < g.partitions; ++p) {
        if (!aff.owns(g.id, p, node)) continue;
        Result<PartitionFile> f = read_partition_file(snap_ + "/" + snapshot_partition_path(m.node_id, g.name, p));
        ASSERT_TRUE(f.ok()) << f.status().to_string();
        ++files;
        for (const auto& [key, v] : f->entries) want[{g.name, p, key}] = {v.value, v.version};
      }
    }
    EXPECT_FALSE(want.empty());
    EXPECT_EQ(got, want) << m.node_id;
    EXPECT_EQ(report.files, files);
    EXPECT_EQ(report.entries, want.size());
  }
}

TEST_F(LibraryRestore, ADamagedPartitionFileIsAnErrorNamingIt) {
  TempDir copy;
  fs::copy(snap_, copy.path() + "/snp", fs::copy_options::recursive);
  const SnapshotMeta m = meta(1);
  const ManifestEntry& victim = m.files.back();
  const std::string path = copy.path() + "/snp/" + victim.path;
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(victim.bytes / 2));
    f.put('\x5a' ^ static_cast<char>(f.peek()));
  }
  std::set<std::string> partitions_seen;
  SnapshotLoadReport report;
  Status s = load_snapshot_node(
      copy.path() + "/snp", 1,
      [&](const SnapshotEntry& e) {
        partitions_seen.insert(snapshot_partition_path(m.node_id, e.group->name, e.partition));
        return Status{};
      },
      ReplayOptions{}, report);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kCorruption) << s.to_string();
  EXPECT_NE(s.message().find(path), std::string::npos) << s.message();
  EXPECT_EQ(partitions_seen.count(victim.path), 0u) << "entries of the damaged file were handed over";
}

TEST_F(LibraryRestore, ACallbackErrorStopsTheLoadAndIsReturned) {
  int calls = 0;
  SnapshotLoadReport report;
  Status s = load_snapshot_node(
      snap_, 0, [&](const SnapshotEntry&) { return ++calls == 3 ? Status::io_error("store: disk full") : Status{}; },
      ReplayOptions{}, report);
  EXPECT_EQ(s.code(), StatusCode::kIoError) << s.to_string();
  EXPECT_EQ(calls, 3);
}

TEST_F(LibraryRestore, IncrementZeroReplaysNothingAndReportsZero) {
  Store store;
  StoreSink sink(store);
  ReplayReport report;
  Status s = replay_node(snap_, 0, 0, sink, ReplayOptions{}, report);
  ASSERT_TRUE(s.ok()) << s.to_string();
  EXPECT_EQ(sink.applied_, 0u);
  EXPECT_EQ(report.entries_applied + report.records + report.blocks + report.segments + report.bytes_read, 0u);
  EXPECT_EQ(sink.begins_, 1);  // the sink still gets the group names
  EXPECT_EQ(sink.names_.size(), meta(0).groups.size());
}

TEST_F(LibraryRestore, IncrementZeroStillChecksTheSnapshotAndTheNode) {
  Store store;
  StoreSink sink(store);
  ReplayReport report;
  EXPECT_EQ(replay_node(snap_, 0, 9, sink, ReplayOptions{}, report).code(), StatusCode::kNotFound);
  EXPECT_FALSE(replay_node(dir_->path() + "/no-such-snapshot", 0, 0, sink, ReplayOptions{}, report).ok());
}

TEST_F(LibraryRestore, AGroupTheSnapshotDoesNotHaveIsRefusedByName) {
  Store store;
  StoreSink sink(store);
  ReplayOptions o;
  o.groups = {meta(0).groups.front().name, "no-such-group"};
  for (uint64_t n : {uint64_t{0}, increments_}) {
    ReplayReport report;
    Status s = replay_node(snap_, n, 0, sink, o, report);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.to_string();
    EXPECT_NE(s.message().find("no-such-group"), std::string::npos) << s.message();
  }
  SnapshotLoadReport loaded;
  Status s = load_snapshot_node(snap_, 0, into(store), o, loaded);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.to_string();
  EXPECT_NE(s.message().find("no-such-group"), std::string::npos) << s.message();
  EXPECT_TRUE(store.empty());
  EXPECT_EQ(sink.applied_, 0u);
}

TEST_F(LibraryRestore, TheSinkSeesTheGroupNamesBeforeAnyEntry) {
  Store store;
  StoreSink sink(store);  // its apply() fails on a group id it was not given a name for
  ReplayReport report;
  Status s = replay_node(snap_, increments_, 0, sink, ReplayOptions{}, report);
  ASSERT_TRUE(s.ok()) << s.to_string();
  EXPECT_EQ(sink.begins_, 1);
  EXPECT_GT(sink.applied_, 0u);
  std::set<std::string> names, seen;
  for (const CacheGroup& g : meta(0).groups) names.insert(g.name);
  for (const auto& [key, value] : store) seen.insert(std::get<0>(key));
  EXPECT_EQ(seen, names);
}

// What a store of one's own gets from the two calls is the built-in
// restore's copy of the node (TRANSACTIONAL groups: replay_node does not
// repair ATOMIC ones).
TEST_F(LibraryRestore, LoadThenReplayEqualsTheBuiltInRestore) {
  RestoreOptions r;
  r.snapshot_dir = snap_;
  r.increment = increments_;
  r.dest = dir_->path() + "/restored";
  Result<RestoreReport> restored = restore_snapshot(r);
  ASSERT_TRUE(restored.ok()) << restored.status().to_string();
  for (uint16_t node = 0; node < 3; ++node) {
    const SnapshotMeta m = meta(node);
    ReplayOptions o;
    for (const CacheGroup& g : m.groups) {
      if (g.mode == CacheMode::kTransactional) o.groups.push_back(g.name);
    }
    Store mine, want;
    SnapshotLoadReport loaded;
    ASSERT_TRUE(load_snapshot_node(snap_, node, into(mine), o, loaded).ok());
    StoreSink sink(mine);
    ReplayReport replayed;
    ASSERT_TRUE(replay_node(snap_, increments_, node, sink, o, replayed).ok());
    EXPECT_GT(replayed.entries_applied, 0u);
    Affinity aff(m.groups, m.baseline);
    for (const CacheGroup& g : m.groups) {
      if (g.mode != CacheMode::kTransactional) continue;
      for (uint16_t p = 0; p < g.partitions; ++p) {
        if (!aff.owns(g.id, p, node)) continue;
        Result<PartitionFile> f = read_partition_file(partition_path(r.dest + "/" + m.node_id + "/db", g, p));
        ASSERT_TRUE(f.ok()) << f.status().to_string();
        for (const auto& [key, v] : f->entries) want[{g.name, p, key}] = v.value;
      }
    }
    EXPECT_FALSE(want.empty());
    EXPECT_EQ(mine, want) << m.node_id;
  }
}

// Records what each (group, partition) is given, in the order given, and
// whether two calls ever worked on one partition at the same time.
class OrderSink final : public ReplaySink {
 public:
  using Seen = std::vector<std::pair<std::string, uint64_t>>;  // key, write version's order
  Status apply(const ReplayEntry& e) override { return apply_many(e.node_index, std::span(e.entry, 1)); }
  Status apply_many(uint16_t, std::span<const DataEntry> entries) override {
    if (nested_parallel_for) {  // a sink that uses oneTBB for work of its own
      std::atomic<uint64_t> bytes{0};
      tbb::parallel_for(size_t{0}, entries.size(), [&](size_t i) { bytes += entries[i].value.size(); });
    }
    for (const DataEntry& d : entries) {
      Part& p = part(d.group_id, d.partition);
      if (p.inside.fetch_add(1) != 0) overlapped = true;
      p.seen.emplace_back(to_string(d.key), d.write_version.order);
      std::this_thread::yield();  // gives another call for the partition, if any, time to come in
      p.inside.fetch_sub(1);
    }
    return {};
  }
  std::map<std::pair<uint32_t, uint16_t>, Seen> seen() const {
    std::map<std::pair<uint32_t, uint16_t>, Seen> out;
    for (const auto& [k, p] : parts_) out[k] = p.seen;
    return out;
  }
  std::atomic<bool> overlapped{false};
  bool nested_parallel_for = false;

 private:
  struct Part {
    std::atomic<int> inside{0};
    Seen seen;
  };
  Part& part(uint32_t group, uint16_t partition) {
    std::lock_guard<std::mutex> lock(mu_);
    return parts_[{group, partition}];
  }
  std::mutex mu_;
  std::map<std::pair<uint32_t, uint16_t>, Part> parts_;
};

// A snapshot whose node 0 has a WAL of many 1 MiB batches.
class LibraryReplay : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    sim::Options o = small_cluster(dir_->path() + "/gen");
    o.nodes = 2;
    o.partitions = 64;
    o.keys = 2000;
    o.value_bytes = 200;
    o.txs = 12000;
    o.increments = 1;
    o.segment_bytes = 4 << 20;
    ASSERT_TRUE(sim::run(o).ok());
    snap_ = o.out + "/snapshots/snp";
  }
  static void TearDownTestSuite() { delete dir_; }

  // Replays node 0 into an OrderSink on 1 thread, then on each of
  // `threads`: every run must give each partition what the one thread
  // gave it, in the same order, one call at a time.
  static void expect_same_order_on(std::initializer_list<unsigned> threads, bool nested_parallel_for) {
    std::map<std::pair<uint32_t, uint16_t>, OrderSink::Seen> one_thread;
    for (unsigned t : threads) {
      OrderSink sink;
      sink.nested_parallel_for = nested_parallel_for;
      ReplayOptions ro;
      ro.threads = t;
      ReplayReport report;
      ASSERT_TRUE(replay_node(snap_, 1, 0, sink, ro, report).ok());
      EXPECT_GT(report.bytes_read, uint64_t{8} << 20) << "several batches of 1 MiB";
      EXPECT_FALSE(sink.overlapped) << t << " threads";
      if (one_thread.empty()) {
        one_thread = sink.seen();
        EXPECT_GT(one_thread.size(), 32u);
      } else {
        EXPECT_TRUE(sink.seen() == one_thread) << t << " threads";
      }
    }
  }

  static inline TempDir* dir_ = nullptr;
  static inline std::string snap_;
};

// Workers apply their groups' parts of batches side by side, and help
// with each other's: a WAL of many batches must still reach the sink with
// every partition's entries in WAL order, one call at a time, on any
// number of threads.
TEST_F(LibraryReplay, EachPartitionGetsItsEntriesInWalOrderOneCallAtATimeOnAnyThreads) {
  expect_same_order_on({1, 2, 3, 8}, false);
}

// More threads asked for than oneTBB runs at once: the replay runs only
// as many workers as it can (one that never ran would leave its group to
// the others after their reading ahead, and the batches held would grow
// to the most allowed), and the order holds.
TEST_F(LibraryReplay, ThreadsBeyondTheArenaRunNoMoreWorkersThanItHas) {
  const unsigned arena = static_cast<unsigned>(std::max(1, tbb::this_task_arena::max_concurrency()));
  for (unsigned t : {1u, 64u}) {
    OrderSink sink;
    ReplayOptions ro;
    ro.threads = t;
    ReplayReport report;
    ASSERT_TRUE(replay_node(snap_, 1, 0, sink, ro, report).ok());
    EXPECT_EQ(report.workers, std::min(t, arena)) << t << " threads asked for";
  }
  expect_same_order_on({1, 64}, false);
}

// A batch goes back to the worker that read it, and a worker whose own
// are all in use takes another's past a bound: the batches a replay
// allocates stay within twice what may be read and not applied at once
// (2 * workers + 2), however many workers take turns reading.
TEST_F(LibraryReplay, TheBatchesAllocatedStayWithinTheWindowOnAnyWorkers) {
  for (int t : {1, 2, 8}) {
    tbb::task_arena arena(t);
    OrderSink sink;
    ReplayOptions ro;
    ro.threads = static_cast<unsigned>(t);
    ReplayReport report;
    arena.execute([&] { ASSERT_TRUE(replay_node(snap_, 1, 0, sink, ro, report).ok()); });
    EXPECT_EQ(report.workers, static_cast<unsigned>(t));
    EXPECT_GE(report.batches, 1u);
    EXPECT_LE(report.batches, 2 * (2u * static_cast<unsigned>(t) + 2)) << t << " workers";
    EXPECT_FALSE(sink.overlapped) << t << " workers";
  }
}

// A sink may run oneTBB work of its own inside apply_many(): while it
// waits for it, its thread must not take up another worker's loop, which
// could wait for the group this very call holds.
TEST_F(LibraryReplay, ASinkThatRunsItsOwnParallelForNeitherHangsNorReorders) {
  expect_same_order_on({1, 2, 4}, true);
}

}  // namespace
}  // namespace walcut
