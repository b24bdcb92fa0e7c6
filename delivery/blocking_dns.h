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

  // What one check may spend on DNS, whatever the records ask for (SPF's
  // includes, DKIM signatures): a deadline and a number of queries. Past
  // either, queries fail temporarily at once.
  struct Budget {
    std::chrono::steady_clock::time_point deadline;
    int queries_left = 0;
    static Budget of(std::chrono::milliseconds time, int queries) {
      return {std::chrono::steady_clock::now() + time, queries};
    }
  };

  // Blocking is for threads that say they may (the checks pool): a query
  // on any other thread is refused (temporary) and logged, so that a
  // library calling back at an unexpected time never stalls an I/O thread.
  class MayBlock {
   public:
    MayBlock();
    ~MayBlock();
    MayBlock(const MayBlock&) = delete;
    MayBlock& operator=(const MayBlock&) = delete;
  };

  // Thread-safe: each call borrows a context of its own. Never throws.
  Answer query(const std::string& name, int type, Budget& budget) const noexcept;

  // TXT records, each record's character-strings joined (RFC 7208 3.3).
  struct Txt {
    DnsStatus status = DnsStatus::temporary;
    std::vector<std::string> records;
  };
  Txt txt(const std::string& name, Budget& budget) const noexcept;

  static constexpr int kA = 1, kPtr = 12, kMx = 15, kTxt = 16, kAaaa = 28;

 private:
  ub_ctx* borrow() const;
  void give_back(ub_ctx* ctx) const;

  std::vector<std::string> forwarders_;
  std::chrono::milliseconds timeout_;
  mutable std::mutex mutex_;
  mutable std::vector<ub_ctx*> idle_;  // contexts keep their caches between queries
  static constexpr std::size_t kMaxIdle = 8;
};

// Decodes TXT RDATA: its character-strings, concatenated.
std::string txt_rdata(const std::string& rdata);

}  // namespace a3::delivery
