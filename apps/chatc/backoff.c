/* backoff.c: exponential backoff with full jitter (see backoff.h). */
#include "backoff.h"

#include <sodium.h>

static uint32_t sodium_rand(void *arg)
{
  (void)arg;
  return randombytes_random();
}

void chatc_backoff_init(chatc_backoff *b, chatc_rand_fn rand, void *rand_arg)
{
  b->base_ms = CHATC_BACKOFF_BASE_MS;
  b->cap_ms = CHATC_BACKOFF_CAP_MS;
  b->stable_ms = CHATC_BACKOFF_STABLE_MS;
  b->attempt = 0;
  b->up_since = 0;
  b->rand = rand != NULL ? rand : sodium_rand;
  b->rand_arg = rand_arg;
}

uint32_t chatc_backoff_ceiling(const chatc_backoff *b, uint32_t attempt)
{
  uint64_t c = b->base_ms;

  /* Doubling stops at the cap: no overflow however many attempts. */
  while (attempt-- > 0 && c < b->cap_ms)
    c *= 2;
  return c < b->cap_ms ? (uint32_t)c : b->cap_ms;
}

uint32_t chatc_backoff_next(chatc_backoff *b, uint64_t now_ms)
{
  uint32_t ceil;

  if (b->up_since != 0 && now_ms >= b->up_since && now_ms - b->up_since >= b->stable_ms)
    b->attempt = 0;
  b->up_since = 0;
  ceil = chatc_backoff_ceiling(b, b->attempt);
  if (b->attempt < UINT32_MAX)
    b->attempt++;
  /* Uniform in [0, ceil]: 64-bit multiply-shift, bias below 2^-32 * ceil. */
  return (uint32_t)(((uint64_t)b->rand(b->rand_arg) * ((uint64_t)ceil + 1)) >> 32);
}

void chatc_backoff_connected(chatc_backoff *b, uint64_t now_ms)
{
  b->up_since = now_ms != 0 ? now_ms : 1;
}

void chatc_backoff_reset(chatc_backoff *b)
{
  b->attempt = 0;
  b->up_since = 0;
}
