/* loadgen.c: load generator of the relay benchmark (scripts/bench-relay,
 * docs/benchmarks.md "Relay"). One process, one thread, epoll, non-blocking
 * sockets, thousands of connections. Speaks:
 *
 *   bare      bench/bare_relay plain   (JOIN room, SEND bytes)
 *   bare-enc  bench/bare_relay encrypt (same + ChaCha20-Poly1305 per conn,
 *             frames packed per connection per pass as chatd packs them)
 *   nats      the NATS text protocol (CONNECT/SUB/PUB/MSG, one subject per
 *             room, verbose/pedantic off, echo off)
 *   secchat   chatd: Noise XX initiator, REGISTER (cold) or AUTH with a
 *             token seen before (warm), proofs over the handshake hash,
 *             ROUTE_OPEN, GROUP_SEND, DELIVER (library internals, as
 *             tests/test_server.c does)
 *
 * Workload: conns connections in rooms of `room` members (conns/room rooms);
 * every member sends bodies of --body bytes (default 200) to its room; each
 * body starts with the CLOCK_MONOTONIC send time, so delivery latency is
 * measured in this process. Sends are paced globally (round robin over the connections):
 * --rate D offers D deliveries/s; without it (max throughput) every
 * connection sends --cap-per-conn messages/s (default 95: chatd's default
 * GROUP_SEND limit is 100/s per connection) and a window bounds the
 * deliveries in flight (sent x (room-1) - received <= --window per conn),
 * so no server queue grows without bound and no one is cut off as a slow
 * consumer. A sample of messages (--sample K: every K-th message of each
 * connection) is decrypted, verified and its deliveries timed; the other
 * secchat and bare-enc messages are read with the ChaCha20 keystream alone
 * (block counter 1 under the transport nonce: what the IETF AEAD encrypts
 * the plaintext with), without the Poly1305 check, and their records
 * classified by frame type (u16be length, msgpack array header, type): a
 * message of only DELIVERs and RELAYED acks is counted that way; any other
 * frame (presence, errors...) makes the message fully decrypted. Both
 * servers pack several frames per message (docs/protocol.md 1.3), so the
 * generator reads every record. The count is exact whatever the body size
 * (--check-peek compares the peeked types with a full decryption for every
 * message), and the generator stays cheaper than the server it measures.
 *
 * Phases: setup (connect + handshake/login + join, at most --concurrency in
 * flight; rate = connections ready / elapsed), optional idle hold with the
 * server's RSS read from /proc/PID/status before and after (--pid), load
 * (--warmup then --duration seconds; server CPU from /proc/PID/stat), then
 * optionally --warm: close everything and reconnect with the tokens already
 * issued (AUTH only). Source addresses are bound from --src-base upwards,
 * --per-src connections each (default 1: chatd allows 10 registrations per
 * source address per minute, in 65,536 hashed buckets that sources may share).
 *
 * Output: a human summary on stderr and one "RESULT key=value ..." line on
 * stdout. `loadgen --noise-bench N` instead runs N bare Noise XX handshakes
 * in process (both roles; the responder's share timed separately). */
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
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include <secchat/secchat.h>

#include "codec.h"
#include "crypto.h"
#include "noise.h"
#include "token.h"

#define LG_BODY_MAX 1024u /* --body: 200 by default, as the runs */
#define LG_MAX_MSG 65535u
#define LG_READ_CHUNK (64u * 1024u)
#define LG_READ_BUDGET (256u * 1024u)
#define LG_OUT_SKIP (64u * 1024u) /* a sender with this much unsent is skipped */
#define LG_HIST_US 1000000u       /* latency histogram: 1 us buckets up to 1 s */

enum { P_BARE, P_BARE_ENC, P_NATS, P_SECCHAT };
enum { ST_IDLE, ST_CONNECTING, ST_SETUP, ST_READY, ST_DEAD };
enum { SUB_NONE, SUB_JOINED, SUB_MSG2, SUB_TOKEN, SUB_AUTHOK, SUB_PONG };

typedef struct lg_conn {
  int fd, idx, room;
  uint8_t st, sub, dirty, want_out;
  uint8_t *in;
  size_t in_len, in_cap;
  uint8_t *out;
  size_t out_off, out_len, out_cap;
  uint64_t rx_n, tx_n, ref;
  uint8_t key[32]; /* bare-enc */
  /* secchat */
  sc_noise_handshake hs;
  sc_noise_transport t;
  uint8_t hh[32], sign_pk[32], sign_sk[64], dh_sk[32], dh_pk[32], dh_sig[64];
  uint8_t has_id;
  char *token;
  size_t token_len;
} lg_conn;

static struct {
  int proto;
  struct sockaddr_in server;
  int conns, room, concurrency, sample, per_src, warm, pid, check_peek;
  double duration, warmup, rate, cap_per_conn, idle;
  uint32_t src_base; /* host order */
  uint64_t window;   /* per connection */
} O;

static struct {
  int ep;
  lg_conn *c;
  int *dirty;
  int ndirty;
  int loading;   /* load phase: count deliveries, sample decrypts */
  uint64_t win0, win1; /* measurement window (ns) */
  uint64_t sent, deliv_total, deliv_win, errors, byes, bad, skipped, stalled;
  uint64_t err_code[16];
  uint64_t lat_n;
  uint32_t *hist;
  uint64_t hist_over;
  uint64_t peeked, peek_checked, peek_mismatch; /* secchat type peeks */
  uint64_t load_expect, load_got; /* whole load phase incl. drain: sent x (room-1), received */
  int ready, dead, in_setup;
  uint64_t now;
} G;

static uint64_t now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
  fprintf(stderr, "loadgen: %s\n", what);
  exit(1);
}

static void put_u32be(uint8_t *p, uint32_t v)
{
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

/* ---- /proc readings ------------------------------------------------------- */

static long rss_kib(int pid)
{
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", pid);
  FILE *f = fopen(path, "r");
  long v = -1;
  if (f == NULL)
    return -1;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "VmRSS:", 6) == 0)
      v = strtol(line + 6, NULL, 10);
  fclose(f);
  return v;
}

