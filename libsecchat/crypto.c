/* crypto.c: internal primitives (see crypto.h). */
#include "crypto.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include <secchat/secchat.h>

/* Build ctx || 0x00 || msg. Small inputs stay on the stack; large ones
 * (history pages, up to one frame) take one heap buffer. */
#define SC_SIGN_STACK 1024

static int with_signed_bytes(const char *ctx, const uint8_t *msg, size_t len,
                             uint8_t *stack, uint8_t **out, size_t *out_len)
{
  size_t clen = strlen(ctx);
  if (len > SIZE_MAX - clen - 1)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  size_t total = clen + 1 + len;
  uint8_t *buf = total <= SC_SIGN_STACK ? stack : malloc(total);
  if (!buf)
    return SECCHAT_ERR_NOMEM;
  memcpy(buf, ctx, clen);
  buf[clen] = 0;
  if (len)
    memcpy(buf + clen + 1, msg, len);
  *out = buf;
  *out_len = total;
  return 0;
}

int sc_sign_ctx(uint8_t sig[64], const char *ctx, const uint8_t *msg, size_t len,
                const uint8_t sk[64])
{
  uint8_t stack[SC_SIGN_STACK];
  uint8_t *buf;
  size_t n;
  int rc = with_signed_bytes(ctx, msg, len, stack, &buf, &n);
  if (rc)
    return rc;
  rc = crypto_sign_detached(sig, NULL, buf, n, sk) == 0 ? 0 : SECCHAT_ERR_INTERNAL;
  if (buf != stack)
    free(buf);
  return rc;
}

int sc_verify_ctx(const uint8_t sig[64], const char *ctx, const uint8_t *msg, size_t len,
                  const uint8_t pk[32])
{
  uint8_t stack[SC_SIGN_STACK];
  uint8_t *buf;
  size_t n;
  int rc = with_signed_bytes(ctx, msg, len, stack, &buf, &n);
  if (rc)
    return rc;
  rc = crypto_sign_verify_detached(sig, buf, n, pk) == 0 ? 0 : SECCHAT_ERR_SIGNATURE;
  if (buf != stack)
    free(buf);
  return rc;
}

void sc_uid_from_sign_pk(uint8_t uid[20], const uint8_t pk[32])
{
  crypto_generichash(uid, 20, pk, 32, NULL, 0);
}

int sc_check_sign_pk(const uint8_t pk[32])
{
  /* crypto_core_ed25519_is_valid_point rejects non-canonical encodings,
   * small-order points (identity included) and points off the curve. */
  return crypto_core_ed25519_is_valid_point(pk) ? 0 : SECCHAT_ERR_BAD_KEY;
}

int sc_check_dh_pk(const uint8_t pk[32])
{
  /* A DH with a low-order point gives all zeros, which libsodium reports
   * as -1; a fixed nonzero scalar probes it without any secret. */
  static const uint8_t probe[32] = {9};
  uint8_t out[32];
  int bad = crypto_scalarmult(out, probe, pk) != 0;
  sodium_memzero(out, sizeof out);
  return bad ? SECCHAT_ERR_BAD_KEY : 0;
}
