#include "delivery/authentication.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>

#include <fmt/format.h>
#include <libpsl.h>
#include <opendmarc/dmarc.h>
#include <spdlog/spdlog.h>

#include "common/ascii.h"
#include "delivery/spf.h"
#include "mime/mime.h"

namespace a3::delivery {

namespace {

// ---- DMARC ----

bool is_dmarc_record(std::string_view txt) {
  // RFC 7489 6.4: "v" *WSP "=" *WSP "DMARC1" first; other records are not
  // DMARC records.
  auto skip = [&txt] {
    while (!txt.empty() && (txt.front() == ' ' || txt.front() == '\t'))
      txt.remove_prefix(1);
  };
  skip();
  if (!txt.starts_with("v")) return false;
  txt.remove_prefix(1);
  skip();
  if (!txt.starts_with("=")) return false;
  txt.remove_prefix(1);
  skip();
  if (!txt.starts_with("DMARC1")) return false;
  txt.remove_prefix(6);
  skip();
  return txt.empty() || txt.front() == ';';
}

struct DmarcLookup {
  DnsStatus status = DnsStatus::nodata;
  std::string record;
  std::string found_at;  // the domain whose _dmarc answered
  bool several = false;  // more than one record: none applies
};

DmarcLookup dmarc_record(const BlockingDns& dns, const std::string& domain,
                         BlockingDns::Budget& budget) {
  DmarcLookup out;
  const auto txt = dns.txt("_dmarc." + domain, budget);
  out.status = txt.status;
  if (txt.status != DnsStatus::ok) return out;
  int found = 0;
  for (const auto& r : txt.records) {
    if (!is_dmarc_record(r)) continue;
    if (found++ == 0) out.record = r;
  }
  if (found == 0) out.status = DnsStatus::nodata;
  out.several = found > 1;
  out.found_at = domain;
  return out;
}

unsigned char* uc(const std::string& s) {
  return reinterpret_cast<unsigned char*>(const_cast<char*>(s.c_str()));
}

// ---- Authentication-Results (RFC 8601) ----

// A comment: printable ASCII, without what would end or nest it.
std::string comment(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 200)) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f || c == '(' || c == ')' || c == '\\') continue;
    out.push_back(c);
  }
  return out;
}

// A property's value, at most 255 octets: as is when it is an RFC 2045
// token or an address of atoms, a quoted-string otherwise (RFC 8601 2.2).
std::string pvalue(std::string_view s) {
  s = s.substr(0, 255);
  bool plain = !s.empty();
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    plain = plain && (ascii::is_alpha(c) || ascii::is_digit(c) || u >= 0x80 ||
                      (c != '\0' && std::strchr("!#$%&'*+-^_`{|}~.@", c)));
  }
  if (plain) return std::string(s);
  std::string out = "\"";
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) continue;
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out + "\"";
}

}  // namespace

std::vector<std::string> author_domains(std::string_view header) {
  std::vector<std::string> out;
  for (const auto& a : mime::authors(header).addresses) {
    const auto at = a.rfind('@');
    if (at == std::string::npos) continue;
    std::string domain = ascii::lower(a.substr(at + 1));
    while (!domain.empty() && domain.back() == '.')
      domain.pop_back();
    if (!domain.empty() && std::find(out.begin(), out.end(), domain) == out.end())
      out.push_back(std::move(domain));
  }
  return out;
}

namespace {

// RFC 8601 2.2: the authserv-id of an Authentication-Results value: after
// optional comments and whitespace, a token or a quoted-string.
std::string authserv_id_of(std::string_view v) {
  std::size_t i = 0;
  for (;;) {
    while (i < v.size() && (v[i] == ' ' || v[i] == '\t' || v[i] == '\r' || v[i] == '\n'))
      ++i;
    if (i >= v.size() || v[i] != '(') break;
    int depth = 0;  // a comment, nested ones in it
    for (; i < v.size(); ++i) {
      if (v[i] == '\\') {
        ++i;
      } else if (v[i] == '(') {
        ++depth;
      } else if (v[i] == ')' && --depth == 0) {
        ++i;
        break;
      }
    }
  }
  std::string id;
  if (i < v.size() && v[i] == '"') {
    for (++i; i < v.size() && v[i] != '"'; ++i) {
      if (v[i] == '\\' && i + 1 < v.size()) ++i;
      id.push_back(v[i]);
    }
    return id;
  }
  while (i < v.size() && !std::strchr(" \t\r\n;(", v[i]))
    id.push_back(v[i++]);
  return id;
}

}  // namespace

