// imap_load: N concurrent logged-in IMAP clients run a fixed command mix
// against their INBOX (seeded to --messages messages) for --seconds, and
// each has a second connection in IDLE that must see its APPENDs. Prints
// commands/s, p50/p99 latency per command and the IDLE wake-up latency.
//
// Plain TCP and LOGIN, loopback only: the same load for any IMAP server, so
// ours and Dovecot are measured in the same run (tools/bench/imap_bench).
//
// usage: imap_load HOST PORT [--clients 10] [--seconds 20] [--messages 1000]
//          [--user-template user%d] [--password pass] [--label name] [--seed-only]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string host = "127.0.0.1";
  int port = 143;
  int clients = 10;
  int seconds = 20;
  int messages = 1000;
  std::string user_template = "user%d";
  std::string password = "pass";
  std::string label = "server";
  bool seed_only = false;
};

class Connection {
 public:
  Connection(const std::string& host, int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1 || host.rfind("127.", 0) != 0)
      throw std::runtime_error("loopback IPv4 addresses only");
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
      throw std::runtime_error(fmt::format("connect {}:{}: {}", host, port, std::strerror(errno)));
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    timeval tv{30, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    line();  // greeting
  }
  ~Connection() { ::close(fd_); }

  void send(const std::string& data) {
    std::size_t off = 0;
    while (off < data.size()) {
      const ssize_t n = ::send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      if (n <= 0) throw std::runtime_error("send failed");
      off += static_cast<std::size_t>(n);
    }
  }

  // One response line, with any literals it announces appended.
  std::string line() {
    std::string out;
    for (;;) {
      const auto lf = buf_.find('\n', pos_);
      if (lf == std::string::npos) {
        fill();
        continue;
      }
      out.append(buf_, pos_, lf + 1 - pos_);
      pos_ = lf + 1;
      // "{n}\r\n" at the end: n literal bytes follow, then the line goes on.
      if (out.size() >= 4 && out[out.size() - 3] == '}') {
        const auto open = out.rfind('{');
        if (open != std::string::npos) {
          const std::size_t n = std::stoul(out.substr(open + 1));
          while (buf_.size() - pos_ < n)
            fill();
          out.append(buf_, pos_, n);
          pos_ += n;
          continue;
        }
      }
      compact();
      return out;
    }
  }

  // Sends a command and reads to its tagged response; returns all lines.
  std::string command(const std::string& text) {
    const std::string tag = fmt::format("t{}", ++tags_);
    send(tag + " " + text + "\r\n");
    std::string all;
    for (;;) {
      std::string l = line();
      all += l;
      if (l.rfind(tag + " ", 0) == 0) {
        if (l.compare(tag.size() + 1, 2, "OK") != 0)
          throw std::runtime_error(fmt::format("{} failed: {}", text.substr(0, 40), l));
        return all;
      }
    }
  }

  // Whether a line is ready within `timeout`.
  bool readable(std::chrono::milliseconds timeout) {
    if (buf_.find('\n', pos_) != std::string::npos) return true;
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, static_cast<int>(timeout.count())) > 0;
  }

 private:
  void fill() {
    char tmp[65536];
    const ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n <= 0) throw std::runtime_error("connection closed or timed out");
    buf_.append(tmp, static_cast<std::size_t>(n));
  }
  void compact() {
    if (pos_ > 65536) {
      buf_.erase(0, pos_);
      pos_ = 0;
    }
  }

  int fd_ = -1;
  std::string buf_;
  std::size_t pos_ = 0;
  unsigned tags_ = 0;
};

std::string user_name(const Options& o, int i) {
  std::string t = o.user_template;
  const auto at = t.find("%d");
  if (at != std::string::npos) t.replace(at, 2, std::to_string(i));
  return t;
}

std::string message(int n) {
  std::string body;
  for (int i = 0; i < 20; ++i)
    body += fmt::format("Line {} of message {}, some text to make it look like mail.\r\n", i, n);
  return fmt::format(
      "From: Load <load@bench.test>\r\nTo: user@bench.test\r\nSubject: load message {}\r\n"
      "Message-ID: <load{}@bench.test>\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\n\r\n{}",
      n, n, body);
}

