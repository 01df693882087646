// What `snapshot restore` and `snapshot check` tell an operator while they
// run and before: the bar cleared before the report or an error, progress
// that reaches the bytes actually read, every phase shown, JSON lines for
// logs, one unit (MiB), and `restore --dry-run`, which reads everything and
// writes nothing.
#include <gtest/gtest.h>

#include <algorithm>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "tests/testing/command.h"
#include "tests/testing/temp_dir.h"

namespace walcut {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using testing::run_command;
using testing::shell_quote;
using testing::TempDir;

const std::string kCli = WALCUT_CLI;

// walcut with `args`: its standard output and error together.
std::string walcut(const std::string& args, int* exit_code) {
  return run_command("timeout 120 " + kCli + " " + args + " 2>&1", exit_code);
}

// walcut with `args`: standard output returned, standard error in `err`.
std::string walcut_split(const std::string& args, const TempDir& tmp, std::string* err, int* exit_code) {
  const std::string err_file = tmp.file("stderr.txt");
  std::string out = run_command("timeout 120 " + kCli + " " + args + " 2>" + shell_quote(err_file), exit_code);
  std::ifstream in(err_file);
  std::stringstream text;
  text << in.rdbuf();
  *err = text.str();
  return out;
}

// The lines a terminal would show for `text`: "\r" returns to the start of
// the line, "\033[K" erases from there to its end, "\n" starts a new line.
std::vector<std::string> as_terminal_shows(const std::string& text) {
  std::vector<std::string> lines(1);
  size_t col = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    std::string& line = lines.back();
    if (text[i] == '\r') {
      col = 0;
    } else if (text.compare(i, 3, "\033[K") == 0) {
      line.resize(col);
      i += 2;
    } else if (text[i] == '\n') {
      lines.emplace_back();
      col = 0;
    } else {
      if (col < line.size()) {
        line[col] = text[i];
      } else {
        line.push_back(text[i]);
      }
      ++col;
    }
  }
  return lines;
}

// The line holding `what`, as a terminal shows it; empty if none does.
std::string line_with(const std::string& text, const std::string& what) {
  for (const std::string& line : as_terminal_shows(text)) {
    if (line.find(what) != std::string::npos) return line;
  }
  return "";
}

// The JSON progress lines of `err`; a line that does not parse fails the test.
std::vector<json> progress_lines(const std::string& err) {
  std::vector<json> out;
  std::istringstream in(err);
  for (std::string line; std::getline(in, line);) {
    json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
    EXPECT_TRUE(j.is_object()) << "not a JSON progress line: " << line;
    if (j.is_object()) out.push_back(j);
  }
  return out;
}

// The last line of `phase`, or null.
json last_of(const std::vector<json>& lines, const std::string& phase) {
  json last;
  for (const json& j : lines) {
    if (j.value("phase", "") == phase) last = j;
  }
  return last;
}

// The first segment of node0's last increment.
std::string last_increment_segment(const std::string& snap, uint64_t increment) {
  char dir[32];
  std::snprintf(dir, sizeof dir, "%016llu", static_cast<unsigned long long>(increment));
  std::vector<std::string> segments;
  for (const auto& e : fs::directory_iterator(snap + "/increments/" + dir + "/wal/node0")) segments.push_back(e.path());
  std::sort(segments.begin(), segments.end());
  return segments.empty() ? "" : segments.front();
}

void flip_byte(const std::string& path, uint64_t offset) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  f.get(c);
  f.seekp(static_cast<std::streamoff>(offset));
  f.put(static_cast<char>(c ^ 0x5a));
}

// Everything below `dir`, one path a line.
std::string tree_of(const std::string& dir) {
  std::vector<std::string> paths;
  for (const auto& e : fs::recursive_directory_iterator(dir)) paths.push_back(e.path().string());
  std::sort(paths.begin(), paths.end());
  std::string out;
  for (const std::string& p : paths) out += p + "\n";
  return out;
}

// One generated cluster with a full snapshot and two increments, shared by the suite.
class CliProgress : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    int code = -1;
    std::string out = walcut(
        "gen --out " + shell_quote(dir_->file("gen")) + " --nodes 3 --partitions 8 --txs 400 --increments 2", &code);
    ASSERT_EQ(code, 0) << out;
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::string snap() { return dir_->file("gen/snapshots/snp"); }

  // A copy of the snapshot this test may damage.
  std::string damaged_copy() {
    const std::string copy = tmp_.file("snp");
    fs::copy(snap(), copy, fs::copy_options::recursive);
    return copy;
  }

  TempDir tmp_;
  static TempDir* dir_;
};
TempDir* CliProgress::dir_ = nullptr;

