// CRC32C (Castagnoli), the checksum of every walcut format.
#pragma once

#include <cstdint>

#include "io/coding.h"

namespace walcut {

// Standard CRC32C of `data` ("123456789" -> 0xE3069283), continued from the
// CRC32C of the bytes before it (`prev`, 0 for none), so
// crc32c(b, crc32c(a)) == crc32c(a ++ b).
// Cost: ISA-L's crc32_iscsi, tens of GB/s per core on x86 with SSE4.2/PCLMUL
// (see docs/benchmarks.md).
uint32_t crc32c(ByteSpan data, uint32_t prev = 0);

}  // namespace walcut
