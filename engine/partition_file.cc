#include "engine/partition_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>
#include <limits>
#include <string_view>

// For XXH3_state_t as a complete type: the state lives on the stack, so
// hashing an entry allocates nothing.
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "io/coding.h"
#include "io/crc32c.h"
#include "io/file_util.h"

namespace walcut {
namespace {

// ---- The layout (docs/partition-format.md). This file is the one place in
// the code that knows it.
//
// header  0 u64 magic | 8 u32 version | 12 u32 group_id | 16 u16 partition
//        18 u16 node_index | 20 u32 crc of [0, 20)
// block   0 u32 magic | 4 u32 crc of [8, 16) and the payload
//         8 u32 payload_bytes | 12 u32 entry_count, then the payload
// entry   0 u32 key_bytes | 4 u32 value_bytes | 8 Version (16 bytes), key, value
// footer  0 u32 magic | 4 u32 crc of [8, 40) | 8 u64 entry_count
//        16 u64 block_count | 24 u64 key_value_hash | 32 u64 version_hash
constexpr uint64_t kPartHeaderMagic = 0x31545250'54434c57ull;  // "WLCTPRT1"
constexpr uint32_t kPartFormatVersion = 1;
constexpr size_t kPartHeaderBytes = 24;
constexpr uint32_t kPartBlockMagic = 0x4b425057u;  // "WPBK"
constexpr size_t kPartBlockHeaderBytes = 16;
constexpr uint32_t kPartFooterMagic = 0x54465057u;  // "WPFT"; differs from "WPBK" in two bytes
constexpr size_t kPartFooterBytes = 40;
constexpr size_t kPartEntryFixedBytes = 4 + 4 + kVersionBytes;

// The writer closes a block before an entry that would take its payload past
// this; an entry larger than it gets a block of its own.
constexpr size_t kBlockPayloadTargetBytes = 64 << 10;
// Lengths and a block's payload size are u32 on disk.
constexpr uint64_t kU32Max = std::numeric_limits<uint32_t>::max();
// The writer hands the kernel this much at a time; the reader reads in
// pieces of the same size.
constexpr size_t kIoPieceBytes = 1 << 20;

// ---- Hashes

// XXH3 of (u32 key length, key, tail). The length keeps the key apart from
// the tail: ("ab", "c") and ("a", "bc") hash differently. One call over the
// three laid end to end in a buffer on the stack (on the heap past 4 KiB):
// the same value as hashing them in turn through XXH3's streaming state,
// for a fraction of its cost. Not a thread_local buffer: glibc aborts the
// process when it has no memory to register one's destructor.
uint64_t hash_key_and(std::string_view key, ByteSpan tail) {
  std::byte on_stack[4096];
  Bytes on_heap;
  const size_t n = 4 + key.size() + tail.size();
  std::byte* buffer = on_stack;
  if (n > sizeof on_stack) {
    on_heap.resize(n);
    buffer = on_heap.data();
  }
  store_u32(buffer, static_cast<uint32_t>(key.size()));
  std::memcpy(buffer + 4, key.data(), key.size());
  if (!tail.empty()) std::memcpy(buffer + 4 + key.size(), tail.data(), tail.size());
  return XXH3_64bits(buffer, n);
}

// ---- Writing

Bytes encode_file_header(const PartitionFileInfo& info) {
  Bytes out;
  Encoder e(out);
  e.u64(kPartHeaderMagic);
  e.u32(kPartFormatVersion);
  e.u32(info.group_id);
  e.u16(info.partition);
  e.u16(info.node_index);
  uint32_t crc = crc32c(out);
  e.u32(crc);
  assert(out.size() == kPartHeaderBytes);
  return out;
}

void encode_entry(Bytes& payload, std::string_view key, ByteSpan value, const Version& v) {
  Encoder e(payload);
  e.u32(static_cast<uint32_t>(key.size()));
  e.u32(static_cast<uint32_t>(value.size()));
  std::byte version[kVersionBytes];
  store_version(version, v);
  e.bytes(version);
  e.bytes(ByteSpan(reinterpret_cast<const std::byte*>(key.data()), key.size()));
  e.bytes(value);
}

Bytes encode_footer(const PartitionHashes& hashes, uint64_t block_count) {
  Bytes out;
  Encoder e(out);
  e.u32(kPartFooterMagic);
  e.u32(0);  // the crc, filled in below
  e.u64(hashes.entries);
  e.u64(block_count);
  e.u64(hashes.key_value_hash);
  e.u64(hashes.version_hash);
  store_u32(&out[4], crc32c(ByteSpan(out).subspan(8)));
  assert(out.size() == kPartFooterBytes);
  return out;
}

// Bytes on their way to a file, handed to the kernel in pieces of about
// 1 MiB, so the writer's memory does not grow with the partition. Blocks
// are built in its buffer, where they are written from: an entry is
// copied once on its way to the kernel.
class PieceWriter {
 public:
  PieceWriter(int fd, const std::string& path) : fd_(fd), path_(path) { pending_.reserve(kBlockPayloadTargetBytes); }

