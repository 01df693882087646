#include "engine/partition.h"

namespace walcut {

const StoredValue* Partition::find(const std::string& key) const {
  auto it = entries_->find(key);
  return it == entries_->end() ? nullptr : &it->second;
}

EntryMap& Partition::mutable_entries() {
  // Someone holds the current image (a checkpoint or snapshot writing it):
  // leave theirs alone and change a copy.
  if (entries_.use_count() > 1) entries_ = std::make_shared<EntryMap>(*entries_);
  dirty_ = true;
  return *entries_;
}

void Partition::put(std::string key, std::string value, Version version) {
  mutable_entries()[std::move(key)] = StoredValue{std::move(value), version};
}

void Partition::remove(const std::string& key) {
  if (entries_->find(key) == entries_->end()) return;
  mutable_entries().erase(key);
}

void Partition::apply(const DataEntry& e) {
  std::string key = to_string(e.key);
  if (e.op == EntryOp::kDelete) {
    remove(key);
  } else {
    put(std::move(key), to_string(e.value), e.write_version);
  }
}

}  // namespace walcut
