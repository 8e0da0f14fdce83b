/* metrics.c: the Prometheus text endpoint (see metrics.h). */
#include "metrics.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct client {
  int fd;                 /* -1: free slot */
  uint64_t deadline;
  size_t rlen;
  char req[CHATD_METRICS_REQ_MAX];
  char *out;              /* response, once the request is complete */
  size_t out_len, out_off;
} client;

struct chatd_metrics {
  int lfd, stopfd;
  pthread_t thread;
  chatd_metrics_render render;
  void *ctx;
  client cl[CHATD_METRICS_CLIENTS];
};

static uint64_t mono_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void chatd_buf_printf(chatd_buf *b, const char *fmt, ...)
{
  va_list ap;
  int n;

  if (b->overflow)
    return;
  for (;;) {
    size_t room = b->cap - b->len;
    va_start(ap, fmt);
    n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? room : 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
      b->overflow = 1;
      return;
    }
    if ((size_t)n < room) {
      b->len += (size_t)n;
      return;
    }
    size_t need = b->len + (size_t)n + 1, ncap = b->cap ? b->cap : 4096;
    while (ncap < need)
      ncap *= 2;
    if (ncap > CHATD_METRICS_PAGE_MAX) {
      if (need > CHATD_METRICS_PAGE_MAX) {
        b->overflow = 1;
        return;
      }
      ncap = CHATD_METRICS_PAGE_MAX;
    }
    char *np = realloc(b->p, ncap);
    if (np == NULL) {
      b->overflow = 1;
      return;
    }
    b->p = np;
    b->cap = ncap;
  }
}

static void client_close(client *c)
{
  if (c->fd >= 0)
    close(c->fd);
  free(c->out);
  c->out = NULL;
  c->fd = -1;
}

static void respond(chatd_metrics *m, client *c)
{
  chatd_buf body = {0}, resp = {0};
  const char *status = "400 Bad Request";
  int ok = 0;

  if (strncmp(c->req, "GET ", 4) == 0) {
    const char *path = c->req + 4;
    if (strncmp(path, "/metrics ", 9) == 0 || strncmp(path, "/ ", 2) == 0 ||
        strncmp(path, "/metrics\r", 9) == 0) {
      status = "200 OK";
      ok = 1;
    } else {
      status = "404 Not Found";
    }
  }
  if (ok) {
    m->render(m->ctx, &body);
    if (body.overflow) {
      status = "500 Internal Server Error";
      ok = 0;
    }
  }
  chatd_buf_printf(&resp,
                   "HTTP/1.0 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                   "Connection: close\r\n\r\n",
                   status, ok ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain",
                   ok ? body.len : strlen(status) + 1);
  if (ok)
    chatd_buf_printf(&resp, "%.*s", (int)body.len, body.p);
  else
    chatd_buf_printf(&resp, "%s\n", status);
  free(body.p);
  if (resp.overflow) {
    free(resp.p);
    client_close(c);
    return;
  }
  c->out = resp.p;
  c->out_len = resp.len;
  c->out_off = 0;
}

