/* relay.c: listening socket, acceptor, workers, signals (see relay.h). */
#include "relay.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "iptable.h"
#include "metrics.h"
#include "reglimit.h"
#include "worker.h"

#define ACCEPT_BATCH 64        /* accepts per wakeup, then other work */
#define ACCEPT_PAUSE_MS 100    /* after EMFILE/ENFILE */
#define LISTEN_BACKLOG 1024

typedef struct relay {
  const chatd_config *cfg;
  chatd_log *log;
  chatd_syslog *syslog;
  chatd_hub hub;
  int lfd, sigfd, ep, reserve_fd;
  int paused;
  uint64_t paused_until, last_pause_log, last_refuse_log;
  unsigned next_rr;
  /* acceptor counters (read by the metrics thread) */
  atomic_ullong accepted, refused_per_ip, refused_max_conns, accept_errors, accept_pauses;
} relay;

static uint64_t mono_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void signal_set(sigset_t *s)
{
  sigemptyset(s);
  sigaddset(s, SIGTERM);
  sigaddset(s, SIGINT);
  sigaddset(s, SIGHUP);
}

int chatd_relay_block_signals(void)
{
  sigset_t s;
  signal_set(&s);
  return pthread_sigmask(SIG_BLOCK, &s, NULL) == 0 ? 0 : -1;
}

/* ---- metrics page ------------------------------------------------------------ */

#define SUM(field) sum.core.field += ws.core.field

static void metric(chatd_buf *b, const char *name, const char *type, const char *help,
                   unsigned long long v)
{
  chatd_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name, v);
}

