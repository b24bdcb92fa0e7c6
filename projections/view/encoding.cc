#include "projections/view/encoding.h"

#include <algorithm>

#include "common/ascii.h"

#include <cstring>

namespace a3::projections::view {

void put_be32(std::string& out, std::uint32_t v) {
  for (int i = 3; i >= 0; --i)
    out.push_back(static_cast<char>(v >> (8 * i)));
}
void put_be64(std::string& out, std::uint64_t v) {
  for (int i = 7; i >= 0; --i)
    out.push_back(static_cast<char>(v >> (8 * i)));
}
std::uint32_t get_be32(std::string_view in, std::size_t at) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i)
    v = v << 8 | static_cast<std::uint8_t>(in[at + i]);
  return v;
}
std::uint64_t get_be64(std::string_view in, std::size_t at) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i)
    v = v << 8 | static_cast<std::uint8_t>(in[at + i]);
  return v;
}

Writer& Writer::u32(std::uint32_t v) {
  put_be32(out_, v);
  return *this;
}
Writer& Writer::u64(std::uint64_t v) {
  put_be64(out_, v);
  return *this;
}
Writer& Writer::str(std::string_view s) {
  u32(static_cast<std::uint32_t>(s.size()));
  out_.append(s);
  return *this;
}
Writer& Writer::strs(const std::vector<std::string>& v) {
  u32(static_cast<std::uint32_t>(v.size()));
  for (const auto& s : v)
    str(s);
  return *this;
}
Writer& Writer::bytes(const void* p, std::size_t n) {
  out_.append(static_cast<const char*>(p), n);
  return *this;
}

std::uint32_t Reader::u32() {
  if (!ok_ || pos_ + 4 > in_.size()) return ok_ = false, 0;
  const auto v = get_be32(in_, pos_);
  pos_ += 4;
  return v;
}
std::uint64_t Reader::u64() {
  if (!ok_ || pos_ + 8 > in_.size()) return ok_ = false, 0;
  const auto v = get_be64(in_, pos_);
  pos_ += 8;
  return v;
}
std::string Reader::str() {
  const std::uint32_t n = u32();
  if (!ok_ || pos_ + n > in_.size()) return ok_ = false, std::string();
  std::string s(in_.substr(pos_, n));
  pos_ += n;
  return s;
}
std::vector<std::string> Reader::strs() {
  const std::uint32_t n = u32();
  std::vector<std::string> v;
  // Each string takes at least 4 bytes: a count past that is damage.
  if (!ok_ || n > (in_.size() - pos_) / 4) return ok_ = false, v;
  v.reserve(n);
  for (std::uint32_t i = 0; i < n && ok_; ++i)
    v.push_back(str());
  return v;
}
bool Reader::bytes(void* p, std::size_t n) {
  if (!ok_ || pos_ + n > in_.size()) return ok_ = false;
  std::memcpy(p, in_.data() + pos_, n);
  pos_ += n;
  return true;
}

std::string encode(const AccountRecord& r) {
  return Writer()
      .str(r.name)
      .str(r.password_hash)
      .strs(r.addresses)
      .u64(r.quota_bytes)
      .i64(r.created_ms)
      .done();
}
std::optional<AccountRecord> decode_account(std::string_view v) {
  Reader in(v);
  AccountRecord r{in.str(), in.str(), in.strs(), in.u64(), in.i64()};
  if (!in.ok()) return std::nullopt;
  return r;
}

std::string encode(const MailboxRecord& r) {
  return Writer()
      .bytes(r.id.bytes.data(), 16)
      .str(r.account)
      .str(r.name)
      .str(r.special_use)
      .u32(r.uidvalidity)
      .u32(r.uidnext)
      .u64(r.highestmodseq)
      .u32(r.messages)
      .u32(r.unseen)
      .u64(r.size)
      .done();
}
std::optional<MailboxRecord> decode_mailbox(std::string_view v) {
  Reader in(v);
  MailboxRecord r;
  in.bytes(r.id.bytes.data(), 16);
  r.account = in.str();
  r.name = in.str();
  r.special_use = in.str();
  r.uidvalidity = in.u32();
  r.uidnext = in.u32();
  r.highestmodseq = in.u64();
  r.messages = in.u32();
  r.unseen = in.u32();
  r.size = in.u64();
  if (!in.ok()) return std::nullopt;
  return r;
}

