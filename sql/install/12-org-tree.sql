-- segment install script, part 12: the bank's org tree (docs/security.md#governance).
-- A snapshot of the warehouse's org table, loaded by register_org_tree and
-- refresh_org_tree (part 92), and the subtree of a unit. Early, because the
-- scoping of what reads by org unit (the report of part 88, governance's
-- row-level security of part 92) needs it.

-- The registered org table (one at most) and its snapshot: segment reads
-- the warehouse's org table when it is registered or refreshed
-- (refresh_org_tree), so a half-loaded warehouse table cannot open or close
-- a branch's rows in the middle of a day.
CREATE TABLE segment.org_tree (
    singleton     boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    relation      regclass NOT NULL,
    id_column     name NOT NULL,
    parent_column name NOT NULL,
    units         int NOT NULL,
    loaded_at     timestamptz NOT NULL DEFAULT now(),
    loaded_by     name NOT NULL DEFAULT current_user
);

CREATE TABLE segment.org_unit (
    unit   text PRIMARY KEY,
    parent text REFERENCES segment.org_unit DEFERRABLE INITIALLY DEFERRED,
    depth  int NOT NULL,          -- 0: a root (head office)
    CHECK (parent IS DISTINCT FROM unit)
);
CREATE INDEX ON segment.org_unit (parent);

SELECT pg_catalog.pg_extension_config_dump('segment.org_tree', '');
SELECT pg_catalog.pg_extension_config_dump('segment.org_unit', '');

-- The units of a unit's subtree (itself included), by the stored tree.
CREATE FUNCTION segment.org_subtree(org_unit text) RETURNS SETOF text
LANGUAGE sql STABLE AS $$
    WITH RECURSIVE t(u) AS (
        SELECT o.unit FROM segment.org_unit o WHERE o.unit = org_subtree.org_unit
        UNION
        SELECT o.unit FROM segment.org_unit o JOIN t ON o.parent = t.u)
    SELECT u FROM t
$$;
COMMENT ON FUNCTION segment.org_subtree(text) IS 'the org unit and every unit below it';
