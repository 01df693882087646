#include "bench/rocksdb_peer.h"

#if WALCUT_BENCH_ROCKSDB

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/version.h>
#include <rocksdb/write_batch.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>

#include "bench/bench_io.h"
#include "io/block.h"
#include "io/block_reader.h"
#include "io/records.h"
#include "replay/restore.h"

namespace walcut::bench {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

Status from_rocksdb(const std::string& what, const rocksdb::Status& s) {
  return Status::io_error(what + ": RocksDB: " + s.ToString());
}

using RecordFn = std::function<Status(uint16_t node_index, const std::vector<DataEntry>& entries)>;

// Every DATA record's entries that a restore applies (the cut filter of
// load_replay_filter, up to each node's FINISH record), node by node in WAL
// order; `fn` is called once per record with at least one such entry.
Status for_each_applied_record(const std::string& snapshot_dir, uint64_t n,
                               const std::vector<std::pair<uint16_t, std::vector<std::string>>>& segments,
                               const RecordFn& fn) {
  std::vector<DataEntry> batch;
  Bytes scratch;
  for (const auto& [node_index, paths] : segments) {
    Result<ReplayFilter> filter = load_replay_filter(snapshot_dir, n, node_index, ReadOptions{});
    if (!filter.ok()) return filter.status();
    BlockReaderOptions ro;
    ro.mode = TailMode::kStrict;
    Result<std::unique_ptr<BlockReader>> reader = BlockReader::open(paths, ro);
    if (!reader.ok()) return reader.status();
    bool finished = false;
    Block b;
    while (!finished) {
      Result<bool> more = (*reader)->next(b);
      if (!more.ok()) return more.status();
      if (!more.value()) break;
      Result<ByteSpan> raw = block_raw_payload(b.header, b.stored, scratch);
      if (!raw.ok()) return raw.status();
      WALCUT_RETURN_IF_ERROR(for_each_record(b.header, raw.value(), [&](const RecordView& rec) -> Status {
        if (finished || rec.pointer >= filter->finish) {
          finished = true;
          return {};
        }
        if (rec.type != RecordType::kData) return {};
        batch.clear();
        WALCUT_RETURN_IF_ERROR(for_each_data_entry(rec.payload, [&](const DataEntry& e) {
          if (filter->decide(rec.pointer, e.near_xid) == ReplayFilter::Verdict::kApply) batch.push_back(e);
        }));
        return batch.empty() ? Status{} : fn(node_index, batch);
      }));
    }
    if (!finished) return Status::corruption(snapshot_dir + ": node " + std::to_string(node_index) +
                                             "'s WAL ends before its FINISH record");
  }
  return {};
}

// Node, group and partition, big-endian, then walcut's key: the copies of
// a key on different nodes stay apart, as in the restored cluster.
std::string rocksdb_key(uint16_t node_index, const DataEntry& e) {
  std::string k(8, '\0');
  k[0] = static_cast<char>(node_index >> 8);
  k[1] = static_cast<char>(node_index);
  for (int i = 0; i < 4; ++i) k[2 + i] = static_cast<char>(e.group_id >> (24 - 8 * i));
  k[6] = static_cast<char>(e.partition >> 8);
  k[7] = static_cast<char>(e.partition);
  k.append(reinterpret_cast<const char*>(e.key.data()), e.key.size());
  return k;
}

void count_files(const std::string& dir, RocksPeerData& d) {
  d.wal_bytes = d.sst_files = 0;
  std::error_code ec;
  for (const fs::directory_entry& f : fs::directory_iterator(dir, ec)) {
    const std::string ext = f.path().extension().string();
    if (ext == ".log") d.wal_bytes += f.file_size(ec);
    if (ext == ".sst") ++d.sst_files;
  }
}

nlohmann::json to_json(const RocksPeerData& d) {
  return {{"batches", d.batches}, {"entries", d.entries},         {"puts", d.puts},
          {"deletes", d.deletes}, {"key_bytes", d.key_bytes},     {"value_bytes", d.value_bytes},
          {"write_s", d.write_s}, {"rocksdb_version", rocksdb_version()}};
}

Status write_crashed_db(const std::string& snapshot_dir, uint64_t n,
                        const std::vector<std::pair<uint16_t, std::vector<std::string>>>& segments, RocksPeerData& d) {
  rocksdb::Options o;
  o.create_if_missing = true;
  o.error_if_exists = true;
  // One memtable for every entry, so nothing is flushed before the crash
  // and the next open replays them all (it runs with the default 64 MiB).
  o.write_buffer_size = 32ull << 30;
  o.arena_block_size = 1 << 20;
  o.max_total_wal_size = 64ull << 30;
  // RocksDB preallocates a WAL file of 1.1x the memtable: 35 GB here, which
  // a disk with less free space refuses (ENOSPC, then an assertion).
  o.allow_fallocate = false;
  o.avoid_flush_during_shutdown = true;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(o, d.crashed_dir, &raw);
  if (!s.ok()) return from_rocksdb("open " + d.crashed_dir, s);
  std::unique_ptr<rocksdb::DB> db(raw);
  rocksdb::WriteOptions wo;  // WAL on, no fsync per write: as walcut's simulated cluster writes
  auto start = Clock::now();
  Status walk = for_each_applied_record(snapshot_dir, n, segments, [&](uint16_t node, const std::vector<DataEntry>& es) {
    rocksdb::WriteBatch batch;
    for (const DataEntry& e : es) {
      const std::string key = rocksdb_key(node, e);
      d.key_bytes += key.size();
      if (e.op == EntryOp::kDelete) {
        batch.Delete(key);
        ++d.deletes;
      } else {
        batch.Put(key, rocksdb::Slice(reinterpret_cast<const char*>(e.value.data()), e.value.size()));
        d.value_bytes += e.value.size();
        ++d.puts;
      }
    }
    ++d.batches;
    rocksdb::Status w = db->Write(wo, &batch);
    return w.ok() ? Status{} : from_rocksdb("write " + d.crashed_dir, w);
  });
  WALCUT_RETURN_IF_ERROR(walk);
  d.entries = d.puts + d.deletes;
  s = db->FlushWAL(true);
  if (!s.ok()) return from_rocksdb("sync the WAL of " + d.crashed_dir, s);
  s = db->Close();
  if (!s.ok()) return from_rocksdb("close " + d.crashed_dir, s);
  d.write_s = since(start);
  return {};
}

}  // namespace

