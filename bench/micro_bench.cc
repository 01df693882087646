// Micro-benchmarks of the CPU work replay does per block: the CRC32C check,
// LZ4 decompression, record/entry parsing, the apply into a partition's
// bucket, and the restore's routing of small entries to thousands of
// buckets beside the bare memory traffic it needs. Results:
// docs/benchmarks.md.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "io/block.h"
#include "io/crc32c.h"
#include "io/records.h"
#include "replay/partition_bucket.h"
#include "replay/route_sink.h"

namespace walcut {
namespace {

// The writer's default block limit: blocks on disk are at most this big.
constexpr uint32_t kBlockRawBytesLimit = 64u << 10;
constexpr uint32_t kEntriesPerRecord = 4;
constexpr size_t kValueBytes = 100;

// A block of DATA records like a WAL holds: 8-byte keys, ~100-byte values
// over a 4-letter alphabet (compressible, as real rows are), 4 entries per
// record, packed up to the writer's default 64 KiB limit.
BlockBuilder make_data_block() {
  std::mt19937_64 rng(42);
  BlockBuilder b;
  uint64_t order = 1;
  for (;;) {
    Bytes payload;
    std::vector<Bytes> keys(kEntriesPerRecord), values(kEntriesPerRecord);
    for (uint32_t i = 0; i < kEntriesPerRecord; ++i) {
      keys[i].resize(8);
      store_u64(keys[i].data(), rng() % 1000000);
      values[i].resize(kValueBytes - 8 + rng() % 17);  // 92..108 bytes
      for (auto& byte : values[i]) byte = std::byte{static_cast<uint8_t>('a' + rng() % 4)};
      DataEntry e;
      e.group_id = 1 + static_cast<uint32_t>(rng() % 3);
      e.partition = static_cast<uint16_t>(rng() % 1024);
      e.write_version = Version{1, 1, order};
      e.near_xid = e.write_version;
      e.key = keys[i];
      e.value = values[i];
      append_data_entry(payload, e);
    }
    finish_data_payload(payload, kEntriesPerRecord);
    if (b.raw_bytes() + kRecordHeaderBytes + payload.size() > kBlockRawBytesLimit) break;
    b.add(RecordType::kData, payload);
    ++order;
  }
  return b;
}

// A header for `sealed` as the reader would see it after validation.
BlockHeader header_of(const SealedBlock& sealed) {
  BlockHeader h;
  h.stored_bytes = static_cast<uint32_t>(sealed.stored.size());
  h.raw_bytes = sealed.raw_bytes;
  h.record_count = sealed.record_count;
  h.codec = sealed.codec;
  h.first = WalPointer{0, kSegmentHeaderBytes + kBlockHeaderBytes};
  return h;
}

void BM_Crc32c(benchmark::State& state) {
  Bytes data(static_cast<size_t>(state.range(0)));
  std::mt19937 rng(1);
  for (auto& byte : data) byte = std::byte{static_cast<uint8_t>(rng())};
  uint32_t crc = 0;
  for (auto _ : state) {
    crc = crc32c(data, crc);
    benchmark::DoNotOptimize(crc);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_Crc32c)->Arg(4 << 10)->Arg(64 << 10)->Arg(1 << 20);

void BM_Lz4DecodeBlock(benchmark::State& state) {
  const SealedBlock sealed = seal_block(make_data_block(), Codec::kLz4);
  if (sealed.codec != Codec::kLz4) {
    state.SkipWithError("LZ4 did not shrink the block");
    return;
  }
  const BlockHeader h = header_of(sealed);
  Bytes scratch(h.raw_bytes);
  for (auto _ : state) {
    Result<ByteSpan> raw = block_raw_payload(h, sealed.stored, scratch);
    if (!raw.ok()) {
      state.SkipWithError(raw.status().to_string().c_str());
      return;
    }
    benchmark::DoNotOptimize(raw->data());
    benchmark::ClobberMemory();
  }
  // Throughput counts the raw (decompressed) bytes produced.
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * h.raw_bytes);
  state.counters["raw_bytes"] = h.raw_bytes;
  state.counters["ratio"] = static_cast<double>(h.raw_bytes) / static_cast<double>(h.stored_bytes);
}
BENCHMARK(BM_Lz4DecodeBlock);

void BM_ParseBlock(benchmark::State& state) {
  const BlockBuilder builder = make_data_block();
  const SealedBlock sealed = seal_block(builder, Codec::kNone);
  const BlockHeader h = header_of(sealed);
  uint64_t entries = 0;
  for (auto _ : state) {
    Status s = for_each_record(h, sealed.stored, [&](const RecordView& r) -> Status {
      if (r.type != RecordType::kData) return {};
      return for_each_data_entry(r.payload, [&](const DataEntry& e) {
        benchmark::DoNotOptimize(e.value.data());
        ++entries;
      });
    });
    if (!s.ok()) {
      state.SkipWithError(s.to_string().c_str());
      return;
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * h.record_count);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * h.raw_bytes);
  state.counters["entries"] = benchmark::Counter(static_cast<double>(entries), benchmark::Counter::kIsRate);
  state.counters["records_per_block"] = h.record_count;
}
BENCHMARK(BM_ParseBlock);

// Replay's apply into PartitionBucket (replay/partition_bucket.h), as on the
// restore benchmark: overwrites at random keys, an append per entry, the tail
// sorted and written into the runs now and then. Args: value bytes,
// partitions, keys per partition (1024, 128, 3125: 1 KiB values, 400,000
// keys; 100, 4096, 100: small entries over many partitions).
void BM_PartitionBucketOverwrite(benchmark::State& state) {
  const size_t value_bytes = static_cast<size_t>(state.range(0));
  const size_t partitions = static_cast<size_t>(state.range(1));
  const size_t keys_per = static_cast<size_t>(state.range(2));
  constexpr size_t kOps = 1 << 16;
  std::vector<PartitionBucket> buckets(partitions);
  std::vector<std::string> keys(keys_per);
  for (size_t k = 0; k < keys_per; ++k) keys[k] = "k" + std::to_string(10000000 + k);
  Bytes value(value_bytes, std::byte{'v'});
  auto entry = [&](const std::string& key, uint64_t order) {
    DataEntry d;
    d.key = as_bytes(key);
    d.value = value;
    d.write_version = Version{1, 1, order};
    return d;
  };
  for (PartitionBucket& b : buckets) {
    for (const std::string& k : keys) b.add(entry(k, 1));
    b.compact();
  }
  std::mt19937_64 rng(7);
  std::vector<std::pair<PartitionBucket*, const std::string*>> ops(kOps);
  for (auto _ : state) {
    state.PauseTiming();
    for (auto& op : ops) op = {&buckets[rng() % partitions], &keys[rng() % keys_per]};
    state.ResumeTiming();
    for (size_t i = 0; i < ops.size(); ++i) ops[i].first->add(entry(*ops[i].second, i + 2));
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kOps));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kOps * value_bytes));
}
BENCHMARK(BM_PartitionBucketOverwrite)->Args({1024, 128, 3125})->Args({100, 4096, 100})->Unit(benchmark::kMillisecond);

