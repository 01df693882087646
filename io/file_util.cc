#include "io/file_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>

#include "io/fault.h"
#include "io/wal_format.h"

namespace walcut {

Status pwrite_all(int fd, ByteSpan data, uint64_t offset, const std::string& path) {
  size_t allowed = fault::writable_bytes(data.size());
  if (allowed < data.size()) {
    (void)pwrite_all(fd, data.first(allowed), offset, path);
    fault::crash_now();  // a torn write: only the first `allowed` bytes got there
  }
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::pwrite(fd, data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::from_errno("write " + path + " at offset " + std::to_string(offset + done), errno);
    done += static_cast<size_t>(n);
  }
  return {};
}

Status sync_file(int fd, const std::string& path) {
  if (::fdatasync(fd) != 0) return Status::from_errno("fdatasync " + path, errno);
  return {};
}

namespace {

// Opens `path` with `flags`, calls `sync` on it, closes it. The errors
// read "<open_what><path>" and "<sync_what><path>".
Status sync_opened(const std::string& path, int flags, int (*sync)(int), const char* open_what,
                   const char* sync_what) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return Status::from_errno(open_what + path, errno);
  int rc = sync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return Status::from_errno(sync_what + path, err);
  return {};
}

}  // namespace

Status sync_dir(const std::string& dir) {
  return sync_opened(dir, O_RDONLY | O_DIRECTORY, ::fsync, "open directory ", "fsync directory ");
}

Result<Bytes> read_file_bytes(const std::string& path) {
  // O_NONBLOCK: a FIFO planted where a file belongs must not hang the open.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return Status::from_errno("open " + path, errno);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return Status::from_errno("stat " + path, err);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    if (S_ISDIR(st.st_mode)) return Status::from_errno("read " + path, EISDIR);
    return Status::io_error("read " + path + ": not a regular file");
  }
  // Sized by fstat and read in 1 MiB pieces; a file that shrinks since is
  // returned short, one that grows is returned as it was.
  constexpr size_t kPieceBytes = 1 << 20;
  Bytes out(static_cast<size_t>(st.st_size));
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::pread(fd, out.data() + done, std::min(kPieceBytes, out.size() - done), static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return Status::from_errno("read " + path + " at offset " + std::to_string(done), err);
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  out.resize(done);
  return out;
}

Status sync_filesystem(const std::string& path) { return sync_opened(path, O_RDONLY, ::syncfs, "open ", "syncfs "); }

Status write_file_synced(const std::string& path, ByteSpan bytes) {
  int fd = ::open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0) return Status::from_errno("create " + path, errno);
  Status s = pwrite_all(fd, bytes, 0, path);
  if (s.ok()) s = sync_file(fd, path);
  ::close(fd);
  return s;
}

Result<std::vector<std::string>> list_dir(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return Status::from_errno("list " + dir, errno);
  std::vector<std::string> names;
  for (;;) {
    errno = 0;
    const struct dirent* e = ::readdir(d);
    if (e == nullptr) break;
    std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(std::move(name));
  }
  int err = errno;
  ::closedir(d);
  if (err != 0) return Status::from_errno("list " + dir, err);
  std::sort(names.begin(), names.end());
  return names;
}

Result<std::vector<std::string>> list_segment_files(const std::string& dir) {
  Result<std::vector<std::string>> names = list_dir(dir);
  if (!names.ok()) return names.status();
  std::vector<std::pair<uint64_t, std::string>> found;
  for (const std::string& name : names.value()) {
    if (auto index = parse_segment_file_name(name)) {
      found.emplace_back(*index, (std::filesystem::path(dir) / name).string());
    }
  }
  std::sort(found.begin(), found.end());
  std::vector<std::string> paths;
  for (auto& f : found) paths.push_back(std::move(f.second));
  return paths;
}

}  // namespace walcut
