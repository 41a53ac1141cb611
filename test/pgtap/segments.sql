-- Named segments, behaviour: a segment's members are those of its audience
-- written out (also nested, and used twice in one audience); cycles and
-- dangling references are refused at definition time; drop_tag and
-- drop_segment refuse while segments use the name, or cascade; overlap
-- equals SQL intersections of member lists; scheme buckets and scorecard
-- bands read the state tables; every failed call leaves the catalog as it
-- was. Data: generated, with NULLs; tags refreshed for real.

\ir ../fixtures/pgtap.psql

select plan(65);

create schema sg;
create table sg.c (
    id     int8 primary key,
    aum    numeric,
    branch int,
    logins int,
    age    int
);
insert into sg.c
select n,
       case when n % 17 = 0 then null else (n * 7919) % 1000000 end,
       case when n % 23 = 0 then null else n % 5 end,
       case when n % 10 = 0 then null else n % 13 end,
       18 + n % 70
  from generate_series(1, 3000) n;
create table sg.other (k text primary key, v int);
insert into sg.other values ('a', 1), ('b', 2);

-- SQL truth for each tag
create function sg.pred(tag text) returns text language sql immutable as $$
    select case tag
        when 'sg_rich'   then 'aum >= 500000'
        when 'sg_north'  then 'branch = 1'
        when 'sg_south'  then 'branch = 2'
        when 'sg_idle'   then 'logins = 0 or logins is null'
        when 'sg_young'  then 'age < 30'
        when 'sg_senior' then 'age >= 60' end
$$;

do $$ declare t text; begin
    perform segment.register_subject('sg', 'sg.c', 'id');
    perform segment.register_subject('sg_other', 'sg.other', 'k');
    foreach t in array array['sg_rich', 'sg_north', 'sg_south', 'sg_idle', 'sg_young', 'sg_senior'] loop
        perform segment.create_tag('sg', t, sg.pred(t));
    end loop;
    perform segment.create_tag('sg', 'sg_star', null);
    perform segment.set_tag('sg', k, 'sg_star') from generate_series(5, 3000, 97) k;
    perform segment.create_tag('sg_other', 'sg_other_tag', 'v > 1');
    perform segment.create_segment('sg_other', 'sg_other_seg', 'sg_other_tag');
    perform segment.refresh(null, '2026-11-22');
end $$;

-- Everything definitions and reading depend on; a failed call must not change it.
create function sg.snapshot() returns text language sql as $$
    select md5(string_agg(x, E'\n' order by x)) from (
        select 'segment ' || row(g.*)::text from segment.segment g
        union all select 'dhist ' || row(h.*)::text from segment.definition_history h
        union all select 'tag ' || row(t.*)::text from segment.tag t
        union all select 'thist ' || row(h.*)::text from segment.tag_history h
        union all select 'tag_state ' || row(s.*)::text from segment.tag_state s
        union all select 'manual ' || row(m.*)::text from segment.manual_tag m
        union all select 'scheme ' || row(c.*)::text from segment.scheme c
        union all select 'scorecard ' || row(c.*)::text from segment.scorecard c
    ) z(x)
$$;

-- Run sql, which must fail; returns 'SQLSTATE: message' and checks that
-- the catalog is unchanged ('CHANGED' appended otherwise).
create function sg.fails(sql text) returns text language plpgsql as $$
declare
    before text := sg.snapshot();
    st text; msg text;
begin
    begin
        execute sql;
        return 'no error';
    exception when others then
        get stacked diagnostics st = returned_sqlstate, msg = message_text;
    end;
    return st || ': ' || msg || case when sg.snapshot() is distinct from before then ' CHANGED' else '' end;
end $$;

-- The ids of an audience, and of a SQL predicate
create function sg.ids(audience text) returns int8[] language sql as $$
    select coalesce(array_agg(m order by m), '{}') from segment.members('sg', audience) m
$$;
create function sg.sql_ids(predicate text) returns int8[] language plpgsql as $$
declare r int8[];
begin
    execute format('select coalesce(array_agg(id order by id), ''{}'') from sg.c where (%s) is true', predicate)
       into r;
    return r;
end $$;

------------------------------------------------------------------------
-- Segments are their audiences
------------------------------------------------------------------------
select lives_ok($$select segment.create_segment('sg', 'sg_rich_north', 'sg_rich and sg_north')$$,
                'create a segment');
select lives_ok($$select segment.create_segment('sg', 'sg_active_rich', 'sg_rich and not sg_idle')$$,
                'create a segment with "and not"');
select lives_ok($$select segment.create_segment('sg', 'sg_target',
                    'sg_rich_north or (sg_active_rich and sg_south) or sg_star')$$,
                'create a segment over segments');
