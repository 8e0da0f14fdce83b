/*
 * keys.h: the relay's two server keys, stored in the data directory.
 *
 *   DIR/token_key.pem   ES256 (P-256) token signing key, PKCS#8 PEM
 *   DIR/noise_key       X25519 Noise static secret key, exactly 32 raw bytes
 *
 * Both are secret files (secfile.h): 0600, owned by us, in a 0700
 * directory, written atomically. Loading refuses anything doubtful with a
 * message naming the file: a missing half of the pair, an empty, truncated,
 * oversized or corrupt file, or a file readable by group or others
 * (security.md B3, D10). The server fingerprint is one hash over both
 * public keys (docs/relay.md, "Fingerprint").
 *
 * Threads: no shared state; a loaded chatd_keys is read-only afterwards
 * and may be shared by every worker.
 */
#ifndef CHATD_KEYS_H
#define CHATD_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include <secchat/secchat.h>

#define CHATD_TOKEN_KEY_FILE "token_key.pem"
#define CHATD_NOISE_KEY_FILE "noise_key"
#define CHATD_NOISE_KEY_BYTES 32u

typedef struct chatd_keys {
  secchat_server_key *token;          /* owned */
  uint8_t noise_sk[CHATD_NOISE_KEY_BYTES];
  uint8_t noise_pk[CHATD_NOISE_KEY_BYTES];
  char fingerprint[SECCHAT_SERVER_FINGERPRINT_STRING_BYTES];
  char public_pem[SECCHAT_TOKEN_KEY_PEM_MAX];
} chatd_keys;

/* Results (besides 0). */
#define CHATD_KEYS_MISSING (-1) /* neither file exists (first start) */
#define CHATD_KEYS_BAD (-2)     /* refused: see err */

/* Load both keys from dir (which chatd_secfile_datadir() has checked).
 * Returns 0, CHATD_KEYS_MISSING (both files absent; nothing else wrong) or
 * CHATD_KEYS_BAD with a message in err. On failure *k holds no secret. */
int chatd_keys_load(chatd_keys *k, const char *dir, char *err, size_t errlen);

/* Create both key files in dir; refuses to overwrite an existing one.
 * Returns 0 or CHATD_KEYS_BAD (message in err). Requires secchat_init(). */
int chatd_keys_create(const char *dir, char *err, size_t errlen);

/* Wipe the secret and free the token key. NULL-safe; idempotent. */
void chatd_keys_clear(chatd_keys *k);

#endif /* CHATD_KEYS_H */
