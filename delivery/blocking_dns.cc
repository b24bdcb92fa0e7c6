#include "delivery/blocking_dns.h"

#include <poll.h>

#include <stdexcept>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unbound.h>

namespace a3::delivery {

namespace {

struct Outcome {
  bool done = false;
  int err = 0;
  ub_result* result = nullptr;
};

thread_local int may_block = 0;

void on_result(void* data, int err, ub_result* result) {
  auto* out = static_cast<Outcome*>(data);
  out->done = true;
  out->err = err;
  out->result = result;
}

}  // namespace

BlockingDns::BlockingDns(std::vector<std::string> forwarders, std::chrono::milliseconds timeout)
    : forwarders_(std::move(forwarders)), timeout_(timeout) {
  give_back(borrow());  // a bad forwarder stops the start, not the first message
}

BlockingDns::~BlockingDns() {
  for (auto* ctx : idle_)
    ub_ctx_delete(ctx);
}

ub_ctx* BlockingDns::borrow() const {
  {
    std::lock_guard lock(mutex_);
    if (!idle_.empty()) {
      ub_ctx* ctx = idle_.back();
      idle_.pop_back();
      return ctx;
    }
  }
  // Answers are waited for with poll() on ub_fd, so that a query has a
  // deadline.
  ub_ctx* ctx = make_context(forwarders_, {}, "dns");
  return ctx;
}

void BlockingDns::give_back(ub_ctx* ctx) const {
  {
    std::lock_guard lock(mutex_);
    if (idle_.size() < kMaxIdle) {
      idle_.push_back(ctx);
      return;
    }
  }
  ub_ctx_delete(ctx);
}

BlockingDns::MayBlock::MayBlock() {
  ++may_block;
}

BlockingDns::MayBlock::~MayBlock() {
  --may_block;
}

BlockingDns::Answer BlockingDns::query(const std::string& name, int type,
                                       Budget& budget) const noexcept {
  Answer answer;
  if (may_block == 0) {
    spdlog::error("dns: {} (type {}) asked for on a thread that must not wait: refused", name,
                  type);
    return answer;
  }
  const auto now = std::chrono::steady_clock::now();
  if (budget.queries_left <= 0 || now >= budget.deadline) return answer;
  --budget.queries_left;
  ub_ctx* ctx = nullptr;
  try {
    ctx = borrow();
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return answer;
  }
  Outcome out;
  int id = 0;
  if (const int r = ub_resolve_async(ctx, name.c_str(), type, 1, &out, on_result, &id); r != 0) {
    give_back(ctx);
    // Not a name (a label over 63 octets, an empty label...): it does not exist.
    if (r == UB_SYNTAX) answer.status = DnsStatus::nxdomain;
    return answer;
  }
  const auto deadline = std::min(budget.deadline, now + timeout_);
  bool broken = false;
  while (!out.done && !broken) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{ub_fd(ctx), POLLIN, 0};
    const int n = ::poll(&p, 1, static_cast<int>(left.count()));
    if (n > 0 && (p.revents & POLLIN)) {
      ub_process(ctx);
    } else if (n > 0) {
      broken = true;  // POLLERR, POLLHUP: not worth keeping
    }
  }
  if (!out.done) {
    ub_cancel(ctx, id);  // the callback will not run: `out` may go
    if (broken) {
      ub_ctx_delete(ctx);
    } else {
      give_back(ctx);
    }
    return answer;
  }
  give_back(ctx);
  if (out.err != 0 || !out.result) {
    if (out.result) ub_resolve_free(out.result);
    return answer;
  }
  const ub_result* r = out.result;
  if (r->nxdomain) {
    answer.status = DnsStatus::nxdomain;
  } else if (r->rcode != 0) {
    answer.status = DnsStatus::temporary;  // SERVFAIL, REFUSED...
  } else if (!r->havedata) {
    answer.status = DnsStatus::nodata;
  } else {
    answer.status = DnsStatus::ok;
    answer.ttl = r->ttl;
    for (int i = 0; r->data && r->data[i]; ++i)
      answer.rdata.emplace_back(r->data[i], static_cast<std::size_t>(r->len[i]));
  }
  ub_resolve_free(out.result);
  return answer;
}

std::string txt_rdata(const std::string& rdata) {
  std::string out;
  std::size_t pos = 0;
  while (pos < rdata.size()) {
    const std::size_t len = static_cast<unsigned char>(rdata[pos]);
    out.append(rdata, pos + 1, std::min(len, rdata.size() - pos - 1));
    pos += 1 + len;
  }
  return out;
}

BlockingDns::Txt BlockingDns::txt(const std::string& name, Budget& budget) const noexcept {
  auto a = query(name, kTxt, budget);
  Txt out{a.status, {}};
  for (const auto& r : a.rdata)
    out.records.push_back(txt_rdata(r));
  return out;
}

}  // namespace a3::delivery
