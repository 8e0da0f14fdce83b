/* relaywire.c: see relaywire.h. */
#include "relaywire.h"

#include <stdlib.h>
#include <string.h>

void rw_nonce(uint8_t nonce[12], uint32_t dir, uint64_t n)
{
  memset(nonce, 0, 12);
  nonce[0] = (uint8_t)dir;
  for (int i = 0; i < 8; i++)
    nonce[4 + i] = (uint8_t)(n >> (8 * i));
}

int rw_reserve(uint8_t **buf, size_t *cap, size_t need, size_t first)
{
  if (need <= *cap)
    return 0;
  size_t nc = *cap ? *cap : first;
  while (nc < need)
    nc *= 2;
  uint8_t *p = realloc(*buf, nc);
  if (p == NULL)
    return -1;
  *buf = p;
  *cap = nc;
  return 0;
}
