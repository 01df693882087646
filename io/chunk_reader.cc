#include "io/chunk_reader.h"

#include <fcntl.h>
#include <liburing.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <new>
#include <set>

#include "io/fault.h"

namespace walcut {

const char* io_engine_name(IoEngine e) {
  switch (e) {
    case IoEngine::kAuto: return "auto";
    case IoEngine::kUring: return "uring";
    case IoEngine::kPread: return "pread";
  }
  return "?";
}

namespace {

constexpr uint64_t kAlign = 4096;
std::atomic<int> g_uring_setup_error{0};

// Gives each kind of notice once per process.
void notice_once(const ReadOptions& o, const std::string& kind, const std::string& text) {
  static std::mutex mu;
  static std::set<std::string> given;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (!given.insert(kind).second) return;
  }
  if (o.notice) {
    o.notice(text);
  } else {
    std::fprintf(stderr, "walcut: %s\n", text.c_str());
  }
}

// Aligned buffers for O_DIRECT; a fixed set that io_uring registers, plus
// overflow buffers when a caller keeps more chunks than the set holds
// (replay holds up to 6 MiB of batches: 24 chunks of 256 KiB beyond the
// set's 16). Those are kept for the next overflow, not freed: malloc gave
// freed ones' pages back to the kernel now and then, and the next ones
// faulted in page by page during the kernel's copy (a `small` restore
// took 2,100 to 11,000 page faults, now 2,200 each time; a fault costs
// 13 us on the benchmark VM).
class BufferPool : public std::enable_shared_from_this<BufferPool> {
 public:
  // Out of memory is std::bad_alloc, as for any allocation: a null
  // buffer handed to the kernel read as a damaged segment ("Bad address").
  BufferPool(size_t count, size_t bytes) : bytes_(bytes) {
    try {
      buffers_.reserve(count);
      for (size_t i = 0; i < count; ++i) {
        buffers_.push_back(allocate(bytes));
        free_.push_back(static_cast<int>(i));
      }
    } catch (...) {  // the destructor does not run for a constructor that throws
      for (std::byte* made : buffers_) std::free(made);
      throw;
    }
  }
  ~BufferPool() {
    for (std::byte* b : buffers_) std::free(b);
    for (std::byte* b : spare_) std::free(b);
  }
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  // A buffer and its index in the registered set (-1 for an overflow buffer).
  std::pair<std::byte*, int> acquire() {
    std::lock_guard<std::mutex> lock(mu_);
    if (free_.empty()) {
      if (spare_.empty()) return {allocate(bytes_), -1};
      std::byte* b = spare_.back();
      spare_.pop_back();
      return {b, -1};
    }
    int i = free_.back();
    free_.pop_back();
    return {buffers_[static_cast<size_t>(i)], i};
  }
  void release(std::byte* b, int index) {
    std::lock_guard<std::mutex> lock(mu_);
    if (index < 0) {
      spare_.push_back(b);
    } else {
      free_.push_back(index);
    }
  }
  // An owner handle that gives the buffer back when the last copy drops.
  std::shared_ptr<const void> owner(std::byte* b, int index) {
    auto self = shared_from_this();
    return std::shared_ptr<const void>(b, [self, index](const void* p) {
      self->release(static_cast<std::byte*>(const_cast<void*>(p)), index);
    });
  }
  const std::vector<std::byte*>& registered() const { return buffers_; }
  size_t buffer_bytes() const { return bytes_; }

 private:
  static std::byte* allocate(size_t bytes) {
    void* p = fault::allocation_fails("read.buffer") ? nullptr : std::aligned_alloc(kAlign, bytes);
    if (p == nullptr) throw std::bad_alloc();
    return static_cast<std::byte*>(p);
  }