std::string without_our_results(std::string_view message, std::string_view authserv_id) {
  const auto end = message.find("\r\n\r\n");
  const std::size_t head_end = end == std::string_view::npos ? message.size() : end + 2;
  constexpr std::string_view kName = "authentication-results";
  auto line_end = [&](std::size_t from) {
    const auto lf = message.find('\n', from);
    return lf == std::string_view::npos || lf >= head_end ? head_end : lf + 1;
  };
  std::string out;
  out.reserve(message.size());
  std::size_t pos = 0;
  while (pos < head_end) {
    // One field: its first line and the folded ones after it.
    std::size_t next = line_end(pos);
    while (next < head_end && (message[next] == ' ' || message[next] == '\t'))
      next = line_end(next);
    const std::string_view field = message.substr(pos, next - pos);
    bool ours = false;
    if (ascii::istarts_with(field, kName)) {
      // The name, optional whitespace (RFC 5322 4.5.8), the colon.
      std::size_t colon = kName.size();
      while (colon < field.size() && (field[colon] == ' ' || field[colon] == '\t'))
        ++colon;
      if (colon < field.size() && field[colon] == ':')
        ours = ascii::iequals(authserv_id_of(field.substr(colon + 1)), authserv_id);
    }
    if (!ours) out.append(field);
    pos = next;
  }
  out.append(message.substr(head_end));
  return out;
}

std::string AuthenticationResults::header(std::string_view authserv_id) const {
  std::string out = fmt::format("Authentication-Results: {}", authserv_id);
  auto resinfo = [&out](const std::string& text) { out += ";\r\n\t" + text; };
  if (!spf.empty()) {
    std::string r = "spf=" + spf;
    if (!spf_reason.empty()) r += " (" + comment(spf_reason) + ")";
    if (!spf_property.empty()) r += " " + spf_property;
    resinfo(r);
  }
  if (dkim_checked && dkim.empty()) resinfo("dkim=none");
  for (const auto& d : dkim) {
    std::string r = "dkim=" + d.result;
    if (!d.reason.empty()) r += " (" + comment(d.reason) + ")";
    if (!d.domain.empty()) r += " header.d=" + pvalue(d.domain);
    if (!d.selector.empty()) r += " header.s=" + pvalue(d.selector);
    if (!d.b.empty()) r += " header.b=" + pvalue(d.b);
    resinfo(r);
  }
  if (!dmarc.empty()) {
    std::string r = "dmarc=" + dmarc;
    if (!dmarc_policy.empty()) r += " (p=" + dmarc_policy + ")";
    if (!from_domain.empty()) r += " header.from=" + pvalue(from_domain);
    resinfo(r);
  }
  return out + "\r\n";
}

schemas::Authentication AuthenticationResults::summary() const {
  schemas::Authentication a;
  a.spf = spf;
  a.spf_domain = spf_domain;
  a.dkim = !dkim_checked ? "" : dkim.empty() ? "none" : dkim.front().result;
  for (const auto& d : dkim) {
    if (d.result != "pass") continue;
    a.dkim = "pass";
    a.dkim_domains.push_back(ascii::lower(d.domain));
  }
  a.dmarc = dmarc;
  a.dmarc_policy = dmarc_policy;
  a.from_domain = from_domain;
  a.disposition = disposition == Disposition::quarantine ? "quarantine"
                  : disposition == Disposition::reject   ? "reject"
                                                         : "deliver";
  return a;
}

struct Authenticator::Impl {
  Options options;
  BlockingDns dns;
  std::unique_ptr<DkimVerifier> dkim;
  const psl_ctx_t* psl = nullptr;

  explicit Impl(Options o) : options(std::move(o)), dns(options.resolvers, options.dns_timeout) {
    if (options.dkim) dkim = std::make_unique<DkimVerifier>(dns);
    if (options.dmarc) init_dmarc();
  }
  ~Impl() {
    if (psl) psl_free(const_cast<psl_ctx_t*>(psl));
  }

