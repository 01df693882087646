#include "io/wal_format.h"

#include <cstdio>

#include "io/crc32c.h"

namespace walcut {

std::string WalPointer::to_string() const {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%016llu:%010llu", static_cast<unsigned long long>(segment),
                static_cast<unsigned long long>(offset));
  return buf;
}

const char* codec_name(Codec c) {
  switch (c) {
    case Codec::kNone: return "none";
    case Codec::kLz4: return "lz4";
  }
  return "?";
}

std::optional<Codec> parse_codec(const std::string& name) {
  if (name == "none") return Codec::kNone;
  if (name == "lz4") return Codec::kLz4;
  return std::nullopt;
}

const char* record_type_name(RecordType t) {
  switch (t) {
    case RecordType::kData: return "DATA";
    case RecordType::kTx: return "TX";
    case RecordType::kCheckpoint: return "CHECKPOINT";
    case RecordType::kClusterSnapshot: return "CLUSTER_SNAPSHOT";
    case RecordType::kIncSnapshotStart: return "INC_SNAPSHOT_START";
    case RecordType::kIncSnapshotFinish: return "INC_SNAPSHOT_FINISH";
    case RecordType::kSegmentEnd: return "SEGMENT_END";
  }
  return "?";
}

std::optional<RecordType> parse_record_type(const std::string& name) {
  for (uint8_t t = 1; t <= kRecordTypeMax; ++t) {
    if (name == record_type_name(static_cast<RecordType>(t))) return static_cast<RecordType>(t);
  }
  return std::nullopt;
}

// Segment header layout (docs/wal-format.md):
//  0 u64 magic | 8 u32 version | 12 u16 node_index | 14 u8 codec | 15 u8 zero
// 16 u64 cluster_id | 24 u64 segment_index | 32 u64 segment_bytes
// 40 u64 prev_segment_index | 48 u32 prev_last_block_crc | 52 u32 zero
// 56 u32 zero | 60 u32 crc32c of bytes [0, 60)
void SegmentHeader::encode(std::byte* out) const {
  std::memset(out, 0, kSegmentHeaderBytes);
  store_u64(out + 0, kSegmentMagic);
  store_u32(out + 8, kFormatVersion);
  store_u16(out + 12, node_index);
  out[14] = std::byte{static_cast<uint8_t>(codec)};
  store_u64(out + 16, cluster_id);
  store_u64(out + 24, segment_index);
  store_u64(out + 32, segment_bytes);
  store_u64(out + 40, prev_segment_index);
  store_u32(out + 48, prev_last_block_crc);
  store_u32(out + 60, crc32c({out, 60}));
}

Result<SegmentHeader> SegmentHeader::decode(const std::byte* in, const std::string& what) {
  if (load_u64(in) != kSegmentMagic) return Status::corruption(what + ": not a walcut segment (bad magic at offset 0)");
  if (load_u32(in + 60) != crc32c({in, 60})) return Status::corruption(what + ": segment header checksum mismatch at offset 0");
  uint32_t version = load_u32(in + 8);
  if (version != kFormatVersion) {
    return Status::corruption(what + ": unsupported segment format version " + std::to_string(version));
  }
  SegmentHeader h;
  h.node_index = load_u16(in + 12);
  uint8_t codec = static_cast<uint8_t>(in[14]);
  if (codec > static_cast<uint8_t>(Codec::kLz4)) return Status::corruption(what + ": unknown codec in segment header");
  h.codec = static_cast<Codec>(codec);
  h.cluster_id = load_u64(in + 16);
  h.segment_index = load_u64(in + 24);
  h.segment_bytes = load_u64(in + 32);
  h.prev_segment_index = load_u64(in + 40);
  h.prev_last_block_crc = load_u32(in + 48);
  return h;
}

// Block header layout (docs/wal-format.md):
//  0 u32 magic | 4 u32 crc | 8 u32 stored_bytes | 12 u32 raw_bytes
// 16 u32 record_count | 20 u8 codec | 21 u8 zero | 22 u16 zero
// 24 u64 first.segment | 32 u64 first.offset | 40 u64 sync_start
void BlockHeader::encode(std::byte* out) const {
  std::memset(out, 0, kBlockHeaderBytes);
  store_u32(out + 0, kBlockMagic);
  store_u32(out + 4, crc);
  store_u32(out + 8, stored_bytes);
  store_u32(out + 12, raw_bytes);
  store_u32(out + 16, record_count);
  out[20] = std::byte{static_cast<uint8_t>(codec)};
  store_u64(out + 24, first.segment);
  store_u64(out + 32, first.offset);
  store_u64(out + 40, sync_start);
}

bool BlockHeader::parse(const std::byte* in, BlockHeader& h) {
  if (load_u32(in) != kBlockMagic) return false;
  h.crc = load_u32(in + 4);
  h.stored_bytes = load_u32(in + 8);
  h.raw_bytes = load_u32(in + 12);
  h.record_count = load_u32(in + 16);
  uint8_t codec = static_cast<uint8_t>(in[20]);
  h.first.segment = load_u64(in + 24);
  h.first.offset = load_u64(in + 32);
  h.sync_start = load_u64(in + 40);
  if (codec > static_cast<uint8_t>(Codec::kLz4)) return false;
  h.codec = static_cast<Codec>(codec);
  if (in[21] != std::byte{0} || load_u16(in + 22) != 0) return false;
  if (h.raw_bytes > kBlockRawBytesMax || h.record_count == 0) return false;
  if (h.codec == Codec::kNone && h.stored_bytes != h.raw_bytes) return false;
  if (h.record_count > h.raw_bytes / kRecordHeaderBytes) return false;
  return h.sync_start <= h.first.offset;
}

uint32_t block_crc(const std::byte* header, ByteSpan payload) {
  return crc32c(payload, crc32c({header + 8, kBlockHeaderBytes - 8}));
}

std::string segment_file_name(uint64_t index) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%016llu.wal", static_cast<unsigned long long>(index));
  return buf;
}

std::optional<uint64_t> parse_segment_file_name(const std::string& name) {
  if (name.size() != 20 || name.compare(16, 4, ".wal") != 0) return std::nullopt;
  uint64_t v = 0;
  for (size_t i = 0; i < 16; ++i) {
    if (name[i] < '0' || name[i] > '9') return std::nullopt;
    v = v * 10 + static_cast<uint64_t>(name[i] - '0');
  }
  return v;
}

}  // namespace walcut
