#include "tools/genstore/store_generator.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <random>
#include <set>
#include <stdexcept>
#include <vector>

#include <fmt/format.h>

#include "common/clock.h"
#include "common/json.h"
#include "frontends/net/staged.h"
#include "projections/mailbox_projector.h"
#include "schemas/codec.h"
#include "schemas/event.h"

namespace a3::genstore {

namespace {

using schemas::Event;
using schemas::Uuid;

const schemas::Actor kSmtp{schemas::Protocol::smtp, "", "192.0.2.25", "genstore"};

// Appends with a bounded number of events and bytes in flight, as many
// sessions would; the first failure is kept and thrown by finish().
class Writer {
 public:
  explicit Writer(eventlog::EventLog& log) : log_(log) {}

  void append(const Event& e) {
    std::string value = schemas::encode(e);
    const std::size_t size = value.size();
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return inflight_ < 1024 && inflight_bytes_ < (64u << 20); });
      if (!error_.empty()) throw std::runtime_error(error_);
      ++inflight_;
      inflight_bytes_ += size;
    }
    log_.append_async(e.account, std::move(value), [this, size](eventlog::AppendResult r) {
      {
        std::lock_guard lock(mu_);
        --inflight_;
        inflight_bytes_ -= size;
        if (!r && error_.empty()) error_ = "append failed: " + r.error().message();
      }
      cv_.notify_all();
    });
    ++events_;
  }

  std::uint64_t finish() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return inflight_ == 0; });
    if (!error_.empty()) throw std::runtime_error(error_);
    return events_;
  }

 private:
  eventlog::EventLog& log_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::size_t inflight_ = 0;
  std::size_t inflight_bytes_ = 0;
  std::string error_;
  std::uint64_t events_ = 0;
};

constexpr std::string_view kWords[] = {
    "the",     "report", "meeting", "invoice", "please", "find",   "attached", "thanks",
    "regards", "budget", "review",  "draft",   "monday", "friday", "project",  "update",
    "we",      "will",   "send",    "you",     "a",      "copy",   "of",       "schedule",
    "Grüße",   "café",   "naïve",   "résumé",  "to",     "and",    "for",      "next"};

std::string text_lines(std::mt19937& rng, std::size_t bytes) {
  std::string out;
  out.reserve(bytes + 80);
  std::string line;
  while (out.size() < bytes) {
    line.clear();
    while (line.size() < 66)
      (line += kWords[rng() % std::size(kWords)]) += ' ';
    out += line;
    out += "\r\n";
  }
  return out;
}

std::string base64_lines(std::mt19937& rng, std::size_t bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve(bytes + bytes / 38 + 2);
  for (std::size_t i = 0; i < bytes; ++i) {
    out.push_back(kAlphabet[rng() % 64]);
    if (i % 76 == 75) out += "\r\n";
  }
  if (out.size() < 2 || out.substr(out.size() - 2) != "\r\n") out += "\r\n";
  return out;
}

// A message of about `size` bytes: plain text when small; otherwise text
// with an HTML alternative, or text with a base64 attachment.
std::string message(std::mt19937& rng, const std::string& to, std::uint64_t n, std::size_t size) {
  const auto minute = n % 60, hour = (n / 60) % 24, day = 1 + (n / 1440) % 28;
  std::string head = fmt::format(
      "Return-Path: <sender{0}@example.net>\r\n"
      "Received: from mx{1}.example.net (mx{1}.example.net [192.0.2.{1}])\r\n"
      "\tby mail.example.test with ESMTPS id g{2}; {3} Nov 2026 {4:02}:{5:02}:00 +0000\r\n"
      "From: =?UTF-8?Q?J=C3=BCrgen_Sender?= <sender{0}@example.net>\r\n"
      "To: <{6}>\r\n"
      "Subject: =?UTF-8?B?UmVwb3J0IMOcYmVyc2ljaHQ=?= #{2}\r\n"
      "Date: {3} Nov 2026 {4:02}:{5:02}:00 +0000\r\n"
      "Message-ID: <g{2}.{7}@example.net>\r\n"
      "MIME-Version: 1.0\r\n",
      n % 97, 1 + n % 250, n, day, hour, minute, to, rng());
  const std::size_t budget = size > head.size() + 200 ? size - head.size() - 200 : 64;
  if (size < 4096) {
    return head +
           "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" +
           text_lines(rng, budget);
  }
  const std::string boundary = fmt::format("=_g{}_{}", n, rng() % 100000);
  const std::string text = text_lines(rng, std::min<std::size_t>(budget / 4, 3000));
  if (n % 3 == 0) {
    return head + fmt::format(
                      "Content-Type: multipart/alternative; boundary=\"{0}\"\r\n\r\n"
                      "--{0}\r\nContent-Type: text/plain; charset=utf-8\r\n"
                      "Content-Transfer-Encoding: 8bit\r\n\r\n{1}"
                      "--{0}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
                      "<html><body><p>{2}</p></body></html>\r\n--{0}--\r\n",
                      boundary, text, text_lines(rng, budget - text.size()));
  }
  return head + fmt::format(
                    "Content-Type: multipart/mixed; boundary=\"{0}\"\r\n\r\n"
                    "--{0}\r\nContent-Type: text/plain; charset=utf-8\r\n"
                    "Content-Transfer-Encoding: 8bit\r\n\r\n{1}"
                    "--{0}\r\nContent-Type: application/pdf; name=\"report-{2}.pdf\"\r\n"
                    "Content-Disposition: attachment; filename=\"report-{2}.pdf\"\r\n"
                    "Content-Transfer-Encoding: base64\r\n\r\n{3}--{0}--\r\n",
                    boundary, text, n, base64_lines(rng, budget - text.size()));
}

