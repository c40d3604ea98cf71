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
