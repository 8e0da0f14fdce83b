/* test_chatd_syslog.c: the syslog client against collectors written here:
 * UDP and TCP listeners on 127.0.0.1, one that never reads, none at all,
 * one that closes, one that appears late (D7). */
#include <errno.h>
#include <poll.h>
#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "chatd_testutil.h"
#include "log.h"
#include "syslog.h"

/* RFC 5424: <PRI>VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP
 * MSGID SP STRUCTURED-DATA [SP MSG]. Fields are 1*PRINTUSASCII of bounded
 * length; the timestamp is RFC 3339 with fractional seconds, here in UTC. */
#define RFC5424_RE                                                                     \
  "^<([0-9]{1,3})>1 "                                                                  \
  "([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z) "               \
  "([!-~]{1,255}) ([!-~]{1,48}) ([0-9]{1,128}) ([!-~]{1,32}) - (.*)$"

typedef struct record {
  int pri;
  char host[256], app[64], procid[32], msgid[64];
  char msg[CHATD_SYSLOG_RECORD_MAX + 1];
} record;

static regex_t rfc5424;

static void setup(void)
{
  ck_assert_int_eq(regcomp(&rfc5424, RFC5424_RE, REG_EXTENDED), 0);
}

static void teardown(void)
{
  regfree(&rfc5424);
}

static void copy_group(char *dst, size_t cap, const char *s, const regmatch_t *m)
{
  size_t n = (size_t)(m->rm_eo - m->rm_so);
  ck_assert_uint_lt(n, cap);
  memcpy(dst, s + m->rm_so, n);
  dst[n] = '\0';
}

/* Parse one record (len bytes, no framing); asserts it is RFC 5424. */
static void parse_record(const char *data, size_t len, record *r)
{
  char *s = malloc(len + 1);
  regmatch_t m[8];
  char pri[8];

  memcpy(s, data, len);
  s[len] = '\0';
  ck_assert_msg(strlen(s) == len, "NUL inside a record");
  ck_assert_msg(regexec(&rfc5424, s, 8, m, 0) == 0, "not RFC 5424: %s", s);
  copy_group(pri, sizeof pri, s, &m[1]);
  r->pri = atoi(pri);
  copy_group(r->host, sizeof r->host, s, &m[3]);
  copy_group(r->app, sizeof r->app, s, &m[4]);
  copy_group(r->procid, sizeof r->procid, s, &m[5]);
  copy_group(r->msgid, sizeof r->msgid, s, &m[6]);
  copy_group(r->msg, sizeof r->msg, s, &m[7]);
  free(s);
}

static chatd_syslog *client(chatd_syslog_transport t, const struct sockaddr_in *a,
                            const chatd_syslog_options *base)
{
  chatd_syslog_options o;
  chatd_syslog *sl;
  char err[256];

  if (base)
    o = *base;
  else
    memset(&o, 0, sizeof o);
  o.transport = t;
  memcpy(&o.addr, a, sizeof *a);
  o.addrlen = sizeof *a;
  if (!o.hostname)
    o.hostname = "testhost";
  ck_assert_msg(chatd_syslog_new(&sl, &o, err, sizeof err) == 0, "%s", err);
  return sl;
}

static void submit(chatd_syslog *sl, int sev, const char *msgid, const char *msg)
{
  ck_assert_int_eq(
    chatd_syslog_submit(sl, sev, "2026-11-25T21:10:28.123Z", msgid, msg, strlen(msg)), 0);
}

/* Wait until fd is readable; returns 0 on timeout. */
static int wait_readable(int fd, int ms)
{
  struct pollfd p = {fd, POLLIN, 0};
  return poll(&p, 1, ms) == 1;
}

/* ---- TCP octet-counting reader (strict) ---------------------------------- */

typedef struct tcp_reader {
  int fd;
  char buf[1 << 16];
  size_t len;
} tcp_reader;