// Log-uniform in [lo, hi].
std::size_t log_uniform(std::mt19937& rng, std::size_t lo, std::size_t hi) {
  if (hi <= lo) return lo;
  std::uniform_real_distribution<double> u(0, 1);
  return static_cast<std::size_t>(
      std::exp(std::log(static_cast<double>(lo)) +
               u(rng) * (std::log(static_cast<double>(hi)) - std::log(static_cast<double>(lo)))));
}

std::size_t draw_size(std::mt19937& rng, const Options& o) {
  constexpr std::size_t kMedium = 16 << 10;
  const std::size_t staged = net::StagedStream::kChunkBytes + 1;
  std::uniform_real_distribution<double> u(0, 1);
  const double x = u(rng);
  const std::size_t hi = std::max(o.max_size, o.min_size);
  if (x < o.large_fraction && hi > staged) return log_uniform(rng, staged, hi);
  if (x < o.large_fraction + o.medium_fraction && hi > kMedium)
    return log_uniform(rng, std::max(kMedium, o.min_size), std::min(hi, staged - 1));
  return log_uniform(rng, o.min_size, std::min(hi, kMedium));
}

struct Mailbox {
  Uuid id;
  std::uint32_t uidnext = 1;
  std::vector<std::uint32_t> uids;  // present
};

struct Account {
  std::string name;
  Mailbox inbox, archive;
};

std::uint32_t take_random(std::mt19937& rng, std::vector<std::uint32_t>& uids) {
  const std::size_t i = rng() % uids.size();
  const std::uint32_t uid = uids[i];
  uids[i] = uids.back();
  uids.pop_back();
  return uid;
}

}  // namespace

std::string account_name(const Options& options, int i) {
  return fmt::format("user{}@{}", i, options.domain);
}

