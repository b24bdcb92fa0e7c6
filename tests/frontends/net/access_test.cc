// The access-control file's rules (frontends/net/access.h): sender domains,
// and countries from a location database the test writes with libloc's own
// writer.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <utility>
#include <vector>

extern "C" {
#include <libloc/libloc.h>
#include <libloc/network.h>
#include <libloc/writer.h>
}

#include "frontends/net/access.h"

namespace a3::net {
namespace {

namespace fs = std::filesystem;
using boost::asio::ip::make_address;

class Access : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("a3-access-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    // The loopback entry is a trap: no local address is ever in a country.
    write_db(dir_ / "location.db", {{"198.51.100.0/24", "DE"},
                                    {"203.0.113.0/24", "FR"},
                                    {"2001:db8:1::/48", "JP"},
                                    {"127.0.0.0/8", "FR"},
                                    {"10.0.0.0/8", "FR"}});
  }
  void TearDown() override { fs::remove_all(dir_); }

  static void write_db(const fs::path& file,
                       const std::vector<std::pair<const char*, const char*>>& networks) {
    loc_ctx* ctx = nullptr;
    ASSERT_EQ(loc_new(&ctx), 0);
    loc_writer* writer = nullptr;
    ASSERT_EQ(loc_writer_new(ctx, &writer, nullptr, nullptr), 0);
    for (const auto& [cidr, cc] : networks) {
      loc_network* n = nullptr;
      ASSERT_EQ(loc_writer_add_network(writer, &n, cidr), 0) << cidr;
      ASSERT_EQ(loc_network_set_country_code(n, cc), 0);
      loc_network_unref(n);
    }
    FILE* f = std::fopen(file.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    ASSERT_EQ(loc_writer_write(writer, f, LOC_DATABASE_VERSION_LATEST), 0);
    std::fclose(f);
    loc_writer_unref(writer);
    loc_unref(ctx);
  }

  config::AccessControl countries(std::vector<std::string> allow, std::vector<std::string> block) {
    config::AccessControl a;
    a.allow_countries = std::move(allow);
    a.block_countries = std::move(block);
    a.country_database = dir_ / "location.db";
    return a;
  }

  fs::path dir_;
};

TEST_F(Access, TheDatabaseGivesTheCountryOfPublicAddressesOnly) {
  const CountryDatabase db(dir_ / "location.db");
  EXPECT_EQ(db.country(make_address("198.51.100.77")), "DE");
  EXPECT_EQ(db.country(make_address("::ffff:203.0.113.9")), "FR");  // a dual-stack listener's view
  EXPECT_EQ(db.country(make_address("2001:db8:1:2::3")), "JP");
  EXPECT_EQ(db.country(make_address("192.0.2.1")), std::nullopt);  // in no network of the file
  // Whatever the file says of them.
  EXPECT_EQ(db.country(make_address("127.0.0.2")), std::nullopt);
  EXPECT_EQ(db.country(make_address("10.1.2.3")), std::nullopt);
  for (const char* local : {"::1", "172.16.5.4", "192.168.1.1", "169.254.0.9", "100.64.1.1",
                            "fd00::1", "fe80::1", "::ffff:127.0.0.1"})
    EXPECT_TRUE(CountryDatabase::local(make_address(local))) << local;
  EXPECT_FALSE(CountryDatabase::local(make_address("198.51.100.1")));
  EXPECT_GT(db.created_at(), 0);
}

TEST_F(Access, ADatabaseThatCannotBeReadNamesItsFile) {
  std::ofstream(dir_ / "garbage.db") << "not a database";
  for (const fs::path& bad : {dir_ / "missing.db", dir_ / "garbage.db"}) {
    try {
      CountryDatabase db(bad);
      ADD_FAILURE() << bad << " was opened";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(bad.string()), std::string::npos) << e.what();
    }
  }
}

TEST_F(Access, BlockedCountriesAreRefusedAndLocalNetworksNever) {
  const AccessRules rules(countries({}, {"FR"}));
  EXPECT_TRUE(rules.has_countries());
  EXPECT_EQ(rules.refuses_country(make_address("203.0.113.9")),
            "Connections from country FR are refused here");
  EXPECT_FALSE(rules.refuses_country(make_address("198.51.100.1")));
  EXPECT_FALSE(rules.refuses_country(make_address("192.0.2.1")));  // no country, no allow list
  EXPECT_FALSE(rules.refuses_country(make_address("127.0.0.1")));  // "FR" in the file
  EXPECT_FALSE(rules.refuses_country(make_address("10.9.9.9")));
}

TEST_F(Access, AnAllowListRefusesEveryOtherCountryAndTheUnknown) {
  const AccessRules rules(countries({"DE", "JP"}, {}));
  EXPECT_FALSE(rules.refuses_country(make_address("198.51.100.1")));
  EXPECT_FALSE(rules.refuses_country(make_address("2001:db8:1::1")));
  EXPECT_EQ(rules.refuses_country(make_address("203.0.113.1")),
            "Connections from country FR are not accepted here");
  EXPECT_EQ(rules.refuses_country(make_address("192.0.2.1")),
            "Connections from addresses of no known country are refused here");
  EXPECT_FALSE(rules.refuses_country(make_address("127.0.0.1")));
  EXPECT_FALSE(rules.refuses_country(make_address("::1")));
}

TEST_F(Access, NoCountryListReadsNoDatabase) {
  config::AccessControl a;
  a.country_database = dir_ / "missing.db";
  const AccessRules rules(a);
  EXPECT_FALSE(rules.has_countries());
  EXPECT_FALSE(rules.refuses_country(make_address("203.0.113.1")));
  a.block_countries = {"FR"};
  EXPECT_THROW(AccessRules{a}, std::runtime_error);
}

TEST(AccessDomains, TheLongestEntryDecidesAndCoversSubdomains) {
  config::AccessControl a;
  a.block_domains = {"spam.example", "bad.partner.example"};
  a.allow_domains = {"partner.example", "ok.spam.example"};
  const AccessRules rules(a);
  EXPECT_TRUE(rules.has_domains());
  EXPECT_EQ(rules.refuses_sender("spam.example"), "Sender domain spam.example is blocked here");
  EXPECT_EQ(rules.refuses_sender("mx.spam.example"),
            "Sender domain mx.spam.example is blocked here");
  EXPECT_FALSE(rules.refuses_sender("ok.spam.example"));
  EXPECT_FALSE(rules.refuses_sender("a.ok.spam.example"));
  EXPECT_FALSE(rules.refuses_sender("partner.example"));
  EXPECT_EQ(rules.refuses_sender("x.bad.partner.example"),
            "Sender domain x.bad.partner.example is blocked here");
  // Not a parent: a label boundary only.
  EXPECT_EQ(rules.refuses_sender("notspam.example"),
            "Sender domain notspam.example is not among the domains accepted here");
  EXPECT_EQ(rules.refuses_sender("[192.0.2.1]"),
            "Sender domain [192.0.2.1] is not among the domains accepted here");
}

// Entries are A-labels (config.cc converts U-labels); a UTF-8 sender
// domain is looked up as its A-labels, whatever its case.
TEST(AccessDomains, InternationalisedDomainsMatchInEitherSpelling) {
  config::AccessControl a;
  a.block_domains = {"xn--bcher-kva.example"};
  const AccessRules rules(a);
  EXPECT_TRUE(rules.refuses_sender("xn--bcher-kva.example"));
  EXPECT_TRUE(
      rules.refuses_sender("b\xc3\xbc"
                           "cher.example"));
  EXPECT_TRUE(
      rules.refuses_sender("mx.B\xc3\x9c"
                           "CHER.example"));
  EXPECT_FALSE(rules.refuses_sender("bucher.example"));
  EXPECT_FALSE(rules.refuses_sender("\xff\xfe.example"));  // not UTF-8: no entry's
}

TEST(AccessDomains, WithoutAnAllowListOnlyTheBlockedAreRefused) {
  config::AccessControl a;
  a.block_domains = {"spam.example"};
  const AccessRules rules(a);
  EXPECT_FALSE(rules.refuses_sender("example"));
  EXPECT_FALSE(rules.refuses_sender("notspam.example"));
  EXPECT_TRUE(rules.refuses_sender("spam.example"));
  const AccessRules none;
  EXPECT_FALSE(none.has_domains());
  EXPECT_FALSE(none.refuses_sender("spam.example"));
}

}  // namespace
}  // namespace a3::net
