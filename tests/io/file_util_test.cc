// Directory listing, locks and the modes of what is created, of io/file_util.h.
#include "io/file_util.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/magic.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <filesystem>
#include <thread>

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

// A directory with more subdirectories than the process may open files:
// the listing holds only a directory's ancestors open, never its pending
// siblings. And a directory link below the root is not descended into.
TEST(ListDirectory, AWideTreeNeedsNoMoreOpenFilesThanItsDepth) {
  TempDir dir;
  constexpr int kDirs = 300;
  for (int i = 0; i < kDirs; ++i) {
    fs::create_directories(dir.path() + "/d" + std::to_string(i) + "/sub");
    testing::write_file(dir.path() + "/d" + std::to_string(i) + "/sub/f", testing::test_payload(5, 1));
  }
  fs::create_directory_symlink(dir.path() + "/d0", dir.path() + "/dirlink");
  rlimit was{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &was), 0);
  rlimit low = was;
  low.rlim_cur = 64;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  Result<std::vector<DirEntry>> all = list_directory(dir.path(), /*recursive=*/true);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &was), 0);
  ASSERT_TRUE(all.ok()) << all.status().to_string();
  EXPECT_EQ(all->size(), 3u * kDirs + 1);
  EXPECT_EQ(std::count_if(all->begin(), all->end(), [](const DirEntry& e) { return e.path.rfind("dirlink", 0) == 0; }),
            1);
  EXPECT_TRUE(
      std::is_sorted(all->begin(), all->end(), [](const DirEntry& a, const DirEntry& b) { return a.path < b.path; }));
}

