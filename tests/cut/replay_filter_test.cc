// The replay filter of an increment, zone by zone along the WAL
// (docs/consistent-cut.md, "Restore"): what a restore of increment N does
// with an entry, from its WAL pointer and its transaction's version alone.
#include <gtest/gtest.h>

#include "cut/replay_filter.h"

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

}  // namespace
}  // namespace walcut