  Status append(ByteSpan bytes) {
    pending_.insert(pending_.end(), bytes.begin(), bytes.end());
    return flush_if_full();
  }
  // The bytes not yet written, to append to in place.
  Bytes& pending() { return pending_; }
  Status flush_if_full() { return pending_.size() >= kIoPieceBytes ? flush() : Status{}; }
  Status flush() {
    if (pending_.empty()) return {};
    crc_ = crc32c(pending_, crc_);
    Status s = pwrite_all(fd_, pending_, offset_bytes_, path_);
    offset_bytes_ += pending_.size();
    pending_.clear();
    return s;
  }
  // What was written so far (call after flush()): its size and CRC32C.
  PartitionFileWritten written() const {
    assert(pending_.empty());
    return {offset_bytes_, crc_};
  }

 private:
  int fd_;
  const std::string& path_;
  Bytes pending_;
  uint64_t offset_bytes_ = 0;
  uint32_t crc_ = 0;
};

// Groups entries into blocks, each built in place in the writer's buffer
// (its header filled in when it is closed), and keeps the footer's counts
// and hashes.
class BlockWriter {
 public:
  BlockWriter(PieceWriter& out, const std::string& path) : out_(out), buf_(out.pending()), path_(path) {}

  Status add(std::string_view key, ByteSpan value, const Version& v) {
    WALCUT_RETURN_IF_ERROR(make_room(kPartEntryFixedBytes + key.size() + value.size()));
    const size_t start = buf_.size();
    encode_entry(buf_, key, value, v);
    count(start);
    return {};
  }

  // One entry already laid out as in a block: copied as it is.
  Status add_encoded(const std::byte* e) {
    const uint64_t entry_bytes = kPartEntryFixedBytes + uint64_t{load_u32(e)} + load_u32(e + 4);
    WALCUT_RETURN_IF_ERROR(make_room(entry_bytes));
    const size_t start = buf_.size();
    buf_.insert(buf_.end(), e, e + entry_bytes);
    count(start);
    return {};
  }

  // Closes the block being filled, if it holds any entry: its header.
  Status finish_block() {
    if (entry_count_ == 0) return {};
    const size_t payload_bytes = buf_.size() - payload_start_;
    assert(payload_bytes <= kU32Max);
    std::byte* header = buf_.data() + payload_start_ - kPartBlockHeaderBytes;
    store_u32(header, kPartBlockMagic);
    store_u32(header + 8, static_cast<uint32_t>(payload_bytes));
    store_u32(header + 12, entry_count_);
    const ByteSpan payload(buf_.data() + payload_start_, payload_bytes);
    store_u32(header + 4, crc32c(payload, crc32c(ByteSpan(header + 8, kPartBlockHeaderBytes - 8))));
    entry_count_ = 0;
    block_count_ += 1;
    return out_.flush_if_full();
  }

  Bytes footer() const { return encode_footer(hashes_, block_count_); }

 private:
  // Refuses an entry no block can hold; closes the block it would not
  // fit, and opens one (its header's place) if none is open.
  Status make_room(uint64_t entry_bytes) {
    if (entry_bytes > kU32Max) {
      return Status::invalid_argument(path_ + ": entry of " + std::to_string(entry_bytes) +
                                      " bytes does not fit a block (u32 lengths)");
    }
    if (entry_count_ > 0 && buf_.size() - payload_start_ + entry_bytes > kBlockPayloadTargetBytes) {
      WALCUT_RETURN_IF_ERROR(finish_block());
    }
    if (entry_count_ == 0) {
      buf_.resize(buf_.size() + kPartBlockHeaderBytes);
      payload_start_ = buf_.size();
    }
    return {};
  }

