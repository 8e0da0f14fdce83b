/* bench_relay_core.c: throughput of the relay server core alone, in
 * process (no sockets): how many DELIVERs per second one server core
 * produces (decrypt + decode the GROUP_SEND, encode DELIVER once, copy it
 * into each recipient's open message; at the drain one pad +
 * ChaCha20-Poly1305 per recipient message, however many frames it packs).
 * Each round every sender sends one message, then every connection is
 * drained once (as chatd's loop pass), so a recipient's message packs
 * room - 1 frames. For scale it also prints the cost of one
 * ChaCha20-Poly1305 of a 256-byte plaintext: what every delivery cost the
 * relay when each frame was its own message (the old per-recipient floor).
 *
 * usage: bench_relay_core [room_size] [rooms] [messages_per_sender]
 * defaults 10 10 200. Limits are disabled (rates 0) as for a load test.
 * Clients are driven exactly as chatd would: bytes in, iovecs out. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include <secchat/secchat.h>

#include "codec.h"
#include "crypto.h"
#include "noise.h"
#include "token.h"

typedef struct cli {
  uint64_t id;
  sc_noise_handshake hs;
  sc_noise_transport t;
  uint8_t hh[32], sign_pk[32], sign_sk[64], dh_sk[32], dh_pk[32], dh_sig[64];
  sc_deframer df;
  uint8_t last[SECCHAT_MAX_WIRE_MESSAGE]; /* last message received */
  size_t last_len;
  char token[SECCHAT_MAX_TOKEN_BYTES + 1];
  size_t token_len;
} cli;

static secchat_server *S;
static uint64_t NOW = 1800000000000ull;

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, int rc)
{
  fprintf(stderr, "bench_relay_core: %s: %d (%s)\n", what, rc, secchat_strerror(rc));
  exit(1);
}

static void drain_events(void)
{
  secchat_server_event ev;
  while (secchat_server_next_event(S, &ev) == 1)
    if (ev.type == SECCHAT_SERVER_EV_CLOSE)
      die("unexpected close", ev.reason);
}

static void put(cli *c, const uint8_t *msg, size_t len)
{
  static uint8_t buf[SECCHAT_MAX_WIRE_MESSAGE + 4];
  sc_frame_prefix(buf, (uint32_t)len);
  memcpy(buf + 4, msg, len);
  secchat_ssize rc = secchat_server_conn_recv(S, c->id, buf, len + 4, NOW);
  if (rc < 0)
    die("conn_recv", (int)rc);
}

/* Drain c's output; with decrypt, keep the last frame body in c->last. */
static size_t pull(cli *c, int decrypt)
{
  secchat_iovec iov[64];
  size_t total = 0;
  int n;
  while ((n = secchat_server_conn_output(S, c->id, iov, 64)) > 0) {
    size_t sum = 0;
    for (int i = 0; i < n; i++) {
      sum += iov[i].len;
      if (!decrypt)
        continue;
      const uint8_t *p = iov[i].base;
      size_t off = 0;
      while (off < iov[i].len) {
        const uint8_t *m;
        size_t ml;
        secchat_ssize k = sc_deframer_feed(&c->df, p + off, iov[i].len - off, &m, &ml);
        if (k <= 0)
          die("deframe", (int)k);
        off += (size_t)k;
        if (m == NULL)
          continue;
        if (c->t.rx.has_key) {
          size_t pl;
          if (sc_noise_transport_decrypt(&c->t, m, ml, c->last, sizeof c->last, &pl) != 0)
            die("decrypt", 0);
          const uint8_t *body = NULL, *b;
          size_t bl = 0, rl;
          sc_records recs;
          if (sc_records_open(&recs, c->last, pl) < 0)
            die("records", 0);
          while (sc_records_next(&recs, &b, &rl)) /* keep the last frame */
            body = b, bl = rl;
          memmove(c->last, body, bl);
          c->last_len = bl;
        } else {
          memcpy(c->last, m, ml);
          c->last_len = ml;
        }
      }
    }
    secchat_server_conn_consumed(S, c->id, sum);
    total += sum;
  }
  return total;
}

