#include "io/crc32c.h"

#include <isa-l/crc.h>

#include <climits>

namespace walcut {

uint32_t crc32c(ByteSpan data, uint32_t prev) {
  // ISA-L works on the un-inverted register; the standard CRC inverts in and out.
  uint32_t crc = ~prev;
  auto* p = reinterpret_cast<unsigned char*>(const_cast<std::byte*>(data.data()));
  size_t n = data.size();
  while (n > 0) {
    int step = n > static_cast<size_t>(INT_MAX) ? INT_MAX : static_cast<int>(n);
    crc = crc32_iscsi(p, step, crc);
    p += step;
    n -= static_cast<size_t>(step);
  }
  return ~crc;
}

}  // namespace walcut
