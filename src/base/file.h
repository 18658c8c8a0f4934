/* Whole-file reads, atomic writes (temp + fsync + rename + dir fsync) and
 * directory helpers. A kill at any moment leaves either the old file or the
 * complete new one, never a torn file. */
#ifndef R1C_BASE_FILE_H
#define R1C_BASE_FILE_H

#include <stddef.h>
#include <stdio.h>

#include "base/err.h"

/* Reads the whole file into a malloc'd buffer with a trailing NUL (not
 * counted in *len). Refuses files larger than max_bytes (0 = no limit). */
int file_read_all(const char *path, char **buf, size_t *len, size_t max_bytes, Err *err);

typedef struct AtomicFile {
    FILE *fp;
    char path[4096];     /* final name */
    char tmp_path[4096]; /* PATH.tmp.<pid> while writing */
} AtomicFile;

int atomic_open(AtomicFile *af, const char *path, Err *err);
/* Flushes, fsyncs, renames over the final name and fsyncs the directory. */
int atomic_commit(AtomicFile *af, Err *err);
/* Closes and removes the temp file (after an error). */
void atomic_abort(AtomicFile *af);
/* Writes len bytes or reports the failing path. */
int atomic_write(AtomicFile *af, const void *data, size_t len, Err *err);

/* The whole of data[0..len) as PATH, atomically (temp, fsync, rename);
 * nothing is left behind on failure. */
int file_write_atomic(const char *path, const void *data, size_t len, Err *err);
/* Copies SRC to DST atomically. */
int file_copy_atomic(const char *src, const char *dst, Err *err);

/* mkdir -p; existing directories are fine. */
int dir_make(const char *path, Err *err);
/* fsync a directory so a rename inside it is durable. */
int dir_sync(const char *path, Err *err);

#endif
