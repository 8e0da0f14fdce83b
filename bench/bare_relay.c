/* bare_relay.c: the two baselines of the relay benchmark (scripts/bench-relay,
 * docs/benchmarks.md "Relay"). Same framing (4-byte big-endian length prefix,
 * at most 65535 bytes, several records packed per message) and the same
 * batching as chatd (epoll, non-blocking, level-triggered reads with a
 * per-socket budget, then ONE write per connection with output per loop
 * pass), but no handshake, no auth, no limits:
 *
 *   plain    relays the bytes of a message to every other member of its room
 *   encrypt  the same, plus ChaCha20-Poly1305 (IETF) per connection: the
 *            sender's message is decrypted once; per recipient its payload is
 *            copied as a record into that recipient's open message, which is
 *            padded (zeros to a multiple of 256, as secchat pads) and
 *            encrypted with that recipient's key once per loop pass: the
 *            physical limit of any relay that encrypts per connection and
 *            packs as chatd does.
 *
 * Wire (client -> relay), every message length-prefixed:
 *   JOIN   01 || room:u32be [|| key:32 in encrypt mode]   (plaintext, first)
 *   SEND   02 || data    (encrypt mode: AEAD of u16 len || SEND || zeros)
 * relay -> client:
 *   JOINED 81                                              (plaintext)
 *   { u16be len || 82 || data }+   records, packed as chatd packs them
 *                        (encrypt mode: AEAD of the records || zeros)
 * AEAD nonce (12 bytes): 4 bytes direction (0 client->relay, 1 relay->client)
 * || LE64 message counter of that direction. The key travels in clear: this
 * is a cost baseline, not a protocol.
 *
 * usage: bare_relay plain|encrypt [HOST:PORT]   (default 127.0.0.1:7421)
 * Single-threaded; pin it with taskset. Stops on SIGINT/SIGTERM. */
#define _GNU_SOURCE
#include "relaywire.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>

#define BR_MAX_MSG 65535u
#define BR_READ_BUDGET (256u * 1024u) /* bytes per socket per pass, as chatd */
#define BR_READ_CHUNK (64u * 1024u)
#define BR_OUT_CAP (4u * 1024u * 1024u) /* slow consumer: closed beyond */
#define BR_PAD 256u
#define BR_MAX_ROOM (1u << 20)
#define BR_PACK_MAX 16384u /* a packed message stays within 16 KiB, as chatd's queue chunks */

typedef struct br_conn {
  int fd;
  int room;           /* -1 until JOIN */
  int dirty;          /* on the write list this pass */
  int want_out;       /* EPOLLOUT registered */
  uint8_t key[32];
  uint64_t rx_n, tx_n;
  uint8_t *in;
  size_t in_len, in_cap;
  uint8_t *out;
  size_t out_off, out_len, out_cap;
  size_t open_off, open_used; /* the open (unsealed) message; used 0 = none */
} br_conn;

typedef struct br_room {
  int *fds;
  int n, cap;
} br_room;

static int g_encrypt;
static int g_ep;
static br_conn **g_conns; /* by fd */
static int g_maxfd;
static br_room *g_rooms;
static int *g_dirty;
static int g_ndirty;
static volatile sig_atomic_t g_stop;
static uint64_t g_deliveries;

static void on_signal(int sig)
{
  (void)sig;
  g_stop = 1;
}

static void mark_dirty(br_conn *c)
{
  if (!c->dirty) {
    c->dirty = 1;
    g_dirty[g_ndirty++] = c->fd;
  }
}

static void room_leave(br_conn *c)
{
  if (c->room < 0)
    return;
  br_room *r = &g_rooms[c->room];
  for (int i = 0; i < r->n; i++)
    if (r->fds[i] == c->fd) {
      r->fds[i] = r->fds[--r->n];
      break;
    }
  c->room = -1;
}