/* utime + stime of the whole process, seconds. */
static double cpu_s(int pid)
{
  char path[64], buf[2048];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *p = strrchr(buf, ')');
  if (p == NULL)
    return -1;
  unsigned long ut = 0, st = 0;
  /* after ")": state(3) ... utime is field 14, stime 15 */
  if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
    return -1;
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Server CPU share over an interval, or -1 if the process is gone. */
static double cpu_share(double c0, double c1, double seconds)
{
  return c0 < 0 || c1 < 0 || seconds <= 0 ? -1 : (c1 - c0) / seconds;
}

static double self_cpu_s(void)
{
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
         ru.ru_stime.tv_usec / 1e6;
}

/* ---- output --------------------------------------------------------------- */

static void set_events(lg_conn *c, int out)
{
  if (c->want_out == out)
    return;
  struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0u), .data.u32 = (uint32_t)c->idx};
  epoll_ctl(G.ep, EPOLL_CTL_MOD, c->fd, &ev);
  c->want_out = (uint8_t)out;
}

static uint8_t *out_append(lg_conn *c, size_t len)
{
  if (c->out_off > 0 && c->out_len + len > c->out_cap) {
    memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
    c->out_len -= c->out_off;
    c->out_off = 0;
  }
  if (rw_reserve(&c->out, &c->out_cap, c->out_len + len, 1024) != 0)
    die("out of memory");
  uint8_t *p = c->out + c->out_len;
  c->out_len += len;
  if (!c->dirty) {
    c->dirty = 1;
    G.dirty[G.ndirty++] = c->idx;
  }
  return p;
}

static void conn_kill(lg_conn *c, const char *why)
{
  if (c->st == ST_DEAD || c->st == ST_IDLE)
    return;
  if (why != NULL && G.dead < 5)
    fprintf(stderr, "loadgen: connection %d closed: %s\n", c->idx, why);
  if (c->st != ST_READY)
    G.in_setup--;
  else
    G.ready--;
  G.dead++;
  epoll_ctl(G.ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  c->fd = -1;
  c->st = ST_DEAD;
}

static void flush_dirty(void)
{
  for (int i = 0; i < G.ndirty; i++) {
    lg_conn *c = &G.c[G.dirty[i]];
    c->dirty = 0;
    if (c->fd < 0 || c->st == ST_CONNECTING)
      continue;
    size_t pend = c->out_len - c->out_off;
    if (pend == 0)
      continue;
    ssize_t n = write(c->fd, c->out + c->out_off, pend);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      conn_kill(c, "write error");
      continue;
    }
    if (n > 0)
      c->out_off += (size_t)n;
    if (c->out_off == c->out_len) {
      c->out_off = c->out_len = 0;
      set_events(c, 0);
    } else {
      set_events(c, 1);
    }
  }
  G.ndirty = 0;
}

/* ---- bodies and deliveries ------------------------------------------------ */

static size_t g_body = 200;

static void make_body(uint8_t *body, const lg_conn *c)
{
  memset(body, 0, g_body);
  uint64_t t = now_ns();
  memcpy(body, &t, 8);
  memcpy(body + 8, &c->idx, 4);
}

/* One delivery received; data is the body when it was decrypted/read. */
static void on_delivery(const uint8_t *data)
{
  G.deliv_total++;
  if (!G.loading || G.now < G.win0 || (G.win1 != 0 && G.now > G.win1))
    return;
  G.deliv_win++;
  if (data == NULL)
    return;
  uint64_t t;
  memcpy(&t, data, 8);
  if (t < G.win0 || t > G.now)
    return;
  uint64_t us = (G.now - t) / 1000u;
  if (us >= LG_HIST_US)
    G.hist_over++;
  else
    G.hist[us]++;
  G.lat_n++;
}

static double percentile(double q)
{
  uint64_t want = (uint64_t)(q * (double)G.lat_n), acc = 0;
  for (uint32_t i = 0; i < LG_HIST_US; i++) {
    acc += G.hist[i];
    if (acc > want)
      return i + 0.5;
  }
  return LG_HIST_US;
}

/* Decrypt this message? (every message outside the load phase) */
static int sampled(const lg_conn *c)
{
  return !G.loading || O.sample <= 1 || c->rx_n % (uint64_t)O.sample == 0;
}

/* ---- secchat ---------------------------------------------------------------- */

static void route_id(uint8_t id[32], int room)
{
  memset(id, 0, 32);
  memcpy(id, "lgroute", 7);
  memcpy(id + 8, &room, sizeof room);
}

static void sc_send_frame(lg_conn *c, const sc_frame *f)
{
  uint8_t body[SECCHAT_MAX_FRAME_BODY];
  static uint8_t msg[SECCHAT_MAX_WIRE_MESSAGE];
  secchat_ssize n = sc_frame_encode(f, body, sizeof body);
  if (n < 0)
    die("frame encode");
  secchat_ssize pl = sc_pad(msg, sizeof msg, body, (size_t)n);
  size_t out;
  if (pl < 0 || sc_noise_transport_encrypt(&c->t, msg, (size_t)pl, msg, sizeof msg, &out) != 0)
    die("transport encrypt");
  uint8_t *o = out_append(c, 4 + out);
  put_u32be(o, (uint32_t)out);
  memcpy(o + 4, msg, out);
}

static void sc_make_identity(lg_conn *c)
{
  crypto_sign_keypair(c->sign_pk, c->sign_sk);
  randombytes_buf(c->dh_sk, 32);
  crypto_scalarmult_base(c->dh_pk, c->dh_sk);
  if (sc_sign_ctx(c->dh_sig, SC_CTX_DH, c->dh_pk, 32, c->sign_sk) != 0)
    die("dh_sig");
  c->has_id = 1;
}

static void sc_start(lg_conn *c)
{
  if (!c->has_id)
    sc_make_identity(c);
  uint8_t msg[256];
  size_t len;
  const uint8_t p1[] = {0x92, 0x00, 0x00}; /* [minor 0, features 0] */
  if (sc_noise_handshake_init(&c->hs, SC_NOISE_XX, 1, (const uint8_t *)SC_NOISE_PROLOGUE,
                              strlen(SC_NOISE_PROLOGUE), c->dh_sk, NULL) != 0 ||
      sc_noise_handshake_write(&c->hs, p1, sizeof p1, msg, sizeof msg, &len) != 0)
    die("noise msg1");
  uint8_t *o = out_append(c, 4 + len);
  put_u32be(o, (uint32_t)len);
  memcpy(o + 4, msg, len);
  c->sub = SUB_MSG2;
}

