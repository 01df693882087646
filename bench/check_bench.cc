// Snapshot check throughput against a plain sequential read of the same
// files in the same run (target: check >= 0.8x the read, both cold with
// O_DIRECT). Usage:
//   walcut_check_bench --snapshot DIR          an existing snapshot (e.g. kept by walcut_restore_bench)
//   walcut_check_bench --bytes 16M             generate one first (into a temporary directory)
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>

#include "bench/bench_io.h"
#include "cut/increment.h"
#include "engine/snapshot.h"
#include "replay/check.h"
#include "tools/cli_util.h"
#include "tools/sim/simulator.h"

namespace walcut {
namespace {

namespace fs = std::filesystem;
constexpr double kTarget = 0.8;

// Every file a check reads: partition files and the increments' segments.
std::vector<std::string> snapshot_files(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

int run(const std::string& snapshot_arg, const std::string& bytes_arg, int repeat, const std::string& json_out) {
  std::string snapshot = snapshot_arg, temp;
  if (snapshot.empty()) {
    const std::optional<uint64_t> parsed = cli::parse_byte_size(bytes_arg);
    if (!parsed) return std::fprintf(stderr, "--bytes: cannot read %s\n", bytes_arg.c_str()), 2;
    const uint64_t bytes = *parsed;
    temp = (fs::temp_directory_path() / ("walcut-check-bench-" + std::to_string(::getpid()))).string();
    sim::Options o;
    o.out = temp;
    o.nodes = 2;
    o.value_bytes = 1024;
    o.keys = 200000;
    o.increments = 1;
    o.segment_bytes = 64ull << 20;
    o.in_flight = 16;
    o.txs = std::max<uint64_t>(200, bytes / 4000);  // about 4 KB of WAL over both nodes per transaction
    auto t0 = std::chrono::steady_clock::now();
    Result<sim::Report> r = sim::run(o);
    if (!r.ok()) return std::fprintf(stderr, "%s\n", r.status().to_string().c_str()), 3;
    std::printf("generated %llu transactions in %.1f s\n", static_cast<unsigned long long>(o.txs),
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    snapshot = temp + "/snapshots/snp";
  }
  Result<uint64_t> increments = increment_count(snapshot);
  if (!increments.ok()) return std::fprintf(stderr, "%s\n", increments.status().to_string().c_str()), 3;
  std::vector<std::string> files = snapshot_files(snapshot);
  double read_best = 0, check_best = 0;
  uint64_t read_bytes = 0, check_bytes = 0;
  bool clean = true;
  for (int i = 0; i < repeat; ++i) {
    if (!bench::evict_from_page_cache(files).ok()) return 3;
    auto t = std::chrono::steady_clock::now();
    Result<bench::PlainRead> n = bench::read_files(files, true);
    if (!n.ok()) return std::fprintf(stderr, "%s\n", n.status().to_string().c_str()), 3;
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
    read_bytes = n->bytes;
    read_best = std::max(read_best, static_cast<double>(read_bytes) / 1e6 / s);

    if (!bench::evict_from_page_cache(files).ok()) return 3;
    CheckOptions o;
    o.snapshot_dir = snapshot;
    o.increment = increments.value();
    o.io.direct = true;
    o.io.notice = [](const std::string&) {};
    t = std::chrono::steady_clock::now();
    Result<CheckReport> r = check_snapshot(o);
    s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
    if (!r.ok()) return std::fprintf(stderr, "%s\n", r.status().to_string().c_str()), 3;
    clean = clean && r->clean();
    check_bytes = read_bytes;  // the check reads every file of the snapshot once
    check_best = std::max(check_best, static_cast<double>(check_bytes) / 1e6 / s);
  }
  double ratio = read_best > 0 ? check_best / read_best : 0;
  std::printf("files %zu, %.1f MB\n", files.size(), static_cast<double>(read_bytes) / 1e6);
  std::printf("plain O_DIRECT read   %8.1f MB/s (best of %d)\n", read_best, repeat);
  std::printf("snapshot check, cold  %8.1f MB/s (best of %d)%s\n", check_best, repeat, clean ? "" : "  NOT CLEAN");
  std::printf("check / read          %8.3f (target %.2f: %s)\n", ratio, kTarget, ratio >= kTarget ? "met" : "missed");
  if (!json_out.empty()) {
    nlohmann::json j{{"files", files.size()}, {"bytes", read_bytes},        {"read_direct_mb_per_s", read_best},
                     {"check_mb_per_s", check_best}, {"ratio", ratio}, {"target", kTarget},
                     {"met", ratio >= kTarget}, {"clean", clean}, {"repeat", repeat}};
    std::ofstream(json_out) << j.dump(2) << "\n";
  }
  if (!temp.empty()) fs::remove_all(temp);
  return clean ? 0 : 3;
}

}  // namespace
}  // namespace walcut

int main(int argc, char** argv) {
  CLI::App app{"walcut_check_bench: snapshot check throughput against a plain read of the same files"};
  std::string snapshot, bytes = "16M", json_out;
  int repeat = 3;
  app.add_option("--snapshot", snapshot, "An existing snapshot directory");
  app.add_option("--bytes", bytes, "Without --snapshot: generate about this much WAL first")->capture_default_str();
  app.add_option("--repeat", repeat, "Runs; the best counts")->check(CLI::Range(1, 100))->capture_default_str();
  app.add_option("--json-out", json_out, "Write the numbers as JSON");
  CLI11_PARSE(app, argc, argv);
  return walcut::run(snapshot, bytes, repeat, json_out);
}