  void init_dmarc() {
    psl = psl_load_file(options.public_suffix_list.c_str());
    if (!psl) {
      spdlog::warn("dmarc: cannot read the public suffix list {}; using the one built into libpsl",
                   options.public_suffix_list);
      psl = psl_builtin();
    }
    // libopendmarc's state is the process's: one initialisation.
    static std::once_flag once;
    const std::string list = options.public_suffix_list;
    std::call_once(once, [&list] {
      static OPENDMARC_LIB_T lib{};
      lib.tld_type = OPENDMARC_TLD_TYPE_MOZILLA;
      std::snprintf(reinterpret_cast<char*>(lib.tld_source_file), sizeof lib.tld_source_file, "%s",
                    list.c_str());
      if (opendmarc_policy_library_init(&lib) != DMARC_PARSE_OKAY) {
        spdlog::warn("dmarc: libopendmarc cannot read {}; aligning by exact domains", list);
        lib = OPENDMARC_LIB_T{};
        lib.tld_type = OPENDMARC_TLD_TYPE_NONE;
        opendmarc_policy_library_init(&lib);
      }
    });
  }

  // RFC 7489 3.2: the organizational domain, from the public suffix list.
  std::string organizational(const std::string& domain) const {
    const char* r = psl ? psl_registrable_domain(psl, domain.c_str()) : nullptr;
    return r ? std::string(r) : domain;
  }
  // RFC 7489 3.1: relaxed alignment.
  bool aligned(std::string_view a, const std::string& b) const {
    return organizational(ascii::lower(a)) == organizational(b);
  }

  void check_spf(const Identity& who, BlockingDns::Budget& budget,
                 AuthenticationResults& out) const {
    // RFC 7208 2.4: the null sender's identity is postmaster@HELO.
    const bool null_sender = who.mail_from.empty();
    const auto at = who.mail_from.rfind('@');
    out.spf_domain = ascii::lower(null_sender               ? who.helo
                                  : at == std::string::npos ? who.mail_from
                                                            : who.mail_from.substr(at + 1));
    out.spf_property =
        null_sender ? "smtp.helo=" + pvalue(who.helo) : "smtp.mailfrom=" + pvalue(who.mail_from);
    const auto r = spf(dns, budget, who.ip, who.helo, who.mail_from, options.hostname);
    out.spf = r.result;
    out.spf_reason = r.reason;
  }

