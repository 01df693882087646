// io_uring and pread give the same blocks; io_uring refusal falls back.
#include "io/chunk_reader.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>

#include "io/block_reader.h"
#include "io/wal_writer.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wal_fixture.h"

namespace walcut {
namespace {

using testing::ReadResult;
using testing::TempDir;

struct Config {
  IoEngine engine;
  bool direct;
  uint32_t queue_depth;
  uint32_t chunk_bytes;
};

BlockReaderOptions options_for(const Config& c, TailMode mode) {
  BlockReaderOptions o;
  o.io.engine = c.engine;
  o.io.direct = c.direct;
  o.io.queue_depth = c.queue_depth;
  o.io.chunk_bytes = c.chunk_bytes;
  o.io.notice = [](const std::string&) {};
  o.mode = mode;
  return o;
}

// A WAL of several segments with blocks of many sizes, some compressed.
std::vector<std::string> write_mixed_wal(const std::string& dir) {
  WriterOptions o = testing::small_writer_options(dir);
  o.codec = Codec::kLz4;
  o.sync = SyncPolicy::kEveryCommit;
  auto w = WalWriter::open(o);
  EXPECT_TRUE(w.ok());
  for (int i = 0; i < 300; ++i) {
    EXPECT_TRUE((*w)->append(RecordType::kCheckpoint, testing::test_payload(10 + (i * 37) % 3000, i)).ok());
    if (i == 150) {
      EXPECT_TRUE((*w)->rollover().ok());
    }
  }
  EXPECT_TRUE((*w)->close().ok());
  return testing::segments_of(dir);
}

void expect_same_stream(const ReadResult& a, const ReadResult& b) {
  EXPECT_EQ(a.status.to_string(), b.status.to_string());
  EXPECT_EQ(a.blocks, b.blocks);
  EXPECT_EQ(a.records, b.records);
  EXPECT_EQ(a.end.torn, b.end.torn);
  EXPECT_EQ(a.end.file_offset, b.end.file_offset);
  EXPECT_EQ(a.end.bytes_dropped, b.end.bytes_dropped);
  EXPECT_EQ(a.end.next, b.end.next);
}

const Config kConfigs[] = {
    {IoEngine::kUring, false, 8, 1 << 20}, {IoEngine::kUring, true, 8, 1 << 20}, {IoEngine::kUring, false, 1, 4096},
    {IoEngine::kUring, true, 3, 8192},     {IoEngine::kUring, false, 64, 12288}, {IoEngine::kPread, true, 8, 1 << 20},
    {IoEngine::kPread, false, 1, 4096},
};

// The same segments, clean and then damaged three ways, through every
// engine, direct or buffered, small and large chunks.
TEST(ChunkReader, UringAndPreadYieldIdenticalBlockStreams) {
  TempDir dir;
  auto paths = write_mixed_wal(dir.path());
  ASSERT_GE(paths.size(), 3u);
  const Bytes seg1 = testing::read_file(paths[1]);
  const Bytes last = testing::read_file(paths.back());
  ReadResult reference = testing::read_all(paths, options_for({IoEngine::kPread, false, 8, 1 << 20}, TailMode::kStrict));
  ASSERT_TRUE(reference.status.ok()) << reference.status.to_string();
  ASSERT_GT(reference.blocks.size(), 100u);

  auto damage = [&](int how) {
    testing::write_file(paths[1], seg1);
    testing::write_file(paths.back(), last);
    Bytes b = how == 1 ? seg1 : last;
    if (how == 1) b[9000] ^= std::byte{4};                                 // middle corruption
    if (how == 2) b.resize(reference.end.file_offset - 10);                // torn tail by truncation
    if (how == 3) b[reference.end.file_offset + 5000] = std::byte{0x57};  // garbage past the end
    if (how > 0) testing::write_file(how == 1 ? paths[1] : paths.back(), b);
  };
  for (int how = 0; how < 4; ++how) {
    damage(how);
    for (TailMode mode : {TailMode::kTolerateTornTail, TailMode::kStrict}) {
      ReadResult base = testing::read_all(paths, options_for({IoEngine::kPread, false, 1, 1 << 20}, mode));
      if (how == 0) expect_same_stream(base, reference);
      if (how > 0 && mode == TailMode::kStrict) {
        EXPECT_FALSE(base.status.ok()) << "damage " << how;
      }
      for (const Config& c : kConfigs) {
        SCOPED_TRACE("damage " + std::to_string(how) + " engine " + io_engine_name(c.engine) + " direct " +
                     std::to_string(c.direct) + " qd " + std::to_string(c.queue_depth) + " chunk " +
                     std::to_string(c.chunk_bytes));
        ReadResult r = testing::read_all(paths, options_for(c, mode));
        expect_same_stream(r, base);
        EXPECT_EQ(r.engine, c.engine == IoEngine::kUring ? "io_uring" : "pread");
      }
    }
  }
}

TEST(ChunkReader, FallsBackToPreadWhenIoUringIsRefused) {
  TempDir dir;
  auto paths = write_mixed_wal(dir.path());
  testing::set_uring_setup_error(EPERM);
  std::vector<std::string> notices;
  ReadOptions o;
  o.notice = [&](const std::string& n) { notices.push_back(n); };
  auto r = open_chunk_reader(paths, o);
  ASSERT_TRUE(r.ok());
  EXPECT_STREQ((*r)->engine_name(), "pread");
  auto again = open_chunk_reader(paths, o);
  ASSERT_TRUE(again.ok());
  EXPECT_STREQ((*again)->engine_name(), "pread");
  // Said once per process, naming the reason. (Another test of this binary
  // may have said it first, so count at most one.)
  ASSERT_LE(notices.size(), 1u);
  if (!notices.empty()) {
    EXPECT_NE(notices[0].find("Operation not permitted"), std::string::npos) << notices[0];
  }

  o.engine = IoEngine::kUring;  // forced: the refusal is an error
  auto forced = open_chunk_reader(paths, o);
  ASSERT_FALSE(forced.ok());
  EXPECT_NE(forced.status().message().find("io_uring_queue_init"), std::string::npos);

  // The fallback reads the same blocks.
  ReadResult fallback = testing::read_all(paths, options_for({IoEngine::kAuto, false, 8, 1 << 20}, TailMode::kStrict));
  testing::set_uring_setup_error(0);
  ReadResult uring = testing::read_all(paths, options_for({IoEngine::kUring, false, 8, 1 << 20}, TailMode::kStrict));
  EXPECT_EQ(fallback.engine, "pread");
  EXPECT_EQ(uring.engine, "io_uring");
  expect_same_stream(fallback, uring);
}

// on_chunk sees what next() returns, as it returns it, and nothing skipped.
TEST(ChunkReader, DeliversChunksInOrderAndSkipsOnRequest) {
  TempDir dir;
  Bytes a = testing::test_payload(3 * 4096 + 100, 1), b = testing::test_payload(5000, 2);
  testing::write_file(dir.file("a"), a);
  testing::write_file(dir.file("b"), b);
  for (IoEngine e : {IoEngine::kUring, IoEngine::kPread}) {
    ReadOptions o;
    o.engine = e;
    o.chunk_bytes = 4096;
    o.queue_depth = 4;
    std::vector<Bytes> shown(2);
    std::vector<uint64_t> offsets;
    o.on_chunk = [&](const Chunk& c) {
      offsets.push_back(c.offset);
      shown.at(c.file).insert(shown.at(c.file).end(), c.bytes.begin(), c.bytes.end());
    };
    auto r = open_chunk_reader({dir.file("a"), dir.file("b")}, o);
    ASSERT_TRUE(r.ok());
    Chunk c;
    Bytes got;
    for (int i = 0; i < 4; ++i) {
      ASSERT_TRUE((*r)->next(c).value());
      EXPECT_EQ(c.file, 0u);
      EXPECT_EQ(c.offset, static_cast<uint64_t>(i) * 4096);
      got.insert(got.end(), c.bytes.begin(), c.bytes.end());
    }
    EXPECT_EQ(got, a);
    EXPECT_EQ(shown[0], a);
    ASSERT_TRUE((*r)->next(c).value());
    EXPECT_EQ(c.file, 1u);
    (*r)->skip_rest_of_file(1);
    EXPECT_FALSE((*r)->next(c).value());
    EXPECT_EQ(shown[1], Bytes(b.begin(), b.begin() + 4096));  // the skipped chunk was not returned, so not shown
    EXPECT_EQ(offsets, (std::vector<uint64_t>{0, 4096, 8192, 12288, 0}));
  }
}

// chunk_bytes 0 reads 256 KiB at a time buffered and 1 MiB with O_DIRECT
// (or buffered where the filesystem refuses O_DIRECT: the size asked for
// stays), each chunk at a multiple of its size.
TEST(ChunkReader, TheDefaultChunkIsSmallBufferedAndLargeDirect) {
  TempDir dir;
  Bytes a = testing::test_payload(3 * (1 << 20) + 4096, 3);
  testing::write_file(dir.file("a"), a);
  for (bool direct : {false, true}) {
    ReadOptions o;
    o.direct = direct;
    o.notice = [](const std::string&) {};
    ASSERT_EQ(o.chunk_bytes, 0u);
    auto r = open_chunk_reader({dir.file("a")}, o);
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    const uint64_t want = direct ? 1 << 20 : 256 << 10;
    Chunk c;
    Bytes got;
    uint64_t chunks = 0;
    while ((*r)->next(c).value()) {
      EXPECT_EQ(c.offset, chunks * want);
      EXPECT_EQ(c.bytes.size(), std::min<uint64_t>(want, a.size() - c.offset)) << "direct " << direct;
      got.insert(got.end(), c.bytes.begin(), c.bytes.end());
      ++chunks;
    }
    EXPECT_EQ(got, a);
    EXPECT_EQ(chunks, (a.size() + want - 1) / want);
  }
}

// A chunk larger than every file costs buffers of the largest file's size
// (rounded up to 4096), not of the chunk: --chunk-kib 1048576 over 4 MiB
// segments held 16 GiB. Each file is then one chunk.
TEST(ChunkReader, BuffersAreNoLargerThanTheLargestFile) {
  TempDir dir;
  Bytes a = testing::test_payload(10000, 4), b = testing::test_payload(3000, 5);
  testing::write_file(dir.file("a"), a);
  testing::write_file(dir.file("b"), b);
  for (IoEngine e : {IoEngine::kUring, IoEngine::kPread}) {
    for (bool direct : {false, true}) {
      ReadOptions o;
      o.engine = e;
      o.direct = direct;
      o.chunk_bytes = 64u << 20;
      o.notice = [](const std::string&) {};
      auto r = open_chunk_reader({dir.file("a"), dir.file("b")}, o);
      ASSERT_TRUE(r.ok()) << r.status().to_string();
      EXPECT_EQ((*r)->buffer_bytes(), 12288u);
      Chunk c;
      ASSERT_TRUE((*r)->next(c).value());
      EXPECT_EQ(c.file, 0u);
      EXPECT_EQ(Bytes(c.bytes.begin(), c.bytes.end()), a);
      ASSERT_TRUE((*r)->next(c).value());
      EXPECT_EQ(c.file, 1u);
      EXPECT_EQ(Bytes(c.bytes.begin(), c.bytes.end()), b);
      EXPECT_FALSE((*r)->next(c).value());
    }
  }
  ReadOptions o;
  o.chunk_bytes = 4096;
  auto r = open_chunk_reader({dir.file("a")}, o);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)->buffer_bytes(), 4096u);
}

