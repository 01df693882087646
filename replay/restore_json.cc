// to_json(RestoreReport): the one place that names the report's JSON keys,
// for `walcut snapshot restore --json` and the restore benchmark.
#include <nlohmann/json.hpp>

#include "replay/restore.h"

namespace walcut {

std::string to_json(const RestoreReport& x) {
  if (x.dry_run) {
    nlohmann::json j{
        {"dry_run", true},
        {"snapshot", x.snapshot_dir},
        {"increment", x.increment},
        {"already_restored", x.already_restored},
        {"nodes", x.nodes},
        {"groups", x.groups},
        {"partitions", x.partitions},
        {"partition_files", x.partition_files},
        {"partition_bytes", x.partition_bytes},
        {"segments", x.segments},
        {"blocks", x.blocks},
        {"bytes_read", x.bytes_read},
        {"entries_applied", x.entries_applied},
        {"entries_filtered", x.entries_filtered},
        {"peer_nodes", x.peer_nodes},
        {"peer_bytes_read", x.peer_bytes_read},
        {"seconds", {{"verify", x.verify_s}, {"replay", x.replay_s}, {"finish", x.finish_s}, {"total", x.total_s}}}};
    return j.dump(2);
  }
  nlohmann::json j{{"dest", x.dest},
                   {"already_restored", x.already_restored},
                   {"nodes", x.nodes},
                   {"partition_files", x.partition_files},
                   {"segments", x.segments},
                   {"blocks", x.blocks},
                   {"records", x.records},
                   {"entries_applied", x.entries_applied},
                   {"entries_filtered", x.entries_filtered},
                   {"atomic_repaired", x.atomic_repaired},
                   {"bytes_read", x.bytes_read},
                   {"peer_nodes", x.peer_nodes},
                   {"peer_bytes_read", x.peer_bytes_read},
                   {"memory_limit", x.memory_limit},
                   {"routed_bytes_peak", x.routed_bytes_peak},
                   {"spill_files", x.spill_files},
                   {"spilled_bytes", x.spilled_bytes},
                   {"replay_passes", x.replay_passes},
                   {"reread_bytes", x.reread_bytes},
                   {"nodes_at_once", x.nodes_at_once},
                   {"newest_first", x.newest_first},
                   {"io_engine", x.io_engine},
                   {"seconds",
                    {{"verify", x.verify_s},
                     {"replay", x.replay_s},
                     {"finish", x.finish_s},
                     {"publish", x.publish_s},
                     {"total", x.total_s}}},
                   {"replay_mib_per_s", x.replay_mib_per_s()},
                   {"entries_per_s", x.replay_entries_per_s()}};
  return j.dump(2);
}

}  // namespace walcut
