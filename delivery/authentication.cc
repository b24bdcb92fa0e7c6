#include "delivery/authentication.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <cstring>
#include <mutex>
#include <random>
#include <stdexcept>

#include <fmt/format.h>
#include <libpsl.h>
#include <opendmarc/dmarc.h>
#include <spdlog/spdlog.h>
extern "C" {
#include <spf2/spf.h>
#include <spf2/spf_dns_rr.h>
}

#include "common/ascii.h"
#include "mime/mime.h"

namespace a3::delivery {

namespace {

// ---- SPF: libspf2 over BlockingDns ----

// A libspf2 DNS layer of our own: libspf2's resolv layer would ask the
// system resolver, not the configured one, and without a deadline.
SPF_dns_rr_t* spf_lookup(SPF_dns_server_t* server, const char* domain, ns_type type, int) {
  const auto* dns = static_cast<const BlockingDns*>(server->hook);
  if (type == ns_t_spf)
    return SPF_dns_rr_new_init(server, domain, type, 0, NO_DATA);  // RFC 7208 3.1
  const auto answer = dns->query(domain, type);
  int herrno = NETDB_SUCCESS;
  switch (answer.status) {
    case DnsStatus::ok:
      break;
    case DnsStatus::nxdomain:
      herrno = HOST_NOT_FOUND;
      break;
    case DnsStatus::nodata:
      herrno = NO_DATA;
      break;
    case DnsStatus::temporary:
      herrno = TRY_AGAIN;
      break;
  }
  SPF_dns_rr_t* rr = SPF_dns_rr_new_init(server, domain, type, answer.ttl, herrno);
  if (!rr || herrno != NETDB_SUCCESS) return rr;
  int n = 0;
  auto put = [&](const void* data, std::size_t len) {
    if (SPF_dns_rr_buf_realloc(rr, n, len) != SPF_E_SUCCESS) return;
    std::memcpy(rr->rr[n], data, len);
    ++n;
  };
  for (const auto& r : answer.rdata) {
    const auto* data = reinterpret_cast<const unsigned char*>(r.data());
    std::string name;
    MxHost mx;
    switch (type) {
      case ns_t_a:
        if (r.size() == 4) put(data, 4);
        break;
      case ns_t_aaaa:
        if (r.size() == 16) put(data, 16);
        break;
      case ns_t_txt: {
        const std::string text = txt_rdata(r);
        put(text.c_str(), text.size() + 1);
        break;
      }
      case ns_t_mx:
        if (parse_mx_rdata(data, r.size(), mx)) put(mx.host.c_str(), mx.host.size() + 1);
        break;
      case ns_t_ptr:
        if (parse_name_rdata(data, r.size(), name)) put(name.c_str(), name.size() + 1);
        break;
      default:
        break;
    }
  }
  rr->num_rr = n;
  if (n == 0) rr->herrno = NO_DATA;
  return rr;
}

// SPF_request_query_mailfrom without libspf2's free pass for loopback
// clients (a rule RFC 7208 does not have): whom the MX trusts is the
// configuration's say ([outbound] trusted_networks skip the checks).
SPF_response_t* query_mailfrom(SPF_server_t* server, SPF_request_t* request) {
  SPF_response_t* response = SPF_response_new(request);
  if (!response) return nullptr;
  request->cur_dom = request->use_helo ? request->helo_dom : request->env_from_dp;
  SPF_record_t* record = nullptr;
  if (SPF_server_get_record(server, request, response, &record) != SPF_E_SUCCESS) {
    if (record) SPF_record_free(record);
    SPF_i_done(response, response->result, response->reason, response->err);
    return response;
  }
  response->spf_record_exp = record;
  SPF_record_interpret(record, request, response, 0);
  SPF_record_free(record);
  response->spf_record_exp = nullptr;
  return response;
}

std::string spf_keyword(SPF_result_t r) {
  switch (r) {
    case SPF_RESULT_PASS:
      return "pass";
    case SPF_RESULT_FAIL:
      return "fail";
    case SPF_RESULT_SOFTFAIL:
      return "softfail";
    case SPF_RESULT_NEUTRAL:
      return "neutral";
    case SPF_RESULT_NONE:
      return "none";
    case SPF_RESULT_TEMPERROR:
      return "temperror";
    case SPF_RESULT_PERMERROR:
    case SPF_RESULT_INVALID:
    default:
      return "permerror";
  }
}

// ---- DMARC ----

bool is_dmarc_record(std::string_view txt) {
  // RFC 7489 6.6.3: "v=DMARC1" first; records that do not start so are
  // not DMARC records.
  while (!txt.empty() && (txt.front() == ' ' || txt.front() == '\t'))
    txt.remove_prefix(1);
  if (!txt.starts_with("v=DMARC1")) return false;
  txt.remove_prefix(8);
  while (!txt.empty() && (txt.front() == ' ' || txt.front() == '\t'))
    txt.remove_prefix(1);
  return txt.empty() || txt.front() == ';';
}

struct DmarcLookup {
  DnsStatus status = DnsStatus::nodata;
  std::string record;
  std::string found_at;  // the domain whose _dmarc answered
  bool several = false;  // more than one record: none applies
};

DmarcLookup dmarc_record(const BlockingDns& dns, const std::string& domain) {
  DmarcLookup out;
  const auto txt = dns.txt("_dmarc." + domain);
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

int spf_outcome(const std::string& r) {
  if (r == "pass") return DMARC_POLICY_SPF_OUTCOME_PASS;
  if (r == "fail" || r == "softfail") return DMARC_POLICY_SPF_OUTCOME_FAIL;
  if (r == "temperror") return DMARC_POLICY_SPF_OUTCOME_TMPFAIL;
  return DMARC_POLICY_SPF_OUTCOME_NONE;
}

int dkim_outcome(const std::string& r) {
  if (r == "pass") return DMARC_POLICY_DKIM_OUTCOME_PASS;
  if (r == "fail") return DMARC_POLICY_DKIM_OUTCOME_FAIL;
  if (r == "temperror") return DMARC_POLICY_DKIM_OUTCOME_TMPFAIL;
  return DMARC_POLICY_DKIM_OUTCOME_NONE;
}

unsigned char* uc(const std::string& s) {
  return reinterpret_cast<unsigned char*>(const_cast<char*>(s.c_str()));
}

// ---- Authentication-Results (RFC 8601) ----

// A comment: printable, without what would end or nest it.
std::string comment(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 200)) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f || c == '(' || c == ')' || c == '\\') continue;
    out.push_back(c);
  }
  return out;
}

