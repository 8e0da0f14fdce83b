/*
 * output.h: how chatc lines look on a terminal: colour policy and the
 * formatting of one chat line ("[12:34:56] alice: hello").
 *
 * Colours (ANSI SGR) are used only when stdout is a terminal and NO_COLOR
 * is unset or empty (https://no-color.org). Every user-controlled string is
 * escaped with chatc_escape() here, so a formatted line is always one
 * printable line whatever a peer sends.
 *
 * Threads: pure functions, thread-safe (chatc_color_enabled reads the
 * environment).
 */
#ifndef CHATC_OUTPUT_H
#define CHATC_OUTPUT_H

#include <stddef.h>
#include <time.h>

/* Pure policy: 1 if colours are wanted for a stream that is (is_tty) a
 * terminal, given the value of NO_COLOR (NULL when unset). */
int chatc_color_wanted(int is_tty, const char *no_color);

/* chatc_color_wanted(isatty(fd), getenv("NO_COLOR")). */
int chatc_color_enabled(int fd);

/* Line flags. */
#define CHATC_LINE_SELF 1u       /* our own message: the name in green */
#define CHATC_LINE_UNVERIFIED 2u /* author signature not verified: a red tag */
#define CHATC_LINE_NOTICE 4u     /* a status notice ("*** text"), no name */
#define CHATC_LINE_ERROR 8u      /* an error notice ("!!! text") in red */

/* Longest escaped name shown (longer ones end in "..."). */
#define CHATC_NAME_SHOW_MAX 64u

/* Format one line (no trailing newline) into out (cap >= 1, always
 * NUL-terminated): "[HH:MM:SS] " when tm is not NULL, then "name: " unless
 * CHATC_LINE_NOTICE/ERROR, then the text; name and text are escaped, the
 * text is cut with "..." when the line would not fit. With color, SGR
 * sequences (ours only) frame the time, the name and the tags. Returns the
 * length written. */
size_t chatc_format_line(char *out, size_t cap, int color, const struct tm *tm, const char *name,
                         size_t name_len, const char *text, size_t text_len, unsigned flags);

#endif /* CHATC_OUTPUT_H */