/* Next frame "LEN SP RECORD" into r; returns 0 on timeout or EOF. */
static int tcp_next(tcp_reader *t, record *r, int timeout_ms)
{
  unsigned long long deadline = ctu_now_ms() + (unsigned long long)timeout_ms;

  for (;;) {
    char *sp = memchr(t->buf, ' ', t->len);
    if (sp) {
      size_t digits = (size_t)(sp - t->buf), n = 0;
      ck_assert_msg(digits >= 1 && digits <= 5, "bad MSG-LEN prefix");
      ck_assert_msg(t->buf[0] != '0', "MSG-LEN with a leading zero");
      for (size_t i = 0; i < digits; i++) {
        ck_assert_msg(t->buf[i] >= '0' && t->buf[i] <= '9', "MSG-LEN not a number");
        n = n * 10 + (size_t)(t->buf[i] - '0');
      }
      if (t->len >= digits + 1 + n) {
        parse_record(t->buf + digits + 1, n, r);
        memmove(t->buf, t->buf + digits + 1 + n, t->len - digits - 1 - n);
        t->len -= digits + 1 + n;
        return 1;
      }
    } else {
      ck_assert_msg(t->len <= 5, "no MSG-LEN within 5 bytes");
    }
    unsigned long long now = ctu_now_ms();
    if (now >= deadline || !wait_readable(t->fd, (int)(deadline - now)))
      return 0;
    ssize_t k = recv(t->fd, t->buf + t->len, sizeof t->buf - t->len, 0);
    if (k <= 0)
      return 0;
    t->len += (size_t)k;
  }
}

static int accept_within(int lfd, int ms)
{
  ck_assert_msg(wait_readable(lfd, ms), "no connection from the syslog client");
  int fd = accept(lfd, NULL, NULL);
  ck_assert_int_ge(fd, 0);
  return fd;
}

/* ---- Tests -------------------------------------------------------------- */

START_TEST(udp_records_are_rfc5424)
{
  struct sockaddr_in a;
  int fd = ctu_udp_socket(&a);
  chatd_syslog *sl = client(CHATD_SYSLOG_UDP, &a, NULL);
  static const int sev[] = {CHATD_SYSLOG_SEV_DEBUG, CHATD_SYSLOG_SEV_INFO,
                            CHATD_SYSLOG_SEV_WARNING, CHATD_SYSLOG_SEV_ERR};
  char msg[64], pid[32], dgram[CHATD_SYSLOG_RECORD_MAX + 64];
  record r;
  chatd_syslog_stats st;

  snprintf(pid, sizeof pid, "%ld", (long)getpid());
  for (int i = 0; i < 50; i++) {
    snprintf(msg, sizeof msg, "seq=%d peer=127.0.0.1:1", i);
    submit(sl, sev[i % 4], "connect", msg);
  }
  for (int i = 0; i < 50; i++) {
    ck_assert_msg(wait_readable(fd, 5000), "datagram %d missing", i);
    ssize_t n = recv(fd, dgram, sizeof dgram, 0);
    ck_assert_int_gt(n, 0);
    parse_record(dgram, (size_t)n, &r);
    ck_assert_int_eq(r.pri, 3 * 8 + sev[i % 4]); /* facility daemon */
    ck_assert_str_eq(r.host, "testhost");
    ck_assert_str_eq(r.app, "chatd");
    ck_assert_str_eq(r.procid, pid);
    ck_assert_str_eq(r.msgid, "connect");
    snprintf(msg, sizeof msg, "seq=%d peer=127.0.0.1:1", i);
    ck_assert_str_eq(r.msg, msg);
  }
  ck_assert_int_eq(chatd_syslog_flush(sl, 2000), 1);
  chatd_syslog_stats_get(sl, &st);
  ck_assert_uint_eq(st.submitted, 50);
  ck_assert_uint_eq(st.sent, 50);
  ck_assert_uint_eq(st.dropped, 0);
  ck_assert_uint_eq(st.queued_records, 0);
  ck_assert_int_eq(st.state, CHATD_SYSLOG_UP);
  chatd_syslog_free(sl);
  close(fd);
}
END_TEST

