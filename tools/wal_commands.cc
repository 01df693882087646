#include "tools/wal_commands.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <map>
#include <random>
#include <thread>
#include <tuple>

#include "io/block.h"
#include "io/block_reader.h"
#include "io/record_reader.h"
#include "io/records.h"
#include "io/wal_writer.h"
#include "tools/cli_util.h"

namespace walcut::cli {
namespace {

using json = nlohmann::json;

std::string hex(ByteSpan b) {
  static const char* kHex = "0123456789abcdef";
  std::string s;
  s.reserve(b.size() * 2);
  for (std::byte x : b) {
    s += kHex[static_cast<uint8_t>(x) >> 4];
    s += kHex[static_cast<uint8_t>(x) & 15];
  }
  return s;
}

json versions_json(const std::vector<Version>& vs) {
  json a = json::array();
  for (const Version& v : vs) a.push_back(v.to_string());
  return a;
}

struct PayloadJson {
  json& j;
  void operator()(const DataRecord& r) const {
    json entries = json::array();
    for (const DataEntry& e : r.entries) {
      entries.push_back({{"group", e.group_id},
                         {"partition", e.partition},
                         {"op", entry_op_name(e.op)},
                         {"version", e.write_version.to_string()},
                         {"xid", e.near_xid.to_string()},
                         {"key", hex(e.key)},
                         {"value", e.op == EntryOp::kDelete ? json(nullptr) : json(hex(e.value))}});
    }
    j["entries"] = std::move(entries);
  }
  void operator()(const TxRecord& r) const {
    j["state"] = tx_state_name(r.state);
    j["xid"] = r.near_xid.to_string();
    j["cut_id"] = r.cut_id;
    json parts = json::array();
    for (const TxParticipant& p : r.participants) parts.push_back({{"primary", p.primary}, {"backups", p.backups}});
    j["participants"] = std::move(parts);
    if (r.has_writes) j["writes"] = r.writes.size() >= 4 ? load_u32(r.writes.data()) : 0;
    if (r.again) j["again"] = true;
  }
  void operator()(const CheckpointRecord& r) const { j["checkpoint_id"] = r.checkpoint_id; }
  void operator()(const ClusterSnapshotRecord& r) const { j["name"] = r.name; }
  void operator()(const IncSnapshotStartRecord& r) const { j["cut_id"] = r.cut_id; }
  void operator()(const IncSnapshotFinishRecord& r) const {
    j["cut_id"] = r.cut_id;
    j["included"] = versions_json(r.included);
    j["excluded"] = versions_json(r.excluded);
  }
  void operator()(const SegmentEndRecord&) const {}
};

// Reads every block of `paths` and calls fn(block, record) for each record.
// Returns the reader (for its end and counters) and the first error.
struct Scan {
  std::unique_ptr<BlockReader> reader;
  Status status;
  uint64_t stored_payload_bytes = 0;  // block payloads as stored
  uint64_t raw_payload_bytes = 0;     // block payloads uncompressed
};

Scan scan_records(const std::vector<std::string>& paths, const BlockReaderOptions& options,
                  const std::function<Status(const Block&, const RecordView&)>& fn) {
  Scan scan;
  Result<std::unique_ptr<BlockReader>> reader = BlockReader::open(paths, options);
  if (!reader.ok()) {
    scan.status = reader.status();
    return scan;
  }
  scan.reader = std::move(reader).value();
  scan.status = for_each_record(*scan.reader, fn, [&](const Block& b) {
    scan.stored_payload_bytes += b.stored.size();
    scan.raw_payload_bytes += b.header.raw_bytes;
  });
  return scan;
}

json end_json(const BlockReader& reader) {
  const LogEnd& e = reader.end();
  return {{"torn", e.torn},
          {"file", reader.path(e.file)},
          {"offset", e.file_offset},
          {"bytes_dropped", e.bytes_dropped},
          {"reason", e.reason},
          {"next_pointer", e.next.to_string()}};
}

void print_end(const BlockReader& reader) {
  const LogEnd& e = reader.end();
  if (e.torn) {
    std::fprintf(stderr, "walcut: torn tail in %s at offset %llu: %s; %llu bytes dropped\n", reader.path(e.file).c_str(),
                 static_cast<unsigned long long>(e.file_offset), e.reason.c_str(),
                 static_cast<unsigned long long>(e.bytes_dropped));
  }
}

struct DumpArgs {
  std::vector<std::string> segments;
  std::vector<std::string> types;
  std::string from, to;  // WAL pointers, as printed
  uint64_t limit = 0;    // 0: no limit
  std::string xid;
  std::optional<uint32_t> group;
  std::optional<uint16_t> partition;
  bool json = false;
  ReaderFlags reader;
};

// "SEGMENT:OFFSET" in decimal, as dump prints pointers (leading zeros optional).
std::optional<WalPointer> parse_pointer(const std::string& text) {
  const size_t colon = text.find(':');
  if (colon == std::string::npos) return std::nullopt;
  std::optional<uint64_t> segment = parse_decimal(text.substr(0, colon));
  std::optional<uint64_t> offset = parse_decimal(text.substr(colon + 1));
  if (!segment || !offset) return std::nullopt;
  return WalPointer{*segment, *offset};
}

// "TOPOLOGY.ORDER.NODE_ORDER", as dump prints versions.
std::optional<Version> parse_version(const std::string& text) {
  const size_t a = text.find('.'), b = a == std::string::npos ? a : text.find('.', a + 1);
  if (b == std::string::npos) return std::nullopt;
  std::optional<uint64_t> topology = parse_decimal(text.substr(0, a));
  std::optional<uint64_t> order = parse_decimal(text.substr(a + 1, b - a - 1));
  std::optional<uint64_t> node_order = parse_decimal(text.substr(b + 1));
  if (!topology || !order || !node_order || *topology > UINT32_MAX || *node_order > UINT32_MAX) return std::nullopt;
  return Version{static_cast<uint32_t>(*topology), static_cast<uint32_t>(*node_order), *order};
}

// Which records dump prints: the flags, parsed. A record is printed when it
// passes every filter given.
struct DumpFilter {
  std::vector<bool> types;  // by RecordType
  std::optional<WalPointer> from, to;
  std::optional<Version> xid;
  std::optional<uint32_t> group;
  std::optional<uint16_t> partition;