  // Counts the entry placed at `start` of the buffer and adds it to the hashes.
  void count(size_t start) {
    std::byte* p = buf_.data() + start;
    const uint32_t key_bytes = load_u32(p), value_bytes = load_u32(p + 4);
    const std::string_view key(reinterpret_cast<const char*>(p + kPartEntryFixedBytes), key_bytes);
    entry_count_ += 1;
    // The key-value hash reads (u32 key length, key, value): the encoded
    // entry holds key and value side by side, preceded by the version's
    // last 4 bytes, which stand in for the length while it is hashed.
    std::byte* lead = p + kPartEntryFixedBytes - 4;
    std::byte saved[4];
    std::memcpy(saved, lead, 4);
    store_u32(lead, key_bytes);
    const uint64_t kv = XXH3_64bits(lead, 4 + size_t{key_bytes} + value_bytes);
    std::memcpy(lead, saved, 4);
    hashes_.entries += 1;
    hashes_.key_value_hash += kv;
    hashes_.version_hash +=
        hash_key_and(key, ByteSpan(p + 8, kVersionBytes));  // the version as store_version() lays it
  }

  PieceWriter& out_;
  Bytes& buf_;                // out_'s pending bytes: the open block is at their end
  size_t payload_start_ = 0;  // in buf_, of the open block (when entry_count_ > 0)
  const std::string& path_;
  uint32_t entry_count_ = 0;
  uint64_t block_count_ = 0;
  PartitionHashes hashes_;
};

// Header, blocks, footer: the whole file, from offset 0. `fill(blocks)`
// adds every entry in key order, and returns whether it could.
template <typename Fill>
Status write_contents(int fd, const std::string& path, const PartitionFileInfo& info, const Fill& fill,
                      PartitionFileWritten* written) {
  PieceWriter out(fd, path);
  WALCUT_RETURN_IF_ERROR(out.append(encode_file_header(info)));
  BlockWriter blocks(out, path);
  WALCUT_RETURN_IF_ERROR(fill(blocks));
  WALCUT_RETURN_IF_ERROR(blocks.finish_block());
  WALCUT_RETURN_IF_ERROR(out.append(blocks.footer()));
  WALCUT_RETURN_IF_ERROR(out.flush());
  if (written) *written = out.written();
  return {};
}

// ---- Reading

// A file's bytes and its name, for messages.
struct FileView {
  const std::string& path;
  ByteSpan bytes;