static void sc_send_auth(lg_conn *c)
{
  uint8_t proof[64];
  sc_token_sign_login(proof, c->sign_sk, c->hh);
  sc_frame a = {.type = SC_FRAME_AUTH};
  a.u.auth.token.p = c->token;
  a.u.auth.token.len = c->token_len;
  a.u.auth.proof = proof;
  sc_send_frame(c, &a);
  c->sub = SUB_AUTHOK;
}

static void sc_on_msg2(lg_conn *c, const uint8_t *m, size_t len)
{
  uint8_t pay[4096], msg[256];
  size_t plen, ml;
  if (sc_noise_handshake_read(&c->hs, m, len, pay, sizeof pay, &plen) != 0) {
    conn_kill(c, "noise msg2");
    return;
  }
  if (sc_noise_handshake_write(&c->hs, NULL, 0, msg, sizeof msg, &ml) != 0 ||
      sc_noise_handshake_split(&c->hs, &c->t, c->hh) != 0)
    die("noise msg3");
  uint8_t *o = out_append(c, 4 + ml);
  put_u32be(o, (uint32_t)ml);
  memcpy(o + 4, msg, ml);
  c->rx_n = 0;
  if (c->token != NULL) {
    sc_send_auth(c);
    return;
  }
  char name[32];
  int nl = snprintf(name, sizeof name, "lg%d", c->idx);
  uint8_t proof[64];
  sc_token_sign_registration(proof, c->sign_sk, c->hh, name, (size_t)nl, c->sign_pk, c->dh_pk);
  sc_frame f = {.type = SC_FRAME_REGISTER};
  f.u.reg.name.p = name;
  f.u.reg.name.len = (size_t)nl;
  f.u.reg.sig_pk = c->sign_pk;
  f.u.reg.dh_pk = c->dh_pk;
  f.u.reg.dh_sig = c->dh_sig;
  f.u.reg.proof = proof;
  sc_send_frame(c, &f);
  c->sub = SUB_TOKEN;
}

static void became_ready(lg_conn *c)
{
  c->st = ST_READY;
  c->sub = SUB_NONE;
  G.in_setup--;
  G.ready++;
}

/* The frame types of transport message m (the n-th from the relay), read
 * without the Poly1305 check: Noise's ChaChaPoly is the IETF AEAD, whose
 * plaintext is XORed with the ChaCha20 keystream from block counter 1
 * (block 0 makes the Poly1305 key) under the nonce 0^32 || LE64(n). Each
 * record's first 4 bytes are u16be body_len, the msgpack fixarray header and
 * the type (a positive fixint: every type is < 128). A benchmark shortcut on
 * loopback, never a way to accept a frame. Fills types[] (up to max) and
 * returns the record count, or -1 if the message does not look like frames
 * (then the caller decrypts it fully and fails properly). */
static int sc_peek_types(const lg_conn *c, const uint8_t *m, size_t len, uint64_t n,
                         uint8_t *pt, uint8_t *types, int max)
{
  uint8_t nonce[12];
  if (len < 4 + SC_NOISE_TAGLEN)
    return -1;
  size_t pl = len - SC_NOISE_TAGLEN;
  rw_nonce(nonce, 0, n);
  if (crypto_stream_chacha20_ietf_xor_ic(pt, m, pl, nonce, 1, c->t.rx.k) != 0)
    return -1;
  sc_records recs;
  const uint8_t *body;
  size_t bl;
  int k = 0;
  if (sc_records_open(&recs, pt, pl) < 0)
    return -1;
  while (sc_records_next(&recs, &body, &bl)) {
    if (k == max || bl < 2 || (body[0] & 0xf0u) != 0x90u || body[1] > 0x7fu)
      return -1;
    types[k++] = body[1];
  }
  return k;
}

static void sc_on_frame(lg_conn *c, const sc_frame *f);

static void sc_on_message(lg_conn *c, uint8_t *m, size_t len)
{
  if (c->st == ST_SETUP && c->sub == SUB_MSG2) {
    sc_on_msg2(c, m, len);
    return;
  }
  static uint8_t pt[SECCHAT_MAX_WIRE_MESSAGE], types[SECCHAT_MAX_WIRE_MESSAGE / 3];
  uint64_t n = c->rx_n++;
  int npeek = -1;
  if (G.loading && (O.check_peek || !sampled(c))) {
    npeek = sc_peek_types(c, m, len, n, pt, types, (int)sizeof types);
    if (npeek > 0 && !O.check_peek) {
      /* only DELIVERs and (when ready) RELAYED acks are counted this way */
      int k = 0, dl = 0;
      for (; k < npeek; k++)
        if (types[k] == SC_FRAME_DELIVER)
          dl++;
        else if (types[k] != SC_FRAME_RELAYED || c->st != ST_READY)
          break;
      if (k == npeek) {
        G.peeked += (uint64_t)dl;
        for (int i = 0; i < dl; i++)
          on_delivery(NULL);
        return;
      }
    }
  }
  size_t pl;
  const uint8_t *body;
  size_t bl;
  sc_records recs;
  sc_noise_cipher_set_nonce(&c->t.rx, n);
  if (sc_noise_transport_decrypt(&c->t, m, len, pt, sizeof pt, &pl) != 0 ||
      sc_records_open(&recs, pt, pl) < 0) {
    G.bad++;
    conn_kill(c, "undecryptable or malformed message");
    return;
  }
  for (int k = 0; c->st != ST_DEAD && sc_records_next(&recs, &body, &bl); k++) {
    sc_frame f;
    if (sc_frame_decode(&f, body, bl) != 0) {
      G.bad++;
      conn_kill(c, "malformed frame");
      return;
    }
    if (npeek >= 0 || (O.check_peek && G.loading)) {
      G.peek_checked++;
      if (npeek <= k || types[k] != f.type)
        G.peek_mismatch++;
    }
    sc_on_frame(c, &f);
  }
}

