// The SQL script of `pgtrickle dump` (lib/core/dump.h): quoting, options, suspended
// stream tables, schemas, and comments that stay comments whatever the names contain.
#include "core/dump.h"

#include <gtest/gtest.h>

using pgt::dump::Origin;
using pgt::dump::render_sql;
using pgt::dump::StreamTableDef;

namespace {

const Origin origin{"app", "15.6", "0.35.0", "0.35.0"};

StreamTableDef def(std::string schema, std::string name, std::string query) {
    StreamTableDef d;
    d.schema = std::move(schema);
    d.name = std::move(name);
    d.query = std::move(query);
    return d;
}

// The lines of the script that are not comments.
size_t count(const std::string& s, const std::string& needle) {
    size_t n = 0;
    for (size_t at = s.find(needle); at != std::string::npos; at = s.find(needle, at + 1)) {
        ++n;
    }
    return n;
}

std::string statements(const std::string& sql) {
    std::string out;
    std::size_t begin = 0;
    while (begin < sql.size()) {
        const std::size_t nl = sql.find('\n', begin);
        const std::string line = sql.substr(begin, nl - begin);
        if (line.rfind("--", 0) != 0) {
            out += line + "\n";
        }
        begin = nl == std::string::npos ? sql.size() : nl + 1;
    }
    return out;
}

}  // namespace

TEST(DumpSql, empty_dump_is_a_header_and_an_empty_transaction) {
    const std::string sql = render_sql({}, origin);
    EXPECT_EQ(sql.rfind("-- pg_trickle stream tables\n-- Dumped from database \"app\" "
                        "(PostgreSQL 15.6, pg_trickle 0.35.0) by pgtrickle 0.35.0.\n",
                        0),
              0u);
    EXPECT_EQ(statements(sql), "\nBEGIN;\n\nCOMMIT;\n");
}

TEST(DumpSql, one_call_per_stream_table_with_named_arguments_in_order) {
    StreamTableDef a =
        def("public", "orders_summary", "SELECT customer, count(*) FROM orders GROUP BY 1");
    a.schedule = "5s";
    StreamTableDef b = def("public", "top", "SELECT * FROM orders_summary");
    b.refresh_mode = "full";
    b.depends_on = {"public.orders_summary"};
    EXPECT_EQ(statements(render_sql({a, b}, origin)),
              "\nBEGIN;\n\n"
              "CALL pgtrickle.create_stream_table(\n"
              "    name => '\"public\".\"orders_summary\"',\n"
              "    query => 'SELECT customer, count(*) FROM orders GROUP BY 1',\n"
              "    schedule => '5s',\n"
              "    refresh_mode => 'auto',\n"
              "    cdc_mode => 'auto');\n\n"
              "CALL pgtrickle.create_stream_table(\n"
              "    name => '\"public\".\"top\"',\n"
              "    query => 'SELECT * FROM orders_summary',\n"
              "    refresh_mode => 'full',\n"
              "    cdc_mode => 'auto');\n\n"
              "COMMIT;\n");
    EXPECT_NE(render_sql({a, b}, origin).find("-- public.top (reads public.orders_summary)\n"),
              std::string::npos);
}

TEST(DumpSql, quotes_and_backslashes_are_quoted_as_quote_literal_does) {
    StreamTableDef d = def("my schema", "it's \"odd\"", "SELECT 'a\\b' AS x, 'it''s' AS y");
    const std::string sql = render_sql({d}, origin);
    EXPECT_NE(sql.find("CREATE SCHEMA IF NOT EXISTS \"my schema\";\n"), std::string::npos);
    EXPECT_NE(sql.find("    name => '\"my schema\".\"it''s \"\"odd\"\"\"',\n"), std::string::npos);
    EXPECT_NE(sql.find("    query => E'SELECT ''a\\\\b'' AS x, ''it''''s'' AS y',\n"),
              std::string::npos);
}

TEST(DumpSql, suspended_stream_tables_are_altered_after_their_create) {
    StreamTableDef d = def("public", "paused", "SELECT 1 AS one");
    d.status = "suspended";
    d.output_distribution_column = "one";
    const std::string sql = statements(render_sql({d}, origin));
    EXPECT_NE(sql.find("    cdc_mode => 'auto',\n    output_distribution_column => 'one');\n"
                       "CALL pgtrickle.alter_stream_table(name => '\"public\".\"paused\"', "
                       "status => 'suspended');\n"),
              std::string::npos);
    StreamTableDef failed = def("public", "failed", "SELECT 1 AS one");
    failed.status = "error";  // recreated (and refreshed) as active
    EXPECT_EQ(render_sql({failed}, origin).find("alter_stream_table"), std::string::npos);
}

