// The Prometheus text renderer (lib/core/prometheus.h), checked with a strict reader of
// the format (cli_prometheus_parser.h), which is itself checked against bad input.
#include "core/prometheus.h"

#include <cmath>

#include <gtest/gtest.h>

#include "cli_prometheus_parser.h"

namespace prom = pgt::prometheus;
using pgt::test::ExpositionError;
using pgt::test::parse_exposition;

TEST(PrometheusEscape, label_values_escape_backslash_quote_and_newline_only) {
    EXPECT_EQ(prom::escape_label_value("plain"), "plain");
    EXPECT_EQ(prom::escape_label_value(R"(a\b)"), R"(a\\b)");
    EXPECT_EQ(prom::escape_label_value(R"(say "hi")"), R"(say \"hi\")");
    EXPECT_EQ(prom::escape_label_value("two\nlines"), R"(two\nlines)");
    EXPECT_EQ(prom::escape_label_value("tab\there {x}, y=z"), "tab\there {x}, y=z");
    EXPECT_EQ(prom::escape_label_value("caf\xC3\xA9"), "caf\xC3\xA9");
}

TEST(PrometheusEscape, invalid_utf8_is_replaced) {
    EXPECT_EQ(prom::escape_label_value("a\xFF"
                                       "b"),
              "a\xEF\xBF\xBD"
              "b");
    EXPECT_EQ(prom::escape_label_value("\xC3"), "\xEF\xBF\xBD");  // truncated
    EXPECT_EQ(prom::escape_label_value("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(PrometheusEscape, help_escapes_backslash_and_newline_but_not_quotes) {
    EXPECT_EQ(prom::escape_help("a \"b\" \\ c\nd"), "a \"b\" \\\\ c\\nd");
}

TEST(PrometheusNames, metric_and_label_name_rules) {
    EXPECT_TRUE(prom::valid_metric_name("pgtrickle_up"));
    EXPECT_TRUE(prom::valid_metric_name("ns:rule_metric"));
    EXPECT_TRUE(prom::valid_metric_name("_x9"));
    EXPECT_FALSE(prom::valid_metric_name(""));
    EXPECT_FALSE(prom::valid_metric_name("9lives"));
    EXPECT_FALSE(prom::valid_metric_name("with-dash"));
    EXPECT_FALSE(prom::valid_metric_name("caf\xC3\xA9"));
    EXPECT_TRUE(prom::valid_label_name("schema"));
    EXPECT_FALSE(prom::valid_label_name("a:b"));
    EXPECT_FALSE(prom::valid_label_name("__name__"));
    EXPECT_FALSE(prom::valid_label_name("1x"));
}

TEST(PrometheusValues, integers_plain_others_shortest_exact_and_specials) {
    EXPECT_EQ(prom::format_value(0), "0");
    EXPECT_EQ(prom::format_value(42), "42");
    EXPECT_EQ(prom::format_value(-7), "-7");
    EXPECT_EQ(prom::format_value(0.1), "0.1");
    EXPECT_EQ(prom::format_value(0.119708), "0.119708");
    EXPECT_EQ(prom::format_value(1e300), "1e+300");
    EXPECT_EQ(prom::format_value(0.1 + 0.2), "0.30000000000000004");
    EXPECT_EQ(std::strtod(prom::format_value(1.0 / 3).c_str(), nullptr), 1.0 / 3);
    EXPECT_EQ(prom::format_value(std::nan("")), "NaN");
    EXPECT_EQ(prom::format_value(INFINITY), "+Inf");
    EXPECT_EQ(prom::format_value(-INFINITY), "-Inf");
}

TEST(PrometheusRender, help_type_then_samples_in_order) {
    prom::Family up{"pgtrickle_up", "1 when up", prom::Type::gauge, {}};
    up.add({}, 1);
    prom::Family rows{"rows_total", "rows", prom::Type::counter, {}};
    rows.add({{"schema", "public"}, {"name", "a"}}, 3)
        .add({{"schema", "public"}, {"name", "b"}}, 4);
    EXPECT_EQ(prom::render({up, rows}),
              "# HELP pgtrickle_up 1 when up\n"
              "# TYPE pgtrickle_up gauge\n"
              "pgtrickle_up 1\n"
              "# HELP rows_total rows\n"
              "# TYPE rows_total counter\n"
              "rows_total{schema=\"public\",name=\"a\"} 3\n"
              "rows_total{schema=\"public\",name=\"b\"} 4\n");
}

TEST(PrometheusRender, odd_label_values_survive_a_strict_parse) {
    const std::string odd = "we\"ird\\ name\nwith newline, comma=} and caf\xC3\xA9";
    prom::Family f{"odd_metric", "help with \\ and\nnewline", prom::Type::gauge, {}};
    f.add({{"name", odd}, {"empty", ""}}, 0.5);
    f.add({{"name", "plain"}, {"empty", ""}}, std::nan(""));
    prom::Family empty{"no_samples", "", prom::Type::untyped, {}};
    const auto ex = parse_exposition(prom::render({f, empty}));
    ASSERT_EQ(ex.order, (std::vector<std::string>{"odd_metric", "no_samples"}));
    EXPECT_EQ(ex.families.at("odd_metric").help, "help with \\ and\nnewline");
    EXPECT_EQ(ex.families.at("odd_metric").type, "gauge");
    EXPECT_EQ(ex.value("odd_metric", {{"name", odd}, {"empty", ""}}), 0.5);
    EXPECT_TRUE(std::isnan(*ex.value("odd_metric", {{"name", "plain"}, {"empty", ""}})));
    EXPECT_TRUE(ex.families.at("no_samples").samples.empty());
}

TEST(PrometheusRender, refuses_invalid_names_and_repeats) {
    prom::Family bad{"bad-name", "", prom::Type::gauge, {}};
    EXPECT_THROW(prom::render({bad}), prom::InvalidMetric);
    prom::Family bad_label{"ok", "", prom::Type::gauge, {}};
    bad_label.add({{"__reserved", "x"}}, 1);
    EXPECT_THROW(prom::render({bad_label}), prom::InvalidMetric);
    prom::Family repeated_label{"ok", "", prom::Type::gauge, {}};
    repeated_label.add({{"a", "x"}, {"a", "y"}}, 1);
    EXPECT_THROW(prom::render({repeated_label}), prom::InvalidMetric);
    prom::Family once{"twice", "", prom::Type::gauge, {}};
    EXPECT_THROW(prom::render({once, once}), prom::InvalidMetric);
}

// The strict reader must reject what the format forbids, or the tests above prove little.
TEST(PrometheusParser, rejects_violations_of_the_format) {
    const std::string head = "# HELP m h\n# TYPE m gauge\n";
    EXPECT_NO_THROW(parse_exposition(head + "m{a=\"x\\\\y\\\"z\\n\"} 1\n"));
    EXPECT_NO_THROW(parse_exposition(head + "m 1 1700000000000\n"));
    EXPECT_THROW(parse_exposition("m 1\n"), ExpositionError);                    // no HELP/TYPE
    EXPECT_THROW(parse_exposition("# TYPE m gauge\nm 1\n"), ExpositionError);    // no HELP
    EXPECT_THROW(parse_exposition(head + "# TYPE m gauge\n"), ExpositionError);  // second TYPE
    EXPECT_THROW(parse_exposition("# HELP m h\n# TYPE m gage\n"), ExpositionError);
    EXPECT_THROW(parse_exposition(head + "m 1"), ExpositionError);                // no newline
    EXPECT_THROW(parse_exposition(head + "m{a=\"x\\t\"} 1\n"), ExpositionError);  // bad escape
    EXPECT_THROW(parse_exposition(head + "m{a=\"x} 1\n"), ExpositionError);       // unterminated
    EXPECT_THROW(parse_exposition(head + "m{a=\"x\",a=\"y\"} 1\n"), ExpositionError);
    EXPECT_THROW(parse_exposition(head + "m{1a=\"x\"} 1\n"), ExpositionError);
    EXPECT_THROW(parse_exposition(head + "m one\n"), ExpositionError);
    EXPECT_THROW(parse_exposition(head + "m 0x10\n"), ExpositionError);
    EXPECT_THROW(parse_exposition(head + "m 1\nm 2\n"), ExpositionError);  // same series
    EXPECT_THROW(parse_exposition(head + "m 1\n# HELP n h\n# TYPE n gauge\nn 1\nm{a=\"b\"} 1\n"),
                 ExpositionError);                                                // m in two groups
    EXPECT_THROW(parse_exposition(head + "m{a=\"\xFF\"} 1\n"), ExpositionError);  // not UTF-8
    EXPECT_THROW(parse_exposition(head + "9m 1\n"), ExpositionError);
}
