/* worker.c: one relay worker thread (see worker.h). */
#include "worker.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* The core's iovecs go straight to sendmsg(). */
_Static_assert(sizeof(secchat_iovec) == sizeof(struct iovec), "secchat_iovec != iovec");
_Static_assert(offsetof(secchat_iovec, base) == offsetof(struct iovec, iov_base), "iov_base");
_Static_assert(offsetof(secchat_iovec, len) == offsetof(struct iovec, iov_len), "iov_len");

#define MAX_EVENTS 256
#define MAX_IOV 64
#define READ_BUF (64u * 1024u)

/* ---- inbox ---------------------------------------------------------------- */

typedef struct job {
  atomic_uint refs;
  size_t len;
  uint8_t data[];
} job;

enum { MSG_CONN = 1, MSG_FANOUT = 2 };

typedef struct msg {
  struct msg *next;
  int type;
  int fd;                    /* MSG_CONN */
  socklen_t peer_len;
  struct sockaddr_storage peer;
  chatd_ipkey ip;
  job *job;                  /* MSG_FANOUT */
  uint64_t queued_ms;        /* MSG_FANOUT: monotonic time it was queued */
} msg;

/* ---- connections ---------------------------------------------------------- */

typedef struct wconn {
  uint64_t id;
  int fd;
  uint32_t mask;             /* epoll events registered */
  uint8_t dirty;             /* on the write list */
  uint8_t closing;           /* the core or the socket ended it */
  uint8_t flush;             /* write the pending output before closing */
  uint8_t lingering;         /* waiting for a flush to finish */
  uint64_t linger_deadline;
  struct wconn *next_dirty;
  chatd_ipkey ip;
  char peer[64];
} wconn;

/* Connection id -> wconn: open addressing, linear probing, backward-shift
 * deletion (no tombstones); kept at most half full. */
typedef struct cmap {
  wconn **slot;
  size_t cap, n;
} cmap;

struct chatd_worker {
  chatd_hub *hub;
  unsigned id;
  secchat_server *srv;
  int ep, efd;
  pthread_t thread;
  int started;

  pthread_mutex_t mu;        /* inbox, stop flag, published stats */
  msg *in_head, *in_tail;
  size_t in_fanout_bytes;
  int stop_requested;
  chatd_worker_stats pub;
  atomic_uint load;

  /* worker-thread-only state */
  cmap map;
  wconn *dirty;
  unsigned nlinger;
  int stopping;
  uint64_t stop_deadline;
  uint64_t last_publish;
  int publish_due;           /* set by every change of st or of the core (any
                              * secchat_server_* call that mutates it): the
                              * loop publishes within CHATD_STATS_PUBLISH_MS */
  chatd_worker_stats st;     /* host counters (core part filled on publish) */
  uint8_t rbuf[READ_BUF];
};

static uint64_t now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* For the inbox lag (CLOCK_REALTIME may step). */
static uint64_t mono_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static size_t cmap_hash(uint64_t id, size_t cap)
{
  id ^= id >> 33;
  id *= 0xff51afd7ed558ccdull;
  id ^= id >> 33;
  return (size_t)id & (cap - 1);
}

static int cmap_grow(cmap *m)
{
  size_t ncap = m->cap ? m->cap * 2 : 256;
  wconn **ns = calloc(ncap, sizeof *ns);
  if (ns == NULL)
    return -1;
  for (size_t i = 0; i < m->cap; i++) {
    wconn *c = m->slot[i];
    if (c == NULL)
      continue;
    size_t j = cmap_hash(c->id, ncap);
    while (ns[j])
      j = (j + 1) & (ncap - 1);
    ns[j] = c;
  }
  free(m->slot);
  m->slot = ns;
  m->cap = ncap;
  return 0;
}

static int cmap_put(cmap *m, wconn *c)
{
  if ((m->n + 1) * 2 > m->cap && cmap_grow(m) != 0)
    return -1;
  size_t j = cmap_hash(c->id, m->cap);
  while (m->slot[j])
    j = (j + 1) & (m->cap - 1);
  m->slot[j] = c;
  m->n++;
  return 0;
}

