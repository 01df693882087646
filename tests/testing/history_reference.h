// The state a restore of increment k should hold, computed from walcut
// gen's history.jsonl alone (docs/gen.md), and the comparison of a
// restored cluster directory with it.
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace walcut::testing {

// group name -> key -> value.
using State = std::map<std::string, std::map<std::string, std::string>>;

// The committed transactions that restore k holds, applied in commit_seq
// order: those with `increment` <= k, or, in a run with faults, those
// committed before the full snapshot or with a decision `cut` below
// increment k's cut (k = 0: the full snapshot alone).
State reference(const std::string& history, uint64_t k);
// k for reference(): every committed transaction, as the cluster itself holds them at the end.
inline constexpr uint64_t kEveryCommitted = ~0ull;

// Every TRANSACTIONAL copy in a restored cluster directory equals `want`;
// ATOMIC copies agree with their primary. Returns "" or the first difference.
std::string compare_restored(const std::string& dest, const State& want);

}  // namespace walcut::testing
