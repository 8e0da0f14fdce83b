/* test_token.c: server key, issuance, strict verification (security.md
 * table B: B1, B2, B4-B12), proofs, renewal, cache, names, base32.
 *
 * Hostile tokens are built here independently of the library: JSON by hand,
 * base64url with libsodium, ES256 signatures with OpenSSL directly (not
 * libjwt) and HS256 with libsodium's HMAC. Every rejection asserts the
 * precise reason, the public code and that the verifier's cache did not
 * change. Clocks only through the now argument. Also run under valgrind
 * (ctest test_token_valgrind): libjwt is not ASan-instrumented. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sodium.h>

#include <secchat/secchat.h>

#include "base32.h"
#include "crypto.h"
#include "identity.h"
#include "rng.h"
#include "tokcache.h"
#include "token.h"
#include "testutil.h"

#define ISS "relay.test"
#define NOW INT64_C(1800000000)
#define TOKCAP (SECCHAT_MAX_TOKEN_BYTES + 1)

/* ---- Fixture: one server key per process (ECDSA keygen is not seeded). ---- */

static secchat_server_key *g_key;
static char g_pub[SECCHAT_TOKEN_KEY_PEM_MAX];
static size_t g_pub_len;
static char g_priv[SECCHAT_TOKEN_KEY_PEM_MAX];
static size_t g_priv_len;
static EVP_PKEY *g_evp; /* the same private key, loaded by OpenSSL for forging */

static void suite_setup(void)
{
  ck_assert_int_eq(secchat_init(), 0);
  ck_assert_int_eq(secchat_server_key_generate(&g_key), 0);
  ck_assert_int_eq(secchat_server_key_public_pem(g_key, g_pub, sizeof g_pub, &g_pub_len), 0);
  ck_assert_int_eq(secchat_server_key_private_pem(g_key, g_priv, sizeof g_priv, &g_priv_len), 0);
  BIO *b = BIO_new_mem_buf(g_priv, (int)g_priv_len);
  g_evp = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
  BIO_free(b);
  ck_assert_ptr_nonnull(g_evp);
}

static void suite_teardown(void)
{
  EVP_PKEY_free(g_evp);
  secchat_server_key_free(g_key);
  sodium_memzero(g_priv, sizeof g_priv);
}

static sc_test_rng g_rng;

static void test_setup(void)
{
  static const unsigned char seed[32] = {7};
  sc_test_rng_init(&g_rng, seed);
  sc_rng_set(sc_test_rng_fn, &g_rng);
}

static void test_teardown(void) { sc_rng_set(NULL, NULL); }

/* ---- Identities (the identity module is not used: keys made directly) ---- */

typedef struct ident {
  uint8_t pk[32], sk[64], dh_pk[32], dh_sk[32], dh_sig[64];
  char uid[33];
} ident;

static void make_ident(ident *id, uint8_t seedbyte)
{
  uint8_t seed[32];
  memset(seed, seedbyte, sizeof seed);
  ck_assert_int_eq(crypto_sign_seed_keypair(id->pk, id->sk, seed), 0);
  seed[0] ^= 0x55;
  memcpy(id->dh_sk, seed, 32);
  ck_assert_int_eq(crypto_scalarmult_base(id->dh_pk, id->dh_sk), 0);
  ck_assert_int_eq(sc_sign_ctx(id->dh_sig, SC_CTX_DH, id->dh_pk, 32, id->sk), 0);
  uint8_t uid[20];
  sc_uid_from_sign_pk(uid, id->pk);
  ck_assert_int_eq(sc_base32_encode(id->uid, sizeof id->uid, uid, 20), 32);
}

/* id->pk += a point of order 8 (libsodium's small-order list), uid to
 * match; dh_sig left as it was (it no longer verifies). */
static void torsion(ident *id)
{
  uint8_t t8[32], sum[32], uid[20];
  ck_assert_int_eq(
      tu_unhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a", t8, 32), 32);
  ck_assert_int_eq(crypto_core_ed25519_add(sum, id->pk, t8), 0);
  ck_assert_int_eq(crypto_core_ed25519_is_valid_point(sum), 0);
  memcpy(id->pk, sum, 32);
  sc_uid_from_sign_pk(uid, id->pk);
  ck_assert_int_eq(sc_base32_encode(id->uid, sizeof id->uid, uid, 20), 32);
}

/* A torsioned key pk' = A + T8 and a dh_sig that verifies under it: sign
 * with sk' = seed || pk' (libsodium hashes the pk half of sk), which gives
 * [S]B = R + [h](A + T8) exactly when h = 0 mod 8; try X25519 keys until
 * that holds (1 in 8). */
static void torsion_with_valid_dh_sig(ident *id)
{
  torsion(id);
  uint8_t sk2[64];
  memcpy(sk2, id->sk, 32);
  memcpy(sk2 + 32, id->pk, 32);
  for (int i = 0; i < 256; i++) {
    id->dh_sk[1] = (uint8_t)i;
    ck_assert_int_eq(crypto_scalarmult_base(id->dh_pk, id->dh_sk), 0);
    ck_assert_int_eq(sc_sign_ctx(id->dh_sig, SC_CTX_DH, id->dh_pk, 32, sk2), 0);
    if (sc_verify_ctx(id->dh_sig, SC_CTX_DH, id->dh_pk, 32, id->pk) == 0)
      return;
  }
  ck_abort_msg("no X25519 key gave h = 0 mod 8 in 256 tries");
}

static const uint8_t HH[32] = {0x11, 0x22, 0x33};
static const uint8_t HH2[32] = {0x44, 0x55, 0x66};

/* Register id under name at time now; returns the public code. */
static int issue(const ident *id, const char *name, int64_t now, uint32_t ttl, char *tok,
                 int *reason)
{
  uint8_t proof[64];
  ck_assert_int_eq(sc_token_sign_registration(proof, id->sk, HH, name, strlen(name), id->pk,
                                              id->dh_pk), 0);
  size_t n = 0;
  int rc = secchat_token_issue(g_key, ISS, name, strlen(name), id->pk, id->dh_pk, id->dh_sig,
                               proof, HH, id->dh_pk, now, ttl, tok, TOKCAP, &n, reason);
  if (rc == 0)
    ck_assert_uint_eq(n, strlen(tok));
  return rc;
}

static secchat_token_verifier *new_verifier(size_t cap)
{
  secchat_token_verifier *v = NULL;
  ck_assert_int_eq(secchat_token_verifier_new(&v, g_pub, g_pub_len, ISS, cap), 0);
  return v;
}

/* ---- Hand-made tokens --------------------------------------------------------- */

static void b64u(char *out, size_t cap, const void *in, size_t len)
{
  sodium_bin2base64(out, cap, in, len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

/* ES256 over "h.p" with OpenSSL (DER -> JOSE r||s), independent of libjwt. */
static void es256_sign(EVP_PKEY *key, const char *input, uint8_t rs[64])
{
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  uint8_t der[128];
  size_t dlen = sizeof der;
  ck_assert_int_eq(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key), 1);
  ck_assert_int_eq(EVP_DigestSign(md, der, &dlen, (const uint8_t *)input, strlen(input)), 1);
  EVP_MD_CTX_free(md);
  const uint8_t *p = der;
  ECDSA_SIG *s = d2i_ECDSA_SIG(NULL, &p, (long)dlen);
  ck_assert_ptr_nonnull(s);
  const BIGNUM *r, *sv;
  ECDSA_SIG_get0(s, &r, &sv);
  ck_assert_int_eq(BN_bn2binpad(r, rs, 32), 32);
  ck_assert_int_eq(BN_bn2binpad(sv, rs + 32, 32), 32);
  ECDSA_SIG_free(s);
}

enum signer { SIGN_ES256, SIGN_HS256_PEM, SIGN_NONE_EMPTY, SIGN_RANDOM64 };

/* header/payload JSON text -> token (malloc'd). */
static char *forge(const char *header, const char *payload, enum signer how, EVP_PKEY *key)
{
  char *t = malloc(8192);
  char hb[2048], pb[4096], sb[200];
  b64u(hb, sizeof hb, header, strlen(header));
  b64u(pb, sizeof pb, payload, strlen(payload));
  snprintf(t, 8192, "%s.%s", hb, pb);
  uint8_t sig[64];
  switch (how) {
  case SIGN_ES256:
    es256_sign(key ? key : g_evp, t, sig);
    b64u(sb, sizeof sb, sig, 64);
    break;
  case SIGN_HS256_PEM: { /* the public PEM as the HMAC secret */
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, (const uint8_t *)g_pub, g_pub_len);
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)t, strlen(t));
    crypto_auth_hmacsha256_final(&st, sig);
    b64u(sb, sizeof sb, sig, 32);
    break;
  }
  case SIGN_NONE_EMPTY:
    sb[0] = 0;
    break;
  case SIGN_RANDOM64:
    randombytes_buf(sig, 64);
    b64u(sb, sizeof sb, sig, 64);
    break;
  }
  strcat(t, ".");
  strcat(t, sb);
  return t;
}

/* Standard claims of id as JSON text, with optional overrides: each
 * override is "key" then raw JSON value (NULL value removes the claim). */
static char *claims_json(const ident *id, int64_t iat, int64_t exp, const char *const *ov)
{
  char spk[64], dpk[64], dsig[100];
  b64u(spk, sizeof spk, id->pk, 32);
  b64u(dpk, sizeof dpk, id->dh_pk, 32);
  b64u(dsig, sizeof dsig, id->dh_sig, 64);
  struct { const char *k; char v[200]; } c[11] = {
    {"iss", "\"" ISS "\""}, {"sub", ""}, {"name", "\"alice\""}, {"sig_pk", ""},
    {"dh_pk", ""}, {"dh_sig", ""}, {"jti", "\"AAAAAAAAAAAAAAAAAAAAAA\""},
    {"iat", ""}, {"nbf", ""}, {"exp", ""}, {"ver", "1"}};
  snprintf(c[1].v, sizeof c[1].v, "\"%s\"", id->uid);
  snprintf(c[3].v, sizeof c[3].v, "\"%s\"", spk);
  snprintf(c[4].v, sizeof c[4].v, "\"%s\"", dpk);
  snprintf(c[5].v, sizeof c[5].v, "\"%s\"", dsig);
  snprintf(c[7].v, sizeof c[7].v, "%lld", (long long)iat);
  snprintf(c[8].v, sizeof c[8].v, "%lld", (long long)iat);
  snprintf(c[9].v, sizeof c[9].v, "%lld", (long long)exp);
  char *out = malloc(4096);
  strcpy(out, "{");
  const char *extra = NULL;
  for (int i = 0; i < 11; i++) {
    const char *v = c[i].v;
    int removed = 0;
    for (const char *const *o = ov; o && o[0]; o += 2) {
      if (strcmp(o[0], c[i].k) == 0) {
        if (!o[1])
          removed = 1;
        else
          v = o[1];
      }
    }
    if (removed)
      continue;
    if (strlen(out) > 1)
      strcat(out, ",");
    sprintf(out + strlen(out), "\"%s\":%s", c[i].k, v);
  }
  /* Overrides for keys that are not standard claims are appended. */
  for (const char *const *o = ov; o && o[0]; o += 2) {
    int known = 0;
    for (int i = 0; i < 11; i++)
      known |= strcmp(o[0], c[i].k) == 0;
    if (!known && o[1]) {
      extra = o[0];
      sprintf(out + strlen(out), ",\"%s\":%s", extra, o[1]);
    }
  }
  strcat(out, "}");
  return out;
}