// The restore's routing of `small`'s entries (one node: 2048 copies, 195
// keys of 9 bytes each, 100-byte values) through RouteSink::apply_many in
// batches of 2900 entries, the buckets already holding every key: each
// entry an overwrite in place, as most of a replay's are.
constexpr size_t kRouteCopies = 2048, kRouteKeysPer = 195, kRouteValueBytes = 100, kRouteOps = 1 << 20;

void BM_RouteSinkOverwrite(benchmark::State& state) {
  std::vector<std::unique_ptr<RoutedCopy>> owned;
  std::vector<RoutedCopy*> copies;
  for (size_t c = 0; c < kRouteCopies; ++c) {
    owned.push_back(std::make_unique<RoutedCopy>());
    owned.back()->group_id = 1 + static_cast<uint32_t>(c % 2);
    owned.back()->partition = static_cast<uint16_t>(c / 2);
    owned.back()->bucket.use_huge_pages(true);
    copies.push_back(owned.back().get());
  }
  MemoryGauge gauge(uint64_t{1} << 40);
  RouteSink sink(copies, gauge, false);
  std::vector<std::string> keys(kRouteKeysPer);
  for (size_t k = 0; k < kRouteKeysPer; ++k) keys[k] = "k" + std::to_string(10000000 + k);
  Bytes value(kRouteValueBytes, std::byte{'v'});
  auto entry = [&](size_t copy, size_t key, uint64_t order) {
    DataEntry d;
    d.group_id = copies[copy]->group_id;
    d.partition = copies[copy]->partition;
    d.key = as_bytes(keys[key]);
    d.value = value;
    d.write_version = Version{1, 1, order};
    return d;
  };
  std::vector<DataEntry> fill;
  for (size_t c = 0; c < kRouteCopies; ++c) {
    for (size_t k = 0; k < kRouteKeysPer; ++k) fill.push_back(entry(c, k, 1));
  }
  if (!sink.apply_many(0, fill).ok()) state.SkipWithError("fill refused");
  std::mt19937_64 rng(7);
  std::vector<DataEntry> ops;
  for (size_t i = 0; i < kRouteOps; ++i) ops.push_back(entry(rng() % kRouteCopies, rng() % kRouteKeysPer, i + 2));
  constexpr size_t kBatch = 2900;
  for (auto _ : state) {
    for (size_t i = 0; i < ops.size(); i += kBatch) {
      Status st = sink.apply_many(0, std::span<const DataEntry>(ops).subspan(i, std::min(kBatch, ops.size() - i)));
      if (!st.ok()) state.SkipWithError("apply refused");
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kRouteOps));
}
BENCHMARK(BM_RouteSinkOverwrite)->Unit(benchmark::kMillisecond);