static void client_io(chatd_metrics *m, client *c, short revents)
{
  if (c->out == NULL && (revents & (POLLIN | POLLHUP | POLLERR))) {
    ssize_t n = recv(c->fd, c->req + c->rlen, sizeof c->req - 1 - c->rlen, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
      return;
    if (n <= 0) {
      client_close(c);
      return;
    }
    c->rlen += (size_t)n;
    c->req[c->rlen] = '\0';
    if (strstr(c->req, "\r\n\r\n") || strstr(c->req, "\n\n"))
      respond(m, c);
    else if (c->rlen == sizeof c->req - 1)
      client_close(c); /* request too large */
    return;
  }
  if (c->out && (revents & (POLLOUT | POLLHUP | POLLERR))) {
    ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
      return;
    if (n <= 0) {
      client_close(c);
      return;
    }
    c->out_off += (size_t)n;
    if (c->out_off == c->out_len)
      client_close(c);
  }
}

/* Returns -1 when out of descriptors (the caller pauses accepting). */
static int accept_clients(chatd_metrics *m, uint64_t now)
{
  for (int i = 0; i < CHATD_METRICS_CLIENTS; i++) {
    client *c = &m->cl[i];
    if (c->fd >= 0)
      continue;
    int fd = accept4(m->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
      return (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) ? -1
                                                                                        : 0;
    c->fd = fd;
    c->rlen = 0;
    c->deadline = now + CHATD_METRICS_TIMEOUT_MS;
  }
  return 0;
}

static void *metrics_main(void *arg)
{
  chatd_metrics *m = arg;
  struct pollfd pf[CHATD_METRICS_CLIENTS + 2];
  int idx[CHATD_METRICS_CLIENTS];
  uint64_t paused_until = 0;

  for (;;) {
    uint64_t now = mono_ms();
    int n = 0, nc = 0, busy = 0, timeout = -1;
    pf[n++] = (struct pollfd){m->stopfd, POLLIN, 0};
    for (int i = 0; i < CHATD_METRICS_CLIENTS; i++) {
      client *c = &m->cl[i];
      if (c->fd < 0)
        continue;
      busy++;
      if (now >= c->deadline) {
        client_close(c);
        busy--;
        continue;
      }
      int left = (int)(c->deadline - now);
      if (timeout < 0 || left < timeout)
        timeout = left;
      idx[nc++] = i;
      pf[n++] = (struct pollfd){c->fd, c->out ? POLLOUT : POLLIN, 0};
    }
    /* Stop accepting while every slot is taken (no busy loop on a full
     * table): the backlog holds the rest. */
    int lidx = -1;
    if (now < paused_until) {
      int left = (int)(paused_until - now);
      if (timeout < 0 || left < timeout)
        timeout = left;
    } else if (busy < CHATD_METRICS_CLIENTS) {
      lidx = n;
      pf[n++] = (struct pollfd){m->lfd, POLLIN, 0};
    }
    int r = poll(pf, (nfds_t)n, timeout);
    if (r < 0 && errno != EINTR)
      break;
    if (r <= 0)
      continue;
    if (pf[0].revents)
      break;
    now = mono_ms();
    for (int k = 0; k < nc; k++)
      if (pf[1 + k].revents)
        client_io(m, &m->cl[idx[k]], pf[1 + k].revents);
    if (lidx >= 0 && (pf[lidx].revents & POLLIN) && accept_clients(m, now) < 0)
      paused_until = now + 100; /* out of descriptors: no busy loop */
  }
  return NULL;
}

int chatd_metrics_new(chatd_metrics **out, const chatd_addr *addr, chatd_metrics_render render,
                      void *ctx, char *err, size_t errlen)
{
  chatd_metrics *m = calloc(1, sizeof *m);
  int one = 1, rc;

  *out = NULL;
  if (m == NULL) {
    snprintf(err, errlen, "metrics: out of memory");
    return -1;
  }
  for (int i = 0; i < CHATD_METRICS_CLIENTS; i++)
    m->cl[i].fd = -1;
  m->render = render;
  m->ctx = ctx;
  m->stopfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  m->lfd = socket(addr->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (m->stopfd < 0 || m->lfd < 0 ||
      setsockopt(m->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      bind(m->lfd, (const struct sockaddr *)&addr->ss, addr->len) != 0 ||
      listen(m->lfd, 64) != 0) {
    snprintf(err, errlen, "cannot listen for metrics on %s: %s", addr->text, strerror(errno));
    goto fail;
  }
  rc = pthread_create(&m->thread, NULL, metrics_main, m);
  if (rc != 0) {
    snprintf(err, errlen, "cannot start the metrics thread: %s", strerror(rc));
    goto fail;
  }
  *out = m;
  return 0;
fail:
  if (m->lfd >= 0)
    close(m->lfd);
  if (m->stopfd >= 0)
    close(m->stopfd);
  free(m);
  return -1;
}

void chatd_metrics_free(chatd_metrics *m)
{
  uint64_t one = 1;

  if (m == NULL)
    return;
  if (write(m->stopfd, &one, sizeof one) < 0) {
    /* cannot happen with a fresh eventfd; the join would hang, so say so */
    perror("chatd: metrics stop");
  }
  pthread_join(m->thread, NULL);
  for (int i = 0; i < CHATD_METRICS_CLIENTS; i++)
    client_close(&m->cl[i]);
  close(m->lfd);
  close(m->stopfd);
  free(m);
}
