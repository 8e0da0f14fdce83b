/* slab.h: fixed-size slots for per-connection secrets in locked memory
 * (internal).
 *
 * sodium_malloc costs 4 mappings and 8 KiB per call and fails near 16 k
 * calls, so connection secrets (Noise handshake state, transport keys) do
 * not get one allocation each. A slab hands out fixed-size slots carved
 * from chunks of SC_SLAB_CHUNK_SLOTS slots; each chunk is ONE sodium_malloc
 * region (guard pages, mlock'd best effort: RLIMIT_MEMLOCK may refuse, the
 * memory is then still excluded from nothing but swap locking).
 *
 * Memory follows the load both ways: sc_slab_init maps the first chunk (an
 * idle slab holds one), sc_slab_alloc adds chunks on demand up to
 * max_slots, and sc_slab_release unmaps a chunk once it is empty - unless
 * it is the last one, or the other chunks would then have fewer than
 * SC_SLAB_CHUNK_SLOTS / 2 free slots: the load has to rise by half a chunk
 * again before one is mapped anew, so a load that hovers at a chunk
 * boundary does not map and unmap on every connection. Slots are handed
 * out lowest chunk first, so that the chunks mapped at a peak drain and go
 * when the load falls.
 *
 * Slots are zeroed when handed out and wiped (sodium_memzero) when
 * returned; chunks are wiped when unmapped (sodium_free) and sc_slab_free
 * releases every chunk. A slot's address is stable for its lifetime. One
 * thread at a time. */
#ifndef SC_SLAB_H
#define SC_SLAB_H

#include <stddef.h>
#include <stdint.h>

#define SC_SLAB_CHUNK_SLOTS 256u
#define SC_SLAB_NONE UINT32_MAX

typedef struct sc_slab {
  size_t slot_size;   /* rounded up to 64 bytes (cache line) */
  uint32_t max_slots;
  uint32_t maxchunks; /* entries of chunks, nfree_c */
  uint32_t nchunks;   /* chunks mapped */
  uint32_t used;      /* slots handed out */
  uint32_t nfree;     /* free slots in mapped chunks */
  uint8_t **chunks;   /* maxchunks regions of SC_SLAB_CHUNK_SLOTS slots, NULL: unmapped */
  uint16_t *nfree_c;  /* free slots per chunk */
  uint8_t *stack;     /* per chunk c: its free slots (offsets), SC_SLAB_CHUNK_SLOTS from
                         c * SC_SLAB_CHUNK_SLOTS, nfree_c[c] of them in use */
} sc_slab;

/* Returns 0, SECCHAT_ERR_INVALID_ARGUMENT or SECCHAT_ERR_NOMEM. The first
 * chunk is mapped. */
int sc_slab_init(sc_slab *s, size_t slot_size, uint32_t max_slots);
void sc_slab_free(sc_slab *s);

/* A zeroed slot: its index, or SC_SLAB_NONE (max_slots reached or out of
 * memory). */
uint32_t sc_slab_alloc(sc_slab *s);
void *sc_slab_ptr(const sc_slab *s, uint32_t idx);
/* Wipe the slot and return it; may unmap an emptied chunk (see above). */
void sc_slab_release(sc_slab *s, uint32_t idx);

/* Bytes of locked memory held (mapped chunks). */
size_t sc_slab_bytes(const sc_slab *s);

#endif
