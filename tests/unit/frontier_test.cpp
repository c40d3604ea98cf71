#include "core/frontier.h"

#include <gtest/gtest.h>

#include <stdexcept>

using pgt::frontier::Frontier;
using pgt::frontier::OwnWrites;
using pgt::frontier::Snapshot;
using pgt::frontier::SourceFrontier;

TEST(Frontier, snapshot_text_round_trips_and_decides_visibility_as_postgres_does) {
    const Snapshot s = Snapshot::parse("100:110:102,105");
    EXPECT_EQ(s.text(), "100:110:102,105");
    EXPECT_TRUE(s.sees(99));
    EXPECT_TRUE(s.sees(101));
    EXPECT_FALSE(s.sees(102));
    EXPECT_FALSE(s.sees(110));
    EXPECT_EQ(Snapshot::parse("7:7:").text(), "7:7:");
}

TEST(Frontier, malformed_snapshots_are_refused) {
    for (const char* bad : {"", "1", "1:2", "x:2:", "5:4:", "1:9:3,2", "1:9:9", "1:9:0", "1:9:,"}) {
        EXPECT_THROW(Snapshot::parse(bad), std::invalid_argument) << bad;
    }
}

TEST(Frontier, own_transaction_counts_as_running_in_the_stored_snapshot) {
    // Inside transaction 104 a snapshot leaves 104 out of xip: it would count as seen.
    const Snapshot s = Snapshot::parse("100:110:102");
    ASSERT_TRUE(s.sees(104));
    const Snapshot f = s.with_running(104);
    EXPECT_FALSE(f.sees(104));
    EXPECT_EQ(f.text(), "100:110:102,104");
    // Below xmin: xmin moves down so that the buffer's clean-up keeps its rows.
    EXPECT_EQ(Snapshot::parse("100:110:").with_running(97).text(), "97:110:97");
    // At or above xmax it is unseen already.
    EXPECT_EQ(Snapshot::parse("100:110:").with_running(112).text(), "100:110:");
}

TEST(Frontier, json_round_trips_own_writes_and_node_positions) {
    Frontier f;
    f.sysid = "7312";
    SourceFrontier a;
    a.snapshot = "5:9:6";
    a.own = OwnWrites{6, 3};
    SourceFrontier b;
    b.snapshot = "5:9:6";
    b.own = OwnWrites{6, 3};
    b.node_lsn["2"] = "0/16B3748";
    f.sources["aaaa"] = a;
    f.sources["bbbb"] = b;
    const Frontier g = Frontier::parse(f.json());
    EXPECT_EQ(g.sysid, "7312");
    ASSERT_EQ(g.sources.size(), 2u);
    EXPECT_EQ(g.sources.at("aaaa").own, (OwnWrites{6, 3}));
    EXPECT_EQ(g.sources.at("bbbb").node_lsn.at("2"), "0/16B3748");
    ASSERT_TRUE(g.common());
    EXPECT_EQ(g.common()->snapshot, "5:9:6");
}

TEST(Frontier, format_1_documents_still_read_and_differing_sources_have_no_common_point) {
    const Frontier f = Frontier::parse(
        R"({"format":1,"sysid":"1","sources":{"a":{"snapshot":"3:4:"},"b":{"snapshot":"3:5:"}}})");
    EXPECT_FALSE(f.sources.at("a").own);
    EXPECT_FALSE(f.common());
    EXPECT_FALSE(Frontier::parse(R"({"format":1,"sysid":"1","sources":{}})").common());
    EXPECT_THROW(Frontier::parse("[1]"), std::invalid_argument);
    EXPECT_THROW(Frontier::parse(R"({"sources":{"a":{}}})"), std::invalid_argument);
}

TEST(Frontier, upto_condition_takes_rows_of_transactions_the_refresh_sees_or_its_own) {
    SourceFrontier upto;
    upto.snapshot = "20:30:25";
    const std::string none = pgt::frontier::upto_condition("b.", upto);
    EXPECT_EQ(none,
              "(pg_catalog.pg_visible_in_snapshot(b.\"__pgt_xid\", "
              "'20:30:25'::pg_catalog.pg_snapshot) OR b.\"__pgt_xid\" OPERATOR(pg_catalog.=) "
              "NULL::pg_catalog.xid8) IS TRUE");
    upto.own = OwnWrites{25, 3};
    EXPECT_NE(pgt::frontier::upto_condition("b.", upto)
                  .find("OPERATOR(pg_catalog.=) "
                        "'25'::pg_catalog.xid8"),
              std::string::npos);
    const auto params = pgt::frontier::upto_params(upto);
    ASSERT_EQ(params.size(), 2u);
    EXPECT_EQ(params[0], "20:30:25");
    EXPECT_EQ(params[1], "25");
    EXPECT_NE(pgt::frontier::upto_condition_params("", 4).find(
                  "pg_visible_in_snapshot(\"__pgt_xid\", $4::pg_catalog.pg_snapshot) OR "
                  "\"__pgt_xid\" OPERATOR(pg_catalog.=) $5::pg_catalog.xid8"),
              std::string::npos);
}

TEST(Frontier, window_condition_excludes_own_rows_written_before_the_command) {
    SourceFrontier f;
    f.snapshot = "5:9:";
    const std::string plain = pgt::frontier::window_condition("b.", f);
    EXPECT_NE(plain.find("pg_catalog.pg_visible_in_snapshot(b.\"__pgt_xid\", '5:9:'"),
              std::string::npos);
    EXPECT_NE(plain.find("NULL::pg_catalog.xid8"), std::string::npos);
    f.own = OwnWrites{8, 4};
    const std::string own = pgt::frontier::window_condition("b.", f);
    EXPECT_NE(own.find("'8'::pg_catalog.xid8"), std::string::npos);
    EXPECT_NE(own.find("b.cmin::pg_catalog.text::pg_catalog.int8 OPERATOR(pg_catalog.<) "
                       "4::pg_catalog.int8) IS NOT TRUE"),
              std::string::npos);
    const auto params = pgt::frontier::window_params(f);
    ASSERT_EQ(params.size(), 3u);
    EXPECT_EQ(params[1], "8");
    EXPECT_EQ(pgt::frontier::window_condition_params("", 1).find("$1::pg_catalog.pg_snapshot") !=
                  std::string::npos,
              true);
}
