// Partition files: round trips, the hashes, and one test per way the bytes
// can be wrong. docs/partition-format.md is the specification.
#include "engine/partition_file.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <random>
#include <string>

#include "io/crc32c.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wal_fixture.h"

namespace walcut {
namespace {

using testing::read_file;
using testing::TempDir;
using testing::write_file;

// Offsets the tests need to damage a file on purpose (see the format page).
constexpr size_t kHeaderBytes = 24;
constexpr size_t kBlockHeaderBytes = 16;
constexpr size_t kFooterBytes = 40;

const PartitionFileInfo kInfo{7, 3, 2};

Version version_of(uint64_t order) { return Version{1, 2, order}; }

// `count` entries "key-000000", "key-000001", ... with values of
// `value_bytes` bytes derived from the index.
EntryMap numbered_entries(size_t count, size_t value_bytes) {
  EntryMap m;
  for (size_t i = 0; i < count; ++i) {
    char key[32];
    std::snprintf(key, sizeof key, "key-%06zu", i);
    std::string value(value_bytes, static_cast<char>('a' + i % 26));
    m[key] = StoredValue{value, version_of(i + 1)};
  }
  return m;
}

// A few small entries, one of about 64 KiB, and a few small ones again: three
// blocks in about 66 KB, small enough to damage at every byte.
EntryMap three_block_entries() {
  EntryMap m;
  m[""] = StoredValue{"empty key", version_of(1)};
  m["a"] = StoredValue{"", version_of(2)};
  m[std::string("b\0c", 3)] = StoredValue{std::string("\0\xff\0", 3), version_of(3)};
  m["big"] = StoredValue{std::string(65500, 'v'), version_of(4)};
  m["c"] = StoredValue{"cherry", version_of(5)};
  m["d"] = StoredValue{"date", version_of(6)};
  return m;
}

uint64_t footer_block_count(const Bytes& file) { return load_u64(&file[file.size() - kFooterBytes + 16]); }

// Writes `entries`, reads them back, and checks everything came back.
void expect_round_trip(const EntryMap& entries) {
  TempDir dir;
  std::string path = dir.file(partition_file_name(kInfo.partition));
  Status w = write_partition_file(path, kInfo, entries);
  ASSERT_TRUE(w.ok()) << w.to_string();
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  Result<PartitionFile> back = read_partition_file(path);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(back->info.group_id, kInfo.group_id);
  EXPECT_EQ(back->info.partition, kInfo.partition);
  EXPECT_EQ(back->info.node_index, kInfo.node_index);
  EXPECT_EQ(back->entries, entries);
  EXPECT_EQ(back->hashes, hash_entries(entries));
  EXPECT_EQ(back->hashes.entries, entries.size());
}

// Expects `path` to be refused as corrupt, with a message naming the file
// and an offset.
void expect_corrupt(const std::string& path, const std::string& context) {
  Result<PartitionFile> r = read_partition_file(path);
  ASSERT_FALSE(r.ok()) << context;
  EXPECT_EQ(r.status().code(), StatusCode::kCorruption) << context << ": " << r.status().to_string();
  EXPECT_NE(r.status().message().find(path), std::string::npos) << context << ": " << r.status().to_string();
  EXPECT_NE(r.status().message().find("offset"), std::string::npos) << context << ": " << r.status().to_string();
}

// The message of reading `path`, which must fail as corrupt.
std::string corruption_message(const std::string& path) {
  Result<PartitionFile> r = read_partition_file(path);
  if (r.ok()) return "read fine";
  EXPECT_EQ(r.status().code(), StatusCode::kCorruption) << r.status().to_string();
  return r.status().message();
}

// Builds files by hand, CRCs included, to make bytes the writer never would.
class FileBuilder {
 public:
  explicit FileBuilder(const PartitionFileInfo& info, uint32_t version = 1) {
    Encoder e(bytes_);
    e.u64(0x3154525054434c57ull);  // "WLCTPRT1"
    e.u32(version);
    e.u32(info.group_id);
    e.u16(info.partition);
    e.u16(info.node_index);
    uint32_t crc = crc32c(bytes_);
    e.u32(crc);
  }
  static void entry(Bytes& payload, const std::string& key, const StoredValue& v) {
    Encoder e(payload);
    e.u32(static_cast<uint32_t>(key.size()));
    e.u32(static_cast<uint32_t>(v.value.size()));
    e.u32(v.version.topology_version);
    e.u32(v.version.node_order);
    e.u64(v.version.order);
    e.bytes(as_bytes(key));
    e.bytes(as_bytes(v.value));
  }
  void block(const Bytes& payload, uint32_t entry_count) {
    Bytes header;
    Encoder e(header);
    e.u32(0x4b425057u);  // "WPBK"
    e.u32(0);
    e.u32(static_cast<uint32_t>(payload.size()));
    e.u32(entry_count);
    store_u32(&header[4], crc32c(payload, crc32c(ByteSpan(header).subspan(8))));
    append(header);
    append(payload);
    block_count_ += 1;
  }
  void block_of(const EntryMap& entries) {
    Bytes payload;
    for (const auto& [k, v] : entries) entry(payload, k, v);
    block(payload, static_cast<uint32_t>(entries.size()));
  }
  void footer(const PartitionHashes& h) { footer(h, block_count_); }
  void footer(const PartitionHashes& h, uint64_t block_count) {
    Bytes f;
    Encoder e(f);
    e.u32(0x54465057u);  // "WPFT"
    e.u32(0);
    e.u64(h.entries);
    e.u64(block_count);
    e.u64(h.key_value_hash);
    e.u64(h.version_hash);
    store_u32(&f[4], crc32c(ByteSpan(f).subspan(8)));
    append(f);
  }
  const Bytes& bytes() const { return bytes_; }

