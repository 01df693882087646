// `walcut snapshot restore`, `check` and `info` as an operator meets them:
// the order of --groups, what a cluster restored with --groups declares,
// an empty --dest, a missing SNAPSHOT_DIR, counts in the reports, and what
// info shows and hashes.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "cut/increment.h"
#include "engine/node_meta.h"
#include "engine/partition_file.h"
#include "engine/snapshot.h"
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

// Runs `walcut snapshot restore SNAP --increment N --dest DEST
// --no-progress` with `signals` raised blocked before it starts, so that
// they are pending when the CLI takes them: the restore has begun nothing
// when it learns of them, on any machine, however fast. Its output goes to
// `err`; returns its wait status.
int restore_with_signals_pending(std::initializer_list<int> signals, const std::string& snap_dir, const char* increment,
                                 const std::string& dest, const std::string& err) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    sigset_t set;
    sigemptyset(&set);
    for (int sig : signals) sigaddset(&set, sig);
    ::sigprocmask(SIG_BLOCK, &set, nullptr);
    for (int sig : signals) {
      ::signal(sig, SIG_DFL);  // not ignored, as a background job's SIGINT is
      ::raise(sig);            // pending, and kept pending across exec
    }
    const int fd = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::dup2(fd, 2);
    ::dup2(fd, 1);
    ::execl(kCli.c_str(), kCli.c_str(), "snapshot", "restore", snap_dir.c_str(), "--increment", increment, "--dest",
            dest.c_str(), "--no-progress", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  int status = 0;
  return pid > 0 && ::waitpid(pid, &status, 0) == pid ? status : -1;
}

// A restore asked to stop by SIGTERM, SIGINT or SIGHUP ends early,
// removes its staging directory, publishes nothing and exits 128 + the
// signal, saying so; a rerun restores.
TEST_F(CliSnapshot, ARestoreStoppedBySignalPublishesNothingAndLeavesNoStaging) {
  // Increment 0 replays nothing: its restore stops in the finish.
  for (auto [sig, increment] : {std::pair{SIGTERM, "2"}, std::pair{SIGINT, "0"}, std::pair{SIGHUP, "1"}}) {
    const std::string dest = tmp_.file("stopped-" + std::to_string(sig)), err = tmp_.file("err.txt");
    const int status = restore_with_signals_pending({sig}, snap(), increment, dest, err);
    ASSERT_TRUE(WIFEXITED(status)) << "signal " << sig << " killed it instead";
    EXPECT_EQ(WEXITSTATUS(status), 128 + sig);
    std::ifstream in(err);
    std::stringstream text;
    text << in.rdbuf();
    EXPECT_NE(text.str().find(std::string("stopped by SIG") + sigabbrev_np(sig)), std::string::npos) << text.str();
    EXPECT_FALSE(fs::exists(dest)) << "nothing published";
    for (const auto& e : fs::directory_iterator(tmp_.path())) {
      EXPECT_EQ(e.path().filename().string().find(".staging"), std::string::npos) << e.path();
    }
    int code = -1;
    std::string out = walcut(
        "snapshot restore " + shell_quote(snap()) + " --increment " + increment + " --dest " + shell_quote(dest), &code);
    EXPECT_EQ(code, 0) << out;
    EXPECT_TRUE(fs::exists(dest + "/RESTORED"));
  }
}

