#include "tests/fuzz/fuzz_util.h"

#include <cstdio>
#include <cstdlib>

#include "tests/testing/temp_dir.h"

namespace walcut::fuzz {

const std::string& scratch_dir() {
  static const testing::TempDir dir;  // its destructor removes the directory at exit
  return dir.path();
}

// Not write_file_synced(): an fdatasync per input would slow fuzzing down for nothing.
std::string write_scratch(const std::string& name, ByteSpan bytes) {
  std::string path = scratch_dir() + "/" + name;
  // A new file, not one truncated in place: ext4 flushes a file truncated and rewritten when it is closed.
  std::remove(path.c_str());
  std::FILE* f = std::fopen(path.c_str(), "wb");
  bool ok = f != nullptr && (bytes.empty() || std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size());
  if (f != nullptr && std::fclose(f) != 0) ok = false;
  if (!ok) {
    std::fprintf(stderr, "fuzz: cannot write %s\n", path.c_str());
    std::abort();
  }
  return path;
}

}  // namespace walcut::fuzz