std::string append_command(const std::string& mailbox, const std::string& flags,
                           const std::string& msg) {
  return fmt::format("APPEND {} ({}) {{{}+}}\r\n{}", mailbox, flags, msg.size(), msg);
}

void seed(const Options& o, int user) {
  Connection c(o.host, o.port);
  c.command(fmt::format("LOGIN {} {}", user_name(o, user), o.password));
  const std::string status = c.command("STATUS INBOX (MESSAGES)");
  const auto at = status.find("MESSAGES ");
  int have = at == std::string::npos ? 0 : std::stoi(status.substr(at + 9));
  for (int i = have; i < o.messages; ++i)
    c.command(append_command("INBOX", "", message(i)));
  c.command("LOGOUT");
}

struct Stats {
  std::map<std::string, std::vector<double>> ms;  // per command kind
  std::vector<double> wake_ms;
};

void client(const Options& o, int user, Clock::time_point end, Stats& out, std::mutex& mu,
            std::atomic<bool>& failed) {
  try {
    Stats st;
    std::mt19937 rng(static_cast<unsigned>(user));
    Connection c(o.host, o.port);
    Connection watcher(o.host, o.port);
    const std::string login = fmt::format("LOGIN {} {}", user_name(o, user), o.password);
    c.command(login);
    watcher.command(login);
    watcher.command("SELECT INBOX");
    watcher.send("w IDLE\r\n");
    if (watcher.line().rfind("+", 0) != 0) throw std::runtime_error("IDLE refused");
    // The watcher runs beside the command loop: an IDLE wake-up is timed
    // from the moment the APPEND was sent to the moment its EXISTS arrives,
    // without holding the commands up (servers wake IDLE at their own pace).
    std::atomic<std::int64_t> append_sent{0};  // ns since the epoch of Clock, 0 = none pending
    std::atomic<bool> stop{false};
    std::vector<double> wake_ms;
    std::thread watch([&] {
      try {
        while (!stop) {
          if (!watcher.readable(std::chrono::milliseconds(100))) continue;
          const std::string l = watcher.line();
          if (l.find(" EXISTS") == std::string::npos) continue;
          const std::int64_t sent = append_sent.exchange(0);
          if (sent == 0) continue;
          const auto now = Clock::now().time_since_epoch().count();
          wake_ms.push_back(static_cast<double>(now - sent) / 1e6);
        }
      } catch (const std::exception&) {
      }
    });
    std::vector<std::uint32_t> uids;
    {
      c.command("SELECT INBOX");
      const std::string r = c.command("UID SEARCH ALL");
      const auto at = r.find("* SEARCH");
      std::size_t pos = at + 8;
      while (pos < r.size() && r[pos] == ' ') {
        std::size_t next = pos + 1;
        while (next < r.size() && std::isdigit(static_cast<unsigned char>(r[next])))
          ++next;
        if (next > pos + 1) uids.push_back(std::stoul(r.substr(pos + 1, next - pos - 1)));
        pos = next;
      }
      if (uids.empty()) throw std::runtime_error("empty mailbox: seed first");
    }
    auto timed = [&](const std::string& kind, const std::string& text) {
      const auto t0 = Clock::now();
      c.command(text);
      st.ms[kind].push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    };
    const std::string msg = message(1000000 + user);
    int round = 0;
    while (Clock::now() < end) {
      const std::uint32_t n = static_cast<std::uint32_t>(uids.size());
      timed("SELECT", "SELECT INBOX");
      timed("FETCH 1:* FLAGS", "FETCH 1:* FLAGS");
      timed("UID FETCH BODY.PEEK[]",
            fmt::format("UID FETCH {} BODY.PEEK[]", uids[rng() % uids.size()]));
      timed("STORE +FLAGS",
            fmt::format("STORE {} {}FLAGS (\\Flagged)", 1 + rng() % n, round % 2 ? "-" : "+"));
      timed("SEARCH", "SEARCH FLAGGED");
      std::int64_t none = 0;
      append_sent.compare_exchange_strong(none, Clock::now().time_since_epoch().count());
      timed("APPEND", append_command("INBOX", "\\Deleted", msg));
      timed("EXPUNGE", "EXPUNGE");
      ++round;
    }
    stop = true;
    watch.join();
    c.command("LOGOUT");
    std::lock_guard lock(mu);
    for (auto& [k, v] : st.ms)
      out.ms[k].insert(out.ms[k].end(), v.begin(), v.end());
    out.wake_ms.insert(out.wake_ms.end(), wake_ms.begin(), wake_ms.end());
  } catch (const std::exception& e) {
    fmt::print(stderr, "imap_load: client {}: {}\n", user, e.what());
    failed = true;
  }
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  std::vector<std::string> pos;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
      return argv[++i];
    };
    if (a == "--clients") {
      o.clients = std::stoi(next());
    } else if (a == "--seconds") {
      o.seconds = std::stoi(next());
    } else if (a == "--messages") {
      o.messages = std::stoi(next());
    } else if (a == "--user-template") {
      o.user_template = next();
    } else if (a == "--password") {
      o.password = next();
    } else if (a == "--label") {
      o.label = next();
    } else if (a == "--seed-only") {
      o.seed_only = true;
    } else {
      pos.push_back(a);
    }
  }
  if (pos.size() != 2) {
    fmt::print(stderr,
               "usage: imap_load HOST PORT [--clients N] [--seconds S] [--messages M] "
               "[--user-template user%d] [--password P] [--label L] [--seed-only]\n");
    return 2;
  }
  o.host = pos[0];
  o.port = std::stoi(pos[1]);
  try {
    // Seed every mailbox to o.messages messages.
    const auto s0 = Clock::now();
    std::vector<std::thread> seeders;
    std::atomic<bool> failed{false};
    for (int u = 1; u <= o.clients; ++u) {
      seeders.emplace_back([&, u] {
        try {
          seed(o, u);
        } catch (const std::exception& e) {
          fmt::print(stderr, "imap_load: seeding user {}: {}\n", u, e.what());
          failed = true;
        }
      });
    }
    for (auto& t : seeders)
      t.join();
    if (failed) return 1;
    fmt::print("{}: seeded {} mailboxes of {} messages in {:.1f} s\n", o.label, o.clients,
               o.messages, std::chrono::duration<double>(Clock::now() - s0).count());
    if (o.seed_only) return 0;

    Stats all;
    std::mutex mu;
    const auto start = Clock::now();
    const auto end = start + std::chrono::seconds(o.seconds);
    std::vector<std::thread> threads;
    for (int u = 1; u <= o.clients; ++u)
      threads.emplace_back(client, std::cref(o), u, end, std::ref(all), std::ref(mu),
                           std::ref(failed));
    for (auto& t : threads)
      t.join();
    const double secs = std::chrono::duration<double>(Clock::now() - start).count();
    if (failed) return 1;
    std::vector<double> every;
    for (const auto& [kind, v] : all.ms) {
      every.insert(every.end(), v.begin(), v.end());
      fmt::print("  {:<24} {:>7} commands  p50 {:>7.2f} ms  p99 {:>7.2f} ms\n", kind, v.size(),
                 percentile(v, 0.5), percentile(v, 0.99));
    }
    fmt::print("  {:<24} {:>7} wake-ups  p50 {:>7.2f} ms  p99 {:>7.2f} ms\n", "IDLE wake-up",
               all.wake_ms.size(), percentile(all.wake_ms, 0.5), percentile(all.wake_ms, 0.99));
    fmt::print(
        "RESULT imap label={} clients={} commands={} seconds={:.1f} rate={:.0f} "
        "p50_ms={:.3f} p99_ms={:.3f} wake_p50_ms={:.3f} wake_p99_ms={:.3f}\n",
        o.label, o.clients, every.size(), secs, static_cast<double>(every.size()) / secs,
        percentile(every, 0.5), percentile(every, 0.99), percentile(all.wake_ms, 0.5),
        percentile(all.wake_ms, 0.99));
    return 0;
  } catch (const std::exception& e) {
    fmt::print(stderr, "imap_load: {}\n", e.what());
    return 1;
  }
}
