#include "delivery/dkim_verify.h"

#include <cstring>
#include <stdexcept>

#include <fmt/format.h>
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

// libopendkim asks for "selector._domainkey.domain" TXT here; the handle's
// user context is the BlockingDns.
DKIM_CBSTAT key_lookup(DKIM* dkim, DKIM_SIGINFO* sig, u_char* buf, size_t buflen) {
  const auto* dns = static_cast<const BlockingDns*>(dkim_get_user_context(dkim));
  const std::string name = fmt::format("{}._domainkey.{}", text(dkim_sig_getselector(sig)),
                                       text(dkim_sig_getdomain(sig)));
  const auto answer = dns->txt(name);
  switch (answer.status) {
    case DnsStatus::ok:
      break;
    case DnsStatus::nxdomain:
    case DnsStatus::nodata:
      return DKIM_CBSTAT_NOTFOUND;
    case DnsStatus::temporary:
      return DKIM_CBSTAT_TRYAGAIN;
  }
  if (answer.records.empty()) return DKIM_CBSTAT_NOTFOUND;
  // RFC 6376 3.6.2.2: several records give undefined results; the first.
  const std::string& key = answer.records.front();
  if (key.size() + 1 > buflen) return DKIM_CBSTAT_ERROR;
  std::memcpy(buf, key.c_str(), key.size() + 1);
  return DKIM_CBSTAT_CONTINUE;
}

// Only the first signatures are checked: each costs a lookup and a hash.
DKIM_CBSTAT prescreen(DKIM*, DKIM_SIGINFO** sigs, int nsigs) {
  for (int i = DkimVerifier::kMaxSignatures; i < nsigs; ++i)
    dkim_sig_ignore(sigs[i]);
  return DKIM_CBSTAT_CONTINUE;
}

DkimResult result_of(DKIM* dkim, DKIM_SIGINFO* sig) {
  DkimResult r;
  r.domain = text(dkim_sig_getdomain(sig));
  r.selector = text(dkim_sig_getselector(sig));
  // RFC 6008: as much of b= as tells the message's signatures apart.
  char b[128] = {};
  std::size_t len = sizeof b - 1;
  if (dkim_get_sigsubstring(dkim, sig, b, &len) == DKIM_STAT_OK)
    r.b.assign(b, std::min(len, sizeof b - 1));
  const int error = dkim_sig_geterror(sig);
  const unsigned flags = dkim_sig_getflags(sig);
  if ((flags & DKIM_SIGFLAG_PASSED) && dkim_sig_getbh(sig) == DKIM_SIGBH_MATCH) {
    r.result = "pass";
    return r;
  }
  if (error == DKIM_SIGERROR_KEYFAIL) {
    r.result = "temperror";
  } else if (error == DKIM_SIGERROR_BADSIG || error == DKIM_SIGERROR_OK ||
             dkim_sig_getbh(sig) == DKIM_SIGBH_MISMATCH) {
    r.result = "fail";
  } else {
    r.result = "permerror";
  }
  if (dkim_sig_getbh(sig) == DKIM_SIGBH_MISMATCH && error == DKIM_SIGERROR_OK) {
    r.reason = "body hash mismatch";
  } else if (const char* why = dkim_sig_geterrorstr(error)) {
    r.reason = why;
  }
  return r;
}

class LibVerification : public DkimVerifier::Verification {
 public:
  explicit LibVerification(const DkimVerifier::Impl& impl) {
    DKIM_STAT status = DKIM_STAT_OK;
    dkim_ = dkim_verify(impl.lib, reinterpret_cast<const unsigned char*>("a3"), nullptr, &status);
    if (!dkim_ || status != DKIM_STAT_OK) {
      broken_ = "cannot start verifying";
      if (dkim_) dkim_free(dkim_);
      dkim_ = nullptr;
      return;
    }
    dkim_set_user_context(dkim_, const_cast<BlockingDns*>(impl.dns));
  }
  ~LibVerification() override {
    if (dkim_) dkim_free(dkim_);
  }

  void feed(std::string_view bytes) override {
    if (!dkim_ || bytes.empty() || !broken_.empty()) return;
    copy_.assign(bytes);  // dkim_chunk takes a non-const buffer
    if (dkim_chunk(dkim_, reinterpret_cast<unsigned char*>(copy_.data()), copy_.size()) !=
        DKIM_STAT_OK)
      broken_ = text(reinterpret_cast<const unsigned char*>(dkim_geterror(dkim_)));
  }

  std::vector<DkimResult> finish() override {
    std::vector<DkimResult> out;
    if (!dkim_) return out;
    if (broken_.empty()) {
      if (dkim_chunk(dkim_, nullptr, 0) == DKIM_STAT_OK) {
        const DKIM_STAT s = dkim_eom(dkim_, nullptr);
        if (s == DKIM_STAT_NOSIG) return out;
      }
    }
    DKIM_SIGINFO** sigs = nullptr;
    int n = 0;
    if (dkim_getsiglist(dkim_, &sigs, &n) != DKIM_STAT_OK) return out;
    for (int i = 0; i < n && i < DkimVerifier::kMaxSignatures; ++i) {
      if (dkim_sig_getflags(sigs[i]) & DKIM_SIGFLAG_IGNORE) continue;
      auto r = result_of(dkim_, sigs[i]);
      if (!broken_.empty() && r.result == "pass")
        r = {"permerror", r.domain, r.selector, r.b, broken_};
      out.push_back(std::move(r));
    }
    return out;
  }

 private:
  DKIM* dkim_ = nullptr;
  std::string copy_;
  std::string broken_;  // the message could not be processed
};

}  // namespace

DkimVerifier::DkimVerifier(const BlockingDns& dns) : impl_(std::make_unique<Impl>()) {
  impl_->dns = &dns;
  impl_->lib = dkim_init(nullptr, nullptr);
  if (!impl_->lib) throw std::runtime_error("dkim: cannot initialise libopendkim");
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
