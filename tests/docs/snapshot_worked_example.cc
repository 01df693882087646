// The worked example of docs/snapshot-format.md, which docs/node-format.md
// and docs/cli.md ("walcut dump") show too: a two-node cluster in
// ROOT/cluster, one transaction, a checkpoint, the full snapshot
// ROOT/snapshots/snap1, one more transaction. scripts/doc-examples.sh runs
// it to check those examples.
#include <cstdio>
#include <string>

#include "engine/cluster.h"
#include "engine/snapshot.h"

namespace {

int fail(const walcut::Status& s) {
  std::fprintf(stderr, "walcut_snapshot_worked_example: %s\n", s.to_string().c_str());
  return 3;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace walcut;
  if (argc != 2) {
    std::fprintf(stderr, "usage: walcut_snapshot_worked_example ROOT\n");
    return 2;
  }
  const std::string root = argv[1];
  ClusterOptions o;
  o.dir = root + "/cluster";
  o.cluster_id = 7;
  o.node_ids = {"n0", "n1"};
  o.groups = {CacheGroup{1, "accounts", CacheMode::kTransactional, /*partitions=*/2, /*backups=*/1}};
  Result<std::unique_ptr<Cluster>> c = Cluster::open(o);  // topology version 0 + 1 = 1
  if (!c.ok()) return fail(c.status());

  Transaction tx = (*c)->begin(0);  // xid 1.1.1
  if (Status s = tx.put("accounts", "alice", "100"); !s.ok()) return fail(s);  // partition 0: primary n0, backup n1
  if (Status s = tx.put("accounts", "bob", "42"); !s.ok()) return fail(s);     // partition 1: primary n1, backup n0
  if (Status s = tx.commit(); !s.ok()) return fail(s);                         // commit version 1.2.1
  if (Status s = (*c)->checkpoint(); !s.ok()) return fail(s);                  // CHECKPOINT id 1 on each node
  Result<SnapshotReport> snap = take_full_snapshot(**c, root + "/snapshots", "snap1");
  if (!snap.ok()) return fail(snap.status());

  Transaction tx2 = (*c)->begin(1);  // after the snapshot: in the WALs only
  if (Status s = tx2.put("accounts", "alice", "90"); !s.ok()) return fail(s);
  if (Status s = tx2.remove("accounts", "bob"); !s.ok()) return fail(s);
  if (Status s = tx2.commit(); !s.ok()) return fail(s);
  return 0;
}
