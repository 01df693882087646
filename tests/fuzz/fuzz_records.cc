// A record payload: one byte, the record type (any value, known or not),
// then the payload. Runs the payload decoder, the text a dump prints, and
// for DATA the allocation-free entry walk replay uses.
#include <cstddef>
#include <cstdint>

#include "io/records.h"
#include "tests/fuzz/fuzz_util.h"

using namespace walcut;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const auto type = static_cast<RecordType>(data[0]);
  ByteSpan payload = fuzz::input_bytes(data, size).subspan(1);
  Result<RecordPayload> p = decode_payload(type, payload);
  if (p.ok()) {
    (void)describe_payload(p.value());
    // What decodes must encode back to the same bytes: the format has one spelling per value.
    if (encode_payload(p.value()) != Bytes(payload.begin(), payload.end())) __builtin_trap();
  }
  if (type == RecordType::kData) {
    uint64_t entries = 0;
    (void)for_each_data_entry(payload, [&](const DataEntry&) { ++entries; });
  }
  return 0;
}