static void sc_on_frame(lg_conn *c, const sc_frame *f)
{
  switch (f->type) {
  case SC_FRAME_DELIVER:
    on_delivery(f->u.deliver.blob.len >= 12 ? f->u.deliver.blob.p : NULL);
    break;
  case SC_FRAME_TOKEN:
    if (c->sub != SUB_TOKEN || f->u.token.token.len > SECCHAT_MAX_TOKEN_BYTES)
      break;
    free(c->token);
    c->token = malloc(f->u.token.token.len);
    if (c->token == NULL)
      die("out of memory");
    memcpy(c->token, f->u.token.token.p, f->u.token.token.len);
    c->token_len = f->u.token.token.len;
    sc_send_auth(c);
    break;
  case SC_FRAME_AUTH_OK: {
    uint8_t id[32];
    route_id(id, c->room);
    sc_frame r = {.type = SC_FRAME_ROUTE_OPEN};
    r.u.route.route_id = id;
    sc_send_frame(c, &r);
    sc_frame p = {.type = SC_FRAME_PING};
    p.u.ping.nonce = 1;
    sc_send_frame(c, &p);
    c->sub = SUB_PONG;
    break;
  }
  case SC_FRAME_PONG:
    if (c->st == ST_SETUP && c->sub == SUB_PONG)
      became_ready(c);
    break;
  case SC_FRAME_ERROR:
    G.errors++;
    G.err_code[f->u.error.code < 16 ? f->u.error.code : 0]++;
    if (c->st == ST_SETUP)
      conn_kill(c, "ERROR during setup (registration limit per source? use --per-src)");
    break;
  case SC_FRAME_BYE:
    G.byes++;
    conn_kill(c, "BYE");
    break;
  default: /* RELAYED, PRESENCE */
    break;
  }
}

static void sc_send_body(lg_conn *c)
{
  static uint8_t body[512], msg[1024];
  uint8_t blob[LG_BODY_MAX], id[32];
  make_body(blob, c);
  route_id(id, c->room);
  sc_frame f = {.type = SC_FRAME_GROUP_SEND};
  f.u.group_send.ref = ++c->ref;
  f.u.group_send.route_id = id;
  f.u.group_send.blob.p = blob;
  f.u.group_send.blob.len = g_body;
  secchat_ssize n = sc_frame_encode(&f, body, sizeof body);
  secchat_ssize pl = n < 0 ? n : sc_pad(msg, sizeof msg, body, (size_t)n);
  size_t out;
  if (pl < 0 || sc_noise_transport_encrypt(&c->t, msg, (size_t)pl, msg, sizeof msg, &out) != 0)
    die("GROUP_SEND encode");
  uint8_t *o = out_append(c, 4 + out);
  put_u32be(o, (uint32_t)out);
  memcpy(o + 4, msg, out);
}

/* ---- bare relay ----------------------------------------------------------- */

static void bare_start(lg_conn *c)
{
  size_t len = O.proto == P_BARE_ENC ? 37u : 5u;
  uint8_t *o = out_append(c, 4 + len);
  put_u32be(o, (uint32_t)len);
  o[4] = 0x01;
  put_u32be(o + 5, (uint32_t)c->room);
  if (O.proto == P_BARE_ENC) {
    randombytes_buf(c->key, 32);
    memcpy(o + 9, c->key, 32);
  }
  c->rx_n = c->tx_n = 0;
  c->sub = SUB_JOINED;
}

/* The records of a bare relay message (u16be len || 82 || data, packed;
 * zero padding after them in encrypt mode): each one a delivery, its data
 * timed when `timed`. -1 if malformed. */
static int bare_records(const uint8_t *p, size_t len, int timed)
{
  size_t off = 0;
  while (len - off >= 2) {
    size_t rl = (size_t)p[off] << 8 | p[off + 1];
    if (rl == 0)
      break; /* padding */
    if (rl != 1 + g_body || rl > len - off - 2 || p[off + 2] != 0x82)
      return -1;
    on_delivery(timed ? p + off + 3 : NULL);
    off += 2 + rl;
  }
  return off > 0 ? 0 : -1;
}

static void bare_on_message(lg_conn *c, uint8_t *m, size_t len)
{
  if (c->st == ST_SETUP) {
    if (len == 1 && m[0] == 0x81)
      became_ready(c);
    else
      conn_kill(c, "unexpected message before JOINED");
    return;
  }
  if (O.proto == P_BARE) {
    if (bare_records(m, len, 1) != 0)
      G.bad++;
    return;
  }
  /* bare-enc: as for secchat, unsampled messages are read with the
   * keystream alone (no Poly1305 check), sampled ones decrypted fully. */
  uint64_t n = c->rx_n++;
  uint8_t nonce[12];
  unsigned long long pl;
  rw_nonce(nonce, 1, n);
  int rc;
  if (len < 19)
    rc = -1;
  else if (!sampled(c))
    rc = crypto_stream_chacha20_ietf_xor_ic(m, m, len - 16, nonce, 1, c->key) != 0 ||
                 bare_records(m, len - 16, 0) != 0
             ? -1
             : 0;
  else
    rc = crypto_aead_chacha20poly1305_ietf_decrypt(m, &pl, NULL, m, len, NULL, 0, nonce,
                                                   c->key) != 0 ||
                 bare_records(m, (size_t)pl, 1) != 0
             ? -1
             : 0;
  if (rc != 0) {
    G.bad++;
    conn_kill(c, "bare-enc: bad message");
  }
}

