// Query -> ivm::Query. Expressions are rendered here, search_path-proof: every function,
// operator and type is schema-qualified, every identifier quoted. A construct the engine
// cannot maintain differentially raises Unsupported (caught at the top, inside the
// PostgreSQL error guard: C++ exceptions never cross it).
#include "engine/translate.h"

#include <deque>
#include <map>
#include <set>

#include "core/sql_ident.h"
#include "core/stable_name.h"
#include "boundary/guard.h"
#include "boundary/pg.h"
#include "common/oids.h"
#include "common/query_tree.h"

extern "C" {
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_aggregate.h"
#include "catalog/pg_class.h"
#include "catalog/pg_namespace.h"
#include "nodes/makefuncs.h"
#include "rewrite/rewriteManip.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "parser/parsetree.h"
#include "rewrite/rewriteHandler.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/typcache.h"
}

namespace pgt {
namespace {

using sql::join;
using sql::quote_ident;
using sql::quote_literal;

struct Unsupported {
    std::string reason;
};

[[noreturn]] void unsupported(std::string reason) {
    throw Unsupported{std::move(reason)};
}

// ---- PostgreSQL calls ----------------------------------------------------------------------
// Every call into PostgreSQL that can raise goes through one of these: the lambda given to
// pg_call holds PostgreSQL calls only (no C++ allocation, nothing that throws), so an ereport
// never skips a C++ destructor and a C++ exception never crosses PG_TRY.

std::string ns_name(Oid nsp) {
    return pg::namespace_name(nsp).value_or("pg_catalog");
}

const char* pg_func_name(Oid fn) {
    const char* n = nullptr;
    pg_call([&]() noexcept { n = get_func_name(fn); });
    return n;
}

Oid pg_func_namespace(Oid fn) {
    Oid n = InvalidOid;
    pg_call([&]() noexcept { n = get_func_namespace(fn); });
    return n;
}

char pg_func_volatile(Oid fn) {
    char v = PROVOLATILE_VOLATILE;
    pg_call([&]() noexcept { v = func_volatile(fn); });
    return v;
}

Oid pg_opcode(Oid opno) {
    Oid fn = InvalidOid;
    pg_call([&]() noexcept { fn = get_opcode(opno); });
    return fn;
}

Oid pg_expr_type(const Node* n) {
    Oid t = InvalidOid;
    pg_call([&]() noexcept { t = exprType(n); });
    return t;
}

int32 pg_expr_typmod(const Node* n) {
    int32 t = -1;
    pg_call([&]() noexcept { t = exprTypmod(n); });
    return t;
}

/// The type's equality operator (InvalidOid when it has none); `lt`/`gt` likewise on request.
Oid pg_eq_opr(Oid type, Oid* lt = nullptr, Oid* gt = nullptr) {
    Oid eq = InvalidOid;
    Oid l = InvalidOid;
    Oid g = InvalidOid;
    pg_call([&]() noexcept {
        TypeCacheEntry* tc =
            lookup_type_cache(type, TYPECACHE_EQ_OPR | TYPECACHE_LT_OPR | TYPECACHE_GT_OPR);
        eq = tc->eq_opr;
        l = tc->lt_opr;
        g = tc->gt_opr;
    });
    if (lt) {
        *lt = l;
    }
    if (gt) {
        *gt = g;
    }
    return eq;
}

/// Attribute name, nullptr when missing or dropped.
const char* pg_attname(Oid relid, AttrNumber attnum) {
    const char* n = nullptr;
    pg_call([&]() noexcept { n = get_attname(relid, attnum, true); });
    return n;
}

/// Whether attribute `attnum` of `relid` is a dropped column.
bool pg_att_dropped(Oid relid, AttrNumber attnum) {
    bool dropped = false;
    pg_call([&]() noexcept {
        HeapTuple t = SearchSysCache2(ATTNUM, ObjectIdGetDatum(relid), Int16GetDatum(attnum));
        if (HeapTupleIsValid(t)) {
            dropped = reinterpret_cast<Form_pg_attribute>(GETSTRUCT(t))->attisdropped;
            ReleaseSysCache(t);
        }
    });
    return dropped;
}

Oid pg_typ_typrelid(Oid type) {
    Oid r = InvalidOid;
    pg_call([&]() noexcept { r = get_typ_typrelid(type); });
    return r;
}

Node* pg_flatten(Query* q, Node* n) {
    Node* out = nullptr;
    pg_call([&]() noexcept { out = flatten_join_alias_vars(q, n); });
    return out;
}

bool pg_has_sublink(Node* n) {
    bool has = false;
    pg_call([&]() noexcept { has = checkExprHasSubLink(n); });
    return has;
}

TargetEntry* pg_sortgroupclause_tle(SortGroupClause* sgc, List* tlist) {
    TargetEntry* tle = nullptr;
    pg_call([&]() noexcept { tle = get_sortgroupclause_tle(sgc, tlist); });
    return tle;
}

std::string pg_node_string(const Node* n) {
    const char* s = nullptr;
    pg_call([&]() noexcept { s = nodeToString(n); });
    return s ? s : "?";
}

/// One query level while rendering: its Query and the alias of each range table entry.
struct Level {
    Query* query = nullptr;
    std::vector<std::string> alias;                 // by rtindex - 1; empty for joins
    std::vector<std::vector<std::string>> columns;  // output column names of subquery RTEs
    const List* sublink_targets = nullptr;          // for PARAM_SUBLINK inside IN (...)
};

class Translator {
  public:
    explicit Translator(const SourceResolver& resolve) : resolve_(resolve) {}

    std::shared_ptr<ivm::Query> query(Query* q, const std::vector<std::string>* names);

  private:
    const SourceResolver& resolve_;
    std::deque<Level> levels_;  // deque: references stay valid while nested levels are pushed
    std::set<std::string> used_aliases_;
    std::string case_test_sql_;
    bool top_block_ = true;  // the next block is the query's own (not below a union/subquery)

    // ---- helpers ------------------------------------------------------------------------
    std::string unique_alias(const char* base) {
        std::string a = base ? base : "t";
        std::string cand = a;
        for (int i = 2; used_aliases_.count(cand); ++i) {
            cand = a + "_" + std::to_string(i);
        }
        used_aliases_.insert(cand);
        return cand;
    }

