#include "frontends/net/tls.h"

#include <ctime>

#include <fmt/format.h>
#include <openssl/x509.h>

namespace a3::net {

namespace ssl = boost::asio::ssl;

std::unique_ptr<ssl::context> make_tls_context(const config::Tls& tls) {
  auto ctx = std::make_unique<ssl::context>(ssl::context::tls_server);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                   ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                   ssl::context::single_dh_use);
  SSL_CTX* native = ctx->native_handle();
  SSL_CTX_set_min_proto_version(native,
                                tls.min_version == "TLSv1.3" ? TLS1_3_VERSION : TLS1_2_VERSION);
  SSL_CTX_set_max_proto_version(native,
                                tls.max_version == "TLSv1.2" ? TLS1_2_VERSION : TLS1_3_VERSION);
  // The lists were checked when the configuration was loaded.
  if (!tls.ciphers.empty() && SSL_CTX_set_cipher_list(native, tls.ciphers.c_str()) != 1)
    throw std::runtime_error(fmt::format("tls.ciphers \"{}\": refused by OpenSSL", tls.ciphers));
  if (!tls.ciphersuites.empty() && SSL_CTX_set_ciphersuites(native, tls.ciphersuites.c_str()) != 1)
    throw std::runtime_error(
        fmt::format("tls.ciphersuites \"{}\": refused by OpenSSL", tls.ciphersuites));
  // The server's order of preference, not the client's.
  SSL_CTX_set_options(native, SSL_OP_CIPHER_SERVER_PREFERENCE);
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

double certificate_expiry(ssl::context& ctx) {
  X509* cert = SSL_CTX_get0_certificate(ctx.native_handle());
  if (!cert) return 0;
  struct tm t {};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &t) != 1) return 0;
  return static_cast<double>(timegm(&t));
}

}  // namespace a3::net
