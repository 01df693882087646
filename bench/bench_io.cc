#include "bench/bench_io.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <memory>

namespace walcut::bench {

namespace {
constexpr uint64_t kPageBytes = 4096;
constexpr size_t kChunkBytes = 1 << 20;

uint64_t resident_bytes(int fd, uint64_t size) {
  if (size == 0) return 0;
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) return 0;
  std::vector<unsigned char> pages((size + kPageBytes - 1) / kPageBytes);
  uint64_t resident_pages = 0;
  if (::mincore(map, size, pages.data()) == 0) {
    for (unsigned char p : pages) resident_pages += p & 1;
  }
  ::munmap(map, size);
  return std::min(size, resident_pages * kPageBytes);
}
}  // namespace

Result<uint64_t> evict_from_page_cache(const std::vector<std::string>& paths) {
  uint64_t resident_total_bytes = 0;
  for (const std::string& p : paths) {
    int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Status::from_errno("open " + p, errno);
    int rc = ::fdatasync(fd) == 0 ? ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) : errno;
    if (rc != 0) {
      ::close(fd);
      return Status::from_errno("evict " + p, rc);
    }
    resident_total_bytes += resident_bytes(fd, std::filesystem::file_size(p));
    ::close(fd);
  }
  return resident_total_bytes;
}

Result<uint64_t> read_files(const std::vector<std::string>& paths, bool direct) {
  std::unique_ptr<std::byte, decltype(&std::free)> buf(
      static_cast<std::byte*>(std::aligned_alloc(kPageBytes, kChunkBytes)), &std::free);
  uint64_t bytes = 0;
  for (const std::string& p : paths) {
    int fd = direct ? ::open(p.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECT) : -1;
    if (fd < 0) fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);  // the filesystem refuses O_DIRECT
    if (fd < 0) return Status::from_errno("open " + p, errno);
    for (;;) {
      ssize_t n = ::read(fd, buf.get(), kChunkBytes);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        int err = errno;
        ::close(fd);
        return Status::from_errno("read " + p, err);
      }
      if (n == 0) break;
      bytes += static_cast<uint64_t>(n);
    }
    ::close(fd);
  }
  return bytes;
}

bool parse_bytes(const std::string& text, uint64_t& bytes) {
  if (text.empty()) return false;
  char* end = nullptr;
  unsigned long long v = std::strtoull(text.c_str(), &end, 10);
  uint64_t scale = 1;
  std::string suffix(end);
  if (suffix == "K" || suffix == "k") scale = 1ull << 10;
  else if (suffix == "M" || suffix == "m") scale = 1ull << 20;
  else if (suffix == "G" || suffix == "g") scale = 1ull << 30;
  else if (!suffix.empty()) return false;
  bytes = v * scale;
  return end != text.c_str();
}

}  // namespace walcut::bench
