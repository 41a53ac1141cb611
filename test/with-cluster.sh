#!/bin/bash
# with-cluster.sh: install segment into the system PostgreSQL 15, start one
# throwaway cluster with pg_cron preloaded, run a command inside it, drop the
# cluster. Used by `make test`, `make demo` and `make bench`.
#
# Usage: test/with-cluster.sh COMMAND [ARGS...]     (from the repository root)
#
# What COMMAND gets (pg_virtualenv sets the libpq variables):
#   PGHOST=localhost PGPORT=<free port> PGDATABASE=postgres
#   PGUSER=postgres (when run as root) or the invoking user, a superuser
#   PGPASSWORD, PG_CONFIG (PostgreSQL 15), PGVERSION=15
#   SEGMENT_ROOT=<repository root> (also the working directory)
#   SEGMENT_IN_CLUSTER=1
#   pg_cron preloaded with cron.database_name=postgres, jobs run in background
#   workers (cron.use_background_workers=on); segment installed on
#   disk but not created in any database.
# Environment on input:
#   SEGMENT_PG_SETTINGS  extra postgresql.conf settings, space separated
#                        guc=value pairs, e.g. "shared_buffers=1GB work_mem=64MB"
#   SEGMENT_LOCK         lock file serialising install+run between checkouts
#                        on one machine (default /tmp/segment-install.lock;
#                        empty: no lock). The installed segment.so is shared
#                        by every cluster on the machine, hence the lock.
#   SEGMENT_LOCK_WAIT    seconds to wait for the lock (default 1800)
#   SEGMENT_SKIP_INSTALL=1  do not run `make install` (already installed)
set -euo pipefail

PGVER=15
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/$PGVER/bin/pg_config}
SEGMENT_ROOT=$(cd "$(dirname "$0")/.." && pwd)
export SEGMENT_ROOT PG_CONFIG
cd "$SEGMENT_ROOT"

(( $# > 0 )) || { echo "usage: $0 COMMAND [ARGS...]" >&2; exit 2; }
for tool in pg_virtualenv "$PG_CONFIG"; do
  command -v "$tool" >/dev/null || { echo "with-cluster: $tool not found; run 'make deps'" >&2; exit 1; }
done

# Serialise with other checkouts on this machine: the lock is held from the
# install until the cluster is gone. fd 9 is closed for the children so a
# stray server process cannot keep the lock.
lock=${SEGMENT_LOCK-/tmp/segment-install.lock}
if [[ -n $lock && -z ${SEGMENT_LOCK_HELD:-} ]] && command -v flock >/dev/null; then
  { exec 9>>"$lock"; } 2>/dev/null || exec 9<"$lock"
  if ! flock -n 9; then
    wait=${SEGMENT_LOCK_WAIT:-1800}
    echo "with-cluster: waiting up to $wait s for $lock (another checkout is installing/testing)"
    flock -w "$wait" 9 || {
      echo "with-cluster: $lock still held after $wait s. If you wrapped this in flock on the" >&2
      echo "same file, don't: it takes the lock itself (SEGMENT_LOCK= turns that off)." >&2
      exit 1
    }
  fi
  export SEGMENT_LOCK_HELD=1
fi

if [[ -z ${SEGMENT_SKIP_INSTALL:-} ]]; then
  if [[ $(id -u) == 0 ]]; then
    make -s install PG_CONFIG="$PG_CONFIG" 9>&-
  else
    sudo make -s install PG_CONFIG="$PG_CONFIG" 9>&-
  fi
fi

# cron.use_background_workers: pg_cron runs jobs in background workers
# instead of connecting over libpq to localhost, which needs a password in
# this cluster (test/shell/pg-cron.sh runs a job for real).
opts=(-o shared_preload_libraries=pg_cron -o cron.database_name=postgres -o cron.use_background_workers=on)
for s in ${SEGMENT_PG_SETTINGS:-}; do opts+=(-o "$s"); done

# -t: keep the cluster in a temporary directory even as root, so that it never
# touches /etc/postgresql and several can run side by side.
export SEGMENT_IN_CLUSTER=1
start=$SECONDS
rc=0
pg_virtualenv -t -v "$PGVER" "${opts[@]}" "$@" 9>&- || rc=$?
echo "with-cluster: cluster dropped after $((SECONDS - start)) s (exit $rc)"
exit $rc
