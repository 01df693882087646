// RestoreDest's writeback thread: it syncs the staging tree each time
// another step of bytes is written, stops at the publish, and a failed
// sync fails the publish with nothing published.
#include "replay/publish.h"

#include <gtest/gtest.h>
#include <oneapi/tbb/global_control.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "io/crc32c.h"
#include "tests/testing/temp_dir.h"

namespace walcut {
namespace {

namespace fs = std::filesystem;

// A restore destination under a temporary directory, its snapshot beside it.
struct Staged {
  // The publish's parallel_for on the calling thread alone: this test runs
  // under TSan, which cannot follow oneTBB's own hand-offs (scripts/test.sh).
  tbb::global_control one_thread{tbb::global_control::max_allowed_parallelism, 1};
  testing::TempDir tmp;
  std::unique_ptr<RestoreDest> dest;
  std::string staging;

  Staged() {
    fs::create_directories(tmp.file("snap"));
    Result<std::unique_ptr<RestoreDest>> opened = RestoreDest::open(tmp.file("dest"), tmp.file("snap"), false);
    EXPECT_TRUE(opened.ok()) << opened.status().to_string();
    dest = std::move(opened).value();
    Result<std::string> s = dest->stage();
    EXPECT_TRUE(s.ok()) << s.status().to_string();
    staging = s.value();
  }
  // Writes `bytes` bytes to `name` in the staging tree and notes it.
  void write(const std::string& name, size_t bytes) {
    const std::string data(bytes, 'x');
    ASSERT_TRUE(write_file_synced(staging + "/" + name, as_bytes(data)).ok());
    dest->note_written(staging + "/" + name, PartitionFileWritten{bytes, crc32c(as_bytes(data))});
  }
};

// Sync calls as a test's writeback sees them: the directories synced.
struct SyncLog {
  std::mutex mu;
  std::vector<std::string> dirs;
  Status result;
  size_t count() {
    std::lock_guard<std::mutex> l(mu);
    return dirs.size();
  }
  std::function<Status(const std::string&)> fn() {
    return [this](const std::string& dir) {
      std::lock_guard<std::mutex> l(mu);
      dirs.push_back(dir);
      return result;
    };
  }
  // Waits for the `n`-th call (the thread's own pace), at most a minute.
  bool wait_for(size_t n) {
    for (int i = 0; i < 6000 && count() < n; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return count() >= n;
  }
};

TEST(RestoreDest, TheWritebackSyncsTheStagingTreeEachTimeAStepIsWritten) {
  Staged s;
  SyncLog log;
  s.dest->start_writeback(100, log.fn());
  s.write("a", 60);
  s.write("b", 60);  // 120 >= 100: one sync
  ASSERT_TRUE(log.wait_for(1));
  s.write("c", 50);  // 50 < 100: none
  ASSERT_TRUE(s.dest->publish("stamp\n", {}).ok());
  ASSERT_EQ(log.count(), 1u);  // the publish stopped it before the step was reached again
  EXPECT_EQ(log.dirs[0], s.staging);
  EXPECT_TRUE(fs::exists(s.tmp.file("dest/c")));
  EXPECT_FALSE(fs::exists(s.staging));
}

TEST(RestoreDest, AFailedWritebackSyncFailsThePublishAndPublishesNothing) {
  Staged s;
  SyncLog log;
  log.result = Status::io_error("syncfs " + s.staging + ": Input/output error");
  s.dest->start_writeback(10, log.fn());
  s.write("a", 20);
  ASSERT_TRUE(log.wait_for(1));
  Status published = s.dest->publish("stamp\n", {});
  ASSERT_FALSE(published.ok());
  EXPECT_NE(published.to_string().find("Input/output error"), std::string::npos) << published.to_string();
  EXPECT_FALSE(fs::exists(s.tmp.file("dest")));
  s.dest.reset();
  EXPECT_FALSE(fs::exists(s.staging));  // a failed run leaves no staging behind
}

// A sync that throws (out of memory) ends the writeback thread, not the
// process: the publish throws it on and publishes nothing.
TEST(RestoreDest, AWritebackSyncThatThrowsFailsThePublishNotTheProcess) {
  Staged s;
  std::atomic<int> calls{0};
  s.dest->start_writeback(10, [&](const std::string&) -> Status {
    ++calls;
    throw std::bad_alloc();
  });
  s.write("a", 20);
  for (int i = 0; i < 6000 && calls == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_EQ(calls, 1);
  s.write("b", 20);  // the thread has ended: no second sync
  EXPECT_THROW((void)s.dest->publish("stamp\n", {}), std::bad_alloc);
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(fs::exists(s.tmp.file("dest")));
  s.dest.reset();
  EXPECT_FALSE(fs::exists(s.staging));
}

// The voluntary context switches of this process's thread named `name`
// (/proc/self/task/*/comm); -1 when there is none.
long switches_of_thread(const std::string& name) {
  for (const fs::directory_entry& t : fs::directory_iterator("/proc/self/task")) {
    std::ifstream comm(t.path() / "comm");
    std::string c;
    if (!std::getline(comm, c) || c != name) continue;
    std::ifstream status(t.path() / "status");
    for (std::string line; std::getline(status, line);) {
      if (line.starts_with("voluntary_ctxt_switches:")) return std::stol(line.substr(line.find(':') + 1));
    }
  }
  return -1;
}

TEST(RestoreDest, TheWritebackIsWokenOnlyWhenASyncIsDue) {
  Staged s;
  SyncLog log;
  s.dest->start_writeback(uint64_t{1} << 40, log.fn());
  long before = -1;
  for (int i = 0; i < 100 && before < 0; ++i) {  // once the thread has named itself
    before = switches_of_thread("walcut-wb");
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_GE(before, 0);
  for (int i = 0; i < 300; ++i) {  // a restore's thousands of small files, none reaching the step
    s.dest->note_written(s.staging + "/f" + std::to_string(i), PartitionFileWritten{10, 0});
    std::this_thread::sleep_for(std::chrono::microseconds(200));  // time to fall asleep again, if woken
  }
  EXPECT_LT(switches_of_thread("walcut-wb") - before, 10);  // woken for each file: about 300
  EXPECT_EQ(log.count(), 0u);
}

TEST(RestoreDest, AWritebackStepOfZeroIsOneAndStops) {
  Staged s;
  SyncLog log;
  s.dest->start_writeback(0, log.fn());  // was a sync loop that never saw the stop
  s.write("a", 1);
  ASSERT_TRUE(log.wait_for(1));
  ASSERT_TRUE(s.dest->publish("stamp\n", {}).ok());
  EXPECT_LE(log.count(), 2u);
  EXPECT_TRUE(fs::exists(s.tmp.file("dest/a")));
}

TEST(RestoreDest, ARunThatEndsWithoutPublishingStopsItsWriteback) {
  Staged s;
  SyncLog log;
  s.dest->start_writeback(uint64_t{1} << 40, log.fn());  // a step never reached: the thread waits
  s.write("a", 20);
  s.dest.reset();  // joins it
  EXPECT_EQ(log.count(), 0u);
  EXPECT_FALSE(fs::exists(s.staging));
}

}  // namespace
}  // namespace walcut
