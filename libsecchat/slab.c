/* slab.c: locked slots for per-connection secrets (see slab.h). */
#include "slab.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include <secchat/secchat.h>

int sc_slab_init(sc_slab *s, size_t slot_size, uint32_t max_slots)
{
  if (s == NULL || slot_size == 0 || slot_size > 65536 || max_slots == 0)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  memset(s, 0, sizeof *s);
  s->slot_size = (slot_size + 63u) & ~(size_t)63u;
  s->max_slots = max_slots;
  uint32_t maxchunks = (max_slots + SC_SLAB_CHUNK_SLOTS - 1) / SC_SLAB_CHUNK_SLOTS;
  s->chunks = calloc(maxchunks, sizeof *s->chunks);
  if (s->chunks == NULL)
    return SECCHAT_ERR_NOMEM;
  return 0;
}

void sc_slab_free(sc_slab *s)
{
  if (s == NULL)
    return;
  for (uint32_t i = 0; i < s->nchunks; i++)
    sodium_free(s->chunks[i]); /* sodium_free wipes the region */
  free(s->chunks);
  free(s->free_idx);
  memset(s, 0, sizeof *s);
}

/* Add one chunk; its slots go on the free stack, lowest index on top. */
static int slab_grow(sc_slab *s)
{
  uint32_t first = s->nchunks * SC_SLAB_CHUNK_SLOTS;
  if (first >= s->max_slots)
    return SECCHAT_ERR_TOO_MANY;
  uint32_t n = SC_SLAB_CHUNK_SLOTS;
  if (s->max_slots - first < n)
    n = s->max_slots - first;
  uint32_t *fi = realloc(s->free_idx, (size_t)(first + n) * sizeof *fi);
  if (fi == NULL)
    return SECCHAT_ERR_NOMEM;
  s->free_idx = fi;
  uint8_t *chunk = sodium_malloc(s->slot_size * SC_SLAB_CHUNK_SLOTS);
  if (chunk == NULL)
    return SECCHAT_ERR_NOMEM;
  sodium_memzero(chunk, s->slot_size * SC_SLAB_CHUNK_SLOTS);
  s->chunks[s->nchunks++] = chunk;
  for (uint32_t i = 0; i < n; i++)
    s->free_idx[s->nfree++] = first + n - 1 - i;
  return 0;
}

uint32_t sc_slab_alloc(sc_slab *s)
{
  if (s->nfree == 0 && slab_grow(s) != 0)
    return SC_SLAB_NONE;
  uint32_t idx = s->free_idx[--s->nfree];
  s->used++;
  return idx; /* zeroed: fresh chunk or wiped on release */
}

void *sc_slab_ptr(const sc_slab *s, uint32_t idx)
{
  return s->chunks[idx / SC_SLAB_CHUNK_SLOTS] + (size_t)(idx % SC_SLAB_CHUNK_SLOTS) * s->slot_size;
}

void sc_slab_release(sc_slab *s, uint32_t idx)
{
  sodium_memzero(sc_slab_ptr(s, idx), s->slot_size);
  s->free_idx[s->nfree++] = idx;
  s->used--;
}

size_t sc_slab_bytes(const sc_slab *s)
{
  return (size_t)s->nchunks * SC_SLAB_CHUNK_SLOTS * s->slot_size;
}