long minor_faults() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_minflt;
}

// Chunks a caller holds beyond the registered set are read into overflow
// buffers, kept for the next overflow: malloc gave freed ones back to the
// kernel, and the next ones faulted in page by page.
TEST(ChunkReader, OverflowBuffersAreReusedNotFaultedInAgain) {
  TempDir dir;
  const uint32_t kChunk = 256 << 10;
  Bytes a = testing::test_payload(40 * kChunk, 6);
  testing::write_file(dir.file("a"), a);
  for (IoEngine e : {IoEngine::kUring, IoEngine::kPread}) {
    ReadOptions o;
    o.engine = e;
    o.chunk_bytes = kChunk;
    o.queue_depth = 2;  // a set of 4 buffers
    o.notice = [](const std::string&) {};
    auto r = open_chunk_reader({dir.file("a")}, o);
    ASSERT_TRUE(r.ok());
    Bytes got;
    got.reserve(a.size());
    std::fill_n(std::back_inserter(got), a.size(), std::byte{0});  // its pages in now
    got.clear();
    long faults_after_first_round = 0;
    for (int round = 0; round < 4; ++round) {
      if (round == 1) faults_after_first_round = minor_faults();
      std::vector<Chunk> held(10);  // 6 beyond the set
      for (Chunk& c : held) {
        ASSERT_TRUE((*r)->next(c).value());
        got.insert(got.end(), c.bytes.begin(), c.bytes.end());
      }
    }
    const long faults = minor_faults() - faults_after_first_round;
    EXPECT_LT(faults, 3 * 64) << io_engine_name(e) << ": 3 rounds of 6 overflow buffers, 64 pages each";
    EXPECT_EQ(got, Bytes(a.begin(), a.begin() + static_cast<ptrdiff_t>(got.size())));
  }
}

