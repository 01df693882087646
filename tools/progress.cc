#include "tools/progress.h"

#include <nlohmann/json.hpp>
#include <unistd.h>

#include <algorithm>

namespace walcut::cli {

namespace {

// A bare --progress leaves CLI11's value for a flag given without one: the bar.
bool bare_flag(const std::string& mode) { return mode == "true" || mode == "1"; }

}  // namespace

void add_progress_flags(CLI::App& app, std::string& mode) {
  auto check = [](std::string& value) -> std::string {
    return value == "bar" || value == "json" || bare_flag(value) ? "" : "must be bar or json, got '" + value + "'";
  };
  CLI::Option* on = app.add_flag("--progress", mode,
                                 "Show progress on standard error even when it is not a terminal: --progress (or "
                                 "--progress=bar) a bar, --progress=json one JSON line a second (node, phase, bytes "
                                 "done and total, entries, rate, ETA); by default a bar on a terminal only")
                        ->check(CLI::Validator(check, "{bar,json}"));
  app.add_flag_callback("--no-progress", [&mode] { mode = "none"; }, "No progress, not even on a terminal")
      ->excludes(on);
}


namespace {

double seconds(std::chrono::steady_clock::duration d) { return std::chrono::duration<double>(d).count(); }
constexpr double kMiB = 1 << 20;

}  // namespace

ProgressDisplay::ProgressDisplay(const std::string& mode, std::FILE* out)
    : mode_(mode == "json"                                          ? Mode::kJson
            : mode == "bar" || bare_flag(mode) || (mode == "auto" && ::isatty(::fileno(out)) != 0) ? Mode::kBar
                                                                    : Mode::kNone),
      out_(out),
      start_(Clock::now()) {
  if (mode_ != Mode::kNone) ticker_ = std::thread([this] { tick(); });
}

std::function<void(const ReplayProgress&)> ProgressDisplay::callback() {
  if (mode_ == Mode::kNone) return {};
  return [this](const ReplayProgress& p) { update(p); };
}

void ProgressDisplay::update(const ReplayProgress& p) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopped_) return;
  const auto now = Clock::now();
  if (seen_ && p.phase != phase_) {
    if (!shown_ && mode_ == Mode::kJson) draw_locked(now);  // the phase's last state, as it ended
    seen_ = false;
  }
  if (!seen_) {
    phase_ = p.phase;
    phase_start_ = phase_starts_.try_emplace(phase_, now).first->second;  // a phase that comes back goes on
  }
  last_ = p;
  shown_ = false;
  if (!seen_) {  // a new phase shows at once
    seen_ = true;
    draw_locked(now);
  }
}

void ProgressDisplay::tick() {
  const auto period = mode_ == Mode::kJson ? std::chrono::seconds(1) : std::chrono::milliseconds(100);
  std::unique_lock<std::mutex> lock(mu_);
  try {  // a line that cannot be formatted (out of memory) ends the ticking, not the process
    while (!stopped_) {
      wake_.wait_for(lock, period);
      if (stopped_ || !seen_) continue;
      const auto now = Clock::now();
      if (mode_ == Mode::kBar || now - drawn_at_ >= period) draw_locked(now);
    }
  } catch (...) {
  }
}

void ProgressDisplay::draw_locked(Clock::time_point now) {
  const ReplayProgress& p = last_;
  const double phase_s = seconds(now - phase_start_);
  const double rate = phase_s > 0 ? static_cast<double>(p.bytes_done) / phase_s : 0;
  const uint64_t left = p.bytes_total > p.bytes_done ? p.bytes_total - p.bytes_done : 0;
  const double eta_s = rate > 0 ? static_cast<double>(left) / rate : 0;
  const double entries_s = phase_s > 0 ? static_cast<double>(p.entries) / phase_s : 0;
  drawn_at_ = now;
  shown_ = true;
  if (mode_ == Mode::kJson) {
    nlohmann::json j{{"phase", p.phase},
                     {"node", p.node},
                     {"bytes_done", p.bytes_done},
                     {"bytes_total", p.bytes_total},
                     {"entries", p.entries},
                     {"bytes_per_s", static_cast<uint64_t>(rate)},
                     {"entries_per_s", static_cast<uint64_t>(entries_s)},
                     {"eta_s", eta_s},
                     {"elapsed_s", seconds(now - start_)}};
    std::fprintf(out_, "%s\n", j.dump().c_str());
    std::fflush(out_);
    return;
  }
  drawn_ = true;
  const double frac =
      p.bytes_total ? std::min(1.0, static_cast<double>(p.bytes_done) / static_cast<double>(p.bytes_total)) : 0;
  const int width = 30, filled = static_cast<int>(frac * width);
  std::fprintf(out_, "\r\033[K%-8s[%.*s%*s] %5.1f%%  %.1f/%.1f MiB  %.0f entries/s  ETA %.0fs", p.phase, filled,
               "##############################", width - filled, "", frac * 100,
               static_cast<double>(p.bytes_done) / kMiB, static_cast<double>(p.bytes_total) / kMiB, entries_s, eta_s);
  std::fflush(out_);
}

void ProgressDisplay::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_) return;
    stopped_ = true;
    if (mode_ == Mode::kJson && seen_ && !shown_) draw_locked(Clock::now());  // the last state
    if (drawn_) std::fprintf(out_, "\r\033[K");
    std::fflush(out_);
  }
  wake_.notify_all();
  if (ticker_.joinable()) ticker_.join();
}

}  // namespace walcut::cli
