// Names that become paths: node ids, cache group names, snapshot names, and
// the relative paths of manifests. Metadata may come from untrusted storage,
// so every decoder and every creator checks names here, and every path built
// from metadata is checked to stay under its root before it is opened.
#pragma once

#include <string>
#include <unordered_map>
#include <utility>

#include "io/status.h"

namespace walcut {

// Ok when `name` is usable as one path component: 1..255 bytes, not "." or
// "..", no '/', no NUL or other control character (bytes below 0x20, 0x7f).
// Otherwise kInvalidArgument "<kind> '<name>' is not usable as a name: <why>".
Status validate_name(const char* kind, const std::string& name);

// `root + "/" + rel` when `rel` is relative, each of its '/'-separated
// components passes validate_name, and none of those that exist under `root`
// is a symbolic link; otherwise kCorruption naming both: the path would
// leave `root` (or is not a plain path under it). `root` itself is trusted.
// Cost: one lstat per component.
Result<std::string> path_under(const std::string& root, const std::string& rel);

// path_under() for many paths under one root (a restore's thousands of
// partition files): a directory component is looked at once, then
// remembered (a directory, or missing); the last component of each path
// is always looked at. Not thread-safe.
class PathsUnder {
 public:
  explicit PathsUnder(std::string root) : root_(std::move(root)) {}
  Result<std::string> path(const std::string& rel);

 private:
  std::string root_;
  std::unordered_map<std::string, bool> dirs_;  // a directory component's path: whether it exists
};

}  // namespace walcut