static wconn *cmap_get(const cmap *m, uint64_t id)
{
  if (m->cap == 0)
    return NULL;
  for (size_t j = cmap_hash(id, m->cap); m->slot[j]; j = (j + 1) & (m->cap - 1))
    if (m->slot[j]->id == id)
      return m->slot[j];
  return NULL;
}

static void cmap_del(cmap *m, uint64_t id)
{
  size_t mask = m->cap - 1, j;

  if (m->cap == 0)
    return;
  for (j = cmap_hash(id, m->cap); m->slot[j]; j = (j + 1) & mask)
    if (m->slot[j]->id == id)
      break;
  if (m->slot[j] == NULL)
    return;
  m->slot[j] = NULL;
  m->n--;
  /* Backward shift: move later members of the run into the hole when
   * their home position allows it. */
  for (size_t k = (j + 1) & mask; m->slot[k]; k = (k + 1) & mask) {
    size_t home = cmap_hash(m->slot[k]->id, m->cap);
    if (((k - home) & mask) >= ((k - j) & mask)) {
      m->slot[j] = m->slot[k];
      m->slot[k] = NULL;
      j = k;
    }
  }
}

/* ---- registration budget ------------------------------------------------- */

/* The core's registration admission (secchat_server_config.register_admit):
 * one budget per source address for the whole process (reglimit.h), so
 * spreading connections over the workers gains nothing. Runs on this
 * worker's thread, inside conn_recv; the connection is in the map (it is
 * put there before its first byte is read). */
static int register_admit(void *ctx, uint64_t conn, uint64_t now)
{
  chatd_worker *w = ctx;
  wconn *c = cmap_get(&w->map, conn);
  return c != NULL && chatd_reglimit_take(w->hub->reg, &c->ip, now);
}

/* ---- logging of core events ---------------------------------------------- */

static chatd_log_level map_level(uint32_t level)
{
  switch (level) {
  case SECCHAT_LOG_ERROR: return CHATD_LOG_ERROR;
  case SECCHAT_LOG_WARNING: return CHATD_LOG_WARN;
  case SECCHAT_LOG_INFO: return CHATD_LOG_INFO;
  default: return CHATD_LOG_DEBUG;
  }
}

/* Events whose `detail` is a secchat_token_reason. */
static int detail_is_token_reason(const char *event)
{
  return strcmp(event, "auth_fail") == 0 || strcmp(event, "register_fail") == 0 ||
         strcmp(event, "renew_fail") == 0;
}

static const char *bye_name(int reason)
{
  static const char *const names[] = {NULL, "shutdown", "replaced", "idle", "protocol_error",
                                      "auth_timeout", "slow_consumer", "token_expired"};
  if (reason > 0 && (size_t)reason < sizeof names / sizeof names[0])
    return names[reason];
  return NULL;
}

static void log_core_event(chatd_worker *w, const secchat_server_event *ev)
{
  chatd_log_level level = map_level(ev->level);
  chatd_field f[9];
  char uid[SECCHAT_UID_STRING_BYTES];
  size_t n = 0;

  if (!chatd_log_enabled(w->hub->log, level))
    return;
  f[n++] = chatd_f_uint("worker", w->id);
  if (ev->conn)
    f[n++] = chatd_f_uint("conn", ev->conn);
  /* The uid's text form (what users and operators see), then hashed or
   * kept per --log-identities. */
  if (ev->has_uid && secchat_uid_to_string(ev->uid, uid, sizeof uid) == 0)
    f[n++] = chatd_f_id("user", uid, strlen(uid));
  if (ev->name && ev->name_len)
    f[n++] = chatd_f_id("name", ev->name, ev->name_len);
  if (ev->code) {
    f[n++] = chatd_f_str("code", secchat_error_name(ev->code));
    f[n++] = chatd_f_str("error", secchat_strerror(ev->code));
  }
  if (ev->detail) {
    const char *why = NULL;
    if (detail_is_token_reason(ev->event))
      why = secchat_token_reason_string(ev->detail);
    else if (strcmp(ev->event, "close") == 0)
      why = bye_name(ev->detail);
    if (why)
      f[n++] = chatd_f_str("reason", why);
    else if (strcmp(ev->event, "disconnect") == 0) /* the peer left mid-frame (A4, D5) */
      f[n++] = chatd_f_str("partial_frame", "yes");
    else
      f[n++] = chatd_f_int("detail", ev->detail);
  }
  if (ev->value)
    f[n++] = chatd_f_uint("value", ev->value);
  chatd_log_write(w->hub->log, level, ev->event, f, n);
}

