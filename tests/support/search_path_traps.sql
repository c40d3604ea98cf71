-- Search-path traps (the CVE-2018-1058 pattern), for the tests that prove pg_trickle never
-- runs another role's code with its own rights (docs/security.md).
--
-- Run by the non-superuser role __ROLE__, which owns schema __SCHEMA__, with
-- search_path = pg_catalog. It plants in __SCHEMA__, for everything pg_trickle's SQL compares,
-- concatenates or calls:
--   * an operator for every binary operator of pg_catalog over the types below,
--   * a function for every pg_catalog function over those types (and the common variadic
--     ones at fixed arities), aggregates (count, sum, min, max, ...) and set-returning
--     functions (unnest, generate_series),
--   * a domain named like each of those types, whose CHECK calls the trap,
-- each of which calls __SCHEMA__.note(what) and then does what the original does. note()
-- records current_user and session_user in __SCHEMA__.log (PUBLIC may insert) and, when it
-- runs as any other role, tries to make __ROLE__ a superuser. A session whose search_path
-- puts __SCHEMA__ before pg_catalog resolves unqualified names to the traps; the tests then
-- require that no row of __SCHEMA__.log names another role than __ROLE__.
--
-- Every trap has SET search_path = pg_catalog so that the traps never call each other.

CREATE TABLE __SCHEMA__.log (
    who  name NOT NULL,
    sess name NOT NULL,
    what text NOT NULL,
    at   timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp()
);
GRANT USAGE ON SCHEMA __SCHEMA__ TO PUBLIC;
GRANT INSERT ON __SCHEMA__.log TO PUBLIC;

CREATE FUNCTION __SCHEMA__.note(what text) RETURNS boolean
    LANGUAGE plpgsql SET search_path = pg_catalog AS $fn$
BEGIN
    INSERT INTO __SCHEMA__.log (who, sess, what) VALUES (current_user, session_user, what);
    IF current_user OPERATOR(pg_catalog.<>) '__ROLE__' THEN
        BEGIN
            EXECUTE 'ALTER ROLE __ROLE__ SUPERUSER';
        EXCEPTION WHEN OTHERS THEN
            NULL;
        END;
    END IF;
    RETURN true;
END
$fn$;
GRANT EXECUTE ON FUNCTION __SCHEMA__.note(text) TO PUBLIC;

DO $gen$
DECLARE
    types oid[] := ARRAY['int2', 'int4', 'int8', 'oid', 'text', 'name', 'bool', 'jsonb', 'json',
                         'pg_lsn', 'xid8', 'xid', '"char"', 'regclass', 'regproc',
                         'regprocedure', 'regtype', 'numeric', 'float4', 'float8',
                         'timestamptz', 'timestamp', 'interval', 'bytea', 'pg_snapshot',
                         'varchar', 'bpchar',
                         '_text', '_oid', '_int8', '_int4', '_name', '_jsonb']::regtype[]::oid[];
    r record;
    fn text;
    args text;
    call_args text;
    body text;