static void bare_send_body(lg_conn *c)
{
  uint8_t body[LG_BODY_MAX];
  make_body(body, c);
  if (O.proto == P_BARE) {
    uint8_t *o = out_append(c, 4 + 1 + g_body);
    put_u32be(o, (uint32_t)(1 + g_body));
    o[4] = 0x02;
    memcpy(o + 5, body, g_body);
    return;
  }
  uint8_t pt[LG_BODY_MAX + 256] = {0}, nonce[12];
  size_t bl = 1 + g_body, ptlen = (2 + bl + 255) / 256 * 256;
  pt[0] = (uint8_t)(bl >> 8);
  pt[1] = (uint8_t)bl;
  pt[2] = 0x02;
  memcpy(pt + 3, body, g_body);
  uint8_t *o = out_append(c, 4 + ptlen + 16);
  put_u32be(o, (uint32_t)(ptlen + 16));
  unsigned long long cl;
  rw_nonce(nonce, 0, c->tx_n++);
  crypto_aead_chacha20poly1305_ietf_encrypt(o + 4, &cl, pt, ptlen, NULL, 0, NULL, nonce, c->key);
}

/* ---- NATS ----------------------------------------------------------------- */

static void nats_start(lg_conn *c)
{
  char buf[256];
  int n = snprintf(buf, sizeof buf,
                   "CONNECT {\"verbose\":false,\"pedantic\":false,\"echo\":false,"
                   "\"name\":\"loadgen\",\"lang\":\"c\",\"version\":\"1\",\"protocol\":1}\r\n"
                   "SUB r.%d 1\r\nPING\r\n",
                   c->room);
  memcpy(out_append(c, (size_t)n), buf, (size_t)n);
  c->sub = SUB_PONG;
}

/* Parse what is in buf; returns the bytes consumed. */
static size_t nats_parse(lg_conn *c, uint8_t *buf, size_t len)
{
  size_t off = 0;
  while (off < len) {
    uint8_t *p = buf + off;
    uint8_t *nl = memchr(p, '\n', len - off);
    if (nl == NULL)
      break;
    size_t ll = (size_t)(nl - p) + 1;
    if (ll >= 4 && memcmp(p, "MSG ", 4) == 0) {
      /* MSG <subject> <sid> [reply] <#bytes>\r\n<payload>\r\n */
      uint8_t *sp = nl;
      while (sp > p && sp[-1] != ' ')
        sp--;
      size_t nb = strtoul((const char *)sp, NULL, 10);
      if (len - off < ll + nb + 2)
        break;
      on_delivery(nb >= 12 ? p + ll : NULL);
      off += ll + nb + 2;
      continue;
    }
    if (ll >= 4 && memcmp(p, "PING", 4) == 0) {
      memcpy(out_append(c, 6), "PONG\r\n", 6);
    } else if (ll >= 4 && memcmp(p, "PONG", 4) == 0) {
      if (c->st == ST_SETUP)
        became_ready(c);
    } else if (ll >= 4 && memcmp(p, "-ERR", 4) == 0) {
      G.errors++;
      if (G.errors < 5)
        fprintf(stderr, "loadgen: nats: %.*s", (int)ll, (const char *)p);
    }
    off += ll; /* INFO, +OK */
  }
  return off;
}

static void nats_send_body(lg_conn *c)
{
  char hdr[64];
  uint8_t body[LG_BODY_MAX];
  make_body(body, c);
  int n = snprintf(hdr, sizeof hdr, "PUB r.%d %zu\r\n", c->room, g_body);
  uint8_t *o = out_append(c, (size_t)n + g_body + 2);
  memcpy(o, hdr, (size_t)n);
  memcpy(o + n, body, g_body);
  memcpy(o + n + g_body, "\r\n", 2);
}

/* ---- connections ---------------------------------------------------------- */

static void conn_start(lg_conn *c)
{
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    die("socket (descriptor limit?)");
  struct sockaddr_in src = {.sin_family = AF_INET};
  src.sin_addr.s_addr = htonl(O.src_base + (uint32_t)(c->idx / O.per_src));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, (struct sockaddr *)&src, sizeof src) != 0)
    die("bind source address");
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  c->fd = fd;
  c->st = ST_CONNECTING;
  c->in_len = c->out_len = c->out_off = 0;
  c->rx_n = c->tx_n = 0;
  G.in_setup++;
  struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = (uint32_t)c->idx};
  c->want_out = 1;
  if (connect(fd, (struct sockaddr *)&O.server, sizeof O.server) != 0 && errno != EINPROGRESS) {
    conn_kill(c, "connect");
    return;
  }
  epoll_ctl(G.ep, EPOLL_CTL_ADD, fd, &ev);
}

static void on_connected(lg_conn *c)
{
  int err = 0;
  socklen_t el = sizeof err;
  getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
  if (err != 0) {
    conn_kill(c, strerror(err));
    return;
  }
  c->st = ST_SETUP;
  set_events(c, 0);
  switch (O.proto) {
  case P_BARE:
  case P_BARE_ENC:
    bare_start(c);
    break;
  case P_NATS:
    nats_start(c);
    break;
  default:
    sc_start(c);
  }
}

/* Handle the complete messages in buf; returns the bytes consumed. */
static size_t on_bytes(lg_conn *c, uint8_t *buf, size_t len)
{
  if (O.proto == P_NATS)
    return nats_parse(c, buf, len);
  size_t off = 0;
  while (len - off >= 4 && c->st != ST_DEAD) {
    const uint8_t *p = buf + off;
    uint32_t ml = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    if (ml == 0 || ml > LG_MAX_MSG) {
      conn_kill(c, "bad length prefix");
      break;
    }
    if (len - off - 4 < ml)
      break;
    if (O.proto == P_SECCHAT)
      sc_on_message(c, buf + off + 4, ml);
    else
      bare_on_message(c, buf + off + 4, ml);
    off += 4 + ml;
  }
  return off;
}

/* Read up to the budget into one shared buffer; a connection keeps only
 * the tail of a message split across reads. */
