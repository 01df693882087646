// Restore against a deliberately simple reference computed from the
// simulator's history: for every seed and increment, every copy of every
// partition equals the committed transactions of that increment applied in
// commit order.
#include "replay/restore.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <nlohmann/json.hpp>
#include <oneapi/tbb/task_arena.h>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "engine/affinity.h"
#include "engine/partition_file.h"
#include "io/crc32c.h"
#include "io/fault.h"
#include "replay/check.h"
#include "tests/testing/command.h"
#include "tests/testing/fork.h"
#include "tests/testing/history_reference.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wal_fixture.h"
#include "tools/sim/simulator.h"

namespace walcut {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;
using testing::State;
using testing::compare_restored;
using testing::reference;

sim::Options gen_options(uint64_t seed, const std::string& out) {
  sim::Options o;
  o.out = out;
  o.seed = seed;
  o.nodes = 3 + static_cast<uint32_t>(seed % 2);
  o.partitions = 16;
  o.backups = 1 + static_cast<uint32_t>(seed % 2);
  o.keys = 60;
  o.value_bytes = 24;
  o.txs = 600;
  o.tx_size = 4;
  o.in_flight = 8;
  o.increments = 3;
  o.cut_delay_max_ms = 10;
  o.segment_bytes = 128 << 10;
  o.codec = seed % 2 ? Codec::kLz4 : Codec::kNone;
  return o;
}

TEST(Restore, EveryIncrementOfManySeedsEqualsTheReference) {
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    TempDir dir;
    sim::Options o = gen_options(seed, dir.path() + "/gen");
    ASSERT_TRUE(sim::run(o).ok());
    for (uint64_t k = 0; k <= o.increments; ++k) {
      RestoreOptions r;
      r.snapshot_dir = o.out + "/snapshots/snp";
      r.increment = k;
      r.dest = dir.path() + "/restored-" + std::to_string(k);
      Result<RestoreReport> rep = restore_snapshot(r);
      ASSERT_TRUE(rep.ok()) << "seed " << seed << " increment " << k << ": " << rep.status().to_string();
      EXPECT_EQ(compare_restored(r.dest, reference(o.out + "/history.jsonl", k)), "")
          << "seed " << seed << " increment " << k;
      if (k > 0) {
        EXPECT_GT(rep->entries_applied, 0u);
      }
    }
  }
}

// Bytes of every partition file under a restored directory.
std::map<std::string, Bytes> files_of(const std::string& dest) {
  std::map<std::string, Bytes> out;
  for (const auto& e : fs::recursive_directory_iterator(dest)) {
    if (e.is_regular_file()) out[fs::relative(e.path(), dest).string()] = testing::read_file(e.path().string());
  }
  return out;
}

TEST(Restore, ThreadsAndIoEnginesGiveIdenticalFiles) {
  TempDir dir;
  sim::Options o = gen_options(3, dir.path() + "/gen");
  ASSERT_TRUE(sim::run(o).ok());
  std::map<std::string, Bytes> first;
  int i = 0;
  for (unsigned threads : {1u, 0u}) {
    for (IoEngine io : {IoEngine::kUring, IoEngine::kPread}) {
      RestoreOptions r;
      r.snapshot_dir = o.out + "/snapshots/snp";
      r.increment = 3;
      r.threads = threads;
      r.io.engine = io;
      r.io.notice = [](const std::string&) {};
      r.dest = dir.path() + "/r" + std::to_string(i++);
      Result<RestoreReport> rep = restore_snapshot(r);
      ASSERT_TRUE(rep.ok()) << rep.status().to_string();
      auto files = files_of(r.dest);
      if (first.empty()) {
        first = files;
        ASSERT_GT(first.size(), 10u);
      } else {
        EXPECT_EQ(files, first) << "threads " << threads << " io " << io_engine_name(io);
      }
    }
  }
}

TEST(Restore, DamagedOrMissingSegmentFailsNamingItAndLeavesDestAbsent) {
  TempDir dir;
  sim::Options o = gen_options(2, dir.path() + "/gen");
  ASSERT_TRUE(sim::run(o).ok());
  const std::string snap = o.out + "/snapshots/snp";
  auto metas = read_increment_metas(snap, 2).value();
  const IncrementMeta& m = metas.front();
  ASSERT_GE(m.files.size(), 1u);
  const std::string victim = increment_dir(snap, 2) + "/" + m.files.front().path;
  Bytes original = testing::read_file(victim);
  Bytes damaged = original;
  damaged[200] ^= std::byte{0x10};
  testing::write_file(victim, damaged);
  RestoreOptions r;
  r.snapshot_dir = snap;
  r.increment = 3;
  r.dest = dir.path() + "/restored";
  Result<RestoreReport> rep = restore_snapshot(r);
  ASSERT_FALSE(rep.ok());
  EXPECT_EQ(rep.status().code(), StatusCode::kCorruption);
  EXPECT_NE(rep.status().message().find(victim), std::string::npos) << rep.status().message();
  EXPECT_FALSE(fs::exists(r.dest));
  testing::write_file(victim, original);
  fs::rename(victim, victim + ".moved");
  rep = restore_snapshot(r);
  ASSERT_FALSE(rep.ok());
  EXPECT_NE(rep.status().message().find(victim), std::string::npos) << rep.status().message();
  EXPECT_FALSE(fs::exists(r.dest));
  fs::rename(victim + ".moved", victim);
  rep = restore_snapshot(r);
  ASSERT_TRUE(rep.ok()) << rep.status().to_string();
  EXPECT_FALSE(rep->already_restored);
  rep = restore_snapshot(r);
  ASSERT_TRUE(rep.ok());
  EXPECT_TRUE(rep->already_restored) << "running the same restore again succeeds";
  r.increment = 2;
  EXPECT_FALSE(restore_snapshot(r).ok()) << "a different restore into the same directory is refused";
}

// Kill the restore at random moments: dest is absent or complete and
// correct, and running it again succeeds.
TEST(Restore, KilledAtRandomMomentsLeavesNothingOrAllAndReruns) {
  TempDir dir;
  sim::Options o = gen_options(5, dir.path() + "/gen");
  ASSERT_TRUE(sim::run(o).ok());
  const State want = reference(o.out + "/history.jsonl", 3);
  std::mt19937_64 rng(11);
  int absent = 0, complete = 0;
  for (int trial = 0; trial < 24; ++trial) {
    RestoreOptions r;
    r.snapshot_dir = o.out + "/snapshots/snp";
    r.increment = 3;
    r.dest = dir.path() + "/restored-" + std::to_string(trial);
    bool finalized = false;
    pid_t pid = testing::fork_child(&finalized);
    if (pid == 0) {
      if (trial % 6 == 4) {
        fault::crash_at_point("restore.staged");
      } else if (trial % 6 == 5) {
        fault::crash_at_point("restore.renamed");
      } else {
        fault::crash_after_bytes(rng() % 200000);
      }
      ::_exit(restore_snapshot(r).ok() ? 0 : 1);
    }
    rng();  // the parent's sequence stays in step with the child's
    EXPECT_TRUE(finalized) << "trial " << trial << ": oneTBB's workers were running at the fork";
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFEXITED(status));
    if (fs::exists(r.dest)) {
      ++complete;
      EXPECT_EQ(compare_restored(r.dest, want), "") << "trial " << trial;
    } else {
      ++absent;
    }
    Result<RestoreReport> again = restore_snapshot(r);
    ASSERT_TRUE(again.ok()) << "trial " << trial << ": " << again.status().to_string();
    EXPECT_EQ(compare_restored(r.dest, want), "") << "trial " << trial;
  }
  EXPECT_GT(absent, 0);
  EXPECT_GT(complete, 0);
}

