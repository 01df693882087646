// What walcut's metadata files share (node.meta, a snapshot's and an
// increment's .smf): the frame around their body, and the encoding of the
// fields several of them hold.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "engine/group.h"
#include "io/coding.h"
#include "io/status.h"

namespace walcut {

struct ManifestEntry;

// u64 magic | u32 version | u32 body bytes | body | u32 CRC32C of all before it.
Bytes frame_metadata(uint64_t magic, uint32_t version, const Bytes& body);
// The body of a framed file, after checking length, magic, CRC and that the
// version is one of `versions` (in that order; magic and version through
// engine/meta_identity.h). `kind` names the file type in messages.
Result<ByteSpan> unframe_metadata(ByteSpan file, uint64_t magic, std::initializer_list<uint32_t> versions,
                                  const std::string& what, const char* kind);

// The bytes of a framed file at `path`. One larger than any frame can be
// (a u32 body) is refused as corruption naming its size, before it is read.
Result<Bytes> read_framed_file(const std::string& path);

// u16 length and bytes.
void put_string(Encoder& e, const std::string& s);
std::string get_string(Decoder& d);
// u16 count and strings.
void put_strings(Encoder& e, const std::vector<std::string>& v);
std::vector<std::string> get_strings(Decoder& d);
// u16 count; per group: u32 id, string name, u8 mode, u16 partitions, u16 backups.
void put_groups(Encoder& e, const std::vector<CacheGroup>& groups);
std::vector<CacheGroup> get_groups(Decoder& d);
// u32 count; per file: string path, u64 bytes, u32 crc32c.
void put_manifest(Encoder& e, const std::vector<ManifestEntry>& files);
std::vector<ManifestEntry> get_manifest(Decoder& d);
// Whether each path comes after the one before it (bytewise): a manifest
// is written sorted, and one that lists a file twice (two sizes, two
// checksums) or out of order is refused, InvalidArgument naming both.
Status check_manifest_order(const std::vector<ManifestEntry>& files);

}  // namespace walcut
