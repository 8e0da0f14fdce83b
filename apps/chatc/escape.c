/* escape.c: terminal-safe escaping (rules in escape.h), by the apps' shared
 * implementation (apps/common/textsafe.c). */
#include "escape.h"

#include "textsafe.h"

_Static_assert(CHATC_ESCAPE_MAX_UNIT == APP_ESCAPE_MAX_UNIT, "unit size");

size_t chatc_escape(char *out, size_t cap, const void *in, size_t len, int *truncated)
{
  return app_escape(out, cap, in, len, 0, truncated);
}

size_t chatc_escaped_len(const void *in, size_t len) { return app_escaped_len(in, len, 0); }

int chatc_utf8_valid(const void *s, size_t len) { return app_utf8_valid(s, len); }

size_t chatc_utf8_decode(const unsigned char *p, size_t n, unsigned long *cp)
{
  return app_utf8_decode(p, n, cp);
}
