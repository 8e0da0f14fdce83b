/* fuzz_server: peer-controlled bytes into the relay server core.
 *
 * First byte: mode.
 *   even: the rest is raw TCP bytes from a fresh connection (prefixes,
 *         handshake messages), fed in chunks whose sizes come from the input.
 *   odd:  a real client completes the handshake and authenticates; the rest
 *         is a sequence of u16be length || body, each body padded, encrypted
 *         with the client's transport and fed: the fuzzer drives the
 *         post-authentication dispatch (routes, relay, lookups, renew...). A
 *         second authenticated connection is a member of route 00..00 so
 *         GROUP_SEND and DIRECT reach a real recipient.
 * After the input: every deadline runs, every connection is closed.
 * Invariants: no crash or sanitizer report; conn_recv always consumes
 * everything; each connection gets at most one CLOSE; every queue stays
 * under its cap; after closing everything no connection or route is left. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include <secchat/secchat.h>

#include "codec.h"
#include "crypto.h"
#include "noise.h"
#include "token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define T0 1800000000000ull

static secchat_server_key *KEY;
static uint8_t NSK[32];

typedef struct fcli {
  uint64_t id;
  sc_noise_handshake hs;
  sc_noise_transport t;
  uint8_t hh[32], sign_pk[32], sign_sk[64], dh_sk[32], dh_pk[32], dh_sig[64];
  sc_deframer df;
  uint8_t last[SECCHAT_MAX_WIRE_MESSAGE];
  size_t last_len;
  int closes;
} fcli;

static fcli A, B;

static void die(void) { abort(); }

static void pump(secchat_server *s)
{
  secchat_server_event ev;
  while (secchat_server_next_event(s, &ev) == 1) {
    if (ev.type == SECCHAT_SERVER_EV_CLOSE) {
      fcli *c = ev.conn == A.id ? &A : ev.conn == B.id ? &B : NULL;
      if (c != NULL && ++c->closes > 1)
        die();
    }
  }
}

static void feed(secchat_server *s, fcli *c, const uint8_t *b, size_t n)
{
  if (secchat_server_conn_recv(s, c->id, b, n, T0) != (secchat_ssize)n)
    die();
  pump(s);
}

static void put_msg(secchat_server *s, fcli *c, const uint8_t *msg, size_t len)
{
  static uint8_t buf[SECCHAT_MAX_WIRE_MESSAGE + 4];
  sc_frame_prefix(buf, (uint32_t)len);
  memcpy(buf + 4, msg, len);
  feed(s, c, buf, len + 4);
}

/* Drain c's output, keeping the last decrypted body (or handshake msg). */
static void pull(secchat_server *s, fcli *c)
{
  secchat_iovec iov[16];
  int n;
  while ((n = secchat_server_conn_output(s, c->id, iov, 16)) > 0) {
    size_t sum = 0;
    for (int i = 0; i < n; i++) {
      const uint8_t *p = iov[i].base;
      size_t off = 0;
      sum += iov[i].len;
      while (off < iov[i].len) {
        const uint8_t *m;
        size_t ml;
        secchat_ssize k = sc_deframer_feed(&c->df, p + off, iov[i].len - off, &m, &ml);
        if (k <= 0)
          die(); /* the server must only ever send well-framed messages */
        off += (size_t)k;
        if (m == NULL)
          continue;
        if (c->t.rx.has_key) {
          size_t pl;
          const uint8_t *body;
          size_t bl;
          sc_frame f;
          sc_records recs;
          if (sc_noise_transport_decrypt(&c->t, m, ml, c->last, sizeof c->last, &pl) != 0 ||
              sc_records_open(&recs, c->last, pl) < 0)
            die(); /* and only valid messages */
          while (sc_records_next(&recs, &body, &bl))
            if (sc_frame_decode(&f, body, bl) != 0)
              die(); /* of valid frames */
        } else {
          memcpy(c->last, m, ml);
          c->last_len = ml;
        }
      }
    }
    if (sum > (1u << 20) + 70000)
      die();
    secchat_server_conn_consumed(s, c->id, sum);
  }
}

static void send_body(secchat_server *s, fcli *c, const uint8_t *body, size_t len)
{
  static uint8_t msg[SECCHAT_MAX_WIRE_MESSAGE];
  secchat_ssize pl = sc_pad(msg, sizeof msg, body, len);
  size_t out;
  if (pl < 0 || sc_noise_transport_encrypt(&c->t, msg, (size_t)pl, msg, sizeof msg, &out) != 0)
    return;
  put_msg(s, c, msg, out);
}

static void send_frame(secchat_server *s, fcli *c, const sc_frame *f)
{
  static uint8_t body[SECCHAT_MAX_FRAME_BODY];
  secchat_ssize n = sc_frame_encode(f, body, sizeof body);
  if (n < 0)
    die();
  send_body(s, c, body, (size_t)n);
}

