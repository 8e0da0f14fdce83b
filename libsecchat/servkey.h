/* servkey.h: the server's ES256 token key (internal view of
 * secchat_server_key, see include/secchat/token.h).
 *
 * The key lives as an OpenSSL EVP_PKEY plus the two canonical PEM texts
 * libjwt needs (it only takes PEM): the private PKCS#8 PEM in
 * sodium_malloc'd memory, wiped on free, and the public SPKI PEM. The same
 * canonical public PEM is produced for a verifier loaded from any PEM
 * spelling of the key, so comparing the texts compares the keys. */
#ifndef SC_SERVKEY_H
#define SC_SERVKEY_H

#include <stddef.h>
#include <stdint.h>

#include <secchat/secchat.h>

/* Borrowed views, valid while the key lives. */
const char *sc_servkey_private_pem(const secchat_server_key *key, size_t *len);
const char *sc_servkey_public_pem(const secchat_server_key *key, size_t *len);

/* Parse a public SPKI PEM, require a P-256 key and write its canonical PEM
 * into a malloc'd NUL-terminated string (*out, *out_len) and its
 * fingerprint (fp may be NULL). Returns 0, SECCHAT_ERR_BAD_KEY or
 * SECCHAT_ERR_NOMEM. */
int sc_servkey_canonical_public_pem(const char *pem, size_t len, char **out, size_t *out_len,
                                    uint8_t *fp);

/* Server fingerprint (docs/relay.md, "Fingerprint"): BLAKE2b-256 of
 * "secchat/server-fpr/v1" || 0x00 || noise_pk || token_fp, where token_fp
 * is the token key's fingerprint. Returns 0 or SECCHAT_ERR_INTERNAL. */
int sc_servkey_server_fingerprint(const uint8_t noise_pk[32], const uint8_t token_fp[32],
                                  uint8_t out[32]);

#endif
