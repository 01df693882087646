// CutTracker on its own (cut/cut_tracker.h): a node's START and FINISH, the
// included and excluded sets, and the waits, without a node or a cluster.
#include "cut/cut_tracker.h"

#include <gtest/gtest.h>

#include <chrono>
#include <future>

namespace walcut {
namespace {

Version tx(uint64_t order) { return Version{1, 0, order}; }

// Counts the START records the tracker asks for and puts each at a new pointer.
struct StartLog {
  int calls = 0;
  Result<WalPointer> operator()() {
    ++calls;
    return WalPointer{1, 100u * static_cast<uint64_t>(calls)};
  }
};

// Keeps the FINISH records the tracker asks for.
struct FinishLog {
  std::vector<IncSnapshotFinishRecord> records;
  Result<WalPointer> operator()(const IncSnapshotFinishRecord& r) {
    records.push_back(r);
    return WalPointer{2, 500};
  }
};

TEST(CutTracker, StartLogsStartOnceAndPublishesTheNewId) {
  CutTracker t;
  t.reset("n1", 0);
  StartLog log;
  ASSERT_TRUE(t.start(5, std::ref(log)).ok());
  EXPECT_EQ(log.calls, 1);
  EXPECT_EQ(t.cut_id(), 5u);
  EXPECT_EQ(t.stamp(3), 5u);  // what a message carries: the newer id
  EXPECT_EQ(t.stamp(9), 9u);
  ASSERT_TRUE(t.start(5, std::ref(log)).ok());  // the same cut again, from a stamped message
  EXPECT_EQ(log.calls, 1);
}

TEST(CutTracker, ACutNoNewerThanTheLastFinishedIsIgnored) {
  CutTracker t;
  t.reset("n1", 4);
  StartLog log;
  ASSERT_TRUE(t.start(4, std::ref(log)).ok());
  ASSERT_TRUE(t.start(2, std::ref(log)).ok());
  EXPECT_EQ(log.calls, 0);
  EXPECT_EQ(t.cut_id(), 4u);
  EXPECT_FALSE(t.is_new(4).value());
  EXPECT_TRUE(t.is_new(5).value());
}

TEST(CutTracker, ANewerCutWhileOneRunsIsRefused) {
  CutTracker t;
  t.reset("n1", 0);
  StartLog log;
  t.tx_prepared(tx(1));
  ASSERT_TRUE(t.start(1, std::ref(log)).ok());
  Result<bool> is_new = t.is_new(2);
  ASSERT_FALSE(is_new.ok());
  EXPECT_EQ(is_new.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(is_new.status().message(), "node n1: cut 2 arrived while cut 1 is still running");
  Status s = t.start(2, std::ref(log));
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(log.calls, 1);
  EXPECT_EQ(t.cut_id(), 1u);
  EXPECT_FALSE(t.is_new(1).value());  // the running cut itself is not refused
  // Once it finishes, the newer cut is taken.
  FinishLog finish;
  t.tx_finished(tx(1), true, 0);
  ASSERT_TRUE(t.finish_cut_if_ready(std::ref(finish)).ok());
  EXPECT_TRUE(t.is_new(2).value());
  ASSERT_TRUE(t.start(2, std::ref(log)).ok());
  EXPECT_EQ(log.calls, 2);
}

TEST(CutTracker, FinishWaitsForEveryTransactionActiveAtStart) {
  CutTracker t;
  t.reset("n1", 0);
  StartLog start;
  FinishLog finish;
  t.tx_prepared(tx(1));
  t.tx_prepared(tx(2));
  ASSERT_TRUE(t.start(1, std::ref(start)).ok());
  ASSERT_TRUE(t.finish_cut_if_ready(std::ref(finish)).ok());
  EXPECT_TRUE(finish.records.empty());
  t.tx_finished(tx(1), true, 0);
  ASSERT_TRUE(t.finish_cut_if_ready(std::ref(finish)).ok());
  EXPECT_TRUE(finish.records.empty());
  EXPECT_FALSE(t.finished_cut(1).has_value());
  t.tx_finished(tx(2), true, 1);
  ASSERT_TRUE(t.finish_cut_if_ready(std::ref(finish)).ok());
  ASSERT_EQ(finish.records.size(), 1u);
  EXPECT_EQ(finish.records[0].cut_id, 1u);
  // Committed under the old cut id: before the cut; under the new one: after it.
  EXPECT_EQ(finish.records[0].included, std::vector<Version>{tx(1)});
  EXPECT_EQ(finish.records[0].excluded, std::vector<Version>{tx(2)});
  std::optional<CutResult> done = t.finished_cut(1);
  ASSERT_TRUE(done.has_value());
  EXPECT_EQ(done->start, (WalPointer{1, 100}));
  EXPECT_EQ(done->finish, (WalPointer{2, 500}));
  EXPECT_EQ(done->included, std::vector<Version>{tx(1)});
  EXPECT_EQ(done->excluded, std::vector<Version>{tx(2)});
  // Finished: asking again logs nothing.
  ASSERT_TRUE(t.finish_cut_if_ready(std::ref(finish)).ok());
  EXPECT_EQ(finish.records.size(), 1u);
}

TEST(CutTracker, RolledBackAndLaterTransactionsAreInNeitherSet) {
  CutTracker t;
  t.reset("n1", 0);
  StartLog start;
  FinishLog finish;
  t.tx_prepared(tx(1));
  t.tx_prepared(tx(2));
  ASSERT_TRUE(t.start(1, std::ref(start)).ok());
  t.tx_prepared(tx(3));            // prepared after START: not waited for
  t.tx_finished(tx(1), false, 1);  // rolled back
  t.tx_finished(tx(3), true, 1);
  ASSERT_TRUE(t.finish_cut_if_ready(std::ref(finish)).ok());
  EXPECT_TRUE(finish.records.empty());  // tx 2 still active
  t.tx_finished(tx(2), true, 0);
  ASSERT_TRUE(t.finish_cut_if_ready(std::ref(finish)).ok());
  ASSERT_EQ(finish.records.size(), 1u);
  EXPECT_EQ(finish.records[0].included, std::vector<Version>{tx(2)});
  EXPECT_TRUE(finish.records[0].excluded.empty());
}

TEST(CutTracker, TheSetsAreSortedInTheFinishRecord) {
  CutTracker t;
  t.reset("n1", 0);
  StartLog start;
  FinishLog finish;
  for (uint64_t i = 1; i <= 6; ++i) t.tx_prepared(tx(i));
  ASSERT_TRUE(t.start(1, std::ref(start)).ok());
  for (uint64_t i = 6; i >= 1; --i) t.tx_finished(tx(i), true, i % 2);  // odd ones after the cut
  ASSERT_TRUE(t.finish_cut_if_ready(std::ref(finish)).ok());
  ASSERT_EQ(finish.records.size(), 1u);
  EXPECT_EQ(finish.records[0].included, (std::vector<Version>{tx(2), tx(4), tx(6)}));
  EXPECT_EQ(finish.records[0].excluded, (std::vector<Version>{tx(1), tx(3), tx(5)}));
}

TEST(CutTracker, NoCutRunningMeansNothingToFinish) {
  CutTracker t;
  t.reset("n1", 3);
  FinishLog finish;
  t.tx_prepared(tx(1));
  t.tx_finished(tx(1), true, 3);
  ASSERT_TRUE(t.finish_cut_if_ready(std::ref(finish)).ok());
  EXPECT_TRUE(finish.records.empty());
  EXPECT_FALSE(t.finished_cut(3).has_value());  // finished before this run: its pointers are not known
}

TEST(CutTracker, WaitCutReturnsOnceFinishIsLogged) {
  CutTracker t;
  t.reset("n1", 0);
  StartLog start;
  FinishLog finish;
  t.tx_prepared(tx(1));
  ASSERT_TRUE(t.start(1, std::ref(start)).ok());
  auto waited = std::async(std::launch::async, [&] { return t.wait_cut(1); });
  EXPECT_EQ(waited.wait_for(std::chrono::milliseconds(100)), std::future_status::timeout);
  t.tx_finished(tx(1), true, 0);
  ASSERT_TRUE(t.finish_cut_if_ready(std::ref(finish)).ok());
  ASSERT_EQ(waited.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  Result<CutResult> r = waited.get();
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->cut_id, 1u);
  EXPECT_EQ(r->finish, (WalPointer{2, 500}));
  EXPECT_EQ(r->included, std::vector<Version>{tx(1)});
}

TEST(CutTracker, AFailedFinishFailsTheWaitAndTheCutStaysUnfinished) {
  CutTracker t;
  t.reset("n1", 0);
  StartLog start;
  ASSERT_TRUE(t.start(1, std::ref(start)).ok());
  auto waited = std::async(std::launch::async, [&] { return t.wait_cut(1); });
  Status s = t.finish_cut_if_ready(
      [](const IncSnapshotFinishRecord&) -> Result<WalPointer> { return Status::io_error("disk full"); });
  EXPECT_EQ(s.code(), StatusCode::kIoError);
  ASSERT_EQ(waited.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  Result<CutResult> r = waited.get();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "disk full");
  EXPECT_FALSE(t.finished_cut(1).has_value());
}

TEST(CutTracker, AFailedStartFailsTheWaitAndKeepsTheOldId) {
  CutTracker t;
  t.reset("n1", 2);
  Status s = t.start(3, []() -> Result<WalPointer> { return Status::io_error("disk full"); });
  EXPECT_EQ(s.code(), StatusCode::kIoError);
  EXPECT_EQ(t.cut_id(), 2u);
  Result<CutResult> r = t.wait_cut(3);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "disk full");
}

TEST(CutTracker, NextCutIdIsNewerThanEveryNodes) {
  std::vector<uint64_t> known{3, 7, 5};
  EXPECT_EQ(next_cut_id(known), 8u);
  EXPECT_EQ(next_cut_id({}), 1u);
}

}  // namespace
}  // namespace walcut