  size_t bytes_;
  std::mutex mu_;
  std::vector<std::byte*> buffers_;
  std::vector<int> free_;
  std::vector<std::byte*> spare_;  // overflow buffers given back
};

struct File {
  std::string path;
  uint64_t size = 0;
  int fd = -1;
  bool direct = false;  // opened with O_DIRECT
};

// One read: a piece of a file into one buffer. Ordered by (file, offset).
struct Read {
  uint32_t file = 0;
  uint64_t offset = 0;
  uint32_t want = 0;     // bytes that exist in the file at [offset, offset + want)
  uint32_t done = 0;     // bytes read so far
  std::byte* buf = nullptr;
  int buf_index = -1;
  bool complete = false;
  int error = 0;         // errno of a failed read
};

// What both engines share: the file list, the order of reads, the buffers.
class ChunkReaderBase : public ChunkReader {
 public:
  ChunkReaderBase(std::vector<File> files, const ReadOptions& o)
      : files_(std::move(files)),
        options_(o),
        pool_(std::make_shared<BufferPool>(pool_size(files_, o), buffer_size(files_, o))) {}
  ~ChunkReaderBase() override {
    for (File& f : files_) close_file(f);
  }

  void skip_rest_of_file(uint32_t file) override {
    skipped_up_to_ = std::max(skipped_up_to_, file + 1);
    if (cursor_file_ <= file) {
      cursor_file_ = file + 1;
      cursor_offset_ = 0;
    }
  }
  uint64_t file_size(uint32_t file) const override { return files_[file].size; }
  size_t file_count() const override { return files_.size(); }
  const std::string& path(uint32_t file) const override { return files_[file].path; }
  size_t buffer_bytes() const override { return pool_->buffer_bytes(); }

 protected:
  // The next read to issue, with its buffer; false when every file is read.
  Result<bool> plan_next(Read& r) {
    while (cursor_file_ < files_.size() && cursor_offset_ >= files_[cursor_file_].size) {
      ++cursor_file_;
      cursor_offset_ = 0;
    }
    if (cursor_file_ >= files_.size()) return false;
    File& f = files_[cursor_file_];
    if (f.fd < 0) WALCUT_RETURN_IF_ERROR(open_file(f));
    r = Read{};
    r.file = cursor_file_;
    r.offset = cursor_offset_;
    r.want = static_cast<uint32_t>(std::min<uint64_t>(options_.chunk_bytes, f.size - cursor_offset_));
    std::tie(r.buf, r.buf_index) = pool_->acquire();
    cursor_offset_ += options_.chunk_bytes;
    return true;
  }

  // Bytes to ask the kernel for: O_DIRECT wants whole aligned blocks.
  uint32_t request_bytes(const Read& r) const {
    uint64_t n = r.want - r.done;
    return static_cast<uint32_t>(files_[r.file].direct ? (n + kAlign - 1) / kAlign * kAlign : n);
  }

  // Accounts `res` bytes read (0: the file ended early). Returns true when
  // the read is complete.
  bool account(Read& r, int64_t res) {
    if (res == 0) r.want = r.done;  // the file shrank since it was opened
    r.done += static_cast<uint32_t>(std::min<int64_t>(res, r.want - r.done));
    r.complete = r.done >= r.want;
    return r.complete;
  }

  // Closes the files before `file` that no read will touch again.
  void close_files_before(uint32_t file) {
    for (; closed_below_ < std::min(file, cursor_file_); ++closed_below_) close_file(files_[closed_below_]);
  }

  // Two buffers per read in flight, so the caller can hold chunks while
  // reads go on; fewer when the files are small.
  static size_t pool_size(const std::vector<File>& files, const ReadOptions& o) {
    uint64_t chunks = 0;
    for (const File& f : files) chunks += (f.size + o.chunk_bytes - 1) / o.chunk_bytes;
    return static_cast<size_t>(std::min<uint64_t>(2ull * o.queue_depth, chunks + 1));
  }

  // A read never passes its file's end: no buffer need be larger than the largest file.
  static size_t buffer_size(const std::vector<File>& files, const ReadOptions& o) {
    uint64_t largest = 0;
    for (const File& f : files) largest = std::max(largest, f.size);
    const uint64_t whole = std::max<uint64_t>(kAlign, (largest + kAlign - 1) / kAlign * kAlign);
    return static_cast<size_t>(std::min<uint64_t>(o.chunk_bytes, whole));
  }

  bool skipped(const Read& r) const { return r.file < skipped_up_to_; }

