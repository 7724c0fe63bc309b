/* fileio.h: whole-file read/write with size caps and atomic replace. */
#ifndef SB_FILEIO_H
#define SB_FILEIO_H

#include <stddef.h>

#include "util/sb_error.h"

/* Reads the whole file into a malloc'd buffer (caller frees); fails when the
 * file is larger than max_bytes. */
int sb_read_file(const char *path, unsigned char **buf, size_t *len, size_t max_bytes, sb_error *err);
/* Writes len bytes to path through a temporary file and rename(), so readers
 * never see a half-written file. */
int sb_write_file(const char *path, const void *buf, size_t len, sb_error *err);

/* Creates a directory and its missing parents (mkdir -p). */
int sb_mkdirs(const char *path, sb_error *err);

#endif