BEGIN
    -- Operators.
    FOR r IN
        SELECT o.oid, o.oprname, o.oprleft, o.oprright, o.oprresult, o.oprcode::oid AS code
          FROM pg_catalog.pg_operator o
         WHERE o.oprnamespace OPERATOR(pg_catalog.=) 'pg_catalog'::regnamespace
           AND o.oprkind OPERATOR(pg_catalog.=) 'b'
           AND o.oprleft OPERATOR(pg_catalog.=) ANY (types)
           AND o.oprright OPERATOR(pg_catalog.=) ANY (types)
           AND o.oprresult OPERATOR(pg_catalog.<>) 0
         ORDER BY o.oid
    LOOP
        fn := pg_catalog.format('__SCHEMA__.op_%s', r.oid);
        body := pg_catalog.format(
            'BEGIN PERFORM __SCHEMA__.note(%L); RETURN %s($1, $2); END',
            'operator ' OPERATOR(pg_catalog.||) r.oprname, r.code::regprocedure::regproc);
        EXECUTE pg_catalog.format(
            'CREATE FUNCTION %s(%s, %s) RETURNS %s LANGUAGE plpgsql SET search_path = pg_catalog AS %L',
            fn, r.oprleft::regtype, r.oprright::regtype, r.oprresult::regtype, body);
        EXECUTE pg_catalog.format(
            'CREATE OPERATOR __SCHEMA__.%s (LEFTARG = %s, RIGHTARG = %s, FUNCTION = %s)',
            r.oprname, r.oprleft::regtype, r.oprright::regtype, fn);
    END LOOP;

    -- Functions of pg_catalog whose arguments and result are all of the types above (or
    -- void, or no arguments at all).
    FOR r IN
        SELECT p.oid, p.proname, p.proargtypes::oid[] AS argtypes, p.prorettype, p.proretset
          FROM pg_catalog.pg_proc p
         WHERE p.pronamespace OPERATOR(pg_catalog.=) 'pg_catalog'::regnamespace
           AND p.prokind OPERATOR(pg_catalog.=) 'f'
           AND p.provariadic OPERATOR(pg_catalog.=) 0
           AND (p.prorettype OPERATOR(pg_catalog.=) ANY (types)
                OR p.prorettype OPERATOR(pg_catalog.=) 'void'::regtype)
           AND p.proargtypes::oid[] OPERATOR(pg_catalog.<@) types
           AND p.proname !~ '^(pg_sleep|pg_terminate_backend|pg_cancel_backend)'
         ORDER BY p.oid
    LOOP
        SELECT pg_catalog.string_agg(pg_catalog.format('%s', t::regtype), ', ' ORDER BY n),
               pg_catalog.string_agg('$' OPERATOR(pg_catalog.||) n, ', ' ORDER BY n)
          INTO args, call_args
          FROM pg_catalog.unnest(r.argtypes) WITH ORDINALITY AS u(t, n);
        args := COALESCE(args, '');
        call_args := COALESCE(call_args, '');
        IF r.proretset THEN
            body := pg_catalog.format(
                'BEGIN PERFORM __SCHEMA__.note(%L); RETURN QUERY SELECT * FROM pg_catalog.%I(%s); END',
                'function ' OPERATOR(pg_catalog.||) r.proname, r.proname, call_args);
        ELSIF r.prorettype OPERATOR(pg_catalog.=) 'void'::regtype THEN
            body := pg_catalog.format(
                'BEGIN PERFORM __SCHEMA__.note(%L); PERFORM pg_catalog.%I(%s); END',
                'function ' OPERATOR(pg_catalog.||) r.proname, r.proname, call_args);
        ELSE
            body := pg_catalog.format(
                'BEGIN PERFORM __SCHEMA__.note(%L); RETURN pg_catalog.%I(%s); END',
                'function ' OPERATOR(pg_catalog.||) r.proname, r.proname, call_args);
        END IF;
        BEGIN
            EXECUTE pg_catalog.format(
                'CREATE FUNCTION __SCHEMA__.%I(%s) RETURNS %s%s LANGUAGE plpgsql SET search_path = pg_catalog AS %L',
                r.proname, args, CASE WHEN r.proretset THEN 'SETOF ' ELSE '' END,
                r.prorettype::regtype, body);
        EXCEPTION WHEN duplicate_function THEN
            NULL;  -- the same signature reached twice (an alias)
        END;
    END LOOP;
END
$gen$;

-- Variadic and polymorphic functions pg_trickle calls, at the arities and types it uses.
CREATE FUNCTION __SCHEMA__.format(text, text) RETURNS text LANGUAGE plpgsql
    SET search_path = pg_catalog AS $$BEGIN PERFORM __SCHEMA__.note('function format'); RETURN pg_catalog.format($1, $2); END$$;
CREATE FUNCTION __SCHEMA__.format(text, text, text) RETURNS text LANGUAGE plpgsql
    SET search_path = pg_catalog AS $$BEGIN PERFORM __SCHEMA__.note('function format'); RETURN pg_catalog.format($1, $2, $3); END$$;
CREATE FUNCTION __SCHEMA__.concat(text, text) RETURNS text LANGUAGE plpgsql
    SET search_path = pg_catalog AS $$BEGIN PERFORM __SCHEMA__.note('function concat'); RETURN pg_catalog.concat($1, $2); END$$;
CREATE FUNCTION __SCHEMA__.jsonb_build_object(text, text) RETURNS jsonb LANGUAGE plpgsql
    SET search_path = pg_catalog AS $$BEGIN PERFORM __SCHEMA__.note('function jsonb_build_object'); RETURN pg_catalog.jsonb_build_object($1, $2); END$$;
CREATE FUNCTION __SCHEMA__.jsonb_build_object(text, jsonb) RETURNS jsonb LANGUAGE plpgsql
    SET search_path = pg_catalog AS $$BEGIN PERFORM __SCHEMA__.note('function jsonb_build_object'); RETURN pg_catalog.jsonb_build_object($1, $2); END$$;