START_TEST(tcp_octet_counting_exact)
{
  struct sockaddr_in a;
  int lfd = ctu_tcp_listener(&a, 8), cfd;
  chatd_syslog *sl = client(CHATD_SYSLOG_TCP, &a, NULL);
  static tcp_reader rd;
  char msg[2100];
  record r;
  chatd_syslog_stats st;

  /* Lengths 0..~2000 and multi-byte UTF-8: the count is in octets. */
  for (int i = 0; i < 300; i++) {
    int pad = (i * 7) % 2000;
    int n = snprintf(msg, sizeof msg, "seq=%d caf\xc3\xa9 ", i);
    memset(msg + n, 'x', (size_t)pad);
    msg[n + pad] = '\0';
    submit(sl, CHATD_SYSLOG_SEV_INFO, "relay", msg);
  }
  cfd = accept_within(lfd, 5000);
  rd.fd = cfd;
  rd.len = 0;
  for (int i = 0; i < 300; i++) {
    char want[64];
    ck_assert_msg(tcp_next(&rd, &r, 5000), "frame %d missing", i);
    snprintf(want, sizeof want, "seq=%d caf\xc3\xa9 ", i);
    ck_assert(strncmp(r.msg, want, strlen(want)) == 0);
    ck_assert_uint_eq(strlen(r.msg), strlen(want) + (size_t)((i * 7) % 2000));
    ck_assert_str_eq(r.msgid, "relay");
    ck_assert_int_eq(r.pri, 30);
  }
  ck_assert_int_eq(chatd_syslog_flush(sl, 2000), 1);
  ck_assert_uint_eq(rd.len, 0); /* nothing after the last frame */
  chatd_syslog_stats_get(sl, &st);
  ck_assert_uint_eq(st.sent, 300);
  ck_assert_uint_eq(st.connects, 1);
  ck_assert_int_eq(st.state, CHATD_SYSLOG_UP);
  chatd_syslog_free(sl);
  close(cfd);
  close(lfd);
}
END_TEST

/* The logger forwards each record: same fields, event as MSGID. */
START_TEST(logger_forwards_records)
{
  struct sockaddr_in a;
  int fd = ctu_udp_socket(&a);
  chatd_syslog *sl = client(CHATD_SYSLOG_UDP, &a, NULL);
  char *dir = ctu_tmpdir(), path[512], err[256], dgram[8192], *text, *fields;
  chatd_log_options o;
  chatd_log *lg;
  record r;

  snprintf(path, sizeof path, "%s/l.log", dir);
  memset(&o, 0, sizeof o);
  o.path = path;
  o.level = CHATD_LOG_INFO;
  o.ids = CHATD_LOG_IDS_HASHED;
  o.syslog = sl;
  ck_assert_msg(chatd_log_new(&lg, &o, err, sizeof err) == 0, "%s", err);
  CHATD_LOG(lg, CHATD_LOG_WARN, "limit_hit", chatd_f_str("reason", "eve\n\x1b[2J"),
            chatd_f_id("user", "bob", 3));
  CHATD_LOG(lg, CHATD_LOG_DEBUG, "filtered", chatd_f_int("x", 1));
  chatd_log_write(lg, CHATD_LOG_ERROR, "nofields", NULL, 0);

  ck_assert(wait_readable(fd, 5000));
  ssize_t n = recv(fd, dgram, sizeof dgram, 0);
  ck_assert_int_gt(n, 0);
  parse_record(dgram, (size_t)n, &r);
  ck_assert_int_eq(r.pri, 3 * 8 + 4);
  ck_assert_str_eq(r.msgid, "limit_hit");
  text = ctu_read_file(path, NULL);
  fields = strstr(text, " limit_hit ");
  ck_assert_ptr_nonnull(fields);
  *strchr(fields, '\n') = '\0';
  ck_assert_str_eq(r.msg, fields + strlen(" limit_hit "));
  ck_assert_ptr_null(strstr(r.msg, "bob"));
  ck_assert_ptr_null(strchr(r.msg, '\x1b'));
  free(text);

  ck_assert(wait_readable(fd, 5000));
  n = recv(fd, dgram, sizeof dgram, 0);
  parse_record(dgram, (size_t)n, &r);
  ck_assert_str_eq(r.msgid, "nofields"); /* the debug record was filtered */
  ck_assert_str_eq(r.msg, "");
  ck_assert_int_eq(r.pri, 3 * 8 + 3);

  chatd_log_free(lg);
  chatd_syslog_free(sl);
  close(fd);
  ctu_rm_rf(dir);
  free(dir);
}
END_TEST