    void check_query_shape(Query* q) {
        if (q->commandType != CMD_SELECT) {
            unsupported("a statement other than SELECT");
        }
        if (q->utilityStmt) {
            unsupported("a utility statement");
        }
        if (q->hasWindowFuncs) {
            unsupported("window functions");
        }
        if (q->hasTargetSRFs) {
            unsupported("set-returning functions in the select list");
        }
        if (q->hasRecursive) {
            unsupported("WITH RECURSIVE");
        }
        if (q->cteList) {
            unsupported("WITH (common table expressions)");
        }
        if (q->hasModifyingCTE) {
            unsupported("data-modifying WITH");
        }
        if (q->hasForUpdate || q->rowMarks) {
            unsupported("FOR UPDATE/SHARE");
        }
        if (q->limitCount || q->limitOffset) {
            unsupported("LIMIT/OFFSET");
        }
        if (q->groupingSets) {
            unsupported("GROUPING SETS/ROLLUP/CUBE");
        }
        if (q->hasDistinctOn) {
            unsupported("DISTINCT ON");
        }
        if (q->groupDistinct) {
            unsupported("GROUP BY DISTINCT");
        }
    }

    // ---- expressions --------------------------------------------------------------------
    std::string var(Var* v) {
        if (v->varlevelsup >= levels_.size()) {
            unsupported("an outer reference that cannot be resolved");
        }
        Level& lv = levels_[levels_.size() - 1 - v->varlevelsup];
        if (v->varattno <= 0) {
            unsupported(v->varattno == 0 ? "a whole-row reference" : "a system column");
        }
        const std::string& alias = lv.alias[v->varno - 1];
        if (alias.empty()) {
            unsupported("a reference to a join alias column");
        }
        const auto& cols = lv.columns[v->varno - 1];
        if (v->varattno > static_cast<int>(cols.size())) {
            unsupported("a column beyond the relation's width");
        }
        return quote_ident(alias) + "." + quote_ident(cols[v->varattno - 1]);
    }

    std::string constant(Const* c) {
        const std::string type = sql_type_name(c->consttype, c->consttypmod);
        if (c->constisnull) {
            return "NULL::" + type;
        }
        const char* s = nullptr;
        pg_call([&]() noexcept {
            Oid out = InvalidOid;
            bool varlena = false;
            getTypeOutputInfo(c->consttype, &out, &varlena);
            s = OidOutputFunctionCall(out, c->constvalue);
        });
        return "(" + quote_literal(s) + "::" + type + ")";
    }

    std::string operator_name(Oid opno) {
        bool found = false;
        Oid nsp = InvalidOid;
        NameData name;
        pg_call([&]() noexcept {
            HeapTuple tup = SearchSysCache1(OPEROID, ObjectIdGetDatum(opno));
            found = HeapTupleIsValid(tup);
            if (found) {
                auto* form = reinterpret_cast<Form_pg_operator>(GETSTRUCT(tup));
                nsp = form->oprnamespace;
                name = form->oprname;
                ReleaseSysCache(tup);
            }
        });
        if (!found) {
            unsupported("an unknown operator");
        }
        return "OPERATOR(" + quote_ident(ns_name(nsp)) + "." + NameStr(name) + ")";
    }

    std::string function_name(Oid fn) {
        const char* name = pg_func_name(fn);
        if (!name) {
            unsupported("an unknown function");
        }
        return quote_ident(ns_name(pg_func_namespace(fn))) + "." + quote_ident(name);
    }

    std::string args(List* l, bool variadic = false) {
        std::vector<std::string> out;
        ListCell* lc;
        int i = 0;
        const int n = list_length(l);
        foreach (lc, l) {
            std::string a = expr(static_cast<Node*>(lfirst(lc)));
            if (variadic && i == n - 1) {
                a = "VARIADIC " + a;
            }
            out.push_back(a);
            ++i;
        }
        return join(out, ", ");
    }

    /// Refuses functions whose result can change while no captured source changes: volatile
    /// ones, the clock, and non-immutable functions outside pg_catalog (a STABLE function may
    /// read tables whose changes are not captured).
    void check_not_time_varying(Oid fn) {
        static const std::set<std::string> time_varying = {
            "now",       "statement_timestamp", "transaction_timestamp", "clock_timestamp",
            "timeofday", "localtimestamp",      "current_timestamp"};
        const char volatility = pg_func_volatile(fn);
        if (volatility == PROVOLATILE_VOLATILE) {
            unsupported("volatile function " + function_name(fn) + "()");
        }
        const char* name = pg_func_name(fn);
        if (name && time_varying.count(name)) {
            unsupported("time-dependent function " + std::string(name) + "()");
        }
        if (volatility == PROVOLATILE_STABLE && pg_func_namespace(fn) != PG_CATALOG_NAMESPACE) {
            unsupported("stable function " + function_name(fn) +
                        "() (it may read tables whose changes are not captured)");
        }
    }

    std::string aggregate(Aggref* a) {
        if (a->agglevelsup > 0) {
            unsupported("an aggregate of an outer query");
        }
        if (a->aggkind != AGGKIND_NORMAL) {
            unsupported("ordered-set aggregates (WITHIN GROUP)");
        }
        check_not_time_varying(a->aggfnoid);
        std::string s = function_name(a->aggfnoid) + "(";
        if (a->aggstar) {
            s += "*";
        } else {
            if (a->aggdistinct) {
                s += "DISTINCT ";
            }
            std::vector<std::string> av;
            ListCell* lc;
            int i = 0;
            foreach (lc, a->args) {
                auto* tle = static_cast<TargetEntry*>(lfirst(lc));
                if (tle->resjunk) {
                    continue;
                }
                std::string e = expr(reinterpret_cast<Node*>(tle->expr));
                if (a->aggvariadic && i == list_length(a->args) - 1) {
                    e = "VARIADIC " + e;
                }
                av.push_back(e);
                ++i;
            }
            s += join(av, ", ");
            if (a->aggorder) {  // with DISTINCT too: array_agg(DISTINCT x ORDER BY x DESC)
                s += " ORDER BY " + sort_clause(a->aggorder, a->args);
            }
        }
        s += ")";
        if (a->aggfilter) {
            s += " FILTER (WHERE " + expr(reinterpret_cast<Node*>(a->aggfilter)) + ")";
        }
        return s;
    }