/* ---- fanout ----------------------------------------------------------------- */

static void job_unref(job *j)
{
  if (atomic_fetch_sub(&j->refs, 1) == 1)
    free(j);
}

static void wake(chatd_worker *w)
{
  uint64_t one = 1;
  ssize_t r = write(w->efd, &one, sizeof one);
  (void)r; /* EAGAIN: the counter is saturated, the worker is awake anyway */
}

/* Append m to w's inbox; wake w if the inbox was empty (it is drained as a
 * whole, so one wakeup per batch suffices). A fanout job (fanout_len > 0)
 * is refused, and counted as a drop of w's, when w's inbox already holds
 * CHATD_INBOX_FANOUT_MAX bytes of jobs. Returns 0 or -1 (refused). */
static int inbox_push(chatd_worker *w, msg *m, size_t fanout_len)
{
  int was_empty;

  m->next = NULL;
  pthread_mutex_lock(&w->mu);
  if (fanout_len && w->in_fanout_bytes + fanout_len > CHATD_INBOX_FANOUT_MAX) {
    w->pub.fanout_dropped++;
    pthread_mutex_unlock(&w->mu);
    return -1;
  }
  w->in_fanout_bytes += fanout_len;
  was_empty = w->in_head == NULL;
  if (w->in_tail)
    w->in_tail->next = m;
  else
    w->in_head = m;
  w->in_tail = m;
  pthread_mutex_unlock(&w->mu);
  if (was_empty)
    wake(w);
  return 0;
}

/* One copy of the job, shared by every other worker (reference count). */
static void broadcast_job(chatd_worker *w, const uint8_t *data, size_t len)
{
  chatd_hub *hub = w->hub;
  unsigned others = hub->nworkers - 1;
  job *j;

  if (others == 0)
    return;
  j = malloc(sizeof *j + len);
  if (j == NULL) {
    w->st.fanout_dropped += others;
    return;
  }
  memcpy(j->data, data, len);
  j->len = len;
  atomic_init(&j->refs, others);
  uint64_t queued = mono_ms();
  for (unsigned i = 0; i < hub->nworkers; i++) {
    chatd_worker *o = hub->workers[i];
    msg *m;
    if (o == w)
      continue;
    m = calloc(1, sizeof *m);
    if (m == NULL) {
      w->st.fanout_dropped++;
      job_unref(j);
      continue;
    }
    m->type = MSG_FANOUT;
    m->job = j;
    m->queued_ms = queued;
    if (inbox_push(o, m, len) != 0) {
      free(m);
      job_unref(j);
    }
  }
}

/* ---- connection life ------------------------------------------------------ */

static void mark_dirty(chatd_worker *w, wconn *c)
{
  if (c->dirty)
    return;
  c->dirty = 1;
  c->next_dirty = w->dirty;
  w->dirty = c;
}

static void set_mask(chatd_worker *w, wconn *c, uint32_t mask)
{
  struct epoll_event ev;

  if (c->mask == mask)
    return;
  memset(&ev, 0, sizeof ev);
  ev.events = mask;
  ev.data.ptr = c;
  if (epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ev) == 0)
    c->mask = mask;
}

static void drain_events(chatd_worker *w);

/* End c for good: socket, core, map, iptable. */
static void conn_free(chatd_worker *w, wconn *c, uint64_t now)
{
  if (c->lingering)
    w->nlinger--;
  close(c->fd); /* also removes it from the epoll set */
  (void)secchat_server_conn_closed(w->srv, c->id, now);
  cmap_del(&w->map, c->id);
  chatd_iptable_release(w->hub->ips, &c->ip);
  atomic_fetch_sub(&w->hub->nconns, 1);
  atomic_fetch_sub(&w->load, 1);
  free(c);
  w->publish_due = 1;
  drain_events(w); /* PRESENCE offline etc. for the others */
}

