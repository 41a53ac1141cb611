-- Live overlay rows and a refresh for a new date (docs/live.md#dates): a
-- live writer takes its share of the subject's live lock (class 24178) and
-- evaluates at the date of the state as committed now; a refresh that moves
-- the date excludes live writers from its snapshot to its commit (C).

CREATE FUNCTION segment._live_writer_as_of(sid int) RETURNS date
    AS 'MODULE_PATHNAME', 'segment_live_writer_as_of' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION segment._live_writer_as_of(int) IS
    'internal: take a live writer''s share of the subject''s live lock; the date of its state as committed now';
REVOKE EXECUTE ON FUNCTION segment._live_writer_as_of(int) FROM PUBLIC;

CREATE OR REPLACE FUNCTION segment._live_key_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    sid int := TG_ARGV[0]::int;
    old_key int8 := (to_jsonb(OLD) ->> TG_ARGV[1])::int8;
    d date;
BEGIN
    IF old_key BETWEEN 0 AND 4294967295 THEN
        d := segment._live_writer_as_of(sid);
        IF d IS NOT NULL THEN
            INSERT INTO segment.live_member AS l (subject_id, member_id, deleted, tags, buckets, scores, as_of, changed_at)
            VALUES (sid, old_key, true, '{}', '{}', '{}', d, now())
            ON CONFLICT (subject_id, member_id) DO UPDATE SET deleted = true, tags = '{}', buckets = '{}',
                   scores = '{}', as_of = excluded.as_of, changed_at = excluded.changed_at;
        END IF;
    END IF;
    RETURN NULL;
END $$;