    std::string sort_clause(List* clauses, List* tlist) {
        std::vector<std::string> out;
        ListCell* lc;
        foreach (lc, clauses) {
            auto* sgc = static_cast<SortGroupClause*>(lfirst(lc));
            TargetEntry* tle = pg_sortgroupclause_tle(sgc, tlist);
            std::string e = expr(reinterpret_cast<Node*>(tle->expr));
            Oid lt = InvalidOid;
            Oid gt = InvalidOid;
            (void)pg_eq_opr(pg_expr_type(reinterpret_cast<Node*>(tle->expr)), &lt, &gt);
            if (sgc->sortop == lt) {
                e += " ASC";
            } else if (sgc->sortop == gt) {
                e += " DESC";
            } else {
                e += " USING " + operator_name(sgc->sortop);
            }
            e += sgc->nulls_first ? " NULLS FIRST" : " NULLS LAST";
            out.push_back(e);
        }
        return join(out, ", ");
    }

    static std::string sql_value_function_name(const SQLValueFunction* f) {
        switch (f->op) {
            case SVFOP_CURRENT_DATE:
                return "CURRENT_DATE";
            case SVFOP_CURRENT_TIME:
            case SVFOP_CURRENT_TIME_N:
                return "CURRENT_TIME";
            case SVFOP_CURRENT_TIMESTAMP:
            case SVFOP_CURRENT_TIMESTAMP_N:
                return "CURRENT_TIMESTAMP";
            case SVFOP_LOCALTIME:
            case SVFOP_LOCALTIME_N:
                return "LOCALTIME";
            case SVFOP_LOCALTIMESTAMP:
            case SVFOP_LOCALTIMESTAMP_N:
                return "LOCALTIMESTAMP";
            case SVFOP_CURRENT_ROLE:
                return "CURRENT_ROLE";
            case SVFOP_CURRENT_USER:
                return "CURRENT_USER";
            case SVFOP_USER:
                return "USER";
            case SVFOP_SESSION_USER:
                return "SESSION_USER";
            case SVFOP_CURRENT_CATALOG:
                return "CURRENT_CATALOG";
            case SVFOP_CURRENT_SCHEMA:
                return "CURRENT_SCHEMA";
        }
        return "a CURRENT_DATE-style value";
    }

    /// ROW(...), with its composite type when it has one (a cast `(a, b)::t` or `ROW(a, b)::t`):
    /// an anonymous record would not be the stream table column's type, nor group, compare
    /// or yield fields like the named one. The parser fills a named type's dropped columns
    /// with NULLs, which the cast puts back.
    std::string row(RowExpr* r) {
        if (r->row_typeid == RECORDOID) {
            return "ROW(" + args(r->args) + ")";
        }
        const Oid relid = pg_typ_typrelid(r->row_typeid);
        std::vector<std::string> live;
        ListCell* lc;
        AttrNumber attnum = 0;
        foreach (lc, r->args) {
            ++attnum;
            if (OidIsValid(relid) && pg_att_dropped(relid, attnum)) {
                continue;
            }
            live.push_back(expr(static_cast<Node*>(lfirst(lc))));
        }
        return "(ROW(" + join(live, ", ") + ")::" + sql_type_name(r->row_typeid, -1) + ")";
    }

    std::string cast(Node* arg, Oid type, int32 typmod) {
        return "(" + expr(arg) + ")::" + sql_type_name(type, typmod);
    }

