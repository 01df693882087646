// The group-commit writer: concurrency, rollover, limits, reopening.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <thread>

#include "io/block_reader.h"
#include "io/fault.h"
#include "io/wal_writer.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wal_fixture.h"

namespace walcut {
namespace {

using testing::ReadResult;
using testing::segments_of;
using testing::TempDir;

Bytes tagged(uint32_t thread, uint32_t seq, size_t bytes) {
  Bytes b = testing::test_payload(bytes, thread * 100000 + seq);
  store_u32(b.data(), thread);
  store_u32(b.data() + 4, seq);
  return b;
}

// A sync policy, and whether the writer fills blocks across groups.
class ConcurrentWriters : public ::testing::TestWithParam<std::pair<SyncPolicy, bool>> {};

// N threads append; every acknowledged record is read back exactly once, at
// the pointer it was acknowledged with, in each thread's own order.
TEST_P(ConcurrentWriters, EveryAcknowledgedRecordReadsBackOnceInThreadOrder) {
  TempDir dir;
  WriterOptions o = testing::small_writer_options(dir.path());
  o.sync = GetParam().first;
  o.fill_blocks = GetParam().second;
  o.sync_interval_ms = 1;
  o.codec = Codec::kLz4;
  constexpr uint32_t kThreads = 8, kPerThread = 300;
  std::vector<std::vector<WalPointer>> acked(kThreads);
  {
    auto w = WalWriter::open(o);
    ASSERT_TRUE(w.ok()) << w.status().to_string();
    std::vector<std::thread> threads;
    for (uint32_t t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (uint32_t i = 0; i < kPerThread; ++i) {
          Bytes p = tagged(t, i, 8 + (t * 31 + i * 7) % 700);
          if (i % 50 == 49 && t == 0) {
            ASSERT_TRUE((*w)->rollover().ok());
          }
          if (i % 3 == 0) {  // a batch of two contiguous records
            Bytes q = tagged(t, ++i, 16);
            RecordRef refs[] = {{RecordType::kData, p}, {RecordType::kTx, q}};
            auto ptrs = (*w)->append(refs);
            ASSERT_TRUE(ptrs.ok()) << ptrs.status().to_string();
            acked[t].push_back((*ptrs)[0]);
            acked[t].push_back((*ptrs)[1]);
          } else {
            auto ptr = (*w)->append(RecordType::kData, p);
            ASSERT_TRUE(ptr.ok()) << ptr.status().to_string();
            acked[t].push_back(ptr.value());
          }
        }
      });
    }
    for (auto& th : threads) th.join();
    ASSERT_TRUE((*w)->close().ok());
  }
  ReadResult r = testing::read_all(segments_of(dir.path()), testing::strict_options());
  ASSERT_TRUE(r.status.ok()) << r.status.to_string();
  std::vector<uint32_t> next(kThreads, 0);
  std::map<WalPointer, std::pair<uint32_t, uint32_t>> seen;
  WalPointer prev;
  for (const auto& rec : r.records) {
    EXPECT_LT(prev, rec.pointer);
    prev = rec.pointer;
    if (rec.type == RecordType::kSegmentEnd) continue;
    uint32_t t = load_u32(rec.payload.data()), i = load_u32(rec.payload.data() + 4);
    ASSERT_LT(t, kThreads);
    EXPECT_EQ(i, next[t]) << "thread " << t << " out of order";
    ASSERT_LT(i, acked[t].size());
    EXPECT_EQ(acked[t][i], rec.pointer) << "thread " << t << " record " << i;
    next[t] = i + 1;
  }
  for (uint32_t t = 0; t < kThreads; ++t) EXPECT_EQ(next[t], kPerThread) << "thread " << t;
  EXPECT_GT(segments_of(dir.path()).size(), 5u);
}

INSTANTIATE_TEST_SUITE_P(Policies, ConcurrentWriters,
                         ::testing::Values(std::pair{SyncPolicy::kNone, false}, std::pair{SyncPolicy::kEveryCommit, false},
                                           std::pair{SyncPolicy::kInterval, false}, std::pair{SyncPolicy::kNone, true},
                                           std::pair{SyncPolicy::kInterval, true}),
                         [](const auto& info) {
                           return std::string(sync_policy_name(info.param.first)) + (info.param.second ? "_filled" : "");
                         });

