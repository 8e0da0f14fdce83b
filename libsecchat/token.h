/* token.h: internal side of the token module (public API in
 * include/secchat/token.h; docs/tokens.md is the specification).
 *
 * The libjwt adapter: libjwt 1.10.2 is the decoder of record for the ES256
 * signature and the encoder for issuance, but it never sees a token that
 * has not passed sc_token_precheck() first, it is never called without a
 * key, and its view of the claims is never used (it cannot see duplicate
 * members and coerces types): claims come from our own strict jansson
 * parse. */
#ifndef SC_TOKEN_H
#define SC_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include <secchat/secchat.h>

/* Registration proof message (the bytes after "secchat/register/v1" 0x00):
 *   handshake_hash (32) || u16be(name_len) || name || sig_pk (32) || dh_pk (32)
 * Every field has a fixed size or a length prefix, so it is injective. */
#define SC_TOKEN_REG_MSG_MAX (32u + 2u + SECCHAT_NAME_MAX_BYTES + 32u + 32u)

/* Build it; returns the length, or 0 if name_len > SECCHAT_NAME_MAX_BYTES. */
size_t sc_token_registration_msg(uint8_t out[SC_TOKEN_REG_MSG_MAX], const uint8_t hh[32],
                                 const char *name, size_t name_len, const uint8_t sig_pk[32],
                                 const uint8_t dh_pk[32]);

/* Client-side proofs with the Ed25519 secret key (libsodium 64-byte form).
 * Used by the identity module and by tests. Return 0 or a SECCHAT_ERR_*. */
int sc_token_sign_registration(uint8_t proof[64], const uint8_t sk[64], const uint8_t hh[32],
                               const char *name, size_t name_len, const uint8_t sig_pk[32],
                               const uint8_t dh_pk[32]);
int sc_token_sign_login(uint8_t proof[64], const uint8_t sk[64], const uint8_t hh[32]);
int sc_token_sign_renew(uint8_t proof[64], const uint8_t sk[64], const uint8_t hh[32]);

/* Name rules (docs/tokens.md): returns 0 or SECCHAT_TOKEN_R_NAME. */
int sc_token_name_reason(const char *name, size_t len);

/* Issuer rule: 1..SECCHAT_ISSUER_MAX_BYTES bytes of 0x21..0x7e. */
int sc_token_issuer_ok(const char *issuer);

/* Structural and JSON checks done before libjwt is called (length, charset,
 * dots, empty segments, canonical base64url, duplicate members, header
 * pinned to ES256 with no other field than typ "JWT", claim set and types).
 * Returns 0 or a secchat_token_reason. Exposed for tests and fuzzing. */
int sc_token_precheck(const char *token, size_t len);

#endif