std::string encode(const MessageRecord& r) {
  return Writer()
      .strs(r.flags)
      .u64(r.modseq)
      .u64(r.size)
      .i64(r.internal_date_ms)
      .bytes(r.blob.data(), r.blob.size())
      .bytes(r.event_id.bytes.data(), 16)
      .i64(r.appended_at_ms)
      .done();
}
std::optional<MessageRecord> decode_message(std::string_view v, std::uint32_t uid) {
  Reader in(v);
  MessageRecord r;
  r.uid = uid;
  r.flags = in.strs();
  r.modseq = in.u64();
  r.size = in.u64();
  r.internal_date_ms = in.i64();
  in.bytes(r.blob.data(), r.blob.size());
  in.bytes(r.event_id.bytes.data(), 16);
  r.appended_at_ms = in.i64();
  if (!in.ok()) return std::nullopt;
  return r;
}

std::string encode(const BanRecord& r) {
  Writer w;
  w.str(r.network).str(r.reason).str(r.rule).i64(r.added_ms).i64(r.expires_ms).str(r.by);
  return w.done();
}

std::optional<BanRecord> decode_ban(std::string_view v) {
  Reader in(v);
  BanRecord r;
  r.network = in.str();
  r.reason = in.str();
  r.rule = in.str();
  r.added_ms = in.i64();
  r.expires_ms = in.i64();
  r.by = in.str();
  if (!in.ok()) return std::nullopt;
  return r;
}

std::string ban_key(std::string_view network) {
  std::string k(kBanPrefix);
  k.append(network);
  return k;
}

std::string encode(const QueueRecord& r) {
  Writer w;
  w.bytes(r.id.bytes.data(), 16).str(r.account).str(r.mail_from);
  w.u32(static_cast<std::uint32_t>(r.recipients.size()));
  for (const auto& x : r.recipients)
    w.str(x.address)
        .u32(x.notify)
        .str(x.orcpt)
        // The state, and the delay report in bit 8 (records written before
        // it existed decode as not reported).
        .u32(static_cast<std::uint32_t>(x.state) | (x.delay_reported ? 0x100u : 0u))
        .str(x.reply);
  w.bytes(r.blob.data(), r.blob.size()).u64(r.size).i64(r.queued_ms).i64(r.expires_ms);
  w.i64(r.next_attempt_ms).u32(r.attempts).str(r.envid);
  w.u32((r.ret_headers ? 1u : 0u) | (r.smtputf8 ? 2u : 0u) | (r.eightbit ? 4u : 0u));
  w.str(r.last_host).str(r.last_reply);
  return w.done();
}

std::optional<QueueRecord> decode_queue(std::string_view v) {
  Reader in(v);
  QueueRecord r;
  in.bytes(r.id.bytes.data(), 16);
  r.account = in.str();
  r.mail_from = in.str();
  const std::uint32_t n = in.u32();
  for (std::uint32_t i = 0; i < n && in.ok(); ++i) {
    projections::QueueRecipient x;
    x.address = in.str();
    x.notify = static_cast<std::uint8_t>(in.u32());
    x.orcpt = in.str();
    const std::uint32_t bits = in.u32();
    const std::uint32_t state = bits & 0xff;
    if (state > 3 || (bits & ~0x1ffu)) return std::nullopt;
    x.state = static_cast<projections::QueueRecipient::State>(state);
    x.delay_reported = bits & 0x100;
    x.reply = in.str();
    r.recipients.push_back(std::move(x));
  }
  in.bytes(r.blob.data(), r.blob.size());
  r.size = in.u64();
  r.queued_ms = in.i64();
  r.expires_ms = in.i64();
  r.next_attempt_ms = in.i64();
  r.attempts = in.u32();
  r.envid = in.str();
  const std::uint32_t bits = in.u32();
  r.ret_headers = bits & 1;
  r.smtputf8 = bits & 2;
  r.eightbit = bits & 4;
  r.last_host = in.str();
  r.last_reply = in.str();
  if (!in.ok()) return std::nullopt;
  return r;
}

std::string due_key(std::int64_t next_attempt_ms, const Uuid& id) {
  std::string k;
  put_be64(k, static_cast<std::uint64_t>(std::max<std::int64_t>(next_attempt_ms, 0)));
  k.append(reinterpret_cast<const char*>(id.bytes.data()), id.bytes.size());
  return k;
}

