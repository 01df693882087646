// The command line on bad input: every numeric flag has a range and a
// negative, empty or out-of-range value is a usage error naming the flag;
// a path that is a directory where a file belongs is an I/O error naming
// it; map files carry 64-bit hashes as hex strings and refuse numbers
// that are not exact integers in range.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "replay/check.h"
#include "tests/testing/command.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wal_fixture.h"

namespace walcut {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using testing::TempDir;

const std::string kCli = WALCUT_CLI;

// The command's standard output and error, and its exit code. Bounded by
// `timeout`, so a flag that wraps to an enormous count fails instead of
// running for ever.
std::string run(const std::string& args, int* exit_code) {
  return testing::run_command("timeout 60 " + kCli + " " + args + " 2>&1", exit_code);
}

std::string text_of(const std::string& path) {
  Bytes b = testing::read_file(path);
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

void write_text(const std::string& path, const std::string& text) {
  testing::write_file(path, ByteSpan(reinterpret_cast<const std::byte*>(text.data()), text.size()));
}

TEST(NumericFlags, NegativeEmptyMalformedOrOutOfRangeValuesAreUsageErrorsNamingTheFlag) {
  TempDir dir;
  struct Flag {
    std::string command;  // the verb with its required arguments
    std::string flag;
    std::string too_big;  // just above the flag's range
  };
  const std::string gen = "gen --out " + dir.file("gen");
  const std::string synth = "wal synth " + dir.file("wal");
  const std::vector<Flag> flags = {
      {"snapshot restore " + dir.file("none") + " --dest " + dir.file("dest"), "--increment", "1000001"},
      {"snapshot restore " + dir.file("none") + " --dest " + dir.file("dest"), "--threads", "1025"},
      {"snapshot check " + dir.file("none"), "--increment", "1000001"},
      {"snapshot check " + dir.file("none"), "--threads", "1025"},
      {"snapshot restore " + dir.file("none") + " --dest " + dir.file("dest"), "--queue-depth", "4097"},
      {"snapshot restore " + dir.file("none") + " --dest " + dir.file("dest"), "--chunk-kib", "1048577"},
      {"wal dump " + dir.file("none"), "--queue-depth", "4097"},
      {"wal stats " + dir.file("none"), "--chunk-kib", "1048577"},
      {synth, "--transactions", "1000000000001"},
      {synth, "--threads", "257"},
      {synth, "--entries", "100001"},
      {synth, "--value-bytes", "1048577"},
      {synth, "--segment-kib", "1048577"},
      {synth, "--seed", "18446744073709551616"},
      {synth, "--node-index", "65536"},
      {gen, "--seed", "18446744073709551616"},
      {gen, "--nodes", "1001"},
      {gen, "--groups", "1001"},
      {gen, "--atomic-groups", "1001"},
      {gen, "--partitions", "65536"},
      {gen, "--backups", "101"},
      {gen, "--keys", "1099511627777"},
      {gen, "--value-bytes", "1048577"},
      {gen, "--txs", "1000000000001"},
      {gen, "--tx-size", "10001"},
      {gen, "--in-flight", "100001"},
      {gen, "--increments", "1001"},
      {gen, "--cut-delay-max-ms", "3600001"},
      {gen, "--segment-mib", "1025"},
      {gen, "--rollback-percent", "101"},
      {gen, "--checkpoints", "1001"},
  };
  for (const Flag& f : flags) {
    // The value as the shell gets it, and as the message quotes it back.
    for (const auto& [arg, quoted] : std::vector<std::pair<std::string, std::string>>{
             {"-1", "'-1'"}, {"''", "''"}, {"12x", "'12x'"}, {"010", "'010'"}, {f.too_big, "'" + f.too_big + "'"}}) {
      int code = -1;
      std::string out = run(f.command + " " + f.flag + " " + arg, &code);
      EXPECT_EQ(code, 2) << f.command << " " << f.flag << " " << arg << "\n" << out;
      EXPECT_NE(out.find(f.flag + ": must be a whole number in "), std::string::npos) << arg << "\n" << out;
      EXPECT_NE(out.find("got " + quoted), std::string::npos) << f.flag << " " << arg << "\n" << out;
    }
  }
  EXPECT_FALSE(fs::exists(dir.file("gen")));
  EXPECT_FALSE(fs::exists(dir.file("wal")));
}

class CliOnASnapshot : public ::testing::Test {
 protected:
  void SetUp() override {
    int code = -1;
    std::string out =
        run("gen --out " + dir_.file("gen") + " --nodes 3 --partitions 8 --txs 300 --increments 2", &code);
    ASSERT_EQ(code, 0) << out;
    snap_ = dir_.file("gen/snapshots/snp");
  }
  TempDir dir_;
  std::string snap_;
};

// dump names what stands where a partition file or a node.meta belongs
// and is no regular file, instead of leaving its entries out with exit 0.
TEST_F(CliOnASnapshot, DumpRefusesAFifoOrDirectoryInPlaceOfAPartitionFileOrNodeMetaNamingIt) {
  std::string part;
  for (const auto& e : fs::recursive_directory_iterator(snap_ + "/db")) {
    if (e.path().extension() == ".bin") part = e.path().string();
  }
  ASSERT_FALSE(part.empty());
  int code = -1;
  const std::string whole = run("dump " + snap_, &code);
  ASSERT_EQ(code, 0) << whole;
  for (bool fifo : {true, false}) {
    fs::remove_all(part);
    if (fifo) {
      ASSERT_EQ(::mkfifo(part.c_str(), 0600), 0);
    } else {
      fs::create_directory(part);
    }
    std::string out = run("dump " + snap_, &code);
    EXPECT_EQ(code, 3) << out;
    EXPECT_NE(out.find(part), std::string::npos) << out;
  }
  const std::string meta = dir_.file("gen/cluster/node0/node.meta");
  ASSERT_TRUE(fs::remove(meta));
  ASSERT_EQ(::mkfifo(meta.c_str(), 0600), 0);
  for (const std::string& target : {dir_.file("gen/cluster"), dir_.file("gen/cluster/node0")}) {
    std::string out = run("dump " + target, &code);
    EXPECT_EQ(code, 3) << target << "\n" << out;
    EXPECT_NE(out.find(meta), std::string::npos) << target << "\n" << out;
  }
}

// A FIFO where an increment's segment belongs is named as what it is (not
// as a file of 0 bytes), by restore and check, without waiting on it.
TEST_F(CliOnASnapshot, AFifoInPlaceOfASegmentIsNamedAsNoRegularFile) {
  std::string segment;
  for (const auto& e : fs::recursive_directory_iterator(snap_ + "/increments")) {
    if (e.path().extension() == ".wal") segment = e.path().string();
  }
  ASSERT_FALSE(segment.empty());
  ASSERT_TRUE(fs::remove(segment));
  ASSERT_EQ(::mkfifo(segment.c_str(), 0600), 0);
  int code = -1;
  std::string out = run("snapshot check " + snap_ + " --increment 2", &code);
  EXPECT_EQ(code, 1) << out;
  EXPECT_NE(out.find(segment + ": segment "), std::string::npos) << out;
  EXPECT_NE(out.find("is not a regular file"), std::string::npos) << out;
  out = run("snapshot restore " + snap_ + " --increment 2 --dest " + dir_.file("r"), &code);
  EXPECT_NE(code, 0) << out;
  EXPECT_NE(out.find(segment + ": segment "), std::string::npos) << out;
  EXPECT_NE(out.find("is not a regular file"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(dir_.file("r")));
}

TEST_F(CliOnASnapshot, CheckOfAnIncrementBeyondTheLastIsAUsageError) {
  int code = -1;
  std::string out = run("snapshot check " + snap_ + " --increment 3", &code);
  EXPECT_EQ(code, 2) << out;
  EXPECT_NE(out.find("--increment 3"), std::string::npos) << out;
  EXPECT_NE(out.find("has 2 increments"), std::string::npos) << out;
  run("snapshot check " + snap_ + " --increment 2", &code);
  EXPECT_EQ(code, 0);
}

TEST_F(CliOnASnapshot, ADirectoryOrMissingFileGivenAsAMapFileIsAnIoErrorNamingIt) {
  fs::create_directories(dir_.file("maps/node0.json"));
  int code = -1;
  std::string out = run("snapshot check --reduce " + dir_.file("maps/node0.json"), &code);
  EXPECT_EQ(code, 3) << out;
  EXPECT_NE(out.find(dir_.file("maps/node0.json") + ": Is a directory"), std::string::npos) << out;
  out = run("snapshot check --reduce " + dir_.file("maps/none.json"), &code);
  EXPECT_EQ(code, 3) << out;
  EXPECT_NE(out.find(dir_.file("maps/none.json") + ": No such file or directory"), std::string::npos) << out;
  out = run("snapshot check " + snap_ + " --node node0 --map-out " + dir_.file("maps/node0.json"), &code);
  EXPECT_EQ(code, 3) << out;
  EXPECT_NE(out.find(dir_.file("maps/node0.json") + ": Is a directory"), std::string::npos) << out;
}

TEST_F(CliOnASnapshot, MapFilesCarryHashesAsHexStringsAndReduceLikeTheWholeCheck) {
  int code = -1;
  std::string reduce = "snapshot check --reduce";
  for (const char* node : {"node0", "node1", "node2"}) {
    std::string file = dir_.file(std::string(node) + ".json");
    std::string out = run("snapshot check " + snap_ + " --increment 2 --node " + node + " --map-out " + file, &code);
    ASSERT_EQ(code, 0) << out;
    json j = json::parse(text_of(file));
    EXPECT_EQ(j["format"], "walcut-check-map-3");
    ASSERT_FALSE(j["full"].empty());
    for (const char* field : {"full", "incremental"}) {
      for (const json& h : j[field]) {
        ASSERT_TRUE(h[3].is_string() && h[4].is_string()) << h;
        EXPECT_EQ(h[3].get<std::string>().size(), 16u) << h;
      }
    }
    ASSERT_FALSE(j["tx"].empty());
    for (const json& t : j["tx"]) EXPECT_TRUE(t[1].is_string()) << t;
    reduce += " " + file;
  }
  std::string whole = run("snapshot check " + snap_ + " --increment 2 --json", &code);
  ASSERT_EQ(code, 0) << whole;
  std::string reduced = run(reduce + " --json", &code);
  ASSERT_EQ(code, 0) << reduced;
  EXPECT_EQ(json::parse(reduced)["findings"], json::parse(whole)["findings"]);
}

// A map as written by --map-out of a small snapshot, with `edit` applied.
std::string edited_map(const std::function<void(json&)>& edit) {
  NodeCheck c;
  c.node_index = 1;
  c.node_id = "node1";
  c.increment = 2;
  c.baseline = {"node0", "node1"};
  c.groups = {CacheGroup{1, "tx0", CacheMode::kTransactional, 4, 1}};
  c.full[PartitionId{1, 2}] = PartitionHashes{3, 0xfedcba9876543210ull, 0x8000000000000001ull};
  c.tx_hash[0] = 0xffffffffffffffffull;
  c.tx_count[0] = 9;
  json j = json::parse(node_check_to_json(c));
  edit(j);
  return j.dump();
}

TEST(MapFile, HashesRoundTripExactlyAsHexAndOldDecimalMapsStillRead) {
  Result<NodeCheck> c = node_check_from_json(edited_map([](json&) {}), "m.json");
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->full.at(PartitionId{1, 2}).key_value_hash, 0xfedcba9876543210ull);
  EXPECT_EQ(c->full.at(PartitionId{1, 2}).version_hash, 0x8000000000000001ull);
  EXPECT_EQ(c->tx_hash.at(0), 0xffffffffffffffffull);
  json j = json::parse(edited_map([](json&) {}));
  EXPECT_EQ(j["full"][0][3], "fedcba9876543210");
  EXPECT_EQ(j["tx"][0][1], "ffffffffffffffff");
  // The first map format wrote hashes as JSON numbers.
  Result<NodeCheck> old = node_check_from_json(edited_map([](json& m) {
                                                 m["format"] = "walcut-check-map-1";
                                                 m["full"][0][3] = 0xfedcba9876543210ull;
                                                 m["full"][0][4] = 0x8000000000000001ull;
                                                 m["tx"][0][1] = 0xffffffffffffffffull;
                                               }),
                                               "old.json");
  ASSERT_TRUE(old.ok()) << old.status().to_string();
  EXPECT_EQ(old->full, c->full);
  EXPECT_EQ(old->tx_hash, c->tx_hash);
}

TEST(MapFile, NumbersThatAreNotExactIntegersInRangeAndMisshapenEntriesAreRefused) {
  std::vector<std::function<void(json&)>> bad = {
      [](json& m) { m["node_index"] = 1e300; },
      [](json& m) { m["node_index"] = 1.5; },
      [](json& m) { m["node_index"] = -1; },
      [](json& m) { m["node_index"] = 65536; },
      [](json& m) { m["node_index"] = "1"; },
      [](json& m) { m["increment"] = -2; },
      [](json& m) { m["files"] = 1e19; },
      [](json& m) { m["bytes_read"] = nullptr; },
      [](json& m) { m["groups"][0][3] = 1e300; },
      [](json& m) { m["groups"][0][3] = 0; },
      [](json& m) { m["groups"][0][2] = 9; },
      [](json& m) { m["groups"][0][1] = "../g"; },
      [](json& m) { m["groups"][0].erase(4); },
      [](json& m) { m["groups"][0] = 5; },
      [](json& m) { m["full"][0][1] = 1e300; },
      [](json& m) { m["full"][0][3] = 1e300; },
      [](json& m) { m["full"][0][3] = "xyz"; },
      [](json& m) { m["full"][0][3] = "1fedcba9876543210"; },
      [](json& m) { m["full"][0][3] = ""; },
      [](json& m) { m["full"][0].erase(4); },
      [](json& m) { m["tx"][0][0] = 1e300; },
      [](json& m) { m["tx"][0][2] = -1; },
      [](json& m) { m["findings"] = json::array({json::array({"structure", "x"})}); },
      [](json& m) { m["node_id"] = "../n1"; },
      [](json& m) { m["baseline"][0] = 7; },
      [](json& m) { m.erase("tx"); },
  };
  for (size_t i = 0; i < bad.size(); ++i) {
    Result<NodeCheck> c = node_check_from_json(edited_map(bad[i]), "m.json");
    ASSERT_FALSE(c.ok()) << "case " << i;
    EXPECT_EQ(c.status().code(), StatusCode::kCorruption) << "case " << i;
    EXPECT_EQ(c.status().message().rfind("m.json: ", 0), 0u) << "case " << i << ": " << c.status().message();
  }
}

TEST(MapFile, ReduceRefusesAMapWithAFloatWhereAnIntegerBelongs) {
  TempDir dir;
  write_text(dir.file("m.json"), edited_map([](json& m) { m["full"][0][0] = 1e300; }));
  int code = -1;
  std::string out = run("snapshot check --reduce " + dir.file("m.json"), &code);
  EXPECT_EQ(code, 3) << out;
  EXPECT_NE(out.find(dir.file("m.json")), std::string::npos) << out;
}

// What a verb prints and cannot write (a full disk here) is exit 3 and a
// message, not exit 0 with the output cut short.
TEST_F(CliOnASnapshot, OutputThatCannotBeWrittenIsExit3) {
  const std::vector<std::string> commands{"snapshot info", "snapshot check", "dump", "--help"};
  const std::vector<std::string> operands{snap_ + " --increment 2", snap_ + " --json", snap_ + "/db", ""};
  for (size_t i = 0; i < commands.size(); ++i) {
    const std::string args = commands[i] + " " + operands[i];
    int code = -1;  // standard error to the pipe, standard output to /dev/full
    const std::string err = testing::run_command("timeout 60 " + kCli + " " + args + " 2>&1 >/dev/full", &code);
    EXPECT_EQ(code, 3) << args << "\n" << err;
    EXPECT_NE(err.find("walcut: write <stdout>: No space left on device"), std::string::npos) << args << "\n" << err;
  }
}

// Runs walcut with `args`, standard output to /dev/null and standard error
// to a pipe no one reads any more. Returns its exit code (128 + signal).
int run_with_reader_gone(const std::vector<std::string>& args) {
  int fds[2];
  if (::pipe(fds) != 0) return -1;
  ::close(fds[0]);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(fds[1], 2);
    const int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, 1);
    std::vector<char*> argv{const_cast<char*>(kCli.c_str())};
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(kCli.c_str(), argv.data());
    ::_exit(127);
  }
  ::close(fds[1]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// A progress reader that goes away does not kill a restore midway
// (SIGPIPE, its staging left behind): the restore runs to the end.
TEST_F(CliOnASnapshot, RestoreOutlivesItsProgressReader) {
  const std::string dest = dir_.file("restored");
  EXPECT_EQ(run_with_reader_gone({"snapshot", "restore", snap_, "--increment", "2", "--dest", dest, "--progress=json"}),
            0);
  int code = -1;
  std::string out = run("snapshot restore " + snap_ + " --increment 2 --dest " + dest + " --json", &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("\"already_restored\": true"), std::string::npos) << out;
}

// A file past `ulimit -f` is a write error naming the file, and the
// restore leaves no staging behind (not a kill by SIGXFSZ).
TEST_F(CliOnASnapshot, AFileSizeLimitIsAWriteErrorNotAKill) {
  const std::string dest = dir_.file("restored");
  int code = -1;
  const std::string out = testing::run_command(
      "ulimit -f 1; timeout 60 " + kCli + " snapshot restore " + snap_ + " --increment 2 --dest " + dest + " 2>&1",
      &code);
  EXPECT_EQ(code, 3) << out;
  EXPECT_NE(out.find("File too large"), std::string::npos) << out;
  for (const auto& e : fs::directory_iterator(dir_.path())) {
    EXPECT_EQ(e.path().filename().string().rfind("restored.staging", 0), std::string::npos) << e.path();
  }
  EXPECT_FALSE(fs::exists(dest));
}

#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
// (Not under the sanitizers: their runtime needs descriptors of its own.
// Out of them, UBSan's vptr check reported a std::thread being started
// as "an object of invalid vptr", "memory cannot be printed", exit 1.)

// A memory-limited restore keeps each spill file open until the finish
// reads it back: the CLI raises its soft limit on open files to the hard
// one, and where the hard limit is what stops it, the error says so.
TEST_F(CliOnASnapshot, SpillFilesPastTheSoftOpenFileLimitAreRestored) {
  int code = -1;
  const std::string gen = dir_.file("spilling");
  std::string out = run("gen --out " + gen + " --nodes 2 --partitions 8 --txs 6000 --value-bytes 1000", &code);
  ASSERT_EQ(code, 0) << out;
  const std::string snap = gen + "/snapshots/snp", dest = dir_.file("restored");
  out = testing::run_command("ulimit -Sn 16; timeout 120 " + kCli + " snapshot restore " + snap +
                                 " --increment 1 --dest " + dest + " --memory-limit 1 --json 2>/dev/null",
                             &code);
  ASSERT_EQ(code, 0) << out;
  const json report = json::parse(out);
  EXPECT_GT(report["spill_files"].get<uint64_t>(), 16u) << "more spill files open at once than the soft limit";
  out = run("snapshot restore " + snap + " --increment 1 --dest " + dest + " --json", &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("\"already_restored\": true"), std::string::npos) << out;

  const std::string limited = dir_.file("limited");
  out = testing::run_command("ulimit -n 16; timeout 120 " + kCli + " snapshot restore " + snap +
                                 " --increment 1 --dest " + limited + " --memory-limit 1 2>&1",
                             &code);
  EXPECT_EQ(code, 3) << out;
  EXPECT_NE(out.find("Too many open files (the process's limit on open files, ulimit -n, is 16)"), std::string::npos)
      << out;
  EXPECT_FALSE(fs::exists(limited));
}

// A check that runs out of descriptors cannot check (exit 3): the files
// it could not open are not damage in the snapshot (exit 1).
TEST_F(CliOnASnapshot, ACheckOutOfDescriptorsCannotCheckAndFindsNothing) {
  int code = -1;
  const std::string out = testing::run_command(
      // 2>&1 before the limit: the shell moves a descriptor it redirects to 10 or above.
      "exec 2>&1; ulimit -n 5; exec timeout 60 " + kCli + " snapshot check " + snap_ + " --increment 2 --no-progress",
      &code);
  EXPECT_EQ(code, 3) << out;
  EXPECT_NE(out.find("Too many open files (the process's limit on open files, ulimit -n, is 5)"), std::string::npos)
      << out;
  EXPECT_EQ(out.find("structure:"), std::string::npos) << out;
  EXPECT_EQ(out.find("found"), std::string::npos) << out;
}
#endif

#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
// Out of memory at any point (an address-space limit swept across where
// the run starts to fit) is exit 3, or the run fits and exits 0: never an
// abort. With --threads 1 the limit on oneTBB's threads was lifted as the
// failure unwound, oneTBB could not start a thread and threw from a
// destructor. (ASan and TSan need far more address space to start.)
TEST_F(CliOnASnapshot, OutOfMemoryAnywhereIsExit3NotAnAbort) {
  for (int mib = 16; mib <= 64; mib += 4) {
    for (const std::string& verb :
         {"snapshot check " + snap_ + " --increment 2 --threads 1",
          "snapshot restore " + snap_ + " --increment 2 --threads 1 --dest " + dir_.file("r" + std::to_string(mib))}) {
      int code = -1;
      const std::string out = testing::run_command(
          "ulimit -v " + std::to_string(mib * 1024) + "; timeout 60 " + kCli + " " + verb + " 2>&1", &code);
      EXPECT_TRUE(code == 0 || code == 3) << mib << " MiB: " << verb << " exit " << code << "\n" << out;
    }
  }
  for (const auto& e : fs::directory_iterator(dir_.path())) {
    EXPECT_EQ(e.path().filename().string().find(".staging"), std::string::npos) << e.path();
  }
}
#endif

// gen that cannot write (a file-size limit standing in for a full disk)
// leaves nothing: --out removed when it did not exist, emptied when it
// was empty. One that held something is refused and left alone.
TEST(Gen, AFailedRunLeavesNothingBehind) {
  TempDir dir;
  const std::string absent = dir.file("absent"), empty = dir.file("empty");
  ASSERT_TRUE(fs::create_directory(empty));
  for (const std::string& out : {absent, empty}) {
    int code = -1;
    const std::string text =
        testing::run_command("ulimit -f 200; timeout 60 " + kCli + " gen --out " + out + " --txs 20000 2>&1", &code);
    EXPECT_EQ(code, 3) << text;
    EXPECT_NE(text.find("File too large"), std::string::npos) << text;
  }
  EXPECT_FALSE(fs::exists(absent));
  EXPECT_TRUE(fs::is_empty(empty));
  write_text(empty + "/mine", "kept");
  int code = -1;
  std::string text = run("gen --out " + empty, &code);
  EXPECT_EQ(code, 2) << text;
  EXPECT_EQ(text_of(empty + "/mine"), "kept");
  // A dangling symbolic link is not the run's to remove.
  const std::string link = dir.file("link");
  fs::create_symlink(dir.file("nowhere"), link);
  text = run("gen --out " + link + " --txs 10", &code);
  EXPECT_NE(code, 0) << text;
  EXPECT_TRUE(fs::is_symlink(fs::symlink_status(link))) << text;
}

}  // namespace
}  // namespace walcut
