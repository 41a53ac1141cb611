/*
 * members_scan.h
 *     The streaming member scan (members_scan.c): segment.members(subject,
 *     audience [, as_of]) in a FROM clause planned as a custom scan that
 *     returns the members one at a time from the audience's set, instead of
 *     a function scan that writes them all into a tuplestore and reads them
 *     back. Prefix: members_scan_, but for the GUC variable.
 */
#ifndef SEGMENT_MEMBERS_SCAN_H
#define SEGMENT_MEMBERS_SCAN_H

#include "postgres.h"

/* GUC segment.stream_members (registered by segment.c): plan the scan. */
extern bool segment_stream_members;

/* From _PG_init: the planner hook (chained) and the scan's methods. */
extern void members_scan_init(void);

#endif							/* SEGMENT_MEMBERS_SCAN_H */
