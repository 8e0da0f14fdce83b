/*
 * reglimit.h: registrations per source address, one budget for the whole
 * process (docs/chatd.md, "Limits across workers").
 *
 * Every worker has its own server core; a core's own per-source buckets
 * would let one source register N times the configured rate with N
 * workers (connections go to the least-loaded worker, not by source). So
 * chatd hands the cores a shared admission (secchat_server_config.
 * register_admit) backed by this table: the core still decides WHEN a
 * registration is counted (a well-formed REGISTER on a connection that has
 * not registered yet) and answers the refusal; this table only holds the
 * budget.
 *
 * Token buckets with the core's parameters (rate per minute, burst; a
 * fresh bucket is full; exact integer refill per millisecond), in a fixed
 * direct-mapped table of
 * CHATD_REGLIMIT_BUCKETS chosen by SipHash of the address under a random
 * key: memory never grows, and two addresses that collide share a budget
 * (stricter, never looser; a peer cannot aim at a collision).
 *
 * Threads: chatd_reglimit_take() from any thread (one mutex around a
 * bucket update).
 */
#ifndef CHATD_REGLIMIT_H
#define CHATD_REGLIMIT_H

#include <stdint.h>

#include "iptable.h"

/* 65,536 x 16 bytes = 1 MiB, touched lazily. Two sources in one bucket
 * share a budget, so with n active sources a false refusal needs their
 * registrations to collide: about n^2 / 2^17 pairs share a bucket (with
 * 4,096 buckets the tests' ~20 addresses collided in ~5% of runs). */
#define CHATD_REGLIMIT_BUCKETS 65536u /* power of two */

typedef struct chatd_reglimit chatd_reglimit;

/* per_min registrations per minute per address, burst at once; either 0
 * disables the limit. Returns NULL on ENOMEM. */
chatd_reglimit *chatd_reglimit_new(unsigned per_min, unsigned burst);
void chatd_reglimit_free(chatd_reglimit *t);

/* Take one registration for k at now_ms (any millisecond clock; a time
 * earlier than the bucket's last one refills nothing). Returns 1 if
 * admitted (counted), 0 if k's budget is spent. */
int chatd_reglimit_take(chatd_reglimit *t, const chatd_ipkey *k, uint64_t now_ms);

#endif /* CHATD_REGLIMIT_H */
