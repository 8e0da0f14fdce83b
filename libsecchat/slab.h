/* slab.h: fixed-size slots for per-connection secrets in locked memory
 * (internal).
 *
 * sodium_malloc costs 4 mappings and 8 KiB per call and fails near 16 k
 * calls, so connection secrets (Noise handshake state, transport keys) do
 * not get one allocation each. A slab hands out fixed-size slots carved
 * from chunks of SC_SLAB_CHUNK_SLOTS slots; each chunk is ONE sodium_malloc
 * region (guard pages, mlock'd best effort: RLIMIT_MEMLOCK may refuse, the
 * memory is then still excluded from nothing but swap locking). Chunks are
 * added on demand up to max_slots, so an idle server holds one chunk.
 *
 * Slots are zeroed when handed out and wiped (sodium_memzero) when
 * returned; sc_slab_free wipes and releases every chunk. A slot's address
 * is stable for its lifetime. One thread at a time. */
#ifndef SC_SLAB_H
#define SC_SLAB_H

#include <stddef.h>
#include <stdint.h>

#define SC_SLAB_CHUNK_SLOTS 256u
#define SC_SLAB_NONE UINT32_MAX

typedef struct sc_slab {
  size_t slot_size;   /* rounded up to 64 bytes (cache line) */
  uint32_t max_slots;
  uint32_t nchunks;   /* chunks allocated */
  uint32_t used;      /* slots handed out */
  uint8_t **chunks;   /* nchunks regions of SC_SLAB_CHUNK_SLOTS slots */
  uint32_t *free_idx; /* stack of free slot indices */
  uint32_t nfree;
} sc_slab;

/* Returns 0, SECCHAT_ERR_INVALID_ARGUMENT or SECCHAT_ERR_NOMEM. No chunk is
 * allocated yet. */
int sc_slab_init(sc_slab *s, size_t slot_size, uint32_t max_slots);
void sc_slab_free(sc_slab *s);

/* A zeroed slot: its index, or SC_SLAB_NONE (max_slots reached or out of
 * memory). */
uint32_t sc_slab_alloc(sc_slab *s);
void *sc_slab_ptr(const sc_slab *s, uint32_t idx);
/* Wipe the slot and return it. */
void sc_slab_release(sc_slab *s, uint32_t idx);

/* Bytes of locked memory held (chunks). */
size_t sc_slab_bytes(const sc_slab *s);

#endif
