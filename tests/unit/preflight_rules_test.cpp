// Unit tests for the preflight rules (lib/core/preflight_rules.h).
#include "core/preflight_rules.h"

#include <gtest/gtest.h>

using namespace pgt::preflight;

namespace {

NodeFacts healthy_facts() {
    NodeFacts f;
    f.server_version_num = 150004;
    f.server_version = "15.4";
    f.shared_preload_libraries = "pg_trickle";
    f.wal_level = "logical";
    f.database = "app";
    f.extension_version = "0.35.0";
    f.extension_available = true;
    return f;
}

bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

}  // namespace

TEST(PreflightRules, healthy_node_passes_every_check_without_hints) {
    auto checks = evaluate_single_node(healthy_facts(), "0.35.0");
    ASSERT_EQ(checks.size(), 4u);
    EXPECT_EQ(checks[0].name, "server_version");
    EXPECT_EQ(checks[1].name, "shared_preload_libraries");
    EXPECT_EQ(checks[2].name, "extension");
    EXPECT_EQ(checks[3].name, "wal_level");
    Summary s;
    for (const auto& c : checks) {
        EXPECT_EQ(c.status, Status::pass) << c.name << ": " << c.detail;
        EXPECT_TRUE(c.hint.empty()) << c.name;
        s.add(c.status);
    }
    EXPECT_EQ(s.pass, 4);
    EXPECT_EQ(s.warn + s.fail, 0);
}

TEST(PreflightRules, server_other_than_postgresql_15_fails) {
    for (int num : {140010, 160001, 0}) {
        NodeFacts f = healthy_facts();
        f.server_version_num = num;
        Check c = check_server_version(f);
        EXPECT_EQ(c.status, Status::fail) << num;
        EXPECT_TRUE(contains(c.detail, "requires PostgreSQL 15")) << c.detail;
        EXPECT_FALSE(c.hint.empty());
    }
}

TEST(PreflightRules, missing_preload_fails_with_alter_system_hint_keeping_other_libraries) {
    NodeFacts f = healthy_facts();
    f.shared_preload_libraries = "pg_stat_statements, \"odd,lib\"";
    Check c = check_preload(f);
    EXPECT_EQ(c.status, Status::fail);
    EXPECT_TRUE(contains(c.hint,
                         "shared_preload_libraries = 'pg_stat_statements,\"odd,lib\","
                         "pg_trickle'"))
        << c.hint;
    EXPECT_TRUE(contains(c.hint, "restart")) << c.hint;
}

TEST(PreflightRules, empty_preload_list_is_reported_as_empty) {
    NodeFacts f = healthy_facts();
    f.shared_preload_libraries = "";
    Check c = check_preload(f);
    EXPECT_EQ(c.status, Status::fail);
    EXPECT_TRUE(contains(c.detail, "is empty")) << c.detail;
    EXPECT_TRUE(contains(c.hint, "= 'pg_trickle'")) << c.hint;
}

TEST(PreflightRules, preload_accepts_path_and_suffix_forms) {
    EXPECT_TRUE(preloads_pg_trickle("pg_trickle"));
    EXPECT_TRUE(preloads_pg_trickle("citus, pg_trickle"));
    EXPECT_TRUE(preloads_pg_trickle("$libdir/pg_trickle.so"));
    EXPECT_TRUE(preloads_pg_trickle("\"pg_trickle\""));
    EXPECT_FALSE(preloads_pg_trickle("pg_trickle_old"));
    EXPECT_FALSE(preloads_pg_trickle("pg_tricklex, auto_explain"));
    EXPECT_FALSE(preloads_pg_trickle(""));
}

TEST(PreflightRules, split_setting_list_handles_blanks_and_quotes) {
    using V = std::vector<std::string>;
    EXPECT_EQ(split_setting_list(""), V{});
    EXPECT_EQ(split_setting_list(" a ,b,, c d "), (V{"a", "b", "c d"}));
    EXPECT_EQ(split_setting_list("\"x, y\",\"say \"\"hi\"\"\""), (V{"x, y", "say \"hi\""}));
}

TEST(PreflightRules, extension_not_installed_warns_with_create_extension_hint) {
    NodeFacts f = healthy_facts();
    f.extension_version.reset();
    Check c = check_extension(f, "0.35.0");
    EXPECT_EQ(c.status, Status::warn);
    EXPECT_TRUE(contains(c.detail, "database \"app\"")) << c.detail;
    EXPECT_TRUE(contains(c.hint, "CREATE EXTENSION pg_trickle")) << c.hint;
}

