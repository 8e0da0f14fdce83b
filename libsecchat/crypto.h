/* crypto.h: internal cryptographic primitives shared by every layer.
 *
 * Every signature in secchat covers a context string: the signed bytes are
 *     ctx || 0x00 || msg
 * where ctx is "secchat/<purpose>/v1" (ASCII, no NUL). The separator makes
 * the encoding injective whatever the contexts are. All hashes are BLAKE2b
 * (crypto_generichash) unless Noise mandates SHA-256. */
#ifndef SC_CRYPTO_H
#define SC_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

/* Signature contexts (one per purpose; never reuse one for another). */
#define SC_CTX_DH "secchat/dh/v1"             /* Ed25519 over the X25519 pk */
#define SC_CTX_REGISTER "secchat/register/v1" /* registration proof */
#define SC_CTX_AUTH "secchat/auth/v1"         /* login proof */
#define SC_CTX_RENEW "secchat/renew/v1"       /* token renewal proof */
#define SC_CTX_MSG "secchat/msg/v1"           /* group message inner */
#define SC_CTX_MSGID "secchat/msgid/v1"       /* msg id hash prefix */
#define SC_CTX_SKDIST "secchat/skdist/v1"     /* sender-key distribution */
#define SC_CTX_KEYREQ "secchat/keyreq/v1"     /* sender-key request */
#define SC_CTX_FPR "secchat/fpr/v1"           /* fingerprint hash prefix */
#define SC_CTX_SAFETY "secchat/safety/v1"     /* safety number hash prefix */
#define SC_CTX_SERVER_FPR "secchat/server-fpr/v1" /* server fingerprint prefix */

/* Ed25519 detached signature over ctx || 0x00 || msg with a 64-byte
 * libsodium secret key. Returns 0 or a SECCHAT_ERR_* code. */
int sc_sign_ctx(uint8_t sig[64], const char *ctx, const uint8_t *msg, size_t len,
                const uint8_t sk[64]);

/* Verify such a signature. Returns 0 or SECCHAT_ERR_SIGNATURE. */
int sc_verify_ctx(const uint8_t sig[64], const char *ctx, const uint8_t *msg, size_t len,
                  const uint8_t pk[32]);

/* uid = BLAKE2b-160(ed25519_pk), unkeyed. */
void sc_uid_from_sign_pk(uint8_t uid[20], const uint8_t pk[32]);

/* 0 if pk is a usable Ed25519 public key (canonical, not small order, not
 * the identity), else SECCHAT_ERR_BAD_KEY. */
int sc_check_sign_pk(const uint8_t pk[32]);

/* 0 if pk is a usable X25519 public key (not one of the low-order points:
 * a DH with it would not be all-zero), else SECCHAT_ERR_BAD_KEY. */
int sc_check_dh_pk(const uint8_t pk[32]);

/* ---- Raw primitive wrappers -------------------------------------------
 * The only entry points protocol code uses for these primitives, so that
 * the Wycheproof test (tests/test_wycheproof.c) exercises exactly what the
 * protocol runs. Lengths are exact; every libsodium result is checked. */

/* Ed25519 verify of a raw message (no context). 0 or SECCHAT_ERR_SIGNATURE
 * (also for a signature or key of the wrong length). */
int sc_ed25519_verify(const uint8_t *sig, size_t sig_len, const uint8_t *msg, size_t len,
                      const uint8_t *pk, size_t pk_len);

/* X25519: out = scalar * point. SECCHAT_ERR_BAD_KEY if the result is all
 * zeros (low-order point); out is then zeroed. */
int sc_x25519(uint8_t out[32], const uint8_t scalar[32], const uint8_t point[32]);

/* AEADs (IETF ChaCha20-Poly1305: 12-byte nonce; XChaCha20-Poly1305: 24).
 * encrypt writes len + 16 bytes to ct (ct may equal pt). decrypt writes
 * ct_len - 16 bytes to pt (pt may equal ct) and returns SECCHAT_ERR_DECRYPT
 * on a bad tag or ct_len < 16; pt is then zeroed. Keys are 32 bytes. */
int sc_aead_chacha_encrypt(uint8_t *ct, const uint8_t *pt, size_t len, const uint8_t *ad,
                           size_t ad_len, const uint8_t nonce[12], const uint8_t key[32]);
int sc_aead_chacha_decrypt(uint8_t *pt, const uint8_t *ct, size_t ct_len, const uint8_t *ad,
                           size_t ad_len, const uint8_t nonce[12], const uint8_t key[32]);
int sc_aead_xchacha_encrypt(uint8_t *ct, const uint8_t *pt, size_t len, const uint8_t *ad,
                            size_t ad_len, const uint8_t nonce[24], const uint8_t key[32]);
int sc_aead_xchacha_decrypt(uint8_t *pt, const uint8_t *ct, size_t ct_len, const uint8_t *ad,
                            size_t ad_len, const uint8_t nonce[24], const uint8_t key[32]);

/* Allocation-free variants of sc_sign_ctx / sc_verify_ctx for hot paths
 * (envelopes): the strlen(ctx) + 1 bytes just BEFORE msg must be writable
 * scratch owned by the caller; they are overwritten with ctx || 0x00 and
 * left so. Same results as the allocating versions. */
int sc_sign_ctx_inplace(uint8_t sig[64], const char *ctx, uint8_t *msg, size_t len,
                        const uint8_t sk[64]);
int sc_verify_ctx_inplace(const uint8_t sig[64], const char *ctx, uint8_t *msg, size_t len,
                          const uint8_t pk[32]);

#endif