  public:
    std::string expr(Node* n) {
        if (n == nullptr) {
            return "NULL";
        }
        switch (nodeTag(n)) {
            case T_Var:
                return var(reinterpret_cast<Var*>(n));
            case T_Const:
                return constant(reinterpret_cast<Const*>(n));
            case T_OpExpr: {
                auto* o = reinterpret_cast<OpExpr*>(n);
                check_not_time_varying(pg_opcode(o->opno));
                if (list_length(o->args) == 2) {
                    return "(" + expr(static_cast<Node*>(linitial(o->args))) + " " +
                           operator_name(o->opno) + " " +
                           expr(static_cast<Node*>(lsecond(o->args))) + ")";
                }
                return "(" + operator_name(o->opno) + " " +
                       expr(static_cast<Node*>(linitial(o->args))) + ")";
            }
            case T_DistinctExpr: {
                // IS DISTINCT FROM and NULLIF would look their "=" up by name again: spelled
                // out with the query's own operator instead (its arguments are not volatile).
                auto* o = reinterpret_cast<DistinctExpr*>(n);
                check_not_time_varying(pg_opcode(o->opno));
                const std::string a = expr(static_cast<Node*>(linitial(o->args)));
                const std::string b = expr(static_cast<Node*>(lsecond(o->args)));
                return "(CASE WHEN " + a + " IS NULL THEN " + b + " IS NOT NULL WHEN " + b +
                       " IS NULL THEN true ELSE NOT (" + a + " " + operator_name(o->opno) + " " +
                       b + ") END)";
            }
            case T_NullIfExpr: {
                auto* o = reinterpret_cast<NullIfExpr*>(n);
                check_not_time_varying(pg_opcode(o->opno));
                const std::string a = expr(static_cast<Node*>(linitial(o->args)));
                const std::string b = expr(static_cast<Node*>(lsecond(o->args)));
                return "(CASE WHEN " + a + " " + operator_name(o->opno) + " " + b +
                       " THEN NULL ELSE " + a + " END)";
            }
            case T_ScalarArrayOpExpr: {
                auto* o = reinterpret_cast<ScalarArrayOpExpr*>(n);
                check_not_time_varying(pg_opcode(o->opno));
                return "(" + expr(static_cast<Node*>(linitial(o->args))) + " " +
                       operator_name(o->opno) + (o->useOr ? " ANY (" : " ALL (") +
                       expr(static_cast<Node*>(lsecond(o->args))) + "))";
            }
            case T_BoolExpr: {
                auto* b = reinterpret_cast<BoolExpr*>(n);
                if (b->boolop == NOT_EXPR) {
                    return "(NOT " + expr(static_cast<Node*>(linitial(b->args))) + ")";
                }
                std::vector<std::string> parts;
                ListCell* lc;
                foreach (lc, b->args) parts.push_back(expr(static_cast<Node*>(lfirst(lc))));
                return "(" + join(parts, b->boolop == AND_EXPR ? " AND " : " OR ") + ")";
            }
            case T_NullTest: {
                auto* t = reinterpret_cast<NullTest*>(n);
                return "(" + expr(reinterpret_cast<Node*>(t->arg)) +
                       (t->nulltesttype == IS_NULL ? " IS NULL)" : " IS NOT NULL)");
            }
            case T_BooleanTest: {
                auto* t = reinterpret_cast<BooleanTest*>(n);
                static const char* const kinds[] = {" IS TRUE",    " IS NOT TRUE",
                                                    " IS FALSE",   " IS NOT FALSE",
                                                    " IS UNKNOWN", " IS NOT UNKNOWN"};
                return "(" + expr(reinterpret_cast<Node*>(t->arg)) + kinds[t->booltesttype] + ")";
            }
            case T_FuncExpr: {
                auto* f = reinterpret_cast<FuncExpr*>(n);
                check_not_time_varying(f->funcid);
                if ((f->funcformat == COERCE_EXPLICIT_CAST ||
                     f->funcformat == COERCE_IMPLICIT_CAST) &&
                    list_length(f->args) >= 1) {
                    return cast(static_cast<Node*>(linitial(f->args)), f->funcresulttype,
                                pg_expr_typmod(n));
                }
                return function_name(f->funcid) + "(" + args(f->args, f->funcvariadic) + ")";
            }
            case T_NamedArgExpr: {
                auto* a = reinterpret_cast<NamedArgExpr*>(n);
                return quote_ident(a->name) + " => " + expr(reinterpret_cast<Node*>(a->arg));
            }
            case T_RelabelType: {
                auto* r = reinterpret_cast<RelabelType*>(n);
                return cast(reinterpret_cast<Node*>(r->arg), r->resulttype, r->resulttypmod);
            }
            case T_CoerceViaIO: {
                auto* c = reinterpret_cast<CoerceViaIO*>(n);
                return cast(reinterpret_cast<Node*>(c->arg), c->resulttype, -1);
            }
            case T_ArrayCoerceExpr: {
                auto* c = reinterpret_cast<ArrayCoerceExpr*>(n);
                return cast(reinterpret_cast<Node*>(c->arg), c->resulttype, c->resulttypmod);
            }
            case T_CoerceToDomain: {
                auto* c = reinterpret_cast<CoerceToDomain*>(n);
                return cast(reinterpret_cast<Node*>(c->arg), c->resulttype, c->resulttypmod);
            }
            case T_CollateExpr: {
                auto* c = reinterpret_cast<CollateExpr*>(n);
                return "(" + expr(reinterpret_cast<Node*>(c->arg)) + " COLLATE " +
                       sql_collation_name(c->collOid) + ")";
            }
            case T_CaseExpr: {
                auto* c = reinterpret_cast<CaseExpr*>(n);
                std::string saved = case_test_sql_;
                if (c->arg) {
                    case_test_sql_ = "(" + expr(reinterpret_cast<Node*>(c->arg)) + ")";
                }
                std::string s = "CASE";
                ListCell* lc;
                foreach (lc, c->args) {
                    auto* w = static_cast<CaseWhen*>(lfirst(lc));
                    s += " WHEN " + expr(reinterpret_cast<Node*>(w->expr)) + " THEN " +
                         expr(reinterpret_cast<Node*>(w->result));
                }
                if (c->defresult) {
                    s += " ELSE " + expr(reinterpret_cast<Node*>(c->defresult));
                }
                case_test_sql_ = saved;
                return s + " END";
            }
            case T_CaseTestExpr:
                if (case_test_sql_.empty()) {
                    unsupported("a CASE placeholder outside CASE");
                }
                return case_test_sql_;
            case T_CoalesceExpr:
                return "COALESCE(" + args(reinterpret_cast<CoalesceExpr*>(n)->args) + ")";
            case T_MinMaxExpr: {
                auto* m = reinterpret_cast<MinMaxExpr*>(n);
                return std::string(m->op == IS_GREATEST ? "GREATEST(" : "LEAST(") + args(m->args) +
                       ")";
            }
            case T_ArrayExpr: {
                auto* a = reinterpret_cast<ArrayExpr*>(n);
                return "(ARRAY[" + args(a->elements) + "]::" + sql_type_name(a->array_typeid, -1) +
                       ")";
            }
            case T_RowExpr:
                return row(reinterpret_cast<RowExpr*>(n));
            case T_FieldSelect: {
                auto* f = reinterpret_cast<FieldSelect*>(n);
                const Oid rowtype = pg_expr_type(reinterpret_cast<Node*>(f->arg));
                const char* field = pg_attname(pg_typ_typrelid(rowtype), f->fieldnum);
                if (!field) {
                    unsupported("a field of an anonymous record");
                }
                return "((" + expr(reinterpret_cast<Node*>(f->arg)) + ")." + quote_ident(field) +
                       ")";
            }
            case T_SubscriptingRef: {
                auto* s = reinterpret_cast<SubscriptingRef*>(n);
                if (s->refassgnexpr || s->reflowerindexpr) {
                    unsupported("array slices or assignments");
                }
                std::string out = "(" + expr(reinterpret_cast<Node*>(s->refexpr)) + ")";
                ListCell* lc;
                foreach (lc, s->refupperindexpr)
                    out += "[" + expr(static_cast<Node*>(lfirst(lc))) + "]";
                return "(" + out + ")";
            }
            case T_Aggref:
                return aggregate(reinterpret_cast<Aggref*>(n));
            case T_Param: {
                auto* p = reinterpret_cast<Param*>(n);
                if (p->paramkind == PARAM_SUBLINK) {
                    for (auto it = levels_.rbegin(); it != levels_.rend(); ++it) {
                        if (!it->sublink_targets) {
                            continue;
                        }
                        if (p->paramid < 1 || p->paramid > list_length(it->sublink_targets)) {
                            break;
                        }
                        auto* tle = static_cast<TargetEntry*>(
                            list_nth(it->sublink_targets, p->paramid - 1));
                        return expr(reinterpret_cast<Node*>(tle->expr));
                    }
                }
                unsupported("a query parameter");
            }
            case T_SubLink:
                unsupported("a subquery inside an expression (only [NOT] EXISTS and IN in WHERE)");
            case T_SQLValueFunction:
                unsupported(sql_value_function_name(reinterpret_cast<SQLValueFunction*>(n)) +
                            " (its value changes without any captured change)");
            case T_WindowFunc:
                unsupported("window functions");
            case T_GroupingFunc:
                unsupported("GROUPING()");
            case T_RowCompareExpr:
                unsupported("row comparisons");
            case T_XmlExpr:
                unsupported("XML expressions");
            case T_NextValueExpr:
                unsupported("sequence values");
            default:
                break;
        }
        unsupported("expression node " + pg_node_string(n));
    }

