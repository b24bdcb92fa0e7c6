// Encoding of events to and from their FlatBuffers bytes (schemas/events.fbs).
#pragma once

#include <string>
#include <string_view>

#include <boost/system/result.hpp>

#include "schemas/event.h"

namespace a3::schemas {

enum class decode_errc {
  too_short = 1,   // not even a FlatBuffers root
  bad_identifier,  // not an A3 event ("A3EV")
  verify_failed,   // the FlatBuffers Verifier rejected the buffer
  missing_field,   // a required field (id, body) is absent
  bad_field,       // a field has an impossible value (e.g. id not 16 bytes)
  unknown_body,    // a body kind this version does not know
};

struct DecodeError {
  decode_errc code;
  std::string detail;  // what was wrong, for logs and a3ctl
};

// Lets boost::system::result<T, DecodeError>::value() throw on error.
[[noreturn]] void throw_exception_from_error(const DecodeError& e,
                                             const boost::source_location& loc);

// Serialises an event. The result is self-contained and starts with the
// file identifier "A3EV".
[[nodiscard]] std::string encode(const Event& event);

// Verifies and decodes untrusted bytes (from the network or the log). Never
// asserts or crashes on bad input: every problem is a DecodeError.
[[nodiscard]] boost::system::result<Event, DecodeError> decode(std::string_view bytes);

// The largest encoded size of an event whose message body is `raw_size`
// bytes, for sizing transport limits (Kafka's message.max.bytes).
std::size_t max_encoded_size(std::size_t raw_size);

}  // namespace a3::schemas
