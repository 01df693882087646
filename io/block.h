// Blocks: whole records packed together, compressed as one unit and covered
// by one CRC32C. Any block decodes on its own, which is what lets replay
// decode on all cores.
#pragma once

#include <cstdint>
#include <functional>

#include "io/coding.h"
#include "io/status.h"
#include "io/wal_format.h"

namespace walcut {

// One record inside a decoded block.
struct RecordView {
  RecordType type;
  WalPointer pointer;
  ByteSpan payload;
};

// Packs records into a block's raw payload. Cost: one copy of each payload.
class BlockBuilder {
 public:
  // Appends a record. The caller keeps raw_bytes() within its block limit.
  void add(RecordType type, ByteSpan payload);
  uint32_t raw_bytes() const { return static_cast<uint32_t>(raw_.size()); }
  uint32_t record_count() const { return count_; }
  bool empty() const { return count_ == 0; }
  void clear() {
    raw_.clear();
    count_ = 0;
  }
  const Bytes& raw() const { return raw_; }

 private:
  Bytes raw_;
  uint32_t count_ = 0;
};

// A block's payload as it will be stored, before its position is known.
struct SealedBlock {
  Bytes stored;  // compressed, or a copy of raw for kNone
  uint32_t raw_bytes = 0;
  uint32_t record_count = 0;
  Codec codec = Codec::kNone;
  size_t stored_bytes_total() const { return kBlockHeaderBytes + stored.size(); }
};

// Compresses the builder's records with `codec`; falls back to kNone for a
// block LZ4 cannot shrink. Cost: one LZ4 compression pass.
SealedBlock seal_block(const BlockBuilder& b, Codec codec);

// Appends header + payload of `block` placed at `first` to `out`.
void place_block(const SealedBlock& block, WalPointer first, uint64_t sync_start, Bytes& out);

// The raw payload of a validated block: `stored` itself for kNone, or
// decompressed into `scratch` for kLz4. Fails with kCorruption when LZ4 does
// not produce exactly header.raw_bytes.
Result<ByteSpan> block_raw_payload(const BlockHeader& h, ByteSpan stored, Bytes& scratch);

// The corruption for_each_record() reports: a block whose framing does not
// hold (`what`) at raw offset `pos`.
Status record_framing_error(const char* what, size_t pos);

// Calls fn(const RecordView&) for each record of a raw payload, in order.
// Fails with kCorruption when the framing disagrees with the header (record
// count, lengths, unknown type); `fn` may return a non-ok Status to stop.
// In the header: replay calls it for every record, and `fn` inlined into
// the loop saves an indirect call a record.
template <typename F>
Status for_each_record(const BlockHeader& h, ByteSpan raw, F&& fn) {
  size_t pos = 0;
  for (uint32_t i = 0; i < h.record_count; ++i) {
    if (raw.size() - pos < kRecordHeaderBytes) return record_framing_error("block ends inside a record header", pos);
    const std::byte* p = raw.data() + pos;
    const uint8_t type = static_cast<uint8_t>(p[0]);
    const uint32_t len = load_u32(p + 4);
    if (type < 1 || type > kRecordTypeMax || p[1] != std::byte{0} || load_u16(p + 2) != 0) {
      return record_framing_error("bad record header", pos);
    }
    if (raw.size() - pos - kRecordHeaderBytes < len) return record_framing_error("record overruns its block", pos);
    RecordView r{static_cast<RecordType>(type), WalPointer{h.first.segment, h.first.offset + pos},
                 raw.subspan(pos + kRecordHeaderBytes, len)};
    WALCUT_RETURN_IF_ERROR(fn(r));
    pos += kRecordHeaderBytes + len;
  }
  if (pos != raw.size()) return record_framing_error("block holds bytes after its last record", pos);
  return {};
}

}  // namespace walcut
