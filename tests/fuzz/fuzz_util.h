// What the libFuzzer harnesses share: the input as bytes, and a scratch
// directory for the parsers that read files. docs/testing.md describes the
// harnesses and their input formats.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "io/coding.h"

namespace walcut::fuzz {

inline ByteSpan input_bytes(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const std::byte*>(data), size};
}

// A directory of this process, made on first use under $TMPDIR (or /tmp)
// and removed when the process exits normally. Harnesses write nowhere else.
const std::string& scratch_dir();

// Writes `bytes` to <scratch_dir>/<name>, replacing it; returns the path.
// Aborts when the write fails: the harness could not test anything.
std::string write_scratch(const std::string& name, ByteSpan bytes);

}  // namespace walcut::fuzz
