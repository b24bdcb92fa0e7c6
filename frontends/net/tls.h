// The server's TLS context from the [tls] section (certificate chain, key,
// minimum version), shared by every listener.
#pragma once

#include <memory>

#include <boost/asio/ssl/context.hpp>

#include "common/config.h"

namespace a3::net {

// Throws std::runtime_error naming the file that could not be used.
std::unique_ptr<boost::asio::ssl::context> make_tls_context(const config::Tls& tls);

}  // namespace a3::net
