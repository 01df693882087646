// PartitionBucket, merges of sorted entries and spill files against std::map:
// the newest write of each key wins, deletes stay as tombstones, memory
// stays near the newest entries' bytes, damaged spill slices are refused,
// and a spill over several files at once keeps every copy's entries.
#include "replay/partition_bucket.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <thread>

#include "replay/route_sink.h"
#include "replay/spill_file.h"
#include "tests/testing/temp_dir.h"

namespace walcut {
namespace {

// key -> (value, version); a value of nullopt is a tombstone.
using Reference = std::map<std::string, std::pair<std::optional<std::string>, Version>>;

std::string text(ByteSpan b) { return std::string(reinterpret_cast<const char*>(b.data()), b.size()); }

Reference read_run(ByteSpan run) {
  Reference out;
  EXPECT_TRUE(run_is_well_formed(run, /*sorted=*/true));
  std::optional<std::string> last;  // std::string's order (unsigned bytes), not the run's own compare
  for (size_t at = 0; at < run.size(); at += run_entry_size(run.data() + at)) {
    RunEntry e = run_entry_at(run.data() + at);
    if (last) {
      EXPECT_LT(*last, std::string(e.key));
    }
    last = std::string(e.key);
    out[std::string(e.key)] = {e.tombstone ? std::nullopt : std::optional<std::string>(text(e.value)), e.version};
  }
  return out;
}

// The bucket's entries as one sorted run, leaving it empty.
RunBuffer take(PartitionBucket& b) {
  RunBuffer out;
  append_entries(b.sorted(), out);
  b.clear();
  return out;
}

DataEntry entry(const std::string& key, const std::optional<std::string>& value, Version v) {
  DataEntry d;
  d.op = value ? EntryOp::kUpdate : EntryOp::kDelete;
  d.key = as_bytes(key);
  if (value) d.value = as_bytes(*value);
  d.write_version = v;
  return d;
}

std::string random_key(std::mt19937_64& rng, size_t keys) {
  uint64_t k = rng() % keys;
  if (k == 0) return "";                               // the empty key sorts first
  if (k % 7 == 0) return "k" + std::to_string(k / 7);  // a prefix of other keys
  return "k" + std::to_string(k) + std::string(k % 3 == 0 ? 20 : 0, 'x');
}

// Adds n writes of random keys (random_key(rng, keys)) and values of up to
// max_value bytes of `fill` to b, and to ref what it must then hold.
void add_random(PartitionBucket& b, Reference& ref, std::mt19937_64& rng, uint64_t n, size_t keys, size_t max_value,
                char fill, uint32_t topology = 1) {
  for (uint64_t i = 0; i < n; ++i) {
    std::string key = random_key(rng, keys);
    std::string value(rng() % max_value, fill);
    b.add(entry(key, value, Version{topology, 1, i}));
    ref[key] = {value, Version{topology, 1, i}};
  }
}

TEST(PartitionBucket, TheNewestWriteOfEachKeyWinsAndDeletesStayAsTombstones) {
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    std::mt19937_64 rng(seed);
    PartitionBucket b;
    Reference ref;
    const size_t keys = seed % 2 ? 40 : 5000;
    int64_t bytes = 0;
    for (uint64_t i = 0; i < 30000; ++i) {
      std::string key = random_key(rng, keys);
      std::optional<std::string> value;
      if (rng() % 6 != 0) value = std::string(rng() % 4 == 0 ? rng() % 600 : 100, static_cast<char>('a' + i % 26));
      Version v{1, 1, i};
      bytes += b.add(entry(key, value, v));
      ref[key] = {value, v};
      ASSERT_EQ(static_cast<size_t>(bytes), b.bytes());
    }
    RunBuffer run = take(b);
    EXPECT_TRUE(b.empty());
    EXPECT_EQ(read_run(run.span()), ref) << "seed " << seed;
  }
}

TEST(PartitionBucket, MemoryStaysNearTheNewestEntries) {
  std::mt19937_64 rng(3);
  PartitionBucket b;
  size_t peak = 0;
  for (uint64_t i = 0; i < 200000; ++i) {
    std::string key = "key-" + std::to_string(rng() % 2000);
    // Values change size now and then, so entries move and die.
    b.add(entry(key, std::string(i % 7 == 0 ? 90 : 100, 'v'), Version{1, 1, i}));
    peak = std::max(peak, b.bytes());
  }
  RunBuffer run = take(b);
  const size_t newest = run.size();  // 2000 entries of 24 + ~8 + 100 bytes
  EXPECT_LT(newest, 2000u * 140);
  EXPECT_GT(newest, 2000u * 110);
  // The live entries, dead ones up to an eighth, a quarter of slack, and
  // under three 8-byte index slots per key.
  EXPECT_LE(peak, newest * 3 / 2 + 2000 * 24 + 4 * PartitionBucket::kDeadMinBytes) << "newest " << newest;
}

TEST(PartitionBucket, LargeEntriesOfChangingSizeDoNotPileUpDead) {
  PartitionBucket b;
  size_t peak = 0;
  for (uint64_t i = 0; i < 20000; ++i) {
    const size_t bytes = 512 + (i / 10 % 2 ? 100 : 200);  // each key changes size
    b.add(entry("key-" + std::to_string(i % 10), std::string(bytes, 'v'), Version{1, 1, i}));
    peak = std::max(peak, b.bytes());
  }
  EXPECT_LT(peak, 64u << 10) << "10 keys of under 1 KiB each";
  EXPECT_EQ(read_run(take(b).span()).size(), 10u);
}

TEST(PartitionBucket, ValuesLargerThanAChunkGetOneOfTheirOwnAndStillWin) {
  std::mt19937_64 rng(11);
  PartitionBucket b;
  Reference ref;
  for (uint64_t i = 0; i < 3000; ++i) {
    std::string key = random_key(rng, 300);
    std::optional<std::string> value;
    const uint64_t r = rng() % 50;
    if (r == 0) {
      value = std::string(ChunkPool::kClassBytes[ChunkPool::kClasses - 1] + rng() % 5000, 'L');  // over the largest chunk
    } else if (r != 1) {
      value = std::string(rng() % 300, static_cast<char>('a' + i % 26));
    }
    Version v{1, 1, i};
    b.add(entry(key, value, v));
    ref[key] = {value, v};
  }
  RunBuffer run = take(b);
  EXPECT_EQ(read_run(run.span()), ref);
}

TEST(PartitionBucket, ADeleteAndAWriteAgainTakeTheDeadEntriesPlaces) {
  // A delete changes a key's entry to a tombstone, and a write after it
  // back to a value: each leaves a dead entry of the other size, whose
  // place the next such change takes instead of growing the entries.
  ChunkPool::shared().release_free();
  PartitionBucket b;
  Reference ref;
  uint64_t v = 0;
  for (int i = 0; i < 2000; ++i) b.add(entry("key-" + std::to_string(i), std::string(100, 'v'), Version{1, 1, ++v}));
  const size_t before = b.bytes();
  for (int round = 0; round < 20; ++round) {
    for (int i = 0; i < 2000; ++i) {
      const std::string key = "key-" + std::to_string(i);
      b.add(entry(key, std::nullopt, Version{1, 1, ++v}));
      b.add(entry(key, std::string(100, 'w'), Version{1, 1, ++v}));
      ref[key] = {std::string(100, 'w'), Version{1, 1, v}};
    }
    EXPECT_LE(b.bytes(), before + before / 16) << "round " << round;
  }
  EXPECT_EQ(b.rewrites(), 0u) << "80000 changes of size, and no dead entry was left to rewrite";
  EXPECT_EQ(read_run(take(b).span()), ref);
}

// Segments added newest first, each in WAL order (epoch 1 the newest):
// the bucket holds what WAL order gives, with deletes, sizes that change
// within a segment (a dead entry rewritten), and more than 255 epochs,
// past which a slot's epoch value comes round again.
TEST(PartitionBucket, SegmentsAddedNewestFirstHoldWhatWalOrderGives) {
  std::mt19937_64 rng(11);
  for (int trial = 0; trial < 3; ++trial) {
    constexpr size_t kSegments = 700;
    std::vector<std::vector<DataEntry>> segments(kSegments);
    std::vector<std::string> keys, values;  // storage the entries point into
    keys.reserve(kSegments * 40);
    values.reserve(kSegments * 40);
    Reference ref;
    uint64_t order = 0;
    for (auto& seg : segments) {
      const size_t n = rng() % (trial == 0 ? 40 : 4);  // trial 1, 2: a key meets gaps of many epochs
      for (size_t i = 0; i < n; ++i) {
        keys.push_back(random_key(rng, trial == 2 ? 2000 : 60));
        const bool del = rng() % 8 == 0;
        values.push_back(std::string(rng() % 3 == 0 ? 300 : rng() % 40, static_cast<char>('a' + rng() % 26)));
        const Version v{1, 1, ++order};
        DataEntry d = entry(keys.back(), std::nullopt, v);
        if (!del) {  // the value from its storage: entry() would point into a copy
          d.op = EntryOp::kUpdate;
          d.value = as_bytes(values.back());
        }
        seg.push_back(d);
        ref[keys.back()] = {del ? std::nullopt : std::optional<std::string>(values.back()), v};
      }
    }
    PartitionBucket b;
    for (size_t s = kSegments; s-- > 0;) {
      const uint32_t epoch = static_cast<uint32_t>(kSegments - s);
      for (const DataEntry& e : segments[s]) {
        b.add(e, PartitionBucket::hash({reinterpret_cast<const char*>(e.key.data()), e.key.size()}), epoch);
      }
    }
    RunBuffer run = take(b);
    EXPECT_EQ(read_run(run.span()), ref) << "trial " << trial;
  }
}

// A key placed in epoch 1 and met again 255 epochs later, when the
// slot's epoch value is 1 again: the older entry must not win.
TEST(PartitionBucket, AnEpochsValueComingRoundNeverMakesAnOlderEntryWin) {
  for (uint32_t later : {255u, 256u, 257u, 511u, 512u}) {
    PartitionBucket b;
    const std::string key = "k";
    auto add = [&](const std::optional<std::string>& value, uint64_t order, uint32_t epoch) {
      b.add(entry(key, value, Version{1, 1, order}), PartitionBucket::hash(key), epoch);
    };
    add(std::string("newest"), 9, 1);
    add(std::string("older"), 5, later);
    add(std::nullopt, 6, later);  // a delete within the later epoch: still older than epoch 1
    RunBuffer run = take(b);
    Reference want{{key, {std::string("newest"), Version{1, 1, 9}}}};
    EXPECT_EQ(read_run(run.span()), want) << "later epoch " << later;
  }
}

TEST(SameKey, EveryByteOfKeysUpTo24BytesCounts) {
  for (size_t n = 0; n <= 24; ++n) {
    std::string a(n, 'a');
    for (size_t i = 0; i < n; ++i) a[i] = static_cast<char>('a' + i);
    const std::string same = a;  // another buffer
    EXPECT_TRUE(same_key(a, same)) << n;
    for (size_t i = 0; i < n; ++i) {
      std::string b = a;
      b[i] = static_cast<char>(b[i] ^ 0x80);
      EXPECT_FALSE(same_key(a, b)) << "byte " << i << " of " << n;
    }
    EXPECT_FALSE(same_key(a, a + "a")) << n;
    if (n > 0) {
      EXPECT_FALSE(same_key(a, a.substr(0, n - 1))) << n;
    }
  }
  EXPECT_TRUE(same_key(std::string_view{}, std::string_view{})) << "a view with no pointer is the empty key";
  EXPECT_TRUE(same_key(std::string_view{}, ""));
  EXPECT_FALSE(same_key(std::string_view{}, "a"));
}

TEST(EntryChunks, TheChunksAFreedBucketHeldAreTakenByTheNextOne) {
  auto fill = [](PartitionBucket& b) {
    for (uint64_t i = 0; i < 20000; ++i) b.add(entry("key-" + std::to_string(i), std::string(100, 'v'), Version{1, 1, i}));
  };
  ChunkPool& pool = ChunkPool::shared();
  pool.release_free();
  PartitionBucket first;
  fill(first);
  const size_t held = first.bytes();
  RunBuffer run = take(first);
  const size_t allocated = pool.allocated_bytes();
  EXPECT_GE(pool.free_bytes(), held - held / 4) << "what the bucket held went back to the pool";
  PartitionBucket second;
  fill(second);
  EXPECT_EQ(pool.allocated_bytes(), allocated) << "the next bucket took pooled chunks, none new";
  take(second);
  pool.release_free();
  EXPECT_EQ(pool.free_bytes(), 0u);
  EXPECT_EQ(pool.allocated_bytes(), 0u);
}

TEST(EntryChunks, ABucketsIndexIsAPooledChunkTheNextBucketTakesEmpty) {
  // An index of 128 to 8192 slots is a pool chunk: freed with its slots
  // still set, it must read as all free to the bucket that takes it next.
  ChunkPool& pool = ChunkPool::shared();
  pool.release_free();
  PartitionBucket first;
  first.use_huge_pages(true);
  for (uint64_t i = 0; i < 300; ++i) first.add(entry("old-" + std::to_string(i), "x", Version{1, 1, i}));
  EXPECT_EQ(pool.allocated_bytes(), first.bytes()) << "the index (512 slots for 300 keys) is a pool chunk too";
  first.clear();
  EXPECT_EQ(first.bytes(), 0u) << "nothing held, the index's bytes included (a spill's count relies on it)";
  EXPECT_EQ(pool.free_bytes(), pool.allocated_bytes()) << "the index went back to the pool";
  Reference ref;
  PartitionBucket second;
  second.use_huge_pages(true);
  for (uint64_t i = 0; i < 600; ++i) {
    const std::string key = (i % 2 ? "old-" : "new-") + std::to_string(i / 2);
    second.add(entry(key, "y", Version{1, 2, i}));
    ref[key] = {"y", Version{1, 2, i}};
  }
  EXPECT_EQ(read_run(take(second).span()), ref);
  pool.release_free();
  EXPECT_EQ(pool.allocated_bytes(), 0u);
}

TEST(EntryChunks, HugePageSlabsStayMappedWhileABucketHoldsTheirChunks) {
  ChunkPool& pool = ChunkPool::shared();
  pool.release_free();
  Reference ref;
  PartitionBucket held, freed;
  held.use_huge_pages(true);
  freed.use_huge_pages(true);
  for (uint64_t i = 0; i < 20000; ++i) {
    const std::string key = "key-" + std::to_string(i);
    held.add(entry(key, std::string(100, 'h'), Version{1, 1, i}));
    freed.add(entry(key, std::string(100, 'f'), Version{1, 1, i}));
    ref[key] = {std::string(100, 'h'), Version{1, 1, i}};
  }
  take(freed);
  pool.release_free();  // `held` still holds chunks cut from the slabs
  EXPECT_GE(pool.allocated_bytes(), held.bytes() / 2) << "the slabs and their free chunks stay";
  EXPECT_EQ(read_run(take(held).span()), ref) << "what the bucket holds is still there to read";
  pool.release_free();
  EXPECT_EQ(pool.allocated_bytes(), 0u) << "every chunk back: the slabs are unmapped";
  EXPECT_EQ(pool.free_bytes(), 0u);
}

TEST(EntryChunks, AReleaseBesideChunksBeingCutNeverUnmapsOneInUse) {
  // A restore ends (release_free) while another in the same process cuts
  // new chunks from a slab: a chunk counted only after the pool's lock
  // was let go could be unmapped as it was handed out.
  ChunkPool& pool = ChunkPool::shared();
  pool.release_free();
  std::atomic<bool> stop{false};
  std::thread releaser([&] {
    while (!stop) pool.release_free();
  });
  const int cls = ChunkPool::kClasses - 1;
  for (int i = 0; i < 20000; ++i) {
    std::byte* p = pool.get(cls, /*huge_page=*/true);
    std::memset(p, 1, ChunkPool::kClassBytes[cls]);
    pool.put(p, cls);
  }
  stop = true;
  releaser.join();
  pool.release_free();
  EXPECT_EQ(pool.allocated_bytes(), 0u);
}

TEST(EntryChunks, AFreeSmallerChunkTheEntryFitsIsTakenBeforeANewOneIsCut) {
  // A bucket's index leaves a 1 KiB chunk when it grows; entries of a
  // bucket past the 1 KiB chunks take it rather than a new 2 KiB one,
  // but never one their entry does not fit in.
  ChunkPool& pool = ChunkPool::shared();
  pool.release_free();
  pool.put(pool.get(0), 0);
  const size_t made = pool.allocated_bytes();
  int cls = 1;
  std::byte* p = pool.get_fitting(cls, /*smallest=*/1, false);
  EXPECT_EQ(cls, 1) << "the 1 KiB chunk is smaller than the entry";
  EXPECT_EQ(pool.allocated_bytes(), made + ChunkPool::kClassBytes[1]);
  pool.put(p, cls);
  cls = 2;
  std::byte* q = pool.get_fitting(cls, /*smallest=*/0, false);
  EXPECT_EQ(cls, 1) << "the largest free class under the one asked for";
  cls = 2;
  std::byte* r = pool.get_fitting(cls, /*smallest=*/0, false);
  EXPECT_EQ(cls, 0);
  EXPECT_EQ(pool.allocated_bytes(), made + ChunkPool::kClassBytes[1]) << "nothing new was cut";
  cls = 2;
  std::byte* s = pool.get_fitting(cls, /*smallest=*/0, false);
  EXPECT_EQ(cls, 2) << "none free: a new one of the class asked for";
  pool.put(q, 1);
  pool.put(r, 0);
  pool.put(s, 2);
  pool.release_free();
  EXPECT_EQ(pool.allocated_bytes(), 0u);

  // Through a bucket: its entries and index reuse what is free, and read back.
  std::mt19937_64 rng(3);
  PartitionBucket b;
  Reference ref;
  add_random(b, ref, rng, 3000, 300, 300, 'v');
  EXPECT_EQ(read_run(take(b).span()), ref);
}

TEST(EntryChunks, BucketsOnSeveralThreadsShareThePool) {
  // Each thread fills and frees buckets of its own, as replay's stripes and
  // the finish's tasks do, all through the one pool (run under TSan too).
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t, &wrong] {
      std::mt19937_64 rng(t);
      for (int round = 0; round < 20; ++round) {
        PartitionBucket b;
        Reference ref;
        add_random(b, ref, rng, 2000, 400, 200, static_cast<char>('a' + t));
        RunBuffer run = take(b);
        if (read_run(run.span()) != ref) ++wrong;
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
}

// Keys of 8 bytes and more that share their first 8 or differ in a byte
// past 0x7f (compared unsigned), with random_key's shorter ones.
std::string merge_key(std::mt19937_64& rng) {
  if (rng() % 2 == 0) return random_key(rng, 800);
  std::string key = "prefix_" + std::string(1, static_cast<char>(0x70 + rng() % 32));
  key += std::string(rng() % 3, static_cast<char>(0x7e + rng() % 4));
  return key;
}

TEST(SortedEntries, MergeKeepsTheLaterListsEntryForAKeyInSeveral) {
  for (size_t lists_count = 1; lists_count <= 4; ++lists_count) {
    std::mt19937_64 rng(9 + lists_count);
    std::vector<RunBuffer> runs(lists_count - 1);
    PartitionBucket last;  // the newest list points into a bucket, the others into runs
    Reference ref;
    for (size_t r = 0; r < lists_count; ++r) {
      PartitionBucket b;
      PartitionBucket& into = r < runs.size() ? b : last;
      for (uint64_t i = 0; i < 3000; ++i) {
        std::string key = merge_key(rng);
        std::optional<std::string> value;
        if (rng() % 5 != 0) value = "r" + std::to_string(r) + "-" + std::to_string(i);
        Version v{1, static_cast<uint32_t>(r), i};
        into.add(entry(key, value, v));
        ref[key] = {value, v};
      }
      if (r < runs.size()) runs[r] = take(b);
    }
    std::vector<SortedEntries> lists;
    for (const RunBuffer& r : runs) lists.push_back(entries_of(r.span()));
    lists.push_back(last.sorted());
    RunBuffer out;
    append_entries(merge_sorted(lists), out);
    EXPECT_EQ(read_run(out.span()), ref) << lists_count << " lists";
  }
}

TEST(SpillFile, SlicesReadBackAsWrittenAndDamageIsRefused) {
  testing::TempDir dir;
  Result<std::unique_ptr<SpillWriter>> w = SpillWriter::create(dir.file("0.spill"));
  ASSERT_TRUE(w.ok()) << w.status().to_string();
  std::vector<Reference> refs;
  std::vector<SpillSlice> slices;
  std::mt19937_64 rng(4);
  for (int s = 0; s < 50; ++s) {
    PartitionBucket b;
    Reference ref;
    add_random(b, ref, rng, 500, 300, 300, 'z', /*topology=*/2);
    Result<SpillSlice> slice = (*w)->append(b.sorted());
    b.clear();
    ASSERT_TRUE(slice.ok());
    slices.push_back(slice.value());
    refs.push_back(ref);
  }
  ASSERT_TRUE((*w)->finish().ok());
  w->reset();  // the slices keep the file
  EXPECT_FALSE(SpillWriter::create(dir.file("0.spill")).ok()) << "an existing file is never reused";
  ASSERT_TRUE(std::filesystem::exists(dir.file("0.spill"))) << "nor removed by the refused create";
  for (size_t i = 0; i < slices.size(); ++i) {
    RunBuffer back;
    ASSERT_TRUE(read_spill_slice(slices[i], back).ok());
    EXPECT_EQ(read_run(back.span()), refs[i]);
  }
  // One flipped byte in slice 7: its CRC catches it, the message names the file.
  int fd = ::open(dir.file("0.spill").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  std::byte b;
  off_t at = static_cast<off_t>(slices[7].offset + slices[7].bytes / 2);
  ASSERT_EQ(::pread(fd, &b, 1, at), 1);
  b ^= std::byte{0x10};
  ASSERT_EQ(::pwrite(fd, &b, 1, at), 1);
  ::close(fd);
  RunBuffer back;
  Status s = read_spill_slice(slices[7], back);
  EXPECT_EQ(s.code(), StatusCode::kCorruption);
  EXPECT_NE(s.message().find("0.spill"), std::string::npos) << s.message();
  EXPECT_TRUE(read_spill_slice(slices[8], back).ok());
  // Cut short: the message says where the file ends and which slice it cut.
  ASSERT_EQ(::truncate(dir.file("0.spill").c_str(), 100), 0);
  s = read_spill_slice(slices[20], back);
  EXPECT_EQ(s.code(), StatusCode::kCorruption);
  EXPECT_NE(s.message().find("0.spill: ends at offset 100, inside the slice of " + std::to_string(slices[20].bytes) +
                             " bytes at offset " + std::to_string(slices[20].offset)),
            std::string::npos)
      << s.message();
  slices.clear();
  EXPECT_FALSE(std::filesystem::exists(dir.file("0.spill"))) << "removed with its last slice";
}

// A pause's spill into several files at once (RouteSink::spill): each
// copy that holds entries gets one slice in one of them, read back as
// written, the files' shares about even, the buckets and the gauge
// emptied; the files' remover removes each once its slices are gone.
TEST(RouteSink, SpillsIntoSeveralFilesAtOnceAndItsRemoverRemovesThem) {
  testing::TempDir dir;
  std::vector<std::unique_ptr<RoutedCopy>> copies;
  std::vector<RoutedCopy*> routed;
  std::vector<Reference> refs;
  MemoryGauge gauge(1);
  std::mt19937_64 rng(11);
  for (uint16_t p = 0; p < 60; ++p) {
    copies.push_back(std::make_unique<RoutedCopy>());
    RoutedCopy& c = *copies.back();
    c.group_id = 3;
    c.partition = p;
    Reference ref;
    if (p % 10 != 9) add_random(c.bucket, ref, rng, 200, 150, 300, static_cast<char>('a' + p % 26));  // some empty
    gauge.add(static_cast<int64_t>(c.bucket.bytes()));
    refs.push_back(ref);
    routed.push_back(&c);
  }
  RouteSink sink(routed, gauge, /*others_ignored=*/false);
  auto remover = std::make_shared<FileRemover>();
  const char* const names[] = {"0.spill", "1.spill", "2.spill", "3.spill"};
  size_t made = 0;
  Result<uint64_t> written = sink.spill(3, [&] { return SpillWriter::create(dir.file(names[made++]), remover); });
  ASSERT_TRUE(written.ok()) << written.status().to_string();
  EXPECT_EQ(made, 3u);
  EXPECT_EQ(gauge.bytes(), 0);
  std::map<std::string, uint64_t> share;
  uint64_t total = 0;
  for (size_t i = 0; i < copies.size(); ++i) {
    RoutedCopy& c = *copies[i];
    EXPECT_TRUE(c.bucket.empty());
    if (refs[i].empty()) {
      EXPECT_TRUE(c.spilled.empty()) << "copy " << i;
      continue;
    }
    ASSERT_EQ(c.spilled.size(), 1u) << "copy " << i;
    RunBuffer back;
    ASSERT_TRUE(read_spill_slice(c.spilled[0], back).ok());
    EXPECT_EQ(read_run(back.span()), refs[i]) << "copy " << i;
    share[c.spilled[0].file->path] += c.spilled[0].bytes;
    total += c.spilled[0].bytes;
  }
  ASSERT_EQ(share.size(), 3u);
  EXPECT_EQ(total, written.value());
  for (const auto& [path, bytes] : share) EXPECT_GT(bytes, total / 6) << path;
  for (std::unique_ptr<RoutedCopy>& c : copies) c->spilled.clear();
  remover->drain();
  for (const char* name : names) EXPECT_FALSE(std::filesystem::exists(dir.file(name))) << name;

  // Fewer copies holding entries than pieces: a file each, none empty;
  // one copy far larger than the others still leaves each file a copy.
  copies[0]->bucket.add(entry("big", std::string(200000, 'b'), Version{1, 1, 1}));
  copies[1]->bucket.add(entry("small", "s", Version{1, 1, 2}));
  const char* const more[] = {"4.spill", "5.spill", "6.spill"};
  made = 0;
  written = sink.spill(3, [&] { return SpillWriter::create(dir.file(more[made++]), remover); });
  ASSERT_TRUE(written.ok()) << written.status().to_string();
  EXPECT_EQ(made, 2u);
  ASSERT_EQ(copies[0]->spilled.size(), 1u);
  ASSERT_EQ(copies[1]->spilled.size(), 1u);
  EXPECT_NE(copies[0]->spilled[0].file, copies[1]->spilled[0].file);
  EXPECT_EQ(copies[0]->spilled[0].bytes + copies[1]->spilled[0].bytes, written.value());
  EXPECT_TRUE(sink.spill(3, [&] { return SpillWriter::create(dir.file(more[made++]), remover); }).ok());
  EXPECT_EQ(made, 2u) << "nothing held: no file";
}

}  // namespace
}  // namespace walcut