  // DMARC for one author domain (RFC 7489 6.6).
  void check_dmarc(const Identity& who, const std::string& from, BlockingDns::Budget& budget,
                   AuthenticationResults& out) const {
    out.from_domain = from;
    DmarcLookup found = dmarc_record(dns, from, budget);
    const std::string org = organizational(from);
    bool at_org = false;
    if ((found.status == DnsStatus::nodata || found.status == DnsStatus::nxdomain) && org != from) {
      found = dmarc_record(dns, org, budget);
      at_org = true;
    }
    if (found.status == DnsStatus::temporary) {
      out.dmarc = "temperror";
      return;
    }
    if (found.status != DnsStatus::ok || found.several) {
      out.dmarc = "none";
      return;
    }
    const bool v6 = who.ip.find(':') != std::string::npos;
    DMARC_POLICY_T* pctx = opendmarc_policy_connect_init(uc(who.ip), v6);
    if (!pctx) {
      out.dmarc = "temperror";
      return;
    }
    opendmarc_policy_store_from_domain(pctx, uc(from));
    // The record first, so that alignment modes are known when the results
    // are stored; only passing results (libopendmarc keeps one DKIM domain).
    const std::string org_domain = at_org ? found.found_at : std::string();
    if (opendmarc_policy_store_dmarc(pctx, uc(found.record), uc(from),
                                     at_org ? uc(org_domain) : nullptr) != DMARC_PARSE_OKAY) {
      opendmarc_policy_connect_shutdown(pctx);
      out.dmarc = "permerror";
      return;
    }
    if (out.spf == "pass") {
      const std::string human = out.spf;
      opendmarc_policy_store_spf(
          pctx, uc(out.spf_domain), DMARC_POLICY_SPF_OUTCOME_PASS,
          who.mail_from.empty() ? DMARC_POLICY_SPF_ORIGIN_HELO : DMARC_POLICY_SPF_ORIGIN_MAILFROM,
          uc(human));
    }
    for (const auto& d : out.dkim) {
      if (d.result != "pass") continue;
      opendmarc_policy_store_dkim(pctx, uc(d.domain), uc(d.selector),
                                  DMARC_POLICY_DKIM_OUTCOME_PASS, uc(d.result));
    }
    const int verdict = opendmarc_get_policy_to_enforce(pctx);
    int pct = 100, p = 0, sp = 0;
    opendmarc_policy_fetch_pct(pctx, &pct);
    opendmarc_policy_fetch_p(pctx, &p);
    opendmarc_policy_fetch_sp(pctx, &sp);
    opendmarc_policy_connect_shutdown(pctx);
    // The policy that applies to the From domain (RFC 7489 6.3: sp= for a
    // subdomain of the domain that published it, when given).
    const int published = at_org && sp != DMARC_RECORD_P_UNSPECIFIED ? sp : p;
    out.dmarc_policy = published == DMARC_RECORD_P_REJECT       ? "reject"
                       : published == DMARC_RECORD_P_QUARANTINE ? "quarantine"
                                                                : "none";
    if (verdict == DMARC_POLICY_PASS) {
      out.dmarc = "pass";
      return;
    }
    if (verdict != DMARC_POLICY_REJECT && verdict != DMARC_POLICY_QUARANTINE &&
        verdict != DMARC_POLICY_NONE) {
      out.dmarc = "none";
      out.dmarc_policy.clear();
      return;
    }
    // An aligned identity that could not be checked now might have passed:
    // a temporary error, never a refusal (RFC 7489 6.6.3).
    bool unknown = out.spf == "temperror" && aligned(out.spf_domain, from);
    for (const auto& d : out.dkim)
      unknown = unknown || (d.result == "temperror" && aligned(d.domain, from));
    if (unknown) {
      out.dmarc = "temperror";
      return;
    }
    out.dmarc = "fail";
    // RFC 7489 6.6.4: pct= applies the policy to that share of failing
    // mail; the rest gets the next policy down.
    static thread_local std::mt19937 rng{std::random_device{}()};
    std::string policy = out.dmarc_policy;
    if (pct < 100 && static_cast<int>(rng() % 100) >= pct)
      policy = policy == "reject" ? "quarantine" : "none";
    if (policy == "reject" && options.dmarc_reject) {
      out.disposition = Disposition::reject;
      out.reject_reason = fmt::format("Rejected by the DMARC policy of {}", from);
    } else if ((policy == "reject" || policy == "quarantine") && options.dmarc_quarantine) {
      out.disposition = Disposition::quarantine;
    }
  }

  // How bad a DMARC outcome is, to keep the worst of several authors'.
  static int severity(const AuthenticationResults& r) {
    if (r.disposition == Disposition::reject) return 6;
    if (r.disposition == Disposition::quarantine) return 5;
    if (r.dmarc == "fail") return 4;
    if (r.dmarc == "temperror") return 3;
    if (r.dmarc == "permerror") return 2;
    if (r.dmarc == "none") return 1;
    return 0;  // pass
  }

  // RFC 7489 6.6.1: each author domain is judged; the strictest outcome
  // stands. None: permerror (the message names no author).
  void check_authors(const Identity& who, const std::vector<std::string>& authors,
                     BlockingDns::Budget& budget, AuthenticationResults& out) const {
    if (authors.empty()) {
      out.dmarc = "permerror";
      return;
    }
    std::optional<AuthenticationResults> worst;
    for (const auto& from : authors) {
      AuthenticationResults r = out;
      check_dmarc(who, from, budget, r);
      if (!worst || severity(r) > severity(*worst)) worst = std::move(r);
    }
    out = std::move(*worst);
  }
};