// A tree nested deeper than any path a system call takes (made through
// directory descriptors) is refused as too long, at once: it is listed
// no further than a walk by whole paths would go.
TEST(ListDirectory, ATreeDeeperThanPathMaxIsRefusedAsTooLong) {
  TempDir dir;
  const std::string name(200, 'n');
  int fd = ::open(dir.path().c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(fd, 0);
  for (int depth = 0; depth < 2 * PATH_MAX / 200; ++depth) {
    ASSERT_EQ(::mkdirat(fd, name.c_str(), 0700), 0);
    const int sub = ::openat(fd, name.c_str(), O_RDONLY | O_DIRECTORY);
    ::close(fd);
    fd = sub;
    ASSERT_GE(fd, 0);
  }
  ::close(fd);
  Result<std::vector<DirEntry>> all = list_directory(dir.path(), /*recursive=*/true);
  ASSERT_FALSE(all.ok());
  EXPECT_EQ(all.status().code(), StatusCode::kIoError);
  EXPECT_NE(all.status().message().find("list " + dir.path() + ": " + name.substr(0, 100)), std::string::npos)
      << all.status().message();
  EXPECT_NE(all.status().message().find("File name too long"), std::string::npos) << all.status().message();
  // TempDir removes the tree by whole paths: take it apart from the top.
  std::error_code ec;
  for (std::string top = dir.path() + "/" + name; fs::exists(top, ec);) {
    const std::string aside = dir.path() + "/x";
    fs::rename(top + "/" + name, aside, ec);
    fs::remove(top, ec);
    fs::rename(aside, top, ec);
    if (ec) break;
  }
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

TEST(ListDirectory, EntriesRenamedOrRemovedWhileListedAreLeftOutNotAnError) {
  // As a restore renames its staging directory while another restore
  // beside it lists the parent for stale stagings of its own.
  TempDir dir;
  const std::string root = dir.path() + "/parent";
  fs::create_directories(root + "/kept");
  std::atomic<bool> stop{false};
  std::thread churn([&] {
    std::error_code ec;
    for (uint64_t i = 0; !stop; ++i) {
      const std::string a = root + "/s" + std::to_string(i % 64);
      fs::create_directory(a, ec);
      fs::rename(a, a + "-published", ec);
      fs::remove(a + "-published", ec);
    }
  });
  int failed = 0, without_kept = 0;
  for (int i = 0; i < 3000; ++i) {
    Result<std::vector<DirEntry>> r = list_directory(root);
    if (!r.ok()) {
      ++failed;
      ADD_FAILURE() << r.status().to_string();
      if (failed > 3) break;
      continue;
    }
    bool kept = false;
    for (const DirEntry& e : r.value()) kept |= e.path == "kept" && e.kind == DirEntry::Kind::kDirectory;
    without_kept += kept ? 0 : 1;
  }
  stop = true;
  churn.join();
  EXPECT_EQ(failed, 0);
  EXPECT_EQ(without_kept, 0) << "an entry that stays is always listed";
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

// A lock file or any file walcut writes that is a symbolic link, a FIFO
// or a directory is refused, and what it points at is left as it was: a
// `<dest>.lock` linked to /etc/passwd had the restore chmod it to 0600,
// and O_TRUNC writers would have emptied it.
TEST(CreateFile, ASymbolicLinkOrAnOddFileIsRefusedAndItsTargetUntouched) {
  TempDir dir;
  const std::string target = dir.path() + "/precious", link = dir.path() + "/x.lock";
  const std::string text = "keep me";
  ASSERT_TRUE(write_file_synced(target, as_bytes(text)).ok());
  ASSERT_EQ(::chmod(target.c_str(), 0644), 0);
  ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0);
  Result<FileLock> lock = FileLock::lock_file(link, "x", /*wait=*/false);
  ASSERT_FALSE(lock.ok());
  EXPECT_NE(lock.status().message().find(link), std::string::npos) << lock.status().to_string();
  EXPECT_NE(lock.status().message().find("symbolic link"), std::string::npos) << lock.status().to_string();
  Status written = write_file_synced(link, as_bytes(std::string("gone")));
  EXPECT_FALSE(written.ok());
  struct stat st {};
  ASSERT_EQ(::stat(target.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u) << "mode unchanged";
  Result<Bytes> after = read_file_bytes(target);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(after->data()), after->size()), text);

  const std::string fifo = dir.path() + "/f.lock";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  Result<FileLock> on_fifo = FileLock::lock_file(fifo, "f", /*wait=*/false);  // returns: no open that blocks
  ASSERT_FALSE(on_fifo.ok());
  EXPECT_NE(on_fifo.status().message().find("not a regular file"), std::string::npos) << on_fifo.status().to_string();
  Status to_fifo = write_file_synced(fifo, as_bytes(text));  // write-only: no reader, ENXIO
  ASSERT_FALSE(to_fifo.ok());
  EXPECT_NE(to_fifo.message().find("not a regular file"), std::string::npos) << to_fifo.to_string();
  fs::create_directories(dir.path() + "/d.lock");
  EXPECT_FALSE(FileLock::lock_file(dir.path() + "/d.lock", "d", false).ok());

  // A hard link is another name of the same file: neither locked (chmod'ed)
  // nor truncated through.
  const std::string hard = dir.path() + "/h.lock";
  ASSERT_EQ(::link(target.c_str(), hard.c_str()), 0);
  Result<FileLock> on_link = FileLock::lock_file(hard, "h", /*wait=*/false);
  ASSERT_FALSE(on_link.ok());
  EXPECT_NE(on_link.status().message().find("hard links"), std::string::npos) << on_link.status().to_string();
  EXPECT_FALSE(write_file_synced(hard, as_bytes(std::string("gone"))).ok());
  ASSERT_EQ(::stat(target.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u) << "mode unchanged";
  after = read_file_bytes(target);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(after->data()), after->size()), text);
  // An existing file of one name is still truncated and rewritten.
  ASSERT_EQ(::unlink(hard.c_str()), 0);
  ASSERT_TRUE(write_file_synced(target, as_bytes(std::string("new"))).ok());
  after = read_file_bytes(target);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(after->data()), after->size()), "new");
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
  // A ".." after a missing directory is taken as the kernel will take it
  // once that directory is made: after "alias", the snapshot's parent.
  fs::create_symlink(snap + "/db", dir.path() + "/db-alias");
  EXPECT_TRUE(path_is_within(dir.path() + "/missing/../db-alias/../evil", snap));
  EXPECT_TRUE(path_is_within(dir.path() + "/missing/../alias/x", snap));
  EXPECT_FALSE(path_is_within(dir.path() + "/missing/../alias/../x", snap));
}

