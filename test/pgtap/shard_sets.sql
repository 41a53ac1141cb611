-- segment.shard_member_sets, the aggregate a refresh of a Citus subject runs
-- on the shards (the Citus side is test/shell/citus.sh): its sets equal
-- memberset_agg over the rows whose (rule) IS TRUE, serially and combined
-- from parallel workers; bad input is refused with a clear SQLSTATE.
begin;
create extension if not exists segment;
set local search_path = public, segment;
select plan(18);

create table ss (id int8, a int, b numeric, t text);
insert into ss
select n, case when n % 7 = 0 then null else n % 100 end,
       case when n % 11 = 0 then null else (n * 7919) % 10000 / 100.0 end,
       case n % 5 when 0 then null when 1 then 'x' else 'y' || n % 3 end
  from generate_series(1, 60000) n;
insert into ss values (null, 1, 1, 'x'), (null, null, null, null);   -- rows without a key
analyze ss;

create temp table r as
select segment.shard_member_sets(id, array[(a > 50) is true, (b < 20 or t = 'x') is true, (t is null) is true, false]) s
  from ss;
select is(segment.shard_member_sets_get(s, 0), (select segment.memberset_agg(id) from ss), 'set 0 holds every non-NULL key') from r;
select is(segment.shard_member_sets_get(s, 1), (select segment.memberset_agg(id) filter (where (a > 50) is true) from ss),
          'flag 1 equals (a > 50) IS TRUE (NULLs are not members)') from r;
select is(segment.shard_member_sets_get(s, 2), (select segment.memberset_agg(id) filter (where (b < 20 or t = 'x') is true) from ss),
          'flag 2 equals (b < 20 or t = ''x'') IS TRUE') from r;
select is(segment.shard_member_sets_get(s, 3), (select segment.memberset_agg(id) filter (where t is null and id is not null) from ss),
          'flag 3 equals (t is null) IS TRUE, rows without a key excluded') from r;
select is(segment.cardinality(segment.shard_member_sets_get(s, 4)), 0::bigint, 'a flag never true is an empty set') from r;

-- partial aggregates in parallel workers, combined by the leader
set local parallel_setup_cost = 0;
set local parallel_tuple_cost = 0;
set local min_parallel_table_scan_size = 0;
set local max_parallel_workers_per_gather = 2;
create function pg_temp.plan(q text) returns text language plpgsql as $$
declare l text; t text := '';
begin
    for l in execute 'explain ' || q loop t := t || l || E'\n'; end loop;
    return t;
end $$;
select matches(pg_temp.plan($$select segment.shard_member_sets(id, array[(a > 50) is true, (t is null) is true]) from ss$$),
               'Partial Aggregate', 'with parallel workers the aggregate runs in parts');
create temp table rp as
select segment.shard_member_sets(id, array[(a > 50) is true, (t is null) is true]) s from ss;
select is(segment.shard_member_sets_get(s, 1), (select segment.shard_member_sets_get(s, 1) from r), 'combined parts give flag 1 unchanged') from rp;
select is(segment.shard_member_sets_get(s, 2), (select segment.shard_member_sets_get(s, 3) from r), 'and flag 2') from rp;
select is(segment.shard_member_sets_get(s, 0), (select segment.shard_member_sets_get(s, 0) from r), 'and every key') from rp;
reset parallel_setup_cost;
reset parallel_tuple_cost;
reset min_parallel_table_scan_size;
reset max_parallel_workers_per_gather;

select is((select segment.shard_member_sets(id, array[true]) from ss where false), null, 'no rows: NULL');

-- bad input
select throws_ok($$select segment.shard_member_sets(k, array[true]) from (values (1::int8), (2), (1)) v(k)$$,
                 '23505', 'key 1 appears in more than one row', 'a key in two rows');
select throws_ok($$select segment.shard_member_sets(-1, array[true])$$, '22003', null, 'a key outside the member ids');
select throws_ok($$select segment.shard_member_sets(1, null)$$, '22004', null, 'NULL flags');
select throws_ok($$select segment.shard_member_sets(1, array[true, null])$$, '22004', null, 'a NULL flag');
select throws_ok($$select segment.shard_member_sets(k, case k when 1 then array[true] else array[true, false] end)
                     from (values (1::int8), (2)) v(k)$$, '2202E', null, 'rows with different numbers of flags');
select throws_ok($$select segment.shard_member_sets_step(null, 1, array[true])$$, '0A000', null,
                 'the transition function outside the aggregate');
select throws_ok($$select segment.shard_member_sets_get('\x00'::bytea, 0)$$, '22P03', null, 'a state that is not one');
select throws_ok($$select segment.shard_member_sets_get(s, 5) from r$$, '2202E', null, 'a flag past the last');

select * from finish();
rollback;
