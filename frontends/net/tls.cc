#include "frontends/net/tls.h"

#include <fmt/format.h>

namespace a3::net {

namespace ssl = boost::asio::ssl;

std::unique_ptr<ssl::context> make_tls_context(const config::Tls& tls) {
  auto ctx = std::make_unique<ssl::context>(ssl::context::tls_server);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                   ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                   ssl::context::single_dh_use);
  if (tls.min_version == "TLSv1.3")
    SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_3_VERSION);
  boost::system::error_code ec;
  ctx->use_certificate_chain_file(tls.certificate.string(), ec);
  if (ec)
    throw std::runtime_error(
        fmt::format("tls.certificate {}: {}", tls.certificate.string(), ec.message()));
  ctx->use_private_key_file(tls.private_key.string(), ssl::context::pem, ec);
  if (ec)
    throw std::runtime_error(
        fmt::format("tls.private_key {}: {}", tls.private_key.string(), ec.message()));
  return ctx;
}

}  // namespace a3::net
