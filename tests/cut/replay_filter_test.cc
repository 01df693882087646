// The replay filter of an increment, zone by zone along the WAL
// (docs/consistent-cut.md, "Restore"): what a restore of increment N does
// with an entry, from its WAL pointer and its transaction's version alone.
#include "cut/replay_filter.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <iterator>

#include "cut/increment_chain.h"
#include "io/block_reader.h"
#include "io/crc32c.h"
#include "io/record_reader.h"
#include "tests/testing/temp_dir.h"
#include "tools/sim/simulator.h"

namespace walcut {
namespace {

using Verdict = ReplayFilter::Verdict;

const Version kIncluded{1, 1, 10};
const Version kExcluded{1, 2, 20};
const Version kOther{1, 3, 30};
const Version kNull{};

WalPointer at(uint64_t segment, uint64_t offset) { return WalPointer{segment, offset}; }

// Increment 2 of a node: the full snapshot at 1:100, increment 1's FINISH
// at 2:100, increment 2's START at 3:100 and FINISH at 4:100.
ReplayFilter second_increment() {
  ReplayFilter f;
  f.snapshot = at(1, 100);
  f.all_until = at(2, 100);
  f.start = at(3, 100);
  f.finish = at(4, 100);
  f.included = {kIncluded};
  f.excluded = {kExcluded};
  return f;
}

TEST(ReplayFilter, EntriesOlderThanTheFullSnapshotAreSkipped) {
  const ReplayFilter f = second_increment();
  for (const Version& x : {kIncluded, kExcluded, kOther, kNull}) EXPECT_EQ(f.decide(at(1, 99), x), Verdict::kSkip);
}

TEST(ReplayFilter, BeforeThePreviousFinishEveryEntryIsApplied) {
  const ReplayFilter f = second_increment();
  for (const Version& x : {kIncluded, kExcluded, kOther, kNull}) {
    EXPECT_EQ(f.decide(at(1, 100), x), Verdict::kApply);
    EXPECT_EQ(f.decide(at(2, 99), x), Verdict::kApply);
  }
}

TEST(ReplayFilter, BetweenThePreviousFinishAndStartOnlyTheExcludedAreSkipped) {
  const ReplayFilter f = second_increment();
  for (const WalPointer& p : {at(2, 100), at(3, 99)}) {
    EXPECT_EQ(f.decide(p, kExcluded), Verdict::kSkip);
    EXPECT_EQ(f.decide(p, kIncluded), Verdict::kApply);
    EXPECT_EQ(f.decide(p, kOther), Verdict::kApply);
  }
}

TEST(ReplayFilter, FromStartUntilFinishOnlyTheIncludedAreApplied) {
  const ReplayFilter f = second_increment();
  for (const WalPointer& p : {at(3, 100), at(4, 99)}) {
    EXPECT_EQ(f.decide(p, kIncluded), Verdict::kApply);
    EXPECT_EQ(f.decide(p, kExcluded), Verdict::kSkip);
    EXPECT_EQ(f.decide(p, kOther), Verdict::kSkip);
  }
}

TEST(ReplayFilter, FromFinishOnReplayStops) {
  const ReplayFilter f = second_increment();
  for (const Version& x : {kIncluded, kExcluded, kOther, kNull}) {
    EXPECT_EQ(f.decide(at(4, 100), x), Verdict::kStop);
    EXPECT_EQ(f.decide(at(9, 0), x), Verdict::kStop);
  }
}

TEST(ReplayFilter, AtomicUpdatesWithANullXidAreAppliedUntilFinish) {
  const ReplayFilter f = second_increment();
  EXPECT_EQ(f.decide(at(2, 100), kNull), Verdict::kApply);
  EXPECT_EQ(f.decide(at(3, 100), kNull), Verdict::kApply);
  EXPECT_EQ(f.decide(at(4, 99), kNull), Verdict::kApply);
}

TEST(ReplayFilter, TheFirstIncrementHasNoZoneBeforeAPreviousFinish) {
  ReplayFilter f = second_increment();
  f.all_until = f.snapshot;  // increment 1
  EXPECT_EQ(f.decide(at(1, 100), kExcluded), Verdict::kSkip);
  EXPECT_EQ(f.decide(at(1, 100), kOther), Verdict::kApply);
}

TEST(ReplayFilter, OrderedHoldsForPointersInWalOrderAndSortedSets) {
  ReplayFilter f = second_increment();
  EXPECT_TRUE(f.ordered());
  f.included = {kOther, kIncluded};  // unsorted: binary search would miss
  EXPECT_FALSE(f.ordered());
  f = second_increment();
  f.start = at(5, 0);  // after FINISH
  EXPECT_FALSE(f.ordered());
  f = second_increment();
  f.all_until = at(0, 0);  // before the snapshot
  EXPECT_FALSE(f.ordered());
}

// Damaged metadata must not reach decide(): an increment whose FINISH is
// before its START is refused before any segment is read.
TEST(ReplayFilter, LoadRefusesAnIncrementWhoseFinishIsBeforeItsStart) {
  NodeIncrements node;
  node.base.node_id = "node0";
  node.base.snapshot_pointer = at(1, 100);
  IncrementMeta m;
  m.node_id = "node0";
  m.index = 1;
  m.start = at(3, 100);
  m.finish = at(2, 100);
  node.increments.push_back(m);
  node.segment_paths.push_back("/nonexistent/0000000000000002.wal");
  Result<ReplayFilter> f = load_replay_filter(node, ReadOptions{});
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), StatusCode::kCorruption) << f.status().to_string();
  EXPECT_NE(f.status().message().find("node0 increment 1"), std::string::npos) << f.status().message();
}

