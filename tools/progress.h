// The progress of a long verb (snapshot restore, snapshot check) on standard
// error: a bar on a terminal, or one JSON line a second for logs and
// orchestrators (docs/cli.md, "Progress").
#pragma once

#include <CLI/CLI.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "replay/pipeline.h"

namespace walcut::cli {

// --progress[=bar|json] and --no-progress: what `mode` ends up holding is
// "auto" (a bar when standard error is a terminal, else nothing), "bar",
// "json" or "none".
void add_progress_flags(CLI::App& app, std::string& mode);

// Draws what callback() is told: from the caller's thread when the phase
// changes, and from a thread of its own every 100 ms (bar) or second
// (JSON), so a phase that reports seldom still shows it is alive.
class ProgressDisplay {
 public:
  explicit ProgressDisplay(const std::string& mode, std::FILE* out = stderr);
  ~ProgressDisplay() { stop(); }
  ProgressDisplay(const ProgressDisplay&) = delete;
  ProgressDisplay& operator=(const ProgressDisplay&) = delete;

  std::function<void(const ReplayProgress&)> callback();
  // Stops drawing and clears the bar's line, so that the report or an
  // error printed next starts on a line of its own. Call it before either.
  void stop();

 private:
  using Clock = std::chrono::steady_clock;
  void update(const ReplayProgress& p);
  void tick();
  void draw_locked(Clock::time_point now);

  enum class Mode { kNone, kBar, kJson } mode_;
  std::FILE* out_;
  std::mutex mu_;
  std::condition_variable wake_;
  bool stopped_ = false, drawn_ = false, seen_ = false, shown_ = false;  // shown_: the latest state is drawn
  ReplayProgress last_;
  std::string phase_;
  std::map<std::string, Clock::time_point> phase_starts_;  // when each phase first showed: rates span it whole
  Clock::time_point start_, phase_start_, drawn_at_;
  std::thread ticker_;
};

}  // namespace walcut::cli
