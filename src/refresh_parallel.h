/*
 * refresh_parallel.h
 *     A refresh scan divided among parallel workers (refresh_parallel.c).
 */
#ifndef SEGMENT_REFRESH_PARALLEL_H
#define SEGMENT_REFRESH_PARALLEL_H

#include "refresh_scan.h"

/*
 * Compile, scan and collect with nworkers workers plus the leader, into the
 * leader's ScanCore (whose tags must not be compiled yet: the leader compiles
 * its own programs here). Integer keys only.
 */
extern void refresh_parallel_scan(ScanCore *sc, int nworkers, DateADT as_of);

#endif							/* SEGMENT_REFRESH_PARALLEL_H */
