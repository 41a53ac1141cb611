-- Audiences read through the backend-local cache of member sets (issue 15,
-- src/memberset_cache.c, src/state_read.c, the evaluation in src/audience.c).
--
-- Differential: 300 random audiences over five rule tags, a manual tag and
-- two segments (repeated names, not, nested parentheses, segments that use
-- names the audience also uses directly), each compared with plain SQL's
-- (rule) IS TRUE on the same rows, count and members, three times: the first
-- read (sets loaded into the cache), the second (from the cache: a set read
-- by several steps of one audience must not be changed by any of them), and
-- with segment.audience_cache_size = 0 (the catalog query path's sets).
-- Then, in this transaction: a refresh after a change, a refresh in a
-- savepoint rolled back, a manual tag set and unset, an expired manual
-- member, a tag deactivated: each read equals plain SQL at that moment
-- although the sets read before are in the cache. Cross-session
-- invalidation and ROLLBACK of a whole transaction: test/shell/audience-cache.sh.

\ir ../fixtures/pgtap.psql
do $$ begin perform setseed(0.315); end $$;

select plan(300 * 3 + 12);

create schema ac;
create table ac.t (id int8 primary key, a int, b int, c boolean);
insert into ac.t
select g,
       case when random() < 0.1 then null else floor(random() * 100)::int end,
       case when random() < 0.1 then null else floor(random() * 100)::int end,
       case when random() < 0.2 then null else random() < 0.5 end
  from generate_series(1, 20000) g;
select segment.register_subject('ac', 'ac.t', 'id');

create table ac.rules (name name, rule text);
insert into ac.rules values
  ('ac_t1', 'a < 30'), ('ac_t2', 'b >= 50'), ('ac_t3', 'c'),
  ('ac_t4', 'a + b > 120'), ('ac_t5', 'a % 7 = 0 or b is null');
select count(segment.create_tag('ac', name, rule)) from ac.rules;
select segment.create_tag('ac', 'ac_m', null);
select count(segment.set_tag('ac', id::text, 'ac_m')) from ac.t where id % 13 = 0;
select segment.create_segment('ac', 'ac_s1', 'ac_t1 or ac_t2');
select segment.create_segment('ac', 'ac_s2', 'not ac_t3 and ac_s1 or ac_m');
select count(*) from segment.refresh('ac');

-- the SQL meaning of each name, over a row aliased r
create function ac.name_sql(n text) returns text language sql as $$
    select case n
        when 'ac_m' then '(r.id in (select member_id from segment.manual_tag m join segment.tag g using (tag_id)'
                         ' where g.name = ''ac_m'' and (m.expires_at is null or m.expires_at > now())))'
        when 'ac_s1' then '(' || ac.name_sql('ac_t1') || ' or ' || ac.name_sql('ac_t2') || ')'
        when 'ac_s2' then '((not ' || ac.name_sql('ac_t3') || ' and ' || ac.name_sql('ac_s1') || ') or '
                          || ac.name_sql('ac_m') || ')'
        else (select '((' || rule || ') is true)' from ac.rules where name = n)
    end
$$;

-- a random audience of depth d: (audience text, SQL condition)
create function ac.gen(d int, out aud text, out cond text) language plpgsql as $$
declare
    names text[] := array['ac_t1', 'ac_t2', 'ac_t3', 'ac_t4', 'ac_t5', 'ac_m', 'ac_s1', 'ac_s2'];
    l record;
    r record;
    k float8 := random();
    n text;
begin
    if d = 0 or k < 0.25 then
        n := names[1 + floor(random() * array_length(names, 1))::int];
        aud := n;
        cond := ac.name_sql(n);
        return;
    end if;
    l := ac.gen(d - 1);
    if k < 0.4 then
        aud := 'not ' || case when l.aud ~ ' ' then '(' || l.aud || ')' else l.aud end;
        cond := '(not ' || l.cond || ')';
        return;
    end if;
    r := ac.gen(d - 1);
    if k < 0.7 then
        aud := '(' || l.aud || ') and (' || r.aud || ')';
        cond := '(' || l.cond || ' and ' || r.cond || ')';
    else
        aud := '(' || l.aud || ') or (' || r.aud || ')';
        cond := '(' || l.cond || ' or ' || r.cond || ')';
    end if;
end $$;

create table ac.cases as
select i, g.aud, g.cond from generate_series(1, 300) i, lateral ac.gen(1 + i % 4) g;

create function ac.sql_members(cond text) returns int8[] language plpgsql as $$
declare
    m int8[];
begin
    execute 'select coalesce(array_agg(r.id order by r.id), ''{}'') from ac.t r where ' || cond into m;
    return m;
end $$;

create function ac.seg_members(aud text) returns int8[] language sql as $$
    select coalesce(array_agg(m order by m), '{}') from segment.members('ac', aud) m
$$;

create function ac.check(label text) returns setof text language plpgsql as $$
declare
    c record;
    want int8[];
    bad text := null;
    nbad int := 0;
begin
    for c in select * from ac.cases order by i loop
        want := ac.sql_members(c.cond);
        if segment.count('ac', c.aud) <> cardinality(want) or ac.seg_members(c.aud) <> want then
            nbad := nbad + 1;
            bad := coalesce(bad, c.aud);
        end if;
        return next ok(segment.count('ac', c.aud) = cardinality(want) and ac.seg_members(c.aud) = want,
                       format('%s: %s (%s members)', label, c.aud, cardinality(want)));
    end loop;
end $$;

select ac.check('first read');
select ac.check('from the cache');
set local segment.audience_cache_size = 0;
select ac.check('cache off');
reset segment.audience_cache_size;

-- changes in this transaction, with the sets read so far in the cache
create function ac.same(aud text, label text) returns text language sql as $$
    select is(ac.seg_members(aud),
              ac.sql_members(case aud
                  when 'ac_t1 and not ac_t3' then '(' || ac.name_sql('ac_t1') || ' and not ' || ac.name_sql('ac_t3') || ')'
                  else '(' || ac.name_sql('ac_m') || ' or ' || ac.name_sql('ac_t4') || ')' end),
              label || ': ' || aud)
$$;

select cmp_ok((select hits from segment_internal._audience_cache_stats()), '>', 0::bigint,
              'the reads above were answered from the cache');
select ac.same('ac_t1 and not ac_t3', 'before any change');
update ac.t set a = 0 where id % 3 = 0;
select count(*) from segment.refresh('ac');
select ac.same('ac_t1 and not ac_t3', 'after a refresh in this transaction');
savepoint s;
update ac.t set c = not c where id % 2 = 0;
select count(*) from segment.refresh('ac');
select ac.same('ac_t1 and not ac_t3', 'after a refresh in a savepoint');
rollback to savepoint s;
select ac.same('ac_t1 and not ac_t3', 'after rolling the savepoint back');
select ac.same('ac_m or ac_t4', 'manual and rule tags');
select segment.set_tag('ac', '2', 'ac_m');
select ac.same('ac_m or ac_t4', 'after set_tag');
select segment.set_tag('ac', '13', 'ac_m', false);
select ac.same('ac_m or ac_t4', 'after set_tag off');
update segment.manual_tag set expires_at = now() - interval '1 day' where member_id = 26;
select ac.same('ac_m or ac_t4', 'after a manual member expired');
select segment.alter_tag('ac_t4', active => false);
select throws_ok($$select segment.count('ac', 'ac_m or ac_t4')$$, '55000', 'tag "ac_t4" is inactive',
                 'an inactive tag is refused although its set is in the cache');
select segment.alter_tag('ac_t4', active => true);
select ac.same('ac_m or ac_t4', 'after reactivation');
select throws_ok($$select segment.count('ac', 'ac_t1 and no_such_tag')$$, '42704', 'unknown name "no_such_tag" in audience',
                 'an unknown name still fails (through the catalog query)');

select * from finish();
rollback;
