#include "io/wal_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <new>

#include "io/block.h"
#include "io/fault.h"
#include "io/file_util.h"

namespace walcut {

const char* sync_policy_name(SyncPolicy p) {
  switch (p) {
    case SyncPolicy::kNone: return "none";
    case SyncPolicy::kEveryCommit: return "commit";
    case SyncPolicy::kInterval: return "interval";
  }
  return "?";
}

namespace {
// Room every segment keeps for its SEGMENT_END block.
constexpr uint64_t kSegmentEndBlockBytes = kBlockHeaderBytes + kRecordHeaderBytes;
}  // namespace

struct WalWriter::Request {
  std::span<const RecordRef> records;
  bool rollover = false;
  bool sync = false;
  bool done = false;
  Status status;
  std::vector<WalPointer> pointers;
  std::condition_variable cv;

  uint64_t raw_bytes() const {
    uint64_t n = 0;
    for (const RecordRef& r : records) n += kRecordHeaderBytes + r.payload.size();
    return n;
  }
};

WalWriter::WalWriter(const WriterOptions& options) : options_(options) {}

WalWriter::~WalWriter() { (void)close(); }

std::string WalWriter::segment_path(uint64_t index) const {
  return (std::filesystem::path(options_.dir) / segment_file_name(index)).string();
}

Result<std::unique_ptr<WalWriter>> WalWriter::open(const WriterOptions& o) {
  if (o.segment_bytes % kSegmentAlignBytes != 0 || o.segment_bytes < (64u << 10)) {
    return Status::invalid_argument("segment size must be a multiple of 4096 and at least 64 KiB, got " +
                                    std::to_string(o.segment_bytes));
  }
  if (o.block_bytes == 0 || o.block_bytes > kBlockRawBytesMax) {
    return Status::invalid_argument("block size must be 1.." + std::to_string(kBlockRawBytesMax) + " bytes, got " +
                                    std::to_string(o.block_bytes));
  }
  if (o.sync == SyncPolicy::kInterval && o.sync_interval_ms == 0) {
    return Status::invalid_argument("sync interval must be at least 1 ms");
  }
  std::error_code ec;
  WALCUT_RETURN_IF_ERROR(make_directories(o.dir));
  // A segment still under its temporary name was never published.
  Result<std::vector<DirEntry>> entries = list_directory(o.dir);
  if (!entries.ok()) return entries.status();
  for (const DirEntry& entry : entries.value()) {
    const std::string& name = entry.path;
    if (name.size() > 4 && name.ends_with(".tmp") && parse_segment_file_name(name.substr(0, name.size() - 4))) {
      std::filesystem::remove(o.dir + "/" + name, ec);
    }
  }
  Result<std::vector<std::string>> segments = list_segment_files(o.dir);
  if (!segments.ok()) return segments.status();

  std::unique_ptr<WalWriter> w(new WalWriter(o));
  if (segments->empty()) {
    w->created_ = true;
    WALCUT_RETURN_IF_ERROR(w->create_segment(o.first_segment_index, SegmentHeader::kNoPrevious, 0));
  } else {
    WALCUT_RETURN_IF_ERROR(w->open_existing(segments.value()));
  }
  if (o.sync == SyncPolicy::kInterval) w->syncer_ = std::thread([p = w.get()] { p->sync_loop(); });
  return w;
}

// Continues the last segment after its last valid block.
Status WalWriter::open_existing(const std::vector<std::string>& segments) {
  BlockReaderOptions ro;
  ro.io.engine = IoEngine::kPread;
  ro.mode = TailMode::kTolerateTornTail;
  ro.cluster_id = options_.cluster_id;
  ro.node_index = options_.node_index;
  Result<std::unique_ptr<BlockReader>> reader = BlockReader::open({segments.back()}, ro);
  if (!reader.ok()) return reader.status();
  Block b;
  for (;;) {
    Result<bool> more = (*reader)->next(b);
    if (!more.ok()) return more.status();
    if (!more.value()) break;
  }
  open_end_ = (*reader)->end();
  const SegmentHeader header = (*reader)->segment_headers().front();
  if (open_end_.segment_end) {
    return create_segment(header.segment_index + 1, header.segment_index, open_end_.last_block_crc);
  }
  path_ = segments.back();
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd_ < 0) return Status::from_errno("open " + path_, errno);
  segment_index_ = header.segment_index;
  segment_bytes_ = header.segment_bytes;
  file_off_ = out_off_ = open_end_.file_offset;
  logical_ = open_end_.next.offset - kBlockHeaderBytes;
  if (open_end_.torn) {
    // Zero what the crash left behind, so the next reader sees a clean end.
    Bytes zeros(std::min<uint64_t>(open_end_.bytes_dropped, 1 << 20));
    for (uint64_t done = 0; done < open_end_.bytes_dropped; done += zeros.size()) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(zeros.size(), open_end_.bytes_dropped - done));
      WALCUT_RETURN_IF_ERROR(pwrite_all(fd_, {zeros.data(), n}, file_off_ + done, path_));
    }
    int rc = ::posix_fallocate(fd_, 0, static_cast<off_t>(segment_bytes_));  // restores a truncated file
    if (rc != 0) return Status::from_errno("fallocate " + path_, rc);
  }
  WALCUT_RETURN_IF_ERROR(sync_file(fd_, path_));
  sync_start_ = logical_;
  return {};
}

