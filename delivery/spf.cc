#include "delivery/spf.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <cstring>

#include <boost/asio/ip/address.hpp>
extern "C" {
#include <spf2/spf.h>
#include <spf2/spf_dns_rr.h>
}

namespace a3::delivery {

namespace {

// What the DNS layer of one SPF evaluation uses (its `hook`).
struct SpfContext {
  const BlockingDns* dns = nullptr;
  BlockingDns::Budget* budget = nullptr;
  bool temporary = false;  // a lookup failed temporarily
};

// A libspf2 DNS layer of our own: libspf2's resolv layer would ask the
// system resolver, not the configured one, and without a deadline. One per
// evaluation, so that the budget covers every include and redirect.
SPF_dns_rr_t* spf_lookup(SPF_dns_server_t* server, const char* domain, ns_type type, int) noexcept {
  auto* ctx = static_cast<SpfContext*>(server->hook);
  if (type == ns_t_spf)
    return SPF_dns_rr_new_init(server, domain, type, 0, NO_DATA);  // RFC 7208 3.1
  BlockingDns::Answer answer;
  try {
    answer = ctx->dns->query(domain, type, *ctx->budget);
  } catch (...) {
    answer = {};
  }
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
      ctx->temporary = true;
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
  try {
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
  } catch (...) {
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

}  // namespace

SpfResult spf(const BlockingDns& dns, BlockingDns::Budget& budget, const std::string& ip,
              const std::string& helo, const std::string& mail_from, const std::string& hostname) {
  SpfResult out;
  SpfContext ctx{&dns, &budget};
  SPF_dns_server_t layer{};
  layer.destroy = nullptr;  // ours: the SPF server never frees it
  layer.lookup = spf_lookup;
  layer.name = "a3";
  layer.hook = &ctx;
  SPF_server_t* server = SPF_server_new_dns(&layer, 0);
  if (!server) return {"temperror", "libspf2 did not start"};
  SPF_server_set_rec_dom(server, hostname.c_str());
  SPF_request_t* request = SPF_request_new(server);
  // A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d.
  boost::system::error_code ec;
  auto address = boost::asio::ip::make_address(ip, ec);
  if (!ec && address.is_v6() && address.to_v6().is_v4_mapped())
    address = boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, address.to_v6());
  const std::string text = ec ? ip : address.to_string();
  const SPF_errcode_t ip_ok = !ec && address.is_v6()
                                  ? SPF_request_set_ipv6_str(request, text.c_str())
                                  : SPF_request_set_ipv4_str(request, text.c_str());
  // RFC 7208 2.4: the null sender's identity is postmaster@HELO, which
  // libspf2 takes from the HELO name when no MAIL FROM is set.
  SPF_request_set_helo_dom(request, helo.c_str());
  if (!mail_from.empty()) SPF_request_set_env_from(request, mail_from.c_str());
  SPF_response_t* response = nullptr;
  if (ec || ip_ok != SPF_E_SUCCESS) {
    out = {"permerror", "no client address"};
  } else {
    response = query_mailfrom(server, request);
    const SPF_result_t r = response ? SPF_response_result(response) : SPF_RESULT_TEMPERROR;
    // libspf2 gives no result (INVALID) when a lookup failed temporarily:
    // RFC 7208 2.6.6 calls that temperror.
    out.result = r == SPF_RESULT_INVALID && ctx.temporary ? "temperror" : spf_keyword(r);
    if (response && SPF_response_get_header_comment(response))
      out.reason = SPF_response_get_header_comment(response);
  }
  if (response) SPF_response_free(response);
  SPF_request_free(request);
  SPF_server_free(server);
  return out;
}

}  // namespace a3::delivery