static void metric_head(chatd_buf *b, const char *name, const char *type, const char *help)
{
  chatd_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void metric_l(chatd_buf *b, const char *name, const char *label, const char *value,
                     unsigned long long v)
{
  chatd_buf_printf(b, "%s{%s=\"%s\"} %llu\n", name, label, value, v);
}

static void render(void *ctx, chatd_buf *b)
{
  relay *r = ctx;
  chatd_worker_stats sum, ws;
  chatd_syslog_stats ss;
  chatd_log_stats ls;

  memset(&sum, 0, sizeof sum);
  for (unsigned i = 0; i < r->hub.nworkers; i++) {
    chatd_worker_stats_get(r->hub.workers[i], &ws);
    SUM(conns_open); SUM(conns_authenticated); SUM(conns_total); SUM(routes);
    SUM(frames_in); SUM(frames_out); SUM(bytes_in); SUM(bytes_out);
    SUM(deliveries); SUM(relayed); SUM(directs);
    SUM(handshakes_ok); SUM(handshakes_failed);
    SUM(registrations); SUM(auth_ok); SUM(renewals);
    SUM(auth_failed_token); SUM(auth_failed_proof); SUM(auth_failed_expired);
    SUM(auth_failed_other);
    SUM(limit_rate); SUM(limit_fanout); SUM(limit_routes); SUM(limit_route_full);
    SUM(limit_register);
    SUM(slow_consumers); SUM(protocol_errors); SUM(timeouts_handshake); SUM(timeouts_frame);
    SUM(timeouts_idle); SUM(token_expired_closed); SUM(replaced); SUM(drops_log);
    SUM(fanout_out); SUM(fanout_in); SUM(fanout_bad); SUM(drops_fanout);
    SUM(mem_bytes); SUM(slab_bytes); SUM(pool_bytes);
    sum.accepted += ws.accepted;
    sum.open_failed += ws.open_failed;
    sum.fanout_dropped += ws.fanout_dropped;
    sum.write_errors += ws.write_errors;
    sum.linger_expired += ws.linger_expired;
    if (ws.fanout_lag_max_ms > sum.fanout_lag_max_ms)
      sum.fanout_lag_max_ms = ws.fanout_lag_max_ms;
  }
  const secchat_server_stats *c = &sum.core;

  metric(b, "chatd_workers", "gauge", "Worker threads.", r->hub.nworkers);
  metric(b, "chatd_connections", "gauge", "Open client connections.",
         atomic_load(&r->hub.nconns));
  metric(b, "chatd_connections_authenticated", "gauge", "Authenticated connections.",
         c->conns_authenticated);
  metric(b, "chatd_routes", "gauge", "Routes with at least one local member.", c->routes);
  metric(b, "chatd_core_memory_bytes", "gauge", "Bytes allocated by the server cores.",
         c->mem_bytes);
  metric(b, "chatd_core_locked_memory_bytes", "gauge", "Of which in the locked secret slab.",
         c->slab_bytes);
  metric(b, "chatd_core_pool_memory_bytes", "gauge",
         "Of which output-queue chunks pooled for reuse (bounded).", c->pool_bytes);
  metric(b, "chatd_accepted_total", "counter", "Connections accepted and handed to a worker.",
         atomic_load(&r->accepted));
  metric_head(b, "chatd_refused_total", "counter", "Connections closed at accept, by cause.");
  metric_l(b, "chatd_refused_total", "reason", "per_ip", atomic_load(&r->refused_per_ip));
  metric_l(b, "chatd_refused_total", "reason", "max_conns", atomic_load(&r->refused_max_conns));
  metric_l(b, "chatd_refused_total", "reason", "core", sum.open_failed);
  metric(b, "chatd_accept_errors_total", "counter",
         "Failed accepts, and sockets closed for lack of memory.",
         atomic_load(&r->accept_errors));
  metric(b, "chatd_accept_pauses_total", "counter",
         "Accepting paused for lack of descriptors (EMFILE/ENFILE).",
         atomic_load(&r->accept_pauses));
  metric_head(b, "chatd_frames_total", "counter", "Transport frames.");
  metric_l(b, "chatd_frames_total", "direction", "in", c->frames_in);
  metric_l(b, "chatd_frames_total", "direction", "out", c->frames_out);
  metric_head(b, "chatd_bytes_total", "counter", "Bytes on client sockets.");
  metric_l(b, "chatd_bytes_total", "direction", "in", c->bytes_in);
  metric_l(b, "chatd_bytes_total", "direction", "out", c->bytes_out);
  metric(b, "chatd_deliveries_total", "counter", "Frames delivered to recipients.",
         c->deliveries);
  metric(b, "chatd_relayed_total", "counter", "GROUP_SEND and DIRECT frames accepted (RELAYED).",
         c->relayed);
  metric(b, "chatd_directs_total", "counter", "DIRECT frames delivered.", c->directs);
  metric_head(b, "chatd_handshakes_total", "counter", "Noise handshakes by result.");
  metric_l(b, "chatd_handshakes_total", "result", "ok", c->handshakes_ok);
  metric_l(b, "chatd_handshakes_total", "result", "failed", c->handshakes_failed);
  metric(b, "chatd_registrations_total", "counter", "Tokens issued by REGISTER.",
         c->registrations);
  metric(b, "chatd_auth_ok_total", "counter", "Successful AUTH.", c->auth_ok);
  metric(b, "chatd_renewals_total", "counter", "Successful RENEW.", c->renewals);
  metric_head(b, "chatd_auth_failures_total", "counter", "Refused REGISTER/AUTH/RENEW by class.");
  metric_l(b, "chatd_auth_failures_total", "class", "token", c->auth_failed_token);
  metric_l(b, "chatd_auth_failures_total", "class", "proof", c->auth_failed_proof);
  metric_l(b, "chatd_auth_failures_total", "class", "expired", c->auth_failed_expired);
  metric_l(b, "chatd_auth_failures_total", "class", "other", c->auth_failed_other);
  metric_head(b, "chatd_limit_hits_total", "counter", "Limit violations by limit.");
  metric_l(b, "chatd_limit_hits_total", "limit", "rate", c->limit_rate);
  metric_l(b, "chatd_limit_hits_total", "limit", "fanout", c->limit_fanout);
  metric_l(b, "chatd_limit_hits_total", "limit", "routes", c->limit_routes);
  metric_l(b, "chatd_limit_hits_total", "limit", "route_full", c->limit_route_full);
  metric_l(b, "chatd_limit_hits_total", "limit", "register", c->limit_register);
  metric_l(b, "chatd_limit_hits_total", "limit", "slow_consumer", c->slow_consumers);
  metric_l(b, "chatd_limit_hits_total", "limit", "per_ip", atomic_load(&r->refused_per_ip));
  metric_l(b, "chatd_limit_hits_total", "limit", "max_conns",
           atomic_load(&r->refused_max_conns));
  metric(b, "chatd_protocol_errors_total", "counter", "Connections closed for a protocol error.",
         c->protocol_errors);
  metric_head(b, "chatd_timeouts_total", "counter", "Connections closed by a deadline.");
  metric_l(b, "chatd_timeouts_total", "deadline", "handshake", c->timeouts_handshake);
  metric_l(b, "chatd_timeouts_total", "deadline", "frame", c->timeouts_frame);
  metric_l(b, "chatd_timeouts_total", "deadline", "idle", c->timeouts_idle);
  metric_l(b, "chatd_timeouts_total", "deadline", "token_grace", c->token_expired_closed);
  metric(b, "chatd_replaced_total", "counter", "Connections replaced by a newer login.",
         c->replaced);
  metric_head(b, "chatd_fanout_jobs_total", "counter", "Cross-worker fanout jobs.");
  metric_l(b, "chatd_fanout_jobs_total", "direction", "out", c->fanout_out);
  metric_l(b, "chatd_fanout_jobs_total", "direction", "in", c->fanout_in);
  metric_l(b, "chatd_fanout_jobs_total", "direction", "bad", c->fanout_bad);
  metric(b, "chatd_write_errors_total", "counter", "Connections closed on a socket write error.",
         sum.write_errors);
  metric(b, "chatd_linger_expired_total", "counter",
         "Closing connections whose final flush ran out of time.", sum.linger_expired);
  metric(b, "chatd_fanout_lag_max_ms", "gauge",
         "Longest time a fanout job waited in a worker's inbox since the start (ms).",
         sum.fanout_lag_max_ms);
  metric_head(b, "chatd_drops_total", "counter", "Things dropped to keep memory bounded.");
  metric_l(b, "chatd_drops_total", "what", "core_log", c->drops_log);
  metric_l(b, "chatd_drops_total", "what", "core_fanout", c->drops_fanout);
  metric_l(b, "chatd_drops_total", "what", "fanout_inbox", sum.fanout_dropped);
  chatd_log_stats_get(r->log, &ls);
  metric(b, "chatd_log_records_total", "counter", "Log records written.", ls.records);
  metric(b, "chatd_log_write_errors_total", "counter", "Log lines lost to write errors.",
         ls.write_errors);
  memset(&ss, 0, sizeof ss);
  if (r->syslog)
    chatd_syslog_stats_get(r->syslog, &ss);
  metric(b, "chatd_syslog_sent_total", "counter", "Records handed to the syslog collector.",
         ss.sent);
  metric(b, "chatd_syslog_dropped_total", "counter", "Syslog records dropped (queue full).",
         ss.dropped);
  metric(b, "chatd_syslog_queued", "gauge", "Syslog records waiting.", ss.queued_records);
}

/* ---- accept ------------------------------------------------------------------ */

static int listen_socket(const chatd_addr *a, char *err, size_t errlen)
{
  int one = 1;
  int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

  if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      bind(fd, (const struct sockaddr *)&a->ss, a->len) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
    snprintf(err, errlen, "cannot listen on %s: %s", a->text, strerror(errno));
    if (fd >= 0)
      close(fd);
    return -1;
  }
  return fd;
}

