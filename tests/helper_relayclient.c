/* helper_relayclient.c: a scriptable relay client over real TCP sockets,
 * for the process-level chatd tests (tests/python/test_chatd_*.py).
 *
 *   helper_relayclient HOST PORT      (HOST: numeric IPv4 or IPv6)
 *
 * It speaks the protocol with the library's own building blocks, as
 * tests/test_server.c's simulated clients do: Noise XX initiator
 * (noise.h), frames and padding (codec.h), proofs signed with the client's
 * Ed25519 key (token.h helpers). Several clients (slots 0..MAXCL-1) live in
 * one process so a test can hold many concurrent connections.
 *
 * Commands, one per line on stdin; every command prints exactly one line
 * on stdout, starting with "ok", "frame", "eof", "timeout" or "err":
 *
 *   new I NAMEHEX            fresh identity named by the hex bytes
 *   tcp I [SRCIP]            TCP connect only (optionally bound to SRCIP)
 *   connect I [SRCIP]        TCP connect + Noise XX handshake
 *                            -> ok fpr=FINGERPRINT server=NAME
 *   register I               REGISTER -> ok token_len=N | err frame ...
 *   auth I                   AUTH     -> ok uid=HEX | err frame ...
 *   login I NAMEHEX [SRCIP]  new + connect + register + auth -> ok uid=HEX
 *   open I K | close_route I K   ROUTE_OPEN / ROUTE_CLOSE of route K (0-255)
 *   gsend I K REF BLOBHEX    GROUP_SEND -> ok (the answer comes via recv)
 *   direct I UIDHEX REF BLOBHEX
 *   ping I NONCE
 *   recv I MS                next frame -> "frame TYPE k=v..." | eof | timeout
 *   recvx I MS               same, skipping PRESENCE frames
 *   raw I HEX                write raw bytes
 *   waiteof I MS             read and discard until EOF -> ok ms=N | timeout
 *   steal I J                take J's token as I's (a login must then fail: B11)
 *   uid I | token I          print the uid (hex) / token
 *   close I                  close the socket
 *   quit
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include <secchat/secchat.h>

#include "codec.h"
#include "crypto.h"
#include "mp.h"
#include "noise.h"
#include "token.h"

#define MAXCL 512
#define QMAX 4096

typedef struct client {
  int fd;
  int hs_done;
  sc_noise_handshake hs;
  sc_noise_transport t;
  uint8_t hh[32];
  uint8_t sign_pk[32], sign_sk[64], dh_sk[32], dh_pk[32], dh_sig[64], uid[20];
  char name[256];
  size_t name_len;
  char token[SECCHAT_MAX_TOKEN_BYTES + 1];
  size_t token_len;
  sc_deframer df;
  uint8_t *q[QMAX]; /* received messages (handshake) or frame bodies */
  size_t qlen[QMAX];
  int qn, qr;
  int eof;
} client;

static client *CL[MAXCL];
static const char *HOST;
static int PORT;

static uint64_t mono_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void hex(char *out, const uint8_t *p, size_t n)
{
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[p[i] >> 4];
    out[2 * i + 1] = digits[p[i] & 15];
  }
  out[2 * n] = 0;
}

static int nibble(char ch)
{
  if (ch >= '0' && ch <= '9')
    return ch - '0';
  if (ch >= 'a' && ch <= 'f')
    return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F')
    return ch - 'A' + 10;
  return -1;
}

static int unhex(const char *s, uint8_t *out, size_t cap, size_t *len)
{
  size_t n = strlen(s);
  if (n % 2 || n / 2 > cap)
    return -1;
  for (size_t i = 0; i < n / 2; i++) {
    int hi = nibble(s[2 * i]), lo = nibble(s[2 * i + 1]);
    if (hi < 0 || lo < 0)
      return -1;
    out[i] = (uint8_t)(hi << 4 | lo);
  }
  *len = n / 2;
  return 0;
}

static void cl_reset_conn(client *c)
{
  if (c->fd >= 0)
    close(c->fd);
  c->fd = -1;
  c->hs_done = 0;
  c->eof = 0;
  for (int i = c->qr; i < c->qn; i++)
    free(c->q[i]);
  c->qn = c->qr = 0;
  sc_deframer_free(&c->df);
  sc_deframer_init(&c->df, 0);
}

