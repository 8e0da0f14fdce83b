/* syslog.c: RFC 5424 records to a collector over UDP or TCP (RFC 6587
 * octet counting), through a bounded queue and a sender thread that never
 * lets the network push back on the caller. Contract in syslog.h. */
#include "syslog.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define REC_HDR 4u          /* u32 length before each queued record */
#define FRAME_PREFIX_MAX 8u /* "8192 " at most, octet-counting prefix */
#define MSGID_MAX 32u       /* RFC 5424 */
#define APPNAME_MAX 48u     /* RFC 5424 */
#define HOSTNAME_MAX 255u   /* RFC 5424 */

struct chatd_syslog {
  /* Fixed after chatd_syslog_new(). */
  chatd_syslog_transport transport;
  struct sockaddr_storage addr;
  socklen_t addrlen;
  char hostname[HOSTNAME_MAX + 1];
  char app[APPNAME_MAX + 1];
  long pid;
  unsigned stall_ms, backoff_min, backoff_max;
  int evfd; /* wakes the sender: new record while it sleeps, or stop */
  pthread_t thread;
  int thread_started;
  atomic_int stop;

  /* Queue and statistics, under mu. */
  pthread_mutex_t mu;
  pthread_cond_t drained; /* queue empty and nothing in flight */
  uint8_t *ring;
  size_t ring_cap, ring_head, ring_used;
  size_t nrec, max_rec;
  int sleeping; /* the sender waits for a record: wake it via evfd */
  int inflight; /* the sender holds a popped record not yet finished */
  chatd_syslog_stats st;

  /* Sender thread only. */
  int fd;
  chatd_syslog_state conn;
  uint8_t *out; /* current record, framed */
  size_t out_start, out_len, out_off; /* frame is out[out_start..out_len) */
  uint64_t deadline;     /* connect or write progress deadline */
  uint64_t next_attempt; /* DOWN: when to reconnect */
  unsigned backoff;
};

static uint64_t mono_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void set_err(char *err, size_t errlen, const char *what, int e)
{
  if (err && errlen)
    snprintf(err, errlen, "syslog: %s: %s", what, strerror(e));
}

/* Copy s into out (cap >= 2) keeping PRINTUSASCII (33..126) and replacing
 * anything else with '_'; an empty result becomes the NILVALUE "-". */
static void printusascii(char *out, size_t cap, const char *s)
{
  size_t i = 0;

  for (; s && s[i] && i + 1 < cap; i++) {
    unsigned char c = (unsigned char)s[i];
    out[i] = (c >= 33 && c <= 126) ? (char)c : '_';
  }
  if (i == 0)
    out[i++] = '-';
  out[i] = '\0';
}

const char *chatd_syslog_state_name(chatd_syslog_state st)
{
  switch (st) {
  case CHATD_SYSLOG_DOWN: return "down";
  case CHATD_SYSLOG_CONNECTING: return "connecting";
  case CHATD_SYSLOG_UP: return "up";
  }
  return "unknown";
}

/* ---- Ring of length-prefixed records (under mu) ------------------------- */

static void ring_write(chatd_syslog *sl, size_t pos, const void *src, size_t n)
{
  size_t first = sl->ring_cap - pos;

  if (first > n)
    first = n;
  memcpy(sl->ring + pos, src, first);
  memcpy(sl->ring, (const uint8_t *)src + first, n - first);
}

static void ring_read(chatd_syslog *sl, size_t pos, void *dst, size_t n)
{
  size_t first = sl->ring_cap - pos;

  if (first > n)
    first = n;
  memcpy(dst, sl->ring + pos, first);
  memcpy((uint8_t *)dst + first, sl->ring, n - first);
}

static int ring_push(chatd_syslog *sl, const void *rec, size_t n)
{
  uint32_t len = (uint32_t)n;
  size_t tail;

  if (sl->nrec >= sl->max_rec || sl->ring_used + REC_HDR + n > sl->ring_cap)
    return -1;
  tail = (sl->ring_head + sl->ring_used) % sl->ring_cap;
  ring_write(sl, tail, &len, REC_HDR);
  ring_write(sl, (tail + REC_HDR) % sl->ring_cap, rec, n);
  sl->ring_used += REC_HDR + n;
  sl->nrec++;
  return 0;
}

