/* identity.h: internal view of secchat_identity (see
 * include/secchat/identity.h for the public contract).
 *
 * The whole object is one sodium_malloc allocation: the public parts sit
 * next to the secrets, so an identity costs exactly one guarded mapping
 * (security.md: sodium_malloc is expensive, use it for identities only). */
#ifndef SC_IDENTITY_H
#define SC_IDENTITY_H

#include <stdint.h>

#include <secchat/secchat.h>

struct secchat_identity {
  uint8_t sign_sk[64]; /* libsodium layout: seed || sign_pk */
  uint8_t dh_sk[32];   /* X25519 scalar */
  uint8_t sign_pk[32];
  uint8_t dh_pk[32];
  uint8_t dh_sig[64]; /* sc_sign_ctx(SC_CTX_DH, dh_pk) */
  uint8_t uid[20];
};

/* Build an identity from its two 32-byte secrets (the Ed25519 seed and the
 * X25519 scalar): derives every public part. Used by new and import, and
 * by tests. 0, SECCHAT_ERR_INVALID_ARGUMENT, SECCHAT_ERR_NOMEM or
 * SECCHAT_ERR_INTERNAL. */
int sc_identity_from_secrets(secchat_identity **out, const uint8_t sign_seed[32],
                             const uint8_t dh_sk[32]);

/* Borrowed secret keys, for the protocol layers (Noise static key,
 * envelope and log signatures). Never copy them out of sodium memory for
 * longer than one call. */
const uint8_t *sc_identity_sign_sk(const secchat_identity *id); /* 64 */
const uint8_t *sc_identity_dh_sk(const secchat_identity *id);   /* 32 */

#endif
