// DKIM signing: signatures made with our keys verify with python3-dkim (an
// independent implementation, run as Debian's /usr/bin/python3), for
// rsa-sha256 and ed25519-sha256, whole or fed in pieces; bad keys are
// refused at start-up with the file's name.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include <fmt/format.h>

#include "delivery/dkim.h"
#include "tests/test_util.h"

namespace a3::delivery {
namespace {

std::string run(const std::string& command) {
  std::string out;
  FILE* p = popen(command.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, p))
    out.append(buf, n);
  pclose(p);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r'))
    out.pop_back();
  return out;
}

class Dkim : public ::testing::Test {
 protected:
  // A key of `algorithm` ("RSA" or "ED25519") and its DNS record.
  std::pair<std::string, std::string> key(const std::string& algorithm) {
    const std::string path = (dir.path() / (algorithm + ".pem")).string();
    run(fmt::format("openssl genpkey -algorithm {} {} -out {} 2>/dev/null", algorithm,
                    algorithm == "RSA" ? "-pkeyopt rsa_keygen_bits:2048" : "", path));
    const std::string der = fmt::format("openssl pkey -in {} -pubout -outform DER", path);
    const std::string p =
        algorithm == "RSA" ? run(der + " | base64 -w0") : run(der + " | tail -c 32 | base64 -w0");
    return {path, fmt::format("v=DKIM1; k={}; p={}", algorithm == "RSA" ? "rsa" : "ed25519", p)};
  }

  std::string verify(const std::string& signed_message, const std::string& record) {
    const std::string path = (dir.path() / "m.eml").string();
    std::ofstream(path, std::ios::binary) << signed_message;
    return run(fmt::format("/usr/bin/python3 {}/e2e/dkim_verify.py {} s1 example.test '{}'",
                           A3_TEST_SOURCE_DIR, path, record));
  }

  test::TempDir dir;
  const std::string message =
      "From: Alice <alice@example.test>\r\nTo: bob@example.net\r\nSubject: hello\r\n"
      "Date: Tue, 01 Dec 2026 10:00:00 +0000\r\n\r\nBody  with   spaces \r\n\r\n\r\n";
};

TEST_F(Dkim, RsaAndEd25519SignaturesVerifyIndependently) {
  for (const std::string alg : {"RSA", "ED25519"}) {
    const auto [path, record] = key(alg);
    DkimSigner signer(
        {{"Example.TEST", "s1", path, alg == "RSA" ? "rsa-sha256" : "ed25519-sha256"}});
    EXPECT_TRUE(signer.signs("example.test"));
    EXPECT_FALSE(signer.signs("example.net"));
    EXPECT_FALSE(signer.sign("example.net", message)) << "no key, no signature";
    const auto sig = signer.sign("example.test", message);
    ASSERT_TRUE(sig) << alg;
    EXPECT_TRUE(sig->starts_with("DKIM-Signature: ")) << *sig;
    EXPECT_TRUE(sig->ends_with("\r\n"));
    EXPECT_EQ(sig->find("\n", 0) == std::string::npos ? 0 : (*sig)[sig->find('\n') - 1], '\r')
        << "folded with CRLF";
    EXPECT_EQ(verify(*sig + message, record), "pass") << alg << ": " << *sig;
    EXPECT_NE(verify(*sig + message + "tampered\r\n", record), "pass") << alg;

    // Fed in pieces, as a large message streams in: the same signature.
    auto s = signer.start("example.test");
    for (std::size_t i = 0; i < message.size(); i += 7)
      s->feed(std::string_view(message).substr(i, 7));
    const auto pieces = s->finish();
    ASSERT_TRUE(pieces);
    EXPECT_EQ(verify(*pieces + message, record), "pass") << alg;
  }
}

TEST_F(Dkim, BadKeysAreRefusedWithTheirFile) {
  const std::string junk = (dir.path() / "junk.pem").string();
  std::ofstream(junk) << "not a key";
  try {
    DkimSigner({{"example.test", "s1", junk, "rsa-sha256"}});
    FAIL() << "a junk key was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(junk), std::string::npos) << e.what();
  }
  const auto [ed, record] = key("ED25519");
  EXPECT_THROW(DkimSigner({{"example.test", "s1", ed, "rsa-sha256"}}), std::runtime_error)
      << "an Ed25519 key for rsa-sha256";
  EXPECT_THROW(DkimSigner({{"example.test", "s1", dir.path() / "missing.pem", "rsa-sha256"}}),
               std::runtime_error);
}

}  // namespace
}  // namespace a3::delivery