TEST(Restore, OneNodeOrSomeGroups) {
  TempDir dir;
  sim::Options o = gen_options(4, dir.path() + "/gen");
  ASSERT_TRUE(sim::run(o).ok());
  RestoreOptions r;
  r.snapshot_dir = o.out + "/snapshots/snp";
  r.increment = 2;
  r.node = "node1";
  r.groups = {"tx0"};
  r.dest = dir.path() + "/one";
  ASSERT_TRUE(restore_snapshot(r).ok());
  std::vector<std::string> nodes;
  for (const auto& e : fs::directory_iterator(r.dest)) {
    if (e.is_directory()) nodes.push_back(e.path().filename().string());
  }
  EXPECT_EQ(nodes, std::vector<std::string>{"node1"});
  State want = reference(o.out + "/history.jsonl", 2);
  NodeMeta meta = read_node_meta(r.dest + "/node1").value();
  Affinity aff(meta.groups, meta.baseline);
  size_t files = 0;
  for (const CacheGroup& g : meta.groups) {
    for (uint16_t p = 0; p < g.partitions; ++p) {
      std::string path = r.dest + "/node1/db/" + g.name + "/" + partition_file_name(p);
      if (g.name != "tx0" || !aff.owns(g.id, p, meta.node_index)) {
        EXPECT_FALSE(fs::exists(path)) << path;
        continue;
      }
      std::map<std::string, std::string> have, expect;
      Result<PartitionFile> f = read_partition_file(path);
      ASSERT_TRUE(f.ok()) << f.status().to_string();
      for (const auto& [k, v] : f->entries) have[k] = v.value;
      for (const auto& [k, v] : want["tx0"]) {
        if (partition_of(g, k) == p) expect[k] = v;
      }
      EXPECT_EQ(have, expect) << path;
      ++files;
    }
  }
  EXPECT_GT(files, 0u);
  r.node = "node9";
  r.dest = dir.path() + "/none";
  EXPECT_EQ(restore_snapshot(r).status().code(), StatusCode::kInvalidArgument);
  r.node.reset();
  r.groups = {"nope"};
  EXPECT_EQ(restore_snapshot(r).status().code(), StatusCode::kInvalidArgument);
}

// ---- One run per dest, what a rerun trusts, and what a run leaves.

// A 3-node generated cluster with its snapshot and three increments,
// generated once for the suite; each test restores into its own directory.
class RestoreInto : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    gen_dir_ = new TempDir;
    opts_ = gen_options(2, gen_dir_->path() + "/gen");
    ASSERT_TRUE(sim::run(opts_).ok());
    snap_ = opts_.out + "/snapshots/snp";
  }
  static void TearDownTestSuite() {
    delete gen_dir_;
    gen_dir_ = nullptr;
  }
  RestoreOptions options(const std::string& name, uint64_t increment = 2) const {
    RestoreOptions r;
    r.snapshot_dir = snap_;
    r.increment = increment;
    r.dest = dir_.path() + "/" + name;
    return r;
  }
  // Entries of the test's directory whose name starts with `prefix`.
  std::vector<std::string> beside(const std::string& prefix) const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir_.path())) {
      std::string n = e.path().filename().string();
      if (n.rfind(prefix, 0) == 0) out.push_back(n);
    }
    std::sort(out.begin(), out.end());
    return out;
  }
  static TempDir* gen_dir_;
  static sim::Options opts_;
  static std::string snap_;
  TempDir dir_;
};
TempDir* RestoreInto::gen_dir_ = nullptr;
sim::Options RestoreInto::opts_;
std::string RestoreInto::snap_;

// Holds an flock on `path` (created) from this process, as another restore would.
class HeldLock {
 public:
  explicit HeldLock(const std::string& path) : fd_(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644)) {
    EXPECT_GE(fd_, 0) << path;
    EXPECT_EQ(::flock(fd_, LOCK_EX | LOCK_NB), 0) << path;
  }
  ~HeldLock() { release(); }
  void release() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

TEST_F(RestoreInto, AnotherRunHoldingTheDestLockMakesThisOneFailAtOnceAsBusy) {
  RestoreOptions r = options("restored");
  HeldLock held(r.dest + ".lock");
  auto t0 = std::chrono::steady_clock::now();
  Result<RestoreReport> rep = restore_snapshot(r);
  double took_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_FALSE(rep.ok());
  EXPECT_EQ(rep.status().code(), StatusCode::kIoError);
  EXPECT_NE(rep.status().message().find(r.dest + ": busy: another walcut process holds " + r.dest + ".lock"),
            std::string::npos)
      << rep.status().message();
  EXPECT_LT(took_s, 1.0) << "busy is said at once, before any work";
  EXPECT_EQ(beside("restored"), std::vector<std::string>{"restored.lock"}) << "no dest, no staging";
}

TEST_F(RestoreInto, CliSaysBusyWithExitThreeAndWaitsWhenAskedTo) {
  RestoreOptions r = options("restored");
  const std::string cmd = std::string(WALCUT_CLI) + " snapshot restore " + snap_ + " --increment 2 --dest " + r.dest;
  HeldLock held(r.dest + ".lock");
  int code = -1;
  std::string out = testing::run_command(cmd + " 2>&1", &code);
  EXPECT_EQ(code, 3) << out;
  EXPECT_NE(out.find("busy: another walcut process holds " + r.dest + ".lock"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(r.dest));
  std::future<std::pair<int, std::string>> waiting = std::async(std::launch::async, [&] {
    int c = -1;
    std::string o = testing::run_command(cmd + " --wait 2>&1", &c);
    return std::make_pair(c, o);
  });
  EXPECT_EQ(waiting.wait_for(std::chrono::milliseconds(1500)), std::future_status::timeout) << "it waits for the lock";
  EXPECT_FALSE(fs::exists(r.dest));
  held.release();
  auto [waited_code, waited_out] = waiting.get();
  EXPECT_EQ(waited_code, 0) << waited_out;
  EXPECT_NE(waited_out.find("restored 3 nodes"), std::string::npos) << waited_out;
  EXPECT_EQ(compare_restored(r.dest, reference(opts_.out + "/history.jsonl", 2)), "");
}

// Two CLI restores into one dest started together, many times: one
// restores, the other is busy (or, with --wait, then finds it restored),
// and what is published is the whole, correct restore.
TEST_F(RestoreInto, TwoRunsStartedTogetherPublishOneWholeCorrectTree) {
  RestoreOptions ref = options("reference");
  ASSERT_TRUE(restore_snapshot(ref).ok());
  const std::map<std::string, Bytes> want = files_of(ref.dest);
  for (int trial = 0; trial < 8; ++trial) {
    const std::string name = "race" + std::to_string(trial);
    const std::string dest = dir_.path() + "/" + name;
    const bool wait = trial % 2 == 1;
    const std::string cmd = std::string(WALCUT_CLI) + " snapshot restore " + snap_ + " --increment 2 --dest " + dest +
                            (wait ? " --wait" : "");
    const std::string delay = "0.0" + std::to_string(trial % 4);
    const std::string out = dir_.path() + "/" + name + "-out";
    testing::run_command("(" + cmd + " > " + out + "1 2>&1; echo $? >> " + out + "1) & (sleep " + delay + "; " + cmd +
                         " > " + out + "2 2>&1; echo $? >> " + out + "2) & wait");
    std::string o1 = to_string(testing::read_file(out + "1")), o2 = to_string(testing::read_file(out + "2"));
    auto restored = [](const std::string& o) {
      return o.find("restored 3 nodes") != std::string::npos && o.ends_with("\n0\n");
    };
    auto lost = [&](const std::string& o) {  // found it restored (after waiting), or busy
      if (o.find("already holds this restore") != std::string::npos && o.ends_with("\n0\n")) return true;
      return !wait && o.find("busy: another walcut process holds " + dest + ".lock") != std::string::npos &&
             o.ends_with("\n3\n");
    };
    const std::string outputs = "trial " + std::to_string(trial) + "\n" + o1 + "--\n" + o2;
    EXPECT_TRUE((restored(o1) && lost(o2)) || (restored(o2) && lost(o1))) << outputs;
    ASSERT_TRUE(fs::exists(dest)) << "trial " << trial;
    EXPECT_EQ(files_of(dest), want) << "trial " << trial;
    EXPECT_EQ(beside(name + "."), std::vector<std::string>{name + ".lock"}) << "trial " << trial << ": no staging left";
  }
}

// Copies the tree at `from` to `to` (replacing it).
void copy_tree(const std::string& from, const std::string& to) {
  fs::remove_all(to);
  fs::copy(from, to, fs::copy_options::recursive);
}

TEST_F(RestoreInto, RerunOverAChangedTreeIsCorruptionNamingTheFirstDifference) {
  RestoreOptions r = options("restored");
  ASSERT_TRUE(restore_snapshot(r).ok());
  const std::string pristine = dir_.path() + "/pristine";
  copy_tree(r.dest, pristine);
  std::string part;  // a partition file with entries
  for (const auto& [path, bytes] : files_of(r.dest)) {
    if (path.find("/db/tx") != std::string::npos && bytes.size() > 300) part = path;
  }
  ASSERT_FALSE(part.empty());
  struct Change {
    const char* what;
    std::function<void()> apply;
    std::string named;
  };
  const std::vector<Change> changes = {
      {"a node directory deleted", [&] { fs::remove_all(r.dest + "/node1"); }, r.dest + "/node1"},
      {"a byte changed",
       [&] {
         Bytes b = testing::read_file(r.dest + "/" + part);
         b[b.size() / 2] ^= std::byte{0x01};
         testing::write_file(r.dest + "/" + part, b);
       },
       r.dest + "/" + part + ": checksum differs"},
      {"a file cut short",
       [&] {
         Bytes b = testing::read_file(r.dest + "/" + part);
         b.resize(b.size() - 1);
         testing::write_file(r.dest + "/" + part, b);
       },
       r.dest + "/" + part + ": "},
      {"a file added", [&] { testing::write_file(r.dest + "/node0/db/tx0/part-99.bin", testing::test_payload(10, 1)); },
       r.dest + "/node0/db/tx0/part-99.bin: not written by the restore"},
      {"an empty directory deleted", [&] { fs::remove(r.dest + "/node2/wal"); }, r.dest + "/node2/wal: missing"},
      {"a mode widened", [&] { fs::permissions(r.dest + "/node0/node.meta", fs::perms(0666)); },
       r.dest + "/node0/node.meta: mode 0666, the restore made it 0600"},
  };
  for (const Change& c : changes) {
    copy_tree(pristine, r.dest);
    c.apply();
    Result<RestoreReport> rep = restore_snapshot(r);
    ASSERT_FALSE(rep.ok()) << c.what << ": the rerun said nothing to do";
    EXPECT_EQ(rep.status().code(), StatusCode::kCorruption) << c.what;
    EXPECT_NE(rep.status().message().find(c.named), std::string::npos) << c.what << ": " << rep.status().message();
  }
  copy_tree(pristine, r.dest);
  Result<RestoreReport> rep = restore_snapshot(r);
  ASSERT_TRUE(rep.ok()) << rep.status().to_string();
  EXPECT_TRUE(rep->already_restored);
}

// RESTORED says it is whole by its last line, the checksum of the lines
// before it: one cut short at a line (its last files' lines gone, and the
// files too) or holding only the identity is Corruption naming it, never
// "already restored" over a tree that is not the restore.
TEST_F(RestoreInto, ARestoredFileCutShortOrForgedIsCorruption) {
  RestoreOptions r = options("restored");
  ASSERT_TRUE(restore_snapshot(r).ok());
  const Bytes whole = testing::read_file(r.dest + "/RESTORED");
  const std::string text(reinterpret_cast<const char*>(whole.data()), whole.size());
  const size_t identity_end = text.find("\ndir ") + 1;
  ASSERT_NE(identity_end, std::string::npos + 1);
  const size_t last_node = text.rfind("\ndir node");  // the last node's lines and files go
  ASSERT_NE(last_node, std::string::npos);
  const std::string node = text.substr(last_node + 5, text.find('\n', last_node + 1) - last_node - 5);
  fs::remove_all(r.dest + "/" + node);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"cut short", text.substr(0, last_node + 1)},
      {"the identity alone", text.substr(0, identity_end)},
      {"no end line", text.substr(0, text.rfind("end "))},
  };
  for (const auto& [what, kept] : cases) {
    testing::write_file(r.dest + "/RESTORED", Bytes(reinterpret_cast<const std::byte*>(kept.data()),
                                                    reinterpret_cast<const std::byte*>(kept.data()) + kept.size()));
    Result<RestoreReport> rep = restore_snapshot(r);
    ASSERT_FALSE(rep.ok()) << what << ": the rerun said nothing to do";
    EXPECT_EQ(rep.status().code(), StatusCode::kCorruption) << what;
    EXPECT_NE(rep.status().message().find("its RESTORED is cut short or was changed"), std::string::npos)
        << what << ": " << rep.status().message();
  }
}

