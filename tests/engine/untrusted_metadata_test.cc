// Metadata may come from untrusted storage: names and manifest paths are
// checked where they are decoded, a metadata path that is a directory or
// cannot be read is an error naming it and its errno, and a crafted
// snapshot (CRCs recomputed, so only these checks can catch it) is refused
// by restore and check with nothing read or written outside it and the
// destination.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>

#include "cut/increment.h"
#include "cut/increment_chain.h"
#include "engine/backup.h"
#include "engine/cluster.h"
#include "engine/meta_codec.h"
#include "engine/snapshot.h"
#include "io/block_reader.h"
#include "io/crc32c.h"
#include "io/record_reader.h"
#include "tests/testing/cluster_fixture.h"
#include "tests/testing/command.h"
#include "tests/testing/fork.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wal_fixture.h"
#include "tools/sim/simulator.h"

namespace walcut {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

bool has(const Status& s, const std::string& text) { return s.message().find(text) != std::string::npos; }

// The command's standard output and error, and its exit code.
std::string run(const std::string& command, int* exit_code) {
  return testing::run_command(command + " 2>&1", exit_code);
}

// Every path under `dir`, relative to it.
std::set<std::string> tree(const std::string& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) out.insert(fs::relative(e.path(), dir).string());
  return out;
}

// A snapshot of two nodes that each hold a copy of every partition (so a
// renamed node owns the same partitions), with one increment.
sim::Options two_full_copies(const std::string& out) {
  sim::Options o;
  o.out = out;
  o.nodes = 2;
  o.groups = 1;
  o.atomic_groups = 1;
  o.partitions = 8;
  o.backups = 1;
  o.keys = 40;
  o.txs = 200;
  o.increments = 1;
  o.segment_bytes = 64 << 10;
  return o;
}

// Reads the increment metadata file `smf`, lets `change` edit it and
// writes it back, its CRC right; returns it as written.
IncrementMeta rewrite_increment_meta(const std::string& smf, const std::function<void(IncrementMeta&)>& change) {
  Result<Bytes> bytes = read_framed_file(smf);
  Result<IncrementMeta> m =
      bytes.ok() ? decode_increment_meta(bytes.value(), smf) : Result<IncrementMeta>(bytes.status());
  if (!m.ok()) {
    ADD_FAILURE() << m.status().to_string();
    return {};
  }
  change(m.value());
  testing::write_file(smf, encode_increment_meta(m.value()));
  return m.value();
}

SnapshotMeta valid_snapshot_meta() {
  SnapshotMeta m;
  m.name = "snp";
  m.cluster_id = 7;
  m.node_index = 0;
  m.node_id = "node0";
  m.baseline = {"node0", "node1"};
  m.groups = {CacheGroup{1, "tx0", CacheMode::kTransactional, 8, 1}};
  m.files = {ManifestEntry{"db/node0/tx0/part-3.bin", 100, 1}};
  return m;
}

IncrementMeta valid_increment_meta() {
  IncrementMeta m;
  m.snapshot_name = "snp";
  m.index = 1;
  m.node_id = "node0";
  m.groups = {CacheGroup{1, "tx0", CacheMode::kTransactional, 8, 1}};
  m.first_segment = m.last_segment = 2;
  m.files = {ManifestEntry{"wal/node0/" + segment_file_name(2), 100, 1}};
  m.start_block = m.finish_block = kSegmentHeaderBytes;
  return m;
}

NodeMeta valid_node_meta() {
  NodeMeta m;
  m.cluster_id = 7;
  m.node_id = "node0";
  m.baseline = {"node0", "node1"};
  m.groups = {CacheGroup{1, "tx0", CacheMode::kTransactional, 8, 1}};
  return m;
}

TEST(SnapshotMetaDecoding, RefusesNamesAndManifestPathsOutsideTheLayout) {
  ASSERT_TRUE(decode_snapshot_meta(encode_snapshot_meta(valid_snapshot_meta()), "n.smf").ok());
  std::vector<std::function<void(SnapshotMeta&)>> crafted = {
      [](SnapshotMeta& m) { m.node_id = m.baseline[0] = "../n1"; },
      [](SnapshotMeta& m) { m.node_id = m.baseline[0] = "."; },
      [](SnapshotMeta& m) { m.baseline[1] = "a/b"; },
      [](SnapshotMeta& m) { m.name = "../snp"; },
      [](SnapshotMeta& m) { m.name = ""; },
      [](SnapshotMeta& m) { m.groups[0].name = "a\nb"; },
      [](SnapshotMeta& m) { m.files[0].path = "../../etc/passwd"; },
      [](SnapshotMeta& m) { m.files[0].path = "/etc/passwd"; },
      [](SnapshotMeta& m) { m.files[0].path = "db/node0/tx0/../../../../x.bin"; },
      [](SnapshotMeta& m) { m.files[0].path = "db/node0/../node0/tx0/part-3.bin"; },
      [](SnapshotMeta& m) { m.files[0].path = "db/node1/tx0/part-3.bin"; },
      [](SnapshotMeta& m) { m.files[0].path = "db/node0/other/part-3.bin"; },
      [](SnapshotMeta& m) { m.files[0].path = "db/node0/tx0/part-8.bin"; },
      [](SnapshotMeta& m) { m.files[0].path = "db/node0/tx0/part-03.bin"; },
      [](SnapshotMeta& m) { m.files[0].path = "db/node0/tx0/notes.txt"; },
      [](SnapshotMeta& m) { m.files[0].path = "wal/node0/" + segment_file_name(2); },
      [](SnapshotMeta& m) { m.files[0].path = "db/node0/tx0/part-3.bin/x"; },
  };
  for (size_t i = 0; i < crafted.size(); ++i) {
    SnapshotMeta m = valid_snapshot_meta();
    crafted[i](m);
    Result<SnapshotMeta> r = decode_snapshot_meta(encode_snapshot_meta(m), "n.smf");
    ASSERT_FALSE(r.ok()) << "case " << i;
    EXPECT_EQ(r.status().code(), StatusCode::kCorruption) << "case " << i;
    EXPECT_EQ(r.status().message().rfind("n.smf: ", 0), 0u) << r.status().message();
  }
}

