// BlockReader: the validated blocks of an ordered list of segment files, in
// WAL order. The one place that decides where a log ends and whether damage
// is a torn tail or corruption in the middle (docs/wal-format.md, "Reading").
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/chunk_reader.h"
#include "io/status.h"
#include "io/wal_format.h"

namespace walcut {

class OpenedFile;  // io/file_util.h

enum class TailMode {
  // A node's own WAL after a crash: damage with nothing valid after it (or
  // only blocks of the same unsynced run) ends the log and is reported.
  kTolerateTornTail,
  // Snapshot segments: any damaged byte is an error.
  kStrict,
};

struct BlockReaderOptions {
  ReadOptions io;
  TailMode mode = TailMode::kTolerateTornTail;
  // The identity every segment must carry; by default the first segment's.
  std::optional<uint64_t> cluster_id;
  std::optional<uint16_t> node_index;
  // Every byte before this point (segment, logical offset) is known to be
  // durable (node.meta records it): a log damaged or ending before it is
  // corruption, in either mode. {}: nothing known.
  WalPointer durable_end;
  // The files are given newest segment first (a replay reading a node's
  // segments from the last to the first, each front to back): a segment's
  // link to the one before it is checked against the segment read before
  // it once its SEGMENT_END is read, and every segment but the newest must
  // end with SEGMENT_END.
  bool newest_first = false;
  // Where the newest segment's blocks end (the last file's, or the first's
  // newest first), as if the segment ended there: a replay reads nothing
  // past the block holding its FINISH. 0: at the segment's end.
  uint64_t newest_end = 0;
};

// A validated block: its CRC matched and its pointer is the one expected.
struct Block {
  BlockHeader header;
  uint32_t file = 0;         // index in the list given to open()
  uint64_t file_offset = 0;  // physical offset of the block header
  ByteSpan stored;           // the payload as stored (compressed for kLz4)
  std::shared_ptr<const void> owner;  // keeps `stored` alive
  bool is_segment_end() const;        // the block holding SEGMENT_END
  // Whether the record at `p` is among this block's.
  bool holds(WalPointer p) const {
    return header.first.segment == p.segment && header.first.offset <= p.offset && p.offset < header.end_offset();
  }
};

// How the log ended, once next() has returned false.
struct LogEnd {
  bool torn = false;           // damaged or partial bytes were dropped
  uint32_t file = 0;           // the segment the log ends in
  uint64_t file_offset = 0;    // where the next block would start
  uint64_t bytes_dropped = 0;  // bytes from file_offset to the last non-zero byte
  std::string reason;          // why the bytes after file_offset were not used
  WalPointer next;             // pointer the next record would get
  uint32_t last_block_crc = 0; // CRC of the last valid block (0: none)
  bool segment_end = false;    // the last segment ended with SEGMENT_END
};

struct ReadCounters {
  uint64_t segments = 0;
  uint64_t blocks = 0;
  uint64_t block_bytes = 0;  // headers and stored payloads of valid blocks
};

// The block that starts at `file_offset` of the opened segment file,
// read alone (its segment's header, then the block: three small reads of
// the one file) and checked as BlockReader::next() checks a block of a
// snapshot segment: the segment header's CRC, its identity (`cluster_id`,
// `node_index`) and index (the file name's), the file no larger than the
// header's segment size, the block header, its CRC, its bounds within the
// file and that its first record is in this segment. For a record whose
// block is known (an increment's metadata records where its cut records
// are), instead of every block before it. Errors name the file and the
// offset.
Result<Block> read_block_at(const OpenedFile& file, uint64_t file_offset, uint64_t cluster_id, uint16_t node_index);

// Reads blocks one at a time on the caller's thread; I/O runs ahead through
// the chunk reader. Memory: the chunk reader's buffers plus one block when a
// block crosses a chunk boundary.
class BlockReader {
 public:
  static Result<std::unique_ptr<BlockReader>> open(std::vector<std::string> segment_paths,
                                                   const BlockReaderOptions& options);
  ~BlockReader();

  // The next valid block; false at the end of the log (see end()). An error
  // names the segment file and byte offset; reading stops there.
  Result<bool> next(Block& out);

  const LogEnd& end() const { return end_; }
  const ReadCounters& counters() const { return counters_; }
  // Headers of the segments read so far, in order.
  const std::vector<SegmentHeader>& segment_headers() const { return headers_; }
  const char* engine_name() const;
  const std::string& path(uint32_t file) const;

 private:
  class Window;
  BlockReader(std::unique_ptr<ChunkReader> io, const BlockReaderOptions& options);

  Result<bool> start_segment();
  Status check_newer_link() const;
  // false at the end of the log; true, newest first, at the end of the
  // newest segment's written blocks (reading goes on with the next file).
  Result<bool> end_of_data(uint64_t off, const std::string& why);
  Result<bool> after_end(Block& out, Result<bool> ended);
  Status before_durable_end(const std::string& at, const std::string& why) const;
  std::string where(uint64_t off) const;

  std::unique_ptr<ChunkReader> io_;
  std::unique_ptr<Window> window_;
  BlockReaderOptions options_;
  std::vector<SegmentHeader> headers_;
  ReadCounters counters_;
  LogEnd end_;
  bool done_ = false;
  bool in_segment_ = false;
  uint32_t file_ = 0;
  uint64_t off_ = 0;         // physical offset of the next block
  uint64_t logical_ = 0;     // logical offset of the next block's header
  uint32_t last_crc_ = 0;
};

}  // namespace walcut