static void conn_close(br_conn *c)
{
  room_leave(c);
  epoll_ctl(g_ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  g_conns[c->fd] = NULL;
  free(c->in);
  free(c->out);
  sodium_memzero(c->key, sizeof c->key);
  c->fd = -1; /* a dirty entry for it is skipped */
  free(c);
}

/* Room the output of c can take len more bytes? Else c is a slow consumer. */
static uint8_t *out_append(br_conn *c, size_t len)
{
  if (c->out_len - c->out_off + len > BR_OUT_CAP)
    return NULL;
  if (c->out_off > 0 && c->out_len + len > c->out_cap) {
    memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
    c->out_len -= c->out_off;
    if (c->open_used > 0)
      c->open_off -= c->out_off;
    c->out_off = 0;
  }
  if (rw_reserve(&c->out, &c->out_cap, c->out_len + len, 4096) != 0)
    return NULL;
  uint8_t *p = c->out + c->out_len;
  c->out_len += len;
  mark_dirty(c);
  return p;
}

static void put_u32be(uint8_t *p, uint32_t v)
{
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static int do_join(br_conn *c, const uint8_t *m, size_t len)
{
  size_t need = 5 + (g_encrypt ? 32u : 0u);
  if (len != need || c->room >= 0)
    return -1;
  uint32_t room = (uint32_t)m[1] << 24 | (uint32_t)m[2] << 16 | (uint32_t)m[3] << 8 | m[4];
  if (room >= BR_MAX_ROOM)
    return -1;
  if (g_encrypt)
    memcpy(c->key, m + 5, 32);
  br_room *r = &g_rooms[room];
  if (r->n == r->cap) {
    int nc = r->cap ? r->cap * 2 : 16;
    int *p = realloc(r->fds, (size_t)nc * sizeof *p);
    if (p == NULL)
      return -1;
    r->fds = p;
    r->cap = nc;
  }
  r->fds[r->n++] = c->fd;
  c->room = (int)room;
  uint8_t *o = out_append(c, 5);
  if (o == NULL)
    return -1;
  put_u32be(o, 1);
  o[4] = 0x81;
  return 0;
}

static size_t pad_size(size_t used)
{
  size_t n = (used + BR_PAD - 1) / BR_PAD * BR_PAD;
  return n > BR_MAX_MSG - 16 ? BR_MAX_MSG - 16 : n;
}

/* Bytes a message of `used` record bytes takes in the output. */
static size_t extent(size_t used)
{
  return 4 + (g_encrypt ? pad_size(used) + 16 : used);
}

/* Seal c's open message in place: pad, encrypt, write the prefix. */
static void seal_open(br_conn *c)
{
  if (c->open_used == 0)
    return;
  uint8_t *p = c->out + c->open_off;
  size_t used = c->open_used, wire = used;
  c->open_used = 0;
  if (g_encrypt) {
    size_t padded = pad_size(used);
    uint8_t nonce[12];
    unsigned long long cl;
    memset(p + 4 + used, 0, padded - used);
    rw_nonce(nonce, 1, c->tx_n++);
    crypto_aead_chacha20poly1305_ietf_encrypt(p + 4, &cl, p + 4, padded, NULL, 0, NULL, nonce,
                                              c->key);
    wire = padded + 16;
  }
  put_u32be(p, (uint32_t)wire);
}

/* Append the record u16 len || rec to d's open message (a new one if none
 * is open or it would outgrow BR_PACK_MAX). -1: slow consumer. */
static int pack_record(br_conn *d, const uint8_t *rec, size_t len)
{
  size_t r = 2 + len;
  uint8_t *o;
  if (d->open_used > 0 && extent(d->open_used + r) <= BR_PACK_MAX) {
    if (out_append(d, extent(d->open_used + r) - extent(d->open_used)) == NULL)
      return -1;
    o = d->out + d->open_off + 4 + d->open_used;
    d->open_used += r;
  } else {
    seal_open(d);
    if ((o = out_append(d, extent(r))) == NULL)
      return -1;
    d->open_off = (size_t)(o - d->out);
    d->open_used = r;
    o += 4;
  }
  o[0] = (uint8_t)(len >> 8);
  o[1] = (uint8_t)len;
  memcpy(o + 2, rec, len);
  return 0;
}

/* One SEND: payload = 02 || data (already decrypted in encrypt mode). */
static int do_send(br_conn *c, const uint8_t *m, size_t len)
{
  static uint8_t rec[BR_MAX_MSG];
  if (c->room < 0 || len < 1 || m[0] != 0x02 || extent(2 + len) > BR_MAX_MSG + 4)
    return -1;
  br_room *r = &g_rooms[c->room];
  memcpy(rec, m, len);
  rec[0] = 0x82;
  for (int i = 0; i < r->n; i++) {
    br_conn *d = g_conns[r->fds[i]];
    if (d == c || d == NULL)
      continue;
    if (pack_record(d, rec, len) != 0) {
      /* slow consumer (or no memory): close it after this pass. */
      shutdown(d->fd, SHUT_RDWR);
      continue;
    }
    g_deliveries++;
  }
  return 0;
}

static int on_message(br_conn *c, uint8_t *m, size_t len)
{
  if (c->room < 0)
    return len >= 1 && m[0] == 0x01 ? do_join(c, m, len) : -1;
  if (!g_encrypt)
    return do_send(c, m, len);
  uint8_t nonce[12];
  unsigned long long pl;
  if (len < 16 + 2)
    return -1;
  rw_nonce(nonce, 0, c->rx_n);
  if (crypto_aead_chacha20poly1305_ietf_decrypt(m, &pl, NULL, m, len, NULL, 0, nonce, c->key) != 0)
    return -1;
  c->rx_n++;
  size_t bl = (size_t)m[0] << 8 | m[1];
  if (bl + 2 > pl)
    return -1;
  return do_send(c, m + 2, bl);
}

/* Handle every complete message in buf; returns the bytes consumed or -1. */
static ssize_t on_bytes(br_conn *c, uint8_t *buf, size_t len)
{
  size_t off = 0;
  while (len - off >= 4) {
    const uint8_t *p = buf + off;
    uint32_t ml = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    if (ml == 0 || ml > BR_MAX_MSG)
      return -1;
    if (len - off - 4 < ml)
      break;
    if (on_message(c, buf + off + 4, ml) != 0)
      return -1;
    off += 4 + ml;
  }
  return (ssize_t)off;
}

/* Read up to the budget into one shared buffer (as chatd: a connection
 * keeps only the tail of a message split across reads), handle every
 * complete message. -1: close. */
static int on_readable(br_conn *c)
{
  static uint8_t rbuf[BR_READ_CHUNK];
  size_t budget = BR_READ_BUDGET;
  while (budget > 0) {
    ssize_t n = read(c->fd, rbuf, sizeof rbuf);
    if (n == 0)
      return -1;
    if (n < 0)
      return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
    budget -= (size_t)n < budget ? (size_t)n : budget;
    uint8_t *buf = rbuf;
    size_t len = (size_t)n;
    if (c->in_len > 0) { /* a partial message is pending: append */
      if (rw_reserve(&c->in, &c->in_cap, c->in_len + len, 4096) != 0)
        return -1;
      memcpy(c->in + c->in_len, rbuf, len);
      buf = c->in;
      len = c->in_len + len;
    }
    ssize_t used = on_bytes(c, buf, len);
    if (used < 0)
      return -1;
    size_t rest = len - (size_t)used;
    if (rest > 0) {
      if (rw_reserve(&c->in, &c->in_cap, rest, 4096) != 0)
        return -1;
      memmove(c->in, buf + used, rest);
    }
    c->in_len = rest;
    if (rest == 0 && c->in_cap > 4096) {
      free(c->in);
      c->in = NULL;
      c->in_cap = 0;
    }
    if ((size_t)n < sizeof rbuf)
      break;
  }
  return 0;
}

static void set_want_out(br_conn *c, int on)
{
  if (c->want_out == on)
    return;
  struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0u), .data.fd = c->fd};
  epoll_ctl(g_ep, EPOLL_CTL_MOD, c->fd, &ev);
  c->want_out = on;
}

