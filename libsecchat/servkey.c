/* servkey.c: the ES256 server token key with OpenSSL 3 EVP_PKEY (see
 * servkey.h and include/secchat/token.h). The deprecated EC_KEY_* API is
 * not used. */
#include "servkey.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sodium.h>

#include "crypto.h"

struct secchat_server_key {
  EVP_PKEY *pkey;
  char *priv_pem; /* sodium_malloc'd, NUL-terminated */
  size_t priv_len;
  char *pub_pem; /* malloc'd, NUL-terminated */
  size_t pub_len;
  uint8_t fp[SECCHAT_TOKEN_KEY_FINGERPRINT_BYTES];
};

/* Never prompt for a passphrase (OpenSSL's default callback reads the
 * terminal): an encrypted PEM simply fails to load. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
  (void)buf; (void)size; (void)rwflag; (void)u;
  return 0;
}

static int is_p256(EVP_PKEY *pkey)
{
  char group[64];
  size_t glen = 0;
  if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_EC)
    return 0;
  if (!EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                      &glen))
    return 0;
  return strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0;
}

/* Copy the contents of a memory BIO into a NUL-terminated buffer from
 * alloc_fn (malloc or sodium_malloc). */
static char *bio_to_string(BIO *bio, void *(*alloc_fn)(size_t), size_t *len)
{
  char *data = NULL;
  long n = BIO_get_mem_data(bio, &data);
  if (n <= 0 || (size_t)n >= SECCHAT_TOKEN_KEY_PEM_MAX)
    return NULL;
  char *s = alloc_fn((size_t)n + 1);
  if (!s)
    return NULL;
  memcpy(s, data, (size_t)n);
  s[n] = 0;
  *len = (size_t)n;
  return s;
}

static int public_pem_of(EVP_PKEY *pkey, char **out, size_t *len)
{
  BIO *bio = BIO_new(BIO_s_mem());
  if (!bio)
    return SECCHAT_ERR_NOMEM;
  int rc = SECCHAT_ERR_INTERNAL;
  if (PEM_write_bio_PUBKEY(bio, pkey) == 1) {
    *out = bio_to_string(bio, malloc, len);
    rc = *out ? 0 : SECCHAT_ERR_NOMEM;
  }
  BIO_free(bio);
  return rc;
}

static int fingerprint_of(EVP_PKEY *pkey, uint8_t fp[SECCHAT_TOKEN_KEY_FINGERPRINT_BYTES])
{
  unsigned char *der = NULL;
  int n = i2d_PUBKEY(pkey, &der);
  if (n <= 0)
    return SECCHAT_ERR_INTERNAL;
  crypto_generichash(fp, SECCHAT_TOKEN_KEY_FINGERPRINT_BYTES, der, (size_t)n, NULL, 0);
  OPENSSL_free(der);
  return 0;
}

/* Fill the PEM texts and fingerprint of a key that holds pkey. */
static int finish_key(secchat_server_key *k)
{
  /* The secure-memory BIO clears its buffer when freed. */
  BIO *bio = BIO_new(BIO_s_secmem());
  if (!bio)
    return SECCHAT_ERR_NOMEM;
  int rc = SECCHAT_ERR_INTERNAL;
  if (PEM_write_bio_PrivateKey(bio, k->pkey, NULL, NULL, 0, NULL, NULL) == 1) {
    k->priv_pem = bio_to_string(bio, sodium_malloc, &k->priv_len);
    rc = k->priv_pem ? 0 : SECCHAT_ERR_NOMEM;
  }
  BIO_free(bio);
  if (rc == 0)
    rc = public_pem_of(k->pkey, &k->pub_pem, &k->pub_len);
  if (rc == 0)
    rc = fingerprint_of(k->pkey, k->fp);
  return rc;
}

static int wrap_key(secchat_server_key **out, EVP_PKEY *pkey)
{
  secchat_server_key *k = calloc(1, sizeof *k);
  if (!k) {
    EVP_PKEY_free(pkey);
    return SECCHAT_ERR_NOMEM;
  }
  k->pkey = pkey;
  int rc = finish_key(k);
  if (rc) {
    secchat_server_key_free(k);
    return rc;
  }
  *out = k;
  return 0;
}

int secchat_server_key_generate(secchat_server_key **out)
{
  if (!out)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  *out = NULL;
  EVP_PKEY *pkey = EVP_EC_gen("P-256");
  if (!pkey) {
    ERR_clear_error();
    return SECCHAT_ERR_CRYPTO_INIT;
  }
  return wrap_key(out, pkey);
}