// The filter's sets come from the FINISH record at the metadata's
// pointer, found among many blocks of the last segment; a pointer beside
// it (the same block, or another) is refused, naming the segment.
//
// With values of 64 bytes a node's START and FINISH are in one segment of
// many blocks; with values of 4 KiB the START is in an earlier segment.
class LoadFilter : public ::testing::TestWithParam<uint64_t> {};

TEST_P(LoadFilter, TakesTheCutsRecordsAtTheirPointersAndRefusesAnyOtherRecord) {
  testing::TempDir dir;
  sim::Options o;
  o.out = dir.file("gen");
  o.nodes = 2;
  o.partitions = 8;
  o.keys = 50;
  o.txs = 600;
  o.increments = 2;
  o.value_bytes = static_cast<uint32_t>(GetParam());
  o.segment_bytes = 64 << 10;
  o.fill_blocks = false;  // a block per append
  ASSERT_TRUE(sim::run(o).ok());
  const std::string snap = dir.file("gen/snapshots/snp");
  Result<std::vector<SnapshotMeta>> bases = read_snapshot_metas(snap);
  ASSERT_TRUE(bases.ok()) << bases.status().message();
  Result<std::vector<NodeIncrements>> chain = read_increment_chain(snap, bases.value(), 2);
  ASSERT_TRUE(chain.ok()) << chain.status().message();
  int start_before_finish_segment = 0;
  for (NodeIncrements& node : chain.value()) {
    // Every record of the last segment, and its blocks.
    BlockReaderOptions ro;
    ro.mode = TailMode::kStrict;
    Result<std::unique_ptr<BlockReader>> reader = BlockReader::open({node.segment_paths.back()}, ro);
    ASSERT_TRUE(reader.ok());
    std::vector<WalPointer> others;
    size_t blocks = 0;
    uint64_t last_block = 0;  // SEGMENT_END's, after the FINISH's
    std::vector<Version> included, excluded;
    ASSERT_TRUE(for_each_record(
                    **reader,
                    [&](const Block&, const RecordView& r) -> Status {
                      if (r.type != RecordType::kIncSnapshotFinish) {
                        others.push_back(r.pointer);
                        return {};
                      }
                      Result<RecordPayload> p = decode_payload(r.type, r.payload);
                      EXPECT_TRUE(p.ok());
                      EXPECT_EQ(r.pointer, node.increments.back().finish);
                      included = std::get<IncSnapshotFinishRecord>(p.value()).included;
                      excluded = std::get<IncSnapshotFinishRecord>(p.value()).excluded;
                      return {};
                    },
                    [&](const Block& b) {
                      ++blocks;
                      last_block = b.file_offset;
                    })
                    .ok());
    const WalPointer start = node.increments.back().start, finish = node.increments.back().finish;
    if (GetParam() < 4096) {
      ASSERT_GE(blocks, 3u) << "the FINISH is not in the segment's only block";
      EXPECT_EQ(start.segment, finish.segment);
    }
    start_before_finish_segment += start.segment < finish.segment;
    std::sort(included.begin(), included.end());
    std::sort(excluded.begin(), excluded.end());
    Result<ReplayFilter> f = load_replay_filter(node, ReadOptions{});
    ASSERT_TRUE(f.ok()) << f.status().message();
    EXPECT_EQ(f->included, included);
    EXPECT_EQ(f->excluded, excluded);
    // The same filter from the cut records' blocks alone, where the
    // metadata records them; a recorded offset that is not the block's is
    // refused, naming the segment and the offset.
    const IncrementMeta& m = node.increments.back();
    ASSERT_NE(m.start_block, 0u);
    ASSERT_NE(m.finish_block, 0u);
    Result<ReplayFilter> alone = load_replay_filter(node, ReadOptions{}, FilterRead::kCutRecordBlocks);
    ASSERT_TRUE(alone.ok()) << alone.status().message();
    EXPECT_EQ(alone->all_until, f->all_until);
    EXPECT_EQ(alone->start, f->start);
    EXPECT_EQ(alone->finish, f->finish);
    EXPECT_EQ(alone->included, included);
    EXPECT_EQ(alone->excluded, excluded);
    EXPECT_EQ(alone->finish_block_end, f->finish_block_end);
    for (uint64_t wrong : {uint64_t{1}, m.finish_block + 1, m.start_block, uint64_t{1} << 40}) {
      if (wrong == m.finish_block) continue;
      NodeIncrements moved = node;
      moved.increments.back().finish_block = wrong;
      Result<ReplayFilter> refused = load_replay_filter(moved, ReadOptions{}, FilterRead::kCutRecordBlocks);
      ASSERT_FALSE(refused.ok()) << wrong;
      EXPECT_NE(refused.status().message().find(node.segment_paths.back() + " at offset " + std::to_string(wrong)),
                std::string::npos)
          << refused.status().message();
    }
    // Metadata of format version 1, without the offsets: the segments are read.
    NodeIncrements unrecorded = node;
    unrecorded.increments.back().finish_block = 0;
    Result<ReplayFilter> read_whole = load_replay_filter(unrecorded, ReadOptions{}, FilterRead::kCutRecordBlocks);
    ASSERT_TRUE(read_whole.ok()) << read_whole.status().message();
    EXPECT_EQ(read_whole->included, included);
    // The metadata pointing at another record after the START: the first
    // of them in the segment, and the one just before the FINISH. Either
    // is no FINISH, and records follow it before SEGMENT_END: whichever
    // the read meets first is the refusal.
    const auto first = std::upper_bound(others.begin(), others.end(), start);
    const auto last = std::lower_bound(others.begin(), others.end(), finish);
    ASSERT_GE(std::distance(first, last), 2) << "no two records between the START and the FINISH";
    for (WalPointer wrong : {*first, *std::prev(last)}) {
      NodeIncrements moved = node;
      moved.increments.back().finish = wrong;
      Result<ReplayFilter> by_block = load_replay_filter(moved, ReadOptions{}, FilterRead::kCutRecordBlocks);
      ASSERT_FALSE(by_block.ok()) << wrong.to_string();
      EXPECT_NE(by_block.status().message().find(" at offset " + std::to_string(m.finish_block)), std::string::npos)
          << by_block.status().message();
      Result<ReplayFilter> refused = load_replay_filter(moved, ReadOptions{});
      ASSERT_FALSE(refused.ok()) << wrong.to_string();
      const std::string& why = refused.status().message();
      EXPECT_TRUE(why.find(node.segment_paths.back() + ": no INC_SNAPSHOT_FINISH record at " + wrong.to_string()) !=
                      std::string::npos ||
                  why.find(" follows the FINISH record at " + wrong.to_string() +
                           ": an increment ends with its cut's FINISH") != std::string::npos)
          << why;
    }

    // The START trusted no more than the FINISH: moved onto another
    // record after it (a transaction begun between the two would then
    // lose its entries), or out of the increment's segments.
    for (WalPointer wrong : {*first, *std::prev(last)}) {
      NodeIncrements moved = node;
      moved.increments.back().start = wrong;
      Result<ReplayFilter> refused = load_replay_filter(moved, ReadOptions{});
      ASSERT_FALSE(refused.ok()) << wrong.to_string();
      EXPECT_NE(refused.status().message().find(": no INC_SNAPSHOT_START record at " + wrong.to_string()),
                std::string::npos)
          << refused.status().message();
    }
    // Increment 1's FINISH, where increment 2's filter lets every entry
    // in: moved into the record, or onto the first record of increment 2.
    {
      const std::string& next = node.segment_paths[node.increments[1].first_segment - node.increments[0].first_segment];
      Result<std::unique_ptr<BlockReader>> r = BlockReader::open({next}, ro);
      ASSERT_TRUE(r.ok());
      std::vector<WalPointer> in_next;
      ASSERT_TRUE(for_each_record(**r, [&](const Block&, const RecordView& v) -> Status {
                    in_next.push_back(v.pointer);
                    return {};
                  }).ok());
      ASSERT_FALSE(in_next.empty());
      const WalPointer before = node.increments[0].finish;
      for (WalPointer wrong : {WalPointer{before.segment, before.offset + 8}, in_next.front()}) {
        if (!(wrong < start)) continue;
        NodeIncrements moved = node;
        moved.increments[0].finish = wrong;
        Result<ReplayFilter> refused = load_replay_filter(moved, ReadOptions{});
        ASSERT_FALSE(refused.ok()) << wrong.to_string();
        EXPECT_NE(refused.status().message().find(": no INC_SNAPSHOT_FINISH record at " + wrong.to_string()),
                  std::string::npos)
            << refused.status().message();
      }
      // Its cut id in the metadata another cut's.
      NodeIncrements other = node;
      other.increments[0].cut_id += 100;
      Result<ReplayFilter> refused = load_replay_filter(other, ReadOptions{});
      ASSERT_FALSE(refused.ok());
      EXPECT_NE(refused.status().message().find("the FINISH record at " + node.increments[0].finish.to_string() +
                                                " is of cut " + std::to_string(node.increments[0].cut_id)),
                std::string::npos)
          << refused.status().message();
    }
    // A block after the FINISH whose CRC is right but whose record is
    // malformed (a reserved byte set in SEGMENT_END's record header): the
    // replay stops at the FINISH, so loading the filter is what parses it.
    const std::string& path = node.segment_paths.back();
    std::ifstream in(path, std::ios::binary);
    std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    in.close();
    std::byte* block = reinterpret_cast<std::byte*>(bytes.data()) + last_block;
    const uint32_t stored = load_u32(block + 8);
    block[kBlockHeaderBytes + 1] = std::byte{1};
    store_u32(block + 4, crc32c(ByteSpan(block + 8, kBlockHeaderBytes - 8 + stored)));
    std::ofstream(path, std::ios::binary | std::ios::trunc)
        .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    Result<ReplayFilter> damaged = load_replay_filter(node, ReadOptions{});
    ASSERT_FALSE(damaged.ok());
    EXPECT_NE(damaged.status().message().find(path + " at offset " + std::to_string(last_block)), std::string::npos)
        << damaged.status().message();
    // The cut records' blocks alone read it too: the block after the
    // FINISH's must hold SEGMENT_END alone. A byte of the FINISH's own
    // block changed is found there, first.
    ASSERT_EQ(last_block, f->finish_block_end);
    Result<ReplayFilter> after = load_replay_filter(node, ReadOptions{}, FilterRead::kCutRecordBlocks);
    ASSERT_FALSE(after.ok());
    EXPECT_NE(after.status().message().find(path + " at offset " + std::to_string(last_block)), std::string::npos)
        << after.status().message();
    bytes[m.finish_block + kBlockHeaderBytes + 1] ^= 1;
    std::ofstream(path, std::ios::binary | std::ios::trunc)
        .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    Result<ReplayFilter> flipped = load_replay_filter(node, ReadOptions{}, FilterRead::kCutRecordBlocks);
    ASSERT_FALSE(flipped.ok());
    EXPECT_NE(
        flipped.status().message().find(path + " at offset " + std::to_string(m.finish_block) + ": block CRC mismatch"),
        std::string::npos)
        << flipped.status().message();
    // A segment file longer than its header says is refused before any of
    // its blocks is read, as the scan refuses it.
    bytes[m.finish_block + kBlockHeaderBytes + 1] ^= 1;
    bytes.resize(bytes.size() + 4096, 'x');
    std::ofstream(path, std::ios::binary | std::ios::trunc)
        .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    Result<ReplayFilter> grown = load_replay_filter(node, ReadOptions{}, FilterRead::kCutRecordBlocks);
    ASSERT_FALSE(grown.ok());
    EXPECT_NE(
        grown.status().message().find(path + ": file is " + std::to_string(bytes.size()) + " bytes, its header says"),
        std::string::npos)
        << grown.status().message();
  }
  if (GetParam() >= 4096) {
    EXPECT_GE(start_before_finish_segment, 1) << "no START in a segment of its own";
  }
}

