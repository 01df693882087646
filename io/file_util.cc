#include "io/file_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>
#include <filesystem>
#include <new>
#include <optional>
#include <span>
#include <utility>

#include "io/fault.h"
#include "io/wal_format.h"

namespace walcut {

namespace fs = std::filesystem;

namespace {
std::atomic<bool> group_read{false};
}  // namespace

void set_group_read(bool allowed) { group_read = allowed; }

FileModes created_modes() { return group_read ? FileModes{0750, 0640} : FileModes{0700, 0600}; }

Status make_directories(const std::string& dir) {
  const mode_t mode = created_modes().dir;
  std::string at;
  for (const fs::path& part : fs::path(dir)) {
    at = at.empty() || at.back() == '/' ? at + part.string() : at + "/" + part.string();
    if (part.empty() || part == "." || part == ".." || part == "/") continue;
    if (::mkdir(at.c_str(), mode) == 0) {
      // mkdir(2) takes the umask off; chmod makes the mode exact.
      if (::chmod(at.c_str(), mode) != 0) return Status::from_errno("chmod " + at, errno);
      continue;
    }
    const int err = errno;
    struct stat st;
    if (err == EEXIST && ::stat(at.c_str(), &st) == 0) {
      if (S_ISDIR(st.st_mode)) continue;
      return Status::from_errno("create directory " + at, ENOTDIR);
    }
    return Status::from_errno("create directory " + at, err);
  }
  return {};
}

Result<int> create_file(const std::string& path, int flags) {
  const mode_t mode = created_modes().file;
  // Never through a symlink, never anything but a regular file, never a
  // file with another name (a hard link): a `<dest>.lock` linked to
  // /etc/passwd had it truncated to nothing by O_TRUNC callers, or made
  // 0600 by the fchmod below; a FIFO would block. O_TRUNC is applied only
  // once the file passed. With O_EXCL the open creates the file or fails
  // (a link or a FIFO in its place included): no O_NONBLOCK to clear
  // after, two calls fewer for each of a restore's thousands of files (a
  // call costs about a microsecond on a VM).
  const bool created_new = (flags & O_EXCL) != 0;
  const bool truncate = (flags & O_TRUNC) != 0;
  const auto not_regular = [&] {
    return Status::io_error("create " + path + ": exists and is not a regular file; refused");
  };
  int fd = ::open(path.c_str(), (flags & ~O_TRUNC) | O_CREAT | O_CLOEXEC | O_NOFOLLOW | (created_new ? 0 : O_NONBLOCK),
                  mode);
  if (fd < 0 && errno == ELOOP) return Status::io_error("create " + path + ": a symbolic link; refused");
  if (fd < 0 && errno == ENXIO) return not_regular();  // a FIFO no one reads, opened write-only, or a socket
  if (fd < 0) return Status::from_errno("create " + path, errno);
  // Each refusal closes what was opened (and leaves the file as it was).
  const auto refused = [&](Status s) {
    ::close(fd);
    return s;
  };
  const auto failed = [&](const char* call) {
    const int err = errno;
    return refused(Status::from_errno(std::string(call) + " " + path, err));
  };
  struct stat st;
  if (::fstat(fd, &st) != 0) return failed("stat");
  if (!S_ISREG(st.st_mode)) return refused(not_regular());
  if (st.st_nlink > 1) {
    return refused(Status::io_error("create " + path + ": exists with " + std::to_string(st.st_nlink) +
                                    " hard links (it is another name of a file); refused"));
  }
  // open(2) takes the umask off, and keeps an existing file's mode: fchmod makes it exact.
  if ((st.st_mode & 07777) != mode && ::fchmod(fd, mode) != 0) return failed("chmod");
  if (truncate && st.st_size > 0 && ::ftruncate(fd, 0) != 0) return failed("truncate");
  if (!created_new) {
    const int fl = ::fcntl(fd, F_GETFL);
    if (fl >= 0) ::fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
  }
  return fd;
}

Status pwrite_all(int fd, ByteSpan data, uint64_t offset, const std::string& path) {
  size_t allowed = fault::writable_bytes(data.size());
  if (allowed < data.size()) {
    (void)pwrite_all(fd, data.first(allowed), offset, path);
    if (fault::tear_is_fatal()) fault::crash_now();  // a torn write: only the first `allowed` bytes got there
    return Status::io_error("write " + path + " at offset " + std::to_string(offset + allowed) +
                            ": simulated crash (fault::tear_after_bytes)");
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

void advise_will_need(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW);
  if (fd < 0) return;
  struct stat st;
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) ::posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED);
  ::close(fd);
}

