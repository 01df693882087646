// Spill files: where a restore puts routed entries when they outgrow its
// memory budget (docs/restore.md, "Memory").
//
// A spill file is written once, front to back, and read back once by the
// process that wrote it: one slice per partition copy, each slice a sorted
// run (replay/entry_run.h). The index of slices stays in memory; each
// slice's CRC32C is checked when it is read back, and its entries' framing
// and key order too. Files live in the restore's private staging
// directory; each is removed with its last slice (a crash leaves them to
// the staging directory's removal), on a thread of its own when a
// FileRemover is given. They are never synced (a crash starts the
// restore over), but their writeback starts as they are written, and a
// slice's pages are dropped once it is read: under a cgroup memory limit
// the page cache is what the budget leaves over.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "io/status.h"
#include "replay/entry_run.h"

namespace walcut {

// Removes files on a thread of its own, started with the first. On a
// file system that discards freed blocks as they are freed (ext4's
// `discard`), an unlink waits for the device: about 56 ms for a 90 MB
// spill file on the VM of docs/benchmarks.md, which stalled the finish
// thread that read the file's last slice. Errors are ignored: what is
// left goes with the staging directory.
class FileRemover {
 public:
  FileRemover() = default;
  FileRemover(const FileRemover&) = delete;
  FileRemover& operator=(const FileRemover&) = delete;
  ~FileRemover();  // removes what is queued first
  void remove(const std::string& path) noexcept;
  // Returns once every file queued is removed.
  void drain();

 private:
  void run();

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  bool removing_ = false;  // the thread holds a path taken from queue_
  bool stop_ = false;
  std::thread thread_;
};

// An open spill file, shared by its slices: closed and removed with the
// last of them, by `remover` when there is one.
struct SpillFile {
  SpillFile(int fd, std::string path, std::shared_ptr<FileRemover> remover)
      : fd(fd), path(std::move(path)), remover(std::move(remover)) {}
  SpillFile(const SpillFile&) = delete;
  SpillFile& operator=(const SpillFile&) = delete;
  ~SpillFile();
  const int fd;
  const std::string path;
  const std::shared_ptr<FileRemover> remover;
};

// Where one slice is.
struct SpillSlice {
  std::shared_ptr<const SpillFile> file;
  uint64_t offset = 0;
  uint64_t bytes = 0;
  uint32_t crc32c = 0;
};

class SpillWriter {
 public:
  // Creates `path` (it must not exist), private to the user; `remover`
  // (may be null: at once, by the thread that drops the last slice)
  // removes it once its slices are gone.
  static Result<std::unique_ptr<SpillWriter>> create(const std::string& path,
                                                     std::shared_ptr<FileRemover> remover = nullptr);

  // Appends entries in key order as one sorted run; returns where it is.
  Result<SpillSlice> append(const SortedEntries& entries);
  // Writes what is buffered; the file stays open for its slices.
  Status finish();
  uint64_t bytes_written() const { return offset_; }

 private:
  explicit SpillWriter(std::shared_ptr<SpillFile> file) : file_(std::move(file)) {}
  Status flush();

  std::shared_ptr<SpillFile> file_;
  RunBuffer pending_;
  uint64_t offset_ = 0;          // of the next slice
  uint64_t flushed_offset_ = 0;  // of pending_[0]
};

// Reads a slice back into `out` (replacing its contents) and checks it.
Status read_spill_slice(const SpillSlice& slice, RunBuffer& out);
// Asks the kernel to start reading the slice (a hint).
void prefetch_spill_slice(const SpillSlice& slice);

}  // namespace walcut
