/*
 * textsafe.h: escaping of user-controlled bytes for the apps (chatd's log
 * lines, chatc's terminal), one implementation for both.
 *
 * Rules, unit by unit over the input:
 *   - printable ASCII 0x20..0x7e is kept, except '\' -> "\\" (and, with
 *     APP_ESCAPE_QUOTE, '"' -> "\"", for values placed between quotes);
 *   - other ASCII bytes (0x00..0x1f, 0x7f: \n, \r, \t, ESC, NUL) -> "\xNN";
 *   - well-formed UTF-8 (shortest form, no surrogates, <= U+10FFFF) is kept,
 *     except C1 controls U+0080..U+009F, the bidi controls U+061C, U+200E,
 *     U+200F, U+202A..U+202E, U+2066..U+2069 and the separators U+2028,
 *     U+2029 (some viewers break lines there), which become "\u{XXXX}";
 *   - every byte of an ill-formed sequence -> "\xNN".
 * Hex digits are lower case in \xNN and upper case in \u{XXXX}. The output
 * is printable, one line and valid UTF-8: nothing can forge a line, rewrite
 * a screen (ESC[2J), write a clipboard (ESC]52) or reorder text visually.
 *
 * Threads: pure functions, thread-safe.
 */
#ifndef APP_TEXTSAFE_H
#define APP_TEXTSAFE_H

#include <stddef.h>

#define APP_ESCAPE_QUOTE 1u     /* also escape '"' */
#define APP_ESCAPE_MAX_UNIT 8u  /* longest output of one unit: "\u{XXXX}" */
#define APP_ESCAPE_ELLIPSIS "..."

/* Escape len bytes of in into out (cap bytes, cap >= 1), always
 * NUL-terminated. If the whole escaped form does not fit in cap - 1 bytes,
 * the output ends after the last whole unit (an escape or a UTF-8 sequence
 * is never split) followed by "...", within cap - 1 bytes (with cap < 4 it
 * is just cut). in may be NULL when len is 0. Returns the output length;
 * *truncated (may be NULL) is set to 1 when the output was cut. The work
 * is bounded by cap, not by len. */
size_t app_escape(char *out, size_t cap, const void *in, size_t len, unsigned flags,
                  int *truncated);

/* Length of the full escaped form of in, without any cap. */
size_t app_escaped_len(const void *in, size_t len, unsigned flags);

/* Decode one well-formed 2..4 byte UTF-8 sequence at p (n bytes left): its
 * length, with the code point in *cp; 0 if p does not start one (ASCII
 * included). */
size_t app_utf8_decode(const unsigned char *p, size_t n, unsigned long *cp);

/* 1 if len bytes of s are well-formed UTF-8 (NUL bytes allowed), else 0. */
int app_utf8_valid(const void *s, size_t len);

#endif /* APP_TEXTSAFE_H */
