// The configuration loader (common/config.h) on hostile TOML: a bad file is
// a ConfigError (file, key, reason), never a crash or another exception;
// a file it accepts renders (config::render) to TOML that loads again into
// the same rendering.
#include "common/config.h"
#include "tests/fuzz/fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace a3;
  std::string rendered;
  try {
    rendered = config::render(config::parse(fuzz::bytes(data, size), "/fuzz/a3mailer.toml"));
  } catch (const config::ConfigError&) {
    return 0;
  }
  try {
    const std::string again = config::render(config::parse(rendered, "/fuzz/a3mailer.toml"));
    A3_FUZZ_CHECK(again == rendered, "rendering changes once loaded again");
  } catch (const config::ConfigError& e) {
    A3_FUZZ_CHECK(false, std::string("the rendering of an accepted file is refused: ") + e.what());
  }
  return 0;
}
