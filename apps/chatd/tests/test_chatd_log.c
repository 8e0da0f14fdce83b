/* test_chatd_log.c: the file logger: format, escaping, levels, identity
 * hashing, concurrency, reopen. */
#include <pthread.h>
#include <regex.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "chatd_testutil.h"
#include "log.h"

/* One record: timestamp, level, event, then bare or quoted fields. The
 * quoted form admits only escapes and printable bytes (no raw '"'). */
#define LINE_RE                                                                \
  "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "        \
  "(debug|info|warn|error) [A-Za-z0-9_.-]+"                                    \
  "( [A-Za-z0-9_.-]+=([A-Za-z0-9._:/@+-]+|\"([^\"\\\\]|\\\\.)*\"))*( \\.\\.\\.)?$"

static char *dir;
static char path[512];
static regex_t line_re;

static void setup(void)
{
  dir = ctu_tmpdir();
  snprintf(path, sizeof path, "%s/chatd.log", dir);
  ck_assert_int_eq(regcomp(&line_re, LINE_RE, REG_EXTENDED | REG_NOSUB), 0);
}

static void teardown(void)
{
  regfree(&line_re);
  ctu_rm_rf(dir);
  free(dir);
}

static chatd_log *open_log(const char *p, chatd_log_level level, chatd_log_ids ids)
{
  chatd_log_options o = {p, level, ids, NULL, 0};
  chatd_log *lg;
  char err[256];

  ck_assert_msg(chatd_log_new(&lg, &o, err, sizeof err) == 0, "%s", err);
  return lg;
}

/* Split a file into lines (in place); returns the count. Every line must
 * end with '\n'. */
static size_t split_lines(char *text, char **lines, size_t max)
{
  size_t n = 0;
  char *nl;

  while (*text) {
    nl = strchr(text, '\n');
    ck_assert_msg(nl != NULL, "unterminated last line: %s", text);
    *nl = '\0';
    ck_assert_uint_lt(n, max);
    lines[n++] = text;
    text = nl + 1;
  }
  return n;
}

static void assert_well_formed(const char *line)
{
  ck_assert_msg(regexec(&line_re, line, 0, NULL, 0) == 0, "malformed line: %s", line);
  ck_assert_uint_lt(strlen(line), CHATD_LOG_LINE_MAX);
}

START_TEST(line_format_and_mode)
{
  chatd_log *lg;
  char *text, *lines[8];
  struct stat st;
  struct tm tm;
  time_t now = time(NULL), logged;

  umask(0);
  lg = open_log(path, CHATD_LOG_INFO, CHATD_LOG_IDS_HASHED);
  umask(022);
  CHATD_LOG(lg, CHATD_LOG_INFO, "connect", chatd_f_str("peer", "127.0.0.1:50112"),
            chatd_f_int("fd", -3), chatd_f_uint("n", 18446744073709551615ull),
            chatd_f_str("reason", "two words"), chatd_f_str("empty", ""));
  chatd_log_write(lg, CHATD_LOG_WARN, "bare", NULL, 0);
  chatd_log_free(lg);

  ck_assert_int_eq(stat(path, &st), 0);
  ck_assert_uint_eq(st.st_mode & 07777, 0600);
  text = ctu_read_file(path, NULL);
  ck_assert_uint_eq(split_lines(text, lines, 8), 2);
  assert_well_formed(lines[0]);
  assert_well_formed(lines[1]);
  ck_assert_str_eq(lines[0] + 24, " info connect peer=127.0.0.1:50112 fd=-3 "
                                  "n=18446744073709551615 reason=\"two words\" empty=\"\"");
  ck_assert_str_eq(lines[1] + 24, " warn bare");
  /* The timestamp is now, in UTC. */
  memset(&tm, 0, sizeof tm);
  ck_assert_ptr_nonnull(strptime(lines[0], "%Y-%m-%dT%H:%M:%S", &tm));
  logged = timegm(&tm);
  ck_assert_int_le(labs((long)(logged - now)), 5);
  free(text);
}
END_TEST

START_TEST(level_filter)
{
  chatd_log *lg = open_log(path, CHATD_LOG_WARN, CHATD_LOG_IDS_HASHED);
  char *text, *lines[8];

  ck_assert_int_eq(chatd_log_enabled(lg, CHATD_LOG_INFO), 0);
  ck_assert_int_eq(chatd_log_enabled(lg, CHATD_LOG_ERROR), 1);
  CHATD_LOG(lg, CHATD_LOG_DEBUG, "d", chatd_f_int("x", 1));
  CHATD_LOG(lg, CHATD_LOG_INFO, "i", chatd_f_int("x", 2));
  CHATD_LOG(lg, CHATD_LOG_WARN, "w", chatd_f_int("x", 3));
  CHATD_LOG(lg, CHATD_LOG_ERROR, "e", chatd_f_int("x", 4));
  chatd_log_free(lg);
  text = ctu_read_file(path, NULL);
  ck_assert_uint_eq(split_lines(text, lines, 8), 2);
  ck_assert_str_eq(lines[0] + 24, " warn w x=3");
  ck_assert_str_eq(lines[1] + 24, " error e x=4");
  free(text);
}
END_TEST