// A second stop signal kills at once, whichever the first was: SIGINT
// and SIGTERM both pending when the CLI starts, SIGINT (the lower) is
// taken first and asks the restore to stop, and SIGTERM then ends the
// process as its default does. A rerun removes the staging it left.
TEST_F(CliSnapshot, ASecondStopSignalOfAnotherKindKillsAtOnce) {
  const std::string dest = tmp_.file("twice"), err = tmp_.file("err.txt");
  const int status = restore_with_signals_pending({SIGINT, SIGTERM}, snap(), "2", dest, err);
  ASSERT_TRUE(WIFSIGNALED(status)) << "exited " << (WIFEXITED(status) ? WEXITSTATUS(status) : -1)
                                   << " instead of being killed";
  EXPECT_EQ(WTERMSIG(status), SIGTERM);
  EXPECT_FALSE(fs::exists(dest)) << "nothing published";
  int code = -1;
  const std::string out =
      walcut("snapshot restore " + shell_quote(snap()) + " --increment 2 --dest " + shell_quote(dest), &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_TRUE(fs::exists(dest + "/RESTORED"));
}

// Restores increment 2 into `dest` (with `flag`) in a mount namespace of
// its own (a user namespace too when not root), where `source` is mounted
// on `target` first (`fstype`, `flags`). The exit code, and in `text` what
// it printed; at 90 and above the namespace or the mount could not be made.
int restore_with_a_mount(const std::string& snap_dir, const std::string& dest, const char* flag, const char* source,
                         const std::string& target, const char* fstype, unsigned long flags, const std::string& err,
                         std::string* text) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int fd = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::dup2(fd, 2);
    ::dup2(fd, 1);
    const int ns = ::geteuid() == 0 ? CLONE_NEWNS : CLONE_NEWUSER | CLONE_NEWNS;
    if (::unshare(ns) != 0) ::_exit(90);
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) ::_exit(91);
    if (::mount(source, target.c_str(), fstype, flags, nullptr) != 0) ::_exit(92);
    ::execl(kCli.c_str(), kCli.c_str(), "snapshot", "restore", snap_dir.c_str(), "--increment", "2", "--dest",
            dest.c_str(), flag, static_cast<char*>(nullptr));
    ::_exit(127);
  }
  int status = 0;
  if (pid < 0 || ::waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) return 128;
  std::ifstream in(err);
  std::stringstream out;
  out << in.rdbuf();
  *text = out.str();
  return WEXITSTATUS(status);
}

