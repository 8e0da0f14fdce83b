/* tokcache.h: bounded cache of verified tokens (internal).
 *
 * Maps a keyed BLAKE2b-256 hash of the exact token bytes to the claims that
 * a full verification produced. Only fully verified tokens are inserted, so
 * a hit proves that these exact bytes passed every check once; the caller
 * still re-checks the time claims against its now on every hit (expiry is
 * honoured) and removes entries that expired.
 *
 * Memory is fixed at creation: capacity entries (rounded up to a multiple
 * of SC_TOKCACHE_WAYS), RAM only, wiped on free. Organisation: sets of
 * SC_TOKCACHE_WAYS entries chosen by the hash, LRU within a set, so every
 * operation is O(1). The hash key is random per cache (sc_random), so
 * nobody can aim tokens at one set. One thread at a time. */
#ifndef SC_TOKCACHE_H
#define SC_TOKCACHE_H

#include <stddef.h>
#include <stdint.h>

#include <secchat/secchat.h>

#define SC_TOKCACHE_WAYS 4u
#define SC_TOKCACHE_HASH_BYTES 32u

typedef struct sc_tokcache sc_tokcache;

typedef struct sc_tokcache_stats {
  uint64_t hits, misses, inserts, evictions, removals;
  size_t entries, capacity;
} sc_tokcache_stats;

/* capacity 1..SECCHAT_TOKEN_CACHE_MAX. Returns 0, SECCHAT_ERR_INVALID_ARGUMENT
 * or SECCHAT_ERR_NOMEM. */
int sc_tokcache_new(sc_tokcache **out, size_t capacity);
void sc_tokcache_free(sc_tokcache *c); /* NULL-safe */

/* Keyed hash of a token (the cache key). */
void sc_tokcache_hash(const sc_tokcache *c, const char *token, size_t len,
                      uint8_t h[SC_TOKCACHE_HASH_BYTES]);

/* 1 and a copy of the claims on a hit (the entry becomes most recent),
 * 0 on a miss. */
int sc_tokcache_lookup(sc_tokcache *c, const uint8_t h[SC_TOKCACHE_HASH_BYTES],
                       secchat_token_claims *out);

/* Insert or refresh; evicts the least recently used entry of a full set. */
void sc_tokcache_insert(sc_tokcache *c, const uint8_t h[SC_TOKCACHE_HASH_BYTES],
                        const secchat_token_claims *claims);

/* Drop an entry if present. */
void sc_tokcache_remove(sc_tokcache *c, const uint8_t h[SC_TOKCACHE_HASH_BYTES]);

void sc_tokcache_get_stats(const sc_tokcache *c, sc_tokcache_stats *st);

#endif
