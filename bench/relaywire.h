/*
 * relaywire.h: what bench/bare_relay and bench/loadgen share to speak the
 * bare relay's encrypted protocol and to buffer a connection's bytes.
 */
#ifndef BENCH_RELAYWIRE_H
#define BENCH_RELAYWIRE_H

#include <stddef.h>
#include <stdint.h>

/* The 12-byte ChaCha20-Poly1305 nonce of message n in direction dir (the
 * bare relay's encrypted mode): dir in byte 0, n little-endian in 4..11. */
void rw_nonce(uint8_t nonce[12], uint32_t dir, uint64_t n);

/* Grow *buf (capacity *cap) to hold need bytes, doubling from first.
 * 0, or -1 when out of memory (*buf and *cap unchanged). */
int rw_reserve(uint8_t **buf, size_t *cap, size_t need, size_t first);

#endif /* BENCH_RELAYWIRE_H */
