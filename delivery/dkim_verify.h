// DKIM verification (RFC 6376) with libopendkim, for mail received on the
// MX: a message is fed as it arrives (hashing only), and its signatures'
// keys are looked up at the end, through BlockingDns (on a thread that may
// wait). At most kMaxSignatures signatures of a message are checked.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "delivery/blocking_dns.h"

namespace a3::delivery {

struct DkimResult {
  std::string result;    // RFC 8601: pass, fail, neutral, temperror, permerror
  std::string domain;    // d=
  std::string selector;  // s=
  std::string b;         // the start of b= (RFC 6008 header.b)
  std::string reason;    // why it did not pass
};

class DkimVerifier {
 public:
  static constexpr int kMaxSignatures = 5;

  explicit DkimVerifier(const BlockingDns& dns);
  ~DkimVerifier();
  DkimVerifier(const DkimVerifier&) = delete;
  DkimVerifier& operator=(const DkimVerifier&) = delete;

  class Verification {
   public:
    virtual ~Verification() = default;
    // Before the first bytes: signatures of domains for which `preferred(d)`
    // holds (aligned with the author's) are among the ones checked.
    virtual void prefer(std::function<bool(std::string_view)> preferred) = 0;
    // Hashing only: keys are looked up at the end (libopendkim's
    // DELAYSIGPROC), never on the thread that feeds.
    virtual void feed(std::string_view bytes) = 0;
    // Looks the keys up (blocks, within `budget`) and checks; empty without
    // signatures.
    virtual std::vector<DkimResult> finish(BlockingDns::Budget& budget) = 0;
  };

  std::unique_ptr<Verification> start() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace a3::delivery