// The identity holds a hash of the snapshot's metadata files: a snapshot
// taken again under the same path, with other data, is another restore,
// refused over the first one's tree rather than taken as done.
TEST_F(RestoreInto, ASnapshotTakenAgainAtTheSamePathIsNotAlreadyRestored) {
  TempDir gen;
  sim::Options o = gen_options(2, gen.path() + "/gen");
  ASSERT_TRUE(sim::run(o).ok());
  RestoreOptions r = options("restored");
  r.snapshot_dir = o.out + "/snapshots/snp";
  ASSERT_TRUE(restore_snapshot(r).ok());
  Result<RestoreReport> again = restore_snapshot(r);
  ASSERT_TRUE(again.ok()) << again.status().to_string();
  EXPECT_TRUE(again->already_restored);
  fs::remove_all(o.out);
  o.seed += 1;  // other data under the same path
  ASSERT_TRUE(sim::run(o).ok());
  Result<RestoreReport> other = restore_snapshot(r);
  ASSERT_FALSE(other.ok()) << "a restore of other data was taken as done";
  EXPECT_EQ(other.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(other.status().message().find("exists and is not this restore"), std::string::npos)
      << other.status().message();
  r.dest = dir_.path() + "/again";
  EXPECT_TRUE(restore_snapshot(r).ok());
}

// "Not this restore" says why: the first line of RESTORED's identity that
// differs, or why RESTORED could not be read (a symbolic link is not
// followed, even to the right contents).
TEST_F(RestoreInto, ARefusedDestSaysWhichPartOfTheIdentityDiffers) {
  RestoreOptions r = options("restored");
  ASSERT_TRUE(restore_snapshot(r).ok());
  RestoreOptions earlier = options("restored", 1);
  Result<RestoreReport> rep = restore_snapshot(earlier);
  ASSERT_FALSE(rep.ok());
  EXPECT_EQ(rep.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(rep.status().message().find("its RESTORED says 'increment=2' where this restore's is 'increment=1'"),
            std::string::npos)
      << rep.status().message();
  // Cut inside the identity, after a whole line without its line break.
  const Bytes whole = testing::read_file(r.dest + "/RESTORED");
  const std::string first_line(reinterpret_cast<const char*>(whole.data()),
                               std::find(whole.begin(), whole.end(), std::byte{'\n'}) - whole.begin());
  testing::write_file(r.dest + "/RESTORED", as_bytes(first_line));
  rep = restore_snapshot(r);
  ASSERT_FALSE(rep.ok());
  EXPECT_EQ(rep.status().code(), StatusCode::kInvalidArgument) << rep.status().to_string();
  EXPECT_NE(rep.status().message().find("its RESTORED ends inside the identity"), std::string::npos)
      << rep.status().message();
  testing::write_file(r.dest + "/RESTORED", whole);
  const std::string saved = dir_.path() + "/RESTORED.saved";
  fs::rename(r.dest + "/RESTORED", saved);
  fs::create_symlink(saved, r.dest + "/RESTORED");
  rep = restore_snapshot(r);
  ASSERT_FALSE(rep.ok()) << "a RESTORED that is a symbolic link was followed";
  EXPECT_EQ(rep.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(rep.status().message().find("symbolic link"), std::string::npos) << rep.status().message();
  fs::remove(r.dest + "/RESTORED");
  fs::rename(saved, r.dest + "/RESTORED");
  rep = restore_snapshot(r);
  ASSERT_TRUE(rep.ok()) << rep.status().to_string();
  EXPECT_TRUE(rep->already_restored);
}

// A path that begins with a space (a node id or group name may) is read
// back from RESTORED as written: one space after the checksum, then the
// path to the end of the line.
TEST_F(RestoreInto, ARestoredPathBeginningWithASpaceIsReadBackWhole) {
  RestoreOptions r = options("restored");
  ASSERT_TRUE(restore_snapshot(r).ok());
  fs::rename(r.dest + "/node1", r.dest + "/ node1");
  // RESTORED rewritten as the restore would have written it: each path
  // under node1 renamed, the entries sorted by path again.
  const Bytes old = testing::read_file(r.dest + "/RESTORED");
  std::istringstream lines(std::string(reinterpret_cast<const char*>(old.data()), old.size()));
  std::string identity;
  std::vector<std::pair<std::string, std::string>> entries;  // path, line
  for (std::string line; std::getline(lines, line);) {
    size_t at = std::string::npos;  // where the path begins
    if (line.rfind("dir ", 0) == 0) at = 4;
    if (line.rfind("file ", 0) == 0) at = line.find(' ', line.find(' ', 5) + 1) + 1;
    if (line.rfind("end ", 0) == 0) continue;  // written anew below
    if (at == std::string::npos) {
      identity += line + "\n";
      continue;
    }
    if (line.compare(at, std::string::npos, "node1") == 0 || line.compare(at, 6, "node1/") == 0) line.insert(at, " ");
    entries.emplace_back(line.substr(at), line);
  }
  std::sort(entries.begin(), entries.end());
  std::string text = identity;
  for (const auto& e : entries) text += e.second + "\n";
  ASSERT_NE(text.find("dir  node1\n"), std::string::npos);
  char end[32];
  std::snprintf(end, sizeof end, "end %08x\n",
                crc32c(Bytes(reinterpret_cast<const std::byte*>(text.data()),
                             reinterpret_cast<const std::byte*>(text.data()) + text.size())));
  text += end;
  testing::write_file(r.dest + "/RESTORED", Bytes(reinterpret_cast<const std::byte*>(text.data()),
                                                  reinterpret_cast<const std::byte*>(text.data()) + text.size()));
  Result<RestoreReport> rep = restore_snapshot(r);
  ASSERT_TRUE(rep.ok()) << rep.status().to_string();
  EXPECT_TRUE(rep->already_restored);
}

// The partition files' checksums come from their writes, not a read back:
// each "file" line of RESTORED must still be what is on disk.
TEST_F(RestoreInto, RestoredRecordsTheSizeAndChecksumOfEachFileAsItIsOnDisk) {
  RestoreOptions r = options("restored");
  ASSERT_TRUE(restore_snapshot(r).ok());
  std::ifstream in(r.dest + "/RESTORED");
  size_t files = 0, partition_files = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("file ", 0) != 0) continue;
    std::istringstream fields(line.substr(5));
    uint64_t bytes = 0;
    std::string crc, path;
    fields >> bytes >> crc >> path;
    const Bytes on_disk = testing::read_file(r.dest + "/" + path);
    EXPECT_EQ(on_disk.size(), bytes) << path;
    char want[16];
    std::snprintf(want, sizeof want, "%08x", crc32c(on_disk));
    EXPECT_EQ(crc, want) << path;
    ++files;
    if (path.find("/part-") != std::string::npos) ++partition_files;
  }
  EXPECT_GT(partition_files, 10u);
  EXPECT_GT(files, partition_files);  // node.meta files are read back
}

// Out of memory in a replay step (decoding a batch, applying one) or in
// the read buffers is std::bad_alloc out of restore_snapshot(): the
// other replay workers stop (they waited for the failed step, for ever),
// nothing is published and no staging is left; the next run restores.
TEST_F(RestoreInto, OutOfMemoryThrowsAndLeavesNothingBehind) {
  const State want = reference(opts_.out + "/history.jsonl", 2);
  for (const char* point : {"replay.decode", "replay.apply", "read.buffer"}) {
    for (uint64_t count : {1, 2}) {
      RestoreOptions r = options("restored");
      fault::fail_allocation_at(point, count);
      EXPECT_THROW((void)restore_snapshot(r), std::bad_alloc) << point << " " << count;
      fault::disarm();
      EXPECT_EQ(beside("restored"), std::vector<std::string>{"restored.lock"}) << point << " " << count;
    }
  }
  RestoreOptions r = options("restored");
  ASSERT_TRUE(restore_snapshot(r).ok());
  EXPECT_EQ(compare_restored(r.dest, want), "");
}

// A read buffer that cannot be had is out of memory, not damage in the
// segment it was for: snapshot check throws, it reports no problem.
TEST_F(RestoreInto, CheckOutOfMemoryIsNotAProblemOfTheSnapshot) {
  CheckOptions c;
  c.snapshot_dir = snap_;
  c.increment = 2;
  fault::fail_allocation_at("read.buffer", 1);
  EXPECT_THROW((void)check_snapshot(c), std::bad_alloc);
  fault::disarm();
  Result<CheckReport> clean = check_snapshot(c);
  ASSERT_TRUE(clean.ok()) << clean.status().to_string();
  EXPECT_TRUE(clean->clean());
}

TEST_F(RestoreInto, FailedRunRemovesItsStagingAndTheNextOneSucceeds) {
  RestoreOptions r = options("restored");
  pid_t pid = testing::fork_child();
  if (pid == 0) {
    // A file-size limit makes the first larger write fail with EFBIG, as a full disk would with ENOSPC.
    ::signal(SIGXFSZ, SIG_IGN);
    rlimit limit{};
    limit.rlim_cur = limit.rlim_max = 400;
    ::setrlimit(RLIMIT_FSIZE, &limit);
    Result<RestoreReport> rep = restore_snapshot(r);
    if (rep.ok()) ::_exit(0);
    ::_exit(rep.status().message().find("File too large") != std::string::npos ? 1 : 2);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 1) << "the restore fails on the limit";
  EXPECT_EQ(beside("restored"), std::vector<std::string>{"restored.lock"}) << "no dest, no staging";
  Result<RestoreReport> rep = restore_snapshot(r);
  ASSERT_TRUE(rep.ok()) << rep.status().to_string();
  EXPECT_EQ(compare_restored(r.dest, reference(opts_.out + "/history.jsonl", 2)), "");
}

TEST_F(RestoreInto, StagingLeftByAKilledRunIsRemovedByTheNext) {
  RestoreOptions r = options("restored");
  pid_t pid = testing::fork_child();
  if (pid == 0) {
    fault::crash_at_point("restore.staged");
    ::_exit(restore_snapshot(r).ok() ? 0 : 1);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_EQ(WEXITSTATUS(status), fault::kCrashExitCode);
  std::vector<std::string> left = beside("restored.staging-");
  ASSERT_EQ(left.size(), 1u) << "the killed run's own staging";
  Result<RestoreReport> rep = restore_snapshot(r);
  ASSERT_TRUE(rep.ok()) << rep.status().to_string();
  EXPECT_EQ(beside("restored"), (std::vector<std::string>{"restored", "restored.lock"}));
}

// Only a directory named as this tool names its stagings
// ("<dest>.staging-<pid>-<6 letters>") is a stale staging: a restore into
// "restored" leaves a finished restore into "restored.staging-2026", a
// folder "restored.staging-notes" and "restored.staging" alone.
TEST_F(RestoreInto, OnlyItsOwnStaleStagingsAreRemoved) {
  ASSERT_TRUE(restore_snapshot(options("restored.staging-2026")).ok());
  ASSERT_TRUE(restore_snapshot(options("restored.staging")).ok());
  for (const char* d : {"restored.staging-notes", "restored.staging-1-abc", "restored.staging-x-abcdef"}) {
    fs::create_directories(dir_.path() + "/" + d);
    testing::write_file(dir_.path() + "/" + d + "/README", as_bytes(std::string("keep")));
  }
  fs::create_directories(dir_.path() + "/restored.staging-42-Xy12zZ/node0");  // a killed run's
  // A restore of its own whose name has a staging's form: its lock beside it says so.
  ASSERT_TRUE(restore_snapshot(options("restored.staging-4242-abcdef")).ok());
  ASSERT_TRUE(restore_snapshot(options("restored")).ok());
  EXPECT_EQ(beside("restored.staging"),
            (std::vector<std::string>{"restored.staging", "restored.staging-1-abc", "restored.staging-2026",
                                      "restored.staging-2026.lock", "restored.staging-4242-abcdef",
                                      "restored.staging-4242-abcdef.lock", "restored.staging-notes",
                                      "restored.staging-x-abcdef", "restored.staging.lock"}));
  for (const char* d : {"restored.staging-2026", "restored.staging", "restored.staging-4242-abcdef"}) {
    EXPECT_TRUE(fs::exists(dir_.path() + "/" + d + "/RESTORED")) << d;
  }
}

// --groups naming every group is the same restore as no --groups: either
// spelling finds the other's tree; a subset does not.
TEST_F(RestoreInto, EveryGroupNamedIsTheRestoreOfAll) {
  ASSERT_TRUE(restore_snapshot(options("restored")).ok());
  Result<std::vector<SnapshotMeta>> metas = read_snapshot_metas(snap_);
  ASSERT_TRUE(metas.ok());
  RestoreOptions all = options("restored");
  for (auto g = metas->front().groups.rbegin(); g != metas->front().groups.rend(); ++g) all.groups.push_back(g->name);
  ASSERT_GE(all.groups.size(), 2u);
  Result<RestoreReport> rep = restore_snapshot(all);
  ASSERT_TRUE(rep.ok()) << rep.status().to_string();
  EXPECT_TRUE(rep->already_restored);
  RestoreOptions some = all;
  some.groups.pop_back();
  rep = restore_snapshot(some);
  EXPECT_FALSE(rep.ok()) << "a subset is another restore";
  all.dest = dir_.path() + "/named";
  ASSERT_TRUE(restore_snapshot(all).ok());
  rep = restore_snapshot(options("named"));
  ASSERT_TRUE(rep.ok()) << rep.status().to_string();
  EXPECT_TRUE(rep->already_restored);
}

TEST_F(RestoreInto, ADestEndingInDotIsTheDirectoryItselfAndItsLockGoesBesideIt) {
  ASSERT_TRUE(restore_snapshot(options("restored")).ok());
  RestoreOptions dot = options("restored");
  dot.dest += "/.";
  Result<RestoreReport> rep = restore_snapshot(dot);
  ASSERT_TRUE(rep.ok()) << rep.status().to_string();
  EXPECT_TRUE(rep->already_restored);
  EXPECT_FALSE(fs::exists(dir_.path() + "/restored/..lock")) << "no lock file inside the restored tree";
  Result<RestoreReport> again = restore_snapshot(options("restored"));
  ASSERT_TRUE(again.ok()) << again.status().to_string();
  EXPECT_TRUE(again->already_restored);
  // An empty directory named as "dir/." is restored into, its lock beside it.
  fs::create_directories(dir_.path() + "/empty");
  RestoreOptions empty = options("empty");
  empty.dest += "/.";
  rep = restore_snapshot(empty);
  ASSERT_TRUE(rep.ok()) << rep.status().to_string();
  EXPECT_TRUE(fs::exists(dir_.path() + "/empty/RESTORED"));
  EXPECT_FALSE(fs::exists(dir_.path() + "/empty/..lock"));
  EXPECT_TRUE(fs::exists(dir_.path() + "/empty.lock"));
}

TEST_F(RestoreInto, DestInsideTheSnapshotIsRefusedAndNothingIsWrittenThere) {
  auto before = files_of(snap_);
  for (const std::string& inside : {snap_ + "/inside", snap_ + "/increments/x/y", snap_ + "/db/../restored"}) {
    RestoreOptions r = options("unused");
    r.dest = inside;
    Result<RestoreReport> rep = restore_snapshot(r);
    ASSERT_FALSE(rep.ok()) << inside;
    EXPECT_EQ(rep.status().code(), StatusCode::kInvalidArgument) << inside;
    EXPECT_NE(rep.status().message().find("inside the snapshot"), std::string::npos) << rep.status().message();
  }
  EXPECT_EQ(files_of(snap_), before);
  EXPECT_FALSE(fs::exists(snap_ + "/inside"));
  EXPECT_FALSE(fs::exists(snap_ + "/inside.lock"));
}

// The node metadata files of the full snapshot and of each increment are
// exactly one <node id>.smf per node of the baseline.
TEST_F(RestoreInto, MissingOrExtraNodeMetadataFileIsCorruption) {
  const std::string snap = dir_.path() + "/snp";  // a copy: this test damages it
  fs::copy(snap_, snap, fs::copy_options::recursive);
  const std::string inc2 = increment_dir(snap, 2);
  const std::string aside = dir_.path() + "/aside.smf";
  struct Case {
    const char* what;
    std::string from, to;  // moved (or copied, when `copy`)
    bool copy;
    std::string named;
  };
  const std::vector<Case> cases = {
      {"full snapshot, node1.smf missing", snap + "/node1.smf", aside, false, snap + "/node1.smf"},
      {"full snapshot, node0.smf copied as node9.smf", snap + "/node0.smf", snap + "/node9.smf", true,
       snap + "/node9.smf"},
      {"increment 2, node1.smf missing", inc2 + "/node1.smf", aside, false, inc2 + "/node1.smf"},
      {"increment 2, node2.smf copied as node5.smf", inc2 + "/node2.smf", inc2 + "/node5.smf", true,
       inc2 + "/node5.smf"},
  };
  for (const Case& c : cases) {
    if (c.copy) {
      fs::copy_file(c.from, c.to);
    } else {
      fs::rename(c.from, c.to);
    }
    for (bool one_node : {false, true}) {
      RestoreOptions r = options("restored");
      r.snapshot_dir = snap;
      if (one_node) r.node = "node0";
      Result<RestoreReport> rep = restore_snapshot(r);
      ASSERT_FALSE(rep.ok()) << c.what << (one_node ? ", --node node0" : "");
      EXPECT_EQ(rep.status().code(), StatusCode::kCorruption) << c.what;
      EXPECT_NE(rep.status().message().find(c.named), std::string::npos) << c.what << ": " << rep.status().message();
      EXPECT_FALSE(fs::exists(r.dest));
    }
    if (c.copy) {
      fs::remove(c.to);
    } else {
      fs::rename(c.to, c.from);
    }
  }
  // A file under a node's name that holds another node.
  fs::copy_file(snap + "/node2.smf", dir_.path() + "/aside.smf");
  fs::copy_file(snap + "/node0.smf", snap + "/node2.smf", fs::copy_options::overwrite_existing);
  RestoreOptions r = options("restored");
  r.snapshot_dir = snap;
  Result<RestoreReport> rep = restore_snapshot(r);
  ASSERT_FALSE(rep.ok());
  EXPECT_NE(rep.status().message().find(snap + "/node2.smf: holds node node0's metadata"), std::string::npos)
      << rep.status().message();
  fs::rename(dir_.path() + "/aside.smf", snap + "/node2.smf");
  rep = restore_snapshot(r);
  ASSERT_TRUE(rep.ok()) << rep.status().to_string();
  EXPECT_EQ(rep->nodes, 3u);
}

// The newest change of one ATOMIC key on one copy: a delete keeps its
// version and no value.
struct Newest {
  Version version;
  std::optional<std::string> value;
};
using AtomicCopy = std::map<std::pair<uint16_t, std::string>, Newest>;  // (partition, key)

// Collects one node's replayed changes to group `group_id`, in WAL order.
class AtomicSink final : public ReplaySink {
 public:
  AtomicSink(uint32_t group_id, AtomicCopy& copy) : group_id_(group_id), copy_(copy) {}
  Status apply(const ReplayEntry& e) override {
    const DataEntry& d = *e.entry;
    if (d.group_id != group_id_) return {};
    std::lock_guard<std::mutex> lock(mu_);
    copy_[{d.partition, to_string(d.key)}] =
        Newest{d.write_version, d.op == EntryOp::kDelete ? std::nullopt : std::optional(to_string(d.value))};
    return {};
  }

 private:
  uint32_t group_id_;
  AtomicCopy& copy_;
  std::mutex mu_;
};

// What every copy of ATOMIC group `g` must hold after a whole restore of
// increment k: per copy, the full snapshot's file and then that node's
// replayed changes; per key, the change with the newest version over all
// copies, a delete included. Counts in `split_deletes` the keys whose
// newest change is a delete while another copy holds an older value.
std::map<std::pair<uint16_t, std::string>, std::string> atomic_reference(const std::string& snap, uint64_t k,
                                                                         const CacheGroup& g, int& split_deletes) {
  std::vector<SnapshotMeta> metas = read_snapshot_metas(snap).value();
  std::map<std::pair<uint16_t, std::string>, Newest> newest;
  std::set<std::pair<uint16_t, std::string>> held;  // some copy ends with a value
  for (const SnapshotMeta& m : metas) {
    AtomicCopy copy;
    Affinity aff(m.groups, m.baseline);
    for (uint16_t p = 0; p < g.partitions; ++p) {
      if (!aff.owns(g.id, p, m.node_index)) continue;
      Result<PartitionFile> f = read_partition_file(snap + "/db/" + m.node_id + "/" + g.name + "/" + partition_file_name(p));
      if (!f.ok()) continue;  // never checkpointed with data
      for (const auto& [key, v] : f->entries) copy[{p, key}] = Newest{v.version, v.value};
    }
    AtomicSink sink(g.id, copy);
    ReplayOptions o;
    ReplayReport report;
    if (k > 0) {
      EXPECT_TRUE(replay_node(snap, k, m.node_index, sink, o, report).ok());
    }
    for (const auto& [at, n] : copy) {
      if (n.value) held.insert(at);
      auto [it, fresh] = newest.emplace(at, n);
      if (!fresh && it->second.version < n.version) it->second = n;
    }
  }
  std::map<std::pair<uint16_t, std::string>, std::string> live;
  for (const auto& [at, n] : newest) {
    if (n.value) live[at] = *n.value;
    if (!n.value && held.count(at)) ++split_deletes;
  }
  return live;
}

// A sink that fails at the first record it is shown, with an I/O error.
class FailingRecordSink final : public ReplaySink {
 public:
  Status apply(const ReplayEntry&) override { return {}; }
  bool wants_records() const override { return true; }
  Status on_record(uint16_t, const RecordView&, bool) override { return Status::io_error("sink: disk full"); }
};

// A sink's error is the sink's: it keeps its code (here an I/O error, not
// corruption of the WAL) and gains where in the WAL it happened.
TEST(Replay, ASinkErrorKeepsItsCodeAndNamesTheSegment) {
  TempDir dir;
  sim::Options o = gen_options(2, dir.path() + "/gen");
  ASSERT_TRUE(sim::run(o).ok());
  FailingRecordSink sink;
  ReplayReport report;
  Status s = replay_node(o.out + "/snapshots/snp", 1, 0, sink, ReplayOptions{}, report);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kIoError) << s.to_string();
  EXPECT_NE(s.message().find("sink: disk full"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find(".wal at offset "), std::string::npos) << s.message();
}

// A delete that reached one copy of an ATOMIC key and not the other (the
// two logged it on different sides of their STARTs) must win the repair
// against the other copy's older value: the key stays deleted.
TEST(Restore, AtomicRepairKeepsTheNewestDelete) {
  int split_deletes = 0;
  for (uint64_t seed = 1; seed <= 8; ++seed) {
    TempDir dir;
    sim::Options o;
    o.out = dir.path() + "/gen";
    o.seed = seed;
    o.nodes = 2;
    o.backups = 1;
    o.atomic_groups = 1;
    o.partitions = 8;
    o.keys = 20;
    o.txs = 400;
    o.in_flight = 16;
    o.cut_delay_max_ms = 5;
    ASSERT_TRUE(sim::run(o).ok());
    const std::string snap = o.out + "/snapshots/snp";
    RestoreOptions r;
    r.snapshot_dir = snap;
    r.increment = o.increments;
    r.dest = dir.path() + "/restored";
    Result<RestoreReport> rep = restore_snapshot(r);
    ASSERT_TRUE(rep.ok()) << rep.status().to_string();
    NodeMeta meta = read_node_meta(r.dest + "/node0").value();
    const CacheGroup& g = *meta.group("atomic0");
    auto want = atomic_reference(snap, r.increment, g, split_deletes);
    Affinity aff(meta.groups, meta.baseline);
    for (uint16_t p = 0; p < g.partitions; ++p) {
      for (uint16_t n : aff.owners(g.id, p)) {
        std::string path = r.dest + "/" + meta.baseline[n] + "/db/" + g.name + "/" + partition_file_name(p);
        Result<PartitionFile> f = read_partition_file(path);
        ASSERT_TRUE(f.ok()) << f.status().to_string();
        std::map<std::string, std::string> have, expect;
        for (const auto& [k, v] : f->entries) have[k] = v.value;
        for (const auto& [at, v] : want) {
          if (at.first == p) expect[at.second] = v;
        }
        EXPECT_EQ(have, expect) << "seed " << seed << ": " << path;
      }
    }
  }
  EXPECT_GT(split_deletes, 0) << "no seed had copies split by a delete: the test shows nothing";
}

}  // namespace
}  // namespace walcut