Summary generate(eventlog::EventLog& log, const Options& o,
                 const std::function<void(std::uint64_t, std::uint64_t)>& progress) {
  if (o.accounts < 1) throw std::runtime_error("at least one account");
  if (o.password_hash.empty()) throw std::runtime_error("a password hash is needed");
  std::mt19937 rng(o.seed);
  std::uniform_real_distribution<double> chance(0, 1);
  Writer writer(log);
  Summary s;
  std::vector<Account> accounts;
  for (int i = 0; i < o.accounts; ++i) {
    Account a;
    a.name = account_name(o, i);
    Event created =
        schemas::make_event(a.name, {schemas::Protocol::admin, "genstore", "", "genstore"},
                            schemas::AccountCreated{a.name, o.password_hash, {a.name}, 0});
    a.inbox.id = projections::default_mailbox_id(created.id, "INBOX");
    a.archive.id = Uuid::derived(a.name + "/Archive");
    writer.append(created);
    writer.append(
        schemas::make_event(a.name, {schemas::Protocol::imap, a.name, "127.0.0.1", "g"},
                            schemas::MailboxCreated{a.archive.id, "Archive", "\\Archive"}));
    accounts.push_back(std::move(a));
  }

  static constexpr std::string_view kFlags[] = {"\\Seen", "\\Flagged", "\\Answered", "$Label1",
                                                "$Junk"};
  const schemas::Actor imap{schemas::Protocol::imap, "", "127.0.0.1", "genstore"};
  for (int n = 0; n < o.messages; ++n) {
    Account& a = accounts[rng() % accounts.size()];
    const std::size_t size = draw_size(rng, o);
    std::string raw = message(rng, a.name, static_cast<std::uint64_t>(n), size);
    s.bytes += raw.size();
    s.largest = std::max<std::uint64_t>(s.largest, raw.size());
    schemas::SmtpEnvelope env{fmt::format("sender{}@example.net", n % 97),
                              {a.name},
                              "mx.example.net",
                              "192.0.2.25",
                              "TLSv1.3",
                              "",
                              {}};
    schemas::Actor smtp = kSmtp;
    schemas::MessageAppended appended{a.inbox.id, {}, now_ms(), {}, std::move(env)};
    if (raw.size() > net::StagedStream::kChunkBytes) {
      // As SMTP streams a large DATA: the chunks first, then the message.
      net::StagedStream stream;
      for (std::size_t pos = 0; pos < raw.size(); pos += net::StagedStream::kChunkBytes) {
        for (auto& chunk : net::chunk_events(
                 stream, {a.name},
                 std::string_view(raw).substr(pos, net::StagedStream::kChunkBytes), smtp, now_ms()))
          writer.append(chunk);
      }
      appended.staged = schemas::StagedBody{
          stream.blob_id, stream.started_ms, stream.size, stream.chunks, true, stream.message_id};
      ++s.staged_messages;
    } else {
      appended.raw = std::move(raw);
    }
    writer.append(schemas::make_event(a.name, smtp, std::move(appended)));
    a.inbox.uids.push_back(a.inbox.uidnext++);
    ++s.messages;

    // What a mail client does with it, later.
    schemas::Actor by = imap;
    by.user = a.name;
    const double flags = o.flags_per_message * chance(rng) * 2;
    for (int f = 0; f + 0.5 < flags && !a.inbox.uids.empty(); ++f) {
      const std::uint32_t uid = a.inbox.uids[rng() % a.inbox.uids.size()];
      writer.append(schemas::make_event(
          a.name, by,
          schemas::FlagsChanged{a.inbox.id,
                                {uid},
                                rng() % 3 ? schemas::FlagOp::add : schemas::FlagOp::remove,
                                {std::string(kFlags[rng() % std::size(kFlags)])},
                                {}}));
      ++s.flag_events;
    }
    if (chance(rng) < o.move_rate && !a.inbox.uids.empty()) {
      const std::uint32_t uid = take_random(rng, a.inbox.uids);
      writer.append(
          schemas::make_event(a.name, by, schemas::MessagesMoved{a.inbox.id, {uid}, a.archive.id}));
      a.archive.uids.push_back(a.archive.uidnext++);
      ++s.moves;
    }
    if (chance(rng) < o.expunge_rate && !a.inbox.uids.empty()) {
      const std::uint32_t uid = take_random(rng, a.inbox.uids);
      writer.append(schemas::make_event(
          a.name, by,
          schemas::FlagsChanged{a.inbox.id, {uid}, schemas::FlagOp::add, {"\\Deleted"}, {}}));
      writer.append(schemas::make_event(a.name, by, schemas::MessagesExpunged{a.inbox.id, {uid}}));
      ++s.expunges;
    }
    if (progress && (n % 256 == 0)) progress(static_cast<std::uint64_t>(n), o.messages);
  }
  s.events = writer.finish();
  if (progress) progress(o.messages, o.messages);
  for (const auto& a : accounts) {
    s.mailboxes[a.name]["INBOX"] = static_cast<std::uint32_t>(a.inbox.uids.size());
    s.mailboxes[a.name]["Archive"] = static_cast<std::uint32_t>(a.archive.uids.size());
  }
  return s;
}

std::string to_json(const Summary& s) {
  std::string out = fmt::format(
      "{{\"events\": {}, \"messages\": {}, \"staged_messages\": {}, \"bytes\": {}, "
      "\"flag_events\": {}, \"moves\": {}, \"expunges\": {}, \"largest\": {}, \"mailboxes\": {{",
      s.events, s.messages, s.staged_messages, s.bytes, s.flag_events, s.moves, s.expunges,
      s.largest);
  bool first_account = true;
  for (const auto& [account, boxes] : s.mailboxes) {
    if (!first_account) out += ", ";
    first_account = false;
    append_json_string(out, account);
    out += ": {";
    bool first = true;
    for (const auto& [name, count] : boxes) {
      if (!first) out += ", ";
      first = false;
      append_json_string(out, name);
      out += fmt::format(": {}", count);
    }
    out += "}";
  }
  return out + "}}";
}

}  // namespace a3::genstore