// A cut that failed (a node crashed while it ran) can leave its START and
// FINISH records in the WAL of the nodes that finished it, inside the next
// increment's segments. Metadata pointed at them, with that cut's id, would
// restore the failed cut's state: refused, since an increment's FINISH ends
// its last segment. (The same metadata with the segments after that FINISH
// left out is refused by the chain: the node that crashed in the failed
// cut has no records of it, so its metadata is of another cut.)
TEST(ReplayFilter, LoadRefusesTheRecordsOfAFailedCut) {
  testing::TempDir dir;
  sim::Options o;
  o.out = dir.file("gen");
  o.seed = 1;
  o.nodes = 3;
  o.groups = 1;
  o.atomic_groups = 1;
  o.partitions = 8;
  o.backups = 0;
  o.keys = 40;
  o.txs = 400;
  o.increments = 4;
  o.crash_rate = 30;
  o.fill_blocks = false;  // what a crash may lose is one append
  ASSERT_TRUE(sim::run(o).ok());
  const std::string snap = dir.file("gen/snapshots/snp");
  Result<std::vector<SnapshotMeta>> bases = read_snapshot_metas(snap);
  ASSERT_TRUE(bases.ok()) << bases.status().message();
  // The last increment after a failed one, and each node's records of the failed cut.
  uint64_t n = 0;
  for (uint64_t k = 2; k <= 4; ++k) {
    Result<std::optional<std::string>> failed = increment_failure(snap, k - 1);
    ASSERT_TRUE(failed.ok());
    if (failed->has_value() && !increment_failure(snap, k)->has_value()) n = k;
  }
  ASSERT_GT(n, 0u) << "no complete increment after a failed one: another seed is needed";
  Result<std::vector<NodeIncrements>> chain = read_increment_chain(snap, bases.value(), n);
  ASSERT_TRUE(chain.ok()) << chain.status().message();
  const uint64_t cut = chain->front().increments.back().cut_id;
  int tried = 0;
  for (NodeIncrements& node : chain.value()) {
    ASSERT_TRUE(load_replay_filter(node, ReadOptions{}).ok());
    BlockReaderOptions ro;
    ro.mode = TailMode::kStrict;
    Result<std::unique_ptr<BlockReader>> reader = BlockReader::open(node.segment_paths, ro);
    ASSERT_TRUE(reader.ok());
    std::optional<WalPointer> start, finish;
    uint64_t failed_cut = 0, start_block = 0, finish_block = 0;
    ASSERT_TRUE(for_each_record(**reader, [&](const Block& b, const RecordView& r) -> Status {
                  if (r.type != RecordType::kIncSnapshotStart && r.type != RecordType::kIncSnapshotFinish) return {};
                  Result<RecordPayload> p = decode_payload(r.type, r.payload);
                  EXPECT_TRUE(p.ok());
                  const uint64_t id = r.type == RecordType::kIncSnapshotStart
                                          ? std::get<IncSnapshotStartRecord>(p.value()).cut_id
                                          : std::get<IncSnapshotFinishRecord>(p.value()).cut_id;
                  if (r.pointer <= (node.increments.size() > 1 ? node.increments[node.increments.size() - 2].finish
                                                               : node.base.snapshot_pointer) ||
                      id >= cut) {
                    return {};
                  }
                  failed_cut = id;
                  (r.type == RecordType::kIncSnapshotStart ? start : finish) = r.pointer;
                  (r.type == RecordType::kIncSnapshotStart ? start_block : finish_block) = b.file_offset;
                  return {};
                }).ok());
    if (!start || !finish) continue;  // this node had not finished the failed cut
    ++tried;
    NodeIncrements forged = node;
    forged.increments.back().cut_id = failed_cut;
    forged.increments.back().start = *start;
    forged.increments.back().finish = *finish;
    Result<ReplayFilter> refused = load_replay_filter(forged, ReadOptions{});
    ASSERT_FALSE(refused.ok()) << node.base.node_id;
    EXPECT_NE(refused.status().message().find("its FINISH " + finish->to_string() + " is not in its last segment"),
              std::string::npos)
        << refused.status().message();
    // The segments after the failed FINISH's left out too: whether the
    // segments are read or only the blocks the metadata records (the
    // FINISH's own, and the next one), the verdict is the same (records
    // after it in its segment refuse it; a FINISH that ended its segment,
    // as a crash of the whole cluster leaves it, is for the cut ids and the
    // nodes without its records to refuse).
    forged.segment_paths.resize(finish->segment - forged.increments.front().first_segment + 1);
    forged.increments.back().start_block = start_block;
    forged.increments.back().finish_block = finish_block;
    Result<ReplayFilter> whole = load_replay_filter(forged, ReadOptions{});
    Result<ReplayFilter> blocks = load_replay_filter(forged, ReadOptions{}, FilterRead::kCutRecordBlocks);
    ASSERT_EQ(whole.ok(), blocks.ok()) << node.base.node_id << ": " << whole.status().to_string() << " / "
                                       << blocks.status().to_string();
    if (!whole.ok()) {
      for (const Result<ReplayFilter>* r : {&whole, &blocks}) {
        EXPECT_NE(r->status().message().find(" follows the FINISH record at " + finish->to_string()), std::string::npos)
            << r->status().message();
      }
    }
  }
  EXPECT_GE(tried, 1) << "no node finished the failed cut: another seed is needed";
}

INSTANTIATE_TEST_SUITE_P(ValueBytes, LoadFilter, ::testing::Values(uint64_t{64}, uint64_t{4096}));

}  // namespace
}  // namespace walcut
