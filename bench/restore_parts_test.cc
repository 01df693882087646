// The parts of walcut_restore_bench that its numbers rest on: a child's
// peak RSS is the child's alone, trees compare byte for byte, `large` is
// large enough, and the RocksDB peer holds the entries the restore applies.
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "bench/child_restore.h"
#include "bench/rocksdb_peer.h"
#include "bench/shapes.h"
#include "replay/restore.h"
#include "tests/testing/temp_dir.h"
#include "tools/sim/simulator.h"

namespace walcut::bench {
namespace {

namespace fs = std::filesystem;

void write(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << text;
}

TEST(ChildRun, PeakRssIsTheChildsNotThatOfTheProcessRunningIt) {
  ASSERT_TRUE(start_spawner().ok());
  // This process holds 256 MiB when the child starts: a child forked from
  // it would report them as its own peak.
  const size_t held_bytes = 256u << 20;
  void* held = ::mmap(nullptr, held_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(held, MAP_FAILED);
  std::memset(held, 1, held_bytes);
  testing::TempDir dir;
  Result<ChildRun> r = run_child({"/bin/dd", "if=/dev/zero", "of=/dev/null", "bs=32M", "count=1"}, dir.path(), nullptr);
  ::munmap(held, held_bytes);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->describe(), "exit 0");
  EXPECT_GE(r->max_rss_bytes, 32u << 20);   // dd's buffer
  EXPECT_LT(r->max_rss_bytes, 128u << 20);  // and not this process's 256 MiB
}

TEST(ChildRun, ReportsOutputExitCodeAndSignal) {
  ASSERT_TRUE(start_spawner().ok());
  testing::TempDir dir;
  Result<ChildRun> out = run_child({"/bin/sh", "-c", "echo out; echo err >&2; exit 3"}, dir.path(), nullptr);
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_TRUE(out->exited);
  EXPECT_EQ(out->exit_code, 3);
  EXPECT_EQ(out->stdout_text, "out\n");
  EXPECT_EQ(out->stderr_text, "err\n");
  Result<ChildRun> killed = run_child({"/bin/sh", "-c", "kill -KILL $$"}, dir.path(), nullptr);
  ASSERT_TRUE(killed.ok()) << killed.status().to_string();
  EXPECT_FALSE(killed->exited);
  EXPECT_EQ(killed->signal, 9);
  EXPECT_EQ(killed->describe().rfind("killed by signal 9", 0), 0u) << killed->describe();
  Result<ChildRun> missing = run_child({dir.file("no-such-program")}, dir.path(), nullptr);
  EXPECT_FALSE(missing.ok());
}

TEST(TreeDifference, NamesTheFirstFileThatDiffersAndLeavesOutTheSkippedOne) {
  testing::TempDir dir;
  const std::string a = dir.file("a"), b = dir.file("b");
  for (const std::string& root : {a, b}) {
    write(root + "/node0/db/tx0/part-1.bin", "same bytes");
    write(root + "/node0/node.meta", "meta");
  }
  write(a + "/RESTORED", "dest=a");
  write(b + "/RESTORED", "dest=b");
  Result<std::string> equal = first_tree_difference(a, b, "RESTORED");
  ASSERT_TRUE(equal.ok());
  EXPECT_EQ(equal.value(), "");

  write(b + "/node0/db/tx0/part-1.bin", "same bytez");
  Result<std::string> changed = first_tree_difference(a, b, "RESTORED");
  ASSERT_TRUE(changed.ok());
  EXPECT_EQ(changed.value(), "node0/db/tx0/part-1.bin: same size, different bytes");

  write(b + "/node0/db/tx0/part-1.bin", "same bytes");
  write(b + "/node0/db/tx0/part-2.bin", "");
  Result<std::string> extra = first_tree_difference(a, b, "RESTORED");
  ASSERT_TRUE(extra.ok());
  EXPECT_EQ(extra.value(), "node0/db/tx0/part-2.bin: only in " + b);
}

TEST(RestoredPartitionBytes, CountsTheFilesUnderEachNodesDbOnly) {
  testing::TempDir dir;
  write(dir.file("node0/db/tx0/part-0.bin"), std::string(100, 'x'));
  write(dir.file("node1/db/atomic0/part-7.bin"), std::string(23, 'x'));
  write(dir.file("node0/node.meta"), std::string(1000, 'x'));
  write(dir.file("RESTORED"), std::string(1000, 'x'));
  Result<uint64_t> bytes = restored_partition_bytes(dir.path());
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(bytes.value(), 123u);
}

TEST(Shapes, LargeRestoresAtLeastThreeTimesTheMemoryLimit) {
  ShapeSettings settings;
  settings.memory_limit_bytes = 1 << 20;
  std::optional<Shape> large = make_shape("large", Codec::kNone, settings);
  ASSERT_TRUE(large.has_value());
  testing::TempDir dir;
  large->options.out = dir.file("gen");
  Result<sim::Report> generated = sim::run(large->options);
  ASSERT_TRUE(generated.ok()) << generated.status().to_string();
  RestoreOptions o;
  o.snapshot_dir = dir.file("gen/snapshots/snp");
  o.increment = large->options.increments;
  o.dest = dir.file("dest");
  Result<RestoreReport> restored = restore_snapshot(o);
  ASSERT_TRUE(restored.ok()) << restored.status().to_string();
  Result<uint64_t> bytes = restored_partition_bytes(o.dest);
  ASSERT_TRUE(bytes.ok());
  EXPECT_GE(bytes.value(), 3 * settings.memory_limit_bytes);
}

#if WALCUT_BENCH_ROCKSDB
TEST(RocksdbPeer, HoldsInItsWalTheEntriesTheRestoreAppliesAndRecoversThem) {
  ShapeSettings settings;
  settings.scale = 0.002;  // 2,000 transactions over 2,000 keys per group: overwrites, deletes, ATOMIC updates
  std::optional<Shape> hot = make_shape("hot", Codec::kNone, settings);
  ASSERT_TRUE(hot.has_value());
  testing::TempDir dir;
  hot->options.out = dir.file("gen");
  ASSERT_TRUE(sim::run(hot->options).ok());
  const std::string snapshot_dir = dir.file("gen/snapshots/snp");
  const uint64_t n = hot->options.increments;
  RestoreOptions o;
  o.snapshot_dir = snapshot_dir;
  o.increment = n;
  o.dest = dir.file("dest");
  Result<RestoreReport> restored = restore_snapshot(o);
  ASSERT_TRUE(restored.ok()) << restored.status().to_string();

  Result<std::vector<SnapshotMeta>> bases = read_snapshot_metas(snapshot_dir);
  ASSERT_TRUE(bases.ok());
  std::vector<std::pair<uint16_t, std::vector<std::string>>> segments;
  for (const SnapshotMeta& b : bases.value()) {
    std::vector<std::string> paths;
    for (uint64_t k = 1; k <= n; ++k) {
      Result<std::vector<IncrementMeta>> metas = read_increment_metas(snapshot_dir, k);
      ASSERT_TRUE(metas.ok());
      for (const IncrementMeta& m : metas.value()) {
        if (m.node_index != b.node_index) continue;
        for (const ManifestEntry& f : m.files) paths.push_back(increment_dir(snapshot_dir, k) + "/" + f.path);
      }
    }
    segments.emplace_back(b.node_index, std::move(paths));
  }
  Result<RocksPeerData> peer = prepare_rocksdb_peer(snapshot_dir, n, segments, dir.file("peer"));
  ASSERT_TRUE(peer.ok()) << peer.status().to_string();
  EXPECT_EQ(peer->entries, restored->entries_applied);
  EXPECT_GT(peer->deletes, 0u);
  EXPECT_GT(peer->wal_bytes, 0u);
  EXPECT_EQ(peer->sst_files, 0u);  // nothing flushed before the crash: recovery replays every entry

  Result<RocksPeerData> again = prepare_rocksdb_peer(snapshot_dir, n, segments, dir.file("peer"));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->entries, peer->entries);  // found from the first call, not written twice

  Result<RocksRecovery> recovery = time_rocksdb_recovery(peer.value(), dir.file("recovering"));
  ASSERT_TRUE(recovery.ok()) << recovery.status().to_string();
  EXPECT_GT(recovery->open_s, 0);
  EXPECT_GE(recovery->sst_files_after, 1u);  // recovery flushed what it replayed
  EXPECT_FALSE(fs::exists(dir.file("recovering")));
}
#endif

}  // namespace
}  // namespace walcut::bench
