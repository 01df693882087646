// The modes of what walcut creates, whatever the umask: directories 0700
// and files 0600, or 0750 and 0640 with --group-read; a restore is never
// more readable than the snapshot it restores.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "tests/testing/command.h"
#include "tests/testing/temp_dir.h"

namespace walcut {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

const std::string kCli = WALCUT_CLI;

// Runs walcut with `args` under `umask`; its output (standard error too),
// and its exit code in `exit_code`.
std::string run(const std::string& umask, const std::string& args, int* exit_code) {
  return testing::run_command("umask " + umask + "; timeout 120 " + kCli + " " + args + " 2>&1", exit_code);
}

// Every directory and file below `root` (and `root` itself) whose mode is
// not `dir_mode` or `file_mode`, one "<path>: <mode in octal>" line each.
std::string wrong_modes(const std::string& root, mode_t dir_mode, mode_t file_mode) {
  std::string wrong;
  auto check = [&](const fs::path& p) {
    struct stat st;
    if (::lstat(p.c_str(), &st) != 0) return void(wrong += p.string() + ": cannot stat\n");
    const mode_t want = S_ISDIR(st.st_mode) ? dir_mode : file_mode;
    char mode[16];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    if ((st.st_mode & 07777) != want || !(S_ISDIR(st.st_mode) || S_ISREG(st.st_mode))) {
      wrong += p.string() + ": " + mode + "\n";
    }
  };
  check(root);
  for (const fs::directory_entry& e : fs::recursive_directory_iterator(root)) check(e.path());
  return wrong;
}

// gen, backup, snapshot restore, snapshot check --map-out, node recover of
// a waiting backup and wal synth, each run under `umask` with `flag`,
// writing below `out`.
void create_everything(const std::string& umask, const std::string& flag, const std::string& out) {
  struct Step {
    std::string args;
    std::function<void()> before;
  };
  const std::string snap = out + "/gen/snapshots/snp";
  const std::vector<Step> steps = {
      {"gen " + flag + " --out " + out + "/gen --nodes 2 --partitions 4 --txs 300 --increments 2 --checkpoints 2", {}},
      {"backup " + flag + " " + out + "/gen/cluster " + out + "/backups", {}},
      {"snapshot restore " + flag + " " + snap + " --increment 2 --dest " + out + "/restored/r", {}},
      {"snapshot check " + flag + " " + snap + " --increment 2 --node node0 --map-out " + out + "/node0.map.json", {}},
      {"node recover " + flag + " " + out + "/gen/cluster/node1",
       [&] {
         // The backup waits in the node's restore/ directory; the test moves it there.
         const std::string waiting = out + "/gen/cluster/node1/restore";
         fs::create_directory(waiting);
         fs::permissions(waiting, fs::perms(flag.empty() ? 0700 : 0750));
         fs::rename(out + "/backups/node1.backup", waiting + "/node1.backup");
       }},
      {"wal synth " + flag + " " + out + "/synth --transactions 100", {}},
  };
  for (const Step& s : steps) {
    if (s.before) s.before();
    int code = -1;
    std::string printed = run(umask, s.args, &code);
    ASSERT_EQ(code, 0) << s.args << "\n" << printed;
  }
  ASSERT_TRUE(fs::exists(out + "/restored/r/RESTORED"));
  ASSERT_TRUE(fs::exists(out + "/restored/r.lock"));
  ASSERT_TRUE(fs::exists(out + "/node0.map.json"));
}

TEST(CreatedModes, EverythingCreatedIsPrivateUnderUmaskZero) {
  TempDir dir;
  const std::string out = dir.file("out");
  ASSERT_NO_FATAL_FAILURE(create_everything("000", "", out));
  const std::string wrong = wrong_modes(out, 0700, 0600);
  EXPECT_TRUE(wrong.empty()) << "created with other modes than 0700 / 0600:\n" << wrong;
}

TEST(CreatedModes, GroupReadGivesExactly0750And0640UnderUmask077) {
  TempDir dir;
  const std::string out = dir.file("out");
  ASSERT_NO_FATAL_FAILURE(create_everything("077", "--group-read", out));
  const std::string wrong = wrong_modes(out, 0750, 0640);
  EXPECT_TRUE(wrong.empty()) << "created with other modes than 0750 / 0640:\n" << wrong;
}

TEST(CreatedModes, RestoreWithGroupReadOfAPrivateSnapshotStaysPrivate) {
  TempDir dir;
  int code = -1;
  std::string printed = run("000", "gen --out " + dir.file("gen") + " --nodes 2 --partitions 4 --txs 200 --increments 1", &code);
  ASSERT_EQ(code, 0) << printed;
  printed = run("000", "snapshot restore --group-read " + dir.file("gen/snapshots/snp") + " --increment 1 --dest " +
                           dir.file("restored"), &code);
  ASSERT_EQ(code, 0) << printed;
  const std::string wrong = wrong_modes(dir.file("restored"), 0700, 0600);
  EXPECT_TRUE(wrong.empty()) << "a private snapshot restored wider:\n" << wrong;
}

TEST(CreatedModes, RestoreWithGroupReadOfASnapshotWithOnePrivateFileStaysPrivate) {
  TempDir dir;
  int code = -1;
  const std::string snap = dir.file("gen/snapshots/snp");
  std::string printed =
      run("000", "gen --group-read --out " + dir.file("gen") + " --nodes 2 --partitions 4 --txs 200 --increments 1", &code);
  ASSERT_EQ(code, 0) << printed;
  printed = run("000", "snapshot restore --group-read " + snap + " --increment 1 --dest " + dir.file("wide"), &code);
  ASSERT_EQ(code, 0) << printed;
  const std::string wrong = wrong_modes(dir.file("wide"), 0750, 0640);
  EXPECT_TRUE(wrong.empty()) << "a group-readable snapshot restored with --group-read:\n" << wrong;
  // The modes are part of what a rerun must find: without --group-read it is another restore.
  printed = run("000", "snapshot restore " + snap + " --increment 1 --dest " + dir.file("wide"), &code);
  EXPECT_EQ(code, 2) << printed;
  EXPECT_NE(printed.find("its RESTORED says 'modes=0750/0640' where this restore's is 'modes=0700/0600'"),
            std::string::npos)
      << printed;
  fs::permissions(snap + "/node0.smf", fs::perms(0600));
  printed = run("000", "snapshot restore --group-read " + snap + " --increment 1 --dest " + dir.file("narrow"), &code);
  ASSERT_EQ(code, 0) << printed;
  const std::string narrowed = wrong_modes(dir.file("narrow"), 0700, 0600);
  EXPECT_TRUE(narrowed.empty()) << "restored wider than the snapshot's node0.smf:\n" << narrowed;
}

}  // namespace
}  // namespace walcut
