/* file.h - small file helpers shared by loaders: whole-file reads, path
 * joining, atomic writes (temp name + fsync + rename). */
#ifndef R1D_COMMON_FILE_H
#define R1D_COMMON_FILE_H

#include <stddef.h>

#include "status.h"

/* Reads the whole file into a NUL-terminated malloc'ed buffer (*len excludes
 * the NUL). Fails with R1D_EIO naming the path. */
int r1d_read_file(const char *path, char **data, size_t *len, r1d_error *err);

/* Walks the lines of text[0..len): the line at *pos (without its '\n') goes
 * to *line and *n, *pos moves past it; 0 once the text is used up. A last
 * line without '\n' counts; blank lines come back with *n == 0. */
int r1d_next_line(const char *text, size_t len, size_t *pos, const char **line,
                  size_t *n);

/* Returns malloc'ed "dir/name" (NULL on allocation failure). */
char *r1d_path_join(const char *dir, const char *name);

/* 1 if a regular file exists at path, else 0. */
int r1d_file_exists(const char *path);

/* Creates dir and its missing parents (mode 0755), like mkdir -p. */
int r1d_mkdir_p(const char *dir, r1d_error *err);

/* Writes data to path atomically: path.tmp, fsync, rename. */
int r1d_write_file_atomic(const char *path, const void *data, size_t len,
                          r1d_error *err);

#endif