bool first_byte_cached(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW);
  if (fd < 0) return false;
  char byte;
  iovec iov{&byte, 1};
  const bool cached = ::preadv2(fd, &iov, 1, 0, RWF_NOWAIT) == 1;
  ::close(fd);
  return cached;
}

namespace {

constexpr size_t kPieceBytes = 1 << 20;

// Up to `at_most` bytes of `path` from its start.
Result<Bytes> read_regular_file(const std::string& path, const std::function<Status(uint64_t)>& check_size,
                                uint64_t at_most, bool follow = true) {
  Result<OpenedFile> f = OpenedFile::open(path, follow);
  if (!f.ok()) return f.status();
  if (check_size) WALCUT_RETURN_IF_ERROR(check_size(f->size()));
  return f->read(0, at_most);
}

}  // namespace

Result<Bytes> read_file_bytes(const std::string& path, const std::function<Status(uint64_t)>& check_size) {
  return read_regular_file(path, check_size, UINT64_MAX);
}

Result<Bytes> read_file_bytes_no_follow(const std::string& path, const std::function<Status(uint64_t)>& check_size) {
  return read_regular_file(path, check_size, UINT64_MAX, /*follow=*/false);
}

Result<Bytes> read_file_prefix(const std::string& path, uint64_t at_most) {
  return read_regular_file(path, {}, at_most, /*follow=*/false);
}

// O_NONBLOCK: a FIFO planted where a file belongs must not hang the open.
Result<OpenedFile> OpenedFile::open(const std::string& path, bool follow) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY | (follow ? 0 : O_NOFOLLOW));
  if (fd < 0 && errno == ELOOP && !follow) {
    return Status::corruption(path + ": a symbolic link where a file belongs (not followed: it could lead anywhere)");
  }
  if (fd < 0) return Status::from_errno("open " + path, errno);
  OpenedFile f(path, fd, 0);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    return Status::from_errno("stat " + path, err);
  }
  if (S_ISDIR(st.st_mode)) return Status::from_errno("read " + path, EISDIR);
  if (!S_ISREG(st.st_mode)) return Status::io_error("read " + path + ": not a regular file");
  f.size_ = static_cast<uint64_t>(st.st_size);
  return f;
}

OpenedFile::OpenedFile(OpenedFile&& o) noexcept
    : path_(std::move(o.path_)), fd_(std::exchange(o.fd_, -1)), size_(o.size_) {}

OpenedFile::~OpenedFile() {
  if (fd_ >= 0) ::close(fd_);
}

Result<size_t> OpenedFile::read_some(uint64_t offset, std::span<std::byte> buf) const {
  for (;;) {
    const ssize_t n = ::pread(fd_, buf.data(), buf.size(), static_cast<off_t>(offset));
    if (n >= 0) return static_cast<size_t>(n);
    if (errno != EINTR) return Status::from_errno("read " + path_ + " at offset " + std::to_string(offset), errno);
  }
}

Result<Bytes> OpenedFile::read(uint64_t offset, uint64_t bytes) const {
  Bytes out;
  try {
    out.resize(static_cast<size_t>(std::min(size_ - std::min(size_, offset), bytes)));
  } catch (const std::bad_alloc&) {  // a file far larger than memory (a sparse one, say) is an error naming it
    return Status::io_error("read " + path_ + ": " + std::to_string(size_) + " bytes do not fit in memory");
  }
  size_t done = 0;
  while (done < out.size()) {
    Result<size_t> n = read_some(offset + done, std::span(out).subspan(done, std::min(kPieceBytes, out.size() - done)));
    if (!n.ok()) return n.status();
    if (n.value() == 0) break;
    done += n.value();
  }
  out.resize(done);
  return out;
}

