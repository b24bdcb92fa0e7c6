// IMAP command syntax (RFC 9051 9, RFC 3501 9): a reader over one complete
// command, its literals already in place ("{5}\r\nhello"). Every error is a
// ParseError whose text goes to the client in a BAD response.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace a3::imap {

struct ParseError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A sequence set (RFC 9051 9 sequence-set): ranges of numbers, where 0
// stands for "*" (the largest number in use) until resolved; or "$" (the
// saved search result, RFC 5182).
struct SequenceSet {
  struct Range {
    std::uint32_t first = 0, last = 0;  // 0 = "*"
  };
  std::vector<Range> ranges;
  bool saved = false;  // "$"

  // Whether n is in the set, with "*" meaning `star`.
  bool contains(std::uint32_t n, std::uint32_t star) const;
  // The set as IMAP text, ranges merged: "1:3,7".
  static std::string format(std::vector<std::uint32_t> numbers);
};

class Parser {
 public:
  explicit Parser(std::string_view in) : in_(in) {}

  bool at_end() const { return pos_ >= in_.size(); }
  char peek() const { return at_end() ? '\0' : in_[pos_]; }
  bool consume(char c);
  void expect(char c);
  void sp() { expect(' '); }
  // Case-insensitive keyword followed by a non-atom character.
  bool keyword(std::string_view word);

  std::string tag();
  std::string atom();
  // atom plus ']' (ASTRING-CHAR), used where RFC 9051 allows it.
  std::string astring();
  std::string string();  // quoted or literal
  std::optional<std::string> nstring();
  std::uint32_t number();
  std::uint64_t number64();
  SequenceSet sequence_set();
  // "(" items ")" of flags: \Seen $Keyword...
  std::vector<std::string> flag_list();
  std::string flag();
  // "dd-Mon-yyyy" (SEARCH dates), quoted or not.
  std::int64_t date();
  // date-time "dd-Mon-yyyy hh:mm:ss +zzzz" in quotes (APPEND); ms since epoch.
  std::int64_t date_time();
  // A mailbox name as sent (astring); INBOX in any case becomes "INBOX".
  std::string mailbox();
  // A LIST pattern: like astring but with % and * allowed.
  std::string list_mailbox();

  std::size_t position() const { return pos_; }
  std::string_view rest() const { return in_.substr(pos_); }

 private:
  [[noreturn]] void fail(const std::string& what) const;
  std::string literal();
  std::string quoted();

  std::string_view in_;
  std::size_t pos_ = 0;
};

bool is_atom_char(char c);

// Modified UTF-7 mailbox names (RFC 3501 5.1.3) <-> UTF-8. decode returns
// nullopt for an invalid encoding.
std::string utf7_encode(std::string_view utf8);
std::optional<std::string> utf7_decode(std::string_view utf7);

}  // namespace a3::imap