static void on_readable(lg_conn *c)
{
  static uint8_t rbuf[LG_READ_CHUNK];
  size_t budget = LG_READ_BUDGET;
  while (budget > 0 && c->st != ST_DEAD) {
    ssize_t n = read(c->fd, rbuf, sizeof rbuf);
    if (n == 0) {
      conn_kill(c, "EOF from server");
      return;
    }
    if (n < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        conn_kill(c, "read error");
      return;
    }
    G.now = now_ns();
    budget -= (size_t)n < budget ? (size_t)n : budget;
    uint8_t *buf = rbuf;
    size_t len = (size_t)n;
    if (c->in_len > 0) {
      if (rw_reserve(&c->in, &c->in_cap, c->in_len + len, 1024) != 0)
        die("out of memory");
      memcpy(c->in + c->in_len, rbuf, len);
      buf = c->in;
      len += c->in_len;
    }
    size_t used = on_bytes(c, buf, len);
    if (c->st == ST_DEAD)
      return;
    size_t rest = len - used;
    if (rest > 0) {
      if (rw_reserve(&c->in, &c->in_cap, rest, 1024) != 0)
        die("out of memory");
      memmove(c->in, buf + used, rest);
    }
    c->in_len = rest;
    if ((size_t)n < sizeof rbuf)
      break;
  }
  if (c->in_len == 0 && c->in_cap > 4096) {
    free(c->in);
    c->in = NULL;
    c->in_cap = 0;
  }
}

static void poll_once(int timeout_ms)
{
  struct epoll_event evs[1024];
  int n = epoll_wait(G.ep, evs, 1024, timeout_ms);
  G.now = now_ns();
  for (int i = 0; i < n; i++) {
    lg_conn *c = &G.c[evs[i].data.u32];
    if (c->st == ST_DEAD || c->fd < 0)
      continue;
    if (c->st == ST_CONNECTING) {
      on_connected(c);
      continue;
    }
    if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
      on_readable(c);
    if (c->st != ST_DEAD && (evs[i].events & EPOLLOUT) && !c->dirty) {
      c->dirty = 1;
      G.dirty[G.ndirty++] = c->idx;
    }
  }
  flush_dirty();
}

static void free_conn_buffers(lg_conn *c)
{
  free(c->in);
  free(c->out);
  c->in = c->out = NULL;
  c->in_len = c->in_cap = c->out_len = c->out_off = c->out_cap = 0;
}

/* Connect every connection (at most --concurrency in setup at once) until
 * all are ready or dead or the timeout passes. Returns elapsed seconds. */
static double run_setup(double timeout_s)
{
  int next = 0;
  G.ready = G.dead = G.in_setup = 0;
  uint64_t t0 = now_ns(), deadline = t0 + (uint64_t)(timeout_s * 1e9);
  while (G.ready + G.dead < O.conns) {
    while (next < O.conns && G.in_setup < O.concurrency)
      conn_start(&G.c[next++]);
    flush_dirty();
    poll_once(5);
    if (G.now > deadline) {
      fprintf(stderr, "loadgen: setup timeout: %d ready, %d dead, %d pending\n", G.ready, G.dead,
              O.conns - G.ready - G.dead);
      break;
    }
  }
  return (double)(now_ns() - t0) / 1e9;
}

static void close_all(void)
{
  for (int i = 0; i < O.conns; i++) {
    lg_conn *c = &G.c[i];
    if (c->fd >= 0) {
      epoll_ctl(G.ep, EPOLL_CTL_DEL, c->fd, NULL);
      close(c->fd);
      c->fd = -1;
    }
    c->st = ST_IDLE;
    c->dirty = 0;
    free_conn_buffers(c);
  }
  G.ndirty = 0;
  G.ready = G.dead = G.in_setup = 0;
}

static void drain(double seconds)
{
  uint64_t end = now_ns() + (uint64_t)(seconds * 1e9);
  while (now_ns() < end)
    poll_once(10);
}

static void send_body(lg_conn *c)
{
  switch (O.proto) {
  case P_BARE:
  case P_BARE_ENC:
    bare_send_body(c);
    break;
  case P_NATS:
    nats_send_body(c);
    break;
  default:
    sc_send_body(c);
  }
  G.sent++;
}

/* The load phase. Returns the offered send rate (messages/s). */
static double run_load(double *srv_cpu, double *gen_cpu, double *win_s)
{
  double rate = O.rate > 0 ? O.rate / (O.room - 1) : (double)G.ready * O.cap_per_conn;
  double backlog_max = rate * 0.02 + 1; /* at most 20 ms of lag is caught up */
  uint64_t window = O.window * (uint64_t)O.conns;
  uint64_t t0 = now_ns();
  G.win0 = t0 + (uint64_t)(O.warmup * 1e9);
  G.win1 = G.win0 + (uint64_t)(O.duration * 1e9);
  G.loading = 1;
  double sched = 0, s0 = -1, g0 = 0;
  uint64_t sent0 = G.sent, deliv0 = G.deliv_total;
  int rr = 0;
  while ((G.now = now_ns()) < G.win1) {
    if (s0 < 0 && G.now >= G.win0) {
      s0 = O.pid > 0 ? cpu_s(O.pid) : 0;
      g0 = self_cpu_s();
    }
    double due = (double)(G.now - t0) / 1e9 * rate;
    if (due - sched > backlog_max) {
      G.skipped += (uint64_t)(due - sched - backlog_max);
      sched = due - backlog_max;
    }
    while (sched < due) {
      uint64_t expect = (G.sent - sent0) * (uint64_t)(O.room - 1), got = G.deliv_total - deliv0;
      if (expect > got && expect - got > window) {
        G.stalled++;
        break;
      }
      lg_conn *c = &G.c[rr];
      rr = (rr + 1) % O.conns;
      sched += 1;
      if (c->st != ST_READY || c->out_len - c->out_off > LG_OUT_SKIP) {
        G.skipped++;
        continue;
      }
      send_body(c);
    }
    flush_dirty();
    poll_once(1);
  }
  *srv_cpu = O.pid > 0 ? cpu_share(s0, cpu_s(O.pid), 1.0) : 0;
  *gen_cpu = self_cpu_s() - g0;
  *win_s = (double)(G.win1 - G.win0) / 1e9;
  drain(0.3); /* let what is in flight arrive (not counted: after win1) */
  G.load_expect = (G.sent - sent0) * (uint64_t)(O.room - 1);
  G.load_got = G.deliv_total - deliv0;
  G.loading = 0;
  return rate;
}

/* ---- bare Noise XX baseline --------------------------------------------------- */