bool rocksdb_peer_built() { return true; }

std::string rocksdb_version() {
  return std::to_string(ROCKSDB_MAJOR) + "." + std::to_string(ROCKSDB_MINOR) + "." + std::to_string(ROCKSDB_PATCH);
}

Result<RocksPeerData> prepare_rocksdb_peer(const std::string& snapshot_dir, uint64_t n,
                                           const std::vector<std::pair<uint16_t, std::vector<std::string>>>& segments,
                                           const std::string& dir) {
  RocksPeerData d;
  d.crashed_dir = dir + "/rocksdb-crashed";
  const std::string marker = dir + "/ROCKSDB_WRITTEN";
  std::ifstream in(marker);
  if (in) {
    try {
      nlohmann::json j = nlohmann::json::parse(in);
      if (j.at("rocksdb_version") == rocksdb_version()) {
        d.batches = j.at("batches");
        d.entries = j.at("entries");
        d.puts = j.at("puts");
        d.deletes = j.at("deletes");
        d.key_bytes = j.at("key_bytes");
        d.value_bytes = j.at("value_bytes");
        d.write_s = j.at("write_s");
        count_files(d.crashed_dir, d);
        return d;
      }
    } catch (const std::exception&) {
      // An unreadable marker: write the DB again.
    }
  }
  std::error_code ec;
  fs::remove(marker, ec);
  fs::remove_all(d.crashed_dir, ec);
  fs::create_directories(dir, ec);
  if (ec) return Status::io_error("create " + dir + ": " + ec.message());
  WALCUT_RETURN_IF_ERROR(write_crashed_db(snapshot_dir, n, segments, d));
  count_files(d.crashed_dir, d);
  std::ofstream out(marker);
  out << to_json(d).dump(2) << "\n";
  if (!out) return Status::io_error("write " + marker);
  return d;
}

Result<RocksRecovery> time_rocksdb_recovery(const RocksPeerData& d, const std::string& work_dir) {
  std::error_code ec;
  fs::remove_all(work_dir, ec);
  fs::copy(d.crashed_dir, work_dir, fs::copy_options::recursive, ec);
  if (ec) return Status::io_error("copy " + d.crashed_dir + " to " + work_dir + ": " + ec.message());
  std::vector<std::string> files;
  for (const fs::directory_entry& f : fs::directory_iterator(work_dir, ec)) files.push_back(f.path().string());
  Result<PlainRead> warmed = read_files(files, false);
  if (!warmed.ok()) return warmed.status();
  rocksdb::Options o;  // the defaults: a 64 MiB memtable, flushed to L0 as recovery fills it
  rocksdb::DB* raw = nullptr;
  auto start = Clock::now();
  rocksdb::Status s = rocksdb::DB::Open(o, work_dir, &raw);
  RocksRecovery r;
  r.open_s = since(start);
  if (!s.ok()) return from_rocksdb("recover " + work_dir, s);
  std::unique_ptr<rocksdb::DB> db(raw);
  s = db->Close();
  if (!s.ok()) return from_rocksdb("close " + work_dir, s);
  db.reset();
  for (const fs::directory_entry& f : fs::directory_iterator(work_dir, ec)) {
    if (f.path().extension() == ".sst") ++r.sst_files_after;
  }
  fs::remove_all(work_dir, ec);
  return r;
}

}  // namespace walcut::bench

#else  // built without RocksDB

namespace walcut::bench {

bool rocksdb_peer_built() { return false; }
std::string rocksdb_version() { return ""; }

Result<RocksPeerData> prepare_rocksdb_peer(const std::string&, uint64_t,
                                           const std::vector<std::pair<uint16_t, std::vector<std::string>>>&,
                                           const std::string&) {
  return Status::not_found("walcut_restore_bench was built without RocksDB (pkg-config rocksdb not found)");
}

Result<RocksRecovery> time_rocksdb_recovery(const RocksPeerData&, const std::string&) {
  return Status::not_found("walcut_restore_bench was built without RocksDB (pkg-config rocksdb not found)");
}

}  // namespace walcut::bench

#endif