static void send_frame(cli *c, const sc_frame *f)
{
  static uint8_t body[SECCHAT_MAX_FRAME_BODY], msg[SECCHAT_MAX_WIRE_MESSAGE];
  secchat_ssize n = sc_frame_encode(f, body, sizeof body);
  secchat_ssize pl = n < 0 ? n : sc_pad(msg, sizeof msg, body, (size_t)n);
  size_t out;
  if (pl < 0 || sc_noise_transport_encrypt(&c->t, msg, (size_t)pl, msg, sizeof msg, &out) != 0)
    die("send_frame", (int)pl);
  put(c, msg, out);
}

static void handshake(cli *c, int i);
static void auth(cli *c);

static void login(cli *c, int i)
{
  uint8_t seed[32] = {0};
  memcpy(seed, &i, sizeof i);
  seed[31] = 1;
  crypto_sign_seed_keypair(c->sign_pk, c->sign_sk, seed);
  seed[31] = 2;
  crypto_generichash(c->dh_sk, 32, seed, 32, NULL, 0);
  crypto_scalarmult_base(c->dh_pk, c->dh_sk);
  sc_sign_ctx(c->dh_sig, SC_CTX_DH, c->dh_pk, 32, c->sign_sk);
  handshake(c, i);
  char name[16];
  snprintf(name, sizeof name, "u%d", i);
  uint8_t proof[64];
  sc_token_sign_registration(proof, c->sign_sk, c->hh, name, strlen(name), c->sign_pk, c->dh_pk);
  sc_frame f = {.type = SC_FRAME_REGISTER};
  f.u.reg.name.p = name;
  f.u.reg.name.len = strlen(name);
  f.u.reg.sig_pk = c->sign_pk;
  f.u.reg.dh_pk = c->dh_pk;
  f.u.reg.dh_sig = c->dh_sig;
  f.u.reg.proof = proof;
  send_frame(c, &f);
  pull(c, 1);
  sc_frame r;
  if (sc_frame_decode(&r, c->last, c->last_len) != 0 || r.type != SC_FRAME_TOKEN)
    die("register", 0);
  memcpy(c->token, r.u.token.token.p, r.u.token.token.len);
  c->token_len = r.u.token.token.len;
  auth(c);
}

/* Connect and run the Noise XX handshake as the client. */
static void handshake(cli *c, int i)
{
  sc_deframer_free(&c->df);
  sc_deframer_init(&c->df, 0);
  memset(&c->t, 0, sizeof c->t);
  uint8_t src[4] = {10, 0, (uint8_t)(i >> 8), (uint8_t)i};
  int rc = secchat_server_conn_open(S, &c->id, src, 4, NOW);
  if (rc != 0)
    die("conn_open", rc);
  uint8_t msg[4096], pay[4096];
  size_t len, plen;
  const uint8_t p1[] = {0x92, 0x00, 0x00};
  sc_noise_handshake_init(&c->hs, SC_NOISE_XX, 1, (const uint8_t *)SC_NOISE_PROLOGUE,
                          strlen(SC_NOISE_PROLOGUE), c->dh_sk, NULL);
  sc_noise_handshake_write(&c->hs, p1, sizeof p1, msg, sizeof msg, &len);
  put(c, msg, len);
  pull(c, 1);
  if (sc_noise_handshake_read(&c->hs, c->last, c->last_len, pay, sizeof pay, &plen) != 0)
    die("msg2", 0);
  sc_noise_handshake_write(&c->hs, NULL, 0, msg, sizeof msg, &len);
  sc_noise_handshake_split(&c->hs, &c->t, c->hh);
  put(c, msg, len);
}

static void auth(cli *c)
{
  uint8_t proof[64];
  sc_frame r;
  sc_token_sign_login(proof, c->sign_sk, c->hh);
  sc_frame a = {.type = SC_FRAME_AUTH};
  a.u.auth.token.p = c->token;
  a.u.auth.token.len = c->token_len;
  a.u.auth.proof = proof;
  send_frame(c, &a);
  pull(c, 1);
  if (sc_frame_decode(&r, c->last, c->last_len) != 0 || r.type != SC_FRAME_AUTH_OK)
    die("auth", 0);
  drain_events();
}

