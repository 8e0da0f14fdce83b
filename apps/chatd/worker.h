/*
 * worker.h: one relay worker thread: its own epoll, its own secchat_server
 * core, the connections handed to it, and an inbox through which other
 * threads reach it.
 *
 * The inbox is a mutex-protected FIFO plus an eventfd in the worker's
 * epoll; it carries new connections from the acceptor, fanout jobs from the
 * other workers (in their order of emission per origin, as
 * secchat_server_fanout_in() requires) and the stop request. A job is one
 * reference-counted copy shared by all receivers. The fanout bytes queued
 * in one inbox are capped (CHATD_INBOX_FANOUT_MAX): beyond it, jobs are
 * dropped and counted rather than letting memory grow without bound
 * behind a stuck worker.
 *
 * Loop pass (docs/chatd.md, "Serving model"): epoll_wait with the core's
 * next deadline as timeout; read readable sockets (level-triggered, at
 * most CHATD_READ_BUDGET bytes per socket per pass, for fairness) into
 * conn_recv; drain the core's events after every call; run due deadlines;
 * then ONE sendmsg per connection with output (the core's iovecs), and
 * EPOLLOUT only while output remains. Connections to close are closed in
 * that same write phase, after their final flush if asked; a flush is
 * bounded (CHATD_LINGER_MS) so a peer that never reads cannot hold a
 * socket.
 *
 * Threads: chatd_worker_new/start/join/free from the main thread;
 * chatd_worker_add_conn, chatd_worker_stop, chatd_worker_load and
 * chatd_worker_stats_get from any thread.
 */
#ifndef CHATD_WORKER_H
#define CHATD_WORKER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <secchat/secchat.h>

#include "iptable.h"
#include "log.h"
#include "reglimit.h"

#define CHATD_READ_BUDGET (256u * 1024u)        /* bytes per socket per pass */
#define CHATD_LINGER_MS 1500u                   /* flush-before-close budget */
#define CHATD_INBOX_FANOUT_MAX (64u * 1024u * 1024u)
#define CHATD_STATS_PUBLISH_MS 100u             /* metrics snapshot period */

typedef struct chatd_worker chatd_worker;

/* What the workers share; owned by the relay (main thread). */
typedef struct chatd_hub {
  chatd_log *log;
  chatd_iptable *ips;
  chatd_reglimit *reg; /* registrations per address, all workers (NULL:
                          each core keeps its own buckets) */
  chatd_worker **workers;
  unsigned nworkers;
  atomic_uint nconns; /* open connections, all workers */
} chatd_hub;

/* Host-side counters of one worker (the core's are in `core`). */
typedef struct chatd_worker_stats {
  secchat_server_stats core;
  uint64_t accepted;        /* connections handed to this worker */
  uint64_t open_failed;     /* conn_open refused (closed at once) */
  uint64_t fanout_dropped;  /* jobs not queued to this worker: inbox full */
  uint64_t write_errors;    /* sockets closed on a write error */
  uint64_t linger_expired;  /* flushes cut short by CHATD_LINGER_MS */
  uint64_t fanout_lag_max_ms; /* longest wait of a fanout job in this
                                 worker's inbox (queued -> taken), ever */
} chatd_worker_stats;

/* Create worker `id` (0-based) with its core (cfg is copied; worker_id is
 * set from id) but no thread yet. Returns 0 or -1 (message in err). */
int chatd_worker_new(chatd_worker **out, chatd_hub *hub, unsigned id,
                     const secchat_server_config *cfg, char *err, size_t errlen);

/* Start the thread. Every worker of the hub must exist first (fanout
 * reaches all of them). Returns 0 or -1 (message in err). */
int chatd_worker_start(chatd_worker *w, char *err, size_t errlen);

/* Hand an accepted socket (non-blocking, CLOEXEC) to the worker, which
 * owns it from now on (and releases ip in the iptable when done). Returns
 * 0, or -1 (ENOMEM): the caller still owns fd and the ip count. */
int chatd_worker_add_conn(chatd_worker *w, int fd, const struct sockaddr_storage *peer,
                          socklen_t peer_len, const chatd_ipkey *ip);

/* Ask the worker to stop: BYE{shutdown} to every connection, flush within
 * CHATD_LINGER_MS, close everything, end the thread. Idempotent. */
void chatd_worker_stop(chatd_worker *w);

/* Wait for the thread to end (after chatd_worker_stop). NULL-safe,
 * idempotent. Join EVERY worker before freeing any: a running worker may
 * still queue fanout jobs to the others. */
void chatd_worker_join(chatd_worker *w);

/* Join (if not done), then free. NULL-safe; also frees a worker that was
 * never started. */
void chatd_worker_free(chatd_worker *w);

/* Connections owned (for the acceptor's least-loaded choice). */
unsigned chatd_worker_load(const chatd_worker *w);

/* The last published snapshot (at most CHATD_STATS_PUBLISH_MS old while
 * the worker is busy; current when it is idle). */
void chatd_worker_stats_get(chatd_worker *w, chatd_worker_stats *out);

#endif /* CHATD_WORKER_H */
