// The identity part shared by node.meta, a snapshot's and an increment's .smf
// and a backup (engine/meta_identity.h): each refuses the same bad identity
// with the same words.
#include <gtest/gtest.h>

#include <functional>

#include "cut/increment.h"
#include "engine/backup.h"
#include "engine/node_meta.h"
#include "engine/snapshot.h"
#include "io/crc32c.h"
#include "io/file_util.h"
#include "tests/testing/temp_dir.h"

namespace walcut {
namespace {

using testing::TempDir;

NodeMeta identity(const std::string& node_id) {
  NodeMeta m;
  m.cluster_id = 42;
  m.node_index = 1;
  m.node_id = node_id;
  m.baseline = {"n0", node_id};
  m.groups = {CacheGroup{7, "accounts", CacheMode::kTransactional, 4, 1}};
  m.topology_version = 3;
  return m;
}

// One metadata format: its kind as messages name it, its bytes for an
// identity, and its reader's verdict on bytes.
struct Format {
  const char* kind;
  bool framed;  // the frame's CRC covers the header
  std::function<Bytes(const NodeMeta&)> encode;
  std::function<Status(ByteSpan)> decode;
};

std::vector<Format> formats(const std::string& path) {
  auto snapshot = [](const NodeMeta& n) {
    SnapshotMeta m;
    m.name = "snap";
    m.cluster_id = n.cluster_id;
    m.node_index = n.node_index;
    m.node_id = n.node_id;
    m.baseline = n.baseline;
    m.groups = n.groups;
    return encode_snapshot_meta(m);
  };
  auto increment = [](const NodeMeta& n) {
    IncrementMeta m;
    m.snapshot_name = "snap";
    m.index = 1;
    m.cluster_id = n.cluster_id;
    m.node_index = n.node_index;
    m.node_id = n.node_id;
    m.groups = n.groups;
    m.start_block = m.finish_block = kSegmentHeaderBytes;
    return encode_increment_meta(m);
  };
  auto backup = [path](const NodeMeta& n) {
    EXPECT_TRUE(write_backup_file(path, BackupMeta{n, {}}, {}).ok());
    Result<Bytes> bytes = read_file_bytes(path);
    return bytes.ok() ? bytes.value() : Bytes{};
  };
  auto read_backup = [path](ByteSpan bytes) {
    Status s = write_file_synced(path, bytes);
    return s.ok() ? read_backup_file(path).status() : s;
  };
  return {
      {"node.meta", true, encode_node_meta, [path](ByteSpan b) { return decode_node_meta(b, path).status(); }},
      {"snapshot metadata file", true, snapshot, [path](ByteSpan b) { return decode_snapshot_meta(b, path).status(); }},
      {"increment metadata file", true, increment,
       [path](ByteSpan b) { return decode_increment_meta(b, path).status(); }},
      {"backup", false, backup, read_backup},
  };
}

// A framed file's CRC rewritten, so the header's damage is what a reader meets.
void fix_crc(const Format& f, Bytes& bytes) {
  if (f.framed) store_u32(bytes.data() + bytes.size() - 4, crc32c(ByteSpan(bytes).first(bytes.size() - 4)));
}

TEST(MetaIdentity, EveryFormatRefusesAWrongMagicTheSameWay) {
  TempDir dir;
  const std::string path = dir.file("meta");
  for (const Format& f : formats(path)) {
    Bytes bytes = f.encode(identity("n1"));
    ASSERT_TRUE(f.decode(bytes).ok()) << f.kind << ": " << f.decode(bytes).to_string();
    bytes[0] ^= std::byte{1};
    fix_crc(f, bytes);
    Status s = f.decode(bytes);
    EXPECT_EQ(s.code(), StatusCode::kCorruption) << f.kind;
    EXPECT_EQ(s.message(), path + ": not a walcut " + f.kind + " (bad magic at offset 0)");
  }
}

TEST(MetaIdentity, EveryFormatRefusesAnUnknownVersionTheSameWay) {
  TempDir dir;
  const std::string path = dir.file("meta");
  for (const Format& f : formats(path)) {
    Bytes bytes = f.encode(identity("n1"));
    store_u32(bytes.data() + 8, 9);
    fix_crc(f, bytes);
    Status s = f.decode(bytes);
    EXPECT_EQ(s.code(), StatusCode::kCorruption) << f.kind;
    EXPECT_EQ(s.message(), path + ": unsupported " + f.kind + " version 9 at offset 8");
  }
}

TEST(MetaIdentity, EveryFormatRefusesANodeIdThatIsNotANameTheSameWay) {
  TempDir dir;
  const std::string path = dir.file("meta");
  for (const Format& f : formats(path)) {
    Status s = f.decode(f.encode(identity("../n1")));
    EXPECT_EQ(s.code(), StatusCode::kCorruption) << f.kind;
    // The backup's reader names the node.meta it holds.
    EXPECT_TRUE(s.message().starts_with(path + ": ") || s.message().starts_with(path + " (node metadata): "))
        << s.message();
    EXPECT_TRUE(s.message().ends_with(": node id '../n1' is not usable as a name: holds a '/'")) << s.message();
  }
}

}  // namespace
}  // namespace walcut
