#include "delivery/dkim_verify.h"

#include <cstring>
#include <set>
#include <stdexcept>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
// libopendkim's header is C and names C's _Bool.
#define _Bool bool
#include <opendkim/dkim.h>
#undef _Bool

namespace a3::delivery {

struct DkimVerifier::Impl {
  DKIM_LIB* lib = nullptr;
  const BlockingDns* dns = nullptr;
};

namespace {

const char* text(const unsigned char* s) {
  return s ? reinterpret_cast<const char*>(s) : "";
}

// What the callbacks of one verification see (the handle's user context).
struct Context {
  const BlockingDns* dns = nullptr;
  BlockingDns::Budget* budget = nullptr;  // set by finish()
  std::function<bool(std::string_view)> preferred;
  std::set<std::pair<std::string, std::string>> temporary;  // (d, s) whose key lookup failed
};

// libopendkim asks for "selector._domainkey.domain" TXT here. A lookup that
// fails temporarily is remembered and reported as not found, so that the
// library goes on with the other signatures (TRYAGAIN would stop them all).
DKIM_CBSTAT key_lookup(DKIM* dkim, DKIM_SIGINFO* sig, u_char* buf, size_t buflen) noexcept {
  auto* ctx = static_cast<Context*>(dkim_get_user_context(dkim));
  try {
    const std::string domain = text(dkim_sig_getdomain(sig));
    const std::string selector = text(dkim_sig_getselector(sig));
    if (!ctx->budget) return DKIM_CBSTAT_NOTFOUND;
    const auto answer =
        ctx->dns->txt(fmt::format("{}._domainkey.{}", selector, domain), *ctx->budget);
    if (answer.status == DnsStatus::temporary) {
      ctx->temporary.emplace(domain, selector);
      return DKIM_CBSTAT_NOTFOUND;
    }
    if (answer.status != DnsStatus::ok || answer.records.empty()) return DKIM_CBSTAT_NOTFOUND;
    // RFC 6376 3.6.2.2: several records give undefined results; the first.
    const std::string& key = answer.records.front();
    if (key.size() + 1 > buflen) return DKIM_CBSTAT_NOTFOUND;
    std::memcpy(buf, key.c_str(), key.size() + 1);
    return DKIM_CBSTAT_CONTINUE;
  } catch (...) {
    return DKIM_CBSTAT_NOTFOUND;
  }
}

// Only the first kMaxSignatures are checked (each costs a lookup and a
// hash), those of preferred domains first: an intermediary's signatures
// above the author's must not push the author's out.
DKIM_CBSTAT prescreen(DKIM* dkim, DKIM_SIGINFO** sigs, int nsigs) noexcept {
  auto* ctx = static_cast<Context*>(dkim_get_user_context(dkim));
  try {
    std::vector<bool> keep(static_cast<std::size_t>(nsigs), false);
    int kept = 0;
    for (const bool preferred_pass : {true, false}) {
      for (int i = 0; i < nsigs && kept < DkimVerifier::kMaxSignatures; ++i) {
        if (keep[i]) continue;
        const bool preferred = ctx->preferred && ctx->preferred(text(dkim_sig_getdomain(sigs[i])));
        if (preferred_pass && !preferred) continue;
        keep[i] = true;
        ++kept;
      }
    }
    for (int i = 0; i < nsigs; ++i)
      if (!keep[i]) dkim_sig_ignore(sigs[i]);
  } catch (...) {
  }
  return DKIM_CBSTAT_CONTINUE;
}

DkimResult result_of(DKIM* dkim, DKIM_SIGINFO* sig, const Context& ctx) {
  DkimResult r;
  r.domain = std::string(text(dkim_sig_getdomain(sig))).substr(0, 255);
  r.selector = std::string(text(dkim_sig_getselector(sig))).substr(0, 255);
  // RFC 6008: as much of b= as tells the message's signatures apart.
  char b[128] = {};
  std::size_t len = sizeof b - 1;
  if (dkim_get_sigsubstring(dkim, sig, b, &len) == DKIM_STAT_OK)
    r.b.assign(b, std::min(len, sizeof b - 1));
  const int error = dkim_sig_geterror(sig);
  const unsigned flags = dkim_sig_getflags(sig);
  const int bh = dkim_sig_getbh(sig);
  if ((flags & DKIM_SIGFLAG_PASSED) && bh == DKIM_SIGBH_MATCH && error == DKIM_SIGERROR_OK) {
    r.result = "pass";
    return r;
  }
  if (ctx.temporary.count({std::string(text(dkim_sig_getdomain(sig))),
                           std::string(text(dkim_sig_getselector(sig)))}) ||
      error == DKIM_SIGERROR_KEYFAIL) {
    r.result = "temperror";
    r.reason = "key lookup failed";
    return r;
  }
  if (error == DKIM_SIGERROR_BADSIG || error == DKIM_SIGERROR_OK || bh == DKIM_SIGBH_MISMATCH) {
    r.result = "fail";
  } else {
    r.result = "permerror";
  }
  if (bh == DKIM_SIGBH_MISMATCH && error == DKIM_SIGERROR_OK) {
    r.reason = "body hash mismatch";
  } else if (const char* why = dkim_sig_geterrorstr(error)) {
    r.reason = why;
  }
  return r;
}

class LibVerification : public DkimVerifier::Verification {
 public:
  explicit LibVerification(const DkimVerifier::Impl& impl) {
    ctx_.dns = impl.dns;
    DKIM_STAT status = DKIM_STAT_OK;
    dkim_ = dkim_verify(impl.lib, reinterpret_cast<const unsigned char*>("a3"), nullptr, &status);
    if (!dkim_ || status != DKIM_STAT_OK) {
      broken_ = "cannot start verifying";
      if (dkim_) dkim_free(dkim_);
      dkim_ = nullptr;
      return;
    }
    dkim_set_user_context(dkim_, &ctx_);
  }
  ~LibVerification() override {
    if (dkim_) dkim_free(dkim_);
  }