/* Submitting N records never blocks: returns the worst single call (ms). */
static unsigned long long flood(chatd_syslog *sl, int n, size_t size)
{
  char *msg = malloc(size + 1);
  unsigned long long worst = 0;

  memset(msg, 'm', size);
  msg[size] = '\0';
  for (int i = 0; i < n; i++) {
    unsigned long long t0 = ctu_now_ms();
    chatd_syslog_submit(sl, CHATD_SYSLOG_SEV_INFO, "2026-11-25T21:10:28.123Z", "flood", msg,
                        size);
    unsigned long long dt = ctu_now_ms() - t0;
    if (dt > worst)
      worst = dt;
  }
  free(msg);
  return worst;
}

/* D7: a collector that accepts but never reads. The kernel buffers fill,
 * then the queue, then records are dropped and counted; the caller never
 * waits, and shutdown is prompt. */
START_TEST(collector_never_reads)
{
  struct sockaddr_in a;
  int lfd = ctu_tcp_listener(&a, 8), cfd;
  chatd_syslog *sl = client(CHATD_SYSLOG_TCP, &a, NULL);
  chatd_syslog_stats st;
  unsigned long long t0, worst, t_free;
  const int n = 60000;

  cfd = accept_within(lfd, 5000); /* accepted, never read */
  t0 = ctu_now_ms();
  worst = flood(sl, n, 1000);
  ck_assert_msg(worst < 1000, "a submit call blocked for %llu ms", worst);
  ck_assert_msg(ctu_now_ms() - t0 < 20000, "flood too slow");
  chatd_syslog_stats_get(sl, &st);
  ck_assert_uint_gt(st.dropped, 0);
  ck_assert_uint_eq(st.submitted + st.dropped, (uint64_t)n);
  ck_assert_uint_le(st.queued_records, CHATD_SYSLOG_QUEUE_RECORDS);
  ck_assert_uint_le(st.queued_bytes, CHATD_SYSLOG_QUEUE_BYTES);
  /* Keep feeding until the kernel buffers are full too: then the queue
   * cannot drain any more. */
  for (int round = 0; chatd_syslog_flush(sl, 100); round++) {
    ck_assert_msg(round < 200, "the collector never filled up");
    worst = flood(sl, 2000, 1000);
    ck_assert_msg(worst < 1000, "a submit call blocked for %llu ms", worst);
  }
  chatd_syslog_stats_get(sl, &st);
  ck_assert_uint_gt(st.queued_records, 0);
  /* Stuck, the sender sleeps in poll(2): no busy loop. */
  unsigned long long cpu0 = ctu_cpu_ms();
  usleep(500 * 1000);
  ck_assert_uint_lt(ctu_cpu_ms() - cpu0, 50);

  t_free = ctu_now_ms();
  chatd_syslog_free(sl); /* the sender sits in poll(POLLOUT): must wake */
  ck_assert_uint_lt(ctu_now_ms() - t_free, 1000);
  close(cfd);
  close(lfd);
}
END_TEST

