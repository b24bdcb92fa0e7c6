#include "delivery/smtp_client.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <openssl/evp.h>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>

#include "common/ascii.h"
#include "common/xtext.h"
#include "schemas/event.h"

namespace a3::delivery {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using asio::awaitable;
using asio::use_awaitable;
using asio::ip::tcp;

std::string Server::label() const {
  return fmt::format("{}[{}]:{}", host, address, port);
}

std::string dot_stuff(const std::string& body) {
  std::string out;
  out.reserve(body.size() + body.size() / 64 + 8);
  bool line_start = true;
  // RFC 5321 2.3.8: lines end in CRLF only. A bare CR or LF (which BDAT may
  // have carried in) becomes CRLF, so no receiver can read an end of data
  // we did not send (SMTP smuggling).
  for (std::size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (c == '\r' || c == '\n') {
      out += "\r\n";
      if (c == '\r' && i + 1 < body.size() && body[i + 1] == '\n') ++i;
      line_start = true;
      continue;
    }
    if (line_start && c == '.') out.push_back('.');
    out.push_back(c);
    line_start = false;
  }
  if (!out.empty() && !out.ends_with("\r\n")) out += "\r\n";
  out += ".\r\n";
  return out;
}

namespace {

constexpr std::size_t kMaxReplyLine = 4096;  // RFC 5321 4.5.3.1.5 says 512; be lenient
constexpr std::size_t kMaxReplyLines = 100;

struct ProtocolError {
  std::string why;
};

// One connection: TCP, then TLS after STARTTLS; reads and writes under a
// deadline that a watchdog enforces by closing the socket.
class Connection {
 public:
  explicit Connection(asio::any_io_executor ex) : socket_(ex), timer_(ex) {}
  ~Connection() { *alive_ = false; }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  awaitable<void> connect(const tcp::endpoint& ep, int timeout_s) {
    arm(timeout_s);
    co_await socket_.async_connect(ep, use_awaitable);
  }

  awaitable<void> write(const std::string& data, int timeout_s) {
    arm(timeout_s);
    if (tls_) {
      co_await asio::async_write(*tls_, asio::buffer(data), use_awaitable);
    } else {
      co_await asio::async_write(socket_, asio::buffer(data), use_awaitable);
    }
  }

  // One reply (RFC 5321 4.2: "ddd-" continuation lines, "ddd " last).
  awaitable<Reply> reply(int timeout_s) {
    arm(timeout_s);
    Reply r;
    std::size_t lines = 0;
    for (;;) {
      std::string line = co_await read_line();
      if (line.size() < 3 || !ascii::is_digit(line[0]) || !ascii::is_digit(line[1]) ||
          !ascii::is_digit(line[2]) || (line.size() > 3 && line[3] != ' ' && line[3] != '-'))
        throw ProtocolError{"malformed reply: " + line.substr(0, 80)};
      const int code = std::stoi(line.substr(0, 3));
      if (r.code != 0 && code != r.code) throw ProtocolError{"inconsistent multiline reply"};
      r.code = code;
      r.lines.push_back(line);
      // Kept whole up to 1 KiB (it goes into events and reports).
      if (r.text.size() < 1024) {
        if (!r.text.empty()) r.text += " / ";
        r.text += line.substr(0, 1024 - std::min<std::size_t>(1024, r.text.size()));
      }
      if (++lines > kMaxReplyLines) throw ProtocolError{"reply too long"};
      if (line.size() == 3 || line[3] == ' ') break;
    }
    if (r.code < 200 || r.code > 599) throw ProtocolError{"reply code out of range: " + r.text};
    co_return r;
  }