  private:
    // ---- FROM -----------------------------------------------------------------------------
    void add_item_for_rte(Level& lv, int rtindex, ivm::SpjCore& core) {
        RangeTblEntry* rte = rt_fetch(rtindex, lv.query->rtable);
        ivm::FromItem item;
        item.alias = lv.alias[rtindex - 1];
        if (rte->rtekind == RTE_RELATION) {
            if (rte->tablesample) {
                unsupported("TABLESAMPLE");
            }
            const char relkind = pg::rel_kind(rte->relid);
            if (relkind == RELKIND_VIEW) {
                Query* vq = pg::view_query(rte->relid);
                item.kind = ivm::FromItem::Kind::subquery;
                item.query = subquery(vq, &lv.columns[rtindex - 1],
                                      "view " + pg::rel_name(rte->relid).value_or("?"));
                item.columns = item.query->columns;
                item.comparable = item.query->comparable;
            } else if (relkind == RELKIND_RELATION || relkind == RELKIND_PARTITIONED_TABLE) {
                ivm::BaseTable& t = item.table;
                t.schema = ns_name(pg::rel_namespace(rte->relid));
                t.name = pg::rel_name(rte->relid).value_or("?");
                t.only = !rte->inh;
                const SourceNames sn = resolve_(rte->relid);
                t.stable_name = sn.stable_name;
                t.buffer = sn.buffer;
                t.state = sn.state;
                // The relation's current columns, copied out of its descriptor.
                TupleDesc td = nullptr;
                pg_call([&]() noexcept {
                    Relation rel = table_open(rte->relid, AccessShareLock);
                    td = CreateTupleDescCopy(RelationGetDescr(rel));
                    table_close(rel, AccessShareLock);
                });
                for (int i = 0; i < td->natts; ++i) {
                    Form_pg_attribute a = TupleDescAttr(td, i);
                    if (a->attisdropped) {
                        continue;
                    }
                    t.columns.push_back(
                        {NameStr(a->attname), sql_type_name(a->atttypid, a->atttypmod)});
                    item.comparable = item.comparable && has_equality(a->atttypid);
                    t.buffer_columns.push_back(buffer_column_name(a->attnum));
                    const Oid type = a->atttypid;
                    t.domain_columns.push_back(
                        pg_call([type]() noexcept { return get_typtype(type) == TYPTYPE_DOMAIN; }));
                }
                item.columns = t.columns;
            } else {
                const std::string what = relkind == RELKIND_MATVIEW         ? "materialized view"
                                         : relkind == RELKIND_FOREIGN_TABLE ? "foreign table"
                                                                            : "relation";
                unsupported(what + " " + quote_ident(ns_name(pg::rel_namespace(rte->relid))) + "." +
                            quote_ident(pg::rel_name(rte->relid).value_or("?")) +
                            " (its changes cannot be captured)");
            }
        } else if (rte->rtekind == RTE_SUBQUERY) {
            if (rte->lateral) {
                unsupported("LATERAL subqueries");
            }
            item.kind = ivm::FromItem::Kind::subquery;
            item.query = subquery(rte->subquery, &lv.columns[rtindex - 1], "subquery in FROM");
            item.columns = item.query->columns;
            item.comparable = item.query->comparable;
        } else if (rte->rtekind == RTE_FUNCTION) {
            std::vector<std::string> fns;
            ListCell* lc;
            foreach (lc, rte->functions) {
                Node* call = static_cast<RangeTblFunction*>(lfirst(lc))->funcexpr;
                fns.push_back(IsA(call, FuncExpr)
                                  ? function_name(reinterpret_cast<FuncExpr*>(call)->funcid) + "()"
                                  : "an expression");
            }
            unsupported("function in FROM " + join(fns, ", ") +
                        " (its rows change without any captured change)");
        } else {
            static const char* const kinds[] = {
                "table",          "subquery", "join",          "function in FROM",
                "table function", "VALUES",   "CTE reference", "named tuplestore",
                "result"};
            const int k = static_cast<int>(rte->rtekind);
            unsupported(std::string(k >= 0 && k < 9 ? kinds[k] : "range table entry") + " in FROM");
        }
        core.items.push_back(std::move(item));
    }

    std::shared_ptr<ivm::Query> subquery(Query* q, const std::vector<std::string>* names,
                                         const std::string& what) {
        auto sub = query(q, names);
        require_consolidatable(*sub, what);
        return sub;
    }

