# segment: PGXS build. Targets: all install test demo bench deps (see README.md).
#   make deps    install the Debian packages needed (test/deps.sh; apt only if something is missing)
#   make         build (-Wall -Wextra -Werror)
#   make install install into PostgreSQL 15 (needs root)
#   make test    deps + build + install + pg_regress, isolation specs, pgTAP and shell tests in a throwaway cluster (test/run-tests.sh)
#   make demo    deps + build + install + test/demo.sh in a throwaway cluster
#   make bench   deps + build + install + test/bench.sh in a throwaway cluster (ROWS=, TAGS=, ...)
EXTENSION   = segment
EXTVERSION  = 0.2.0
MODULE_big  = segment
OBJS        = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))
# The current version's install script and the upgrade into it are assembled
# from parts (sql/install/*.sql, sql/upgrade/0.1.0--0.2.0/*.sql). Released
# install scripts are checked in and never change: sql/segment--0.1.0.sql.
UPGRADE_FROM = 0.1.0
DATA_built  = sql/segment--$(EXTVERSION).sql sql/segment--$(UPGRADE_FROM)--$(EXTVERSION).sql
DATA        = sql/segment--0.1.0.sql
# CRoaring is not linked: src/roaring_lib.c opens it by its SONAME with
# RTLD_LOCAL, so that another library's CRoaring (pg_roaringbitmap carries
# one) never takes the place of segment's calls or the other way round.
ROARING_LIBFILE := $(shell $(CC) -print-file-name=libroaring.so)
ROARING_SONAME  := $(or $(shell objdump -p $(ROARING_LIBFILE) 2>/dev/null | awk '$$1 == "SONAME" { print $$2 }'),libroaring.so.0)
PG_CPPFLAGS = -DROARING_SONAME='"$(ROARING_SONAME)"'
PG_CFLAGS   = -Wall -Wextra -Werror -Wno-unused-parameter -Wno-sign-compare \
              -Wno-missing-field-initializers -Wno-cast-function-type

# PostgreSQL 15 explicitly: /usr/bin/pg_config may point at another version.
PG_CONFIG  ?= $(firstword $(wildcard /usr/lib/postgresql/15/bin/pg_config) pg_config)

# Tests laid out as pgvector lays them out: pg_regress files test/sql/NAME.sql
# with their outputs test/expected/NAME.out; isolationtester specs
# (concurrent sessions) test/specs/NAME.spec, outputs also in test/expected/.
# `make installcheck` runs the pg_regress files, then the specs. The later
# --inputdir overrides the one PGXS passes first.
REGRESS        = $(basename $(notdir $(sort $(wildcard test/sql/[0-9]*.sql))))
REGRESS_OPTS   = --inputdir=test --load-extension=segment
ISOLATION      = $(basename $(notdir $(sort $(wildcard test/specs/*.spec))))
ISOLATION_OPTS = --inputdir=test --load-extension=segment

# First rule, so that a bare `make` builds everything (PGXS's `all`).
all:

# The install script is assembled from one part per concern, in name order.
# (the directories are prerequisites too, so that removing a part rebuilds)
sql/segment--$(EXTVERSION).sql: $(sort $(wildcard sql/install/*.sql)) sql/install
	cat $(filter %.sql,$^) > $@

# The privileges part ends the upgrade as it ends the install: it revokes
# PUBLIC's EXECUTE from every internal function created before it.
# A line `-- @function NAME[(TYPES)]` (or `-- @procedure`) in an upgrade part
# becomes that function's one definition in sql/install/*.sql
# (tools/expand-functions.pl; it fails on no match or several), so every
# install part is a prerequisite too.
UPGRADE_PARTS = $(sort $(wildcard sql/upgrade/$(UPGRADE_FROM)--$(EXTVERSION)/*.sql)) sql/install/95-privileges.sql
sql/segment--$(UPGRADE_FROM)--$(EXTVERSION).sql: $(UPGRADE_PARTS) $(wildcard sql/install/*.sql) tools/expand-functions.pl sql/upgrade/$(UPGRADE_FROM)--$(EXTVERSION) sql/install
	perl tools/expand-functions.pl sql/install $(UPGRADE_PARTS) > $@.tmp || { rm -f $@.tmp; exit 1; }
	mv $@.tmp $@

# No LLVM bitcode: nothing to gain for this module.
override with_llvm = no

# Each of these runs deps first, then a fresh make (which loads PGXS even when
# deps has just installed pg_config), then a script from test/.
SUBMAKE = $(MAKE) --no-print-directory PG_CONFIG=$(PG_CONFIG)

deps:
	@bash test/deps.sh

test:
	@$(SUBMAKE) deps
	@$(SUBMAKE) all
	@bash test/run-tests.sh

demo:
	@test -f test/demo.sh || { echo "make demo: test/demo.sh does not exist yet (the demo is not written)"; exit 1; }
	@$(SUBMAKE) deps
	@$(SUBMAKE) all
	@bash test/with-cluster.sh bash test/demo.sh

# Variables given on the command line (make bench ROWS=100000 TAGS=20) reach
# bench.sh through the environment, as make exports them.
# The bench's cluster preloads segment with pg_cron, as docs/dba-guide.md
# recommends (a new backend's first call then does not load the library);
# test/bench_audience.sh prints what was preloaded with its cold table.
# BENCH_PRELOAD=pg_cron measures without it.
BENCH_PRELOAD ?= pg_cron,segment
bench:
	@test -f test/bench.sh || { echo "make bench: test/bench.sh does not exist yet (the benchmark is not written)"; exit 1; }
	@$(SUBMAKE) deps
	@$(SUBMAKE) all
	@SEGMENT_PG_SETTINGS="shared_preload_libraries=$(BENCH_PRELOAD) $${SEGMENT_PG_SETTINGS:-}" bash test/with-cluster.sh bash test/bench.sh

.PHONY: deps test demo bench

PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)
ifneq ($(PGXS),)
include $(PGXS)

# PGXS does not track header dependencies: rebuild every object when a
# header changes (a stale object against a changed struct crashes the server)
$(OBJS): $(wildcard src/*.h)
else
all install installcheck:
	@echo "pg_config ($(PG_CONFIG)) not found: run 'make deps' first (or 'make test', which does)"; exit 1
endif
