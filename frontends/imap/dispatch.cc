// The command table and the dispatcher. Every command is one entry: the
// states it is valid in (RFC 9051 3 and 6) and how the untagged reports of
// other sessions' changes go with it (RFC 9051 5.2, 7.5.1). The dispatcher
// checks both once, so a command file only parses, checks its own
// arguments, calls the store and answers. Each command's file is
// commands/<verb>.cc.
#include "common/ascii.h"
#include "common/command_table.h"
#include "frontends/imap/session.h"

namespace a3::imap {

namespace {

using When = Session::When;

}  // namespace

// clang-format off
const Session::Command Session::kCommands[] = {
    // name            handler                         when                     reports  holds
    //                                                                          changes  expunges
    {"CAPABILITY",     &Session::cmd_capability,       When::any,               false,   false},
    {"NOOP",           &Session::cmd_noop,             When::any,               true,    false},
    {"LOGOUT",         &Session::cmd_logout,           When::any,               false,   false},
    {"ID",             &Session::cmd_id,               When::any,               false,   false},
    {"STARTTLS",       &Session::cmd_starttls,         When::not_authenticated, false,   false},
    {"LOGIN",          &Session::cmd_login,            When::not_authenticated, false,   false},
    {"AUTHENTICATE",   &Session::cmd_authenticate,     When::not_authenticated, false,   false},
    {"ENABLE",         &Session::cmd_enable,           When::authenticated,     true,    false},
    {"SELECT",         &Session::cmd_select,           When::authenticated,     true,    false},
    {"EXAMINE",        &Session::cmd_examine,          When::authenticated,     true,    false},
    {"CREATE",         &Session::cmd_create,           When::authenticated,     true,    false},
    {"DELETE",         &Session::cmd_delete,           When::authenticated,     true,    false},
    {"RENAME",         &Session::cmd_rename,           When::authenticated,     true,    false},
    {"SUBSCRIBE",      &Session::cmd_subscribe,        When::authenticated,     true,    false},
    {"UNSUBSCRIBE",    &Session::cmd_unsubscribe,      When::authenticated,     true,    false},
    {"LIST",           &Session::cmd_list,             When::authenticated,     true,    false},
    {"LSUB",           &Session::cmd_lsub,             When::authenticated,     true,    false},
    {"NAMESPACE",      &Session::cmd_namespace,        When::authenticated,     true,    false},
    {"STATUS",         &Session::cmd_status,           When::authenticated,     true,    false},
    {"APPEND",         &Session::cmd_append,           When::authenticated,     true,    false},
    {"IDLE",           &Session::cmd_idle,             When::authenticated,     true,    false},
    {"GETQUOTA",       &Session::cmd_getquota,         When::authenticated,     true,    false},
    {"GETQUOTAROOT",   &Session::cmd_getquotaroot,     When::authenticated,     true,    false},
    {"SETQUOTA",       &Session::cmd_setquota,         When::authenticated,     true,    false},
    {"CHECK",          &Session::cmd_check,            When::selected,          true,    false},
    {"CLOSE",          &Session::cmd_close,            When::selected,          true,    false},
    {"UNSELECT",       &Session::cmd_unselect,         When::selected,          true,    false},
    {"EXPUNGE",        &Session::cmd_expunge,          When::selected,          true,    false},
    // RFC 9051 7.5.1: no EXPUNGE while answering FETCH, STORE or SEARCH
    // (sequence numbers would shift under the client); their UID forms may.
    {"SEARCH",         &Session::cmd_search,           When::selected,          true,    true},
    {"FETCH",          &Session::cmd_fetch,            When::selected,          true,    true},
    {"STORE",          &Session::cmd_store,            When::selected,          true,    true},
    {"COPY",           &Session::cmd_copy,             When::selected,          true,    false},
    {"MOVE",           &Session::cmd_move,             When::selected,          true,    false},
    {"UID FETCH",      &Session::cmd_uid_fetch,        When::selected,          true,    false},
    {"UID SEARCH",     &Session::cmd_uid_search,       When::selected,          true,    false},
    {"UID STORE",      &Session::cmd_uid_store,        When::selected,          true,    false},
    {"UID COPY",       &Session::cmd_uid_copy,         When::selected,          true,    false},
    {"UID MOVE",       &Session::cmd_uid_move,         When::selected,          true,    false},
    {"UID EXPUNGE",    &Session::cmd_uid_expunge,      When::selected,          true,    false},
};
// clang-format on

std::vector<std::string_view> Session::command_names() {
  return a3::command_names(kCommands);
}

// command = tag SP (command-any / command-auth / command-nonauth /
//           command-select) CRLF                          (RFC 9051 9)
void Session::dispatch(const std::string& command) {
  Parser p(command);
  std::string tag = "*";
  report_after_ = false;
  expunge_ok_ = true;
  metered_ = {"unknown", std::chrono::steady_clock::now(), ""};
  try {
    tag = p.tag();
    metered_.tag = tag;
    p.sp();
    std::string name = ascii::upper(p.atom());
    if (name == "UID") {
      // uid = "UID" SP (copy / move / fetch / search / store / uid-expunge)
      p.sp();
      name += " " + ascii::upper(p.atom());
    }
    if (name != "LOGOUT" && limits_.allow_request && !limits_.allow_request())
      return tagged(tag, "NO", "[LIMIT] Too many requests from your address; slow down");
    const Command* c = find_command(kCommands, name);
    if (!c) return bad(tag, name.starts_with("UID ") ? "Unknown UID command" : "Unknown command");
    metered_.command = c->name;
    switch (c->when) {
      case When::any:
        break;
      case When::not_authenticated:
        if (authenticated()) return bad(tag, "Already authenticated");
        break;
      case When::authenticated:
        if (!authenticated()) return bad(tag, "Log in first");
        break;
      case When::selected:
        if (!authenticated()) return bad(tag, "Log in first");
        if (!sel_) return bad(tag, "No mailbox selected");
        break;
    }
    report_after_ = c->reports_changes;
    expunge_ok_ = !c->holds_expunges;
    (this->*(c->run))(tag, p);
  } catch (const ParseError& e) {
    bad(tag, e.what());
  }
}

}  // namespace a3::imap
