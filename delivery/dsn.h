// RFC 3464 delivery status notifications: a multipart/report (RFC 6522)
// with a human-readable part, message/delivery-status and the original
// message (RET=FULL) or its header (RET=HDRS, or when it is large).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace a3::delivery {

struct DsnRecipient {
  std::string address;                   // the envelope recipient
  std::string orcpt;                     // RFC 3461 ORCPT ("rfc822;bob@example.net"), "" if none
  std::string action = "failed";         // failed | delayed | delivered | relayed
  std::string status;                    // "5.1.1" (RFC 3463)
  std::string remote_mta;                // host name, "" if none answered
  std::string diagnostic;                // the remote reply, or our reason
  std::int64_t will_retry_until_ms = 0;  // "delayed": when it will be given up
};

struct Dsn {
  std::string reporting_mta;  // our host name
  std::string to;             // the envelope sender being notified
  std::string envid;          // RFC 3461 ENVID, "" if none
  std::int64_t arrival_ms = 0;
  std::int64_t now_ms = 0;
  std::vector<DsnRecipient> recipients;
  bool headers_only = false;
  const std::string* original = nullptr;
};

// The RFC 3463 status in `reply` ("550 5.1.1 ..."), or one from its class.
std::string status_of(int code, const std::string& reply);

// The whole message, CRLF lines, ready to deliver.
std::string make_dsn(const Dsn& dsn);

}  // namespace a3::delivery
