// The harnesses of the framed metadata files (node.meta, a full snapshot's
// and an increment's .smf; engine/meta_codec.h): each input is decoded as it
// is, then once more with its frame made consistent (body length and CRC
// rewritten), so mutations reach the body's decoder behind the CRC.
#pragma once

#include <cstddef>
#include <cstdint>

#include "io/crc32c.h"
#include "tests/fuzz/fuzz_util.h"

namespace walcut::fuzz {

// u64 magic | u32 version | u32 body bytes | body | u32 CRC32C, over the
// `size` bytes at `f`. Returns whether any byte changed.
inline bool fix_frame(std::byte* f, size_t size) {
  if (size < 20) return false;
  const uint32_t length = load_u32(f + 12), crc = load_u32(f + size - 4);
  store_u32(f + 12, static_cast<uint32_t>(size - 20));
  store_u32(f + size - 4, crc32c({f, size - 4}));
  return load_u32(f + 12) != length || load_u32(f + size - 4) != crc;
}

template <typename Decode>
void decode_both_ways(const uint8_t* data, size_t size, const Decode& decode) {
  ByteSpan in = input_bytes(data, size);
  decode(in);
  Bytes fixed(in.begin(), in.end());
  if (fix_frame(fixed.data(), fixed.size())) decode(ByteSpan(fixed));
}

}  // namespace walcut::fuzz