  // Turns a finished read into a chunk (or an error naming the file).
  Result<bool> deliver(Read& r, Chunk& out) {
    if (r.error != 0) {
      pool_->release(r.buf, r.buf_index);
      return Status::from_errno("read " + files_[r.file].path + " at offset " + std::to_string(r.offset + r.done),
                                r.error);
    }
    out.file = r.file;
    out.offset = r.offset;
    out.bytes = ByteSpan{r.buf, r.done};
    out.owner = pool_->owner(r.buf, r.buf_index);
    return true;
  }
  void drop(Read& r) { pool_->release(r.buf, r.buf_index); }

  int fd(uint32_t file) const { return files_[file].fd; }
  const ReadOptions& options() const { return options_; }
  BufferPool& pool() { return *pool_; }

 private:
  Status open_file(File& f) {
    int flags = O_RDONLY | O_CLOEXEC;
    if (options_.direct) {
      f.fd = ::open(f.path.c_str(), flags | O_DIRECT);
      if (f.fd >= 0) {
        f.direct = true;
        return {};
      }
      if (errno != EINVAL) return Status::from_errno("open " + f.path, errno);
      notice_once(options_, "direct", "the filesystem refuses O_DIRECT for " + f.path + "; reading buffered");
    }
    f.fd = ::open(f.path.c_str(), flags);
    if (f.fd < 0) return Status::from_errno("open " + f.path, errno);
    return {};
  }
  static void close_file(File& f) {
    if (f.fd >= 0) ::close(f.fd);
    f.fd = -1;
  }

  std::vector<File> files_;
  ReadOptions options_;
  std::shared_ptr<BufferPool> pool_;
  uint32_t cursor_file_ = 0;
  uint64_t cursor_offset_ = 0;
  uint32_t skipped_up_to_ = 0;
  uint32_t closed_below_ = 0;
};

class PreadChunkReader final : public ChunkReaderBase {
 public:
  using ChunkReaderBase::ChunkReaderBase;
  const char* engine_name() const override { return "pread"; }

  Result<bool> next(Chunk& out) override {
    Read r;
    Result<bool> planned = plan_next(r);
    if (!planned.ok() || !planned.value()) return planned;
    while (!r.complete) {
      ssize_t n = ::pread(fd(r.file), r.buf + r.done, request_bytes(r), static_cast<off_t>(r.offset + r.done));
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n < 0) {
        r.error = errno;
        break;
      }
      account(r, n);
    }
    close_files_before(r.file);
    return deliver(r, out);
  }
};

class UringChunkReader final : public ChunkReaderBase {
 public:
  UringChunkReader(std::vector<File> files, const ReadOptions& o, io_uring ring)
      : ChunkReaderBase(std::move(files), o), ring_(ring), nowait_(!o.direct) {
    const auto& bufs = pool().registered();
    std::vector<iovec> iov(bufs.size());
    for (size_t i = 0; i < bufs.size(); ++i) iov[i] = {bufs[i], pool().buffer_bytes()};
    int rc = io_uring_register_buffers(&ring_, iov.data(), static_cast<unsigned>(iov.size()));
    fixed_ = rc == 0;
    if (!fixed_) {
      notice_once(o, "fixed", std::string("io_uring refused registered buffers (") + std::strerror(-rc) +
                                  "); using plain reads");
    }
  }
  ~UringChunkReader() override {
    // Wait for reads still in flight before their buffers go away. Some
    // may be prepared and not yet submitted (an exception, out of memory,
    // between the two): submitted now, or their completions never come.
    if (in_flight_ > 0) io_uring_submit(&ring_);
    while (in_flight_ > 0) {
      io_uring_cqe* cqe = nullptr;
      if (io_uring_wait_cqe(&ring_, &cqe) < 0) break;
      io_uring_cqe_seen(&ring_, cqe);
      --in_flight_;
    }
    for (Read& r : queue_) drop(r);
    io_uring_queue_exit(&ring_);
  }
  const char* engine_name() const override { return "io_uring"; }

