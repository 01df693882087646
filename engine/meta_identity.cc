#include "engine/meta_identity.h"

#include <algorithm>

#include "io/names.h"

namespace walcut {

Status check_meta_magic(ByteSpan file, uint64_t magic, const std::string& what, const char* kind) {
  if (file.size() < 12 || load_u64(file.data()) != magic) {
    return Status::corruption(what + ": not a walcut " + kind + " (bad magic at offset 0)");
  }
  return {};
}

Result<uint32_t> check_meta_version(ByteSpan file, std::initializer_list<uint32_t> accepted, const std::string& what,
                                    const char* kind) {
  const uint32_t version = load_u32(file.data() + 8);
  if (std::find(accepted.begin(), accepted.end(), version) == accepted.end()) {
    return Status::corruption(what + ": unsupported " + kind + " version " + std::to_string(version) + " at offset 8");
  }
  return version;
}

Status validate_identity_names(const NodeIdentityView& id) {
  if (id.snapshot_name) WALCUT_RETURN_IF_ERROR(validate_name("snapshot name", *id.snapshot_name));
  WALCUT_RETURN_IF_ERROR(validate_name("node id", id.node_id));
  if (id.baseline) {
    for (const std::string& node : *id.baseline) WALCUT_RETURN_IF_ERROR(validate_name("node id", node));
  }
  return {};
}

Status check_node_identity(const NodeIdentityView& id, const std::string& what) {
  Status s = validate_identity_names(id);
  if (s.ok() && id.baseline && (id.node_index >= id.baseline->size() || (*id.baseline)[id.node_index] != id.node_id)) {
    s = Status::invalid_argument("node " + id.node_id + " is not at index " + std::to_string(id.node_index) +
                                 " of its baseline");
  }
  if (s.ok()) s = validate_groups(id.groups);
  if (!s.ok()) return Status::corruption(what + ": " + s.message());
  return {};
}

}  // namespace walcut
