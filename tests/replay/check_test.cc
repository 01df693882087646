// Snapshot check: a clean snapshot passes, and each planted fault is found
// and named.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>

#include "cut/increment.h"
#include "engine/partition_file.h"
#include "engine/snapshot.h"
#include "io/crc32c.h"
#include "replay/check.h"
#include "tests/testing/cluster_fixture.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wal_fixture.h"
#include "tools/sim/simulator.h"

namespace walcut {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

sim::Options gen(uint64_t seed, const std::string& out) {
  sim::Options o;
  o.out = out;
  o.seed = seed;
  o.nodes = 3;
  o.partitions = 8;
  o.backups = 1;
  o.keys = 80;
  o.value_bytes = 64;
  o.txs = 1500;
  o.increments = 2;
  o.segment_bytes = 64 << 10;  // several segments per increment
  return o;
}

CheckReport check(const std::string& snap, uint64_t increment = 2) {
  CheckOptions o;
  o.snapshot_dir = snap;
  o.increment = increment;
  Result<CheckReport> r = check_snapshot(o);
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return r.ok() ? std::move(r).value() : CheckReport{};
}

// The first finding of `kind` whose where or detail mentions `text`.
bool found(const CheckReport& r, const std::string& kind, const std::string& text) {
  for (const Finding& f : r.findings) {
    if (f.kind == kind && (f.where.find(text) != std::string::npos || f.detail.find(text) != std::string::npos)) return true;
  }
  return false;
}

std::string dump(const CheckReport& r) {
  std::string s;
  for (const Finding& f : r.findings) s += f.kind + ": " + f.where + ": " + f.detail + "\n";
  return s;
}

class CheckTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(sim::run(gen(1, dir_.path() + "/gen")).ok());
    snap_ = dir_.path() + "/gen/snapshots/snp";
  }
  // A listed partition file of `node` with at least one entry.
  std::string some_partition_file(const std::string& node) {
    auto metas = read_snapshot_metas(snap_);
    for (const SnapshotMeta& m : metas.value()) {
      if (m.node_id != node) continue;
      for (const ManifestEntry& f : m.files) {
        if (f.bytes > 100) return snap_ + "/" + f.path;
      }
    }
    return "";
  }
  std::string segment(uint64_t k, const std::string& node, size_t i) {
    auto metas = read_increment_metas(snap_, k);
    for (const IncrementMeta& m : metas.value()) {
      if (m.node_id == node) return increment_dir(snap_, k) + "/" + m.files.at(i).path;
    }
    return "";
  }
  // Increment k's last segment of `node`.
  std::string last_segment(uint64_t k, const std::string& node) {
    auto metas = read_increment_metas(snap_, k);
    for (const IncrementMeta& m : metas.value()) {
      if (m.node_id == node) return increment_dir(snap_, k) + "/" + m.files.back().path;
    }
    return "";
  }
  TempDir dir_;
  std::string snap_;
};

TEST_F(CheckTest, CleanSnapshotsPassForSeveralSeeds) {
  EXPECT_TRUE(check(snap_).clean()) << dump(check(snap_));
  for (uint64_t seed = 2; seed <= 4; ++seed) {
    TempDir d;
    sim::Options o = gen(seed, d.path() + "/gen");
    o.codec = Codec::kLz4;
    ASSERT_TRUE(sim::run(o).ok());
    CheckReport r = check(d.path() + "/gen/snapshots/snp");
    EXPECT_TRUE(r.clean()) << "seed " << seed << "\n" << dump(r);
    EXPECT_GT(r.nodes.at(0).entries, 0u);
  }
}

TEST_F(CheckTest, MissingPartitionFile) {
  std::string f = some_partition_file("node1");
  fs::remove(f);
  CheckReport r = check(snap_);
  EXPECT_TRUE(found(r, "structure", f)) << dump(r);
}

