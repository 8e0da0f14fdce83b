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

/* u-coordinates of the X25519 points of order 1, 2, 4 and 8 (curve and
 * twist), and the non-canonical encodings p and p+1 of 0 and 1: the keys
 * whose DH output is all zeros whatever the (clamped) scalar. The same list
 * libsodium's crypto_scalarmult checks before multiplying; comparing
 * against it costs nothing next to a scalar multiplication (which made
 * token verification ~28 us slower). */
static const uint8_t low_order[7][32] = {
  {0},
  {1},
  {0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4, 0x6a,
   0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00},
  {0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83, 0xef, 0x5b,
   0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f, 0x11, 0x57},
  {0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
   0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
  {0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
   0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
  {0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
   0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
};

int sc_check_dh_pk(const uint8_t pk[32])
{
  /* Constant time; the top bit is ignored, as X25519 ignores it. */
  unsigned bad = 0;
  for (size_t i = 0; i < 7; i++) {
    unsigned diff = (pk[31] & 0x7f) ^ low_order[i][31];
    for (size_t j = 0; j < 31; j++)
      diff |= pk[j] ^ low_order[i][j];
    bad |= (diff - 1) >> 8 & 1; /* 1 iff diff == 0 */
  }
  return bad ? SECCHAT_ERR_BAD_KEY : 0;
}

/* ---- Raw primitive wrappers (see crypto.h) ---------------------------- */

int sc_ed25519_verify(const uint8_t *sig, size_t sig_len, const uint8_t *msg, size_t len,
                      const uint8_t *pk, size_t pk_len)
{
  if (sig_len != crypto_sign_BYTES || pk_len != crypto_sign_PUBLICKEYBYTES)
    return SECCHAT_ERR_SIGNATURE;
  return crypto_sign_verify_detached(sig, msg, len, pk) == 0 ? 0 : SECCHAT_ERR_SIGNATURE;
}

int sc_x25519(uint8_t out[32], const uint8_t scalar[32], const uint8_t point[32])
{
  if (crypto_scalarmult(out, scalar, point) != 0) {
    sodium_memzero(out, 32);
    return SECCHAT_ERR_BAD_KEY;
  }
  return 0;
}

int sc_aead_chacha_encrypt(uint8_t *ct, const uint8_t *pt, size_t len, const uint8_t *ad,
                           size_t ad_len, const uint8_t nonce[12], const uint8_t key[32])
{
  if (len > crypto_aead_chacha20poly1305_ietf_MESSAGEBYTES_MAX)
    return SECCHAT_ERR_TOO_LONG;
  return crypto_aead_chacha20poly1305_ietf_encrypt(ct, NULL, pt, len, ad, ad_len, NULL, nonce,
                                                   key) == 0
             ? 0
             : SECCHAT_ERR_INTERNAL;
}

int sc_aead_chacha_decrypt(uint8_t *pt, const uint8_t *ct, size_t ct_len, const uint8_t *ad,
                           size_t ad_len, const uint8_t nonce[12], const uint8_t key[32])
{
  if (ct_len < crypto_aead_chacha20poly1305_ietf_ABYTES)
    return SECCHAT_ERR_DECRYPT;
  if (crypto_aead_chacha20poly1305_ietf_decrypt(pt, NULL, NULL, ct, ct_len, ad, ad_len, nonce,
                                                key) != 0) {
    sodium_memzero(pt, ct_len - crypto_aead_chacha20poly1305_ietf_ABYTES);
    return SECCHAT_ERR_DECRYPT;
  }
  return 0;
}

int sc_aead_xchacha_encrypt(uint8_t *ct, const uint8_t *pt, size_t len, const uint8_t *ad,
                            size_t ad_len, const uint8_t nonce[24], const uint8_t key[32])
{
  if (len > crypto_aead_xchacha20poly1305_ietf_MESSAGEBYTES_MAX)
    return SECCHAT_ERR_TOO_LONG;
  return crypto_aead_xchacha20poly1305_ietf_encrypt(ct, NULL, pt, len, ad, ad_len, NULL, nonce,
                                                    key) == 0
             ? 0
             : SECCHAT_ERR_INTERNAL;
}

int sc_aead_xchacha_decrypt(uint8_t *pt, const uint8_t *ct, size_t ct_len, const uint8_t *ad,
                            size_t ad_len, const uint8_t nonce[24], const uint8_t key[32])
{
  if (ct_len < crypto_aead_xchacha20poly1305_ietf_ABYTES)
    return SECCHAT_ERR_DECRYPT;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(pt, NULL, NULL, ct, ct_len, ad, ad_len, nonce,
                                                 key) != 0) {
    sodium_memzero(pt, ct_len - crypto_aead_xchacha20poly1305_ietf_ABYTES);
    return SECCHAT_ERR_DECRYPT;
  }
  return 0;
}

int sc_sign_ctx_inplace(uint8_t sig[64], const char *ctx, uint8_t *msg, size_t len,
                        const uint8_t sk[64])
{
  size_t clen = strlen(ctx);
  uint8_t *start = msg - clen - 1;
  memcpy(start, ctx, clen);
  start[clen] = 0;
  return crypto_sign_detached(sig, NULL, start, clen + 1 + len, sk) == 0 ? 0
                                                                         : SECCHAT_ERR_INTERNAL;
}

int sc_verify_ctx_inplace(const uint8_t sig[64], const char *ctx, uint8_t *msg, size_t len,
                          const uint8_t pk[32])
{
  size_t clen = strlen(ctx);
  uint8_t *start = msg - clen - 1;
  memcpy(start, ctx, clen);
  start[clen] = 0;
  return crypto_sign_verify_detached(sig, start, clen + 1 + len, pk) == 0 ? 0
                                                                          : SECCHAT_ERR_SIGNATURE;
}
