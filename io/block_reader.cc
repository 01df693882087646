#include "io/block_reader.h"

#include <algorithm>
#include <deque>
#include <filesystem>

#include "io/crc32c.h"
#include "io/file_util.h"

namespace walcut {

bool Block::is_segment_end() const {
  return header.record_count == 1 && header.codec == Codec::kNone && stored.size() >= kRecordHeaderBytes &&
         stored[0] == std::byte{static_cast<uint8_t>(RecordType::kSegmentEnd)};
}

// The chunks of the current file that the parser still needs, in order.
class BlockReader::Window {
 public:
  explicit Window(ChunkReader& io) : io_(io) {}

  void begin_file(uint32_t file) {
    file_ = file;
    chunks_.clear();
    next_ = 0;
    shrank_ = false;
  }

  // Whether the current file's bytes ended before the size it had when it
  // was opened: it shrank while it was read.
  bool shrank() const { return shrank_; }

  // A contiguous view of [off, off + n) of the current file, valid while
  // `owner` lives. Returns false when the file ends first. Copies only when
  // the range crosses chunks.
  Result<bool> view(uint64_t off, size_t n, ByteSpan& out, std::shared_ptr<const void>& owner) {
    while (chunks_.empty() || end_of(chunks_.back()) < off + n) {
      Result<bool> more = pull();
      if (!more.ok() || !more.value()) return more;
    }
    size_t i = 0;
    while (end_of(chunks_[i]) <= off) ++i;
    const Chunk& c = chunks_[i];
    assert(c.offset <= off);  // callers never step back before released chunks
    if (off + n <= end_of(c)) {
      out = c.bytes.subspan(off - c.offset, n);
      owner = c.owner;
      return true;
    }
    // Not zeroed first: every byte is copied over (a quarter of the
    // blocks straddle two chunks of 256 KiB; zeroing them was 0.3 GB of
    // stores for `small`).
    std::shared_ptr<std::byte[]> copy(new std::byte[n]);
    for (size_t done = 0; done < n; ++i) {
      const Chunk& piece = chunks_[i];
      uint64_t from = off + done - piece.offset;
      size_t take = std::min<size_t>(n - done, piece.bytes.size() - from);
      std::memcpy(copy.get() + done, piece.bytes.data() + from, take);
      done += take;
    }
    out = ByteSpan{copy.get(), n};
    owner = std::move(copy);
    return true;
  }

  // Drops chunks that end at or before `off`.
  void release_before(uint64_t off) {
    while (!chunks_.empty() && end_of(chunks_.front()) <= off) chunks_.pop_front();
  }

 private:
  static uint64_t end_of(const Chunk& c) { return c.offset + c.bytes.size(); }

  Result<bool> pull() {
    for (;;) {
      if (pending_ && pending_->file > file_) return ended();
      Chunk c;
      if (pending_) {
        c = std::move(*pending_);
        pending_.reset();
      } else {
        Result<bool> got = io_.next(c);
        if (!got.ok()) return got;
        if (!got.value()) return ended();
      }
      if (c.file < file_) continue;  // read ahead before the file was skipped
      if (c.file > file_) {
        pending_ = std::move(c);
        return ended();
      }
      // Each chunk starts where the one before it ended. A read that came
      // back short (the file shrank while it was read) leaves a gap before
      // the next chunk, which a view across it would index before its
      // buffer: the file ends at the short read, and what follows is
      // dropped.
      if (shrank_ || c.offset != next_) {
        shrank_ = true;
        continue;
      }
      next_ = end_of(c);
      chunks_.push_back(std::move(c));
      return true;
    }
  }

  // No more chunks of the current file: false, and whether it shrank.
  bool ended() {
    if (next_ < io_.file_size(file_)) shrank_ = true;
    return false;
  }