static client *cl_new(int i, const uint8_t *name, size_t name_len)
{
  client *c = CL[i];
  uint8_t seed[32];

  if (c == NULL) {
    c = calloc(1, sizeof *c);
    c->fd = -1;
    sc_deframer_init(&c->df, 0);
    CL[i] = c;
  }
  cl_reset_conn(c);
  randombytes_buf(seed, sizeof seed);
  crypto_sign_seed_keypair(c->sign_pk, c->sign_sk, seed);
  randombytes_buf(c->dh_sk, sizeof c->dh_sk);
  crypto_scalarmult_base(c->dh_pk, c->dh_sk);
  sc_sign_ctx(c->dh_sig, SC_CTX_DH, c->dh_pk, 32, c->sign_sk);
  sc_uid_from_sign_pk(c->uid, c->sign_pk);
  memcpy(c->name, name, name_len);
  c->name_len = name_len;
  c->token_len = 0;
  return c;
}

/* HOST is numeric IPv4 or IPv6; SRCIP (IPv4 only) binds the source. */
static int tcp_connect(client *c, const char *src)
{
  struct sockaddr_storage ss;
  struct sockaddr_in *in = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
  socklen_t len;
  int one = 1, v6 = strchr(HOST, ':') != NULL;

  cl_reset_conn(c);
  memset(&ss, 0, sizeof ss);
  if (v6) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((uint16_t)PORT);
    if (inet_pton(AF_INET6, HOST, &in6->sin6_addr) != 1)
      return -1;
    len = sizeof *in6;
  } else {
    in->sin_family = AF_INET;
    in->sin_port = htons((uint16_t)PORT);
    if (inet_pton(AF_INET, HOST, &in->sin_addr) != 1)
      return -1;
    len = sizeof *in;
  }
  c->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (c->fd < 0)
    return -1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (src) {
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    if (v6 || inet_pton(AF_INET, src, &sa.sin_addr) != 1 ||
        bind(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0)
      return -1;
  }
  return connect(c->fd, (struct sockaddr *)&ss, len);
}

static int write_all(client *c, const uint8_t *p, size_t n)
{
  while (n) {
    ssize_t k = send(c->fd, p, n, MSG_NOSIGNAL);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      return -1;
    p += k;
    n -= (size_t)k;
  }
  return 0;
}

static int send_msg(client *c, const uint8_t *msg, size_t len)
{
  static uint8_t b[SECCHAT_MAX_WIRE_MESSAGE + 4];
  sc_frame_prefix(b, (uint32_t)len);
  memcpy(b + 4, msg, len);
  return write_all(c, b, len + 4);
}

static int send_frame(client *c, const sc_frame *f)
{
  static uint8_t body[SECCHAT_MAX_FRAME_BODY], msg[SECCHAT_MAX_WIRE_MESSAGE];
  size_t outlen;
  secchat_ssize n = sc_frame_encode(f, body, sizeof body);
  if (n < 0)
    return -1;
  secchat_ssize pl = sc_pad(msg, sizeof msg, body, (size_t)n);
  if (pl < 0 || sc_noise_transport_encrypt(&c->t, msg, (size_t)pl, msg, sizeof msg, &outlen) != 0)
    return -1;
  return send_msg(c, msg, outlen);
}

/* Queue the messages in buf: raw during the handshake, decrypted and
 * the frame bodies after (one message may pack several). Returns -1 on a
 * protocol failure. */