// Creates a segment complete under a temporary name, then publishes it.
Status WalWriter::create_segment(uint64_t index, uint64_t prev_index, uint32_t prev_crc) {
  std::string path = segment_path(index);
  std::string tmp = path + ".tmp";
  Result<int> created = create_file(tmp, O_TRUNC | O_WRONLY);
  if (!created.ok()) return created.status();
  const int fd = created.value();
  auto fail = [&](Status s) {
    ::close(fd);
    ::unlink(tmp.c_str());
    return s;
  };
  int rc = ::posix_fallocate(fd, 0, static_cast<off_t>(options_.segment_bytes));
  if (rc != 0) return fail(Status::from_errno("fallocate " + tmp, rc));
  SegmentHeader h;
  h.cluster_id = options_.cluster_id;
  h.node_index = options_.node_index;
  h.codec = options_.codec;
  h.segment_index = index;
  h.segment_bytes = options_.segment_bytes;
  h.prev_segment_index = prev_index;
  h.prev_last_block_crc = prev_crc;
  std::byte bytes[kSegmentHeaderBytes];
  h.encode(bytes);
  Status s = pwrite_all(fd, {bytes, kSegmentHeaderBytes}, 0, tmp);
  if (s.ok()) s = sync_file(fd, tmp);
  fault::point("wal.create_segment");  // the new segment exists only under its temporary name
  if (s.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) s = Status::from_errno("rename " + tmp, errno);
  if (!s.ok()) return fail(s);
  WALCUT_RETURN_IF_ERROR(sync_dir(options_.dir));
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
  path_ = path;
  segment_index_ = index;
  segment_bytes_ = options_.segment_bytes;
  file_off_ = out_off_ = kSegmentHeaderBytes;
  logical_ = kSegmentHeaderBytes;
  sync_start_ = kSegmentHeaderBytes;
  return {};
}

Result<std::vector<WalPointer>> WalWriter::append(std::span<const RecordRef> records) {
  for (const RecordRef& r : records) {
    uint64_t need = kSegmentHeaderBytes + kBlockHeaderBytes + kRecordHeaderBytes + r.payload.size() + kSegmentEndBlockBytes;
    if (kRecordHeaderBytes + r.payload.size() > kBlockRawBytesMax || need > options_.segment_bytes) {
      return Status::invalid_argument("a " + std::to_string(r.payload.size()) + "-byte " + record_type_name(r.type) +
                                      " record does not fit in a " + std::to_string(options_.segment_bytes) +
                                      "-byte segment");
    }
    if (r.type == RecordType::kSegmentEnd) return Status::invalid_argument("SEGMENT_END is written by rollover()");
  }
  Request req;
  req.records = records;
  return submit(req);
}

Result<WalPointer> WalWriter::append(RecordType type, ByteSpan payload) {
  RecordRef r{type, payload};
  Result<std::vector<WalPointer>> p = append(std::span<const RecordRef>(&r, 1));
  if (!p.ok()) return p.status();
  return p->front();
}

Result<WalPointer> WalWriter::append(const RecordPayload& payload) {
  Bytes bytes = encode_payload(payload);
  return append(record_type_of(payload), bytes);
}