// Its peer in the same run: only the loads and stores an overwrite in
// place must make over memory of the same size (a random 8-byte index
// slot, then the entry of 125 bytes it points to, written), loaded 16 and
// 8 entries ahead. What RouteSinkOverwrite takes past this is the work of
// finding the copy and the key, not memory.
void BM_BareOverwriteLoads(benchmark::State& state) {
  constexpr size_t kEntryBytes = 128, kSlotsPer = 256;
  const size_t entries = kRouteCopies * kRouteKeysPer;
  std::vector<std::byte> memory(entries * kEntryBytes);
  std::vector<uint64_t> slots(kRouteCopies * kSlotsPer);
  std::mt19937_64 rng(7);
  for (uint64_t& s : slots) s = reinterpret_cast<uintptr_t>(memory.data() + (rng() % entries) * kEntryBytes);
  std::vector<uint32_t> ops(kRouteOps);
  for (uint32_t& o : ops) o = static_cast<uint32_t>(rng() % slots.size());
  std::byte source[kEntryBytes] = {};
  for (auto _ : state) {
    for (size_t i = 0; i < ops.size(); ++i) {
      if (i + 16 < ops.size()) __builtin_prefetch(&slots[ops[i + 16]]);
      if (i + 8 < ops.size()) {
        const std::byte* e = reinterpret_cast<const std::byte*>(slots[ops[i + 8]]);
        __builtin_prefetch(e, 1);
        __builtin_prefetch(e + 64, 1);
      }
      std::memcpy(reinterpret_cast<std::byte*>(slots[ops[i]]), source, kEntryBytes - 3);
    }
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kRouteOps));
}
BENCHMARK(BM_BareOverwriteLoads)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace walcut