  void prefer(std::function<bool(std::string_view)> preferred) override {
    ctx_.preferred = std::move(preferred);
  }

  void feed(std::string_view bytes) override {
    if (!dkim_ || bytes.empty() || !broken_.empty()) return;
    copy_.assign(bytes);  // dkim_chunk takes a non-const buffer
    if (dkim_chunk(dkim_, reinterpret_cast<unsigned char*>(copy_.data()), copy_.size()) !=
        DKIM_STAT_OK) {
      const char* why = dkim_geterror(dkim_);
      broken_ = why && *why ? why : "the message could not be processed";
    }
  }

  std::vector<DkimResult> finish(BlockingDns::Budget& budget) override {
    std::vector<DkimResult> out;
    if (!dkim_) return out;
    ctx_.budget = &budget;
    if (broken_.empty() && dkim_chunk(dkim_, nullptr, 0) == DKIM_STAT_OK) {
      const DKIM_STAT s = dkim_eom(dkim_, nullptr);
      if (s == DKIM_STAT_NOSIG) return out;
    }
    DKIM_SIGINFO** sigs = nullptr;
    int n = 0;
    if (dkim_getsiglist(dkim_, &sigs, &n) != DKIM_STAT_OK) return out;
    for (int i = 0; i < n; ++i) {
      if (dkim_sig_getflags(sigs[i]) & DKIM_SIGFLAG_IGNORE) continue;
      auto r = result_of(dkim_, sigs[i], ctx_);
      if (!broken_.empty() && r.result == "pass")
        r = {"permerror", r.domain, r.selector, r.b, broken_};
      out.push_back(std::move(r));
      if (out.size() >= static_cast<std::size_t>(DkimVerifier::kMaxSignatures)) break;
    }
    return out;
  }

 private:
  DKIM* dkim_ = nullptr;
  Context ctx_;
  std::string copy_;
  std::string broken_;  // the message could not be processed
};

}  // namespace

DkimVerifier::DkimVerifier(const BlockingDns& dns) : impl_(std::make_unique<Impl>()) {
  impl_->dns = &dns;
  impl_->lib = dkim_init(nullptr, nullptr);
  if (!impl_->lib) throw std::runtime_error("dkim: cannot initialise libopendkim");
  // Signatures (and their keys) are processed at the end of the message, on
  // the thread that finishes it, not while the header streams in.
  unsigned int flags = DKIM_LIBFLAGS_DELAYSIGPROC;
  if (dkim_options(impl_->lib, DKIM_OP_SETOPT, DKIM_OPTS_FLAGS, &flags, sizeof flags) !=
      DKIM_STAT_OK)
    throw std::runtime_error("dkim: cannot set libopendkim's options");
  dkim_set_key_lookup(impl_->lib, key_lookup);
  dkim_set_prescreen(impl_->lib, prescreen);
}

DkimVerifier::~DkimVerifier() {
  if (impl_ && impl_->lib) dkim_close(impl_->lib);
}

std::unique_ptr<DkimVerifier::Verification> DkimVerifier::start() const {
  return std::make_unique<LibVerification>(*impl_);
}

}  // namespace a3::delivery