TEST(PreflightRules, extension_files_missing_warns_with_install_hint) {
    NodeFacts f = healthy_facts();
    f.extension_version.reset();
    f.extension_available = false;
    Check c = check_extension(f, "0.35.0");
    EXPECT_EQ(c.status, Status::warn);
    EXPECT_TRUE(contains(c.hint, "Install the pg_trickle 0.35.0 package")) << c.hint;
}

TEST(PreflightRules, older_extension_fails_with_migrate_hint) {
    NodeFacts f = healthy_facts();
    f.extension_version = "0.31.0";
    Check c = check_extension(f, "0.35.0");
    EXPECT_EQ(c.status, Status::fail);
    EXPECT_TRUE(contains(c.hint, "pgtrickle migrate")) << c.hint;
    EXPECT_TRUE(contains(c.hint, "ALTER EXTENSION pg_trickle UPDATE TO '0.35.0'")) << c.hint;
}

TEST(PreflightRules, newer_extension_fails_with_cli_upgrade_hint) {
    NodeFacts f = healthy_facts();
    f.extension_version = "0.40.0";
    Check c = check_extension(f, "0.35.0");
    EXPECT_EQ(c.status, Status::fail);
    EXPECT_TRUE(contains(c.hint, "CLI 0.40.0")) << c.hint;
}

TEST(PreflightRules, wal_level_other_than_logical_only_warns) {
    NodeFacts f = healthy_facts();
    f.wal_level = "replica";
    Check c = check_wal_level(f);
    EXPECT_EQ(c.status, Status::warn);
    EXPECT_TRUE(contains(c.hint, "wal_level = logical")) << c.hint;
}

TEST(PreflightRules, compare_versions_is_numeric_per_component) {
    EXPECT_LT(compare_versions("0.9.1", "0.35.0"), 0);
    EXPECT_GT(compare_versions("1.0.0", "0.35.0"), 0);
    EXPECT_EQ(compare_versions("0.35.0", "0.35.0"), 0);
    EXPECT_EQ(compare_versions("0.035.0", "0.35.0"), 0);
    EXPECT_LT(compare_versions("0.35", "0.35.0"), 0);
    EXPECT_GT(compare_versions("99999999999999999999.0", "1.0"), 0);
}

TEST(PreflightRules, names_of_statuses_and_roles_are_stable) {
    EXPECT_STREQ(status_name(Status::pass), "pass");
    EXPECT_STREQ(status_name(Status::warn), "warn");
    EXPECT_STREQ(status_name(Status::fail), "fail");
    EXPECT_STREQ(role_name(NodeRole::single), "single");
    EXPECT_STREQ(role_name(NodeRole::coordinator), "coordinator");
    EXPECT_STREQ(role_name(NodeRole::worker), "worker");
}

// Citus

namespace {

NodeFacts citus_facts() {
    NodeFacts f = healthy_facts();
    f.shared_preload_libraries = "citus,pg_trickle";
    f.extension_default_version = "0.35.0";
    f.citus_version = "13.0-1";
    f.max_replication_slots = 10;
    f.used_replication_slots = 2;
    f.pgtrickle_replication_slots = 1;
    f.max_wal_senders = 10;
    f.used_wal_senders = 1;
    f.output_plugin_libraries = "pgoutput, test_decoding";
    f.citus_cdc = "on";
    return f;
}

}  // namespace

TEST(PreflightCitus, healthy_coordinator_and_worker_pass_every_check_in_a_fixed_order) {
    const std::vector<DistributedSource> sources = {{"public.orders", 'f'}};
    const auto coordinator = evaluate_coordinator(citus_facts(), sources, "0.35.0");
    std::vector<std::string> names;
    for (const Check& c : coordinator) {
        names.push_back(c.name);
        EXPECT_EQ(c.status, Status::pass) << c.name << ": " << c.detail;
        EXPECT_TRUE(c.hint.empty()) << c.name;
    }
    EXPECT_EQ(names, (std::vector<std::string>{"server_version", "citus_version",
                                               "shared_preload_libraries", "extension", "wal_level",
                                               "replication_slots", "wal_senders", "output_plugins",
                                               "citus_cdc", "replica_identity"}));
    const auto worker = evaluate_worker(citus_facts(), citus_facts());
    ASSERT_FALSE(worker.empty());
    EXPECT_EQ(worker.front().name, "reachable");
    for (const Check& c : worker) {
        EXPECT_EQ(c.status, Status::pass) << c.name << ": " << c.detail;
    }
}