TEST(IncrementMetaDecoding, RefusesNamesAndManifestPathsOutsideTheLayout) {
  ASSERT_TRUE(decode_increment_meta(encode_increment_meta(valid_increment_meta()), "n.smf").ok());
  std::vector<std::function<void(IncrementMeta&)>> crafted = {
      [](IncrementMeta& m) { m.node_id = "../n1"; },
      [](IncrementMeta& m) { m.node_id = ".."; },
      [](IncrementMeta& m) { m.snapshot_name = "a/b"; },
      [](IncrementMeta& m) { m.groups[0].name = "../g"; },
      [](IncrementMeta& m) { m.groups.push_back(m.groups[0]); },
      [](IncrementMeta& m) { m.files[0].path = "wal/../n1/" + segment_file_name(2); },
      [](IncrementMeta& m) { m.files[0].path = "../../" + segment_file_name(2); },
      [](IncrementMeta& m) { m.files[0].path = "/tmp/" + segment_file_name(2); },
      [](IncrementMeta& m) { m.files[0].path = "wal/node1/" + segment_file_name(2); },
      [](IncrementMeta& m) { m.files[0].path = "wal/node0/x.wal"; },
      [](IncrementMeta& m) { m.files[0].path = "db/node0/tx0/part-3.bin"; },
  };
  for (size_t i = 0; i < crafted.size(); ++i) {
    IncrementMeta m = valid_increment_meta();
    crafted[i](m);
    Result<IncrementMeta> r = decode_increment_meta(encode_increment_meta(m), "n.smf");
    ASSERT_FALSE(r.ok()) << "case " << i;
    EXPECT_EQ(r.status().code(), StatusCode::kCorruption) << "case " << i;
    EXPECT_EQ(r.status().message().rfind("n.smf: ", 0), 0u) << r.status().message();
  }
}

// Version 2 records where the cut records' blocks are; a file of
// version 1 (the same body without them) is still read, with none
// recorded; a version 1 frame around version 2's body is malformed.
TEST(IncrementMetaDecoding, Version1FilesWithoutTheCutRecordsBlocksAreStillRead) {
  IncrementMeta m = valid_increment_meta();
  m.start_block = 64;
  m.finish_block = 4160;
  const Bytes v2 = encode_increment_meta(m);
  Result<IncrementMeta> both = decode_increment_meta(v2, "n.smf");
  ASSERT_TRUE(both.ok()) << both.status().to_string();
  EXPECT_EQ(both->start_block, 64u);
  EXPECT_EQ(both->finish_block, 4160u);
  EXPECT_EQ(load_u32(v2.data() + 8), 2u);
  // The frame: magic u64, version u32, body bytes u32, body, CRC32C u32.
  auto framed = [](uint32_t version, ByteSpan body) {
    Bytes out(16 + body.size() + 4);
    std::memcpy(out.data(), "WLCTINC1", 8);
    store_u32(out.data() + 8, version);
    store_u32(out.data() + 12, static_cast<uint32_t>(body.size()));
    std::memcpy(out.data() + 16, body.data(), body.size());
    store_u32(out.data() + 16 + body.size(), crc32c(ByteSpan(out).first(16 + body.size())));
    return out;
  };
  const ByteSpan body = ByteSpan(v2).subspan(16, v2.size() - 20);
  ASSERT_EQ(framed(2, body), v2);
  Result<IncrementMeta> v1 = decode_increment_meta(framed(1, body.first(body.size() - 16)), "n.smf");
  ASSERT_TRUE(v1.ok()) << v1.status().to_string();
  EXPECT_EQ(v1->start_block, 0u);
  EXPECT_EQ(v1->finish_block, 0u);
  EXPECT_EQ(v1->files.size(), m.files.size());
  Result<IncrementMeta> mixed = decode_increment_meta(framed(1, body), "n.smf");
  ASSERT_FALSE(mixed.ok());
  EXPECT_NE(mixed.status().message().find("n.smf: malformed body"), std::string::npos) << mixed.status().message();
  // Version 2 records both blocks, each after the segment header.
  for (uint64_t inside : {uint64_t{0}, uint64_t{63}}) {
    IncrementMeta bad = m;
    bad.start_block = inside;
    Result<IncrementMeta> r = decode_increment_meta(encode_increment_meta(bad), "n.smf");
    ASSERT_FALSE(r.ok()) << inside;
    EXPECT_NE(r.status().message().find("n.smf: a cut record's block at offset " + std::to_string(inside) +
                                        ", inside the segment header"),
              std::string::npos)
        << r.status().message();
  }
}

