/* escape.c: log-safe escaping (rules in escape.h), by the apps' shared
 * implementation (apps/common/textsafe.c) with '"' escaped too, so values
 * can sit between quotes. */
#include "escape.h"

#include "textsafe.h"

_Static_assert(CHATD_ESCAPE_MAX_UNIT == APP_ESCAPE_MAX_UNIT, "unit size");

size_t chatd_escape(char *out, size_t cap, const void *in, size_t len, int *truncated)
{
  return app_escape(out, cap, in, len, APP_ESCAPE_QUOTE, truncated);
}

size_t chatd_escaped_len(const void *in, size_t len)
{
  return app_escaped_len(in, len, APP_ESCAPE_QUOTE);
}
