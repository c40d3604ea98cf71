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