// The interval syncer out of memory: the writer is broken (the next append
// says so), the process goes on.
TEST(WalWriter, AnIntervalSyncOutOfMemoryBreaksTheWriterNotTheProcess) {
  TempDir dir;
  WriterOptions o = testing::small_writer_options(dir.path());
  o.sync = SyncPolicy::kInterval;
  o.sync_interval_ms = 1;
  auto w = WalWriter::open(o);
  ASSERT_TRUE(w.ok()) << w.status().to_string();
  fault::fail_allocation_at("wal.sync");
  Status s;
  for (int i = 0; i < 60000 && s.ok(); ++i) {  // until the syncer has run, at most a minute
    s = (*w)->append(RecordType::kData, testing::test_payload(300, i)).status();
    if (s.ok()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  fault::disarm();
  EXPECT_EQ(s.to_string(), "I/O error: out of memory");
  EXPECT_FALSE((*w)->close().ok());
}

// One thread appending alone, as `walcut gen`'s simulator does.
std::vector<WalPointer> append_alone(WalWriter& w, int count) {
  std::vector<WalPointer> acked;
  for (int i = 0; i < count; ++i) {
    Result<WalPointer> p = w.append(RecordType::kData, testing::test_payload(300, i));
    EXPECT_TRUE(p.ok());
    acked.push_back(p.value());
  }
  return acked;
}

TEST(WalWriter, FilledBlocksPackLoneAppendsUpToBlockBytes) {
  TempDir dir;
  WriterOptions o = testing::small_writer_options(dir.path());
  o.sync = SyncPolicy::kNone;
  o.fill_blocks = true;
  o.segment_bytes = 16 << 20;
  o.block_bytes = 64 << 10;
  std::vector<WalPointer> acked;
  {
    auto w = WalWriter::open(o);
    ASSERT_TRUE(w.ok());
    acked = append_alone(**w, 2000);
    ASSERT_TRUE((*w)->close().ok());
  }
  ReadResult r = testing::read_all(segments_of(dir.path()), testing::strict_options());
  ASSERT_TRUE(r.status.ok()) << r.status.to_string();
  ASSERT_EQ(r.records.size(), 2000u);
  for (size_t i = 0; i < acked.size(); ++i) ASSERT_EQ(r.records[i].pointer, acked[i]) << i;
  // 2000 records of 308 raw bytes in blocks of at most 64 KiB: 10 of them.
  EXPECT_EQ(r.blocks.size(), (2000u * 308 + (64 << 10) - 1) / (64 << 10));
}

TEST(WalWriter, AFilledBlockWaitsInMemoryUntilSyncWritesIt) {
  TempDir dir;
  WriterOptions o = testing::small_writer_options(dir.path());
  o.sync = SyncPolicy::kNone;
  o.fill_blocks = true;
  o.segment_bytes = 16 << 20;
  o.block_bytes = 64 << 10;
  auto w = WalWriter::open(o);
  ASSERT_TRUE(w.ok());
  std::vector<WalPointer> acked = append_alone(**w, 100);
  // What a crash of the process now would leave: nothing of the open block.
  EXPECT_EQ(testing::read_all(segments_of(dir.path())).records.size(), 0u);
  EXPECT_LT(acked.back(), (*w)->next_pointer());
  ASSERT_TRUE((*w)->sync().ok());
  ReadResult r = testing::read_all(segments_of(dir.path()));
  ASSERT_EQ(r.records.size(), 100u);
  EXPECT_EQ(r.records.back().pointer, acked.back());
  ASSERT_TRUE((*w)->close().ok());
}

TEST(WalWriter, WithoutFillBlocksEveryLoneAppendReachesTheFileAtOnce) {
  TempDir dir;
  WriterOptions o = testing::small_writer_options(dir.path());
  o.sync = SyncPolicy::kNone;
  o.segment_bytes = 16 << 20;
  auto w = WalWriter::open(o);
  ASSERT_TRUE(w.ok());
  append_alone(**w, 100);
  ReadResult r = testing::read_all(segments_of(dir.path()));
  EXPECT_EQ(r.records.size(), 100u) << "a crash of the process must not lose an acknowledged append";
  EXPECT_EQ(r.blocks.size(), 100u);
  ASSERT_TRUE((*w)->close().ok());
}

TEST(WalWriter, GroupCommitPacksQueuedRecordsIntoFewerBlocks) {
  TempDir dir;
  WriterOptions o = testing::small_writer_options(dir.path());
  o.segment_bytes = 16 << 20;
  o.block_bytes = 64 << 10;
  {
    auto w = WalWriter::open(o);
    ASSERT_TRUE(w.ok());
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
      threads.emplace_back([&] {
        for (int i = 0; i < 200; ++i) ASSERT_TRUE((*w)->append(RecordType::kData, testing::test_payload(32, i)).ok());
      });
    }
    for (auto& th : threads) th.join();
  }
  ReadResult r = testing::read_all(segments_of(dir.path()));
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(r.records.size(), 1600u);
  // One fdatasync per group: while a leader syncs, the others queue up.
  EXPECT_LT(r.blocks.size(), r.records.size()) << "no two records ever shared a group";
}

TEST(WalWriter, RolloverStartsALinkedSegment) {
  TempDir dir;
  auto w = WalWriter::open(testing::small_writer_options(dir.path()));
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->append(RecordType::kCheckpoint, testing::test_payload(8, 1)).ok());
  Result<WalPointer> next = (*w)->rollover();
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(next->segment, 1u);
  Result<WalPointer> p = (*w)->append(RecordType::kCheckpoint, testing::test_payload(8, 2));
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p.value(), next.value());
  ASSERT_TRUE((*w)->close().ok());
  ReadResult r = testing::read_all(segments_of(dir.path()), testing::strict_options());
  ASSERT_TRUE(r.status.ok()) << r.status.to_string();
  ASSERT_EQ(r.records.size(), 3u);
  EXPECT_EQ(r.records[1].type, RecordType::kSegmentEnd);
  EXPECT_EQ(std::filesystem::file_size(segments_of(dir.path())[0]), 64u << 10) << "segments are preallocated";
}