/* Pop the oldest record into dst (CHATD_SYSLOG_RECORD_MAX bytes). */
static size_t ring_pop(chatd_syslog *sl, uint8_t *dst)
{
  uint32_t len;

  ring_read(sl, sl->ring_head, &len, REC_HDR);
  ring_read(sl, (sl->ring_head + REC_HDR) % sl->ring_cap, dst, len);
  sl->ring_head = (sl->ring_head + REC_HDR + len) % sl->ring_cap;
  sl->ring_used -= REC_HDR + len;
  sl->nrec--;
  return len;
}

/* ---- Producer side ------------------------------------------------------ */

int chatd_syslog_submit(chatd_syslog *sl, int severity, const char *timestamp,
                        const char *msgid, const char *msg, size_t len)
{
  char rec[CHATD_SYSLOG_RECORD_MAX];
  char mid[MSGID_MAX + 1];
  uint64_t one = 1;
  int hdr, wake;
  size_t n;

  if (severity < 0 || severity > 7)
    severity = CHATD_SYSLOG_SEV_ERR;
  printusascii(mid, sizeof mid, msgid);
  hdr = snprintf(rec, sizeof rec, "<%d>1 %s %s %s %ld %s - ",
                 CHATD_SYSLOG_FACILITY_DAEMON * 8 + severity,
                 timestamp && *timestamp ? timestamp : "-", sl->hostname, sl->app, sl->pid,
                 mid);
  if (hdr < 0 || (size_t)hdr >= sizeof rec)
    return -1; /* cannot happen: every header part is bounded */
  n = (size_t)hdr;
  if (len > sizeof rec - n)
    len = sizeof rec - n;
  memcpy(rec + n, msg, len);
  n += len;

  pthread_mutex_lock(&sl->mu);
  if (ring_push(sl, rec, n) != 0) {
    sl->st.dropped++;
    pthread_mutex_unlock(&sl->mu);
    return -1;
  }
  sl->st.submitted++;
  wake = sl->sleeping;
  sl->sleeping = 0;
  pthread_mutex_unlock(&sl->mu);
  if (wake && write(sl->evfd, &one, sizeof one) < 0) {
    /* Only fails when the counter is saturated: the sender is awake. */
  }
  return 0;
}

void chatd_syslog_stats_get(chatd_syslog *sl, chatd_syslog_stats *out)
{
  pthread_mutex_lock(&sl->mu);
  *out = sl->st;
  out->queued_records = sl->nrec;
  out->queued_bytes = sl->ring_used;
  pthread_mutex_unlock(&sl->mu);
}

/* ---- Sender thread ------------------------------------------------------ */

static void set_conn(chatd_syslog *sl, chatd_syslog_state st)
{
  sl->conn = st;
  pthread_mutex_lock(&sl->mu);
  sl->st.state = st;
  if (st == CHATD_SYSLOG_UP && sl->transport == CHATD_SYSLOG_TCP)
    sl->st.connects++;
  pthread_mutex_unlock(&sl->mu);
}

/* Take the next record into out, framed for the transport. Returns 0 and
 * marks the sender as sleeping when the queue is empty. */
static int take_record(chatd_syslog *sl)
{
  uint8_t *body = sl->out + FRAME_PREFIX_MAX;
  size_t n, plen = 0;
  char prefix[FRAME_PREFIX_MAX + 1] = "";

  pthread_mutex_lock(&sl->mu);
  if (sl->nrec == 0) {
    sl->sleeping = 1;
    pthread_mutex_unlock(&sl->mu);
    return 0;
  }
  n = ring_pop(sl, body);
  sl->inflight = 1;
  pthread_mutex_unlock(&sl->mu);

  /* RFC 6587 octet counting: MSG-LEN SP SYSLOG-MSG. The record is placed
   * after a gap so the prefix can be written right in front of it. */
  if (sl->transport == CHATD_SYSLOG_TCP)
    plen = (size_t)snprintf(prefix, sizeof prefix, "%zu ", n);
  memcpy(body - plen, prefix, plen);
  sl->out_start = sl->out_off = FRAME_PREFIX_MAX - plen;
  sl->out_len = FRAME_PREFIX_MAX + n;
  return 1;
}

