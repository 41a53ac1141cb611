/*
 * roaring_lib.c
 *     Opens the CRoaring library segment was built against with RTLD_LOCAL
 *     and RTLD_DEEPBIND and looks up the functions segment calls
 *     (roaring_lib.h says why).
 */
#include "postgres.h"

#include <dlfcn.h>

#define ROARING_LIB_DEFINE
#include "roaring_lib.h"

/* the library's file name (its SONAME), from the Makefile */
#ifndef ROARING_SONAME
#define ROARING_SONAME "libroaring.so.0"
#endif

RoaringLib	roaring_lib;

void
roaring_lib_load(void)
{
	void	   *handle;
	RoaringLib	lib;

	if (roaring_lib.roaring_bitmap_create != NULL)
		return;
	/*
	 * RTLD_DEEPBIND: the library's calls between its own functions go to its
	 * own definitions too (it is not linked -Bsymbolic: through the global
	 * scope they would reach the other CRoaring as well).
	 */
	handle = dlopen(ROARING_SONAME, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
	if (handle == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FILE),
				 errmsg("could not load the CRoaring library \"%s\": %s", ROARING_SONAME, dlerror()),
				 errhint("segment needs the CRoaring library it was built with (Debian: libroaring0).")));
	/* dlsym with the handle: the library's own definition, not the process's first */
#define ROARING_LIB_LOOKUP(f) \
	lib.f = (__typeof__(f) *) dlsym(handle, #f); \
	if (lib.f == NULL) \
		ereport(ERROR, \
				(errcode(ERRCODE_UNDEFINED_FUNCTION), \
				 errmsg("could not find function \"%s\" in \"%s\"", #f, ROARING_SONAME), \
				 errhint("segment was built against another version of CRoaring: rebuild it.")));
	ROARING_LIB_FUNCTIONS(ROARING_LIB_LOOKUP)
#undef ROARING_LIB_LOOKUP
	roaring_lib = lib;			/* all or nothing */
}
