-- segment install script (assembled by the Makefile from sql/install/*.sql in name order).
\echo Use "CREATE EXTENSION segment" to load this file. \quit
