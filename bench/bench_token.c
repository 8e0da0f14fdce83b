/* bench_token: token issue/verify throughput next to raw libjwt ES256.
 *
 *   bench_token [rounds] [iterations-per-round]     (defaults 40 50)
 *
 * Each round runs every case back to back (interleaved), so that CPU
 * frequency drift and noisy neighbours hit all cases alike. Reported per
 * case: operations per second over all rounds. Cases:
 *   libjwt_sign        jwt_encode_str, ES256, same claims as our tokens
 *   libjwt_verify      jwt_decode with the public PEM (raw, no checks)
 *   token_issue        secchat_token_issue (registration checks + sign)
 *   token_verify       secchat_token_verify, no cache (every check)
 *   token_verify_cached   same token, verifier with a cache (hit path)
 *   precheck           structural + JSON checks only (sc_token_precheck)
 *   key_checks         the checks verification runs on embedded keys
 *                      (sc_check_dh_pk + dh_sig verification, which also
 *                      validates sig_pk; docs/tokens.md section 5)
 * Overhead = token_verify time / libjwt_verify time - 1, as the median of
 * the per-round ratios (and over all rounds). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jwt.h>
#include <sodium.h>

#include <secchat/secchat.h>

#include "crypto.h"
#include "token.h"

#define ISS "bench.relay"
#define NOW INT64_C(1800000000)

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

enum { C_JWT_SIGN, C_JWT_VERIFY, C_ISSUE, C_VERIFY, C_CACHED, C_PRECHECK, C_KEYS, NCASES };
static const char *const case_names[NCASES] = {
  "libjwt_sign", "libjwt_verify", "token_issue", "token_verify", "token_verify_cached",
  "precheck", "key_checks"};

struct ctx {
  secchat_server_key *key;
  secchat_token_verifier *nocache, *cache;
  char priv[SECCHAT_TOKEN_KEY_PEM_MAX], pub[SECCHAT_TOKEN_KEY_PEM_MAX];
  size_t priv_len, pub_len;
  uint8_t pk[32], sk[64], dh_pk[32], dh_sk[32], dh_sig[64], proof[64], hh[32];
  char tok[SECCHAT_MAX_TOKEN_BYTES + 1];
  char grants[1024];
};

static int die(const char *what)
{
  fprintf(stderr, "bench_token: %s failed\n", what);
  exit(1);
}

static void run_case(struct ctx *c, int which)
{
  char out[SECCHAT_MAX_TOKEN_BYTES + 1];
  int reason;
  switch (which) {
  case C_JWT_SIGN: {
    jwt_t *j = NULL;
    if (jwt_new(&j) || jwt_add_grants_json(j, c->grants) ||
        jwt_set_alg(j, JWT_ALG_ES256, (const unsigned char *)c->priv, (int)c->priv_len))
      die("libjwt sign setup");
    char *t = jwt_encode_str(j);
    if (!t)
      die("jwt_encode_str");
    free(t);
    jwt_free(j);
    break;
  }
  case C_JWT_VERIFY: {
    jwt_t *j = NULL;
    if (jwt_decode(&j, c->tok, (const unsigned char *)c->pub, (int)c->pub_len))
      die("jwt_decode");
    jwt_free(j);
    break;
  }
  case C_ISSUE:
    if (secchat_token_issue(c->key, ISS, "alice", 5, c->pk, c->dh_pk, c->dh_sig, c->proof, c->hh,
                            c->dh_pk, NOW, 0, out, sizeof out, NULL, &reason))
      die("issue");
    break;
  case C_VERIFY:
    if (secchat_token_verify(c->nocache, c->tok, strlen(c->tok), NOW, NULL, &reason))
      die("verify");
    break;
  case C_CACHED:
    if (secchat_token_verify(c->cache, c->tok, strlen(c->tok), NOW, NULL, &reason))
      die("verify cached");
    break;
  case C_PRECHECK:
    if (sc_token_precheck(c->tok, strlen(c->tok)))
      die("precheck");
    break;
  case C_KEYS:
    if (sc_check_dh_pk(c->dh_pk) || sc_verify_ctx(c->dh_sig, SC_CTX_DH, c->dh_pk, 32, c->pk))
      die("key checks");
    break;
  }
}

#define MAX_ROUNDS 1000

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Median of v[0..n) (sorts v). Per-round ratios: a round in which another
 * process took the core skews neither side. */
