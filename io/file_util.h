// Small POSIX helpers shared by the writers: each returns a Status naming
// the file.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "io/coding.h"
#include "io/status.h"

namespace walcut {

// The modes of every directory and file walcut creates, whatever the
// umask: private by default (0700 / 0600, as PostgreSQL's data directory),
// or group-readable (0750 / 0640) once set_group_read(true) is called.
struct FileModes {
  mode_t dir = 0700;
  mode_t file = 0600;
  bool operator==(const FileModes&) const = default;
};
// Process-wide; the CLI's --group-read sets it before any work starts.
void set_group_read(bool allowed);
FileModes created_modes();
// Creates `dir` and its missing parents, each with created_modes().dir
// exactly (directories that exist keep their mode): the one maker of
// directories. Errors name the directory and the errno.
Status make_directories(const std::string& dir);
// open(2) of `path` with O_CREAT | O_CLOEXEC | `flags`, the file's mode
// created_modes().file exactly (a file that existed gets it too): the one
// creator of files. A symbolic link, anything but a regular file, or a
// file with other names (hard links) at `path` is refused, untouched
// (O_TRUNC is applied after the checks). Returns the descriptor; errors
// read "create <path>".
Result<int> create_file(const std::string& path, int flags);
// Where a restore never makes its result more readable than its source:
// created_modes(), without group read when `source` (a file, or a
// directory and everything under it) does not grant it to all of it.
Result<FileModes> modes_no_wider_than(const std::string& source);
// `root` and every directory and file under it get `modes`.
Status set_tree_modes(const std::string& root, FileModes modes);

// Writes all of `data` at `offset`, retrying short writes and EINTR.
Status pwrite_all(int fd, ByteSpan data, uint64_t offset, const std::string& path);
// fdatasync, with the path in the error.
Status sync_file(int fd, const std::string& path);
// fsync of a directory, so a rename or create in it is durable.
Status sync_dir(const std::string& dir);
// The whole file: the one reader of small files (metadata, map files). Every
// error is kIoError naming the path and the errno: missing (ENOENT), a
// directory (EISDIR), no permission (EACCES), a failed read; or a path that
// is not a regular file (a FIFO is refused without waiting for a writer).
// `check_size`, when given, is called with the file's size (fstat) before
// anything is read, and an error it returns is returned: a file far
// larger than expected is not read into memory.
// A file too large for memory is kIoError saying so.
// Cost: one read of it into memory.
Result<Bytes> read_file_bytes(const std::string& path, const std::function<Status(uint64_t)>& check_size = {});
// read_file_bytes() of a file that must not be a symbolic link (opened
// with O_NOFOLLOW): a snapshot's file, whose path was checked for links
// before, and may have been swapped for one since. A link is kCorruption
// naming the path.
Result<Bytes> read_file_bytes_no_follow(const std::string& path, const std::function<Status(uint64_t)>& check_size);
// The first `at_most` bytes of the file (all of a shorter one), with the
// errors of read_file_bytes_no_follow(): for a note of which only the
// beginning is shown, however large the file, and never a file a link
// leads to.
Result<Bytes> read_file_prefix(const std::string& path, uint64_t at_most);
// A regular file opened to be read, as read_file_bytes() opens (and
// without following a symbolic link unless `follow`, with the errors of
// read_file_bytes_no_follow()): every read of it sees the file that was
// opened, whatever is renamed over its path meanwhile. For several pieces
// of one file: a segment's header and the blocks of its cut records.
class OpenedFile {
 public:
  static Result<OpenedFile> open(const std::string& path, bool follow);
  OpenedFile(OpenedFile&& o) noexcept;
  OpenedFile& operator=(OpenedFile&&) = delete;
  ~OpenedFile();
  const std::string& path() const { return path_; }
  // Its size when it was opened (fstat).
  uint64_t size() const { return size_; }
  // Up to `bytes` bytes from `offset`, read in 1 MiB pieces: fewer where
  // the file (as sized at open) ends first, or where it has shrunk since.
  // A piece too large for memory is kIoError saying so.
  Result<Bytes> read(uint64_t offset, uint64_t bytes) const;
  // One pread of up to buf.size() bytes at `offset` (retried on EINTR):
  // the bytes read, 0 at the end of the file.
  Result<size_t> read_some(uint64_t offset, std::span<std::byte> buf) const;

