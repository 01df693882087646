// The format's pieces on their own: checksum, headers, payloads, blocks.
#include <gtest/gtest.h>

#include <random>

#include "io/block.h"
#include "io/coding.h"
#include "io/crc32c.h"
#include "io/records.h"
#include "io/wal_format.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wal_fixture.h"

namespace walcut {
namespace {

using testing::ReadResult;
using testing::TempDir;

TEST(Crc32c, MatchesTheStandardCheckValue) {
  EXPECT_EQ(crc32c(as_bytes(std::string("123456789"))), 0xE3069283u);
  EXPECT_EQ(crc32c({}), 0u);
}

TEST(Crc32c, ContinuesAcrossPieces) {
  std::string s = "the quick brown fox jumps over the lazy dog";
  ByteSpan all = as_bytes(s);
  for (size_t cut = 0; cut <= s.size(); ++cut) {
    EXPECT_EQ(crc32c(all.subspan(cut), crc32c(all.first(cut))), crc32c(all)) << cut;
  }
}

TEST(SegmentHeader, RoundTripsAndRejectsEveryFlippedByte) {
  SegmentHeader h;
  h.cluster_id = 0x1122334455667788ull;
  h.node_index = 9;
  h.codec = Codec::kLz4;
  h.segment_index = 42;
  h.segment_bytes = 1 << 20;
  h.prev_segment_index = 41;
  h.prev_last_block_crc = 0xdeadbeef;
  std::byte bytes[kSegmentHeaderBytes];
  h.encode(bytes);
  Result<SegmentHeader> back = SegmentHeader::decode(bytes, "seg");
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(back->cluster_id, h.cluster_id);
  EXPECT_EQ(back->node_index, 9);
  EXPECT_EQ(back->codec, Codec::kLz4);
  EXPECT_EQ(back->segment_index, 42u);
  EXPECT_EQ(back->segment_bytes, 1u << 20);
  EXPECT_EQ(back->prev_segment_index, 41u);
  EXPECT_EQ(back->prev_last_block_crc, 0xdeadbeefu);
  for (size_t i = 0; i < kSegmentHeaderBytes; ++i) {
    std::byte copy[kSegmentHeaderBytes];
    std::memcpy(copy, bytes, sizeof copy);
    copy[i] ^= std::byte{0x01};
    Result<SegmentHeader> bad = SegmentHeader::decode(copy, "seg");
    ASSERT_FALSE(bad.ok()) << "byte " << i;
    EXPECT_EQ(bad.status().code(), StatusCode::kCorruption);
    EXPECT_NE(bad.status().message().find("seg"), std::string::npos);
  }
}

// compare_keys is std::string_view's order, on keys that share long
// prefixes, differ in one to three bytes anywhere (two or more within its
// last-8-bytes shortcut tell a little-endian comparison from its own), or
// are prefixes of each other: lengths of 0 to 19, around its 8- and
// 16-byte shortcuts.
TEST(CompareKeys, OrdersAsStringViewDoes) {
  std::mt19937_64 rng(11);
  const auto sign = [](int c) { return (c > 0) - (c < 0); };
  for (int round = 0; round < 200000; ++round) {
    std::string a(rng() % 20, '\0');
    for (char& c : a) c = static_cast<char>(rng() % 3 == 0 ? rng() : 'k');  // mostly equal bytes, some above 127
    std::string b = a;
    switch (rng() % 4) {
      case 0:  // one to three bytes differ
        for (int n = 1 + static_cast<int>(rng() % 3); n > 0 && !b.empty(); --n)
          b[rng() % b.size()] = static_cast<char>(rng());
        break;
      case 1: b.resize(rng() % 20, 'k'); break;  // a prefix, or longer
      case 2: b = std::string(rng() % 20, static_cast<char>(rng())); break;
      default: break;  // equal
    }
    const std::string_view x(a), y(b);
    ASSERT_EQ(compare_keys(x, y), sign(x.compare(y)))
        << ::testing::PrintToString(a) << " vs " << ::testing::PrintToString(b);
    ASSERT_EQ(compare_keys(y, x), sign(y.compare(x)));
  }
}

// An empty key given as a view with no pointer (std::string_view{}) is
// the empty key: equal to another, before any other (and no null pointer
// reaches memcmp: UBSan would stop the test).
TEST(CompareKeys, AnEmptyViewWithNoPointerIsTheEmptyKey) {
  EXPECT_EQ(compare_keys(std::string_view{}, std::string_view{}), 0);
  EXPECT_EQ(compare_keys(std::string_view{}, ""), 0);
  EXPECT_EQ(compare_keys(std::string_view{}, "a"), -1);
  EXPECT_EQ(compare_keys("a", std::string_view{}), 1);
}

TEST(SegmentFileName, IsSixteenDigitsAndParsesBack) {
  EXPECT_EQ(segment_file_name(42), "0000000000000042.wal");
  EXPECT_EQ(parse_segment_file_name("0000000000000042.wal"), 42u);
  EXPECT_FALSE(parse_segment_file_name("000000000000042.wal"));
  EXPECT_FALSE(parse_segment_file_name("0000000000000042.wal.tmp"));
  EXPECT_FALSE(parse_segment_file_name("00000000000000x2.wal"));
}

TEST(Version, OrdersLikeGridCacheVersion) {
  // Topology version first, then order, then node order.
  EXPECT_LT((Version{1, 9, 5}), (Version{2, 1, 1}));
  EXPECT_LT((Version{1, 9, 5}), (Version{1, 1, 6}));
  EXPECT_LT((Version{1, 1, 5}), (Version{1, 2, 5}));
  EXPECT_EQ((Version{3, 2, 1}).to_string(), "3.1.2");
}

// One payload of every record type, with every field set.
std::vector<RecordPayload> every_payload(const std::vector<Bytes>& keep) {
  DataRecord data;
  data.entries.push_back(DataEntry{5, 1023, EntryOp::kCreate, {1, 2, 3}, {1, 2, 4}, keep[0], keep[1]});
  data.entries.push_back(DataEntry{6, 0, EntryOp::kDelete, {1, 2, 5}, {}, keep[2], {}});
  TxRecord tx{TxState::kCommitted, {4, 3, 99}, 12, {{0, {1, 2}}, {3, {}}}};
  IncSnapshotFinishRecord finish{7, {{1, 1, 1}, {1, 2, 3}}, {{2, 2, 2}}};
  return {data,
          tx,
          CheckpointRecord{17},
          ClusterSnapshotRecord{"snap-2026"},
          IncSnapshotStartRecord{7},
          finish,
          SegmentEndRecord{}};
}

void expect_same(const RecordPayload& a, const RecordPayload& b) {
  ASSERT_EQ(a.index(), b.index());
  EXPECT_EQ(describe_payload(a), describe_payload(b));
  EXPECT_EQ(encode_payload(a), encode_payload(b));
}

TEST(Payload, EveryTypeRoundTrips) {
  std::vector<Bytes> keep{testing::test_payload(8, 1), testing::test_payload(300, 2), testing::test_payload(3, 3)};
  for (const RecordPayload& p : every_payload(keep)) {
    Bytes bytes = encode_payload(p);
    Result<RecordPayload> back = decode_payload(record_type_of(p), bytes);
    ASSERT_TRUE(back.ok()) << record_type_name(record_type_of(p)) << ": " << back.status().to_string();
    expect_same(p, back.value());
  }
}

TEST(Payload, TruncatedOrExtendedPayloadsAreCorruption) {
  std::vector<Bytes> keep{testing::test_payload(8, 1), testing::test_payload(30, 2), testing::test_payload(3, 3)};
  for (const RecordPayload& p : every_payload(keep)) {
    Bytes bytes = encode_payload(p);
    RecordType t = record_type_of(p);
    for (size_t n = 0; n < bytes.size(); ++n) {
      EXPECT_FALSE(decode_payload(t, ByteSpan(bytes).first(n)).ok()) << record_type_name(t) << " cut at " << n;
    }
    bytes.push_back(std::byte{0});
    EXPECT_FALSE(decode_payload(t, bytes).ok()) << record_type_name(t) << " with a trailing byte";
  }
}

TEST(Payload, RandomBytesNeverCrashTheDecoder) {
  std::mt19937_64 rng(42);
  for (int i = 0; i < 20000; ++i) {
    Bytes b(rng() % 64);
    for (auto& x : b) x = std::byte{static_cast<uint8_t>(rng() % 4 == 0 ? rng() : 0)};
    auto t = static_cast<RecordType>(1 + rng() % kRecordTypeMax);
    Result<RecordPayload> r = decode_payload(t, b);
    if (r.ok()) {  // what parses re-encodes to the same bytes
      EXPECT_EQ(encode_payload(r.value()), b);
    }
  }
}

TEST(Block, LargeIncompressibleBlockIsStoredUncompressed) {
  BlockBuilder b;
  std::mt19937_64 rng(1);
  Bytes noise(4000);
  for (auto& x : noise) x = std::byte{static_cast<uint8_t>(rng())};
  b.add(RecordType::kCheckpoint, noise);
  SealedBlock s = seal_block(b, Codec::kLz4);
  EXPECT_EQ(s.codec, Codec::kNone);
  EXPECT_EQ(s.stored.size(), s.raw_bytes);
}

TEST(Block, FramingThatDisagreesWithTheHeaderIsCorruption) {
  BlockBuilder b;
  b.add(RecordType::kCheckpoint, encode_payload(CheckpointRecord{1}));
  b.add(RecordType::kCheckpoint, encode_payload(CheckpointRecord{2}));
  BlockHeader h;
  h.raw_bytes = b.raw_bytes();
  h.record_count = 2;
  auto count = [&](const BlockHeader& hh, ByteSpan raw) {
    return for_each_record(hh, raw, [](const RecordView&) { return Status{}; });
  };
  EXPECT_TRUE(count(h, b.raw()).ok());
  h.record_count = 1;  // one record left over
  EXPECT_EQ(count(h, b.raw()).code(), StatusCode::kCorruption);
  h.record_count = 3;  // one record too many
  EXPECT_EQ(count(h, b.raw()).code(), StatusCode::kCorruption);
  h.record_count = 2;
  Bytes bad = b.raw();
  bad[0] = std::byte{99};  // unknown type
  EXPECT_EQ(count(h, bad).code(), StatusCode::kCorruption);
  bad = b.raw();
  store_u32(bad.data() + 4, 1000);  // length past the block
  EXPECT_EQ(count(h, bad).code(), StatusCode::kCorruption);
}

TEST(Block, Lz4PayloadClaimingMoreThanLz4CanExpandIsRefusedBeforeDecoding) {
  BlockBuilder b;
  b.add(RecordType::kCheckpoint, Bytes(4000, std::byte{'a'}));
  SealedBlock s = seal_block(b, Codec::kLz4);
  ASSERT_EQ(s.codec, Codec::kLz4);
  BlockHeader h;
  h.codec = Codec::kLz4;
  h.record_count = 1;
  h.raw_bytes = s.raw_bytes;
  Bytes scratch;
  ASSERT_TRUE(block_raw_payload(h, s.stored, scratch).ok());
  // A header claiming 64 MiB for a few stored bytes once had the decoder
  // allocate (and zero) all 64 MiB before LZ4 said no.
  h.raw_bytes = kBlockRawBytesMax;
  Bytes fresh;
  Result<ByteSpan> raw = block_raw_payload(h, ByteSpan(s.stored).first(10), fresh);
  EXPECT_EQ(raw.status().code(), StatusCode::kCorruption);
  EXPECT_LT(fresh.capacity(), size_t{1} << 20);
}

class RoundTrip : public ::testing::TestWithParam<Codec> {};

TEST_P(RoundTrip, EveryRecordTypeThroughWriterAndReader) {
  TempDir dir;
  WriterOptions o = testing::small_writer_options(dir.path());
  o.codec = GetParam();
  std::vector<Bytes> keep{testing::test_payload(8, 1), testing::test_payload(300, 2), testing::test_payload(3, 3)};
  std::vector<RecordPayload> payloads = every_payload(keep);
  payloads.pop_back();  // SEGMENT_END is the writer's own
  std::vector<WalPointer> pointers;
  {
    auto w = WalWriter::open(o);
    ASSERT_TRUE(w.ok()) << w.status().to_string();
    for (int round = 0; round < 3; ++round) {
      for (const RecordPayload& p : payloads) {
        Result<WalPointer> ptr = (*w)->append(p);
        ASSERT_TRUE(ptr.ok()) << ptr.status().to_string();
        pointers.push_back(ptr.value());
      }
      ASSERT_TRUE((*w)->rollover().ok());
    }
    ASSERT_TRUE((*w)->close().ok());
  }
  ReadResult r = testing::read_all(testing::segments_of(dir.path()), testing::strict_options());
  ASSERT_TRUE(r.status.ok()) << r.status.to_string();
  std::vector<testing::ReadRecord> kept;
  for (const auto& rec : r.records) {
    if (rec.type != RecordType::kSegmentEnd) kept.push_back(rec);
  }
  ASSERT_EQ(kept.size(), 3 * payloads.size());
  bool compressed = false;
  for (size_t i = 0; i < kept.size(); ++i) {
    const RecordPayload& want = payloads[i % payloads.size()];
    EXPECT_EQ(kept[i].type, record_type_of(want));
    EXPECT_EQ(kept[i].pointer, pointers[i]);
    Result<RecordPayload> got = decode_payload(kept[i].type, kept[i].payload);
    ASSERT_TRUE(got.ok());
    expect_same(want, got.value());
  }
  for (const auto& b : r.blocks) compressed = compressed || b.first.offset != b.file_offset + kBlockHeaderBytes;
  EXPECT_EQ(compressed, GetParam() == Codec::kLz4) << "logical offsets run ahead of file offsets only when compressed";
  EXPECT_FALSE(r.end.torn);
}

INSTANTIATE_TEST_SUITE_P(Codecs, RoundTrip, ::testing::Values(Codec::kNone, Codec::kLz4),
                         [](const auto& info) { return std::string(codec_name(info.param)); });

}  // namespace
}  // namespace walcut