select lives_ok($$select segment.create_segment('sg', 'sg_rest', 'not sg_target')$$,
                'create a segment with "not" over a segment');
select lives_ok($$select segment.create_segment('sg', 'sg_top', 'sg_target and (sg_young or sg_senior) and not sg_rest')$$,
                'create a segment three levels deep');

select is(sg.ids('sg_rich_north'), sg.ids('sg_rich and sg_north'), 'sg_rich_north = its audience');
select is(sg.ids('sg_rich_north'), sg.sql_ids('aum >= 500000 and branch = 1'), 'sg_rich_north = SQL');
select is(sg.ids('sg_target'),
          sg.ids('(sg_rich and sg_north) or ((sg_rich and not sg_idle) and sg_south) or sg_star'),
          'sg_target = its audience written out');
select is(sg.ids('sg_rest'),
          sg.ids('not ((sg_rich and sg_north) or ((sg_rich and not sg_idle) and sg_south) or sg_star)'),
          'sg_rest = not (its audience written out)');
select is(sg.ids('sg_top'),
          sg.ids('((sg_rich and sg_north) or ((sg_rich and not sg_idle) and sg_south) or sg_star)'
                 ' and (sg_young or sg_senior)'),
          'sg_top (three levels) = written out');
select is(sg.ids('sg_top and sg_target or sg_rich_north and not sg_target'),
          sg.ids('sg_top'), 'a segment used several times in one audience');
select is(sg.ids('sg_target or sg_rest'), sg.ids('sg_rich or not sg_rich'), 'segment or its complement = universe');
select is(segment.count('sg', 'sg_target and sg_rest'), 0::bigint, 'segment and its complement = nothing');
select is(segment.count('sg', '"sg_target"'), segment.count('sg', 'sg_target'), 'quoted segment name');
select ok(segment.audience('sg', 'sg_target') operator(segment.=)
          segment.audience('sg', 'sg_rich_north or sg_active_rich and sg_south or sg_star'),
          'audience() of a segment');
select is((select array_agg(k::int8 order by k::int8) from segment.members_text('sg', 'sg_top') k),
          sg.ids('sg_top'), 'members_text of a segment');
select is((select count(*) from sg.c
            where segment.has_tag('sg', id, 'sg_target') is distinct from (id = any (sg.ids('sg_target'))))::int,
          0, 'has_tag on a segment agrees with members for every customer');
select is(segment.has_tag('sg', 99999, 'sg_target'), false, 'has_tag of an unknown key on a segment');
select is(jsonb_path_query_array(segment.explain('sg', 5, 'sg_target'), '$.tags[*].tag'),
          '["sg_rich", "sg_north", "sg_idle", "sg_south", "sg_star"]'::jsonb,
          'explain of a segment lists the tags it expands to');
select is(jsonb_path_query_array(segment.explain('sg', 5, 'sg_top'), '$.segments[*].segment'),
          '["sg_top", "sg_target", "sg_rich_north", "sg_active_rich", "sg_rest"]'::jsonb,
          'explain lists the segments met, in order of appearance');
select is((segment.explain('sg', 5, 'sg_target') -> 'value')::boolean, 5 = any (sg.ids('sg_target')),
          'explain value of a segment');

-- a segment follows its tags: after a change of a tag's members, and after alter_segment
select segment.set_tag('sg', 1, 'sg_star');
select ok(1 = any (sg.ids('sg_target')), 'a segment follows a manual tag change');
select lives_ok($$select segment.alter_segment('sg_rich_north', 'sg_rich and sg_north and not sg_young')$$,
                'alter_segment');
select is(sg.ids('sg_target'),
          sg.ids('(sg_rich and sg_north and not sg_young) or ((sg_rich and not sg_idle) and sg_south) or sg_star'),
          'segments using an altered segment follow it');

------------------------------------------------------------------------
-- Cycles, dangling references, names: refused, nothing changes
------------------------------------------------------------------------
select alike(sg.fails($$select segment.create_segment('sg', 'sg_loop', 'sg_rich or sg_loop')$$),
            '42P17: cycle in segment definitions: sg_loop -> sg_loop', 'a segment using itself');
select alike(sg.fails($$select segment.alter_segment('sg_rich_north', 'sg_target')$$),
            '42P17: cycle in segment definitions: sg_rich_north -> sg_target -> sg_rich_north',
            'a cycle of two');
select alike(sg.fails($$select segment.alter_segment('sg_rich_north', 'sg_rich and not sg_top')$$),
            '42P17: cycle in segment definitions: sg_rich_north -> sg_top -> sg_target -> sg_rich_north',
            'a cycle of three');
select alike(sg.fails($$select segment.alter_segment('sg_active_rich', 'sg_rest or sg_idle')$$),
            '42P17: %sg_active_rich -> sg_rest -> sg_target -> sg_active_rich', 'a cycle through a "not"');