/* No collector at all (TCP refused; UDP to a closed port): same. */
START_TEST(no_collector)
{
  struct sockaddr_in a;
  chatd_syslog_options o;
  chatd_syslog *sl;
  chatd_syslog_stats st;
  unsigned long long worst;

  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(ctu_free_port());
  memset(&o, 0, sizeof o);
  o.backoff_min_ms = 10;
  o.backoff_max_ms = 50;
  sl = client(CHATD_SYSLOG_TCP, &a, &o);
  worst = flood(sl, 5000, 200);
  ck_assert_uint_lt(worst, 1000);
  unsigned long long cpu0 = ctu_cpu_ms();
  usleep(300 * 1000);
  ck_assert_uint_lt(ctu_cpu_ms() - cpu0, 50); /* retries sleep */
  chatd_syslog_stats_get(sl, &st);
  ck_assert_uint_eq(st.submitted, CHATD_SYSLOG_QUEUE_RECORDS);
  ck_assert_uint_eq(st.dropped, 5000 - CHATD_SYSLOG_QUEUE_RECORDS);
  ck_assert_uint_eq(st.sent, 0);
  ck_assert_uint_eq(st.connects, 0);
  ck_assert_uint_ge(st.failures, 2); /* retried, with backoff */
  ck_assert_uint_lt(st.failures, 100); /* ... not in a busy loop */
  ck_assert_int_ne(st.state, CHATD_SYSLOG_UP);
  chatd_syslog_free(sl);

  sl = client(CHATD_SYSLOG_UDP, &a, NULL);
  worst = flood(sl, 5000, 200);
  ck_assert_uint_lt(worst, 1000);
  ck_assert_int_eq(chatd_syslog_flush(sl, 5000), 1);
  chatd_syslog_stats_get(sl, &st);
  ck_assert_uint_eq(st.sent + st.send_errors + st.dropped, 5000);
  chatd_syslog_free(sl);
}
END_TEST

/* D7 healed: records queued while the collector is away arrive once it
 * listens; nothing queued is lost. */