namespace walcut {
namespace {

// The files of one node's directory in a restored tree, by path below it.
std::map<std::string, Bytes> node_files(const std::string& dest, const std::string& node) {
  std::map<std::string, Bytes> out;
  for (const auto& e : fs::recursive_directory_iterator(dest + "/" + node)) {
    if (e.is_regular_file()) out[fs::relative(e.path(), dest).string()] = testing::read_file(e.path().string());
  }
  return out;
}

// Shapes with ATOMIC groups and deletes: every node also holds copies
// whose other owners only a peer read provides.
sim::Options atomic_options(uint64_t seed, const std::string& out) {
  sim::Options o = gen_options(seed, out);
  o.atomic_groups = 2;
  o.keys = 40;
  o.txs = 800;
  return o;
}

TEST(Restore, TheNodesRestoredOneAtATimeAreByteForByteTheWholeRestore) {
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    TempDir dir;
    sim::Options o = atomic_options(seed, dir.path() + "/gen");
    ASSERT_TRUE(sim::run(o).ok());
    for (uint64_t k : {uint64_t{0}, uint64_t{o.increments}}) {
      RestoreOptions whole;
      whole.snapshot_dir = o.out + "/snapshots/snp";
      whole.increment = k;
      whole.dest = dir.path() + "/whole-" + std::to_string(k);
      Result<RestoreReport> w = restore_snapshot(whole);
      ASSERT_TRUE(w.ok()) << w.status().to_string();
      uint64_t repaired = 0;
      for (uint32_t n = 0; n < o.nodes; ++n) {
        const std::string node = "node" + std::to_string(n);
        RestoreOptions one = whole;
        one.node = node;
        one.dest = dir.path() + "/" + node + "-" + std::to_string(k);
        Result<RestoreReport> r = restore_snapshot(one);
        ASSERT_TRUE(r.ok()) << r.status().to_string();
        EXPECT_EQ(r->nodes, 1u);
        if (k > 0) {
          EXPECT_GT(r->peer_nodes, 0u) << "an ATOMIC copy's other owners are read as peers";
        }
        repaired += r->atomic_repaired;
        auto mine = node_files(one.dest, node);
        ASSERT_GT(mine.size(), 10u);
        EXPECT_TRUE(mine == node_files(whole.dest, node)) << "seed " << seed << " increment " << k << " " << node;
      }
      EXPECT_EQ(repaired, w->atomic_repaired) << "seed " << seed << " increment " << k;
    }
  }
}

// Under --node, a node whose WAL no part of the restore reads (no ATOMIC
// groups: only its own copies do) is checked by its cut records' blocks
// alone, where its increment metadata records them: a damaged block
// elsewhere in its segments is its own run's to find, not another's; its
// FINISH's block damaged is every run's.
TEST(Restore, ANodeNotReplayedIsCheckedByItsCutRecordsBlocksAlone) {
  for (uint64_t seed : {uint64_t{1}, uint64_t{2}}) {  // LZ4 and none
    TempDir dir;
    sim::Options o = gen_options(seed, dir.path() + "/gen");
    o.atomic_groups = 0;
    ASSERT_TRUE(sim::run(o).ok());
    RestoreOptions r;
    r.snapshot_dir = o.out + "/snapshots/snp";
    r.increment = o.increments;
    r.node = "node0";
    r.dest = dir.path() + "/clean";
    Result<RestoreReport> clean = restore_snapshot(r);
    ASSERT_TRUE(clean.ok()) << clean.status().to_string();
    EXPECT_EQ(clean->peer_nodes, 0u);
    Result<std::vector<SnapshotMeta>> bases = read_snapshot_metas(r.snapshot_dir);
    ASSERT_TRUE(bases.ok());
    Result<std::vector<NodeIncrements>> chain = read_increment_chain(r.snapshot_dir, bases.value(), o.increments);
    ASSERT_TRUE(chain.ok()) << chain.status().to_string();
    const NodeIncrements& node1 = chain->at(1);
    ASSERT_EQ(node1.base.node_id, "node1");
    const std::string last = node1.segment_paths.back();
    const uint64_t finish_block = node1.increments.back().finish_block;
    ASSERT_GT(finish_block, kSegmentHeaderBytes) << "the FINISH is not in the segment's first block";
    auto flip = [&](uint64_t offset) {
      Bytes bytes = testing::read_file(last);
      bytes.at(offset) ^= std::byte{1};
      testing::write_file(last, bytes);
    };
    flip(kSegmentHeaderBytes + kBlockHeaderBytes + 1);  // the first block's payload
    r.dest = dir.path() + "/beside-damage";
    Result<RestoreReport> beside = restore_snapshot(r);
    ASSERT_TRUE(beside.ok()) << beside.status().to_string();
    EXPECT_TRUE(files_of(r.dest) == files_of(dir.path() + "/clean")) << "seed " << seed;
    RestoreOptions own = r;
    own.node = "node1";
    own.dest = dir.path() + "/node1";
    Result<RestoreReport> refused = restore_snapshot(own);
    ASSERT_FALSE(refused.ok());
    EXPECT_NE(refused.status().message().find(last), std::string::npos) << refused.status().to_string();
    flip(kSegmentHeaderBytes + kBlockHeaderBytes + 1);
    flip(finish_block + kBlockHeaderBytes + 1);
    r.dest = dir.path() + "/finish-damaged";
    refused = restore_snapshot(r);
    ASSERT_FALSE(refused.ok());
    EXPECT_NE(refused.status().message().find(last + " at offset " + std::to_string(finish_block)), std::string::npos)
        << refused.status().to_string();
    EXPECT_FALSE(fs::exists(r.dest));
  }
}

// Generates atomic_options(seed) under `dir` and restores its last
// increment into dir/free without a memory limit: `r` its options, for
// limited restores to vary, and `free` its report.
void restore_unlimited(uint64_t seed, const TempDir& dir, RestoreOptions& r, RestoreReport& free) {
  sim::Options o = atomic_options(seed, dir.path() + "/gen");
  ASSERT_TRUE(sim::run(o).ok());
  r.snapshot_dir = o.out + "/snapshots/snp";
  r.increment = o.increments;
  r.dest = dir.path() + "/free";
  Result<RestoreReport> done = restore_snapshot(r);
  ASSERT_TRUE(done.ok()) << done.status().to_string();
  free = done.value();
}

TEST(Restore, AMemoryLimitSpillsAndRestoresTheSameBytes) {
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    TempDir dir;
    RestoreOptions r;
    RestoreReport free;
    ASSERT_NO_FATAL_FAILURE(restore_unlimited(seed, dir, r, free));
    EXPECT_EQ(free.spill_files, 0u);
    for (uint64_t limit : {uint64_t{1}, uint64_t{16} << 10}) {
      RestoreOptions tight = r;
      tight.memory_limit = limit;
      tight.threads = seed % 2 ? 1 : 0;
      tight.dest = dir.path() + "/limit-" + std::to_string(limit);
      Result<RestoreReport> t = restore_snapshot(tight);
      ASSERT_TRUE(t.ok()) << t.status().to_string();
      EXPECT_GT(t->spill_files, 0u);
      EXPECT_GT(t->spilled_bytes, 0u);
      EXPECT_EQ(t->atomic_repaired, free.atomic_repaired);
      EXPECT_TRUE(files_of(tight.dest) == files_of(r.dest)) << "seed " << seed << " limit " << limit;
      EXPECT_FALSE(fs::exists(tight.dest + "/.spill")) << "spill files go before the tree is published";
      // The whole restore's peak over the limit is bounded: a batch's
      // growth per applying thread before it spills.
      EXPECT_LE(t->routed_bytes_peak, limit + (4u << 20));
    }
  }
}