/* The current record is finished: sent (ok) or given up (lost). */
static void record_done(chatd_syslog *sl, int ok)
{
  sl->out_start = sl->out_off = sl->out_len = 0;
  if (ok)
    sl->backoff = sl->backoff_min; /* the collector really works again */
  pthread_mutex_lock(&sl->mu);
  if (ok)
    sl->st.sent++;
  else
    sl->st.send_errors++;
  sl->inflight = 0;
  if (sl->nrec == 0)
    pthread_cond_broadcast(&sl->drained);
  pthread_mutex_unlock(&sl->mu);
}

static void conn_fail(chatd_syslog *sl, uint64_t now, int stalled)
{
  if (sl->fd >= 0)
    close(sl->fd);
  sl->fd = -1;
  /* A partly written record is resent whole on the next connection: the
   * collector discards the cut frame with the broken connection. */
  sl->out_off = sl->out_start;
  pthread_mutex_lock(&sl->mu);
  if (stalled)
    sl->st.stalls++;
  else
    sl->st.failures++;
  pthread_mutex_unlock(&sl->mu);
  set_conn(sl, CHATD_SYSLOG_DOWN);
  sl->next_attempt = now + sl->backoff;
  sl->backoff = sl->backoff * 2 > sl->backoff_max ? sl->backoff_max : sl->backoff * 2;
}