  Result<bool> next(Chunk& out) override {
    for (;;) {
      if (queue_.empty()) {
        Result<bool> served = read_cached(out);
        if (!served.ok() || served.value()) return served;
      }
      WALCUT_RETURN_IF_ERROR(fill());
      if (queue_.empty()) return false;
      Read& front = queue_.front();
      if (!front.complete) {
        WALCUT_RETURN_IF_ERROR(reap(true));
        continue;
      }
      Read r = front;
      queue_.pop_front();
      close_files_before(queue_.empty() ? r.file : queue_.front().file);
      if (skipped(r)) {
        drop(r);
        continue;
      }
      return deliver(r, out);
    }
  }

 private:
  // With nothing in flight, the next buffered read is tried on the
  // caller's thread with RWF_NOWAIT: bytes the page cache holds are copied
  // now, where the caller reads them next, and not by whichever thread
  // submits reads ahead (on a 2-vCPU VM, bytes written on one vCPU and
  // read on the other moved at a fraction of the speed). Bytes it does not
  // hold are read through the ring, reads ahead and all, until the ring is
  // empty again. Returns true with `out` when the chunk was served here,
  // false when the read (or none: the files are read) went to the queue.
  Result<bool> read_cached(Chunk& out) {
    if (!nowait_) return false;
    Read r;
    Result<bool> planned = plan_next(r);
    if (!planned.ok()) return planned.status();
    if (!planned.value()) return false;
    while (!r.complete) {
      iovec iov{r.buf + r.done, request_bytes(r)};
      ssize_t n = ::preadv2(fd(r.file), &iov, 1, static_cast<off_t>(r.offset + r.done), RWF_NOWAIT);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        // Refused here, or an error the ring will report: the ring reads from now on.
        if (errno != EAGAIN) nowait_ = false;
        break;
      }
      // All of it; or 0: the file shrank since it was opened (complete,
      // short); or part of it: the rest is not cached.
      if (!account(r, n)) break;
    }
    if (r.complete) {
      close_files_before(r.file);
      return deliver(r, out);
    }
    queue_.push_back(r);
    submit(queue_.back());
    int rc = io_uring_submit(&ring_);
    if (rc < 0) return Status::from_errno("io_uring_submit", -rc);
    return false;
  }

  // Issues reads until queue_depth are outstanding or every file is planned.
  Status fill() {
    bool submitted = false;
    while (queue_.size() < options().queue_depth) {
      Read r;
      Result<bool> planned = plan_next(r);
      if (!planned.ok()) return planned.status();
      if (!planned.value()) break;
      queue_.push_back(r);
      submit(queue_.back());
      submitted = true;
    }
    if (submitted) {
      int rc = io_uring_submit(&ring_);
      if (rc < 0) return Status::from_errno("io_uring_submit", -rc);
    }
    return {};
  }

  void submit(Read& r) {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    assert(sqe != nullptr);  // the ring has queue_depth entries and at most that many are out
    unsigned n = request_bytes(r);
    if (fixed_ && r.buf_index >= 0) {
      io_uring_prep_read_fixed(sqe, fd(r.file), r.buf + r.done, n, r.offset + r.done, r.buf_index);
    } else {
      io_uring_prep_read(sqe, fd(r.file), r.buf + r.done, n, r.offset + r.done);
    }
    io_uring_sqe_set_data(sqe, &r);
    ++in_flight_;
  }

  // Takes completions (waiting for one when `wait`); requeues -EAGAIN and
  // the rest of short reads.
  Status reap(bool wait) {
    io_uring_cqe* cqe = nullptr;
    int rc = wait ? io_uring_wait_cqe(&ring_, &cqe) : io_uring_peek_cqe(&ring_, &cqe);
    bool resubmit = false;
    while (rc == 0 && cqe != nullptr) {
      auto* r = static_cast<Read*>(io_uring_cqe_get_data(cqe));
      int res = cqe->res;
      io_uring_cqe_seen(&ring_, cqe);
      --in_flight_;
      if (res == -EAGAIN || res == -EINTR) {
        submit(*r);
        resubmit = true;
      } else if (res < 0) {
        r->error = -res;
        r->complete = true;
      } else if (!account(*r, res)) {
        submit(*r);
        resubmit = true;
      }
      rc = io_uring_peek_cqe(&ring_, &cqe);
    }
    if (rc < 0 && rc != -EAGAIN && rc != -EINTR) return Status::from_errno("io_uring_wait_cqe", -rc);
    if (resubmit) {
      rc = io_uring_submit(&ring_);
      if (rc < 0) return Status::from_errno("io_uring_submit", -rc);
    }
    return {};
  }

  io_uring ring_;
  bool fixed_ = false;
  bool nowait_ = true;  // buffered reads: try the page cache on the caller's thread first
  unsigned in_flight_ = 0;
  std::deque<Read> queue_;  // issue order; deque keeps addresses stable at both ends
};