mode_t mode_of(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? st.st_mode & 07777 : 0;
}

// Sets the umask and the group-read setting for one test, and puts both back.
class ModesUnder : public ::testing::Test {
 protected:
  void use(mode_t umask, bool group_read) {
    ::umask(umask);
    set_group_read(group_read);
  }
  void TearDown() override {
    ::umask(umask_);
    set_group_read(false);
  }
  mode_t umask_ = ::umask(022);
};

TEST_F(ModesUnder, DirectoriesAndFilesArePrivateWhateverTheUmask) {
  use(0, false);
  TempDir dir;
  ASSERT_TRUE(make_directories(dir.path() + "/a/b/c").ok());
  for (const char* d : {"/a", "/a/b", "/a/b/c"}) EXPECT_EQ(mode_of(dir.path() + d), 0700u) << d;
  Result<int> fd = create_file(dir.path() + "/a/f", O_WRONLY);
  ASSERT_TRUE(fd.ok()) << fd.status().to_string();
  ::close(fd.value());
  EXPECT_EQ(mode_of(dir.path() + "/a/f"), 0600u);
  ASSERT_TRUE(write_file_synced(dir.path() + "/a/g", {}).ok());
  EXPECT_EQ(mode_of(dir.path() + "/a/g"), 0600u);
  ::chmod((dir.path() + "/a/g").c_str(), 0666);
  ASSERT_TRUE(write_file_synced(dir.path() + "/a/g", {}).ok());
  EXPECT_EQ(mode_of(dir.path() + "/a/g"), 0600u) << "a file replaced gets the mode too";
}

TEST_F(ModesUnder, GroupReadIsExactUnderUmask077AndLeavesExistingDirectoriesAlone) {
  use(077, true);
  TempDir dir;
  fs::create_directory(dir.path() + "/old");
  fs::permissions(dir.path() + "/old", fs::perms(0711));
  ASSERT_TRUE(make_directories(dir.path() + "/old/new/").ok());
  EXPECT_EQ(mode_of(dir.path() + "/old"), 0711u) << "an existing directory keeps its mode";
  EXPECT_EQ(mode_of(dir.path() + "/old/new"), 0750u);
  Result<FileLock> lock = FileLock::lock_file(dir.path() + "/old/x.lock", "x", false);
  ASSERT_TRUE(lock.ok()) << lock.status().to_string();
  EXPECT_EQ(mode_of(dir.path() + "/old/x.lock"), 0640u);
}

TEST_F(ModesUnder, AFileInThePathOfADirectoryIsAnErrorNamingIt) {
  use(022, false);
  TempDir dir;
  testing::write_file(dir.path() + "/f", testing::test_payload(3, 1));
  Status s = make_directories(dir.path() + "/f/g");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find(dir.path() + "/f: Not a directory"), std::string::npos) << s.message();
}

TEST_F(ModesUnder, ModesNoWiderThanASourceDropGroupReadWhenAnyPartOfItIsPrivate) {
  use(0, true);
  TempDir dir;
  ASSERT_TRUE(make_directories(dir.path() + "/snap/db").ok());
  ASSERT_TRUE(write_file_synced(dir.path() + "/snap/db/p", {}).ok());
  Result<FileModes> wide = modes_no_wider_than(dir.path() + "/snap");
  ASSERT_TRUE(wide.ok());
  EXPECT_EQ(wide.value(), (FileModes{0750, 0640}));
  ::chmod((dir.path() + "/snap/db/p").c_str(), 0600);
  Result<FileModes> narrow = modes_no_wider_than(dir.path() + "/snap");
  ASSERT_TRUE(narrow.ok());
  EXPECT_EQ(narrow.value(), (FileModes{0700, 0600}));
  EXPECT_EQ(modes_no_wider_than(dir.path() + "/snap/db/p").value(), (FileModes{0700, 0600}));
  ASSERT_TRUE(set_tree_modes(dir.path() + "/snap", narrow.value()).ok());
  EXPECT_EQ(mode_of(dir.path() + "/snap"), 0700u);
  EXPECT_EQ(mode_of(dir.path() + "/snap/db"), 0700u);
  EXPECT_FALSE(modes_no_wider_than(dir.path() + "/none").ok());
}