  static Result<DumpFilter> parse(const DumpArgs& a);
  bool wants_type(RecordType t) const { return types[static_cast<size_t>(t)]; }
  bool in_range(const WalPointer& p) const { return (!from || p >= *from) && (!to || p < *to); }
  bool wants(const RecordPayload& p) const;
};

Result<DumpFilter> DumpFilter::parse(const DumpArgs& a) {
  DumpFilter f;
  f.types.assign(kRecordTypeMax + 1, a.types.empty());
  for (const std::string& t : a.types) {
    std::string upper = t;
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    std::optional<RecordType> rt = parse_record_type(upper);
    if (!rt) return Status::invalid_argument("--type: unknown record type '" + t + "'");
    f.types[static_cast<size_t>(*rt)] = true;
  }
  for (auto [flag, text, out] : {std::tuple{"--from", &a.from, &f.from}, std::tuple{"--to", &a.to, &f.to}}) {
    if (text->empty()) continue;
    *out = parse_pointer(*text);
    if (!*out) {
      return Status::invalid_argument(std::string(flag) + " " + *text +
                                      ": not a WAL pointer (SEGMENT:OFFSET, as dump prints them)");
    }
  }
  if (!a.xid.empty()) {
    f.xid = parse_version(a.xid);
    if (!f.xid) {
      return Status::invalid_argument("--xid " + a.xid +
                                      ": not a transaction version (TOPOLOGY.ORDER.NODE_ORDER, as dump prints them)");
    }
  }
  f.group = a.group;
  f.partition = a.partition;
  return f;
}

bool DumpFilter::wants(const RecordPayload& p) const {
  if (!xid && !group && !partition) return true;
  if (const auto* d = std::get_if<DataRecord>(&p)) {  // printed whole when one entry matches
    return std::any_of(d->entries.begin(), d->entries.end(), [&](const DataEntry& e) {
      return (!xid || e.near_xid == *xid) && (!group || e.group_id == *group) &&
             (!partition || e.partition == *partition);
    });
  }
  if (group || partition) return false;  // only DATA entries belong to a group and partition
  if (const auto* t = std::get_if<TxRecord>(&p)) return t->near_xid == *xid;
  if (const auto* f = std::get_if<IncSnapshotFinishRecord>(&p)) {
    auto holds = [&](const std::vector<Version>& vs) { return std::find(vs.begin(), vs.end(), *xid) != vs.end(); };
    return holds(f->included) || holds(f->excluded);
  }
  return false;
}

// The segments of `paths` that hold records at or after `from`: those named
// by a segment index below from's are left out unread.
std::vector<std::string> segments_from(const std::vector<std::string>& paths, const std::optional<WalPointer>& from) {
  if (!from) return paths;
  std::vector<std::string> out;
  for (const std::string& p : paths) {
    std::optional<uint64_t> index = parse_segment_file_name(std::filesystem::path(p).filename().string());
    if (!index || *index >= from->segment) out.push_back(p);
  }
  return out.empty() ? paths : out;
}

int run_dump(const DumpArgs& a) {
  Result<BlockReaderOptions> options = a.reader.options();
  if (!options.ok()) return fail(options.status());
  Result<DumpFilter> filter = DumpFilter::parse(a);
  if (!filter.ok()) return fail(filter.status());
  const DumpFilter& f = filter.value();
  Result<std::vector<std::string>> paths = expand_segments(a.segments);
  if (!paths.ok()) return fail(paths.status());
  uint64_t printed = 0;
  const std::vector<std::string> read = segments_from(paths.value(), f.from);
  Scan scan = scan_records(read, options.value(), [&](const Block&, const RecordView& r) -> Status {
    if (f.to && r.pointer >= *f.to) return Status::cancelled("--to");  // pointers only grow: nothing more to print
    if (!f.wants_type(r.type) || !f.in_range(r.pointer)) return {};
    Result<RecordPayload> p = decode_payload(r.type, r.payload);
    if (!p.ok()) return Status::corruption("record " + r.pointer.to_string() + ": " + p.status().message());
    if (!f.wants(p.value())) return {};
    if (a.json) {
      json j{{"pointer", r.pointer.to_string()}, {"type", record_type_name(r.type)}, {"length", r.payload.size()}};
      std::visit(PayloadJson{j}, p.value());
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf("%s %-19s len=%-6zu %s\n", r.pointer.to_string().c_str(), record_type_name(r.type), r.payload.size(),
                  describe_payload(p.value()).c_str());
    }
    if (a.limit > 0 && ++printed == a.limit) return Status::cancelled("--limit");
    return {};
  });
  std::fflush(stdout);
  if (scan.status.code() == StatusCode::kCancelled) return kExitOk;  // stopped at --to or --limit: the rest is unread
  if (!scan.status.ok()) return fail(scan.status);
  print_end(*scan.reader);
  return kExitOk;
}

struct StatsArgs {
  std::vector<std::string> segments;
  bool json = false;
  ReaderFlags reader;
};

int run_stats(const StatsArgs& a) {
  Result<BlockReaderOptions> options = a.reader.options();
  if (!options.ok()) return fail(options.status());
  Result<std::vector<std::string>> paths = expand_segments(a.segments);
  if (!paths.ok()) return fail(paths.status());
  struct PerType {
    uint64_t records = 0, bytes = 0;
  };
  std::map<RecordType, PerType> by_type;
  uint64_t blocks = 0, block_bytes = 0;
  Scan scan = scan_records(paths.value(), options.value(), [&](const Block&, const RecordView& r) -> Status {
    PerType& t = by_type[r.type];
    ++t.records;
    t.bytes += kRecordHeaderBytes + r.payload.size();
    return {};
  });
  if (scan.reader) {
    blocks = scan.reader->counters().blocks;
    block_bytes = scan.reader->counters().block_bytes;
  }
  const double ratio = scan.stored_payload_bytes ? static_cast<double>(scan.raw_payload_bytes) /
                                                       static_cast<double>(scan.stored_payload_bytes)
                                                 : 1.0;
  const char* state = scan.status.code() == StatusCode::kCorruption ? "corrupt"
                      : !scan.status.ok()                           ? "error"
                      : scan.reader->end().torn                     ? "torn tail"
                                                                    : "clean";
  if (a.json) {
    json types = json::object();
    for (const auto& [type, t] : by_type) types[record_type_name(type)] = {{"records", t.records}, {"bytes", t.bytes}};
    json j{{"segments", scan.reader ? scan.reader->counters().segments : 0},
           {"blocks", blocks},
           {"block_bytes", block_bytes},
           {"payload_stored_bytes", scan.stored_payload_bytes},
           {"payload_raw_bytes", scan.raw_payload_bytes},
           {"compression_ratio", ratio},
           {"types", types},
           {"state", state}};
    if (!scan.status.ok()) j["error"] = scan.status.to_string();
    else j["end"] = end_json(*scan.reader);
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("segments      %llu\n", static_cast<unsigned long long>(scan.reader ? scan.reader->counters().segments : 0));
    std::printf("blocks        %llu\n", static_cast<unsigned long long>(blocks));
    std::printf("block bytes   %llu (headers and stored payloads)\n", static_cast<unsigned long long>(block_bytes));
    std::printf("payload bytes %llu stored, %llu uncompressed\n",
                static_cast<unsigned long long>(scan.stored_payload_bytes),
                static_cast<unsigned long long>(scan.raw_payload_bytes));
    std::printf("compression   %.2fx\n", ratio);
    std::printf("%-20s %12s %14s\n", "type", "records", "bytes");
    for (const auto& [type, t] : by_type) {
      std::printf("%-20s %12llu %14llu\n", record_type_name(type), static_cast<unsigned long long>(t.records),
                  static_cast<unsigned long long>(t.bytes));
    }
    std::printf("end           %s", state);
    if (scan.status.ok() && scan.reader->end().torn) {
      const LogEnd& e = scan.reader->end();
      std::printf(" in %s at offset %llu (%s; %llu bytes dropped)", scan.reader->path(e.file).c_str(),
                  static_cast<unsigned long long>(e.file_offset), e.reason.c_str(),
                  static_cast<unsigned long long>(e.bytes_dropped));
    }
    std::printf("\n");
  }
  std::fflush(stdout);
  if (!scan.status.ok()) return fail(scan.status);
  return kExitOk;
}

struct SynthArgs {
  std::string dir;
  uint64_t transactions = 1000;
  uint32_t threads = 4;
  uint32_t entries_per_tx = 4;
  uint32_t value_bytes = 100;
  uint64_t segment_kib = 64 * 1024;
  std::string codec = "none";
  std::string sync = "none";
  uint64_t seed = 1;
  uint64_t cluster_id = 1;
  uint16_t node_index = 0;
};

// Writes transactions as a node would: PREPARED, then DATA and COMMITTED.
int run_synth(const SynthArgs& a) {
  WriterOptions o;
  o.dir = a.dir;
  o.cluster_id = a.cluster_id;
  o.node_index = a.node_index;
  o.segment_bytes = a.segment_kib * 1024;
  o.codec = *parse_codec(a.codec);
  o.sync = a.sync == "commit" ? SyncPolicy::kEveryCommit : a.sync == "interval" ? SyncPolicy::kInterval : SyncPolicy::kNone;
  Result<std::unique_ptr<WalWriter>> w = WalWriter::open(o);
  if (!w.ok()) return fail(w.status());
  std::atomic<uint64_t> next_tx{0};
  std::atomic<bool> failed{false};
  Status first_error;
  std::exception_ptr first_exception;  // what a worker threw (out of memory), thrown again here
  std::mutex error_mu;
  auto write_transactions = [&](uint32_t thread) {
    std::mt19937_64 rng(a.seed * 1000003 + thread);
    for (uint64_t tx = next_tx++; tx < a.transactions && !failed; tx = next_tx++) {
      Version xid{1, static_cast<uint32_t>(a.node_index + 1), tx + 1};
      TxRecord prepared{TxState::kPrepared, xid, 0, {{a.node_index, {static_cast<uint16_t>(a.node_index + 1)}}}};
      TxRecord committed = prepared;
      committed.state = TxState::kCommitted;
      Bytes data;
      std::vector<Bytes> keys(a.entries_per_tx), values(a.entries_per_tx);
      for (uint32_t i = 0; i < a.entries_per_tx; ++i) {
        keys[i].resize(8);
        store_u64(keys[i].data(), rng() % 1000000);
        values[i].resize(a.value_bytes);
        for (auto& byte : values[i]) {  // compressible, like real rows
          byte = std::byte{static_cast<uint8_t>('a' + rng() % 4)};
        }
        DataEntry e;
        e.group_id = 1 + static_cast<uint32_t>(rng() % 3);
        e.partition = static_cast<uint16_t>(rng() % 1024);
        e.op = EntryOp::kUpdate;
        e.write_version = xid;
        e.near_xid = xid;
        e.key = keys[i];
        e.value = values[i];
        append_data_entry(data, e);
      }
      finish_data_payload(data, a.entries_per_tx);
      Bytes p1 = encode_payload(prepared), p2 = encode_payload(committed);
      Result<WalPointer> r = (*w)->append(RecordType::kTx, p1);
      std::array<RecordRef, 2> commit{RecordRef{RecordType::kData, data}, RecordRef{RecordType::kTx, p2}};
      Status s = r.ok() ? (*w)->append(commit).status() : r.status();
      if (s.ok() && tx % 10000 == 9999) s = (*w)->append(CheckpointRecord{tx / 10000 + 1}).status();
      if (!s.ok()) {
        std::lock_guard<std::mutex> lock(error_mu);
        if (!failed.exchange(true)) first_error = s;
      }
    }
  };
  auto worker = [&](uint32_t thread) {
    try {
      write_transactions(thread);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mu);
      if (!failed.exchange(true)) first_exception = std::current_exception();
    }
  };
  {
    std::vector<std::jthread> pool;  // joined when it goes, also when a thread cannot be started
    for (uint32_t t = 0; t < a.threads; ++t) pool.emplace_back(worker, t);
  }
  if (first_exception) std::rethrow_exception(first_exception);
  if (failed) return fail(first_error);
  Status s = (*w)->close();
  if (!s.ok()) return fail(s);
  std::printf("wrote %llu transactions to %s\n", static_cast<unsigned long long>(a.transactions), a.dir.c_str());
  return kExitOk;
}

}  // namespace

