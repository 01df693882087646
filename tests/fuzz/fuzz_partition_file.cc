// A partition file (docs/partition-format.md), scanned as restore and check
// scan it. Each input is parsed as it is, then once more with its checksums
// fixed (header, each block walked from offset 24 while the lengths line up,
// the footer), so mutations reach the entry parser behind the CRCs.
#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/partition_file.h"
#include "io/crc32c.h"
#include "tests/fuzz/fuzz_util.h"

using namespace walcut;

namespace {

constexpr size_t kHeaderBytes = 24;
constexpr size_t kBlockHeaderBytes = 16;
constexpr size_t kFooterBytes = 40;
constexpr uint32_t kBlockMagic = 0x4b425057u;   // "WPBK"
constexpr uint32_t kFooterMagic = 0x54465057u;  // "WPFT"

// Returns whether any byte changed.
bool fix_checksums(Bytes& f) {
  const Bytes before = f;
  if (f.size() < kHeaderBytes) return false;
  store_u32(f.data() + 20, crc32c({f.data(), 20}));
  size_t off = kHeaderBytes;
  while (f.size() - off >= kBlockHeaderBytes && load_u32(f.data() + off) == kBlockMagic) {
    std::byte* h = f.data() + off;
    uint32_t payload_bytes = load_u32(h + 8);
    if (f.size() - off - kBlockHeaderBytes < payload_bytes) break;
    store_u32(h + 4, crc32c({h + kBlockHeaderBytes, payload_bytes}, crc32c({h + 8, 8})));
    off += kBlockHeaderBytes + payload_bytes;
  }
  if (f.size() - off >= kFooterBytes && load_u32(f.data() + off) == kFooterMagic) {
    store_u32(f.data() + off + 4, crc32c({f.data() + off + 8, kFooterBytes - 8}));
  }
  return f != before;
}

void scan(ByteSpan bytes) {
  uint64_t entry_bytes = 0;
  Result<PartitionFileScan> r = scan_partition_file("fuzz/part-0.bin", bytes,
                                                    [&](std::string_view key, ByteSpan value, const Version&) {
                                                      entry_bytes += key.size() + value.size();
                                                    });
  (void)r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ByteSpan in = fuzz::input_bytes(data, size);
  scan(in);
  Bytes fixed(in.begin(), in.end());
  if (fix_checksums(fixed)) scan(fixed);
  return 0;
}
