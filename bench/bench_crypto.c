/* bench_crypto.c: secchat group envelope seal/open vs the raw primitives.
 *
 *   raw seal  = XChaCha20-Poly1305 encrypt + Ed25519 sign of the body
 *   secchat   = sc_sk_seal (inner encoding, padding, signature with context,
 *               msg_id, ratchet step, AEAD over the signed inner)
 *   raw open  = Ed25519 verify + XChaCha20-Poly1305 decrypt of the body
 *   secchat   = sc_sk_open (strict parse, key selection, AEAD, inner parse,
 *               signature, binding checks, msg_id, commit)
 *
 * For each body size the baseline and the subject run in alternating
 * batches (their order flipping every round), so machine noise hits both;
 * the rate is total operations over total time of each. Target: secchat >=
 * 0.9x raw everywhere.
 *
 * A third column, "floor", runs only the primitives the protocol itself
 * requires at its real sizes (docs/crypto.md: AEAD over the padded inner
 * with its headers, the BLAKE2b msg_id over the inner, the signature over
 * the msg_id, two KDF steps; the nonce is the chain's prefix with the
 * iteration, no RNG call): secchat/floor is the cost of everything else
 * (msgpack, checks, copies). Usage: bench_crypto [rounds] (default 100). */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include <secchat/secchat.h>

#include "identity.h"
#include "senderkey.h"

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#define NV 64
#define MAX_ROUNDS 1000

typedef struct ctx {
  secchat_identity *id;
  uint8_t chat[16], head[32], route[32], key[32], nonce[24];
  size_t body_len;
  uint8_t *body;
  uint8_t *out;  /* seal output / raw ciphertext */
  uint8_t *work; /* open scratch */
  size_t cap;
  int batch;
  /* pre-sealed material for the open benchmarks */
  uint8_t **blobs;
  size_t *blob_lens;
  /* NV distinct messages for the raw and floor opens: Ed25519 verification
   * is variable-time (a few % between signatures), and sc_sk_open meets a
   * different signature every time, so the baselines must too. */
  uint8_t *raw_body[NV], *raw_ct[NV], raw_sig[NV][64];
  uint8_t *floor_ct[NV], floor_sig[NV][64];
  size_t inner_len; /* padded inner of this body size */
  sc_sk_sender sender;
  sc_sk_peer peer_start;
  volatile uint8_t sink;
} ctx;

static void die(const char *what)
{
  fprintf(stderr, "bench_crypto: %s failed\n", what);
  exit(1);
}

static void raw_seal(ctx *c)
{
  uint8_t sig[64];
  for (int i = 0; i < c->batch; i++) {
    crypto_aead_xchacha20poly1305_ietf_encrypt(c->out, NULL, c->body, c->body_len, NULL, 0, NULL,
                                               c->nonce, c->key);
    crypto_sign_detached(sig, NULL, c->body, c->body_len, sc_identity_sign_sk(c->id));
    c->sink ^= sig[0] ^ c->out[0];
  }
}

static void sc_seal(ctx *c)
{
  uint8_t id[32];
  sc_sk_plain m = {1700000000000ull, 0, 1, c->body, c->body_len};
  for (int i = 0; i < c->batch; i++) {
    if (sc_sk_seal(&c->sender, c->id, c->route, &m, c->out, c->cap, id) < 0)
      die("sc_sk_seal");
    c->sink ^= id[0];
  }
}

static void raw_open(ctx *c)
{
  for (int i = 0; i < c->batch; i++) {
    int v = i % NV;
    if (crypto_sign_verify_detached(c->raw_sig[v], c->raw_body[v], c->body_len,
                                    secchat_identity_sign_public_key(c->id)) != 0 ||
        crypto_aead_xchacha20poly1305_ietf_decrypt(c->work, NULL, NULL, c->raw_ct[v],
                                                   c->body_len + 16, NULL, 0, c->nonce,
                                                   c->key) != 0)
      die("raw open");
    c->sink ^= c->work[0];
  }
}

static void sc_open_batch(ctx *c)
{
  /* In-order opens never touch the skipped-key store, so a struct copy
   * restores the chain for every batch. */
  sc_sk_peer p = c->peer_start;
  sc_sk_opened o;
  for (int i = 0; i < c->batch; i++) {
    if (sc_sk_open(&p, c->route, c->blobs[i], c->blob_lens[i], c->work, c->cap, &o) != 0)
      die("sc_sk_open");
    c->sink ^= o.msg_id[0];
  }
  sodium_memzero(&p, sizeof p);
}

/* The protocol's own primitive work for one seal / open, nothing else.
 * 90 bytes of AD stand for header || route_id. */
static const uint8_t floor_ad[90];

