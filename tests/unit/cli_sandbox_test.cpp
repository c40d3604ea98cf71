// The pure parts of `pgtrickle sandbox` (lib/client/sandbox.h): the marker that makes a
// directory ours, the default directory, and the server's settings.
#include "client/sandbox.h"

#include <gtest/gtest.h>

namespace sb = pgt::client::sandbox;

TEST(SandboxMarker, round_trips_and_rejects_foreign_files) {
    sb::Marker m;
    m.port = 54321;
    m.created_by = "pgtrickle 0.35.0";
    const auto back = sb::parse_marker(sb::marker_text(m));
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(back->port, 54321);
    EXPECT_EQ(back->database, "pgtrickle");
    EXPECT_EQ(back->created_by, "pgtrickle 0.35.0");
    EXPECT_FALSE(sb::parse_marker("").has_value());
    EXPECT_FALSE(sb::parse_marker("port = 5432").has_value());
    EXPECT_FALSE(sb::parse_marker(R"({"kind": "something-else", "port": 1})").has_value());
    EXPECT_FALSE(sb::parse_marker(R"({"kind": "pgtrickle-sandbox", "port": "1"})").has_value());
}

TEST(SandboxDir, runtime_dir_for_users_tmp_for_root_or_when_unset) {
    EXPECT_EQ(sb::default_dir("/run/user/1000", false), "/run/user/1000/pgtrickle-sandbox");
    EXPECT_EQ(sb::default_dir("/run/user/0", true), "/tmp/pgtrickle-sandbox");
    EXPECT_EQ(sb::default_dir(nullptr, false), "/tmp/pgtrickle-sandbox");
    EXPECT_EQ(sb::default_dir("", false), "/tmp/pgtrickle-sandbox");
}

TEST(SandboxSettings, loopback_only_preloaded_logical_and_trust_on_127_0_0_1) {
    const std::string conf = sb::server_settings(6543);
    for (const char* line :
         {"listen_addresses = '127.0.0.1'\n", "port = 6543\n", "unix_socket_directories = ''\n",
          "shared_preload_libraries = 'pg_trickle'\n", "wal_level = logical\n"}) {
        EXPECT_NE(conf.find(line), std::string::npos) << line;
    }
    const std::string hba = sb::hba_conf();
    EXPECT_NE(hba.find("host all all 127.0.0.1/32 trust\n"), std::string::npos);
    EXPECT_EQ(hba.find("0.0.0.0"), std::string::npos);
    EXPECT_EQ(hba.find("local"), std::string::npos);
    EXPECT_EQ(sb::dsn(6543), "postgresql://postgres@127.0.0.1:6543/pgtrickle");
}

TEST(SandboxMarker, citus_marker_records_every_node_and_old_markers_are_single) {
    sb::Marker m;
    m.port = 41000;
    m.topology = sb::Topology::citus;
    m.nodes = {{"coordinator", 41000}, {"worker1", 41001}, {"worker2", 41002}};
    const auto back = sb::parse_marker(sb::marker_text(m));
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(back->topology, sb::Topology::citus);
    ASSERT_EQ(back->nodes.size(), 3U);
    EXPECT_EQ(back->nodes[2].name, "worker2");
    EXPECT_EQ(back->nodes[2].port, 41002);
    // Markers written before Citus sandboxes have no topology: one node.
    const auto old = sb::parse_marker(R"({"kind": "pgtrickle-sandbox", "port": 5})");
    ASSERT_TRUE(old.has_value());
    EXPECT_EQ(old->topology, sb::Topology::single);
    EXPECT_TRUE(old->nodes.empty());
    // A Citus marker without its nodes, or a topology we do not know, is not ours to touch.
    EXPECT_FALSE(
        sb::parse_marker(R"({"kind": "pgtrickle-sandbox", "port": 5, "topology": "citus"})"));
    EXPECT_FALSE(
        sb::parse_marker(R"({"kind": "pgtrickle-sandbox", "port": 5, "topology": "mesh"})"));
}

TEST(SandboxSettings, citus_nodes_preload_citus_first_with_cdc_and_synchronous_commits) {
    const std::string conf = sb::server_settings(6543, sb::Topology::citus);
    for (const char* line : {"listen_addresses = '127.0.0.1'\n", "port = 6543\n",
                             "shared_preload_libraries = 'citus,pg_trickle'\n",
                             "citus.enable_change_data_capture = on\n", "synchronous_commit = on\n",
                             "max_prepared_transactions = 200\n", "wal_level = logical\n"}) {
        EXPECT_NE(conf.find(line), std::string::npos) << line;
    }
    EXPECT_EQ(sb::server_settings(6543).find("citus"), std::string::npos);
    EXPECT_STREQ(sb::topology_name(sb::Topology::citus), "citus");
}
