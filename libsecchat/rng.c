/* rng.c: randomness hook (see rng.h). */
#include "rng.h"

#include <string.h>

#include <sodium.h>

static sc_rng_fn rng_fn;
static void *rng_ctx;

void sc_random(void *buf, size_t len)
{
  if (len == 0)
    return;
  if (rng_fn)
    rng_fn(rng_ctx, buf, len);
  else
    randombytes_buf(buf, len);
}

void sc_rng_set(sc_rng_fn fn, void *ctx)
{
  rng_fn = fn;
  rng_ctx = ctx;
}

void sc_test_rng_init(sc_test_rng *r, const unsigned char seed[32])
{
  memcpy(r->key, seed, 32);
  r->counter = 0;
}

/* Output = ChaCha20(key, nonce = 0) keystream from byte offset `counter`:
 * the stream is the same whatever the request sizes, so vectors do not
 * depend on how callers slice their reads. */
void sc_test_rng_fn(void *ctx, void *buf, size_t len)
{
  sc_test_rng *r = ctx;
  static const unsigned char nonce[crypto_stream_chacha20_IETF_NONCEBYTES];
  unsigned char block[64];
  unsigned char *out = buf;
  while (len > 0) {
    uint32_t blk = (uint32_t)(r->counter / 64);
    size_t off = (size_t)(r->counter % 64);
    size_t n = 64 - off < len ? 64 - off : len;
    memset(block, 0, sizeof block);
    crypto_stream_chacha20_ietf_xor_ic(block, block, sizeof block, nonce, blk, r->key);
    memcpy(out, block + off, n);
    out += n;
    len -= n;
    r->counter += n;
  }
  sodium_memzero(block, sizeof block);
}