int secchat_server_key_from_pem(secchat_server_key **out, const char *pem, size_t len)
{
  if (!out || (!pem && len))
    return SECCHAT_ERR_INVALID_ARGUMENT;
  *out = NULL;
  if (len == 0 || len > INT_MAX)
    return SECCHAT_ERR_BAD_KEY;
  BIO *bio = BIO_new_mem_buf(pem, (int)len);
  if (!bio)
    return SECCHAT_ERR_NOMEM;
  EVP_PKEY *pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
  BIO_free(bio);
  int ok = pkey && is_p256(pkey);
  if (ok) {
    /* The private scalar must match the public point stored with it. */
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    ok = ctx && EVP_PKEY_pairwise_check(ctx) == 1;
    EVP_PKEY_CTX_free(ctx);
  }
  ERR_clear_error();
  if (!ok) {
    EVP_PKEY_free(pkey);
    return SECCHAT_ERR_BAD_KEY;
  }
  return wrap_key(out, pkey);
}

static int copy_out(const char *s, size_t n, char *out, size_t cap, size_t *out_len)
{
  if (!out)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  if (cap < n + 1)
    return SECCHAT_ERR_BUFFER_TOO_SMALL;
  memcpy(out, s, n + 1);
  if (out_len)
    *out_len = n;
  return 0;
}

int secchat_server_key_private_pem(const secchat_server_key *key, char *out, size_t cap,
                                   size_t *out_len)
{
  if (!key)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  return copy_out(key->priv_pem, key->priv_len, out, cap, out_len);
}

int secchat_server_key_public_pem(const secchat_server_key *key, char *out, size_t cap,
                                  size_t *out_len)
{
  if (!key)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  return copy_out(key->pub_pem, key->pub_len, out, cap, out_len);
}

int secchat_server_key_fingerprint(const secchat_server_key *key,
                                   uint8_t out[SECCHAT_TOKEN_KEY_FINGERPRINT_BYTES])
{
  if (!key || !out)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  memcpy(out, key->fp, SECCHAT_TOKEN_KEY_FINGERPRINT_BYTES);
  return 0;
}

void secchat_server_key_free(secchat_server_key *key)
{
  if (!key)
    return;
  if (key->priv_pem)
    sodium_free(key->priv_pem); /* sodium_free wipes */
  free(key->pub_pem);
  EVP_PKEY_free(key->pkey);
  sodium_memzero(key, sizeof *key);
  free(key);
}

const char *sc_servkey_private_pem(const secchat_server_key *key, size_t *len)
{
  *len = key->priv_len;
  return key->priv_pem;
}

const char *sc_servkey_public_pem(const secchat_server_key *key, size_t *len)
{
  *len = key->pub_len;
  return key->pub_pem;
}

int sc_servkey_canonical_public_pem(const char *pem, size_t len, char **out, size_t *out_len,
                                    uint8_t *fp)
{
  *out = NULL;
  if (!pem || len == 0 || len > INT_MAX)
    return SECCHAT_ERR_BAD_KEY;
  BIO *bio = BIO_new_mem_buf(pem, (int)len);
  if (!bio)
    return SECCHAT_ERR_NOMEM;
  EVP_PKEY *pkey = PEM_read_bio_PUBKEY(bio, NULL, no_passphrase, NULL);
  BIO_free(bio);
  int rc = pkey && is_p256(pkey) ? 0 : SECCHAT_ERR_BAD_KEY;
  if (rc == 0)
    rc = public_pem_of(pkey, out, out_len);
  if (rc == 0 && fp)
    rc = fingerprint_of(pkey, fp);
  EVP_PKEY_free(pkey);
  ERR_clear_error();
  if (rc) {
    free(*out);
    *out = NULL;
  }
  return rc;
}

int sc_servkey_server_fingerprint(const uint8_t noise_pk[32], const uint8_t token_fp[32],
                                  uint8_t out[32])
{
  crypto_generichash_state st;
  if (crypto_generichash_init(&st, NULL, 0, 32) != 0 ||
      crypto_generichash_update(&st, (const uint8_t *)SC_CTX_SERVER_FPR,
                                sizeof SC_CTX_SERVER_FPR) != 0 || /* with the 0x00 */
      crypto_generichash_update(&st, noise_pk, 32) != 0 ||
      crypto_generichash_update(&st, token_fp, 32) != 0 ||
      crypto_generichash_final(&st, out, 32) != 0)
    return SECCHAT_ERR_INTERNAL;
  return 0;
}