// Past the budget, a pass before the last drops its fullest copies and
// the next pass reads the WAL again for them; the last spills what is
// still over. Whatever the passes, the tree is the unlimited restore's.
TEST(Restore, PassesReadTheWalAgainForDroppedCopiesAndRestoreTheSameBytes) {
  for (uint64_t seed = 1; seed <= 3; ++seed) {
    TempDir dir;
    RestoreOptions r;
    RestoreReport free;
    ASSERT_NO_FATAL_FAILURE(restore_unlimited(seed, dir, r, free));
    EXPECT_EQ(free.replay_passes, 1u);
    EXPECT_EQ(free.reread_bytes, 0u);
    for (unsigned passes : {1u, 2u, 3u}) {
      for (uint64_t limit : {uint64_t{16} << 10, uint64_t{64} << 10}) {
        RestoreOptions tight = r;
        tight.memory_limit = limit;
        tight.max_passes = passes;
        tight.threads = (seed + passes) % 2 ? 1 : 0;
        tight.dest = dir.path() + "/p" + std::to_string(passes) + "-" + std::to_string(limit);
        Result<RestoreReport> t = restore_snapshot(tight);
        ASSERT_TRUE(t.ok()) << t.status().to_string();
        const std::string what =
            "seed " + std::to_string(seed) + " passes " + std::to_string(passes) + " limit " + std::to_string(limit);
        EXPECT_LE(t->replay_passes, passes) << what;
        EXPECT_EQ(t->replay_passes > 1, passes > 1) << what;  // the budget is far below one node's entries
        EXPECT_EQ(t->reread_bytes > 0, passes > 1) << what;
        EXPECT_EQ(t->entries_applied, free.entries_applied) << what << ": counted once, in the first pass";
        EXPECT_EQ(t->bytes_read, free.bytes_read) << what;
        EXPECT_EQ(t->atomic_repaired, free.atomic_repaired) << what;
        EXPECT_TRUE(files_of(tight.dest) == files_of(r.dest)) << what;
        EXPECT_LE(t->routed_bytes_peak, limit + (4u << 20)) << what;
      }
    }
  }
}

