/*
 * backoff.h: when to try reconnecting to the relay.
 *
 * Exponential backoff with "full jitter": the n-th consecutive failure
 * (n = 0, 1, ...) waits a uniformly random time in [0, min(cap, base * 2^n)]
 * milliseconds, so that clients dropped together by a restarting relay do
 * not come back together. After a session that stayed up long enough
 * (stable_ms) the next failure counts as the first again.
 *
 * Pure state + an injected random source, so tests are deterministic.
 * Threads: one thread at a time per chatc_backoff.
 */
#ifndef CHATC_BACKOFF_H
#define CHATC_BACKOFF_H

#include <stdint.h>

/* Random source: a uniformly distributed 32-bit value. */
typedef uint32_t (*chatc_rand_fn)(void *arg);

typedef struct chatc_backoff {
  uint32_t base_ms;   /* first ceiling: 500 */
  uint32_t cap_ms;    /* largest ceiling: 30000 */
  uint32_t stable_ms; /* a session at least this long resets: 10000 */
  uint32_t attempt;   /* consecutive failures so far */
  uint64_t up_since;  /* when the current session came up; 0 if down */
  chatc_rand_fn rand;
  void *rand_arg;
} chatc_backoff;

#define CHATC_BACKOFF_BASE_MS 500u
#define CHATC_BACKOFF_CAP_MS 30000u
#define CHATC_BACKOFF_STABLE_MS 10000u

/* Defaults above; rand NULL means libsodium's randombytes_random(). */
void chatc_backoff_init(chatc_backoff *b, chatc_rand_fn rand, void *rand_arg);

/* The ceiling of the wait for failure number attempt: min(cap, base * 2^attempt). */
uint32_t chatc_backoff_ceiling(const chatc_backoff *b, uint32_t attempt);

/* The connection failed or dropped at now_ms: returns the delay (ms) to
 * wait before the next attempt, in [0, ceiling], and counts the failure
 * (unless the session that just ended was stable: then it restarts at 0). */
uint32_t chatc_backoff_next(chatc_backoff *b, uint64_t now_ms);

/* A session is up (authenticated) at now_ms. */
void chatc_backoff_connected(chatc_backoff *b, uint64_t now_ms);

/* Forget every failure (e.g. the user asked to reconnect now). */
void chatc_backoff_reset(chatc_backoff *b);

#endif /* CHATC_BACKOFF_H */