static int feed(client *c, const uint8_t *p, size_t len)
{
  static uint8_t pt[SECCHAT_MAX_WIRE_MESSAGE];
  size_t off = 0;

  while (off < len) {
    const uint8_t *msg;
    size_t mlen, ptlen;
    secchat_ssize k = sc_deframer_feed(&c->df, p + off, len - off, &msg, &mlen);
    if (k <= 0)
      return -1;
    off += (size_t)k;
    if (msg == NULL)
      continue;
    if (c->qn == QMAX)
      return -1;
    if (!c->hs_done) {
      c->q[c->qn] = malloc(mlen);
      memcpy(c->q[c->qn], msg, mlen);
      c->qlen[c->qn++] = mlen;
      continue;
    }
    if (sc_noise_transport_decrypt(&c->t, msg, mlen, pt, sizeof pt, &ptlen) != 0)
      return -1;
    const uint8_t *body;
    size_t blen;
    sc_records recs;
    if (sc_records_open(&recs, pt, ptlen) < 0)
      return -1;
    while (sc_records_next(&recs, &body, &blen)) { /* the relay packs frames */
      if (c->qn == QMAX)
        return -1;
      c->q[c->qn] = malloc(blen);
      memcpy(c->q[c->qn], body, blen);
      c->qlen[c->qn++] = blen;
    }
  }
  return 0;
}

/* Next queued message: 1, 0 on timeout, -1 on EOF/error. The caller frees
 * *out. */
static int next_msg(client *c, int ms, uint8_t **out, size_t *len)
{
  static uint8_t buf[65536];
  uint64_t deadline = mono_ms() + (uint64_t)ms;

  for (;;) {
    if (c->qr < c->qn) {
      *out = c->q[c->qr];
      *len = c->qlen[c->qr++];
      if (c->qr == c->qn)
        c->qr = c->qn = 0;
      return 1;
    }
    if (c->eof || c->fd < 0)
      return -1;
    uint64_t now = mono_ms();
    if (now >= deadline)
      return 0;
    struct pollfd pf = {c->fd, POLLIN, 0};
    int r = poll(&pf, 1, (int)(deadline - now));
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return 0;
    ssize_t n = recv(c->fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0 || feed(c, buf, (size_t)n) != 0) {
      c->eof = 1;
      continue; /* deliver what is queued first */
    }
  }
}

static const uint8_t P1[] = {0x92, 0x00, 0x00}; /* [minor 0, features 0] */

static int handshake(client *c, char *info, size_t infocap)
{
  uint8_t msg[4096], payload[4096], rs[32], fp[SECCHAT_SERVER_FINGERPRINT_BYTES];
  size_t len, plen;
  uint8_t *m2;
  char fps[SECCHAT_SERVER_FINGERPRINT_STRING_BYTES];

  if (sc_noise_handshake_init(&c->hs, SC_NOISE_XX, 1, (const uint8_t *)SC_NOISE_PROLOGUE,
                              strlen(SC_NOISE_PROLOGUE), c->dh_sk, NULL) != 0 ||
      sc_noise_handshake_write(&c->hs, P1, sizeof P1, msg, sizeof msg, &len) != 0 ||
      send_msg(c, msg, len) != 0)
    return -1;
  if (next_msg(c, 5000, &m2, &len) != 1)
    return -1;
  int rc = sc_noise_handshake_read(&c->hs, m2, len, payload, sizeof payload, &plen);
  free(m2);
  if (rc != 0 || sc_noise_handshake_remote_static(&c->hs, rs) != 0)
    return -1;
  sc_mp_reader r;
  uint32_t cnt;
  uint64_t minor, features;
  const char *pem, *nm;
  size_t pemlen, nmlen;
  sc_mp_reader_init(&r, payload, plen);
  if (sc_mp_read_array(&r, &cnt) != 0 || cnt != 4 || sc_mp_read_uint(&r, &minor) != 0 ||
      sc_mp_read_uint(&r, &features) != 0 ||
      sc_mp_read_str(&r, &pem, &pemlen, 1, SECCHAT_TOKEN_KEY_PEM_MAX) != 0 ||
      sc_mp_read_str(&r, &nm, &nmlen, 1, 255) != 0)
    return -1;
  if (secchat_server_fingerprint(rs, pem, pemlen, fp) != 0 ||
      secchat_server_fingerprint_string(fp, fps, sizeof fps) != 0)
    return -1;
  snprintf(info, infocap, "fpr=%s server=%.*s", fps, (int)nmlen, nm);
  if (sc_noise_handshake_write(&c->hs, NULL, 0, msg, sizeof msg, &len) != 0 ||
      sc_noise_handshake_split(&c->hs, &c->t, c->hh) != 0)
    return -1;
  c->hs_done = 1;
  return send_msg(c, msg, len);
}

