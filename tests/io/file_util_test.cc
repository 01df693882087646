// Directory listing and locks of io/file_util.h.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>

#include "io/file_util.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wal_fixture.h"

namespace walcut {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

TEST(ListDirectory, RecursiveListingIsSortedRelativeAndTyped) {
  TempDir dir;
  fs::create_directories(dir.path() + "/a/b");
  testing::write_file(dir.path() + "/a/b/f", testing::test_payload(7, 1));
  testing::write_file(dir.path() + "/z", testing::test_payload(3, 2));
  fs::create_symlink(dir.path() + "/z", dir.path() + "/link");
  Result<std::vector<DirEntry>> all = list_directory(dir.path(), /*recursive=*/true);
  ASSERT_TRUE(all.ok()) << all.status().to_string();
  std::vector<std::string> paths;
  for (const DirEntry& e : all.value()) paths.push_back(e.path);
  EXPECT_EQ(paths, (std::vector<std::string>{"a", "a/b", "a/b/f", "link", "z"}));
  EXPECT_EQ(all->at(0).kind, DirEntry::Kind::kDirectory);
  EXPECT_EQ(all->at(2).kind, DirEntry::Kind::kFile);
  EXPECT_EQ(all->at(2).bytes, 7u);
  EXPECT_EQ(all->at(3).kind, DirEntry::Kind::kOther) << "a symbolic link is not followed";
  Result<std::vector<DirEntry>> top = list_directory(dir.path());
  ASSERT_TRUE(top.ok());
  EXPECT_EQ(top->size(), 3u);
  Result<std::vector<DirEntry>> none = list_directory(dir.path() + "/missing");
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find(dir.path() + "/missing"), std::string::npos) << none.status().message();
}

// A tree removed and made again while it is listed: every listing is a
// result or an error naming the directory, never a thrown filesystem_error.
TEST(ListDirectory, TreeChangingWhileListedNeverThrows) {
  TempDir dir;
  const std::string root = dir.path() + "/tree";
  std::atomic<bool> stop{false};
  std::thread churn([&] {
    while (!stop) {
      std::error_code ec;
      for (int i = 0; i < 20; ++i) fs::create_directories(root + "/d" + std::to_string(i) + "/e/f", ec);
      fs::remove_all(root, ec);
    }
  });
  int listed = 0, failed = 0;
  for (int i = 0; i < 2000; ++i) {
    Result<std::vector<DirEntry>> r = list_directory(root, /*recursive=*/true);
    if (r.ok()) {
      ++listed;
    } else {
      ++failed;
      EXPECT_NE(r.status().message().find(root), std::string::npos) << r.status().message();
    }
  }
  stop = true;
  churn.join();
  EXPECT_EQ(listed + failed, 2000);
}

TEST(FileLock, SecondHolderIsBusyUntilTheFirstLetsGo) {
  TempDir dir;
  const std::string path = dir.path() + "/x.lock";
  Result<FileLock> first = FileLock::lock_file(path, "x", /*wait=*/false);
  ASSERT_TRUE(first.ok()) << first.status().to_string();
  Result<FileLock> second = FileLock::lock_file(path, "x", /*wait=*/false);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().message(), "x: busy: another walcut process holds " + path);
  std::atomic<bool> got{false};
  std::thread waiter([&] {
    Result<FileLock> waited = FileLock::lock_file(path, "x", /*wait=*/true);
    got = waited.ok();
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_FALSE(got) << "it waits while the first holds the lock";
  first->release();
  waiter.join();
  EXPECT_TRUE(got);
  EXPECT_TRUE(fs::exists(path)) << "the lock file stays";

  Result<FileLock> reader1 = FileLock::lock_directory(dir.path(), dir.path(), false, FileLock::Mode::kShared);
  Result<FileLock> reader2 = FileLock::lock_directory(dir.path(), dir.path(), false, FileLock::Mode::kShared);
  ASSERT_TRUE(reader1.ok() && reader2.ok());
  Result<FileLock> writer = FileLock::lock_directory(dir.path(), dir.path(), false, FileLock::Mode::kExclusive);
  ASSERT_FALSE(writer.ok());
  EXPECT_NE(writer.status().message().find("busy"), std::string::npos);
  EXPECT_EQ(FileLock::lock_directory(dir.path() + "/none", "n", false, FileLock::Mode::kShared).status().code(),
            StatusCode::kNotFound);
}

TEST(PathIsWithin, ResolvesDotsAndSymbolicLinks) {
  TempDir dir;
  fs::create_directories(dir.path() + "/snap/db");
  fs::create_symlink(dir.path() + "/snap", dir.path() + "/alias");
  const std::string snap = dir.path() + "/snap";
  EXPECT_TRUE(path_is_within(snap, snap));
  EXPECT_TRUE(path_is_within(snap + "/", snap));
  EXPECT_TRUE(path_is_within(snap + "/new/deeper", snap));
  EXPECT_TRUE(path_is_within(snap + "/db/../x", snap));
  EXPECT_TRUE(path_is_within(dir.path() + "/alias/x", snap));
  EXPECT_FALSE(path_is_within(snap + "/../snapshot-2", snap));
  EXPECT_FALSE(path_is_within(dir.path() + "/snap2", snap)) << "a name that begins like it is not inside it";
  EXPECT_FALSE(path_is_within(dir.path(), snap));
}

}  // namespace
}  // namespace walcut