// An empty --dest that is a mount point is refused before anything is
// written: the tree is staged beside it, on the parent's file system, and
// the publish's rename over a mount point fails (EBUSY). A tmpfs is
// mounted on the directory.
TEST_F(CliSnapshot, AMountPointAsDestIsRefusedBeforeAnythingIsWritten) {
  const std::string dest = tmp_.file("mnt"), err = tmp_.file("err.txt");
  ASSERT_TRUE(fs::create_directory(dest));
  for (const char* dry_run : {"--no-progress", "--dry-run"}) {
    std::string text;
    const int code = restore_with_a_mount(snap(), dest, dry_run, "walcut-test", dest, "tmpfs", 0, err, &text);
    ASSERT_LT(code, 90) << "could not mount a tmpfs in a namespace of its own: " << code;
    EXPECT_EQ(code, 2) << dry_run;
    EXPECT_NE(text.find("--dest " + dest + ": a mount point"), std::string::npos) << text;
    EXPECT_NE(text.find(dest + "/cluster"), std::string::npos) << text;
    EXPECT_TRUE(fs::is_empty(dest));
    for (const auto& e : fs::directory_iterator(tmp_.path())) {
      EXPECT_EQ(e.path().filename().string().find(".staging"), std::string::npos) << e.path();
    }
  }
  // Without the mount, the same empty directory is restored into.
  int code = -1;
  std::string out =
      walcut("snapshot restore " + shell_quote(snap()) + " --increment 2 --dest " + shell_quote(dest), &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_TRUE(fs::exists(dest + "/RESTORED"));
}

// A --dest inside the snapshot under another name, a bind mount of it or
// of a directory below it, is refused like one named inside it: the
// restore would write into what it reads.
TEST_F(CliSnapshot, ADestInsideABindMountOfTheSnapshotIsRefused) {
  const std::string alias = tmp_.file("alias"), dest = alias + "/restored", err = tmp_.file("err.txt");
  ASSERT_TRUE(fs::create_directory(alias));
  for (const std::string& source : {snap(), snap() + "/db"}) {
    std::string text;
    const int code =
        restore_with_a_mount(snap(), dest, "--no-progress", source.c_str(), alias, nullptr, MS_BIND, err, &text);
    ASSERT_LT(code, 90) << "could not bind-mount in a namespace of its own: " << code;
    EXPECT_EQ(code, 2) << source << ": " << text;
    EXPECT_NE(text.find("--dest " + dest + ": inside the snapshot"), std::string::npos) << text;
    EXPECT_FALSE(fs::exists(source + "/restored")) << "nothing written into the snapshot";
    for (const auto& e : fs::directory_iterator(source)) {
      EXPECT_EQ(e.path().filename().string().find(".staging"), std::string::npos) << e.path();
    }
  }
}

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

TEST_F(CliSnapshot, AnEmptyNodeGroupsOrMemoryLimitIsAUsageErrorNotTheDefault) {
  // An unset shell variable must not turn a per-host restore into the whole cluster's.
  for (const std::string flag : {"--node", "--memory-limit", "--groups"}) {
    int code = -1;
    std::string out = walcut("snapshot restore " + snap() + " --increment 2 " + flag + " '' --dest " + tmp_.file("d"),
                             &code);
    EXPECT_EQ(code, 2) << flag << ": " << out;
    EXPECT_NE(out.find(flag), std::string::npos) << out;
    EXPECT_FALSE(fs::exists(tmp_.file("d"))) << flag;
  }
  int code = -1;
  const std::string out =
      walcut("snapshot restore " + snap() + " --increment 2 --memory-limit 0K --dest " + tmp_.file("d"), &code);
  EXPECT_EQ(code, 2) << out;
  EXPECT_NE(out.find("--memory-limit 0K: the budget must be at least 1 byte"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(tmp_.file("d")));
  // A leading 0 is refused, as for every number (not ten, not octal eight).
  const std::string zero =
      walcut("snapshot restore " + snap() + " --increment 2 --memory-limit 010M --dest " + tmp_.file("d"), &code);
  EXPECT_EQ(code, 2) << zero;
  EXPECT_NE(zero.find("--memory-limit 010M: not a size"), std::string::npos) << zero;
  EXPECT_FALSE(fs::exists(tmp_.file("d")));
}

// What the arguments ask of the snapshot is checked before anything is
// made: a refused --node, --groups or --increment leaves no lock file and
// no parent directories behind.
TEST_F(CliSnapshot, AnArgumentTheSnapshotRefusesLeavesNoLockOrDirectoriesBehind) {
  const std::string parent = tmp_.file("new"), dest = parent + "/deeper/d";
  for (const std::string& args : std::vector<std::string>{"--increment 2 --node nodeX", "--increment 2 --groups nope",
                                                          "--increment 3", "--node nodeX --dry-run"}) {
    int code = -1;
    const std::string out = walcut("snapshot restore " + snap() + " " + args + " --dest " + dest, &code);
    EXPECT_EQ(code, 2) << args << "\n" << out;
    EXPECT_NE(out.find("Invalid argument: --"), std::string::npos) << args << "\n" << out;
    EXPECT_FALSE(fs::exists(parent)) << args << ": " << parent << " was made";
  }
}

// --queue-depth and --chunk-kib change how the segments are read, not
// what is restored; values the reader cannot use are usage errors that
// make nothing.
TEST_F(CliSnapshot, ReaderFlagsChangeHowTheWalIsReadNotTheRestore) {
  int code = -1;
  std::string out = walcut("snapshot restore " + snap() + " --increment 2 --dest " + tmp_.file("a"), &code);
  ASSERT_EQ(code, 0) << out;
  for (const std::string flags : {" --queue-depth 1 --chunk-kib 4", " --queue-depth 64 --chunk-kib 2048 --io pread"}) {
    const std::string dest = tmp_.file("b" + std::to_string(flags.size()));
    out = walcut("snapshot restore " + snap() + " --increment 2" + flags + " --dest " + dest, &code);
    ASSERT_EQ(code, 0) << flags << "\n" << out;
    out = run_command("diff -r " + shell_quote(tmp_.file("a")) + " " + shell_quote(dest) + " 2>&1", &code);
    EXPECT_EQ(code, 0) << flags << "\n" << out;
  }
  // A leading 0 (CLI11 would read 010 as octal 8), and two flags that
  // are each in range but together ask for 8 TiB of read buffers.
  const std::vector<std::pair<std::string, std::string>> refused = {
      {"--chunk-kib 6", "--chunk-kib must be a multiple of 4, got 6"},
      {"--queue-depth 0", "--queue-depth: must be a whole number in 1..4096, got '0'"},
      {"--chunk-kib 2097152", "--chunk-kib: must be a whole number in 0..1048576, got '2097152'"},
      {"--queue-depth 010", "--queue-depth: must be a whole number in 1..4096 without a leading 0, got '010'"},
      {"--chunk-kib 020", "--chunk-kib: must be a whole number in 0..1048576 without a leading 0, got '020'"},
      {"--queue-depth 4096 --chunk-kib 1048576", "--queue-depth 4096 with --chunk-kib 1048576: the read buffers"}};
  for (const auto& [bad, said] : refused) {
    out = walcut("snapshot restore " + snap() + " --increment 2 " + bad + " --dest " + tmp_.file("x"), &code);
    EXPECT_EQ(code, 2) << bad << "\n" << out;
    EXPECT_NE(out.find(said), std::string::npos) << out;
    EXPECT_FALSE(fs::exists(tmp_.file("x"))) << bad;
    EXPECT_FALSE(fs::exists(tmp_.file("x.lock"))) << bad;
  }
}

TEST_F(CliSnapshot, AMemoryLimitPastTheSignedRangeIsNoLimit) {
  int code = -1;
  const std::string limit = " --memory-limit 18446744073709551615";  // 2^64 - 1 bytes
  std::string out = walcut("snapshot restore " + snap() + " --increment 2" + limit + " --json --dest " + tmp_.file("d"),
                           &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_EQ(json::parse(out).at("spill_files"), 0) << out;
}

TEST_F(CliSnapshot, MaxPassesReadsTheWalAgainAndSaysSo) {
  int code = -1;
  std::string out = walcut(
      "snapshot restore " + snap() + " --increment 2 --memory-limit 4K --max-passes 3 --json --dest " + tmp_.file("j"),
      &code);
  ASSERT_EQ(code, 0) << out;
  const json j = json::parse(out);
  EXPECT_GT(j.at("replay_passes").get<unsigned>(), 1u) << out;
  EXPECT_GT(j.at("reread_bytes").get<uint64_t>(), 0u) << out;
  out = walcut(
      "snapshot restore " + snap() + " --increment 2 --memory-limit 4K --max-passes 2 --dest " + tmp_.file("t"), &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_NE(out.find("  passes           2 over a WAL at most ("), std::string::npos) << out;
  out = walcut("snapshot restore " + snap() + " --increment 2 --max-passes 101 --dest " + tmp_.file("x"), &code);
  EXPECT_EQ(code, 2) << out;
  EXPECT_NE(out.find("--max-passes"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(tmp_.file("x")));
}

TEST_F(CliSnapshot, ADestThatCannotBeARestoreGetsNoLockFileBesideIt) {
  const std::string dest = tmp_.file("d");
  int code = -1;
  std::string out = walcut("snapshot restore " + snap() + " --increment 2 --dest " + dest, &code);
  ASSERT_EQ(code, 0) << out;
  // A directory inside the published restore: refused, and nothing written into that restore.
  out = walcut("snapshot restore " + snap() + " --increment 2 --dest " + dest + "/node0", &code);
  EXPECT_EQ(code, 2) << out;
  EXPECT_NE(out.find("exists and is not this restore"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(dest + "/node0.lock"));
  out = walcut("snapshot restore " + snap() + " --increment 2 --dest " + dest, &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("already holds this restore"), std::string::npos) << out;
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

// ---- snapshot check --reduce

TEST_F(CliSnapshot, ReduceRefusesASnapshotDirOrIncrementBesideIt) {
  int code = -1;
  std::string out = walcut("snapshot check " + snap() + " --node node0 --map-out " + tmp_.file("node0.json"), &code);
  ASSERT_EQ(code, 0) << out;
  for (const std::string& extra : std::vector<std::string>{snap(), "--increment 2"}) {
    out = walcut("snapshot check " + extra + " --reduce " + tmp_.file("node0.json"), &code);
    EXPECT_EQ(code, 2) << extra << "\n" << out;
    EXPECT_NE(out.find(" excludes --reduce"), std::string::npos) << extra << "\n" << out;
  }
}

TEST_F(CliSnapshot, ReduceReportsTheIncrementItsMapsWereMadeForAndRefusesMixedOnes) {
  int code = -1;
  std::string maps;
  for (const std::string node : {"node0", "node1", "node2"}) {
    const std::string map = tmp_.file(node + ".json");
    std::string out = walcut("snapshot check " + snap() + " --increment 2 --node " + node + " --map-out " + map, &code);
    ASSERT_EQ(code, 0) << out;
    maps += " " + map;
  }
  std::string out = walcut("snapshot check --reduce" + maps, &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_EQ(out.rfind("checked the maps of 3 nodes with increments 1..2\n", 0), 0u) << out;
  out = walcut("snapshot check --json --reduce" + maps, &code);
  ASSERT_EQ(code, 0) << out;
  json report = json::parse(out);
  EXPECT_EQ(report["increment"], 2) << out;
  EXPECT_TRUE(report["snapshot"].is_null()) << out;
  // A map of another increment does not reduce with these.
  out = walcut("snapshot check " + snap() + " --increment 1 --node node2 --map-out " + tmp_.file("node2.json"), &code);
  ASSERT_EQ(code, 0) << out;
  out = walcut("snapshot check --reduce" + maps, &code);
  EXPECT_EQ(code, 2) << out;
  EXPECT_NE(
      out.find(tmp_.file("node2.json") + ": a map of increment 1, and " + tmp_.file("node0.json") + " of increment 2"),
      std::string::npos)
      << out;
}

TEST_F(CliSnapshot, ReduceRefusesTwoMapsOfOneNode) {
  int code = -1;
  std::string maps;
  for (const std::string node : {"node0", "node1"}) {
    const std::string map = tmp_.file(node + ".json");
    std::string out = walcut("snapshot check " + snap() + " --increment 2 --node " + node + " --map-out " + map, &code);
    ASSERT_EQ(code, 0) << out;
    maps += " " + map;
  }
  std::string out = walcut("snapshot check --reduce" + maps + " " + tmp_.file("node1.json"), &code);
  EXPECT_EQ(code, 2) << out;
  EXPECT_NE(out.find(tmp_.file("node1.json") + ": a second map of node1"), std::string::npos) << out;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST_F(CliSnapshot, AMapIsNotWrittenInsideTheSnapshotItChecks) {
  const std::string copy = tmp_.file("copy");
  fs::copy(snap(), copy, fs::copy_options::recursive);
  const std::string smf = copy + "/node0.smf";
  const std::string before = read_text(smf);
  int code = -1;
  std::string out = walcut("snapshot check " + copy + " --node node0 --map-out " + smf, &code);
  EXPECT_EQ(code, 2) << out;
  EXPECT_NE(out.find("inside the snapshot"), std::string::npos) << out;
  EXPECT_EQ(read_text(smf), before);
  // Nor through a symbolic link that leads there.
  fs::create_symlink(smf, tmp_.file("link.json"));
  out = walcut("snapshot check " + copy + " --node node0 --map-out " + tmp_.file("link.json"), &code);
  EXPECT_EQ(code, 2) << out;
  EXPECT_EQ(read_text(smf), before);
  out = walcut("snapshot check " + copy + " --increment 2", &code);
  EXPECT_EQ(code, 0) << out;
}

// A copy of the snapshot with `segment` of `node` in increment `k` changed at byte 5000.
std::string with_flipped_segment_byte(const std::string& snap, const std::string& copy, uint64_t k,
                                      const std::string& node) {
  fs::copy(snap, copy, fs::copy_options::recursive);
  const std::vector<IncrementMeta> metas = read_increment_metas(copy, k).value();
  for (const IncrementMeta& m : metas) {
    if (m.node_id != node) continue;
    const std::string seg = increment_dir(copy, k) + "/" + m.files.at(0).path;
    std::fstream f(seg, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(5000);
    char c = 0;
    f.get(c);
    f.seekp(5000);
    f.put(static_cast<char>(c ^ 1));
    return seg;
  }
  return "";
}

// The report's lines after the header, without the last (its time).
std::string findings_of(const std::string& report) {
  const size_t first = report.find('\n'), last = report.rfind('\n', report.size() - 2);
  return first == std::string::npos || last <= first ? report : report.substr(first + 1, last - first);
}

TEST_F(CliSnapshot, ReduceOfTheMapsOfADamagedSnapshotFindsWhatTheWholeCheckFinds) {
  const std::string copy = tmp_.file("snp");
  ASSERT_FALSE(with_flipped_segment_byte(snap(), copy, 1, "node1").empty());
  int code = -1;
  const std::string whole = walcut("snapshot check " + copy + " --increment 2", &code);
  EXPECT_EQ(code, 1) << whole;
  EXPECT_NE(whole.find("\nnot compared: node1: increment-partition, transactions (its increments 1..2 were not "
                       "read to the end)\n"),
            std::string::npos)
      << whole;
  std::string maps;
  for (const std::string node : {"node0", "node1", "node2"}) {
    const std::string map = tmp_.file(node + ".json");
    std::string out = walcut("snapshot check " + copy + " --increment 2 --node " + node + " --map-out " + map, &code);
    ASSERT_EQ(code, 0) << out;
    maps += " " + map;
  }
  const std::string reduced = walcut("snapshot check --reduce" + maps, &code);
  EXPECT_EQ(code, 1) << reduced;
  EXPECT_EQ(reduced.rfind("checked the maps of 3 nodes with increments 1..2\n", 0), 0u) << reduced;
  EXPECT_EQ(findings_of(reduced), findings_of(whole));
}

TEST_F(CliSnapshot, CheckJsonFindingsCarryTheirFileAndOffset) {
  const std::string copy = tmp_.file("snp");
  const std::string seg = with_flipped_segment_byte(snap(), copy, 1, "node2");
  const SnapshotMeta b = read_snapshot_metas(copy).value()[0];
  const std::string removed = copy + "/" + b.files.front().path;
  fs::remove(removed);
  int code = -1;
  std::string out = walcut("snapshot check --json --increment 2 " + copy, &code);
  EXPECT_EQ(code, 1) << out;
  json report = json::parse(out);
  ASSERT_EQ(report["findings"].size(), 2u) << out;
  const json& missing = report["findings"][0];
  EXPECT_EQ(missing["file"], removed) << out;
  EXPECT_TRUE(missing["offset"].is_null()) << out;
  const json& damaged = report["findings"][1];
  EXPECT_EQ(damaged["file"], seg) << out;
  ASSERT_TRUE(damaged["offset"].is_number_unsigned()) << out;
  EXPECT_NE(damaged["detail"].get<std::string>().find(seg + " at offset " + damaged["offset"].dump()),
            std::string::npos)
      << out;
  ASSERT_EQ(report["not_compared"].size(), 2u) << out;
  EXPECT_EQ(report["not_compared"][0], (json{{"where", "node2"},
                                             {"kinds", {"increment-partition", "transactions"}},
                                             {"why", "its increments 1..2 were not read to the end"}}))
      << out;
}

// ---- snapshot info

json info_of(const std::string& args) {
  int code = -1;
  std::string out = walcut("snapshot info --json " + args, &code);
  EXPECT_EQ(code, 0) << args << "\n" << out;
  return code == 0 ? json::parse(out) : json();
}

TEST_F(CliSnapshot, InfoShowsWhatTheMetadataHoldsForEveryNodeAndIncrement) {
  json info = info_of(snap());
  std::vector<SnapshotMeta> bases = read_snapshot_metas(snap()).value();
  EXPECT_EQ(info["nodes"], json(bases[0].baseline));
  EXPECT_EQ(info["cluster_id"], bases[0].cluster_id);
  ASSERT_EQ(info["groups"].size(), bases[0].groups.size());
  for (size_t i = 0; i < bases[0].groups.size(); ++i) {
    const CacheGroup& g = bases[0].groups[i];
    EXPECT_EQ(info["groups"][i], (json{{"name", g.name},
                                       {"id", g.id},
                                       {"mode", cache_mode_name(g.mode)},
                                       {"partitions", g.partitions},
                                       {"backups", g.backups}}));
  }
  ASSERT_EQ(info["full"].size(), bases.size());
  for (size_t i = 0; i < bases.size(); ++i) {
    uint64_t bytes = 0;
    for (const ManifestEntry& f : bases[i].files) bytes += fs::file_size(snap() + "/" + f.path);
    EXPECT_EQ(info["full"][i], (json{{"node", bases[i].node_id},
                                     {"pointer", bases[i].snapshot_pointer.to_string()},
                                     {"partition_files", bases[i].files.size()},
                                     {"bytes", bytes}}));
  }
  EXPECT_EQ(info["increment_count"], 2);
  ASSERT_EQ(info["increments"].size(), 2u);
  for (uint64_t k = 1; k <= 2; ++k) {
    std::vector<IncrementMeta> metas = read_increment_metas(snap(), k).value();
    const json& inc = info["increments"][k - 1];
    EXPECT_EQ(inc["increment"], k);
    EXPECT_EQ(inc["cut_id"], metas[0].cut_id);
    ASSERT_EQ(inc["nodes"].size(), metas.size());
    for (size_t i = 0; i < metas.size(); ++i) {
      const IncrementMeta& m = metas[i];
      uint64_t bytes = 0;
      for (const ManifestEntry& f : m.files) bytes += fs::file_size(snap() + "/" + increment_rel_dir(k) + "/" + f.path);
      EXPECT_EQ(inc["nodes"][i], (json{{"node", m.node_id},
                                       {"cut_id", m.cut_id},
                                       {"first_segment", m.first_segment},
                                       {"last_segment", m.last_segment},
                                       {"bytes", bytes},
                                       {"start", m.start.to_string()},
                                       {"finish", m.finish.to_string()},
                                       {"included", m.included_count},
                                       {"excluded", m.excluded_count}}));
    }
  }
  EXPECT_FALSE(info.contains("hashes"));
  // The text says the same in lines.
  int code = -1;
  std::string text = walcut("snapshot info " + snap(), &code);
  ASSERT_EQ(code, 0) << text;
  for (const std::string& line : std::vector<std::string>{
           "3 nodes: node0, node1, node2\n", "2 increments\n",
           "  increment 1: cut " + std::to_string(read_increment_metas(snap(), 1).value()[0].cut_id),
           "CLUSTER_SNAPSHOT at " + bases[0].snapshot_pointer.to_string()}) {
    EXPECT_NE(text.find(line), std::string::npos) << line << "\n" << text;
  }
}

TEST_F(CliSnapshot, InfoIncrementShowsIncrementsUpToItAndRefusesOneBeyondTheLast) {
  json info = info_of(snap() + " --increment 1");
  EXPECT_EQ(info["increment_count"], 2);
  EXPECT_EQ(info["increments"].size(), 1u);
  EXPECT_EQ(info_of(snap() + " --increment 0")["increments"].size(), 0u);
  int code = -1;
  std::string out = walcut("snapshot info " + snap() + " --increment 3", &code);
  EXPECT_EQ(code, 2) << out;
  EXPECT_NE(out.find("has 2 increments"), std::string::npos) << out;
  out = walcut("snapshot info " + tmp_.file("none"), &code);
  EXPECT_EQ(code, 2) << out;
  EXPECT_NE(out.find(tmp_.file("none") + ": no such directory"), std::string::npos) << out;
}

TEST_F(CliSnapshot, InfoHashIsTheSumOfTheCopiesContentAndComparesSnapshots) {
  json info = info_of(snap() + " --increment 1 --hash");
  ASSERT_TRUE(info.contains("hashes")) << info.dump();
  EXPECT_EQ(info["hashes"]["increment"], 1);
  // The full hash of a node's group is the sum of its partition files' contents.
  std::map<std::pair<std::string, std::string>, PartitionHashes> want;
  const std::vector<SnapshotMeta> bases = read_snapshot_metas(snap()).value();
  for (const SnapshotMeta& b : bases) {
    for (const ManifestEntry& f : b.files) {
      const std::string group = fs::path(f.path).parent_path().filename().string();
      PartitionFile pf = read_partition_file(snap() + "/" + f.path).value();
      PartitionHashes& h = want[{b.node_id, group}];
      for (const auto& [key, v] : pf.entries) add_to_hashes(h, key, v);
    }
  }
  ASSERT_EQ(info["hashes"]["groups"].size(), want.size());
  for (const json& g : info["hashes"]["groups"]) {
    const PartitionHashes& h = want.at({g["node"].get<std::string>(), g["group"].get<std::string>()});
    char kv[17], versions[17];
    std::snprintf(kv, sizeof kv, "%016llx", static_cast<unsigned long long>(h.key_value_hash));
    std::snprintf(versions, sizeof versions, "%016llx", static_cast<unsigned long long>(h.version_hash));
    EXPECT_EQ(g["full"], (json{{"entries", h.entries}, {"kv", kv}, {"versions", versions}})) << g.dump();
    EXPECT_EQ(g["increments"].is_null(), g["group"].get<std::string>().starts_with("atomic")) << g.dump();
  }
  // The same simulation elsewhere hashes the same; increment 2 differs from 1.
  int code = -1;
  std::string out =
      walcut("gen --out " + tmp_.file("again") + " --nodes 3 --partitions 8 --txs 300 --increments 2", &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_EQ(info_of(tmp_.file("again/snapshots/snp") + " --increment 1 --hash")["hashes"], info["hashes"]);
  EXPECT_NE(info_of(snap() + " --hash")["hashes"]["groups"], info["hashes"]["groups"]);
}

TEST_F(CliSnapshot, InfoHashOfADamagedSnapshotIsADataErrorNamingTheFile) {
  const std::string copy = tmp_.file("snp");
  fs::copy(snap(), copy, fs::copy_options::recursive);
  const SnapshotMeta b = read_snapshot_metas(copy).value()[0];
  const std::string victim = copy + "/" + b.files.back().path;
  {
    std::fstream f(victim, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(10);
    f.put('\x5a');
  }
  int code = -1;
  std::string out = walcut("snapshot info " + copy, &code);
  EXPECT_EQ(code, 0) << "without --hash only the metadata is read\n" << out;
  out = walcut("snapshot info " + copy + " --hash", &code);
  EXPECT_EQ(code, 3) << out;
  EXPECT_NE(out.find(b.files.back().path), std::string::npos) << out;
  EXPECT_NE(out.find("run walcut snapshot check"), std::string::npos) << out;
}

}  // namespace
}  // namespace walcut
