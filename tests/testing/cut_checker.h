// Checks the increments of a snapshot from the WAL the nodes wrote, as
// restore will read it: for every increment k, every transaction is in
// restore k on all the nodes it touched or on none, and none is in while
// a transaction that wrote one of its keys before it (on any node) is out.
#pragma once

#include <string>

namespace walcut::testing {

struct CutCheck {
  std::string violation;      // "" when the increments are consistent
  uint64_t transactions = 0;  // committed after the full snapshot
  uint64_t increments = 0;    // complete and failed
  uint64_t failed = 0;        // failed increments: not judged, they hold nothing
  uint64_t in_last = 0;       // in the restore of the last complete increment
};

CutCheck check_increments(const std::string& snapshot_dir);

}  // namespace walcut::testing
