#include "bench/shapes.h"

#include <algorithm>
#include <cmath>

namespace walcut::bench {
namespace {

constexpr uint64_t kMiB = 1ull << 20;

uint64_t scaled(uint64_t n, double scale) {
  return std::max<uint64_t>(1, static_cast<uint64_t>(std::llround(static_cast<double>(n) * scale)));
}

// Segments of about an eighth of a node's WAL, 1..64 MiB, so a tiny run
// does not read mostly preallocated zeros and a big one has big segments.
uint64_t segment_bytes_for(uint64_t wal_bytes_per_node) {
  return std::clamp<uint64_t>(wal_bytes_per_node / 8 / kMiB, 1, 64) * kMiB;
}

// The scale issue's command: `walcut gen --seed 5 --nodes 2 --groups 2
// --atomic-groups 0 --partitions 1024 --backups 1 --keys 200000 --key-dist
// uniform --value-bytes 100 --txs 1500000 --tx-size 4 --in-flight 64
// --increments 1 --codec none` (0.75 GB of WAL, 3.2 M entries applied,
// 4096 partition files): many small entries, per-entry costs dominate.
sim::Options small(double scale) {
  sim::Options o;
  o.seed = 5;
  o.nodes = 2;
  o.groups = 2;
  o.atomic_groups = 0;
  o.partitions = 1024;
  o.backups = 1;
  o.keys = 200000;
  o.key_dist = sim::KeyDist::kUniform;
  o.value_bytes = 100;
  o.txs = scaled(1500000, scale);
  o.tx_size = 4;
  o.in_flight = 64;
  o.increments = 1;
  return o;  // segments of 4 MiB, as `walcut gen`
}

// The benchmark's data before shapes: 1 KiB values, 3 groups (one ATOMIC)
// of 64 partitions, 4 increments; 4.0 GB of WAL at scale 1 (the old
// `--bytes 4G`): bytes per second dominate.
sim::Options fat(double scale) {
  sim::Options o;
  o.seed = 1;
  o.nodes = 2;
  o.groups = 2;
  o.atomic_groups = 1;
  o.partitions = 64;
  o.backups = 1;
  o.keys = 200000;
  o.value_bytes = 1024;
  o.txs = scaled(1000000, scale);
  o.tx_size = 4;
  o.in_flight = 16;
  o.increments = 4;
  o.segment_bytes = segment_bytes_for(o.txs * 2700);  // ~2.7 KB of WAL per transaction per node
  return o;
}

// Few keys rewritten over and over: 2,000 keys per group, so each key is
// written hundreds of times; a tenth of the writes are deletes (the
// simulator's share) and an ATOMIC group takes a quarter of the
// operations, so the ATOMIC repair has work. Restored data is tiny, the
// WAL is not: the apply path's overwrite and delete costs dominate.
sim::Options hot(double scale) {
  sim::Options o;
  o.seed = 1;
  o.nodes = 2;
  o.groups = 2;
  o.atomic_groups = 1;
  o.partitions = 64;
  o.backups = 1;
  o.keys = 2000;
  o.value_bytes = 100;
  o.txs = scaled(1000000, scale);
  o.tx_size = 4;
  o.in_flight = 16;
  o.increments = 4;
  return o;  // segments of 4 MiB
}

// Restored bytes of at least 3x the memory limit: 1 KiB values, keys per
// group = 4x the limit over (2 copies x 2 groups x 1 KiB), and enough
// transactions that by the increment's cut (55% of the run) every group
// has seen three writes per key, so about 86% of the keys are live.
sim::Options large(uint64_t memory_limit_bytes) {
  sim::Options o;
  o.seed = 1;
  o.nodes = 2;
  o.groups = 2;
  o.atomic_groups = 0;
  o.partitions = 64;
  o.backups = 1;
  o.value_bytes = 1024;
  const uint64_t copies = std::min<uint64_t>(o.nodes, o.backups + 1);
  o.keys = std::max<uint64_t>(1000, 4 * memory_limit_bytes / (copies * o.groups * o.value_bytes));
  o.tx_size = 4;
  o.in_flight = 16;
  o.increments = 1;
  // 3 writes per key and group by the cut; 2.5 writes per transaction.
  o.txs = static_cast<uint64_t>(3.0 * static_cast<double>(o.keys * o.groups) / 2.5 / 0.55);
  o.segment_bytes = segment_bytes_for(o.txs * 2700);
  return o;
}

}  // namespace

const std::vector<std::string>& shape_names() {
  static const std::vector<std::string> names = {"small", "fat", "hot", "large"};
  return names;
}

std::optional<Shape> make_shape(const std::string& name, Codec codec, const ShapeSettings& s) {
  Shape shape;
  shape.name = name;
  if (name == "small") {
    shape.options = small(s.scale);
    shape.what = "100-byte values, 4096 partitions, 1 increment: per-entry costs";
  } else if (name == "fat") {
    shape.options = fat(s.scale);
    shape.what = "1 KiB values, 4 increments: bytes per second";
  } else if (name == "hot") {
    shape.options = hot(s.scale);
    shape.what = "2000 keys per group rewritten, a tenth deletes, an ATOMIC group: overwrite and repair";
  } else if (name == "large") {
    shape.options = large(s.memory_limit_bytes);
    shape.what = "restored bytes >= 3x --memory-limit: restore under a memory limit";
  } else {
    return std::nullopt;
  }
  shape.options.codec = codec;
  return shape;
}

nlohmann::json options_json(const sim::Options& o) {
  return {{"seed", o.seed},
          {"nodes", o.nodes},
          {"groups", o.groups},
          {"atomic_groups", o.atomic_groups},
          {"partitions", o.partitions},
          {"backups", o.backups},
          {"keys", o.keys},
          {"key_dist", o.key_dist == sim::KeyDist::kZipf ? "zipf" : "uniform"},
          {"value_bytes", o.value_bytes},
          {"txs", o.txs},
          {"tx_size", o.tx_size},
          {"in_flight", o.in_flight},
          {"increments", o.increments},
          {"codec", codec_name(o.codec)},
          {"cut_delay_max_ms", o.cut_delay_max_ms},
          {"segment_bytes", o.segment_bytes},
          {"rollback_percent", o.rollback_percent},
          {"checkpoints", o.checkpoints},
          {"fill_blocks", o.fill_blocks}};  // data written one block per append is not reused
}

}  // namespace walcut::bench
