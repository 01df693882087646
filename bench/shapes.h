// The data shapes walcut_restore_bench measures: each a fixed set of
// simulator options (tools/sim/simulator.h), so a result names its data.
// docs/benchmarks.md lists them with what each one stresses.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/wal_format.h"
#include "tools/sim/simulator.h"

namespace walcut::bench {

struct ShapeSettings {
  double scale = 1;                         // multiplies the transaction count of small, fat and hot
  uint64_t memory_limit_bytes = 96ull << 20;  // sizes `large`: restored bytes >= 3x this
};

struct Shape {
  std::string name;  // small, fat, hot, large
  std::string what;  // one line: what it stresses
  sim::Options options;
};

// The four names, in the order they run.
const std::vector<std::string>& shape_names();

// The shape `name` with codec `codec` (its `out` left empty), or nullopt
// for an unknown name.
std::optional<Shape> make_shape(const std::string& name, Codec codec, const ShapeSettings& s);

// The simulator options as JSON: what the data's GENERATED marker records,
// and what decides whether data on disk is the shape asked for.
nlohmann::json options_json(const sim::Options& o);

}  // namespace walcut::bench