// A reader whose chunks are shown to ReadOptions::on_chunk as they are returned.
class TappedChunkReader final : public ChunkReader {
 public:
  TappedChunkReader(std::unique_ptr<ChunkReader> inner, std::function<void(const Chunk&)> tap)
      : inner_(std::move(inner)), tap_(std::move(tap)) {}
  Result<bool> next(Chunk& out) override {
    Result<bool> got = inner_->next(out);
    if (got.ok() && got.value()) tap_(out);
    return got;
  }
  void skip_rest_of_file(uint32_t file) override { inner_->skip_rest_of_file(file); }
  const char* engine_name() const override { return inner_->engine_name(); }
  uint64_t file_size(uint32_t file) const override { return inner_->file_size(file); }
  size_t file_count() const override { return inner_->file_count(); }
  const std::string& path(uint32_t file) const override { return inner_->path(file); }
  size_t buffer_bytes() const override { return inner_->buffer_bytes(); }

 private:
  std::unique_ptr<ChunkReader> inner_;
  std::function<void(const Chunk&)> tap_;
};

Result<std::unique_ptr<ChunkReader>> open_engine(std::vector<std::string> paths, const ReadOptions& options) {
  ReadOptions o = options;
  if (o.queue_depth == 0 || o.queue_depth > 4096) {
    return Status::invalid_argument("queue depth must be 1..4096, got " + std::to_string(o.queue_depth));
  }
  if (o.chunk_bytes == 0) o.chunk_bytes = default_chunk_bytes(o.direct);
  if (o.chunk_bytes % kAlign != 0) {
    return Status::invalid_argument("chunk size must be a multiple of 4096, got " + std::to_string(o.chunk_bytes));
  }
  std::vector<File> files;
  for (std::string& p : paths) {
    struct stat st;
    if (::stat(p.c_str(), &st) != 0) return Status::from_errno("stat " + p, errno);
    if (!S_ISREG(st.st_mode)) return Status::invalid_argument(p + ": not a regular file");
    files.push_back(File{std::move(p), static_cast<uint64_t>(st.st_size), -1});
  }
  if (o.engine != IoEngine::kPread) {
    io_uring ring;
    int rc = g_uring_setup_error != 0 ? -g_uring_setup_error : io_uring_queue_init(o.queue_depth, &ring, 0);
    if (rc == 0) return std::unique_ptr<ChunkReader>(new UringChunkReader(std::move(files), o, ring));
    if (o.engine == IoEngine::kUring) return Status::from_errno("io_uring_queue_init", -rc);
    notice_once(o, "uring", std::string("io_uring is not available (") + std::strerror(-rc) + "); reading with pread");
  }
  return std::unique_ptr<ChunkReader>(new PreadChunkReader(std::move(files), o));
}

}  // namespace

namespace testing {
void set_uring_setup_error(int err) { g_uring_setup_error = err; }
}  // namespace testing

Result<std::unique_ptr<ChunkReader>> open_chunk_reader(std::vector<std::string> paths, const ReadOptions& options) {
  Result<std::unique_ptr<ChunkReader>> r = open_engine(std::move(paths), options);
  if (!r.ok() || !options.on_chunk) return r;
  return std::unique_ptr<ChunkReader>(new TappedChunkReader(std::move(r).value(), options.on_chunk));
}

}  // namespace walcut