// A hint only: a FIFO planted where a snapshot file belongs (no writer),
// a missing file or a directory must neither hang nor fail the caller.
TEST(AdviseWillNeed, ReturnsAtOnceForAFifoAMissingFileOrADirectory) {
  TempDir dir;
  const std::string fifo = dir.path() + "/fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const std::string file = dir.path() + "/file";
  testing::write_file(file, testing::test_payload(10000, 3));
  std::atomic<bool> done{false};
  std::thread t([&] {
    for (const std::string& p : {fifo, dir.path() + "/missing", dir.path(), file}) advise_will_need(p);
    done = true;
  });
  for (int i = 0; i < 500 && !done; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (!done) {
    t.detach();
    FAIL() << "advise_will_need waited for a writer of " << fifo;
  }
  t.join();
  EXPECT_EQ(testing::read_file(file), testing::test_payload(10000, 3));
}

// What decides whether the restore hints a snapshot's files at all: a
// file just written is in the page cache, one dropped from it is not, and
// a missing file, a symbolic link or a FIFO is "not cached", at once.
TEST(FirstByteCached, AFileJustWrittenIsAndOneDroppedFromTheCacheIsNot) {
  TempDir dir;
  const std::string file = dir.path() + "/file", link = dir.path() + "/link", fifo = dir.path() + "/fifo";
  testing::write_file(file, testing::test_payload(10000, 3));
  std::filesystem::create_symlink(file, link);
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_TRUE(first_byte_cached(file));
  EXPECT_FALSE(first_byte_cached(dir.path() + "/missing"));
  EXPECT_FALSE(first_byte_cached(link));
  EXPECT_FALSE(first_byte_cached(fifo));
  EXPECT_FALSE(first_byte_cached(dir.path()));
  struct statfs fs;
  ASSERT_EQ(::statfs(dir.path().c_str(), &fs), 0);
  if (fs.f_type != TMPFS_MAGIC) {  // tmpfs pages are the file: never dropped
    int fd = ::open(file.c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::fdatasync(fd), 0);
    ASSERT_EQ(::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
    ::close(fd);
    EXPECT_FALSE(first_byte_cached(file));
  }
  EXPECT_EQ(testing::read_file(file), testing::test_payload(10000, 3));
  EXPECT_TRUE(first_byte_cached(file));
}

// A size check refuses a file before it is read; a file too large for
// memory (a sparse 8 TiB one) is an error naming it, not an exception.
TEST(ReadFileBytes, TheSizeIsCheckedFirstAndAFileLargerThanMemoryIsAnErrorNamingIt) {
  TempDir dir;
  const std::string path = dir.path() + "/huge";
  testing::write_file(path, testing::test_payload(100, 1));
  Result<Bytes> refused =
      read_file_bytes(path, [](uint64_t size) { return Status::corruption(std::to_string(size) + " bytes"); });
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().message(), "100 bytes");
  Result<Bytes> read = read_file_bytes(path, [](uint64_t) { return Status{}; });
  ASSERT_TRUE(read.ok()) << read.status().to_string();
  EXPECT_EQ(read.value(), testing::test_payload(100, 1));
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  // (Under ASan and TSan an allocation that fails ends the process by
  // design, instead of throwing std::bad_alloc.)
  std::error_code ec;
  std::filesystem::resize_file(path, uint64_t{8} << 40, ec);
  ASSERT_FALSE(ec) << ec.message();
  Result<Bytes> huge = read_file_bytes(path);
  ASSERT_FALSE(huge.ok());
  EXPECT_EQ(huge.status().code(), StatusCode::kIoError);
  EXPECT_NE(huge.status().message().find(path + ": 8796093022208 bytes do not fit in memory"), std::string::npos)
      << huge.status().message();
#endif
}

// A file swapped for a symbolic link after its path was checked is not
// followed: an error naming the path, whatever the link points at.
TEST(ReadFileBytes, NoFollowRefusesASymbolicLinkNamingIt) {
  TempDir dir;
  const std::string real = dir.path() + "/real", link = dir.path() + "/part-0.bin";
  testing::write_file(real, testing::test_payload(100, 3));
  std::filesystem::create_symlink(real, link);
  Result<Bytes> followed = read_file_bytes(link);
  ASSERT_TRUE(followed.ok()) << followed.status().to_string();
  Result<Bytes> refused = read_file_bytes_no_follow(link, {});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kCorruption);
  EXPECT_NE(refused.status().message().find(link + ": a symbolic link"), std::string::npos)
      << refused.status().message();
  Result<Bytes> plain = read_file_bytes_no_follow(real, {});
  ASSERT_TRUE(plain.ok()) << plain.status().to_string();
  EXPECT_EQ(plain.value(), testing::test_payload(100, 3));
}