TEST(DumpSql, placements_are_restored_as_dumped_never_chosen_again) {
    StreamTableDef local = def("public", "near", "SELECT 1 AS one");
    local.placement = "local";
    StreamTableDef ref = def("public", "everywhere", "SELECT 1 AS one");
    ref.placement = "reference";
    StreamTableDef dist = def("public", "sharded", "SELECT 1 AS one");
    dist.placement = "distributed";
    dist.output_distribution_column = "__pgt_row_id";
    const std::string sql = render_sql({local, ref, dist}, origin);
    const size_t off =
        sql.find("SELECT pg_catalog.set_config('pg_trickle.citus_st_placement', 'local', true);\n");
    ASSERT_NE(off, std::string::npos);
    EXPECT_LT(off, sql.find("CALL pgtrickle.create_stream_table"));
    // Citus storage: one transaction per stream table, each turning the automatic choice off.
    EXPECT_EQ(count(sql, "BEGIN;\n"), 4u) << sql;
    EXPECT_EQ(count(sql, "COMMIT;\n"), 4u) << sql;
    EXPECT_EQ(count(sql, "citus_st_placement"), 3u) << sql;
    EXPECT_NE(sql.find("COMMIT;\n\n-- public.everywhere\nBEGIN;\nSELECT pg_catalog.set_config("),
              std::string::npos)
        << sql;
    EXPECT_NE(sql.find("SELECT pg_catalog.create_reference_table('\"public\".\"everywhere\"');\n"
                       "SELECT pg_catalog.truncate_local_data_after_distributing_table("
                       "'\"public\".\"everywhere\"');\n"
                       "CALL pgtrickle.refresh_stream_table('\"public\".\"everywhere\"');\n"),
              std::string::npos);
    EXPECT_EQ(sql.find("create_reference_table('\"public\".\"near\"')"), std::string::npos);
    EXPECT_NE(sql.find("output_distribution_column => '__pgt_row_id');\n"), std::string::npos);
    // A catalog that records no placement: nothing is said about it.
    EXPECT_EQ(render_sql({def("public", "old", "SELECT 1 AS one")}, origin).find("set_config"),
              std::string::npos);
}

TEST(DumpSql, recorded_settings_are_set_for_the_transaction_before_the_create) {
    StreamTableDef d = def("public", "days", "SELECT at::date FROM ev");
    d.settings = {{"TimeZone", "Pacific/Kiritimati"}, {"DateStyle", "German, DMY"}};
    const std::string sql = render_sql({d}, origin);
    const auto tz =
        sql.find("SELECT pg_catalog.set_config('TimeZone', 'Pacific/Kiritimati', true);\n");
    const auto ds = sql.find("SELECT pg_catalog.set_config('DateStyle', 'German, DMY', true);\n");
    const auto call = sql.find("CALL pgtrickle.create_stream_table(");
    ASSERT_NE(tz, std::string::npos) << sql;
    ASSERT_NE(ds, std::string::npos) << sql;
    EXPECT_LT(tz, call);
    EXPECT_LT(ds, call);
}

TEST(DumpSql, newlines_in_names_cannot_escape_a_comment) {
    StreamTableDef d = def("public", "evil\nDROP TABLE x; --", "SELECT 1 AS one");
    d.depends_on = {"\"a\nDROP TABLE y;\""};
    const std::string sql = render_sql({d}, origin);
    EXPECT_EQ(sql.find("\nDROP TABLE y"), std::string::npos);
    EXPECT_NE(sql.find("\n-- public.evil DROP TABLE x; -- (reads \"a DROP TABLE y;\")\n"),
              std::string::npos);
    // The name itself is still exact inside the literal.
    EXPECT_NE(sql.find("name => '\"public\".\"evil\nDROP TABLE x; --\"'"), std::string::npos);
}

TEST(DumpSql, each_schema_is_created_once_and_public_never) {
    const std::string sql =
        render_sql({def("s", "a", "SELECT 1 AS x"), def("s", "b", "SELECT 1 AS x"),
                    def("public", "c", "SELECT 1 AS x")},
                   origin);
    std::size_t n = 0;
    for (std::size_t p = sql.find("CREATE SCHEMA"); p != std::string::npos;
         p = sql.find("CREATE SCHEMA", p + 1)) {
        ++n;
    }
    EXPECT_EQ(n, 1u);
    EXPECT_EQ(sql.find("\"public\";"), std::string::npos);
}