/* D8: every user-controlled string stays on its one, escaped line. */
START_TEST(d8_injection_stays_on_one_line)
{
  static const char *const evil[] = {
    "eve\n2026-01-01T00:00:00.000Z info auth_ok user=admin",
    "eve\r\rforged",
    "\x1b[2J\x1b[H",
    "\x1b]52;c;SGVsbG8=\x07",
    ("abc\xe2\x80\xae" "fdp.exe"),
    "quote\" injected=\"x",
    "back\\slash",
  };
  const size_t n = sizeof evil / sizeof evil[0];
  chatd_log *lg = open_log(path, CHATD_LOG_INFO, CHATD_LOG_IDS_PLAIN);
  char *text, *lines[16];

  for (size_t i = 0; i < n; i++)
    CHATD_LOG(lg, CHATD_LOG_INFO, "auth_fail", chatd_f_id("user", evil[i], strlen(evil[i])),
              chatd_f_str("reason", evil[i]), chatd_f_bytes("room", evil[i], strlen(evil[i])));
  chatd_log_free(lg);
  text = ctu_read_file(path, NULL);
  ck_assert_ptr_null(strchr(text, '\x1b'));
  ck_assert_ptr_null(strchr(text, '\r'));
  ck_assert_ptr_null(strstr(text, "\xe2\x80\xae"));
  ck_assert_uint_eq(split_lines(text, lines, 16), n);
  for (size_t i = 0; i < n; i++)
    assert_well_formed(lines[i]);
  ck_assert_ptr_nonnull(strstr(lines[0], " reason=\"eve\\x0a2026-01-01T00:00:00.000Z info "));
  ck_assert_ptr_nonnull(strstr(lines[2], " reason=\"\\x1b[2J\\x1b[H\""));
  ck_assert_ptr_nonnull(strstr(lines[3], " reason=\"\\x1b]52;c;SGVsbG8=\\x07\""));
  ck_assert_ptr_nonnull(strstr(lines[4], " reason=\"abc\\u{202E}fdp.exe\""));
  ck_assert_ptr_nonnull(strstr(lines[5], " reason=\"quote\\\" injected=\\\"x\""));
  free(text);
}
END_TEST

START_TEST(hashed_identities)
{
  chatd_log *a = open_log(path, CHATD_LOG_INFO, CHATD_LOG_IDS_HASHED);
  chatd_log *b = open_log(path, CHATD_LOG_INFO, CHATD_LOG_IDS_HASHED);
  chatd_log *p = open_log(path, CHATD_LOG_INFO, CHATD_LOG_IDS_PLAIN);
  char t1[64], t2[64], t3[64], t4[64], t5[64];
  regex_t re;
  char *text;

  ck_assert_int_eq(regcomp(&re, "^h:[0-9a-f]{16}$", REG_EXTENDED | REG_NOSUB), 0);
  chatd_log_identity(a, "alice", 5, t1, sizeof t1);
  chatd_log_identity(a, "alice", 5, t2, sizeof t2);
  chatd_log_identity(a, "alicf", 5, t3, sizeof t3);
  chatd_log_identity(b, "alice", 5, t4, sizeof t4);
  chatd_log_identity(p, "alice", 5, t5, sizeof t5);
  ck_assert_int_eq(regexec(&re, t1, 0, NULL, 0), 0);
  ck_assert_str_eq(t1, t2);    /* stable within a run */
  ck_assert_str_ne(t1, t3);    /* distinct identities, distinct tags */
  ck_assert_str_ne(t1, t4);    /* new key per run: no lasting record */
  ck_assert_str_eq(t5, "alice");
  regfree(&re);

  /* In the file: the tag, never the name. */
  CHATD_LOG(a, CHATD_LOG_INFO, "register", chatd_f_id("user", "alice", 5));
  CHATD_LOG(a, CHATD_LOG_INFO, "register", chatd_f_id("user", "alice", 5));
  chatd_log_free(a);
  chatd_log_free(b);
  chatd_log_free(p);
  text = ctu_read_file(path, NULL);
  ck_assert_ptr_null(strstr(text, "alice"));
  {
    char want[128];
    snprintf(want, sizeof want, " info register user=%s\n", t1);
    char *first = strstr(text, want);
    ck_assert_ptr_nonnull(first);
    ck_assert_ptr_nonnull(strstr(first + 1, want));
  }
  free(text);
}
END_TEST

