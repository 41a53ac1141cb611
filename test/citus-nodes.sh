# test/citus-nodes.sh: start and stop throwaway PostgreSQL 15 instances on
# 127.0.0.1, some with citus preloaded. Sourced (not run) by
# test/shell/citus.sh and test/bench_citus.sh.
#
#   nodes_init NAME:citus|plain ...   initdb + start one instance per name, in
#                                     $work (set by the caller), ports from a
#                                     random base; extra postgresql.conf lines
#                                     come from $NODE_CONF
#   on I psql-args...                 psql as postgres on node I (0-based)
#   nodes_stop                        immediate stop of every node
# Sets: ports[], names[], as_pg (runuser -u postgres -- when root), BIN.

BIN=$("${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}" --bindir)
if [[ $(id -u) == 0 ]]; then as_pg=(runuser -u postgres --); else as_pg=(); fi
ports=()
names=()

nodes_init() {
    local base=$((21000 + RANDOM % 20000)) i=0 spec name kind d
    [[ $(id -u) == 0 ]] && chown postgres: "$work"
    chmod 755 "$work"
    for spec in "$@"; do
        name=${spec%%:*}; kind=${spec#*:}
        names[$i]=$name; ports[$i]=$((base + i))
        d=$work/$name
        "${as_pg[@]}" "$BIN/initdb" -D "$d" -U postgres --auth=trust --no-sync >/dev/null || { echo "initdb $name failed" >&2; return 1; }
        {
            echo "port = ${ports[$i]}"
            echo "listen_addresses = '127.0.0.1'"
            echo "unix_socket_directories = '$work'"
            [[ $kind == citus ]] && echo "shared_preload_libraries = 'citus'" && echo "citus.node_conninfo = 'sslmode=disable'"
            echo "fsync = off"
            printf '%s\n' "${NODE_CONF:-max_connections = 60
shared_buffers = 64MB}"
        } >> "$d/postgresql.conf"
        "${as_pg[@]}" "$BIN/pg_ctl" -D "$d" -l "$d/log" -w start >/dev/null || { echo "start $name failed" >&2; cat "$d/log" >&2; return 1; }
        i=$((i + 1))
    done
}

on() {
    local i=$1; shift
    psql -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "${ports[$i]}" -U postgres -d postgres "$@"
}

nodes_stop() {
    local name
    for name in "${names[@]}"; do
        [[ -f $work/$name/postmaster.pid ]] &&
            "${as_pg[@]}" "$BIN/pg_ctl" -D "$work/$name" -m immediate stop >/dev/null 2>&1
    done
    return 0
}
