// explain: the operator tree of a stream table's query, one operator a line.
#include <sstream>

#include "core/delta_sql.h"
#include "core/delta_sql_terms.h"
#include "core/sql_ident.h"

namespace pgt::ivm {
namespace {

using detail::and_all;
using detail::group_key_exprs;
using sql::join;

void explain_query(const Query& q, int depth, std::ostringstream& os);

std::string indent(int depth) {
    return std::string(static_cast<size_t>(depth) * 2, ' ');
}

void explain_tree_node(const SpjCore& c, const JoinTree& t, int depth, std::ostringstream& os) {
    switch (t.kind) {
        case JoinTree::Kind::item: {
            const FromItem& it = c.items[t.item];
            if (it.kind == FromItem::Kind::table) {
                os << indent(depth) << "Scan " << it.table.schema << "." << it.table.name << " AS "
                   << it.alias << " (buffer changes_" << it.table.stable_name << ")\n";
            } else {
                os << indent(depth) << "Subquery AS " << it.alias << "\n";
                explain_query(*it.query, depth + 1, os);
            }
            return;
        }
        case JoinTree::Kind::inner:
            os << indent(depth) << "Inner Join ON " << t.on << "\n";
            break;
        case JoinTree::Kind::left:
            os << indent(depth) << "Left Join ON " << t.on << "\n";
            break;
    }
    explain_tree_node(c, *t.left, depth + 1, os);
    explain_tree_node(c, *t.right, depth + 1, os);
}

void explain_core(const SpjCore& c, int depth, std::ostringstream& os) {
    for (const auto& s : c.semijoins) {
        os << indent(depth) << (s.anti ? "Anti Join (NOT EXISTS)" : "Semi Join (EXISTS)") << "\n";
        explain_core(*s.sub, depth + 2, os);
        depth += 1;
    }
    if (!c.quals.empty()) {
        os << indent(depth) << "Filter " << and_all(c.quals) << "\n";
        depth += 1;
    }
    if (c.from.size() > 1) {
        os << indent(depth) << "Cross Join\n";
        depth += 1;
    }
    for (const auto& t : c.from) {
        explain_tree_node(c, t, depth, os);
    }
}

void explain_query(const Query& q, int depth, std::ostringstream& os) {
    if (q.union_all) {
        os << indent(depth) << "Union All\n";
        for (const auto& br : q.branches) {
            explain_query(*br, depth + 1, os);
        }
        return;
    }
    const Block& b = q.block;
    std::vector<std::string> cols;
    for (const auto& t : b.targets) {
        cols.push_back(t.column.name);
    }
    if (b.grouped) {
        std::vector<std::string> aggs;
        for (const auto& a : b.aggs) {
            aggs.push_back(a.sql + (a.algebraic ? "" : " [recomputed]"));
        }
        os << indent(depth) << (b.distinct ? "Distinct" : "Aggregate") << " (" << join(cols, ", ")
           << ")";
        if (!b.group_by.empty()) {
            os << " group by " << join(group_key_exprs(b), ", ");
        }
        if (!aggs.empty()) {
            os << ": " << join(aggs, ", ");
        }
        if (!b.having.empty()) {
            os << " having " << b.having;
        }
        os << "\n";
    } else {
        os << indent(depth) << "Project (" << join(cols, ", ") << ")\n";
    }
    explain_core(b.core, depth + 1, os);
}

}  // namespace

std::string explain_tree(const Query& q, const StorageLayout& layout) {
    std::ostringstream os;
    explain_query(q, 0, os);
    os << "Storage: "
       << (layout.kind == StorageKind::rows ? "rows (duplicates kept, row id = content hash)"
           : layout.algebraic               ? "groups (algebraic: updated from deltas)"
                                            : "groups (touched groups recomputed)")
       << "\n";
    return os.str();
}

}  // namespace pgt::ivm
