// Unit tests for reading connection strings and naming their target
// (lib/client/conninfo.h, lib/client/connection.h).
#include "client/conninfo.h"
#include "client/connection.h"

#include <gtest/gtest.h>

#include <map>

using namespace pgt::client;

namespace {

EnvLookup env_of(std::map<std::string, std::string> vars) {
    return [vars = std::move(vars)](const char* name) -> const char* {
        auto it = vars.find(name);
        return it == vars.end() ? nullptr : it->second.c_str();
    };
}

std::string target(const std::string& conninfo, std::map<std::string, std::string> env = {}) {
    return conninfo_target(parse_conninfo(conninfo), env_of(std::move(env)));
}

}  // namespace

TEST(Conninfo, keyword_value_strings_with_quotes_and_escapes) {
    auto p = parse_conninfo(" host=db  port = 5433 password='a \\'b\\' c' dbname=x\\ y ");
    ConninfoParams want = {
        {"host", "db"}, {"port", "5433"}, {"password", "a 'b' c"}, {"dbname", "x y"}};
    EXPECT_EQ(p, want);
    EXPECT_TRUE(parse_conninfo("").empty());
}

TEST(Conninfo, keyword_value_syntax_errors_are_reported) {
    EXPECT_THROW(parse_conninfo("host"), ConninfoSyntaxError);
    EXPECT_THROW(parse_conninfo("host='db"), ConninfoSyntaxError);
    EXPECT_THROW(parse_conninfo("bogus=1"), ConninfoSyntaxError);
}

TEST(Conninfo, uris_are_split_into_keywords) {
    auto p = parse_conninfo("postgresql://app:p%40ss@db:5433/shop?sslmode=require&ssl=true");
    ConninfoParams want = {{"user", "app"},       {"password", "p@ss"}, {"host", "db"},
                           {"port", "5433"},      {"dbname", "shop"},   {"sslmode", "require"},
                           {"sslmode", "require"}};
    EXPECT_EQ(p, want);
}

TEST(Conninfo, uri_host_lists_and_ipv6) {
    auto p = parse_conninfo("postgres://[::1]:5433,h2/db");
    ConninfoParams want = {{"host", "::1,h2"}, {"port", "5433,"}, {"dbname", "db"}};
    EXPECT_EQ(p, want);
    EXPECT_TRUE(parse_conninfo("postgresql://").empty());
    EXPECT_THROW(parse_conninfo("postgresql://h/db?nonsense"), ConninfoSyntaxError);
    EXPECT_THROW(parse_conninfo("postgresql://h/db?bogus=1"), ConninfoSyntaxError);
    EXPECT_THROW(parse_conninfo("postgresql://[::1/db"), ConninfoSyntaxError);
    EXPECT_THROW(parse_conninfo("postgresql://h%zz/db"), ConninfoSyntaxError);
}

TEST(Conninfo, target_prefers_the_string_then_environment_then_defaults) {
    EXPECT_EQ(target("host=db port=6000", {{"PGHOST", "other"}, {"PGPORT", "7"}}), "db:6000");
    EXPECT_EQ(target("dbname=x", {{"PGHOST", "envhost"}, {"PGPORT", "7"}}), "envhost:7");
    EXPECT_EQ(target("hostaddr=10.0.0.1"), "10.0.0.1:5432");
    EXPECT_EQ(target(""), "[local]:5432");
    EXPECT_EQ(target("host=/tmp/sock"), "/tmp/sock:5432");
    EXPECT_EQ(target("postgresql://a:1,b:2/db"), "a:1,b:2");
    EXPECT_EQ(target("host=a,b port=9"), "a:9,b:9");
}

TEST(Conninfo, target_from_a_service_names_the_service) {
    EXPECT_EQ(target("service=prod"), "service prod");
    EXPECT_EQ(target("", {{"PGSERVICE", "stage"}}), "service stage");
    EXPECT_EQ(target("service=prod host=h"), "h:5432");
}

TEST(Connection, dsn_flag_wins_over_environment_which_wins_over_libpq_defaults) {
    auto flag = resolve_connection(std::string("host=a"), "host=b");
    EXPECT_EQ(flag.conninfo, "host=a");
    EXPECT_EQ(flag.origin, DsnOrigin::flag);
    auto env = resolve_connection(std::nullopt, "host=b");
    EXPECT_EQ(env.conninfo, "host=b");
    EXPECT_EQ(env.origin, DsnOrigin::env);
    auto defaults = resolve_connection(std::nullopt, "");
    EXPECT_EQ(defaults.conninfo, "");
    EXPECT_EQ(defaults.origin, DsnOrigin::libpq_defaults);
    EXPECT_EQ(resolve_connection(std::nullopt, nullptr).origin, DsnOrigin::libpq_defaults);
}

TEST(Connection, describe_target_reports_malformed_strings_with_their_origin) {
    try {
        describe_target({"host='x", DsnOrigin::env});
        FAIL() << "no exception";
    } catch (const InvalidDsn& e) {
        EXPECT_EQ(e.origin(), DsnOrigin::env);
        EXPECT_NE(std::string(e.what()).find("PGTRICKLE_DSN"), std::string::npos) << e.what();
    }
}