namespace {

class MessageCheck : public Authenticator::Check {
 public:
  // The header is held (for the From field) until its end, and only then
  // given to libopendkim, which keeps it whole: bounded here, with the
  // number of signatures it would parse.
  static constexpr std::size_t kMaxHeader = 256 * 1024;
  static constexpr int kMaxSignatureFields = 16;

  explicit MessageCheck(const Authenticator::Impl& impl)
      : impl_(impl), dkim_(impl.dkim ? impl.dkim->start() : nullptr) {}

  void feed(std::string_view bytes) override {
    if (header_done_) {
      if (dkim_ && dkim_skipped_.empty()) dkim_->feed(bytes);
      return;
    }
    const std::size_t before = header_.size();
    header_.append(bytes.substr(0, kMaxHeader + 4 - std::min(kMaxHeader + 4, header_.size())));
    // The blank line may straddle two pieces: look from a little before.
    const auto end = header_.find("\r\n\r\n", before >= 3 ? before - 3 : 0);
    if (end != std::string::npos && end + 4 <= kMaxHeader) {
      // Whatever followed the header in this piece is body.
      const std::size_t taken = header_.size() - before;
      std::string_view rest = bytes.substr(std::min(taken, bytes.size()));
      std::string body = header_.substr(end + 4);
      header_.resize(end + 4);
      header_complete();
      if (dkim_ && dkim_skipped_.empty()) {
        dkim_->feed(body);
        dkim_->feed(rest);
      }
    } else if (header_.size() > kMaxHeader) {
      header_done_ = true;
      header_too_large_ = true;
      header_.resize(kMaxHeader);
      dkim_skipped_ = "header too large";
    }
  }

  AuthenticationResults finish(const Identity& who) override {
    BlockingDns::MayBlock may_block;
    auto budget = BlockingDns::Budget::of(impl_.options.check_budget, impl_.options.max_queries);
    if (!header_done_) header_complete();  // a message without a body
    AuthenticationResults out;
    out.spf.clear();
    out.dmarc.clear();
    if (impl_.options.spf) impl_.check_spf(who, budget, out);
    out.dkim_checked = dkim_ != nullptr;
    if (dkim_ && dkim_skipped_.empty()) {
      out.dkim = dkim_->finish(budget);
    } else if (dkim_) {
      out.dkim.push_back({"permerror", "", "", "", dkim_skipped_});
    }
    if (impl_.options.dmarc) {
      impl_.check_authors(who, authors_, budget, out);
      // A header too large to read whole hides its From field: junk.
      if (header_too_large_) {
        out.dmarc = "permerror";
        if (impl_.options.dmarc_quarantine) out.disposition = Disposition::quarantine;
      }
    }
    return out;
  }

 private:
  void header_complete() {
    header_done_ = true;
    authors_ = author_domains(header_);
    if (!dkim_) return;
    int signatures = 0;
    for (std::size_t pos = 0; pos < header_.size();) {
      if (ascii::istarts_with(std::string_view(header_).substr(pos), "dkim-signature:"))
        ++signatures;
      const auto lf = header_.find('\n', pos);
      pos = lf == std::string::npos ? header_.size() : lf + 1;
    }
    if (signatures > kMaxSignatureFields) {
      dkim_skipped_ = fmt::format("{} signatures, more than {}", signatures, kMaxSignatureFields);
      return;
    }
    // Signatures aligned with an author are checked first.
    const auto* impl = &impl_;
    const auto authors = authors_;
    dkim_->prefer([impl, authors](std::string_view d) {
      for (const auto& a : authors)
        if (impl->aligned(d, a)) return true;
      return false;
    });
    dkim_->feed(header_);
  }

  const Authenticator::Impl& impl_;
  std::unique_ptr<DkimVerifier::Verification> dkim_;
  std::string header_;
  bool header_done_ = false;
  bool header_too_large_ = false;
  std::string dkim_skipped_;  // why DKIM was not checked, if it was not
  std::vector<std::string> authors_;
};

}  // namespace

Authenticator::Authenticator(Options options) : impl_(std::make_unique<Impl>(std::move(options))) {}

Authenticator::~Authenticator() = default;

std::unique_ptr<Authenticator::Check> Authenticator::start() const {
  return std::make_unique<MessageCheck>(*impl_);
}

}  // namespace a3::delivery
