/* server_keys.c: the relay's Noise static key and the server fingerprint
 * (include/secchat/server.h, docs/relay.md "Fingerprint"). */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include <secchat/secchat.h>

#include "base32.h"
#include "crypto.h"
#include "rng.h"
#include "servkey.h"

int secchat_server_noise_public(const uint8_t sk[32], uint8_t pk[32])
{
  if (sk == NULL || pk == NULL)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  if (crypto_scalarmult_base(pk, sk) != 0 || sc_check_dh_pk(pk) != 0) {
    sodium_memzero(pk, 32);
    return SECCHAT_ERR_BAD_KEY;
  }
  return 0;
}

int secchat_server_noise_keygen(uint8_t sk[32], uint8_t pk[32])
{
  if (sk == NULL || pk == NULL)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  /* A clamped random scalar never gives a low-order public key; the check
   * in noise_public is kept for keys that come from files. */
  for (;;) {
    sc_random(sk, 32);
    if (secchat_server_noise_public(sk, pk) == 0)
      return 0;
  }
}

int secchat_server_fingerprint_string(const uint8_t fp[SECCHAT_SERVER_FINGERPRINT_BYTES],
                                      char *out, size_t cap)
{
  if (fp == NULL || out == NULL)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  int rc = sc_base32_encode(out, cap, fp, SECCHAT_SERVER_FINGERPRINT_BYTES);
  return rc < 0 ? rc : 0;
}

int secchat_server_fingerprint(const uint8_t noise_pk[32], const char *token_pem, size_t pem_len,
                               uint8_t out[SECCHAT_SERVER_FINGERPRINT_BYTES])
{
  if (noise_pk == NULL || token_pem == NULL || out == NULL || pem_len == 0)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  if (sc_check_dh_pk(noise_pk) != 0) /* as the header promises */
    return SECCHAT_ERR_BAD_KEY;
  char *canon = NULL;
  size_t clen = 0;
  uint8_t tfp[32];
  int rc = sc_servkey_canonical_public_pem(token_pem, pem_len, &canon, &clen, tfp);
  if (rc != 0)
    return rc;
  free(canon);
  return sc_servkey_server_fingerprint(noise_pk, tfp, out);
}