Status read_file_pieces(const std::string& path, uint64_t from, const std::function<Status(ByteSpan)>& piece,
                        bool follow, const std::function<Status(uint64_t)>& check_size) {
  Result<OpenedFile> f = OpenedFile::open(path, follow);
  if (!f.ok()) return f.status();
  if (check_size) WALCUT_RETURN_IF_ERROR(check_size(f->size()));
  Bytes buf(from < f->size() ? kPieceBytes : 0);
  for (uint64_t at = from; at < f->size();) {
    Result<size_t> n = f->read_some(at, std::span(buf).first(std::min<uint64_t>(buf.size(), f->size() - at)));
    if (!n.ok()) return n.status();
    if (n.value() == 0) break;
    WALCUT_RETURN_IF_ERROR(piece(ByteSpan(buf).first(n.value())));
    at += n.value();
  }
  return {};
}

Status sync_filesystem(const std::string& path) { return sync_opened(path, O_RDONLY, ::syncfs, "open ", "syncfs "); }

Status write_file_synced(const std::string& path, ByteSpan bytes) {
  Result<int> created = create_file(path, O_TRUNC | O_WRONLY);
  if (!created.ok()) return created.status();
  const int fd = created.value();
  Status s = pwrite_all(fd, bytes, 0, path);
  if (s.ok()) s = sync_file(fd, path);
  ::close(fd);
  return s;
}

Status replace_file_synced(const std::string& path, ByteSpan bytes) {
  const std::string tmp = path + ".tmp";
  Status s = write_file_synced(tmp, bytes);
  if (s.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) s = Status::from_errno("rename " + tmp, errno);
  if (!s.ok()) {
    ::unlink(tmp.c_str());
    return s;
  }
  const std::string dir = fs::path(path).parent_path().string();
  return sync_dir(dir.empty() ? "." : dir);
}

Result<std::vector<std::string>> list_segment_files(const std::string& dir) {
  Result<std::vector<DirEntry>> entries = list_directory(dir);
  if (!entries.ok()) return entries.status();
  std::vector<std::pair<uint64_t, std::string>> found;
  for (const DirEntry& e : entries.value()) {
    if (auto index = parse_segment_file_name(e.path)) found.emplace_back(*index, (fs::path(dir) / e.path).string());
  }
  std::sort(found.begin(), found.end());
  std::vector<std::string> paths;
  for (auto& f : found) paths.push_back(std::move(f.second));
  return paths;
}

namespace {

// `p` absolute, with "..", "." and the symbolic links of its existing part
// resolved, and no trailing separator: component by component, as the
// kernel will once the missing directories are made. (Not
// weakly_canonical, which drops "x/.." as text once x is missing: in
// "missing/../link/../d" the ".." after a link to a directory is that
// directory's parent, not the link's.)
fs::path resolved(const std::string& p) {
  std::error_code ec;
  fs::path absolute = fs::absolute(p, ec);
  if (ec) absolute = p;
  fs::path out = absolute.root_path();
  for (const fs::path& part : absolute.relative_path()) {
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      out = out.parent_path();
      continue;
    }
    fs::path next = out / part;
    if (fs::exists(fs::symlink_status(next, ec))) {  // else missing: so is all below it
      fs::path real = fs::canonical(next, ec);
      if (!ec) next = std::move(real);
    }
    out = std::move(next);
  }
  return out;
}

}  // namespace

