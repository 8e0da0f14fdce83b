/* log.c: one-line event records to a file and, optionally, a syslog
 * collector. Contract and line format in log.h. */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "escape.h"

/* chatd_log_request_reopen() runs in a signal handler: only a lock-free
 * atomic store is async-signal-safe there. */
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "atomic_int must be lock-free");

#define ID_KEY_BYTES crypto_generichash_KEYBYTES
#define TRUNC_MARK " ..."

struct chatd_log {
  pthread_mutex_t mu; /* fd swaps and writes; stats */
  int fd;
  char *path;
  chatd_log_level level;
  chatd_log_ids ids;
  int also_stderr;
  chatd_syslog *syslog;
  unsigned char id_key[ID_KEY_BYTES];
  atomic_int reopen_requested; /* set by a signal handler (lock-free) */
  chatd_log_stats st;
};

static const char *const level_names[] = {"debug", "info", "warn", "error"};

const char *chatd_log_level_name(chatd_log_level level)
{
  return (unsigned)level < 4 ? level_names[level] : "unknown";
}

int chatd_log_level_parse(const char *s, chatd_log_level *out)
{
  for (unsigned i = 0; i < 4; i++) {
    if (strcmp(s, level_names[i]) == 0) {
      *out = (chatd_log_level)i;
      return 0;
    }
  }
  return -1;
}

int chatd_log_ids_parse(const char *s, chatd_log_ids *out)
{
  if (strcmp(s, "hashed") == 0)
    *out = CHATD_LOG_IDS_HASHED;
  else if (strcmp(s, "plain") == 0)
    *out = CHATD_LOG_IDS_PLAIN;
  else
    return -1;
  return 0;
}

void chatd_log_timestamp(char out[32])
{
  struct timespec ts;
  struct tm tm;

  size_t n;
  long ms;

  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
  if (n == 0 || n > 32 - 6) {
    memcpy(out, "-", 2); /* RFC 5424 NILVALUE: a year past 9999 */
    return;
  }
  ms = ts.tv_nsec / 1000000L;
  out[n++] = '.';
  out[n++] = (char)('0' + ms / 100);
  out[n++] = (char)('0' + ms / 10 % 10);
  out[n++] = (char)('0' + ms % 10);
  out[n++] = 'Z';
  out[n] = '\0';
}

static int syslog_severity(chatd_log_level level)
{
  switch (level) {
  case CHATD_LOG_DEBUG: return CHATD_SYSLOG_SEV_DEBUG;
  case CHATD_LOG_INFO: return CHATD_SYSLOG_SEV_INFO;
  case CHATD_LOG_WARN: return CHATD_SYSLOG_SEV_WARNING;
  case CHATD_LOG_ERROR: return CHATD_SYSLOG_SEV_ERR;
  }
  return CHATD_SYSLOG_SEV_ERR;
}

/* ---- Formatting --------------------------------------------------------- */

/* Output buffer with a hard cap; writes past it are refused whole. */
typedef struct {
  char *p;
  size_t len, cap;
} buf;

static int buf_put(buf *b, const void *s, size_t n)
{
  if (n > b->cap - b->len)
    return -1;
  memcpy(b->p + b->len, s, n);
  b->len += n;
  return 0;
}

/* Code-chosen names (event, keys): [A-Za-z0-9_.-], anything else '_'. */
static size_t safe_name(char *out, size_t cap, const char *s)
{
  size_t i = 0;

  for (; s && s[i] && i + 1 < cap; i++) {
    char c = s[i];
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '_' || c == '.' || c == '-';
    out[i] = ok ? c : '_';
  }
  if (i == 0)
    out[i++] = '-';
  out[i] = '\0';
  return i;
}

static int is_bare(const char *s, size_t n)
{
  if (n == 0)
    return 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '.' || c == '_' || c == ':' || c == '/' || c == '@' || c == '+' || c == '-'))
      return 0;
  }
  return 1;
}