Result<WalPointer> WalWriter::rollover() {
  Request req;
  req.rollover = true;
  Result<std::vector<WalPointer>> p = submit(req);
  if (!p.ok()) return p.status();
  return p->front();
}

Result<WalPointer> WalWriter::append_then_rollover(const RecordPayload& payload) {
  Bytes bytes = encode_payload(payload);
  RecordRef r{record_type_of(payload), bytes};
  Request req;
  req.records = std::span<const RecordRef>(&r, 1);
  req.rollover = true;
  Result<std::vector<WalPointer>> p = submit(req);
  if (!p.ok()) return p.status();
  return p->front();
}

Status WalWriter::sync() {
  Request req;
  req.sync = true;
  return submit(req).status();
}

// Queues `r`; the caller at the front of the queue writes for everyone queued.
Result<std::vector<WalPointer>> WalWriter::submit(Request& r) {
  std::unique_lock<std::mutex> lock(queue_mu_);
  queue_.push_back(&r);
  while (!r.done && queue_.front() != &r) r.cv.wait(lock);
  if (!r.done) {
    std::vector<Request*> group;
    uint64_t bytes = 0;
    for (Request* q : queue_) {
      uint64_t n = q->raw_bytes();
      if (!group.empty() && bytes + n > options_.group_bytes_max) break;
      group.push_back(q);
      bytes += n;
    }
    lock.unlock();
    Status s;
    {
      std::lock_guard<std::mutex> io(io_mu_);
      s = write_group(group);
    }
    lock.lock();
    for (Request* q : group) {
      assert(queue_.front() == q);
      queue_.pop_front();
      q->status = s;
      q->done = true;
      if (q != &r) q->cv.notify_one();
    }
    if (!queue_.empty()) queue_.front()->cv.notify_one();
  }
  if (!r.status.ok()) return r.status;
  return std::move(r.pointers);
}

Status WalWriter::write_group(std::vector<Request*>& group) {
  if (!broken_.ok()) return broken_;
  if (closed_) return Status::invalid_argument("WAL writer for " + options_.dir + " is closed");
  bool want_sync = options_.sync == SyncPolicy::kEveryCommit;
  Status s;
  for (Request* q : group) {
    if (q->rollover && q->records.empty()) {
      s = flush_block();
      if (s.ok()) s = roll_segment();
      if (!s.ok()) break;
      q->pointers = {WalPointer{segment_index_, logical_ + kBlockHeaderBytes}};
      continue;
    }
    want_sync = want_sync || q->sync;
    q->pointers.resize(q->records.size());
    for (size_t i = 0; i < q->records.size() && s.ok(); ++i) {
      const RecordRef& rec = q->records[i];
      Result<WalPointer> at = make_room(kRecordHeaderBytes + rec.payload.size());
      if (!at.ok()) {
        s = at.status();
        break;
      }
      q->pointers[i] = at.value();
      builder_.add(rec.type, rec.payload);
    }
    if (s.ok() && q->rollover) {  // records first, then the rollover, in this one group
      s = flush_block();
      if (s.ok()) s = roll_segment();
    }
    if (!s.ok()) break;
  }
  // With fill_blocks and no sync to do, the block being packed stays open
  // for the next groups, up to block_bytes (docs/wal-format.md, "The writer").
  if (s.ok() && (want_sync || !options_.fill_blocks)) s = flush_block();
  if (s.ok()) s = write_out();
  if (s.ok() && want_sync) s = sync_locked();
  if (!s.ok()) broken_ = s;
  return s;
}

// Closes the block being packed when a record of `n` raw bytes would take
// it past block_bytes, and rolls the segment over when the block could not
// fit even stored uncompressed (never larger than raw). Returns the
// record's pointer in the block it will join.
Result<WalPointer> WalWriter::make_room(uint64_t n) {
  if (!builder_.empty() && builder_.raw_bytes() + n > options_.block_bytes) WALCUT_RETURN_IF_ERROR(flush_block());
  auto fits = [&] { return file_off_ + kBlockHeaderBytes + builder_.raw_bytes() + n + kSegmentEndBlockBytes <= segment_bytes_; };
  if (!fits()) {
    WALCUT_RETURN_IF_ERROR(flush_block());
    WALCUT_RETURN_IF_ERROR(write_out());
    WALCUT_RETURN_IF_ERROR(roll_segment());
    assert(fits());
  }
  return WalPointer{segment_index_, logical_ + kBlockHeaderBytes + builder_.raw_bytes()};
}

