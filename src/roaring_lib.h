/*
 * roaring_lib.h
 *     CRoaring for segment: <roaring/roaring.h>, with every CRoaring
 *     function segment calls bound to the library segment was built against
 *     (roaring_lib.c), whatever other library the backend has loaded.
 *
 * Why: PostgreSQL loads extension libraries with RTLD_GLOBAL, so a library
 * linked with -lroaring would have its CRoaring calls resolved to the first
 * definition of each name in the process. Another extension that carries its
 * own CRoaring (pg_roaringbitmap does: a newer version, another struct
 * layout) and was loaded first in a backend then ran segment's calls with
 * its code: the second segment.count in such a backend crashed the server.
 * And the other way round, its calls ran segment's library. So segment.so
 * does not link libroaring: roaring_lib_load() opens it with RTLD_LOCAL
 * (nothing enters the global scope) and looks each function up in it; the
 * names below are macros for those pointers. The inline functions of the
 * header (roaring_bitmap_contains, ...) are compiled into segment.so and
 * match the library's struct layout, being of the same version.
 *
 * Adding a CRoaring function: a line in ROARING_LIB_FUNCTIONS and one in the
 * list of macros. `nm -u segment.so | grep roaring_` must stay empty
 * (test/shell/roaring-binding.sh).
 *
 * Prefix: roaring_lib_.
 */
#ifndef SEGMENT_ROARING_LIB_H
#define SEGMENT_ROARING_LIB_H

#include <roaring/roaring.h>

#define ROARING_LIB_FUNCTIONS(X) \
	X(roaring_advance_uint32_iterator) \
	X(roaring_bitmap_add) \
	X(roaring_bitmap_add_checked) \
	X(roaring_bitmap_add_many) \
	X(roaring_bitmap_and) \
	X(roaring_bitmap_and_cardinality) \
	X(roaring_bitmap_and_inplace) \
	X(roaring_bitmap_andnot) \
	X(roaring_bitmap_andnot_cardinality) \
	X(roaring_bitmap_andnot_inplace) \
	X(roaring_bitmap_copy) \
	X(roaring_bitmap_create) \
	X(roaring_bitmap_equals) \
	X(roaring_bitmap_free) \
	X(roaring_bitmap_get_cardinality) \
	X(roaring_bitmap_intersect) \
	X(roaring_bitmap_is_empty) \
	X(roaring_bitmap_is_subset) \
	X(roaring_bitmap_minimum) \
	X(roaring_bitmap_or) \
	X(roaring_bitmap_or_cardinality) \
	X(roaring_bitmap_or_inplace) \
	X(roaring_bitmap_or_many) \
	X(roaring_bitmap_portable_deserialize_safe) \
	X(roaring_bitmap_portable_serialize) \
	X(roaring_bitmap_portable_size_in_bytes) \
	X(roaring_bitmap_run_optimize) \
	X(roaring_bitmap_select) \
	X(roaring_bitmap_to_uint32_array) \
	X(roaring_bitmap_xor_inplace) \
	X(roaring_init_iterator) \
	X(roaring_move_uint32_iterator_equalorlarger) \
	X(roaring_read_uint32_iterator)

#define ROARING_LIB_FIELD(f) __typeof__(f) *f;
typedef struct RoaringLib
{
	ROARING_LIB_FUNCTIONS(ROARING_LIB_FIELD)
} RoaringLib;
#undef ROARING_LIB_FIELD

extern RoaringLib roaring_lib;

/* Open the library and look its functions up (_PG_init); ERROR when it cannot. */
extern void roaring_lib_load(void);

#ifndef ROARING_LIB_DEFINE
#define roaring_advance_uint32_iterator (roaring_lib.roaring_advance_uint32_iterator)
#define roaring_bitmap_add (roaring_lib.roaring_bitmap_add)
#define roaring_bitmap_add_checked (roaring_lib.roaring_bitmap_add_checked)
#define roaring_bitmap_add_many (roaring_lib.roaring_bitmap_add_many)
#define roaring_bitmap_and (roaring_lib.roaring_bitmap_and)
#define roaring_bitmap_and_cardinality (roaring_lib.roaring_bitmap_and_cardinality)
#define roaring_bitmap_and_inplace (roaring_lib.roaring_bitmap_and_inplace)
#define roaring_bitmap_andnot (roaring_lib.roaring_bitmap_andnot)
#define roaring_bitmap_andnot_cardinality (roaring_lib.roaring_bitmap_andnot_cardinality)
#define roaring_bitmap_andnot_inplace (roaring_lib.roaring_bitmap_andnot_inplace)
#define roaring_bitmap_copy (roaring_lib.roaring_bitmap_copy)
#define roaring_bitmap_create (roaring_lib.roaring_bitmap_create)
#define roaring_bitmap_equals (roaring_lib.roaring_bitmap_equals)
#define roaring_bitmap_free (roaring_lib.roaring_bitmap_free)
#define roaring_bitmap_get_cardinality (roaring_lib.roaring_bitmap_get_cardinality)
#define roaring_bitmap_intersect (roaring_lib.roaring_bitmap_intersect)
#define roaring_bitmap_is_empty (roaring_lib.roaring_bitmap_is_empty)
#define roaring_bitmap_is_subset (roaring_lib.roaring_bitmap_is_subset)
#define roaring_bitmap_minimum (roaring_lib.roaring_bitmap_minimum)
#define roaring_bitmap_or (roaring_lib.roaring_bitmap_or)
#define roaring_bitmap_or_cardinality (roaring_lib.roaring_bitmap_or_cardinality)
#define roaring_bitmap_or_inplace (roaring_lib.roaring_bitmap_or_inplace)
#define roaring_bitmap_or_many (roaring_lib.roaring_bitmap_or_many)
#define roaring_bitmap_portable_deserialize_safe (roaring_lib.roaring_bitmap_portable_deserialize_safe)
#define roaring_bitmap_portable_serialize (roaring_lib.roaring_bitmap_portable_serialize)
#define roaring_bitmap_portable_size_in_bytes (roaring_lib.roaring_bitmap_portable_size_in_bytes)
#define roaring_bitmap_run_optimize (roaring_lib.roaring_bitmap_run_optimize)
#define roaring_bitmap_select (roaring_lib.roaring_bitmap_select)
#define roaring_bitmap_to_uint32_array (roaring_lib.roaring_bitmap_to_uint32_array)
#define roaring_bitmap_xor_inplace (roaring_lib.roaring_bitmap_xor_inplace)
#define roaring_init_iterator (roaring_lib.roaring_init_iterator)
#define roaring_move_uint32_iterator_equalorlarger (roaring_lib.roaring_move_uint32_iterator_equalorlarger)
#define roaring_read_uint32_iterator (roaring_lib.roaring_read_uint32_iterator)
#endif

#endif							/* SEGMENT_ROARING_LIB_H */