// A property's value: as is when it is a token or an address of atoms,
// a quoted-string otherwise (RFC 8601 2.2, RFC 2045 token).
std::string pvalue(std::string_view s) {
  bool plain = !s.empty();
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    plain = plain && (ascii::is_alpha(c) || ascii::is_digit(c) || u >= 0x80 ||
                      (c != '\0' && std::strchr("!#$%&'*+-/=?^_`{|}~.@", c)));
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

std::string author_domain(std::string_view header) {
  const auto authors = mime::authors(header);
  if (authors.fields != 1 || authors.addresses.size() != 1) return "";
  const auto& a = authors.addresses.front();
  const auto at = a.rfind('@');
  if (at == std::string::npos) return "";
  std::string domain = ascii::lower(a.substr(at + 1));
  while (!domain.empty() && domain.back() == '.')
    domain.pop_back();
  return domain;
}

std::string without_our_results(std::string_view message, std::string_view authserv_id) {
  const auto end = message.find("\r\n\r\n");
  const std::size_t head_end = end == std::string_view::npos ? message.size() : end + 2;
  constexpr std::string_view kName = "authentication-results:";
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
      // authserv-id: the first word of the value (RFC 8601 2.2).
      std::string value;
      for (char c : field.substr(kName.size()))
        value.push_back(c == '\r' || c == '\n' || c == '\t' ? ' ' : c);
      const std::string_view v = ascii::trim(value);
      ours = ascii::iequals(v.substr(0, v.find_first_of("; (")), authserv_id);
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
    r += " header.d=" + pvalue(d.domain) + " header.s=" + pvalue(d.selector);
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
  SPF_dns_server_t spf_dns{};

  explicit Impl(Options o) : options(std::move(o)), dns(options.resolvers, options.dns_timeout) {
    if (options.dkim) dkim = std::make_unique<DkimVerifier>(dns);
    spf_dns.destroy = nullptr;  // ours: SPF servers never free it
    spf_dns.lookup = spf_lookup;
    spf_dns.name = "a3";
    spf_dns.hook = &dns;
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

  void check_spf(const Identity& who, AuthenticationResults& out) const {
    // RFC 7208 2.4: the null sender's identity is postmaster@HELO.
    const bool null_sender = who.mail_from.empty();
    const auto at = who.mail_from.rfind('@');
    out.spf_domain = ascii::lower(null_sender               ? who.helo
                                  : at == std::string::npos ? who.mail_from
                                                            : who.mail_from.substr(at + 1));
    out.spf_property =
        null_sender ? "smtp.helo=" + pvalue(who.helo) : "smtp.mailfrom=" + pvalue(who.mail_from);
    SPF_server_t* server = SPF_server_new_dns(const_cast<SPF_dns_server_t*>(&spf_dns), 0);
    if (!server) {
      out.spf = "temperror";
      return;
    }
    SPF_server_set_rec_dom(server, options.hostname.c_str());
    SPF_request_t* request = SPF_request_new(server);
    const bool v6 = who.ip.find(':') != std::string::npos;
    const SPF_errcode_t ip_ok = v6 ? SPF_request_set_ipv6_str(request, who.ip.c_str())
                                   : SPF_request_set_ipv4_str(request, who.ip.c_str());
    SPF_request_set_helo_dom(request, who.helo.c_str());
    if (!null_sender) SPF_request_set_env_from(request, who.mail_from.c_str());
    SPF_response_t* response = nullptr;
    if (ip_ok != SPF_E_SUCCESS) {
      out.spf = "permerror";
      out.spf_reason = "no client address";
    } else {
      response = query_mailfrom(server, request);
      out.spf = response ? spf_keyword(SPF_response_result(response)) : "temperror";
      if (response && SPF_response_get_header_comment(response))
        out.spf_reason = SPF_response_get_header_comment(response);
    }
    if (response) SPF_response_free(response);
    SPF_request_free(request);
    SPF_server_free(server);
  }

  void check_dmarc(const Identity& who, AuthenticationResults& out) const {
    if (out.from_domain.empty()) {
      out.dmarc = "permerror";  // RFC 7489 6.6.1: not exactly one author domain
      return;
    }
    DmarcLookup found = dmarc_record(dns, out.from_domain);
    const std::string org = organizational(out.from_domain);
    bool at_org = false;
    if (found.status == DnsStatus::nodata || found.status == DnsStatus::nxdomain) {
      if (org != out.from_domain) {
        found = dmarc_record(dns, org);
        at_org = true;
      }
    }
    if (found.status == DnsStatus::temporary) {
      out.dmarc = "temperror";
      return;
    }
    if (found.status != DnsStatus::ok || found.several) {
      out.dmarc = "none";
      return;
    }
    DMARC_POLICY_T* pctx =
        opendmarc_policy_connect_init(uc(who.ip), who.ip.find(':') != std::string::npos);
    if (!pctx) {
      out.dmarc = "temperror";
      return;
    }
    opendmarc_policy_store_from_domain(pctx, uc(out.from_domain));
    if (!out.spf.empty()) {
      const std::string human = out.spf;
      opendmarc_policy_store_spf(
          pctx, uc(out.spf_domain), spf_outcome(out.spf),
          who.mail_from.empty() ? DMARC_POLICY_SPF_ORIGIN_HELO : DMARC_POLICY_SPF_ORIGIN_MAILFROM,
          uc(human));
    }
    for (const auto& d : out.dkim) {
      opendmarc_policy_store_dkim(pctx, uc(d.domain), uc(d.selector), dkim_outcome(d.result),
                                  uc(d.result));
    }
    const std::string org_domain = at_org ? found.found_at : std::string();
    if (opendmarc_policy_store_dmarc(pctx, uc(found.record), uc(out.from_domain),
                                     at_org ? uc(org_domain) : nullptr) != DMARC_PARSE_OKAY) {
      opendmarc_policy_connect_shutdown(pctx);
      out.dmarc = "permerror";
      return;
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
    out.dmarc = "fail";
    // RFC 7489 6.6.4: pct= applies the policy to that share of failing
    // mail; the rest gets the next policy down.
    static thread_local std::mt19937 rng{std::random_device{}()};
    std::string policy = out.dmarc_policy;
    if (pct < 100 && static_cast<int>(rng() % 100) >= pct)
      policy = policy == "reject" ? "quarantine" : "none";
    if (policy == "reject" && options.dmarc_reject) {
      out.disposition = Disposition::reject;
      out.reject_reason = fmt::format("Rejected by the DMARC policy of {}", out.from_domain);
    } else if ((policy == "reject" || policy == "quarantine") && options.dmarc_quarantine) {
      out.disposition = Disposition::quarantine;
    }
  }
};

namespace {

class MessageCheck : public Authenticator::Check {
 public:
  static constexpr std::size_t kMaxHeader = 256 * 1024;

  explicit MessageCheck(const Authenticator::Impl& impl)
      : impl_(impl), dkim_(impl.dkim ? impl.dkim->start() : nullptr) {}

  void feed(std::string_view bytes) override {
    if (dkim_) dkim_->feed(bytes);
    if (header_done_) return;
    const std::size_t before = header_.size();
    header_.append(bytes.substr(0, kMaxHeader - std::min(kMaxHeader, header_.size())));
    // The blank line may straddle two pieces: look from a little before.
    const auto end = header_.find("\r\n\r\n", before >= 3 ? before - 3 : 0);
    if (end != std::string::npos) {
      header_.resize(end + 4);
      header_done_ = true;
    } else if (header_.size() >= kMaxHeader) {
      header_done_ = true;
    }
  }

  AuthenticationResults finish(const Identity& who) override {
    AuthenticationResults out;
    out.spf.clear();
    out.dmarc.clear();
    if (impl_.options.spf) impl_.check_spf(who, out);
    out.dkim_checked = dkim_ != nullptr;
    if (dkim_) out.dkim = dkim_->finish();
    if (impl_.options.dmarc) {
      out.from_domain = author_domain(header_);
      impl_.check_dmarc(who, out);
    }
    return out;
  }

 private:
  const Authenticator::Impl& impl_;
  std::unique_ptr<DkimVerifier::Verification> dkim_;
  std::string header_;
  bool header_done_ = false;
};

}  // namespace

Authenticator::Authenticator(Options options) : impl_(std::make_unique<Impl>(std::move(options))) {}

Authenticator::~Authenticator() = default;

std::unique_ptr<Authenticator::Check> Authenticator::start() const {
  return std::make_unique<MessageCheck>(*impl_);
}

}  // namespace a3::delivery
