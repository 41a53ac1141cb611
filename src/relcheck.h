/*
 * relcheck.h
 *     Checks of relation arguments of SQL-callable C functions (relcheck.c).
 */
#ifndef SEGMENT_RELCHECK_H
#define SEGMENT_RELCHECK_H

extern void relcheck_readable(Oid relid, const char *what);

#endif
