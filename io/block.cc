#include "io/block.h"

#include <lz4.h>

#include <cassert>

#include "io/crc32c.h"

namespace walcut {

namespace {
constexpr uint32_t kLz4MaxExpansion = 255;
}  // namespace

void BlockBuilder::add(RecordType type, ByteSpan payload) {
  size_t at = raw_.size();
  raw_.resize(at + kRecordHeaderBytes + payload.size());
  std::byte* p = raw_.data() + at;
  p[0] = std::byte{static_cast<uint8_t>(type)};
  p[1] = p[2] = p[3] = std::byte{0};
  store_u32(p + 4, static_cast<uint32_t>(payload.size()));
  if (!payload.empty()) std::memcpy(p + kRecordHeaderBytes, payload.data(), payload.size());
  ++count_;
}

SealedBlock seal_block(const BlockBuilder& b, Codec codec) {
  assert(!b.empty());
  SealedBlock s;
  s.raw_bytes = b.raw_bytes();
  s.record_count = b.record_count();
  if (codec == Codec::kLz4) {
    int bound = LZ4_compressBound(static_cast<int>(s.raw_bytes));
    s.stored.resize(static_cast<size_t>(bound));
    int n = LZ4_compress_default(reinterpret_cast<const char*>(b.raw().data()), reinterpret_cast<char*>(s.stored.data()),
                                 static_cast<int>(s.raw_bytes), bound);
    if (n > 0 && static_cast<uint32_t>(n) < s.raw_bytes) {
      s.stored.resize(static_cast<size_t>(n));
      s.codec = Codec::kLz4;
      return s;
    }
  }
  s.stored = b.raw();
  s.codec = Codec::kNone;
  return s;
}

void place_block(const SealedBlock& block, WalPointer first, uint64_t sync_start, Bytes& out) {
  BlockHeader h;
  h.stored_bytes = static_cast<uint32_t>(block.stored.size());
  h.raw_bytes = block.raw_bytes;
  h.record_count = block.record_count;
  h.codec = block.codec;
  h.first = first;
  h.sync_start = sync_start;
  size_t at = out.size();
  out.resize(at + kBlockHeaderBytes);
  h.encode(out.data() + at);
  out.insert(out.end(), block.stored.begin(), block.stored.end());
  store_u32(out.data() + at + 4, block_crc(out.data() + at, block.stored));
}

Result<ByteSpan> block_raw_payload(const BlockHeader& h, ByteSpan stored, Bytes& scratch) {
  if (h.codec == Codec::kNone) return stored;
  // LZ4 spends at least one input byte per 255 output bytes: refuse more before allocating for it.
  if (h.raw_bytes / kLz4MaxExpansion > stored.size()) {
    return Status::corruption("LZ4 payload of " + std::to_string(stored.size()) + " bytes cannot decode to " +
                              std::to_string(h.raw_bytes) + " bytes");
  }
  scratch.resize(h.raw_bytes);
  int n = LZ4_decompress_safe(reinterpret_cast<const char*>(stored.data()), reinterpret_cast<char*>(scratch.data()),
                              static_cast<int>(stored.size()), static_cast<int>(h.raw_bytes));
  if (n < 0 || static_cast<uint32_t>(n) != h.raw_bytes) {
    return Status::corruption("LZ4 payload does not decode to " + std::to_string(h.raw_bytes) + " bytes");
  }
  return ByteSpan{scratch.data(), h.raw_bytes};
}

Status for_each_record(const BlockHeader& h, ByteSpan raw, const std::function<Status(const RecordView&)>& fn) {
  size_t pos = 0;
  for (uint32_t i = 0; i < h.record_count; ++i) {
    if (raw.size() - pos < kRecordHeaderBytes) return Status::corruption("block ends inside a record header");
    const std::byte* p = raw.data() + pos;
    uint8_t type = static_cast<uint8_t>(p[0]);
    uint32_t len = load_u32(p + 4);
    if (type < 1 || type > kRecordTypeMax || p[1] != std::byte{0} || load_u16(p + 2) != 0) {
      return Status::corruption("bad record header at raw offset " + std::to_string(pos));
    }
    if (raw.size() - pos - kRecordHeaderBytes < len) return Status::corruption("record overruns its block");
    RecordView r{static_cast<RecordType>(type), WalPointer{h.first.segment, h.first.offset + pos},
                 raw.subspan(pos + kRecordHeaderBytes, len)};
    WALCUT_RETURN_IF_ERROR(fn(r));
    pos += kRecordHeaderBytes + len;
  }
  if (pos != raw.size()) return Status::corruption("block holds bytes after its last record");
  return {};
}

}  // namespace walcut
