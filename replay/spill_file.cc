#include "replay/spill_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "io/crc32c.h"
#include "io/file_util.h"

namespace walcut {
namespace {
// Slices are gathered and handed to the kernel in pieces of this size: a
// spill writes a file per thread at once, and with 4 MiB two of them
// added 15 MiB to a limited restore's peak RSS (docs/restore.md, "Memory").
constexpr size_t kSpillPieceBytes = 2 << 20;
}  // namespace

FileRemover::~FileRemover() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void FileRemover::remove(const std::string& path) noexcept {
  try {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
      queue_.push_back(path);
    }
    cv_.notify_all();
  } catch (...) {  // no thread or no memory for the queue: removed here
    ::unlink(path.c_str());
  }
}

void FileRemover::drain() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return queue_.empty() && !removing_; });
}

void FileRemover::run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopped, nothing left
    const std::string path = std::move(queue_.front());
    queue_.pop_front();
    removing_ = true;
    lock.unlock();
    ::unlink(path.c_str());
    lock.lock();
    removing_ = false;
    cv_.notify_all();
  }
}

SpillFile::~SpillFile() {
  // Removed once its last slice is read, not all at once before the
  // publish (ext4 took 25 ms to unlink each of `large`'s 90 MB spill
  // files, one after another); an error leaves it to the staging
  // directory's removal.
  ::close(fd);
  if (remover) {
    remover->remove(path);
  } else {
    ::unlink(path.c_str());
  }
}

Result<std::unique_ptr<SpillWriter>> SpillWriter::create(const std::string& path,
                                                         std::shared_ptr<FileRemover> remover) {
  Result<int> created = create_file(path, O_EXCL | O_RDWR);
  if (!created.ok()) return Status(created.status().code(), "spill file: " + created.status().message());
  auto file =
      std::make_shared<SpillFile>(created.value(), path, std::move(remover));  // from here, the file is removed with it
  // Slices are read back one by one, each by its exact range: read-ahead
  // only brought in neighbours that a limited page cache dropped before
  // they were wanted (half the disk reads of a limited `large` restore).
  ::posix_fadvise(file->fd, 0, 0, POSIX_FADV_RANDOM);
  return std::unique_ptr<SpillWriter>(new SpillWriter(std::move(file)));
}

Result<SpillSlice> SpillWriter::append(const SortedEntries& entries) {
  const size_t from = pending_.size();
  append_entries(entries, pending_);
  const ByteSpan run(pending_.data() + from, pending_.size() - from);
  SpillSlice slice{file_, offset_, run.size(), crc32c(run)};
  offset_ += run.size();
  if (pending_.size() >= kSpillPieceBytes) WALCUT_RETURN_IF_ERROR(flush());
  return slice;
}

Status SpillWriter::flush() {
  if (pending_.empty()) return {};
  WALCUT_RETURN_IF_ERROR(pwrite_all(file_->fd, pending_.span(), flushed_offset_, file_->path));
  // Written back now, not when memory runs short: under a cgroup limit
  // the page cache is the little room the budget leaves, and reclaim
  // would wait on these pages being dirty (a hint: an error changes nothing).
  ::sync_file_range(file_->fd, static_cast<off_t>(flushed_offset_), static_cast<off_t>(pending_.size()),
                    SYNC_FILE_RANGE_WRITE);
  flushed_offset_ += pending_.size();
  pending_.clear();
  return {};
}

Status SpillWriter::finish() {
  Status s = flush();
  pending_.release();
  return s;
}

void prefetch_spill_slice(const SpillSlice& slice) {
  ::posix_fadvise(slice.file->fd, static_cast<off_t>(slice.offset), static_cast<off_t>(slice.bytes),
                  POSIX_FADV_WILLNEED);
}

Status read_spill_slice(const SpillSlice& slice, RunBuffer& out) {
  const std::string& path = slice.file->path;
  const int fd = slice.file->fd;
  out.clear();
  std::byte* p = out.append(slice.bytes);
  uint64_t done = 0;
  Status s;
  while (done < slice.bytes) {
    ssize_t n = ::pread(fd, p + done, slice.bytes - done, static_cast<off_t>(slice.offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      s = Status::from_errno("read " + path, errno);
      break;
    }
    if (n == 0) {
      struct stat st;
      const std::string size = ::fstat(fd, &st) == 0 ? std::to_string(st.st_size) : "?";
      s = Status::corruption(path + ": ends at offset " + size + ", inside the slice of " +
                             std::to_string(slice.bytes) + " bytes at offset " + std::to_string(slice.offset));
      break;
    }
    done += static_cast<uint64_t>(n);
  }
  WALCUT_RETURN_IF_ERROR(s);
  // A slice is read once: its pages go now, not by reclaim (a hint).
  ::posix_fadvise(fd, static_cast<off_t>(slice.offset), static_cast<off_t>(slice.bytes), POSIX_FADV_DONTNEED);
  if (crc32c(out.span()) != slice.crc32c) {
    return Status::corruption(path + ": checksum mismatch in the slice at offset " + std::to_string(slice.offset));
  }
  if (!run_is_well_formed(out.span(), /*sorted=*/true)) {
    return Status::corruption(path + ": malformed run in the slice at offset " + std::to_string(slice.offset));
  }
  return {};
}

}  // namespace walcut