    std::shared_ptr<ivm::JoinTree> from_node(Level& lv, Node* n, ivm::SpjCore& core) {
        auto tree = std::make_shared<ivm::JoinTree>();
        if (IsA(n, RangeTblRef)) {
            const int rtindex = reinterpret_cast<RangeTblRef*>(n)->rtindex;
            tree->kind = ivm::JoinTree::Kind::item;
            tree->item = static_cast<int>(core.items.size());
            add_item_for_rte(lv, rtindex, core);
            return tree;
        }
        if (!IsA(n, JoinExpr)) {
            unsupported("a FROM item of an unexpected kind");
        }
        auto* j = reinterpret_cast<JoinExpr*>(n);
        Node* larg = j->larg;
        Node* rarg = j->rarg;
        switch (j->jointype) {
            case JOIN_INNER:
                tree->kind = ivm::JoinTree::Kind::inner;
                break;
            case JOIN_LEFT:
                tree->kind = ivm::JoinTree::Kind::left;
                break;
            case JOIN_RIGHT:
                tree->kind = ivm::JoinTree::Kind::left;
                std::swap(larg, rarg);
                break;
            case JOIN_FULL:
                unsupported("FULL OUTER JOIN");
            default:
                unsupported("this join type");
        }
        tree->left = from_node(lv, larg, core);
        tree->right = from_node(lv, rarg, core);
        if (j->quals) {
            Node* quals = pg_flatten(lv.query, j->quals);
            if (pg_has_sublink(quals)) {
                unsupported("a subquery in a JOIN condition");
            }
            tree->on = expr(quals);
        } else {
            tree->on = "true";
        }
        return tree;
    }

    /// The FROM and WHERE of `lv.query` as an SPJ core (WHERE split into conjuncts).
    std::shared_ptr<ivm::SpjCore> core(Level& lv) {
        auto c = std::make_shared<ivm::SpjCore>();
        FromExpr* jt = lv.query->jointree;
        ListCell* lc;
        foreach (lc, jt->fromlist)
            c->from.push_back(*from_node(lv, static_cast<Node*>(lfirst(lc)), *c));
        if (c->from.empty()) {
            unsupported("a SELECT without FROM");
        }
        if (jt->quals) {
            Node* quals = pg_flatten(lv.query, jt->quals);
            List* conj = nullptr;
            pg_call([&]() noexcept { conj = make_ands_implicit(reinterpret_cast<Expr*>(quals)); });
            foreach (lc, conj) {
                Node* q = static_cast<Node*>(lfirst(lc));
                if (!pg_has_sublink(q)) {
                    c->quals.push_back(expr(q));
                    continue;
                }
                bool anti = false;
                if (IsA(q, BoolExpr) && reinterpret_cast<BoolExpr*>(q)->boolop == NOT_EXPR) {
                    anti = true;
                    q = static_cast<Node*>(linitial(reinterpret_cast<BoolExpr*>(q)->args));
                }
                if (!IsA(q, SubLink)) {
                    unsupported(
                        "a subquery inside an expression (only [NOT] EXISTS and IN in WHERE)");
                }
                c->semijoins.push_back(semijoin(reinterpret_cast<SubLink*>(q), anti));
            }
        }
        return c;
    }

    ivm::SemiJoin semijoin(SubLink* s, bool anti) {
        if (s->subLinkType != EXISTS_SUBLINK && s->subLinkType != ANY_SUBLINK) {
            unsupported("a subquery of this kind (only [NOT] EXISTS and IN in WHERE)");
        }
        if (s->subLinkType == ANY_SUBLINK && anti) {
            unsupported("NOT IN (subquery): use NOT EXISTS");
        }
        auto* sq = reinterpret_cast<Query*>(s->subselect);
        check_query_shape(sq);
        if (sq->setOperations) {
            unsupported("UNION inside [NOT] EXISTS/IN");
        }
        if (sq->hasAggs || sq->groupClause || sq->havingQual) {
            unsupported("aggregation inside [NOT] EXISTS/IN");
        }
        if (sq->distinctClause) {
            unsupported("DISTINCT inside [NOT] EXISTS/IN");
        }
        levels_.push_back(level_for(sq));
        ivm::SemiJoin sj;
        sj.anti = anti;
        auto sub = core(levels_.back());
        if (s->subLinkType == ANY_SUBLINK) {
            // x IN (SELECT y ...) is EXISTS (SELECT ... AND x = y): the comparison is rendered
            // in the sub-select's scope, where the outer operand is one level up.
            Node* test = nullptr;
            pg_call([&]() noexcept {
                test = static_cast<Node*>(copyObjectImpl(s->testexpr));
                IncrementVarSublevelsUp(test, 1, 0);
            });
            levels_.back().sublink_targets = sq->targetList;
            sub->quals.push_back(expr(test));
        }
        levels_.pop_back();
        sj.sub = sub;
        return sj;
    }

    Level level_for(Query* q) {
        Level lv;
        lv.query = q;
        ListCell* lc;
        foreach (lc, q->rtable) {
            auto* rte = static_cast<RangeTblEntry*>(lfirst(lc));
            std::vector<std::string> cols;
            ListCell* c;
            foreach (c, rte->eref->colnames) cols.emplace_back(strVal(lfirst(c)));
            if (rte->rtekind == RTE_JOIN) {
                lv.alias.emplace_back();
            } else {
                lv.alias.push_back(unique_alias(rte->eref->aliasname));
            }
            if (rte->rtekind == RTE_RELATION && pg::rel_kind(rte->relid) != RELKIND_VIEW) {
                // Current column names (the eref may predate a rename when read from a rule).
                cols.clear();
                for (int i = 1; i <= list_length(rte->eref->colnames); ++i) {
                    const char* a = pg_attname(rte->relid, static_cast<AttrNumber>(i));
                    cols.emplace_back(a ? a : "");
                }
            }
            lv.columns.push_back(std::move(cols));
        }
        return lv;
    }

    static bool has_equality(Oid type) { return OidIsValid(pg_eq_opr(type)); }

    /// A grouped block below the top is maintained by recomputing touched groups in the old
    /// state, which is rebuilt by grouping on every column of its range variables: they all
    /// need an equality operator.
    void require_consolidatable(const ivm::Query& q, const std::string& what) {
        if (q.union_all) {
            for (const auto& br : q.branches) {
                require_consolidatable(*br, what);
            }
            return;
        }
        if (!q.block.grouped && !q.block.distinct) {
            return;
        }
        bool ok = q.comparable;
        for (const auto& it : q.block.core.items) {
            ok = ok && it.comparable;
        }
        if (!ok) {
            unsupported("aggregation inside a " + what +
                        " over a column without an equality operator (e.g. json)");
        }
    }

