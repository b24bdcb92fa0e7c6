// a3-genstore: writes a realistic store (store_generator.h) into the event
// log of a configuration, for tests, benchmarks and rehearsing recovery.
// The daemon, or `a3ctl replay`, then projects it.
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <string_view>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/config.h"
#include "common/password.h"
#include "eventlog/open.h"
#include "tools/genstore/store_generator.h"

namespace {

constexpr std::string_view kUsage = R"(usage: a3-genstore --config FILE [OPTION]...

Writes accounts user0@DOMAIN ... with a mail history into the configuration's
event log (which must be empty, unless --append), the daemon stopped:

  --accounts N          accounts (default 20)
  --messages N          messages delivered by SMTP (default 20000)
  --min-size BYTES      smallest message (default 1K; K and M suffixes)
  --max-size BYTES      largest message (default 4M)
  --large-fraction F    share of messages above 512 KiB, whose bodies are
                        staged in BodyChunk events (default 0.005)
  --flags-per-message F flag changes per message, on average (default 2)
  --move-rate F         chance that a message is moved to Archive (default 0.1)
  --expunge-rate F      chance that one is expunged (default 0.05)
  --seed N              the same seed gives the same store (default 1)
  --domain D            (default example.test)
  --password P          every account's password (default "password")
  --summary FILE        write what the store holds, as JSON, to FILE
  --append              add to a log that has events already
)";

bool parse_size(std::string_view text, std::size_t& out) {
  if (text.empty()) return false;
  std::size_t unit = 1;
  const char last = text.back();
  if (last == 'K' || last == 'k') unit = 1024;
  if (last == 'M' || last == 'm') unit = 1024 * 1024;
  if (unit != 1) text.remove_suffix(1);
  char* end = nullptr;
  const std::string s(text);
  const unsigned long long v = std::strtoull(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0') return false;
  out = static_cast<std::size_t>(v) * unit;
  return true;
}

bool parse_fraction(const char* text, double& out) {
  char* end = nullptr;
  out = std::strtod(text, &end);
  return *text != '\0' && *end == '\0' && out >= 0;
}

}  // namespace

int main(int argc, char** argv) {
  a3::genstore::Options o;
  std::string config_path, summary_path, password = "password";
  bool append = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    const bool has_value = i + 1 < argc;
    const char* v = has_value ? argv[i + 1] : "";
    bool ok = has_value;
    if (a == "--append") {
      append = true;
      continue;
    } else if (a == "--help" || a == "-h") {
      fmt::print("{}", kUsage);
      return 0;
    } else if (a == "--config") {
      config_path = v;
    } else if (a == "--accounts") {
      o.accounts = std::atoi(v);
      ok = ok && o.accounts > 0;
    } else if (a == "--messages") {
      o.messages = std::atoi(v);
      ok = ok && o.messages >= 0;
    } else if (a == "--min-size") {
      ok = ok && parse_size(v, o.min_size) && o.min_size >= 256;
    } else if (a == "--max-size") {
      ok = ok && parse_size(v, o.max_size);
    } else if (a == "--large-fraction") {
      ok = ok && parse_fraction(v, o.large_fraction) && o.large_fraction <= 1;
    } else if (a == "--flags-per-message") {
      ok = ok && parse_fraction(v, o.flags_per_message);
    } else if (a == "--move-rate") {
      ok = ok && parse_fraction(v, o.move_rate) && o.move_rate <= 1;
    } else if (a == "--expunge-rate") {
      ok = ok && parse_fraction(v, o.expunge_rate) && o.expunge_rate <= 1;
    } else if (a == "--seed") {
      o.seed = static_cast<std::uint32_t>(std::strtoul(v, nullptr, 10));
    } else if (a == "--domain") {
      o.domain = v;
    } else if (a == "--password") {
      password = v;
    } else if (a == "--summary") {
      summary_path = v;
    } else {
      ok = false;
    }
    if (!ok) {
      fmt::print(stderr, "a3-genstore: bad argument '{}'{}\n\n{}", a,
                 has_value ? "" : " (no value)", kUsage);
      return 2;
    }
    ++i;
  }
  if (config_path.empty() || o.max_size < o.min_size) {
    fmt::print(stderr, "{}", kUsage);
    return 2;
  }
  spdlog::set_level(spdlog::level::warn);
  try {
    const auto config = a3::config::load(config_path);
    auto log = a3::eventlog::open(config, a3::eventlog::Access::read_write);
    if (!append) {
      for (std::int32_t p = 0; p < log->partitions(); ++p) {
        const auto end = log->end_offset(p);
        if (!end || *end != 0) {
          fmt::print(stderr,
                     "a3-genstore: the log of {} has events already (partition {}); use "
                     "--append to add to it\n",
                     config_path, p);
          return 1;
        }
      }
    }
    o.password_hash = a3::password::hash(password);
    const bool tty = ::isatty(STDERR_FILENO) == 1;
    const auto summary =
        a3::genstore::generate(*log, o, [tty](std::uint64_t done, std::uint64_t all) {
          if (tty) fmt::print(stderr, "\rgenstore: {}/{} messages", done, all);
        });
    log->close();
    if (tty) fmt::print(stderr, "\n");
    fmt::print(
        "wrote {} events: {} messages ({} staged), {:.1f} MB of bodies, largest {:.1f} MB; "
        "{} flag changes, {} moves, {} expunges\n",
        summary.events, summary.messages, summary.staged_messages,
        static_cast<double>(summary.bytes) / 1e6, static_cast<double>(summary.largest) / 1e6,
        summary.flag_events, summary.moves, summary.expunges);
    if (!summary_path.empty()) {
      std::ofstream out(summary_path);
      out << a3::genstore::to_json(summary) << '\n';
      if (!out) throw std::runtime_error("cannot write " + summary_path);
    }
  } catch (const a3::config::ConfigError& e) {
    fmt::print(stderr, "a3-genstore: configuration error: {}\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "a3-genstore: {}\n", e.what());
    return 1;
  }
  return 0;
}
