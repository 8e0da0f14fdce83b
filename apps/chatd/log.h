/*
 * log.h: chatd's event log: one line per record in a file, optionally
 * forwarded to a syslog collector (syslog.h).
 *
 * Line format (docs/chatd.md):
 *
 *   2026-11-25T21:10:28.123Z info auth_fail peer=127.0.0.1:50112 user=h:1f0c9a2b33d4e5f6 reason="bad \"x\"\x1b[2J"
 *
 * RFC 3339 UTC timestamp with milliseconds, level, event name, then
 * key=value fields. A value is written bare when it is non-empty and made
 * only of [A-Za-z0-9._:/@+-] (and, for the "h:" identity hashes, this
 * holds), otherwise between double quotes after chatd_escape() (escape.h).
 * A line never exceeds CHATD_LOG_LINE_MAX bytes: a value longer than
 * CHATD_LOG_VALUE_MAX escaped bytes ends in "...", and a record that would
 * still be too long ends in " ..." after its last whole field.
 *
 * Identities (uids, user names) are logged with chatd_f_id(): in
 * CHATD_LOG_IDS_HASHED mode (the default) as "h:" + 16 hex digits of a
 * BLAKE2b hash keyed with a random key drawn when the logger is created, so
 * the same identity gives the same tag within one run (events can be
 * correlated) but the log is not a lasting record of who talks to whom;
 * in CHATD_LOG_IDS_PLAIN mode as the escaped value.
 *
 * Secrets: the API has no field type for key material. Never pass tokens,
 * keys, passwords or message content as a field value.
 *
 * Threads: chatd_log_write(), chatd_log_enabled(), chatd_log_reopen() and
 * chatd_log_stats() may be called concurrently from any thread. A record
 * is formatted on the caller's stack and written with a single write(2)
 * under a mutex, so lines never interleave. chatd_log_request_reopen() is
 * async-signal-safe (for a SIGHUP handler): the reopen itself happens in
 * the next chatd_log_write() or chatd_log_reopen() call, never in the
 * handler. chatd_log_new() and chatd_log_free() are not concurrent with
 * anything else on the same logger.
 */
#ifndef CHATD_LOG_H
#define CHATD_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "syslog.h"

#define CHATD_LOG_LINE_MAX 4096u  /* bytes per line, newline included */
#define CHATD_LOG_VALUE_MAX 512u  /* escaped bytes per field value */
#define CHATD_LOG_ID_PREFIX "h:"
#define CHATD_LOG_ID_HASH_BYTES 8u /* 16 hex digits after the prefix */

typedef enum chatd_log_level {
  CHATD_LOG_DEBUG = 0,
  CHATD_LOG_INFO = 1,
  CHATD_LOG_WARN = 2,
  CHATD_LOG_ERROR = 3
} chatd_log_level;

typedef enum chatd_log_ids {
  CHATD_LOG_IDS_HASHED = 0,
  CHATD_LOG_IDS_PLAIN = 1
} chatd_log_ids;

typedef enum chatd_field_type {
  CHATD_FIELD_STR,   /* s: NUL-terminated, escaped */
  CHATD_FIELD_BYTES, /* p, n: arbitrary bytes, escaped */
  CHATD_FIELD_ID,    /* p, n: identity, hashed or escaped per mode */
  CHATD_FIELD_INT,   /* i */
  CHATD_FIELD_UINT   /* u */
} chatd_field_type;

/* One key=value field. Keys are code-chosen names ([a-z0-9_]); any other
 * key byte is written as '_'. Build fields with the chatd_f_*() helpers. */
typedef struct chatd_field {
  const char *key;
  chatd_field_type type;
  const void *p;
  size_t n;
  int64_t i;
  uint64_t u;
} chatd_field;

