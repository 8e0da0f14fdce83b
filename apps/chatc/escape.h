/*
 * escape.h: make a user-controlled byte string safe to show on a terminal.
 *
 * Every string a peer or the relay can choose (names, chat names, message
 * text, reasons) goes through chatc_escape() before it is printed, so that
 * nothing can rewrite the screen (ESC[2J), write the clipboard (ESC]52),
 * move the cursor, forge an extra line (\r, \n, U+2028) or visually reorder
 * text (bidi overrides, D8 in docs/security.md).
 *
 * Rules, unit by unit over the input:
 *   - printable ASCII 0x20..0x7e is kept, except '\' -> "\\" (so that an
 *     escape shown on screen can always be told from text that merely
 *     looks like one);
 *   - other ASCII bytes (0x00..0x1f, 0x7f: \n, \r, \t, ESC, NUL) -> "\xNN";
 *   - a well-formed UTF-8 sequence (shortest form, no surrogates, at most
 *     U+10FFFF) is kept, except the C1 controls U+0080..U+009F, the bidi
 *     controls U+061C, U+200E, U+200F, U+202A..U+202E, U+2066..U+2069 and
 *     the separators U+2028, U+2029, which become "\u{XXXX}";
 *   - every byte that does not start a well-formed sequence -> "\xNN".
 * Hex digits are lower case in \xNN and upper case in \u{XXXX}.
 * The output is printable, one line and valid UTF-8.
 *
 * Threads: pure functions, thread-safe.
 */
#ifndef CHATC_ESCAPE_H
#define CHATC_ESCAPE_H

#include <stddef.h>

/* Longest output of one input unit ("\u{XXXX}"). */
#define CHATC_ESCAPE_MAX_UNIT 8u

/* Marker appended when the output had to be cut. */
#define CHATC_ESCAPE_ELLIPSIS "..."

/* Escape len bytes of in into out (cap bytes, cap >= 1), always
 * NUL-terminated. If the whole escaped form does not fit in cap - 1 bytes,
 * the output ends after the last whole unit (an escape or a UTF-8 sequence
 * is never split) followed by "..." and stays within cap - 1 bytes (with
 * cap < 4 it is just cut). in may be NULL when len is 0. Returns the output
 * length; *truncated (may be NULL) is set to 1 when the output was cut. */
size_t chatc_escape(char *out, size_t cap, const void *in, size_t len, int *truncated);

/* Length of the full escaped form of in, without any cap. */
size_t chatc_escaped_len(const void *in, size_t len);

/* 1 if len bytes of s are well-formed UTF-8 (shortest form, no surrogates,
 * at most U+10FFFF; NUL bytes allowed), else 0. */
int chatc_utf8_valid(const void *s, size_t len);

/* Decode one well-formed 2..4 byte UTF-8 sequence at p (n bytes left):
 * its length, with the code point in *cp; 0 if p does not start one
 * (ASCII included). Shared with the JSON emitter's repair of text. */
size_t chatc_utf8_decode(const unsigned char *p, size_t n, unsigned long *cp);

#endif /* CHATC_ESCAPE_H */