TEST(NodeMetaDecoding, RefusesANodeIdOrBaselineEntryThatIsNotAName) {
  ASSERT_TRUE(decode_node_meta(encode_node_meta(valid_node_meta()), "node.meta").ok());
  for (const char* bad : {"../n1", "..", "a/b", ""}) {
    NodeMeta m = valid_node_meta();
    m.node_id = m.baseline[0] = bad;
    EXPECT_FALSE(decode_node_meta(encode_node_meta(m), "node.meta").ok()) << bad;
    m = valid_node_meta();
    m.baseline[1] = bad;
    EXPECT_FALSE(decode_node_meta(encode_node_meta(m), "node.meta").ok()) << bad;
  }
}

TEST(BackupDecoding, RefusesABackupWhoseNodeIdIsNotAName) {
  TempDir dir;
  BackupMeta m;
  m.node = valid_node_meta();
  m.node.node_id = m.node.baseline[0] = "../n1";
  ASSERT_TRUE(write_backup_file(dir.file("n.backup"), m, {}).ok());
  Result<BackupContents> r = read_backup_file(dir.file("n.backup"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorruption);
  EXPECT_TRUE(has(r.status(), "'../n1'")) << r.status().message();
}

TEST(SnapshotMetaFiles, AnSmfFileMustBeNamedAfterItsNode) {
  TempDir dir;
  ASSERT_TRUE(sim::run(two_full_copies(dir.file("gen"))).ok());
  const std::string snap = dir.file("gen/snapshots/snp");
  fs::rename(snap + "/node1.smf", snap + "/node9.smf");
  Result<std::vector<SnapshotMeta>> r = read_snapshot_metas(snap);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(has(r.status(), snap + "/node9.smf: holds node node1")) << r.status().message();
  fs::rename(snap + "/node9.smf", snap + "/node1.smf");
  const std::string inc = increment_dir(snap, 1);
  fs::rename(inc + "/node1.smf", inc + "/node9.smf");
  Result<std::vector<IncrementMeta>> i = read_increment_metas(snap, 1);
  ASSERT_FALSE(i.ok());
  EXPECT_TRUE(has(i.status(), inc + "/node9.smf: holds node node1")) << i.status().message();
}

// A metadata file larger than any frame (a sparse 8 GiB file) is refused
// naming its size, without being read into memory.
TEST(MetadataFiles, OneLargerThanAnyFrameIsRefusedBeforeItIsRead) {
  TempDir dir;
  ASSERT_TRUE(sim::run(two_full_copies(dir.file("gen"))).ok());
  const std::string snap = dir.file("gen/snapshots/snp");
  const uint64_t huge = uint64_t{8} << 30;
  const std::string what = " bytes, more than a metadata file can be";
  std::error_code ec;
  const Bytes smf = testing::read_file(snap + "/node1.smf");
  fs::resize_file(snap + "/node1.smf", huge, ec);
  ASSERT_FALSE(ec) << ec.message();
  Result<std::vector<SnapshotMeta>> r = read_snapshot_metas(snap);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorruption);
  EXPECT_TRUE(has(r.status(), snap + "/node1.smf: file is " + std::to_string(huge) + what)) << r.status().message();
  testing::write_file(snap + "/node1.smf", smf);
  const std::string inc = increment_dir(snap, 1);
  fs::resize_file(inc + "/node1.smf", huge, ec);
  ASSERT_FALSE(ec) << ec.message();
  Result<std::vector<IncrementMeta>> i = read_increment_metas(snap, 1);
  ASSERT_FALSE(i.ok());
  EXPECT_TRUE(has(i.status(), inc + "/node1.smf: file is " + std::to_string(huge) + what)) << i.status().message();
  fs::create_directories(dir.file("n"));
  testing::write_file(dir.file("n/node.meta"), Bytes(8));
  fs::resize_file(dir.file("n/node.meta"), huge, ec);
  ASSERT_FALSE(ec) << ec.message();
  Result<NodeMeta> n = read_node_meta(dir.file("n"));
  ASSERT_FALSE(n.ok());
  EXPECT_TRUE(has(n.status(), dir.file("n/node.meta") + ": file is " + std::to_string(huge) + what))
      << n.status().message();
}

