// Unit tests for splitting server error text into fields (lib/client/server_error.h).
#include "client/server_error.h"

#include <gtest/gtest.h>

using pgt::client::parse_server_error;

TEST(ServerError, splits_message_detail_hint_and_context) {
    auto e = parse_server_error(
        "ERROR:  boom 1\nDETAIL:  the detail\nHINT:  the hint\n"
        "CONTEXT:  PL/pgSQL function inline_code_block line 1 at RAISE\n",
        "22023");
    EXPECT_EQ(e.sqlstate, "22023");
    EXPECT_EQ(e.message, "boom 1");
    EXPECT_EQ(e.detail, "the detail");
    EXPECT_EQ(e.hint, "the hint");
    EXPECT_EQ(e.context, "PL/pgSQL function inline_code_block line 1 at RAISE");
    EXPECT_EQ(e.position, "");
}

TEST(ServerError, keeps_the_position_excerpt_apart_from_the_message) {
    auto e = parse_server_error(
        "ERROR:  relation \"nope\" does not exist\nLINE 1: SELECT * FROM nope\n"
        "                      ^\n",
        "42P01");
    EXPECT_EQ(e.message, "relation \"nope\" does not exist");
    EXPECT_EQ(e.position, "LINE 1: SELECT * FROM nope\n                      ^");
    EXPECT_EQ(e.detail, "");
}

TEST(ServerError, multi_line_fields_keep_their_continuation_lines) {
    auto e = parse_server_error("ERROR:  first\nsecond line\nDETAIL:  d1\nd2\n", "XX000");
    EXPECT_EQ(e.message, "first\nsecond line");
    EXPECT_EQ(e.detail, "d1\nd2");
}

TEST(ServerError, internal_query_text_is_dropped) {
    auto e = parse_server_error(
        "ERROR:  division by zero\nQUERY:  SELECT 1/0\nCONTEXT:  PL/pgSQL function f()\n", "22012");
    EXPECT_EQ(e.message, "division by zero");
    EXPECT_EQ(e.context, "PL/pgSQL function f()");
}

TEST(ServerError, text_without_severity_is_all_message) {
    auto e = parse_server_error("server closed the connection unexpectedly\n", "");
    EXPECT_EQ(e.message, "server closed the connection unexpectedly");
}

using pgt::client::locate_in_text;
using pgt::client::take_character_suffix;

TEST(ServerErrorLocation, maps_a_character_position_to_line_column_and_caret) {
    const std::string q = "SELECT id,\n       amount\n  FROM orders WHERE WHERE id > 1";
    // "WHERE WHERE": the second WHERE is character 46 (1-based) of the query.
    const auto loc = locate_in_text(q, static_cast<int>(q.find("WHERE id")) + 1);
    ASSERT_TRUE(loc.has_value());
    EXPECT_EQ(loc->line, 3);
    EXPECT_EQ(loc->column, 21);
    EXPECT_EQ(loc->excerpt,
              "LINE 3:   FROM orders WHERE WHERE id > 1\n"
              "                            ^");
}

TEST(ServerErrorLocation, counts_characters_not_bytes_and_lines_as_libpq_does) {
    // ü and 世 are 2 and 3 bytes but one character each, as in PostgreSQL's positions.
    const std::string q = "SELECT 'ü世' AS x,\r\n\tbad";
    const auto loc = locate_in_text(q, 21);  // "bad": 17 characters, \r\n, the tab
    ASSERT_TRUE(loc.has_value());
    EXPECT_EQ(loc->line, 2);
    EXPECT_EQ(loc->column, 2);
    EXPECT_EQ(loc->excerpt, "LINE 2:  bad\n         ^");  // the tab shows as a space

    const auto first = locate_in_text("SELEC 1", 1);
    ASSERT_TRUE(first.has_value());
    EXPECT_EQ(first->line, 1);
    EXPECT_EQ(first->column, 1);
    EXPECT_EQ(first->excerpt, "LINE 1: SELEC 1\n        ^");

    // One past the end ("syntax error at end of input") is valid; beyond it is not.
    const auto end = locate_in_text("SELECT 1 +\n", 12);
    ASSERT_TRUE(end.has_value());
    EXPECT_EQ(end->line, 2);
    EXPECT_EQ(end->column, 1);
    EXPECT_FALSE(locate_in_text("SELECT 1", 10).has_value());
    EXPECT_FALSE(locate_in_text("SELECT 1", 0).has_value());
    EXPECT_TRUE(locate_in_text("SELECT 1", 9).has_value());
}

TEST(ServerErrorLocation, takes_the_terse_character_suffix_off_the_message) {
    std::string m = "syntax error at or near \"WHERE\" at character 46";
    EXPECT_EQ(take_character_suffix(m), 46);
    EXPECT_EQ(m, "syntax error at or near \"WHERE\"");
    std::string plain = "relation \"x\" does not exist";
    EXPECT_EQ(take_character_suffix(plain), std::nullopt);
    EXPECT_EQ(plain, "relation \"x\" does not exist");
    std::string odd = "value at character one";
    EXPECT_EQ(take_character_suffix(odd), std::nullopt);
    EXPECT_EQ(odd, "value at character one");
}
