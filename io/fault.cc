#include "io/fault.h"

#include <unistd.h>

#include <atomic>
#include <mutex>

namespace walcut::fault {
namespace {
std::atomic<bool> g_armed{false};
std::mutex g_mu;
std::string g_point;
uint64_t g_point_count = 0;
uint64_t g_bytes_left = 0;
bool g_by_bytes = false;
bool g_fatal = true;   // crash_after_bytes ends the process; tear_after_bytes fails the write
bool g_torn = false;
std::atomic<bool> g_alloc_armed{false};
std::string g_alloc_point;  // under g_mu
uint64_t g_alloc_count = 0;
}  // namespace

void crash_at_point(const std::string& name, uint64_t count) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_point = name;
  g_point_count = count;
  g_by_bytes = false;
  g_armed = true;
}

void crash_after_bytes(uint64_t bytes) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_point.clear();
  g_bytes_left = bytes;
  g_by_bytes = true;
  g_fatal = true;
  g_armed = true;
}

void tear_after_bytes(uint64_t bytes) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_point.clear();
  g_bytes_left = bytes;
  g_by_bytes = true;
  g_fatal = false;
  g_torn = false;
  g_armed = true;
}

bool torn() {
  std::lock_guard<std::mutex> lock(g_mu);
  return g_torn;
}

void disarm() {
  std::lock_guard<std::mutex> lock(g_mu);
  g_armed = false;
  g_torn = false;
  g_alloc_armed = false;
}

void point(const char* name) {
  if (!g_armed.load(std::memory_order_relaxed)) return;
  std::lock_guard<std::mutex> lock(g_mu);
  if (!g_armed || g_by_bytes || g_point != name) return;
  if (--g_point_count == 0) crash_now();
}

size_t writable_bytes(size_t n) {
  if (!g_armed.load(std::memory_order_relaxed)) return n;
  std::lock_guard<std::mutex> lock(g_mu);
  if (!g_armed || !g_by_bytes) return n;
  if (g_bytes_left >= n && !g_torn) {
    g_bytes_left -= n;
    return n;
  }
  size_t allowed = g_torn ? 0 : static_cast<size_t>(g_bytes_left);
  g_bytes_left = 0;
  if (!g_fatal) g_torn = true;  // every later write fails too
  return allowed;
}

bool tear_is_fatal() {
  std::lock_guard<std::mutex> lock(g_mu);
  return g_fatal;
}

void crash_now() { ::_exit(kCrashExitCode); }

void fail_allocation_at(const std::string& name, uint64_t count) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_alloc_point = name;
  g_alloc_count = count;
  g_alloc_armed = count > 0;
}

bool allocation_fails(const char* name) {
  if (!g_alloc_armed.load(std::memory_order_relaxed)) return false;
  std::lock_guard<std::mutex> lock(g_mu);
  if (!g_alloc_armed || g_alloc_point != name || --g_alloc_count > 0) return false;
  g_alloc_armed = false;
  return true;
}

}  // namespace walcut::fault
