#include "common/query_tree.h"

extern "C" {
#include "access/table.h"
#include "catalog/pg_class.h"
#include "nodes/nodeFuncs.h"
#include "rewrite/rewriteHandler.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
}

namespace pgt::query_tree {
namespace {

struct Walk {
    const TableWalk& how;
    List** tables;
};

void collect(Query* q, Walk* w);

bool table_walker(Node* n, void* ctx) {
    if (n == nullptr) {
        return false;
    }
    if (IsA(n, Query)) {
        collect(reinterpret_cast<Query*>(n), static_cast<Walk*>(ctx));
        return false;
    }
    return expression_tree_walker(n, walker_cast(table_walker), ctx);
}

void collect(Query* q, Walk* w) {
    ListCell* lc = nullptr;
    foreach (lc, q->rtable) {
        auto* rte = static_cast<RangeTblEntry*>(lfirst(lc));
        // PostgreSQL 15 view rules carry *OLD*/*NEW* entries for the view itself; they are
        // not in FROM.
        if (rte->rtekind == RTE_RELATION && rte->inFromCl) {
            const char kind = get_rel_relkind(rte->relid);
            if (kind == RELKIND_RELATION || kind == RELKIND_PARTITIONED_TABLE) {
                if (!w->how.from_only || !rte->inh) {
                    *w->tables = list_append_unique_oid(*w->tables, rte->relid);
                }
            } else if (kind == RELKIND_VIEW) {
                collect(view_query_copy(rte->relid), w);
            }
        } else if (rte->rtekind == RTE_SUBQUERY) {
            collect(rte->subquery, w);
        } else if (rte->rtekind == RTE_FUNCTION) {
            // FROM f((SELECT ... FROM t)): t is read too.
            (void)expression_tree_walker(reinterpret_cast<Node*>(rte->functions),
                                         walker_cast(table_walker), w);
        } else if (rte->rtekind == RTE_VALUES) {
            (void)expression_tree_walker(reinterpret_cast<Node*>(rte->values_lists),
                                         walker_cast(table_walker), w);
        } else if (rte->rtekind == RTE_TABLEFUNC) {
            (void)expression_tree_walker(reinterpret_cast<Node*>(rte->tablefunc),
                                         walker_cast(table_walker), w);
        }
    }
    (void)query_tree_walker(q, walker_cast(table_walker), w, QTW_IGNORE_RANGE_TABLE);
    foreach (lc, q->cteList) {
        collect(reinterpret_cast<Query*>(static_cast<CommonTableExpr*>(lfirst(lc))->ctequery), w);
    }
}

}  // namespace

Query* view_query_copy(Oid view) {
    Relation rel = table_open(view, AccessShareLock);
    auto* q = static_cast<Query*>(copyObjectImpl(get_view_query(rel)));
    table_close(rel, AccessShareLock);
    return q;
}

void collect_tables(Query* q, const TableWalk& how, List** tables) {
    Walk w{how, tables};
    collect(q, &w);
}

}  // namespace pgt::query_tree