static void set_accepting(relay *r, int on)
{
  struct epoll_event ev;

  memset(&ev, 0, sizeof ev);
  ev.events = on ? EPOLLIN : 0;
  ev.data.fd = r->lfd;
  (void)epoll_ctl(r->ep, EPOLL_CTL_MOD, r->lfd, &ev);
  r->paused = !on;
}

static void peer_text(char *out, size_t cap, const struct sockaddr_storage *ss, socklen_t len)
{
  char host[NI_MAXHOST];

  if (getnameinfo((const struct sockaddr *)ss, len, host, sizeof host, NULL, 0,
                  NI_NUMERICHOST) != 0)
    snprintf(out, cap, "?");
  else
    snprintf(out, cap, "%s", host);
}

/* Refusals are logged at most once per second: a flood must not become a
 * log flood. */
static void refuse(relay *r, int fd, const struct sockaddr_storage *ss, socklen_t len,
                   const char *why)
{
  uint64_t now = mono_ms();
  close(fd);
  if (now - r->last_refuse_log >= 1000) {
    char peer[NI_MAXHOST];
    r->last_refuse_log = now;
    peer_text(peer, sizeof peer, ss, len);
    CHATD_LOG(r->log, CHATD_LOG_WARN, "refused", chatd_f_str("peer", peer),
              chatd_f_str("reason", why),
              chatd_f_uint("refused_per_ip", atomic_load(&r->refused_per_ip)),
              chatd_f_uint("refused_max_conns", atomic_load(&r->refused_max_conns)));
  }
}