// A prefix is read without the rest: an 8 TiB sparse file (which would
// not fit in memory whole) gives its first bytes.
TEST(ReadFilePrefix, ReadsTheFirstBytesOfAFileOfAnySize) {
  TempDir dir;
  const std::string path = dir.path() + "/note";
  const Bytes whole = testing::test_payload(100, 2);
  testing::write_file(path, whole);
  Result<Bytes> shorter = read_file_prefix(path, 4096);
  ASSERT_TRUE(shorter.ok()) << shorter.status().to_string();
  EXPECT_EQ(shorter.value(), whole);
  Result<Bytes> first = read_file_prefix(path, 10);
  ASSERT_TRUE(first.ok()) << first.status().to_string();
  EXPECT_EQ(first.value(), Bytes(whole.begin(), whole.begin() + 10));
  std::error_code ec;
  std::filesystem::resize_file(path, uint64_t{8} << 40, ec);
  ASSERT_FALSE(ec) << ec.message();
  Result<Bytes> huge = read_file_prefix(path, 4096);
  ASSERT_TRUE(huge.ok()) << huge.status().to_string();
  EXPECT_EQ(huge->size(), 4096u);
  Result<Bytes> directory = read_file_prefix(dir.path(), 10);
  ASSERT_FALSE(directory.ok());
  EXPECT_EQ(directory.status().code(), StatusCode::kIoError);
  // A link is not followed: a note is quoted in errors, and must not
  // show a file from anywhere.
  const std::string link = dir.path() + "/link";
  std::filesystem::create_symlink(path, link);
  Result<Bytes> linked = read_file_prefix(link, 10);
  ASSERT_FALSE(linked.ok());
  EXPECT_EQ(linked.status().code(), StatusCode::kCorruption) << linked.status().to_string();
  EXPECT_NE(linked.status().message().find(link + ": a symbolic link"), std::string::npos) << linked.status().message();
}

