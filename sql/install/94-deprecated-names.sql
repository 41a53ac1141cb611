-- segment install script, part 94: the 0.1.0 names of renamed API functions
-- (docs/reference.md "Deprecated names (removed in 0.3.0)"). Each is a
-- one-line wrapper with the old signature calling the new function, so that
-- 0.1.0 callers keep working for one release; the same part ends the upgrade
-- from 0.1.0 (sql/upgrade/0.1.0--0.2.0/99-deprecated-names.sql links here),
-- which renamed the 0.1.0 functions first (part 06). Names new in 0.2.0
-- (reassign, ack, record_response) were never released: they have no
-- wrapper.

CREATE FUNCTION segment.dispatch(opportunity_id bigint) RETURNS void
LANGUAGE sql AS $$ SELECT segment.opportunity_dispatch(opportunity_id) $$;
COMMENT ON FUNCTION segment.dispatch(bigint) IS
    'deprecated (removed in 0.3.0): use segment.opportunity_dispatch(bigint)';

CREATE FUNCTION segment.dispatch(opportunity_ids bigint[]) RETURNS bigint
LANGUAGE sql AS $$ SELECT segment.opportunity_dispatch(opportunity_ids) $$;
COMMENT ON FUNCTION segment.dispatch(bigint[]) IS
    'deprecated (removed in 0.3.0): use segment.opportunity_dispatch(bigint[])';

CREATE FUNCTION segment.start(opportunity_id bigint) RETURNS void
LANGUAGE sql AS $$ SELECT segment.opportunity_start(opportunity_id) $$;
COMMENT ON FUNCTION segment.start(bigint) IS
    'deprecated (removed in 0.3.0): use segment.opportunity_start(bigint)';

CREATE FUNCTION segment.complete(opportunity_id bigint, converted boolean,
                                 amount numeric DEFAULT NULL, note text DEFAULT NULL) RETURNS void
LANGUAGE sql AS $$ SELECT segment.opportunity_complete(opportunity_id, converted, amount, note) $$;
COMMENT ON FUNCTION segment.complete(bigint, boolean, numeric, text) IS
    'deprecated (removed in 0.3.0): use segment.opportunity_complete(bigint, boolean, numeric, text)';

CREATE FUNCTION segment.cancel(opportunity_id bigint, reason text) RETURNS void
LANGUAGE sql AS $$ SELECT segment.opportunity_cancel(opportunity_id, reason) $$;
COMMENT ON FUNCTION segment.cancel(bigint, text) IS
    'deprecated (removed in 0.3.0): use segment.opportunity_cancel(bigint, text)';

CREATE FUNCTION segment.expire(as_of date DEFAULT current_date) RETURNS bigint
LANGUAGE sql AS $$ SELECT segment.expire_opportunities(as_of) $$;
COMMENT ON FUNCTION segment.expire(date) IS
    'deprecated (removed in 0.3.0): use segment.expire_opportunities(date)';

CREATE FUNCTION segment.fire_on_entry(rule name, audience text) RETURNS void
LANGUAGE sql AS $$ SELECT segment.attach_entry_rule(rule, audience) $$;
COMMENT ON FUNCTION segment.fire_on_entry(name, text) IS
    'deprecated (removed in 0.3.0): use segment.attach_entry_rule(name, text)';

CREATE FUNCTION segment.stop_fire_on_entry(rule name, audience text) RETURNS void
LANGUAGE sql AS $$ SELECT segment.detach_entry_rule(rule, audience) $$;
COMMENT ON FUNCTION segment.stop_fire_on_entry(name, text) IS
    'deprecated (removed in 0.3.0): use segment.detach_entry_rule(name, text)';
