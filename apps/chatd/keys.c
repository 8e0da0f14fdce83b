/* keys.c: the server key files (see keys.h). */
#include "keys.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "secfile.h"

static int key_path(char *out, const char *dir, const char *file, char *err, size_t errlen)
{
  int n = snprintf(out, PATH_MAX, "%s/%s", dir, file);
  if (n < 0 || n >= PATH_MAX) {
    snprintf(err, errlen, "data directory path too long: %s", dir);
    return -1;
  }
  return 0;
}

/* Public parts: Noise public key, token public PEM, fingerprint. */
static int derive_public(chatd_keys *k, const char *noise_path, char *err, size_t errlen)
{
  uint8_t fp[SECCHAT_SERVER_FINGERPRINT_BYTES];
  size_t pem_len;
  int rc;

  if (secchat_server_noise_public(k->noise_sk, k->noise_pk) != 0) {
    snprintf(err, errlen, "refusing %s: not a usable X25519 secret key (low-order public key)",
             noise_path);
    return -1;
  }
  rc = secchat_server_key_public_pem(k->token, k->public_pem, sizeof k->public_pem, &pem_len);
  if (rc == 0)
    rc = secchat_server_fingerprint(k->noise_pk, k->public_pem, pem_len, fp);
  if (rc == 0)
    rc = secchat_server_fingerprint_string(fp, k->fingerprint, sizeof k->fingerprint);
  if (rc != 0) {
    snprintf(err, errlen, "cannot compute the server fingerprint: %s", secchat_strerror(rc));
    return -1;
  }
  return 0;
}

int chatd_keys_load(chatd_keys *k, const char *dir, char *err, size_t errlen)
{
  char tpath[PATH_MAX], npath[PATH_MAX];
  char pem[SECCHAT_TOKEN_KEY_PEM_MAX];
  size_t pem_len = 0, nlen = 0;
  int tr, nr, rc;

  memset(k, 0, sizeof *k);
  if (key_path(tpath, dir, CHATD_TOKEN_KEY_FILE, err, errlen) != 0 ||
      key_path(npath, dir, CHATD_NOISE_KEY_FILE, err, errlen) != 0)
    return CHATD_KEYS_BAD;

  tr = chatd_secfile_read(tpath, pem, sizeof pem, &pem_len, err, errlen);
  if (tr != CHATD_SECFILE_OK && tr != CHATD_SECFILE_MISSING)
    return CHATD_KEYS_BAD; /* err says why; pem already wiped */
  /* A 33-byte buffer: a longer file fails as too large, a shorter one is
   * caught by the exact length check below. */
  uint8_t nbuf[CHATD_NOISE_KEY_BYTES + 1];
  nr = chatd_secfile_read(npath, nbuf, sizeof nbuf, &nlen, err, errlen);
  if (nr != CHATD_SECFILE_OK && nr != CHATD_SECFILE_MISSING) {
    sodium_memzero(pem, sizeof pem);
    return CHATD_KEYS_BAD;
  }
  if (tr == CHATD_SECFILE_MISSING && nr == CHATD_SECFILE_MISSING)
    return CHATD_KEYS_MISSING;
  if (tr == CHATD_SECFILE_MISSING || nr == CHATD_SECFILE_MISSING) {
    /* Regenerating one half would silently change the fingerprint that
     * clients pinned: an operator must decide. */
    snprintf(err, errlen,
             "refusing to start: %s exists but %s is missing (restore it from a backup, or "
             "remove both files to create new keys: clients will see a new fingerprint)",
             tr == CHATD_SECFILE_MISSING ? npath : tpath,
             tr == CHATD_SECFILE_MISSING ? tpath : npath);
    sodium_memzero(pem, sizeof pem);
    sodium_memzero(nbuf, sizeof nbuf);
    return CHATD_KEYS_BAD;
  }
  if (nlen != CHATD_NOISE_KEY_BYTES) {
    snprintf(err, errlen, "refusing %s: %zu bytes, must be exactly %u (truncated or corrupt)",
             npath, nlen, CHATD_NOISE_KEY_BYTES);
    sodium_memzero(pem, sizeof pem);
    sodium_memzero(nbuf, sizeof nbuf);
    return CHATD_KEYS_BAD;
  }
  memcpy(k->noise_sk, nbuf, CHATD_NOISE_KEY_BYTES);
  sodium_memzero(nbuf, sizeof nbuf);
  (void)sodium_mlock(k->noise_sk, sizeof k->noise_sk); /* best effort */

  rc = secchat_server_key_from_pem(&k->token, pem, pem_len);
  sodium_memzero(pem, sizeof pem);
  if (rc != 0) {
    snprintf(err, errlen, "refusing %s: not a valid P-256 private key in PEM (%s)", tpath,
             secchat_strerror(rc));
    chatd_keys_clear(k);
    return CHATD_KEYS_BAD;
  }
  if (derive_public(k, npath, err, errlen) != 0) {
    chatd_keys_clear(k);
    return CHATD_KEYS_BAD;
  }
  return 0;
}

int chatd_keys_create(const char *dir, char *err, size_t errlen)
{
  char tpath[PATH_MAX], npath[PATH_MAX];
  char pem[SECCHAT_TOKEN_KEY_PEM_MAX];
  uint8_t sk[CHATD_NOISE_KEY_BYTES], pk[CHATD_NOISE_KEY_BYTES];
  secchat_server_key *key = NULL;
  size_t pem_len;
  int rc;

  if (key_path(tpath, dir, CHATD_TOKEN_KEY_FILE, err, errlen) != 0 ||
      key_path(npath, dir, CHATD_NOISE_KEY_FILE, err, errlen) != 0)
    return CHATD_KEYS_BAD;
  rc = secchat_server_key_generate(&key);
  if (rc == 0)
    rc = secchat_server_key_private_pem(key, pem, sizeof pem, &pem_len);
  secchat_server_key_free(key);
  if (rc == 0)
    rc = secchat_server_noise_keygen(sk, pk);
  if (rc != 0) {
    snprintf(err, errlen, "cannot generate the server keys: %s", secchat_strerror(rc));
    sodium_memzero(pem, sizeof pem);
    sodium_memzero(sk, sizeof sk);
    return CHATD_KEYS_BAD;
  }
  /* The Noise key first: if the second write fails, a half pair is left
   * and the next load says so instead of inventing the other half. */
  rc = chatd_secfile_write(npath, sk, sizeof sk, 0, err, errlen);
  if (rc == CHATD_SECFILE_OK)
    rc = chatd_secfile_write(tpath, pem, pem_len, 0, err, errlen);
  sodium_memzero(pem, sizeof pem);
  sodium_memzero(sk, sizeof sk);
  return rc == CHATD_SECFILE_OK ? 0 : CHATD_KEYS_BAD;
}

void chatd_keys_clear(chatd_keys *k)
{
  if (k == NULL)
    return;
  secchat_server_key_free(k->token);
  k->token = NULL;
  sodium_munlock(k->noise_sk, sizeof k->noise_sk); /* also wipes */
  sodium_memzero(k->noise_sk, sizeof k->noise_sk);
}