// The node metadata files must be one <node id>.smf per node of the
// baseline, in the full snapshot and in each increment: anything else
// means the snapshot cannot be checked (Corruption, exit 3), not "clean".
TEST_F(CheckTest, MissingOrExtraNodeMetadataFileCannotBeChecked) {
  const std::string inc1 = increment_dir(snap_, 1);
  auto expect_corruption = [&](const std::string& named) {
    CheckOptions o;
    o.snapshot_dir = snap_;
    o.increment = 2;
    Result<CheckReport> r = check_snapshot(o);
    ASSERT_FALSE(r.ok()) << named << "\n" << (r.ok() ? dump(r.value()) : "");
    EXPECT_EQ(r.status().code(), StatusCode::kCorruption) << r.status().to_string();
    EXPECT_NE(r.status().message().find(named), std::string::npos) << r.status().message();
    Result<NodeCheck> map = map_node(o, "node0");
    ASSERT_FALSE(map.ok()) << named;
    EXPECT_NE(map.status().message().find(named), std::string::npos) << map.status().message();
  };
  fs::rename(snap_ + "/node2.smf", dir_.path() + "/aside.smf");
  expect_corruption(snap_ + "/node2.smf");
  fs::rename(dir_.path() + "/aside.smf", snap_ + "/node2.smf");
  fs::copy_file(snap_ + "/node0.smf", snap_ + "/node9.smf");
  expect_corruption(snap_ + "/node9.smf");
  fs::remove(snap_ + "/node9.smf");
  fs::rename(inc1 + "/node1.smf", dir_.path() + "/aside.smf");
  expect_corruption(inc1 + "/node1.smf");
  fs::rename(dir_.path() + "/aside.smf", inc1 + "/node1.smf");
  fs::copy_file(inc1 + "/node1.smf", inc1 + "/node7.smf");
  expect_corruption(inc1 + "/node7.smf");
  fs::remove(inc1 + "/node7.smf");
  EXPECT_TRUE(check(snap_).clean());
}

// Every node's map reads the increment's .smf files of all nodes: a
// broken one is one finding, not one per map.
TEST_F(CheckTest, ABrokenIncrementMetadataFileIsOneFindingNotOnePerNode) {
  const std::string smf = increment_dir(snap_, 2) + "/node1.smf";
  testing::write_file(smf, as_bytes("garbage"));
  CheckReport r = check(snap_);
  size_t naming = 0;
  for (const Finding& f : r.findings) naming += f.detail.find(smf) != std::string::npos;
  EXPECT_EQ(naming, 1u) << dump(r);
  EXPECT_GE(r.nodes.size(), 2u) << "several maps read it";
}

TEST_F(CheckTest, UnlistedExtraFile) {
  testing::write_file(snap_ + "/db/node0/tx0/stray.bin", testing::test_payload(10, 1));
  CheckReport r = check(snap_);
  EXPECT_TRUE(found(r, "structure", "stray.bin")) << dump(r);
}

TEST_F(CheckTest, TruncatedPartitionFile) {
  std::string f = some_partition_file("node2");
  Bytes b = testing::read_file(f);
  b.resize(b.size() - 7);
  testing::write_file(f, b);
  CheckReport r = check(snap_);
  EXPECT_TRUE(found(r, "structure", f)) << dump(r);
}

// A partition file far larger than listed (a sparse terabyte) is a
// finding of its size, found without reading it into memory.
TEST_F(CheckTest, APartitionFileFarLargerThanListedIsNamedWithoutBeingRead) {
  std::string f = some_partition_file("node1");
  std::error_code ec;
  fs::resize_file(f, uint64_t{1} << 40, ec);
  ASSERT_FALSE(ec) << ec.message();
  CheckReport r = check(snap_);
  EXPECT_TRUE(found(r, "structure", std::to_string(uint64_t{1} << 40) + " bytes, the manifest says")) << dump(r);
  EXPECT_TRUE(found(r, "structure", f)) << dump(r);
}