TEST(MetadataFiles, ADirectoryInPlaceOfAMetadataFileIsAnErrorNamingIt) {
  TempDir dir;
  ASSERT_TRUE(sim::run(two_full_copies(dir.file("gen"))).ok());
  const std::string snap = dir.file("gen/snapshots/snp");
  fs::create_directory(increment_dir(snap, 1) + "/node9.smf");
  Result<std::vector<IncrementMeta>> i = read_increment_metas(snap, 1);
  ASSERT_FALSE(i.ok());
  EXPECT_TRUE(has(i.status(), increment_dir(snap, 1) + "/node9.smf: Is a directory")) << i.status().message();

  fs::create_directories(dir.file("n/node.meta"));
  Result<NodeMeta> n = read_node_meta(dir.file("n"));
  ASSERT_FALSE(n.ok());
  EXPECT_TRUE(has(n.status(), dir.file("n/node.meta") + ": Is a directory")) << n.status().message();
  NodeOptions o;
  o.dir = dir.file("n");
  Result<std::unique_ptr<Node>> opened = Node::open(o);
  ASSERT_FALSE(opened.ok());
  EXPECT_TRUE(has(opened.status(), "Is a directory")) << opened.status().message();

  fs::create_directories(dir.file("b/restore/x.backup"));
  o.dir = dir.file("b");
  opened = Node::open(o);
  ASSERT_FALSE(opened.ok());
  EXPECT_TRUE(has(opened.status(), dir.file("b/restore/x.backup") + ": Is a directory")) << opened.status().message();
}