size_t chatd_log_identity(const chatd_log *lg, const void *id, size_t n, char *out, size_t cap)
{
  unsigned char h[CHATD_LOG_ID_HASH_BYTES];
  char hex[2 * CHATD_LOG_ID_HASH_BYTES + 1];
  int r;

  if (lg->ids == CHATD_LOG_IDS_PLAIN)
    return chatd_escape(out, cap, id, n, NULL);
  crypto_generichash(h, sizeof h, id, n, lg->id_key, sizeof lg->id_key);
  sodium_bin2hex(hex, sizeof hex, h, sizeof h);
  if (cap == 0)
    return 0;
  r = snprintf(out, cap, "%s%s", CHATD_LOG_ID_PREFIX, hex);
  return r < 0 ? 0 : (size_t)r < cap ? (size_t)r : cap - 1;
}

/* Render one field's value (unquoted) into v; returns its length. */
static size_t field_value(const chatd_log *lg, const chatd_field *f, char *v, size_t cap)
{
  switch (f->type) {
  case CHATD_FIELD_STR:
    return f->p ? chatd_escape(v, cap, f->p, strlen(f->p), NULL) : 0;
  case CHATD_FIELD_BYTES:
    return chatd_escape(v, cap, f->p, f->p ? f->n : 0, NULL);
  case CHATD_FIELD_ID:
    return chatd_log_identity(lg, f->p, f->p ? f->n : 0, v, cap);
  case CHATD_FIELD_INT:
    return (size_t)snprintf(v, cap, "%" PRId64, f->i);
  case CHATD_FIELD_UINT:
    return (size_t)snprintf(v, cap, "%" PRIu64, f->u);
  }
  return 0;
}

/* " key=value" or " key=\"value\"" appended whole, or not at all. */
static int put_field(const chatd_log *lg, buf *b, const chatd_field *f)
{
  char key[64], v[CHATD_LOG_VALUE_MAX + 1];
  size_t kn = safe_name(key, sizeof key, f->key);
  size_t vn = field_value(lg, f, v, sizeof v);
  int bare = is_bare(v, vn);
  size_t need = 1 + kn + 1 + vn + (bare ? 0 : 2);

  if (need > b->cap - b->len)
    return -1;
  buf_put(b, " ", 1);
  buf_put(b, key, kn);
  buf_put(b, bare ? "=" : "=\"", bare ? 1 : 2);
  buf_put(b, v, vn);
  if (!bare)
    buf_put(b, "\"", 1);
  return 0;
}

/* Fields into b; a field that does not fit ends the body with " ...". */
static void put_fields(const chatd_log *lg, buf *b, const chatd_field *fields, size_t n)
{
  static const size_t mark = sizeof TRUNC_MARK - 1;
  size_t cap = b->cap;

  b->cap = cap - mark; /* keep room for the marker */
  for (size_t i = 0; i < n; i++) {
    if (put_field(lg, b, &fields[i]) != 0) {
      b->cap = cap;
      buf_put(b, TRUNC_MARK, mark);
      return;
    }
  }
  b->cap = cap;
}

/* ---- File --------------------------------------------------------------- */

static int open_file(const char *path)
{
  return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
}

static void write_line(chatd_log *lg, const char *line, size_t n)
{
  size_t off = 0;

  pthread_mutex_lock(&lg->mu);
  lg->st.records++;
  while (off < n) {
    ssize_t w = write(lg->fd, line + off, n - off);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0) {
      lg->st.write_errors++;
      break;
    }
    off += (size_t)w;
  }
  if (lg->also_stderr && write(STDERR_FILENO, line, n) < 0) {
    /* stderr is a courtesy copy; the file is the record */
  }
  pthread_mutex_unlock(&lg->mu);
}