/* Describe a frame body on one line. */
static void describe(const uint8_t *body, size_t len, char *out, size_t cap)
{
  sc_frame f;
  static char h1[2 * 65536 + 1], h2[64], h3[80];

  if (sc_frame_decode(&f, body, len) != 0) {
    snprintf(out, cap, "frame UNDECODABLE len=%zu", len);
    return;
  }
  switch (f.type) {
  case SC_FRAME_TOKEN:
    snprintf(out, cap, "frame TOKEN len=%zu", f.u.token.token.len);
    break;
  case SC_FRAME_AUTH_OK:
    hex(h2, f.u.auth_ok.uid, 20);
    snprintf(out, cap, "frame AUTH_OK uid=%s expires=%llu", h2,
             (unsigned long long)f.u.auth_ok.expires_s);
    break;
  case SC_FRAME_DELIVER:
    hex(h1, f.u.deliver.blob.p, f.u.deliver.blob.len);
    snprintf(out, cap, "frame DELIVER route=%u blob=%s", f.u.deliver.route_id[31], h1);
    break;
  case SC_FRAME_DIRECT_DELIVER:
    hex(h2, f.u.direct_deliver.from_uid, 20);
    hex(h1, f.u.direct_deliver.blob.p, f.u.direct_deliver.blob.len);
    snprintf(out, cap, "frame DIRECT_DELIVER from=%s blob=%s", h2, h1);
    break;
  case SC_FRAME_PRESENCE:
    hex(h3, f.u.presence.uid, 20);
    snprintf(out, cap, "frame PRESENCE route=%u uid=%s online=%d", f.u.presence.route_id[31], h3,
             (int)f.u.presence.online);
    break;
  case SC_FRAME_RELAYED:
    snprintf(out, cap, "frame RELAYED ref=%llu", (unsigned long long)f.u.relayed.ref);
    break;
  case SC_FRAME_ERROR:
    snprintf(out, cap, "frame ERROR code=%llu ref=%llu", (unsigned long long)f.u.error.code,
             (unsigned long long)f.u.error.ref);
    break;
  case SC_FRAME_PONG:
    snprintf(out, cap, "frame PONG nonce=%llu", (unsigned long long)f.u.ping.nonce);
    break;
  case SC_FRAME_BYE:
    snprintf(out, cap, "frame BYE reason=%llu", (unsigned long long)f.u.bye.reason);
    break;
  default:
    snprintf(out, cap, "frame %s", sc_frame_type_name((int)f.type));
  }
}

/* Wait for a frame of `type`; on another frame print "err <it>". Returns
 * 1 and leaves the body in *body (caller frees), or 0 (printed). */
static int expect(client *c, int type, uint8_t **body, size_t *len)
{
  static char line[2 * 65536 + 256];
  sc_frame f;
  int r = next_msg(c, 5000, body, len);
  if (r != 1) {
    printf("err %s\n", r == 0 ? "timeout" : "eof");
    return 0;
  }
  if (sc_frame_decode(&f, *body, *len) == 0 && (int)f.type == type)
    return 1;
  describe(*body, *len, line, sizeof line);
  printf("err %s\n", line);
  free(*body);
  return 0;
}

static void route_id(uint8_t id[32], unsigned k)
{
  memset(id, 0, 32);
  id[0] = 0xaa;
  id[31] = (uint8_t)k;
}

static int do_register(client *c)
{
  uint8_t proof[64], *body;
  size_t len;
  sc_frame f = {.type = SC_FRAME_REGISTER};

  sc_token_sign_registration(proof, c->sign_sk, c->hh, c->name, c->name_len, c->sign_pk,
                             c->dh_pk);
  f.u.reg.name.p = c->name;
  f.u.reg.name.len = c->name_len;
  f.u.reg.sig_pk = c->sign_pk;
  f.u.reg.dh_pk = c->dh_pk;
  f.u.reg.dh_sig = c->dh_sig;
  f.u.reg.proof = proof;
  if (send_frame(c, &f) != 0) {
    printf("err send\n");
    return 0;
  }
  if (!expect(c, SC_FRAME_TOKEN, &body, &len))
    return 0;
  sc_frame_decode(&f, body, len);
  memcpy(c->token, f.u.token.token.p, f.u.token.token.len);
  c->token_len = f.u.token.token.len;
  c->token[c->token_len] = 0;
  free(body);
  return 1;
}