select alike(sg.fails($$select segment.create_segment('sg', 'sg_x', 'sg_rich and sg_nothing')$$),
            '42704: unknown name "sg_nothing" in audience', 'dangling name');
select alike(sg.fails($$select segment.create_segment('sg', 'sg_x', 'sg_rich or sg_other_tag')$$),
            '42704: tag "sg_other_tag" belongs to subject "sg_other"%', 'a tag of another subject');
select alike(sg.fails($$select segment.create_segment('sg', 'sg_x', 'sg_other_seg')$$),
            '42704: segment "sg_other_seg" belongs to subject "sg_other"%', 'a segment of another subject');
select alike(sg.fails($$select segment.create_segment('sg', 'sg_x', 'sg_tier.gold')$$),
            '42704: unknown scheme "sg_tier"%', 'an unknown scheme');
select alike(sg.fails($$select segment.create_segment('sg', 'sg_x', 'sg_rich and (sg_north')$$),
            '42601: %', 'a syntax error');
select alike(sg.fails($$select segment.create_segment('sg', 'sg_rich', 'sg_north')$$),
            '42710: name "sg_rich" is already used by a tag', 'a segment named like a tag');
select alike(sg.fails($$select segment.create_segment('sg', 'sg_target', 'sg_north')$$),
            '42710: segment "sg_target" already exists', 'a segment named like a segment');
select alike(sg.fails($$select segment.create_tag('sg', 'sg_target', 'age > 1')$$),
            '42710: name "sg_target" is already used by a segment', 'a tag named like a segment');
insert into segment.scheme (subject_id, name) select subject_id, 'sg_tier' from segment.subject where name = 'sg';
insert into segment.scorecard (subject_id, name) select subject_id, 'sg_score' from segment.subject where name = 'sg';
select alike(sg.fails($$select segment.create_segment('sg', 'sg_tier', 'sg_north')$$),
            '42710: name "sg_tier" is already used by a scheme', 'a segment named like a scheme');
select alike(sg.fails($$select segment.create_tag('sg', 'sg_score', 'age > 1')$$),
            '42710: name "sg_score" is already used by a scorecard', 'a tag named like a scorecard');
select alike(sg.fails($$select segment.alter_segment('sg_nothing', 'sg_rich')$$),
            '42704: segment "sg_nothing" does not exist', 'alter an unknown segment');
select alike(sg.fails($$select segment.alter_segment('sg_target')$$),
            '22023: %', 'alter with nothing to change');

------------------------------------------------------------------------
-- Drop: refused while used, cascade on request
------------------------------------------------------------------------
select alike(sg.fails($$select segment.drop_tag('sg_north')$$),
            '2BP01: cannot drop tag "sg_north" because segments use it', 'drop_tag of a used tag');
select is(split_part(sg.fails($$select segment.drop_tag('sg_north')$$), ' ', 1), '2BP01:',
          'drop_tag refused');
select throws_like($$select segment.drop_tag('sg_rich')$$, 'cannot drop tag "sg_rich"%',
                   'drop_tag of a tag used by two segments');
create function sg.error_detail(sql text) returns text language plpgsql as $$
declare d text;
begin
    execute sql;
    return null;
exception when others then
    get stacked diagnostics d = pg_exception_detail;
    return d;
end $$;
select is(sg.error_detail($$select segment.drop_tag('sg_rich')$$),
          'Used by segments "sg_active_rich", "sg_rich_north".', 'the detail names the segments');
select alike(sg.fails($$select segment.drop_segment('sg_target')$$),
            '2BP01: cannot drop segment "sg_target" because segments use it', 'drop_segment of a used segment');
select alike(sg.fails($$select segment.drop_segment('sg_nothing')$$), '42704: %', 'drop an unknown segment');

-- cascade from sg_rich_north: sg_target uses it, sg_rest and sg_top use sg_target
select lives_ok($$select segment.drop_segment('sg_rich_north', cascade => true)$$, 'drop_segment cascade');
select is((select array_agg(g.name::text order by g.name) from segment.segment g
            join segment.subject s using (subject_id) where s.name = 'sg'),
          array['sg_active_rich'], 'cascade dropped the users, recursively');
select is((select array_agg(name::text order by name) from segment.definition_history where action = 'drop'),
          array['sg_rest', 'sg_rich_north', 'sg_target', 'sg_top'], 'one history row per dropped segment');
select is((select count(*) from segment.definition_history h
            where h.action = 'drop' and h.old_definition ->> 'audience' is null)::int, 0,
          'history rows keep the old audience');