static int reopen_locked(chatd_log *lg)
{
  int fd = open_file(lg->path);

  if (fd < 0) {
    lg->st.reopen_errors++;
    return -errno;
  }
  close(lg->fd);
  lg->fd = fd;
  lg->st.reopens++;
  return 0;
}

int chatd_log_reopen(chatd_log *lg)
{
  int r;

  atomic_store(&lg->reopen_requested, 0);
  pthread_mutex_lock(&lg->mu);
  r = reopen_locked(lg);
  pthread_mutex_unlock(&lg->mu);
  return r;
}

void chatd_log_request_reopen(chatd_log *lg)
{
  atomic_store(&lg->reopen_requested, 1);
}

/* ---- Records ------------------------------------------------------------ */

int chatd_log_enabled(const chatd_log *lg, chatd_log_level level)
{
  return level >= lg->level;
}

void chatd_log_write(chatd_log *lg, chatd_log_level level, const char *event,
                     const chatd_field *fields, size_t n)
{
  char line[CHATD_LOG_LINE_MAX];
  char ts[32], ev[64];
  buf b = {line, 0, sizeof line - 1}; /* room for the newline */
  size_t head, evn;

  if (!chatd_log_enabled(lg, level))
    return;
  if (atomic_exchange(&lg->reopen_requested, 0))
    chatd_log_reopen(lg);

  chatd_log_timestamp(ts);
  evn = safe_name(ev, sizeof ev, event);
  buf_put(&b, ts, strlen(ts));
  buf_put(&b, " ", 1);
  buf_put(&b, chatd_log_level_name(level), strlen(chatd_log_level_name(level)));
  buf_put(&b, " ", 1);
  buf_put(&b, ev, evn);
  head = b.len;
  put_fields(lg, &b, fields, n);

  if (lg->syslog) {
    /* MSG part: the fields (leading space dropped); event is the MSGID. */
    const char *msg = b.len > head ? line + head + 1 : "";
    chatd_syslog_submit(lg->syslog, syslog_severity(level), ts, ev, msg,
                        b.len > head ? b.len - head - 1 : 0);
  }
  line[b.len++] = '\n';
  write_line(lg, line, b.len);
}

void chatd_log_stats_get(chatd_log *lg, chatd_log_stats *out)
{
  pthread_mutex_lock(&lg->mu);
  *out = lg->st;
  pthread_mutex_unlock(&lg->mu);
}

/* ---- Lifecycle ---------------------------------------------------------- */

int chatd_log_new(chatd_log **out, const chatd_log_options *opt, char *err, size_t errlen)
{
  chatd_log *lg;

  *out = NULL;
  if (sodium_init() < 0) {
    snprintf(err, errlen, "cannot initialise libsodium");
    return -1;
  }
  if (!opt->path || !*opt->path) {
    snprintf(err, errlen, "no log file given");
    return -1;
  }
  lg = calloc(1, sizeof *lg);
  if (!lg || !(lg->path = strdup(opt->path)) || pthread_mutex_init(&lg->mu, NULL) != 0) {
    if (lg)
      free(lg->path);
    free(lg);
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  lg->fd = open_file(opt->path);
  if (lg->fd < 0) {
    snprintf(err, errlen, "cannot open log file %s: %s", opt->path, strerror(errno));
    pthread_mutex_destroy(&lg->mu);
    free(lg->path);
    free(lg);
    return -1;
  }
  lg->level = opt->level;
  lg->ids = opt->ids;
  lg->also_stderr = opt->also_stderr;
  lg->syslog = opt->syslog;
  /* Per-run key: tags correlate within this run and mean nothing after. */
  randombytes_buf(lg->id_key, sizeof lg->id_key);
  *out = lg;
  return 0;
}

void chatd_log_free(chatd_log *lg)
{
  if (!lg)
    return;
  close(lg->fd);
  sodium_memzero(lg->id_key, sizeof lg->id_key);
  pthread_mutex_destroy(&lg->mu);
  free(lg->path);
  free(lg);
}