// Newest segment first (far from the budget, the default) or in WAL
// order, with ATOMIC groups and deletes, on one thread or all: the same
// tree, from the same blocks.
TEST(Restore, NewestFirstAndWalOrderRestoreTheSameBytes) {
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    TempDir dir;
    RestoreOptions r;
    RestoreReport free;
    ASSERT_NO_FATAL_FAILURE(restore_unlimited(seed, dir, r, free));
    EXPECT_TRUE(free.newest_first) << "far from the budget, a restore reads newest first";
    EXPECT_GT(free.segments, 2 * free.nodes) << "segments enough for the order to matter";
    for (unsigned threads : {1u, 0u}) {
      RestoreOptions w = r;
      w.replay_order = RestoreOptions::Order::kWalOrder;
      w.threads = threads;
      w.dest = dir.path() + "/wal-" + std::to_string(threads);
      Result<RestoreReport> t = restore_snapshot(w);
      ASSERT_TRUE(t.ok()) << t.status().to_string();
      const std::string what = "seed " + std::to_string(seed) + " threads " + std::to_string(threads);
      EXPECT_FALSE(t->newest_first) << what;
      EXPECT_TRUE(files_of(w.dest) == files_of(r.dest)) << what;
      EXPECT_EQ(t->entries_applied, free.entries_applied) << what;
      EXPECT_EQ(t->blocks, free.blocks) << what << ": both read up to FINISH's block, no further";
      EXPECT_EQ(t->bytes_read, free.bytes_read) << what;
      EXPECT_EQ(t->atomic_repaired, free.atomic_repaired) << what;
    }
  }
}

