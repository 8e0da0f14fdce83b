/* rng.h: the library's single source of randomness (internal).
 *
 * Every random byte libsecchat uses (key seeds, nonces, ids, jitter) comes
 * from sc_random(). By default it is libsodium's randombytes_buf(). Tests
 * install a deterministic generator with sc_rng_set() so that key
 * generation (always through *_seed_keypair) and vectors are reproducible.
 * The hook is process-wide, test-only and must be set before any object is
 * created; it is not part of the public ABI. */
#ifndef SC_RNG_H
#define SC_RNG_H

#include <stddef.h>

typedef void (*sc_rng_fn)(void *ctx, void *buf, size_t len);

/* Fill buf with len random bytes. */
void sc_random(void *buf, size_t len);

/* Install fn (NULL restores randombytes_buf). Test-only. */
void sc_rng_set(sc_rng_fn fn, void *ctx);

/* A deterministic generator for tests: ChaCha20 keystream of a 32-byte
 * seed (crypto_stream_chacha20), advancing a 64-bit block counter. */
typedef struct sc_test_rng {
  unsigned char key[32];
  unsigned long long counter; /* bytes consumed so far */
} sc_test_rng;

void sc_test_rng_init(sc_test_rng *r, const unsigned char seed[32]);
void sc_test_rng_fn(void *ctx, void *buf, size_t len);

#endif
