#include "bench/bench_io.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>

namespace walcut::bench {

namespace {
constexpr uint64_t kPageBytes = 4096;

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

int open_for_read(const std::string& path, bool direct, bool& direct_used) {
  direct_used = false;
  if (direct) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECT);
    if (fd >= 0 || errno != EINVAL) {
      direct_used = fd >= 0;
      return fd;
    }
  }
  return ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
}

Result<PlainRead> read_files(const std::vector<std::string>& paths, bool direct, size_t chunk_bytes) {
  std::unique_ptr<std::byte, decltype(&std::free)> buf(
      static_cast<std::byte*>(std::aligned_alloc(kPageBytes, chunk_bytes)), &std::free);
  if (!buf) return Status::invalid_argument("read buffer of " + std::to_string(chunk_bytes) + " bytes");
  PlainRead read;
  read.direct_used = direct;
  for (const std::string& p : paths) {
    bool direct_used = false;
    int fd = open_for_read(p, direct, direct_used);
    if (fd < 0) return Status::from_errno("open " + p, errno);
    read.direct_used = read.direct_used && direct_used;
    for (;;) {
      ssize_t n = ::read(fd, buf.get(), chunk_bytes);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        int err = errno;
        ::close(fd);
        return Status::from_errno("read " + p, err);
      }
      if (n == 0) break;
      read.bytes += static_cast<uint64_t>(n);
    }
    ::close(fd);
  }
  return read;
}

namespace {
std::mutex g_notices_mu;
std::vector<std::string> g_notices;
}  // namespace

void collect_notice(const std::string& text) {
  std::lock_guard<std::mutex> lock(g_notices_mu);
  std::fprintf(stderr, "walcut: %s\n", text.c_str());
  g_notices.push_back(text);
}

std::vector<std::string> notices() {
  std::lock_guard<std::mutex> lock(g_notices_mu);
  return g_notices;
}

std::string filesystem_name(long f_type) {
  switch (static_cast<unsigned long>(f_type)) {
    case 0xEF53: return "ext4";  // also ext2/ext3
    case 0x58465342: return "xfs";
    case 0x9123683E: return "btrfs";
    case 0x01021994: return "tmpfs";
    case 0x794C7630: return "overlayfs";
    case 0x6969: return "nfs";
    case 0x2FC12FC1: return "zfs";
    case 0xF2F52010: return "f2fs";
    case 0x65735546: return "fuse";
  }
  return "unknown";
}

}  // namespace walcut::bench
