/* output.c: colour policy and chat line formatting (see output.h). */
#include "output.h"

#include "escape.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SGR_RESET "\x1b[0m"
#define SGR_DIM "\x1b[2m"
#define SGR_NAME "\x1b[1;36m"
#define SGR_SELF "\x1b[1;32m"
#define SGR_RED "\x1b[1;31m"
#define SGR_NOTICE "\x1b[33m"

int chatc_color_wanted(int is_tty, const char *no_color)
{
  return is_tty && (no_color == NULL || no_color[0] == '\0');
}

int chatc_color_enabled(int fd)
{
  return chatc_color_wanted(isatty(fd), getenv("NO_COLOR"));
}

/* Append a literal (our own text) if it fits; the line stays terminated. */
static void put(char *out, size_t cap, size_t *o, const char *s, int on)
{
  size_t n;

  if (!on)
    return;
  n = strlen(s);
  if (*o + n >= cap)
    return;
  memcpy(out + *o, s, n);
  *o += n;
  out[*o] = '\0';
}

/* Append an escaped user-controlled string, at most max output bytes
 * (plus the reserve kept free for a closing SGR reset). */
static void put_escaped(char *out, size_t cap, size_t *o, const char *s, size_t len, size_t max,
                        size_t reserve)
{
  size_t room;

  if (*o + reserve + 1 >= cap)
    return;
  room = cap - *o - reserve;
  if (max + 1 < room)
    room = max + 1;
  *o += chatc_escape(out + *o, room, s, len, NULL);
}

size_t chatc_format_line(char *out, size_t cap, int color, const struct tm *tm, const char *name,
                         size_t name_len, const char *text, size_t text_len, unsigned flags)
{
  size_t o = 0, reserve = color ? sizeof(SGR_RESET) - 1 : 0;
  char ts[32];

  if (cap == 0)
    return 0;
  out[0] = '\0';
  if (tm != NULL) {
    snprintf(ts, sizeof(ts), "[%02d:%02d:%02d] ", tm->tm_hour % 100, tm->tm_min % 100,
             tm->tm_sec % 100);
    put(out, cap, &o, SGR_DIM, color);
    put(out, cap, &o, ts, 1);
    put(out, cap, &o, SGR_RESET, color);
  }
  if (flags & CHATC_LINE_ERROR) {
    put(out, cap, &o, SGR_RED, color);
    put(out, cap, &o, "!!! ", 1);
  } else if (flags & CHATC_LINE_NOTICE) {
    put(out, cap, &o, SGR_NOTICE, color);
    put(out, cap, &o, "*** ", 1);
  } else {
    put(out, cap, &o, (flags & CHATC_LINE_SELF) ? SGR_SELF : SGR_NAME, color);
    put_escaped(out, cap, &o, name, name != NULL ? name_len : 0, CHATC_NAME_SHOW_MAX, reserve);
    put(out, cap, &o, SGR_RESET, color);
    if (flags & CHATC_LINE_UNVERIFIED) {
      put(out, cap, &o, SGR_RED, color);
      put(out, cap, &o, " [unverified]", 1);
      put(out, cap, &o, SGR_RESET, color);
    }
    put(out, cap, &o, ": ", 1);
  }
  put_escaped(out, cap, &o, text, text != NULL ? text_len : 0, (size_t)-2, reserve);
  if (flags & (CHATC_LINE_ERROR | CHATC_LINE_NOTICE))
    put(out, cap, &o, SGR_RESET, color);
  return o;
}
