/*
 * linebuf.h: split a byte stream (stdin in --json mode) into lines, with a
 * bound on the line length.
 *
 * A line longer than max bytes (without its "\n") is reported once, as
 * soon as it exceeds max, with too_long = 1 and no data; the rest of it is
 * discarded up to and including its "\n", and the stream continues with
 * the next line. Memory stays at most max bytes whatever the input.
 *
 * Threads: one thread at a time per chatc_linebuf.
 */
#ifndef CHATC_LINEBUF_H
#define CHATC_LINEBUF_H

#include <stddef.h>

/* Called for every line (without "\n"), or once per oversized line with
 * line NULL, len 0 and too_long 1. line is valid only during the call. */
typedef void (*chatc_line_fn)(void *arg, const char *line, size_t len, int too_long);

typedef struct chatc_linebuf {
  char *buf;
  size_t len, max;
  int discarding; /* inside an oversized line */
} chatc_linebuf;

/* 0, or -1 if out of memory. max >= 1. */
int chatc_linebuf_init(chatc_linebuf *lb, size_t max);

/* Feed len bytes; calls fn for each complete line in order. */
void chatc_linebuf_feed(chatc_linebuf *lb, const void *data, size_t len, chatc_line_fn fn,
                        void *arg);

/* End of stream: a last line without "\n" is delivered. */
void chatc_linebuf_finish(chatc_linebuf *lb, chatc_line_fn fn, void *arg);

/* Wipe (lines may hold message text) and free. */
void chatc_linebuf_free(chatc_linebuf *lb);

#endif /* CHATC_LINEBUF_H */
