# segment: PGXS build. Targets: all install test demo bench deps (see README.md).
EXTENSION   = segment
EXTVERSION  = 0.1.0
MODULE_big  = segment
OBJS        = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))
DATA_built  = sql/segment--$(EXTVERSION).sql
SHLIB_LINK  = -lroaring
PG_CFLAGS   = -Wall -Wextra -Werror -Wno-unused-parameter -Wno-sign-compare \
              -Wno-missing-field-initializers -Wno-cast-function-type
PG_CONFIG  ?= pg_config

REGRESS      = $(basename $(notdir $(sort $(wildcard sql/[0-9]*.sql))))
REGRESS_OPTS = --inputdir=. --load-extension=segment

.DEFAULT_GOAL := all

# The install script is assembled from one part per concern, in name order.
sql/segment--$(EXTVERSION).sql: $(sort $(wildcard sql/install/*.sql))
	cat $^ > $@

# No LLVM bitcode: nothing to gain for this module, and no clang needed.
override with_llvm = no

PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)
ifneq ($(PGXS),)
include $(PGXS)
endif