static void floor_seal(ctx *c)
{
  uint8_t sig[64], id[32], mk[32], ck[32], nonce[24] = {0};
  size_t pt_len = c->inner_len + 70;
  for (int i = 0; i < c->batch; i++) {
    nonce[16] = (uint8_t)i;
    crypto_kdf_derive_from_key(mk, 32, 1, "SCmsgkey", c->key);
    crypto_kdf_derive_from_key(ck, 32, 2, "SCchain_", c->key);
    uint8_t m[15 + 32] = {0}; /* ctx || 0x00 || msg_id, as the protocol signs */
    crypto_generichash(m + 15, 32, c->work, c->inner_len + 17, NULL, 0);
    crypto_sign_detached(sig, NULL, m, sizeof m, sc_identity_sign_sk(c->id));
    memcpy(id, m + 15, 32);
    crypto_aead_xchacha20poly1305_ietf_encrypt(c->out, NULL, c->work, pt_len, floor_ad, 90, NULL,
                                               nonce, mk);
    c->sink ^= sig[0] ^ id[0] ^ ck[0];
  }
}

static void floor_open(ctx *c)
{
  uint8_t id[32], mk[32], ck[32];
  size_t pt_len = c->inner_len + 70;
  for (int i = 0; i < c->batch; i++) {
    crypto_kdf_derive_from_key(mk, 32, 1, "SCmsgkey", c->key);
    crypto_kdf_derive_from_key(ck, 32, 2, "SCchain_", c->key);
    int v = i % NV;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(c->work, NULL, NULL, c->floor_ct[v],
                                                   pt_len + 16, floor_ad, 90, c->nonce,
                                                   c->key) != 0)
      die("floor open");
    uint8_t m[15 + 32] = {0};
    crypto_generichash(m + 15, 32, c->work, c->inner_len + 17, NULL, 0);
    if (crypto_sign_verify_detached(c->floor_sig[v], m, sizeof m,
                                    secchat_identity_sign_public_key(c->id)) != 0)
      die("floor open");
    memcpy(id, m + 15, 32);
    c->sink ^= id[0] ^ ck[0] ^ mk[0];
  }
}

typedef void (*bench_fn)(ctx *);

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Alternate base and subject for `rounds` rounds (a few ms each). Rates are
 * total operations over total time; the ratio is the median of the
 * per-round ratios subject/base, so that a round in which another process
 * took the core skews neither side. */
static double duel(ctx *c, int rounds, bench_fn base, bench_fn subj, double *base_rate,
                   double *subj_rate)
{
  static double ratio[MAX_ROUNDS];
  double tb = 0, ts = 0;
  base(c); /* warm-up */
  subj(c);
  for (int r = 0; r < rounds; r++) {
    double dt[2];
    for (int k = 0; k < 2; k++) {
      int run_base = (r + k) % 2 == 0;
      double t0 = now_s();
      if (run_base)
        base(c);
      else
        subj(c);
      dt[run_base] = now_s() - t0;
    }
    tb += dt[1];
    ts += dt[0];
    ratio[r] = dt[1] / dt[0];
  }
  *base_rate = rounds * c->batch / tb;
  *subj_rate = rounds * c->batch / ts;
  qsort(ratio, (size_t)rounds, sizeof ratio[0], cmp_double);
  return rounds % 2 ? ratio[rounds / 2] : (ratio[rounds / 2 - 1] + ratio[rounds / 2]) / 2;
}

