#include "delivery/dkim.h"

#include <fstream>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>
// libopendkim's header is C and names C's _Bool.
#define _Bool bool
#include <opendkim/dkim.h>
#undef _Bool
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <spdlog/spdlog.h>

#include "common/ascii.h"

namespace a3::delivery {

namespace {

struct Key {
  std::string domain;  // lowercase
  std::string selector;
  dkim_alg_t alg = DKIM_SIGN_RSASHA256;
  std::string secret;  // the PEM text, which libopendkim reads for both algorithms
};

Key load(const config::DkimKey& k) {
  std::ifstream in(k.private_key, std::ios::binary);
  if (!in) throw std::runtime_error(fmt::format("dkim: cannot read {}", k.private_key.string()));
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string pem = ss.str();
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  EVP_PKEY* pkey = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (!pkey)
    throw std::runtime_error(
        fmt::format("dkim: {} is not a PEM private key", k.private_key.string()));
  Key out{ascii::lower(k.domain), k.selector, DKIM_SIGN_RSASHA256, pem};
  const int type = EVP_PKEY_get_base_id(pkey);
  const bool ed25519 = k.algorithm == "ed25519-sha256";
  if (ed25519 != (type == EVP_PKEY_ED25519)) {
    EVP_PKEY_free(pkey);
    throw std::runtime_error(fmt::format("dkim: {} is not a{} key ({} needs one)",
                                         k.private_key.string(), ed25519 ? "n Ed25519" : "n RSA",
                                         k.algorithm));
  }
  if (ed25519) {
    EVP_PKEY_free(pkey);
    out.alg = DKIM_SIGN_ED25519SHA256;
  } else {
    if (type != EVP_PKEY_RSA || EVP_PKEY_get_bits(pkey) < 1024) {
      EVP_PKEY_free(pkey);
      throw std::runtime_error(fmt::format(
          "dkim: {} must be an RSA key of at least 1024 bits (RFC 8301)", k.private_key.string()));
    }
    EVP_PKEY_free(pkey);
  }
  return out;
}

}  // namespace

struct DkimSigner::Impl {
  DKIM_LIB* lib = nullptr;
  std::vector<Key> keys;
  const Key* find(std::string_view domain) const {
    for (const auto& k : keys)
      if (ascii::iequals(k.domain, domain)) return &k;
    return nullptr;
  }
};

namespace {

class LibSigning : public DkimSigner::Signing {
 public:
  LibSigning(DKIM_LIB* lib, const Key& key) : key_(key) {
    DKIM_STAT status = DKIM_STAT_OK;
    dkim_ = dkim_sign(lib, reinterpret_cast<const unsigned char*>("a3"), nullptr,
                      reinterpret_cast<dkim_sigkey_t>(const_cast<char*>(key.secret.c_str())),
                      reinterpret_cast<const unsigned char*>(key.selector.c_str()),
                      reinterpret_cast<const unsigned char*>(key.domain.c_str()),
                      DKIM_CANON_RELAXED, DKIM_CANON_RELAXED, key.alg, -1, &status);
    if (!dkim_ || status != DKIM_STAT_OK) fail(fmt::format("dkim_sign: status {}", status));
  }
  ~LibSigning() override {
    if (dkim_) dkim_free(dkim_);
  }
  void feed(std::string_view bytes) override {
    if (!dkim_ || bytes.empty()) return;
    std::string copy(bytes);  // dkim_chunk takes a non-const buffer
    const DKIM_STAT s =
        dkim_chunk(dkim_, reinterpret_cast<unsigned char*>(copy.data()), copy.size());
    if (s != DKIM_STAT_OK) fail(fmt::format("dkim_chunk: {}", dkim_geterror(dkim_)));
  }
  std::optional<std::string> finish() override {
    if (!dkim_) return std::nullopt;
    if (dkim_chunk(dkim_, nullptr, 0) != DKIM_STAT_OK || dkim_eom(dkim_, nullptr) != DKIM_STAT_OK) {
      fail(fmt::format("signing: {}", dkim_geterror(dkim_)));
      return std::nullopt;
    }
    unsigned char* header = nullptr;
    std::size_t len = 0;
    constexpr std::string_view kName = "DKIM-Signature: ";
    if (dkim_getsighdr_d(dkim_, kName.size(), &header, &len) != DKIM_STAT_OK || !header) {
      fail("no signature header");
      return std::nullopt;
    }
    // Folded with LF by the library; a message's lines end in CRLF.
    std::string out(kName);
    for (std::size_t i = 0; i < len; ++i) {
      if (header[i] == '\n' && (i == 0 || header[i - 1] != '\r')) out += '\r';
      out += static_cast<char>(header[i]);
    }
    out += "\r\n";
    return out;
  }

 private:
  void fail(const std::string& why) {
    spdlog::warn("dkim: cannot sign for {} (selector {}): {}; sent unsigned", key_.domain,
                 key_.selector, why);
    if (dkim_) dkim_free(dkim_);
    dkim_ = nullptr;
  }

  DKIM* dkim_ = nullptr;
  const Key& key_;
};

}  // namespace

DkimSigner::DkimSigner(const std::vector<config::DkimKey>& keys) : impl_(std::make_unique<Impl>()) {
  for (const auto& k : keys)
    impl_->keys.push_back(load(k));
  impl_->lib = dkim_init(nullptr, nullptr);
  if (!impl_->lib) throw std::runtime_error("dkim: cannot initialise libopendkim");
}

DkimSigner::~DkimSigner() {
  if (impl_ && impl_->lib) dkim_close(impl_->lib);
}

bool DkimSigner::signs(std::string_view domain) const {
  return impl_->find(domain) != nullptr;
}

std::unique_ptr<DkimSigner::Signing> DkimSigner::start(std::string_view domain) const {
  const Key* k = impl_->find(domain);
  if (!k) return nullptr;
  return std::make_unique<LibSigning>(impl_->lib, *k);
}

std::optional<std::string> DkimSigner::sign(std::string_view domain,
                                            std::string_view message) const {
  auto s = start(domain);
  if (!s) return std::nullopt;
  s->feed(message);
  return s->finish();
}

}  // namespace a3::delivery
