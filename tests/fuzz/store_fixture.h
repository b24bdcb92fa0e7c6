// A store for the session fuzz targets: a local log, a view and a running
// projector in a temporary folder, with alice's account and three messages,
// made once per process and removed at exit.
#pragma once

#include <memory>
#include <stdexcept>

#include "eventlog/local/local_log.h"
#include "projections/mailbox_projector.h"
#include "projections/projector.h"
#include "projections/store.h"
#include "schemas/event.h"
#include "tests/test_util.h"

namespace a3::fuzz {

inline constexpr const char* kAlice = "alice@example.test";

struct StoreFixture {
  test::TempDir dir;  // first: removed after everything that uses it
  std::unique_ptr<eventlog::local::LocalLog> log;
  std::unique_ptr<projections::view::ViewDb> view;
  std::unique_ptr<projections::Projector> projector;
  std::unique_ptr<projections::Store> store;

  StoreFixture() {
    eventlog::local::Options o;
    o.path = dir.path() / "log";
    log = eventlog::local::LocalLog::open(o);
    view = projections::view::ViewDb::open(dir.path() / "view");
    projector = std::make_unique<projections::Projector>(*log, *view);
    projector->start();
    store = std::make_unique<projections::Store>(log.get(), *view, projector.get());
    const schemas::Actor admin{schemas::Protocol::admin, "fuzz", "", "fuzz"};
    const auto created =
        schemas::make_event(kAlice, admin, schemas::AccountCreated{kAlice, "x", {kAlice}, 0});
    if (!store->execute_blocking(created)) throw std::runtime_error("fuzz store: no account");
    const auto inbox = projections::default_mailbox_id(created.id, "INBOX");
    for (int i = 1; i <= 3; ++i) {
      auto appended = store->execute_blocking(schemas::make_event(
          kAlice, admin,
          schemas::MessageAppended{inbox,
                                   "From: Bob <bob@example.net>\r\nTo: alice@example.test\r\n"
                                   "Subject: message " +
                                       std::to_string(i) +
                                       "\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
                                       "--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b\r\n"
                                       "Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\n"
                                       "inner body\r\n--b--\r\n",
                                   1764000000000 + i,
                                   {},
                                   {}}));
      if (!appended) throw std::runtime_error("fuzz store: no message");
    }
  }
  ~StoreFixture() {
    store.reset();
    if (projector) projector->stop();
    projector.reset();
    view.reset();
    if (log) log->close();
  }
};

// The process's store (made on first use).
inline StoreFixture& store_fixture() {
  static StoreFixture fixture;
  return fixture;
}

}  // namespace a3::fuzz
