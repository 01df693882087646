// How the reader treats every way the bytes of a WAL can be wrong.
#include "io/block_reader.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "io/wal_writer.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wal_fixture.h"

namespace walcut {
namespace {

using testing::ReadResult;
using testing::segments_of;
using testing::TempDir;

const BlockReaderOptions kTolerant{};
const BlockReaderOptions kStrict = testing::strict_options();

// A WAL of `records` records, one commit (and one block) each, synced per
// commit; `roll_every` > 0 rolls the segment over after that many.
std::vector<std::string> write_wal(const std::string& dir, int records, int roll_every = 0,
                                   SyncPolicy sync = SyncPolicy::kEveryCommit, Codec codec = Codec::kNone) {
  WriterOptions o = testing::small_writer_options(dir);
  o.sync = sync;
  o.codec = codec;
  auto w = WalWriter::open(o);
  EXPECT_TRUE(w.ok()) << w.status().to_string();
  for (int i = 0; i < records; ++i) {
    EXPECT_TRUE((*w)->append(RecordType::kCheckpoint, testing::test_payload(40 + i % 5, i)).ok());
    if (roll_every > 0 && (i + 1) % roll_every == 0) {
      EXPECT_TRUE((*w)->rollover().ok());
    }
  }
  EXPECT_TRUE((*w)->close().ok());
  return segments_of(dir);
}

void flip(const std::string& path, uint64_t offset, uint8_t mask = 0x01) {
  Bytes b = testing::read_file(path);
  b[offset] ^= std::byte{mask};
  testing::write_file(path, b);
}

bool is_prefix(const std::vector<testing::ReadRecord>& a, const std::vector<testing::ReadRecord>& b) {
  return a.size() <= b.size() && std::equal(a.begin(), a.end(), b.begin());
}

TEST(BlockReader, CleanLogEndsCleanly) {
  TempDir dir;
  auto paths = write_wal(dir.path(), 20);
  ReadResult r = testing::read_all(paths, kStrict);
  ASSERT_TRUE(r.status.ok()) << r.status.to_string();
  EXPECT_EQ(r.records.size(), 20u);
  EXPECT_FALSE(r.end.torn);
  EXPECT_EQ(r.end.bytes_dropped, 0u);
  EXPECT_EQ(r.end.reason, "end of written data");
}

// Every byte of a one-segment WAL, flipped on its own: inside the header or
// a block it is always detected (the CRCs cover every byte there); past the
// last block it can only be reported as a torn tail, never change a record.
TEST(BlockReader, EverySingleByteChangeIsDetectedOrHarmless) {
  TempDir dir;
  auto paths = write_wal(dir.path(), 12);
  ASSERT_EQ(paths.size(), 1u);
  const Bytes original = testing::read_file(paths[0]);
  ReadResult clean = testing::read_all(paths);
  ASSERT_TRUE(clean.status.ok());
  const uint64_t last_block = clean.blocks.back().file_offset;
  const uint64_t end = clean.end.file_offset;
  ASSERT_GT(end, last_block);
  for (uint64_t off = 0; off < original.size(); off += off < end + 256 ? 1 : 997) {
    Bytes b = original;
    b[off] ^= std::byte{0x20};
    testing::write_file(paths[0], b);
    ReadResult t = testing::read_all(paths, kTolerant);
    ReadResult s = testing::read_all(paths, kStrict);
    ASSERT_FALSE(s.status.ok()) << "strict mode accepted a change at offset " << off;
    EXPECT_EQ(s.status.code(), StatusCode::kCorruption);
    if (off < kSegmentHeaderBytes) {
      EXPECT_FALSE(t.status.ok()) << "header byte " << off;
    } else if (off < last_block) {
      // A block followed by valid synced blocks: corruption in the middle.
      ASSERT_FALSE(t.status.ok()) << "offset " << off;
      EXPECT_NE(t.status.message().find(paths[0]), std::string::npos);
    } else if (off < end) {
      // The last block: a torn tail, every earlier record intact.
      ASSERT_TRUE(t.status.ok()) << "offset " << off << ": " << t.status.to_string();
      EXPECT_TRUE(t.end.torn);
      EXPECT_EQ(t.end.file_offset, last_block);
      EXPECT_EQ(t.records.size(), clean.records.size() - 1);
      EXPECT_TRUE(is_prefix(t.records, clean.records));
    } else {
      // Past the data: harmless to the records, reported as bytes dropped.
      ASSERT_TRUE(t.status.ok()) << "offset " << off;
      EXPECT_EQ(t.records, clean.records);
      EXPECT_TRUE(t.end.torn);
      EXPECT_EQ(t.end.file_offset, end);
      EXPECT_EQ(t.end.bytes_dropped, off - end + 1);
    }
  }
}

TEST(BlockReader, MiddleCorruptionNamesTheFileAndOffset) {
  TempDir dir;
  auto paths = write_wal(dir.path(), 10);
  ReadResult clean = testing::read_all(paths);
  const uint64_t third = clean.blocks[2].file_offset;
  flip(paths[0], third + kBlockHeaderBytes + 3);
  ReadResult r = testing::read_all(paths);
  ASSERT_FALSE(r.status.ok());
  EXPECT_EQ(r.status.code(), StatusCode::kCorruption);
  EXPECT_NE(r.status.message().find(paths[0] + " at offset " + std::to_string(third)), std::string::npos)
      << r.status.message();
  EXPECT_NE(r.status.message().find("checksum"), std::string::npos) << r.status.message();
  EXPECT_EQ(r.records.size(), 2u) << "the blocks before the damage are still delivered";
}

TEST(BlockReader, ZeroedBlockFollowedByValidOnesIsCorruption) {
  TempDir dir;
  auto paths = write_wal(dir.path(), 10);
  ReadResult clean = testing::read_all(paths);
  Bytes b = testing::read_file(paths[0]);
  std::fill(b.begin() + static_cast<long>(clean.blocks[4].file_offset),
            b.begin() + static_cast<long>(clean.blocks[5].file_offset), std::byte{0});
  testing::write_file(paths[0], b);
  ReadResult r = testing::read_all(paths);
  ASSERT_FALSE(r.status.ok());
  EXPECT_NE(r.status.message().find("at offset " + std::to_string(clean.blocks[4].file_offset)), std::string::npos);
}

TEST(BlockReader, TruncationAnywhereInTheLastBlockIsATornTail) {
  TempDir dir;
  auto paths = write_wal(dir.path(), 6);
  const Bytes original = testing::read_file(paths[0]);
  ReadResult clean = testing::read_all(paths);
  const uint64_t last_block = clean.blocks.back().file_offset;
  for (uint64_t size = last_block; size < clean.end.file_offset; ++size) {
    testing::write_file(paths[0], ByteSpan(original).first(size));
    ReadResult t = testing::read_all(paths, kTolerant);
    ASSERT_TRUE(t.status.ok()) << "size " << size << ": " << t.status.to_string();
    EXPECT_TRUE(t.end.torn) << size;
    EXPECT_EQ(t.end.file_offset, last_block);
    EXPECT_EQ(t.records.size(), clean.records.size() - 1);
    EXPECT_TRUE(is_prefix(t.records, clean.records));
    ReadResult s = testing::read_all(paths, kStrict);
    EXPECT_FALSE(s.status.ok()) << "strict mode accepted a truncated segment of " << size << " bytes";
  }
}

// A segment cut short while it is read: a read comes back short, the
// next finds nothing. The blocks before the cut are read, none after, no
// byte outside the reader's buffers (the view of a block across the gap
// indexed before its chunk), and strict mode refuses the segment.
TEST(BlockReader, ASegmentThatShrinksWhileItIsReadEndsAtTheCut) {
  TempDir dir;
  auto paths = write_wal(dir.path(), 300);
  ASSERT_EQ(paths.size(), 1u);
  const Bytes original = testing::read_file(paths[0]);
  ReadResult clean = testing::read_all(paths, kStrict);
  ASSERT_TRUE(clean.status.ok()) << clean.status.to_string();
  ASSERT_GT(clean.end.file_offset, 20000u);
  for (IoEngine engine : {IoEngine::kPread, IoEngine::kAuto}) {
    for (uint64_t cut : {uint64_t{10000}, uint64_t{12288}, uint64_t{16500}}) {
      testing::write_file(paths[0], original);
      BlockReaderOptions o = kStrict;
      o.io.engine = engine;
      o.io.chunk_bytes = 4096;
      o.io.queue_depth = 1;
      auto reader = BlockReader::open(paths, o);
      ASSERT_TRUE(reader.ok()) << reader.status().to_string();
      Block b;
      Result<bool> more = (*reader)->next(b);
      ASSERT_TRUE(more.ok() && more.value());
      std::filesystem::resize_file(paths[0], cut);
      uint64_t blocks = 1;
      while ((more = (*reader)->next(b)).ok() && more.value()) {
        EXPECT_EQ(b.file_offset, clean.blocks[blocks].file_offset);
        EXPECT_LE(b.file_offset + kBlockHeaderBytes + b.stored.size(), cut);
        ++blocks;
      }
      ASSERT_FALSE(more.ok()) << "cut at " << cut << ": strict mode read " << blocks << " blocks and ended cleanly";
      EXPECT_NE(more.status().message().find("shrank while it was read"), std::string::npos)
          << more.status().to_string();
      EXPECT_LT(blocks, clean.blocks.size());
    }
  }
}

TEST(BlockReader, BlockCopiedFromAnotherOffsetIsDetected) {
  TempDir dir;
  auto paths = write_wal(dir.path(), 10);
  ReadResult clean = testing::read_all(paths);
  // Records 40..44 bytes long: blocks 0 and 5 have the same size (i % 5).
  const auto& from = clean.blocks[0];
  const auto& to = clean.blocks[5];
  uint64_t len = clean.blocks[1].file_offset - from.file_offset;
  ASSERT_EQ(len, clean.blocks[6].file_offset - to.file_offset);
  Bytes b = testing::read_file(paths[0]);
  std::copy_n(b.begin() + static_cast<long>(from.file_offset), len, b.begin() + static_cast<long>(to.file_offset));
  testing::write_file(paths[0], b);
  ReadResult r = testing::read_all(paths);
  ASSERT_FALSE(r.status.ok());
  EXPECT_NE(r.status.message().find("at offset " + std::to_string(to.file_offset)), std::string::npos)
      << r.status.message();
  EXPECT_NE(r.status.message().find("claims pointer"), std::string::npos) << r.status.message();
}

TEST(BlockReader, BlockCopiedFromAnotherSegmentIsDetected) {
  TempDir dir;
  auto paths = write_wal(dir.path(), 10, 5);  // two segments of five blocks, same sizes
  ASSERT_GE(paths.size(), 2u);
  ReadResult clean = testing::read_all(paths);
  ASSERT_TRUE(clean.status.ok());
  Bytes a = testing::read_file(paths[0]);
  Bytes b = testing::read_file(paths[1]);
  // Block 1 of segment 1 over block 1 of segment 0: same offset, same size.
  uint64_t off = clean.blocks[1].file_offset;
  uint64_t len = clean.blocks[2].file_offset - off;
  std::copy_n(b.begin() + static_cast<long>(off), len, a.begin() + static_cast<long>(off));
  testing::write_file(paths[0], a);
  ReadResult r = testing::read_all(paths);
  ASSERT_FALSE(r.status.ok());
  EXPECT_NE(r.status.message().find(paths[0] + " at offset " + std::to_string(off)), std::string::npos)
      << r.status.message();
}

TEST(BlockReader, BytesAfterSegmentEndAreNeverRead) {
  TempDir dir;
  auto paths = write_wal(dir.path(), 6, 3);
  ReadResult clean = testing::read_all(paths, kStrict);
  ASSERT_TRUE(clean.status.ok()) << clean.status.to_string();
  uint64_t after = clean.blocks[3].file_offset + 200;  // past segment 0's SEGMENT_END block
  ASSERT_EQ(clean.blocks[3].file, 0u);
  ASSERT_EQ(clean.blocks[4].file, 1u);
  flip(paths[0], after, 0xff);
  ReadResult r = testing::read_all(paths, kStrict);
  ASSERT_TRUE(r.status.ok()) << r.status.to_string();
  EXPECT_EQ(r.records, clean.records);
}

TEST(BlockReader, MissingReorderedAndForeignSegmentsAreRefused) {
  TempDir dir;
  auto paths = write_wal(dir.path(), 8, 2);
  ASSERT_GE(paths.size(), 4u);
  ReadResult missing = testing::read_all({paths[0], paths[1], paths[3]});
  ASSERT_FALSE(missing.status.ok());
  EXPECT_NE(missing.status.message().find(paths[3] + ": segment 3 does not follow " + paths[1]), std::string::npos)
      << missing.status.message();
  ReadResult reordered = testing::read_all({paths[0], paths[2], paths[1]});
  ASSERT_FALSE(reordered.status.ok());
  EXPECT_NE(reordered.status.message().find("does not follow"), std::string::npos);

  TempDir other;
  WriterOptions o = testing::small_writer_options(other.path());
  o.node_index = 4;  // another node of the same cluster
  {
    auto w = WalWriter::open(o);
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->append(RecordType::kCheckpoint, testing::test_payload(8, 1)).ok());
  }
  auto foreign = segments_of(other.path());
  ReadResult r = testing::read_all({paths[0], foreign[0]});
  ASSERT_FALSE(r.status.ok());
  EXPECT_NE(r.status.message().find(foreign[0] + ": segment of cluster 7 node 4, expected cluster 7 node 3"),
            std::string::npos)
      << r.status.message();
  // A segment renamed to pose as another.
  std::filesystem::copy_file(paths[2], dir.file("0000000000000009.wal"));
  ReadResult renamed = testing::read_all({dir.file("0000000000000009.wal")});
  ASSERT_FALSE(renamed.status.ok());
  EXPECT_NE(renamed.status.message().find("file name says segment 9, header says 2"), std::string::npos);
}

TEST(BlockReader, SegmentWithoutSegmentEndFollowedByAnotherIsCorruption) {
  TempDir dir;
  auto paths = write_wal(dir.path(), 4, 2);
  ASSERT_GE(paths.size(), 2u);
  ReadResult clean = testing::read_all(paths);
  // Zero segment 0's SEGMENT_END block (its third block).
  ASSERT_EQ(clean.blocks[2].file, 0u);
  Bytes b = testing::read_file(paths[0]);
  std::fill(b.begin() + static_cast<long>(clean.blocks[2].file_offset),
            b.begin() + static_cast<long>(clean.blocks[2].file_offset + 64), std::byte{0});
  testing::write_file(paths[0], b);
  ReadResult r = testing::read_all(paths);
  ASSERT_FALSE(r.status.ok());
  EXPECT_NE(r.status.message().find(paths[1] + " follows, so this segment was closed"), std::string::npos)
      << r.status.message();
}

// Newest first (a replay reading a node's segments from the last): each
// segment's blocks front to back, the segments' links checked backward,
// the newest segment cut short where asked, and a segment other than the
// newest without its SEGMENT_END refused.
TEST(BlockReader, NewestFirstReadsEachSegmentWholeAndChecksTheLinksBackward) {
  TempDir dir;
  auto paths = write_wal(dir.path(), 12, 3);
  ASSERT_GE(paths.size(), 4u);
  BlockReaderOptions o = kStrict;
  o.newest_first = true;
  ReadResult forward = testing::read_all(paths, kStrict);
  ASSERT_TRUE(forward.status.ok()) << forward.status.to_string();
  const std::vector<std::string> newest_first(paths.rbegin(), paths.rend());
  ReadResult r = testing::read_all(newest_first, o);
  ASSERT_TRUE(r.status.ok()) << r.status.to_string();
  std::vector<testing::ReadBlock> want;  // forward's blocks, segment by segment from the last
  for (size_t f = paths.size(); f-- > 0;) {
    for (testing::ReadBlock b : forward.blocks) {
      if (b.file != f) continue;
      b.file = static_cast<uint32_t>(paths.size() - 1 - f);
      want.push_back(b);
    }
  }
  EXPECT_EQ(r.blocks, want);
  EXPECT_EQ(r.records.size(), forward.records.size());

  // The newest segment ends where asked: past its first block.
  o.newest_end = want[0].file_offset + 1;
  ReadResult cut = testing::read_all(newest_first, o);
  ASSERT_TRUE(cut.status.ok()) << cut.status.to_string();
  ASSERT_GE(cut.blocks.size(), 2u);
  EXPECT_EQ(cut.blocks[0], want[0]);
  EXPECT_EQ(cut.blocks[1].file, 1u) << "the next block read is the next segment's";
  o.newest_end = 0;

  // A missing or reordered segment: the link of the one read before it.
  ReadResult missing = testing::read_all({paths[3], paths[1], paths[0]}, o);
  ASSERT_FALSE(missing.status.ok());
  EXPECT_NE(missing.status.message().find(paths[3] + ": segment 3 does not follow " + paths[1]), std::string::npos)
      << missing.status.message();
  ReadResult reordered = testing::read_all({paths[2], paths[0], paths[1]}, o);
  ASSERT_FALSE(reordered.status.ok());
  EXPECT_NE(reordered.status.message().find("does not follow"), std::string::npos) << reordered.status.message();

  // An older segment without its SEGMENT_END: a newer one was read, so it was closed.
  Bytes b = testing::read_file(paths[1]);
  const testing::ReadBlock& end = *std::find_if(forward.blocks.rbegin(), forward.blocks.rend(),
                                                [](const testing::ReadBlock& x) { return x.file == 1; });
  std::fill(b.begin() + static_cast<long>(end.file_offset), b.begin() + static_cast<long>(end.file_offset + 64),
            std::byte{0});
  testing::write_file(paths[1], b);
  ReadResult unclosed = testing::read_all(newest_first, o);
  ASSERT_FALSE(unclosed.status.ok());
  EXPECT_NE(unclosed.status.message().find(paths[2] + " follows, so this segment was closed"), std::string::npos)
      << unclosed.status.message();
}

// Without a sync between them, blocks after a damaged one were never
// acknowledged as durable: a crash may persist them out of order, so the
// damage is a torn tail, not corruption.
TEST(BlockReader, DamageInsideOneUnsyncedRunIsATornTail) {
  TempDir dir;
  auto paths = write_wal(dir.path(), 10, 0, SyncPolicy::kNone);
  ReadResult clean = testing::read_all(paths);
  flip(paths[0], clean.blocks[6].file_offset + kBlockHeaderBytes + 1);
  ReadResult r = testing::read_all(paths);
  ASSERT_TRUE(r.status.ok()) << r.status.to_string();
  EXPECT_TRUE(r.end.torn);
  EXPECT_EQ(r.end.file_offset, clean.blocks[6].file_offset);
  EXPECT_EQ(r.records.size(), 6u);
  EXPECT_EQ(r.end.bytes_dropped, clean.end.file_offset - clean.blocks[6].file_offset);
  EXPECT_FALSE(testing::read_all(paths, kStrict).status.ok());
}

// With the writer's durable end recorded (node.meta keeps it), damage before
// that point hit synced bytes: corruption, even under the `none` policy whose
// blocks all carry sync_start 64.
BlockReaderOptions tolerant_until(const WalPointer& durable_end) {
  BlockReaderOptions o;
  o.durable_end = durable_end;
  return o;
}

// A WAL of `records` one-block commits under the `none` policy, synced only
// at close; returns the writer's durable end after close.
WalPointer write_closed_wal(const std::string& dir, int records, int roll_every = 0) {
  WriterOptions o = testing::small_writer_options(dir);
  o.sync = SyncPolicy::kNone;
  auto w = WalWriter::open(o);
  EXPECT_TRUE(w.ok()) << w.status().to_string();
  for (int i = 0; i < records; ++i) {
    EXPECT_TRUE((*w)->append(RecordType::kCheckpoint, testing::test_payload(40 + i % 5, i)).ok());
    if (roll_every > 0 && (i + 1) % roll_every == 0) {
      EXPECT_TRUE((*w)->rollover().ok());
    }
  }
  EXPECT_TRUE((*w)->close().ok());
  return (*w)->durable_end();
}

TEST(BlockReader, DamageBeforeTheDurableEndIsCorruption) {
  TempDir dir;
  const WalPointer durable = write_closed_wal(dir.path(), 10);
  auto paths = segments_of(dir.path());
  ReadResult clean = testing::read_all(paths);
  EXPECT_EQ(durable, (WalPointer{0, clean.end.next.offset - kBlockHeaderBytes})) << "close synced everything";
  flip(paths[0], clean.blocks[6].file_offset + kBlockHeaderBytes + 1);
  ASSERT_TRUE(testing::read_all(paths).status.ok()) << "without the durable end it reads as a torn tail";
  for (const BlockReaderOptions& o : {tolerant_until(durable), [&] {
         BlockReaderOptions s = kStrict;
         s.durable_end = durable;
         return s;
       }()}) {
    ReadResult r = testing::read_all(paths, o);
    ASSERT_FALSE(r.status.ok());
    EXPECT_EQ(r.status.code(), StatusCode::kCorruption);
    EXPECT_NE(r.status.message().find(paths[0] + " at offset " + std::to_string(clean.blocks[6].file_offset)),
              std::string::npos)
        << r.status.message();
    EXPECT_NE(r.status.message().find("before " + durable.to_string()), std::string::npos) << r.status.message();
    EXPECT_EQ(r.records.size(), 6u) << "the blocks before the damage are still delivered";
  }
}

// A durable end older than the real one (node.meta written before the last
// syncs) only ever makes the reader less strict, never wrong.
TEST(BlockReader, DamageAtOrAfterTheDurableEndIsATornTail) {
  TempDir dir;
  write_closed_wal(dir.path(), 10);
  auto paths = segments_of(dir.path());
  ReadResult clean = testing::read_all(paths);
  const WalPointer at_block_6{0, clean.blocks[6].first.offset - kBlockHeaderBytes};
  flip(paths[0], clean.blocks[6].file_offset + kBlockHeaderBytes + 1);
  ReadResult r = testing::read_all(paths, tolerant_until(at_block_6));
  ASSERT_TRUE(r.status.ok()) << r.status.to_string();
  EXPECT_TRUE(r.end.torn);
  EXPECT_EQ(r.records.size(), 6u);
  const WalPointer inside_block_6{0, at_block_6.offset + 1};
  EXPECT_EQ(testing::read_all(paths, tolerant_until(inside_block_6)).status.code(), StatusCode::kCorruption);
}

// Synced bytes that are gone are lost committed data too: a segment cut
// short, zeroed, or missing before the durable end is corruption.
TEST(BlockReader, LogEndingBeforeTheDurableEndIsCorruption) {
  TempDir dir;
  const WalPointer durable = write_closed_wal(dir.path(), 9, 4);
  auto paths = segments_of(dir.path());
  ASSERT_EQ(paths.size(), 3u);
  ASSERT_EQ(durable.segment, 2u);
  ReadResult clean = testing::read_all(paths, tolerant_until(durable));
  ASSERT_TRUE(clean.status.ok()) << clean.status.to_string();
  const Bytes original = testing::read_file(paths[2]);
  const uint64_t last = clean.blocks.back().file_offset;

  testing::write_file(paths[2], ByteSpan(original).first(last + 10));
  EXPECT_TRUE(testing::read_all(paths).status.ok()) << "without the durable end: a torn tail";
  ReadResult cut = testing::read_all(paths, tolerant_until(durable));
  EXPECT_EQ(cut.status.code(), StatusCode::kCorruption);
  EXPECT_NE(cut.status.message().find(paths[2] + " at offset " + std::to_string(last)), std::string::npos)
      << cut.status.message();

  Bytes zeroed = original;
  std::fill(zeroed.begin() + static_cast<long>(last), zeroed.end(), std::byte{0});
  testing::write_file(paths[2], zeroed);
  EXPECT_EQ(testing::read_all(paths, tolerant_until(durable)).status.code(), StatusCode::kCorruption);

  std::filesystem::remove(paths[2]);
  paths.pop_back();
  ReadResult missing = testing::read_all(paths, tolerant_until(durable));
  EXPECT_EQ(missing.status.code(), StatusCode::kCorruption);
  EXPECT_NE(missing.status.message().find("segment 2 is missing"), std::string::npos) << missing.status.message();
  EXPECT_TRUE(testing::read_all(paths, tolerant_until(WalPointer{2, kSegmentHeaderBytes})).status.ok())
      << "an empty next segment that never appeared loses nothing";
}

TEST(BlockReader, CompressedBlocksValidateLikePlainOnes) {
  TempDir dir;
  auto paths = write_wal(dir.path(), 10, 0, SyncPolicy::kEveryCommit, Codec::kLz4);
  ReadResult clean = testing::read_all(paths, kStrict);
  ASSERT_TRUE(clean.status.ok());
  flip(paths[0], clean.blocks[3].file_offset + kBlockHeaderBytes + 2);
  ReadResult r = testing::read_all(paths);
  ASSERT_FALSE(r.status.ok());
  EXPECT_NE(r.status.message().find("at offset " + std::to_string(clean.blocks[3].file_offset)), std::string::npos);
}

}  // namespace
}  // namespace walcut