static double median(double *v, int n)
{
  qsort(v, (size_t)n, sizeof v[0], cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
  int rounds = argc > 1 ? atoi(argv[1]) : 40;
  int iters = argc > 2 ? atoi(argv[2]) : 50;
  if (rounds < 1 || rounds > MAX_ROUNDS || iters < 1 || secchat_init() != 0)
    return die("arguments / init");
  struct ctx c;
  memset(&c, 0, sizeof c);
  if (secchat_server_key_generate(&c.key) ||
      secchat_server_key_private_pem(c.key, c.priv, sizeof c.priv, &c.priv_len) ||
      secchat_server_key_public_pem(c.key, c.pub, sizeof c.pub, &c.pub_len) ||
      secchat_token_verifier_new(&c.nocache, c.pub, c.pub_len, ISS, 0) ||
      secchat_token_verifier_new(&c.cache, c.pub, c.pub_len, ISS, 1024))
    return die("setup");
  uint8_t seed[32] = {1};
  crypto_sign_seed_keypair(c.pk, c.sk, seed);
  memset(c.dh_sk, 2, sizeof c.dh_sk);
  if (crypto_scalarmult_base(c.dh_pk, c.dh_sk) ||
      sc_sign_ctx(c.dh_sig, SC_CTX_DH, c.dh_pk, 32, c.sk) ||
      sc_token_sign_registration(c.proof, c.sk, c.hh, "alice", 5, c.pk, c.dh_pk))
    return die("identity");
  int reason;
  if (secchat_token_issue(c.key, ISS, "alice", 5, c.pk, c.dh_pk, c.dh_sig, c.proof, c.hh, c.dh_pk,
                          NOW, 0, c.tok, sizeof c.tok, NULL, &reason))
    return die("first issue");
  /* Raw libjwt signs the very same claims (taken from our token). */
  jwt_t *j = NULL;
  if (jwt_decode(&j, c.tok, (const unsigned char *)c.pub, (int)c.pub_len))
    return die("decode for grants");
  char *g = jwt_get_grants_json(j, NULL);
  if (!g || strlen(g) >= sizeof c.grants)
    return die("grants");
  strcpy(c.grants, g);
  free(g);
  jwt_free(j);

  double total[NCASES] = {0};
  static double v_ratio[MAX_ROUNDS], i_ratio[MAX_ROUNDS];
  for (int r = 0; r < rounds; r++) {
    double t[NCASES];
    for (int k = 0; k < NCASES; k++) {
      double t0 = now_s();
      for (int i = 0; i < iters; i++)
        run_case(&c, k);
      t[k] = now_s() - t0;
      total[k] += t[k];
    }
    v_ratio[r] = t[C_VERIFY] / t[C_JWT_VERIFY];
    i_ratio[r] = t[C_ISSUE] / t[C_JWT_SIGN];
  }
  double v_med = median(v_ratio, rounds), i_med = median(i_ratio, rounds);
  long n = (long)rounds * iters;
  printf("bench_token: %d rounds x %d iterations, token %zu bytes\n", rounds, iters,
         strlen(c.tok));
  for (int k = 0; k < NCASES; k++)
    printf("  %-20s %10.0f ops/s  %8.1f us/op\n", case_names[k], (double)n / total[k],
           total[k] / (double)n * 1e6);
  printf("  verify overhead beyond raw libjwt: %+.1f%% (median of per-round ratios; "
         "over all rounds %+.1f%%)\n",
         (v_med - 1.0) * 100.0, (total[C_VERIFY] / total[C_JWT_VERIFY] - 1.0) * 100.0);
  printf("    of which mandated key checks:    %+.1f%%\n",
         total[C_KEYS] / total[C_JWT_VERIFY] * 100.0);
  printf("    of which pre-check (JSON etc.):  %+.1f%%\n",
         total[C_PRECHECK] / total[C_JWT_VERIFY] * 100.0);
  printf("  issue overhead beyond raw libjwt sign: %+.1f%% (median; over all rounds %+.1f%%)\n",
         (i_med - 1.0) * 100.0, (total[C_ISSUE] / total[C_JWT_SIGN] - 1.0) * 100.0);
  printf("  target verify overhead <= 15%%: %s\n", v_med <= 1.15 ? "met" : "NOT met");
  uint64_t hits;
  secchat_token_verifier_cache_stats(c.cache, &hits, NULL, NULL);
  if (hits != (uint64_t)n - 1)
    return die("cache hit count");
  secchat_token_verifier_free(c.nocache);
  secchat_token_verifier_free(c.cache);
  secchat_server_key_free(c.key);
  return 0;
}