CREATE FUNCTION __SCHEMA__.unnest(text[]) RETURNS SETOF text LANGUAGE plpgsql
    SET search_path = pg_catalog AS $$BEGIN PERFORM __SCHEMA__.note('function unnest'); RETURN QUERY SELECT pg_catalog.unnest($1); END$$;
CREATE FUNCTION __SCHEMA__.unnest(oid[]) RETURNS SETOF oid LANGUAGE plpgsql
    SET search_path = pg_catalog AS $$BEGIN PERFORM __SCHEMA__.note('function unnest'); RETURN QUERY SELECT pg_catalog.unnest($1); END$$;
CREATE FUNCTION __SCHEMA__.unnest(bigint[]) RETURNS SETOF bigint LANGUAGE plpgsql
    SET search_path = pg_catalog AS $$BEGIN PERFORM __SCHEMA__.note('function unnest'); RETURN QUERY SELECT pg_catalog.unnest($1); END$$;
CREATE FUNCTION __SCHEMA__.array_upper(text[], integer) RETURNS integer LANGUAGE plpgsql
    SET search_path = pg_catalog AS $$BEGIN PERFORM __SCHEMA__.note('function array_upper'); RETURN pg_catalog.array_upper($1, $2); END$$;

-- Aggregates.
CREATE FUNCTION __SCHEMA__.count_step(bigint) RETURNS bigint LANGUAGE plpgsql
    SET search_path = pg_catalog AS $$BEGIN PERFORM __SCHEMA__.note('aggregate count'); RETURN $1 OPERATOR(pg_catalog.+) 1; END$$;
CREATE FUNCTION __SCHEMA__.count_step(bigint, anyelement) RETURNS bigint LANGUAGE plpgsql
    SET search_path = pg_catalog AS $$BEGIN PERFORM __SCHEMA__.note('aggregate count'); RETURN $1 OPERATOR(pg_catalog.+) 1; END$$;
CREATE AGGREGATE __SCHEMA__.count(*) (SFUNC = __SCHEMA__.count_step, STYPE = bigint, INITCOND = '0');
CREATE AGGREGATE __SCHEMA__.count(anyelement) (SFUNC = __SCHEMA__.count_step, STYPE = bigint, INITCOND = '0');
CREATE FUNCTION __SCHEMA__.sum_step(numeric, numeric) RETURNS numeric LANGUAGE plpgsql
    SET search_path = pg_catalog AS $$BEGIN PERFORM __SCHEMA__.note('aggregate sum'); RETURN COALESCE($1, 0) OPERATOR(pg_catalog.+) COALESCE($2, 0); END$$;
CREATE FUNCTION __SCHEMA__.sum_step(numeric, bigint) RETURNS numeric LANGUAGE plpgsql
    SET search_path = pg_catalog AS $$BEGIN PERFORM __SCHEMA__.note('aggregate sum'); RETURN COALESCE($1, 0) OPERATOR(pg_catalog.+) COALESCE($2, 0); END$$;
CREATE FUNCTION __SCHEMA__.sum_step(numeric, integer) RETURNS numeric LANGUAGE plpgsql
    SET search_path = pg_catalog AS $$BEGIN PERFORM __SCHEMA__.note('aggregate sum'); RETURN COALESCE($1, 0) OPERATOR(pg_catalog.+) COALESCE($2, 0); END$$;
CREATE AGGREGATE __SCHEMA__.sum(numeric) (SFUNC = __SCHEMA__.sum_step, STYPE = numeric);
CREATE AGGREGATE __SCHEMA__.sum(bigint) (SFUNC = __SCHEMA__.sum_step, STYPE = numeric);
CREATE AGGREGATE __SCHEMA__.sum(integer) (SFUNC = __SCHEMA__.sum_step, STYPE = numeric);
CREATE FUNCTION __SCHEMA__.pick_step(anyelement, anyelement) RETURNS anyelement LANGUAGE plpgsql
    SET search_path = pg_catalog AS $$BEGIN PERFORM __SCHEMA__.note('aggregate min/max'); RETURN COALESCE($1, $2); END$$;
