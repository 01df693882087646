// Little-endian fixed-width encoding, the one used by every walcut format.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace walcut {

static_assert(std::endian::native == std::endian::little, "walcut formats assume a little-endian host");

using Bytes = std::vector<std::byte>;
using ByteSpan = std::span<const std::byte>;

inline void store_u16(std::byte* p, uint16_t v) { std::memcpy(p, &v, 2); }
inline void store_u32(std::byte* p, uint32_t v) { std::memcpy(p, &v, 4); }
inline void store_u64(std::byte* p, uint64_t v) { std::memcpy(p, &v, 8); }
inline uint16_t load_u16(const std::byte* p) { uint16_t v; std::memcpy(&v, p, 2); return v; }
inline uint32_t load_u32(const std::byte* p) { uint32_t v; std::memcpy(&v, p, 4); return v; }
inline uint64_t load_u64(const std::byte* p) { uint64_t v; std::memcpy(&v, p, 8); return v; }

// Keys in unsigned byte order, a prefix first (std::string_view's order),
// as -1, 0 or 1. Two keys of 8 bytes or more are told apart by their
// first 8 as one big-endian integer when those differ, and two of the
// same size up to 16 bytes by their last 8 next (the bytes they share
// with the first 8 are equal by then), without a call: a restore's finish
// compares a few keys for each entry it writes (its merge, and the
// partition files' order checks, reading and writing).
inline int compare_keys(std::string_view a, std::string_view b) {
  if (a.size() >= 8 && b.size() >= 8) {
    uint64_t x, y;
    std::memcpy(&x, a.data(), 8);
    std::memcpy(&y, b.data(), 8);
    if (x != y) return __builtin_bswap64(x) < __builtin_bswap64(y) ? -1 : 1;
    if (a.size() == b.size() && a.size() <= 16) {
      std::memcpy(&x, a.data() + a.size() - 8, 8);
      std::memcpy(&y, b.data() + b.size() - 8, 8);
      if (x == y) return 0;
      return __builtin_bswap64(x) < __builtin_bswap64(y) ? -1 : 1;
    }
  }
  const size_t n = std::min(a.size(), b.size());
  const int c = n == 0 ? 0 : std::memcmp(a.data(), b.data(), n);  // an empty view may hold no pointer
  if (c != 0) return c < 0 ? -1 : 1;
  return a.size() < b.size() ? -1 : a.size() > b.size() ? 1 : 0;
}

// Appends fixed-width little-endian values to a byte vector.
class Encoder {
 public:
  explicit Encoder(Bytes& out) : out_(out) {}
  void u8(uint8_t v) { out_.push_back(std::byte{v}); }
  void u16(uint16_t v) { grow(2, [&](std::byte* p) { store_u16(p, v); }); }
  void u32(uint32_t v) { grow(4, [&](std::byte* p) { store_u32(p, v); }); }
  void u64(uint64_t v) { grow(8, [&](std::byte* p) { store_u64(p, v); }); }
  void bytes(ByteSpan b) {
    if (!b.empty()) grow(b.size(), [&](std::byte* p) { std::memcpy(p, b.data(), b.size()); });
  }

 private:
  template <typename F>
  void grow(size_t n, F&& f) {
    size_t at = out_.size();
    out_.resize(at + n);
    f(out_.data() + at);
  }
  Bytes& out_;
};

// Reads fixed-width little-endian values from a span. Reading past the end
// sets a sticky failure flag and yields zeros, so a caller checks once.
class Decoder {
 public:
  explicit Decoder(ByteSpan in) : in_(in) {}
  uint8_t u8() { return take(1) ? static_cast<uint8_t>(in_[pos_ - 1]) : 0; }
  uint16_t u16() { return take(2) ? load_u16(&in_[pos_ - 2]) : 0; }
  uint32_t u32() { return take(4) ? load_u32(&in_[pos_ - 4]) : 0; }
  uint64_t u64() { return take(8) ? load_u64(&in_[pos_ - 8]) : 0; }
  ByteSpan bytes(size_t n) { return take(n) ? in_.subspan(pos_ - n, n) : ByteSpan{}; }
  // The next n bytes, taken with one bounds check: for a fixed layout read
  // with load_*() (null, and failed, when fewer remain).
  const std::byte* raw(size_t n) { return take(n) ? in_.data() + pos_ - n : nullptr; }

  bool failed() const { return failed_; }
  size_t position() const { return pos_; }
  size_t remaining() const { return in_.size() - pos_; }

 private:
  bool take(size_t n) {
    if (failed_ || in_.size() - pos_ < n) {
      failed_ = true;
      return false;
    }
    pos_ += n;
    return true;
  }
  ByteSpan in_;
  size_t pos_ = 0;
  bool failed_ = false;
};

inline ByteSpan as_bytes(const std::string& s) { return {reinterpret_cast<const std::byte*>(s.data()), s.size()}; }
inline std::string to_string(ByteSpan b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

}  // namespace walcut
