/* escape.c: log-safe escaping of user-controlled bytes (rules in escape.h). */
#include "escape.h"

#include <stdint.h>
#include <string.h>

static const char hexl[] = "0123456789abcdef";
static const char hexu[] = "0123456789ABCDEF";

/* Decode one well-formed UTF-8 sequence of 2..4 bytes at p (n bytes left).
 * Returns its length and stores the code point, or 0 if p does not start a
 * well-formed sequence (overlong, surrogate, > U+10FFFF, truncated). */
static size_t utf8_decode(const uint8_t *p, size_t n, uint32_t *cp)
{
  uint32_t c;
  size_t need;
  uint32_t min;

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

/* Code points that are valid but must not reach a log line verbatim. */
static int cp_is_dangerous(uint32_t c)
{
  return (c >= 0x80 && c <= 0x9f)         /* C1 controls */
         || c == 0x061c                   /* arabic letter mark */
         || c == 0x200e || c == 0x200f    /* LRM, RLM */
         || (c >= 0x202a && c <= 0x202e)  /* LRE RLE PDF LRO RLO */
         || (c >= 0x2066 && c <= 0x2069)  /* LRI RLI FSI PDI */
         || c == 0x2028 || c == 0x2029;   /* line / paragraph separator */
}

/* Produce the escaped form of the unit starting at in[i] into unit[]
 * (CHATD_ESCAPE_MAX_UNIT bytes). Returns the unit's output length; *used
 * receives the number of input bytes it consumed. */
static size_t escape_unit(const uint8_t *in, size_t len, size_t i, char *unit, size_t *used)
{
  uint8_t b = in[i];
  uint32_t cp;
  size_t n;

  *used = 1;
  if (b == '\\' || b == '"') {
    unit[0] = '\\', unit[1] = (char)b;
    return 2;
  }
  if (b >= 0x20 && b <= 0x7e) {
    unit[0] = (char)b;
    return 1;
  }
  if (b >= 0x80 && (n = utf8_decode(in + i, len - i, &cp)) != 0) {
    *used = n;
    if (!cp_is_dangerous(cp)) {
      memcpy(unit, in + i, n);
      return n;
    }
    /* All dangerous code points are <= U+FFFF: exactly four digits. */
    unit[0] = '\\', unit[1] = 'u', unit[2] = '{';
    unit[3] = hexu[(cp >> 12) & 0xf], unit[4] = hexu[(cp >> 8) & 0xf];
    unit[5] = hexu[(cp >> 4) & 0xf], unit[6] = hexu[cp & 0xf];
    unit[7] = '}';
    return 8;
  }
  unit[0] = '\\', unit[1] = 'x', unit[2] = hexl[b >> 4], unit[3] = hexl[b & 0xf];
  return 4;
}

size_t chatd_escaped_len(const void *in, size_t len)
{
  const uint8_t *p = in;
  char unit[CHATD_ESCAPE_MAX_UNIT];
  size_t total = 0, used;

  for (size_t i = 0; i < len; i += used)
    total += escape_unit(p, len, i, unit, &used);
  return total;
}

/* 1 if the escaped form of in[i..len) is at most room bytes long. Stops as
 * soon as it is not, so the work is bounded by room, not by len. */
static int rest_fits(const uint8_t *in, size_t len, size_t i, size_t room)
{
  char unit[CHATD_ESCAPE_MAX_UNIT];
  size_t total = 0, used;

  for (; i < len; i += used) {
    total += escape_unit(in, len, i, unit, &used);
    if (total > room)
      return 0;
  }
  return 1;
}

size_t chatd_escape(char *out, size_t cap, const void *in, size_t len, int *truncated)
{
  static const size_t ell_len = sizeof(CHATD_ESCAPE_ELLIPSIS) - 1;
  const uint8_t *p = in;
  char unit[CHATD_ESCAPE_MAX_UNIT];
  size_t budget, reserve, o = 0, used, n;

  if (truncated)
    *truncated = 0;
  if (cap == 0)
    return 0;
  budget = cap - 1;
  reserve = budget >= ell_len ? ell_len : 0;

  for (size_t i = 0; i < len; i += used) {
    n = escape_unit(p, len, i, unit, &used);
    if (o + n + reserve > budget) {
      /* Near the cap: finish only if everything left fits exactly. */
      if (rest_fits(p, len, i, budget - o)) {
        for (; i < len; i += used) {
          n = escape_unit(p, len, i, unit, &used);
          memcpy(out + o, unit, n);
          o += n;
        }
        break;
      }
      memcpy(out + o, CHATD_ESCAPE_ELLIPSIS, reserve);
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
