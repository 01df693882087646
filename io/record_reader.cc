#include "io/record_reader.h"

namespace walcut {

namespace {

Status records_of(BlockReader& reader, const std::function<bool(const Block&)>& wanted,
                  const std::function<Status(const Block&, const RecordView&)>& fn,
                  const std::function<void(const Block&)>& on_block) {
  Bytes scratch;
  Block b;
  for (;;) {
    Result<bool> more = reader.next(b);
    if (!more.ok()) return more.status();
    if (!more.value()) return {};
    if (on_block) on_block(b);
    if (wanted && !wanted(b)) continue;
    Result<ByteSpan> raw = block_raw_payload(b.header, b.stored, scratch);
    Status s = raw.ok() ? for_each_record(b.header, raw.value(), [&](const RecordView& r) { return fn(b, r); })
                        : raw.status();
    if (!s.ok()) return s.with_context(reader.path(b.file) + " at offset " + std::to_string(b.file_offset));
  }
}

}  // namespace

Status for_each_record(BlockReader& reader, const std::function<Status(const Block&, const RecordView&)>& fn,
                       const std::function<void(const Block&)>& on_block) {
  return records_of(reader, {}, fn, on_block);
}

Status for_each_record_of(BlockReader& reader, const std::function<bool(const Block&)>& wanted,
                          const std::function<Status(const Block&, const RecordView&)>& fn) {
  return records_of(reader, wanted, fn, {});
}

}  // namespace walcut
