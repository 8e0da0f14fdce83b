/* apperr.c: see apperr.h. */
#include "apperr.h"

#include <stdarg.h>
#include <stdio.h>

int app_fail(int rc, char *err, size_t errlen, const char *fmt, ...)
{
  va_list ap;

  if (err != NULL && errlen > 0) {
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return rc;
}