namespace walcut {
namespace {

TEST(TxRecordFormat, PreparedCarriesItsWritesAndACopyIsFlaggedAgain) {
  Bytes writes;
  append_data_entry(writes, DataEntry{5, 7, EntryOp::kUpdate, {}, {1, 2, 3}, as_bytes("key"), as_bytes("value")});
  finish_data_payload(writes, 1);
  TxRecord prepared{TxState::kPrepared, {1, 2, 3}, 0, {{0, {1}}}, true, writes, true};
  Bytes bytes = encode_payload(prepared);
  EXPECT_EQ(static_cast<uint8_t>(bytes[0]), 0x80 | 0x40 | 1) << "state 1 with both flags";
  Result<RecordPayload> back = decode_payload(RecordType::kTx, bytes);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  const TxRecord& tx = std::get<TxRecord>(back.value());
  EXPECT_EQ(tx.state, TxState::kPrepared);
  EXPECT_TRUE(tx.has_writes);
  EXPECT_TRUE(tx.again);
  EXPECT_EQ(Bytes(tx.writes.begin(), tx.writes.end()), writes);
  EXPECT_EQ(describe_payload(back.value()), "PREPARED xid=1.3.2 cut=0 nodes=0->1 writes=1 again");
  // A record of before the flags: no writes.
  Bytes old = encode_payload(TxRecord{TxState::kPrepared, {1, 2, 3}, 0, {{0, {1}}}});
  EXPECT_EQ(old.size(), 33u);
  EXPECT_FALSE(std::get<TxRecord>(decode_payload(RecordType::kTx, old).value()).has_writes);
  // Writes that do not decode make the record corrupt.
  bytes.pop_back();
  Result<RecordPayload> cut_short = decode_payload(RecordType::kTx, bytes);
  ASSERT_FALSE(cut_short.ok());
  EXPECT_EQ(cut_short.status().code(), StatusCode::kCorruption);
}

}  // namespace
}  // namespace walcut
