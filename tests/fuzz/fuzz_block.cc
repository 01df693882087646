// A block: its 48-byte header, then its stored payload. The harness sets the
// header's stored_bytes to the payload it was given (as BlockReader hands
// over exactly that many bytes), then runs what replay runs on a block whose
// CRC matched: the header checks, LZ4, the record framing, each record's
// payload decoder.
#include <cstddef>
#include <cstdint>

#include "io/block.h"
#include "io/records.h"
#include "tests/fuzz/fuzz_util.h"

using namespace walcut;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < kBlockHeaderBytes) return 0;
  ByteSpan input = fuzz::input_bytes(data, size);
  Bytes header(input.begin(), input.begin() + kBlockHeaderBytes);
  store_u32(header.data() + 8, static_cast<uint32_t>(size - kBlockHeaderBytes));
  BlockHeader h;
  if (!BlockHeader::parse(header.data(), h)) return 0;
  ByteSpan stored = input.subspan(kBlockHeaderBytes);
  (void)block_crc(header.data(), stored);
  Bytes scratch;
  Result<ByteSpan> raw = block_raw_payload(h, stored, scratch);
  if (!raw.ok()) return 0;
  (void)for_each_record(h, raw.value(), [](const RecordView& r) -> Status {
    Result<RecordPayload> p = decode_payload(r.type, r.payload);
    if (p.ok()) (void)describe_payload(p.value());
    if (r.type == RecordType::kData) {
      size_t key_bytes = 0;
      (void)for_each_data_entry(r.payload, [&](const DataEntry& e) { key_bytes += e.key.size() + e.value.size(); });
    }
    return {};
  });
  return 0;
}
