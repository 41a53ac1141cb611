-- segment_stub.sql: a slow plain-SQL stand-in for part of the segment API.
-- Test aid only, for when the extension is not built:
--   * test/data/check_rules.sh uses register_subject, create_tag and as_of to
--     check that the rule files are valid SQL over dw.customer_wide;
--   * dry runs of test/demo.sh and test/bench.sh use the rest
--     (SEGMENT_STUB=test/data/segment_stub.sql) to test their plumbing.
-- Member sets are int8 arrays, refresh runs one query per tag, audiences are
-- rewritten into SQL. Nothing here is a model for the extension. It refuses to
-- load where the extension is installed.

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_extension WHERE extname = 'segment') THEN
        RAISE EXCEPTION 'segment_stub.sql: the segment extension is installed here; refusing to shadow it';
    END IF;
END $$;

CREATE SCHEMA IF NOT EXISTS segment;

CREATE TABLE IF NOT EXISTS segment.subject (
    subject_id serial PRIMARY KEY, name name UNIQUE NOT NULL, relation regclass NOT NULL,
    key_column name NOT NULL, org_column name, owner_column name);
CREATE TABLE IF NOT EXISTS segment.tag (
    tag_id serial PRIMARY KEY, subject_id int NOT NULL REFERENCES segment.subject ON DELETE CASCADE,
    name name UNIQUE NOT NULL, rule text, category text, description text,
    active boolean NOT NULL DEFAULT true);
CREATE TABLE IF NOT EXISTS segment.tag_state (
    tag_id int PRIMARY KEY REFERENCES segment.tag ON DELETE CASCADE, members int8[] NOT NULL,
    member_count bigint NOT NULL);
CREATE TABLE IF NOT EXISTS segment.run (
    run_id bigserial PRIMARY KEY, subject_id int NOT NULL REFERENCES segment.subject ON DELETE CASCADE,
    as_of date NOT NULL, started_at timestamptz NOT NULL, finished_at timestamptz,
    rows_scanned bigint, tags int, error text, run_by name NOT NULL DEFAULT current_user);

CREATE OR REPLACE FUNCTION segment.register_subject(subject name, relation regclass, key_column name,
                                                   org_column name DEFAULT NULL, owner_column name DEFAULT NULL)
RETURNS int LANGUAGE sql AS
$$ INSERT INTO segment.subject (name, relation, key_column, org_column, owner_column)
   VALUES (subject, relation, key_column, org_column, owner_column) RETURNING subject_id $$;

CREATE OR REPLACE FUNCTION segment.unregister_subject(subject name) RETURNS void LANGUAGE sql AS
$$ DELETE FROM segment.subject x WHERE x.name = $1 $$;

CREATE OR REPLACE FUNCTION segment.create_tag(subject name, tag name, rule text,
                                              category text DEFAULT NULL, description text DEFAULT NULL)
RETURNS int LANGUAGE sql AS
$$ INSERT INTO segment.tag (subject_id, name, rule, category, description)
   SELECT x.subject_id, $2, $3, $4, $5 FROM segment.subject x WHERE x.name = $1
   RETURNING tag_id $$;

CREATE OR REPLACE FUNCTION segment.drop_tag(tag name) RETURNS void LANGUAGE sql AS
$$ DELETE FROM segment.tag x WHERE x.name = $1 $$;

-- as the API says: the GUC segment.as_of when set, else current_date
CREATE OR REPLACE FUNCTION segment.as_of() RETURNS date LANGUAGE sql STABLE AS
$$ SELECT coalesce(nullif(current_setting('segment.as_of', true), '')::date, current_date) $$;

-- (the input is named subj here: PL/pgSQL cannot name an input and an output alike)
CREATE OR REPLACE FUNCTION segment.refresh(subj name DEFAULT NULL, as_of date DEFAULT current_date)
RETURNS TABLE (subject name, tag name, members bigint, entered bigint, exited bigint)
LANGUAGE plpgsql AS
$fn$
DECLARE
    s record; t record; m int8[]; old int8[]; rid bigint; nrows bigint; ntags int;