static const char *const STD_HEADER = "{\"alg\":\"ES256\",\"typ\":\"JWT\"}";

/* A forged token from header text and claim overrides, signed ES256 with
 * the real server key unless told otherwise. */
static char *forge_claims(const ident *id, const char *header, enum signer how,
                          const char *const *ov)
{
  char *p = claims_json(id, NOW, NOW + 3600, ov);
  char *t = forge(header ? header : STD_HEADER, p, how, NULL);
  free(p);
  return t;
}

/* ---- Assertions ---------------------------------------------------------------- */

static ident A, B;
static secchat_token_verifier *V;

static void verifier_setup(void)
{
  test_setup();
  make_ident(&A, 1);
  make_ident(&B, 2);
  V = new_verifier(64);
}

static void verifier_teardown(void)
{
  secchat_token_verifier_free(V);
  V = NULL;
  test_teardown();
}

/* Verify must fail with want_rc/want_reason and leave the cache unchanged. */
static void expect_reject_len(const char *tok, size_t len, int64_t now, int want_reason,
                              int want_rc)
{
  uint64_t h0, e0, h1, e1;
  secchat_token_verifier_cache_stats(V, &h0, NULL, &e0);
  secchat_token_claims c;
  memset(&c, 0xa5, sizeof c);
  int reason = -1;
  int rc = secchat_token_verify(V, tok, len, now, &c, &reason);
  ck_assert_msg(reason == want_reason, "reason %d (%s), want %d (%s)", reason,
                secchat_token_reason_string(reason), want_reason,
                secchat_token_reason_string(want_reason));
  ck_assert_int_eq(rc, want_rc);
  secchat_token_verifier_cache_stats(V, &h1, NULL, &e1);
  ck_assert_uint_eq(h0, h1);
  ck_assert_uint_eq(e0, e1);
  /* Claims untouched on failure. */
  ck_assert_uint_eq(c.struct_size, 0xa5a5a5a5u);
}

static void expect_reject(const char *tok, int want_reason)
{
  expect_reject_len(tok, strlen(tok), NOW, want_reason, SECCHAT_ERR_AUTH);
}

static void expect_reject_free(char *tok, int want_reason)
{
  expect_reject(tok, want_reason);
  free(tok);
}

/* ---- Server key ---------------------------------------------------------------- */

START_TEST(server_key_pem_roundtrip)
{
  uint8_t fp1[32], fp2[32];
  ck_assert_int_eq(secchat_server_key_fingerprint(g_key, fp1), 0);
  secchat_server_key *k2 = NULL;
  ck_assert_int_eq(secchat_server_key_from_pem(&k2, g_priv, g_priv_len), 0);
  ck_assert_int_eq(secchat_server_key_fingerprint(k2, fp2), 0);
  ck_assert_mem_eq(fp1, fp2, 32);
  char pub2[SECCHAT_TOKEN_KEY_PEM_MAX];
  size_t n2;
  ck_assert_int_eq(secchat_server_key_public_pem(k2, pub2, sizeof pub2, &n2), 0);
  ck_assert_str_eq(pub2, g_pub);
  ck_assert_ptr_nonnull(strstr(g_pub, "-----BEGIN PUBLIC KEY-----"));
  ck_assert_ptr_null(strstr(g_pub, "PRIVATE"));
  /* Fingerprint = BLAKE2b-256 of the DER SubjectPublicKeyInfo, computed
   * here from OpenSSL's own encoding. */
  unsigned char *der = NULL;
  int dl = i2d_PUBKEY(g_evp, &der);
  ck_assert_int_gt(dl, 0);
  uint8_t want[32];
  crypto_generichash(want, 32, der, (size_t)dl, NULL, 0);
  OPENSSL_free(der);
  ck_assert_mem_eq(fp1, want, 32);
  /* A new key differs. */
  secchat_server_key *k3 = NULL;
  ck_assert_int_eq(secchat_server_key_generate(&k3), 0);
  ck_assert_int_eq(secchat_server_key_fingerprint(k3, fp2), 0);
  ck_assert_mem_ne(fp1, fp2, 32);
  /* Buffer too small. */
  ck_assert_int_eq(secchat_server_key_public_pem(k3, pub2, 10, NULL), SECCHAT_ERR_BUFFER_TOO_SMALL);
  secchat_server_key_free(k3);
  secchat_server_key_free(k2);
  secchat_server_key_free(NULL);
}
END_TEST