// As `walcut dump` names the same damage: the file and the offset of its block.
TEST_F(CheckTest, FlippedByteInAPartitionFileIsNamedWithItsOffset) {
  std::string f = some_partition_file("node0");
  Bytes b = testing::read_file(f);
  b[b.size() / 2] ^= std::byte{0x04};
  testing::write_file(f, b);
  CheckReport r = check(snap_);
  ASSERT_EQ(r.findings.size(), 1u) << dump(r);
  const Finding& x = r.findings[0];
  EXPECT_EQ(x.kind, "structure");
  EXPECT_EQ(x.file, f);
  ASSERT_TRUE(x.offset.has_value()) << dump(r);
  EXPECT_LE(*x.offset, b.size() / 2);
  EXPECT_NE(x.detail.find("checksum differs from the manifest"), std::string::npos) << x.detail;
  EXPECT_NE(x.detail.find("at offset " + std::to_string(*x.offset)), std::string::npos) << x.detail;
  Result<PartitionFile> read = read_partition_file(f);
  ASSERT_FALSE(read.ok());
  EXPECT_NE(read.status().message().find("at offset " + std::to_string(*x.offset)), std::string::npos)
      << read.status().message();
}

// The file a finding is about and the offset in it, apart from the
// message; neither for what is not a file, no offset where none is known.
TEST_F(CheckTest, FindingsNameTheirFileAndOffsetApartFromTheMessage) {
  std::string missing = some_partition_file("node1");
  fs::remove(missing);
  std::string s = segment(1, "node2", 0);
  Bytes b = testing::read_file(s);
  b[5000] ^= std::byte{0x01};
  testing::write_file(s, b);
  CheckReport r = check(snap_);
  ASSERT_EQ(r.findings.size(), 2u) << dump(r);
  EXPECT_EQ(r.findings[0].file, missing);
  EXPECT_FALSE(r.findings[0].offset.has_value());
  EXPECT_EQ(r.findings[1].where, "node2 increments 1..2");
  EXPECT_EQ(r.findings[1].file, s);
  ASSERT_TRUE(r.findings[1].offset.has_value()) << dump(r);
  EXPECT_LE(*r.findings[1].offset, 5000u);
  EXPECT_NE(r.findings[1].detail.find(s + " at offset " + std::to_string(*r.findings[1].offset)), std::string::npos)
      << dump(r);
}

TEST_F(CheckTest, FlippedByteInASegment) {
  std::string s = segment(1, "node1", 0);
  Bytes b = testing::read_file(s);
  b[5000] ^= std::byte{0x01};
  testing::write_file(s, b);
  CheckReport r = check(snap_);
  EXPECT_TRUE(found(r, "structure", s)) << dump(r);
}

// A segment's last bytes lie after its SEGMENT_END block (the writer
// preallocates it), and increment N's last segment holds bytes after its
// FINISH record: the pipeline reads neither, the manifest's CRC32C covers
// both.
TEST_F(CheckTest, AByteTheReplayDoesNotReadIsFoundByTheSegmentsChecksum) {
  for (const std::string& s : {segment(1, "node1", 0), last_segment(2, "node1")}) {
    TempDir copy;
    const std::string snap = copy.path() + "/snp";
    fs::copy(snap_, snap, fs::copy_options::recursive);
    const std::string seg = snap + s.substr(snap_.size());
    Bytes b = testing::read_file(seg);
    ASSERT_EQ(b.back(), std::byte{0}) << seg << ": the test needs a tail of zeros";
    b.back() = std::byte{1};
    testing::write_file(seg, b);
    CheckReport r = check(snap);
    EXPECT_TRUE(found(r, "structure", "checksum differs from the manifest")) << seg << "\n" << dump(r);
    EXPECT_TRUE(found(r, "structure", seg)) << dump(r);
    EXPECT_EQ(r.findings.size(), 1u) << dump(r);
  }
  EXPECT_TRUE(check(snap_).clean()) << dump(check(snap_));
}

// A segment the pipeline stops at does not hide a fault in a later one:
// every other segment's CRC32C is still compared with its manifest, and
// the segment already named is not named again.
TEST_F(CheckTest, AFaultBehindTheSegmentThePipelineStopsAtIsFoundToo) {
  const std::string stopped = segment(1, "node1", 0), later = last_segment(2, "node1");
  Bytes b = testing::read_file(stopped);
  b[5000] ^= std::byte{0x01};
  testing::write_file(stopped, b);
  Bytes t = testing::read_file(later);
  ASSERT_EQ(t.back(), std::byte{0}) << later << ": the test needs a tail of zeros";
  t.back() = std::byte{1};
  testing::write_file(later, t);
  CheckReport r = check(snap_);
  ASSERT_EQ(r.findings.size(), 2u) << dump(r);
  EXPECT_EQ(r.findings[0].file, stopped) << dump(r);
  EXPECT_EQ(r.findings[1].file, later) << dump(r);
  EXPECT_EQ(r.findings[1].detail, "checksum differs from the manifest") << dump(r);
}

