-- segment upgrade 0.1.0 -> 0.2.0 (assembled by the Makefile from
-- sql/upgrade/0.1.0--0.2.0/*.sql in name order). Every change of the SQL API
-- since 0.1.0 lands here as well as in sql/install/; test/shell/upgrade.sh
-- proves that an updated 0.1.0 equals a fresh 0.2.0 install.
\echo Use "ALTER EXTENSION segment UPDATE" to load this file. \quit
