// Read throughput of WAL segments, in one run: walcut::BlockReader over
// io_uring and over pread, buffered and O_DIRECT, against the baseline every
// reader is judged by, a plain sequential read() loop over the same files.
// The target: BlockReader over io_uring with O_DIRECT reaches 0.9x the plain
// O_DIRECT loop. Results and how to read them: docs/benchmarks.md.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_io.h"
#include "io/block_reader.h"
#include "io/file_util.h"
#include "io/records.h"
#include "io/wal_writer.h"
#include "tools/cli_util.h"

namespace walcut {
namespace {

constexpr double kTargetRatio = 0.9;
// Exit codes as the walcut CLI's (docs/cli.md); 1 is the missed target under --enforce.
constexpr int kExitTargetMissed = 1;
constexpr int kExitUsage = 2;
constexpr int kExitIoError = 3;
constexpr uint64_t kSegmentBytesDefault = 64ull << 20;
constexpr uint64_t kPageBytes = 4096;

struct Args {
  std::string dir;
  std::string bytes_text = "1G";
  uint32_t repeat = 3;
  uint32_t queue_depth = 8;
  uint32_t chunk_kib = 1024;
  uint32_t writer_threads = 2;
  std::string json_out;
  bool keep = false;
  bool enforce = false;
};

// ---- data ----

// One transaction as the model logs it: PREPARED, then at commit its DATA
// (1..8 entries, 8-byte keys, 92..108-byte values) and COMMITTED.
struct TxBytes {
  Bytes prepared, data, committed;
};

TxBytes make_tx(std::mt19937_64& rng, const std::string& alphabet_text, uint64_t order) {
  Version xid{1, 1, order};
  TxRecord tx{TxState::kPrepared, xid, 0, {{0, {1}}}};
  TxBytes out;
  out.prepared = encode_payload(tx);
  tx.state = TxState::kCommitted;
  out.committed = encode_payload(tx);
  uint32_t entry_count = 1 + static_cast<uint32_t>(rng() % 8);
  for (uint32_t i = 0; i < entry_count; ++i) {
    std::array<std::byte, 8> key;
    store_u64(key.data(), rng() % 10'000'000);
    size_t value_bytes = 92 + rng() % 17;
    // Values are slices of a fixed 4-letter text: compressible like real rows,
    // and cheap to make, so generation is bounded by the disk.
    size_t at = rng() % (alphabet_text.size() - value_bytes);
    DataEntry e;
    e.group_id = 1 + static_cast<uint32_t>(rng() % 3);
    e.partition = static_cast<uint16_t>(rng() % 1024);
    e.write_version = xid;
    e.near_xid = xid;
    e.key = key;
    e.value = as_bytes(alphabet_text).subspan(at, value_bytes);
    append_data_entry(out.data, e);
  }
  finish_data_payload(out.data, entry_count);
  return out;
}

// Writes segments until `segment_count` full ones exist, then drops the
// partial one the writer rolled into, so every file read ends with
// SEGMENT_END and the set reads as a clean log.
Status generate_segments(const std::string& dir, uint64_t segment_bytes, uint64_t segment_count,
                         uint32_t writer_threads) {
  WriterOptions o;
  o.dir = dir;
  o.cluster_id = 7;
  o.segment_bytes = segment_bytes;
  o.codec = Codec::kNone;
  o.sync = SyncPolicy::kNone;
  Result<std::unique_ptr<WalWriter>> writer = WalWriter::open(o);
  if (!writer.ok()) return writer.status();

  // Batches of transactions per append, so generation costs one pwrite per
  // batch rather than per record; PREPARED records come first, as they would
  // from concurrent transactions.
  constexpr uint32_t kTxPerAppend = 32;
  std::atomic<uint64_t> next_order{1};
  std::atomic<bool> stop{false};
  Status first_error;
  std::mutex error_mu;
  auto work = [&](uint32_t thread) {
    std::mt19937_64 rng(1000003 * (thread + 1));
    std::string alphabet_text(1 << 20, 'a');
    for (char& c : alphabet_text) c = static_cast<char>('a' + rng() % 4);
    while (!stop) {
      std::vector<TxBytes> txs;
      for (uint32_t i = 0; i < kTxPerAppend; ++i) txs.push_back(make_tx(rng, alphabet_text, next_order++));
      std::vector<RecordRef> refs;
      for (const TxBytes& t : txs) refs.push_back({RecordType::kTx, t.prepared});
      for (const TxBytes& t : txs) {
        refs.push_back({RecordType::kData, t.data});
        refs.push_back({RecordType::kTx, t.committed});
      }
      Result<std::vector<WalPointer>> at = (*writer)->append(refs);
      if (!at.ok()) {
        std::lock_guard<std::mutex> lock(error_mu);
        if (!stop.exchange(true)) first_error = at.status();
        return;
      }
      if (at->back().segment >= segment_count) stop = true;
    }
  };
  std::vector<std::thread> threads;
  for (uint32_t t = 0; t < writer_threads; ++t) threads.emplace_back(work, t);
  for (std::thread& t : threads) t.join();
  WALCUT_RETURN_IF_ERROR(first_error);
  WALCUT_RETURN_IF_ERROR((*writer)->close());
  for (uint64_t i = segment_count; std::filesystem::exists((*writer)->segment_path(i)); ++i) {
    std::filesystem::remove((*writer)->segment_path(i));
  }
  return {};
}

// ---- page cache ----



// ---- readers ----

enum class Method { kPlainRead, kBlockReader };

struct Config {
  std::string name;
  Method method;
  IoEngine engine;  // kAuto for "uring": falls back to pread when refused, which is reported
  bool direct;
};

struct Run {
  double seconds = 0;
  uint64_t bytes_read = 0;     // read() rows only
  uint64_t block_bytes = 0;    // BlockReader rows: segment headers and valid blocks
  std::string engine_used;     // "read()", "io_uring", "pread"
  bool direct_used = false;
  uint64_t blocks = 0;
  std::string log_end;         // how the BlockReader saw the log end
};

// The baseline: one file after another, read() into one aligned buffer.
Result<Run> run_plain_read(const std::vector<std::string>& paths, bool direct, uint32_t chunk_bytes) {
  Run run;
  run.engine_used = "read()";
  auto start = std::chrono::steady_clock::now();
  Result<bench::PlainRead> read = bench::read_files(paths, direct, chunk_bytes);
  if (!read.ok()) return read.status();
  run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  run.bytes_read = read->bytes;
  run.direct_used = read->direct_used;
  return run;
}

// Every validated block in WAL order: I/O, block framing and the CRC32C of
// each block, on this thread (no LZ4, no record parsing).
Result<Run> run_block_reader(const std::vector<std::string>& paths, const Config& c, const Args& a,
                             bool direct_allowed) {
  BlockReaderOptions o;
  o.io.engine = c.engine;
  o.io.direct = c.direct;
  o.io.queue_depth = a.queue_depth;
  o.io.chunk_bytes = a.chunk_kib * 1024;
  o.io.notice = bench::collect_notice;
  o.mode = TailMode::kStrict;
  Run run;
  auto start = std::chrono::steady_clock::now();
  Result<std::unique_ptr<BlockReader>> reader = BlockReader::open(paths, o);
  if (!reader.ok()) return reader.status();
  Block b;
  for (;;) {
    Result<bool> more = (*reader)->next(b);
    if (!more.ok()) return more.status();
    if (!more.value()) break;
  }
  run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  run.block_bytes = (*reader)->counters().block_bytes + kSegmentHeaderBytes * (*reader)->counters().segments;
  run.blocks = (*reader)->counters().blocks;
  run.engine_used = (*reader)->engine_name();
  run.direct_used = c.direct && direct_allowed;
  run.log_end = (*reader)->end().reason;
  return run;
}

// ---- the run ----

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

struct Summary {
  Config config;
  std::vector<Run> runs;
  std::vector<double> mb_per_s;  // 10^6 bytes of files per second, per run
  double mb_per_s_best() const { return *std::max_element(mb_per_s.begin(), mb_per_s.end()); }
  double mb_per_s_median() const { return median(mb_per_s); }
};

struct DataSet {
  std::string dir;
  std::vector<std::string> paths;
  uint64_t files_bytes = 0;
  bool generated = false;
  double generate_seconds = 0;
};

struct Report {
  DataSet data;
  utsname uts{};
  long f_type = 0;
  bool direct_allowed = false;  // the filesystem accepts O_DIRECT
  bool uring_used = false;      // the kernel accepted io_uring
  uint64_t resident_after_evict_bytes_max = 0;
  std::vector<Summary> summaries;
  double ratio_median = 0, ratio_best = 0;

