// The in-memory partition store: the entries of one copy of one partition.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "io/records.h"

namespace walcut {

struct StoredValue {
  std::string value;
  Version version;  // the write version of the change that produced it
  bool operator==(const StoredValue&) const = default;
};

// Keys in byte order, so files and dumps come out sorted.
using EntryMap = std::map<std::string, StoredValue>;

// One partition copy. Not thread-safe: its owner (a node's partition lock,
// or one replay stripe) serializes access.
//
// Copy-on-write: share() hands out the current entries in O(1); the next
// change after that copies the map once, so a checkpoint or snapshot can
// write a consistent image while writers go on. Cost of that copy: one
// map copy per shared partition, paid by the first writer.
class Partition {
 public:
  Partition() : entries_(std::make_shared<EntryMap>()) {}
  explicit Partition(EntryMap entries) : entries_(std::make_shared<EntryMap>(std::move(entries))) {}

  const EntryMap& entries() const { return *entries_; }
  const StoredValue* find(const std::string& key) const;
  void put(std::string key, std::string value, Version version);
  void remove(const std::string& key);
  // Applies one WAL entry (put for CREATE/UPDATE, remove for DELETE).
  void apply(const DataEntry& e);

  // The current entries, immutable from now on for the holder.
  std::shared_ptr<const EntryMap> share() const { return entries_; }
  // Changed since the last mark_clean() (the last checkpoint).
  bool dirty() const { return dirty_; }
  void mark_clean() { dirty_ = false; }
  void mark_dirty() { dirty_ = true; }

 private:
  EntryMap& mutable_entries();
  std::shared_ptr<EntryMap> entries_;
  bool dirty_ = false;
};

}  // namespace walcut