static int noise_bench(int n)
{
  uint8_t ssk[32], csk[32];
  randombytes_buf(ssk, 32);
  randombytes_buf(csk, 32);
  double resp = 0;
  uint64_t t0 = now_ns();
  for (int i = 0; i < n; i++) {
    sc_noise_handshake hi, hr;
    sc_noise_transport ti, tr;
    uint8_t m[512], p[512];
    size_t ml, pl;
    int rc = 0;
    rc |= sc_noise_handshake_init(&hi, SC_NOISE_XX, 1, (const uint8_t *)SC_NOISE_PROLOGUE,
                                  strlen(SC_NOISE_PROLOGUE), csk, NULL);
    rc |= sc_noise_handshake_write(&hi, NULL, 0, m, sizeof m, &ml);
    uint64_t r0 = now_ns();
    rc |= sc_noise_handshake_init(&hr, SC_NOISE_XX, 0, (const uint8_t *)SC_NOISE_PROLOGUE,
                                  strlen(SC_NOISE_PROLOGUE), ssk, NULL);
    rc |= sc_noise_handshake_read(&hr, m, ml, p, sizeof p, &pl);
    rc |= sc_noise_handshake_write(&hr, NULL, 0, m, sizeof m, &ml);
    resp += (double)(now_ns() - r0);
    rc |= sc_noise_handshake_read(&hi, m, ml, p, sizeof p, &pl);
    rc |= sc_noise_handshake_write(&hi, NULL, 0, m, sizeof m, &ml);
    r0 = now_ns();
    rc |= sc_noise_handshake_read(&hr, m, ml, p, sizeof p, &pl);
    rc |= sc_noise_handshake_split(&hr, &tr, NULL);
    resp += (double)(now_ns() - r0);
    rc |= sc_noise_handshake_split(&hi, &ti, NULL);
    if (rc != 0)
      die("bare Noise XX failed");
  }
  double t = (double)(now_ns() - t0) / 1e9;
  fprintf(stderr, "bare Noise XX: %d handshakes in %.3f s: %.0f/s both roles, responder share "
                  "%.0f/s\n",
          n, t, n / t, n / (resp / 1e9));
  printf("RESULT mode=noise-bench n=%d noise_xx_per_s=%.0f noise_xx_responder_per_s=%.0f\n", n,
         n / t, n / (resp / 1e9));
  return 0;
}

/* ---- main ----------------------------------------------------------------- */

static void usage(void)
{
  fprintf(stderr,
          "usage: loadgen --proto bare|bare-enc|nats|secchat --server HOST:PORT\n"
          "         [--conns N] [--room R] [--duration S] [--warmup S] [--rate DELIVERIES/S]\n"
          "         [--cap-per-conn MSGS/S] [--window DELIVERIES/CONN] [--sample K]\n"
          "         [--concurrency P] [--idle S] [--warm] [--pid PID] [--src-base A.B.C.D]\n"
          "         [--per-src N] [--body BYTES (12..1024, default 200)] [--check-peek]\n"
          "       loadgen --noise-bench N\n");
  exit(2);
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

static void parse_args(int argc, char **argv)
{
  struct in_addr a;
  O.proto = -1;
  O.conns = 1000;
  O.room = 10;
  O.duration = 5;
  O.warmup = 1;
  O.cap_per_conn = 95;
  O.window = 64;
  O.sample = 16;
  O.concurrency = 64;
  O.per_src = 1; /* chatd's registration buckets are hashed: sources may share one */
  inet_pton(AF_INET, "127.1.0.1", &a);
  O.src_base = ntohl(a.s_addr);
  for (int i = 1; i < argc; i++) {
    const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(k, "--warm") == 0) {
      O.warm = 1;
      continue;
    }
    if (strcmp(k, "--check-peek") == 0) {
      O.check_peek = 1;
      continue;
    }
    if (v == NULL)
      usage();
    i++;
    if (strcmp(k, "--proto") == 0) {
      O.proto = strcmp(v, "bare") == 0       ? P_BARE
                : strcmp(v, "bare-enc") == 0 ? P_BARE_ENC
                : strcmp(v, "nats") == 0     ? P_NATS
                : strcmp(v, "secchat") == 0  ? P_SECCHAT
                                             : -1;
    } else if (strcmp(k, "--server") == 0) {
      if (parse_addr(v, &O.server) != 0)
        usage();
    } else if (strcmp(k, "--conns") == 0) {
      O.conns = atoi(v);
    } else if (strcmp(k, "--room") == 0) {
      O.room = atoi(v);
    } else if (strcmp(k, "--duration") == 0) {
      O.duration = atof(v);
    } else if (strcmp(k, "--body") == 0) {
      g_body = strtoul(v, NULL, 10);
    } else if (strcmp(k, "--warmup") == 0) {
      O.warmup = atof(v);
    } else if (strcmp(k, "--rate") == 0) {
      O.rate = atof(v);
    } else if (strcmp(k, "--cap-per-conn") == 0) {
      O.cap_per_conn = atof(v);
    } else if (strcmp(k, "--window") == 0) {
      O.window = strtoull(v, NULL, 10);
    } else if (strcmp(k, "--sample") == 0) {
      O.sample = atoi(v);
    } else if (strcmp(k, "--concurrency") == 0) {
      O.concurrency = atoi(v);
    } else if (strcmp(k, "--idle") == 0) {
      O.idle = atof(v);
    } else if (strcmp(k, "--pid") == 0) {
      O.pid = atoi(v);
    } else if (strcmp(k, "--per-src") == 0) {
      O.per_src = atoi(v);
    } else if (strcmp(k, "--src-base") == 0) {
      if (inet_pton(AF_INET, v, &a) != 1)
        usage();
      O.src_base = ntohl(a.s_addr);
    } else if (strcmp(k, "--noise-bench") == 0) {
      exit(noise_bench(atoi(v)));
    } else {
      usage();
    }
  }
  if (O.proto < 0 || O.server.sin_port == 0 || O.conns < 2 || O.room < 2 ||
      O.conns % O.room != 0 || O.concurrency < 1 || O.sample < 1 || O.per_src < 1 ||
      O.cap_per_conn <= 0 || g_body < 12 || g_body > LG_BODY_MAX)
    usage();
}