TEST_F(CheckTest, SegmentMissingInTheMiddleOfAnIncrement) {
  std::string s = segment(2, "node0", 1);
  ASSERT_FALSE(s.empty());
  std::string last = segment(2, "node0", 2);
  ASSERT_FALSE(last.empty()) << "the increment needs three segments for a middle one";
  fs::remove(s);
  CheckReport r = check(snap_);
  EXPECT_TRUE(found(r, "structure", s)) << dump(r);
}

TEST_F(CheckTest, SegmentOfAnotherNode) {
  std::string mine = segment(1, "node0", 0), theirs = segment(1, "node2", 0);
  fs::copy_file(theirs, mine, fs::copy_options::overwrite_existing);
  CheckReport r = check(snap_);
  EXPECT_TRUE(found(r, "structure", "node 2, expected cluster")) << dump(r);
}

TEST_F(CheckTest, SegmentOfAnotherSnapshot) {
  TempDir other;
  ASSERT_TRUE(sim::run(gen(9, other.path() + "/gen")).ok());  // another cluster id
  std::string mine = segment(1, "node1", 0);
  std::string theirs = increment_dir(other.path() + "/gen/snapshots/snp", 1) + "/" +
                       mine.substr(increment_dir(snap_, 1).size() + 1);
  ASSERT_TRUE(fs::exists(theirs));
  fs::copy_file(theirs, mine, fs::copy_options::overwrite_existing);
  CheckReport r = check(snap_);
  EXPECT_TRUE(found(r, "structure", "segment of cluster")) << dump(r);
}

// A node whose increments were not read to the end (a segment missing, cut
// short or damaged) keeps half-read hashes: it is left out of the
// increment-partition and transactions comparisons, so the one structure
// finding is all that is found, and the report says what was not compared.
TEST_F(CheckTest, ANodeWhoseIncrementsWereNotReadIsLeftOutOfTheirComparisonsAndTheReportSaysSo) {
  struct Damage {
    const char* what;
    std::string node;
    std::function<void(const std::string& snap)> plant;
  };
  auto file_in = [&](const std::string& snap, uint64_t k, const std::string& node, size_t i) {
    return snap + segment(k, node, i).substr(snap_.size());
  };
  const std::vector<Damage> damages{
      {"a segment missing", "node0", [&](const std::string& snap) { fs::remove(file_in(snap, 2, "node0", 1)); }},
      {"a segment cut short", "node1",
       [&](const std::string& snap) { fs::resize_file(file_in(snap, 1, "node1", 0), 8192); }},
      {"a flipped byte in a segment", "node1",
       [&](const std::string& snap) {
         Bytes b = testing::read_file(file_in(snap, 1, "node1", 0));
         b[5000] ^= std::byte{0x01};
         testing::write_file(file_in(snap, 1, "node1", 0), b);
       }},
  };
  for (const Damage& d : damages) {
    SCOPED_TRACE(d.what);
    TempDir copy;
    const std::string snap = copy.path() + "/snp";
    fs::copy(snap_, snap, fs::copy_options::recursive);
    d.plant(snap);
    CheckReport r = check(snap);
    ASSERT_EQ(r.findings.size(), 1u) << dump(r);
    EXPECT_EQ(r.findings[0].kind, "structure") << dump(r);
    ASSERT_EQ(r.not_compared.size(), 1u) << dump(r);
    EXPECT_EQ(r.not_compared[0].where, d.node);
    EXPECT_EQ(r.not_compared[0].kinds, (std::vector<std::string>{"increment-partition", "transactions"}));
    EXPECT_NE(r.not_compared[0].why.find("increments 1..2"), std::string::npos) << r.not_compared[0].why;
    // The same from map files: the damaged node's map is still one of increment 2.
    std::vector<NodeCheck> maps;
    CheckOptions o;
    o.snapshot_dir = snap;
    o.increment = 2;
    const std::vector<SnapshotMeta> metas = read_snapshot_metas(snap).value();
    for (const SnapshotMeta& m : metas) {
      NodeCheck c = node_check_from_json(node_check_to_json(map_node(o, m.node_id).value()), m.node_id).value();
      EXPECT_EQ(c.increment, 2u) << m.node_id;
      maps.push_back(std::move(c));
    }
    CheckReport reduced = reduce_checks(std::move(maps));
    EXPECT_EQ(dump(reduced), dump(r));
    ASSERT_EQ(reduced.not_compared.size(), 1u);
    EXPECT_EQ(reduced.not_compared[0].where, d.node);
  }
}