  const Summary& find(const std::string& name) const {
    return *std::find_if(summaries.begin(), summaries.end(), [&](const Summary& s) { return s.config.name == name; });
  }
  bool target_met() const { return ratio_median >= kTargetRatio; }
  // Without io_uring or O_DIRECT the ratio compares other readers than it names.
  bool ratio_comparable() const { return uring_used && direct_allowed; }
  bool eviction_effective() const { return resident_after_evict_bytes_max == 0; }
};

// The segments in `dir`, generated first when there are none: 64 MiB
// segments, or one segment of about `bytes_target` for small runs, so CI
// does not write 64 MiB to read 8.
Result<DataSet> prepare_data(const std::string& dir, uint64_t bytes_target, uint32_t writer_threads) {
  DataSet d;
  d.dir = dir;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  Result<std::vector<std::string>> paths = list_segment_files(dir);
  if (!paths.ok()) return paths.status();
  if (paths->empty()) {
    uint64_t segment_bytes = std::min(kSegmentBytesDefault, (bytes_target + (1 << 20) - 1) >> 20 << 20);
    uint64_t segment_count = (bytes_target + segment_bytes - 1) / segment_bytes;
    std::printf("generating %llu segments of %llu MiB in %s ...\n", static_cast<unsigned long long>(segment_count),
                static_cast<unsigned long long>(segment_bytes >> 20), dir.c_str());
    std::fflush(stdout);
    auto start = std::chrono::steady_clock::now();
    WALCUT_RETURN_IF_ERROR(generate_segments(dir, segment_bytes, segment_count, writer_threads));
    d.generate_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    d.generated = true;
    std::printf("generated in %.1f s\n", d.generate_seconds);
    paths = list_segment_files(dir);
    if (!paths.ok()) return paths.status();
  }
  if (paths->empty()) return Status::not_found("no segments in " + dir);
  d.paths = std::move(paths).value();
  for (const std::string& p : d.paths) d.files_bytes += std::filesystem::file_size(p);
  return d;
}

// Runs every configuration `repeat` times, each from a cold page cache.
Status measure(const Args& a, Report& report) {
  const std::vector<Config> configs = {
      {"plain_read_buffered", Method::kPlainRead, IoEngine::kPread, false},
      {"plain_read_direct", Method::kPlainRead, IoEngine::kPread, true},
      {"uring_buffered", Method::kBlockReader, IoEngine::kAuto, false},
      {"uring_direct", Method::kBlockReader, IoEngine::kAuto, true},
      {"pread_buffered", Method::kBlockReader, IoEngine::kPread, false},
      {"pread_direct", Method::kBlockReader, IoEngine::kPread, true},
  };
  for (const Config& c : configs) report.summaries.push_back(Summary{c, {}, {}});
  const std::vector<std::string>& paths = report.data.paths;
  // Round-robin over the configurations, so drift in the disk or the host
  // (a VM's neighbours) spreads over all of them instead of one.
  for (uint32_t r = 0; r < a.repeat; ++r) {
    for (Summary& s : report.summaries) {
      Result<uint64_t> resident = bench::evict_from_page_cache(paths);
      if (!resident.ok()) return resident.status();
      report.resident_after_evict_bytes_max = std::max(report.resident_after_evict_bytes_max, resident.value());
      Result<Run> run = s.config.method == Method::kPlainRead
                            ? run_plain_read(paths, s.config.direct, a.chunk_kib * 1024)
                            : run_block_reader(paths, s.config, a, report.direct_allowed);
      if (!run.ok()) return Status(run.status().code(), s.config.name + ": " + run.status().message());
      // The files' bytes over the wall time: the same numerator for every reader.
      s.mb_per_s.push_back(static_cast<double>(report.data.files_bytes) / run->seconds / 1e6);
      s.runs.push_back(run.value());
    }
  }
  const Summary& uring_direct = report.find("uring_direct");
  const Summary& plain_direct = report.find("plain_read_direct");
  report.uring_used = uring_direct.runs.front().engine_used == "io_uring";
  report.ratio_median = uring_direct.mb_per_s_median() / plain_direct.mb_per_s_median();
  report.ratio_best = uring_direct.mb_per_s_best() / plain_direct.mb_per_s_best();
  return {};
}

void print_report(const Args& a, const Report& r) {
  std::printf("\nwalcut_reader_bench: %zu segment files, %llu bytes (%.1f MiB) in %s\n", r.data.paths.size(),
              static_cast<unsigned long long>(r.data.files_bytes), static_cast<double>(r.data.files_bytes) / (1 << 20),
              r.data.dir.c_str());
  std::printf("machine: %u CPUs, Linux %s %s, filesystem %s (f_type 0x%lx)\n", std::thread::hardware_concurrency(),
              r.uts.release, r.uts.machine, bench::filesystem_name(r.f_type).c_str(),
              static_cast<unsigned long>(r.f_type));
  std::printf("settings: repeat %u, queue depth %u, chunk %u KiB (BlockReader and plain read alike)\n", a.repeat,
              a.queue_depth, a.chunk_kib);
  std::printf("io_uring: %s\n", r.uring_used ? "used" : "REFUSED by the kernel: the uring rows were read with pread");
  std::printf("O_DIRECT: %s\n",
              r.direct_allowed ? "used" : "REFUSED by the filesystem: the direct rows were read buffered");
  std::printf("page cache: fdatasync + POSIX_FADV_DONTNEED before every run; mincore after: at most %llu bytes "
              "resident (%s)\n",
              static_cast<unsigned long long>(r.resident_after_evict_bytes_max),
              r.eviction_effective() ? "effective" : "NOT fully effective: buffered numbers include cache hits");
  std::printf("\n%-20s %-9s %-7s %10s %12s  %s\n", "config", "engine", "direct", "best MB/s", "median MB/s",
              "seconds per run");
  for (const Summary& s : r.summaries) {
    std::string seconds;
    for (const Run& run : s.runs) {
      char text[32];
      std::snprintf(text, sizeof text, "%s%.4f", seconds.empty() ? "" : " ", run.seconds);
      seconds += text;
    }
    const Run& first = s.runs.front();
    std::printf("%-20s %-9s %-7s %10.0f %12.0f  %s\n", s.config.name.c_str(), first.engine_used.c_str(),
                first.direct_used ? "yes" : "no", s.mb_per_s_best(), s.mb_per_s_median(), seconds.c_str());
  }
  std::printf("\nuring_direct / plain_read_direct: %.3f median, %.3f best (target %.2f on the median: %s)\n",
              r.ratio_median, r.ratio_best, kTargetRatio, r.target_met() ? "met" : "NOT met");
  if (!r.ratio_comparable()) {
    std::printf("  (io_uring or O_DIRECT was refused: this ratio does not measure io_uring + O_DIRECT)\n");
  }
  std::printf("(MB = 10^6 bytes; the rate is the files' bytes over the run's wall time. BlockReader rows also check\n"
              " every block's CRC32C on the reading thread; the plain read() rows only move bytes.)\n");
}

Status write_json(const Args& a, const Report& r) {
  nlohmann::json j;
  j["machine"] = {{"nproc", std::thread::hardware_concurrency()},
                  {"kernel", r.uts.release},
                  {"arch", r.uts.machine},
                  {"dir", r.data.dir},
                  {"filesystem", bench::filesystem_name(r.f_type)},
                  {"f_type", r.f_type}};
  j["data"] = {{"files", r.data.paths.size()},
               {"files_bytes", r.data.files_bytes},
               {"generated", r.data.generated},
               {"generate_seconds", r.data.generate_seconds}};
  j["settings"] = {{"repeat", a.repeat}, {"queue_depth", a.queue_depth}, {"chunk_bytes", a.chunk_kib * 1024}};
  j["io_uring"] = {{"used", r.uring_used}};
  j["o_direct"] = {{"used", r.direct_allowed}};
  j["page_cache_eviction"] = {{"method", "fdatasync + posix_fadvise(POSIX_FADV_DONTNEED), checked with mincore"},
                              {"resident_after_bytes_max", r.resident_after_evict_bytes_max},
                              {"effective", r.eviction_effective()}};
  for (const Summary& s : r.summaries) {
    const bool plain = s.config.method == Method::kPlainRead;
    nlohmann::json c;
    c["name"] = s.config.name;
    c["reader"] = plain ? "read() loop" : "BlockReader";
    c["engine_requested"] = plain ? "read()" : io_engine_name(s.config.engine);
    c["engine_used"] = s.runs.front().engine_used;
    c["direct_requested"] = s.config.direct;
    c["direct_used"] = s.runs.front().direct_used;
    c["mb_per_s_best"] = s.mb_per_s_best();
    c["mb_per_s_median"] = s.mb_per_s_median();
    c["mb_per_s"] = s.mb_per_s;
    for (const Run& run : s.runs) c["seconds"].push_back(run.seconds);
    if (plain) {
      c["bytes_read"] = s.runs.front().bytes_read;
    } else {
      c["block_bytes"] = s.runs.front().block_bytes;
      c["blocks"] = s.runs.front().blocks;
      c["log_end"] = s.runs.front().log_end;
    }
    j["configs"].push_back(c);
  }
  j["target"] = {{"ratio", "uring_direct / plain_read_direct, median MB/s"},
                 {"ratio_median", r.ratio_median},
                 {"ratio_best", r.ratio_best},
                 {"target", kTargetRatio},
                 {"met", r.target_met()},
                 {"comparable", r.ratio_comparable()}};
  j["notices"] = bench::notices();
  std::ofstream out(a.json_out);
  out << j.dump(2) << "\n";
  if (!out) return Status::io_error("cannot write " + a.json_out);
  return {};
}

int fail(const Status& s) {
  std::fprintf(stderr, "walcut_reader_bench: %s\n", s.to_string().c_str());
  return kExitIoError;
}

int run_bench(const Args& a) {
  std::optional<uint64_t> bytes_target = cli::parse_byte_size(a.bytes_text);
  if (!bytes_target || *bytes_target == 0) {
    std::fprintf(stderr, "walcut_reader_bench: --bytes: not a size: %s\n", a.bytes_text.c_str());
    return kExitUsage;
  }
  if (a.chunk_kib % 4 != 0) {
    std::fprintf(stderr, "walcut_reader_bench: --chunk-kib must be a multiple of 4\n");
    return kExitUsage;
  }
  // The data set: the given directory, or a fresh one removed at the end.
  std::string dir = a.dir;
  if (dir.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/walcut-reader-bench-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) return fail(Status::from_errno("mkdtemp " + pattern, errno));
    dir = pattern;
  }
  struct Cleanup {
    std::string dir;
    bool remove;
    ~Cleanup() {
      std::error_code ec;
      if (remove) std::filesystem::remove_all(dir, ec);
    }
  } cleanup{dir, a.dir.empty() && !a.keep};

