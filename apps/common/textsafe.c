/* textsafe.c: escaping of user-controlled bytes (rules in textsafe.h). */
#include "textsafe.h"

#include <stdint.h>
#include <string.h>

static const char hexl[] = "0123456789abcdef";
static const char hexu[] = "0123456789ABCDEF";

size_t app_utf8_decode(const unsigned char *p, size_t n, unsigned long *cp)
{
  unsigned long c, min;
  size_t need;

  if (n == 0)
    return 0;
  if (p[0] >= 0xc2 && p[0] <= 0xdf) {
    need = 2, c = p[0] & 0x1fu, min = 0x80;
  } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
    need = 3, c = p[0] & 0x0fu, min = 0x800;
  } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
    need = 4, c = p[0] & 0x07u, min = 0x10000;
  } else {
    return 0; /* ASCII, continuation byte, 0xc0/0xc1, 0xf5..0xff */
  }
  if (n < need)
    return 0;
  for (size_t i = 1; i < need; i++) {
    if ((p[i] & 0xc0u) != 0x80u)
      return 0;
    c = (c << 6) | (p[i] & 0x3fu);
  }
  if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
    return 0;
  *cp = c;
  return need;
}

int app_utf8_valid(const void *s, size_t len)
{
  const unsigned char *p = s;
  unsigned long cp;
  size_t i = 0, n;

  while (i < len) {
    if (p[i] < 0x80) {
      i++;
      continue;
    }
    if ((n = app_utf8_decode(p + i, len - i, &cp)) == 0)
      return 0;
    i += n;
  }
  return 1;
}

/* Valid code points that must not reach a log line or a terminal verbatim. */
static int cp_is_dangerous(unsigned long c)
{
  return (c >= 0x80 && c <= 0x9f)         /* C1 controls (CSI, OSC...) */
         || c == 0x061c                   /* arabic letter mark */
         || c == 0x200e || c == 0x200f    /* LRM, RLM */
         || (c >= 0x202a && c <= 0x202e)  /* LRE RLE PDF LRO RLO */
         || (c >= 0x2066 && c <= 0x2069)  /* LRI RLI FSI PDI */
         || c == 0x2028 || c == 0x2029;   /* line / paragraph separator */
}

/* Escaped form of the unit at in[i] into unit[APP_ESCAPE_MAX_UNIT];
 * returns its length, *used = input bytes consumed. */
static size_t escape_unit(const uint8_t *in, size_t len, size_t i, unsigned flags, char *unit,
                          size_t *used)
{
  uint8_t b = in[i];
  unsigned long cp;
  size_t n;

  *used = 1;
  if (b == '\\' || (b == '"' && (flags & APP_ESCAPE_QUOTE))) {
    unit[0] = '\\', unit[1] = (char)b;
    return 2;
  }
  if (b >= 0x20 && b <= 0x7e) {
    unit[0] = (char)b;
    return 1;
  }
  if (b >= 0x80 && (n = app_utf8_decode(in + i, len - i, &cp)) != 0) {
    *used = n;
    if (!cp_is_dangerous(cp)) {
      memcpy(unit, in + i, n);
      return n;
    }
    /* Every dangerous code point is <= U+FFFF: exactly four digits. */
    unit[0] = '\\', unit[1] = 'u', unit[2] = '{';
    unit[3] = hexu[(cp >> 12) & 0xf], unit[4] = hexu[(cp >> 8) & 0xf];
    unit[5] = hexu[(cp >> 4) & 0xf], unit[6] = hexu[cp & 0xf];
    unit[7] = '}';
    return 8;
  }
  unit[0] = '\\', unit[1] = 'x', unit[2] = hexl[b >> 4], unit[3] = hexl[b & 0xf];
  return 4;
}

size_t app_escaped_len(const void *in, size_t len, unsigned flags)
{
  char unit[APP_ESCAPE_MAX_UNIT];
  size_t total = 0, used;

  for (size_t i = 0; i < len; i += used)
    total += escape_unit(in, len, i, flags, unit, &used);
  return total;
}

/* 1 if the escaped form of in[i..len) fits in room bytes; stops as soon as
 * it does not, so the work is bounded by room, not by len. */
static int rest_fits(const uint8_t *in, size_t len, size_t i, unsigned flags, size_t room)
{
  char unit[APP_ESCAPE_MAX_UNIT];
  size_t total = 0, used;

  for (; i < len; i += used) {
    total += escape_unit(in, len, i, flags, unit, &used);
    if (total > room)
      return 0;
  }
  return 1;
}

size_t app_escape(char *out, size_t cap, const void *in, size_t len, unsigned flags,
                  int *truncated)
{
  static const size_t ell_len = sizeof(APP_ESCAPE_ELLIPSIS) - 1;
  const uint8_t *p = in;
  char unit[APP_ESCAPE_MAX_UNIT];
  size_t budget, reserve, o = 0, used, n;

  if (truncated)
    *truncated = 0;
  if (cap == 0)
    return 0;
  budget = cap - 1;
  reserve = budget >= ell_len ? ell_len : 0;
  for (size_t i = 0; i < len; i += used) {
    n = escape_unit(p, len, i, flags, unit, &used);
    if (o + n + reserve > budget) {
      /* Near the cap: finish only if everything left fits exactly. */
      if (rest_fits(p, len, i, flags, budget - o)) {
        for (; i < len; i += used) {
          n = escape_unit(p, len, i, flags, unit, &used);
          memcpy(out + o, unit, n);
          o += n;
        }
        break;
      }
      memcpy(out + o, APP_ESCAPE_ELLIPSIS, reserve);
      o += reserve;
      if (truncated)
        *truncated = 1;
      break;
    }
    memcpy(out + o, unit, n);
    o += n;
  }
  out[o] = '\0';
  return o;
}
