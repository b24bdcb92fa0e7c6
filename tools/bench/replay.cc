// replay: events/s rebuilding the mailbox view from a local log of
//   (a) 200k flag changes (on 1000 messages of 5 accounts), and
//   (b) 50k messages of ~10 KiB with realistic MIME (multipart/alternative
//       text + HTML, or multipart/mixed with a base64 attachment), and
//   (c) a realistic store from tools/genstore (the one the recovery tests
//       use): 1 KiB to 4 MiB messages over 4 partitions, large bodies staged
//       in BodyChunk events, with flag changes, moves and expunges.
// The log is written first (not timed), then replayed into a fresh view.
//
// usage: replay [--flags N] [--messages N] [--store-messages N] [--dir DIR]
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <random>
#include <thread>

#include <fmt/format.h>

#include "common/password.h"
#include "eventlog/local/local_log.h"
#include "projections/mailbox_projector.h"
#include "projections/projector.h"
#include "schemas/codec.h"
#include "tools/genstore/store_generator.h"

namespace {

namespace fs = std::filesystem;
using namespace a3;
using Clock = std::chrono::steady_clock;

const schemas::Actor kActor{schemas::Protocol::imap, "bench", "127.0.0.1", "bench"};

// Appends events with many in flight (group commit) and waits for all.
void write_all(eventlog::EventLog& log, const std::vector<schemas::Event>& events) {
  std::atomic<std::size_t> done{0}, failed{0};
  std::atomic<std::size_t> inflight{0};
  for (const auto& e : events) {
    while (inflight.load() > 512)
      std::this_thread::yield();
    ++inflight;
    log.append_async(e.account, schemas::encode(e), [&](eventlog::AppendResult r) {
      if (!r) ++failed;
      ++done;
      --inflight;
    });
  }
  while (done.load() < events.size())
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (failed) throw std::runtime_error("appends failed");
}

std::string base64_block(std::mt19937& rng, std::size_t bytes) {
  static const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (std::size_t i = 0; i < bytes; ++i) {
    out.push_back(alphabet[rng() % 64]);
    if (i % 76 == 75) out += "\r\n";
  }
  return out + "\r\n";
}

std::string mime_message(std::mt19937& rng, int n) {
  std::string head = fmt::format(
      "Return-Path: <sender{}@example.net>\r\nReceived: from mx.example.net (mx.example.net "
      "[192.0.2.{}])\r\n\tby mail.example.test with ESMTPS id {}; Tue, 24 Nov 2026 10:{:02}:00 "
      "+0000\r\nFrom: =?UTF-8?Q?J=C3=BCrgen_Sender?= <sender{}@example.net>\r\nTo: Alice "
      "<alice@example.test>\r\nSubject: =?UTF-8?B?UmVwb3J0IMOcYmVyc2ljaHQ=?= {}\r\nDate: Tue, 24 "
      "Nov 2026 10:{:02}:00 +0000\r\nMessage-ID: <{}.{}@example.net>\r\nMIME-Version: 1.0\r\n",
      n % 97, n % 250, n, n % 60, n % 97, n, n % 60, n, rng());
  const std::string boundary = fmt::format("=_b{}", n);
  std::string body;
  const std::string text(1500, 't');
  if (n % 2 == 0) {
    body = fmt::format(
        "Content-Type: multipart/alternative; boundary=\"{0}\"\r\n\r\n--{0}\r\nContent-Type: "
        "text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n{1}\r\n"
        "--{0}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body><p>{1}</p>{2}"
        "</body></html>\r\n--{0}--\r\n",
        boundary, text, std::string(5500, 'h'));
  } else {
    body = fmt::format(
        "Content-Type: multipart/mixed; boundary=\"{0}\"\r\n\r\n--{0}\r\nContent-Type: text/plain; "
        "charset=us-ascii\r\n\r\n{1}\r\n--{0}\r\nContent-Type: application/pdf; "
        "name=\"report-{2}.pdf\"\r\nContent-Disposition: attachment; "
        "filename=\"report-{2}.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{3}--{0}--\r\n",
        boundary, text, n, base64_block(rng, 6400));
  }
  return head + body;
}

// AccountCreated for each account; returns their INBOX ids.
std::vector<schemas::Uuid> create_accounts(const std::vector<std::string>& accounts,
                                           std::vector<schemas::Event>& events) {
  std::vector<schemas::Uuid> inboxes;
  for (const auto& a : accounts) {
    events.push_back(
        schemas::make_event(a, kActor, schemas::AccountCreated{a, "$argon2id$x", {a}, 0}));
    inboxes.push_back(projections::default_mailbox_id(events.back().id, "INBOX"));
  }
  return inboxes;
}

struct Figures {
  std::size_t events;
  double seconds;
};

Figures replay(eventlog::EventLog& log, const fs::path& view_dir) {
  fs::remove_all(view_dir);
  auto view = projections::view::ViewDb::open(view_dir);
  view->set_wal(false);  // as a3ctl replay does
  projections::Projector projector(log, *view, 4096);
  const auto start = Clock::now();
  if (!projector.catch_up()) throw std::runtime_error(projector.failure());
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  return {static_cast<std::size_t>(projector.stats().events), secs};
}

}  // namespace

