// How `pgtrickle migrate` reaches a Citus worker (lib/client/node_connect.h): the
// coordinator's connection settings with the worker's host, port and the same database.
#include "client/node_connect.h"

#include <gtest/gtest.h>

#include "client/conninfo.h"

using pgt::client::ConnectionSpec;
using pgt::client::DsnOrigin;
using pgt::client::InvalidDsn;
using pgt::client::node_connection;
using pgt::client::parse_conninfo;

namespace {

// The value of `key` in a keyword=value string ("<none>" when absent, "<twice>" when repeated).
std::string value_of(const std::string& conninfo, const std::string& key) {
    std::string found = "<none>";
    for (const auto& [k, v] : parse_conninfo(conninfo)) {
        if (k == key) {
            found = found == "<none>" ? v : "<twice>";
        }
    }
    return found;
}

}  // namespace

TEST(NodeConnection, keeps_the_coordinators_settings_and_replaces_host_port_and_database) {
    const ConnectionSpec c{
        "host=coord hostaddr=10.0.0.1 port=5432 dbname=shop user=ops password='p w' "
        "sslmode=require",
        DsnOrigin::flag};
    const ConnectionSpec w = node_connection(c, "10.0.0.2", 5433, "shop", 5);
    EXPECT_EQ(w.origin, DsnOrigin::cluster_node);
    EXPECT_EQ(value_of(w.conninfo, "host"), "10.0.0.2");
    EXPECT_EQ(value_of(w.conninfo, "hostaddr"), "<none>");
    EXPECT_EQ(value_of(w.conninfo, "port"), "5433");
    EXPECT_EQ(value_of(w.conninfo, "dbname"), "shop");
    EXPECT_EQ(value_of(w.conninfo, "user"), "ops");
    EXPECT_EQ(value_of(w.conninfo, "password"), "p w");
    EXPECT_EQ(value_of(w.conninfo, "sslmode"), "require");
    EXPECT_EQ(value_of(w.conninfo, "connect_timeout"), "5");
}

TEST(NodeConnection, reads_a_uri_and_quotes_what_needs_it) {
    const ConnectionSpec c{"postgresql://o%27neil@coord:6000/my%20db?application_name=a%5Cb",
                           DsnOrigin::env};
    const ConnectionSpec w = node_connection(c, "w1", 6001, "my db", 5);
    EXPECT_EQ(value_of(w.conninfo, "user"), "o'neil");
    EXPECT_EQ(value_of(w.conninfo, "application_name"), "a\\b");
    EXPECT_EQ(value_of(w.conninfo, "host"), "w1");
    EXPECT_EQ(value_of(w.conninfo, "port"), "6001");
    EXPECT_EQ(value_of(w.conninfo, "dbname"), "my db");
}

TEST(NodeConnection, libpq_defaults_give_the_node_and_keepalives_and_the_users_settings_win) {
    const ConnectionSpec w = node_connection({"", DsnOrigin::libpq_defaults}, "w1", 1, "d", 5);
    // host, port, dbname, connect_timeout and the five keepalive settings.
    EXPECT_EQ(parse_conninfo(w.conninfo).size(), 9u);
    EXPECT_EQ(value_of(w.conninfo, "keepalives"), "1");
    EXPECT_EQ(value_of(w.conninfo, "tcp_user_timeout"), "30000");
    const ConnectionSpec t = node_connection(
        {"connect_timeout=30 keepalives_idle=60", DsnOrigin::flag}, "w1", 1, "d", 5);
    EXPECT_EQ(value_of(t.conninfo, "connect_timeout"), "30");
    EXPECT_EQ(value_of(t.conninfo, "keepalives_idle"), "60");
}

TEST(NodeConnection, a_malformed_coordinator_string_is_an_invalid_dsn) {
    EXPECT_THROW(node_connection({"host='unterminated", DsnOrigin::env}, "w1", 1, "d", 5),
                 InvalidDsn);
}
