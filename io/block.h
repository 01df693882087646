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

// Calls fn(const RecordView&) for each record of a raw payload, in order.
// Fails with kCorruption when the framing disagrees with the header (record
// count, lengths, unknown type); `fn` may return a non-ok Status to stop.
Status for_each_record(const BlockHeader& h, ByteSpan raw, const std::function<Status(const RecordView&)>& fn);

}  // namespace walcut