/* Handshake + register + auth; 0 on success. */
static int login(secchat_server *s, fcli *c, uint8_t seedbyte, const char *src)
{
  memset(c, 0, sizeof *c);
  uint8_t seed[32] = {seedbyte};
  crypto_sign_seed_keypair(c->sign_pk, c->sign_sk, seed);
  seed[1] = 1;
  memcpy(c->dh_sk, seed, 32);
  crypto_scalarmult_base(c->dh_pk, c->dh_sk);
  sc_sign_ctx(c->dh_sig, SC_CTX_DH, c->dh_pk, 32, c->sign_sk);
  sc_deframer_init(&c->df, 0);
  if (secchat_server_conn_open(s, &c->id, (const uint8_t *)src, strlen(src), T0) != 0)
    return -1;
  uint8_t msg[4096], pay[4096];
  size_t len, plen;
  const uint8_t p1[] = {0x92, 0x00, 0x00};
  sc_noise_handshake_init(&c->hs, SC_NOISE_XX, 1, (const uint8_t *)SC_NOISE_PROLOGUE,
                          strlen(SC_NOISE_PROLOGUE), c->dh_sk, NULL);
  sc_noise_handshake_write(&c->hs, p1, sizeof p1, msg, sizeof msg, &len);
  put_msg(s, c, msg, len);
  pull(s, c);
  if (sc_noise_handshake_read(&c->hs, c->last, c->last_len, pay, sizeof pay, &plen) != 0)
    return -1;
  sc_noise_handshake_write(&c->hs, NULL, 0, msg, sizeof msg, &len);
  sc_noise_handshake_split(&c->hs, &c->t, c->hh);
  put_msg(s, c, msg, len);
  static const char name[] = "fuzz";
  uint8_t proof[64];
  sc_token_sign_registration(proof, c->sign_sk, c->hh, name, 4, c->sign_pk, c->dh_pk);
  sc_frame f = {.type = SC_FRAME_REGISTER};
  f.u.reg.name.p = name;
  f.u.reg.name.len = 4;
  f.u.reg.sig_pk = c->sign_pk;
  f.u.reg.dh_pk = c->dh_pk;
  f.u.reg.dh_sig = c->dh_sig;
  f.u.reg.proof = proof;
  send_frame(s, c, &f);
  /* Recover the token from the raw queue: decrypt manually. */
  secchat_iovec iov[4];
  int n = secchat_server_conn_output(s, c->id, iov, 4);
  if (n != 1)
    return -1;
  const uint8_t *m;
  size_t ml, pl, bl;
  const uint8_t *body;
  static uint8_t pt[SECCHAT_MAX_WIRE_MESSAGE];
  sc_frame r;
  if (sc_deframer_feed(&c->df, iov[0].base, iov[0].len, &m, &ml) <= 0 || m == NULL ||
      sc_noise_transport_decrypt(&c->t, m, ml, pt, sizeof pt, &pl) != 0 ||
      sc_unpad(pt, pl, &body, &bl) != 0 || sc_frame_decode(&r, body, bl) != 0 ||
      r.type != SC_FRAME_TOKEN)
    return -1;
  static char token[SECCHAT_MAX_TOKEN_BYTES + 1];
  memcpy(token, r.u.token.token.p, r.u.token.token.len);
  size_t tl = r.u.token.token.len;
  secchat_server_conn_consumed(s, c->id, iov[0].len);
  sc_token_sign_login(proof, c->sign_sk, c->hh);
  sc_frame a = {.type = SC_FRAME_AUTH};
  a.u.auth.token.p = token;
  a.u.auth.token.len = tl;
  a.u.auth.proof = proof;
  send_frame(s, c, &a);
  pull(s, c);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (KEY == NULL) {
    if (secchat_init() != 0 || secchat_server_key_generate(&KEY) != 0)
      abort();
    NSK[0] = 9;
  }
  if (size < 1)
    return 0;
  secchat_server_config cfg;
  secchat_server_config_init(&cfg);
  cfg.name = "fuzz";
  cfg.token_key = KEY;
  cfg.noise_secret_key = NSK;
  cfg.max_conns = 8;
  cfg.token_cache_entries = 16; /* small: ASan quarantines what each run frees */
  secchat_server *s;
  if (secchat_server_new(&s, &cfg) != 0)
    abort();
  memset(&A, 0, sizeof A);
  memset(&B, 0, sizeof B);
  const uint8_t *d = data + 1;
  size_t n = size - 1;
  if ((data[0] & 1) == 0) {
    if (secchat_server_conn_open(s, &B.id, (const uint8_t *)"b", 1, T0) != 0 ||
        sc_deframer_init(&B.df, 0) != 0)
      abort();
    size_t off = 0;
    for (size_t i = 0; off < n; i++) {
      size_t chunk = 1 + (size_t)(d[i % n] & 0x3f) * 16;
      if (chunk > n - off)
        chunk = n - off;
      feed(s, &B, d + off, chunk);
      off += chunk;
    }
    pull(s, &B);
  } else {
    if (login(s, &A, 1, "a") != 0 || login(s, &B, 2, "b") != 0)
      abort();
    uint8_t route[32] = {0};
    sc_frame ro = {.type = SC_FRAME_ROUTE_OPEN};
    ro.u.route.route_id = route;
    send_frame(s, &A, &ro);
    send_frame(s, &B, &ro);
    size_t off = 0;
    while (off + 2 <= n && B.closes == 0) {
      size_t len = (size_t)d[off] << 8 | d[off + 1];
      off += 2;
      if (len > n - off)
        len = n - off;
      if (len > SECCHAT_MAX_FRAME_BODY)
        len = SECCHAT_MAX_FRAME_BODY;
      send_body(s, &B, d + off, len);
      off += len;
      pull(s, &A);
      pull(s, &B);
    }
  }
  secchat_server_on_timeout(s, T0 + 3600000);
  pump(s);
  pull(s, &A);
  pull(s, &B);
  if (A.id != 0)
    secchat_server_conn_closed(s, A.id, T0 + 3600000);
  secchat_server_conn_closed(s, B.id, T0 + 3600000);
  pump(s);
  secchat_server_stats st;
  secchat_server_get_stats(s, &st);
  if (st.conns_open != 0 || st.routes != 0)
    die();
  secchat_server_free(s);
  sc_deframer_free(&A.df);
  sc_deframer_free(&B.df);
  return 0;
}