/* Out of descriptors: the pending connection cannot be accepted, and
 * epoll would report the listening socket again at once. Give the reserve
 * descriptor back to take that one connection and close it (the peer sees
 * a close instead of a hang), then stop watching the listening socket for
 * ACCEPT_PAUSE_MS. */
static void out_of_fds(relay *r, int err)
{
  uint64_t now = mono_ms();

  atomic_fetch_add(&r->accept_pauses, 1);
  if (r->reserve_fd >= 0) {
    close(r->reserve_fd);
    int fd = accept4(r->lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd >= 0)
      close(fd);
    r->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  }
  set_accepting(r, 0);
  r->paused_until = now + ACCEPT_PAUSE_MS;
  if (now - r->last_pause_log >= 10000) {
    r->last_pause_log = now;
    CHATD_LOG(r->log, CHATD_LOG_WARN, "accept_paused", chatd_f_str("error", strerror(err)),
              chatd_f_uint("pause_ms", ACCEPT_PAUSE_MS),
              chatd_f_uint("connections", atomic_load(&r->hub.nconns)));
  }
}

static chatd_worker *pick_worker(relay *r)
{
  /* Least loaded; ties broken round-robin so equal workers share. */
  unsigned n = r->hub.nworkers, best = r->next_rr % n, best_load = UINT32_MAX;
  for (unsigned k = 0; k < n; k++) {
    unsigned i = (r->next_rr + k) % n, load = chatd_worker_load(r->hub.workers[i]);
    if (load < best_load) {
      best = i;
      best_load = load;
    }
  }
  r->next_rr++;
  return r->hub.workers[best];
}