/* The write phase: one write per connection with output. */
static void flush_dirty(void)
{
  for (int i = 0; i < g_ndirty; i++) {
    br_conn *c = g_conns[g_dirty[i]];
    if (c == NULL || c->fd != g_dirty[i])
      continue;
    c->dirty = 0;
    seal_open(c);
    size_t pend = c->out_len - c->out_off;
    if (pend == 0)
      continue;
    ssize_t n = write(c->fd, c->out + c->out_off, pend);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      conn_close(c);
      continue;
    }
    if (n > 0)
      c->out_off += (size_t)n;
    if (c->out_off == c->out_len) {
      c->out_off = c->out_len = 0;
      if (c->out_cap > 256u * 1024u) {
        free(c->out);
        c->out = NULL;
        c->out_cap = 0;
      }
      set_want_out(c, 0);
    } else {
      set_want_out(c, 1);
    }
  }
  g_ndirty = 0;
}

static void accept_all(int lfd)
{
  for (;;) {
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
      return; /* EAGAIN, or EMFILE: level-triggered, retried next pass */
    if (fd >= g_maxfd) {
      close(fd);
      continue;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    br_conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
      close(fd);
      continue;
    }
    c->fd = fd;
    c->room = -1;
    g_conns[fd] = c;
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    if (epoll_ctl(g_ep, EPOLL_CTL_ADD, fd, &ev) != 0)
      conn_close(c);
  }
}

