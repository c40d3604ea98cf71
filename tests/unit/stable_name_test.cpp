#include <gtest/gtest.h>

#include "core/stable_name.h"

namespace pgt {
namespace {

// Expected values computed independently with xxhsum -H1 over "database/schema.table".
TEST(StableName, matches_reference_xxh64_vectors) {
    EXPECT_EQ(stable_name("postgres", "public", "orders"), "af6fbc75042189ab");
    EXPECT_EQ(stable_name("shop", "sales", "Order Items"), "91ceb20f62b93ddc");
    EXPECT_EQ(stable_name("db", "ü", "tablé"), "02492c92a9605857");  // UTF-8 bytes, unquoted names
}

TEST(StableName, differs_by_database_schema_and_table) {
    const auto base = stable_name("a", "s", "t");
    EXPECT_NE(base, stable_name("b", "s", "t"));
    EXPECT_NE(base, stable_name("a", "s2", "t"));
    EXPECT_NE(base, stable_name("a", "s", "t2"));
    // The key is the plain concatenation DESIGN.md §5 fixes, so names containing dots can
    // alias; create_stream_table refuses such a collision (tested in the integration suite).
    EXPECT_EQ(stable_name("a", "b.c", "d"), stable_name("a", "b", "c.d"));
}

TEST(StableName, shape_is_16_lower_hex) {
    EXPECT_TRUE(is_stable_name(stable_name("x", "y", "z")));
    EXPECT_FALSE(is_stable_name("AF6FBC75042189AB"));
    EXPECT_FALSE(is_stable_name("af6fbc75042189a"));
    EXPECT_FALSE(is_stable_name("16384"));
}

TEST(StableName, capture_objects_follow_the_design_names) {
    const auto n = capture_object_names("af6fbc75042189ab");
    EXPECT_EQ(n.buffer_table, "changes_af6fbc75042189ab");
    EXPECT_EQ(n.trigger_function, "pg_trickle_cdc_fn_af6fbc75042189ab");
    EXPECT_EQ(n.trigger_insert, "pg_trickle_cdc_ins_af6fbc75042189ab");
    EXPECT_EQ(n.trigger_truncate, "pg_trickle_cdc_trunc_af6fbc75042189ab");
    EXPECT_EQ(n.xid_index, "idx_changes_af6fbc75042189ab_xid");
    EXPECT_EQ(n.slot, "pgtrickle_af6fbc75042189ab");
    EXPECT_EQ(capture_object_names("16384").buffer_table, "changes_16384");  // 0.31.0 OID names
}

TEST(StableName, buffer_columns_are_named_by_attribute_number_and_read_back) {
    EXPECT_EQ(buffer_column_name(1), "c1");
    EXPECT_EQ(buffer_column_name(1600), "c1600");
    for (int attnum : {1, 7, 1600, 32767}) {
        EXPECT_EQ(buffer_column_attnum(buffer_column_name(attnum).c_str()), attnum);
    }
    for (const char* other : {"__pgt_xid", "__pgt_op", "c", "c0", "c-1", "c32768", "c1x", "x1", "",
                              "c99999999999999999999"}) {
        EXPECT_EQ(buffer_column_attnum(other), 0) << other;
    }
}

}  // namespace
}  // namespace pgt