TEST_F(CliProgress, TheBarIsClearedBeforeTheReport) {
  int code = -1;
  const std::string out =
      walcut("snapshot restore " + snap() + " --increment 2 --progress --dest " + tmp_.file("d"), &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_NE(out.find("ETA"), std::string::npos) << "no bar was drawn: " << out;
  const std::string report = line_with(out, "restored 3 nodes");
  EXPECT_EQ(report.rfind("restored 3 nodes", 0), 0u) << "the report shares its line with the bar: " << report;
  for (const std::string& line : as_terminal_shows(out)) EXPECT_EQ(line.find("ETA"), std::string::npos) << line;
}

TEST_F(CliProgress, TheBarIsClearedBeforeAnError) {
  const std::string copy = damaged_copy();
  flip_byte(last_increment_segment(copy, 2), 64 + 48 + 4);  // inside the first block's payload
  int code = -1;
  const std::string out =
      walcut("snapshot restore " + copy + " --increment 2 --progress --dest " + tmp_.file("d"), &code);
  ASSERT_EQ(code, 3) << out;
  const std::string error = line_with(out, "walcut: ");
  EXPECT_EQ(error.rfind("walcut: Corruption", 0), 0u) << "the error shares its line with the bar: " << error;
}

TEST_F(CliProgress, ReplayProgressEndsAtTheBytesUpToEachFinish) {
  std::string err;
  int code = -1;
  const std::string out = walcut_split(
      "snapshot restore " + snap() + " --increment 2 --json --progress=json --dest " + tmp_.file("d"), tmp_, &err,
      &code);
  ASSERT_EQ(code, 0) << out << err;
  const json replay = last_of(progress_lines(err), "replay");
  ASSERT_TRUE(replay.is_object()) << err;
  EXPECT_GT(replay["bytes_total"].get<uint64_t>(), 0u);
  EXPECT_EQ(replay["bytes_done"], replay["bytes_total"]) << err;
  // What the readers validated: the blocks up to each FINISH, and perhaps some read ahead of it.
  const json report = json::parse(out);
  EXPECT_LE(replay["bytes_total"].get<uint64_t>(), report["bytes_read"].get<uint64_t>()) << out << err;
  uint64_t segment_bytes = 0;
  for (const auto& e : fs::recursive_directory_iterator(snap() + "/increments")) {
    if (e.is_regular_file() && e.path().extension() == ".wal") segment_bytes += e.file_size();
  }
  EXPECT_LT(replay["bytes_total"].get<uint64_t>(), segment_bytes) << "measured against whole segment files";
}

TEST_F(CliProgress, ReportsSayMiBAsTheBarDoes) {
  int code = -1;
  std::string out = walcut("snapshot restore " + snap() + " --increment 2 --dest " + tmp_.file("d"), &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_NE(out.find(" MiB"), std::string::npos) << out;
  EXPECT_EQ(out.find(" MB"), std::string::npos) << out;
  out = walcut("snapshot restore " + snap() + " --increment 2 --json --dest " + tmp_.file("e"), &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_TRUE(json::parse(out).contains("replay_mib_per_s")) << out;
  out = walcut("snapshot check " + snap() + " --increment 2", &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_NE(out.find(" MiB read"), std::string::npos) << out;
  EXPECT_EQ(out.find(" MB"), std::string::npos) << out;
}

TEST_F(CliProgress, JsonProgressGoesToStandardErrorOffATerminal) {
  std::string err;
  int code = -1;
  const std::string out = walcut_split(
      "snapshot restore " + snap() + " --increment 2 --json --progress=json --dest " + tmp_.file("d"), tmp_, &err,
      &code);
  ASSERT_EQ(code, 0) << out << err;
  EXPECT_TRUE(json::parse(out).is_object()) << "standard output holds the report alone: " << out;
  const std::vector<json> lines = progress_lines(err);
  ASSERT_FALSE(lines.empty());
  for (const json& j : lines) {
    for (const char* key : {"node", "phase", "bytes_done", "bytes_total", "entries", "bytes_per_s", "entries_per_s",
                            "eta_s", "elapsed_s"}) {
      EXPECT_TRUE(j.contains(key)) << key << " missing in " << j.dump();
    }
  }
  EXPECT_GT(last_of(lines, "replay")["entries"].get<uint64_t>(), 0u) << err;
}

TEST_F(CliProgress, NoProgressOffATerminalUnlessAskedFor) {
  std::string err;
  int code = -1;
  walcut_split("snapshot restore " + snap() + " --increment 2 --dest " + tmp_.file("d"), tmp_, &err, &code);
  ASSERT_EQ(code, 0) << err;
  EXPECT_EQ(err, "");
  walcut_split("snapshot restore " + snap() + " --increment 2 --progress --no-progress --dest " + tmp_.file("e"), tmp_,
               &err, &code);
  EXPECT_EQ(code, 2) << err;
  walcut_split("snapshot restore " + snap() + " --increment 2 --progress=loud --dest " + tmp_.file("e"), tmp_, &err,
               &code);
  EXPECT_EQ(code, 2) << err;
  walcut_split("snapshot restore " + snap() + " --increment 2 --no-progress --dest " + tmp_.file("e"), tmp_, &err,
               &code);
  EXPECT_EQ(code, 0) << err;
  EXPECT_EQ(err, "");
}

// The phases of each run, in the order they first show, and the last line of each.
std::vector<std::string> phases_of(const std::vector<json>& lines) {
  std::vector<std::string> phases;
  for (const json& j : lines) {
    const std::string p = j.value("phase", "");
    if (phases.empty() || phases.back() != p) phases.push_back(p);
  }
  return phases;
}

// Each phase once, in the order it first shows.
std::vector<std::string> first_appearances(const std::vector<std::string>& phases) {
  std::vector<std::string> out;
  for (const std::string& p : phases) {
    if (std::find(out.begin(), out.end(), p) == out.end()) out.push_back(p);
  }
  return out;
}

TEST_F(CliProgress, EveryPhaseOfARestoreShows) {
  std::string err;
  int code = -1;
  walcut_split("snapshot restore " + snap() + " --increment 2 --progress=json --dest " + tmp_.file("d"), tmp_, &err,
               &code);
  ASSERT_EQ(code, 0) << err;
  std::vector<json> lines = progress_lines(err);
  // A node's partitions are finished after its replay, before the next node's: the phases alternate.
  EXPECT_EQ(first_appearances(phases_of(lines)), (std::vector<std::string>{"verify", "replay", "finish", "publish"}))
      << err;
  const json finish = last_of(lines, "finish");
  EXPECT_GT(finish["bytes_total"].get<uint64_t>(), 0u) << err;
  EXPECT_EQ(finish["bytes_done"], finish["bytes_total"]) << err;

  // Increment 0 replays nothing, and shows its load of the partition files.
  walcut_split("snapshot restore " + snap() + " --progress=json --dest " + tmp_.file("e"), tmp_, &err, &code);
  ASSERT_EQ(code, 0) << err;
  lines = progress_lines(err);
  EXPECT_EQ(phases_of(lines), (std::vector<std::string>{"verify", "finish", "publish"})) << err;
  EXPECT_EQ(last_of(lines, "finish")["bytes_done"], finish["bytes_total"]) << err;
}

// Nodes replayed side by side finish their partitions as each one's
// replay ends, beside the others' replays, but the finish shows only once
// the wave's replay is done: per wave, one replay then one finish.
TEST_F(CliProgress, EachWaveOfNodesShowsItsReplayThenItsFinish) {
  for (const std::string threads : {"1", "2", "0"}) {
    std::string err;
    int code = -1;
    const std::string out =
        walcut_split("snapshot restore " + snap() + " --increment 2 --json --progress=json --threads " + threads +
                         " --dest " + tmp_.file("t" + threads),
                     tmp_, &err, &code);
    ASSERT_EQ(code, 0) << out << err;
    const json report = json::parse(out);
    const uint64_t nodes = report["nodes"], at_once = report["nodes_at_once"];
    ASSERT_EQ(nodes, 3u) << out;
    ASSERT_GE(at_once, 1u) << out;
    std::vector<std::string> expected{"verify"};
    for (uint64_t wave = 0; wave < (nodes + at_once - 1) / at_once; ++wave) {
      expected.push_back("replay");
      expected.push_back("finish");
    }
    expected.push_back("publish");
    EXPECT_EQ(phases_of(progress_lines(err)), expected)
        << "--threads " << threads << ", " << at_once << " nodes at once:\n"
        << err;
  }
}

TEST_F(CliProgress, SnapshotCheckShowsProgress) {
  std::string err;
  int code = -1;
  walcut_split("snapshot check " + snap() + " --increment 2 --progress=json", tmp_, &err, &code);
  ASSERT_EQ(code, 0) << err;
  const json check = last_of(progress_lines(err), "check");
  ASSERT_TRUE(check.is_object()) << err;
  EXPECT_GT(check["bytes_total"].get<uint64_t>(), 0u);
  EXPECT_EQ(check["bytes_done"], check["bytes_total"]) << err;
  // The total is what the check reads: every partition file and every
  // segment to its end, once, each node counted once.
  const json report = json::parse(walcut("snapshot check " + snap() + " --increment 2 --json", &code));
  EXPECT_EQ(check["bytes_total"], report["bytes_read"]) << err;
  const std::string out = walcut("snapshot check " + snap() + " --increment 2 --progress", &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_NE(out.find("ETA"), std::string::npos) << out;
  EXPECT_EQ(line_with(out, "clean").rfind("clean", 0), 0u) << out;
}

// A node whose segments a fault stopped ends short of the total, at what
// was read of them, as the report counts it: not at 100 %.
TEST_F(CliProgress, SnapshotCheckOfADamagedNodeEndsAtTheBytesItRead) {
  const std::string copy = damaged_copy();
  flip_byte(last_increment_segment(copy, 2), 64 + 48 + 4);  // inside the first block's payload
  std::string err;
  int code = -1;
  walcut_split("snapshot check " + copy + " --increment 2 --progress=json", tmp_, &err, &code);
  ASSERT_EQ(code, 1) << err;
  const json check = last_of(progress_lines(err), "check");
  ASSERT_TRUE(check.is_object()) << err;
  EXPECT_LT(check["bytes_done"].get<uint64_t>(), check["bytes_total"].get<uint64_t>()) << err;
  const json report = json::parse(walcut("snapshot check " + copy + " --increment 2 --json", &code));
  EXPECT_EQ(check["bytes_done"], report["bytes_read"]) << err;
}

TEST_F(CliProgress, DryRunReportsWhatItWouldRestoreAndWritesNothing) {
  const std::string before = tree_of(tmp_.path());
  int code = -1;
  std::string out = walcut("snapshot restore " + snap() + " --increment 2 --dry-run --json --dest " + tmp_.file("d"),
                           &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_EQ(tree_of(tmp_.path()), before) << "no dest, lock file or staging directory";
  const json j = json::parse(out);
  EXPECT_EQ(j["dry_run"], true);
  EXPECT_EQ(j["nodes"], 3);
  EXPECT_GT(j["groups"].get<uint64_t>(), 0u);
  EXPECT_GT(j["partitions"].get<uint64_t>(), 0u);
  EXPECT_GE(j["partition_files"].get<uint64_t>(), j["partitions"].get<uint64_t>());
  EXPECT_GT(j["bytes_read"].get<uint64_t>(), 0u);
  EXPECT_GT(j["partition_bytes"].get<uint64_t>(), 0u);
  // The entries the restore applies, and the files it writes.
  out = walcut("snapshot restore " + snap() + " --increment 2 --json --dest " + tmp_.file("r"), &code);
  ASSERT_EQ(code, 0) << out;
  const json restored = json::parse(out);
  EXPECT_EQ(j["entries_applied"], restored["entries_applied"]);
  EXPECT_EQ(j["partition_files"], restored["partition_files"]);
  out = walcut("snapshot restore " + snap() + " --increment 2 --dry-run --dest " + tmp_.file("d"), &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("would restore    3 nodes"), std::string::npos) << out;
}

// Each case: a --dest the restore refuses; the dry run refuses it with the
// same message and exit status, and writes nothing (checked first, so that
// the restore's run cannot have made what the dry run then finds).
TEST_F(CliProgress, DryRunRefusesADestTheRestoreWouldRefuse) {
  const std::string restored = tmp_.file("restored");
  int code = -1;
  std::string out = walcut("snapshot restore " + snap() + " --increment 2 --dest " + restored, &code);
  ASSERT_EQ(code, 0) << out;
  fs::create_directories(tmp_.file("full"));
  std::ofstream(tmp_.file("full/mine.txt")) << "keep me\n";
  std::ofstream(tmp_.file("a-file")) << "x\n";
  const std::vector<std::string> dests{tmp_.file("full"), tmp_.file("a-file"), tmp_.file("a-file/below"),
                                       snap() + "/inside", restored + "/node0"};
  for (const std::string& dest : dests) {
    const std::string before = tree_of(tmp_.path());
    int dry_code = -1;
    const std::string dry = walcut("snapshot restore " + snap() + " --increment 2 --dry-run --dest " + dest, &dry_code);
    EXPECT_EQ(tree_of(tmp_.path()), before) << dest << ": the dry run wrote something";
    const std::string real = walcut("snapshot restore " + snap() + " --increment 2 --dest " + dest, &code);
    EXPECT_NE(code, 0) << dest << ": " << real;
    EXPECT_EQ(dry_code, code) << dest << "\ndry run: " << dry << "restore: " << real;
    EXPECT_EQ(dry, real) << dest;
  }
  // A published restore changed since: refused (exit 3) by both, as the rerun verifies it.
  fs::remove_all(restored + "/node1");
  int dry_code = -1;
  const std::string dry = walcut("snapshot restore " + snap() + " --increment 2 --dry-run --dest " + restored, &dry_code);
  const std::string real = walcut("snapshot restore " + snap() + " --increment 2 --dest " + restored, &code);
  EXPECT_EQ(code, 3) << real;
  EXPECT_EQ(dry_code, 3) << dry;
  EXPECT_EQ(dry, real);
}

TEST_F(CliProgress, DryRunIntoARestoreThatIsDoneSaysSo) {
  const std::string restored = tmp_.file("restored");
  int code = -1;
  std::string out = walcut("snapshot restore " + snap() + " --increment 2 --dest " + restored, &code);
  ASSERT_EQ(code, 0) << out;
  out = walcut("snapshot restore " + snap() + " --increment 2 --dry-run --dest " + restored, &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find(restored + " already holds this restore"), std::string::npos) << out;
  out = walcut("snapshot restore " + snap() + " --increment 2 --dry-run --json --dest " + restored, &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_EQ(json::parse(out)["already_restored"], true) << out;
}

// Replay and finish alternate (a node's partitions are finished after its
// replay): each phase's rates are over its whole span, not reset each time
// it comes back, so its last line does not say 0 per second.
TEST_F(CliProgress, RatesOfAPhaseThatComesBackCoverItsWholeSpan) {
  std::string err;
  int code = -1;
  walcut_split("snapshot restore " + snap() + " --increment 2 --progress=json --dest " + tmp_.file("d"), tmp_, &err,
               &code);
  ASSERT_EQ(code, 0) << err;
  const json replay = last_of(progress_lines(err), "replay");
  ASSERT_TRUE(replay.is_object()) << err;
  EXPECT_GT(replay["bytes_per_s"].get<uint64_t>(), 0u) << err;
  EXPECT_GT(replay["entries_per_s"].get<uint64_t>(), 0u) << err;
}

TEST_F(CliProgress, ThePublishPhaseEndsAtItsTotalAsTheOthersDo) {
  std::string err;
  int code = -1;
  walcut_split("snapshot restore " + snap() + " --increment 2 --progress=json --dest " + tmp_.file("d"), tmp_, &err,
               &code);
  ASSERT_EQ(code, 0) << err;
  const std::vector<json> lines = progress_lines(err);
  const json publish = last_of(lines, "publish");
  ASSERT_TRUE(publish.is_object()) << err;
  EXPECT_GT(publish["bytes_total"].get<uint64_t>(), 0u) << err;
  EXPECT_EQ(publish["bytes_done"], publish["bytes_total"]) << err;
  EXPECT_EQ(lines.back(), publish) << "publish is the last phase";
  EXPECT_GT(std::count_if(lines.begin(), lines.end(), [](const json& j) { return j["phase"] == "publish"; }), 1)
      << "its start and its end: " << err;
}

TEST_F(CliProgress, DryRunFindsDamageInTheLastIncrementBeforeAnyReplay) {
  const std::string copy = damaged_copy();
  const std::string segment = last_increment_segment(copy, 2);
  flip_byte(segment, 64 + 48 + 4);
  const std::string before = tree_of(tmp_.path());
  int code = -1;
  const std::string out =
      walcut("snapshot restore " + copy + " --increment 2 --dry-run --dest " + tmp_.file("d"), &code);
  EXPECT_EQ(code, 3) << out;
  EXPECT_NE(out.find(segment), std::string::npos) << "names the file: " << out;
  EXPECT_NE(out.find("offset 64"), std::string::npos) << "names the offset: " << out;
  EXPECT_EQ(tree_of(tmp_.path()), before);
}

TEST_F(CliProgress, DryRunFindsADamagedPartitionFile) {
  const std::string copy = damaged_copy();
  std::string victim;
  for (const auto& e : fs::recursive_directory_iterator(copy + "/db/node1")) {
    if (e.is_regular_file() && e.file_size() > 100) victim = e.path();
  }
  ASSERT_FALSE(victim.empty());
  flip_byte(victim, 90);
  int code = -1;
  const std::string out = walcut("snapshot restore " + copy + " --dry-run --dest " + tmp_.file("d"), &code);
  EXPECT_EQ(code, 3) << out;
  EXPECT_NE(out.find(victim), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(tmp_.file("d.lock")));
}

}  // namespace
}  // namespace walcut