/* The socket ended (EOF, error) or the core wants it closed without a
 * flush: close in this pass's write phase. */
static void conn_abort(chatd_worker *w, wconn *c)
{
  c->closing = 1;
  c->flush = 0;
  mark_dirty(w, c);
}

static void drain_events(chatd_worker *w)
{
  secchat_server_event ev;
  wconn *c;

  memset(&ev, 0, sizeof ev);
  ev.struct_size = sizeof ev;
  while (secchat_server_next_event(w->srv, &ev) == 1) {
    switch (ev.type) {
    case SECCHAT_SERVER_EV_WANT_WRITE:
      if ((c = cmap_get(&w->map, ev.conn)) != NULL)
        mark_dirty(w, c);
      break;
    case SECCHAT_SERVER_EV_CLOSE:
      if ((c = cmap_get(&w->map, ev.conn)) != NULL && !c->closing) {
        c->closing = 1;
        c->flush = ev.flush != 0;
        mark_dirty(w, c);
      }
      break;
    case SECCHAT_SERVER_EV_LOG:
      log_core_event(w, &ev);
      break;
    case SECCHAT_SERVER_EV_FANOUT:
      broadcast_job(w, ev.job, ev.job_len);
      break;
    default:
      break;
    }
  }
}

static void peer_text(char *out, size_t cap, const struct sockaddr_storage *ss, socklen_t len)
{
  char host[NI_MAXHOST], serv[NI_MAXSERV];

  if (getnameinfo((const struct sockaddr *)ss, len, host, sizeof host, serv, sizeof serv,
                  NI_NUMERICHOST | NI_NUMERICSERV) != 0)
    snprintf(out, cap, "?");
  else
    snprintf(out, cap, ss->ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, serv);
}

