// walcut snapshot info: what a snapshot and its increments hold, from their metadata.
#pragma once

#include <CLI/CLI.hpp>

namespace walcut::cli {

// Adds `info` under the `snapshot` verb.
void add_snapshot_info_command(CLI::App& snapshot, int& exit_code);

}  // namespace walcut::cli