START_TEST(collector_appears_later)
{
  struct sockaddr_in a;
  chatd_syslog_options o;
  chatd_syslog *sl;
  chatd_syslog_stats st;
  static tcp_reader rd;
  record r;
  int lfd, one = 1;
  char msg[32];

  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(ctu_free_port());
  memset(&o, 0, sizeof o);
  o.backoff_min_ms = 20;
  o.backoff_max_ms = 100;
  sl = client(CHATD_SYSLOG_TCP, &a, &o);
  for (int i = 0; i < 10; i++) {
    snprintf(msg, sizeof msg, "early=%d", i);
    submit(sl, CHATD_SYSLOG_SEV_INFO, "queued", msg);
  }
  usleep(150 * 1000);
  chatd_syslog_stats_get(sl, &st);
  ck_assert_uint_ge(st.failures, 1);
  ck_assert_uint_eq(st.queued_records, 10);

  lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  ck_assert_int_eq(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
  ck_assert_int_eq(listen(lfd, 8), 0);
  rd.fd = accept_within(lfd, 5000);
  rd.len = 0;
  for (int i = 0; i < 10; i++) {
    char want[32];
    ck_assert(tcp_next(&rd, &r, 5000));
    snprintf(want, sizeof want, "early=%d", i);
    ck_assert_str_eq(r.msg, want);
  }
  ck_assert_int_eq(chatd_syslog_flush(sl, 2000), 1);
  chatd_syslog_stats_get(sl, &st);
  ck_assert_uint_eq(st.connects, 1);
  ck_assert_uint_eq(st.sent, 10);
  ck_assert_uint_eq(st.dropped, 0);
  chatd_syslog_free(sl);
  close(rd.fd);
  close(lfd);
}
END_TEST

/* The collector closes the connection (restart): the client notices while
 * idle, reconnects, and later records arrive on the new connection. */
START_TEST(collector_restart_reconnects)
{
  struct sockaddr_in a;
  chatd_syslog_options o;
  int lfd = ctu_tcp_listener(&a, 8);
  chatd_syslog *sl;
  chatd_syslog_stats st;
  static tcp_reader rd;
  record r;

  memset(&o, 0, sizeof o);
  o.backoff_min_ms = 20;
  sl = client(CHATD_SYSLOG_TCP, &a, &o);
  submit(sl, CHATD_SYSLOG_SEV_INFO, "one", "n=1");
  rd.fd = accept_within(lfd, 5000);
  rd.len = 0;
  ck_assert(tcp_next(&rd, &r, 5000));
  ck_assert_str_eq(r.msg, "n=1");
  close(rd.fd);

  /* Reconnects by itself, before any new record. */
  rd.fd = accept_within(lfd, 5000);
  rd.len = 0;
  submit(sl, CHATD_SYSLOG_SEV_INFO, "two", "n=2");
  ck_assert(tcp_next(&rd, &r, 5000));
  ck_assert_str_eq(r.msg, "n=2");
  chatd_syslog_stats_get(sl, &st);
  ck_assert_uint_eq(st.connects, 2);
  ck_assert_uint_eq(st.failures, 1);
  chatd_syslog_free(sl);
  close(rd.fd);
  close(lfd);
}
END_TEST

/* A stuck connection is abandoned after stall_timeout_ms and retried. */
START_TEST(stalled_connection_replaced)
{
  struct sockaddr_in a;
  chatd_syslog_options o;
  int lfd = ctu_tcp_listener(&a, 8), c1, c2;
  chatd_syslog *sl;
  chatd_syslog_stats st;

  memset(&o, 0, sizeof o);
  o.stall_timeout_ms = 300;
  o.backoff_min_ms = 20;
  sl = client(CHATD_SYSLOG_TCP, &a, &o);
  c1 = accept_within(lfd, 5000);
  /* Keep feeding until the kernel buffers are full and writes stall; the
   * sign of the stall is the replacement connection. */
  for (int round = 0; !wait_readable(lfd, 20); round++) {
    if (round == 500) {
      chatd_syslog_stats_get(sl, &st);
      ck_abort_msg("no reconnect: sent %llu dropped %llu stalls %llu failures %llu state %d",
                   (unsigned long long)st.sent, (unsigned long long)st.dropped,
                   (unsigned long long)st.stalls, (unsigned long long)st.failures,
                   (int)st.state);
    }
    flood(sl, 1000, 1000);
  }
  c2 = accept_within(lfd, 5000); /* the replacement connection */
  /* Our accept can return before the sender thread has seen its
   * non-blocking connect complete and counted it: wait for the count. */
  for (int i = 0; i < 500; i++) {
    chatd_syslog_stats_get(sl, &st);
    if (st.connects >= 2)
      break;
    poll(NULL, 0, 10);
  }
  ck_assert_uint_ge(st.stalls, 1);
  ck_assert_uint_ge(st.connects, 2);

  /* Now read: the queue drains through the new connection. The record cut
   * on the stalled connection is resent whole, so every record counted
   * as sent is a complete frame on exactly one connection. */
  static tcp_reader r1, r2;
  record rec;
  size_t frames = 0;
  unsigned long long give_up = ctu_now_ms() + 30000;
  r2.fd = c2;
  r2.len = 0;
  for (;;) {
    while (tcp_next(&r2, &rec, 50))
      frames++;
    if (chatd_syslog_flush(sl, 1))
      break;
    ck_assert_msg(ctu_now_ms() < give_up, "the queue never drained");
  }
  chatd_syslog_stats_get(sl, &st); /* final: nothing submitted any more */
  chatd_syslog_free(sl);
  while (tcp_next(&r2, &rec, 50))
    frames++;
  r1.fd = c1;
  r1.len = 0;
  while (tcp_next(&r1, &rec, 200))
    frames++; /* a cut frame at the end of c1 is not counted */
  ck_assert_uint_eq(st.sent, st.submitted);
  ck_assert_uint_eq(frames, st.sent);
  close(c1);
  close(c2);
  close(lfd);
}
END_TEST

START_TEST(header_fields_sanitised_and_bounded)
{
  struct sockaddr_in a;
  int fd = ctu_udp_socket(&a);
  chatd_syslog_options o;
  chatd_syslog *sl;
  static char big[CHATD_SYSLOG_RECORD_MAX * 2];
  char dgram[CHATD_SYSLOG_RECORD_MAX * 2];
  record r;
  ssize_t n;

  memset(&o, 0, sizeof o);
  o.hostname = "bad host\n";
  o.app_name = "";
  sl = client(CHATD_SYSLOG_UDP, &a, &o);
  ck_assert_int_eq(chatd_syslog_submit(sl, 99, NULL, "an event name longer than thirty-two chars",
                                       "x", 1), 0);
  memset(big, 'b', sizeof big);
  ck_assert_int_eq(chatd_syslog_submit(sl, 6, "2026-11-25T21:10:28.123Z", "big", big,
                                       sizeof big), 0);

  ck_assert(wait_readable(fd, 5000));
  n = recv(fd, dgram, sizeof dgram, 0);
  dgram[n] = '\0';
  /* NILVALUE timestamp is legal RFC 5424; check the rest by hand. */
  ck_assert(strncmp(dgram, "<27>1 - bad_host_ - ", 20) == 0);
  ck_assert_ptr_nonnull(strstr(dgram, " an_event_name_longer_than_thirty - x"));

  ck_assert(wait_readable(fd, 5000));
  n = recv(fd, dgram, sizeof dgram, 0);
  ck_assert_int_eq(n, CHATD_SYSLOG_RECORD_MAX);
  parse_record(dgram, (size_t)n, &r);
  ck_assert_str_eq(r.msgid, "big");
  chatd_syslog_free(sl);
  close(fd);
}
END_TEST

START_TEST(small_queue_limits)
{
  struct sockaddr_in a;
  chatd_syslog_options o;
  chatd_syslog *sl;
  chatd_syslog_stats st;

  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(ctu_free_port());
  memset(&o, 0, sizeof o);
  o.queue_bytes = 4096;
  o.queue_records = 1000;
  o.backoff_min_ms = 5000; /* stays down: nothing leaves the queue */
  sl = client(CHATD_SYSLOG_TCP, &a, &o);
  usleep(50 * 1000);
  flood(sl, 100, 100);
  chatd_syslog_stats_get(sl, &st);
  ck_assert_uint_le(st.queued_bytes, 4096);
  ck_assert_uint_gt(st.queued_bytes, 4096 - 200);
  ck_assert_uint_eq(st.submitted, st.queued_records);
  ck_assert_uint_eq(st.dropped, 100 - st.submitted);
  chatd_syslog_free(sl);
}
END_TEST

static Suite *suite(void)
{
  Suite *s = suite_create("chatd_syslog");
  TCase *tc = tcase_create("syslog");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, udp_records_are_rfc5424);
  tcase_add_test(tc, tcp_octet_counting_exact);
  tcase_add_test(tc, logger_forwards_records);
  tcase_add_test(tc, collector_never_reads);
  tcase_add_test(tc, no_collector);
  tcase_add_test(tc, collector_appears_later);
  tcase_add_test(tc, collector_restart_reconnects);
  tcase_add_test(tc, stalled_connection_replaced);
  tcase_add_test(tc, header_fields_sanitised_and_bounded);
  tcase_add_test(tc, small_queue_limits);
  suite_add_tcase(s, tc);
  return s;
}

int main(void)
{
  return ctu_run(suite());
}
