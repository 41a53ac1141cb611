-- 0.2.0: run_all pins search_path in each of its transactions (a procedure
-- cannot carry a SET clause); the SQL and PL/pgSQL functions get theirs from
-- the loop at the end of part 95, which ends this upgrade too.

-- @procedure segment.run_all