static inline chatd_field chatd_f_str(const char *key, const char *s)
{
  chatd_field f = {key, CHATD_FIELD_STR, s, 0, 0, 0};
  return f;
}
static inline chatd_field chatd_f_bytes(const char *key, const void *p, size_t n)
{
  chatd_field f = {key, CHATD_FIELD_BYTES, p, n, 0, 0};
  return f;
}
static inline chatd_field chatd_f_id(const char *key, const void *p, size_t n)
{
  chatd_field f = {key, CHATD_FIELD_ID, p, n, 0, 0};
  return f;
}
static inline chatd_field chatd_f_int(const char *key, int64_t v)
{
  chatd_field f = {key, CHATD_FIELD_INT, NULL, 0, v, 0};
  return f;
}
static inline chatd_field chatd_f_uint(const char *key, uint64_t v)
{
  chatd_field f = {key, CHATD_FIELD_UINT, NULL, 0, 0, v};
  return f;
}

typedef struct chatd_log chatd_log;

typedef struct chatd_log_options {
  const char *path;         /* log file; required */
  chatd_log_level level;    /* records below it are discarded */
  chatd_log_ids ids;        /* identity mode */
  chatd_syslog *syslog;     /* borrowed, may be NULL; must outlive the logger */
  int also_stderr;          /* 1: copy every line to stderr as well */
} chatd_log_options;

typedef struct chatd_log_stats {
  uint64_t records;      /* records written (after the level filter) */
  uint64_t write_errors; /* lines lost to a failed write(2) */
  uint64_t reopens;      /* successful reopens */
  uint64_t reopen_errors;/* failed reopens (the old file stays in use) */
} chatd_log_stats;

/* Open path (O_WRONLY|O_CREAT|O_APPEND|O_CLOEXEC, mode 0600 for a new
 * file) and draw the identity key. Returns 0, or -1 with a message naming
 * the file in err (errlen bytes). */
int chatd_log_new(chatd_log **out, const chatd_log_options *opt, char *err, size_t errlen);

/* Close the file and wipe the identity key. NULL-safe. Does not free the
 * syslog client. */
void chatd_log_free(chatd_log *lg);

/* 1 if a record of this level would be written. Cheap: test it before
 * computing expensive field values. */
int chatd_log_enabled(const chatd_log *lg, chatd_log_level level);

/* Write one record. event is a code-chosen name ([a-z0-9_]); fields may be
 * NULL when n is 0. Never blocks on the syslog collector; a failed file
 * write is counted, not reported. */
void chatd_log_write(chatd_log *lg, chatd_log_level level, const char *event,
                     const chatd_field *fields, size_t n);

/* Convenience: fields given inline, at least one.
 *   CHATD_LOG(lg, CHATD_LOG_INFO, "connect", chatd_f_str("peer", addr));  */
#define CHATD_LOG(lg, level, event, ...)                                      \
  do {                                                                        \
    if (chatd_log_enabled((lg), (level))) {                                   \
      const chatd_field chatd_log_f_[] = {__VA_ARGS__};                      \
      chatd_log_write((lg), (level), (event), chatd_log_f_,                   \
                      sizeof chatd_log_f_ / sizeof chatd_log_f_[0]);          \
    }                                                                         \
  } while (0)

/* Reopen the log file by path now (after logrotate renamed it). On failure
 * the old descriptor stays in use. Returns 0 or -errno. */
int chatd_log_reopen(chatd_log *lg);

/* Ask for a reopen at the next write. Async-signal-safe. */
void chatd_log_request_reopen(chatd_log *lg);

void chatd_log_stats_get(chatd_log *lg, chatd_log_stats *out);

/* The identity tag written by chatd_f_id() in the current mode, into out
 * (cap bytes, NUL-terminated). Returns its length. For tests and for
 * operators correlating a known user with log lines of this run. */
size_t chatd_log_identity(const chatd_log *lg, const void *id, size_t n, char *out, size_t cap);

/* "debug", "info", "warn", "error". */
const char *chatd_log_level_name(chatd_log_level level);

/* Parse a level name; returns 0 or -1. */
int chatd_log_level_parse(const char *s, chatd_log_level *out);

/* Parse "hashed" / "plain"; returns 0 or -1. */
int chatd_log_ids_parse(const char *s, chatd_log_ids *out);

/* Current UTC time as RFC 3339 with milliseconds, e.g.
 * "2026-11-25T21:10:28.123Z" (24 bytes + NUL; out must hold 32). */
void chatd_log_timestamp(char out[32]);

#endif /* CHATD_LOG_H */
