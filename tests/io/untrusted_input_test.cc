// Reading input that may come from untrusted storage: the small-file reader
// names the path and the errno for every refusal, and names and relative
// paths from metadata are checked before a path is built from them.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "io/file_util.h"
#include "io/names.h"
#include "tests/testing/fork.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wal_fixture.h"

namespace walcut {
namespace {

using testing::TempDir;

bool has(const Status& s, const std::string& text) { return s.message().find(text) != std::string::npos; }

// Runs `fn` in a child process as an unprivileged user when this one is
// root (root reads files whatever their mode), under a 10 s alarm (so a
// read that blocks fails the test instead of hanging it). The child's exit
// code is fn's result: 0 when it saw what it expected.
int in_child(const std::function<int()>& fn) {
  pid_t pid = testing::fork_child();
  if (pid == 0) {
    ::alarm(10);
    if (::geteuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) ::_exit(99);
    ::_exit(fn());
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

TEST(ReadFileBytes, ADirectoryIsRefusedWithEisdirNamingIt) {
  TempDir dir;
  std::filesystem::create_directory(dir.file("node.meta"));
  Result<Bytes> r = read_file_bytes(dir.file("node.meta"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kIoError);
  EXPECT_TRUE(has(r.status(), dir.file("node.meta") + ": Is a directory")) << r.status().to_string();
}

TEST(ReadFileBytes, AMissingFileIsAnErrorNamingItAndTheErrno) {
  TempDir dir;
  Result<Bytes> r = read_file_bytes(dir.file("x.smf"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kIoError);
  EXPECT_TRUE(has(r.status(), dir.file("x.smf") + ": No such file or directory")) << r.status().to_string();
}

TEST(ReadFileBytes, AnUnreadableFileIsPermissionDeniedNamingIt) {
  TempDir dir;
  ::chmod(dir.path().c_str(), 0755);
  const std::string path = dir.file("node.meta");
  testing::write_file(path, testing::test_payload(64, 1));
  ::chmod(path.c_str(), 0);
  EXPECT_EQ(in_child([&] {
              Result<Bytes> r = read_file_bytes(path);
              return !r.ok() && has(r.status(), "open " + path + ": Permission denied") ? 0 : 1;
            }),
            0);
}

TEST(ReadFileBytes, AFifoIsRefusedWithoutWaitingForAWriter) {
  TempDir dir;
  ::chmod(dir.path().c_str(), 0755);
  const std::string path = dir.file("x.smf");
  ASSERT_EQ(::mkfifo(path.c_str(), 0644), 0);
  EXPECT_EQ(in_child([&] {
              Result<Bytes> r = read_file_bytes(path);
              return !r.ok() && has(r.status(), path + ": not a regular file") ? 0 : 1;
            }),
            0);
}

TEST(ValidateName, AcceptsPlainNamesAndRefusesAnythingThatIsNotOneComponent) {
  for (const char* ok : {"node0", "a.b", "..x", "x..", "tx_0-1", "é"}) {
    EXPECT_TRUE(validate_name("node id", ok).ok()) << ok;
  }
  for (const std::string& bad : {std::string(""), std::string("."), std::string(".."), std::string("../n1"),
                                 std::string("a/b"), std::string("/abs"), std::string("a\nb"), std::string("a\0b", 3),
                                 std::string("a\x7f"), std::string(256, 'n')}) {
    Status s = validate_name("node id", bad);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_TRUE(has(s, "node id '")) << s.message();
  }
  EXPECT_TRUE(validate_name("node id", std::string(255, 'n')).ok());
}

TEST(PathUnder, JoinsPlainRelativePathsAndRefusesEscapes) {
  Result<std::string> p = path_under("/snap", "db/node0/tx0/part-3.bin");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p.value(), "/snap/db/node0/tx0/part-3.bin");
  for (const char* bad : {"", "/etc/passwd", "../x", "db/../../x", "db/node0/..", "db//x", "db/./x", "db/x/", "."}) {
    Result<std::string> r = path_under("/snap", bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kCorruption);
    EXPECT_TRUE(has(r.status(), "/snap: the path '" + std::string(bad) + "'")) << r.status().message();
  }
}

TEST(PathUnder, RefusesAPathThroughASymbolicLinkUnderTheRoot) {
  TempDir dir;
  std::filesystem::create_directories(dir.file("snap/db/node0"));
  std::filesystem::create_directories(dir.file("elsewhere/tx0"));
  std::filesystem::create_directory_symlink(dir.file("elsewhere"), dir.file("snap/db/node1"));
  std::filesystem::create_symlink(dir.file("elsewhere/tx0"), dir.file("snap/db/node0/tx0"));
  for (const char* linked : {"db/node1/tx0/part-0.bin", "db/node0/tx0/part-0.bin", "db/node0/tx0"}) {
    Result<std::string> r = path_under(dir.file("snap"), linked);
    ASSERT_FALSE(r.ok()) << linked;
    EXPECT_TRUE(has(r.status(), "symbolic link")) << r.status().message();
  }
  // Components that do not exist yet (a directory restore is about to create) are fine.
  EXPECT_TRUE(path_under(dir.file("snap"), "db/node0/tx1/part-0.bin").ok());
  // The root itself may be a link: the caller chose it.
  std::filesystem::create_directory_symlink(dir.file("snap"), dir.file("snap-link"));
  EXPECT_TRUE(path_under(dir.file("snap-link"), "db/node0").ok());
}

// The same refusals through one PathsUnder, whose directory components are
// looked at once: a link is refused for every path through it, in any
// order, and a last component is looked at each time.
TEST(PathUnder, ManyPathsThroughOneRootRefuseWhatEachWouldAlone) {
  TempDir dir;
  std::filesystem::create_directories(dir.file("snap/db/node0/tx0"));
  std::filesystem::create_directories(dir.file("elsewhere/tx0"));
  std::filesystem::create_directory_symlink(dir.file("elsewhere"), dir.file("snap/db/node1"));
  PathsUnder under(dir.file("snap"));
  ASSERT_TRUE(under.path("db/node0/tx0/part-0.bin").ok());
  for (int round = 0; round < 2; ++round) {
    Result<std::string> r = under.path("db/node1/tx0/part-" + std::to_string(round) + ".bin");
    ASSERT_FALSE(r.ok()) << round;
    EXPECT_TRUE(has(r.status(), "symbolic link " + dir.file("snap/db/node1"))) << r.status().message();
  }
  EXPECT_TRUE(under.path("db/node2/tx0/part-0.bin").ok());  // missing components are fine, remembered or not
  EXPECT_TRUE(under.path("db/node2/tx0/part-1.bin").ok());
  std::filesystem::create_symlink(dir.file("elsewhere/tx0"), dir.file("snap/db/node0/tx0/part-9.bin"));
  Result<std::string> leaf = under.path("db/node0/tx0/part-9.bin");
  ASSERT_FALSE(leaf.ok()) << "a last component is looked at every time";
  EXPECT_TRUE(has(leaf.status(), "symbolic link")) << leaf.status().message();
}

// With list_dirs, a last component is found in its directory's listing,
// read once: a link there is refused, a name not listed (created since the
// listing was read) is looked at, and a missing one is fine.
TEST(PathUnder, ListedDirectoriesRefuseTheLinksEachPathWouldAlone) {
  TempDir dir;
  std::filesystem::create_directories(dir.file("snap/db/node0/tx0"));
  std::filesystem::create_directories(dir.file("elsewhere"));
  for (int p = 0; p < 3; ++p) {
    ASSERT_TRUE(
        write_file_synced(dir.file("snap/db/node0/tx0/part-" + std::to_string(p) + ".bin"), as_bytes("x")).ok());
  }
  std::filesystem::create_symlink(dir.file("elsewhere/leak.bin"), dir.file("snap/db/node0/tx0/part-3.bin"));
  PathsUnder under(dir.file("snap"), /*list_dirs=*/true);
  for (int p = 0; p < 3; ++p) ASSERT_TRUE(under.path("db/node0/tx0/part-" + std::to_string(p) + ".bin").ok()) << p;
  Result<std::string> linked = under.path("db/node0/tx0/part-3.bin");
  ASSERT_FALSE(linked.ok());
  EXPECT_TRUE(has(linked.status(), "symbolic link " + dir.file("snap/db/node0/tx0/part-3.bin")))
      << linked.status().message();
  EXPECT_TRUE(under.path("db/node0/tx0/part-7.bin").ok());  // missing: fine
  std::filesystem::create_symlink(dir.file("elsewhere/leak.bin"), dir.file("snap/db/node0/tx0/part-8.bin"));
  Result<std::string> late = under.path("db/node0/tx0/part-8.bin");
  ASSERT_FALSE(late.ok()) << "a name the listing did not hold is looked at";
  EXPECT_TRUE(has(late.status(), "symbolic link")) << late.status().message();
}

}  // namespace
}  // namespace walcut