  // With `tlsa`, the server's certificate must match one of the records
  // (RFC 7672 3: DANE-EE without name checks, DANE-TA with the MX host's
  // name), through OpenSSL's DANE verification.
  awaitable<void> start_tls(ssl::context& ctx, const std::string& sni, int timeout_s,
                            const std::vector<Tlsa>& tlsa) {
    tls_.emplace(socket_, ctx);
    SSL* ssl = tls_->native_handle();
    // SNI names a host, never an address literal (RFC 6066 3).
    boost::system::error_code not_ip;
    asio::ip::make_address(sni, not_ip);
    if (!sni.empty() && not_ip && sni.front() != '[') SSL_set_tlsext_host_name(ssl, sni.c_str());
    if (!tlsa.empty()) {
      if (SSL_dane_enable(ssl, sni.c_str()) <= 0) throw ProtocolError{"DANE: cannot enable"};
      SSL_dane_set_flags(ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
      // RFC 7672 3.2.3: a wildcard only as the whole left-most label.
      SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      int usable = 0;
      for (const auto& t : tlsa) {
        const auto* data = reinterpret_cast<const unsigned char*>(t.data.data());
        usable += SSL_dane_tlsa_add(ssl, t.usage, t.selector, t.mtype, data, t.data.size()) > 0;
      }
      // None usable: TLS all the same, unauthenticated (RFC 7672 2.2).
      if (usable > 0) SSL_set_verify(ssl, SSL_VERIFY_PEER, nullptr);
    }
    arm(timeout_s);
    try {
      co_await tls_->async_handshake(ssl::stream_base::client, use_awaitable);
    } catch (const boost::system::system_error&) {
      const long v = SSL_get_verify_result(ssl);
      if (!tlsa.empty() && v != X509_V_OK)
        throw ProtocolError{
            fmt::format("DANE: the certificate does not match the TLSA records ({})",
                        X509_verify_cert_error_string(v))};
      throw;
    }
    buffered_.clear();  // RFC 3207 5: nothing read before TLS counts
  }

  bool tls() const { return tls_.has_value(); }

  // QUIT, best effort: the transaction's outcome is already known, and a
  // server that hung up first must not turn a delivery into a retry.
  awaitable<void> quit(int timeout_s) {
    arm(timeout_s);
    boost::system::error_code ec;
    static const std::string kQuit = "QUIT\r\n";
    if (tls_) {
      co_await asio::async_write(*tls_, asio::buffer(kQuit),
                                 asio::redirect_error(use_awaitable, ec));
    } else {
      co_await asio::async_write(socket_, asio::buffer(kQuit),
                                 asio::redirect_error(use_awaitable, ec));
    }
  }

  void close() {
    boost::system::error_code ec;
    timer_.cancel();
    socket_.close(ec);
  }

  // Starts the watchdog with a first deadline of `timeout_s`: it closes
  // the socket when a deadline passes (the pending operation then fails).
  void start_watchdog(int timeout_s) {
    arm(timeout_s);
    watch();
  }
  bool timed_out() const { return timed_out_; }
  // A new deadline for what comes next (a kept connection's idle time, or
  // the next command).
  void rearm(int timeout_s) { arm(timeout_s); }
  void stop() {
    closing_ = true;
    timer_.cancel();
  }

 private:
  void arm(int timeout_s) { timer_.expires_after(std::chrono::seconds(timeout_s)); }

  void watch() {
    timer_.async_wait([this, alive = alive_](boost::system::error_code ec) {
      if (!*alive) return;  // the connection is gone
      if (ec == asio::error::operation_aborted) {
        if (!closing_) watch();  // re-armed
        return;
      }
      timed_out_ = true;
      boost::system::error_code ignored;
      socket_.close(ignored);
    });
  }

  awaitable<std::string> read_line() {
    for (;;) {
      const auto lf = buffered_.find('\n');
      if (lf != std::string::npos) {
        std::string line = buffered_.substr(0, lf);
        buffered_.erase(0, lf + 1);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        co_return line;
      }
      if (buffered_.size() > kMaxReplyLine) throw ProtocolError{"reply line too long"};
      char buf[4096];
      std::size_t n = 0;
      if (tls_) {
        n = co_await tls_->async_read_some(asio::buffer(buf), use_awaitable);
      } else {
        n = co_await socket_.async_read_some(asio::buffer(buf), use_awaitable);
      }
      buffered_.append(buf, n);
    }
  }

  tcp::socket socket_;
  std::optional<ssl::stream<tcp::socket&>> tls_;
  asio::steady_timer timer_;
  std::string buffered_;
  bool timed_out_ = false;
  bool closing_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // false once destroyed
};

struct Extensions {
  bool pipelining = false, starttls = false, eightbit = false, smtputf8 = false, auth_plain = false,
       dsn = false;
  std::uint64_t size = 0;  // 0: not announced
};

Extensions parse_ehlo(const Reply& r) {
  Extensions e;
  for (std::size_t i = 1; i < r.lines.size(); ++i) {  // after the greeting line
    const std::string_view line = r.lines[i];
    if (line.size() < 4) continue;
    const std::string kw = ascii::upper(line.substr(4));
    if (kw == "PIPELINING") e.pipelining = true;
    if (kw == "STARTTLS") e.starttls = true;
    if (kw == "8BITMIME") e.eightbit = true;
    if (kw == "SMTPUTF8") e.smtputf8 = true;
    if (kw == "DSN") e.dsn = true;
    if (kw.starts_with("AUTH ") || kw.starts_with("AUTH=")) {
      e.auth_plain = kw.find("PLAIN") != std::string::npos;
    }
    if (kw.starts_with("SIZE")) {
      try {
        if (kw.size() > 5) e.size = std::stoull(kw.substr(5));
      } catch (...) {
      }
    }
  }
  return e;
}

// RFC 4648 base64, by OpenSSL.
std::string base64(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()),
                                static_cast<int>(in.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

TransactionResult failed(int code, std::string text, bool try_next = true) {
  TransactionResult r;
  r.session_failed = true;
  r.session = Reply{code, std::move(text)};
  r.try_next = try_next;
  return r;
}

// Greeting, EHLO (HELO for an old server), STARTTLS and AUTH: nullopt when
// the connection is ready for transactions, or why it is not.
awaitable<std::optional<TransactionResult>> open_session(Connection& c, const Server& server,
                                                         const ClientOptions& o, ssl::context& tls,
                                                         Extensions& ext) {
  const int t = o.command_timeout_s;
  Reply greeting = co_await c.reply(t);
  if (!greeting.ok()) co_return failed(greeting.code, greeting.text);
  co_await c.write(fmt::format("EHLO {}\r\n", o.helo), t);
  Reply ehlo = co_await c.reply(t);
  const bool extended = ehlo.ok();
  if (!extended) {
    co_await c.write(fmt::format("HELO {}\r\n", o.helo), t);
    ehlo = co_await c.reply(t);
    if (!ehlo.ok()) co_return failed(ehlo.code, ehlo.text);
  }
  ext = extended ? parse_ehlo(ehlo) : Extensions{};
  // RFC 7672 2.2: TLSA records make TLS mandatory; no STARTTLS, no delivery
  // to this host (the next one may do better).
  if (server.dane && !ext.starttls)
    co_return failed(0, "DANE: the host has TLSA records, but offers no STARTTLS");
  if (ext.starttls) {
    co_await c.write("STARTTLS\r\n", t);
    const Reply r = co_await c.reply(t);
    if (r.ok()) {
      co_await c.start_tls(tls, server.host, t, server.tlsa);
      co_await c.write(fmt::format("EHLO {}\r\n", o.helo), t);
      ehlo = co_await c.reply(t);
      if (!ehlo.ok()) co_return failed(ehlo.code, ehlo.text);
      ext = parse_ehlo(ehlo);
    } else if (o.require_tls || server.dane) {
      co_return failed(0, "TLS is required, but STARTTLS was refused: " + r.text);
    }
  }
  if (o.require_tls && !c.tls()) co_return failed(0, "TLS is required, but was not offered");
  if (!o.auth_user.empty()) {
    if (!c.tls()) co_return failed(0, "AUTH needs TLS, which the relay did not offer");
    if (!ext.auth_plain) co_return failed(0, "the relay does not offer AUTH PLAIN");
    std::string creds;
    creds.push_back('\0');
    creds += o.auth_user;
    creds.push_back('\0');
    creds += o.auth_password;
    co_await c.write("AUTH PLAIN " + base64(creds) + "\r\n", t);
    const Reply r = co_await c.reply(t);
    // A refused login is our configuration's fault: retry, never bounce.
    if (r.code != 235) co_return failed(r.code >= 500 ? 454 : r.code, "AUTH refused: " + r.text);
  }
  co_return std::nullopt;
}

// "RCPT TO:<...>", with the recipient's RFC 3461 NOTIFY and ORCPT for a
// server that offers DSN.
std::string rcpt_command(const Outgoing& m, std::size_t i, bool dsn) {
  std::string out = fmt::format("RCPT TO:<{}>", m.recipients[i]);
  const std::uint8_t notify = i < m.notify.size() ? m.notify[i] : 0;
  if (dsn && notify != 0) {
    std::vector<std::string_view> words;
    if (notify & schemas::notify_never) {
      words.push_back("NEVER");
    } else {
      if (notify & schemas::notify_success) words.push_back("SUCCESS");
      if (notify & schemas::notify_failure) words.push_back("FAILURE");
      if (notify & schemas::notify_delay) words.push_back("DELAY");
    }
    out += fmt::format(" NOTIFY={}", fmt::join(words, ","));
  }
  const std::string orcpt = i < m.orcpt.size() ? m.orcpt[i] : "";
  if (const auto semi = orcpt.find(';'); dsn && semi != std::string::npos)
    out += " ORCPT=" + orcpt.substr(0, semi) + ";" + xtext_encode(orcpt.substr(semi + 1));
  return out + "\r\n";
}

// One mail transaction on a ready connection. `body_sent` is set once the
// message's bytes started to go: from then on a failure leaves the outcome
// unknown (the server may have taken it). `reusable` is set when the
// transaction ended with the reply to the end of data, after which the
// server is ready for the next MAIL (RFC 5321 4.1.1.4).
awaitable<TransactionResult> transaction(Connection& c, const Extensions& ext,
                                         const ClientOptions& o, const Outgoing& m, bool& body_sent,
                                         bool& reusable) {
  const int t = o.command_timeout_s;
  // RFC 6152 3: 8-bit data only to a server that takes it (no conversion).
  if (m.eightbit && !ext.eightbit &&
      std::any_of(m.body->begin(), m.body->end(), [](char ch) { return ch & 0x80; }))
    co_return failed(
        554, "554 5.6.3 The message has 8-bit data, and the receiving server lacks 8BITMIME",
        false);
  if (m.smtputf8 && !ext.smtputf8)
    co_return failed(554, "554 5.6.7 The message needs SMTPUTF8, which the receiving server lacks",
                     false);
  const std::uint64_t size = m.body->size();
  if (ext.size && size > ext.size)
    co_return failed(552,
                     fmt::format("552 5.3.4 The message ({} bytes) exceeds the receiving "
                                 "server's limit ({} bytes)",
                                 size, ext.size),
                     false);
  std::string mail = fmt::format("MAIL FROM:<{}>", m.mail_from);
  if (ext.size) mail += fmt::format(" SIZE={}", size);
  if (m.eightbit && ext.eightbit) mail += " BODY=8BITMIME";
  if (m.smtputf8) mail += " SMTPUTF8";
  // RFC 3461 4.3, 4.4: to a server that offers DSN.
  if (ext.dsn && m.ret_headers) mail += " RET=HDRS";
  if (ext.dsn && !m.envid.empty()) mail += " ENVID=" + xtext_encode(m.envid);
  mail += "\r\n";
  TransactionResult result;
  result.recipients.resize(m.recipients.size());
  result.dsn = ext.dsn;
  std::vector<std::string> rcpt;
  for (std::size_t i = 0; i < m.recipients.size(); ++i)
    rcpt.push_back(rcpt_command(m, i, ext.dsn));
  // RFC 2920: MAIL, every RCPT and DATA in one write, replies in order.
  std::string batch = mail;
  for (const auto& r : rcpt)
    batch += r;
  if (ext.pipelining) {
    co_await c.write(batch + "DATA\r\n", t);
    const Reply mail_reply = co_await c.reply(t);
    std::size_t accepted = 0;
    for (std::size_t i = 0; i < m.recipients.size(); ++i) {
      result.recipients[i] = co_await c.reply(t);
      accepted += result.recipients[i].ok() ? 1 : 0;
    }
    const Reply data = co_await c.reply(t);
    if (!mail_reply.ok()) co_return failed(mail_reply.code, mail_reply.text, false);
    if (accepted == 0) co_return result;
    if (data.code != 354) {
      for (auto& r : result.recipients)
        if (r.ok()) r = data;
      co_return result;
    }
  } else {
    co_await c.write(mail, t);
    const Reply mail_reply = co_await c.reply(t);
    if (!mail_reply.ok()) co_return failed(mail_reply.code, mail_reply.text, false);
    std::size_t accepted = 0;
    for (std::size_t i = 0; i < m.recipients.size(); ++i) {
      co_await c.write(rcpt[i], t);
      result.recipients[i] = co_await c.reply(t);
      accepted += result.recipients[i].ok() ? 1 : 0;
    }
    if (accepted == 0) co_return result;
    co_await c.write("DATA\r\n", t);
    const Reply data = co_await c.reply(t);
    if (data.code != 354) {
      for (auto& r : result.recipients)
        if (r.ok()) r = data;
      co_return result;
    }
  }
  // RFC 5321 4.5.3.2.6: ten minutes for the final reply by default.
  body_sent = true;
  co_await c.write(dot_stuff(*m.body), o.data_timeout_s);
  const Reply end = co_await c.reply(o.data_timeout_s);
  for (auto& r : result.recipients)
    if (r.ok()) r = end;
  reusable = end.code != 421;  // 421: the server is closing
  co_return result;
}

// A connection ready for transactions, kept between messages.
struct Link {
  explicit Link(asio::any_io_executor ex) : connection(ex) {}
  Connection connection;
  Extensions ext;
  std::chrono::steady_clock::time_point opened = std::chrono::steady_clock::now();
  int messages = 0;
};

}  // namespace

struct ConnectionCache::Idle {
  std::string key;
  std::unique_ptr<Link> link;
};

ConnectionCache::ConnectionCache(CacheLimits limits) : limits_(limits) {}

ConnectionCache::~ConnectionCache() = default;

std::size_t ConnectionCache::idle() const {
  return idle_.size();
}

void ConnectionCache::close_all() {
  closed_ = true;
  for (auto& i : idle_) {
    i.link->connection.stop();
    i.link->connection.close();
  }
  idle_.clear();
}

std::string ConnectionCache::key(const Server& server, const ClientOptions& o) {
  // The same server with the same demands: TLS required or not, DANE's
  // records, the login.
  std::string k = fmt::format("{}\n{}\n{}\n{}\n{}", server.label(), o.require_tls, o.auth_user,
                              o.helo, server.dane);
  for (const auto& t : server.tlsa)
    k += fmt::format("\n{} {} {} {}", t.usage, t.selector, t.mtype, t.data);
  return k;
}

awaitable<TransactionResult> ConnectionCache::send(const Server& server,
                                                   const ClientOptions& options, ssl::context& tls,
                                                   const Outgoing& message) {
  auto ex = co_await asio::this_coro::executor;
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(server.address, ec);
  if (ec) co_return failed(0, "not an IP address: " + server.address);
  const std::string k = key(server, options);
  const auto now = std::chrono::steady_clock::now();
  // An idle connection to the same server, still open and young enough.
  std::unique_ptr<Link> link;
  for (auto it = idle_.begin(); it != idle_.end();) {
    const bool stale = it->link->connection.timed_out() ||
                       now - it->link->opened > std::chrono::seconds(limits_.max_age_s);
    if (stale) {
      it->link->connection.stop();
      it->link->connection.close();
      it = idle_.erase(it);
      continue;
    }
    if (!link && it->key == k) {
      link = std::move(it->link);
      it = idle_.erase(it);
      continue;
    }
    ++it;
  }
  const bool reused = link != nullptr;
  if (!link) link = std::make_unique<Link>(ex);
  Connection& c = link->connection;
  TransactionResult result;
  std::string error;
  bool body_sent = false, reusable = false;
  try {
    if (reused) {
      c.rearm(options.command_timeout_s);
    } else {
      c.start_watchdog(options.connect_timeout_s);
      co_await c.connect(tcp::endpoint(address, server.port), options.connect_timeout_s);
      if (auto refused = co_await open_session(c, server, options, tls, link->ext)) {
        result = std::move(*refused);
        co_await c.quit(options.command_timeout_s);
        c.stop();
        c.close();
        co_return result;
      }
    }
    result = co_await transaction(c, link->ext, options, message, body_sent, reusable);
  } catch (const ProtocolError& e) {
    error = e.why;
  } catch (const boost::system::system_error& e) {
    error = c.timed_out() ? "timed out" : e.code().message();
  }
  // A kept connection the server closed meanwhile (or is closing: 421):
  // nothing was sent that it took, so the message goes again on a new one.
  const bool went_away = !error.empty() || (result.session_failed && result.session.code == 421) ||
                         std::any_of(result.recipients.begin(), result.recipients.end(),
                                     [](const Reply& r) { return r.code == 421; });
  if (reused && went_away && !body_sent && !closed_) {
    c.stop();
    c.close();
    co_return co_await send(server, options, tls, message);
  }
  if (!error.empty()) {
    c.stop();
    c.close();
    // Cut off after the body went: what the server did is unknown. The
    // message is tried again later (delivered at most once more), never at
    // once on the next server (which could make two copies now).
    co_return failed(0, fmt::format("{}: {}", server.label(), error), !body_sent);
  }
  ++link->messages;
  std::size_t same = 0;
  for (const auto& i : idle_)
    same += i.key == k ? 1 : 0;
  if (!closed_ && reusable && link->messages < limits_.max_messages &&
      same < limits_.max_idle_per_server && limits_.idle_s > 0) {
    // Kept: the watchdog closes it when it has been idle too long.
    c.rearm(limits_.idle_s);
    idle_.push_back(Idle{k, std::move(link)});
    co_return result;
  }
  co_await c.quit(options.command_timeout_s);
  c.stop();
  c.close();
  co_return result;
}

awaitable<TransactionResult> send_message(const Server& server, const ClientOptions& options,
                                          ssl::context& tls, const Outgoing& message) {
  ConnectionCache once(CacheLimits{0, 1, 0, 0});
  co_return co_await once.send(server, options, tls, message);
}

}  // namespace a3::delivery