static int do_auth(client *c)
{
  uint8_t proof[64], *body;
  size_t len;
  sc_frame f = {.type = SC_FRAME_AUTH};

  sc_token_sign_login(proof, c->sign_sk, c->hh);
  f.u.auth.token.p = c->token;
  f.u.auth.token.len = c->token_len;
  f.u.auth.proof = proof;
  if (send_frame(c, &f) != 0) {
    printf("err send\n");
    return 0;
  }
  if (!expect(c, SC_FRAME_AUTH_OK, &body, &len))
    return 0;
  free(body);
  return 1;
}

static client *get(const char *arg)
{
  int i = atoi(arg);
  if (i < 0 || i >= MAXCL || CL[i] == NULL)
    return NULL;
  return CL[i];
}

static void cmd(char **a, int n)
{
  static uint8_t blob[65536];
  static char line[2 * 65536 + 256];
  char info[256], h[64];
  size_t blen;
  client *c = n > 1 ? get(a[1]) : NULL;
  const char *op = a[0];

  if (strcmp(op, "new") == 0 || strcmp(op, "login") == 0) {
    int i = n > 2 ? atoi(a[1]) : -1;
    if (i < 0 || i >= MAXCL || unhex(a[2], blob, 255, &blen) != 0) {
      printf("err usage\n");
      return;
    }
    c = cl_new(i, blob, blen);
    if (strcmp(op, "new") == 0) {
      printf("ok\n");
      return;
    }
    if (tcp_connect(c, n > 3 ? a[3] : NULL) != 0) {
      printf("err connect %s\n", strerror(errno));
      return;
    }
    if (handshake(c, info, sizeof info) != 0) {
      printf("err handshake\n");
      return;
    }
    if (do_register(c) && do_auth(c)) {
      hex(h, c->uid, 20);
      printf("ok uid=%s\n", h);
    }
    return;
  }
  if (strcmp(op, "quit") == 0)
    exit(0);
  if (c == NULL) {
    printf("err no such client\n");
    return;
  }
  if (strcmp(op, "tcp") == 0 || strcmp(op, "connect") == 0) {
    if (tcp_connect(c, n > 2 ? a[2] : NULL) != 0) {
      printf("err connect %s\n", strerror(errno));
      return;
    }
    if (op[0] == 't') {
      printf("ok\n");
      return;
    }
    if (handshake(c, info, sizeof info) != 0)
      printf("err handshake\n");
    else
      printf("ok %s\n", info);
  } else if (strcmp(op, "register") == 0) {
    if (do_register(c))
      printf("ok token_len=%zu\n", c->token_len);
  } else if (strcmp(op, "auth") == 0) {
    if (do_auth(c)) {
      hex(h, c->uid, 20);
      printf("ok uid=%s\n", h);
    }
  } else if ((strcmp(op, "open") == 0 || strcmp(op, "close_route") == 0) && n > 2) {
    uint8_t id[32];
    sc_frame f = {.type = op[0] == 'o' ? SC_FRAME_ROUTE_OPEN : SC_FRAME_ROUTE_CLOSE};
    route_id(id, (unsigned)atoi(a[2]));
    f.u.route.route_id = id;
    printf(send_frame(c, &f) == 0 ? "ok\n" : "err send\n");
  } else if (strcmp(op, "gsend") == 0 && n > 4 && unhex(a[4], blob, sizeof blob, &blen) == 0) {
    uint8_t id[32];
    sc_frame f = {.type = SC_FRAME_GROUP_SEND};
    route_id(id, (unsigned)atoi(a[2]));
    f.u.group_send.ref = strtoull(a[3], NULL, 10);
    f.u.group_send.route_id = id;
    f.u.group_send.blob.p = blob;
    f.u.group_send.blob.len = blen;
    printf(send_frame(c, &f) == 0 ? "ok\n" : "err send\n");
  } else if (strcmp(op, "direct") == 0 && n > 4) {
    uint8_t to[20];
    size_t tl;
    sc_frame f = {.type = SC_FRAME_DIRECT};
    if (unhex(a[2], to, sizeof to, &tl) != 0 || tl != 20 ||
        unhex(a[4], blob, sizeof blob, &blen) != 0) {
      printf("err usage\n");
      return;
    }
    f.u.direct.ref = strtoull(a[3], NULL, 10);
    f.u.direct.to_uid = to;
    f.u.direct.blob.p = blob;
    f.u.direct.blob.len = blen;
    printf(send_frame(c, &f) == 0 ? "ok\n" : "err send\n");
  } else if (strcmp(op, "ping") == 0 && n > 2) {
    sc_frame f = {.type = SC_FRAME_PING};
    f.u.ping.nonce = strtoull(a[2], NULL, 10);
    printf(send_frame(c, &f) == 0 ? "ok\n" : "err send\n");
  } else if ((strcmp(op, "recv") == 0 || strcmp(op, "recvx") == 0) && n > 2) {
    uint64_t deadline = mono_ms() + (uint64_t)atoi(a[2]);
    for (;;) {
      uint8_t *body;
      size_t len;
      uint64_t now = mono_ms();
      int r = next_msg(c, now < deadline ? (int)(deadline - now) : 0, &body, &len);
      if (r <= 0) {
        printf(r == 0 ? "timeout\n" : "eof\n");
        return;
      }
      describe(body, len, line, sizeof line);
      free(body);
      if (op[4] == 'x' && strncmp(line, "frame PRESENCE", 14) == 0)
        continue;
      printf("%s\n", line);
      return;
    }
  } else if (strcmp(op, "raw") == 0 && n > 2 && unhex(a[2], blob, sizeof blob, &blen) == 0) {
    printf(write_all(c, blob, blen) == 0 ? "ok\n" : "err send\n");
  } else if (strcmp(op, "waiteof") == 0 && n > 2) {
    uint64_t t0 = mono_ms(), deadline = t0 + (uint64_t)atoi(a[2]);
    for (;;) {
      uint64_t now = mono_ms();
      if (now >= deadline) {
        printf("timeout\n");
        return;
      }
      struct pollfd pf = {c->fd, POLLIN, 0};
      if (poll(&pf, 1, (int)(deadline - now)) <= 0)
        continue;
      ssize_t k = recv(c->fd, blob, sizeof blob, 0);
      if (k <= 0) {
        printf("ok ms=%llu\n", (unsigned long long)(mono_ms() - t0));
        return;
      }
    }
  } else if (strcmp(op, "steal") == 0 && n > 2) {
    const client *o = get(a[2]); /* use another identity's token (B11) */
    if (o == NULL || o == c) {
      printf("err usage\n");
      return;
    }
    memmove(c->token, o->token, o->token_len + 1);
    c->token_len = o->token_len;
    printf("ok\n");
  } else if (strcmp(op, "uid") == 0) {
    hex(h, c->uid, 20);
    printf("ok %s\n", h);
  } else if (strcmp(op, "token") == 0) {
    printf("ok %s\n", c->token);
  } else if (strcmp(op, "close") == 0) {
    cl_reset_conn(c);
    printf("ok\n");
  } else {
    printf("err usage\n");
  }
}

int main(int argc, char **argv)
{
  static char line[300000];

  if (argc != 3 || secchat_init() != 0) {
    fprintf(stderr, "usage: helper_relayclient HOST PORT\n");
    return 2;
  }
  HOST = argv[1];
  PORT = atoi(argv[2]);
  setvbuf(stdout, NULL, _IOLBF, 0);
  while (fgets(line, sizeof line, stdin)) {
    char *a[8];
    int n = 0;
    for (char *tok = strtok(line, " \t\r\n"); tok && n < 8; tok = strtok(NULL, " \t\r\n"))
      a[n++] = tok;
    if (n > 0)
      cmd(a, n);
  }
  return 0;
}