int main(int argc, char **argv)
{
  int room = argc > 1 ? atoi(argv[1]) : 10;
  int rooms = argc > 2 ? atoi(argv[2]) : 10;
  int per = argc > 3 ? atoi(argv[3]) : 200;
  if (room < 2 || room > 256 || rooms < 1 || per < 1 || (long)room * rooms > 19000) {
    fprintf(stderr, "usage: bench_relay_core [room_size 2..256] [rooms] [messages_per_sender]\n");
    return 2;
  }
  if (secchat_init() != 0)
    return 1;
  secchat_server_key *key;
  if (secchat_server_key_generate(&key) != 0)
    return 1;
  uint8_t nsk[32], npk[32];
  secchat_server_noise_keygen(nsk, npk);
  secchat_server_config cfg;
  secchat_server_config_init(&cfg);
  cfg.name = "bench";
  cfg.token_key = key;
  cfg.noise_secret_key = nsk;
  cfg.max_conns = (uint32_t)(room * rooms + 8);
  cfg.group_send_rate = cfg.direct_rate = cfg.control_rate = 0;
  cfg.fanout_bytes_rate = cfg.register_per_min = 0;
  int rc = secchat_server_new(&S, &cfg);
  if (rc != 0)
    die("server_new", rc);
  int n = room * rooms;
  cli *c = calloc((size_t)n, sizeof *c);
  double t0 = now_s();
  for (int i = 0; i < n; i++)
    login(&c[i], i);
  double t_login = now_s() - t0;
  for (int i = 0; i < n; i++) {
    uint8_t id[32] = {0};
    int r = i / room;
    memcpy(id, &r, sizeof r);
    sc_frame f = {.type = SC_FRAME_ROUTE_OPEN};
    f.u.route.route_id = id;
    send_frame(&c[i], &f);
  }
  for (int i = 0; i < n; i++)
    pull(&c[i], 0);
  drain_events();

  /* Pre-encrypt the GROUP_SENDs (client work, not measured). */
  uint8_t blob[200];
  memset(blob, 0x5a, sizeof blob);
  size_t wire = 0;
  uint8_t **pre = calloc((size_t)n, sizeof *pre);
  for (int i = 0; i < n; i++) {
    pre[i] = malloc((size_t)per * 600);
    uint8_t id[32] = {0};
    int r = i / room;
    memcpy(id, &r, sizeof r);
    size_t off = 0;
    for (int k = 0; k < per; k++) {
      uint8_t body[512], pt[512];
      sc_frame f = {.type = SC_FRAME_GROUP_SEND};
      f.u.group_send.ref = (uint64_t)k + 1;
      f.u.group_send.route_id = id;
      f.u.group_send.blob.p = blob;
      f.u.group_send.blob.len = sizeof blob;
      secchat_ssize bl = sc_frame_encode(&f, body, sizeof body);
      secchat_ssize pl = sc_pad(pt, sizeof pt, body, (size_t)bl);
      size_t out;
      sc_noise_transport_encrypt(&c[i].t, pt, (size_t)pl, pre[i] + off + 4, 596, &out);
      sc_frame_prefix(pre[i] + off, (uint32_t)out);
      off += 4 + out;
    }
    wire = off / (size_t)per;
  }

  /* Measured: every sender's message k, then one drain pass (writev
   * batching: one output call per connection per pass). */
  uint64_t deliveries0;
  secchat_server_stats st;
  secchat_server_get_stats(S, &st);
  deliveries0 = st.deliveries;
  size_t bytes_out = 0;
  t0 = now_s();
  for (int k = 0; k < per; k++) {
    for (int i = 0; i < n; i++)
      secchat_server_conn_recv(S, c[i].id, pre[i] + (size_t)k * wire, wire, NOW);
    for (int i = 0; i < n; i++)
      bytes_out += pull(&c[i], 0);
    drain_events();
  }
  double t = now_s() - t0;
  secchat_server_get_stats(S, &st);
  uint64_t d = st.deliveries - deliveries0;

  /* Warm logins: every client reconnects with its token (verified-token
   * cache hit on the server), versus bare Noise XX handshakes (both roles,
   * in process, no payloads): the target is warm >= 0.7x bare. */
  for (int i = 0; i < n; i++) {
    secchat_server_conn_closed(S, c[i].id, NOW);
  }
  drain_events();
  double w0 = now_s();
  for (int i = 0; i < n; i++) {
    handshake(&c[i], i);
    auth(&c[i]);
  }
  double t_warm = now_s() - w0;
  uint8_t ssk[32] = {3}, csk[32] = {4};
  double x0 = now_s();
  for (int i = 0; i < n; i++) {
    sc_noise_handshake hi, hr;
    sc_noise_transport ti, tr;
    uint8_t m[256], p[256];
    size_t ml, pl;
    sc_noise_handshake_init(&hi, SC_NOISE_XX, 1, (const uint8_t *)"p", 1, csk, NULL);
    sc_noise_handshake_init(&hr, SC_NOISE_XX, 0, (const uint8_t *)"p", 1, ssk, NULL);
    sc_noise_handshake_write(&hi, NULL, 0, m, sizeof m, &ml);
    sc_noise_handshake_read(&hr, m, ml, p, sizeof p, &pl);
    sc_noise_handshake_write(&hr, NULL, 0, m, sizeof m, &ml);
    sc_noise_handshake_read(&hi, m, ml, p, sizeof p, &pl);
    sc_noise_handshake_write(&hi, NULL, 0, m, sizeof m, &ml);
    if (sc_noise_handshake_read(&hr, m, ml, p, sizeof p, &pl) != 0)
      die("bare XX", 0);
    sc_noise_handshake_split(&hi, &ti, NULL);
    sc_noise_handshake_split(&hr, &tr, NULL);
  }
  double t_xx = now_s() - x0;

  /* Floor: one ChaCha20-Poly1305 of a 256-byte plaintext per delivery. */
  uint8_t k32[32] = {1}, nonce[12] = {0}, pt[256] = {0}, ct[256 + 16];
  unsigned long long cl;
  int reps = 2000000;
  double a0 = now_s();
  for (int i = 0; i < reps; i++) {
    nonce[0] = (uint8_t)i;
    crypto_aead_chacha20poly1305_ietf_encrypt(ct, &cl, pt, sizeof pt, NULL, 0, NULL, nonce, k32);
  }
  double aead = (now_s() - a0) / reps;

  printf("room %d x %d rooms, %d connections, 200-byte blobs, %d messages per sender\n", room,
         rooms, n, per);
  printf("login (handshake + register + auth, cold tokens): %.0f per second\n", n / t_login);
  printf("deliveries: %llu in %.3f s = %.0f per second (%.0f ns each; %.1f MB/s out)\n",
         (unsigned long long)d, t, (double)d / t, t / (double)d * 1e9, (double)bytes_out / t / 1e6);
  printf("ChaCha20-Poly1305 of 256 bytes: %.0f ns -> a relay sealing each frame alone could "
         "not pass %.0f per second; the packing core reaches %.2f times that\n",
         aead * 1e9, 1.0 / aead, ((double)d / t) * aead);
  printf("warm logins (token seen before: handshake + AUTH, both sides): %.0f per second; bare "
         "Noise XX handshakes (both sides): %.0f per second; ratio %.2f\n",
         n / t_warm, n / t_xx, t_xx / t_warm);
  printf("server memory: %llu bytes (%llu slab)\n", (unsigned long long)st.mem_bytes,
         (unsigned long long)st.slab_bytes);
  for (int i = 0; i < n; i++) {
    free(pre[i]);
    sc_deframer_free(&c[i].df);
  }
  free(pre);
  free(c);
  secchat_server_free(S);
  secchat_server_key_free(key);
  return 0;
}