std::string encode(const mime::Summary& s) {
  Writer w;
  w.str(s.envelope).str(s.body).str(s.bodystructure);
  w.strs({s.subject, s.from, s.to, s.cc, s.bcc, s.message_id});
  w.i64(s.date_ms);
  w.u32(static_cast<std::uint32_t>(s.parts.size()));
  for (const auto& p : s.parts) {
    w.str(p.section).u64(p.header_begin).u64(p.body_begin).u64(p.body_end).str(p.type);
    w.str(p.encoding).u32(p.message ? 1 : 0).u64(p.inner_body_begin);
  }
  w.i64(s.date_offset_minutes);  // added after the parts: older summaries lack it
  return w.done();
}

std::optional<mime::Summary> decode_mime(std::string_view v) {
  Reader in(v);
  mime::Summary s;
  s.envelope = in.str();
  s.body = in.str();
  s.bodystructure = in.str();
  auto fields = in.strs();
  if (fields.size() != 6) return std::nullopt;
  s.subject = fields[0];
  s.from = fields[1];
  s.to = fields[2];
  s.cc = fields[3];
  s.bcc = fields[4];
  s.message_id = fields[5];
  s.date_ms = in.i64();
  const std::uint32_t n = in.u32();
  for (std::uint32_t i = 0; i < n && in.ok(); ++i) {
    mime::Part p;
    p.section = in.str();
    p.header_begin = in.u64();
    p.body_begin = in.u64();
    p.body_end = in.u64();
    p.type = in.str();
    p.encoding = in.str();
    p.message = in.u32() != 0;
    p.inner_body_begin = in.u64();
    s.parts.push_back(std::move(p));
  }
  if (!in.ok()) return std::nullopt;
  if (!in.at_end()) s.date_offset_minutes = static_cast<std::int32_t>(in.i64());
  if (!in.ok()) return std::nullopt;
  return s;
}

std::string id_key(const Uuid& id) {
  return std::string(reinterpret_cast<const char*>(id.bytes.data()), id.bytes.size());
}
std::string named_key(std::string_view account, std::string_view name) {
  std::string k(account);
  k.push_back('\0');
  k.append(name);
  return k;
}
std::string message_key(const Uuid& mailbox, std::uint32_t uid) {
  std::string k = id_key(mailbox);
  put_be32(k, uid);
  return k;
}
std::string change_key(const Uuid& mailbox, std::uint64_t modseq, std::uint32_t uid) {
  std::string k = id_key(mailbox);
  put_be64(k, modseq);
  put_be32(k, uid);
  return k;
}
std::uint32_t uid_of_message_key(std::string_view key) {
  return get_be32(key, 16);
}
std::string next_offset_key(std::int32_t partition) {
  std::string k = "next/";
  put_be32(k, static_cast<std::uint32_t>(partition));
  return k;
}
std::string outcome_key(std::int32_t partition, std::int64_t offset) {
  std::string k = "outcome/";
  put_be32(k, static_cast<std::uint32_t>(partition));
  put_be64(k, static_cast<std::uint64_t>(offset));
  return k;
}
std::string blob_key(const Sha256& h) {
  return std::string(reinterpret_cast<const char*>(h.data()), h.size());
}

std::string staging_prefix(std::int32_t partition, std::int64_t started_ms, const Uuid& blob_id) {
  std::string k;
  put_be32(k, static_cast<std::uint32_t>(partition));
  put_be64(k, static_cast<std::uint64_t>(std::max<std::int64_t>(0, started_ms)));
  k += id_key(blob_id);
  return k;
}

std::string staging_key(std::int32_t partition, std::int64_t started_ms, const Uuid& blob_id,
                        std::uint32_t seq) {
  std::string k = staging_prefix(partition, started_ms, blob_id);
  put_be32(k, seq);
  return k;
}

std::string lowercase(std::string_view s) {
  return ascii::lower(s);
}

std::string normalize_mailbox_name(std::string_view name) {
  if (lowercase(name) == "inbox") return "INBOX";
  if (name.size() > 6 && lowercase(name.substr(0, 6)) == "inbox/") {
    return "INBOX" + std::string(name.substr(5));
  }
  return std::string(name);
}

}  // namespace a3::projections::view