static int parse_addr(const char *s, struct sockaddr_in *sa)
{
  char host[64];
  const char *colon = strrchr(s, ':');
  if (colon == NULL || (size_t)(colon - s) >= sizeof host)
    return -1;
  memcpy(host, s, (size_t)(colon - s));
  host[colon - s] = 0;
  memset(sa, 0, sizeof *sa);
  sa->sin_family = AF_INET;
  sa->sin_port = htons((uint16_t)atoi(colon + 1));
  return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

int main(int argc, char **argv)
{
  if (argc < 2 || (strcmp(argv[1], "plain") != 0 && strcmp(argv[1], "encrypt") != 0)) {
    fprintf(stderr, "usage: bare_relay plain|encrypt [HOST:PORT]\n");
    return 2;
  }
  g_encrypt = strcmp(argv[1], "encrypt") == 0;
  struct sockaddr_in sa;
  if (parse_addr(argc > 2 ? argv[2] : "127.0.0.1:7421", &sa) != 0) {
    fprintf(stderr, "bare_relay: bad address\n");
    return 2;
  }
  if (sodium_init() < 0)
    return 1;
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  g_maxfd = rl.rlim_cur > 1u << 20 ? 1 << 20 : (int)rl.rlim_cur;
  g_conns = calloc((size_t)g_maxfd, sizeof *g_conns);
  g_dirty = calloc((size_t)g_maxfd, sizeof *g_dirty);
  g_rooms = calloc(BR_MAX_ROOM, sizeof *g_rooms);
  if (g_conns == NULL || g_dirty == NULL || g_rooms == NULL)
    return 1;
  signal(SIGPIPE, SIG_IGN);
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);

  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(lfd, 4096) != 0) {
    perror("bare_relay: listen");
    return 1;
  }
  g_ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event lev = {.events = EPOLLIN, .data.fd = lfd};
  epoll_ctl(g_ep, EPOLL_CTL_ADD, lfd, &lev);
  fprintf(stderr, "bare_relay %s listening on %s\n", argv[1], argc > 2 ? argv[2] : "127.0.0.1:7421");

  struct epoll_event evs[512];
  while (!g_stop) {
    int n = epoll_wait(g_ep, evs, 512, 200);
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (fd == lfd) {
        accept_all(lfd);
        continue;
      }
      br_conn *c = g_conns[fd];
      if (c == NULL)
        continue;
      if (evs[i].events & (EPOLLERR | EPOLLHUP)) {
        conn_close(c);
        continue;
      }
      if ((evs[i].events & EPOLLIN) && on_readable(c) != 0) {
        conn_close(c);
        continue;
      }
      if (evs[i].events & EPOLLOUT)
        mark_dirty(c);
    }
    flush_dirty();
  }
  fprintf(stderr, "bare_relay: %llu deliveries\n", (unsigned long long)g_deliveries);
  return 0;
}
