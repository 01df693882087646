// RestoreTable against std::map: random puts, overwrites of every size,
// deletes (tombstones with their version), long and empty keys, growth, and
// the arena's bound on memory.
#include "replay/restore_table.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <random>
#include <string>

#include "engine/partition_file.h"
#include "io/stream_copy.h"
#include "tests/testing/temp_dir.h"

namespace walcut {
namespace {

using Reference = std::map<std::string, std::pair<std::string, Version>>;

ByteSpan span_of(const std::string& s) { return as_bytes(s); }
std::string text(ByteSpan b) { return std::string(reinterpret_cast<const char*>(b.data()), b.size()); }

void expect_same(const RestoreTable& t, const Reference& ref) {
  stream_fence();
  ASSERT_EQ(t.size(), ref.size());
  auto sorted = t.sorted();
  ASSERT_EQ(sorted.size(), ref.size());
  auto it = ref.begin();
  for (const auto& [key, value] : sorted) {
    ASSERT_EQ(key, it->first);
    ASSERT_EQ(text(value.bytes), it->second.first) << key;
    ASSERT_EQ(value.version, it->second.second) << key;
    ++it;
  }
  for (const auto& [key, v] : ref) {
    std::optional<RestoreTable::Value> found = t.find(key);
    ASSERT_TRUE(found.has_value()) << key;
    ASSERT_EQ(text(found->bytes), v.first);
  }
}

std::string random_key(std::mt19937_64& rng, size_t keys) {
  uint64_t k = rng() % keys;
  // Some keys fit the slot (up to 16 bytes), some live in the arena, one is empty.
  if (k == 0) return "";
  if (k % 3 == 0) return "a-long-key-that-does-not-fit-inline-" + std::to_string(k);
  return "k" + std::to_string(k);
}

TEST(RestoreTable, RandomOperationsMatchAMap) {
  HugeArena arena(4 << 20);  // small regions, so the test also crosses several
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    std::mt19937_64 rng(seed);
    RestoreTable t(seed % 3 == 0 ? nullptr : &arena);  // heap and arena alike
    Reference ref;
    std::map<std::string, Version> deleted;
    const size_t keys = seed % 2 ? 50 : 3000;  // few keys: many deletes and reuses; many: growth
    for (uint64_t i = 0; i < 40000; ++i) {
      std::string key = random_key(rng, keys);
      if (rng() % 5 == 0) {
        t.remove(key, Version{1, 1, i});
        ref.erase(key);
        deleted[key] = Version{1, 1, i};
        continue;
      }
      // Sizes change now and then: in place, smaller, larger, empty.
      size_t size = rng() % 4 == 0 ? rng() % 3000 : 100;
      std::string value(size, static_cast<char>('a' + i % 26));
      Version v{1, 1, i};
      t.put(key, span_of(value), v);
      ref[key] = {value, v};
      deleted.erase(key);
    }
    expect_same(t, ref);
    std::map<std::string, Version> tombstones;
    t.for_each_with_tombstones([&](std::string_view k, const RestoreTable::Value& v) {
      if (v.deleted) tombstones[std::string(k)] = v.version;
    });
    EXPECT_EQ(tombstones, deleted);
    EXPECT_EQ(t.tombstone_count(), deleted.size());
  }
}

// A delete keeps the key with the delete's version, so a merge by newest
// version sees it; it is not an entry for anything else, and a later put
// brings the key back.
TEST(RestoreTable, DeletesLeaveTombstonesThatCarryTheirVersion) {
  RestoreTable t;
  t.put("kept", span_of("v1"), Version{1, 1, 1});
  t.put("gone", span_of("v2"), Version{1, 1, 2});
  t.remove("gone", Version{1, 1, 5});
  t.remove("never-there", Version{1, 1, 6});
  EXPECT_EQ(t.size(), 1u);
  EXPECT_EQ(t.tombstone_count(), 2u);
  EXPECT_FALSE(t.find("gone").has_value());
  EXPECT_FALSE(t.find("never-there").has_value());
  std::map<std::string, RestoreTable::Value> all;
  t.for_each_with_tombstones([&](std::string_view k, const RestoreTable::Value& v) { all.emplace(k, v); });
  ASSERT_EQ(all.size(), 3u);
  EXPECT_TRUE(all["gone"].deleted);
  EXPECT_EQ(all["gone"].version, (Version{1, 1, 5}));
  EXPECT_EQ(all["gone"].bytes.size(), 0u);
  EXPECT_EQ(all["never-there"].version, (Version{1, 1, 6}));
  EXPECT_FALSE(all["kept"].deleted);
  std::vector<std::string> live;
  t.for_each([&](std::string_view k, const RestoreTable::Value&) { live.emplace_back(k); });
  EXPECT_EQ(live, std::vector<std::string>{"kept"});
  auto sorted = t.sorted();
  ASSERT_EQ(sorted.size(), 1u);
  EXPECT_EQ(sorted[0].first, "kept");
  t.put("gone", span_of(""), Version{1, 1, 7});  // back, with an empty value
  EXPECT_EQ(t.size(), 2u);
  EXPECT_EQ(t.tombstone_count(), 1u);
  ASSERT_TRUE(t.find("gone").has_value());
  EXPECT_EQ(t.find("gone")->version, (Version{1, 1, 7}));
  EXPECT_FALSE(t.find("gone")->deleted);
}

TEST(RestoreTable, DeletingEveryKeyInAnyOrderLeavesItEmptyAndUsable) {
  std::mt19937_64 rng(11);
  RestoreTable t;
  std::vector<std::string> keys;
  for (int i = 0; i < 5000; ++i) keys.push_back("key" + std::to_string(i));
  for (const std::string& k : keys) t.put(k, span_of(k), Version{});
  std::shuffle(keys.begin(), keys.end(), rng);
  for (size_t i = 0; i < keys.size(); ++i) {
    t.remove(keys[i], Version{});
    if (i % 997 == 0) {  // every key not yet removed is still found past the tombstones
      for (size_t j = i + 1; j < keys.size(); ++j) ASSERT_TRUE(t.find(keys[j]).has_value()) << keys[j];
    }
  }
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(t.tombstone_count(), keys.size());
  EXPECT_FALSE(t.find(keys[0]).has_value());
  t.put("again", span_of("value"), Version{});
  EXPECT_EQ(text(t.find("again")->bytes), "value");
}

TEST(RestoreTable, TablesSharingAnArenaMoveAndReuseSlabs) {
  HugeArena arena;
  Reference ref;
  RestoreTable moved;
  {
    RestoreTable t(&arena);
    for (int i = 0; i < 20000; ++i) {
      std::string key = "k" + std::to_string(i % 7000);
      std::string value(500 + i % 7 * 100, static_cast<char>('a' + i % 26));
      t.put(key, span_of(value), Version{1, 1, static_cast<uint64_t>(i)});
      ref[key] = {value, Version{1, 1, static_cast<uint64_t>(i)}};
    }
    moved = std::move(t);
  }
  expect_same(moved, ref);
  const size_t mapped = arena.mapped_bytes();
  moved = RestoreTable(&arena);  // gives its slabs back
  RestoreTable again(&arena);
  std::string value(1000, 'z');
  for (int i = 0; i < 2000; ++i) again.put("k" + std::to_string(i), span_of(value), Version{});
  EXPECT_EQ(arena.mapped_bytes(), mapped) << "the second table should reuse the first one's slabs";
  EXPECT_EQ(again.size(), 2000u);
}

TEST(RestoreTable, MemoryStaysWithinTwiceTheLiveValues) {
  RestoreTable t;
  std::mt19937_64 rng(5);
  // Values that keep changing size move every time: without compaction the
  // arena would grow with the number of operations.
  for (uint64_t i = 0; i < 200000; ++i) {
    std::string key = "k" + std::to_string(rng() % 1000);
    std::string value(100 + rng() % 2000, 'x');
    t.put(key, span_of(value), Version{});
  }
  EXPECT_EQ(t.size(), 1000u);
  EXPECT_LE(t.arena_bytes(), 2 * t.live_bytes() + (4 << 20) + (64 << 10));
}

// Deleted and re-created keys of one value size, as a replay sees them:
// the bytes a delete leaves behind are the next value's, so the arena holds
// the live values and little more (without the spares its peak here was
// half as much again: 6.4 MB for 4.2).
TEST(RestoreTable, SameSizeValuesReuseTheBytesDeletesLeave) {
  RestoreTable t;
  std::mt19937_64 rng(9);
  const std::string value(1024, 'v');
  Reference ref;
  for (int i = 0; i < 4000; ++i) {
    t.put("k" + std::to_string(i), span_of(value), Version{});
    ref["k" + std::to_string(i)] = {value, Version{}};
  }
  const uint64_t before = t.arena_bytes();
  uint64_t most = 0;
  for (int i = 0; i < 100000; ++i) {
    std::string key = "k" + std::to_string(rng() % 4000);
    if (ref.count(key)) {
      t.remove(key, Version{1, 1, static_cast<uint64_t>(i)});
      ref.erase(key);
    } else {
      std::string v(1024, static_cast<char>('a' + i % 26));
      t.put(key, span_of(v), Version{1, 1, static_cast<uint64_t>(i)});
      ref[key] = {v, Version{1, 1, static_cast<uint64_t>(i)}};
    }
    most = std::max(most, t.arena_bytes());
  }
  expect_same(t, ref);
  EXPECT_LE(most, before + (64 << 10)) << "a delete's bytes should serve the next insert";
}

// A table that doubles its slot array gives the array it outgrew back to
// the arena, whose next slabs come from it rather than from fresh memory.
TEST(RestoreTable, OutgrownSlotArraysBecomeSlabs) {
  HugeArena arena(2 << 20);  // regions of 2 MiB, so that a fresh one shows
  RestoreTable keys_only(&arena);
  for (int i = 0; i < 100000; ++i) keys_only.put("k" + std::to_string(i), {}, Version{});
  const size_t mapped = arena.mapped_bytes();
  // 2^17 slots now: the arrays of 2^10..2^16 slots it outgrew (8 MiB) are slabs.
  RestoreTable values(&arena);
  const std::string value(1000, 'x');
  for (int i = 0; i < 7000; ++i) values.put("v" + std::to_string(i), span_of(value), Version{});
  // Its own slot arrays may take one fresh region; its values take none
  // (without the reuse, about five more).
  EXPECT_LE(arena.mapped_bytes(), mapped + (2 << 20)) << "7 MB of values should fit in the outgrown arrays";
  EXPECT_EQ(keys_only.size(), 100000u);
  EXPECT_EQ(values.find("v6999")->bytes.size(), 1000u);
}

TEST(RestoreTable, WritesAPartitionFileThatReadsBackSorted) {
  testing::TempDir dir;
  RestoreTable t;
  EntryMap expected;
  for (int i = 0; i < 3000; ++i) {
    std::string key = "key" + std::to_string(i * 7919 % 3001);
    std::string value(i % 50, 'v');
    t.put(key, span_of(value), Version{2, 1, static_cast<uint64_t>(i)});
    expected[key] = StoredValue{value, Version{2, 1, static_cast<uint64_t>(i)}};
  }
  const std::string path = dir.path() + "/part.bin";
  auto source = [&](const PartitionEntryFn& fn) {
    for (const auto& [key, value] : t.sorted()) fn(key, value.bytes, value.version);
  };
  ASSERT_TRUE(write_partition_file_from(path, {1, 2, 0}, source).ok());
  Result<PartitionFile> back = read_partition_file(path);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(back->entries, expected);
  EXPECT_EQ(back->hashes, hash_entries(expected));
}

TEST(RestoreTable, EntriesOutOfOrderAreRefusedAndLeaveNoFile) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/part.bin";
  auto source = [&](const PartitionEntryFn& fn) {
    fn("b", span_of("1"), Version{});
    fn("a", span_of("2"), Version{});
  };
  Status s = write_partition_file_from(path, {1, 2, 0}, source);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("order"), std::string::npos) << s.message();
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

}  // namespace
}  // namespace walcut
