-- segment install script, part 60: refresh and explain (the C entry points).
-- The DDL guard that keeps subject tables and the rules over them consistent is part 91.

CREATE FUNCTION segment.refresh(subject name DEFAULT NULL, as_of date DEFAULT current_date)
RETURNS TABLE (subject name, tag name, members bigint, entered bigint, exited bigint)
    AS 'MODULE_PATHNAME', 'segment_refresh' LANGUAGE C VOLATILE CALLED ON NULL INPUT;

CREATE FUNCTION segment.explain(subject name, key text, what text) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'segment_explain' LANGUAGE C STABLE STRICT;
CREATE FUNCTION segment.explain(subject name, key bigint, what text) RETURNS jsonb
    LANGUAGE sql STABLE STRICT AS $$ SELECT segment.explain(subject, key::text, what) $$;