// A partition copy missing from the full snapshot is not compared with the
// other copies, and the report says which.
TEST_F(CheckTest, APartitionCopyNotReadIsNamedAsNotCompared) {
  std::string f = some_partition_file("node1");
  fs::remove(f);
  CheckReport r = check(snap_, 0);
  ASSERT_EQ(r.findings.size(), 1u) << dump(r);
  ASSERT_EQ(r.not_compared.size(), 1u) << dump(r);
  EXPECT_EQ(r.not_compared[0].kinds, std::vector<std::string>{"partition"});
  const std::string group = fs::path(f).parent_path().filename().string();
  EXPECT_EQ(r.not_compared[0].where.rfind(group + " partition ", 0), 0u) << r.not_compared[0].where;
  EXPECT_NE(r.not_compared[0].why.find("node1"), std::string::npos) << r.not_compared[0].why;
}

// Rewrites a backup's copy with one value changed, keeping its file and the
// manifest self-consistent: only the comparison of copies can see it.
TEST_F(CheckTest, BackupEntryDiffersFromThePrimarys) {
  auto metas = read_snapshot_metas(snap_).value();
  for (SnapshotMeta& m : metas) {
    Affinity aff(m.groups, m.baseline);
    for (ManifestEntry& f : m.files) {
      std::string path = snap_ + "/" + f.path;
      PartitionFile pf = read_partition_file(path).value();
      if (pf.entries.empty() || aff.primary(pf.info.group_id, pf.info.partition) == m.node_index) continue;
      pf.entries.begin()->second.value += "!";
      ASSERT_TRUE(write_partition_file(path, pf.info, pf.entries).ok());
      Bytes bytes = testing::read_file(path);
      f.bytes = bytes.size();
      f.crc32c = crc32c(bytes);
      testing::write_file(snap_ + "/" + m.node_id + ".smf", encode_snapshot_meta(m));
      CheckReport r = check(snap_);
      EXPECT_TRUE(found(r, "partition", "backup " + m.node_id)) << dump(r);
      EXPECT_EQ(r.findings.size(), 1u) << dump(r);
      return;
    }
  }
  FAIL() << "no backup copy with entries";
}

// Transactions written straight through the nodes, bypassing two-phase
// commit, to plant what a correct cluster never writes.
class PlantedTransactions : public ::testing::Test {
 protected:
  void SetUp() override {
    ClusterOptions o = testing::small_cluster_options(dir_.path() + "/cluster", 3);
    o.groups = {CacheGroup{1, "accounts", CacheMode::kTransactional, 6, 0}};
    c_ = std::move(Cluster::open(o)).value();
    ASSERT_TRUE(take_full_snapshot(*c_, dir_.path() + "/snaps", "s").ok());
    g_ = o.groups[0];
    for (int i = 0; key_on_[0].empty() || key_on_[1].empty(); ++i) {
      std::string k = "key" + std::to_string(i);
      uint16_t p = c_->affinity().primary(g_.id, partition_of(g_, k));
      if (p < 2 && key_on_[p].empty()) key_on_[p] = k;
    }
  }
  TxWrite write_on(uint16_t node) { return TxWrite{g_.id, partition_of(g_, key_on_[node]), key_on_[node], "v"}; }
  CheckReport increment_and_check() {
    EXPECT_TRUE(take_incremental_snapshot(*c_, dir_.path() + "/snaps", "s").ok());
    return check(dir_.path() + "/snaps/s", 1);
  }
  TempDir dir_;
  std::unique_ptr<Cluster> c_;
  CacheGroup g_;
  std::string key_on_[2];
};

