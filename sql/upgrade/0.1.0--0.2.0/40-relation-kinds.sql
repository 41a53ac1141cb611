-- 0.2.0: subjects over partitioned tables, views, materialized views, foreign
-- tables and Citus tables (read through SQL). The new bodies of register_subject,
-- enable_live and attach_event_rule are in 90-merged-bodies.sql.

CREATE FUNCTION segment_internal._relation_kind(relation regclass) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    k "char";
    citus boolean := false;
BEGIN
    SELECT c.relkind INTO k FROM pg_catalog.pg_class c WHERE c.oid = relation;
    IF k IN ('r', 'm', 'p', 'f') AND pg_catalog.to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL THEN
        EXECUTE 'SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition WHERE logicalrelid = $1)'
           INTO citus USING relation;
    END IF;
    RETURN CASE WHEN citus THEN 'citus'
                WHEN k = 'r' THEN 'table' WHEN k = 'm' THEN 'matview' WHEN k = 'p' THEN 'partitioned'
                WHEN k = 'v' THEN 'view' WHEN k = 'f' THEN 'foreign' END;
END $$;
COMMENT ON FUNCTION segment_internal._relation_kind(regclass) IS
    'how segment reads a relation: table, matview, partitioned, view, foreign, citus; NULL when it cannot';


