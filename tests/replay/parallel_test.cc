// replay/parallel.h: Remainder against the `%` it replaces.
#include "replay/parallel.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>

namespace walcut {
namespace {

TEST(Remainder, EqualsTheDivisionsRemainderForEveryDivisorAThreadCountCanBe) {
  std::mt19937_64 rng(7);
  for (uint32_t d = 1; d <= 1024; ++d) {
    const Remainder r(d);
    for (uint32_t x : {0u, 1u, d - 1, d, d + 1, 2 * d - 1, 65537u, UINT32_MAX - 1, UINT32_MAX}) {
      ASSERT_EQ(r.of(x), x % d) << x << " % " << d;
    }
    for (int i = 0; i < 2000; ++i) {
      const auto x = static_cast<uint32_t>(rng());
      ASSERT_EQ(r.of(x), x % d) << x << " % " << d;
    }
  }
}

TEST(Remainder, EqualsTheDivisionsRemainderForLargeDivisors) {
  std::mt19937_64 rng(11);
  for (int k = 0; k < 200; ++k) {
    const auto d = static_cast<uint32_t>(rng() | 1u);
    const Remainder r(d);
    for (int i = 0; i < 1000; ++i) {
      const auto x = static_cast<uint32_t>(rng());
      ASSERT_EQ(r.of(x), x % d) << x << " % " << d;
    }
    ASSERT_EQ(r.of(UINT32_MAX), UINT32_MAX % d);
  }
}

}  // namespace
}  // namespace walcut