    void check_output_types(const std::vector<ivm::Column>& cols, const std::vector<Oid>& types) {
        for (size_t i = 0; i < cols.size(); ++i) {
            if (!has_equality(types[i])) {
                unsupported("output column \"" + cols[i].name + "\" of type " + cols[i].type +
                            ", which has no equality operator");
            }
        }
    }

    ivm::Aggregate classify(Aggref* a) {
        ivm::Aggregate agg;
        agg.sql = aggregate(a);
        const char* fn_name = pg_func_name(a->aggfnoid);
        const std::string name = fn_name ? fn_name : "";
        const bool builtin = pg_func_namespace(a->aggfnoid) == PG_CATALOG_NAMESPACE;
        const bool plain = !a->aggdistinct && !a->aggfilter && !a->aggorder && !a->aggvariadic;
        agg.kind = ivm::Aggregate::Kind::other;
        if (builtin && plain) {
            if (name == "count" && a->aggstar) {
                agg.kind = ivm::Aggregate::Kind::count_star;
            } else if (list_length(a->args) == 1) {
                auto* tle = static_cast<TargetEntry*>(linitial(a->args));
                const Oid argtype = pg_expr_type(reinterpret_cast<Node*>(tle->expr));
                agg.arg = expr(reinterpret_cast<Node*>(tle->expr));
                const bool exact = argtype == INT2OID || argtype == INT4OID || argtype == INT8OID ||
                                   argtype == NUMERICOID;
                if (name == "count") {
                    agg.kind = ivm::Aggregate::Kind::count;
                }
                if (name == "sum" && exact) {
                    agg.kind = ivm::Aggregate::Kind::sum;
                }
                if (name == "avg" && exact) {
                    agg.kind = ivm::Aggregate::Kind::avg;
                }
                if (argtype == NUMERICOID && (agg.kind == ivm::Aggregate::Kind::sum ||
                                              agg.kind == ivm::Aggregate::Kind::avg)) {
                    // numeric(p,s) values all show scale s; unconstrained ones vary.
                    agg.numeric_arg = true;
                    agg.varying_scale = pg_expr_typmod(reinterpret_cast<Node*>(tle->expr)) < 0;
                }
                if (name == "min") {
                    agg.kind = ivm::Aggregate::Kind::min;
                }
                if (name == "max") {
                    agg.kind = ivm::Aggregate::Kind::max;
                }
            }
        }
        agg.algebraic = agg.kind != ivm::Aggregate::Kind::other;
        return agg;
    }

    /// Columns used outside aggregates because they depend on a grouped primary key
    /// (GROUP BY a.id, SELECT a.name) become grouping keys too: the same groups, and below the
    /// top the old state is rebuilt over rebound range variables, where PostgreSQL cannot
    /// see the dependency.
    void add_functionally_dependent_keys(Query* q, ivm::Block& b) {
        std::vector<Var*> vars;
        ListCell* lc;
        foreach (lc, q->targetList) {
            auto* tle = static_cast<TargetEntry*>(lfirst(lc));
            if (!tle->resjunk) {
                collect_ungrouped_vars(pg_flatten(q, reinterpret_cast<Node*>(tle->expr)), vars);
            }
        }
        if (q->havingQual) {
            collect_ungrouped_vars(pg_flatten(q, q->havingQual), vars);
        }
        std::set<std::string> keys;
        for (const auto& k : b.group_by) {
            keys.insert(k.expr);
        }
        for (Var* v : vars) {
            ivm::GroupKey k;
            k.expr = expr(reinterpret_cast<Node*>(v));
            if (!keys.insert(k.expr).second) {
                continue;
            }
            const Oid eq = pg_eq_opr(v->vartype);
            if (!OidIsValid(eq)) {
                unsupported("column " + k.expr +
                            " used through a functional dependency on a grouped primary key, "
                            "without an equality operator");
            }
            k.type = sql_type_name(v->vartype, v->vartypmod);
            k.eq_op = " " + operator_name(eq) + " ";
            b.group_by.push_back(k);
        }
    }

    static void collect_ungrouped_vars(Node* n, std::vector<Var*>& out) {
        List* found = NIL;
        pg_call([&]() noexcept { (void)ungrouped_vars_walker(n, &found); });
        ListCell* lc;
        foreach (lc, found) {
            out.push_back(static_cast<Var*>(lfirst(lc)));
        }
    }

    static bool ungrouped_vars_walker(Node* n, void* ctx);

