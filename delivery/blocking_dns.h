// DNS for the libraries that ask synchronously (libspf2 and libopendkim's
// key lookups): libunbound, with a deadline per query, on the calling
// thread. Only for threads that may wait (the inbound authentication
// pool), never an I/O thread; delivery/resolver.h is the asynchronous one.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "delivery/resolver.h"

struct ub_ctx;

namespace a3::delivery {

class BlockingDns {
 public:
  // `forwarders` as for Resolver; throws std::runtime_error with a message
  // for operators.
  BlockingDns(std::vector<std::string> forwarders, std::chrono::milliseconds timeout);
  ~BlockingDns();
  BlockingDns(const BlockingDns&) = delete;
  BlockingDns& operator=(const BlockingDns&) = delete;

  struct Answer {
    DnsStatus status = DnsStatus::temporary;
    std::vector<std::string> rdata;  // wire format, one per record
    int ttl = 0;
  };
  // Thread-safe: each call borrows a context of its own.
  Answer query(const std::string& name, int type) const;

  // TXT records, each record's character-strings joined (RFC 7208 3.3).
  struct Txt {
    DnsStatus status = DnsStatus::temporary;
    std::vector<std::string> records;
  };
  Txt txt(const std::string& name) const;

  static constexpr int kA = 1, kPtr = 12, kMx = 15, kTxt = 16, kAaaa = 28;

 private:
  ub_ctx* borrow() const;
  void give_back(ub_ctx* ctx) const;

  std::vector<std::string> forwarders_;
  std::chrono::milliseconds timeout_;
  mutable std::mutex mutex_;
  mutable std::vector<ub_ctx*> idle_;  // contexts keep their caches between queries
};

// Decodes TXT RDATA: its character-strings, concatenated.
std::string txt_rdata(const std::string& rdata);

}  // namespace a3::delivery
