// A connection's byte stream: the TCP socket, or TLS over it after STARTTLS
// (or from the start for implicit TLS). Asio coroutines; one strand per
// connection, at most one read and one write outstanding.
#pragma once

#include <optional>
#include <string>

#include <fmt/format.h>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>

namespace a3::net {

class Conn {
 public:
  using tcp = boost::asio::ip::tcp;

  explicit Conn(tcp::socket socket) : socket_(std::move(socket)) {}

  boost::asio::awaitable<std::size_t> read_some(boost::asio::mutable_buffer buf) {
    if (tls_) co_return co_await tls_->async_read_some(buf, boost::asio::use_awaitable);
    co_return co_await socket_.async_read_some(buf, boost::asio::use_awaitable);
  }
  // The same, with the error in `token`'s error code instead of thrown.
  template <typename Token>
  boost::asio::awaitable<std::size_t> read_some(boost::asio::mutable_buffer buf, Token token) {
    if (tls_) co_return co_await tls_->async_read_some(buf, token);
    co_return co_await socket_.async_read_some(buf, token);
  }
  boost::asio::awaitable<void> write(const std::string& data) {
    if (tls_) {
      co_await boost::asio::async_write(*tls_, boost::asio::buffer(data),
                                        boost::asio::use_awaitable);
    } else {
      co_await boost::asio::async_write(socket_, boost::asio::buffer(data),
                                        boost::asio::use_awaitable);
    }
  }
  boost::asio::awaitable<void> start_tls(boost::asio::ssl::context& ctx) {
    tls_.emplace(socket_, ctx);
    co_await tls_->async_handshake(boost::asio::ssl::stream_base::server,
                                   boost::asio::use_awaitable);
  }
  bool tls() const { return tls_.has_value(); }
  // e.g. "TLSv1.3 TLS_AES_256_GCM_SHA384"; empty without TLS.
  std::string tls_description() {
    if (!tls_) return {};
    SSL* ssl = tls_->native_handle();
    return fmt::format("{} {}", SSL_get_version(ssl), SSL_get_cipher_name(ssl));
  }
  tcp::socket& socket() { return socket_; }

 private:
  tcp::socket socket_;
  std::optional<boost::asio::ssl::stream<tcp::socket&>> tls_;
};

}  // namespace a3::net
