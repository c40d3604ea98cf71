#include <gtest/gtest.h>

#include "core/node_conninfo.h"

namespace pgt::node_conninfo {
namespace {

Target worker() {
    Target t;
    t.host = "10.0.0.7";
    t.port = 5432;
    t.dbname = "shop";
    t.user = "alice";
    t.client_encoding = "UTF8";
    t.application_name = "pg_trickle";
    return t;
}

TEST(NodeConninfo, target_alone_gives_host_port_db_user_encoding_and_name) {
    const Options o = merge(worker(), {}, {});
    EXPECT_EQ(o, (Options{{"host", "10.0.0.7"},
                          {"port", "5432"},
                          {"dbname", "shop"},
                          {"user", "alice"},
                          {"client_encoding", "UTF8"},
                          {"application_name", "pg_trickle"}}));
}

TEST(NodeConninfo, node_conninfo_adds_options_but_never_redirects_the_session) {
    const Options o = merge(worker(),
                            {{"sslmode", "verify-ca"},
                             {"keepalives_idle", "30"},
                             {"port", "6000"},
                             {"application_name", "other"}},
                            {});
    EXPECT_EQ(o.at("sslmode"), "verify-ca");
    EXPECT_EQ(o.at("keepalives_idle"), "30");
    EXPECT_EQ(o.at("port"), "5432");
    EXPECT_EQ(o.at("application_name"), "pg_trickle");
}

TEST(NodeConninfo, host_in_node_conninfo_moves_the_node_address_to_hostaddr) {
    const Options o =
        merge(worker(), {{"host", "worker7.example.com"}, {"sslmode", "verify-full"}}, {});
    EXPECT_EQ(o.at("host"), "worker7.example.com");
    EXPECT_EQ(o.at("hostaddr"), "10.0.0.7");
    EXPECT_EQ(o.at("port"), "5432");
}

TEST(NodeConninfo, authinfo_wins_over_everything_and_empty_values_are_ignored) {
    const Options o = merge(worker(), {{"sslmode", "require"}, {"sslcert", ""}},
                            {{"password", "s3cret"}, {"sslmode", "verify-full"}, {"sslkey", ""}});
    EXPECT_EQ(o.at("password"), "s3cret");
    EXPECT_EQ(o.at("sslmode"), "verify-full");
    EXPECT_EQ(o.count("sslcert"), 0U);
    EXPECT_EQ(o.count("sslkey"), 0U);
}

TEST(NodeConninfo, empty_target_fields_fall_back_to_libpq_defaults) {
    Target t = worker();
    t.client_encoding.clear();
    t.user.clear();
    const Options o = merge(t, {}, {});
    EXPECT_EQ(o.count("client_encoding"), 0U);
    EXPECT_EQ(o.count("user"), 0U);
}

TEST(NodeConninfo, defaults_add_keepalives_and_tcp_user_timeout) {
    const Options o = merge(worker(), {}, {}, connection_defaults());
    EXPECT_EQ(o.at("keepalives"), "1");
    EXPECT_EQ(o.at("keepalives_idle"), "10");
    EXPECT_EQ(o.at("keepalives_interval"), "5");
    EXPECT_EQ(o.at("keepalives_count"), "3");
    EXPECT_EQ(o.at("tcp_user_timeout"), "30000");
    // The target is untouched by them.
    Options without = o;
    for (const auto& [key, value] : connection_defaults()) {
        without.erase(key);
    }
    EXPECT_EQ(without, merge(worker(), {}, {}));
}

TEST(NodeConninfo, user_options_beat_the_defaults) {
    const Options o =
        merge(worker(), {{"keepalives_idle", "60"}, {"tcp_user_timeout", "0"}},
              {{"keepalives", "0"}, {"keepalives_count", "9"}}, connection_defaults());
    EXPECT_EQ(o.at("keepalives_idle"), "60");     // citus.node_conninfo
    EXPECT_EQ(o.at("tcp_user_timeout"), "0");     // citus.node_conninfo, 0 = the kernel's default
    EXPECT_EQ(o.at("keepalives"), "0");           // pg_dist_authinfo
    EXPECT_EQ(o.at("keepalives_count"), "9");     // pg_dist_authinfo
    EXPECT_EQ(o.at("keepalives_interval"), "5");  // nobody said otherwise
}

TEST(NodeConninfo, an_empty_user_option_does_not_remove_a_default) {
    // libpq treats an empty value as unset: the default stays.
    const Options o = merge(worker(), {{"keepalives_idle", ""}}, {}, connection_defaults());
    EXPECT_EQ(o.at("keepalives_idle"), "10");
}

TEST(NodeConninfo, defaults_never_redirect_the_session_nor_move_the_host) {
    const Options o = merge(worker(), {}, {}, {{"host", "elsewhere"}, {"port", "1"}});
    EXPECT_EQ(o.at("host"), "10.0.0.7");
    EXPECT_EQ(o.count("hostaddr"), 0U);
    EXPECT_EQ(o.at("port"), "5432");
}

TEST(NodeConninfo, node_row_beats_wildcard_row) {
    const std::vector<std::pair<int32_t, std::string>> rows = {
        {0, "password=any"}, {3, "password=three"}, {-1, "password=self"}};
    EXPECT_EQ(pick_authinfo(rows, 3), "password=three");
    EXPECT_EQ(pick_authinfo(rows, 4), "password=any");
    EXPECT_EQ(pick_authinfo(rows, wildcard_node_id), "password=any");
    EXPECT_EQ(pick_authinfo(rows, loopback_node_id), "password=self");
    EXPECT_EQ(pick_authinfo({{3, "password=three"}}, 4), std::nullopt);
    EXPECT_EQ(pick_authinfo({}, 3), std::nullopt);
}

TEST(NodeConninfo, loopback_uses_the_loopback_row_then_the_wildcard) {
    EXPECT_TRUE(is_loopback("localhost", 5432, "localhost", 5432));
    EXPECT_FALSE(is_loopback("127.0.0.1", 5432, "localhost", 5432));  // text, not resolved
    EXPECT_FALSE(is_loopback("localhost", 5433, "localhost", 5432));
    EXPECT_EQ(authinfo_node_id(3, true), loopback_node_id);
    EXPECT_EQ(authinfo_node_id(3, false), 3);
    EXPECT_EQ(pick_authinfo({{0, "password=any"}}, authinfo_node_id(3, true)), "password=any");
}

}  // namespace
}  // namespace pgt::node_conninfo
