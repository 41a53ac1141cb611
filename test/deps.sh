#!/bin/bash
# deps.sh: install the Debian packages that building and testing segment need
# (PostgreSQL 15 server and headers, pg_cron, pgTAP and pg_prove, CRoaring,
# a C compiler, and chromium with CJK fonts for the report test). Called by `make deps`.
#
# Installs only what is missing: when every package is already installed it
# does not touch apt at all. Otherwise it runs `apt-get update` once and one
# non-interactive `apt-get install`. Uses sudo when not run as root.
set -euo pipefail

PACKAGES=(
  postgresql-15                          # server (intarray is part of it on Debian 12)
  postgresql-common                      # pg_virtualenv, pg_createcluster
  postgresql-server-dev-15               # PGXS, server headers, pg_config
  postgresql-15-cron                     # pg_cron (scheduling; preloaded in test clusters)
  postgresql-15-pgtap                    # pgTAP
  libtap-parser-sourcehandler-pgtap-perl # pg_prove
  libroaring-dev                         # CRoaring (member sets)
  gcc libc6-dev make                     # C toolchain
  chromium                               # headless browser: test/shell/report.sh renders segment.report()
  fonts-noto-cjk                         # Chinese glyphs for that rendering (and docs/report.png)
)

missing=()
for p in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [[ $status == installed ]] || missing+=("$p")
done

if (( ${#missing[@]} == 0 )); then
  echo "deps: all ${#PACKAGES[@]} packages already installed"
  exit 0
fi

command -v apt-get >/dev/null || {
  echo "deps: apt-get not found; install these by hand: ${missing[*]}" >&2
  exit 1
}

if [[ $(id -u) == 0 ]]; then
  as_root=()
elif command -v sudo >/dev/null; then
  as_root=(sudo)
else
  echo "deps: not root and no sudo; install these as root: ${missing[*]}" >&2
  exit 1
fi

echo "deps: installing ${missing[*]}"
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0 "${missing[@]}"
echo "deps: done"