BEGIN
    PERFORM set_config('segment.as_of', refresh.as_of::text, true);
    FOR s IN SELECT * FROM segment.subject x WHERE subj IS NULL OR x.name = subj LOOP
        INSERT INTO segment.run (subject_id, as_of, started_at) VALUES (s.subject_id, refresh.as_of, clock_timestamp())
        RETURNING run_id INTO rid;
        ntags := 0;
        FOR t IN SELECT * FROM segment.tag x WHERE x.subject_id = s.subject_id AND x.active AND x.rule IS NOT NULL
                 ORDER BY x.tag_id LOOP
            EXECUTE format('SELECT coalesce(array_agg(%I ORDER BY %I), ''{}'') FROM %s WHERE (%s) IS TRUE',
                           s.key_column, s.key_column, s.relation, t.rule) INTO m;
            SELECT x.members INTO old FROM segment.tag_state x WHERE x.tag_id = t.tag_id;
            INSERT INTO segment.tag_state VALUES (t.tag_id, m, cardinality(m))
            ON CONFLICT (tag_id) DO UPDATE SET members = excluded.members, member_count = excluded.member_count;
            subject := s.name; tag := t.name; members := cardinality(m);
            entered := (SELECT count(*) FROM (SELECT unnest(m) EXCEPT SELECT unnest(coalesce(old, '{}'))) e);
            exited := (SELECT count(*) FROM (SELECT unnest(coalesce(old, '{}')) EXCEPT SELECT unnest(m)) e);
            ntags := ntags + 1;
            RETURN NEXT;
        END LOOP;
        EXECUTE format('SELECT count(*) FROM %s', s.relation) INTO nrows;
        UPDATE segment.run SET finished_at = clock_timestamp(), rows_scanned = nrows, tags = ntags
         WHERE run_id = rid;
    END LOOP;
    PERFORM set_config('segment.as_of', '', true);
END
$fn$;

-- audience -> SQL over the stored member arrays
CREATE OR REPLACE FUNCTION segment.stub_audience_sql(subject name, audience text) RETURNS text
LANGUAGE plpgsql STABLE AS
$fn$
DECLARE
    out text := ''; tok text; tid int;
BEGIN
    FOR tok IN SELECT (regexp_matches(audience, '[A-Za-z_][A-Za-z0-9_.]*|[()]', 'g'))[1] LOOP
        IF lower(tok) IN ('and', 'or', 'not', '(', ')') THEN
            out := out || ' ' || tok;
        ELSE
            SELECT t.tag_id INTO tid FROM segment.tag t JOIN segment.subject s USING (subject_id)
             WHERE t.name = tok AND s.name = subject;
            IF tid IS NULL THEN
                RAISE EXCEPTION 'unknown tag "%"', tok USING ERRCODE = 'undefined_object';
            END IF;
            out := out || format(' k IN (SELECT unnest(members) FROM segment.tag_state WHERE tag_id = %s)', tid);
        END IF;
    END LOOP;
    RETURN out;
END
$fn$;

CREATE OR REPLACE FUNCTION segment.members(subject name, audience text) RETURNS SETOF bigint
LANGUAGE plpgsql STABLE AS
$fn$
DECLARE s record;
BEGIN
    SELECT * INTO s FROM segment.subject x WHERE x.name = members.subject;
    RETURN QUERY EXECUTE format('SELECT k FROM (SELECT %I::int8 AS k FROM %s) u WHERE %s ORDER BY k',
                                s.key_column, s.relation, segment.stub_audience_sql(subject, audience));
END
$fn$;

CREATE OR REPLACE FUNCTION segment.count(subject name, audience text) RETURNS bigint
LANGUAGE sql STABLE AS
$$ SELECT count(*) FROM segment.members($1, $2) $$;

CREATE OR REPLACE FUNCTION segment.tags(subject name, key bigint) RETURNS text[]
LANGUAGE sql STABLE AS
$$ SELECT coalesce(array_agg(t.name::text ORDER BY t.name), '{}')
     FROM segment.tag t JOIN segment.subject s USING (subject_id)
     JOIN segment.tag_state x USING (tag_id)
    WHERE s.name = $1 AND $2 = ANY (x.members) $$;

CREATE OR REPLACE FUNCTION segment.explain(subject name, key bigint, what text) RETURNS jsonb
LANGUAGE sql STABLE AS
$$ SELECT jsonb_build_object('stub', true, 'tag', $3, 'rule', t.rule,
                             'member', segment.tags($1, $2) @> ARRAY[$3])
     FROM segment.tag t WHERE t.name = $3 $$;
