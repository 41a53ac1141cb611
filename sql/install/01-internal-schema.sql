-- segment install script, part 01: the internal schema (docs/architecture.md#schemas).
-- The API lives in schema segment (the extension's schema); the helpers the
-- API calls (functions named _NAME, trigger and event trigger functions, the
-- view _opportunity_facts) live in segment_internal, out of the user's way:
-- no USAGE for PUBLIC, and segment.grant_role (part 95) gives each kind of
-- user USAGE and EXECUTE on just the helpers its functions call. Tables and
-- types stay in segment: users read them (docs/reference.md).
CREATE SCHEMA segment_internal;
COMMENT ON SCHEMA segment_internal IS
    'internal helpers of extension segment: not an API, may change in any release';