  public:
    std::shared_ptr<ivm::Query> block_query(Query* q, const std::vector<std::string>* names);
};

/// Vars of this query level outside aggregates, appended to the List* at `ctx` (PostgreSQL
/// calls only: it runs inside pg_call).
bool Translator::ungrouped_vars_walker(Node* n, void* ctx) {
    if (n == nullptr || IsA(n, Aggref)) {
        return false;
    }
    if (IsA(n, Var)) {
        auto* v = reinterpret_cast<Var*>(n);
        if (v->varlevelsup == 0) {
            auto* found = static_cast<List**>(ctx);
            *found = lappend(*found, v);
        }
        return false;
    }
    return expression_tree_walker(n, query_tree::walker_cast(ungrouped_vars_walker), ctx);
}

std::shared_ptr<ivm::Query> Translator::query(Query* q, const std::vector<std::string>* names) {
    check_query_shape(q);
    if (q->setOperations == nullptr) {
        return block_query(q, names);
    }
    auto out = std::make_shared<ivm::Query>();
    out->union_all = true;
    top_block_ = false;  // branches are stored as rows: none is the top block
    // Output columns come from the top target list.
    std::vector<std::string> cols;
    std::vector<Oid> types;
    ListCell* lc;
    int i = 0;
    foreach (lc, q->targetList) {
        auto* tle = static_cast<TargetEntry*>(lfirst(lc));
        if (tle->resjunk) {
            continue;
        }
        const Oid t = pg_expr_type(reinterpret_cast<Node*>(tle->expr));
        std::string name = names && i < static_cast<int>(names->size())
                               ? (*names)[i]
                               : (tle->resname ? tle->resname : "?column?");
        out->columns.push_back(
            {name, sql_type_name(t, pg_expr_typmod(reinterpret_cast<Node*>(tle->expr)))});
        cols.push_back(name);
        types.push_back(t);
        ++i;
    }
    std::function<void(Node*)> leaves = [&](Node* n) {
        if (IsA(n, SetOperationStmt)) {
            auto* s = reinterpret_cast<SetOperationStmt*>(n);
            if (s->op != SETOP_UNION || !s->all) {
                unsupported("UNION/INTERSECT/EXCEPT without ALL (only UNION ALL)");
            }
            leaves(s->larg);
            leaves(s->rarg);
            return;
        }
        auto* ref = reinterpret_cast<RangeTblRef*>(n);
        RangeTblEntry* rte = rt_fetch(ref->rtindex, q->rtable);
        auto br = query(rte->subquery, &cols);
        require_consolidatable(*br, "UNION ALL branch");
        if (br->union_all) {
            for (auto& b : br->branches) {
                out->branches.push_back(b);
            }
        } else {
            // Branch columns may differ in type from the union's (implicit coercions); the
            // union's types are the storage types.
            auto fixed = std::make_shared<ivm::Query>(*br);
            for (size_t k = 0; k < fixed->columns.size() && k < out->columns.size(); ++k) {
                if (fixed->columns[k].type != out->columns[k].type) {
                    fixed->block.targets[k].expr =
                        "(" + fixed->block.targets[k].expr + ")::" + out->columns[k].type;
                    fixed->block.targets[k].column.type = out->columns[k].type;
                    fixed->columns[k].type = out->columns[k].type;
                }
            }
            out->branches.push_back(fixed);
        }
    };
    leaves(q->setOperations);
    check_output_types(out->columns, types);
    return out;
}

std::shared_ptr<ivm::Query> Translator::block_query(Query* q,
                                                    const std::vector<std::string>* names) {
    const bool top = top_block_;
    top_block_ = false;
    levels_.push_back(level_for(q));
    auto out = std::make_shared<ivm::Query>();
    ivm::Block& b = out->block;
    b.core = *core(levels_.back());
    b.grouped = q->hasAggs || q->groupClause != nullptr;
    if (q->havingQual) {
        Node* h = pg_flatten(q, q->havingQual);
        if (pg_has_sublink(h)) {
            unsupported("a subquery in HAVING");
        }
        b.having = expr(h);
    }
    std::map<Index, int> group_ref;  // ressortgroupref -> group key index
    auto add_keys = [&](List* clauses) {
        ListCell* lc;
        foreach (lc, clauses) {
            auto* sgc = static_cast<SortGroupClause*>(lfirst(lc));
            TargetEntry* tle = pg_sortgroupclause_tle(sgc, q->targetList);
            Node* e = pg_flatten(q, reinterpret_cast<Node*>(tle->expr));
            ivm::GroupKey k;
            k.expr = expr(e);
            k.type = sql_type_name(pg_expr_type(e), pg_expr_typmod(e));
            k.eq_op = " " + operator_name(sgc->eqop) + " ";
            group_ref[sgc->tleSortGroupRef] = static_cast<int>(b.group_by.size());
            b.group_by.push_back(k);
        }
    };
    if (q->distinctClause) {
        if (b.grouped) {
            unsupported("DISTINCT together with GROUP BY or aggregates");
        }
        b.grouped = true;
        b.distinct = true;
        add_keys(q->distinctClause);
    } else {
        add_keys(q->groupClause);
    }
    std::vector<Oid> types;
    ListCell* lc;
    int i = 0;
    foreach (lc, q->targetList) {
        auto* tle = static_cast<TargetEntry*>(lfirst(lc));
        if (tle->resjunk) {
            continue;
        }
        Node* e = pg_flatten(q, reinterpret_cast<Node*>(tle->expr));
        if (pg_has_sublink(e)) {
            unsupported("a subquery in the select list");
        }
        ivm::Target t;
        t.expr = expr(e);
        const Oid type = pg_expr_type(e);
        types.push_back(type);
        t.column.name = names && i < static_cast<int>(names->size())
                            ? (*names)[i]
                            : (tle->resname ? tle->resname : "?column?");
        t.column.type = sql_type_name(type, pg_expr_typmod(e));
        if (b.grouped) {
            auto g = group_ref.find(tle->ressortgroupref);
            if (tle->ressortgroupref && g != group_ref.end()) {
                t.kind = ivm::Target::Kind::group_key;
                t.ref = g->second;
            } else if (IsA(e, Aggref)) {
                t.kind = ivm::Target::Kind::aggregate;
                t.ref = static_cast<int>(b.aggs.size());
                b.aggs.push_back(classify(reinterpret_cast<Aggref*>(e)));
            }
        }
        out->columns.push_back(t.column);
        b.targets.push_back(std::move(t));
        ++i;
    }
    if (!top && b.grouped && !b.distinct && q->constraintDeps != NIL) {
        add_functionally_dependent_keys(q, b);
    }
    for (Oid t : types) {
        out->comparable = out->comparable && has_equality(t);
    }
    if (!b.grouped) {
        check_output_types(out->columns, types);
    }
    levels_.pop_back();
    return out;
}

}  // namespace

std::string sql_collation_name(Oid collation) {
    return pg::collation_name(collation);
}

std::string sql_type_name(Oid type, int32 typmod) {
    return pg::type_name(type, typmod);
}

Translation translate_query(Query* query, const SourceResolver& resolve) {
    // Only the translator's own refusal (Unsupported) is a result; any other error, a
    // PostgreSQL one above all (permission denied reading the catalog), propagates.
    Query* q = nullptr;
    List* found = NIL;
    pg_call([&]() noexcept {
        q = static_cast<Query*>(copyObjectImpl(query));
        query_tree::collect_tables(q, query_tree::TableWalk{}, &found);
    });
    Translation out;
    out.relations = oid_list(found);
    try {
        Translator t(resolve);
        out.plan = t.query(q, nullptr);
    } catch (const Unsupported& u) {
        out.unsupported = u.reason;
    }
    return out;
}

}  // namespace pgt
