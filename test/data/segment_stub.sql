-- segment_stub.sql: a stand-in for three functions of the segment API, used
-- ONLY by test/data/check_rules.sh to check that the rule files (tags.sql,
-- bench_tags.sql) are valid SQL over dw.customer_wide, without the extension.
-- It records the definitions in stub.tag; check_rules.sh then evaluates each
-- rule with plain SQL. Never load it into a database that has the extension.

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_extension WHERE extname = 'segment') THEN
        RAISE EXCEPTION 'segment_stub.sql: the segment extension is installed here; refusing to shadow it';
    END IF;
END $$;

CREATE SCHEMA IF NOT EXISTS segment;
CREATE SCHEMA IF NOT EXISTS stub;

CREATE TABLE IF NOT EXISTS segment.subject (name name PRIMARY KEY, relation regclass, key_column name,
                                            org_column name, owner_column name);
CREATE TABLE IF NOT EXISTS stub.tag (tag_id serial PRIMARY KEY, subject name, tag name UNIQUE,
                                     rule text, category text, description text);

CREATE OR REPLACE FUNCTION segment.register_subject(subject name, relation regclass, key_column name,
                                                   org_column name DEFAULT NULL, owner_column name DEFAULT NULL)
RETURNS int LANGUAGE sql AS
$$ INSERT INTO segment.subject VALUES (subject, relation, key_column, org_column, owner_column) RETURNING 1 $$;

CREATE OR REPLACE FUNCTION segment.create_tag(subject name, tag name, rule text,
                                              category text DEFAULT NULL, description text DEFAULT NULL)
RETURNS int LANGUAGE sql AS
$$ INSERT INTO stub.tag (subject, tag, rule, category, description)
   VALUES (subject, tag, rule, category, description) RETURNING tag_id $$;

-- as the API says: the GUC segment.as_of when set, else current_date
CREATE OR REPLACE FUNCTION segment.as_of() RETURNS date LANGUAGE sql STABLE AS
$$ SELECT coalesce(nullif(current_setting('segment.as_of', true), '')::date, current_date) $$;