// A buffered read is tried in the page cache first (RWF_NOWAIT, on the
// caller's thread) and goes through the ring for what the cache does not
// hold: a file evicted, and partly evicted again while it is read, comes out
// whole.
TEST(ChunkReader, BufferedReadsOfAFilePartlyOutOfThePageCacheComeOutWhole) {
  TempDir dir;
  const size_t chunk = 4096;
  Bytes a = testing::test_payload(40 * chunk + 123, 7);
  testing::write_file(dir.file("a"), a);
  // Clean pages can be dropped; the reads themselves start the kernel's
  // read-ahead, so what is cached changes as they go.
  auto evict = [&](off_t from, off_t bytes) {
    int fd = ::open(dir.file("a").c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::fdatasync(fd), 0);
    ::posix_fadvise(fd, from, bytes, POSIX_FADV_DONTNEED);
    ::close(fd);
  };
  for (uint32_t depth : {1u, 4u}) {
    evict(0, 0);  // all of it
    ReadOptions o;
    o.engine = IoEngine::kUring;
    o.chunk_bytes = chunk;
    o.queue_depth = depth;
    o.notice = [](const std::string&) {};
    auto r = open_chunk_reader({dir.file("a")}, o);
    ASSERT_TRUE(r.ok());
    Chunk c;
    Bytes got;
    uint64_t expect_offset = 0;
    while ((*r)->next(c).value()) {
      if (c.offset == 8 * chunk) evict(static_cast<off_t>(20 * chunk), static_cast<off_t>(10 * chunk));
      EXPECT_EQ(c.offset, expect_offset);
      expect_offset += c.bytes.size();
      got.insert(got.end(), c.bytes.begin(), c.bytes.end());
    }
    EXPECT_EQ(got, a) << "queue depth " << depth;
  }
}

TEST(ChunkReader, MissingFileAndBadOptionsAreNamed) {
  TempDir dir;
  auto r = open_chunk_reader({dir.file("nope.wal")}, {});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(dir.file("nope.wal")), std::string::npos);
  ReadOptions o;
  o.chunk_bytes = 1000;
  testing::write_file(dir.file("x"), testing::test_payload(10, 1));
  auto bad = open_chunk_reader({dir.file("x")}, o);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace walcut