Result<std::vector<DirEntry>> list_directory(const std::string& dir, bool recursive) {
  // Each directory is opened once, relative to its parent, and its
  // entries are stat'ed by name relative to it (fstatat): a tree of
  // thousands of files costs a short lookup per file, not a walk of its
  // whole path. Depth first: only a directory's ancestors stay open.
  struct Open {
    DIR* d;
    std::string rel;  // "" for `dir`, else "a/b/"
  };
  std::vector<Open> open;
  auto shown = [&](const std::string& rel, std::string_view name) {
    std::string p = (fs::path(dir) / (rel + std::string(name))).lexically_normal().string();
    if (p.size() > 1 && p.back() == '/') p.pop_back();
    return p;
  };
  auto fail = [&](const std::string& what, int err) {
    for (const Open& o : open) ::closedir(o.d);
    return Status::from_errno(what, err);
  };
  auto descend = [&](int fd, std::string rel) {
    // A path no system call could take is refused, as a walk by whole
    // paths would refuse it: each entry holds its whole relative path, so
    // a deeper tree would cost memory and time as the square of its depth.
    if (dir.size() + rel.size() >= PATH_MAX) {
      if (fd >= 0) ::close(fd);
      return fail("list " + dir + ": " + rel.substr(0, 120) + "...", ENAMETOOLONG);
    }
    DIR* d = fd < 0 ? nullptr : ::fdopendir(fd);
    if (d == nullptr) {
      const int err = errno;
      if (fd >= 0) ::close(fd);
      return fail("list " + (rel.empty() ? dir : shown(rel, "")), err);
    }
    open.push_back({d, std::move(rel)});
    return Status{};
  };
  WALCUT_RETURN_IF_ERROR(descend(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC), ""));
  std::vector<DirEntry> out;
  while (!open.empty()) {
    const Open& o = open.back();  // until descend() adds to `open`
    errno = 0;
    const dirent* e = ::readdir(o.d);
    if (e == nullptr) {
      const int err = errno;
      if (err != 0) return fail("list " + (o.rel.empty() ? dir : shown(o.rel, "")), err);
      ::closedir(o.d);
      open.pop_back();
      continue;
    }
    const std::string_view name = e->d_name;
    if (name == "." || name == "..") continue;
    // One lstat: kind, size and mode (a link is kOther, not followed). An
    // entry gone since readdir gave its name is left out: another process
    // removed or renamed it (as a restore renames its staging directory
    // beside another's), and a listing a moment later would not show it.
    struct stat st;
    if (::fstatat(::dirfd(o.d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      const int err = errno;
      if (err == ENOENT) continue;
      return fail("stat " + shown(o.rel, name), err);
    }
    DirEntry entry;
    entry.path = recursive ? o.rel + std::string(name) : std::string(name);
    entry.mode = st.st_mode & 07777;
    if (S_ISREG(st.st_mode)) {
      entry.kind = DirEntry::Kind::kFile;
      entry.bytes = static_cast<uint64_t>(st.st_size);
    } else if (S_ISDIR(st.st_mode)) {
      entry.kind = DirEntry::Kind::kDirectory;
    }
    out.push_back(entry);
    if (recursive && entry.kind == DirEntry::Kind::kDirectory) {
      const int fd = ::openat(::dirfd(o.d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0 && errno == ENOENT) {
        out.pop_back();
        continue;
      }
      WALCUT_RETURN_IF_ERROR(descend(fd, entry.path + "/"));
    }
  }
  std::sort(out.begin(), out.end(), [](const DirEntry& a, const DirEntry& b) { return a.path < b.path; });
  return out;
}

Status sync_tree(const std::string& root) {
  // Directories are told from files by the type readdir gives: no stat of
  // each file (an lstat only where the filesystem gives no type).
  DIR* d = ::opendir(root.c_str());
  if (d == nullptr) return Status::from_errno("open directory " + root, errno);
  std::vector<std::string> below;
  for (;;) {
    errno = 0;
    const dirent* e = ::readdir(d);
    if (e == nullptr) break;
    const std::string_view name = e->d_name;
    if (name == "." || name == "..") continue;
    bool dir = e->d_type == DT_DIR;
    if (e->d_type == DT_UNKNOWN) {
      struct stat st;
      dir = ::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
    }
    if (dir) below.push_back(root + "/" + std::string(name));
  }
  const int err = errno;
  ::closedir(d);
  if (err != 0) return Status::from_errno("list " + root, err);
  for (const std::string& dir : below) WALCUT_RETURN_IF_ERROR(sync_tree(dir));
  return sync_dir(root);
}

Result<FileModes> modes_no_wider_than(const std::string& source) {
  const FileModes modes = created_modes();
  if (modes == FileModes{}) return modes;  // private already: nothing to look at
  const FileModes narrow{modes.dir & ~mode_t{S_IRWXG}, modes.file & ~mode_t{S_IRWXG}};
  struct stat st;
  if (::stat(source.c_str(), &st) != 0) return Status::from_errno("stat " + source, errno);
  if (!(st.st_mode & S_IRGRP)) return narrow;
  if (!S_ISDIR(st.st_mode)) return modes;
  Result<std::vector<DirEntry>> entries = list_directory(source, /*recursive=*/true);
  if (!entries.ok()) return entries.status();
  for (const DirEntry& e : entries.value()) {
    if (!(e.mode & S_IRGRP)) return narrow;
  }
  return modes;
}

Status set_tree_modes(const std::string& root, FileModes modes) {
  Result<std::vector<DirEntry>> entries = list_directory(root, /*recursive=*/true);
  if (!entries.ok()) return entries.status();
  for (const DirEntry& e : entries.value()) {
    if (e.kind == DirEntry::Kind::kOther) continue;  // a symbolic link: chmod would follow it
    const std::string path = root + "/" + e.path;
    if (::chmod(path.c_str(), e.kind == DirEntry::Kind::kDirectory ? modes.dir : modes.file) != 0) {
      return Status::from_errno("chmod " + path, errno);
    }
  }
  if (::chmod(root.c_str(), modes.dir) != 0) return Status::from_errno("chmod " + root, errno);
  return {};
}

bool path_is_within(const std::string& path, const std::string& dir) {
  const fs::path p = resolved(path), d = resolved(dir);
  bool named_within = true;
  auto pi = p.begin();
  for (auto di = d.begin(); di != d.end() && named_within; ++di, ++pi) {
    named_within = pi != p.end() && *pi == *di;
  }
  if (named_within) return true;
  // Under another name (a bind mount of `dir` or of a directory below it):
  // one of the path's existing ancestors is a directory of `dir`'s tree,
  // by device and inode. The tree's directories are listed for it (no
  // file is opened), but for those whose link count says they hold no
  // directory (2; a filesystem that does not count says 1).
  auto id = [](const struct stat& st) { return std::pair{st.st_dev, st.st_ino}; };
  std::vector<std::pair<dev_t, ino_t>> ancestors;
  for (fs::path a = p;; a = a.parent_path()) {
    struct stat as;
    if (::stat(a.c_str(), &as) == 0) ancestors.push_back(id(as));
    if (a == a.parent_path()) break;
  }
  auto is_ancestor = [&](const struct stat& st) {
    return std::find(ancestors.begin(), ancestors.end(), id(st)) != ancestors.end();
  };
  struct stat st;
  if (::stat(d.c_str(), &st) != 0) return false;
  if (is_ancestor(st)) return true;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(d, fs::directory_options::skip_permission_denied, ec), end; !ec && it != end;
       it.increment(ec)) {
    if (!it->is_directory(ec) || it->is_symlink(ec) || ::lstat(it->path().c_str(), &st) != 0) continue;
    if (is_ancestor(st)) return true;
    if (st.st_nlink == 2) it.disable_recursion_pending();
  }
  return false;
}

FileLock::FileLock(FileLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }

FileLock& FileLock::operator=(FileLock&& other) noexcept {
  if (this != &other) {
    release();
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

void FileLock::release() {
  if (fd_ >= 0) ::close(fd_);  // closing the last descriptor drops the flock
  fd_ = -1;
}

Result<FileLock> FileLock::lock_fd(int fd, const std::string& path, const std::string& what, bool wait, Mode mode) {
  const int op = (mode == Mode::kShared ? LOCK_SH : LOCK_EX) | (wait ? 0 : LOCK_NB);
  while (::flock(fd, op) != 0) {
    const int err = errno;
    if (err == EINTR) continue;
    ::close(fd);
    if (err == EWOULDBLOCK) {
      return Status::io_error(what + ": busy: another walcut process holds " + (path == what ? "a lock on it" : path));
    }
    return Status::from_errno("flock " + path, err);
  }
  return FileLock(fd);
}

Result<FileLock> FileLock::lock_file(const std::string& path, const std::string& what, bool wait, Mode mode) {
  Result<int> fd = create_file(path, O_RDWR);
  if (!fd.ok()) return fd.status();
  return lock_fd(fd.value(), path, what, wait, mode);
}

Result<FileLock> FileLock::lock_directory(const std::string& dir, const std::string& what, bool wait, Mode mode) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) return Status::not_found(dir + ": no such directory");
  if (fd < 0) return Status::from_errno("open directory " + dir, errno);
  return lock_fd(fd, dir, what, wait, mode);
}

}  // namespace walcut