static void accept_batch(relay *r)
{
  for (int i = 0; i < ACCEPT_BATCH; i++) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    chatd_ipkey ip;
    int fd = accept4(r->lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

    if (fd < 0) {
      switch (errno) {
      case EAGAIN:
#if EWOULDBLOCK != EAGAIN
      case EWOULDBLOCK:
#endif
        return;
      case EINTR:
      case ECONNABORTED:
      case EPROTO:
        continue;
      case EMFILE:
      case ENFILE:
      case ENOBUFS:
      case ENOMEM:
        out_of_fds(r, errno);
        return;
      default:
        atomic_fetch_add(&r->accept_errors, 1);
        CHATD_LOG(r->log, CHATD_LOG_ERROR, "accept_fail", chatd_f_str("error", strerror(errno)));
        return;
      }
    }
    if (atomic_load(&r->hub.nconns) >= r->cfg->max_conns) {
      atomic_fetch_add(&r->refused_max_conns, 1);
      refuse(r, fd, &ss, len, "max_conns");
      continue;
    }
    chatd_ipkey_from_sockaddr(&ip, (const struct sockaddr *)&ss);
    int ok = chatd_iptable_acquire(r->hub.ips, &ip);
    if (ok != 1) {
      atomic_fetch_add(ok == 0 ? &r->refused_per_ip : &r->accept_errors, 1);
      refuse(r, fd, &ss, len, ok == 0 ? "max_conns_per_ip" : "out_of_memory");
      continue;
    }
    atomic_fetch_add(&r->hub.nconns, 1);
    if (chatd_worker_add_conn(pick_worker(r), fd, &ss, len, &ip) != 0) {
      atomic_fetch_sub(&r->hub.nconns, 1);
      chatd_iptable_release(r->hub.ips, &ip);
      atomic_fetch_add(&r->accept_errors, 1);
      refuse(r, fd, &ss, len, "out_of_memory");
      continue;
    }
    atomic_fetch_add(&r->accepted, 1);
  }
}