static void conn_start(chatd_syslog *sl, uint64_t now)
{
  sl->fd = socket(sl->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (sl->fd < 0) {
    conn_fail(sl, now, 0);
    return;
  }
  if (connect(sl->fd, (const struct sockaddr *)&sl->addr, sl->addrlen) == 0) {
    set_conn(sl, CHATD_SYSLOG_UP);
  } else if (errno == EINPROGRESS) {
    sl->deadline = now + sl->stall_ms;
    set_conn(sl, CHATD_SYSLOG_CONNECTING);
  } else {
    conn_fail(sl, now, 0);
  }
}

static void conn_check(chatd_syslog *sl, uint64_t now)
{
  int e = 0;
  socklen_t elen = sizeof e;

  if (getsockopt(sl->fd, SOL_SOCKET, SO_ERROR, &e, &elen) != 0 || e != 0)
    conn_fail(sl, now, 0);
  else
    set_conn(sl, CHATD_SYSLOG_UP);
}

/* One send attempt. Returns 1 on progress (or a UDP record given up), 0
 * when the socket is full, -1 when the TCP connection broke. */
static int send_some(chatd_syslog *sl)
{
  const uint8_t *p = sl->out + sl->out_off;
  size_t n = sl->out_len - sl->out_off;
  ssize_t w;

  if (sl->transport == CHATD_SYSLOG_UDP)
    w = sendto(sl->fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL, (const struct sockaddr *)&sl->addr,
               sl->addrlen);
  else
    w = send(sl->fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
  if (w < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS || errno == EINTR)
      return 0;
    if (sl->transport == CHATD_SYSLOG_TCP)
      return -1;
    record_done(sl, 0); /* UDP: the datagram is lost, move on */
    return 1;
  }
  sl->out_off += (size_t)w;
  sl->deadline = mono_ms() + sl->stall_ms;
  if (sl->out_off == sl->out_len)
    record_done(sl, 1);
  return 1;
}

/* Idle TCP connection became readable: the collector closed it (or sent
 * something, which syslog collectors do not; it is discarded). */
static void conn_drain(chatd_syslog *sl, uint64_t now)
{
  uint8_t buf[512];
  ssize_t r = recv(sl->fd, buf, sizeof buf, MSG_DONTWAIT);

  if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
    conn_fail(sl, now, 0);
}

/* One step of the sender: returns after doing work or after one poll(2). */
static void sender_step(chatd_syslog *sl)
{
  uint64_t now = mono_ms();
  struct pollfd pf[2] = {{sl->evfd, POLLIN, 0}, {-1, 0, 0}};
  int timeout = -1, r;

  switch (sl->conn) {
  case CHATD_SYSLOG_DOWN:
    if (now >= sl->next_attempt) {
      conn_start(sl, now);
      return;
    }
    timeout = (int)(sl->next_attempt - now);
    break;
  case CHATD_SYSLOG_CONNECTING:
    if (now >= sl->deadline) {
      conn_fail(sl, now, 0); /* connect timed out */
      return;
    }
    pf[1].fd = sl->fd, pf[1].events = POLLOUT;
    timeout = (int)(sl->deadline - now);
    break;
  case CHATD_SYSLOG_UP:
    if (sl->out_off == sl->out_len) {
      if (take_record(sl)) {
        sl->deadline = now + sl->stall_ms;
        return;
      }
      if (sl->transport == CHATD_SYSLOG_TCP)
        pf[1].fd = sl->fd, pf[1].events = POLLIN;
      break; /* sleep until a record arrives (evfd) */
    }
    r = send_some(sl);
    if (r > 0)
      return;
    if (r < 0) {
      conn_fail(sl, now, 0);
      return;
    }
    if (now >= sl->deadline) {
      if (sl->transport == CHATD_SYSLOG_TCP)
        conn_fail(sl, now, 1);
      else
        record_done(sl, 0);
      return;
    }
    pf[1].fd = sl->fd, pf[1].events = POLLOUT;
    timeout = (int)(sl->deadline - now);
    break;
  }

  if (poll(pf, pf[1].fd >= 0 ? 2 : 1, timeout) <= 0)
    return; /* timeout or EINTR: the next step re-evaluates */
  if (pf[0].revents & POLLIN) {
    uint64_t v;
    if (read(sl->evfd, &v, sizeof v) < 0) {
      /* EAGAIN: already drained */
    }
  }
  if (pf[1].fd < 0 || !pf[1].revents)
    return;
  now = mono_ms();
  if (sl->conn == CHATD_SYSLOG_CONNECTING)
    conn_check(sl, now);
  else if (pf[1].events == POLLIN)
    conn_drain(sl, now);
  /* POLLOUT (or POLLERR/POLLHUP while writing): the next send reports. */
}

static void *sender_main(void *arg)
{
  chatd_syslog *sl = arg;

  while (!atomic_load(&sl->stop))
    sender_step(sl);
  return NULL;
}

/* ---- Lifecycle ---------------------------------------------------------- */

static int init_sync(chatd_syslog *sl)
{
  pthread_condattr_t ca;
  int ok;

  if (pthread_mutex_init(&sl->mu, NULL) != 0)
    return -1;
  if (pthread_condattr_init(&ca) != 0) {
    pthread_mutex_destroy(&sl->mu);
    return -1;
  }
  ok = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 &&
       pthread_cond_init(&sl->drained, &ca) == 0;
  pthread_condattr_destroy(&ca);
  if (!ok) {
    pthread_mutex_destroy(&sl->mu);
    return -1;
  }
  return 0;
}

static void set_identity(chatd_syslog *sl, const chatd_syslog_options *opt)
{
  char host[HOSTNAME_MAX + 1] = "";

  if (opt->hostname) {
    printusascii(sl->hostname, sizeof sl->hostname, opt->hostname);
  } else {
    if (gethostname(host, sizeof host) != 0)
      host[0] = '\0';
    host[sizeof host - 1] = '\0';
    printusascii(sl->hostname, sizeof sl->hostname, host);
  }
  printusascii(sl->app, sizeof sl->app, opt->app_name ? opt->app_name : "chatd");
  sl->pid = (long)getpid();
}

int chatd_syslog_new(chatd_syslog **out, const chatd_syslog_options *opt, char *err,
                     size_t errlen)
{
  chatd_syslog *sl;
  int e;

  *out = NULL;
  if (opt->transport != CHATD_SYSLOG_UDP && opt->transport != CHATD_SYSLOG_TCP) {
    set_err(err, errlen, "transport", EINVAL);
    return -1;
  }
  if (opt->addrlen == 0 || opt->addrlen > sizeof opt->addr) {
    set_err(err, errlen, "collector address", EINVAL);
    return -1;
  }
  sl = calloc(1, sizeof *sl);
  if (!sl) {
    set_err(err, errlen, "allocation", ENOMEM);
    return -1;
  }
  sl->fd = sl->evfd = -1;
  sl->transport = opt->transport;
  sl->addr = opt->addr;
  sl->addrlen = opt->addrlen;
  sl->stall_ms = opt->stall_timeout_ms ? opt->stall_timeout_ms : 30000u;
  sl->backoff_min = opt->backoff_min_ms ? opt->backoff_min_ms : 100u;
  sl->backoff_max = opt->backoff_max_ms ? opt->backoff_max_ms : 30000u;
  if (sl->backoff_max < sl->backoff_min)
    sl->backoff_max = sl->backoff_min;
  sl->backoff = sl->backoff_min;
  sl->max_rec = opt->queue_records ? opt->queue_records : CHATD_SYSLOG_QUEUE_RECORDS;
  sl->ring_cap = opt->queue_bytes ? opt->queue_bytes : CHATD_SYSLOG_QUEUE_BYTES;
  set_identity(sl, opt);

  if (init_sync(sl) != 0) {
    free(sl);
    set_err(err, errlen, "mutex", ENOMEM);
    return -1;
  }
  sl->ring = malloc(sl->ring_cap);
  sl->out = malloc(FRAME_PREFIX_MAX + CHATD_SYSLOG_RECORD_MAX);
  sl->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (!sl->ring || !sl->out || sl->evfd < 0) {
    set_err(err, errlen, sl->evfd < 0 ? "eventfd" : "allocation", sl->evfd < 0 ? errno : ENOMEM);
    goto fail;
  }
  if (sl->transport == CHATD_SYSLOG_UDP) {
    sl->fd = socket(sl->addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (sl->fd < 0) {
      set_err(err, errlen, "UDP socket", errno);
      goto fail;
    }
    sl->conn = sl->st.state = CHATD_SYSLOG_UP;
  } else {
    sl->conn = sl->st.state = CHATD_SYSLOG_DOWN; /* first attempt at once */
  }
  e = pthread_create(&sl->thread, NULL, sender_main, sl);
  if (e != 0) {
    set_err(err, errlen, "sender thread", e);
    goto fail;
  }
  sl->thread_started = 1;
  *out = sl;
  return 0;

fail:
  chatd_syslog_free(sl);
  return -1;
}

int chatd_syslog_flush(chatd_syslog *sl, unsigned timeout_ms)
{
  struct timespec until;
  int drained;

  clock_gettime(CLOCK_MONOTONIC, &until);
  until.tv_sec += timeout_ms / 1000u;
  until.tv_nsec += (long)(timeout_ms % 1000u) * 1000000L;
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&sl->mu);
  while ((sl->nrec > 0 || sl->inflight) &&
         pthread_cond_timedwait(&sl->drained, &sl->mu, &until) != ETIMEDOUT) {
  }
  drained = sl->nrec == 0 && !sl->inflight;
  pthread_mutex_unlock(&sl->mu);
  return drained;
}

void chatd_syslog_free(chatd_syslog *sl)
{
  uint64_t one = 1;

  if (!sl)
    return;
  if (sl->thread_started) {
    atomic_store(&sl->stop, 1);
    if (write(sl->evfd, &one, sizeof one) < 0) {
      /* saturated counter: the thread wakes anyway */
    }
    pthread_join(sl->thread, NULL);
  }
  if (sl->fd >= 0)
    close(sl->fd);
  if (sl->evfd >= 0)
    close(sl->evfd);
  free(sl->ring);
  free(sl->out);
  pthread_cond_destroy(&sl->drained);
  pthread_mutex_destroy(&sl->mu);
  free(sl);
}
