// `walcut snapshot restore` and `check` as an operator meets them: the
// order of --groups, what a cluster restored with --groups declares, an
// empty --dest, a missing SNAPSHOT_DIR, and counts in the reports.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "engine/node_meta.h"
#include "tests/testing/command.h"
#include "tests/testing/temp_dir.h"

namespace walcut {
namespace {

namespace fs = std::filesystem;
using testing::run_command;
using testing::shell_quote;
using testing::TempDir;
using json = nlohmann::json;

const std::string kCli = WALCUT_CLI;

// walcut with `args`, its standard output and error together.
std::string walcut(const std::string& args, int* exit_code) {
  return run_command("timeout 120 " + kCli + " " + args + " 2>&1", exit_code);
}

// One generated cluster with a full snapshot and two increments, shared by the suite.
class CliSnapshot : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    int code = -1;
    std::string out = walcut(
        "gen --out " + shell_quote(dir_->file("gen")) + " --nodes 3 --partitions 8 --txs 300 --increments 2", &code);
    ASSERT_EQ(code, 0) << out;
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::string snap() { return dir_->file("gen/snapshots/snp"); }

  TempDir tmp_;
  static TempDir* dir_;
};
TempDir* CliSnapshot::dir_ = nullptr;

TEST_F(CliSnapshot, GroupsInAnyOrderAreTheSameRestore) {
  const std::string dest = tmp_.file("d");
  int code = -1;
  std::string out = walcut("snapshot restore " + snap() + " --increment 2 --groups tx0,tx1 --dest " + dest, &code);
  ASSERT_EQ(code, 0) << out;
  out = walcut("snapshot restore " + snap() + " --increment 2 --groups tx1,tx0 --dest " + dest, &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("already holds this restore"), std::string::npos) << out;
  // Repeated, and before SNAPSHOT_DIR: the snapshot is not taken for a group name.
  out = walcut("snapshot restore --groups tx1 --groups tx0,tx1 " + snap() + " --increment 2 --dest " + dest, &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("already holds this restore"), std::string::npos) << out;
  out = walcut("snapshot restore " + snap() + " --increment 2 --groups tx1 --dest " + dest, &code);
  EXPECT_EQ(code, 2) << out;
  EXPECT_NE(out.find("exists and is not this restore"), std::string::npos) << out;
}

TEST_F(CliSnapshot, AClusterRestoredWithGroupsDeclaresOnlyThoseGroups) {
  const std::string dest = tmp_.file("d");
  int code = -1;
  std::string out = walcut("snapshot restore " + snap() + " --increment 2 --groups tx1 --dest " + dest, &code);
  ASSERT_EQ(code, 0) << out;
  for (const std::string node : {"node0", "node1", "node2"}) {
    Result<NodeMeta> meta = read_node_meta(dest + "/" + node);
    ASSERT_TRUE(meta.ok()) << meta.status().to_string();
    ASSERT_EQ(meta->groups.size(), 1u) << node;
    EXPECT_EQ(meta->groups[0].name, "tx1");
    EXPECT_FALSE(fs::exists(dest + "/" + node + "/db/tx0")) << node;
  }
  std::set<std::string> groups;
  out = walcut("dump " + dest + " --json", &code);
  ASSERT_EQ(code, 0) << out;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) groups.insert(nlohmann::json::parse(line).at("group"));
  EXPECT_EQ(groups, std::set<std::string>{"tx1"});
  // Asking for a group the cluster does not hold is an error, not an empty dump.
  out = walcut("dump " + dest + " --group tx0", &code);
  EXPECT_EQ(code, 2) << out;
  EXPECT_NE(out.find("--group tx0: no cache group of that name in " + dest + " (it holds tx1)"), std::string::npos)
      << out;
}

TEST_F(CliSnapshot, AnEmptyExistingDestIsAccepted) {
  const std::string dest = tmp_.file("empty");
  fs::create_directories(dest);
  int code = -1;
  std::string out = walcut("snapshot restore " + snap() + " --increment 1 --dest " + dest, &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_TRUE(fs::exists(dest + "/RESTORED"));
  EXPECT_TRUE(fs::exists(dest + "/node0/node.meta"));
  // One that holds something else is still refused, and left as it was.
  const std::string full = tmp_.file("full");
  fs::create_directories(full);
  std::ofstream(full + "/mine.txt") << "keep me\n";
  out = walcut("snapshot restore " + snap() + " --increment 1 --dest " + full, &code);
  EXPECT_EQ(code, 2) << out;
  EXPECT_NE(out.find("--dest " + full + ": exists and is not this restore"), std::string::npos) << out;
  EXPECT_TRUE(fs::exists(full + "/mine.txt"));
  EXPECT_FALSE(fs::exists(full + "/RESTORED"));
}

TEST_F(CliSnapshot, AMissingSnapshotDirIsAUsageErrorNamingIt) {
  const std::string missing = tmp_.file("no-such-snapshot");
  int code = -1;
  std::string out = walcut("snapshot restore " + missing + " --dest " + tmp_.file("d"), &code);
  EXPECT_EQ(code, 2) << out;
  EXPECT_NE(out.find(missing + ": no such directory"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(tmp_.file("d")));
  out = walcut("snapshot check " + missing, &code);
  EXPECT_EQ(code, 2) << out;
  EXPECT_NE(out.find(missing + ": no such directory"), std::string::npos) << out;
  std::ofstream(tmp_.file("a-file")) << "x\n";
  out = walcut("snapshot check " + tmp_.file("a-file"), &code);
  EXPECT_EQ(code, 2) << out;
  EXPECT_NE(out.find(tmp_.file("a-file") + ": not a directory"), std::string::npos) << out;
}

TEST_F(CliSnapshot, ReportsCountOneInTheSingular) {
  int code = -1;
  std::string out =
      walcut("snapshot restore " + snap() + " --increment 2 --node node1 --dest " + tmp_.file("one"), &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_NE(out.find("restored 1 node into"), std::string::npos) << out;
  // A copy of the snapshot with one stray file: one problem.
  const std::string copy = tmp_.file("snp");
  fs::copy(snap(), copy, fs::copy_options::recursive);
  std::ofstream(copy + "/db/node0/tx0/stray.bin") << "x";
  out = walcut("snapshot check " + copy, &code);
  EXPECT_EQ(code, 1) << out;
  EXPECT_NE(out.find("\n1 problem found"), std::string::npos) << out;
  out = walcut("snapshot check " + copy + " --node node0 --map-out " + tmp_.file("node0.json"), &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("(1 finding)"), std::string::npos) << out;
}

}  // namespace
}  // namespace walcut