TEST_F(PlantedTransactions, CommittedOnOnePrimaryButAbsentFromTheOther) {
  Version xid = c_->next_version(0);
  std::vector<TxParticipant> parts{{0, {}}, {1, {}}};
  ASSERT_TRUE(c_->node(0).prepare(xid, 0, parts, {}).ok());
  ASSERT_TRUE(c_->node(1).prepare(xid, 0, parts, {}).ok());
  ASSERT_TRUE(c_->node(0).commit(xid, c_->next_version(0), 0, parts, {write_on(0), write_on(1)}).ok());
  ASSERT_TRUE(c_->node(1).rollback(xid, 0, parts).ok());
  CheckReport r = increment_and_check();
  EXPECT_TRUE(found(r, "transactions", "node0 <-> node1")) << dump(r);
  EXPECT_TRUE(found(r, "transactions", "node0 committed 1 transactions as a primary with node1")) << dump(r);
}

TEST_F(PlantedTransactions, DataWithNoPreparedRecord) {
  Version xid = c_->next_version(0);
  ASSERT_TRUE(c_->node(1).commit(xid, c_->next_version(0), 0, {{1, {}}}, {write_on(1)}).ok());
  CheckReport r = increment_and_check();
  EXPECT_TRUE(found(r, "partially-committed", xid.to_string())) << dump(r);
}

TEST_F(PlantedTransactions, ProperTransactionsAreClean) {
  Transaction tx = c_->begin();
  ASSERT_TRUE(tx.put("accounts", key_on_[0], "a").ok());
  ASSERT_TRUE(tx.put("accounts", key_on_[1], "b").ok());
  ASSERT_TRUE(tx.commit().ok());
  CheckReport r = increment_and_check();
  EXPECT_TRUE(r.clean()) << dump(r);
}

TEST_F(CheckTest, MapFilesReduceToTheSameReport) {
  std::string f = some_partition_file("node1");
  Bytes b = testing::read_file(f);
  b[b.size() / 2] ^= std::byte{0x04};
  testing::write_file(f, b);
  CheckReport whole = check(snap_);
  std::vector<NodeCheck> maps;
  auto metas = read_snapshot_metas(snap_);
  for (const SnapshotMeta& m : metas.value()) {
    CheckOptions o;
    o.snapshot_dir = snap_;
    o.increment = 2;
    std::string text = node_check_to_json(map_node(o, m.node_id).value());
    maps.push_back(node_check_from_json(text, m.node_id).value());
  }
  CheckReport reduced = reduce_checks(std::move(maps));
  EXPECT_EQ(dump(reduced), dump(whole));
  EXPECT_FALSE(reduced.clean());
  EXPECT_FALSE(node_check_from_json("{\"format\": 1}", "x").ok());
}

// A map file as --map-out writes it, with one field's JSON text replaced.
std::string map_with(const std::string& field, const std::string& value) {
  NodeCheck c;
  c.node_index = 1;
  c.node_id = "node1";
  c.baseline = {"node0", "node1"};
  c.groups = {CacheGroup{1, "tx0", CacheMode::kTransactional, 4, 1}};
  c.full[PartitionId{1, 2}] = PartitionHashes{3, 4, 5};
  c.tx_hash[0] = 6;
  c.tx_count[0] = 7;
  nlohmann::json j = nlohmann::json::parse(node_check_to_json(c));
  j[field] = nlohmann::json::parse(value);
  return j.dump();
}

TEST(CheckMapFile, RefusesNumbersItsFieldsCannotHold) {
  ASSERT_TRUE(node_check_from_json(map_with("files", "3"), "m.json").ok());
  // Each once converted without a word: wrapped, or (a float too large) undefined behaviour.
  for (const char* bad : {"-1", "2.5", "8.2e22", "18446744073709551616"}) {
    Result<NodeCheck> c = node_check_from_json(map_with("files", bad), "m.json");
    ASSERT_FALSE(c.ok()) << bad;
    EXPECT_NE(c.status().message().find("m.json"), std::string::npos) << c.status().message();
  }
  EXPECT_FALSE(node_check_from_json(map_with("node_index", "65537"), "m.json").ok());
  EXPECT_FALSE(node_check_from_json(map_with("groups", R"([[1, "tx0", 1, 70000, 1]])"), "m.json").ok());
  EXPECT_FALSE(node_check_from_json(map_with("full", "[[1, 2, 3, 4, 5e30]]"), "m.json").ok());
}

