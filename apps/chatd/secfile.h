/*
 * secfile.h: secret files (the server's key files) and their directory.
 *
 * A secret file is trusted only if it is a regular file (not a symbolic
 * link, FIFO or device), owned by the effective user, with no group or
 * other permission bit, non-empty and no larger than the caller's buffer.
 * Everything is checked on the open descriptor (fstat), so the checked file
 * is the one read. Writes are atomic: a reader sees either the old file or
 * the complete new one, even across a crash.
 *
 * Messages name the file and the reason, e.g.
 *   "refusing /var/lib/chatd/token.key: mode 0644, must be 0600"
 *
 * Threads: no shared state; safe from any thread.
 */
#ifndef CHATD_SECFILE_H
#define CHATD_SECFILE_H

#include <stddef.h>

typedef enum chatd_secfile_result {
  CHATD_SECFILE_OK = 0,
  CHATD_SECFILE_MISSING = -1, /* no such file (a first start may create it) */
  CHATD_SECFILE_UNSAFE = -2,  /* symlink, not regular, foreign owner, mode */
  CHATD_SECFILE_INVALID = -3, /* empty, too large, changed while read */
  CHATD_SECFILE_IO = -4,      /* any other system error */
  CHATD_SECFILE_EXISTS = -5   /* write without replace: file exists */
} chatd_secfile_result;

/* Read the secret file at path into buf (cap bytes, which is also the size
 * limit); *len receives its size. The caller owns buf and wipes it with
 * sodium_memzero() when done; on failure buf has already been wiped.
 * Returns CHATD_SECFILE_OK or a negative result with a message in err. */
int chatd_secfile_read(const char *path, void *buf, size_t cap, size_t *len, char *err,
                       size_t errlen);

/* Write len bytes to path atomically with mode 0600: a new file in the same
 * directory (O_CREAT|O_EXCL|O_NOFOLLOW, random name), write, fsync, then
 * rename over path (replace != 0) or move only if path does not exist yet
 * (replace == 0: CHATD_SECFILE_EXISTS otherwise), then fsync the
 * directory. On failure path is unchanged and the temporary file removed. */
int chatd_secfile_write(const char *path, const void *data, size_t len, int replace, char *err,
                        size_t errlen);

/* Make sure dir is a usable data directory: create it (and missing
 * parents) with mode 0700 if needed, then require a directory owned by
 * the effective user with no group or other permission bit. */
int chatd_secfile_datadir(const char *dir, char *err, size_t errlen);

#endif /* CHATD_SECFILE_H */
