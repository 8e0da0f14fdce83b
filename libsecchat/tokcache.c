/* tokcache.c: see tokcache.h. */
#include "tokcache.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "rng.h"

typedef struct entry {
  uint8_t h[SC_TOKCACHE_HASH_BYTES];
  uint64_t used; /* LRU stamp; 0 = empty slot */
  secchat_token_claims claims;
} entry;

struct sc_tokcache {
  uint8_t key[crypto_generichash_KEYBYTES];
  size_t nsets;
  uint64_t clock;
  sc_tokcache_stats st;
  entry *slots; /* nsets * SC_TOKCACHE_WAYS */
};

int sc_tokcache_new(sc_tokcache **out, size_t capacity)
{
  if (!out || capacity == 0 || capacity > SECCHAT_TOKEN_CACHE_MAX)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  *out = NULL;
  sc_tokcache *c = calloc(1, sizeof *c);
  if (!c)
    return SECCHAT_ERR_NOMEM;
  c->nsets = (capacity + SC_TOKCACHE_WAYS - 1) / SC_TOKCACHE_WAYS;
  c->slots = calloc(c->nsets * SC_TOKCACHE_WAYS, sizeof *c->slots);
  if (!c->slots) {
    free(c);
    return SECCHAT_ERR_NOMEM;
  }
  c->st.capacity = c->nsets * SC_TOKCACHE_WAYS;
  sc_random(c->key, sizeof c->key);
  *out = c;
  return 0;
}

void sc_tokcache_free(sc_tokcache *c)
{
  if (!c)
    return;
  sodium_memzero(c->slots, c->nsets * SC_TOKCACHE_WAYS * sizeof *c->slots);
  free(c->slots);
  sodium_memzero(c, sizeof *c);
  free(c);
}

void sc_tokcache_hash(const sc_tokcache *c, const char *token, size_t len,
                      uint8_t h[SC_TOKCACHE_HASH_BYTES])
{
  crypto_generichash(h, SC_TOKCACHE_HASH_BYTES, (const unsigned char *)token, len, c->key,
                     sizeof c->key);
}

static entry *set_of(sc_tokcache *c, const uint8_t h[SC_TOKCACHE_HASH_BYTES])
{
  uint64_t x;
  memcpy(&x, h, sizeof x); /* the hash is keyed and uniform */
  return &c->slots[(x % c->nsets) * SC_TOKCACHE_WAYS];
}

static entry *find(entry *set, const uint8_t h[SC_TOKCACHE_HASH_BYTES])
{
  for (unsigned i = 0; i < SC_TOKCACHE_WAYS; i++)
    if (set[i].used && sodium_memcmp(set[i].h, h, SC_TOKCACHE_HASH_BYTES) == 0)
      return &set[i];
  return NULL;
}

int sc_tokcache_lookup(sc_tokcache *c, const uint8_t h[SC_TOKCACHE_HASH_BYTES],
                       secchat_token_claims *out)
{
  entry *e = find(set_of(c, h), h);
  if (!e) {
    c->st.misses++;
    return 0;
  }
  c->st.hits++;
  e->used = ++c->clock;
  *out = e->claims;
  return 1;
}

void sc_tokcache_insert(sc_tokcache *c, const uint8_t h[SC_TOKCACHE_HASH_BYTES],
                        const secchat_token_claims *claims)
{
  entry *set = set_of(c, h);
  entry *e = find(set, h);
  if (!e) {
    e = &set[0];
    for (unsigned i = 1; i < SC_TOKCACHE_WAYS && e->used; i++)
      if (!set[i].used || set[i].used < e->used)
        e = &set[i];
    if (e->used)
      c->st.evictions++;
    else
      c->st.entries++;
    memcpy(e->h, h, SC_TOKCACHE_HASH_BYTES);
    c->st.inserts++;
  }
  e->claims = *claims;
  e->used = ++c->clock;
}

void sc_tokcache_remove(sc_tokcache *c, const uint8_t h[SC_TOKCACHE_HASH_BYTES])
{
  entry *e = find(set_of(c, h), h);
  if (!e)
    return;
  sodium_memzero(e, sizeof *e);
  c->st.entries--;
  c->st.removals++;
}

void sc_tokcache_get_stats(const sc_tokcache *c, sc_tokcache_stats *st) { *st = c->st; }
