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

#endif