TEST(MetadataFiles, AnUnreadableMetadataFileIsPermissionDeniedNotTooShort) {
  TempDir dir;
  ::chmod(dir.path().c_str(), 0755);
  ASSERT_TRUE(sim::run(two_full_copies(dir.file("gen"))).ok());
  const std::string node_dir = dir.file("gen/cluster/node0");
  const std::string snap = dir.file("gen/snapshots/snp");
  // Everything else readable by the child (walcut creates it all private).
  ::chmod(dir.file("gen").c_str(), 0755);
  for (const fs::directory_entry& e : fs::recursive_directory_iterator(dir.file("gen"))) {
    ::chmod(e.path().c_str(), e.is_directory() ? 0755 : 0644);
  }
  ::chmod((node_dir + "/node.meta").c_str(), 0);
  ::chmod((increment_dir(snap, 1) + "/node0.smf").c_str(), 0);
  // Root reads any file: the reads run in a child as nobody.
  pid_t pid = testing::fork_child();
  if (pid == 0) {
    if (::geteuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) ::_exit(99);
    Result<NodeMeta> n = read_node_meta(node_dir);
    if (n.ok() || !has(n.status(), node_dir + "/node.meta: Permission denied")) ::_exit(1);
    Result<std::vector<IncrementMeta>> i = read_increment_metas(snap, 1);
    if (i.ok() || !has(i.status(), increment_dir(snap, 1) + "/node0.smf: Permission denied")) ::_exit(2);
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(Creation, ANodeIdOrSnapshotNameThatIsNotANameIsRefusedBeforeAnythingIsWritten) {
  TempDir dir;
  ClusterOptions o = testing::small_cluster_options(dir.file("c/cluster"), 2);
  o.node_ids[1] = "../n1";
  Result<std::unique_ptr<Cluster>> c = Cluster::open(o);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(fs::exists(dir.file("c/n1")));

  c = Cluster::open(testing::small_cluster_options(dir.file("c/cluster"), 2));
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  for (const char* bad : {"a\tb", "..", "a/b", ""}) {
    Result<SnapshotReport> r = take_full_snapshot(**c, dir.file("snaps"), bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  }
  EXPECT_FALSE(fs::exists(dir.file("snaps")) && !fs::is_empty(dir.file("snaps")));
}

// Rewrites node `from`'s metadata in the snapshot and its increment so that
// it calls itself `to` (the baseline of every node too), and moves its
// directories to where the new paths point: a consistent snapshot, every
// CRC right, whose node id is `to`.
void rename_node(const std::string& snap, const std::string& from, const std::string& to) {
  Result<std::vector<SnapshotMeta>> metas = read_snapshot_metas(snap);
  ASSERT_TRUE(metas.ok()) << metas.status().to_string();
  // Read before the snapshot changes: reading an increment checks it against the snapshot's baseline.
  Result<std::vector<IncrementMeta>> inc = read_increment_metas(snap, 1);
  ASSERT_TRUE(inc.ok()) << inc.status().to_string();
  for (SnapshotMeta m : metas.value()) {
    std::replace(m.baseline.begin(), m.baseline.end(), from, to);
    if (m.node_id == from) {
      m.node_id = to;
      for (ManifestEntry& f : m.files) f.path = "db/" + to + f.path.substr(3 + from.size());
    }
    testing::write_file(snap + "/" + (m.node_id == to ? from : m.node_id) + ".smf", encode_snapshot_meta(m));
  }
  fs::rename(snap + "/db/" + from, snap + "/db/" + to);
  for (IncrementMeta m : inc.value()) {
    if (m.node_id != from) continue;
    m.node_id = to;
    for (ManifestEntry& f : m.files) f.path = "wal/" + to + f.path.substr(4 + from.size());
    testing::write_file(increment_dir(snap, 1) + "/" + from + ".smf", encode_increment_meta(m));
  }
  fs::rename(increment_dir(snap, 1) + "/wal/" + from, increment_dir(snap, 1) + "/wal/" + to);
}

class CraftedSnapshot : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(sim::run(two_full_copies(dir_.file("gen"))).ok());
    snap_ = dir_.file("gen/snapshots/snp");
    fs::create_directories(dir_.file("out"));
    dest_ = dir_.file("out/restored");
  }
  // Restore exits 3 and check `check_exit` (3: it cannot check; 1: a
  // finding), both naming `text`, and nothing appears outside the snapshot:
  // not beside the destination (but the lock file every restore keeps
  // there once it has begun; metadata refused before that leaves none), not
  // beside the snapshot.
  // Restore and check of increment 1 both fail naming `text` (the restore
  // with exit 3, leaving no destination); returns what they printed.
  std::string expect_increment_refused(const std::string& text) {
    const std::string cli = WALCUT_CLI;
    int code = -1;
    std::string out = run(cli + " snapshot restore " + snap_ + " --increment 1 --dest " + dest_, &code);
    EXPECT_EQ(code, 3) << out;
    EXPECT_NE(out.find(text), std::string::npos) << out;
    EXPECT_FALSE(fs::exists(dest_));
    std::string checked = run(cli + " snapshot check " + snap_ + " --increment 1", &code);
    EXPECT_NE(code, 0) << checked;
    EXPECT_NE(checked.find(text), std::string::npos) << checked;
    return out + checked;
  }
  void expect_refused(const std::string& text, int check_exit = 3) {
    const std::string lock = fs::path(dest_).filename().string() + ".lock";
    const std::set<std::string> before = tree(dir_.path());
    const std::string cli = WALCUT_CLI;
    for (const char* increment : {"0", "1"}) {
      int code = -1;
      std::string out =
          run(cli + " snapshot restore " + snap_ + " --increment " + increment + " --dest " + dest_, &code);
      EXPECT_EQ(code, 3) << out;
      EXPECT_NE(out.find(text), std::string::npos) << out;
      const std::set<std::string> beside = tree(dir_.file("out"));
      EXPECT_TRUE(beside.empty() || beside == std::set<std::string>{lock}) << "restore wrote beside its destination";
      out = run(cli + " snapshot check " + snap_ + " --increment " + increment, &code);
      EXPECT_EQ(code, check_exit) << out;
      EXPECT_NE(out.find(text), std::string::npos) << out;
    }
    std::set<std::string> after = tree(dir_.path());
    after.erase("out/" + lock);
    EXPECT_EQ(after, before);
  }
  TempDir dir_;
  std::string snap_, dest_;
};

TEST_F(CraftedSnapshot, ANodeIdWithDotDotIsRefusedByRestoreAndCheck) {
  rename_node(snap_, "node1", "../n1");
  expect_refused("'../n1'");
}

TEST_F(CraftedSnapshot, AManifestPathWithDotDotIsRefusedByRestoreAndCheck) {
  // The listed path leaves the snapshot; a copy of the file waits there so
  // that only the path check can refuse it.
  Result<SnapshotMeta> m = read_snapshot_meta(snap_ + "/node0.smf");
  ASSERT_TRUE(m.ok());
  ManifestEntry& f = m->files.front();
  const std::string outside = dir_.file("gen/snapshots/leak");
  fs::create_directories(outside);
  fs::copy_file(snap_ + "/" + f.path, outside + "/" + fs::path(f.path).filename().string());
  f.path = "../leak/" + fs::path(f.path).filename().string();
  testing::write_file(snap_ + "/node0.smf", encode_snapshot_meta(m.value()));
  expect_refused("'" + f.path + "'");
}

// A manifest that lists a file twice, with another size and checksum, is
// no manifest: restore used to read the file against the first entry and
// exit 0 while check called the same snapshot damaged.
TEST_F(CraftedSnapshot, AManifestThatListsAFileTwiceIsRefusedByRestoreAndCheck) {
  Result<SnapshotMeta> m = read_snapshot_meta(snap_ + "/node0.smf");
  ASSERT_TRUE(m.ok());
  ManifestEntry twice = m->files.front();
  twice.bytes += 7;
  twice.crc32c ^= 1;
  m->files.insert(m->files.begin() + 1, twice);
  testing::write_file(snap_ + "/node0.smf", encode_snapshot_meta(m.value()));
  expect_refused("'" + twice.path + "' is listed twice");
}

// A partition file far larger than its manifest entry is refused by its
// size before it is read: memory stays that of a restore of this tiny
// snapshot (the largest child's peak RSS), not the file's 1 GiB.
TEST_F(CraftedSnapshot, APartitionFileFarLargerThanListedIsRefusedBeforeItIsRead) {
  Result<SnapshotMeta> m = read_snapshot_meta(snap_ + "/node1.smf");
  ASSERT_TRUE(m.ok());
  const std::string listed = snap_ + "/" + m->files.back().path;
  fs::resize_file(listed, uint64_t{1} << 30);  // sparse: no disk used
  int code = -1;
  const std::string out = run(std::string(WALCUT_CLI) + " snapshot restore " + snap_ + " --increment 1 --dest " + dest_,
                              &code);
  EXPECT_EQ(code, 3) << out;
  EXPECT_NE(out.find(listed + ": 1073741824 bytes, the manifest says"), std::string::npos) << out;
  struct rusage ru;
  ASSERT_EQ(::getrusage(RUSAGE_CHILDREN, &ru), 0);
  EXPECT_LT(ru.ru_maxrss, 512 * 1024) << "KiB: the restore read the file into memory";
}

// A manifest entry (its CRC right) that claims a partition file of 100
// TB: restore and check name the file and both sizes. The finish used to
// reserve the claimed size for the file's entries before the file was
// read, and said only "out of memory".
TEST_F(CraftedSnapshot, AManifestEntryClaimingTerabytesIsRefusedNamingTheFile) {
  Result<SnapshotMeta> m = read_snapshot_meta(snap_ + "/node0.smf");
  ASSERT_TRUE(m.ok());
  ManifestEntry& f = m->files.back();
  const uint64_t real = f.bytes;
  f.bytes = 99999999999999;
  testing::write_file(snap_ + "/node0.smf", encode_snapshot_meta(m.value()));
  expect_refused(f.path + ": " + std::to_string(real) + " bytes, the manifest says 99999999999999", 1);
}

TEST_F(CraftedSnapshot, APartitionFileThatIsASymbolicLinkOutOfTheSnapshotIsRefused) {
  Result<SnapshotMeta> m = read_snapshot_meta(snap_ + "/node0.smf");
  ASSERT_TRUE(m.ok());
  const std::string listed = snap_ + "/" + m->files.front().path;
  const std::string outside = dir_.file("gen/snapshots/leak.bin");
  fs::rename(listed, outside);
  fs::create_symlink(outside, listed);
  expect_refused("passes through the symbolic link " + listed, /*check_exit=*/1);  // a damaged file is a finding
}

TEST_F(CraftedSnapshot, AnSmfThatIsASymbolicLinkOutOfTheSnapshotIsRefused) {
  const std::string outside = dir_.file("gen/snapshots/node1.smf");
  fs::rename(snap_ + "/node1.smf", outside);
  fs::create_symlink(outside, snap_ + "/node1.smf");
  expect_refused("passes through the symbolic link " + snap_ + "/node1.smf");
}

// Each of a node's segments is checked for a link out of the snapshot,
// though its directories are looked at once for all of them.
TEST_F(CraftedSnapshot, ASegmentThatIsASymbolicLinkOutOfTheSnapshotIsRefused) {
  Result<std::vector<IncrementMeta>> inc = read_increment_metas(snap_, 1);
  ASSERT_TRUE(inc.ok());
  ASSERT_GE(inc->front().files.size(), 2u);
  const std::string segment = increment_dir(snap_, 1) + "/" + inc->front().files.back().path;
  const std::string outside = dir_.file("gen/snapshots/leak.wal");
  fs::rename(segment, outside);
  fs::create_symlink(outside, segment);
  expect_increment_refused("passes through the symbolic link " + segment);
}

// A restore reads each node's chain with one IncrementMetasRead: each
// increment's metadata files once, checked against the baseline the full
// snapshot's metadata gave, whatever the number of nodes.
TEST_F(CraftedSnapshot, EveryNodesChainReadsEachIncrementOnceAgainstTheGivenBaseline) {
  Result<std::vector<SnapshotMeta>> bases = read_snapshot_metas(snap_);
  ASSERT_TRUE(bases.ok()) << bases.status().message();
  ASSERT_EQ(bases->size(), 2u);
  IncrementMetasRead read;
  Result<NodeIncrements> first = read_node_increments(snap_, bases->at(0), 1, nullptr, &read);
  ASSERT_TRUE(first.ok()) << first.status().message();
  EXPECT_EQ(read.size(), 1u);
  // node1's increment metadata gone after node0's chain was read: the
  // shared read still has it, a read of its own does not.
  const std::string smf = increment_dir(snap_, 1) + "/node1.smf";
  const std::string kept = dir_.file("node1.smf");
  fs::rename(smf, kept);
  Result<NodeIncrements> alone = read_node_increments(snap_, bases->at(1), 1);
  EXPECT_FALSE(alone.ok());
  Result<NodeIncrements> shared = read_node_increments(snap_, bases->at(1), 1, nullptr, &read);
  ASSERT_TRUE(shared.ok()) << shared.status().message();
  EXPECT_EQ(read.size(), 1u);
  fs::rename(kept, smf);
  Result<NodeIncrements> fresh = read_node_increments(snap_, bases->at(1), 1);
  ASSERT_TRUE(fresh.ok()) << fresh.status().message();
  EXPECT_EQ(shared->segment_paths, fresh->segment_paths);
  EXPECT_EQ(shared->segment_bytes, fresh->segment_bytes);
  EXPECT_EQ(first->segment_paths.size(), first->increments.front().files.size());
  // The baseline given is the one checked: one without node1 refuses its file.
  Result<std::vector<IncrementMeta>> other = read_increment_metas(snap_, 1, {"node0"});
  ASSERT_FALSE(other.ok());
  EXPECT_TRUE(has(other.status(), "node1.smf")) << other.status().message();
  Result<std::vector<IncrementMeta>> same = read_increment_metas(snap_, 1, bases->front().baseline);
  ASSERT_TRUE(same.ok()) << same.status().message();
  EXPECT_EQ(same->size(), 2u);
}

// An increment's FAILED note is quoted in the refusal: one that is a link
// out of the snapshot, or under a link, is refused without being read.
TEST_F(CraftedSnapshot, AFailedNoteThatIsASymbolicLinkOutOfTheSnapshotIsRefusedUnread) {
  const std::string outside = dir_.file("gen/snapshots/secret");
  testing::write_file(outside, as_bytes(std::string("do not show this\n")));
  const std::string note = increment_dir(snap_, 1) + "/FAILED";
  fs::create_symlink(outside, note);
  std::string out = expect_increment_refused("passes through the symbolic link " + note);
  EXPECT_EQ(out.find("do not show this"), std::string::npos) << out;
  // The increment's directory a link to one holding a FAILED note.
  fs::remove(note);
  const std::string moved = dir_.file("gen/snapshots/inc1");
  fs::rename(increment_dir(snap_, 1), moved);
  testing::write_file(moved + "/FAILED", as_bytes(std::string("do not show this\n")));
  fs::create_directory_symlink(moved, increment_dir(snap_, 1));
  out = expect_increment_refused("passes through the symbolic link " + increment_dir(snap_, 1));
  EXPECT_EQ(out.find("do not show this"), std::string::npos) << out;
}

// The replay skips what is before the full snapshot's CLUSTER_SNAPSHOT
// record, at the pointer its metadata gives: moved to a later record, the
// entries between would be lost with exit 0. The record must be there.
TEST_F(CraftedSnapshot, ASnapshotPointerMovedOffItsRecordIsRefused) {
  Result<SnapshotMeta> m = read_snapshot_meta(snap_ + "/node0.smf");
  ASSERT_TRUE(m.ok());
  Result<std::vector<IncrementMeta>> inc = read_increment_metas(snap_, 1);
  ASSERT_TRUE(inc.ok());
  const IncrementMeta* mine = find_node_meta(inc.value(), m->node_index);
  ASSERT_NE(mine, nullptr);
  BlockReaderOptions ro;
  ro.mode = TailMode::kStrict;
  Result<std::unique_ptr<BlockReader>> reader =
      BlockReader::open({increment_dir(snap_, 1) + "/" + mine->files.front().path}, ro);
  ASSERT_TRUE(reader.ok());
  std::vector<WalPointer> after;  // the records after the snapshot's, before the cut's START
  ASSERT_TRUE(for_each_record(**reader, [&](const Block&, const RecordView& r) -> Status {
                if (r.pointer > m->snapshot_pointer && r.pointer < mine->start) after.push_back(r.pointer);
                return {};
              }).ok());
  ASSERT_FALSE(after.empty());
  const WalPointer real = m->snapshot_pointer;
  for (WalPointer wrong : {WalPointer{real.segment, real.offset + 8}, after.front()}) {
    m->snapshot_pointer = wrong;
    testing::write_file(snap_ + "/node0.smf", encode_snapshot_meta(m.value()));
    expect_increment_refused("no CLUSTER_SNAPSHOT record at " + wrong.to_string());
  }
}

// An increment is one cut that every node finished: metadata of one node
// naming another cut (a failed cut leaves its records in the WAL of the
// nodes that finished it) is refused, and so are cuts that do not follow
// one another along the chain.
TEST_F(CraftedSnapshot, AnIncrementWhoseNodesNameAnotherCutIsRefused) {
  const std::string smf = increment_dir(snap_, 1) + "/node1.smf";
  const IncrementMeta edited = rewrite_increment_meta(smf, [](IncrementMeta& m) { m.cut_id += 1; });
  expect_increment_refused(smf + ": of cut " + std::to_string(edited.cut_id) + ", where ");
}

// A per-node restore checks every node's cut records, not only those of
// the nodes it reads: metadata naming a cut that failed is refused only by
// the nodes that lack its records, and --node X must refuse what the whole
// restore refuses. No ATOMIC group here, so node0's restore reads nothing
// of node1's WAL but its cut records.
TEST(IncrementChain, APerNodeRestoreChecksEveryNodesCutRecords) {
  TempDir dir;
  sim::Options o = two_full_copies(dir.file("gen"));
  o.atomic_groups = 0;
  ASSERT_TRUE(sim::run(o).ok());
  const std::string snap = dir.file("gen/snapshots/snp");
  const WalPointer moved = rewrite_increment_meta(increment_dir(snap, 1) + "/node1.smf", [](IncrementMeta& m) {
                             m.start = m.finish;  // a record, but not a START
                           }).start;
  const std::string cli = WALCUT_CLI;
  for (const std::string args : {"", " --node node0", " --node node0 --dry-run"}) {
    int code = -1;
    std::string out = run(cli + " snapshot restore " + snap + " --increment 1 --dest " + dir.file("out") + args, &code);
    EXPECT_EQ(code, 3) << args << ": " << out;
    EXPECT_NE(out.find("node node1"), std::string::npos) << args << ": " << out;
    EXPECT_NE(out.find("START " + moved.to_string()), std::string::npos) << args << ": " << out;
    EXPECT_FALSE(fs::exists(dir.file("out"))) << args;
  }
}

TEST(IncrementChain, CutsMustFollowOneAnother) {
  TempDir dir;
  sim::Options o = two_full_copies(dir.file("gen"));
  o.increments = 2;
  ASSERT_TRUE(sim::run(o).ok());
  const std::string snap = dir.file("gen/snapshots/snp");
  Result<std::vector<IncrementMeta>> first = read_increment_metas(snap, 1);
  ASSERT_TRUE(first.ok());
  for (const std::string node : {"node0", "node1"}) {
    rewrite_increment_meta(increment_dir(snap, 2) + "/" + node + ".smf",
                           [&](IncrementMeta& m) { m.cut_id = first->front().cut_id; });  // increment 1's cut again
  }
  int code = -1;
  const std::string cli = WALCUT_CLI;
  std::string out = run(cli + " snapshot restore " + snap + " --increment 2 --dest " + dir.file("out"), &code);
  EXPECT_EQ(code, 3) << out;
  EXPECT_NE(out.find("of cut " + std::to_string(first->front().cut_id) + ", not after increment 1's cut"),
            std::string::npos)
      << out;
}

// A FAILED note is quoted on terminals: its control characters are shown
// escaped, never sent as they are.
TEST_F(CraftedSnapshot, AFailedNotesControlCharactersAreEscaped) {
  testing::write_file(increment_dir(snap_, 1) + "/FAILED",
                      as_bytes(std::string("cut 1 \033]0;x\007\rfailed \xc2\x9b\\x1b\n\n")));
  Result<std::optional<std::string>> why = increment_failure(snap_, 1);
  ASSERT_TRUE(why.ok()) << why.status().message();
  ASSERT_TRUE(why->has_value());
  EXPECT_EQ(**why, "cut 1 \\x1b]0;x\\x07\\x0dfailed \\xc2\\x9b\\x5cx1b");
}

// A segment range whose count wraps around (its last segment 2^64-1, no
// file listed) is refused, not read past the list's end.
TEST_F(CraftedSnapshot, AnIncrementWhoseSegmentCountWrapsIsRefused) {
  rewrite_increment_meta(increment_dir(snap_, 1) + "/node0.smf", [](IncrementMeta& m) {
    m.last_segment = ~uint64_t{0};
    m.first_segment = 0;
    m.files.clear();
  });
  expect_increment_refused(" do not continue from segment ");
}

// The block offsets of a node's cut records, wrong in its metadata: a
// restore that replays the node scans its segments and does not use them,
// a --node restore that does not replay it would refuse them, and check
// reports them at the .smf.
TEST_F(CraftedSnapshot, AWrongCutRecordBlockOffsetIsACheckFinding) {
  const std::string smf = increment_dir(snap_, 1) + "/node1.smf";
  const IncrementMeta edited = rewrite_increment_meta(smf, [](IncrementMeta& m) { m.finish_block += 1; });
  const std::string cli = WALCUT_CLI;
  int code = -1;
  std::string out = run(cli + " snapshot check " + snap_ + " --increment 1", &code);
  EXPECT_EQ(code, 1) << out;
  EXPECT_NE(out.find(smf + ": the blocks of its cut records: "), std::string::npos) << out;
  EXPECT_NE(out.find(" at offset " + std::to_string(edited.finish_block)), std::string::npos) << out;
  out = run(cli + " snapshot restore " + snap_ + " --increment 1 --dest " + dest_, &code);
  EXPECT_EQ(code, 0) << out;
}

// As a FIFO or a device in its place (CliOnASnapshot.AFifoInPlaceOfASegmentIsNamedAsNoRegularFile).
TEST_F(CraftedSnapshot, ASegmentThatIsADirectoryIsAnErrorNamingIt) {
  Result<std::vector<IncrementMeta>> inc = read_increment_metas(snap_, 1);
  ASSERT_TRUE(inc.ok());
  const std::string segment = increment_dir(snap_, 1) + "/" + inc->front().files.front().path;
  fs::remove(segment);
  fs::create_directory(segment);
  const std::string cli = WALCUT_CLI;
  int code = -1;
  std::string out = run(cli + " snapshot restore " + snap_ + " --increment 1 --dest " + dest_, &code);
  EXPECT_EQ(code, 3) << out;
  EXPECT_NE(out.find(segment + ": segment "), std::string::npos) << out;
  EXPECT_NE(out.find(" is not a regular file"), std::string::npos) << out;
  out = run(cli + " snapshot check " + snap_ + " --increment 1", &code);
  EXPECT_EQ(code, 1) << out;
  EXPECT_NE(out.find(segment + ": segment "), std::string::npos) << out;
  EXPECT_NE(out.find(" is not a regular file"), std::string::npos) << out;
}

}  // namespace
}  // namespace walcut
