#include "delivery/resolver.h"

#include <algorithm>
#include <fstream>
#include <functional>
#include <random>
#include <stdexcept>

#include <arpa/inet.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unbound.h>
#include <boost/asio/async_result.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace a3::delivery {

namespace asio = boost::asio;

namespace {

constexpr int kTypeA = 1, kTypeMx = 15, kTypeAaaa = 28, kTypeTlsa = 52, kClassIn = 1;

struct Raw {
  int err = 0;
  int rcode = 0;
  bool nxdomain = false;
  bool havedata = false;
  bool secure = false;
  bool bogus = false;
  std::vector<std::string> rdata;
  std::string why_bogus;
};

}  // namespace

// The context and its descriptor, shared with in-flight queries' callbacks.
// Used from one thread (the delivery worker's io_context): one wait on the
// descriptor at a time, while queries are outstanding.
struct Resolver::Impl {
  explicit Impl(asio::io_context& context) : io(context), fd(context) {}
  ~Impl() {
    fd.release();  // owned by the ub_ctx
    if (ctx) ub_ctx_delete(ctx);
  }

  asio::io_context& io;
  ub_ctx* ctx = nullptr;
  asio::posix::stream_descriptor fd;
  bool reading = false;
  int outstanding = 0;  // queries sent, not answered
  bool validating = false;

  static void on_result(void* data, int err, ub_result* result) {
    auto* done = static_cast<std::function<void(Raw)>*>(data);
    Raw raw;
    raw.err = err;
    if (result) {
      raw.rcode = result->rcode;
      raw.nxdomain = result->nxdomain;
      raw.havedata = result->havedata;
      raw.secure = result->secure;
      raw.bogus = result->bogus;
      for (int i = 0; result->data && result->data[i]; ++i)
        raw.rdata.emplace_back(result->data[i], static_cast<std::size_t>(result->len[i]));
      if (result->why_bogus) raw.why_bogus = result->why_bogus;
      ub_resolve_free(result);
    }
    (*done)(std::move(raw));
    delete done;
  }

  // Waits for answers on the context's descriptor while queries are out.
  void watch(std::shared_ptr<Impl> self) {
    if (reading || outstanding == 0) return;
    reading = true;
    fd.async_wait(asio::posix::descriptor_base::wait_read, [self](boost::system::error_code ec) {
      self->reading = false;
      if (ec) return;
      ub_process(self->ctx);  // runs the callbacks of what was answered
      self->watch(self);
    });
  }
};

ub_ctx* make_context(const std::vector<std::string>& forwarders,
                     const std::vector<std::string>& trust_anchors, std::string_view who) {
  ub_ctx* ctx = ub_ctx_create();
  if (!ctx) throw std::runtime_error(fmt::format("{}: cannot create a libunbound context", who));
  auto fail = [ctx, who](const std::string& what) {
    ub_ctx_delete(ctx);
    throw std::runtime_error(fmt::format("{}: {}", who, what));
  };
  auto check = [&fail](int r, std::string_view what) {
    if (r != 0) fail(fmt::format("{}: {}", what, ub_strerror(r)));
  };
  // Answers come through ub_fd; a thread, not a forked process, resolves.
  check(ub_ctx_async(ctx, 1), "async mode");
  // A resolver on loopback is common (a local cache, systemd-resolved's
  // 127.0.0.53, the tests' server): libunbound would refuse to ask it.
  check(ub_ctx_set_option(ctx, "do-not-query-localhost:", "no"), "do-not-query-localhost");
  if (forwarders.empty()) {
    // Without a usable /etc/resolv.conf, libunbound resolves by itself from
    // the root servers: slower to warm up, never wrong.
    if (const int r = ub_ctx_resolvconf(ctx, nullptr); r != 0)
      spdlog::warn("{}: /etc/resolv.conf: {}; resolving from the root servers", who,
                   ub_strerror(r));
  } else {
    for (const auto& f : forwarders)
      check(ub_ctx_set_fwd(ctx, f.c_str()), "forwarder " + f);
  }
  for (const auto& file : trust_anchors) {
    // libunbound reads the file at its first query: a missing one would
    // only show as every lookup failing.
    if (!std::ifstream(file)) fail(fmt::format("trust anchor {}: cannot read it", file));
    check(ub_ctx_add_ta_file(ctx, file.c_str()), "trust anchor " + file);
  }
  return ctx;
}

Resolver::Resolver(asio::io_context& io, const std::vector<std::string>& forwarders,
                   const std::vector<std::string>& trust_anchors)
    : impl_(std::make_shared<Impl>(io)) {
  impl_->ctx = make_context(forwarders, trust_anchors, "resolver");
  impl_->validating = !trust_anchors.empty();
  impl_->fd.assign(ub_fd(impl_->ctx));
}

bool Resolver::validating() const {
  return impl_->validating;
}

Resolver::~Resolver() {
  if (impl_) impl_->fd.cancel();
}

