// Unit tests for the CLI's pure rendering helpers (lib/core/cli_format.h).
#include "core/cli_format.h"

#include <gtest/gtest.h>

#include <limits>

using namespace pgt::cli_format;

TEST(CliFormat, render_table_aligns_columns_and_trims_trailing_blanks) {
    std::string t = render_table({"name", "status", "detail"},
                                 {{"orders", "active", ""}, {"x", "suspended", "long detail"}});
    EXPECT_EQ(t,
              "name    status     detail\n"
              "------  ---------  -----------\n"
              "orders  active\n"
              "x       suspended  long detail\n");
}

TEST(CliFormat, render_table_pads_short_rows_and_counts_utf8_code_points) {
    std::string t = render_table({"a", "b"}, {{"\xC3\xA9t\xC3\xA9"}, {"x", "y"}});
    EXPECT_EQ(t,
              "a    b\n"
              "---  -\n"
              "\xC3\xA9t\xC3\xA9\n"
              "x    y\n");
}

TEST(CliFormat, render_table_with_no_rows_prints_the_header) {
    EXPECT_EQ(render_table({"check", "status"}, {}), "check  status\n-----  ------\n");
}

TEST(CliFormat, one_line_collapses_line_breaks_and_tabs) {
    EXPECT_EQ(one_line("a\nb\r\n\tc"), "a b c");
    EXPECT_EQ(one_line("plain"), "plain");
}

TEST(CliFormat, display_width_counts_code_points) {
    EXPECT_EQ(display_width(""), 0u);
    EXPECT_EQ(display_width("abc"), 3u);
    EXPECT_EQ(display_width("\xE2\x9C\x93 ok"), 4u);
}

TEST(CliFormat, format_duration_picks_two_units) {
    EXPECT_EQ(format_duration(0.25), "250ms");
    EXPECT_EQ(format_duration(12.7), "12s");
    EXPECT_EQ(format_duration(184), "3m04s");
    EXPECT_EQ(format_duration(7500), "2h05m");
    EXPECT_EQ(format_duration(3 * 86400 + 4 * 3600 + 5), "3d04h");
    EXPECT_EQ(format_duration(-1), "-");
    EXPECT_EQ(format_duration(1e300), "11574074074d01h");
}

TEST(CliFormat, mask_password_in_keyword_value_strings) {
    EXPECT_EQ(mask_password("host=db port=5432 password=s3cret user=app"),
              "host=db port=5432 password=******** user=app");
    EXPECT_EQ(mask_password("password = 'it\\'s secret' dbname=x"), "password = ******** dbname=x");
    EXPECT_EQ(mask_password("host=db"), "host=db");
    EXPECT_EQ(mask_password(""), "");
    EXPECT_EQ(mask_password("passfile=/x/.pgpass"), "passfile=/x/.pgpass");
}

TEST(CliFormat, mask_password_in_uris) {
    EXPECT_EQ(mask_password("postgresql://app:s3cret@db:5432/shop"),
              "postgresql://app:********@db:5432/shop");
    EXPECT_EQ(mask_password("postgres://app:p%40ss@db/shop?sslmode=require&password=x"),
              "postgres://app:********@db/shop?sslmode=require&password=********");
    EXPECT_EQ(mask_password("postgresql://app@db/shop"), "postgresql://app@db/shop");
    EXPECT_EQ(mask_password("postgresql://db?password=x"), "postgresql://db?password=********");
    EXPECT_EQ(mask_password("postgresql://"), "postgresql://");
}

TEST(CliFormat, format_bytes_switches_units_as_pg_size_pretty_does) {
    EXPECT_EQ(format_bytes(0), "0 bytes");
    EXPECT_EQ(format_bytes(10239), "10239 bytes");
    EXPECT_EQ(format_bytes(10240), "10 kB");
    EXPECT_EQ(format_bytes(1536 * 1024.0), "1536 kB");
    EXPECT_EQ(format_bytes(20.0 * 1024 * 1024), "20 MB");
    EXPECT_EQ(format_bytes(3.0 * 1024 * 1024 * 1024 * 1024 * 12), "36 TB");
    EXPECT_EQ(format_bytes(-20480), "-20 kB");
    EXPECT_EQ(format_bytes(std::numeric_limits<double>::infinity()), "-");
}
