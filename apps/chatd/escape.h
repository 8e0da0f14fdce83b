/*
 * escape.h: make a user-controlled byte string safe for a one-line log record.
 *
 * Everything a peer can choose (user names, reasons, addresses reported by
 * the peer...) goes through chatd_escape() before it reaches a log line, so
 * that no input can forge a second record, rewrite a terminal (ESC[2J,
 * ESC]52 clipboard writes) or visually reorder a line (bidi overrides).
 *
 * Rules, byte by byte over the input:
 *   - printable ASCII 0x20..0x7e is kept, except '\' -> "\\" and '"' -> "\"";
 *   - other ASCII bytes (0x00..0x1f, 0x7f: \n, \r, ESC, NUL...) -> "\xNN";
 *   - a well-formed UTF-8 sequence (shortest form, no surrogates, at most
 *     U+10FFFF) is kept, except the C1 controls U+0080..U+009F, the bidi
 *     controls U+061C, U+200E, U+200F, U+202A..U+202E, U+2066..U+2069 and
 *     the line/paragraph separators U+2028, U+2029 (some viewers break the
 *     line there), which become "\u{XXXX}";
 *   - every byte that does not start a well-formed sequence -> "\xNN".
 * Hex digits are lower case in \xNN and upper case in \u{XXXX}.
 *
 * The output is therefore printable, one line, valid UTF-8, and can be
 * placed between double quotes unambiguously.
 *
 * Threads: pure functions, thread-safe.
 */
#ifndef CHATD_ESCAPE_H
#define CHATD_ESCAPE_H

#include <stddef.h>

/* Longest expansion of one input unit: "\u{XXXX}" for a 2..3-byte
 * sequence, "\xNN" (4 bytes) per byte otherwise. */
#define CHATD_ESCAPE_MAX_UNIT 8u

/* Marker appended when the output had to be cut. */
#define CHATD_ESCAPE_ELLIPSIS "..."

/* Escape len bytes of in into out (cap bytes, cap >= 1), always
 * NUL-terminated. If the whole escaped form does not fit in cap - 1 bytes,
 * the output ends after the last whole unit (an escape or a UTF-8 sequence
 * is never split) followed by "...", and stays within cap - 1 bytes (with
 * cap < 4 there is no room for the marker: the output is just cut).
 * in may be NULL when len is 0. Returns the output length (without the
 * NUL); *truncated, if not NULL, is set to 1 when the output was cut. */
size_t chatd_escape(char *out, size_t cap, const void *in, size_t len, int *truncated);

/* Length of the full escaped form of in, without any cap. */
size_t chatd_escaped_len(const void *in, size_t len);

#endif /* CHATD_ESCAPE_H */