START_TEST(server_key_rejects_bad_pem)
{
  secchat_server_key *k = (secchat_server_key *)1;
  ck_assert_int_eq(secchat_server_key_from_pem(&k, "", 0), SECCHAT_ERR_BAD_KEY);
  ck_assert_ptr_null(k);
  ck_assert_int_eq(secchat_server_key_from_pem(&k, g_priv, g_priv_len / 2), SECCHAT_ERR_BAD_KEY);
  ck_assert_int_eq(secchat_server_key_from_pem(&k, "garbage", 7), SECCHAT_ERR_BAD_KEY);
  ck_assert_int_eq(secchat_server_key_from_pem(&k, g_pub, g_pub_len), SECCHAT_ERR_BAD_KEY);
  /* Other key types and curves. */
  const char *types[][2] = {{"EC", "P-384"}, {"ED25519", NULL}};
  for (int i = 0; i < 2; i++) {
    EVP_PKEY *o = types[i][1] ? EVP_EC_gen(types[i][1]) : EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    ck_assert_ptr_nonnull(o);
    BIO *b = BIO_new(BIO_s_mem());
    ck_assert_int_eq(PEM_write_bio_PrivateKey(b, o, NULL, NULL, 0, NULL, NULL), 1);
    char *data;
    long n = BIO_get_mem_data(b, &data);
    ck_assert_int_eq(secchat_server_key_from_pem(&k, data, (size_t)n), SECCHAT_ERR_BAD_KEY);
    BIO_free(b);
    b = BIO_new(BIO_s_mem());
    ck_assert_int_eq(PEM_write_bio_PUBKEY(b, o), 1);
    n = BIO_get_mem_data(b, &data);
    secchat_token_verifier *v = NULL;
    ck_assert_int_eq(secchat_token_verifier_new(&v, data, (size_t)n, ISS, 0), SECCHAT_ERR_BAD_KEY);
    BIO_free(b);
    EVP_PKEY_free(o);
  }
  /* Verifier refuses an empty key (libjwt would skip verification). */
  secchat_token_verifier *v = NULL;
  ck_assert_int_eq(secchat_token_verifier_new(&v, "", 0, ISS, 0), SECCHAT_ERR_BAD_KEY);
  ck_assert_int_eq(secchat_token_verifier_new(&v, NULL, 0, ISS, 0), SECCHAT_ERR_BAD_KEY);
  ck_assert_int_eq(secchat_token_verifier_new(&v, g_priv, g_priv_len, ISS, 0), SECCHAT_ERR_BAD_KEY);
  ck_assert_int_eq(secchat_token_verifier_new(&v, g_pub, g_pub_len, "", 0),
                   SECCHAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(secchat_token_verifier_new(&v, g_pub, g_pub_len, "a b", 0),
                   SECCHAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(secchat_token_verifier_new(&v, g_pub, g_pub_len, ISS,
                                              SECCHAT_TOKEN_CACHE_MAX + 1),
                   SECCHAT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_null(v);
}
END_TEST

/* ---- Happy path -------------------------------------------------------------- */

START_TEST(issue_and_verify)
{
  char tok[TOKCAP];
  int reason = -1;
  ck_assert_int_eq(issue(&A, "alice", NOW, 0, tok, &reason), 0);
  ck_assert_int_eq(reason, 0);
  ck_assert_int_eq(sc_token_precheck(tok, strlen(tok)), 0);
  secchat_token_claims c;
  ck_assert_int_eq(secchat_token_verify(V, tok, strlen(tok), NOW, &c, &reason), 0);
  ck_assert_int_eq(reason, 0);
  ck_assert_uint_eq(c.struct_size, sizeof c);
  ck_assert_uint_eq(secchat_token_claims_size(), sizeof c);
  ck_assert_uint_eq(c.ver, 1);
  ck_assert_str_eq(c.name, "alice");
  ck_assert_str_eq(c.iss, ISS);
  ck_assert_str_eq(c.uid_str, A.uid);
  ck_assert_mem_eq(c.sig_pk, A.pk, 32);
  ck_assert_mem_eq(c.dh_pk, A.dh_pk, 32);
  ck_assert_mem_eq(c.dh_sig, A.dh_sig, 64);
  ck_assert_int_eq(c.iat, NOW);
  ck_assert_int_eq(c.nbf, NOW);
  ck_assert_int_eq(c.exp, NOW + SECCHAT_TOKEN_TTL_DEFAULT);
  uint8_t uid[20];
  sc_uid_from_sign_pk(uid, A.pk);
  ck_assert_mem_eq(c.uid, uid, 20);
  /* Payload as libjwt (an independent reader here) sees it. */
  jwt_t *j = NULL;
  ck_assert_int_eq(jwt_decode(&j, tok, (const unsigned char *)g_pub, (int)g_pub_len), 0);
  ck_assert_int_eq(jwt_get_alg(j), JWT_ALG_ES256);
  ck_assert_str_eq(jwt_get_grant(j, "sub"), A.uid);
  ck_assert_int_eq(jwt_get_grant_int(j, "exp"), NOW + SECCHAT_TOKEN_TTL_DEFAULT);
  jwt_free(j);
  /* Custom TTL; two tokens differ in jti. */
  char tok2[TOKCAP];
  secchat_token_claims c2;
  ck_assert_int_eq(issue(&A, "alice", NOW, 3600, tok2, &reason), 0);
  ck_assert_int_eq(secchat_token_verify(V, tok2, strlen(tok2), NOW, &c2, &reason), 0);
  ck_assert_int_eq(c2.exp, NOW + 3600);
  ck_assert_mem_ne(c.jti, c2.jti, 16);
  /* UTF-8 name of 32 code points. */
  const char *n32 = "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
                    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
                    "\xe6\x97\xa5\xe6\x97\xa5\xe6\x97\xa5\xe6\x97\xa5\xe6\x97\xa5\xe6\x97\xa5"
                    "\xe6\x97\xa5\xe6\x97\xa5\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80"
                    "\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80";
  ck_assert_int_eq(issue(&B, n32, NOW, 0, tok2, &reason), 0);
  ck_assert_int_eq(secchat_token_verify(V, tok2, strlen(tok2), NOW, &c2, &reason), 0);
  ck_assert_str_eq(c2.name, n32);
  /* Argument errors. */
  ck_assert_int_eq(issue(&A, "alice", NOW, SECCHAT_TOKEN_MAX_LIFETIME + 1, tok2, &reason),
                   SECCHAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(issue(&A, "alice", -1, 0, tok2, &reason), SECCHAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(secchat_token_verify(V, tok, strlen(tok), -5, NULL, NULL),
                   SECCHAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(secchat_token_verify(NULL, tok, strlen(tok), NOW, NULL, NULL),
                   SECCHAT_ERR_INVALID_ARGUMENT);
  uint8_t proof[64];
  ck_assert_int_eq(sc_token_sign_registration(proof, A.sk, HH, "alice", 5, A.pk, A.dh_pk), 0);
  char small[100];
  ck_assert_int_eq(secchat_token_issue(g_key, ISS, "alice", 5, A.pk, A.dh_pk, A.dh_sig, proof,
                                       HH, A.dh_pk, NOW, 0, small, sizeof small, NULL, &reason),
                   SECCHAT_ERR_BUFFER_TOO_SMALL);
}
END_TEST

/* An ES256 token made entirely outside libjwt (OpenSSL signature, our
 * JSON) verifies: the verifier accepts the standard encoding, not just
 * libjwt's output. */
START_TEST(independent_es256_token_accepted)
{
  char *t = forge_claims(&A, NULL, SIGN_ES256, NULL);
  secchat_token_claims c;
  int reason = -1;
  ck_assert_int_eq(secchat_token_verify(V, t, strlen(t), NOW, &c, &reason), 0);
  ck_assert_str_eq(c.uid_str, A.uid);
  free(t);
  /* Header without typ is fine too. */
  t = forge_claims(&A, "{\"alg\":\"ES256\"}", SIGN_ES256, NULL);
  ck_assert_int_eq(secchat_token_verify(V, t, strlen(t), NOW, &c, &reason), 0);
  free(t);
}
END_TEST

/* ---- B1, B4, B5: algorithm and header ----------------------------------------- */

START_TEST(b1_alg_none)
{
  const char *hs[] = {"{\"alg\":\"none\",\"typ\":\"JWT\"}", "{\"alg\":\"NONE\"}",
                      "{\"alg\":\"nOnE\"}"};
  for (int i = 0; i < 3; i++) {
    /* Unsigned (empty signature) and with a bogus 64-byte signature. */
    expect_reject_free(forge_claims(&A, hs[i], SIGN_NONE_EMPTY, NULL),
                       SECCHAT_TOKEN_R_EMPTY_SEGMENT);
    expect_reject_free(forge_claims(&A, hs[i], SIGN_RANDOM64, NULL), SECCHAT_TOKEN_R_ALG);
  }
  /* An ES256 header with the signature stripped. */
  expect_reject_free(forge_claims(&A, NULL, SIGN_NONE_EMPTY, NULL),
                     SECCHAT_TOKEN_R_EMPTY_SEGMENT);
}
END_TEST

START_TEST(b4_hs256_with_public_pem)
{
  char *t = forge_claims(&A, "{\"alg\":\"HS256\",\"typ\":\"JWT\"}", SIGN_HS256_PEM, NULL);
  /* The trap is real: raw libjwt 1.10.2 accepts this forgery. */
  jwt_t *j = NULL;
  ck_assert_int_eq(jwt_decode(&j, t, (const unsigned char *)g_pub, (int)g_pub_len), 0);
  ck_assert_int_eq(jwt_get_alg(j), JWT_ALG_HS256);
  jwt_free(j);
  expect_reject_free(t, SECCHAT_TOKEN_R_ALG);
  expect_reject_free(forge_claims(&A, "{\"alg\":\"hs256\"}", SIGN_HS256_PEM, NULL),
                     SECCHAT_TOKEN_R_ALG);
}
END_TEST

START_TEST(b5_header_fields)
{
  struct { const char *h; int reason; } cases[] = {
    {"{\"alg\":\"es256\"}", SECCHAT_TOKEN_R_ALG},
    {"{\"alg\":\"hs256\"}", SECCHAT_TOKEN_R_ALG},
    {"{\"alg\":123}", SECCHAT_TOKEN_R_ALG},
    {"{\"alg\":null}", SECCHAT_TOKEN_R_ALG},
    {"{\"typ\":\"JWT\"}", SECCHAT_TOKEN_R_ALG},
    {"{\"alg\":\"ES256 \"}", SECCHAT_TOKEN_R_ALG},
    {"{\"alg\":\"ES384\"}", SECCHAT_TOKEN_R_ALG},
    {"{\"alg\":\"ES256\",\"typ\":\"jwt\"}", SECCHAT_TOKEN_R_TYP},
    {"{\"alg\":\"ES256\",\"typ\":1}", SECCHAT_TOKEN_R_TYP},
    {"{\"alg\":\"ES256\",\"kid\":\"1\"}", SECCHAT_TOKEN_R_HEADER_FIELD},
    {"{\"alg\":\"ES256\",\"jku\":\"https://x/\"}", SECCHAT_TOKEN_R_HEADER_FIELD},
    {"{\"alg\":\"ES256\",\"x5u\":\"https://x/\"}", SECCHAT_TOKEN_R_HEADER_FIELD},
    {"{\"alg\":\"ES256\",\"crit\":[\"exp\"]}", SECCHAT_TOKEN_R_HEADER_FIELD},
    {"{\"alg\":\"ES256\",\"jwk\":{}}", SECCHAT_TOKEN_R_HEADER_FIELD},
    {"{\"alg\":\"ES256\",\"x5c\":[]}", SECCHAT_TOKEN_R_HEADER_FIELD},
    {"[\"alg\",\"ES256\"]", SECCHAT_TOKEN_R_HEADER_JSON},
    {"\"ES256\"", SECCHAT_TOKEN_R_HEADER_JSON},
    {"{\"alg\":\"ES256\"", SECCHAT_TOKEN_R_HEADER_JSON},
    {"{\"alg\":\"ES256\"} ", SECCHAT_TOKEN_OK},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    /* Signed with the real key: only the header is wrong. */
    char *t = forge_claims(&A, cases[i].h, SIGN_ES256, NULL);
    if (cases[i].reason == SECCHAT_TOKEN_OK) {
      /* Whitespace around JSON is JSON; the signature covers it. */
      ck_assert_int_eq(secchat_token_verify(V, t, strlen(t), NOW, NULL, NULL), 0);
      free(t);
    } else {
      expect_reject_free(t, cases[i].reason);
    }
  }
}
END_TEST

/* ---- B2: signatures ---------------------------------------------------------------- */

START_TEST(b2_signatures)
{
  char tok[TOKCAP];
  ck_assert_int_eq(issue(&A, "alice", NOW, 0, tok, NULL), 0);
  char *dot = strrchr(tok, '.');
  /* Stripped. */
  char t[TOKCAP];
  memcpy(t, tok, (size_t)(dot - tok) + 1);
  t[dot - tok + 1] = 0;
  expect_reject(t, SECCHAT_TOKEN_R_EMPTY_SEGMENT);
  /* Random 64 bytes. */
  expect_reject_free(forge_claims(&A, NULL, SIGN_RANDOM64, NULL), SECCHAT_TOKEN_R_SIGNATURE);
  /* Garbage of the right length but wrong alphabet use and wrong length. */
  strcpy(t, tok);
  strcpy(strrchr(t, '.') + 1, "AAAA");
  expect_reject(t, SECCHAT_TOKEN_R_SIGNATURE);
  /* Every single-bit flip of the decoded signature (sampled) is refused. */
  uint8_t sig[64];
  size_t n;
  ck_assert_int_eq(sodium_base642bin(sig, 64, dot + 1, strlen(dot + 1), NULL, &n, NULL,
                                     sodium_base64_VARIANT_URLSAFE_NO_PADDING), 0);
  for (int bit = 0; bit < 512; bit += 37) {
    sig[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    strcpy(t, tok);
    b64u(strrchr(t, '.') + 1, 100, sig, 64);
    expect_reject(t, SECCHAT_TOKEN_R_SIGNATURE);
    sig[bit / 8] ^= (uint8_t)(1u << (bit % 8));
  }
  /* A flipped payload bit (signature unchanged). */
  strcpy(t, tok);
  char *p = strchr(t, '.') + 5;
  *p = *p == 'A' ? 'B' : 'A';
  int r = sc_token_precheck(t, strlen(t));
  if (r == 0)
    expect_reject(t, SECCHAT_TOKEN_R_SIGNATURE);
  else
    expect_reject(t, r); /* the flip broke the JSON first */
  /* Signed with another P-256 key. */
  EVP_PKEY *other = EVP_EC_gen("P-256");
  char *pl = claims_json(&A, NOW, NOW + 60, NULL);
  char *f = forge(STD_HEADER, pl, SIGN_ES256, other);
  expect_reject_free(f, SECCHAT_TOKEN_R_SIGNATURE);
  free(pl);
  EVP_PKEY_free(other);
  /* Non-canonical base64 in the signature (non-zero trailing bits). */
  strcpy(t, tok);
  char *last = t + strlen(t) - 1;
  const char *alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  size_t idx = (size_t)(strchr(alpha, *last) - alpha);
  *last = alpha[idx ^ 1]; /* 86 chars = 64 bytes + 4 spare bits */
  expect_reject(t, SECCHAT_TOKEN_R_BASE64);
}
END_TEST

/* ---- B6: time claims ---------------------------------------------------------------- */

START_TEST(b6_time_claims)
{
  struct { const char *k, *v; int reason; } cases[] = {
    {"exp", NULL, SECCHAT_TOKEN_R_CLAIM_MISSING},
    {"exp", "\"1\"", SECCHAT_TOKEN_R_CLAIM_TYPE},
    {"exp", "1.5", SECCHAT_TOKEN_R_CLAIM_TYPE},
    {"exp", "true", SECCHAT_TOKEN_R_CLAIM_TYPE},
    {"exp", "1e30", SECCHAT_TOKEN_R_CLAIM_TYPE},
    {"exp", "1800003600.0", SECCHAT_TOKEN_R_CLAIM_TYPE},
    {"exp", "null", SECCHAT_TOKEN_R_CLAIM_TYPE},
    {"exp", "-1", SECCHAT_TOKEN_R_CLAIM_RANGE},
    {"exp", "253402300800", SECCHAT_TOKEN_R_CLAIM_RANGE},
    {"exp", "99999999999999999999", SECCHAT_TOKEN_R_PAYLOAD_JSON},
    {"iat", "\"1800000000\"", SECCHAT_TOKEN_R_CLAIM_TYPE},
    {"nbf", NULL, SECCHAT_TOKEN_R_CLAIM_MISSING},
    {"ver", "2", SECCHAT_TOKEN_R_VERSION},
    {"ver", "\"1\"", SECCHAT_TOKEN_R_CLAIM_TYPE},
    {"iss", "1", SECCHAT_TOKEN_R_CLAIM_TYPE},
    {"extra", "1", SECCHAT_TOKEN_R_CLAIM_UNKNOWN},
    /* Signed and well-typed, but not valid yet (iat = now). */
    {"nbf", "1800000200", SECCHAT_TOKEN_R_NOT_YET_VALID},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const char *ov[] = {cases[i].k, cases[i].v, NULL};
    expect_reject_free(forge_claims(&A, NULL, SIGN_ES256, ov), cases[i].reason);
  }
  /* nbf within the leeway is accepted. */
  const char *nbf_ok[] = {"nbf", "1800000060", NULL};
  char *ok = forge_claims(&A, NULL, SIGN_ES256, nbf_ok);
  ck_assert_int_eq(secchat_token_verify(V, ok, strlen(ok), NOW, NULL, NULL), 0);
  free(ok);
  /* nbf after exp, nbf before iat, lifetime above the maximum. */
  const char *bad_order[] = {"nbf", "1800003601", NULL};
  expect_reject_free(forge_claims(&A, NULL, SIGN_ES256, bad_order), SECCHAT_TOKEN_R_LIFETIME);
  const char *nbf_before_iat[] = {"nbf", "1799999999", NULL};
  expect_reject_free(forge_claims(&A, NULL, SIGN_ES256, nbf_before_iat),
                     SECCHAT_TOKEN_R_LIFETIME);
  char *p = claims_json(&A, NOW, NOW + SECCHAT_TOKEN_MAX_LIFETIME + 1, NULL);
  expect_reject_free(forge(STD_HEADER, p, SIGN_ES256, NULL), SECCHAT_TOKEN_R_LIFETIME);
  free(p);
  /* iat (and so nbf) in the future beyond the leeway; within it is fine. */
  p = claims_json(&A, NOW + SECCHAT_TOKEN_LEEWAY + 1, NOW + 7200, NULL);
  char *t = forge(STD_HEADER, p, SIGN_ES256, NULL);
  free(p);
  expect_reject(t, SECCHAT_TOKEN_R_IAT_FUTURE);
  free(t);
  p = claims_json(&A, NOW + SECCHAT_TOKEN_LEEWAY, NOW + 7200, NULL);
  t = forge(STD_HEADER, p, SIGN_ES256, NULL);
  free(p);
  ck_assert_int_eq(secchat_token_verify(V, t, strlen(t), NOW, NULL, NULL), 0);
  free(t);
  /* Expired: past exp + leeway -> TOKEN_EXPIRED; within leeway -> ok. */
  char tok[TOKCAP];
  ck_assert_int_eq(issue(&A, "alice", NOW, 3600, tok, NULL), 0);
  expect_reject_len(tok, strlen(tok), NOW + 3600 + SECCHAT_TOKEN_LEEWAY,
                    SECCHAT_TOKEN_R_EXPIRED, SECCHAT_ERR_TOKEN_EXPIRED);
  ck_assert_int_eq(secchat_token_verify(V, tok, strlen(tok), NOW + 3600 + SECCHAT_TOKEN_LEEWAY - 1,
                                        NULL, NULL), 0);
  /* Verified before the expiry, then presented late: the cache honours exp. */
  int reason = -1;
  uint64_t e0, e1;
  secchat_token_verifier_cache_stats(V, NULL, NULL, &e0);
  ck_assert_int_eq(secchat_token_verify(V, tok, strlen(tok), NOW + 7200, NULL, &reason),
                   SECCHAT_ERR_TOKEN_EXPIRED);
  ck_assert_int_eq(reason, SECCHAT_TOKEN_R_EXPIRED);
  secchat_token_verifier_cache_stats(V, NULL, NULL, &e1);
  ck_assert_uint_eq(e1, e0 - 1); /* the expired entry was dropped */
  /* Cached token presented before nbf (a clock going backwards). */
  ck_assert_int_eq(secchat_token_verify(V, tok, strlen(tok), NOW, NULL, NULL), 0);
  ck_assert_int_eq(secchat_token_verify(V, tok, strlen(tok), NOW - 3600, NULL, &reason),
                   SECCHAT_ERR_AUTH);
  ck_assert_int_eq(reason, SECCHAT_TOKEN_R_IAT_FUTURE);
}
END_TEST

START_TEST(b6_cached_clock_checks)
{
  /* A cached token is re-checked against every now: presented at a time
   * before its iat (beyond the leeway) it fails, at the edge it passes. */
  char tok[TOKCAP];
  ck_assert_int_eq(issue(&A, "alice", NOW, 3600, tok, NULL), 0);
  ck_assert_int_eq(secchat_token_verify(V, tok, strlen(tok), NOW, NULL, NULL), 0);
  int reason = -1;
  ck_assert_int_eq(secchat_token_verify(V, tok, strlen(tok), NOW - SECCHAT_TOKEN_LEEWAY - 1,
                                        NULL, &reason), SECCHAT_ERR_AUTH);
  ck_assert_int_eq(reason, SECCHAT_TOKEN_R_IAT_FUTURE);
  ck_assert_int_eq(secchat_token_verify(V, tok, strlen(tok), NOW - SECCHAT_TOKEN_LEEWAY,
                                        NULL, &reason), 0);
  uint64_t hits;
  secchat_token_verifier_cache_stats(V, &hits, NULL, NULL);
  ck_assert_uint_eq(hits, 2);
}
END_TEST

/* ---- B7: issuer ---------------------------------------------------------------------- */

START_TEST(b7_wrong_issuer)
{
  const char *ov[] = {"iss", "\"other.relay\"", NULL};
  expect_reject_free(forge_claims(&A, NULL, SIGN_ES256, ov), SECCHAT_TOKEN_R_ISSUER);
  const char *ov2[] = {"iss", "\"relay.test \"", NULL};
  expect_reject_free(forge_claims(&A, NULL, SIGN_ES256, ov2), SECCHAT_TOKEN_R_ISSUER);
  /* A token issued by this key under another issuer name. */
  uint8_t proof[64];
  char tok[TOKCAP];
  int reason;
  ck_assert_int_eq(sc_token_sign_registration(proof, A.sk, HH, "alice", 5, A.pk, A.dh_pk), 0);
  ck_assert_int_eq(secchat_token_issue(g_key, "elsewhere", "alice", 5, A.pk, A.dh_pk, A.dh_sig,
                                       proof, HH, A.dh_pk, NOW, 0, tok, sizeof tok, NULL,
                                       &reason), 0);
  expect_reject(tok, SECCHAT_TOKEN_R_ISSUER);
  /* A token from another server (other key), same issuer name. */
  secchat_server_key *k2 = NULL;
  ck_assert_int_eq(secchat_server_key_generate(&k2), 0);
  ck_assert_int_eq(secchat_token_issue(k2, ISS, "alice", 5, A.pk, A.dh_pk, A.dh_sig, proof, HH,
                                       A.dh_pk, NOW, 0, tok, sizeof tok, NULL, &reason), 0);
  expect_reject(tok, SECCHAT_TOKEN_R_SIGNATURE);
  secchat_server_key_free(k2);
}
END_TEST

/* ---- B8, B9: size and structure ------------------------------------------------------- */

START_TEST(b8_oversized)
{
  char tok[TOKCAP];
  ck_assert_int_eq(issue(&A, "alice", NOW, 0, tok, NULL), 0);
  size_t n = SECCHAT_MAX_TOKEN_BYTES + 1;
  char *big = malloc(n + 1);
  memset(big, 'A', n);
  memcpy(big, tok, strlen(tok)); /* a valid prefix, then filler */
  big[n] = 0;
  expect_reject_len(big, n, NOW, SECCHAT_TOKEN_R_TOO_LONG, SECCHAT_ERR_AUTH);
  free(big);
  /* 9 MB: crashes raw libjwt 1.10.2 (alloca); rejected by length here. */
  n = 9u * 1024 * 1024;
  big = malloc(n + 1);
  memset(big, 'A', n);
  big[100] = '.';
  big[200] = '.';
  big[n] = 0;
  expect_reject_len(big, n, NOW, SECCHAT_TOKEN_R_TOO_LONG, SECCHAT_ERR_AUTH);
  free(big);
  expect_reject_len("", 0, NOW, SECCHAT_TOKEN_R_EMPTY, SECCHAT_ERR_AUTH);
  /* Exactly the limit passes the length check (and fails later). */
  big = malloc(SECCHAT_MAX_TOKEN_BYTES);
  memset(big, 'A', SECCHAT_MAX_TOKEN_BYTES);
  expect_reject_len(big, SECCHAT_MAX_TOKEN_BYTES, NOW, SECCHAT_TOKEN_R_DOTS, SECCHAT_ERR_AUTH);
  free(big);
}
END_TEST

START_TEST(b9_structure)
{
  char tok[TOKCAP], t[TOKCAP + 8];
  ck_assert_int_eq(issue(&A, "alice", NOW, 0, tok, NULL), 0);
  const char *d1 = strchr(tok, '.'), *d2 = strrchr(tok, '.');
  size_t l1 = (size_t)(d1 - tok), l2 = (size_t)(d2 - tok);

  /* 1 dot: header.payload+sig joined. */
  snprintf(t, sizeof t, "%.*s%s", (int)l2, tok, d2 + 1);
  expect_reject(t, SECCHAT_TOKEN_R_DOTS);
  /* 0 dots. */
  expect_reject("abcdef", SECCHAT_TOKEN_R_DOTS);
  /* 3 and 4 dots. */
  snprintf(t, sizeof t, "%s.", tok);
  expect_reject(t, SECCHAT_TOKEN_R_DOTS);
  snprintf(t, sizeof t, "%s.x.y", tok);
  expect_reject(t, SECCHAT_TOKEN_R_DOTS);
  /* Empty header / payload / signature. */
  snprintf(t, sizeof t, "%s", d1);
  expect_reject(t, SECCHAT_TOKEN_R_EMPTY_SEGMENT);
  snprintf(t, sizeof t, "%.*s.%s", (int)l1, tok, d2);
  expect_reject(t, SECCHAT_TOKEN_R_EMPTY_SEGMENT);
  expect_reject("..", SECCHAT_TOKEN_R_EMPTY_SEGMENT);
  /* Whitespace, trailing newline, padding, other characters. */
  const char *inserts[] = {" ", "\n", "\t", "=", "+", "/", "\r", "\x80"};
  for (size_t i = 0; i < sizeof inserts / sizeof inserts[0]; i++) {
    snprintf(t, sizeof t, "%s%s", tok, inserts[i]); /* trailing */
    expect_reject(t, SECCHAT_TOKEN_R_CHARSET);
    snprintf(t, sizeof t, "%s%s", inserts[i], tok); /* leading */
    expect_reject(t, SECCHAT_TOKEN_R_CHARSET);
    snprintf(t, sizeof t, "%.*s%s%s", (int)l1, tok, inserts[i], d1); /* inside */
    expect_reject(t, SECCHAT_TOKEN_R_CHARSET);
  }
  /* '=' padding on the header segment. */
  snprintf(t, sizeof t, "%.*s==%s", (int)l1, tok, d1);
  expect_reject(t, SECCHAT_TOKEN_R_CHARSET);
  /* Embedded NUL: the length says more than the C string. */
  memcpy(t, tok, strlen(tok) + 1);
  t[10] = 0;
  expect_reject_len(t, strlen(tok), NOW, SECCHAT_TOKEN_R_CHARSET, SECCHAT_ERR_AUTH);
  /* Trailing base64url character. */
  snprintf(t, sizeof t, "%sA", tok);
  expect_reject(t, SECCHAT_TOKEN_R_SIGNATURE);
  /* Segments that are not base64url of JSON. */
  snprintf(t, sizeof t, "A%s", d1); /* 1 char: impossible length */
  expect_reject(t, SECCHAT_TOKEN_R_BASE64);
  snprintf(t, sizeof t, "AAAA%s", d1); /* 3 zero bytes: not JSON */
  expect_reject(t, SECCHAT_TOKEN_R_HEADER_JSON);
  /* The original still verifies (nothing above poisoned anything). */
  ck_assert_int_eq(secchat_token_verify(V, tok, strlen(tok), NOW, NULL, NULL), 0);
}
END_TEST

/* ---- B10: duplicates ------------------------------------------------------------------- */

START_TEST(b10_duplicates)
{
  /* Duplicate sub: the second names another user. */
  char *p = claims_json(&A, NOW, NOW + 3600, NULL);
  char *dup = malloc(strlen(p) + 100);
  snprintf(dup, strlen(p) + 100, "%.*s,\"sub\":\"%s\"}", (int)strlen(p) - 1, p, B.uid);
  char *t = forge(STD_HEADER, dup, SIGN_ES256, NULL);
  /* libjwt alone cannot see it: the last one wins. */
  jwt_t *j = NULL;
  ck_assert_int_eq(jwt_decode(&j, t, (const unsigned char *)g_pub, (int)g_pub_len), 0);
  ck_assert_str_eq(jwt_get_grant(j, "sub"), B.uid);
  jwt_free(j);
  expect_reject_free(t, SECCHAT_TOKEN_R_DUPLICATE);
  /* Duplicate exp (string then int: libjwt would read the int). */
  snprintf(dup, strlen(p) + 100, "%.*s,\"exp\":1800000100}", (int)strlen(p) - 1, p);
  expect_reject_free(forge(STD_HEADER, dup, SIGN_ES256, NULL), SECCHAT_TOKEN_R_DUPLICATE);
  free(dup);
  free(p);
  /* Duplicate alg, in both orders. */
  expect_reject_free(forge_claims(&A, "{\"alg\":\"none\",\"alg\":\"ES256\"}", SIGN_ES256, NULL),
                     SECCHAT_TOKEN_R_DUPLICATE);
  expect_reject_free(forge_claims(&A, "{\"alg\":\"ES256\",\"alg\":\"HS256\"}", SIGN_ES256, NULL),
                     SECCHAT_TOKEN_R_DUPLICATE);
  expect_reject_free(forge_claims(&A, "{\"alg\":\"ES256\",\"typ\":\"JWT\",\"typ\":\"JWT\"}",
                                  SIGN_ES256, NULL),
                     SECCHAT_TOKEN_R_DUPLICATE);
}
END_TEST

/* ---- B12: embedded keys ------------------------------------------------------------------ */

START_TEST(b12_embedded_keys)
{
  char b[200];
  /* Wrong lengths. */
  b64u(b + 1, sizeof b - 1, A.pk, 31);
  b[0] = '"';
  strcat(b, "\"");
  const char *ov1[] = {"sig_pk", b, NULL};
  expect_reject_free(forge_claims(&A, NULL, SIGN_ES256, ov1), SECCHAT_TOKEN_R_KEY_ENCODING);
  const char *ov2[] = {"dh_pk", b, NULL};
  expect_reject_free(forge_claims(&A, NULL, SIGN_ES256, ov2), SECCHAT_TOKEN_R_KEY_ENCODING);
  const char *ov3[] = {"dh_sig", b, NULL};
  expect_reject_free(forge_claims(&A, NULL, SIGN_ES256, ov3), SECCHAT_TOKEN_R_KEY_ENCODING);
  const char *ov4[] = {"sig_pk", "\"not base64!\"", NULL};
  expect_reject_free(forge_claims(&A, NULL, SIGN_ES256, ov4), SECCHAT_TOKEN_R_KEY_ENCODING);
  /* Padded base64 of the right key. */
  sodium_bin2base64(b + 1, sizeof b - 1, A.pk, 32, sodium_base64_VARIANT_URLSAFE);
  strcat(b, "\"");
  const char *ov5[] = {"sig_pk", b, NULL};
  expect_reject_free(forge_claims(&A, NULL, SIGN_ES256, ov5), SECCHAT_TOKEN_R_KEY_ENCODING);

  /* Identity Ed25519 key (01 00 .. 00), with a matching sub. */
  ident E = A;
  memset(E.pk, 0, 32);
  E.pk[0] = 1;
  uint8_t uid[20];
  sc_uid_from_sign_pk(uid, E.pk);
  sc_base32_encode(E.uid, sizeof E.uid, uid, 20);
  expect_reject_free(forge_claims(&E, NULL, SIGN_ES256, NULL), SECCHAT_TOKEN_R_SIGN_PK);
  /* Non-canonical encoding (y = p) and a torsioned key (A + a point of
   * order 8, on the curve but outside the prime-order subgroup): the
   * failing dh_sig check names the key as the reason. */
  ident N = A;
  memset(N.pk, 0xff, 32);
  N.pk[0] = 0xed;
  N.pk[31] = 0x7f;
  sc_uid_from_sign_pk(uid, N.pk);
  sc_base32_encode(N.uid, sizeof N.uid, uid, 20);
  expect_reject_free(forge_claims(&N, NULL, SIGN_ES256, NULL), SECCHAT_TOKEN_R_SIGN_PK);
  ident T = A;
  torsion(&T);
  expect_reject_free(forge_claims(&T, NULL, SIGN_ES256, NULL), SECCHAT_TOKEN_R_SIGN_PK);
  /* Documented (docs/tokens.md section 5, step 9): a torsioned key whose
   * dh_sig does verify passes verification (the issuer refuses it at
   * registration, see registration_checks); its owner gains only another
   * uid for its own secret. */
  ident TV = A;
  torsion_with_valid_dh_sig(&TV);
  char *tv = forge_claims(&TV, NULL, SIGN_ES256, NULL);
  secchat_token_claims tvc;
  int tvr = -1;
  ck_assert_int_eq(secchat_token_verify(V, tv, strlen(tv), NOW, &tvc, &tvr), SECCHAT_OK);
  ck_assert_mem_eq(tvc.sig_pk, TV.pk, 32);
  free(tv);
  /* Low-order X25519 keys: 0 and the order-8 point. */
  ident L = A;
  memset(L.dh_pk, 0, 32);
  expect_reject_free(forge_claims(&L, NULL, SIGN_ES256, NULL), SECCHAT_TOKEN_R_DH_PK);
  ck_assert_int_eq(tu_unhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
                            L.dh_pk, 32), 32);
  expect_reject_free(forge_claims(&L, NULL, SIGN_ES256, NULL), SECCHAT_TOKEN_R_DH_PK);

  /* sub not matching the key: B's uid on A's keys; uppercase; padded. */
  ident S = A;
  memcpy(S.uid, B.uid, sizeof S.uid);
  expect_reject_free(forge_claims(&S, NULL, SIGN_ES256, NULL), SECCHAT_TOKEN_R_SUB);
  memcpy(S.uid, A.uid, sizeof S.uid);
  char *letter = S.uid;
  while (*letter < 'a')
    letter++;
  *letter = (char)(*letter - 'a' + 'A');
  expect_reject_free(forge_claims(&S, NULL, SIGN_ES256, NULL), SECCHAT_TOKEN_R_SUB);

  /* dh_sig by another key, over another key, or bit-flipped. */
  ident D = A;
  ck_assert_int_eq(sc_sign_ctx(D.dh_sig, SC_CTX_DH, D.dh_pk, 32, B.sk), 0);
  expect_reject_free(forge_claims(&D, NULL, SIGN_ES256, NULL), SECCHAT_TOKEN_R_DH_SIG);
  D = A;
  memcpy(D.dh_pk, B.dh_pk, 32);
  expect_reject_free(forge_claims(&D, NULL, SIGN_ES256, NULL), SECCHAT_TOKEN_R_DH_SIG);
  D = A;
  D.dh_sig[5] ^= 1;
  expect_reject_free(forge_claims(&D, NULL, SIGN_ES256, NULL), SECCHAT_TOKEN_R_DH_SIG);
  /* The same signature made with another context string. */
  D = A;
  ck_assert_int_eq(sc_sign_ctx(D.dh_sig, SC_CTX_AUTH, D.dh_pk, 32, A.sk), 0);
  expect_reject_free(forge_claims(&D, NULL, SIGN_ES256, NULL), SECCHAT_TOKEN_R_DH_SIG);

  /* Bad names inside a signed token; bad jti. */
  const char *ov6[] = {"name", "\" alice\"", NULL};
  expect_reject_free(forge_claims(&A, NULL, SIGN_ES256, ov6), SECCHAT_TOKEN_R_NAME);
  const char *ov7[] = {"name", "\"al\\u202eice\"", NULL};
  expect_reject_free(forge_claims(&A, NULL, SIGN_ES256, ov7), SECCHAT_TOKEN_R_NAME);
  const char *ov8[] = {"jti", "\"AAAA\"", NULL};
  expect_reject_free(forge_claims(&A, NULL, SIGN_ES256, ov8), SECCHAT_TOKEN_R_CLAIM_RANGE);
  const char *ov9[] = {"name", "\"a\\u0000b\"", NULL};
  expect_reject_free(forge_claims(&A, NULL, SIGN_ES256, ov9), SECCHAT_TOKEN_R_PAYLOAD_JSON);
}
END_TEST

/* ---- Registration -------------------------------------------------------------------------- */

START_TEST(registration_checks)
{
  char tok[TOKCAP];
  int reason = -1;
  uint8_t proof[64];
#define REG(name_, id_, proof_, hh_, rs_)                                                     \
  secchat_token_issue(g_key, ISS, name_, strlen(name_), (id_)->pk, (id_)->dh_pk,             \
                      (id_)->dh_sig, proof_, hh_, rs_, NOW, 0, tok, sizeof tok, NULL, &reason)

  ck_assert_int_eq(sc_token_sign_registration(proof, A.sk, HH, "alice", 5, A.pk, A.dh_pk), 0);
  ck_assert_int_eq(REG("alice", &A, proof, HH, A.dh_pk), 0);
  ck_assert_int_eq(reason, 0);
  /* dh_pk differs from the Noise remote static. */
  ck_assert_int_eq(REG("alice", &A, proof, HH, B.dh_pk), SECCHAT_ERR_AUTH);
  ck_assert_int_eq(reason, SECCHAT_TOKEN_R_CHANNEL);
  /* Proof made for another handshake (replayed). */
  ck_assert_int_eq(REG("alice", &A, proof, HH2, A.dh_pk), SECCHAT_ERR_AUTH);
  ck_assert_int_eq(reason, SECCHAT_TOKEN_R_PROOF);
  /* Proof for another name. */
  ck_assert_int_eq(REG("alicf", &A, proof, HH, A.dh_pk), SECCHAT_ERR_AUTH);
  ck_assert_int_eq(reason, SECCHAT_TOKEN_R_PROOF);
  /* Proof with the wrong key: Eve registers Alice's public keys. */
  ident Eve = A;
  ck_assert_int_eq(sc_token_sign_registration(proof, B.sk, HH, "alice", 5, A.pk, A.dh_pk), 0);
  ck_assert_int_eq(REG("alice", &Eve, proof, HH, A.dh_pk), SECCHAT_ERR_AUTH);
  ck_assert_int_eq(reason, SECCHAT_TOKEN_R_PROOF);
  /* A login proof is not a registration proof (contexts). */
  ck_assert_int_eq(sc_token_sign_login(proof, A.sk, HH), 0);
  ck_assert_int_eq(REG("alice", &A, proof, HH, A.dh_pk), SECCHAT_ERR_AUTH);
  ck_assert_int_eq(reason, SECCHAT_TOKEN_R_PROOF);
  /* Bad keys. */
  ident L = A;
  memset(L.dh_pk, 0, 32);
  ck_assert_int_eq(REG("alice", &L, proof, HH, L.dh_pk), SECCHAT_ERR_AUTH);
  ck_assert_int_eq(reason, SECCHAT_TOKEN_R_DH_PK);
  ident I = A;
  memset(I.pk, 0, 32);
  I.pk[0] = 1;
  ck_assert_int_eq(REG("alice", &I, proof, HH, I.dh_pk), SECCHAT_ERR_AUTH);
  ck_assert_int_eq(reason, SECCHAT_TOKEN_R_SIGN_PK);
  /* A torsioned key is refused at registration even with a dh_sig that
   * verifies under it (verification relies on this check). */
  ident TV = A;
  torsion_with_valid_dh_sig(&TV);
  ck_assert_int_eq(REG("alice", &TV, proof, HH, TV.dh_pk), SECCHAT_ERR_AUTH);
  ck_assert_int_eq(reason, SECCHAT_TOKEN_R_SIGN_PK);
  ident D = A;
  D.dh_sig[0] ^= 1;
  ck_assert_int_eq(REG("alice", &D, proof, HH, D.dh_pk), SECCHAT_ERR_AUTH);
  ck_assert_int_eq(reason, SECCHAT_TOKEN_R_DH_SIG);
  /* Bad name. */
  ck_assert_int_eq(REG("al\x1b[2Jice", &A, proof, HH, A.dh_pk), SECCHAT_ERR_AUTH);
  ck_assert_int_eq(reason, SECCHAT_TOKEN_R_NAME);
  /* The registration message layout (docs/tokens.md). */
  uint8_t msg[SC_TOKEN_REG_MSG_MAX];
  size_t n = sc_token_registration_msg(msg, HH, "bob", 3, A.pk, A.dh_pk);
  ck_assert_uint_eq(n, 32 + 2 + 3 + 32 + 32);
  ck_assert_mem_eq(msg, HH, 32);
  ck_assert_uint_eq(msg[32], 0);
  ck_assert_uint_eq(msg[33], 3);
  ck_assert_mem_eq(msg + 34, "bob", 3);
  ck_assert_mem_eq(msg + 37, A.pk, 32);
  ck_assert_mem_eq(msg + 69, A.dh_pk, 32);
  /* The proof is a plain Ed25519 signature over ctx || 0 || msg. */
  uint8_t signed_bytes[256];
  size_t cl = strlen(SC_CTX_REGISTER);
  memcpy(signed_bytes, SC_CTX_REGISTER, cl);
  signed_bytes[cl] = 0;
  memcpy(signed_bytes + cl + 1, msg, n);
  ck_assert_int_eq(sc_token_sign_registration(proof, A.sk, HH, "bob", 3, A.pk, A.dh_pk), 0);
  ck_assert_int_eq(crypto_sign_verify_detached(proof, signed_bytes, cl + 1 + n, A.pk), 0);
#undef REG
}
END_TEST

/* ---- B11: login proofs ----------------------------------------------------------------------- */

START_TEST(b11_login)
{
  char tok[TOKCAP];
  ck_assert_int_eq(issue(&A, "alice", NOW, 0, tok, NULL), 0);
  size_t n = strlen(tok);
  uint8_t proof[64];
  secchat_token_claims c;
  int reason = -1;
  ck_assert_int_eq(sc_token_sign_login(proof, A.sk, HH), 0);
  ck_assert_int_eq(secchat_token_verify_login(V, tok, n, proof, HH, A.dh_pk, NOW, &c, &reason), 0);
  ck_assert_str_eq(c.uid_str, A.uid);
  /* No proof (zeros). */
  uint8_t zero[64] = {0};
  ck_assert_int_eq(secchat_token_verify_login(V, tok, n, zero, HH, A.dh_pk, NOW, &c, &reason),
                   SECCHAT_ERR_AUTH);
  ck_assert_int_eq(reason, SECCHAT_TOKEN_R_PROOF);
  /* Proof replayed on another handshake (other connection, other server). */
  ck_assert_int_eq(secchat_token_verify_login(V, tok, n, proof, HH2, A.dh_pk, NOW, &c, &reason),
                   SECCHAT_ERR_AUTH);
  ck_assert_int_eq(reason, SECCHAT_TOKEN_R_PROOF);
  /* Proof with the wrong key (a thief with the token but not the key). */
  ck_assert_int_eq(sc_token_sign_login(proof, B.sk, HH), 0);
  ck_assert_int_eq(secchat_token_verify_login(V, tok, n, proof, HH, A.dh_pk, NOW, &c, &reason),
                   SECCHAT_ERR_AUTH);
  ck_assert_int_eq(reason, SECCHAT_TOKEN_R_PROOF);
  /* A renewal proof is not a login proof. */
  ck_assert_int_eq(sc_token_sign_renew(proof, A.sk, HH), 0);
  ck_assert_int_eq(secchat_token_verify_login(V, tok, n, proof, HH, A.dh_pk, NOW, &c, &reason),
                   SECCHAT_ERR_AUTH);
  ck_assert_int_eq(reason, SECCHAT_TOKEN_R_PROOF);
  /* Channel binding: a Noise session with another static key. */
  ck_assert_int_eq(sc_token_sign_login(proof, A.sk, HH), 0);
  ck_assert_int_eq(secchat_token_verify_login(V, tok, n, proof, HH, B.dh_pk, NOW, &c, &reason),
                   SECCHAT_ERR_AUTH);
  ck_assert_int_eq(reason, SECCHAT_TOKEN_R_CHANNEL);
  /* Bad token: its reason comes through. */
  ck_assert_int_eq(secchat_token_verify_login(V, tok, n - 1, proof, HH, A.dh_pk, NOW, &c, &reason),
                   SECCHAT_ERR_AUTH);
  ck_assert_int_eq(reason, SECCHAT_TOKEN_R_SIGNATURE);
}
END_TEST

/* The public proof helpers over a secchat_identity: the full client path
 * (register, login, renew) through the public API only. */
START_TEST(identity_proofs_end_to_end)
{
  secchat_identity *id = NULL;
  ck_assert_int_eq(secchat_identity_new(&id), 0);
  const uint8_t *pk = secchat_identity_sign_public_key(id);
  const uint8_t *dpk = secchat_identity_dh_public_key(id);
  uint8_t proof[64];
  char tok[TOKCAP], fresh[TOKCAP];
  int reason = -1;
  ck_assert_int_eq(secchat_token_registration_proof(id, "carol", 5, HH, proof), 0);
  ck_assert_int_eq(secchat_token_issue(g_key, ISS, "carol", 5, pk, dpk,
                                       secchat_identity_dh_sig(id), proof, HH, dpk, NOW, 0, tok,
                                       sizeof tok, NULL, &reason), 0);
  ck_assert_int_eq(secchat_token_login_proof(id, HH2, proof), 0);
  secchat_token_claims c;
  ck_assert_int_eq(secchat_token_verify_login(V, tok, strlen(tok), proof, HH2, dpk, NOW, &c,
                                              &reason), 0);
  ck_assert_mem_eq(c.uid, secchat_identity_uid(id), 20);
  char uid_s[SECCHAT_UID_STRING_BYTES];
  ck_assert_int_ge(secchat_identity_uid_string(id, uid_s, sizeof uid_s), 0);
  ck_assert_str_eq(c.uid_str, uid_s);
  ck_assert_int_eq(secchat_token_renew_proof(id, HH, proof), 0);
  ck_assert_int_eq(secchat_token_renew(g_key, V, tok, strlen(tok), proof, HH, dpk, NOW + 10, 0,
                                       0, fresh, sizeof fresh, NULL, &reason), 0);
  /* The login proof is refused for renewal and vice versa. */
  ck_assert_int_eq(secchat_token_login_proof(id, HH, proof), 0);
  ck_assert_int_eq(secchat_token_renew(g_key, V, tok, strlen(tok), proof, HH, dpk, NOW + 10, 0,
                                       0, fresh, sizeof fresh, NULL, &reason), SECCHAT_ERR_AUTH);
  ck_assert_int_eq(reason, SECCHAT_TOKEN_R_PROOF);
  ck_assert_int_eq(secchat_token_registration_proof(id, " x", 2, HH, proof),
                   SECCHAT_ERR_INVALID_ARGUMENT);
  secchat_identity_free(id);
}
END_TEST

/* ---- Peer check and renewal ------------------------------------------------------------------------ */

START_TEST(peer_check)
{
  char tok[TOKCAP];
  ck_assert_int_eq(issue(&B, "bob", NOW, 0, tok, NULL), 0);
  secchat_token_claims c;
  int reason = -1;
  uint8_t uid[20];
  sc_uid_from_sign_pk(uid, B.pk);
  ck_assert_int_eq(secchat_token_check_peer(V, tok, strlen(tok), uid, NOW, &c, &reason), 0);
  ck_assert_str_eq(c.name, "bob");
  ck_assert_int_eq(secchat_token_check_peer(V, tok, strlen(tok), NULL, NOW, &c, &reason), 0);
  sc_uid_from_sign_pk(uid, A.pk);
  ck_assert_int_eq(secchat_token_check_peer(V, tok, strlen(tok), uid, NOW, &c, &reason),
                   SECCHAT_ERR_AUTH);
  ck_assert_int_eq(reason, SECCHAT_TOKEN_R_UID);
  /* A client pinned another server key. */
  secchat_server_key *k2 = NULL;
  char pub2[SECCHAT_TOKEN_KEY_PEM_MAX];
  size_t n2;
  ck_assert_int_eq(secchat_server_key_generate(&k2), 0);
  ck_assert_int_eq(secchat_server_key_public_pem(k2, pub2, sizeof pub2, &n2), 0);
  secchat_token_verifier *v2 = NULL;
  ck_assert_int_eq(secchat_token_verifier_new(&v2, pub2, n2, ISS, 0), 0);
  ck_assert_int_eq(secchat_token_check_peer(v2, tok, strlen(tok), NULL, NOW, &c, &reason),
                   SECCHAT_ERR_AUTH);
  ck_assert_int_eq(reason, SECCHAT_TOKEN_R_SIGNATURE);
  secchat_token_verifier_free(v2);
  secchat_server_key_free(k2);
}
END_TEST

START_TEST(renewal)
{
  char tok[TOKCAP], fresh[TOKCAP];
  ck_assert_int_eq(issue(&A, "alice", NOW, 3600, tok, NULL), 0);
  size_t n = strlen(tok), fn = 0;
  uint8_t proof[64];
  int reason = -1;
  secchat_token_claims old, c;
  ck_assert_int_eq(secchat_token_verify(V, tok, n, NOW, &old, NULL), 0);
  ck_assert_int_eq(sc_token_sign_renew(proof, A.sk, HH2), 0);
  /* Valid token, fresh proof, later time. */
  int64_t later = NOW + 1800;
  ck_assert_int_eq(secchat_token_renew(g_key, V, tok, n, proof, HH2, A.dh_pk, later, 0, 0, fresh,
                                       sizeof fresh, &fn, &reason), 0);
  ck_assert_int_eq(reason, 0);
  ck_assert_uint_eq(fn, strlen(fresh));
  ck_assert_int_eq(secchat_token_verify(V, fresh, fn, later, &c, NULL), 0);
  ck_assert_str_eq(c.name, old.name);
  ck_assert_mem_eq(c.sig_pk, old.sig_pk, 32);
  ck_assert_mem_eq(c.dh_pk, old.dh_pk, 32);
  ck_assert_mem_eq(c.dh_sig, old.dh_sig, 64);
  ck_assert_str_eq(c.uid_str, old.uid_str);
  ck_assert_int_eq(c.iat, later);
  ck_assert_int_eq(c.exp, later + SECCHAT_TOKEN_TTL_DEFAULT);
  ck_assert_mem_ne(c.jti, old.jti, 16);
  /* Expired within the grace: renewed. Beyond: refused (AUTH, reason EXPIRED). */
  int64_t late = NOW + 3600 + SECCHAT_TOKEN_LEEWAY + 30;
  ck_assert_int_eq(secchat_token_renew(g_key, V, tok, n, proof, HH2, A.dh_pk, late, 60, 0, fresh,
                                       sizeof fresh, NULL, &reason), 0);
  ck_assert_int_eq(secchat_token_verify(V, fresh, strlen(fresh), late, NULL, NULL), 0);
  ck_assert_int_eq(secchat_token_renew(g_key, V, tok, n, proof, HH2, A.dh_pk, late, 10, 0, fresh,
                                       sizeof fresh, NULL, &reason), SECCHAT_ERR_AUTH);
  ck_assert_int_eq(reason, SECCHAT_TOKEN_R_EXPIRED);
  /* Wrong proofs and channel. */
  ck_assert_int_eq(secchat_token_renew(g_key, V, tok, n, proof, HH, A.dh_pk, later, 0, 0, fresh,
                                       sizeof fresh, NULL, &reason), SECCHAT_ERR_AUTH);
  ck_assert_int_eq(reason, SECCHAT_TOKEN_R_PROOF);
  ck_assert_int_eq(sc_token_sign_login(proof, A.sk, HH2), 0);
  ck_assert_int_eq(secchat_token_renew(g_key, V, tok, n, proof, HH2, A.dh_pk, later, 0, 0, fresh,
                                       sizeof fresh, NULL, &reason), SECCHAT_ERR_AUTH);
  ck_assert_int_eq(reason, SECCHAT_TOKEN_R_PROOF);
  ck_assert_int_eq(sc_token_sign_renew(proof, A.sk, HH2), 0);
  ck_assert_int_eq(secchat_token_renew(g_key, V, tok, n, proof, HH2, B.dh_pk, later, 0, 0, fresh,
                                       sizeof fresh, NULL, &reason), SECCHAT_ERR_AUTH);
  ck_assert_int_eq(reason, SECCHAT_TOKEN_R_CHANNEL);
  /* A forged token cannot be renewed into a real one. */
  char *f = forge_claims(&A, "{\"alg\":\"HS256\"}", SIGN_HS256_PEM, NULL);
  ck_assert_int_eq(secchat_token_renew(g_key, V, f, strlen(f), proof, HH2, A.dh_pk, later, 0, 0,
                                       fresh, sizeof fresh, NULL, &reason), SECCHAT_ERR_AUTH);
  ck_assert_int_eq(reason, SECCHAT_TOKEN_R_ALG);
  free(f);
  /* Key and verifier must match. */
  secchat_server_key *k2 = NULL;
  ck_assert_int_eq(secchat_server_key_generate(&k2), 0);
  ck_assert_int_eq(secchat_token_renew(k2, V, tok, n, proof, HH2, A.dh_pk, later, 0, 0, fresh,
                                       sizeof fresh, NULL, &reason), SECCHAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(reason, SECCHAT_TOKEN_R_KEY_MISMATCH);
  secchat_server_key_free(k2);
  ck_assert_int_eq(secchat_token_renew(g_key, V, tok, n, proof, HH2, A.dh_pk, later, -1, 0, fresh,
                                       sizeof fresh, NULL, &reason), SECCHAT_ERR_INVALID_ARGUMENT);
}
END_TEST

/* ---- Cache ---------------------------------------------------------------------------------------- */

START_TEST(cache_semantics)
{
  char tok[TOKCAP];
  ck_assert_int_eq(issue(&A, "alice", NOW, 0, tok, NULL), 0);
  uint64_t hits, misses, entries;
  secchat_token_verifier_cache_stats(V, &hits, &misses, &entries);
  ck_assert_uint_eq(hits + misses + entries, 0);
  secchat_token_claims c1, c2;
  ck_assert_int_eq(secchat_token_verify(V, tok, strlen(tok), NOW, &c1, NULL), 0);
  ck_assert_int_eq(secchat_token_verify(V, tok, strlen(tok), NOW + 10, &c2, NULL), 0);
  secchat_token_verifier_cache_stats(V, &hits, &misses, &entries);
  ck_assert_uint_eq(hits, 1);
  ck_assert_uint_eq(misses, 1);
  ck_assert_uint_eq(entries, 1);
  ck_assert_mem_eq(&c1, &c2, sizeof c1);
  /* A prefix or one-byte change is a miss and a failure. */
  ck_assert_int_eq(secchat_token_verify(V, tok, strlen(tok) - 1, NOW, NULL, NULL),
                   SECCHAT_ERR_AUTH);
  /* Bounded: a small cache never holds more than its capacity. */
  secchat_token_verifier *small = new_verifier(8);
  for (int i = 0; i < 20; i++) {
    ident X;
    make_ident(&X, (uint8_t)(10 + i));
    ck_assert_int_eq(issue(&X, "x", NOW, 0, tok, NULL), 0);
    ck_assert_int_eq(secchat_token_verify(small, tok, strlen(tok), NOW, NULL, NULL), 0);
    secchat_token_verifier_cache_stats(small, NULL, NULL, &entries);
    ck_assert_uint_le(entries, 8);
  }
  ck_assert_uint_ge(entries, 4);
  /* The most recent token is still cached. */
  secchat_token_verifier_cache_stats(small, &hits, NULL, NULL);
  ck_assert_int_eq(secchat_token_verify(small, tok, strlen(tok), NOW, NULL, NULL), 0);
  uint64_t hits2;
  secchat_token_verifier_cache_stats(small, &hits2, NULL, NULL);
  ck_assert_uint_eq(hits2, hits + 1);
  secchat_token_verifier_free(small);
  /* No cache at all. */
  secchat_token_verifier *none = new_verifier(0);
  ck_assert_int_eq(secchat_token_verify(none, tok, strlen(tok), NOW, NULL, NULL), 0);
  ck_assert_int_eq(secchat_token_verify(none, tok, strlen(tok), NOW, NULL, NULL), 0);
  secchat_token_verifier_cache_stats(none, &hits, &misses, &entries);
  ck_assert_uint_eq(hits + misses + entries, 0);
  secchat_token_verifier_free(none);
}
END_TEST

START_TEST(tokcache_lru)
{
  sc_tokcache *c = NULL;
  ck_assert_int_eq(sc_tokcache_new(&c, 0), SECCHAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(sc_tokcache_new(&c, 4), 0); /* one set of 4 ways */
  secchat_token_claims cl, out;
  memset(&cl, 0, sizeof cl);
  uint8_t h[6][32];
  for (int i = 0; i < 6; i++) {
    sc_tokcache_hash(c, (const char *)&i, sizeof i, h[i]);
  }
  for (int i = 0; i < 4; i++) {
    cl.iat = i;
    sc_tokcache_insert(c, h[i], &cl);
  }
  ck_assert_int_eq(sc_tokcache_lookup(c, h[0], &out), 1); /* 0 becomes most recent */
  ck_assert_int_eq(out.iat, 0);
  cl.iat = 4;
  sc_tokcache_insert(c, h[4], &cl); /* evicts 1, the least recent */
  ck_assert_int_eq(sc_tokcache_lookup(c, h[1], &out), 0);
  ck_assert_int_eq(sc_tokcache_lookup(c, h[0], &out), 1);
  ck_assert_int_eq(sc_tokcache_lookup(c, h[4], &out), 1);
  ck_assert_int_eq(out.iat, 4);
  sc_tokcache_remove(c, h[4]);
  ck_assert_int_eq(sc_tokcache_lookup(c, h[4], &out), 0);
  sc_tokcache_stats st;
  sc_tokcache_get_stats(c, &st);
  ck_assert_uint_eq(st.entries, 3);
  ck_assert_uint_eq(st.evictions, 1);
  ck_assert_uint_eq(st.capacity, 4);
  sc_tokcache_free(c);
  sc_tokcache_free(NULL);
}
END_TEST

/* ---- Names ------------------------------------------------------------------------------------------ */

START_TEST(name_rules)
{
  const char *good[] = {"a", "alice", "Alice Smith", "\xc3\xa9lodie", "\xe6\x97\xa5\xe6\x9c\xac",
                        "a b c", "x-y_z.1", "\xf0\x9f\x98\x80", "12345678901234567890123456789012"};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
    ck_assert_msg(secchat_name_check(good[i], strlen(good[i])) == 0, "good %zu", i);
  struct { const char *s; size_t len; } bad[] = {
    {"", 0},
    {"123456789012345678901234567890123", 33},  /* 33 characters */
    {" alice", 6}, {"alice ", 6}, {" ", 1},
    {"al\nice", 6}, {"al\x1b[2J", 6}, {"a\x7f", 2}, {"a\xc2\x85", 3}, /* C0, DEL, C1 */
    {"a\0b", 3},
    {"a\xe2\x80\xae", 4}, {"a\xe2\x80\x8f", 4}, {"a\xe2\x81\xa6", 4}, {"a\xd8\x9c", 3}, /* bidi */
    {"a\xe2\x80\x8b", 4}, {"a\xef\xbb\xbf", 4},            /* ZWSP, BOM */
    {"a\xc2\xa0", 3}, {"a\xe3\x80\x80" "b", 4},            /* NBSP, ideographic space */
    {"e\xcc\x81", 3},                                      /* decomposed e + acute */
    {"\xe2\x84\xab", 3},                                   /* angstrom sign (not NFC) */
    {"a\xee\x80\x80", 4},                                  /* private use */
    {"\xc0\xaf", 2}, {"\xe0\x80\xaf", 3}, {"\xed\xa0\x80", 3}, {"\xf4\x90\x80\x80", 4},
    {"\xc3", 1}, {"\x80", 1}, {"\xff", 1},                 /* malformed UTF-8 */
    {"a\xef\xbf\xbe", 4},                                  /* noncharacter */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_msg(secchat_name_check(bad[i].s, bad[i].len) == SECCHAT_ERR_INVALID_ARGUMENT,
                  "bad %zu", i);
  /* 32 four-byte characters = 128 bytes: allowed; 129 bytes: not. */
  char big[140] = {0};
  for (int i = 0; i < 32; i++)
    memcpy(big + 4 * i, "\xf0\x9f\x98\x80", 4);
  ck_assert_int_eq(secchat_name_check(big, 128), 0);
  memcpy(big + 128, "a", 2);
  ck_assert_int_eq(secchat_name_check(big, 129), SECCHAT_ERR_INVALID_ARGUMENT);
}
END_TEST

/* ---- base32 ------------------------------------------------------------------------------------------ */

START_TEST(base32_rfc4648)
{
  /* RFC 4648 section 10 vectors, lowercased, padding removed. */
  const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
  const char *out[] = {"", "my", "mzxq", "mzxw6", "mzxw6yq", "mzxw6ytb", "mzxw6ytboi"};
  char buf[32];
  uint8_t dec[32];
  for (int i = 0; i < 7; i++) {
    ck_assert_int_eq(sc_base32_encode(buf, sizeof buf, (const uint8_t *)in[i], strlen(in[i])),
                     (int)strlen(out[i]));
    ck_assert_str_eq(buf, out[i]);
    ck_assert_int_eq(sc_base32_decode(dec, sizeof dec, out[i], strlen(out[i])), (int)strlen(in[i]));
    ck_assert_mem_eq(dec, in[i], strlen(in[i]));
  }
  ck_assert_int_eq(sc_base32_decode(dec, sizeof dec, "MY", 2), SECCHAT_ERR_PROTOCOL);
  ck_assert_int_eq(sc_base32_decode(dec, sizeof dec, "my======", 8), SECCHAT_ERR_PROTOCOL);
  ck_assert_int_eq(sc_base32_decode(dec, sizeof dec, "mz", 2), SECCHAT_ERR_PROTOCOL);
  ck_assert_int_eq(sc_base32_decode(dec, sizeof dec, "m", 1), SECCHAT_ERR_PROTOCOL);
  ck_assert_int_eq(sc_base32_decode(dec, sizeof dec, "my1", 3), SECCHAT_ERR_PROTOCOL);
  ck_assert_int_eq(sc_base32_decode(dec, 0, "my", 2), SECCHAT_ERR_BUFFER_TOO_SMALL);
  ck_assert_int_eq(sc_base32_encode(buf, 2, (const uint8_t *)"f", 1), SECCHAT_ERR_BUFFER_TOO_SMALL);
  /* A uid is 32 characters. */
  uint8_t uid[20];
  memset(uid, 0xff, sizeof uid);
  char s[33];
  ck_assert_int_eq(sc_base32_encode(s, sizeof s, uid, 20), 32);
  ck_assert_str_eq(s, "77777777777777777777777777777777");
}
END_TEST

START_TEST(reason_strings)
{
  for (int r = 0; r <= SECCHAT_TOKEN_R_INTERNAL; r++)
    ck_assert_str_ne(secchat_token_reason_string(r), "unknown reason");
  ck_assert_str_eq(secchat_token_reason_string(-1), "unknown reason");
  ck_assert_str_eq(secchat_token_reason_string(SECCHAT_TOKEN_R_INTERNAL + 1), "unknown reason");
}
END_TEST

static Suite *token_suite(void)
{
  Suite *s = suite_create("token");
  TCase *k = tcase_create("key");
  tcase_add_unchecked_fixture(k, suite_setup, suite_teardown);
  tcase_add_checked_fixture(k, test_setup, test_teardown);
  tcase_add_test(k, server_key_pem_roundtrip);
  tcase_add_test(k, server_key_rejects_bad_pem);
  tcase_add_test(k, name_rules);
  tcase_add_test(k, base32_rfc4648);
  tcase_add_test(k, reason_strings);
  tcase_add_test(k, tokcache_lru);
  suite_add_tcase(s, k);

  TCase *t = tcase_create("verify");
  tcase_set_timeout(t, 120);
  tcase_add_unchecked_fixture(t, suite_setup, suite_teardown);
  tcase_add_checked_fixture(t, verifier_setup, verifier_teardown);
  tcase_add_test(t, issue_and_verify);
  tcase_add_test(t, independent_es256_token_accepted);
  tcase_add_test(t, b1_alg_none);
  tcase_add_test(t, b2_signatures);
  tcase_add_test(t, b4_hs256_with_public_pem);
  tcase_add_test(t, b5_header_fields);
  tcase_add_test(t, b6_time_claims);
  tcase_add_test(t, b6_cached_clock_checks);
  tcase_add_test(t, b7_wrong_issuer);
  tcase_add_test(t, b8_oversized);
  tcase_add_test(t, b9_structure);
  tcase_add_test(t, b10_duplicates);
  tcase_add_test(t, b12_embedded_keys);
  tcase_add_test(t, registration_checks);
  tcase_add_test(t, b11_login);
  tcase_add_test(t, identity_proofs_end_to_end);
  tcase_add_test(t, peer_check);
  tcase_add_test(t, renewal);
  tcase_add_test(t, cache_semantics);
  suite_add_tcase(s, t);
  return s;
}

int main(void) { return tu_run(token_suite()); }