static void setup_size(ctx *c, size_t body_len, int batch)
{
  c->body_len = body_len;
  c->batch = batch;
  c->cap = SC_SK_SEAL_CAP(body_len) + 64;
  c->body = malloc(body_len ? body_len : 1);
  c->out = malloc(c->cap);
  c->work = malloc(c->cap);
  c->blobs = calloc((size_t)batch, sizeof *c->blobs);
  c->blob_lens = calloc((size_t)batch, sizeof *c->blob_lens);
  if (!c->body || !c->out || !c->work || !c->blobs || !c->blob_lens)
    die("malloc");
  randombytes_buf(c->body, body_len);
  for (int v = 0; v < NV; v++) {
    c->raw_body[v] = malloc(body_len ? body_len : 1);
    c->raw_ct[v] = malloc(body_len + 16);
    if (!c->raw_body[v] || !c->raw_ct[v])
      die("malloc");
    randombytes_buf(c->raw_body[v], body_len);
    crypto_aead_xchacha20poly1305_ietf_encrypt(c->raw_ct[v], NULL, c->raw_body[v], body_len, NULL,
                                               0, NULL, c->nonce, c->key);
    crypto_sign_detached(c->raw_sig[v], NULL, c->raw_body[v], body_len,
                         sc_identity_sign_sk(c->id));
  }

  /* A chain for the open benchmark: batch envelopes sealed in order. */
  sc_sk_sender s;
  sc_sk_sender_init(&s, c->chat, 1, c->head);
  if (sc_sk_peer_init(&c->peer_start, c->chat, secchat_identity_sign_public_key(c->id)) ||
      sc_sk_peer_add_chain(&c->peer_start, 1, c->head, s.chain_id, 0, s.ck, 0))
    die("peer");
  sc_sk_plain m = {1700000000000ull, 0, 1, c->body, body_len};
  uint8_t id[32];
  for (int i = 0; i < batch; i++) {
    c->blobs[i] = malloc(c->cap);
    if (!c->blobs[i])
      die("malloc");
    int64_t n = sc_sk_seal(&s, c->id, c->route, &m, c->blobs[i], c->cap, id);
    if (n < 0)
      die("seal");
    c->blob_lens[i] = (size_t)n;
  }
  sc_sk_sender_wipe(&s);
  sc_sk_sender_init(&c->sender, c->chat, 1, c->head);

  sc_sk_peer p = c->peer_start;
  sc_sk_opened o;
  if (sc_sk_open(&p, c->route, c->blobs[0], c->blob_lens[0], c->work, c->cap, &o) != 0)
    die("open");
  c->inner_len = o.inner_len;
  sodium_memzero(&p, sizeof p);
  /* Floor-open material: the same sizes, with the fixed key and nonce. */
  size_t pt_len = c->inner_len + 70;
  memset(c->out, 0, c->cap);
  for (int v = 0; v < NV; v++) {
    c->floor_ct[v] = malloc(pt_len + 16);
    if (!c->floor_ct[v])
      die("malloc");
    memset(c->work, 0, c->cap);
    randombytes_buf(c->work, c->inner_len + 17);
    uint8_t fm[15 + 32] = {0};
    crypto_generichash(fm + 15, 32, c->work, c->inner_len + 17, NULL, 0);
    crypto_sign_detached(c->floor_sig[v], NULL, fm, sizeof fm, sc_identity_sign_sk(c->id));
    crypto_aead_xchacha20poly1305_ietf_encrypt(c->floor_ct[v], NULL, c->work, pt_len, floor_ad,
                                               90, NULL, c->nonce, c->key);
  }
  memset(c->work, 0, c->cap);
}

static void teardown_size(ctx *c)
{
  for (int i = 0; i < c->batch; i++)
    free(c->blobs[i]);
  free(c->blobs);
  free(c->blob_lens);
  free(c->body);
  free(c->out);
  free(c->work);
  for (int v = 0; v < NV; v++) {
    free(c->raw_body[v]);
    free(c->raw_ct[v]);
    free(c->floor_ct[v]);
  }
  sc_sk_peer_wipe(&c->peer_start);
  sc_sk_sender_wipe(&c->sender);
}

int main(int argc, char **argv)
{
  int rounds = argc > 1 ? atoi(argv[1]) : 100;
  if (rounds < 1)
    rounds = 1;
  if (rounds > MAX_ROUNDS)
    rounds = MAX_ROUNDS;
  if (secchat_init() != 0)
    die("secchat_init");
  static ctx c;
  if (secchat_identity_new(&c.id) != 0)
    die("identity");
  randombytes_buf(c.chat, sizeof c.chat);
  randombytes_buf(c.head, sizeof c.head);
  randombytes_buf(c.route, sizeof c.route);
  randombytes_buf(c.key, sizeof c.key);
  randombytes_buf(c.nonce, sizeof c.nonce);

  static const struct {
    size_t len;
    int batch;
  } sizes[] = {{64, 256}, {1024, 256}, {16384, 64}};
  int worst_ok = 1;
  printf("bench_crypto: %d rounds, alternating batches (ops/s over all rounds, higher is\n"
         "better; ratio and /floor = median of the per-round ratios)\n",
         rounds);
  printf("%-6s %-5s %10s %10s %7s   %10s %10s %7s\n", "body", "op", "raw", "secchat", "ratio",
         "floor", "secchat", "/floor");
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    setup_size(&c, sizes[k].len, sizes[k].batch);
    double rb, rs, ob, os, fb, fs, gb, gs;
    double seal = duel(&c, rounds, raw_seal, sc_seal, &rb, &rs);
    double seal_f = duel(&c, rounds, floor_seal, sc_seal, &fb, &fs);
    double open = duel(&c, rounds, raw_open, sc_open_batch, &ob, &os);
    double open_f = duel(&c, rounds, floor_open, sc_open_batch, &gb, &gs);
    printf("%-6zu %-5s %10.0f %10.0f %6.3fx   %10.0f %10.0f %6.3fx\n", sizes[k].len, "seal", rb,
           rs, seal, fb, fs, seal_f);
    printf("%-6zu %-5s %10.0f %10.0f %6.3fx   %10.0f %10.0f %6.3fx\n", sizes[k].len, "open", ob,
           os, open, gb, gs, open_f);
    if (seal < 0.9 || open < 0.9)
      worst_ok = 0;
    teardown_size(&c);
  }
  printf("target secchat >= 0.9x raw: %s\n", worst_ok ? "met" : "NOT met");
  secchat_identity_free(c.id);
  return 0;
}
