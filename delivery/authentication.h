// Who sent a message received on the MX: SPF (RFC 7208, libspf2), DKIM
// (RFC 6376, libopendkim) and DMARC (RFC 7489, libopendmarc), evaluated at
// the end of DATA and rendered as an Authentication-Results header field
// (RFC 8601). The libraries ask DNS synchronously: finish() runs on a
// thread that may wait (the SMTP server's authentication pool), with a
// deadline per DNS query, never on an I/O thread.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "delivery/blocking_dns.h"
#include "delivery/dkim_verify.h"
#include "schemas/event.h"

namespace a3::delivery {

// The SMTP side of a message: the client and its envelope sender.
struct Identity {
  std::string ip;
  std::string helo;
  std::string mail_from;  // "" for the null reverse-path
};

enum class Disposition {
  deliver,
  quarantine,  // into the recipient's Junk
  reject,      // 550 5.7.1
};

struct AuthenticationResults {
  std::string spf = "none";
  std::string spf_domain;
  std::string spf_property;  // "smtp.mailfrom=..." or "smtp.helo=..."
  std::string spf_reason;    // libspf2's comment
  bool dkim_checked = true;  // false: the DKIM check is off
  std::vector<DkimResult> dkim;
  std::string dmarc = "none";
  std::string dmarc_policy;  // the From domain's p= (or sp=); "" without a record
  std::string from_domain;   // the (first, or the failing) author domain
  Disposition disposition = Disposition::deliver;
  std::string reject_reason;  // with Disposition::reject

  // "Authentication-Results: <authserv-id>; spf=...; dkim=...; dmarc=..." CRLF
  std::string header(std::string_view authserv_id) const;
  // For the message event and the audit trail.
  schemas::Authentication summary() const;
};

class Authenticator {
 public:
  struct Options {
    std::string hostname = "localhost";           // ours, in SPF's explanations
    std::vector<std::string> resolvers;           // as for Resolver; empty: /etc/resolv.conf
    std::chrono::milliseconds dns_timeout{5000};  // per query
    // All the lookups of one message: SPF's includes and DKIM's keys cannot
    // make a check last longer or ask more.
    std::chrono::milliseconds check_budget{20000};
    int max_queries = 100;
    bool spf = true;
    bool dkim = true;
    bool dmarc = true;
    bool dmarc_reject = true;      // p=reject refuses the message
    bool dmarc_quarantine = true;  // p=quarantine files it as junk
    std::string public_suffix_list = "/usr/share/publicsuffix/public_suffix_list.dat";
  };
  // Throws std::runtime_error with a message for operators.
  explicit Authenticator(Options options);
  ~Authenticator();
  Authenticator(const Authenticator&) = delete;
  Authenticator& operator=(const Authenticator&) = delete;

  // One message, fed as it arrives (cheap: hashing, and the header kept up
  // to a bound), finished once (blocks on DNS).
  class Check {
   public:
    virtual ~Check() = default;
    virtual void feed(std::string_view bytes) = 0;
    virtual AuthenticationResults finish(const Identity& who) = 0;
  };
  std::unique_ptr<Check> start() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// RFC 8601 5: the message without the Authentication-Results fields of its
// header that claim our authserv-id (forged, or from a loop), so that
// readers trust only the one we add. The body is left as it is.
std::string without_our_results(std::string_view message, std::string_view authserv_id);

// RFC 7489 6.6.1: the author domains of a message, the domains of the
// mailboxes of its From fields (lowercase, IDNs as A-labels, each once).
// DMARC judges each of them when there are several.
std::vector<std::string> author_domains(std::string_view header);

}  // namespace a3::delivery