void add_wal_commands(CLI::App& app, int& exit_code) {
  CLI::App* wal = app.add_subcommand("wal", "Read and write WAL segments");
  wal->require_subcommand(1);

  auto dump = std::make_shared<DumpArgs>();
  CLI::App* d = wal->add_subcommand("dump", "One line per record: pointer, type, length, payload");
  d->add_option("SEGMENT", dump->segments, "Segment files or wal/ directories, in WAL order")->required();
  d->add_option("--type", dump->types, "Only records of these types (DATA, TX, CHECKPOINT, ...; any case)")
      ->delimiter(',')
      ->allow_extra_args(false);  // a SEGMENT after --type A,B is a segment, not a type
  d->add_option("--from", dump->from, "Only records at or after this WAL pointer (SEGMENT:OFFSET)");
  d->add_option("--to", dump->to, "Only records before this WAL pointer; reading stops there");
  d->add_option("--limit", dump->limit, "Stop after printing this many records")->check(whole_number(1, ~uint64_t{0}));
  d->add_option("--xid", dump->xid,
                "Only the records of this transaction (TOPOLOGY.ORDER.NODE_ORDER): its TX and DATA records, and "
                "the INC_SNAPSHOT_FINISH records whose sets hold it");
  d->add_option("--group", dump->group, "Only DATA records with an entry of this cache group id")
      ->check(whole_number(0, UINT32_MAX));
  d->add_option("--partition", dump->partition, "Only DATA records with an entry in this partition")
      ->check(whole_number(0, UINT16_MAX));
  d->add_flag("--json", dump->json, "One JSON object per line");
  dump->reader.add_to(*d);
  d->callback([dump, &exit_code] { exit_code = run_dump(*dump); });

  auto stats = std::make_shared<StatsArgs>();
  CLI::App* s = wal->add_subcommand("stats", "Records and bytes by type, blocks, compression, how the log ends");
  s->add_option("SEGMENT", stats->segments, "Segment files or wal/ directories, in WAL order")->required();
  s->add_flag("--json", stats->json, "JSON output");
  stats->reader.add_to(*s);
  s->callback([stats, &exit_code] { exit_code = run_stats(*stats); });

  auto synth = std::make_shared<SynthArgs>();
  CLI::App* y = wal->add_subcommand("synth", "Write synthetic transactions into a WAL directory (demo, benchmarks)");
  y->add_option("DIR", synth->dir, "The wal/ directory to write")->required();
  y->add_option("--transactions", synth->transactions, "Transactions to write")
      ->check(whole_number(0, 1000000000000))
      ->capture_default_str();
  y->add_option("--threads", synth->threads, "Writer threads")->check(whole_number(1, 256))->capture_default_str();
  y->add_option("--entries", synth->entries_per_tx, "Entries per transaction")
      ->check(whole_number(1, 100000))
      ->capture_default_str();
  y->add_option("--value-bytes", synth->value_bytes, "Bytes per value")
      ->check(whole_number(0, 1 << 20))
      ->capture_default_str();
  y->add_option("--segment-kib", synth->segment_kib, "Segment size in KiB (multiple of 4)")
      ->check(whole_number(64, 1 << 20))
      ->capture_default_str();
  y->add_option("--codec", synth->codec, "Block codec")->check(CLI::IsMember({"none", "lz4"}))->capture_default_str();
  y->add_option("--sync", synth->sync, "Sync policy")->check(CLI::IsMember({"none", "commit", "interval"}))->capture_default_str();
  y->add_option("--seed", synth->seed, "Seed of the keys and values")
      ->check(whole_number(0, ~uint64_t{0}))
      ->capture_default_str();
  y->add_option("--node-index", synth->node_index, "Node index in the segment headers")
      ->check(whole_number(0, 65535))
      ->capture_default_str();
  add_group_read_flag(*y);
  y->callback([synth, &exit_code] { exit_code = run_synth(*synth); });
}

}  // namespace walcut::cli