  size_t remaining_bytes(size_t offset) const { return bytes.size() - offset; }
  Status corrupt(const std::string& what, uint64_t offset) const {
    return Status::corruption(path + ": " + what + " at offset " + std::to_string(offset));
  }
};

// What the blocks held, as read so far.
struct Contents {
  const PartitionEntryFn& each;
  std::string_view last_key;  // into the file's bytes
  PartitionHashes hashes;
  uint64_t block_count = 0;
};

Result<PartitionFileInfo> parse_file_header(const FileView& f) {
  if (f.bytes.size() < kPartHeaderBytes) return f.corrupt("file ends inside the header", f.bytes.size());
  Decoder d(f.bytes.first(kPartHeaderBytes));
  if (d.u64() != kPartHeaderMagic) return f.corrupt("not a walcut partition file (bad magic)", 0);
  uint32_t version = d.u32();
  PartitionFileInfo info;
  info.group_id = d.u32();
  info.partition = d.u16();
  info.node_index = d.u16();
  if (d.u32() != crc32c(f.bytes.first(kPartHeaderBytes - 4))) return f.corrupt("header checksum mismatch", 0);
  // After the CRC: a version that fails it is damage, not a newer format.
  if (version != kPartFormatVersion) return f.corrupt("unsupported format version " + std::to_string(version), 8);
  return info;
}

// One entry at `entry_offset` in the file, taken from `d`; appended to `c`.
Status parse_entry(const FileView& f, size_t entry_offset, Decoder& d, Contents& c) {
  uint32_t key_bytes = d.u32();
  uint32_t value_bytes = d.u32();
  Version version;
  version.topology_version = d.u32();
  version.node_order = d.u32();
  version.order = d.u64();
  // Decoder checks each length against the bytes left before taking them.
  ByteSpan key = d.bytes(key_bytes);
  ByteSpan value = d.bytes(value_bytes);
  if (d.failed()) return f.corrupt("entry runs past the end of its block", entry_offset);
  std::string_view key_view(reinterpret_cast<const char*>(key.data()), key.size());
  if (c.hashes.entries > 0 && compare_keys(key_view, c.last_key) <= 0) {
    return f.corrupt("key not greater than the key before it", entry_offset);
  }
  c.last_key = key_view;
  add_to_hashes(c.hashes, key_view, value, version);
  if (c.each) c.each(key_view, value, version);
  return {};
}

// The block at `offset`; returns the offset after it.
Result<size_t> parse_block(const FileView& f, size_t offset, Contents& c) {
  if (f.remaining_bytes(offset) < kPartBlockHeaderBytes) return f.corrupt("file ends inside a block header", offset);
  ByteSpan header = f.bytes.subspan(offset, kPartBlockHeaderBytes);
  uint32_t stored_crc = load_u32(&header[4]);
  uint32_t payload_bytes = load_u32(&header[8]);
  uint32_t entry_count = load_u32(&header[12]);
  if (payload_bytes > f.remaining_bytes(offset + kPartBlockHeaderBytes)) {
    return f.corrupt("block of " + std::to_string(payload_bytes) + " bytes runs past the end of the file", offset);
  }
  size_t payload_offset = offset + kPartBlockHeaderBytes;
  ByteSpan payload = f.bytes.subspan(payload_offset, payload_bytes);
  if (crc32c(payload, crc32c(header.subspan(8))) != stored_crc) return f.corrupt("block checksum mismatch", offset);
  // The CRC passed, so what follows checks the writer, not the disk.
  if (entry_count == 0) return f.corrupt("block without entries", offset);
  Decoder d(payload);
  for (uint32_t i = 0; i < entry_count; ++i) {
    WALCUT_RETURN_IF_ERROR(parse_entry(f, payload_offset + d.position(), d, c));
  }
  if (d.remaining() != 0) {
    return f.corrupt(std::to_string(d.remaining()) + " stray bytes after the last entry of a block",
                     payload_offset + d.position());
  }
  c.block_count += 1;
  return payload_offset + payload_bytes;
}

// The footer at `offset`, checked against what the blocks held.
Result<PartitionHashes> parse_footer(const FileView& f, size_t offset, const Contents& c) {
  if (f.remaining_bytes(offset) < kPartFooterBytes) return f.corrupt("file ends inside the footer", offset);
  ByteSpan footer = f.bytes.subspan(offset, kPartFooterBytes);
  Decoder d(footer);
  d.u32();  // the magic, checked by the caller
  uint32_t stored_crc = d.u32();
  PartitionHashes h;
  h.entries = d.u64();
  uint64_t block_count = d.u64();
  h.key_value_hash = d.u64();
  h.version_hash = d.u64();
  if (crc32c(footer.subspan(8)) != stored_crc) return f.corrupt("footer checksum mismatch", offset);
  size_t end = offset + kPartFooterBytes;
  if (end != f.bytes.size()) {
    return f.corrupt(std::to_string(f.bytes.size() - end) + " bytes after the footer", end);
  }
  if (h.entries != c.hashes.entries) {
    return f.corrupt("entry count mismatch (footer " + std::to_string(h.entries) + ", blocks " +
                         std::to_string(c.hashes.entries) + ")",
                     offset);
  }
  if (block_count != c.block_count) {
    return f.corrupt(
        "block count mismatch (footer " + std::to_string(block_count) + ", file " + std::to_string(c.block_count) + ")",
        offset);
  }
  if (h != c.hashes) return f.corrupt("footer hash mismatch", offset);
  return h;
}

Result<PartitionFileScan> scan_file_view(const FileView& f, const PartitionEntryFn& each) {
  Result<PartitionFileInfo> info = parse_file_header(f);
  if (!info.ok()) return info.status();
  Contents c{each, {}, {}, 0};
  size_t offset = kPartHeaderBytes;
  // Blocks until the footer. Each turn moves on by at least a block header.
  while (true) {
    if (f.remaining_bytes(offset) < 4) return f.corrupt("file ends before the footer", offset);
    uint32_t magic = load_u32(&f.bytes[offset]);
    if (magic == kPartFooterMagic) break;
    if (magic != kPartBlockMagic) return f.corrupt("neither a block nor the footer", offset);
    Result<size_t> next = parse_block(f, offset, c);
    if (!next.ok()) return next.status();
    offset = *next;
  }
  Result<PartitionHashes> hashes = parse_footer(f, offset, c);
  if (!hashes.ok()) return hashes.status();
  return PartitionFileScan{*info, *hashes};
}

Result<PartitionFile> parse_file_view(const FileView& f) {
  EntryMap entries;
  PartitionEntryFn each = [&](std::string_view key, ByteSpan value, const Version& version) {
    entries.emplace_hint(entries.end(), key, StoredValue{to_string(value), version});
  };
  Result<PartitionFileScan> scan = scan_file_view(f, each);
  if (!scan.ok()) return scan.status();
  return PartitionFile{scan->info, std::move(entries), scan->hashes};
}

}  // namespace

void add_to_hashes(PartitionHashes& h, std::string_view key, ByteSpan value, const Version& v) {
  std::byte version[kVersionBytes];
  store_version(version, v);
  h.entries += 1;
  // Unsigned sums wrap, and addition commutes: the order of entries does not matter.
  h.key_value_hash += hash_key_and(key, value);
  h.version_hash += hash_key_and(key, version);
}

void add_to_hashes(PartitionHashes& h, const std::string& key, const StoredValue& v) {
  add_to_hashes(h, key, as_bytes(v.value), v.version);
}

PartitionHashes hash_entries(const EntryMap& entries) {
  PartitionHashes h;
  for (const auto& [key, value] : entries) add_to_hashes(h, key, value);
  return h;
}

namespace {

template <typename Fill>
Status write_file(const std::string& path, const PartitionFileInfo& info, const Fill& fill, PartitionWrite how,
                  PartitionFileWritten* written) {
  const bool replace = how == PartitionWrite::kReplace;
  const std::string tmp_path = replace ? path + ".tmp" : path;
  Result<int> created = create_file(tmp_path, (replace ? O_TRUNC : O_EXCL) | O_WRONLY);
  if (!created.ok()) return created.status();
  const int fd = created.value();
  Status s = write_contents(fd, tmp_path, info, fill, written);
  if (s.ok() && replace) s = sync_file(fd, tmp_path);
  // Unsynced: kCreate starts the writeback now (PartitionWrite).
  if (s.ok() && how == PartitionWrite::kCreate) ::sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
  if (::close(fd) != 0 && s.ok()) s = Status::from_errno("close " + tmp_path, errno);
  if (s.ok() && replace && ::rename(tmp_path.c_str(), path.c_str()) != 0) {
    s = Status::from_errno("rename " + tmp_path + " to " + path, errno);
  }
  // A failed write leaves nothing behind, and never a half-written file under `path`.
  if (!s.ok()) ::unlink(tmp_path.c_str());
  return s;
}

}  // namespace

Status write_partition_file(const std::string& path, const PartitionFileInfo& info, const EntryMap& entries) {
  return write_file(
      path, info,
      [&](BlockWriter& blocks) {
        for (const auto& [key, value] : entries)
          WALCUT_RETURN_IF_ERROR(blocks.add(key, as_bytes(value.value), value.version));
        return Status{};
      },
      PartitionWrite::kReplace, nullptr);
}

Status write_partition_file_of(const std::string& path, const PartitionFileInfo& info,
                               std::span<const std::byte* const> entries, PartitionWrite how,
                               PartitionFileWritten* written) {
  return write_file(
      path, info,
      [&](BlockWriter& blocks) {
        std::string_view last;
        for (size_t i = 0; i < entries.size(); ++i) {
          const std::byte* e = entries[i];
          const std::string_view key(reinterpret_cast<const char*>(e + kPartEntryFixedBytes), load_u32(e));
          if (i > 0 && compare_keys(key, last) <= 0) {
            return Status::invalid_argument(path + ": entries to write are not in strictly increasing key order");
          }
          last = key;
          WALCUT_RETURN_IF_ERROR(blocks.add_encoded(e));
        }
        return Status{};
      },
      how, written);
}

Result<PartitionFile> read_partition_file(const std::string& path) {
  Result<Bytes> bytes = read_file_bytes(path);
  if (!bytes.ok()) return bytes.status();
  return parse_file_view(FileView{path, *bytes});
}

Result<PartitionFileScan> scan_partition_file(const std::string& path, ByteSpan bytes, const PartitionEntryFn& each) {
  return scan_file_view(FileView{path, bytes}, each);
}

std::string partition_file_name(uint16_t partition) { return "part-" + std::to_string(partition) + ".bin"; }

std::string partition_path(const std::string& db_dir, const CacheGroup& g, uint16_t partition) {
  return db_dir + "/" + g.name + "/" + partition_file_name(partition);
}

std::optional<uint16_t> parse_partition_file_name(const std::string& name) {
  constexpr size_t kPrefix = 5, kSuffix = 4;  // "part-", ".bin"
  if (name.size() <= kPrefix + kSuffix || name.size() > kPrefix + 5 + kSuffix) return std::nullopt;
  uint32_t p = 0;
  for (size_t i = kPrefix; i < name.size() - kSuffix; ++i) {
    if (name[i] < '0' || name[i] > '9') return std::nullopt;
    p = p * 10 + static_cast<uint32_t>(name[i] - '0');
  }
  if (p > 65535 || partition_file_name(static_cast<uint16_t>(p)) != name) return std::nullopt;
  return static_cast<uint16_t>(p);
}

}  // namespace walcut
