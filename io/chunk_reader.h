// Sequential reads of an ordered list of files in large aligned chunks.
// Two implementations with one output: io_uring (several reads in flight,
// registered buffers) and pread (one read at a time). `open_chunk_reader`
// picks io_uring and falls back to pread when the kernel refuses it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "io/coding.h"
#include "io/status.h"

namespace walcut {

enum class IoEngine { kAuto, kUring, kPread };
const char* io_engine_name(IoEngine e);

struct Chunk;

struct ReadOptions {
  IoEngine engine = IoEngine::kAuto;
  // Open files with O_DIRECT; a filesystem that refuses it is read buffered
  // (said once through `notice`).
  bool direct = false;
  uint32_t queue_depth = 8;  // io_uring reads in flight; at least 1
  // Bytes per read, a multiple of 4096; 0: default_chunk_bytes(direct).
  uint32_t chunk_bytes = 0;
  // Receives one-line notices (io_uring refused, O_DIRECT refused). Default:
  // standard error. Each kind of notice is given once per process.
  std::function<void(const std::string&)> notice;
  // Sees every chunk next() returns, on the thread that called next(),
  // before the caller does: each file's bytes in order from offset 0,
  // up to where reading it stopped (the snapshot check's CRC32C of whole
  // segments, replay/check.cc). Empty: nothing is added to a read.
  std::function<void(const Chunk&)> on_chunk;
};

// The chunk size of ReadOptions::chunk_bytes 0. Buffered, 256 KiB: the
// buffer the kernel copies into is still in the core's cache when the
// blocks in it are checked and decoded (a dry run of `small` took 0.92 of
// its time with 1 MiB, and a restore 0.96). With O_DIRECT, 1 MiB: the
// device is read in large requests (256 KiB took 1.10 of the time).
inline constexpr uint32_t kBufferedChunkBytes = 256 << 10;
inline constexpr uint32_t kDirectChunkBytes = 1 << 20;
inline uint32_t default_chunk_bytes(bool direct) { return direct ? kDirectChunkBytes : kBufferedChunkBytes; }

// A piece of one file. `bytes` stays valid while `owner` (or a copy) lives;
// dropping the last copy returns the buffer to the reader's pool.
struct Chunk {
  uint32_t file = 0;      // index in the list given to open_chunk_reader
  uint64_t offset = 0;    // file offset of bytes[0]; a multiple of chunk_bytes
  ByteSpan bytes;         // chunk_bytes long, shorter only at the end of a file
  std::shared_ptr<const void> owner;
};

// Memory: the pool holds 2 x queue_depth buffers (fewer for small files)
// of chunk_bytes, or of the largest file's size rounded up to 4096 when
// that is less (a file is read whole then: --chunk-kib 1048576 over 4 MiB
// segments held 16 GiB of buffers before); chunks kept by the caller
// beyond that are allocated as needed, and kept for reuse until the
// reader and every chunk it gave are gone.
class ChunkReader {
 public:
  virtual ~ChunkReader() = default;
  // The next chunk in file order, then offset order. Returns false after the
  // last chunk of the last file.
  virtual Result<bool> next(Chunk& out) = 0;
  // Drops the chunks of `file` not yet returned; reading goes on with the
  // next file.
  virtual void skip_rest_of_file(uint32_t file) = 0;
  // "io_uring" or "pread".
  virtual const char* engine_name() const = 0;
  // File sizes, known from open.
  virtual uint64_t file_size(uint32_t file) const = 0;
  virtual size_t file_count() const = 0;
  virtual const std::string& path(uint32_t file) const = 0;
  // Bytes of each read buffer (above).
  virtual size_t buffer_bytes() const = 0;
};

Result<std::unique_ptr<ChunkReader>> open_chunk_reader(std::vector<std::string> paths, const ReadOptions& options);

namespace testing {
// Makes the next io_uring set-ups fail with -err (0 restores normal
// behaviour), as a seccomp filter refusing io_uring_setup would.
void set_uring_setup_error(int err);
}  // namespace testing

}  // namespace walcut
