// The WAL segment format: constants and the two fixed headers.
// docs/wal-format.md is the specification; this file is the one place in the
// code that knows the byte layout of segment and block headers.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <string>

#include "io/coding.h"
#include "io/status.h"

namespace walcut {

// Where a record sits in one node's WAL: the segment index and the record's
// logical byte offset in that segment. The logical offset counts the
// uncompressed stream (segment header, then each block's header and raw
// payload), so it equals the file offset when no block is compressed.
// Pointers of one node are totally ordered.
struct WalPointer {
  uint64_t segment = 0;
  uint64_t offset = 0;
  auto operator<=>(const WalPointer&) const = default;
  std::string to_string() const;  // "0000000000000042:0000001234"
};

enum class Codec : uint8_t { kNone = 0, kLz4 = 1 };
const char* codec_name(Codec c);
std::optional<Codec> parse_codec(const std::string& name);

enum class RecordType : uint8_t {
  kData = 1,               // a batch of entries
  kTx = 2,                 // a transaction state change
  kCheckpoint = 3,         // a checkpoint finished
  kClusterSnapshot = 4,    // a full snapshot was taken here
  kIncSnapshotStart = 5,   // the local start of a consistent cut
  kIncSnapshotFinish = 6,  // the end of a cut, with its included/excluded sets
  kSegmentEnd = 7,         // the writer closed this segment; the next one follows
};
constexpr uint8_t kRecordTypeMax = 7;
const char* record_type_name(RecordType t);  // "DATA", "TX", ...
std::optional<RecordType> parse_record_type(const std::string& name);

inline constexpr uint64_t kSegmentMagic = 0x31474553'54434c57ull;  // "WLCTSEG1"
inline constexpr uint32_t kFormatVersion = 1;
inline constexpr size_t kSegmentHeaderBytes = 64;
inline constexpr uint32_t kBlockMagic = 0x4b424357u;  // "WCBK"
inline constexpr size_t kBlockHeaderBytes = 48;
inline constexpr size_t kRecordHeaderBytes = 8;
// A block's raw payload may not exceed this, whatever the writer's limit.
inline constexpr uint32_t kBlockRawBytesMax = 64u << 20;
// Segment files are multiples of this, so O_DIRECT reads cover them exactly.
inline constexpr uint64_t kSegmentAlignBytes = 4096;

// The segment file header (64 bytes at offset 0).
struct SegmentHeader {
  uint64_t cluster_id = 0;
  uint16_t node_index = 0;
  Codec codec = Codec::kNone;      // the writer's codec; each block names its own
  uint64_t segment_index = 0;
  uint64_t segment_bytes = 0;      // the preallocated file size
  // The link to the predecessor: its index and the CRC32C of its last block
  // (the block holding its SEGMENT_END record). kNoPrevious for a first segment.
  uint64_t prev_segment_index = 0;
  uint32_t prev_last_block_crc = 0;
  static constexpr uint64_t kNoPrevious = ~0ull;

  void encode(std::byte* out) const;  // kSegmentHeaderBytes
  // Checks magic, version, CRC and field ranges; `what` names the file.
  static Result<SegmentHeader> decode(const std::byte* in, const std::string& what);
};

// A block header (48 bytes), followed by `stored_bytes` of payload.
struct BlockHeader {
  uint32_t crc = 0;             // CRC32C over header bytes [8, 48) and the stored payload
  uint32_t stored_bytes = 0;    // payload bytes on disk
  uint32_t raw_bytes = 0;       // payload bytes after decompression
  uint32_t record_count = 0;
  Codec codec = Codec::kNone;
  WalPointer first;             // pointer of the block's first record
  // Logical offset in this segment from which the writer had not yet synced
  // when it wrote this block: every byte before it was durable. Tells a torn
  // tail (damage inside the last unsynced run) from corruption of synced data.
  uint64_t sync_start = 0;

  // The logical offset just past this block's records.
  uint64_t end_offset() const { return first.offset + raw_bytes; }
  // Encodes the header; the CRC field is written as given.
  void encode(std::byte* out) const;
  // Parses the 48 bytes without checking the CRC. Returns false when the
  // magic or a field is out of range, so the bytes cannot start a block.
  static bool parse(const std::byte* in, BlockHeader& out);
};

// CRC32C of a block: header bytes [8, 48) then the stored payload.
uint32_t block_crc(const std::byte* header, ByteSpan payload);

// The file name of segment `index`: 16 decimal digits and ".wal".
std::string segment_file_name(uint64_t index);
// Parses a segment file name; nullopt for any other name.
std::optional<uint64_t> parse_segment_file_name(const std::string& name);

}  // namespace walcut
