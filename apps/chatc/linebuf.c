/* linebuf.c: bounded line splitting (see linebuf.h). */
#include "linebuf.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

int chatc_linebuf_init(chatc_linebuf *lb, size_t max)
{
  lb->len = 0;
  lb->max = max;
  lb->discarding = 0;
  lb->buf = malloc(max);
  return lb->buf != NULL ? 0 : -1;
}

void chatc_linebuf_feed(chatc_linebuf *lb, const void *data, size_t len, chatc_line_fn fn,
                        void *arg)
{
  const char *p = data;

  while (len > 0) {
    const char *nl = memchr(p, '\n', len);
    size_t chunk = nl != NULL ? (size_t)(nl - p) : len;

    if (lb->discarding) {
      /* skip */
    } else if (chunk > lb->max - lb->len) {
      lb->discarding = 1;
      sodium_memzero(lb->buf, lb->len);
      lb->len = 0;
      fn(arg, NULL, 0, 1);
    } else {
      memcpy(lb->buf + lb->len, p, chunk);
      lb->len += chunk;
    }
    if (nl == NULL)
      return;
    if (!lb->discarding)
      fn(arg, lb->buf, lb->len, 0);
    sodium_memzero(lb->buf, lb->len);
    lb->len = 0;
    lb->discarding = 0;
    p = nl + 1;
    len -= chunk + 1;
  }
}

void chatc_linebuf_finish(chatc_linebuf *lb, chatc_line_fn fn, void *arg)
{
  if (!lb->discarding && lb->len > 0)
    fn(arg, lb->buf, lb->len, 0);
  sodium_memzero(lb->buf, lb->len);
  lb->len = 0;
  lb->discarding = 0;
}

void chatc_linebuf_free(chatc_linebuf *lb)
{
  if (lb->buf != NULL) {
    sodium_memzero(lb->buf, lb->max);
    free(lb->buf);
  }
  lb->buf = NULL;
  lb->len = 0;
}
