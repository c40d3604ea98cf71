// The facts of a Citus node as the preflight runner reads them (lib/client/preflight.h):
// one JSON text per node, parsed into NodeFacts.
#include <gtest/gtest.h>

#include "client/preflight.h"

using pgt::client::parse_citus_facts;

TEST(PreflightFacts, parses_every_field_of_a_node) {
    const auto f = parse_citus_facts(
        R"({"server_version_num": 150020, "server_version": "15.20", )"
        R"("shared_preload_libraries": "citus,pg_trickle", "wal_level": "logical", )"
        R"("database": "app", "extension_version": null, "extension_default_version": "0.35.0", )"
        R"("citus_version": "13.0-1", "max_replication_slots": 16, "used_replication_slots": 3, )"
        R"("pgtrickle_replication_slots": 2, "max_wal_senders": 10, "used_wal_senders": 1, )"
        R"("output_plugin_libraries": null, "citus_cdc": "on"})");
    EXPECT_EQ(f.server_version_num, 150020);
    EXPECT_EQ(f.shared_preload_libraries, "citus,pg_trickle");
    EXPECT_EQ(f.database, "app");
    EXPECT_FALSE(f.extension_version.has_value());
    EXPECT_EQ(f.extension_default_version, "0.35.0");
    EXPECT_TRUE(f.extension_available);
    EXPECT_EQ(f.citus_version, "13.0-1");
    EXPECT_EQ(f.max_replication_slots, 16);
    EXPECT_EQ(f.used_replication_slots, 3);
    EXPECT_EQ(f.pgtrickle_replication_slots, 2);
    EXPECT_EQ(f.max_wal_senders, 10);
    EXPECT_EQ(f.used_wal_senders, 1);
    EXPECT_FALSE(f.output_plugin_libraries.has_value());  // no such setting on this server
    EXPECT_EQ(f.citus_cdc, "on");
}

TEST(PreflightFacts, an_answer_that_is_not_an_object_is_a_parse_error) {
    EXPECT_THROW(parse_citus_facts("ERROR: oops"), pgt::json::ParseError);
    EXPECT_THROW(parse_citus_facts("[1]"), pgt::json::ParseError);
}
