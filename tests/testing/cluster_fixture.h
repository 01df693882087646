// Helpers for tests that run a cluster.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "engine/cluster.h"

namespace walcut::testing {

// Four nodes; "accounts" (TRANSACTIONAL, 32 partitions, 2 backups) and
// "events" (ATOMIC, 16 partitions, 1 backup); small WAL segments.
ClusterOptions small_cluster_options(const std::string& dir, size_t nodes = 4);

// The state a test expects: group name -> key -> value.
using Expected = std::map<std::string, std::map<std::string, std::string>>;

// Checks that every copy (primary and backups) of every key holds the
// expected value, and that no copy holds a key that is not expected.
// Returns a description of the first difference, or "" when all agree.
std::string compare_copies(Cluster& c, const Expected& expected);

// The entries of every partition copy of one node, read back by replaying
// its WAL from the start up to (not including) `until`.
std::map<PartitionId, EntryMap> replay_node_wal(const std::string& wal_dir, const WalPointer& until);

}  // namespace walcut::testing