TEST(WalWriter, RecordsBiggerThanABlockGetTheirOwnAndTooBigAreRefused) {
  TempDir dir;
  auto w = WalWriter::open(testing::small_writer_options(dir.path()));  // 1 KiB blocks, 64 KiB segments
  ASSERT_TRUE(w.ok());
  Bytes big = testing::test_payload(5000, 1);
  ASSERT_TRUE((*w)->append(RecordType::kData, big).ok());
  Result<WalPointer> huge = (*w)->append(RecordType::kData, testing::test_payload(70000, 2));
  ASSERT_FALSE(huge.ok());
  EXPECT_EQ(huge.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(huge.status().message().find("70000-byte DATA record"), std::string::npos);
  Bytes segment_end;
  EXPECT_EQ((*w)->append(RecordType::kSegmentEnd, segment_end).status().code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE((*w)->close().ok());
  ReadResult r = testing::read_all(segments_of(dir.path()));
  ASSERT_EQ(r.records.size(), 1u);
  EXPECT_EQ(r.records[0].payload, big);
}

TEST(WalWriter, FillingASegmentRollsOver) {
  TempDir dir;
  auto w = WalWriter::open(testing::small_writer_options(dir.path()));
  ASSERT_TRUE(w.ok());
  for (int i = 0; i < 200; ++i) ASSERT_TRUE((*w)->append(RecordType::kData, testing::test_payload(1000, i)).ok());
  ASSERT_TRUE((*w)->close().ok());
  auto paths = segments_of(dir.path());
  EXPECT_GE(paths.size(), 4u);
  ReadResult r = testing::read_all(paths, testing::strict_options());
  ASSERT_TRUE(r.status.ok()) << r.status.to_string();
  EXPECT_EQ(r.records.size(), 200u + paths.size() - 1);
}

TEST(WalWriter, ReopenContinuesAfterTheLastRecord) {
  TempDir dir;
  WriterOptions o = testing::small_writer_options(dir.path());
  for (int round = 0; round < 3; ++round) {
    auto w = WalWriter::open(o);
    ASSERT_TRUE(w.ok()) << w.status().to_string();
    EXPECT_EQ((*w)->created(), round == 0);
    EXPECT_FALSE((*w)->open_end().torn);
    ASSERT_TRUE((*w)->append(RecordType::kCheckpoint, testing::test_payload(8, round)).ok());
  }
  ReadResult r = testing::read_all(segments_of(dir.path()), testing::strict_options());
  ASSERT_TRUE(r.status.ok()) << r.status.to_string();
  EXPECT_EQ(r.records.size(), 3u);
}

TEST(WalWriter, ReopenZeroesATornTailAndGoesOn) {
  TempDir dir;
  WriterOptions o = testing::small_writer_options(dir.path());
  {
    auto w = WalWriter::open(o);
    ASSERT_TRUE(w.ok());
    for (int i = 0; i < 5; ++i) ASSERT_TRUE((*w)->append(RecordType::kCheckpoint, testing::test_payload(30, i)).ok());
  }
  auto paths = segments_of(dir.path());
  ReadResult before = testing::read_all(paths);
  // A crash mid-write: the last block half there, garbage after it.
  Bytes b = testing::read_file(paths[0]);
  uint64_t last = before.blocks.back().file_offset;
  b[last + 20] ^= std::byte{0xff};
  b[before.end.file_offset + 100] = std::byte{0x33};
  b.resize(before.end.file_offset + 200);
  testing::write_file(paths[0], b);
  {
    auto w = WalWriter::open(o);
    ASSERT_TRUE(w.ok()) << w.status().to_string();
    EXPECT_TRUE((*w)->open_end().torn);
    EXPECT_EQ((*w)->open_end().file_offset, last);
    Result<WalPointer> p = (*w)->append(RecordType::kCheckpoint, testing::test_payload(30, 99));
    ASSERT_TRUE(p.ok());
    EXPECT_EQ(p->offset, last + kBlockHeaderBytes) << "the new record takes the torn block's place";
  }
  ReadResult after = testing::read_all(paths, testing::strict_options());
  ASSERT_TRUE(after.status.ok()) << after.status.to_string();
  ASSERT_EQ(after.records.size(), 5u);
  EXPECT_EQ(after.records[4].payload, testing::test_payload(30, 99));
  EXPECT_EQ(std::filesystem::file_size(paths[0]), o.segment_bytes) << "the truncated segment is full size again";
}

TEST(WalWriter, ReopenAfterACrashBetweenSegmentEndAndTheNextSegment) {
  TempDir dir;
  WriterOptions o = testing::small_writer_options(dir.path());
  {
    auto w = WalWriter::open(o);
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->append(RecordType::kCheckpoint, testing::test_payload(30, 1)).ok());
    ASSERT_TRUE((*w)->rollover().ok());
  }
  // The crash came before segment 1 was published: only its temp file exists.
  std::filesystem::rename(dir.file("0000000000000001.wal"), dir.file("0000000000000001.wal.tmp"));
  {
    auto w = WalWriter::open(o);
    ASSERT_TRUE(w.ok()) << w.status().to_string();
    EXPECT_TRUE((*w)->open_end().segment_end);
    Result<WalPointer> p = (*w)->append(RecordType::kCheckpoint, testing::test_payload(30, 2));
    ASSERT_TRUE(p.ok());
    EXPECT_EQ(p->segment, 1u);
  }
  EXPECT_FALSE(std::filesystem::exists(dir.file("0000000000000001.wal.tmp")));
  ReadResult r = testing::read_all(segments_of(dir.path()), testing::strict_options());
  ASSERT_TRUE(r.status.ok()) << r.status.to_string();
  EXPECT_EQ(r.records.size(), 3u);
}

// The durable end moves only when bytes are synced: a sync, a rollover
// (the closed segment was synced), close, or reopening.
TEST(WalWriter, DurableEndMovesOnlyWithSyncs) {
  TempDir dir;
  WriterOptions o = testing::small_writer_options(dir.path());
  o.sync = SyncPolicy::kNone;
  auto w = WalWriter::open(o);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ((*w)->durable_end(), (WalPointer{0, kSegmentHeaderBytes}));
  ASSERT_TRUE((*w)->append(RecordType::kCheckpoint, testing::test_payload(30, 1)).ok());
  EXPECT_EQ((*w)->durable_end(), (WalPointer{0, kSegmentHeaderBytes})) << "written, not synced";
  ASSERT_TRUE((*w)->sync().ok());
  const WalPointer end{0, (*w)->next_pointer().offset - kBlockHeaderBytes};
  EXPECT_EQ((*w)->durable_end(), end);
  ASSERT_TRUE((*w)->rollover().ok());
  EXPECT_EQ((*w)->durable_end(), (WalPointer{1, kSegmentHeaderBytes}));
  ASSERT_TRUE((*w)->append(RecordType::kCheckpoint, testing::test_payload(30, 2)).ok());
  const WalPointer last{1, (*w)->next_pointer().offset - kBlockHeaderBytes};
  EXPECT_LT((*w)->durable_end(), last);
  ASSERT_TRUE((*w)->close().ok());
  EXPECT_EQ((*w)->durable_end(), last);
  auto again = WalWriter::open(o);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->durable_end(), last) << "what open() finds is on disk";
  o.sync = SyncPolicy::kEveryCommit;
  (*again).reset();
  auto every = WalWriter::open(o);
  ASSERT_TRUE(every.ok());
  ASSERT_TRUE((*every)->append(RecordType::kCheckpoint, testing::test_payload(30, 3)).ok());
  EXPECT_EQ((*every)->durable_end(), (WalPointer{1, (*every)->next_pointer().offset - kBlockHeaderBytes}));
}

TEST(WalWriter, RefusesAWalOfAnotherNode) {
  TempDir dir;
  WriterOptions o = testing::small_writer_options(dir.path());
  {
    auto w = WalWriter::open(o);
    ASSERT_TRUE(w.ok());
  }
  o.node_index = 9;
  auto w = WalWriter::open(o);
  ASSERT_FALSE(w.ok());
  EXPECT_NE(w.status().message().find("expected cluster 7 node 9"), std::string::npos) << w.status().message();
}

TEST(WalWriter, RejectsBadOptions) {
  TempDir dir;
  WriterOptions o = testing::small_writer_options(dir.path());
  o.segment_bytes = 100000;
  EXPECT_EQ(WalWriter::open(o).status().code(), StatusCode::kInvalidArgument);
  o = testing::small_writer_options(dir.path());
  o.block_bytes = 0;
  EXPECT_EQ(WalWriter::open(o).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace walcut