// Seals the block being packed and places it: make_room() saw that it fits.
Status WalWriter::flush_block() {
  if (builder_.empty()) return {};
  SealedBlock b = seal_block(builder_, options_.codec);
  assert(file_off_ + b.stored_bytes_total() + kSegmentEndBlockBytes <= segment_bytes_);
  WalPointer first{segment_index_, logical_ + kBlockHeaderBytes};
  place_block(b, first, sync_start_, out_);
  file_off_ += b.stored_bytes_total();
  logical_ = first.offset + b.raw_bytes;
  builder_.clear();
  return {};
}

Status WalWriter::write_out() {
  if (out_.empty()) return {};
  WALCUT_RETURN_IF_ERROR(pwrite_all(fd_, out_, out_off_, path_));
  out_off_ += out_.size();
  out_.clear();
  return {};
}

// Ends the segment with a SEGMENT_END block, syncs it, and starts the next
// segment linked to that block's CRC.
Status WalWriter::roll_segment() {
  BlockBuilder end;
  end.add(RecordType::kSegmentEnd, {});
  SealedBlock b = seal_block(end, Codec::kNone);
  size_t at = out_.size();
  place_block(b, WalPointer{segment_index_, logical_ + kBlockHeaderBytes}, sync_start_, out_);
  uint32_t crc = load_u32(out_.data() + at + 4);
  WALCUT_RETURN_IF_ERROR(write_out());
  WALCUT_RETURN_IF_ERROR(sync_file(fd_, path_));
  fault::point("wal.rollover");  // SEGMENT_END synced, next segment not created
  return create_segment(segment_index_ + 1, segment_index_, crc);
}

Status WalWriter::sync_locked() {
  assert(out_.empty());
  WALCUT_RETURN_IF_ERROR(sync_file(fd_, path_));
  sync_start_ = logical_;
  return {};
}

void WalWriter::sync_loop() {
  std::unique_lock<std::mutex> lock(sync_mu_);
  while (!stopping_) {
    sync_cv_.wait_for(lock, std::chrono::milliseconds(options_.sync_interval_ms));
    if (stopping_) break;
    lock.unlock();
    {
      std::lock_guard<std::mutex> io(io_mu_);
      if (broken_.ok() && !closed_) {
        try {  // an exception leaving this thread would end the process
          if (fault::allocation_fails("wal.sync")) throw std::bad_alloc();
          Status s = flush_block();
          if (s.ok()) s = write_out();
          if (s.ok()) s = sync_locked();
          if (!s.ok()) broken_ = s;
        } catch (...) {  // out of memory; a message this short allocates nothing
          broken_ = Status::io_error("out of memory");
        }
      }
    }
    lock.lock();
  }
}

WalPointer WalWriter::next_pointer() {
  std::lock_guard<std::mutex> io(io_mu_);
  return WalPointer{segment_index_, logical_ + kBlockHeaderBytes + builder_.raw_bytes()};
}

WalPointer WalWriter::durable_end() {
  std::lock_guard<std::mutex> io(io_mu_);
  return WalPointer{segment_index_, sync_start_};
}

Status WalWriter::close() {
  {
    std::lock_guard<std::mutex> lock(sync_mu_);
    stopping_ = true;
  }
  sync_cv_.notify_all();
  if (syncer_.joinable()) syncer_.join();
  std::lock_guard<std::mutex> io(io_mu_);
  if (closed_) return {};
  closed_ = true;
  Status s = broken_;
  if (s.ok() && fd_ >= 0) s = flush_block();
  if (s.ok() && fd_ >= 0) s = write_out();
  if (s.ok() && fd_ >= 0) s = sync_file(fd_, path_);
  if (s.ok() && fd_ >= 0) sync_start_ = logical_;
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  return s;
}

void WalWriter::abandon() {
  {
    std::lock_guard<std::mutex> lock(sync_mu_);
    stopping_ = true;
  }
  sync_cv_.notify_all();
  if (syncer_.joinable()) syncer_.join();
  std::lock_guard<std::mutex> io(io_mu_);
  closed_ = true;
  if (broken_.ok()) broken_ = Status::io_error(options_.dir + ": the WAL writer's process died");
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

}  // namespace walcut
