#include "io/record_reader.h"

namespace walcut {

Status for_each_record(BlockReader& reader, const std::function<Status(const Block&, const RecordView&)>& fn) {
  Bytes scratch;
  Block b;
  for (;;) {
    Result<bool> more = reader.next(b);
    if (!more.ok()) return more.status();
    if (!more.value()) return {};
    Result<ByteSpan> raw = block_raw_payload(b.header, b.stored, scratch);
    Status s = raw.ok() ? for_each_record(b.header, raw.value(), [&](const RecordView& r) { return fn(b, r); })
                        : raw.status();
    if (!s.ok()) {
      return Status(s.code(), reader.path(b.file) + " at offset " + std::to_string(b.file_offset) + ": " + s.message());
    }
  }
}

}  // namespace walcut
