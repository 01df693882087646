// `walcut wal dump`'s selections: a range of pointers, a limit, one
// transaction, one group or partition, record types in any case. Each is
// checked against the unfiltered dump of the same WAL.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tests/testing/command.h"
#include "tests/testing/temp_dir.h"

namespace walcut {
namespace {

using json = nlohmann::json;
using testing::run_command;
using testing::shell_quote;
using testing::TempDir;

const std::string kCli = WALCUT_CLI;

std::string walcut(const std::string& args, int* exit_code) {
  return run_command("timeout 120 " + kCli + " " + args + " 2>&1", exit_code);
}

std::vector<json> json_lines(const std::string& out) {
  std::vector<json> records;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    records.push_back(json::parse(line, nullptr, /*allow_exceptions=*/false));  // not JSON: a discarded value
  }
  return records;
}

// node0's WAL segments of a generated snapshot with two increments
// (several segments, cut records), and their unfiltered dump.
class WalDump : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    int code = -1;
    std::string out = walcut(
        "gen --out " + shell_quote(dir_->file("gen")) + " --nodes 3 --partitions 8 --txs 300 --increments 2", &code);
    ASSERT_EQ(code, 0) << out;
    all_ = new std::vector<json>(json_lines(walcut("wal dump --json " + wal(), &code)));
    ASSERT_EQ(code, 0);
    ASSERT_GT(all_->size(), 100u);
  }
  static void TearDownTestSuite() {
    delete all_;
    delete dir_;
  }
  // node0's segments of increments 1 and 2, in WAL order (its cluster WAL
  // has lost them to checkpoints).
  static std::string wal() {
    const std::string inc = dir_->file("gen/snapshots/snp/increments/");
    return inc + "0000000000000001/wal/node0 " + inc + "0000000000000002/wal/node0";
  }

  // The records of the unfiltered dump that `keep` keeps, in order.
  static std::vector<json> expected(const std::function<bool(const json&)>& keep) {
    std::vector<json> out;
    std::copy_if(all_->begin(), all_->end(), std::back_inserter(out), keep);
    return out;
  }
  // wal dump --json with `flags`, which must succeed.
  static std::vector<json> dump(const std::string& flags) {
    int code = -1;
    std::string out = walcut("wal dump --json " + flags + " " + wal(), &code);
    EXPECT_EQ(code, 0) << flags << "\n" << out;
    return json_lines(out);
  }

  static TempDir* dir_;
  static std::vector<json>* all_;
};
TempDir* WalDump::dir_ = nullptr;
std::vector<json>* WalDump::all_ = nullptr;

TEST_F(WalDump, FromAndToPrintTheRecordsFromOnePointerUpToAnother) {
  const std::vector<json>& all = *all_;
  // One range inside the first segment, one that starts in a later segment.
  size_t later = 0;
  while (later < all.size() && all[later]["pointer"].get<std::string>().rfind("0000000000000000:", 0) == 0) ++later;
  ASSERT_LT(later + 5, all.size()) << "the WAL has one segment";
  for (auto [first, last] :
       std::vector<std::pair<long, long>>{{3, 10}, {static_cast<long>(later) + 1, static_cast<long>(later) + 5}}) {
    std::vector<json> want(all.begin() + first, all.begin() + last);
    EXPECT_EQ(
        dump("--from " + all[first]["pointer"].get<std::string>() + " --to " + all[last]["pointer"].get<std::string>()),
        want);
  }
  std::vector<json> tail(all.begin() + static_cast<long>(later) + 1, all.end());
  EXPECT_EQ(dump("--from " + all[later + 1]["pointer"].get<std::string>()), tail);
  // Leading zeros are optional: 0:112 is the first record's pointer.
  EXPECT_EQ(dump("--to 0:" + all[2]["pointer"].get<std::string>().substr(17)),
            std::vector<json>(all.begin(), all.begin() + 2));
}

TEST_F(WalDump, LimitStopsAfterThatManyPrintedRecords) {
  EXPECT_EQ(dump("--limit 5"), std::vector<json>(all_->begin(), all_->begin() + 5));
  std::vector<json> tx = expected([](const json& r) { return r["type"] == "TX"; });
  tx.resize(2);
  EXPECT_EQ(dump("--type TX --limit 2"), tx);
}