TEST(PreflightCitus, coordinator_needs_citus_and_pg_trickle_preloaded_worker_only_citus) {
    NodeFacts f = citus_facts();
    f.shared_preload_libraries = "pg_stat_statements,citus";
    EXPECT_EQ(check_citus_preload(f, NodeRole::worker).status, Status::pass);
    const Check c = check_citus_preload(f, NodeRole::coordinator);
    EXPECT_EQ(c.status, Status::fail);
    EXPECT_TRUE(contains(c.hint, "'citus,pg_stat_statements,pg_trickle'")) << c.hint;
    f.shared_preload_libraries = "pg_trickle";
    const Check w = check_citus_preload(f, NodeRole::worker);
    EXPECT_EQ(w.status, Status::fail);
    EXPECT_TRUE(contains(w.detail, "citus is not preloaded")) << w.detail;
    EXPECT_TRUE(contains(w.hint, "'citus,pg_trickle'")) << w.hint;
}

TEST(PreflightCitus, worker_versions_must_equal_the_coordinators) {
    NodeFacts coordinator = citus_facts();
    NodeFacts worker = citus_facts();
    worker.citus_version = "12.1-1";
    const Check citus = check_citus_version(worker, coordinator, NodeRole::worker);
    EXPECT_EQ(citus.status, Status::fail);
    EXPECT_TRUE(contains(citus.hint, "13.0-1")) << citus.hint;
    worker.citus_version.reset();
    EXPECT_EQ(check_citus_version(worker, coordinator, NodeRole::worker).status, Status::fail);

    worker = citus_facts();
    worker.extension_version = "0.34.0";
    const Check ext = check_worker_extension(worker, coordinator);
    EXPECT_EQ(ext.status, Status::fail);
    EXPECT_TRUE(contains(ext.detail, "coordinator has 0.35.0")) << ext.detail;
    // Installed at another version (a migration that did not reach every node): migrate.
    EXPECT_TRUE(contains(ext.hint, "pgtrickle migrate")) << ext.hint;
    // The same version installed, but another package on the worker: half of an upgrade.
    worker.extension_version = "0.34.0";
    coordinator.extension_version = "0.34.0";
    worker.extension_default_version = "0.34.0";
    coordinator.extension_default_version = "0.35.0";
    const Check pkg = check_worker_extension(worker, coordinator);
    EXPECT_EQ(pkg.status, Status::fail);
    EXPECT_TRUE(contains(pkg.detail, "package is 0.34.0 and the coordinator's 0.35.0"))
        << pkg.detail;
    EXPECT_TRUE(contains(pkg.hint, "same pg_trickle package on every node")) << pkg.hint;
    worker.extension_default_version = "0.35.0";
    EXPECT_EQ(check_worker_extension(worker, coordinator).status, Status::pass);
    // Not installed anywhere yet: the available files are compared.
    coordinator.extension_version.reset();
    worker.extension_version.reset();
    worker.extension_default_version = "0.35.0";
    EXPECT_EQ(check_worker_extension(worker, coordinator).status, Status::pass);
    worker.extension_default_version.reset();
    const Check none = check_worker_extension(worker, coordinator);
    EXPECT_EQ(none.status, Status::fail);
    EXPECT_TRUE(contains(none.hint, "Install the pg_trickle 0.35.0 package")) << none.hint;
}

TEST(PreflightCitus, wal_level_other_than_logical_fails_on_citus) {
    NodeFacts f = citus_facts();
    f.wal_level = "replica";
    const Check c = check_citus_wal_level(f);
    EXPECT_EQ(c.status, Status::fail);
    EXPECT_TRUE(contains(c.hint, "wal_level = logical")) << c.hint;
}