static const char *proto_name(void)
{
  static const char *n[] = {"bare", "bare-enc", "nats", "secchat"};
  return n[O.proto];
}

int main(int argc, char **argv)
{
  if (secchat_init() != 0)
    die("secchat_init");
  parse_args(argc, argv);
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  if ((rlim_t)O.conns + 64 > rl.rlim_cur)
    die("--conns above the descriptor limit");
  signal(SIGPIPE, SIG_IGN);

  G.ep = epoll_create1(EPOLL_CLOEXEC);
  G.c = calloc((size_t)O.conns, sizeof *G.c);
  G.dirty = calloc((size_t)O.conns, sizeof *G.dirty);
  G.hist = calloc(LG_HIST_US, sizeof *G.hist);
  if (G.c == NULL || G.dirty == NULL || G.hist == NULL)
    die("out of memory");
  for (int i = 0; i < O.conns; i++) {
    G.c[i].fd = -1;
    G.c[i].idx = i;
    G.c[i].room = i / O.room;
  }
  long rss0 = O.pid > 0 ? rss_kib(O.pid) : -1;
  double c0 = O.pid > 0 ? cpu_s(O.pid) : 0;
  double t_setup = run_setup(120);
  double setup_cpu = O.pid > 0 ? cpu_share(c0, cpu_s(O.pid), t_setup) : 0;
  int ready = G.ready;
  double setup_rate = ready / t_setup;
  fprintf(stderr, "%s: %d/%d connections ready in %.2f s: %.0f/s (%s)\n", proto_name(), ready,
          O.conns, t_setup, setup_rate, O.proto == P_SECCHAT ? "cold: REGISTER + AUTH" : "setup");
  printf("RESULT proto=%s conns=%d room=%d body=%zu ready=%d setup_per_s=%.0f setup_srv_cpu=%.2f",
         proto_name(), O.conns, O.room, g_body, ready, setup_rate, setup_cpu);

  if (O.idle > 0) {
    drain(O.idle);
    long rss1 = O.pid > 0 ? rss_kib(O.pid) : -1;
    if (rss0 > 0 && rss1 > 0 && G.ready > 0) {
      double per = (double)(rss1 - rss0) * 1024.0 / G.ready;
      fprintf(stderr, "server RSS %ld KiB -> %ld KiB with %d idle connections: %.0f bytes each\n",
              rss0, rss1, G.ready, per);
      printf(" rss0_kib=%ld rss1_kib=%ld idle_conns=%d bytes_per_conn=%.0f", rss0, rss1, G.ready,
             per);
    }
  }

  if (O.duration > 0 && G.ready > 0) {
    drain(0.3); /* presence and acks of the setup */
    double srv_cpu, gen_cpu, win;
    double rate = run_load(&srv_cpu, &gen_cpu, &win);
    double dps = (double)G.deliv_win / win;
    double p50 = G.lat_n ? percentile(0.50) : -1, p99 = G.lat_n ? percentile(0.99) : -1;
    fprintf(stderr,
            "%s room %d, %d connections: %.0f deliveries/s (offered %.0f sends/s = %.0f "
            "deliveries/s), p50 %.0f us, p99 %.0f us (%llu samples, %llu over 1 s), server CPU "
            "%.0f%%, generator CPU %.0f%%; errors %llu, bad %llu, byes %llu, dead %d, window "
            "stalls %llu, skipped sends %llu\n",
            proto_name(), O.room, O.conns, dps, rate, rate * (O.room - 1), p50, p99,
            (unsigned long long)G.lat_n, (unsigned long long)G.hist_over, 100 * srv_cpu / win,
            100 * gen_cpu / win, (unsigned long long)G.errors, (unsigned long long)G.bad,
            (unsigned long long)G.byes, G.dead, (unsigned long long)G.stalled,
            (unsigned long long)G.skipped);
    fprintf(stderr, "  whole load phase: %llu deliveries expected (sent x (room - 1)), %llu received\n",
            (unsigned long long)G.load_expect, (unsigned long long)G.load_got);
    if (O.proto == P_SECCHAT)
      fprintf(stderr, "  DELIVERs counted by a type peek: %llu; peeks checked against a full "
                      "decryption: %llu, mismatches: %llu\n",
              (unsigned long long)G.peeked, (unsigned long long)G.peek_checked,
              (unsigned long long)G.peek_mismatch);
    if (G.errors)
      for (int i = 0; i < 16; i++)
        if (G.err_code[i])
          fprintf(stderr, "  ERROR code %d: %llu\n", i, (unsigned long long)G.err_code[i]);
    printf(" deliveries_per_s=%.0f offered_per_s=%.0f p50_us=%.0f p99_us=%.0f samples=%llu "
           "srv_cpu=%.2f gen_cpu=%.2f errors=%llu dead=%d",
           dps, rate * (O.room - 1), p50, p99, (unsigned long long)G.lat_n, srv_cpu / win,
           gen_cpu / win, (unsigned long long)G.errors, G.dead);
    if (O.proto == P_SECCHAT)
      printf(" peeked=%llu peek_checked=%llu peek_mismatch=%llu", (unsigned long long)G.peeked,
             (unsigned long long)G.peek_checked, (unsigned long long)G.peek_mismatch);
  }

  if (O.warm) {
    close_all();
    usleep(300000);
    double w0 = O.pid > 0 ? cpu_s(O.pid) : 0;
    double t_warm = run_setup(60);
    double warm_cpu = O.pid > 0 ? cpu_share(w0, cpu_s(O.pid), t_warm) : 0;
    fprintf(stderr, "%s: %d/%d reconnected in %.2f s: %.0f/s (%s)\n", proto_name(), G.ready,
            O.conns, t_warm, G.ready / t_warm,
            O.proto == P_SECCHAT ? "warm: AUTH with a token seen before" : "setup");
    printf(" warm_ready=%d warm_per_s=%.0f warm_srv_cpu=%.2f", G.ready, G.ready / t_warm, warm_cpu);
  }
  printf("\n");
  fflush(stdout);
  close_all();
  for (int i = 0; i < O.conns; i++)
    free(G.c[i].token);
  free(G.c);
  free(G.dirty);
  free(G.hist);
  return 0;
}
