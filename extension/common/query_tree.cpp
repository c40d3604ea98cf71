#include "common/query_tree.h"

extern "C" {
#include "access/table.h"
#include "catalog/pg_class.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
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

constexpr int kMaxDepth = 64;

struct KeyWalk {
    Query* levels[kMaxDepth];
    int depth = 0;
    List** keys;
    List** used;  ///< every (relid, attnum) read; attnum 0: the whole row
};

void collect_keys(Query* q, KeyWalk* w);

/// The table column `n` reads (through a binary-compatible cast), as (relid, attnum).
bool table_column(Node* n, const KeyWalk* w, Oid* relid, AttrNumber* attnum) {
    while (n != nullptr && IsA(n, RelabelType)) {
        n = reinterpret_cast<Node*>(reinterpret_cast<RelabelType*>(n)->arg);
    }
    if (n == nullptr || !IsA(n, Var)) {
        return false;
    }
    auto* v = reinterpret_cast<Var*>(n);
    const int level = w->depth - 1 - static_cast<int>(v->varlevelsup);
    if (level < 0 || v->varattno < 0) {
        return false;
    }
    Query* q = w->levels[level];
    if (v->varno < 1 || v->varno > list_length(q->rtable)) {
        return false;
    }
    auto* rte = static_cast<RangeTblEntry*>(list_nth(q->rtable, v->varno - 1));
    if (rte->rtekind != RTE_RELATION) {
        return false;
    }
    *relid = rte->relid;
    *attnum = v->varattno;
    return true;
}

bool key_walker(Node* n, void* ctx) {
    if (n == nullptr) {
        return false;
    }
    auto* w = static_cast<KeyWalk*>(ctx);
    if (IsA(n, Query)) {
        collect_keys(reinterpret_cast<Query*>(n), w);
        return false;
    }
    if (IsA(n, Var)) {
        Oid relid = InvalidOid;
        AttrNumber attnum = 0;
        if (table_column(n, w, &relid, &attnum)) {
            *w->used = lappend(*w->used, list_make2_int(static_cast<int>(relid), attnum));
        }
        return false;
    }
    if (IsA(n, OpExpr) && list_length(reinterpret_cast<OpExpr*>(n)->args) == 2) {
        auto* op = reinterpret_cast<OpExpr*>(n);
        char* name = get_opname(op->opno);
        if (name != nullptr && strcmp(name, "=") == 0) {
            ListCell* lc = nullptr;
            foreach (lc, op->args) {
                Oid relid = InvalidOid;
                AttrNumber attnum = 0;
                if (table_column(static_cast<Node*>(lfirst(lc)), w, &relid, &attnum) &&
                    attnum > 0) {
                    *w->keys = lappend(*w->keys, list_make2_int(static_cast<int>(relid), attnum));
                }
            }
        }
    }
    return expression_tree_walker(n, walker_cast(key_walker), ctx);
}

void collect_keys(Query* q, KeyWalk* w) {
    if (w->depth >= kMaxDepth) {
        return;
    }
    w->levels[w->depth++] = q;
    ListCell* lc = nullptr;
    // GROUP BY columns of each table, together.
    List* by_table = NIL;  // of (relid, attnum, ...)
    foreach (lc, q->groupClause) {
        auto* sgc = static_cast<SortGroupClause*>(lfirst(lc));
        TargetEntry* te = get_sortgroupclause_tle(sgc, q->targetList);
        Oid relid = InvalidOid;
        AttrNumber attnum = 0;
        if (!table_column(reinterpret_cast<Node*>(te->expr), w, &relid, &attnum) || attnum == 0) {
            continue;
        }
        bool added = false;
        ListCell* bc = nullptr;
        foreach (bc, by_table) {
            auto* entry = static_cast<List*>(lfirst(bc));
            if (static_cast<Oid>(linitial_int(entry)) == relid) {
                lfirst(bc) = lappend_int(entry, attnum);
                added = true;
            }
        }
        if (!added) {
            by_table = lappend(by_table, list_make2_int(static_cast<int>(relid), attnum));
        }
    }
    *w->keys = list_concat(*w->keys, by_table);
    foreach (lc, q->rtable) {
        auto* rte = static_cast<RangeTblEntry*>(lfirst(lc));
        if (rte->rtekind == RTE_RELATION && rte->inFromCl &&
            get_rel_relkind(rte->relid) == RELKIND_VIEW) {
            KeyWalk inner;
            inner.keys = w->keys;
            inner.used = w->used;
            collect_keys(view_query_copy(rte->relid), &inner);
        } else if (rte->rtekind == RTE_SUBQUERY) {
            collect_keys(rte->subquery, w);
        }
    }
    (void)query_tree_walker(q, walker_cast(key_walker), w, QTW_IGNORE_RANGE_TABLE);
    foreach (lc, q->cteList) {
        collect_keys(reinterpret_cast<Query*>(static_cast<CommonTableExpr*>(lfirst(lc))->ctequery),
                     w);
    }
    --w->depth;
}

}  // namespace

void collect_lookup_keys(Query* q, List** keys, List** used) {
    KeyWalk w;
    w.keys = keys;
    w.used = used;
    collect_keys(q, &w);
}

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