TEST(PreflightCitus, no_free_replication_slot_fails_unless_pg_trickle_already_has_one) {
    NodeFacts f = citus_facts();
    f.max_replication_slots = 2;
    f.used_replication_slots = 2;
    f.pgtrickle_replication_slots = 0;
    Check c = check_replication_slots(f);
    EXPECT_EQ(c.status, Status::fail);
    EXPECT_TRUE(contains(c.hint, "max_replication_slots = 12")) << c.hint;
    f.pgtrickle_replication_slots = 1;
    EXPECT_EQ(check_replication_slots(f).status, Status::warn);
    f.max_replication_slots = 0;
    f.used_replication_slots = 0;
    f.pgtrickle_replication_slots = 0;
    c = check_replication_slots(f);
    EXPECT_EQ(c.status, Status::fail);
    EXPECT_TRUE(contains(c.detail, "0 of max_replication_slots 0 free")) << c.detail;
}

TEST(PreflightCitus, no_free_wal_sender_only_warns) {
    NodeFacts f = citus_facts();
    f.used_wal_senders = f.max_wal_senders;
    const Check c = check_wal_senders(f);
    EXPECT_EQ(c.status, Status::warn);
    EXPECT_FALSE(c.hint.empty());
}

TEST(PreflightCitus, output_plugin_libraries_must_list_pgoutput_when_the_setting_exists) {
    NodeFacts f = citus_facts();
    f.output_plugin_libraries.reset();
    EXPECT_EQ(check_output_plugins(f).status, Status::pass);
    f.output_plugin_libraries = "test_decoding";
    const Check c = check_output_plugins(f);
    EXPECT_EQ(c.status, Status::fail);
    EXPECT_TRUE(contains(c.hint, "'test_decoding, pgoutput'")) << c.hint;
    EXPECT_TRUE(contains(c.hint, "pg_reload_conf")) << c.hint;
}

TEST(PreflightCitus, citus_change_data_capture_must_be_on) {
    NodeFacts f = citus_facts();
    for (const char* value : {"off", ""}) {
        f.citus_cdc = value;
        const Check c = check_citus_cdc(f);
        EXPECT_EQ(c.status, Status::fail) << value;
        EXPECT_TRUE(contains(c.hint, "citus.enable_change_data_capture = on")) << c.hint;
    }
}

TEST(PreflightCitus, replica_identity_names_every_source_without_full_or_skips_without_extension) {
    EXPECT_EQ(check_replica_identity(std::nullopt).status, Status::skip);
    EXPECT_EQ(check_replica_identity(std::vector<DistributedSource>{}).status, Status::pass);
    const Check c = check_replica_identity(std::vector<DistributedSource>{
        {"public.orders", 'd'}, {"public.ok", 'f'}, {"s.\"Odd\"", 'n'}});
    EXPECT_EQ(c.status, Status::fail);
    EXPECT_TRUE(contains(c.detail, "public.orders, s.\"Odd\"")) << c.detail;
    EXPECT_FALSE(contains(c.detail, "public.ok")) << c.detail;
    EXPECT_TRUE(contains(c.hint, "ALTER TABLE public.orders REPLICA IDENTITY FULL;")) << c.hint;
    EXPECT_TRUE(contains(c.hint, "ALTER TABLE s.\"Odd\" REPLICA IDENTITY FULL;")) << c.hint;
}

TEST(PreflightCitus, connection_errors_of_run_command_on_workers_are_told_from_command_errors) {
    EXPECT_TRUE(is_connection_error("failed to connect to 127.0.0.1:57638"));
    EXPECT_TRUE(is_connection_error(
        "connection to the remote node postgres@10.0.0.2:5432 failed with the following "
        "error: Connection refused"));
    EXPECT_TRUE(is_connection_error("timeout expired"));
    EXPECT_FALSE(is_connection_error("ERROR:  permission denied for table pg_authid"));
    EXPECT_FALSE(is_connection_error("ERROR:  canceling statement due to statement timeout"));
    const Check down = check_reachable(std::string("failed to connect to 127.0.0.1:57638"));
    EXPECT_EQ(down.status, Status::fail);
    EXPECT_TRUE(contains(down.detail, "127.0.0.1:57638")) << down.detail;
    EXPECT_FALSE(down.hint.empty());
}

TEST(PreflightCitus, summary_counts_skipped_checks_apart) {
    Summary s;
    s.add(Status::pass);
    s.add(Status::skip);
    s.add(Status::fail);
    EXPECT_EQ(s.pass, 1);
    EXPECT_EQ(s.skip, 1);
    EXPECT_EQ(s.fail, 1);
    EXPECT_STREQ(status_name(Status::skip), "skip");
}
