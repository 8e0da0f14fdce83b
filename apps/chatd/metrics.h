/*
 * metrics.h: a minimal HTTP/1.0 endpoint serving Prometheus text
 * exposition (format 0.0.4) on --metrics HOST:PORT.
 *
 * It runs on its own thread with poll(2) over non-blocking sockets: at most
 * CHATD_METRICS_CLIENTS clients at a time (more wait in the backlog), a
 * request of at most CHATD_METRICS_REQ_MAX bytes, CHATD_METRICS_TIMEOUT_MS
 * per client from accept to the last byte written. "GET /metrics" (or
 * "GET /") gets 200 and the page, other GETs 404, anything else 400; the
 * connection is then closed. The page is produced by the render callback,
 * on the metrics thread, into a buffer it may grow up to
 * CHATD_METRICS_PAGE_MAX bytes.
 *
 * Threads: new/free from the main thread; render is called on the metrics
 * thread.
 */
#ifndef CHATD_METRICS_H
#define CHATD_METRICS_H

#include <stddef.h>

#include "config.h"

#define CHATD_METRICS_CLIENTS 16
#define CHATD_METRICS_REQ_MAX 2048u
#define CHATD_METRICS_TIMEOUT_MS 2000u
#define CHATD_METRICS_PAGE_MAX (256u * 1024u)

/* A growing text buffer for the render callback. */
typedef struct chatd_buf {
  char *p;
  size_t len, cap;
  int overflow; /* set when a write would pass CHATD_METRICS_PAGE_MAX */
} chatd_buf;

/* printf into b (never past CHATD_METRICS_PAGE_MAX). */
void chatd_buf_printf(chatd_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

typedef void (*chatd_metrics_render)(void *ctx, chatd_buf *out);

typedef struct chatd_metrics chatd_metrics;

/* Bind addr and start the thread. Returns 0 or -1 (message in err). */
int chatd_metrics_new(chatd_metrics **out, const chatd_addr *addr, chatd_metrics_render render,
                      void *ctx, char *err, size_t errlen);

/* Stop the thread, close every socket, free. NULL-safe. */
void chatd_metrics_free(chatd_metrics *m);

#endif /* CHATD_METRICS_H */
