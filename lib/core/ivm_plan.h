// The operator tree of a stream table's defining query, as the differential engine sees it.
//
// The extension's translator builds it from PostgreSQL's analyzed Query; everything here is
// pure data. Expressions arrive already rendered as search_path-proof SQL text that refers to
// range variables by alias ("alias"."column"); the generator (delta_sql.h) only places those
// texts inside the SQL it builds, it never parses them.
//
// Shape: a Query is a UNION ALL of Blocks, or one Block. A Block is an SPJ core (FROM items
// joined by inner/left joins, WHERE conjuncts, EXISTS/NOT EXISTS/IN semi-joins) with either a
// projection, DISTINCT, or a GROUP BY/aggregation on top.
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace pgt::ivm {

struct Column {
    std::string name;  ///< column name as expressions reference it
    std::string type;  ///< SQL type, schema-qualified, with typmod
};

/// A captured base table read by the query.
struct BaseTable {
    std::string schema;
    std::string name;
    bool only = true;         ///< ONLY (no inheritance children)
    std::string stable_name;  ///< key of the capture objects
    std::string buffer;       ///< qualified, quoted change buffer table
    /// Qualified, quoted state copy (a Citus source's rows at its buffer's frontier, kept by
    /// its drains, in buffer columns): read in place of the table. Empty: the table itself.
    std::string state;
    std::vector<Column> columns;              ///< user columns
    std::vector<std::string> buffer_columns;  ///< buffer column of each user column
    /// Per user column: its buffer column holds the base type of the column's domain, cast
    /// back to the column's type where the delta reads it.
    std::vector<bool> domain_columns;
};

struct SpjCore;
struct Query;

/// One entry of FROM: a base table or a subquery, bound to an alias.
struct FromItem {
    enum class Kind { table, subquery };
    Kind kind = Kind::table;
    std::string alias;
    BaseTable table;                     ///< Kind::table
    std::shared_ptr<const Query> query;  ///< Kind::subquery
    std::vector<Column> columns;         ///< columns visible through the alias
    bool comparable = true;              ///< every column has an equality operator
};

/// A join tree over FromItems (indices into SpjCore::items).
struct JoinTree {
    enum class Kind { item, inner, left };
    Kind kind = Kind::item;
    int item = -1;
    std::shared_ptr<const JoinTree> left, right;
    std::string on;  ///< rendered join condition (inner/left)
};

/// A conjunct [NOT] EXISTS (SELECT ... FROM sub WHERE ...) of a WHERE clause. IN (subquery)
/// arrives here as EXISTS with the comparison added to sub's conjuncts. The sub core's
/// conjuncts may refer to the outer core's aliases (correlation).
struct SemiJoin {
    bool anti = false;
    std::shared_ptr<const SpjCore> sub;
};

struct SpjCore {
    std::vector<FromItem> items;
    std::vector<JoinTree> from;       ///< FROM list entries (cross-joined)
    std::vector<std::string> quals;   ///< plain WHERE conjuncts
    std::vector<SemiJoin> semijoins;  ///< EXISTS-style conjuncts
};

struct Aggregate {
    enum class Kind { count_star, count, sum, avg, min, max, other };
    Kind kind = Kind::other;
    std::string sql;         ///< the whole call, e.g. pg_catalog.sum("o"."amount")
    std::string arg;         ///< rendered single argument (count/sum/avg/min/max)
    bool algebraic = false;  ///< maintainable from deltas (see delta_sql_apply.cpp)
    /// sum/avg over numeric: the argument can be NaN or ±Infinity, which do not cancel, so
    /// groups where they occur are rescanned.
    bool numeric_arg = false;
    /// sum/avg over numeric without a declared scale: the result shows the largest scale of
    /// the group's values, which a deletion can lower, so groups that lose rows are rescanned.
    bool varying_scale = false;
};

struct Target {
    enum class Kind { expr, group_key, aggregate };
    Kind kind = Kind::expr;
    int ref = -1;      ///< index into Block::group_by or Block::aggs
    std::string expr;  ///< rendered expression (aggregates inline)
    Column column;     ///< output column
};

struct GroupKey {
    std::string expr;  ///< rendered grouping expression
    std::string type;
    std::string eq_op;  ///< OPERATOR(schema.=) for the key's type
};

struct Block {
    SpjCore core;
    std::vector<Target> targets;
    bool distinct = false;
    bool grouped = false;  ///< GROUP BY or aggregates present
    std::vector<GroupKey> group_by;
    std::vector<Aggregate> aggs;
    std::string having;  ///< rendered, aggregates inline; empty if none
};

struct Query {
    bool union_all = false;
    Block block;                                         ///< when !union_all
    std::vector<std::shared_ptr<const Query>> branches;  ///< when union_all
    std::vector<Column> columns;                         ///< output columns
    bool comparable = true;  ///< every output column has an equality operator
};

/// How the stream table's storage holds the result.
enum class StorageKind {
    rows,    ///< one physical row per result row (duplicates kept); __pgt_row_id = content hash
    groups,  ///< one row per group (GROUP BY / DISTINCT / global aggregate) keyed by __pgt_row_id
};

/// A hidden column of the storage table.
struct HiddenColumn {
    std::string name;
    std::string type;
};

}  // namespace pgt::ivm