static void conn_new(chatd_worker *w, msg *m, uint64_t now)
{
  struct epoll_event ev;
  wconn *c = calloc(1, sizeof *c);
  int one = 1, rc = -1;

  w->st.accepted++;
  w->publish_due = 1;
  if (c == NULL)
    goto fail;
  c->fd = m->fd;
  c->ip = m->ip;
  peer_text(c->peer, sizeof c->peer, &m->peer, m->peer_len);
  (void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  rc = secchat_server_conn_open(w->srv, &c->id, m->ip.b, sizeof m->ip.b, now);
  if (rc != 0)
    goto fail;
  if (cmap_put(&w->map, c) != 0) {
    (void)secchat_server_conn_closed(w->srv, c->id, now);
    rc = SECCHAT_ERR_NOMEM;
    goto fail;
  }
  memset(&ev, 0, sizeof ev);
  ev.events = EPOLLIN | EPOLLRDHUP;
  ev.data.ptr = c;
  if (epoll_ctl(w->ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
    rc = SECCHAT_ERR_NOMEM;
    cmap_del(&w->map, c->id);
    (void)secchat_server_conn_closed(w->srv, c->id, now);
    goto fail;
  }
  c->mask = ev.events;
  CHATD_LOG(w->hub->log, CHATD_LOG_INFO, "connect", chatd_f_uint("worker", w->id),
            chatd_f_uint("conn", c->id), chatd_f_str("peer", c->peer));
  drain_events(w);
  return;

fail:
  w->st.open_failed++;
  CHATD_LOG(w->hub->log, CHATD_LOG_WARN, "connect_fail", chatd_f_uint("worker", w->id),
            chatd_f_str("peer", c ? c->peer : "?"), chatd_f_str("error", secchat_strerror(rc)));
  close(m->fd);
  chatd_iptable_release(w->hub->ips, &m->ip);
  atomic_fetch_sub(&w->hub->nconns, 1);
  atomic_fetch_sub(&w->load, 1);
  free(c);
  drain_events(w);
}

static void conn_read(chatd_worker *w, wconn *c, uint64_t now)
{
  size_t total = 0;

  while (!c->closing && total < CHATD_READ_BUDGET) {
    ssize_t n = recv(c->fd, w->rbuf, sizeof w->rbuf, 0);
    if (n > 0) {
      total += (size_t)n;
      (void)secchat_server_conn_recv(w->srv, c->id, w->rbuf, (size_t)n, now);
      drain_events(w);
      if ((size_t)n < sizeof w->rbuf)
        break; /* drained (level-triggered: anything newer wakes us again) */
      continue;
    }
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      break;
    conn_abort(w, c); /* EOF or a socket error */
    break;
  }
  if (total)
    w->publish_due = 1;
}

/* One sendmsg of what the core has pending. Returns 0, or -1 if the
 * socket failed. */
static int conn_write(chatd_worker *w, wconn *c)
{
  secchat_iovec iov[MAX_IOV];
  struct msghdr mh;
  int n = secchat_server_conn_output(w->srv, c->id, iov, MAX_IOV);
  ssize_t k;

  if (n <= 0)
    return 0;
  w->publish_due = 1; /* the core may have packed queued frames into chunks */
  memset(&mh, 0, sizeof mh);
  mh.msg_iov = (struct iovec *)(void *)iov;
  mh.msg_iovlen = (size_t)n;
  do
    k = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
  while (k < 0 && errno == EINTR);
  if (k < 0)
    return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
  (void)secchat_server_conn_consumed(w->srv, c->id, (size_t)k);
  return 0;
}

/* The write phase: once per connection that has output or must close. */
static void flush_dirty(chatd_worker *w, uint64_t now)
{
  wconn *c;

  while ((c = w->dirty) != NULL) {
    w->dirty = c->next_dirty;
    c->dirty = 0;
    if (c->closing && !c->flush) {
      conn_free(w, c, now);
      continue;
    }
    if (conn_write(w, c) != 0) {
      w->st.write_errors++;
      conn_free(w, c, now);
      continue;
    }
    size_t pending = secchat_server_conn_pending(w->srv, c->id);
    if (c->closing) {
      if (pending == 0) {
        conn_free(w, c, now);
        continue;
      }
      if (!c->lingering) {
        c->lingering = 1;
        c->linger_deadline = now + CHATD_LINGER_MS;
        w->nlinger++;
      }
      set_mask(w, c, EPOLLOUT); /* nothing more is read from it */
      continue;
    }
    set_mask(w, c, EPOLLIN | EPOLLRDHUP | (pending ? EPOLLOUT : 0u));
  }
}

/* Close flushes that ran out of time. Lingering connections are rare (a
 * peer that stopped reading while being closed): a scan of the map only
 * when some exist is cheaper than keeping another list. */
static void linger_sweep(chatd_worker *w, uint64_t now)
{
  if (w->nlinger == 0)
    return;
  for (size_t i = 0; i < w->map.cap; i++) {
    wconn *c = w->map.slot[i];
    if (c && c->lingering && now >= c->linger_deadline && !c->dirty) {
      w->st.linger_expired++;
      c->flush = 0;
      mark_dirty(w, c);
    }
  }
  flush_dirty(w, now);
}

/* ---- inbox and stop --------------------------------------------------------- */

static void begin_stop(chatd_worker *w, uint64_t now)
{
  if (w->stopping)
    return;
  w->stopping = 1;
  w->stop_deadline = now + CHATD_LINGER_MS;
  secchat_server_shutdown(w->srv, now);
  drain_events(w);
}

static void inbox_drain(chatd_worker *w, uint64_t now)
{
  uint64_t cnt;
  msg *m, *next;
  int stop;

  while (read(w->efd, &cnt, sizeof cnt) < 0 && errno == EINTR)
    ;
  pthread_mutex_lock(&w->mu);
  m = w->in_head;
  w->in_head = w->in_tail = NULL;
  w->in_fanout_bytes = 0;
  stop = w->stop_requested;
  pthread_mutex_unlock(&w->mu);
  uint64_t taken = mono_ms();

  for (; m; m = next) {
    next = m->next;
    if (m->type == MSG_CONN) {
      if (w->stopping) {
        close(m->fd);
        chatd_iptable_release(w->hub->ips, &m->ip);
        atomic_fetch_sub(&w->hub->nconns, 1);
        atomic_fetch_sub(&w->load, 1);
      } else {
        conn_new(w, m, now);
      }
    } else if (m->type == MSG_FANOUT) {
      /* How long the job waited: a worker that does not run (starved,
       * stuck) shows here; deliveries through it are late by as much. */
      if (taken > m->queued_ms && taken - m->queued_ms > w->st.fanout_lag_max_ms)
        w->st.fanout_lag_max_ms = taken - m->queued_ms;
      int rc = secchat_server_fanout_in(w->srv, m->job->data, m->job->len, now);
      /* The job changed the core (remote directory, route members, the
       * fanout_in counter) even when no local socket is touched: on a
       * worker with no connections left, this is its last change. */
      w->publish_due = 1;
      if (rc != 0 && rc != SECCHAT_ERR_NOMEM)
        CHATD_LOG(w->hub->log, CHATD_LOG_ERROR, "fanout_in_fail", chatd_f_uint("worker", w->id),
                  chatd_f_str("error", secchat_strerror(rc)));
      drain_events(w);
      job_unref(m->job);
    }
    free(m);
  }
  if (stop)
    begin_stop(w, now);
}

/* ---- the loop --------------------------------------------------------------- */

static void publish(chatd_worker *w, uint64_t now)
{
  secchat_server_stats core;

  memset(&core, 0, sizeof core);
  core.struct_size = sizeof core;
  secchat_server_get_stats(w->srv, &core);
  pthread_mutex_lock(&w->mu);
  uint64_t dropped = w->pub.fanout_dropped; /* counted by senders */
  w->pub = w->st;
  w->pub.core = core;
  w->pub.fanout_dropped = dropped + w->st.fanout_dropped;
  pthread_mutex_unlock(&w->mu);
  w->st.fanout_dropped = 0; /* moved into pub */
  w->last_publish = now;
  w->publish_due = 0;
}

static int loop_timeout(chatd_worker *w, uint64_t now)
{
  uint64_t next = secchat_server_next_timeout(w->srv);

  if (w->publish_due && w->last_publish + CHATD_STATS_PUBLISH_MS < next)
    next = w->last_publish + CHATD_STATS_PUBLISH_MS;
  if (w->nlinger && now + 50 < next)
    next = now + 50; /* linger deadlines are checked at this granularity */
  if (w->stopping && w->stop_deadline < next)
    next = w->stop_deadline;
  if (next == UINT64_MAX)
    return -1;
  if (next <= now)
    return 0;
  return next - now > 60000 ? 60000 : (int)(next - now);
}

static void *worker_main(void *arg)
{
  chatd_worker *w = arg;
  struct epoll_event evs[MAX_EVENTS];

  for (;;) {
    uint64_t now = now_ms();
    int n = epoll_wait(w->ep, evs, MAX_EVENTS, loop_timeout(w, now));
    if (n < 0 && errno != EINTR) {
      CHATD_LOG(w->hub->log, CHATD_LOG_ERROR, "epoll_fail", chatd_f_uint("worker", w->id),
                chatd_f_str("error", strerror(errno)));
      break;
    }
    now = now_ms();
    for (int i = 0; i < n; i++) {
      wconn *c = evs[i].data.ptr;
      if (c == NULL) {
        inbox_drain(w, now);
        continue;
      }
      if (c->closing) {
        if (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
          mark_dirty(w, c);
        continue;
      }
      if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        conn_read(w, c, now);
      if (evs[i].events & EPOLLOUT)
        mark_dirty(w, c);
    }
    if (secchat_server_next_timeout(w->srv) <= now) {
      secchat_server_on_timeout(w->srv, now);
      w->publish_due = 1; /* timeouts count and free state too */
      drain_events(w);
    }
    flush_dirty(w, now);
    linger_sweep(w, now);
    if (w->stopping && (w->map.n == 0 || now >= w->stop_deadline))
      break;
    if (w->publish_due && now >= w->last_publish + CHATD_STATS_PUBLISH_MS)
      publish(w, now);
  }

  /* Whatever did not flush in time is closed now. */
  uint64_t now = now_ms();
  for (size_t i = 0; i < w->map.cap; i++) {
    wconn *c = w->map.slot[i];
    if (c) {
      c->closing = 1;
      c->flush = 0;
      if (c->lingering)
        w->st.linger_expired++;
      mark_dirty(w, c);
    }
  }
  flush_dirty(w, now);
  publish(w, now);
  return NULL;
}

/* ---- public ----------------------------------------------------------------- */

int chatd_worker_new(chatd_worker **out, chatd_hub *hub, unsigned id,
                     const secchat_server_config *cfg, char *err, size_t errlen)
{
  secchat_server_config c = *cfg;
  struct epoll_event ev;
  chatd_worker *w = calloc(1, sizeof *w);
  int rc;

  *out = NULL;
  if (w == NULL) {
    snprintf(err, errlen, "worker %u: out of memory", id);
    return -1;
  }
  w->hub = hub;
  w->id = id;
  w->ep = w->efd = -1;
  pthread_mutex_init(&w->mu, NULL);
  atomic_init(&w->load, 0);
  c.worker_id = id;
  if (hub->reg != NULL) {
    c.register_admit = register_admit;
    c.register_admit_ctx = w;
  }
  rc = secchat_server_new(&w->srv, &c);
  if (rc != 0) {
    snprintf(err, errlen, "worker %u: cannot create the server core: %s", id,
             secchat_strerror(rc));
    chatd_worker_free(w);
    return -1;
  }
  w->ep = epoll_create1(EPOLL_CLOEXEC);
  w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  memset(&ev, 0, sizeof ev);
  ev.events = EPOLLIN;
  ev.data.ptr = NULL; /* the inbox */
  if (w->ep < 0 || w->efd < 0 || epoll_ctl(w->ep, EPOLL_CTL_ADD, w->efd, &ev) != 0) {
    snprintf(err, errlen, "worker %u: epoll/eventfd: %s", id, strerror(errno));
    chatd_worker_free(w);
    return -1;
  }
  w->pub.core.struct_size = sizeof w->pub.core;
  secchat_server_get_stats(w->srv, &w->pub.core); /* fixed costs, before any activity */
  *out = w;
  return 0;
}

int chatd_worker_start(chatd_worker *w, char *err, size_t errlen)
{
  int rc = pthread_create(&w->thread, NULL, worker_main, w);
  if (rc != 0) {
    snprintf(err, errlen, "worker %u: cannot start its thread: %s", w->id, strerror(rc));
    return -1;
  }
  w->started = 1;
  return 0;
}

int chatd_worker_add_conn(chatd_worker *w, int fd, const struct sockaddr_storage *peer,
                          socklen_t peer_len, const chatd_ipkey *ip)
{
  msg *m = calloc(1, sizeof *m);

  if (m == NULL)
    return -1;
  m->type = MSG_CONN;
  m->fd = fd;
  m->peer = *peer;
  m->peer_len = peer_len;
  m->ip = *ip;
  atomic_fetch_add(&w->load, 1);
  (void)inbox_push(w, m, 0); /* connections are never refused here */
  return 0;
}

void chatd_worker_stop(chatd_worker *w)
{
  pthread_mutex_lock(&w->mu);
  w->stop_requested = 1;
  pthread_mutex_unlock(&w->mu);
  wake(w);
}

void chatd_worker_join(chatd_worker *w)
{
  if (w != NULL && w->started) {
    pthread_join(w->thread, NULL);
    w->started = 0;
  }
}

void chatd_worker_free(chatd_worker *w)
{
  if (w == NULL)
    return;
  chatd_worker_join(w);
  /* Messages that arrived after the thread ended. */
  for (msg *m = w->in_head, *next; m; m = next) {
    next = m->next;
    if (m->type == MSG_CONN) {
      close(m->fd);
      chatd_iptable_release(w->hub->ips, &m->ip);
      atomic_fetch_sub(&w->hub->nconns, 1);
    } else {
      job_unref(m->job);
    }
    free(m);
  }
  secchat_server_free(w->srv);
  free(w->map.slot);
  if (w->ep >= 0)
    close(w->ep);
  if (w->efd >= 0)
    close(w->efd);
  pthread_mutex_destroy(&w->mu);
  free(w);
}

unsigned chatd_worker_load(const chatd_worker *w)
{
  return atomic_load(&w->load);
}

void chatd_worker_stats_get(chatd_worker *w, chatd_worker_stats *out)
{
  pthread_mutex_lock(&w->mu);
  *out = w->pub;
  pthread_mutex_unlock(&w->mu);
}