 private:
  OpenedFile(std::string path, int fd, uint64_t size) : path_(std::move(path)), fd_(fd), size_(size) {}
  std::string path_;
  int fd_;
  uint64_t size_;
};
// Reads `path` from byte `from` to its end, as fstat sizes it once opened
// (a file that grows meanwhile is read as it was), in 1 MiB pieces handed
// in order to `piece`; an error `piece` returns stops the read and is
// returned. Opened as read_file_bytes() opens, and without following a
// symbolic link unless `follow` (the errors of
// read_file_bytes_no_follow()). `check_size`, when given, is called with
// that size before anything is read, and an error it returns is
// returned. For files too large to read whole: a segment to copy or to
// checksum.
Status read_file_pieces(const std::string& path, uint64_t from, const std::function<Status(ByteSpan)>& piece,
                        bool follow = false, const std::function<Status(uint64_t)>& check_size = {});
// Asks the kernel to read `path` into the page cache in the background
// (posix_fadvise WILLNEED) and returns without waiting. Only a hint: a
// file that cannot be opened, is not a regular file or is a symbolic link
// (not followed), is left alone.
void advise_will_need(const std::string& path);
// Whether the page cache holds the first byte of `path` (a read of it with
// RWF_NOWAIT, which never waits for the disk). False for a file that
// cannot be read that way, or is a symbolic link (not followed).
bool first_byte_cached(const std::string& path);
// syncfs() of the filesystem that holds `path`: every file written there
// so far is durable. One call instead of an fdatasync per file, for many
// files written into a staging directory.
Status sync_filesystem(const std::string& path);
// Creates or replaces `path` with `bytes` and fdatasyncs it (no rename:
// for files inside a staging directory that is renamed as a whole).
Status write_file_synced(const std::string& path, ByteSpan bytes);
// Replaces `path` with `bytes` atomically: writes and fdatasyncs
// "<path>.tmp", renames it over `path` and fsyncs the directory. A failure
// leaves `path` as it was and no temporary file.
Status replace_file_synced(const std::string& path, ByteSpan bytes);
// The segment files (NNNNNNNNNNNNNNNN.wal) of a directory, by index.
Result<std::vector<std::string>> list_segment_files(const std::string& dir);

// One entry of a directory listing. Symbolic links are not followed.
struct DirEntry {
  enum class Kind { kFile, kDirectory, kOther };
  std::string path;  // relative to the listed directory ("a/b" below it with `recursive`)
  Kind kind = Kind::kOther;
  uint64_t bytes = 0;  // of a regular file
  mode_t mode = 0;     // the permission bits
};
// The entries of `dir` (and of every directory below it with `recursive`),
// sorted by path: the one directory lister. Every std::filesystem call
// takes an error_code: a directory that vanishes or cannot be read while
// listed is an I/O error naming it and the errno, never an exception. An
// entry that is gone between readdir and its lstat is left out (another
// process removed or renamed it), not an error.
Result<std::vector<DirEntry>> list_directory(const std::string& dir, bool recursive = false);
// fsync of `root` and of every directory below it.
Status sync_tree(const std::string& root);
// Whether `path` is `dir` or lies below it, after resolving "..", "." and
// the symbolic links of the parts that exist, or under another name (a
// bind mount of `dir` or of a directory below it: an existing ancestor
// with the device and inode of one of `dir`'s directories).
bool path_is_within(const std::string& path, const std::string& dir);

// An flock(2) held until release() or destruction, so that two walcut
// processes (or two opens in one process) never work on the same
// directory at once. A lock another holder has is an I/O error at once,
// "<what>: busy: another walcut process holds <path>", or is waited for
// when `wait` is set. Linux releases it when the process dies.
class FileLock {
 public:
  enum class Mode { kExclusive, kShared };  // shared: readers that exclude writers only
  // Locks the file `path`, created if missing with created_modes() (it stays after release).
  static Result<FileLock> lock_file(const std::string& path, const std::string& what, bool wait,
                                    Mode mode = Mode::kExclusive);
  // Locks the directory `dir` itself (nothing is created); kNotFound when it does not exist.
  static Result<FileLock> lock_directory(const std::string& dir, const std::string& what, bool wait, Mode mode);

  FileLock() = default;
  FileLock(FileLock&& other) noexcept;
  FileLock& operator=(FileLock&& other) noexcept;
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  ~FileLock() { release(); }
  void release();
  bool held() const { return fd_ >= 0; }

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  static Result<FileLock> lock_fd(int fd, const std::string& path, const std::string& what, bool wait, Mode mode);
  int fd_ = -1;
};

}  // namespace walcut