START_TEST(long_records_capped)
{
  chatd_log *lg = open_log(path, CHATD_LOG_INFO, CHATD_LOG_IDS_HASHED);
  static char big[20000];
  chatd_field f[20];
  char *text, *lines[4];

  memset(big, '\n', sizeof big - 1);
  for (int i = 0; i < 20; i++)
    f[i] = chatd_f_str("v", big);
  chatd_log_write(lg, CHATD_LOG_INFO, "huge", f, 20);
  chatd_log_free(lg);
  text = ctu_read_file(path, NULL);
  ck_assert_uint_le(strlen(text), CHATD_LOG_LINE_MAX);
  ck_assert_uint_eq(split_lines(text, lines, 4), 1);
  assert_well_formed(lines[0]);
  /* Each value is cut at CHATD_LOG_VALUE_MAX with "...", and the record
   * ends in " ..." once no further field fits. */
  ck_assert_ptr_nonnull(strstr(lines[0], "\\x0a...\" v="));
  ck_assert(strcmp(lines[0] + strlen(lines[0]) - 4, " ...") == 0);
  free(text);
}
END_TEST

START_TEST(odd_event_and_key_names_sanitised)
{
  chatd_log *lg = open_log(path, CHATD_LOG_INFO, CHATD_LOG_IDS_HASHED);
  char *text;

  CHATD_LOG(lg, CHATD_LOG_INFO, "bad event\n", chatd_f_int("k=y z", 1));
  chatd_log_free(lg);
  text = ctu_read_file(path, NULL);
  ck_assert_ptr_nonnull(strstr(text, " info bad_event_ k_y_z=1\n"));
  free(text);
}
END_TEST

/* ---- Concurrency: lines never interleave -------------------------------- */

#define THREADS 8
#define PER_THREAD 2000

static chatd_log *shared;

static void *writer(void *arg)
{
  long t = (long)(intptr_t)arg;
  char pad[401]; /* 4 x 400 bytes: long lines, each value under the cap */

  memset(pad, 'a' + (int)t, sizeof pad - 1);
  pad[sizeof pad - 1] = '\0';
  for (int i = 0; i < PER_THREAD; i++)
    CHATD_LOG(shared, CHATD_LOG_INFO, "tick", chatd_f_int("t", t), chatd_f_int("i", i),
              chatd_f_str("pad", pad), chatd_f_str("pad", pad), chatd_f_str("pad", pad),
              chatd_f_str("pad", pad));
  return NULL;
}

START_TEST(concurrent_writers_one_line_per_record)
{
  pthread_t th[THREADS];
  int next[THREADS] = {0};
  static char *lines[THREADS * PER_THREAD + 1];
  char *text;
  size_t n;
  chatd_log_stats st;

  shared = open_log(path, CHATD_LOG_INFO, CHATD_LOG_IDS_HASHED);
  for (long t = 0; t < THREADS; t++)
    ck_assert_int_eq(pthread_create(&th[t], NULL, writer, (void *)(intptr_t)t), 0);
  for (int t = 0; t < THREADS; t++)
    pthread_join(th[t], NULL);
  chatd_log_stats_get(shared, &st);
  ck_assert_uint_eq(st.records, THREADS * PER_THREAD);
  ck_assert_uint_eq(st.write_errors, 0);
  chatd_log_free(shared);

  text = ctu_read_file(path, NULL);
  n = split_lines(text, lines, THREADS * PER_THREAD + 1);
  ck_assert_uint_eq(n, THREADS * PER_THREAD);
  for (size_t k = 0; k < n; k++) {
    int t, i;
    const char *pad;
    assert_well_formed(lines[k]);
    ck_assert_int_eq(sscanf(lines[k] + 24, " info tick t=%d i=%d", &t, &i), 2);
    ck_assert(t >= 0 && t < THREADS);
    ck_assert_int_eq(i, next[t]); /* per-thread order kept */
    next[t]++;
    pad = lines[k];
    for (int p = 0; p < 4; p++) {
      pad = strstr(pad, " pad=");
      ck_assert_ptr_nonnull(pad);
      pad += 5;
      ck_assert_uint_eq(strspn(pad, (char[]){(char)('a' + t), 0}), 400);
    }
  }
  free(text);
}
END_TEST

/* ---- Reopen ------------------------------------------------------------- */

static chatd_log *hup_target;

static void on_hup(int sig)
{
  (void)sig;
  chatd_log_request_reopen(hup_target);
}

