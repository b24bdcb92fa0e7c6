// The local log's record reader (eventlog/local/record_format.h) on bytes
// as a damaged disk could hold them: it never crashes, and what it accepts
// is exactly what the writer would have written (keys and values are
// canonical: encoding what was parsed gives the same bytes).
#include "eventlog/local/record_format.h"
#include "tests/fuzz/fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace a3;
  const std::string_view in = fuzz::bytes(data, size);
  if (auto pos = eventlog::local::parse_record_key(in)) {
    A3_FUZZ_CHECK(eventlog::local::record_key(pos->partition, pos->offset) == in,
                  "a key that does not round-trip");
  }
  eventlog::Record r;
  if (eventlog::local::parse_record_value(in, r)) {
    A3_FUZZ_CHECK(eventlog::local::encode_record_value(r.timestamp_ms, r.key, r.value) == in,
                  "a value that does not round-trip");
  }
  return 0;
}
