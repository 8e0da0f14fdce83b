/* clockshift.c: LD_PRELOAD shim for process tests (compiled by the test
 * that uses it). Shifts CLOCK_REALTIME by CLOCKSHIFT_S seconds (signed) so
 * that one process sees a wrong wall clock; other clocks are untouched. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>

int clock_gettime(clockid_t id, struct timespec *ts)
{
  static int (*real)(clockid_t, struct timespec *);
  if (real == NULL)
    real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
  int rc = real(id, ts);
  const char *v = getenv("CLOCKSHIFT_S");
  if (rc == 0 && id == CLOCK_REALTIME && v != NULL)
    ts->tv_sec += strtol(v, NULL, 10);
  return rc;
}
