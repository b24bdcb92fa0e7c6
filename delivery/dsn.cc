#include "delivery/dsn.h"

#include <algorithm>
#include <chrono>
#include <regex>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include "common/sha256.h"

namespace a3::delivery {

namespace {

constexpr std::size_t kMaxReturned = 1 << 20;  // larger originals: headers only

std::string rfc5322_date(std::int64_t ms) {
  const std::chrono::sys_seconds t{std::chrono::seconds(ms / 1000)};
  return fmt::format("{:%a, %d %b %Y %H:%M:%S} +0000", t);
}

// A header field value: printable ASCII only (a remote reply can add no
// header, and the report stays 7-bit), within the line limit (RFC 5322
// 2.1.1).
std::string field(std::string_view v) {
  std::string out;
  for (const char c : v.substr(0, 900)) {
    const auto u = static_cast<unsigned char>(c);
    out.push_back(u >= 0x80 ? '?' : (u < 0x20 || u == 0x7f) ? ' ' : c);
  }
  return out;
}

}  // namespace

std::string status_of(int code, const std::string& reply) {
  static const std::regex enhanced(R"(^\d{3}[ -]([245]\.\d{1,3}\.\d{1,3})\b)");
  std::smatch m;
  if (std::regex_search(reply, m, enhanced)) return m[1];
  if (code >= 500) return "5.0.0";
  return "4.0.0";
}

std::string make_dsn(const Dsn& d) {
  const std::string boundary =
      "=_a3dsn_" +
      hex(sha256(fmt::format("{}{}{}", d.to, d.now_ms, d.recipients.size()))).substr(0, 24);
  auto only = [&d](std::string_view action) {
    return std::all_of(d.recipients.begin(), d.recipients.end(),
                       [action](const DsnRecipient& r) { return r.action == action; });
  };
  const bool failed = std::any_of(d.recipients.begin(), d.recipients.end(),
                                  [](const DsnRecipient& r) { return r.action == "failed"; });
  const bool delayed = !failed && only("delayed");
  std::string m;
  m += fmt::format("From: Mail Delivery System <MAILER-DAEMON@{}>\r\n", d.reporting_mta);
  m += fmt::format("To: <{}>\r\n", d.to);
  m += fmt::format("Subject: {}\r\n", failed    ? "Undelivered Mail Returned to Sender"
                                      : delayed ? "Delayed Mail (still being retried)"
                                                : "Delivery Status Notification");
  m += fmt::format("Date: {}\r\n", rfc5322_date(d.now_ms));
  m += fmt::format("Message-ID: <{}@{}>\r\n", boundary.substr(8), d.reporting_mta);
  m += "Auto-Submitted: auto-replied\r\n";  // RFC 3834
  m += "MIME-Version: 1.0\r\n";
  m += fmt::format(
      "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"{}\"\r\n",
      boundary);
  m += "\r\nThis is a MIME-encapsulated message.\r\n\r\n";
  // 1. For people.
  m += fmt::format("--{}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n", boundary);
  m += fmt::format("This is the mail system at host {}.\r\n\r\n", d.reporting_mta);
  if (failed) {
    m += "Your message could not be delivered to one or more recipients.\r\n"
         "It is attached below.\r\n\r\n";
  } else if (delayed) {
    m += "Your message could not be delivered yet to the recipients below.\r\n"
         "It is still being retried; you need not send it again.\r\n\r\n";
  } else if (only("delivered")) {
    m += "Your message was delivered to the mailboxes of the recipients below.\r\n\r\n";
  } else if (only("relayed")) {
    m += "Your message was delivered to the servers of the recipients below,\r\n"
         "which do not report delivery status: no further notice will come.\r\n\r\n";
  } else {
    m += "This is a report about your message; each recipient's status is below.\r\n\r\n";
  }
  for (const auto& r : d.recipients)
    m += fmt::format("<{}>: {}\r\n", r.address, field(r.diagnostic));
  m += "\r\n";
  // 2. For programs (RFC 3464 2.2, 2.3).
  m += fmt::format("--{}\r\nContent-Type: message/delivery-status\r\n\r\n", boundary);
  if (!d.envid.empty()) m += fmt::format("Original-Envelope-Id: {}\r\n", field(d.envid));
  m += fmt::format("Reporting-MTA: dns; {}\r\n", d.reporting_mta);
  if (d.arrival_ms) m += fmt::format("Arrival-Date: {}\r\n", rfc5322_date(d.arrival_ms));
  for (const auto& r : d.recipients) {
    m += "\r\n";
    if (!r.orcpt.empty()) m += fmt::format("Original-Recipient: {}\r\n", field(r.orcpt));
    m += fmt::format("Final-Recipient: rfc822; {}\r\n", field(r.address));
    m += fmt::format("Action: {}\r\n", r.action);
    m += fmt::format("Status: {}\r\n", r.status);
    if (!r.remote_mta.empty()) m += fmt::format("Remote-MTA: dns; {}\r\n", field(r.remote_mta));
    if (!r.diagnostic.empty())
      m += fmt::format("Diagnostic-Code: {}; {}\r\n", r.remote_mta.empty() ? "x-a3" : "smtp",
                       field(r.diagnostic));
    m += fmt::format("Last-Attempt-Date: {}\r\n", rfc5322_date(d.now_ms));
    if (r.will_retry_until_ms)
      m += fmt::format("Will-Retry-Until: {}\r\n", rfc5322_date(r.will_retry_until_ms));
  }
  m += "\r\n";
  // 3. The original (RFC 3462 text/rfc822-headers when only its header).
  if (d.original) {
    const std::string& o = *d.original;
    const bool headers = d.headers_only || o.size() > kMaxReturned;
    if (headers) {
      const auto end = o.find("\r\n\r\n");
      m += fmt::format("--{}\r\nContent-Type: text/rfc822-headers\r\n\r\n", boundary);
      m += end == std::string::npos ? o : o.substr(0, end + 2);
    } else {
      m += fmt::format("--{}\r\nContent-Type: message/rfc822\r\n\r\n", boundary);
      m += o;
    }
    if (!m.ends_with("\r\n")) m += "\r\n";
  }
  m += fmt::format("--{}--\r\n", boundary);
  return m;
}

}  // namespace a3::delivery