 private:
  void append(const Bytes& b) { bytes_.insert(bytes_.end(), b.begin(), b.end()); }
  Bytes bytes_;
  uint64_t block_count_ = 0;
};

TEST(PartitionFileName, IsDecimalWithoutPadding) {
  EXPECT_EQ(partition_file_name(0), "part-0.bin");
  EXPECT_EQ(partition_file_name(42), "part-42.bin");
  EXPECT_EQ(partition_file_name(65535), "part-65535.bin");
}

TEST(PartitionFileRoundTrip, EmptyPartition) {
  expect_round_trip({});
  TempDir dir;
  std::string path = dir.file("part-3.bin");
  ASSERT_TRUE(write_partition_file(path, kInfo, {}).ok());
  EXPECT_EQ(read_file(path).size(), kHeaderBytes + kFooterBytes);  // no blocks at all
}

TEST(PartitionFileRoundTrip, OneEntry) { expect_round_trip({{"key", StoredValue{"value", Version{3, 1, 99}}}}); }

TEST(PartitionFileRoundTrip, ManyEntriesSpanSeveralBlocks) {
  EntryMap entries = numbered_entries(3000, 100);
  entries["key-big"] = StoredValue{std::string(200 << 10, 'x'), version_of(7)};  // larger than a block
  expect_round_trip(entries);
  TempDir dir;
  std::string path = dir.file("part-3.bin");
  ASSERT_TRUE(write_partition_file(path, kInfo, entries).ok());
  EXPECT_GE(footer_block_count(read_file(path)), 6u);
}

TEST(PartitionFileRoundTrip, LargerThanOneWritePiece) {
  expect_round_trip(numbered_entries(5000, 500));  // about 2.6 MB, written in 1 MiB pieces
}

TEST(PartitionFileRoundTrip, EmptyValuesAndEmptyKey) {
  expect_round_trip({{"", StoredValue{"", Version{}}},
                     {"a", StoredValue{"", version_of(1)}},
                     {"b", StoredValue{"x", version_of(2)}}});
}

TEST(PartitionFileRoundTrip, BinaryKeysWithZeroBytes) {
  EntryMap entries;
  for (std::string key : {std::string("\0", 1), std::string("\0\0", 2), std::string("a\0b", 3), std::string("a\0c", 3),
                          std::string("\xff", 1), std::string("\x80\0", 2)}) {
    entries[key] = StoredValue{key + std::string("\0v", 2), version_of(key.size())};
  }
  expect_round_trip(entries);
}

TEST(PartitionFileRoundTrip, ThreeBlockFileHasThreeBlocks) {
  TempDir dir;
  std::string path = dir.file("part-1.bin");
  ASSERT_TRUE(write_partition_file(path, kInfo, three_block_entries()).ok());
  EXPECT_EQ(footer_block_count(read_file(path)), 3u);
  expect_round_trip(three_block_entries());
}

TEST(PartitionFileRoundTrip, WriterMatchesTheDocumentedLayout) {
  EntryMap entries = three_block_entries();
  FileBuilder b(kInfo);
  b.block_of({entries.begin(), entries.find("big")});
  b.block_of({entries.find("big"), entries.find("c")});
  b.block_of({entries.find("c"), entries.end()});
  b.footer(hash_entries(entries));
  TempDir dir;
  std::string path = dir.file("part-3.bin");
  ASSERT_TRUE(write_partition_file(path, kInfo, entries).ok());
  EXPECT_EQ(read_file(path), b.bytes());
}

// The worked example of docs/partition-format.md, byte for byte: if this
// fails, the format changed and the page must change with it.
TEST(PartitionFileFormat, MatchesTheWorkedExample) {
  EntryMap entries{{"apple", StoredValue{"red", Version{1, 1, 3}}}, {"fig", StoredValue{"", Version{1, 2, 7}}}};
  // clang-format off
  const std::string expected_hex =
      "574c435450525431" "01000000" "01000000" "0500" "0000" "54ab7365"                    // header
      "5750424b" "a1519bb6" "3b000000" "02000000"                                          // block header
      "05000000" "03000000" "01000000" "01000000" "0300000000000000" "6170706c65" "726564"  // apple
      "03000000" "00000000" "01000000" "02000000" "0700000000000000" "666967"               // fig
      "57504654" "916aa9dc" "0200000000000000" "0100000000000000"                          // footer
      "336e0d86a3151c23" "9952467d9fd1c0e4";
  // clang-format on
  Bytes expected;
  for (size_t i = 0; i < expected_hex.size(); i += 2) {
    expected.push_back(static_cast<std::byte>(std::stoi(expected_hex.substr(i, 2), nullptr, 16)));
  }
  TempDir dir;
  std::string path = dir.file(partition_file_name(5));
  ASSERT_TRUE(write_partition_file(path, PartitionFileInfo{1, 5, 0}, entries).ok());
  EXPECT_EQ(read_file(path), expected);
  EXPECT_EQ(hash_entries(entries), (PartitionHashes{2, 0x231c15a3860d6e33ull, 0xe4c0d19f7d465299ull}));
}

TEST(PartitionFileRoundTrip, RewriteReplacesTheFile) {
  TempDir dir;
  std::string path = dir.file("part-3.bin");
  ASSERT_TRUE(write_partition_file(path, kInfo, numbered_entries(100, 10)).ok());
  EntryMap second = numbered_entries(3, 1);
  ASSERT_TRUE(write_partition_file(path, kInfo, second).ok());
  Result<PartitionFile> back = read_partition_file(path);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(back->entries, second);
}

TEST(PartitionHashes, AreOrderIndependent) {
  EntryMap entries = numbered_entries(50, 7);
  PartitionHashes forward;
  for (auto it = entries.begin(); it != entries.end(); ++it) add_to_hashes(forward, it->first, it->second);
  PartitionHashes backward;
  for (auto it = entries.rbegin(); it != entries.rend(); ++it) add_to_hashes(backward, it->first, it->second);
  EXPECT_EQ(forward, backward);
  EXPECT_EQ(forward, hash_entries(entries));
  EXPECT_EQ(forward.entries, 50u);
}

TEST(PartitionHashes, SeparateValuesFromVersions) {
  EntryMap base{{"k", StoredValue{"v", version_of(1)}}};
  EntryMap new_value{{"k", StoredValue{"w", version_of(1)}}};
  EntryMap new_version{{"k", StoredValue{"v", version_of(2)}}};
  PartitionHashes h = hash_entries(base);
  EXPECT_NE(hash_entries(new_value).key_value_hash, h.key_value_hash);
  EXPECT_EQ(hash_entries(new_value).version_hash, h.version_hash);
  EXPECT_EQ(hash_entries(new_version).key_value_hash, h.key_value_hash);
  EXPECT_NE(hash_entries(new_version).version_hash, h.version_hash);
}

TEST(PartitionHashes, KeyLengthSeparatesKeyFromValue) {
  PartitionHashes ab_c = hash_entries({{"ab", StoredValue{"c", Version{}}}});
  PartitionHashes a_bc = hash_entries({{"a", StoredValue{"bc", Version{}}}});
  EXPECT_NE(ab_c.key_value_hash, a_bc.key_value_hash);
}

TEST(PartitionHashes, EmptyIsZero) { EXPECT_EQ(hash_entries({}), PartitionHashes{}); }

// ---- Damage: every byte, every length.

TEST(PartitionFileCorruption, EveryFlippedByteIsRefused) {
  TempDir dir;
  std::string path = dir.file("part-1.bin");
  ASSERT_TRUE(write_partition_file(path, kInfo, three_block_entries()).ok());
  const Bytes good = read_file(path);
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  // In place, one byte at a time: rewriting 66 KB per case would dominate.
  for (size_t i = 0; i < good.size(); ++i) {
    std::byte bad = good[i] ^ std::byte{0x20};
    ASSERT_EQ(::pwrite(fd, &bad, 1, static_cast<off_t>(i)), 1);
    expect_corrupt(path, "byte " + std::to_string(i));
    ASSERT_EQ(::pwrite(fd, &good[i], 1, static_cast<off_t>(i)), 1);
    if (HasFailure()) break;
  }
  ::close(fd);
  EXPECT_TRUE(read_partition_file(path).ok());
}

TEST(PartitionFileCorruption, TruncationAtEveryOffsetIsRefused) {
  TempDir dir;
  std::string path = dir.file("part-1.bin");
  ASSERT_TRUE(write_partition_file(path, kInfo, three_block_entries()).ok());
  const size_t size_bytes = read_file(path).size();
  // Shrinking in place, longest first: each case costs one truncate.
  for (size_t length = size_bytes; length-- > 0;) {
    ASSERT_EQ(::truncate(path.c_str(), static_cast<off_t>(length)), 0);
    expect_corrupt(path, "length " + std::to_string(length));
    if (HasFailure()) break;
  }
}

TEST(PartitionFileCorruption, ExtraByteAtTheEndIsRefused) {
  TempDir dir;
  std::string path = dir.file("part-1.bin");
  ASSERT_TRUE(write_partition_file(path, kInfo, three_block_entries()).ok());
  Bytes bytes = read_file(path);
  bytes.push_back(std::byte{0});
  write_file(path, bytes);
  std::string message = corruption_message(path);
  EXPECT_NE(message.find("1 bytes after the footer at offset " + std::to_string(bytes.size() - 1)), std::string::npos)
      << message;
}

// Lengths and counts from random bytes, under a valid CRC, so that the
// entry parser itself meets garbage.
TEST(PartitionFileCorruption, GarbageInsideAValidBlockIsRefused) {
  TempDir dir;
  std::string path = dir.file("part-1.bin");
  std::mt19937_64 rng(42);
  for (int round = 0; round < 2000; ++round) {
    Bytes payload(rng() % 200);
    for (std::byte& b : payload) b = static_cast<std::byte>(rng() % 4 == 0 ? rng() : rng() % 8);
    FileBuilder b(kInfo);
    b.block(payload, static_cast<uint32_t>(rng() % 6));
    b.footer({});
    write_file(path, b.bytes());
    expect_corrupt(path, "round " + std::to_string(round));
    if (HasFailure()) break;
  }
}

// ---- Damage: one named test per way.

TEST(PartitionFileCorruption, BadMagic) {
  TempDir dir;
  std::string path = dir.file("part-1.bin");
  write_file(path, as_bytes(std::string(64, 'x')));
  EXPECT_EQ(corruption_message(path), path + ": not a walcut partition file (bad magic) at offset 0");
}

TEST(PartitionFileCorruption, HeaderChecksumMismatch) {
  TempDir dir;
  std::string path = dir.file("part-1.bin");
  ASSERT_TRUE(write_partition_file(path, kInfo, {}).ok());
  Bytes bytes = read_file(path);
  bytes[12] ^= std::byte{1};  // group_id
  write_file(path, bytes);
  EXPECT_EQ(corruption_message(path), path + ": header checksum mismatch at offset 0");
}

TEST(PartitionFileCorruption, UnsupportedVersion) {
  TempDir dir;
  std::string path = dir.file("part-1.bin");
  FileBuilder b(kInfo, 2);
  b.footer({});
  write_file(path, b.bytes());
  EXPECT_EQ(corruption_message(path), path + ": unsupported format version 2 at offset 8");
}

TEST(PartitionFileCorruption, BlockChecksumMismatchNamesTheBlock) {
  TempDir dir;
  std::string path = dir.file("part-1.bin");
  ASSERT_TRUE(write_partition_file(path, kInfo, three_block_entries()).ok());
  Bytes bytes = read_file(path);
  size_t second_block = kHeaderBytes + kBlockHeaderBytes + load_u32(&bytes[kHeaderBytes + 8]);
  bytes[second_block + 1000] ^= std::byte{1};  // inside the big value
  write_file(path, bytes);
  EXPECT_EQ(corruption_message(path), path + ": block checksum mismatch at offset " + std::to_string(second_block));
}

TEST(PartitionFileCorruption, BlockRunsPastTheEnd) {
  TempDir dir;
  std::string path = dir.file("part-1.bin");
  ASSERT_TRUE(write_partition_file(path, kInfo, {{"k", StoredValue{"v", Version{}}}}).ok());
  Bytes bytes = read_file(path);
  store_u32(&bytes[kHeaderBytes + 8], 0xfffffff0u);  // payload_bytes
  write_file(path, bytes);
  EXPECT_EQ(corruption_message(path), path + ": block of 4294967280 bytes runs past the end of the file at offset 24");
}

TEST(PartitionFileCorruption, NeitherBlockNorFooter) {
  TempDir dir;
  std::string path = dir.file("part-1.bin");
  ASSERT_TRUE(write_partition_file(path, kInfo, {}).ok());
  Bytes bytes = read_file(path);
  bytes[kHeaderBytes] = std::byte{'X'};
  write_file(path, bytes);
  EXPECT_EQ(corruption_message(path), path + ": neither a block nor the footer at offset 24");
}

TEST(PartitionFileCorruption, MissingFooter) {
  TempDir dir;
  std::string path = dir.file("part-1.bin");
  FileBuilder b(kInfo);
  b.block_of({{"k", StoredValue{"v", Version{}}}});
  write_file(path, b.bytes());
  EXPECT_EQ(corruption_message(path),
            path + ": file ends before the footer at offset " + std::to_string(b.bytes().size()));
}

TEST(PartitionFileCorruption, KeysOutOfOrder) {
  TempDir dir;
  std::string path = dir.file("part-1.bin");
  Bytes payload;
  FileBuilder::entry(payload, "b", StoredValue{"1", Version{}});
  size_t second_entry = payload.size();
  FileBuilder::entry(payload, "a", StoredValue{"2", Version{}});
  FileBuilder b(kInfo);
  b.block(payload, 2);
  b.footer({});
  write_file(path, b.bytes());
  EXPECT_EQ(corruption_message(path), path + ": key not greater than the key before it at offset " +
                                          std::to_string(kHeaderBytes + kBlockHeaderBytes + second_entry));
}

TEST(PartitionFileCorruption, DuplicateKeyAcrossBlocks) {
  TempDir dir;
  std::string path = dir.file("part-1.bin");
  FileBuilder b(kInfo);
  b.block_of({{"k", StoredValue{"1", Version{}}}});
  size_t second_block = b.bytes().size();
  b.block_of({{"k", StoredValue{"2", Version{}}}});
  b.footer({});
  write_file(path, b.bytes());
  EXPECT_EQ(corruption_message(path), path + ": key not greater than the key before it at offset " +
                                          std::to_string(second_block + kBlockHeaderBytes));
}

TEST(PartitionFileCorruption, EntryRunsPastItsBlock) {
  TempDir dir;
  std::string path = dir.file("part-1.bin");
  Bytes payload;
  FileBuilder::entry(payload, "key", StoredValue{"value", Version{}});
  store_u32(&payload[4], 1000);  // value_bytes
  FileBuilder b(kInfo);
  b.block(payload, 1);
  b.footer({});
  write_file(path, b.bytes());
  EXPECT_EQ(corruption_message(path), path + ": entry runs past the end of its block at offset 40");
}

TEST(PartitionFileCorruption, FewerEntriesThanCounted) {
  TempDir dir;
  std::string path = dir.file("part-1.bin");
  Bytes payload;
  FileBuilder::entry(payload, "key", StoredValue{"value", Version{}});
  FileBuilder b(kInfo);
  b.block(payload, 2);
  b.footer({});
  write_file(path, b.bytes());
  EXPECT_EQ(corruption_message(path),
            path + ": entry runs past the end of its block at offset " + std::to_string(40 + payload.size()));
}

TEST(PartitionFileCorruption, StrayBytesAfterTheLastEntry) {
  TempDir dir;
  std::string path = dir.file("part-1.bin");
  Bytes payload;
  FileBuilder::entry(payload, "key", StoredValue{"value", Version{}});
  size_t entry_bytes = payload.size();
  payload.resize(payload.size() + 3);
  FileBuilder b(kInfo);
  b.block(payload, 1);
  b.footer(hash_entries({{"key", StoredValue{"value", Version{}}}}));
  write_file(path, b.bytes());
  EXPECT_EQ(corruption_message(path),
            path + ": 3 stray bytes after the last entry of a block at offset " + std::to_string(40 + entry_bytes));
}

TEST(PartitionFileCorruption, EmptyBlock) {
  TempDir dir;
  std::string path = dir.file("part-1.bin");
  FileBuilder b(kInfo);
  b.block({}, 0);
  b.footer({});
  write_file(path, b.bytes());
  EXPECT_EQ(corruption_message(path), path + ": block without entries at offset 24");
}

TEST(PartitionFileCorruption, FooterCountsDisagree) {
  EntryMap entries{{"k", StoredValue{"v", Version{}}}};
  TempDir dir;
  std::string path = dir.file("part-1.bin");
  {
    FileBuilder b(kInfo);
    b.block_of(entries);
    PartitionHashes h = hash_entries(entries);
    h.entries = 2;
    b.footer(h);
    write_file(path, b.bytes());
    EXPECT_EQ(corruption_message(path), path + ": entry count mismatch (footer 2, blocks 1) at offset " +
                                            std::to_string(b.bytes().size() - kFooterBytes));
  }
  {
    FileBuilder b(kInfo);
    b.block_of(entries);
    b.footer(hash_entries(entries), 2);
    write_file(path, b.bytes());
    EXPECT_EQ(corruption_message(path), path + ": block count mismatch (footer 2, file 1) at offset " +
                                            std::to_string(b.bytes().size() - kFooterBytes));
  }
}

TEST(PartitionFileCorruption, FooterHashDisagrees) {
  EntryMap entries{{"k", StoredValue{"v", Version{}}}};
  TempDir dir;
  std::string path = dir.file("part-1.bin");
  FileBuilder b(kInfo);
  b.block_of(entries);
  b.footer(hash_entries({{"k", StoredValue{"w", Version{}}}}));
  write_file(path, b.bytes());
  EXPECT_EQ(corruption_message(path),
            path + ": footer hash mismatch at offset " + std::to_string(b.bytes().size() - kFooterBytes));
}

TEST(PartitionFileCorruption, FooterChecksumMismatch) {
  TempDir dir;
  std::string path = dir.file("part-1.bin");
  ASSERT_TRUE(write_partition_file(path, kInfo, {}).ok());
  Bytes bytes = read_file(path);
  bytes[kHeaderBytes + 8] ^= std::byte{1};  // entry_count
  write_file(path, bytes);
  EXPECT_EQ(corruption_message(path), path + ": footer checksum mismatch at offset 24");
}

// ---- Files that are not there, or not finished.

TEST(PartitionFileIo, MissingFileIsAnErrorNamingIt) {
  TempDir dir;
  std::string path = dir.file("part-9.bin");
  Result<PartitionFile> r = read_partition_file(path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kIoError);
  EXPECT_NE(r.status().message().find(path), std::string::npos) << r.status().to_string();
}

TEST(PartitionFileIo, CrashLeftoverTempFileDoesNotDisturbTheFile) {
  TempDir dir;
  std::string path = dir.file("part-1.bin");
  EntryMap entries = numbered_entries(10, 5);
  ASSERT_TRUE(write_partition_file(path, kInfo, entries).ok());
  write_file(path + ".tmp", as_bytes(std::string("garbage from a crashed writer")));
  Result<PartitionFile> back = read_partition_file(path);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(back->entries, entries);
  // The next write truncates the leftover and publishes over it.
  EntryMap next = numbered_entries(20, 5);
  ASSERT_TRUE(write_partition_file(path, kInfo, next).ok());
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  back = read_partition_file(path);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(back->entries, next);
}

TEST(PartitionFileIo, WriteIntoMissingDirectoryFailsNamingTheFile) {
  TempDir dir;
  std::string path = dir.file("no-such-dir/part-1.bin");
  Status s = write_partition_file(path, kInfo, numbered_entries(3, 3));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kIoError);
  EXPECT_NE(s.message().find(path), std::string::npos) << s.to_string();
}

// Entries laid out as in a block (docs/partition-format.md), one after
// another in `bytes`, and the address of each.
struct EncodedEntries {
  Bytes bytes;
  std::vector<const std::byte*> at;
};
EncodedEntries encode_entries(const EntryMap& entries) {
  EncodedEntries out;
  std::vector<size_t> offsets;
  for (const auto& [key, value] : entries) {
    offsets.push_back(out.bytes.size());
    FileBuilder::entry(out.bytes, key, value);
  }
  for (size_t o : offsets) out.at.push_back(out.bytes.data() + o);
  return out;
}

// kCreate starts a file's writeback as it is closed, kCreateCached leaves
// it to the caller's sync: the same file either way, the path must be new,
// and the size and CRC32C reported are the file's. Entries given by their
// bytes make the file the entries written one by one make. The file is
// over 1 MiB: written in several pieces, the CRC32C reported spans them.
TEST(PartitionFileIo, BothWaysOfCreatingWriteTheSameFileAtANewPath) {
  TempDir dir;
  const EntryMap entries = numbered_entries(3000, 500);
  const EncodedEntries encoded = encode_entries(entries);
  std::vector<Bytes> files;
  for (PartitionWrite how : {PartitionWrite::kCreate, PartitionWrite::kCreateCached}) {
    const std::string path = dir.file("part-" + std::to_string(files.size()) + ".bin");
    PartitionFileWritten w;
    ASSERT_TRUE(write_partition_file_of(path, kInfo, encoded.at, how, &w).ok());
    files.push_back(read_file(path));
    EXPECT_EQ(w.bytes, files.back().size());
    EXPECT_EQ(w.crc32c, crc32c(files.back()));
    Result<PartitionFile> back = read_partition_file(path);
    ASSERT_TRUE(back.ok()) << back.status().to_string();
    EXPECT_EQ(back->entries, entries);
    EXPECT_EQ(back->hashes, hash_entries(entries));
    Status again = write_partition_file_of(path, kInfo, encoded.at, how, nullptr);
    EXPECT_FALSE(again.ok()) << "an existing file is never written over";
    EXPECT_EQ(read_file(path), files.back());
  }
  EXPECT_EQ(files[0], files[1]);
  const std::string one_by_one = dir.file("part-9.bin");
  ASSERT_TRUE(write_partition_file(one_by_one, kInfo, entries).ok());
  EXPECT_EQ(read_file(one_by_one), files[0]);
}

// Entries out of key order, or twice, are refused and leave no file.
TEST(PartitionFileIo, EntriesNotInIncreasingKeyOrderAreRefusedAndLeaveNoFile) {
  TempDir dir;
  const EncodedEntries encoded = encode_entries(numbered_entries(10, 8));
  for (int variant = 0; variant < 2; ++variant) {
    std::vector<const std::byte*> at = encoded.at;
    if (variant == 0) std::swap(at[3], at[7]);
    if (variant == 1) at[5] = at[4];
    const std::string path = dir.file("part-" + std::to_string(variant) + ".bin");
    Status s = write_partition_file_of(path, kInfo, at, PartitionWrite::kCreate, nullptr);
    ASSERT_FALSE(s.ok()) << "variant " << variant;
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find("increasing key order"), std::string::npos) << s.to_string();
    EXPECT_FALSE(std::filesystem::exists(path));
  }
}

TEST(PartitionFileIo, FailedRenameRemovesTheTempFile) {
  TempDir dir;
  std::string path = dir.file("part-1.bin");
  std::filesystem::create_directories(path + "/occupied");  // a non-empty directory cannot be renamed over
  Status s = write_partition_file(path, kInfo, numbered_entries(3, 3));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kIoError);
  EXPECT_NE(s.message().find(path), std::string::npos) << s.to_string();
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

}  // namespace
}  // namespace walcut
