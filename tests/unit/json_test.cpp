// Unit tests for the JSON value, writer and parser (lib/core/json.h).
#include "core/json.h"

#include <gtest/gtest.h>

#include <limits>

using pgt::json::dump;
using pgt::json::parse;
using pgt::json::ParseError;
using pgt::json::quote;
using pgt::json::string_or_empty;
using pgt::json::Value;

TEST(Json, dump_escapes_quotes_backslashes_and_control_characters) {
    EXPECT_EQ(quote("a\"b\\c"), R"("a\"b\\c")");
    EXPECT_EQ(quote("line1\nline2\ttab\r\b\f"), R"("line1\nline2\ttab\r\b\f")");
    EXPECT_EQ(quote(std::string("nul\0x", 5)), R"("nul\u0000x")");
    EXPECT_EQ(quote("\x1f\x7f"), "\"\\u001f\x7f\"");
}

TEST(Json, dump_keeps_valid_utf8_and_replaces_invalid_bytes) {
    EXPECT_EQ(quote("caf\xC3\xA9 \xF0\x9F\x98\x80"), "\"caf\xC3\xA9 \xF0\x9F\x98\x80\"");
    EXPECT_EQ(quote("bad\xFFz"), "\"bad\xEF\xBF\xBDz\"");
    EXPECT_EQ(quote("\xC0\xAF"), "\"\xEF\xBF\xBD\xEF\xBF\xBD\"");                  // overlong '/'
    EXPECT_EQ(quote("\xED\xA0\x80"), "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"");  // surrogate
    EXPECT_EQ(quote("trunc\xE2\x82"), "\"trunc\xEF\xBF\xBD\xEF\xBF\xBD\"");
}

TEST(Json, dump_compact_keeps_object_key_order) {
    Value v = Value::object();
    v.set("z", 1);
    v.set("a", Value::array());
    v.set("m", nullptr);
    v["a"];  // lookup of a present key does not change anything
    EXPECT_EQ(dump(v), R"({"z":1,"a":[],"m":null})");
}

TEST(Json, set_replaces_an_existing_key_in_place) {
    Value v = Value::object();
    v.set("a", 1);
    v.set("b", 2);
    v.set("a", "x");
    EXPECT_EQ(dump(v), R"({"a":"x","b":2})");
}

TEST(Json, dump_pretty_prints_nested_values) {
    Value v = Value::object();
    v.set("n", 1);
    Value& arr = v.set("list", Value::array());
    arr.push_back(true);
    arr.push_back("s");
    v.set("empty", Value::object());
    EXPECT_EQ(dump(v, 2),
              "{\n  \"n\": 1,\n  \"list\": [\n    true,\n    \"s\"\n  ],\n"
              "  \"empty\": {}\n}");
}

TEST(Json, dump_numbers_round_trip_and_non_finite_become_null) {
    EXPECT_EQ(dump(Value(0.1)), "0.1");
    EXPECT_EQ(dump(Value(1e300)), "1e+300");
    EXPECT_EQ(parse(dump(Value(1.0 / 3.0))).as_double(), 1.0 / 3.0);
    EXPECT_EQ(dump(Value(std::numeric_limits<double>::infinity())), "null");
    EXPECT_EQ(dump(Value(std::numeric_limits<double>::quiet_NaN())), "null");
    EXPECT_EQ(dump(Value(-9223372036854775807LL - 1)), "-9223372036854775808");
}

TEST(Json, parse_reads_all_value_types) {
    Value v = parse(R"( {"a": [1, -2.5, 3e2, true, false, null], "b": {"c": "d"}} )");
    ASSERT_TRUE(v.is_object());
    const auto& a = v["a"].as_array();
    ASSERT_EQ(a.size(), 6u);
    EXPECT_EQ(a[0].as_int(), 1);
    EXPECT_DOUBLE_EQ(a[1].as_double(), -2.5);
    EXPECT_FALSE(a[2].is_integer());
    EXPECT_DOUBLE_EQ(a[2].as_double(), 300.0);
    EXPECT_TRUE(a[3].as_bool());
    EXPECT_FALSE(a[4].as_bool());
    EXPECT_TRUE(a[5].is_null());
    EXPECT_EQ(v["b"]["c"].as_string(), "d");
    EXPECT_TRUE(v["missing"].is_null());
    EXPECT_TRUE(v["b"]["c"]["not an object"].is_null());
}

TEST(Json, parse_decodes_escapes_and_surrogate_pairs) {
    EXPECT_EQ(parse(R"("a\"\\\/\b\f\n\r\t")").as_string(), "a\"\\/\b\f\n\r\t");
    EXPECT_EQ(parse(R"("\u00e9\u20AC")").as_string(), "\xC3\xA9\xE2\x82\xAC");
    EXPECT_EQ(parse(R"("\ud83d\ude00")").as_string(), "\xF0\x9F\x98\x80");
}

TEST(Json, parse_keeps_big_integers_as_numbers) {
    EXPECT_EQ(parse("9223372036854775807").as_int(), 9223372036854775807LL);
    Value big = parse("92233720368547758070");
    EXPECT_FALSE(big.is_integer());
    EXPECT_TRUE(big.is_number());
}

TEST(Json, parse_rejects_malformed_documents) {
    for (const char* bad :
         {"", "{", "[1,]", "{\"a\":}", "{a:1}", "01", "1.", "1e", "-", "tru", "\"abc", "\"\\x\"",
          "\"\\ud800\"", "\"\\udc00\"", "\"tab\there\"", "[1] 2", "\"\xFF\"", "nul", "{\"a\" 1}"}) {
        EXPECT_THROW(parse(bad), ParseError) << "input: " << bad;
    }
}

TEST(Json, parse_error_names_the_offset) {
    try {
        parse("[1, x]");
        FAIL() << "no exception";
    } catch (const ParseError& e) {
        EXPECT_EQ(e.offset(), 4u);
        EXPECT_NE(std::string(e.what()).find("byte 4"), std::string::npos);
    }
}

TEST(Json, parse_limits_nesting_depth) {
    std::string deep(600, '[');
    deep += std::string(600, ']');
    EXPECT_THROW(parse(deep), ParseError);
    std::string ok(100, '[');
    ok += std::string(100, ']');
    EXPECT_NO_THROW(parse(ok));
}

TEST(Json, dump_and_parse_round_trip) {
    Value v = Value::object();
    v.set("text", "multi\nline \"quoted\" \xE2\x9C\x93");
    v.set("n", -42);
    v.set("x", 2.75);
    Value& list = v.set("list", Value::array());
    list.push_back(Value::object());
    list.push_back(nullptr);
    EXPECT_EQ(parse(dump(v)), v);
    EXPECT_EQ(parse(dump(v, 4)), v);
}

TEST(Json, string_or_empty_reads_strings_only) {
    const Value v = parse(R"({"s": "text", "n": 3, "z": null})");
    EXPECT_EQ(string_or_empty(v["s"]), "text");
    EXPECT_EQ(string_or_empty(v["n"]), "");
    EXPECT_EQ(string_or_empty(v["z"]), "");
    EXPECT_EQ(string_or_empty(v["absent"]), "");
}

TEST(Json, typed_access_to_the_wrong_type_throws) {
    EXPECT_THROW(Value("s").as_int(), std::logic_error);
    EXPECT_THROW(Value(1).as_string(), std::logic_error);
    EXPECT_THROW(Value().as_object(), std::logic_error);
    EXPECT_THROW(Value(1).set("a", 1), std::logic_error);
    EXPECT_DOUBLE_EQ(Value(3).as_double(), 3.0);
}
