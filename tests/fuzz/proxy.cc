// The PROXY protocol header parser (frontends/net/proxy.h) on hostile
// bytes from a proxy's connection: it never crashes nor reads past its
// input; a header it accepts is no longer than the input, parses the same
// on its own (the client's bytes after it change nothing), every shorter
// prefix of it asks for more, and a v1 header is at most 107 octets; an
// input it calls incomplete is a prefix of something that could still be
// a header, never longer than the largest one.
#include "frontends/net/proxy.h"
#include "tests/fuzz/fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace a3::net::proxy;
  const std::string_view in = a3::fuzz::bytes(data, size);
  const Result r = parse(in);
  if (r.status == Status::ok) {
    const Header& h = r.header;
    A3_FUZZ_CHECK(h.size > 0 && h.size <= in.size(), "header size outside the input");
    A3_FUZZ_CHECK(h.version == 1 || h.version == 2, "no version");
    if (h.version == 1) A3_FUZZ_CHECK(h.size <= kMaxV1, "a v1 header longer than 107 octets");
    A3_FUZZ_CHECK(h.source.has_value() == h.destination.has_value(), "half an address pair");
    const Result alone = parse(in.substr(0, h.size));
    A3_FUZZ_CHECK(alone.status == Status::ok && alone.header.size == h.size &&
                      alone.header.source == h.source && alone.header.destination == h.destination,
                  "the bytes after the header changed it");
    // Every strict prefix is incomplete (cheap enough: headers are short,
    // and a long v2 one is checked at a few cuts).
    const std::size_t step = h.size > 256 ? h.size / 64 : 1;
    for (std::size_t n = 0; n < h.size; n += step)
      A3_FUZZ_CHECK(parse(in.substr(0, n)).status == Status::incomplete,
                    "a prefix of a header was not incomplete");
  } else if (r.status == Status::incomplete) {
    A3_FUZZ_CHECK(in.size() < kV2Fixed + 65535, "incomplete past the largest header");
  } else {
    A3_FUZZ_CHECK(!r.error.empty(), "refused without a reason");
  }
  return 0;
}
