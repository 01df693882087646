// Writes the seed corpus of every harness: small, valid inputs made by the
// library's own writers, one directory per harness under OUT_DIR. The same
// program gives the same bytes, so the committed corpus can be remade:
//   build-fuzz/tests/fuzz/walcut_fuzz_corpus tests/fuzz/corpus
// Inputs that once crashed a parser are committed beside these seeds
// under names starting with "crash-"; this program leaves them alone.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/backup.h"
#include "cut/increment.h"
#include "engine/node_meta.h"
#include "engine/partition_file.h"
#include "engine/snapshot.h"
#include "io/block.h"
#include "io/block_reader.h"
#include "io/file_util.h"
#include "io/records.h"
#include "io/wal_writer.h"
#include "replay/check.h"
#include "tests/testing/temp_dir.h"

using namespace walcut;
namespace fs = std::filesystem;

namespace {

[[noreturn]] void die(const Status& s) {
  std::fprintf(stderr, "walcut_fuzz_corpus: %s\n", s.to_string().c_str());
  std::exit(1);
}

Bytes must(Result<Bytes> r) {
  if (!r.ok()) die(r.status());
  return std::move(r).value();
}

void put(const std::string& dir, const std::string& name, ByteSpan bytes) {
  fs::create_directories(dir);
  Status s = write_file_synced(dir + "/" + name, bytes);
  if (!s.ok()) die(s);
}

Version version(uint64_t order) { return Version{3, 1, order}; }

std::vector<CacheGroup> groups() {
  return {CacheGroup{1, "tx0", CacheMode::kTransactional, 4, 1}, CacheGroup{2, "atomic0", CacheMode::kAtomic, 2, 1}};
}

NodeMeta node_meta() {
  NodeMeta m;
  m.cluster_id = 2;
  m.node_index = 1;
  m.node_id = "node1";
  m.baseline = {"node0", "node1"};
  m.groups = groups();
  m.topology_version = 3;
  m.checkpoint_id = 4;
  m.checkpoint = WalPointer{1, 4160};
  m.wal_keep_from_segment = 1;
  m.last_cut_id = 2;
  return m;
}

EntryMap entries(int n) {
  EntryMap e;
  for (int i = 0; i < n; ++i) e["k0000000" + std::to_string(i)] = StoredValue{std::string(8 + i, 'a' + i), version(10 + i)};
  return e;
}

// Records of every type, as the writer and the harnesses see them.
std::vector<RecordPayload> records() {
  DataRecord data;
  static const std::string kKey = "k00000001", kValue = "abcdabcdabcdabcd";
  data.entries.push_back(DataEntry{1, 3, EntryOp::kUpdate, version(20), version(19), as_bytes(kKey), as_bytes(kValue)});
  data.entries.push_back(DataEntry{1, 2, EntryOp::kDelete, version(21), version(19), as_bytes(kValue), {}});
  data.entries.push_back(DataEntry{2, 1, EntryOp::kCreate, version(22), Version{}, as_bytes(kKey), as_bytes(kKey)});
  TxRecord tx{TxState::kCommitted, version(19), 2, {TxParticipant{0, {1}}, TxParticipant{1, {}}}};
  IncSnapshotFinishRecord finish{2, {version(19), version(23)}, {version(24)}};
  return {data, tx, CheckpointRecord{4}, ClusterSnapshotRecord{"snp"}, IncSnapshotStartRecord{2}, finish,
          SegmentEndRecord{}};
}

// Two segments of one node: records, a rollover, more records.
std::vector<std::string> write_segments(const std::string& dir, Codec codec) {
  WriterOptions o;
  o.dir = dir;
  o.cluster_id = 2;
  o.node_index = 1;
  o.segment_bytes = 64 << 10;
  o.block_bytes = 256;
  o.codec = codec;
  o.sync = SyncPolicy::kNone;
  Result<std::unique_ptr<WalWriter>> w = WalWriter::open(o);
  if (!w.ok()) die(w.status());
  for (int round = 0; round < 2; ++round) {
    for (const RecordPayload& p : records()) {
      if (!std::holds_alternative<SegmentEndRecord>(p) && !(*w)->append(p).ok()) die(Status::io_error("append"));
    }
    if (round == 0 && !(*w)->rollover().ok()) die(Status::io_error("rollover"));
  }
  if (Status s = (*w)->close(); !s.ok()) die(s);
  Result<std::vector<std::string>> paths = list_segment_files(dir);
  if (!paths.ok()) die(paths.status());
  return paths.value();
}

// A file without its trailing zeros: the harness pads it back when asked.
Bytes trimmed(const std::string& path) {
  Bytes b = must(read_file_bytes(path));
  while (!b.empty() && b.back() == std::byte{0}) b.pop_back();
  return b;
}

void segments_and_blocks(const std::string& out, const std::string& tmp) {
  for (Codec codec : {Codec::kNone, Codec::kLz4}) {
    const std::string name = codec_name(codec);
    std::vector<std::string> paths = write_segments(tmp + "/wal-" + name, codec);
    // Control bytes (fuzz_segments.cc): 0x0c pads and fixes checksums, 0x0d
    // also reads strictly, 0x2e reads through io_uring in 8 KiB chunks.
    for (uint8_t control : {0x0c, 0x0d, 0x2e}) {
      Bytes in{std::byte{control}};
      for (size_t i = 0; i < paths.size(); ++i) {
        static const std::string kNextFile = "WCFZNEXT";
        if (i > 0) in.insert(in.end(), as_bytes(kNextFile).begin(), as_bytes(kNextFile).end());
        Bytes f = trimmed(paths[i]);
        in.insert(in.end(), f.begin(), f.end());
      }
      char file[32];
      std::snprintf(file, sizeof file, "%s-%02x", name.c_str(), control);
      put(out + "/segments", file, in);
    }
    // The first segment's blocks, each as header and stored payload.
    Result<std::unique_ptr<BlockReader>> reader = BlockReader::open({paths.front()}, BlockReaderOptions{});
    if (!reader.ok()) die(reader.status());
    Block b;
    for (int i = 0;; ++i) {
      Result<bool> more = (*reader)->next(b);
      if (!more.ok()) die(more.status());
      if (!more.value()) break;
      Bytes block(kBlockHeaderBytes);
      b.header.encode(block.data());
      block.insert(block.end(), b.stored.begin(), b.stored.end());
      put(out + "/block", name + "-" + std::to_string(i), block);
    }
  }
}

void records_corpus(const std::string& out) {
  for (const RecordPayload& p : records()) {
    Bytes in{std::byte{static_cast<uint8_t>(record_type_of(p))}};
    Bytes payload = encode_payload(p);
    in.insert(in.end(), payload.begin(), payload.end());
    put(out + "/records", record_type_name(record_type_of(p)), in);
  }
}

void partition_files(const std::string& out, const std::string& tmp) {
  for (int n : {0, 1, 5}) {
    const std::string path = tmp + "/part-" + std::to_string(n) + ".bin";
    if (Status s = write_partition_file(path, PartitionFileInfo{1, 3, 1}, entries(n)); !s.ok()) die(s);
    put(out + "/partition_file", "entries-" + std::to_string(n), must(read_file_bytes(path)));
  }
}

void metadata(const std::string& out) {
  put(out + "/node_meta", "node1", encode_node_meta(node_meta()));
  SnapshotMeta s;
  s.name = "snp";
  s.cluster_id = 2;
  s.node_index = 1;
  s.node_id = "node1";
  s.baseline = {"node0", "node1"};
  s.groups = groups();
  s.topology_version = 3;
  s.snapshot_pointer = WalPointer{1, 4160};
  s.files = {ManifestEntry{"db/node1/atomic0/part-0.bin", 104, 0x1234}, ManifestEntry{"db/node1/tx0/part-1.bin", 64, 7}};
  put(out + "/snapshot_meta", "node1", encode_snapshot_meta(s));
  IncrementMeta m;
  m.snapshot_name = "snp";
  m.index = 1;
  m.cut_id = 1;
  m.cluster_id = 2;
  m.node_index = 1;
  m.node_id = "node1";
  m.groups = groups();
  m.start = WalPointer{1, 5000};
  m.finish = WalPointer{2, 112};
  m.included_count = 1;
  m.excluded_count = 2;
  m.first_segment = 1;
  m.last_segment = 2;
  m.files = {ManifestEntry{"wal/node1/0000000000000001.wal", 65536, 9}, ManifestEntry{"wal/node1/0000000000000002.wal", 65536, 10}};
  put(out + "/increment_meta", "node1", encode_increment_meta(m));
}

void backup(const std::string& out, const std::string& tmp) {
  BackupMeta meta{node_meta(), WalPointer{2, 300}};
  std::map<std::pair<uint32_t, uint16_t>, std::shared_ptr<const EntryMap>> parts;
  parts[{1, 0}] = std::make_shared<const EntryMap>(entries(2));
  parts[{2, 1}] = std::make_shared<const EntryMap>(entries(0));
  const std::string path = tmp + "/node1.backup";
  if (Status s = write_backup_file(path, meta, parts); !s.ok()) die(s);
  put(out + "/backup", "node1", must(read_file_bytes(path)));
}

void check_maps(const std::string& out) {
  NodeCheck c;
  c.node_index = 1;
  c.node_id = "node1";
  c.increment = 2;
  c.baseline = {"node0", "node1"};
  c.groups = groups();
  c.increments_read = true;
  c.findings = {Finding{"structure", "snp/db/node1/tx0/part-1.bin",
                        "checksum differs from the manifest; block checksum mismatch at offset 24",
                        "snp/db/node1/tx0/part-1.bin", 24},
                Finding{"increment-partition", "tx0 partition 1", "primary node0 differs", "", std::nullopt}};
  c.full[PartitionId{1, 1}] = PartitionHashes{2, 0x0123456789abcdefull, 0xfedcba9876543210ull};
  c.incremental[PartitionId{1, 1}] = PartitionHashes{3, 5, 6};
  c.tx_hash[0] = 0x8000000000000001ull;
  c.tx_count[0] = 4;
  c.files = 3;
  c.segments = 2;
  c.entries = 10;
  c.bytes_read = 4096;
  put(out + "/check_map", "node1", as_bytes(node_check_to_json(c)));
  c.findings.clear();
  c.increment = 0;
  c.increments_read = false;
  c.incremental.clear();
  c.tx_hash.clear();
  c.tx_count.clear();
  put(out + "/check_map", "node1-full", as_bytes(node_check_to_json(c)));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: walcut_fuzz_corpus OUT_DIR\n");
    return 2;
  }
  const std::string out = argv[1];
  testing::TempDir tmp;
  segments_and_blocks(out, tmp.path());
  records_corpus(out);
  partition_files(out, tmp.path());
  metadata(out);
  backup(out, tmp.path());
  check_maps(out);
  return 0;
}
