/* safety.c: safety numbers (see include/secchat/identity.h; algorithm in
 * docs/crypto.md, "Safety numbers"). Modelled on Signal's numeric
 * fingerprints: each user's key is hashed iteratively (to make grinding for
 * a colliding key costlier) into 30 digits, and the two halves are sorted
 * so both users see the same string. */
#include <string.h>

#include <sodium.h>

#include <secchat/secchat.h>

#include "crypto.h"

#define SAFETY_ITERATIONS 5200
#define HALF_DIGITS 30

/* 30 ASCII digits (no NUL) for one signing key. */
static void safety_half(char out[HALF_DIGITS], const uint8_t pk[32])
{
  uint8_t d[64], in[64 + 32];
  memcpy(in, SC_CTX_SAFETY, sizeof SC_CTX_SAFETY); /* ctx || 0x00 */
  memcpy(in + sizeof SC_CTX_SAFETY, pk, 32);
  crypto_generichash(d, 64, in, sizeof SC_CTX_SAFETY + 32, NULL, 0);
  memcpy(in + 64, pk, 32);
  for (int i = 0; i < SAFETY_ITERATIONS; i++) {
    memcpy(in, d, 64);
    crypto_generichash(d, 64, in, sizeof in, NULL, 0);
  }
  for (int k = 0; k < 6; k++) {
    uint64_t v = 0;
    for (int j = 0; j < 5; j++)
      v = (v << 8) | d[5 * k + j];
    v %= 100000;
    for (int j = 4; j >= 0; j--) {
      out[5 * k + j] = (char)('0' + v % 10);
      v /= 10;
    }
  }
}

int secchat_safety_number(const uint8_t sign_pk_a[32], const uint8_t sign_pk_b[32], char *out,
                          size_t cap)
{
  if (!sign_pk_a || !sign_pk_b || !out)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  if (cap < SECCHAT_SAFETY_NUMBER_BYTES)
    return SECCHAT_ERR_BUFFER_TOO_SMALL;
  if (sc_check_sign_pk(sign_pk_a) || sc_check_sign_pk(sign_pk_b))
    return SECCHAT_ERR_BAD_KEY;
  char a[HALF_DIGITS], b[HALF_DIGITS], all[2 * HALF_DIGITS];
  safety_half(a, sign_pk_a);
  safety_half(b, sign_pk_b);
  /* Public values: an ordinary comparison is fine. */
  int a_first = memcmp(a, b, HALF_DIGITS) <= 0;
  memcpy(all, a_first ? a : b, HALF_DIGITS);
  memcpy(all + HALF_DIGITS, a_first ? b : a, HALF_DIGITS);
  size_t o = 0;
  for (int g = 0; g < 12; g++) {
    if (g)
      out[o++] = ' ';
    memcpy(out + o, all + 5 * g, 5);
    o += 5;
  }
  out[o] = '\0';
  return 0;
}

/* Digits of s without spaces into d[60]; 0 if s is not exactly 60 digits
 * and spaces. Runs over the whole string whatever it holds. */
static int safety_digits(char d[60], const char *s)
{
  size_t n = 0;
  int ok = 1;
  for (; *s; s++) {
    if (*s == ' ')
      continue;
    if (*s < '0' || *s > '9' || n >= 60) {
      ok = 0;
      continue;
    }
    d[n++] = *s;
  }
  return ok && n == 60;
}

int secchat_safety_number_equal(const char *a, const char *b)
{
  char da[60], db[60];
  if (!a || !b)
    return 0;
  memset(da, 0, sizeof da);
  memset(db, 0, sizeof db);
  int ok_a = safety_digits(da, a);
  int ok_b = safety_digits(db, b);
  int same = sodium_memcmp(da, db, 60) == 0;
  return ok_a & ok_b & same;
}

size_t secchat_safety_number_bytes(void)
{
  return SECCHAT_SAFETY_NUMBER_BYTES;
}