/* Returns 1 to stop. */
static int handle_signals(relay *r)
{
  struct signalfd_siginfo si;
  int stop = 0;

  while (read(r->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
    if (si.ssi_signo == SIGHUP) {
      int rc = chatd_log_reopen(r->log);
      CHATD_LOG(r->log, rc == 0 ? CHATD_LOG_INFO : CHATD_LOG_ERROR, "log_reopen",
                chatd_f_str("result", rc == 0 ? "ok" : strerror(-rc)));
    } else {
      CHATD_LOG(r->log, CHATD_LOG_INFO, "stopping",
                chatd_f_str("signal", si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT"));
      stop = 1;
    }
  }
  return stop;
}

static void accept_loop(relay *r)
{
  struct epoll_event evs[4];

  for (;;) {
    int timeout = -1;
    if (r->paused) {
      uint64_t now = mono_ms();
      if (now >= r->paused_until)
        set_accepting(r, 1);
      else
        timeout = (int)(r->paused_until - now);
    }
    int n = epoll_wait(r->ep, evs, 4, timeout);
    if (n < 0 && errno != EINTR) {
      CHATD_LOG(r->log, CHATD_LOG_ERROR, "epoll_fail", chatd_f_str("error", strerror(errno)));
      return;
    }
    for (int i = 0; i < n; i++) {
      if (evs[i].data.fd == r->sigfd) {
        if (handle_signals(r))
          return;
      } else if (evs[i].data.fd == r->lfd && !r->paused) {
        accept_batch(r);
      }
    }
  }
}

/* ---- run ------------------------------------------------------------------------- */

/* The registration budget per address, shared by every worker's core, with
 * the core's default rate (docs/chatd.md, "Limits across workers"). */
static chatd_reglimit *new_reglimit(void)
{
  secchat_server_config d;

  secchat_server_config_init(&d);
  return chatd_reglimit_new(d.register_per_min, d.register_burst);
}

static int start_workers(relay *r, const chatd_keys *keys, char *err, size_t errlen)
{
  const chatd_config *cfg = r->cfg;
  secchat_server_config sc;

  secchat_server_config_init(&sc);
  sc.name = cfg->name;
  sc.token_key = keys->token;
  sc.noise_secret_key = keys->noise_sk;
  sc.token_ttl_s = cfg->token_ttl_s;
  sc.cluster = cfg->threads > 1;
  sc.max_conns = cfg->max_conns; /* the acceptor enforces the global cap */

  r->hub.workers = calloc(cfg->threads, sizeof *r->hub.workers);
  if (r->hub.workers == NULL) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  for (unsigned i = 0; i < cfg->threads; i++) {
    if (chatd_worker_new(&r->hub.workers[i], &r->hub, i, &sc, err, errlen) != 0)
      return -1;
    r->hub.nworkers = i + 1;
  }
  for (unsigned i = 0; i < cfg->threads; i++)
    if (chatd_worker_start(r->hub.workers[i], err, errlen) != 0)
      return -1;
  return 0;
}

static void stop_workers(relay *r)
{
  for (unsigned i = 0; i < r->hub.nworkers; i++)
    chatd_worker_stop(r->hub.workers[i]);
  for (unsigned i = 0; i < r->hub.nworkers; i++)
    chatd_worker_join(r->hub.workers[i]);
  for (unsigned i = 0; i < r->hub.nworkers; i++)
    chatd_worker_free(r->hub.workers[i]);
  free(r->hub.workers);
  r->hub.workers = NULL;
  r->hub.nworkers = 0;
}

int chatd_relay_run(const chatd_config *cfg, const chatd_keys *keys, chatd_log *lg,
                    chatd_syslog *sl, char *err, size_t errlen)
{
  relay r;
  sigset_t sigs;
  struct epoll_event ev;
  chatd_metrics *metrics = NULL;
  int rc = CHATD_EXIT_FAILURE;

  memset(&r, 0, sizeof r);
  r.cfg = cfg;
  r.log = lg;
  r.syslog = sl;
  r.lfd = r.sigfd = r.ep = r.reserve_fd = -1;
  r.hub.log = lg;
  atomic_init(&r.hub.nconns, 0);

  signal_set(&sigs);
  r.sigfd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC);
  r.ep = epoll_create1(EPOLL_CLOEXEC);
  r.reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  r.hub.ips = chatd_iptable_new(cfg->max_conns_per_ip);
  r.hub.reg = new_reglimit();
  if (r.sigfd < 0 || r.ep < 0 || r.reserve_fd < 0 || r.hub.ips == NULL || r.hub.reg == NULL) {
    snprintf(err, errlen, "cannot set up the event loop: %s", strerror(errno));
    goto out;
  }
  if ((r.lfd = listen_socket(&cfg->listen, err, errlen)) < 0)
    goto out;
  memset(&ev, 0, sizeof ev);
  ev.events = EPOLLIN;
  ev.data.fd = r.sigfd;
  if (epoll_ctl(r.ep, EPOLL_CTL_ADD, r.sigfd, &ev) != 0)
    goto sys_fail;
  ev.data.fd = r.lfd;
  if (epoll_ctl(r.ep, EPOLL_CTL_ADD, r.lfd, &ev) != 0)
    goto sys_fail;
  if (start_workers(&r, keys, err, errlen) != 0)
    goto out;
  if (cfg->metrics_enabled &&
      chatd_metrics_new(&metrics, &cfg->metrics, render, &r, err, errlen) != 0)
    goto out;

  CHATD_LOG(lg, CHATD_LOG_INFO, "listening", chatd_f_str("listen", cfg->listen.text),
            chatd_f_uint("threads", cfg->threads), chatd_f_str("fingerprint", keys->fingerprint));
  fprintf(stderr, "chatd: serving on %s (%u threads), server fingerprint %s\n", cfg->listen.text,
          cfg->threads, keys->fingerprint);
  accept_loop(&r);

  /* Stop accepting first, then BYE + flush everyone (bounded). */
  close(r.lfd);
  r.lfd = -1;
  chatd_metrics_free(metrics); /* it reads the workers' stats */
  metrics = NULL;
  stop_workers(&r);
  rc = CHATD_EXIT_OK;
  goto out;

sys_fail:
  snprintf(err, errlen, "cannot set up the event loop: %s", strerror(errno));
out:
  chatd_metrics_free(metrics);
  if (r.hub.workers)
    stop_workers(&r);
  if (r.lfd >= 0)
    close(r.lfd);
  if (r.sigfd >= 0)
    close(r.sigfd);
  if (r.ep >= 0)
    close(r.ep);
  if (r.reserve_fd >= 0)
    close(r.reserve_fd);
  chatd_iptable_free(r.hub.ips);
  chatd_reglimit_free(r.hub.reg);
  return rc;
}
