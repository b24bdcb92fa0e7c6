#include "frontends/smtp/session.h"

#include "frontends/net/sasl.h"

#include <algorithm>
#include <charconv>
#include <utility>

#include <fmt/format.h>

#include "common/ascii.h"
#include "common/command_table.h"
#include "common/metrics.h"
#include "frontends/smtp/replies.h"

namespace a3::smtp {

namespace {

bool has_bare_cr(std::string_view line) {
  return line.find('\r') != std::string_view::npos;
}

}  // namespace

Session::Session(SessionInfo info, Limits limits, Policy& policy)
    : info_(std::move(info)), limits_(limits), policy_(policy) {}

std::string Session::greeting() const {
  if (!info_.refused.empty()) return fmt::format("554 {} {}\r\n", info_.hostname, info_.refused);
  return fmt::format("220 {} ESMTP A3Mailer\r\n", info_.hostname);
}

void Session::receive(std::string_view bytes) {
  if (state_ == State::closed || state_ == State::tls_pending) return;
  in_.append(bytes);
  process();
}

std::string Session::take_output() {
  return std::exchange(out_, {});
}

void Session::reply(std::string_view text) {
  out_.append(text);
  out_.append("\r\n");
  // The last line of a command's reply ("250 ...", not "250-...").
  if (!metered_.command.empty() && text.size() >= 3 && (text.size() == 3 || text[3] == ' ')) {
    metrics::command_done("smtp", metered_.command, fmt::format("{}xx", text[0]),
                          metrics::seconds_since(metered_.start));
    metered_.command = {};
  }
}

void Session::error(std::string_view text) {
  reply(text);
  if (++errors_ >= limits_.max_errors) {
    reply("421 4.7.0 Too many errors, closing connection");
    state_ = State::closed;
  }
}

void Session::reset_transaction() {
  ++transaction_;
  const std::string helo = env_.helo;
  env_ = Envelope{};
  env_.helo = helo;
  chunking_ = false;
  data_.clear();
  data_size_ = 0;
  data_too_big_ = data_bare_lf_ = data_long_line_ = false;
  data_in_header_ = true;
  data_hops_ = 0;
  hop_line_.clear();
  line_start_ = true;
}

// Splits the buffer into lines (or BDAT chunks) and dispatches them, until
// input runs out or the session must wait.
void Session::process() {
  // Lines are consumed by moving an offset; the buffer is compacted once at
  // the end, so many short lines cost linear time.
  std::size_t pos = 0;
  retry_ = false;
  auto in_sasl = [this] {
    return state_ == State::auth_plain || state_ == State::auth_user || state_ == State::auth_pass;
  };
  while (!discard_input_ && (state_ == State::command || state_ == State::data ||
                             state_ == State::bdat || in_sasl())) {
    if (state_ == State::bdat) {
      const std::size_t n = std::min(bdat_left_, in_.size() - pos);
      if (data_size_ + n <= limits_.max_message_size) {
        count_hops(std::string_view(in_).substr(pos, n));
        data_.append(in_, pos, n);
        data_size_ += n;
      } else {
        data_too_big_ = true;
      }
      pos += n;
      bdat_left_ -= n;
      if (bdat_left_ > 0) break;
      state_ = State::command;
      if (bdat_discard_) {
        bdat_discard_ = false;  // refused before it came: the reply was sent
        data_too_big_ = false;
      } else if (bdat_last_) {
        finish_message();
      } else {
        reply(data_too_big_ ? "552 5.3.4 Message too big"
                            : fmt::format("250 2.0.0 {} octets received", data_size_));
      }
      continue;
    }
    const std::size_t lf = in_.find('\n', pos);
    const bool text_mode = state_ == State::data;
    const std::size_t limit = text_mode ? limits_.max_text_line : limits_.max_command_line;
    if (lf == std::string::npos) {
      // No complete line: bound what a client can make us hold.
      const std::size_t avail = in_.size() - pos;
      if (avail > limit) {
        if (!text_mode) {
          if (!skipping_long_line_) error("500 5.5.2 Line too long");
          skipping_long_line_ = true;
          if (in_sasl()) state_ = State::command;  // the exchange is cancelled
          pos = in_.size();
        } else {
          // Counted for size; the message is refused at its end. A trailing
          // CR stays buffered: it may be the start of this line's CRLF.
          const std::size_t take = in_.back() == '\r' ? avail - 1 : avail;
          data_long_line_ = true;
          if (data_size_ + take > limits_.max_message_size) {
            data_too_big_ = true;
          } else if (!data_too_big_) {
            data_.append(in_, pos, take);
            data_size_ += take;
          }
          line_start_ = false;
          pos += take;
        }
      }
      break;
    }
    const std::string_view line(in_.data() + pos, lf + 1 - pos);
    pos = lf + 1;
    ++lines_;
    const bool crlf = line.size() >= 2 && line[line.size() - 2] == '\r';
    const std::string_view text = line.substr(0, line.size() - (crlf ? 2 : 1));
    if (skipping_long_line_ && !text_mode) {
      skipping_long_line_ = false;  // the rest of an over-long command line
      continue;
    }
    if (in_sasl()) {
      if (line.size() > limits_.max_command_line) {
        state_ = State::command;
        error("500 5.5.2 Line too long");
      } else {
        sasl_line(text);
      }
      continue;
    }
    if (state_ == State::command) {
      if (line.size() > limits_.max_command_line) {
        error("500 5.5.2 Line too long");
      } else if ((!crlf || has_bare_cr(text)) && limits_.reject_bare_lf) {
        // RFC 5321 2.3.8: lines end with CRLF; a bare CR or LF is refused.
        error("500 5.5.2 Bare CR or LF is not allowed (RFC 5321 2.3.8)");
      } else {
        command(text);
        if (retry_) {
          pos -= line.size();  // not consumed: it runs again elsewhere
          break;
        }
      }
    } else {
      if (line.size() > limits_.max_text_line) data_long_line_ = true;
      data_line(text, crlf);
    }
  }
  if (discard_input_) {
    in_.clear();
    discard_input_ = false;
  } else {
    in_.erase(0, pos);
  }
}

// One line of DATA (without its line ending). The message ends only at a "."
// line that follows a CRLF and ends with CRLF (RFC 5321 4.1.1.4): with a bare
// LF anywhere, "\n.\n" or "\n.\r\n" are data, never an end.
void Session::data_line(std::string_view line, bool crlf) {
  if (line == "." && crlf && line_start_) {
    state_ = State::command;
    finish_message();
    return;
  }
  if (!crlf || has_bare_cr(line)) data_bare_lf_ = true;
  // RFC 5321 4.5.2: a leading dot was doubled by the client.
  if (line_start_ && line.starts_with(".")) line.remove_prefix(1);
  if (line_start_) {
    count_hops(line);
    count_hops("\n");
  }
  if (data_size_ + line.size() + 2 > limits_.max_message_size) {
    data_too_big_ = true;  // keep reading to the end, storing nothing more
  } else if (!data_too_big_) {
    const std::size_t before = data_.size();
    data_.append(line);
    data_.append(crlf ? "\r\n" : "\n");
    data_size_ += data_.size() - before;
  }
  line_start_ = crlf;
}

// Counts the header's Received: fields in message bytes as they come (DATA
// line by line, BDAT in chunks of any size), until the empty line.
void Session::count_hops(std::string_view bytes) {
  for (const char c : bytes) {
    if (!data_in_header_) return;
    if (c == '\n') {
      if (hop_line_.empty()) {
        data_in_header_ = false;  // the empty line: the body begins
      } else if (ascii::istarts_with(hop_line_, "Received:")) {
        ++data_hops_;
      }
      hop_line_.clear();
    } else if (c != '\r') {
      if (hop_line_.size() < 9) hop_line_.push_back(c);  // enough for "Received:"
    }
  }
}

void Session::finish_message() {
  const std::size_t bytes = data_size_;
  if (data_too_big_) {
    metrics::smtp_message("rejected", "size", bytes);
    reply("552 5.3.4 Message size exceeds fixed maximum message size");
  } else if (data_long_line_) {
    metrics::smtp_message("rejected", "line_length", bytes);
    reply(fmt::format("550 5.6.0 Message has a line longer than {} octets (RFC 5321 4.5.3.1.6)",
                      limits_.max_text_line));
  } else if (data_bare_lf_ && limits_.reject_bare_lf) {
    metrics::smtp_message("rejected", "bare_lf", bytes);
    reply("550 5.6.0 Message contains a bare CR or LF (RFC 5321 2.3.8)");
  } else if (data_hops_ > kMaxHops) {
    metrics::smtp_message("rejected", "loop", bytes);
    reply(fmt::format("554 5.4.6 Too many hops ({} Received: fields): a mail loop?", data_hops_));
  } else {
    pending_ = Message{env_, std::move(data_)};
    pending_bytes_ = bytes;
    state_ = State::awaiting_delivery;
    return;
  }
  reset_transaction();
}

bool Session::data_refused() const {
  return data_too_big_ || data_long_line_ || (data_bare_lf_ && limits_.reject_bare_lf) ||
         data_hops_ > kMaxHops;
}

std::string Session::take_data() {
  if (!in_message()) return {};
  return std::exchange(data_, std::string());
}

std::optional<Message> Session::take_message() {
  if (state_ != State::awaiting_delivery || !pending_) return std::nullopt;
  return std::exchange(pending_, std::nullopt);
}

void Session::delivered(bool durable) {
  if (state_ != State::awaiting_delivery) return;
  // 250 only once every event of the message is durable; otherwise a
  // temporary failure, so the client keeps it and retries.
  if (!durable) return not_delivered(projections::errc::unavailable);
  metrics::smtp_message("accepted", "", pending_bytes_);
  if (limits_.message_accepted) limits_.message_accepted(auth_user_);
  reply("250 2.0.0 Message accepted for delivery");
  reset_transaction();
  state_ = State::command;
  process();  // pipelined commands waiting behind the message
}

void Session::not_delivered(projections::errc why) {
  refused(reply_line(why, Stage::data),
          why == projections::errc::unavailable ? "log_unavailable" : "store");
}

void Session::refused(std::string_view reply_line, std::string_view reason) {
  if (state_ != State::awaiting_delivery) return;
  metrics::smtp_message("rejected", reason, pending_bytes_);
  reply(reply_line);
  reset_transaction();
  state_ = State::command;
  process();
}

void Session::tls_established() {
  if (state_ != State::tls_pending) return;
  // RFC 3207 4.2: forget everything learned before TLS.
  info_.tls_active = true;
  have_helo_ = false;
  auth_user_.clear();  // a plaintext login does not carry over either
  env_ = Envelope{};
  reset_transaction();
  in_.clear();
  state_ = State::command;
}

// clang-format off
const Session::Command Session::kCommands[] = {
    // verb       handler                 needs   needs   no
    //                                    HELO    MAIL    arguments
    {"EHLO",      &Session::cmd_ehlo,     false,  false,  false},
    {"HELO",      &Session::cmd_helo,     false,  false,  false},
    {"MAIL",      &Session::cmd_mail,     true,   false,  false},
    {"RCPT",      &Session::cmd_rcpt,     true,   true,   false},
    {"DATA",      &Session::cmd_data,     true,   true,   true},
    // RFC 3030 2: a refused BDAT's chunk must still be read, so BDAT checks
    // the transaction itself.
    {"BDAT",      &Session::cmd_bdat,     false,  false,  false},
    {"RSET",      &Session::cmd_rset,     false,  false,  true},
    {"NOOP",      &Session::cmd_noop,     false,  false,  false},
    {"QUIT",      &Session::cmd_quit,     false,  false,  false},
    {"VRFY",      &Session::cmd_vrfy,     false,  false,  false},
    {"EXPN",      &Session::cmd_expn,     false,  false,  false},
    {"HELP",      &Session::cmd_help,     false,  false,  false},
    {"STARTTLS",  &Session::cmd_starttls, false,  false,  true},
    {"AUTH",      &Session::cmd_auth,     true,   false,  false},
};
// clang-format on

std::vector<std::string_view> Session::command_names() {
  return a3::command_names(kCommands);
}

// command = verb [SP parameters] CRLF (RFC 5321 4.1.1); each verb's file is
// commands/<verb>.cc. The table's checks are made once, here.
void Session::command(std::string_view line) {
  const auto space = line.find(' ');
  const std::string verb = ascii::upper(line.substr(0, space));
  const std::string_view arg =
      space == std::string_view::npos ? "" : ascii::trim(line.substr(space + 1));
  const Command* c = find_command(kCommands, verb);
  metered_ = {c ? c->name : std::string_view("unknown"), std::chrono::steady_clock::now()};
  if (verb != "QUIT" && limits_.allow_request && !limits_.allow_request())
    return reply("451 4.7.0 Too many requests from your address; slow down");
  // After a 554 greeting, only QUIT (RFC 5321 3.1).
  if (!info_.refused.empty() && verb != "QUIT")
    return error(fmt::format("503 5.7.1 {}; only QUIT is accepted", info_.refused));
  if (!c) return error("500 5.5.2 Command not recognised");
  if (c->no_arguments && !arg.empty())
    return error(fmt::format("501 5.5.4 {} takes no arguments", verb));
  if (c->needs_helo && !have_helo_) return error("503 5.5.1 Say EHLO first");
  if (c->needs_mail && !env_.mail_from) return error("503 5.5.1 MAIL first");
  (this->*(c->run))(arg);
}

std::optional<AuthRequest> Session::take_auth() {
  if (state_ != State::awaiting_auth) return std::nullopt;
  return std::exchange(auth_, std::nullopt);
}

}  // namespace a3::smtp
