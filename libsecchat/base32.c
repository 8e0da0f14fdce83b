/* base32.c: see base32.h. */
#include "base32.h"

#include <limits.h>

#include <secchat/secchat.h>

static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";

int sc_base32_encode(char *out, size_t cap, const uint8_t *in, size_t len)
{
  if (!out || (!in && len) || len > (size_t)INT_MAX / 2)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  size_t n = SC_BASE32_LEN(len);
  if (cap < n + 1)
    return SECCHAT_ERR_BUFFER_TOO_SMALL;
  unsigned acc = 0, bits = 0;
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    acc = (acc << 8 | in[i]) & 0xfffu; /* at most 12 live bits */
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out[o++] = alphabet[(acc >> bits) & 31u];
    }
  }
  if (bits)
    out[o++] = alphabet[(acc << (5 - bits)) & 31u];
  out[o] = 0;
  return (int)o;
}

static int value_of(char c)
{
  if (c >= 'a' && c <= 'z')
    return c - 'a';
  if (c >= '2' && c <= '7')
    return c - '2' + 26;
  return -1;
}

int sc_base32_decode(uint8_t *out, size_t cap, const char *in, size_t len)
{
  if ((!out && cap) || (!in && len) || len > (size_t)INT_MAX)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  /* Lengths that leave 1, 3 or 6 characters over a 40-bit group cannot be
   * produced by the encoder. */
  size_t rem = len % 8;
  if (rem == 1 || rem == 3 || rem == 6)
    return SECCHAT_ERR_PROTOCOL;
  size_t n = len * 5 / 8;
  if (cap < n)
    return SECCHAT_ERR_BUFFER_TOO_SMALL;
  unsigned acc = 0, bits = 0;
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    int v = value_of(in[i]);
    if (v < 0)
      return SECCHAT_ERR_PROTOCOL;
    acc = (acc << 5 | (unsigned)v) & 0xfffu; /* at most 12 live bits */
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (uint8_t)(acc >> bits);
    }
  }
  if (acc & ((1u << bits) - 1u)) /* canonical: unused bits are zero */
    return SECCHAT_ERR_PROTOCOL;
  return (int)o;
}