int main(int argc, char** argv) {
  int flag_events = 200'000, messages = 50'000, store_messages = 20'000;
  fs::path dir;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--flags" && i + 1 < argc) {
      flag_events = std::atoi(argv[++i]);
    } else if (a == "--messages" && i + 1 < argc) {
      messages = std::atoi(argv[++i]);
    } else if (a == "--store-messages" && i + 1 < argc) {
      store_messages = std::atoi(argv[++i]);
    } else if (a == "--dir" && i + 1 < argc) {
      dir = argv[++i];
    } else {
      fmt::print(stderr,
                 "usage: replay [--flags N] [--messages N] [--store-messages N] [--dir DIR]\n");
      return 2;
    }
  }
  const bool own = dir.empty();
  if (own) {
    std::string tmpl = (fs::temp_directory_path() / "a3-bench-replay-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) return 1;
    dir = tmpl;
  }
  std::mt19937 rng(1);
  const std::vector<std::string> accounts = {"a@example.test", "b@example.test", "c@example.test",
                                             "d@example.test", "e@example.test"};

  // (a) flag changes
  {
    eventlog::local::Options o;
    o.path = dir / "log-flags";
    auto log = eventlog::local::LocalLog::open(o);
    std::vector<schemas::Event> events;
    const std::vector<schemas::Uuid> inboxes = create_accounts(accounts, events);
    for (int i = 0; i < 1000; ++i) {
      const std::size_t k = static_cast<std::size_t>(i) % accounts.size();
      events.push_back(schemas::make_event(
          accounts[k], kActor,
          schemas::MessageAppended{
              inboxes[k], fmt::format("Subject: {}\r\n\r\nx\r\n", i), 0, {}, {}}));
    }
    const std::size_t setup = events.size();
    static const char* flags[] = {"\\Seen", "\\Flagged", "\\Answered", "$Label1"};
    for (int i = 0; i < flag_events; ++i) {
      const std::size_t k = rng() % accounts.size();
      events.push_back(schemas::make_event(
          accounts[k], kActor,
          schemas::FlagsChanged{inboxes[k],
                                {1 + static_cast<std::uint32_t>(rng() % 200)},
                                rng() % 2 ? schemas::FlagOp::add : schemas::FlagOp::remove,
                                {flags[rng() % 4]},
                                {}}));
    }
    write_all(*log, events);
    const auto f = replay(*log, dir / "view-flags");
    fmt::print(
        "(a) {} flag-change events (+{} set-up): replayed in {:.2f} s = {:.0f} events/s "
        "(expected >= 100000)\n",
        flag_events, setup, f.seconds, static_cast<double>(f.events) / f.seconds);
    log->close();
    fs::remove_all(dir / "log-flags");
    fs::remove_all(dir / "view-flags");
  }

  // (b) messages
  {
    eventlog::local::Options o;
    o.path = dir / "log-messages";
    auto log = eventlog::local::LocalLog::open(o);
    std::vector<schemas::Event> events;
    const std::vector<schemas::Uuid> inboxes = create_accounts(accounts, events);
    std::size_t bytes = 0;
    for (int i = 0; i < messages; ++i) {
      const std::size_t k = static_cast<std::size_t>(i) % accounts.size();
      std::string raw = mime_message(rng, i);
      bytes += raw.size();
      events.push_back(schemas::make_event(
          accounts[k], kActor,
          schemas::MessageAppended{inboxes[k], std::move(raw), 1764000000000 + i, {}, {}}));
    }
    write_all(*log, events);
    events.clear();
    const auto f = replay(*log, dir / "view-messages");
    fmt::print(
        "(b) {} messages of {:.1f} KiB on average with MIME: replayed in {:.2f} s = {:.0f} "
        "messages/s, {:.0f} MB/s (expected >= 10000 messages/s)\n",
        messages, static_cast<double>(bytes) / messages / 1024, f.seconds,
        static_cast<double>(messages) / f.seconds, static_cast<double>(bytes) / 1e6 / f.seconds);
    log->close();
    fs::remove_all(dir / "log-messages");
    fs::remove_all(dir / "view-messages");
  }

  // (c) a realistic store
  if (store_messages > 0) {
    eventlog::local::Options o;
    o.path = dir / "log-store";
    o.partitions = 4;
    auto log = eventlog::local::LocalLog::open(o);
    genstore::Options g;
    g.accounts = 50;
    g.messages = store_messages;
    g.password_hash = password::hash("bench");
    const auto summary = genstore::generate(*log, g);
    const auto f = replay(*log, dir / "view-store");
    fmt::print(
        "(c) a generated store of {} events, {} messages of {:.1f} KiB on average ({} staged, "
        "largest {:.1f} MiB): replayed in {:.2f} s = {:.0f} events/s, {:.0f} messages/s, {:.0f} "
        "MB/s\n",
        f.events, summary.messages,
        static_cast<double>(summary.bytes) / static_cast<double>(summary.messages) / 1024,
        summary.staged_messages, static_cast<double>(summary.largest) / (1 << 20), f.seconds,
        static_cast<double>(f.events) / f.seconds,
        static_cast<double>(summary.messages) / f.seconds,
        static_cast<double>(summary.bytes) / 1e6 / f.seconds);
    log->close();
  }
  if (own) fs::remove_all(dir);
  return 0;
}