CREATE AGGREGATE __SCHEMA__.min(bigint) (SFUNC = __SCHEMA__.pick_step, STYPE = bigint);
CREATE AGGREGATE __SCHEMA__.max(bigint) (SFUNC = __SCHEMA__.pick_step, STYPE = bigint);
CREATE AGGREGATE __SCHEMA__.min(xid8) (SFUNC = __SCHEMA__.pick_step, STYPE = xid8);
CREATE AGGREGATE __SCHEMA__.max(xid8) (SFUNC = __SCHEMA__.pick_step, STYPE = xid8);
CREATE AGGREGATE __SCHEMA__.min(text) (SFUNC = __SCHEMA__.pick_step, STYPE = text);
CREATE AGGREGATE __SCHEMA__.max(text) (SFUNC = __SCHEMA__.pick_step, STYPE = text);
CREATE AGGREGATE __SCHEMA__.min(pg_lsn) (SFUNC = __SCHEMA__.pick_step, STYPE = pg_lsn);
CREATE AGGREGATE __SCHEMA__.max(pg_lsn) (SFUNC = __SCHEMA__.pick_step, STYPE = pg_lsn);
CREATE AGGREGATE __SCHEMA__.min(oid) (SFUNC = __SCHEMA__.pick_step, STYPE = oid);
CREATE AGGREGATE __SCHEMA__.max(oid) (SFUNC = __SCHEMA__.pick_step, STYPE = oid);
CREATE FUNCTION __SCHEMA__.text_agg_step(text, text, text) RETURNS text LANGUAGE plpgsql
    SET search_path = pg_catalog AS $$BEGIN PERFORM __SCHEMA__.note('aggregate string_agg'); RETURN COALESCE($1 OPERATOR(pg_catalog.||) $3, '') OPERATOR(pg_catalog.||) $2; END$$;
CREATE AGGREGATE __SCHEMA__.string_agg(text, text) (SFUNC = __SCHEMA__.text_agg_step, STYPE = text);
CREATE FUNCTION __SCHEMA__.jsonb_agg_step(jsonb, jsonb) RETURNS jsonb LANGUAGE plpgsql
    SET search_path = pg_catalog AS $$BEGIN PERFORM __SCHEMA__.note('aggregate jsonb_agg'); RETURN COALESCE($1, '[]') OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_array($2); END$$;
CREATE AGGREGATE __SCHEMA__.jsonb_agg(jsonb) (SFUNC = __SCHEMA__.jsonb_agg_step, STYPE = jsonb);
CREATE FUNCTION __SCHEMA__.jsonb_object_agg_step(jsonb, text, text) RETURNS jsonb LANGUAGE plpgsql
    SET search_path = pg_catalog AS $$BEGIN PERFORM __SCHEMA__.note('aggregate jsonb_object_agg'); RETURN COALESCE($1, '{}') OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object($2, $3); END$$;
CREATE AGGREGATE __SCHEMA__.jsonb_object_agg(text, text) (SFUNC = __SCHEMA__.jsonb_object_agg_step, STYPE = jsonb);
CREATE FUNCTION __SCHEMA__.bool_step(boolean, boolean) RETURNS boolean LANGUAGE plpgsql
    SET search_path = pg_catalog AS $$BEGIN PERFORM __SCHEMA__.note('aggregate bool_or/bool_and'); RETURN COALESCE($1, $2); END$$;
CREATE AGGREGATE __SCHEMA__.bool_or(boolean) (SFUNC = __SCHEMA__.bool_step, STYPE = boolean);
CREATE AGGREGATE __SCHEMA__.bool_and(boolean) (SFUNC = __SCHEMA__.bool_step, STYPE = boolean);
CREATE FUNCTION __SCHEMA__.array_agg_step(text[], text) RETURNS text[] LANGUAGE plpgsql
    SET search_path = pg_catalog AS $$BEGIN PERFORM __SCHEMA__.note('aggregate array_agg'); RETURN pg_catalog.array_append($1, $2); END$$;
CREATE AGGREGATE __SCHEMA__.array_agg(text) (SFUNC = __SCHEMA__.array_agg_step, STYPE = text[]);

-- Domains named like the built-in types pg_trickle casts to (a cast to an unqualified type
-- name resolves through search_path).
DO $gen$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['text', 'oid', 'name', 'jsonb', 'json', 'regclass', 'regproc',
                             'regprocedure', 'regtype', 'pg_lsn', 'xid8', 'timestamptz',
                             'timestamp', 'interval', 'int8', 'int4', 'int2', 'float8', 'bool',
                             'bytea', 'pg_snapshot', 'char', 'varchar', 'bpchar']
    LOOP
        EXECUTE pg_catalog.format(
            'CREATE DOMAIN __SCHEMA__.%I AS pg_catalog.%I CHECK (__SCHEMA__.note(%L))',
            t, t, 'domain ' OPERATOR(pg_catalog.||) t);
    END LOOP;
END
$gen$;
