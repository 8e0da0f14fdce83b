/* reglimit.c: process-wide registration budget per address (see
 * reglimit.h). */
#include "reglimit.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#define PERIOD_MS 60000u

/* Level in units of 1/PERIOD_MS registration: one ms adds exactly `rate`
 * units, so refills never lose a fraction however often a bucket is
 * polled. */
typedef struct bucket {
  uint64_t level;
  uint64_t last_ms; /* 0: never used (full) */
} bucket;

struct chatd_reglimit {
  pthread_mutex_t mu;
  uint64_t rate, burst;
  uint8_t hkey[crypto_shorthash_KEYBYTES];
  bucket b[CHATD_REGLIMIT_BUCKETS];
};

chatd_reglimit *chatd_reglimit_new(unsigned per_min, unsigned burst)
{
  chatd_reglimit *t = calloc(1, sizeof *t);

  if (t == NULL)
    return NULL;
  pthread_mutex_init(&t->mu, NULL);
  t->rate = per_min;
  t->burst = burst;
  randombytes_buf(t->hkey, sizeof t->hkey);
  return t;
}

void chatd_reglimit_free(chatd_reglimit *t)
{
  if (t == NULL)
    return;
  pthread_mutex_destroy(&t->mu);
  free(t);
}

/* Refill by the time elapsed (capped at the burst), then take one. */
static int take(bucket *b, uint64_t rate, uint64_t burst, uint64_t now)
{
  uint64_t cap = burst * PERIOD_MS;

  if (b->last_ms == 0) {
    b->level = cap;
    b->last_ms = now ? now : 1;
  } else if (now > b->last_ms) {
    uint64_t el = now - b->last_ms;
    if (el > cap / rate + 1)
      el = cap / rate + 1; /* refills the bucket anyway; no overflow */
    uint64_t add = el * rate;
    b->level = b->level >= cap - (add < cap ? add : cap) ? cap : b->level + add;
    b->last_ms = now;
  }
  if (b->level < PERIOD_MS)
    return 0;
  b->level -= PERIOD_MS;
  return 1;
}

int chatd_reglimit_take(chatd_reglimit *t, const chatd_ipkey *k, uint64_t now_ms)
{
  uint8_t h[crypto_shorthash_BYTES];
  uint64_t v;
  int ok;

  if (t->rate == 0 || t->burst == 0)
    return 1;
  crypto_shorthash(h, k->b, sizeof k->b, t->hkey);
  memcpy(&v, h, sizeof v);
  pthread_mutex_lock(&t->mu);
  ok = take(&t->b[v & (CHATD_REGLIMIT_BUCKETS - 1)], t->rate, t->burst, now_ms);
  pthread_mutex_unlock(&t->mu);
  return ok;
}
