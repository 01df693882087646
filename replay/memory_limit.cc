#include "replay/memory_limit.h"

#include <unistd.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>

namespace walcut {
namespace {

// The first line of a small file, or nullopt. An ifstream, not
// read_file_bytes(): /proc and cgroup files report a size of 0.
std::optional<std::string> first_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line)) return std::nullopt;
  return line;
}

// A decimal byte count; "max" and anything else: nullopt.
std::optional<uint64_t> parse_limit(const std::string& text) {
  if (text.empty() || text.size() > 20 || !std::all_of(text.begin(), text.end(), ::isdigit)) return std::nullopt;
  uint64_t v = 0;
  for (char c : text) {
    uint64_t next = v * 10 + static_cast<uint64_t>(c - '0');
    if (next / 10 != v) return std::nullopt;  // overflow: no limit worth the name
    v = next;
  }
  return v;
}

// The smallest limit in `file` of `dir` and each of its parents up to `root`.
std::optional<uint64_t> smallest_along(const std::string& root, std::string dir, const std::string& file) {
  std::optional<uint64_t> best;
  for (;;) {
    if (std::optional<std::string> line = first_line(root + dir + "/" + file)) {
      if (std::optional<uint64_t> v = parse_limit(*line)) best = best ? std::min(*best, *v) : *v;
    }
    if (dir.empty() || dir == "/") break;
    size_t slash = dir.rfind('/');
    dir = slash == 0 || slash == std::string::npos ? "/" : dir.substr(0, slash);
  }
  return best;
}

}  // namespace

uint64_t physical_memory_bytes() {
  long pages = ::sysconf(_SC_PHYS_PAGES);
  long page = ::sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) : 0;
}

std::optional<uint64_t> cgroup_memory_limit_bytes(const std::string& proc_self_cgroup, const std::string& cgroup_root) {
  std::ifstream in(proc_self_cgroup);
  std::string line;
  std::optional<uint64_t> limit;
  // "0::/path" (v2), "N:memory:/path" or "N:cpu,memory:/path" (v1).
  while (std::getline(in, line)) {
    size_t a = line.find(':');
    size_t b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    std::string controllers = line.substr(a + 1, b - a - 1);
    std::string path = line.substr(b + 1);
    std::optional<uint64_t> v;
    if (controllers.empty()) {
      v = smallest_along(cgroup_root, path, "memory.max");
    } else if (("," + controllers + ",").find(",memory,") != std::string::npos) {
      v = smallest_along(cgroup_root + "/memory", path, "memory.limit_in_bytes");
    }
    if (v) limit = limit ? std::min(*limit, *v) : *v;
  }
  return limit;
}

uint64_t default_memory_limit_bytes() {
  uint64_t physical = physical_memory_bytes();
  std::optional<uint64_t> cgroup = cgroup_memory_limit_bytes();
  uint64_t smaller = cgroup && (*cgroup < physical || physical == 0) ? *cgroup : physical;
  return smaller / 2;
}

bool reuse_freed_memory() {
#if defined(__GLIBC__)
  return ::mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1 && ::mallopt(M_TRIM_THRESHOLD, 256 << 20) == 1;
#else
  return false;
#endif
}

void give_back_free_memory() {
#if defined(__GLIBC__)
  ::malloc_trim(0);
#endif
}

}  // namespace walcut
