/*
 * apperr.h: the apps' error-message convention: a function that fails
 * formats a one-line message into the caller's (err, errlen) buffer and
 * returns its own code, in one statement: `return app_fail(CODE, err,
 * errlen, "%s: ...", path);`.
 *
 * Threads: thread-safe (writes only to err).
 */
#ifndef APP_APPERR_H
#define APP_APPERR_H

#include <stddef.h>

/* Format fmt into err (NUL-terminated, cut to errlen - 1 bytes; nothing is
 * written when err is NULL or errlen is 0) and return rc. */
int app_fail(int rc, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif /* APP_APPERR_H */
