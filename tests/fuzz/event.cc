// The event decoder (schemas/codec.h) on untrusted bytes, as it reads the
// log and the network: it never crashes or throws, and what it accepts
// survives a round trip (encode, then decode, gives the same event).
#include "schemas/codec.h"
#include "schemas/event_json.h"
#include "tests/fuzz/fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace a3;
  auto event = schemas::decode(fuzz::bytes(data, size));
  if (!event) return 0;
  const std::string again = schemas::encode(*event);
  auto decoded = schemas::decode(again);
  A3_FUZZ_CHECK(decoded.has_value(), "an accepted event does not decode once re-encoded");
  A3_FUZZ_CHECK(*decoded == *event,
                "an accepted event changes in a round trip: " + schemas::to_json(*event) +
                    " became " + schemas::to_json(*decoded));
  return 0;
}
