/* slab.c: locked slots for per-connection secrets (see slab.h). */
#include "slab.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include <secchat/secchat.h>

/* Slots of chunk c: SC_SLAB_CHUNK_SLOTS but for a short last chunk. */
static uint32_t chunk_slots(const sc_slab *s, uint32_t c)
{
  uint32_t first = c * SC_SLAB_CHUNK_SLOTS;
  return s->max_slots - first < SC_SLAB_CHUNK_SLOTS ? s->max_slots - first : SC_SLAB_CHUNK_SLOTS;
}

/* Map chunk c; its slots go on its free stack, lowest offset on top. */
static int chunk_map(sc_slab *s, uint32_t c)
{
  uint8_t *chunk = sodium_malloc(s->slot_size * SC_SLAB_CHUNK_SLOTS);
  if (chunk == NULL)
    return SECCHAT_ERR_NOMEM;
  sodium_memzero(chunk, s->slot_size * SC_SLAB_CHUNK_SLOTS);
  uint32_t n = chunk_slots(s, c);
  uint8_t *stk = s->stack + (size_t)c * SC_SLAB_CHUNK_SLOTS;
  for (uint32_t i = 0; i < n; i++)
    stk[i] = (uint8_t)(n - 1 - i);
  s->chunks[c] = chunk;
  s->nfree_c[c] = (uint16_t)n;
  s->nfree += n;
  s->nchunks++;
  return 0;
}

static void chunk_unmap(sc_slab *s, uint32_t c)
{
  sodium_free(s->chunks[c]); /* sodium_free wipes the region */
  s->chunks[c] = NULL;
  s->nfree -= s->nfree_c[c];
  s->nfree_c[c] = 0;
  s->nchunks--;
}

int sc_slab_init(sc_slab *s, size_t slot_size, uint32_t max_slots)
{
  if (s == NULL || slot_size == 0 || slot_size > 65536 || max_slots == 0)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  memset(s, 0, sizeof *s);
  s->slot_size = (slot_size + 63u) & ~(size_t)63u;
  s->max_slots = max_slots;
  s->maxchunks = (max_slots + SC_SLAB_CHUNK_SLOTS - 1) / SC_SLAB_CHUNK_SLOTS;
  s->chunks = calloc(s->maxchunks, sizeof *s->chunks);
  s->nfree_c = calloc(s->maxchunks, sizeof *s->nfree_c);
  s->stack = malloc((size_t)s->maxchunks * SC_SLAB_CHUNK_SLOTS);
  if (s->chunks == NULL || s->nfree_c == NULL || s->stack == NULL || chunk_map(s, 0) != 0) {
    sc_slab_free(s);
    return SECCHAT_ERR_NOMEM;
  }
  return 0;
}

void sc_slab_free(sc_slab *s)
{
  if (s == NULL)
    return;
  for (uint32_t c = 0; s->chunks != NULL && c < s->maxchunks; c++)
    if (s->chunks[c] != NULL)
      sodium_free(s->chunks[c]);
  free(s->chunks);
  free(s->nfree_c);
  free(s->stack);
  memset(s, 0, sizeof *s);
}

uint32_t sc_slab_alloc(sc_slab *s)
{
  /* Lowest mapped chunk with a free slot, else the lowest unmapped one. A
   * linear scan: maxchunks is max_slots / 256, and a connection costs a
   * handshake anyway. */
  uint32_t c = 0, hole = UINT32_MAX;
  for (; c < s->maxchunks; c++) {
    if (s->chunks[c] != NULL && s->nfree_c[c] > 0)
      break;
    if (s->chunks[c] == NULL && hole == UINT32_MAX)
      hole = c;
  }
  if (c == s->maxchunks) {
    if (hole == UINT32_MAX || chunk_map(s, hole) != 0)
      return SC_SLAB_NONE;
    c = hole;
  }
  uint32_t off = s->stack[(size_t)c * SC_SLAB_CHUNK_SLOTS + --s->nfree_c[c]];
  s->nfree--;
  s->used++;
  return c * SC_SLAB_CHUNK_SLOTS + off; /* zeroed: fresh chunk or wiped on release */
}

void *sc_slab_ptr(const sc_slab *s, uint32_t idx)
{
  return s->chunks[idx / SC_SLAB_CHUNK_SLOTS] + (size_t)(idx % SC_SLAB_CHUNK_SLOTS) * s->slot_size;
}

/* Unmap empty chunks, highest first (allocation fills the lowest), while
 * more than one is mapped and the rest keep half a chunk of free slots. */
static void slab_trim(sc_slab *s)
{
  for (uint32_t c = s->maxchunks; c-- > 0 && s->nchunks > 1;) {
    if (s->nfree <= SC_SLAB_CHUNK_SLOTS / 2)
      return; /* no chunk can go: the common case, no scan */
    if (s->chunks[c] != NULL && s->nfree_c[c] == chunk_slots(s, c) &&
        s->nfree - s->nfree_c[c] >= SC_SLAB_CHUNK_SLOTS / 2)
      chunk_unmap(s, c);
  }
}

void sc_slab_release(sc_slab *s, uint32_t idx)
{
  uint32_t c = idx / SC_SLAB_CHUNK_SLOTS;
  sodium_memzero(sc_slab_ptr(s, idx), s->slot_size);
  s->stack[(size_t)c * SC_SLAB_CHUNK_SLOTS + s->nfree_c[c]++] = (uint8_t)(idx % SC_SLAB_CHUNK_SLOTS);
  s->nfree++;
  s->used--;
  slab_trim(s);
}

size_t sc_slab_bytes(const sc_slab *s)
{
  return (size_t)s->nchunks * SC_SLAB_CHUNK_SLOTS * s->slot_size;
}
