// Drives a sans-I/O IMAP session as the server does, on the calling
// thread: feeds bytes, completes logins, performs the writes the session
// waits for with the store's one write path, and goes on with held-back
// pipelined commands. Returns everything the session said.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "frontends/imap/session.h"
#include "tests/run_sync.h"

namespace a3::test {

// Decides a login: the account, or nullopt for wrong credentials.
using ImapLogin = std::function<std::optional<std::string>(const net::AuthRequest&)>;

inline std::string converse(imap::Session& s, projections::Store& store, std::string_view bytes,
                            const ImapLogin& login) {
  s.receive(bytes);
  std::string out = s.take_output();
  for (;;) {
    if (auto auth = s.take_auth()) {
      s.auth_result(login(*auth));
    } else if (auto w = s.take_write()) {
      s.write_done(run_sync(store.execute(std::move(w->events), w->wait)));
    } else if (s.has_buffered_commands()) {
      s.receive("");
    } else {
      return out;
    }
    out += s.take_output();
  }
}

}  // namespace a3::test