select lives_ok($$select segment.drop_tag('sg_idle', cascade => true)$$, 'drop_tag cascade');
select is((select count(*) from segment.segment where name = 'sg_active_rich')::int, 0,
          'drop_tag cascade dropped its segment');
select is((select count(*) from segment.tag where name = 'sg_idle')::int, 0, 'and the tag');
select lives_ok($$select segment.drop_tag('sg_north')$$, 'an unused tag drops without cascade');

------------------------------------------------------------------------
-- Scheme buckets and scorecard bands
------------------------------------------------------------------------
insert into segment.scheme_bucket (scheme_id, position, name, rule)
select scheme_id, p, n, 'true' from segment.scheme,
       (values (1, 'gold'), (2, 'rest')) v(p, n) where name = 'sg_tier';
insert into segment.bucket_state (scheme_id, bucket, members, member_count, as_of, run_id)
select c.scheme_id, b.name, m.s, segment.cardinality(m.s), '2026-11-22', 1
  from segment.scheme c join segment.scheme_bucket b using (scheme_id),
       lateral (select segment.memberset_agg(id) as s from sg.c
                 where case when aum >= 800000 then 'gold' else 'rest' end = b.name) m
 where c.name = 'sg_tier';
insert into segment.scorecard_band (scorecard_id, name, min_score, max_score)
select scorecard_id, n, lo, hi from segment.scorecard,
       (values ('low', null, 5), ('high', 5, null)) v(n, lo, hi) where name = 'sg_score';
insert into segment.score_state (scorecard_id, score, members, member_count, as_of, run_id)
select c.scorecard_id, s.l, s.m, segment.cardinality(s.m), '2026-11-22', 1
  from segment.scorecard c,
       (select logins as l, segment.memberset_agg(id) as m from sg.c where logins is not null group by logins) s
 where c.name = 'sg_score';
select is(sg.ids('sg_tier.gold'), sg.sql_ids('aum >= 800000'), 'a bucket = its bucket_state set');
select is(sg.ids('sg_tier.rest and sg_score.high'), sg.sql_ids('coalesce(aum < 800000, true) and logins >= 5'),
          'bucket and band');
select is(sg.ids('not sg_score.low'), sg.sql_ids('coalesce(logins >= 5, true)'),
          'not band: the universe minus the band');
select lives_ok($$select segment.create_segment('sg', 'sg_gold_young', 'sg_tier.gold and sg_young')$$,
                'a segment over a bucket');
select is(sg.ids('sg_gold_young'), sg.sql_ids('aum >= 800000 and age < 30'), 'its members');
select alike(sg.fails($$select segment.create_segment('sg', 'sg_x', 'sg_tier.platinum')$$),
            '42704: scheme "sg_tier" has no bucket "platinum"', 'an unknown bucket');
select alike(sg.fails($$select segment.create_segment('sg', 'sg_x', 'sg_score.mid')$$),
            '42704: scorecard "sg_score" has no band "mid"', 'an unknown band');

------------------------------------------------------------------------
-- overlap
------------------------------------------------------------------------
create temp table aud as
select a, i from unnest(array['sg_rich', 'sg_young or sg_star', 'sg_gold_young', 'sg_tier.rest',
                              'sg_score.high and not sg_rich', 'sg_rich and not sg_rich']) with ordinality u(a, i);
create temp table mem as select a, m from aud, segment.members('sg', a) m;
select is((select count(*) from segment.overlap('sg', (select array_agg(a order by i) from aud)))::int, 15,
          'overlap of 6 audiences: 15 pairs');
select is((select count(*) from (
              select o.*, x.i as xi, y.i as yi,
                     (select count(*) from mem where mem.a = o.a) as na,
                     (select count(*) from mem where mem.a = o.b) as nb,
                     (select count(*) from mem p join mem q using (m) where p.a = o.a and q.a = o.b) as nboth,
                     (select count(distinct m) from mem where mem.a in (o.a, o.b)) as neither
                from segment.overlap('sg', (select array_agg(a order by i) from aud)) o
                join aud x on x.a = o.a join aud y on y.a = o.b) r
            where r.xi < r.yi and r.a_members = r.na and r.b_members = r.nb and r.both_members = r.nboth
              and r.jaccard is not distinct from (case when r.neither = 0 then null
                                                       else r.nboth::float8 / r.neither end))::int,
          15, 'overlap = SQL intersections and unions of the member lists, pairs in array order');
select ok((select bool_and(jaccard is null) from segment.overlap('sg', array['sg_rich and not sg_rich', 'sg_young and not sg_young'])),
          'jaccard of two empty audiences is NULL');
select alike(sg.fails($$select * from segment.overlap('sg', array['sg_rich', 'sg_unknown'])$$),
            '42704: unknown name "sg_unknown" in audience', 'overlap with an unknown name');

select * from finish();
rollback;
