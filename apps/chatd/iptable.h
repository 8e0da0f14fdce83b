/*
 * iptable.h: connections per source address, counted across all workers.
 *
 * The acceptor calls chatd_iptable_acquire() for every accepted socket and
 * closes the socket at once when it fails (security.md D2); the worker that
 * owned the connection calls chatd_iptable_release() when it closes it.
 * IPv4-mapped IPv6 sources count as their IPv4 address; native IPv6
 * sources count by their /64 prefix (chatd_ipkey_from_sockaddr), as one
 * host usually holds a whole /64.
 *
 * Memory: one entry per distinct address with at least one connection, so
 * at most the number of open connections; entries are freed when their
 * count drops to zero. Buckets are chosen by SipHash under a random key, so
 * a peer cannot aim many addresses at one bucket.
 *
 * Threads: every function may be called from any thread (one mutex; the
 * critical sections are a bucket walk).
 */
#ifndef CHATD_IPTABLE_H
#define CHATD_IPTABLE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* A source in canonical form: 16 bytes (IPv4 as ::ffff:a.b.c.d; IPv6 as
 * its /64 prefix, the low 64 bits zero). */
typedef struct chatd_ipkey {
  uint8_t b[16];
} chatd_ipkey;

typedef struct chatd_iptable chatd_iptable;

/* cap: connections allowed per address (>= 1). Returns NULL on ENOMEM. */
chatd_iptable *chatd_iptable_new(unsigned cap);
void chatd_iptable_free(chatd_iptable *t);

/* The key of a socket address (AF_INET or AF_INET6; others map to zeros). */
void chatd_ipkey_from_sockaddr(chatd_ipkey *k, const struct sockaddr *sa);

/* Count one more connection from k. Returns 1 if admitted, 0 if k is at
 * the cap (nothing counted), -1 on ENOMEM (nothing counted). */
int chatd_iptable_acquire(chatd_iptable *t, const chatd_ipkey *k);

/* One connection from k ended. Unknown keys are ignored. */
void chatd_iptable_release(chatd_iptable *t, const chatd_ipkey *k);

/* Current count for k (tests, metrics). */
unsigned chatd_iptable_count(chatd_iptable *t, const chatd_ipkey *k);

#endif /* CHATD_IPTABLE_H */