TEST_F(WalDump, XidSelectsATransactionsRecordsAndTheCutsThatNameIt) {
  // A transaction a cut classified, so its FINISH record is selected too.
  std::string xid;
  for (const json& r : *all_) {
    if (r["type"] != "INC_SNAPSHOT_FINISH") continue;
    for (const char* set : {"included", "excluded"}) {
      if (!r[set].empty()) xid = r[set][0];
    }
  }
  ASSERT_FALSE(xid.empty()) << "no cut classified a transaction on node0";
  auto names = [&](const json& r) {
    if (r["type"] == "TX") return r["xid"] == xid;
    if (r["type"] == "INC_SNAPSHOT_FINISH") {
      auto in = [&](const json& set) { return std::find(set.begin(), set.end(), xid) != set.end(); };
      return in(r["included"]) || in(r["excluded"]);
    }
    if (r["type"] != "DATA") return false;
    return std::any_of(r["entries"].begin(), r["entries"].end(), [&](const json& e) { return e["xid"] == xid; });
  };
  std::vector<json> want = expected(names);
  EXPECT_GE(want.size(), 4u);  // PREPARED, DATA, COMMITTED, FINISH
  EXPECT_EQ(dump("--xid " + xid), want);
}

TEST_F(WalDump, GroupAndPartitionSelectDataRecordsWithAMatchingEntry) {
  auto with_entry = [](const std::function<bool(const json&)>& match) {
    return [match](const json& r) {
      return r["type"] == "DATA" && std::any_of(r["entries"].begin(), r["entries"].end(), match);
    };
  };
  // The group and partition of the last DATA record's first entry.
  json last;
  for (const json& r : *all_) {
    if (r["type"] == "DATA") last = r["entries"][0];
  }
  ASSERT_FALSE(last.is_null());
  const int group = last["group"], partition = last["partition"];
  std::vector<json> in_group = expected(with_entry([&](const json& e) { return e["group"] == group; }));
  EXPECT_LT(in_group.size(), expected([](const json& r) { return r["type"] == "DATA"; }).size());
  EXPECT_EQ(dump("--group " + std::to_string(group)), in_group);
  EXPECT_EQ(dump("--partition " + std::to_string(partition)),
            expected(with_entry([&](const json& e) { return e["partition"] == partition; })));
  std::vector<json> both =
      expected(with_entry([&](const json& e) { return e["group"] == group && e["partition"] == partition; }));
  ASSERT_FALSE(both.empty());
  EXPECT_EQ(dump("--group " + std::to_string(group) + " --partition " + std::to_string(partition)), both);
}

TEST_F(WalDump, TypeNamesAreCaseInsensitive) {
  std::vector<json> want =
      expected([](const json& r) { return r["type"] == "TX" || r["type"] == "INC_SNAPSHOT_START"; });
  EXPECT_EQ(dump("--type tx,Inc_Snapshot_Start"), want);
  EXPECT_EQ(dump("--type TX,INC_SNAPSHOT_START"), want);
}

TEST_F(WalDump, MalformedSelectionsAreUsageErrorsNamingTheFlag) {
  for (auto [flags, message] : std::vector<std::pair<std::string, std::string>>{
           {"--from 12", "--from 12: not a WAL pointer"},
           {"--to 1:x", "--to 1:x: not a WAL pointer"},
           {"--xid 1.2", "--xid 1.2: not a transaction version"},
           {"--xid 1.2.99999999999", "--xid 1.2.99999999999: not a transaction version"},
           {"--limit 0", "--limit: must be a whole number in 1.."},
           {"--group -1", "--group: must be a whole number in 0..4294967295"},
           {"--partition 65536", "--partition: must be a whole number in 0..65535"},
           {"--type nope", "--type: unknown record type 'nope'"}}) {
    int code = -1;
    std::string out = walcut("wal dump " + flags + " " + wal(), &code);
    EXPECT_EQ(code, 2) << flags << "\n" << out;
    EXPECT_NE(out.find(message), std::string::npos) << flags << "\n" << out;
  }
}

}  // namespace
}  // namespace walcut