START_TEST(reopen_after_rename)
{
  char rotated[600], *text;
  chatd_log *lg = open_log(path, CHATD_LOG_INFO, CHATD_LOG_IDS_HASHED);
  chatd_log_stats st;
  struct stat sb;

  snprintf(rotated, sizeof rotated, "%s.1", path);
  CHATD_LOG(lg, CHATD_LOG_INFO, "before", chatd_f_int("n", 1));
  ck_assert_int_eq(rename(path, rotated), 0);
  CHATD_LOG(lg, CHATD_LOG_INFO, "still_old", chatd_f_int("n", 2)); /* no reopen yet */
  ck_assert_int_eq(chatd_log_reopen(lg), 0);
  CHATD_LOG(lg, CHATD_LOG_INFO, "after", chatd_f_int("n", 3));

  text = ctu_read_file(rotated, NULL);
  ck_assert_ptr_nonnull(strstr(text, " before n=1\n"));
  ck_assert_ptr_nonnull(strstr(text, " still_old n=2\n"));
  ck_assert_ptr_null(strstr(text, "after"));
  free(text);
  text = ctu_read_file(path, NULL);
  ck_assert_ptr_nonnull(strstr(text, " after n=3\n"));
  ck_assert_ptr_null(strstr(text, "before"));
  free(text);
  ck_assert_int_eq(stat(path, &sb), 0);
  ck_assert_uint_eq(sb.st_mode & 07777, 0600);

  /* SIGHUP path: the handler only sets the flag; the next write reopens. */
  hup_target = lg;
  signal(SIGHUP, on_hup);
  ck_assert_int_eq(rename(path, rotated), 0);
  raise(SIGHUP);
  CHATD_LOG(lg, CHATD_LOG_INFO, "after_hup", chatd_f_int("n", 4));
  text = ctu_read_file(path, NULL);
  ck_assert_ptr_nonnull(text);
  ck_assert_ptr_nonnull(strstr(text, " after_hup n=4\n"));
  ck_assert_ptr_null(strstr(text, "after n=3"));
  free(text);
  chatd_log_stats_get(lg, &st);
  ck_assert_uint_eq(st.reopens, 2);
  ck_assert_uint_eq(st.reopen_errors, 0);

  /* A failed reopen keeps the old file in use and is counted. */
  ck_assert_int_eq(unlink(path), 0);
  ck_assert_int_eq(mkdir(path, 0700), 0); /* a directory where the file was */
  ck_assert_int_lt(chatd_log_reopen(lg), 0);
  CHATD_LOG(lg, CHATD_LOG_INFO, "kept", chatd_f_int("n", 5));
  chatd_log_stats_get(lg, &st);
  ck_assert_uint_eq(st.reopen_errors, 1);
  ck_assert_uint_eq(st.write_errors, 0);
  chatd_log_free(lg);
}
END_TEST

START_TEST(open_failure_names_file)
{
  char bad[600], err[1024];
  chatd_log_options o = {bad, CHATD_LOG_INFO, CHATD_LOG_IDS_HASHED, NULL, 0};
  chatd_log *lg;

  snprintf(bad, sizeof bad, "%s/no/such/dir/chatd.log", dir);
  ck_assert_int_eq(chatd_log_new(&lg, &o, err, sizeof err), -1);
  ck_assert_ptr_null(lg);
  ck_assert_ptr_nonnull(strstr(err, bad));
  ck_assert_ptr_nonnull(strstr(err, "No such file or directory"));
}
END_TEST

START_TEST(parsers)
{
  chatd_log_level l;
  chatd_log_ids ids;

  ck_assert_int_eq(chatd_log_level_parse("debug", &l), 0);
  ck_assert_int_eq(l, CHATD_LOG_DEBUG);
  ck_assert_int_eq(chatd_log_level_parse("error", &l), 0);
  ck_assert_int_eq(l, CHATD_LOG_ERROR);
  ck_assert_int_eq(chatd_log_level_parse("warning", &l), -1);
  ck_assert_int_eq(chatd_log_ids_parse("plain", &ids), 0);
  ck_assert_int_eq(ids, CHATD_LOG_IDS_PLAIN);
  ck_assert_int_eq(chatd_log_ids_parse("", &ids), -1);
  ck_assert_str_eq(chatd_log_level_name(CHATD_LOG_WARN), "warn");
}
END_TEST

static Suite *suite(void)
{
  Suite *s = suite_create("chatd_log");
  TCase *tc = tcase_create("log");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, line_format_and_mode);
  tcase_add_test(tc, level_filter);
  tcase_add_test(tc, d8_injection_stays_on_one_line);
  tcase_add_test(tc, hashed_identities);
  tcase_add_test(tc, long_records_capped);
  tcase_add_test(tc, odd_event_and_key_names_sanitised);
  tcase_add_test(tc, concurrent_writers_one_line_per_record);
  tcase_add_test(tc, reopen_after_rename);
  tcase_add_test(tc, open_failure_names_file);
  tcase_add_test(tc, parsers);
  suite_add_tcase(s, tc);
  return s;
}

int main(void)
{
  return ctu_run(suite());
}
