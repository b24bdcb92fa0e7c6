// The PROXY protocol header parser, against the examples and rules of
// haproxy's proxy-protocol.txt (versions 1 and 2).
#include <gtest/gtest.h>

#include <string>

#include "frontends/net/proxy.h"

namespace a3::net::proxy {
namespace {

using boost::asio::ip::make_address;

const std::string kSig("\r\n\r\n\0\r\nQUIT\n", 12);

std::string v2(unsigned char ver_cmd, unsigned char fam, const std::string& body) {
  std::string h = kSig;
  h.push_back(static_cast<char>(ver_cmd));
  h.push_back(static_cast<char>(fam));
  h.push_back(static_cast<char>(body.size() >> 8));
  h.push_back(static_cast<char>(body.size() & 0xff));
  return h + body;
}

TEST(Proxy, V1Tcp4AndTcp6NameTheClient) {
  const std::string line = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n";
  const auto r = parse(line + "EHLO client\r\n");
  ASSERT_EQ(r.status, Status::ok) << r.error;
  EXPECT_EQ(r.header.version, 1);
  EXPECT_EQ(r.header.size, line.size()) << "exactly the header, not the client's bytes";
  EXPECT_EQ(r.header.source->address(), make_address("192.168.0.1"));
  EXPECT_EQ(r.header.source->port(), 56324);
  EXPECT_EQ(r.header.destination->address(), make_address("192.168.0.11"));
  EXPECT_EQ(r.header.destination->port(), 443);
  const auto r6 = parse("PROXY TCP6 2001:db8::1 2001:db8::2 65535 0\r\n");
  ASSERT_EQ(r6.status, Status::ok) << r6.error;
  EXPECT_EQ(r6.header.source->address(), make_address("2001:db8::1"));
  EXPECT_EQ(r6.header.source->port(), 65535);
}

TEST(Proxy, V1UnknownKeepsThePeerAddress) {
  for (const char* line :
       {"PROXY UNKNOWN\r\n", "PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n"}) {
    const auto r = parse(line);
    ASSERT_EQ(r.status, Status::ok) << line;
    EXPECT_FALSE(r.header.source);
    EXPECT_EQ(r.header.size, std::string(line).size());
  }
}

TEST(Proxy, V1ThatIsCutShortWantsMoreAndAWorstCaseLineFits) {
  const std::string line = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n";
  for (std::size_t n = 0; n < line.size(); ++n)
    EXPECT_EQ(parse(line.substr(0, n)).status, Status::incomplete) << n;
  // The spec's worst case, 107 octets: UNKNOWN with the longest addresses
  // (TCP6's longest is 104).
  const std::string longest = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
  const std::string worst = "PROXY UNKNOWN " + longest + " " + longest + " 65535 65535\r\n";
  EXPECT_EQ(worst.size(), kMaxV1);
  EXPECT_EQ(parse(worst).status, Status::ok);
  const std::string tcp6 = "PROXY TCP6 " + longest + " " + longest + " 65535 65535\r\n";
  EXPECT_EQ(tcp6.size(), 104u);
  EXPECT_EQ(parse(tcp6).status, Status::ok);
}

TEST(Proxy, MalformedV1IsRefused) {
  for (const char* bad : {
           "PROXY TCP4 192.168.0.1 192.168.0.11 56324\r\n",        // a port missing
           "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443 x\r\n",  // one field more
           "PROXY TCP4  192.168.0.1 192.168.0.11 56324 443\r\n",   // two spaces
           "PROXY TCP4 2001:db8::1 192.168.0.11 56324 443\r\n",    // IPv6 in TCP4
           "PROXY TCP6 192.168.0.1 2001:db8::2 56324 443\r\n",     // IPv4 in TCP6
           "PROXY TCP4 192.168.0.1 192.168.0.11 65536 443\r\n",    // port too large
           "PROXY TCP4 192.168.0.1 192.168.0.11 0443 443\r\n",     // leading zero
           "PROXY TCP4 192.168.0.1 192.168.0.11 -1 443\r\n",       // sign
           "PROXY TCP4 192.168.1 192.168.0.11 1 443\r\n",          // short address
           "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\n",      // bare LF
           "PROXY UDP4 192.168.0.1 192.168.0.11 56324 443\r\n",    // not TCP
           "PROXY tcp4 192.168.0.1 192.168.0.11 56324 443\r\n",    // case
           "PROXY TCP6 fe80::1%eth0 2001:db8::2 1 2\r\n",          // a scope
           "proxy TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",    // not PROXY
           "EHLO client.example\r\n",                              // no header at all
           "\r\n\r\n\r\nQUIT\n",                                   // a wrong v2 signature
       })
    EXPECT_EQ(parse(bad).status, Status::invalid) << bad;
  // A NUL would have ended the address for inet_pton ("1.2.3.4"); a tab
  // is no space.
  EXPECT_EQ(parse(std::string("PROXY TCP4 1.2.3.4\0x 5.6.7.8 6 1\r\n", 33)).status,
            Status::invalid);
  EXPECT_EQ(parse(std::string("PROXY TCP4 1.2.3.4\0", 19)).status, Status::invalid)
      << "wrong already, before the CRLF";
  EXPECT_EQ(parse("PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n").status, Status::invalid);
  EXPECT_EQ(parse("PROXY TCP4 1.2.3.4 5.6.7.8 6 1\r").status, Status::incomplete);
  // 108 octets with their CRLF: one too many.
  const std::string longest = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
  const std::string over = "PROXY UNKNOWN  " + longest + " " + longest + " 65535 65535\r\n";
  ASSERT_EQ(over.size(), kMaxV1 + 1);
  EXPECT_EQ(parse(over).status, Status::invalid);
  // 107 octets without a CRLF can never become a header.
  EXPECT_EQ(parse("PROXY UNKNOWN " + std::string(100, 'x')).status, Status::invalid);
}

TEST(Proxy, V2NamesTheClientAndSkipsTlvs) {
  std::string body = {'\xc0', '\x00', '\x02', '\x07', '\xc0', '\x00',
                      '\x02', '\x01', '\x30', '\x39', '\x00', '\x19'};
  body += std::string("\x04\x00\x03\x61\x62\x63", 6);  // a TLV (PP2_TYPE_NOOP)
  const std::string h = v2(0x21, 0x11, body);
  const auto r = parse(h + "EHLO x\r\n");
  ASSERT_EQ(r.status, Status::ok) << r.error;
  EXPECT_EQ(r.header.version, 2);
  EXPECT_EQ(r.header.size, h.size());
  EXPECT_EQ(r.header.source->address(), make_address("192.0.2.7"));
  EXPECT_EQ(r.header.source->port(), 12345);
  EXPECT_EQ(r.header.destination->address(), make_address("192.0.2.1"));
  EXPECT_EQ(r.header.destination->port(), 25);
  std::string body6(36, '\0');
  body6[0] = '\x20';
  body6[1] = '\x01';
  body6[2] = '\x0d';
  body6[3] = '\xb8';
  body6[15] = '\x09';
  body6[35] = '\x8f';
  const auto r6 = parse(v2(0x21, 0x21, body6));
  ASSERT_EQ(r6.status, Status::ok) << r6.error;
  EXPECT_EQ(r6.header.source->address(), make_address("2001:db8::9"));
  EXPECT_EQ(r6.header.destination->port(), 143);
  for (std::size_t n = 0; n < h.size(); ++n)
    EXPECT_EQ(parse(h.substr(0, n)).status, Status::incomplete) << n;
}

TEST(Proxy, V2LocalKeepsThePeerAddressAndOtherFamiliesAreRefused) {
  const auto local = parse(v2(0x20, 0x00, ""));
  ASSERT_EQ(local.status, Status::ok);
  EXPECT_FALSE(local.header.source);
  EXPECT_EQ(local.header.size, 16u);
  // LOCAL may carry addresses: they are ignored.
  EXPECT_FALSE(parse(v2(0x20, 0x11, std::string(12, '\1'))).header.source);
  // PROXY without a client address would make the client the proxy.
  EXPECT_EQ(parse(v2(0x21, 0x00, "")).status, Status::invalid) << "UNSPEC";
  EXPECT_EQ(parse(v2(0x21, 0x31, std::string(216, '\0'))).status, Status::invalid) << "AF_UNIX";
  // Only 0x11 and 0x21 carry TCP addresses; the rest are not in the spec.
  for (const unsigned char fam : {0x01, 0x02, 0x10, 0x20, 0x30, 0x13, 0x22, 0x32, 0x41, 0xff})
    EXPECT_EQ(parse(v2(0x21, fam, std::string(216, '\0'))).status, Status::invalid)
        << static_cast<int>(fam);
}

TEST(Proxy, MalformedV2IsRefused) {
  EXPECT_EQ(parse(v2(0x11, 0x11, std::string(12, '\0'))).status, Status::invalid)
      << "version 1 in a v2 header";
  EXPECT_EQ(parse(v2(0x22, 0x11, std::string(12, '\0'))).status, Status::invalid) << "command 2";
  EXPECT_EQ(parse(v2(0x21, 0x11, std::string(11, '\0'))).status, Status::invalid)
      << "IPv4 cut short";
  EXPECT_EQ(parse(v2(0x21, 0x21, std::string(35, '\0'))).status, Status::invalid)
      << "IPv6 cut short";
  EXPECT_EQ(parse(v2(0x21, 0x12, std::string(12, '\0'))).status, Status::invalid) << "UDP";
  EXPECT_EQ(parse(v2(0x21, 0x41, std::string(12, '\0'))).status, Status::invalid) << "family 4";
}

}  // namespace
}  // namespace a3::net::proxy