namespace {

// The initiation captures only pointers into this coroutine's frame, which
// lives until the answer: GCC 12 destroys the non-trivial captures of a
// closure handed to a coroutine twice.
asio::awaitable<Raw> query(std::shared_ptr<Resolver::Impl> impl, std::string name, int type) {
  const auto* holder = &impl;
  const auto* qname = &name;
  co_return co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(Raw)>(
      [holder, qname, type](auto handler) {
        auto self = *holder;
        auto h = std::make_shared<decltype(handler)>(std::move(handler));
        auto* done = new std::function<void(Raw)>([h, self](Raw raw) {
          --self->outstanding;
          auto ex = asio::get_associated_executor(*h, self->io.get_executor());
          asio::post(ex, [h, raw = std::move(raw)]() mutable { std::move (*h)(std::move(raw)); });
        });
        int id = 0;
        const int r = ub_resolve_async(self->ctx, qname->c_str(), type, kClassIn, done,
                                       &Resolver::Impl::on_result, &id);
        ++self->outstanding;
        if (r != 0) {
          Raw raw;
          raw.err = r;
          (*done)(std::move(raw));
          delete done;
          return;
        }
        self->watch(self);
      },
      asio::use_awaitable);
}

DnsStatus status_of(const Raw& raw, std::string& detail) {
  if (raw.err != 0) {
    detail = fmt::format("DNS error: {}", ub_strerror(raw.err));
    return DnsStatus::temporary;
  }
  // RFC 7672 2.1.1: a bogus answer is not an answer; try again later.
  if (raw.bogus) {
    detail = fmt::format("DNSSEC validation failed: {}",
                         raw.why_bogus.empty() ? "bogus" : raw.why_bogus.substr(0, 200));
    return DnsStatus::temporary;
  }
  if (raw.nxdomain) {
    detail = "the domain does not exist (NXDOMAIN)";
    return DnsStatus::nxdomain;
  }
  if (raw.rcode != 0) {
    detail = fmt::format("DNS server failure (rcode {})", raw.rcode);
    return DnsStatus::temporary;
  }
  if (!raw.havedata) {
    detail = "no such records";
    return DnsStatus::nodata;
  }
  return DnsStatus::ok;
}

}  // namespace

bool parse_name_rdata(const unsigned char* data, std::size_t len, std::string& out) {
  out.clear();
  std::size_t i = 0;
  while (i < len) {
    const unsigned n = data[i++];
    if (n == 0) return i == len;
    if (n > 63 || i + n > len) return false;  // compression pointers never appear here
    if (!out.empty()) out.push_back('.');
    out.append(reinterpret_cast<const char*>(data + i), n);
    i += n;
  }
  return false;
}

bool parse_mx_rdata(const unsigned char* data, std::size_t len, MxHost& out) {
  if (len < 3) return false;
  out.preference = static_cast<std::uint16_t>(data[0] << 8 | data[1]);
  return parse_name_rdata(data + 2, len - 2, out.host);
}

asio::awaitable<MxAnswer> Resolver::mx(std::string domain) {
  const Raw raw = co_await query(impl_, domain, kTypeMx);
  MxAnswer a;
  a.status = status_of(raw, a.detail);
  a.secure = raw.secure;
  if (a.status != DnsStatus::ok) co_return a;
  for (const auto& r : raw.rdata) {
    MxHost h;
    if (!parse_mx_rdata(reinterpret_cast<const unsigned char*>(r.data()), r.size(), h)) {
      a.status = DnsStatus::temporary;
      a.detail = "malformed MX record";
      a.hosts.clear();
      co_return a;
    }
    a.hosts.push_back(std::move(h));
  }
  // RFC 7505: a single MX with an empty name means no mail at all.
  a.null_mx = a.hosts.size() == 1 && a.hosts[0].host.empty();
  if (a.null_mx) co_return a;
  std::erase_if(a.hosts, [](const MxHost& h) { return h.host.empty(); });
  static thread_local std::mt19937 rng{std::random_device{}()};
  std::shuffle(a.hosts.begin(), a.hosts.end(), rng);
  std::stable_sort(a.hosts.begin(), a.hosts.end(),
                   [](const MxHost& x, const MxHost& y) { return x.preference < y.preference; });
  co_return a;
}

asio::awaitable<AddressAnswer> Resolver::addresses(std::string host) {
  AddressAnswer a;
  a.secure = true;
  bool any_temporary = false, any_nxdomain = false;
  for (const int type : {kTypeA, kTypeAaaa}) {
    const Raw raw = co_await query(impl_, host, type);
    std::string detail;
    const DnsStatus s = status_of(raw, detail);
    a.secure = a.secure && raw.secure;
    if (s == DnsStatus::temporary) any_temporary = true, a.detail = detail;
    a.incomplete = a.incomplete || s == DnsStatus::temporary;
    if (s == DnsStatus::nxdomain) any_nxdomain = true, a.detail = detail;
    if (s != DnsStatus::ok) continue;
    for (const auto& r : raw.rdata) {
      char text[INET6_ADDRSTRLEN] = {};
      if (type == kTypeA && r.size() == 4) inet_ntop(AF_INET, r.data(), text, sizeof text);
      if (type == kTypeAaaa && r.size() == 16) inet_ntop(AF_INET6, r.data(), text, sizeof text);
      if (text[0]) a.addresses.emplace_back(text);
    }
  }
  a.status = !a.addresses.empty() ? DnsStatus::ok
             : any_temporary      ? DnsStatus::temporary
             : any_nxdomain       ? DnsStatus::nxdomain
                                  : DnsStatus::nodata;
  if (a.status == DnsStatus::nodata) a.detail = "the host has no address";
  co_return a;
}

asio::awaitable<TlsaAnswer> Resolver::tlsa(std::string host, std::uint16_t port) {
  const Raw raw = co_await query(impl_, fmt::format("_{}._tcp.{}", port, host), kTypeTlsa);
  TlsaAnswer a;
  a.status = status_of(raw, a.detail);
  a.secure = raw.secure;
  if (a.status != DnsStatus::ok) co_return a;
  for (const auto& r : raw.rdata) {
    // usage, selector, matching type, then the association data.
    if (r.size() < 4) {
      a.status = DnsStatus::temporary;
      a.detail = "malformed TLSA record";
      a.records.clear();
      co_return a;
    }
    a.records.push_back({static_cast<std::uint8_t>(r[0]), static_cast<std::uint8_t>(r[1]),
                         static_cast<std::uint8_t>(r[2]), r.substr(3)});
  }
  co_return a;
}

}  // namespace a3::delivery