TEST(CheckMapFile, RefusesArraysOfTheWrongLength) {
  ASSERT_TRUE(node_check_from_json(map_with("groups", R"([[1, "tx0", 1, 4, 1]])"), "m.json").ok());
  for (const char* bad : {R"([[1, "tx0", 1, 4]])", "[[]]", R"([[1, "tx0", 1, 4, 1, 9]])"}) {
    EXPECT_FALSE(node_check_from_json(map_with("groups", bad), "m.json").ok()) << bad;
  }
  EXPECT_FALSE(node_check_from_json(map_with("full", "[[1, 2, 3]]"), "m.json").ok());
  EXPECT_FALSE(node_check_from_json(map_with("tx", "[[0, 6]]"), "m.json").ok());
  EXPECT_FALSE(node_check_from_json(map_with("findings", R"([["structure", "x"]])"), "m.json").ok());
}

TEST(CheckMapFile, KeepsTheFindingsFileAndOffsetAndWhetherIncrementsWereRead) {
  NodeCheck c = node_check_from_json(map_with("increment", "2"), "m.json").value();
  c.findings = {Finding{"structure", "s/db/node1/tx0/part-1.bin", "at offset 24", "s/db/node1/tx0/part-1.bin", 24},
                Finding{"transactions", "node0 <-> node1", "differ", "", std::nullopt}};
  for (bool read : {false, true}) {
    c.increments_read = read;
    NodeCheck back = node_check_from_json(node_check_to_json(c), "m.json").value();
    EXPECT_EQ(back.increments_read, read);
    ASSERT_EQ(back.findings.size(), 2u);
    EXPECT_EQ(back.findings[0].file, "s/db/node1/tx0/part-1.bin");
    EXPECT_EQ(back.findings[0].offset, std::optional<uint64_t>(24));
    EXPECT_EQ(back.findings[1].file, "");
    EXPECT_FALSE(back.findings[1].offset.has_value());
  }
  EXPECT_FALSE(node_check_from_json(map_with("findings", R"([["structure", "x", "y"]])"), "m.json").ok());
  EXPECT_FALSE(node_check_from_json(map_with("findings", R"([["structure", "x", "y", null, -1]])"), "m.json").ok());
  EXPECT_FALSE(node_check_from_json(map_with("findings", R"([["structure", "x", "y", 3, null]])"), "m.json").ok());
  EXPECT_FALSE(node_check_from_json(map_with("increments_read", "1"), "m.json").ok());
  // walcut-check-map-2: findings of three; a half-read node's map had increment 0.
  nlohmann::json older = nlohmann::json::parse(map_with("findings", R"([["structure", "x", "y"]])"));
  older["format"] = "walcut-check-map-2";
  older.erase("increments_read");
  older["increment"] = 2;
  NodeCheck old = node_check_from_json(older.dump(), "m.json").value();
  EXPECT_TRUE(old.increments_read);
  EXPECT_EQ(old.findings.at(0).detail, "y");
  EXPECT_EQ(old.findings.at(0).file, "");
}

TEST(CheckMapFile, RefusesGroupsRestoreWouldRefuse) {
  EXPECT_FALSE(node_check_from_json(map_with("groups", R"([[1, "tx0", 9, 4, 1]])"), "m.json").ok());  // unknown mode
  EXPECT_FALSE(node_check_from_json(map_with("groups", R"([[1, "..", 1, 4, 1]])"), "m.json").ok());
  EXPECT_FALSE(node_check_from_json(map_with("groups", R"([[1, "a", 1, 4, 1], [1, "b", 1, 4, 1]])"), "m.json").ok());
}

}  // namespace
}  // namespace walcut
