// An online backup file (docs/backup-format.md), through read_backup_file().
// Each input is read as it is, then once more with its checksums fixed
// (each section's, walked from offset 12 while the lengths line up, and
// the frame of the node metadata inside META), so mutations reach the
// section decoders behind the CRCs.
#include <cstddef>
#include <cstdint>

#include "engine/backup.h"
#include "tests/fuzz/fuzz_meta.h"

using namespace walcut;

namespace {

constexpr size_t kFileHeaderBytes = 12;
constexpr size_t kSectionHeaderBytes = 12;  // u32 type, u64 body bytes
constexpr uint32_t kMetaSection = 1;

bool fix_checksums(Bytes& f) {
  const Bytes before = f;
  size_t off = kFileHeaderBytes;
  while (f.size() >= off && f.size() - off >= kSectionHeaderBytes + 4) {
    std::byte* s = f.data() + off;
    uint64_t body_bytes = load_u64(s + 4);
    if (body_bytes > f.size() - off - kSectionHeaderBytes - 4) break;
    std::byte* body = s + kSectionHeaderBytes;
    if (load_u32(s) == kMetaSection && body_bytes >= 4 && load_u32(body) <= body_bytes - 4) {
      fuzz::fix_frame(body + 4, load_u32(body));
    }
    store_u32(body + body_bytes, crc32c({s, kSectionHeaderBytes + body_bytes}));
    off += kSectionHeaderBytes + body_bytes + 4;
  }
  return f != before;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ByteSpan in = fuzz::input_bytes(data, size);
  (void)read_backup_file(fuzz::write_scratch("node.backup", in));
  Bytes fixed(in.begin(), in.end());
  if (fix_checksums(fixed)) (void)read_backup_file(fuzz::write_scratch("node.backup", fixed));
  return 0;
}
