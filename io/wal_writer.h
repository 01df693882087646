// WalWriter: appends records to one node's WAL from many threads.
//
// Group commit: callers queue their records; one of them (the leader)
// packs every queued record into blocks, writes them with one pwrite and,
// under SyncPolicy::kEveryCommit, one fdatasync, then wakes the others.
// With fill_blocks and no sync to do (kNone, kInterval), the last block
// stays open for the next groups until it holds block_bytes: blocks come
// out that large whatever the commit rate, and records wait in memory
// until their block is written (full, sync(), the interval, rollover or
// close).
// Segments are preallocated to a fixed size and created complete (temporary
// name, header, fsync, rename), so a segment file never has a bad header.
// A block holds whole records and validates only when fully written, so the
// log never holds a valid block with half a record.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "io/block.h"
#include "io/block_reader.h"
#include "io/coding.h"
#include "io/records.h"
#include "io/status.h"
#include "io/wal_format.h"

namespace walcut {

enum class SyncPolicy {
  kNone,         // fdatasync only at segment rollover, sync() and close()
  kEveryCommit,  // fdatasync before an append returns (per group, not per record)
  kInterval,     // fdatasync every sync_interval_ms from a background thread
};
const char* sync_policy_name(SyncPolicy p);

struct WriterOptions {
  std::string dir;                         // the node's wal/ directory; created if missing
  uint64_t cluster_id = 0;
  uint16_t node_index = 0;
  uint64_t segment_bytes = 64ull << 20;    // a multiple of 4096, at least 64 KiB
  uint32_t block_bytes = 64u << 10;        // raw payload limit of a block; bigger records get their own
  Codec codec = Codec::kNone;
  SyncPolicy sync = SyncPolicy::kEveryCommit;
  uint32_t sync_interval_ms = 100;
  uint64_t group_bytes_max = 8ull << 20;   // raw bytes one group commit takes at most
  // Off (Ignite's LOG_ONLY): every append reaches the kernel before it
  // returns, so a crash of the process loses nothing acknowledged, and a
  // lone committer writes one block per append. On (Ignite's BACKGROUND):
  // under kNone and kInterval the last block stays open until it holds
  // block_bytes, or the interval, sync(), rollover or close writes it;
  // what waits in it is lost if the process dies. Blocks come out
  // block_bytes large whatever the commit rate, which is what replay
  // wants (docs/wal-format.md, "The writer"). No effect under kEveryCommit.
  bool fill_blocks = false;
  uint64_t first_segment_index = 0;        // the index of a new WAL's first segment
};

// A record to append: its type and payload. The payload is read, not kept.
struct RecordRef {
  RecordType type;
  ByteSpan payload;
};

class WalWriter {
 public:
  // Opens the WAL in options.dir, creating it if empty. An existing WAL is
  // continued after its last valid block: a torn tail is zeroed first, and
  // open_end() reports what was found. Fails on a WAL of another identity.
  static Result<std::unique_ptr<WalWriter>> open(const WriterOptions& options);
  ~WalWriter();  // close(), ignoring its status

  // Appends `records` contiguously, in order, and returns their pointers
  // once written (and synced, under kEveryCommit). Thread-safe; appends of
  // one thread are logged in call order. After an I/O error every call
  // fails: the state of the file is unknown.
  Result<std::vector<WalPointer>> append(std::span<const RecordRef> records);
  Result<WalPointer> append(RecordType type, ByteSpan payload);
  Result<WalPointer> append(const RecordPayload& payload);

  // Closes the current segment with SEGMENT_END, syncs it, and starts the
  // next one. Returns the pointer the next record will get.
  Result<WalPointer> rollover();
  // Appends `payload` and rolls the segment over in the same group, so no
  // other record lands between them. Returns the record's pointer.
  Result<WalPointer> append_then_rollover(const RecordPayload& payload);
  // Makes everything appended so far durable.
  Status sync();
  // Syncs and closes; later calls fail.
  Status close();
  // The process died: closes the file without writing or syncing anything
  // more (what waits in an open block is lost, as a crash loses it); later
  // calls fail.
  void abandon();

  // A pointer after every record appended so far and at or before the
  // next one's (records still queued for the next group are not counted).
  WalPointer next_pointer();
  // Every byte of the WAL before this point (a segment and a logical
  // offset in it) is durable: synced by this writer, or found on disk by
  // open(). It never moves back, and stays readable after close().
  WalPointer durable_end();

  // How the existing log ended when open() found it (clean or torn tail).
  const LogEnd& open_end() const { return open_end_; }
  bool created() const { return created_; }
  const WriterOptions& options() const { return options_; }
  // The path of segment `index`.
  std::string segment_path(uint64_t index) const;

 private:
  struct Request;
  explicit WalWriter(const WriterOptions& options);
  Status open_existing(const std::vector<std::string>& segments);
  Status create_segment(uint64_t index, uint64_t prev_index, uint32_t prev_crc);
  Result<std::vector<WalPointer>> submit(Request& r);
  Status write_group(std::vector<Request*>& group);
  Result<WalPointer> make_room(uint64_t n);
  Status flush_block();
  Status write_out();
  Status roll_segment();
  Status sync_locked();
  void sync_loop();

  WriterOptions options_;
  bool created_ = false;
  LogEnd open_end_;

  // The queue of callers; the front one leads.
  std::mutex queue_mu_;
  std::deque<Request*> queue_;

  // Segment state, touched only with io_mu_ held (by the leader or the syncer).
  std::mutex io_mu_;
  Status broken_;            // sticky: the first write or sync error
  int fd_ = -1;
  std::string path_;
  uint64_t segment_index_ = 0;
  uint64_t segment_bytes_ = 0;
  uint64_t file_off_ = 0;    // physical offset of the next block
  uint64_t logical_ = 0;     // logical offset of the next block header
  uint64_t sync_start_ = 0;  // logical offset of the first unsynced byte
  Bytes out_;                // blocks placed but not yet written
  uint64_t out_off_ = 0;     // file offset of out_[0]
  BlockBuilder builder_;     // records of the block being packed, not yet written

  std::thread syncer_;
  std::mutex sync_mu_;
  std::condition_variable sync_cv_;
  bool stopping_ = false;
  bool closed_ = false;
};

}  // namespace walcut