  Report report;
  Result<DataSet> data = prepare_data(dir, *bytes_target, a.writer_threads);
  if (!data.ok()) return fail(data.status());
  report.data = std::move(data).value();
  ::uname(&report.uts);
  struct statfs fs{};
  if (::statfs(dir.c_str(), &fs) == 0) report.f_type = static_cast<long>(fs.f_type);
  int probe_fd = bench::open_for_read(report.data.paths.front(), true, report.direct_allowed);
  if (probe_fd >= 0) ::close(probe_fd);

  Status s = measure(a, report);
  if (!s.ok()) return fail(s);
  print_report(a, report);
  if (!a.json_out.empty()) {
    s = write_json(a, report);
    if (!s.ok()) return fail(s);
    std::printf("JSON written to %s\n", a.json_out.c_str());
  }
  if (!cleanup.remove) std::printf("segments kept in %s\n", dir.c_str());
  return a.enforce && !report.target_met() ? kExitTargetMissed : 0;
}

}  // namespace
}  // namespace walcut

int main(int argc, char** argv) {
  walcut::Args a;
  CLI::App app{"walcut_reader_bench: BlockReader (io_uring, pread) vs a plain read() loop over WAL segments"};
  app.add_option("--dir", a.dir, "Segment directory, kept; generated when it holds no segments (default: a temporary one)");
  app.add_option("--bytes", a.bytes_text, "Bytes of segments to generate: 8M, 1G, ...")->capture_default_str();
  app.add_option("--repeat", a.repeat, "Runs per configuration")->check(CLI::Range(1, 1000))->capture_default_str();
  app.add_option("--queue-depth", a.queue_depth, "io_uring reads in flight")->check(CLI::Range(1, 4096))->capture_default_str();
  app.add_option("--chunk-kib", a.chunk_kib, "KiB per read, for every reader (multiple of 4)")
      ->check(CLI::Range(4, 64 << 10))->capture_default_str();
  app.add_option("--writer-threads", a.writer_threads, "Threads generating segments")->check(CLI::Range(1, 64))->capture_default_str();
  app.add_option("--json-out", a.json_out, "Write the results as JSON to this file");
  app.add_flag("--keep", a.keep, "Keep the generated temporary directory");
  app.add_flag("--enforce", a.enforce, "Exit 1 when uring_direct / plain_read_direct is below the 0.9 target");
  CLI11_PARSE(app, argc, argv);
  return walcut::run_bench(a);
}