  ChunkReader& io_;
  uint32_t file_ = 0;
  uint64_t next_ = 0;  // where the current file's next chunk must start
  bool shrank_ = false;
  std::deque<Chunk> chunks_;
  std::optional<Chunk> pending_;  // the first chunk of a later file
};

namespace {

bool all_zero(ByteSpan b) { return std::all_of(b.begin(), b.end(), [](std::byte x) { return x == std::byte{0}; }); }

// Offset (within b) one past the last non-zero byte, 0 when all are zero.
size_t nonzero_end(ByteSpan b) {
  size_t n = b.size();
  while (n > 0 && b[n - 1] == std::byte{0}) --n;
  return n;
}

std::string base_name(const std::string& path) { return std::filesystem::path(path).filename().string(); }

// A segment's header must be of `cluster` and `node`, and of the index its
// file name says.
Status check_identity(const SegmentHeader& h, const std::string& path, uint64_t cluster, uint16_t node) {
  if (h.cluster_id != cluster || h.node_index != node) {
    return Status::corruption(path + ": segment of cluster " + std::to_string(h.cluster_id) + " node " +
                              std::to_string(h.node_index) + ", expected cluster " + std::to_string(cluster) +
                              " node " + std::to_string(node));
  }
  std::optional<uint64_t> named = parse_segment_file_name(base_name(path));
  if (named && *named != h.segment_index) {
    return Status::corruption(path + ": file name says segment " + std::to_string(*named) + ", header says " +
                              std::to_string(h.segment_index));
  }
  return {};
}

// A segment file must not be larger than its header's segment size (rule
// 5 of docs/wal-format.md), nor, when `exact`, smaller.
Status check_size(const SegmentHeader& h, const std::string& path, uint64_t size, bool exact) {
  if (size > h.segment_bytes || (exact && size != h.segment_bytes)) {
    return Status::corruption(path + ": file is " + std::to_string(size) + " bytes, its header says " +
                              std::to_string(h.segment_bytes));
  }
  return {};
}

}  // namespace

BlockReader::BlockReader(std::unique_ptr<ChunkReader> io, const BlockReaderOptions& options)
    : io_(std::move(io)), window_(std::make_unique<Window>(*io_)), options_(options) {}

BlockReader::~BlockReader() = default;

Result<std::unique_ptr<BlockReader>> BlockReader::open(std::vector<std::string> segment_paths,
                                                       const BlockReaderOptions& options) {
  if (segment_paths.empty()) return Status::invalid_argument("no segment files given");
  Result<std::unique_ptr<ChunkReader>> io = open_chunk_reader(std::move(segment_paths), options.io);
  if (!io.ok()) return io.status();
  return std::unique_ptr<BlockReader>(new BlockReader(std::move(io).value(), options));
}

const char* BlockReader::engine_name() const { return io_->engine_name(); }
const std::string& BlockReader::path(uint32_t file) const { return io_->path(file); }

std::string BlockReader::where(uint64_t off) const {
  return io_->path(file_) + " at offset " + std::to_string(off);
}

Result<bool> BlockReader::start_segment() {
  window_->begin_file(file_);
  const std::string& path = io_->path(file_);
  uint64_t size = io_->file_size(file_);
  ByteSpan bytes;
  std::shared_ptr<const void> keep;
  Result<bool> got = size < kSegmentHeaderBytes ? Result<bool>(false) : window_->view(0, kSegmentHeaderBytes, bytes, keep);
  if (!got.ok()) return got;
  if (!got.value()) return Status::corruption(path + ": " + std::to_string(size) + " bytes, too short for a segment header");
  Result<SegmentHeader> h = SegmentHeader::decode(bytes.data(), path);
  if (!h.ok()) return h.status();
  uint64_t cluster = options_.cluster_id.value_or(headers_.empty() ? h->cluster_id : headers_.front().cluster_id);
  uint16_t node = options_.node_index.value_or(headers_.empty() ? h->node_index : headers_.front().node_index);
  WALCUT_RETURN_IF_ERROR(check_identity(h.value(), path, cluster, node));
  if (!headers_.empty() && !options_.newest_first) {
    const SegmentHeader& prev = headers_.back();
    if (h->segment_index != prev.segment_index + 1 || h->prev_segment_index != prev.segment_index ||
        h->prev_last_block_crc != last_crc_) {
      return Status::corruption(path + ": segment " + std::to_string(h->segment_index) + " does not follow " +
                                io_->path(file_ - 1) + " (its link names segment " +
                                std::to_string(h->prev_segment_index) + " with last block crc " +
                                std::to_string(h->prev_last_block_crc) + ", expected segment " +
                                std::to_string(prev.segment_index) + " with crc " + std::to_string(last_crc_) + ")");
    }
  }
  WALCUT_RETURN_IF_ERROR(check_size(h.value(), path, size, options_.mode == TailMode::kStrict));
  headers_.push_back(h.value());
  ++counters_.segments;
  in_segment_ = true;
  off_ = kSegmentHeaderBytes;
  logical_ = kSegmentHeaderBytes;
  last_crc_ = 0;
  return true;
}

Result<bool> BlockReader::next(Block& out) {
  while (!done_) {
    if (!in_segment_) {
      if (file_ >= io_->file_count()) {
        // Every segment ended with SEGMENT_END: the log continues in the next one.
        if (WalPointer{headers_.back().segment_index + 1, kSegmentHeaderBytes} < options_.durable_end) {
          return before_durable_end(io_->path(file_ - 1),
                                    "the last segment was closed and segment " +
                                        std::to_string(headers_.back().segment_index + 1) + " is missing");
        }
        done_ = true;
        end_ = LogEnd{false, file_ - 1, off_, 0, "the last segment was closed", {headers_.back().segment_index + 1,
                      kSegmentHeaderBytes + kBlockHeaderBytes}, last_crc_, true};
        return false;
      }
      Result<bool> started = start_segment();
      if (!started.ok()) return started;
    }
    if (options_.newest_end != 0 && off_ >= options_.newest_end &&
        file_ == (options_.newest_first ? 0 : io_->file_count() - 1)) {
      io_->skip_rest_of_file(file_);  // the newest segment ends here
      in_segment_ = false;
      ++file_;
      continue;
    }
    const uint64_t size = io_->file_size(file_);
    const WalPointer expect{headers_.back().segment_index, logical_ + kBlockHeaderBytes};
    if (size - off_ < kBlockHeaderBytes) {
      return after_end(out, end_of_data(off_, "no room for a block header before the end of the file"));
    }
    ByteSpan hb;
    std::shared_ptr<const void> keep;
    Result<bool> got = window_->view(off_, kBlockHeaderBytes, hb, keep);
    if (!got.ok()) return got;
    if (!got.value()) return after_end(out, end_of_data(off_, "the file ended while being read"));
    BlockHeader h;
    if (!BlockHeader::parse(hb.data(), h)) {
      return after_end(out, end_of_data(off_, all_zero(hb) ? "end of written data" : "not a valid block header"));
    }
    if (h.first != expect) {
      return after_end(
          out, end_of_data(off_, "block claims pointer " + h.first.to_string() + ", expected " + expect.to_string()));
    }
    if (size - off_ - kBlockHeaderBytes < h.stored_bytes) {
      return after_end(out, end_of_data(off_, "block runs past the end of the file"));
    }
    Block b;
    got = window_->view(off_, kBlockHeaderBytes + h.stored_bytes, b.stored, b.owner);
    if (!got.ok()) return got;
    if (!got.value()) return after_end(out, end_of_data(off_, "the file ended while being read"));
    if (block_crc(b.stored.data(), b.stored.subspan(kBlockHeaderBytes)) != h.crc) {
      return after_end(out, end_of_data(off_, "block checksum mismatch"));
    }
    b.stored = b.stored.subspan(kBlockHeaderBytes);
    b.header = h;
    b.file = file_;
    b.file_offset = off_;
    window_->release_before(off_);
    off_ += kBlockHeaderBytes + h.stored_bytes;
    logical_ = h.end_offset();
    last_crc_ = h.crc;
    ++counters_.blocks;
    counters_.block_bytes += kBlockHeaderBytes + h.stored_bytes;
    if (b.is_segment_end()) {
      if (options_.newest_first && file_ > 0) WALCUT_RETURN_IF_ERROR(check_newer_link());
      io_->skip_rest_of_file(file_);
      in_segment_ = false;
      ++file_;
    }
    out = std::move(b);
    return true;
  }
  return false;
}

// Newest first, at the SEGMENT_END of file_ (> 0): the segment read before
// it, file_ - 1, must link back to this one as BlockReader::start_segment
// checks a segment against the one before it.
Status BlockReader::check_newer_link() const {
  const SegmentHeader& me = headers_.back();
  const SegmentHeader& newer = headers_[headers_.size() - 2];
  if (newer.segment_index == me.segment_index + 1 && newer.prev_segment_index == me.segment_index &&
      newer.prev_last_block_crc == last_crc_) {
    return {};
  }
  return Status::corruption(io_->path(file_ - 1) + ": segment " + std::to_string(newer.segment_index) +
                            " does not follow " + io_->path(file_) + " (its link names segment " +
                            std::to_string(newer.prev_segment_index) + " with last block crc " +
                            std::to_string(newer.prev_last_block_crc) + ", expected segment " +
                            std::to_string(me.segment_index) + " with crc " + std::to_string(last_crc_) + ")");
}

// The bytes at `off` do not hold the next block. Scans the rest of the
// segment, and the segments after it, for valid blocks: finding one written
// after the damage had been synced makes this corruption in the middle of
// the log; finding none makes `off` the end of the log.
Result<bool> BlockReader::end_of_data(uint64_t off, const std::string& why) {
  const uint64_t size = io_->file_size(file_);
  const SegmentHeader& seg = headers_.back();
  uint64_t nonzero_to = off;  // one past the last non-zero byte seen
  uint64_t p = off;
  constexpr uint64_t kStep = 64 * 1024;
  while (p < size) {
    window_->release_before(p);
    uint64_t step_end = std::min(size, p + kStep);
    ByteSpan span;
    std::shared_ptr<const void> keep_span, keep;
    Result<bool> got = window_->view(p, step_end - p, span, keep_span);
    if (!got.ok()) return got.status();
    if (!got.value()) break;
    if (size_t nz = nonzero_end(span); nz > 0) nonzero_to = p + nz;
    // Candidate block starts in [p, step_end), excluding the damaged one.
    uint64_t skip_to = step_end;
    for (uint64_t q = std::max(p, off + 1); q < step_end; ++q) {
      if (q + kBlockHeaderBytes > size) break;
      if (static_cast<uint8_t>(span[q - p]) != (kBlockMagic & 0xff)) continue;
      ByteSpan hb;
      got = window_->view(q, kBlockHeaderBytes, hb, keep);
      if (!got.ok()) return got.status();
      BlockHeader h;
      if (!got.value() || !BlockHeader::parse(hb.data(), h)) continue;
      if (h.first.segment != seg.segment_index || h.first.offset <= logical_) continue;
      if (size - q - kBlockHeaderBytes < h.stored_bytes) continue;
      ByteSpan whole;
      got = window_->view(q, kBlockHeaderBytes + h.stored_bytes, whole, keep);
      if (!got.ok()) return got.status();
      if (!got.value() || block_crc(whole.data(), whole.subspan(kBlockHeaderBytes)) != h.crc) continue;
      if (h.sync_start > logical_) {
        return Status::corruption(where(off) + ": damaged block (" + why + ") followed by a valid block at offset " +
                                  std::to_string(q) + " written after the damaged bytes were synced");
      }
      // A block of the same unsynced run: written, but never acknowledged as durable.
      nonzero_to = std::max(nonzero_to, q + kBlockHeaderBytes + h.stored_bytes);
      skip_to = q + kBlockHeaderBytes + h.stored_bytes;
      break;
    }
    p = std::max(step_end, skip_to);
  }
  if (options_.newest_first ? file_ > 0 : file_ + 1 < io_->file_count()) {
    // Segments are created only after their predecessor's SEGMENT_END was
    // synced, so a segment after this one proves this one was complete.
    return Status::corruption(where(off) + ": " + why + ", but " +
                              io_->path(options_.newest_first ? file_ - 1 : file_ + 1) +
                              " follows, so this segment was closed and synced before");
  }
  if (WalPointer{seg.segment_index, logical_} < options_.durable_end) return before_durable_end(where(off), why);
  const bool shrank = window_->shrank();
  const bool truncated = size < seg.segment_bytes || shrank;
  end_ = LogEnd{nonzero_to > off || truncated, file_, off, nonzero_to - off, why,
                WalPointer{seg.segment_index, logical_ + kBlockHeaderBytes}, last_crc_, false};
  if (shrank) {
    end_.reason += "; the file shrank while it was read";
  } else if (truncated) {
    end_.reason += "; the file is " + std::to_string(seg.segment_bytes - size) + " bytes short";
  }
  done_ = true;
  if (options_.mode == TailMode::kStrict) {
    if (end_.torn) {
      return Status::corruption(where(off) + ": " + end_.reason + " (" + std::to_string(end_.bytes_dropped) +
                                " bytes after the last valid block)");
    }
  }
  if (options_.newest_first && file_ + 1 < io_->file_count()) {
    // The newest segment's written blocks end here: the older segments follow.
    done_ = false;
    in_segment_ = false;
    ++file_;
    return true;
  }
  return false;
}

Result<bool> BlockReader::after_end(Block& out, Result<bool> ended) {
  if (ended.ok() && ended.value()) return next(out);  // newest first: the next segment
  return ended;
}

// The log ends at `at` before the bytes known to be durable end: synced
// bytes are damaged or missing, which no crash does.
Status BlockReader::before_durable_end(const std::string& at, const std::string& why) const {
  return Status::corruption(at + ": " + why + ", before " + options_.durable_end.to_string() +
                            ", up to which the WAL was recorded as synced: synced data is damaged or missing");
}

Result<Block> read_block_at(const OpenedFile& file, uint64_t file_offset, uint64_t cluster_id, uint16_t node_index) {
  const std::string& path = file.path();
  const std::string at = path + " at offset " + std::to_string(file_offset);
  const uint64_t size = file.size();
  Result<Bytes> head = file.read(0, kSegmentHeaderBytes);
  if (!head.ok()) return head.status();
  if (head->size() < kSegmentHeaderBytes) {
    return Status::corruption(path + ": " + std::to_string(size) + " bytes, too short for a segment header");
  }
  Result<SegmentHeader> segment = SegmentHeader::decode(head->data(), path);
  if (!segment.ok()) return segment.status();
  WALCUT_RETURN_IF_ERROR(check_identity(segment.value(), path, cluster_id, node_index));
  // As the scan refuses it: nothing is read past the segment's size.
  WALCUT_RETURN_IF_ERROR(check_size(segment.value(), path, size, /*exact=*/false));
  if (file_offset < kSegmentHeaderBytes) return Status::corruption(at + ": inside the segment header");
  if (file_offset > size || size - file_offset < kBlockHeaderBytes) {
    return Status::corruption(at + ": no block header fits there (the file is " + std::to_string(size) + " bytes)");
  }
  Result<Bytes> header_bytes = file.read(file_offset, kBlockHeaderBytes);
  if (!header_bytes.ok()) return header_bytes.status();
  Block b;
  b.file_offset = file_offset;
  if (header_bytes->size() < kBlockHeaderBytes || !BlockHeader::parse(header_bytes->data(), b.header)) {
    return Status::corruption(at + ": no block header there");
  }
  if (b.header.stored_bytes > size - file_offset - kBlockHeaderBytes) {
    return Status::corruption(at + ": the block's " + std::to_string(b.header.stored_bytes) +
                              " bytes pass the end of the file");
  }
  auto payload = std::make_shared<Bytes>();
  Result<Bytes> stored = file.read(file_offset + kBlockHeaderBytes, b.header.stored_bytes);
  if (!stored.ok()) return stored.status();
  *payload = std::move(stored).value();
  if (payload->size() != b.header.stored_bytes || block_crc(header_bytes->data(), *payload) != b.header.crc) {
    return Status::corruption(at + ": block CRC mismatch");
  }
  if (b.header.first.segment != segment->segment_index) {
    return Status::corruption(at + ": the block says it is in segment " + std::to_string(b.header.first.segment) +
                              ", the file holds segment " + std::to_string(segment->segment_index));
  }
  // Its logical place is never before its place in the file: no block is
  // stored larger than its records (docs/wal-format.md, "Reading").
  if (b.header.first.offset < file_offset + kBlockHeaderBytes) {
    return Status::corruption(at + ": the block's records are at logical offset " +
                              std::to_string(b.header.first.offset) + ", before its place in the file");
  }
  b.stored = ByteSpan(*payload);
  b.owner = std::move(payload);
  return b;
}

}  // namespace walcut