TEST(ReadFilePieces, HandsTheRestInOrderStopsOnAnErrorAndRefusesALinkOrAFifo) {
  TempDir dir;
  const std::string path = dir.path() + "/segment";
  const Bytes whole = testing::test_payload((5 << 19) + 7, 3);  // two and a half pieces
  testing::write_file(path, whole);
  for (const uint64_t from : {uint64_t{0}, uint64_t{1000}, uint64_t{1} << 20, uint64_t{whole.size()}}) {
    Bytes seen;
    Status s = read_file_pieces(path, from, [&](ByteSpan piece) {
      seen.insert(seen.end(), piece.begin(), piece.end());
      return Status{};
    });
    ASSERT_TRUE(s.ok()) << s.to_string();
    EXPECT_EQ(seen, Bytes(whole.begin() + static_cast<std::ptrdiff_t>(from), whole.end())) << from;
  }
  int calls = 0;
  Status stopped = read_file_pieces(path, 0, [&](ByteSpan) {
    ++calls;
    return Status::io_error("full");
  });
  EXPECT_EQ(stopped.message(), "full");
  EXPECT_EQ(calls, 1);
  // The size fstat gives once opened bounds the read: a file growing
  // while it is read (by this reader's first piece) is read as it was.
  uint64_t read = 0;
  Status grown = read_file_pieces(path, 0, [&](ByteSpan piece) {
    if (read == 0) {
      const Bytes more = testing::test_payload(3 << 20, 4);
      std::FILE* f = std::fopen(path.c_str(), "ab");
      EXPECT_EQ(std::fwrite(more.data(), 1, more.size(), f), more.size());
      std::fclose(f);
    }
    read += piece.size();
    return Status{};
  });
  ASSERT_TRUE(grown.ok()) << grown.to_string();
  EXPECT_EQ(read, whole.size());
  // check_size sees that size first; its error is returned, nothing read.
  uint64_t sized = 0;
  auto nothing_read = [](ByteSpan) { return Status::io_error("read"); };
  Status refused = read_file_pieces(path, 0, nothing_read, false, [&](uint64_t n) {
    sized = n;
    return Status::corruption("too large");
  });
  EXPECT_EQ(refused.message(), "too large");
  EXPECT_EQ(sized, whole.size() + (3 << 20));
  auto nothing = [](ByteSpan) {
    ADD_FAILURE() << "no piece of a refused file";
    return Status{};
  };
  const std::string link = dir.path() + "/link";
  std::filesystem::create_symlink(path, link);
  Status linked = read_file_pieces(link, 0, nothing);
  EXPECT_EQ(linked.code(), StatusCode::kCorruption) << linked.to_string();
  auto any = [](ByteSpan) { return Status{}; };
  EXPECT_TRUE(read_file_pieces(link, 0, any, /*follow=*/true).ok());
  const std::string fifo = dir.path() + "/fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  Status piped = read_file_pieces(fifo, 0, nothing);  // at once, without a writer
  EXPECT_NE(piped.message().find(fifo + ": not a regular file"), std::string::npos) << piped.to_string();
}

TEST(OpenedFile, ReadsTheFileItOpenedWhateverIsRenamedOverItsPath) {
  TempDir dir;
  const std::string path = dir.path() + "/segment";
  const Bytes first = testing::test_payload((3 << 19) + 5, 5);  // a piece and a half
  testing::write_file(path, first);
  Result<OpenedFile> f = OpenedFile::open(path, /*follow=*/false);
  ASSERT_TRUE(f.ok()) << f.status().to_string();
  EXPECT_EQ(f->size(), first.size());
  // Another file put in its place: the reads still see the one opened
  // (a segment's header and its block come from one file).
  const std::string other = dir.path() + "/other";
  testing::write_file(other, testing::test_payload(100, 6));
  ASSERT_EQ(::rename(other.c_str(), path.c_str()), 0);
  Result<Bytes> whole = f->read(0, UINT64_MAX);
  ASSERT_TRUE(whole.ok()) << whole.status().to_string();
  EXPECT_EQ(whole.value(), first);
  Result<Bytes> middle = f->read(1000, 64);
  ASSERT_TRUE(middle.ok());
  EXPECT_EQ(middle.value(), Bytes(first.begin() + 1000, first.begin() + 1064));
  // Past the end: short, then empty.
  Result<Bytes> tail = f->read(first.size() - 3, 64);
  ASSERT_TRUE(tail.ok());
  EXPECT_EQ(tail->size(), 3u);
  Result<Bytes> beyond = f->read(first.size() + 10, 64);
  ASSERT_TRUE(beyond.ok());
  EXPECT_TRUE(beyond->empty());
  // The path now names the other file.
  Result<Bytes> now = read_file_bytes(path);
  ASSERT_TRUE(now.ok());
  EXPECT_EQ(now->size(), 100u);
  // Opened as read_file_bytes_no_follow() opens: a link or a directory is refused.
  const std::string link = dir.path() + "/link";
  fs::create_symlink(path, link);
  EXPECT_EQ(OpenedFile::open(link, /*follow=*/false).status().code(), StatusCode::kCorruption);
  EXPECT_TRUE(OpenedFile::open(link, /*follow=*/true).ok());
  Result<OpenedFile> d = OpenedFile::open(dir.path(), /*follow=*/false);
  EXPECT_NE(d.status().message().find("read " + dir.path()), std::string::npos) << d.status().to_string();
}
}  // namespace
}  // namespace walcut