// Newest first under a memory limit: a pause waits for the next segment,
// so each spill holds whole segments, newer than what is routed after
// it, and the finish merges them so; a pass's dropped copies too. The
// tree is the unlimited restore's.
TEST(Restore, NewestFirstUnderAMemoryLimitSpillsAndRestoresTheSameBytes) {
  for (uint64_t seed = 1; seed <= 3; ++seed) {
    TempDir dir;
    RestoreOptions r;
    RestoreReport free;
    ASSERT_NO_FATAL_FAILURE(restore_unlimited(seed, dir, r, free));
    for (unsigned passes : {1u, 2u}) {
      for (uint64_t limit : {uint64_t{1}, uint64_t{16} << 10}) {
        RestoreOptions tight = r;
        tight.memory_limit = limit;
        tight.max_passes = passes;
        tight.replay_order = RestoreOptions::Order::kNewestFirst;
        tight.threads = (seed + passes) % 2 ? 1 : 0;
        tight.dest = dir.path() + "/p" + std::to_string(passes) + "-" + std::to_string(limit);
        Result<RestoreReport> t = restore_snapshot(tight);
        ASSERT_TRUE(t.ok()) << t.status().to_string();
        const std::string what =
            "seed " + std::to_string(seed) + " passes " + std::to_string(passes) + " limit " + std::to_string(limit);
        EXPECT_TRUE(t->newest_first) << what;
        EXPECT_GT(t->spill_files, 0u) << what;
        EXPECT_EQ(t->replay_passes > 1, passes > 1) << what;
        EXPECT_EQ(t->atomic_repaired, free.atomic_repaired) << what;
        EXPECT_TRUE(files_of(tight.dest) == files_of(r.dest)) << what;
        EXPECT_LE(t->routed_bytes_peak, limit + (4u << 20)) << what;
      }
    }
    // Near the budget, the default is WAL order.
    RestoreOptions near = r;
    near.memory_limit = 16 << 10;
    near.dest = dir.path() + "/near";
    Result<RestoreReport> n = restore_snapshot(near);
    ASSERT_TRUE(n.ok()) << n.status().to_string();
    EXPECT_FALSE(n->newest_first);
    EXPECT_TRUE(files_of(near.dest) == files_of(r.dest));
  }
}

