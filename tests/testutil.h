/* testutil.h: small helpers shared by the Check tests. */
#ifndef SC_TESTUTIL_H
#define SC_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

#include <check.h>

/* Decode hex into out (cap bytes); returns the byte count or -1. */
long tu_unhex(const char *hex, uint8_t *out, size_t cap);

/* Run a Check suite; returns the process exit status. Honours CK_FORK. */
int tu_run(Suite *s);

/* Read a whole file into a malloc'd, NUL-terminated buffer (NULL on
 * error); *len receives its size. */
char *tu_read_file(const char *path, size_t *len);

#endif