// Far from the budget, nodes are replayed side by side, a pipeline of
// threads / nodes threads each; near it, one after another. Either way,
// with ATOMIC groups and deletes, the tree is the one-thread restore's.
// In an arena of 2 threads made here, so that the two pipelines run on
// any machine.
TEST(Restore, NodesSideBySideRestoreTheSameBytesAsOneAfterAnother) {
  for (uint64_t seed = 1; seed <= 3; ++seed) {
    TempDir dir;
    RestoreOptions r;
    RestoreReport one;
    r.threads = 1;
    ASSERT_NO_FATAL_FAILURE(restore_unlimited(seed, dir, r, one));
    EXPECT_EQ(one.nodes_at_once, 1u);
    ASSERT_GE(one.nodes, 2u);
    tbb::task_arena two(2);
    for (uint64_t limit : {uint64_t{0}, uint64_t{64} << 10}) {
      RestoreOptions o = r;
      o.threads = 2;
      o.memory_limit = limit;
      o.dest = dir.path() + "/two-" + std::to_string(limit);
      Result<RestoreReport> t = two.execute([&] { return restore_snapshot(o); });
      ASSERT_TRUE(t.ok()) << t.status().to_string();
      const std::string what = "seed " + std::to_string(seed) + " limit " + std::to_string(limit);
      EXPECT_EQ(t->nodes_at_once, limit == 0 ? 2u : 1u) << what;
      EXPECT_EQ(t->entries_applied, one.entries_applied) << what;
      EXPECT_EQ(t->atomic_repaired, one.atomic_repaired) << what;
      EXPECT_TRUE(files_of(o.dest) == files_of(r.dest)) << what;
      // A node's finish beside another's replay is the replay's time; the
      // phases still add up to no more than the whole.
      EXPECT_GT(t->replay_s, 0) << what;
      EXPECT_GE(t->finish_s, 0) << what;
      EXPECT_LE(t->verify_s + t->replay_s + t->finish_s + t->publish_s, t->total_s) << what;
    }
  }
}

// Nodes side by side: the node whose WAL is damaged fails, the others
// stop at their next batch or partition, and the error returned is the
// damaged node's, naming its file, never another's "stopped".
TEST(Restore, ADamagedNodeBesideOthersFailsTheRestoreWithItsOwnError) {
  TempDir dir;
  sim::Options o = atomic_options(3, dir.path() + "/gen");  // 4 nodes
  ASSERT_TRUE(sim::run(o).ok());
  const std::string snap = o.out + "/snapshots/snp";
  tbb::task_arena two(2);
  ASSERT_GE(o.increments, 2u);
  const std::vector<IncrementMeta> metas = read_increment_metas(snap, 2).value();
  ASSERT_EQ(metas.size(), o.nodes);
  for (const IncrementMeta& m : metas) {
    ASSERT_FALSE(m.files.empty());
    const std::string victim = increment_dir(snap, 2) + "/" + m.files.front().path;
    const Bytes original = testing::read_file(victim);
    Bytes damaged = original;
    damaged[200] ^= std::byte{0x10};
    testing::write_file(victim, damaged);
    RestoreOptions r;
    r.snapshot_dir = snap;
    r.increment = o.increments;
    r.threads = 2;
    r.dest = dir.path() + "/restored-" + m.node_id;
    Result<RestoreReport> rep = two.execute([&] { return restore_snapshot(r); });
    testing::write_file(victim, original);
    ASSERT_FALSE(rep.ok()) << m.node_id;
    EXPECT_EQ(rep.status().code(), StatusCode::kCorruption) << rep.status().to_string();
    EXPECT_NE(rep.status().message().find("node " + m.node_id + ": " + victim), std::string::npos)
        << rep.status().message();
    EXPECT_EQ(rep.status().message().find("another node"), std::string::npos) << rep.status().message();
    EXPECT_FALSE(fs::exists(r.dest));
  }
}

// A dry run stops the nodes beside a damaged one at their next batch, as
// a restore does: the other node's long WAL is not read to its end
// before the damage is reported.
TEST(Restore, ADryRunStopsTheNodesBesideADamagedOne) {
  TempDir dir;
  sim::Options o = gen_options(2, dir.path() + "/gen");
  o.nodes = 2;
  o.backups = 0;
  o.atomic_groups = 0;
  o.keys = 5000;
  o.value_bytes = 200;
  o.txs = 40000;
  o.increments = 1;
  o.codec = Codec::kNone;
  o.segment_bytes = 4 << 20;
  ASSERT_TRUE(sim::run(o).ok());
  const std::string snap = o.out + "/snapshots/snp";
  const std::vector<IncrementMeta> metas = read_increment_metas(snap, 1).value();
  ASSERT_EQ(metas.size(), 2u);
  // node0's first segment, damaged in its first block: node0 is the first
  // of the two the wave starts.
  const std::string victim = increment_dir(snap, 1) + "/" + metas[0].files.front().path;
  Bytes damaged = testing::read_file(victim);
  damaged[200] ^= std::byte{0x10};
  testing::write_file(victim, damaged);
  uint64_t total = 0, most = 0;
  bool node1_held = false;
  RestoreOptions r;
  r.snapshot_dir = snap;
  r.increment = 1;
  r.threads = 2;
  r.dry_run = true;
  r.dest = dir.path() + "/restored";
  r.progress = [&](const ReplayProgress& p) {
    if (std::string(p.phase) != "replay") return;
    total = p.bytes_total;
    most = std::max(most, p.bytes_done);
    // The callback runs on the reporting node's thread: node1 is held once,
    // at its first report, long enough for node0 to reach its damage even
    // on a loaded machine (a test beside it on the other core). (A report
    // is skipped while another thread reports: node1 may make none.)
    if (p.node == metas[1].node_id && !node1_held) {
      node1_held = true;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  };
  tbb::task_arena two(2);
  Result<RestoreReport> rep = two.execute([&] { return restore_snapshot(r); });
  ASSERT_FALSE(rep.ok());
  EXPECT_EQ(rep.status().code(), StatusCode::kCorruption) << rep.status().to_string();
  EXPECT_NE(rep.status().message().find("node " + metas[0].node_id + ": " + victim), std::string::npos)
      << rep.status().message();
  // node1's WAL is a dozen batches of 1 MiB or more; a few at most are read after node0's failure.
  ASSERT_GT(total, uint64_t{24} << 20);
  EXPECT_LT(most, total / 4) << most << " of " << total << " bytes read";
}

// to_json(RestoreReport) names every key `walcut snapshot restore --json`
// prints (docs/cli.md), a restore's or a dry run's, from the report alone.
TEST(RestoreReportJson, HasTheKeysOfARestoreOrOfADryRun) {
  RestoreReport x;
  x.snapshot_dir = "snaps/snp";
  x.increment = 2;
  x.dest = "out";
  x.nodes = 4;
  x.entries_applied = 3000;
  x.bytes_read = 3 << 20;
  x.replay_s = 1.5;
  x.total_s = 2.25;
  x.io_engine = "pread";
  const nlohmann::json restored = nlohmann::json::parse(to_json(x));
  std::set<std::string> keys;
  for (const auto& [k, v] : restored.items()) keys.insert(k);
  EXPECT_EQ(keys, (std::set<std::string>{"already_restored",
                                         "atomic_repaired",
                                         "blocks",
                                         "bytes_read",
                                         "dest",
                                         "entries_applied",
                                         "entries_filtered",
                                         "entries_per_s",
                                         "io_engine",
                                         "memory_limit",
                                         "nodes",
                                         "nodes_at_once",
                                         "newest_first",
                                         "partition_files",
                                         "peer_bytes_read",
                                         "peer_nodes",
                                         "records",
                                         "replay_mib_per_s",
                                         "replay_passes",
                                         "reread_bytes",
                                         "routed_bytes_peak",
                                         "seconds",
                                         "segments",
                                         "spill_files",
                                         "spilled_bytes"}));
  EXPECT_EQ(restored["dest"], "out");
  EXPECT_EQ(restored["seconds"]["total"], 2.25);
  EXPECT_EQ(restored["seconds"]["replay"], 1.5);
  EXPECT_EQ(restored["replay_mib_per_s"], 2.0);
  EXPECT_EQ(restored["entries_per_s"], 2000.0);
  x.dry_run = true;
  x.already_restored = true;
  const nlohmann::json dry = nlohmann::json::parse(to_json(x));
  keys.clear();
  for (const auto& [k, v] : dry.items()) keys.insert(k);
  EXPECT_EQ(keys, (std::set<std::string>{"already_restored", "blocks", "bytes_read", "dry_run", "entries_applied",
                                         "entries_filtered", "groups", "increment", "nodes", "partition_bytes",
                                         "partition_files", "partitions", "peer_bytes_read", "peer_nodes", "seconds",
                                         "segments", "snapshot"}));
  EXPECT_EQ(dry["seconds"]["total"], 2.25);
  EXPECT_EQ(dry["seconds"]["replay"], 1.5);
  EXPECT_FALSE(dry["seconds"].contains("publish"));
  EXPECT_EQ(dry["snapshot"], "snaps/snp");
  EXPECT_EQ(dry["increment"], 2);
  EXPECT_EQ(dry["already_restored"], true);
}

}  // namespace
}  // namespace walcut
