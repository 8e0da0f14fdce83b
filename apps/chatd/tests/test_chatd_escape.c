/* test_chatd_escape.c: log escaping of user-controlled strings (table D8). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chatd_testutil.h"
#include "escape.h"

static const char *esc(const char *in, size_t len)
{
  static char out[1024];
  chatd_escape(out, sizeof out, in, len, NULL);
  return out;
}
#define ESC(lit) esc(lit, sizeof(lit) - 1)

/* Independent reference: undo the escaping (test-side code, written from
 * the rules in escape.h, not from escape.c). Returns the decoded length or
 * -1 when the text is not a well-formed escaped string. */
static int hexdig(char c)
{
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static long unescape(const char *s, uint8_t *out)
{
  size_t n = 0;
  while (*s) {
    unsigned char c = (unsigned char)*s;
    if (c < 0x20 || c == 0x7f || c == '"')
      return -1; /* must never appear raw */
    if (c != '\\') {
      out[n++] = c, s++;
      continue;
    }
    if (s[1] == '\\' || s[1] == '"') {
      out[n++] = (uint8_t)s[1], s += 2;
    } else if (s[1] == 'x' && hexdig(s[2]) >= 0 && hexdig(s[3]) >= 0) {
      out[n++] = (uint8_t)(hexdig(s[2]) * 16 + hexdig(s[3])), s += 4;
    } else if (s[1] == 'u' && s[2] == '{' && s[7] == '}') {
      unsigned cp = 0;
      for (int i = 3; i < 7; i++) {
        if (hexdig(s[i]) < 0)
          return -1;
        cp = cp * 16 + (unsigned)hexdig(s[i]);
      }
      if (cp < 0x800) {
        out[n++] = (uint8_t)(0xc0 | (cp >> 6)), out[n++] = (uint8_t)(0x80 | (cp & 0x3f));
      } else {
        out[n++] = (uint8_t)(0xe0 | (cp >> 12));
        out[n++] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        out[n++] = (uint8_t)(0x80 | (cp & 0x3f));
      }
      s += 8;
    } else {
      return -1;
    }
  }
  return (long)n;
}

START_TEST(plain_ascii_kept)
{
  ck_assert_str_eq(ESC("alice"), "alice");
  ck_assert_str_eq(ESC("a b=c:d/e"), "a b=c:d/e");
  ck_assert_str_eq(ESC(""), "");
}
END_TEST

START_TEST(quote_and_backslash)
{
  ck_assert_str_eq(ESC("say \"hi\""), "say \\\"hi\\\"");
  ck_assert_str_eq(ESC("C:\\dir"), "C:\\\\dir");
}
END_TEST

/* Table D8: none of these may start a new line or reach a terminal raw. */
START_TEST(d8_injections)
{
  ck_assert_str_eq(ESC("eve\nlevel=info event=auth_ok user=admin"),
                   "eve\\x0alevel=info event=auth_ok user=admin");
  ck_assert_str_eq(ESC("eve\r\n"), "eve\\x0d\\x0a");
  ck_assert_str_eq(ESC("\x1b[2Jcleared"), "\\x1b[2Jcleared");
  ck_assert_str_eq(ESC("\x1b]52;c;SGVsbG8=\x07"), "\\x1b]52;c;SGVsbG8=\\x07");
  ck_assert_str_eq(ESC("\x1b]52;c;SGVsbG8=\x1b\\"), "\\x1b]52;c;SGVsbG8=\\x1b\\\\");
  ck_assert_str_eq(ESC("abc\xe2\x80\xae" "fdp.exe"), "abc\\u{202E}fdp.exe"); /* U+202E RLO */
  ck_assert_str_eq(ESC("nul\0byte"), "nul\\x00byte");
  ck_assert_str_eq(ESC("del\x7f"), "del\\x7f");
  ck_assert_str_eq(ESC("\t"), "\\x09");
}
END_TEST

START_TEST(bidi_and_c1_escaped)
{
  static const struct { const char *in; const char *out; } v[] = {
    {"\xd8\x9c", "\\u{061C}"},     {"\xe2\x80\x8e", "\\u{200E}"},
    {"\xe2\x80\x8f", "\\u{200F}"}, {"\xe2\x80\xaa", "\\u{202A}"},
    {"\xe2\x80\xab", "\\u{202B}"}, {"\xe2\x80\xac", "\\u{202C}"},
    {"\xe2\x80\xad", "\\u{202D}"}, {"\xe2\x81\xa6", "\\u{2066}"},
    {"\xe2\x81\xa7", "\\u{2067}"}, {"\xe2\x81\xa8", "\\u{2068}"},
    {"\xe2\x81\xa9", "\\u{2069}"}, {"\xc2\x80", "\\u{0080}"},
    {"\xc2\x9b", "\\u{009B}"},     {"\xc2\x9f", "\\u{009F}"},
    {"\xe2\x80\xa8", "\\u{2028}"}, {"\xe2\x80\xa9", "\\u{2029}"},
  };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
    ck_assert_str_eq(esc(v[i].in, strlen(v[i].in)), v[i].out);
}
END_TEST

START_TEST(valid_utf8_kept)
{
  /* U+00A0 and U+2065 are neighbours of escaped ranges and stay. */
  static const char *keep[] = {"caf\xc3\xa9", "\xe6\x97\xa5\xe6\x9c\xac", "\xf0\x9f\x98\x80",
                               "\xc2\xa0", "\xe2\x81\xa5", "\xe2\x80\xa7",
                               "\xf4\x8f\xbf\xbf", "\xef\xbb\xbf"};
  for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++)
    ck_assert_str_eq(esc(keep[i], strlen(keep[i])), keep[i]);
}
END_TEST

START_TEST(invalid_utf8_bytes)
{
  ck_assert_str_eq(ESC("\x80"), "\\x80");                     /* lone continuation */
  ck_assert_str_eq(ESC("\xc0\xaf"), "\\xc0\\xaf");            /* overlong '/' */
  ck_assert_str_eq(ESC("\xe0\x80\xaf"), "\\xe0\\x80\\xaf");   /* overlong 3-byte */
  ck_assert_str_eq(ESC("\xed\xa0\x80"), "\\xed\\xa0\\x80");   /* surrogate U+D800 */
  ck_assert_str_eq(ESC("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80"); /* > U+10FFFF */
  ck_assert_str_eq(ESC("ok\xe2\x80"), "ok\\xe2\\x80");        /* truncated at end */
  ck_assert_str_eq(ESC("\xe2\x80" "A"), "\\xe2\\x80A");        /* truncated mid */
  ck_assert_str_eq(ESC("\xff\xfe"), "\\xff\\xfe");
  /* An invalid byte does not swallow the valid sequence after it. */
  ck_assert_str_eq(ESC("\xc3\xc3\xa9"), "\\xc3\xc3\xa9");
}
END_TEST

START_TEST(truncation_bounded_and_whole_units)
{
  char out[16];
  int t = 0;
  size_t n;

  /* Fits exactly: no marker. */
  n = chatd_escape(out, sizeof out, "123456789012345", 15, &t);
  ck_assert_uint_eq(n, 15);
  ck_assert_int_eq(t, 0);
  ck_assert_str_eq(out, "123456789012345");

  /* One more byte: cut with "..." within cap - 1. */
  n = chatd_escape(out, sizeof out, "1234567890123456", 16, &t);
  ck_assert_int_eq(t, 1);
  ck_assert_uint_eq(n, 15);
  ck_assert_str_eq(out, "123456789012...");

  /* Escapes are never split: "\x0a" (4 bytes) does not fit after 9. */
  n = chatd_escape(out, sizeof out, "123456789\n\n\n", 12, &t);
  ck_assert_int_eq(t, 1);
  ck_assert_str_eq(out, "123456789...");
  ck_assert_uint_eq(n, strlen(out));

  /* A UTF-8 sequence is never split either. */
  n = chatd_escape(out, sizeof out, "12345678901\xf0\x9f\x98\x80zz", 17, &t);
  ck_assert_int_eq(t, 1);
  ck_assert_str_eq(out, "12345678901...");

  /* Tiny caps: no room for the marker, still terminated. */
  n = chatd_escape(out, 3, "abcdef", 6, &t);
  ck_assert_int_eq(t, 1);
  ck_assert_str_eq(out, "ab");
  n = chatd_escape(out, 1, "abcdef", 6, &t);
  ck_assert_uint_eq(n, 0);
  ck_assert_str_eq(out, "");
  ck_assert_uint_eq(chatd_escape(out, 0, "x", 1, NULL), 0);
}
END_TEST

/* A megabyte of input costs only as much work as the cap allows, and the
 * result stays within it. */
START_TEST(huge_input_bounded)
{
  size_t len = 1u << 20;
  char *in = malloc(len), out[64];
  int t;

  memset(in, '\n', len);
  ck_assert_uint_le(chatd_escape(out, sizeof out, in, len, &t), sizeof out - 1);
  ck_assert_int_eq(t, 1);
  ck_assert_uint_eq(chatd_escaped_len(in, len), 4 * len);
  free(in);
}
END_TEST

/* Random bytes: output is printable and one line, decodes back to the
 * input, and its length matches chatd_escaped_len(). */
START_TEST(random_roundtrip)
{
  uint8_t in[64], back[64 * 4];
  char out[64 * 8 + 1];
  unsigned seed = 12345;

  for (int iter = 0; iter < 20000; iter++) {
    size_t len = (size_t)(iter % 64);
    for (size_t i = 0; i < len; i++) {
      seed = seed * 1103515245u + 12345u;
      /* Bias towards interesting bytes: UTF-8 leads and continuations. */
      uint8_t b = (uint8_t)(seed >> 16);
      in[i] = (seed & 0x100) ? (uint8_t)(0x80 | (b & 0x7f)) : b;
    }
    int t = 1;
    size_t n = chatd_escape(out, sizeof out, in, len, &t);
    ck_assert_int_eq(t, 0);
    ck_assert_uint_eq(n, chatd_escaped_len(in, len));
    ck_assert_ptr_null(memchr(out, '\n', n));
    long m = unescape(out, back);
    ck_assert_int_eq(m, (long)len);
    ck_assert(memcmp(back, in, len) == 0);
  }
}
END_TEST

static Suite *suite(void)
{
  Suite *s = suite_create("chatd_escape");
  TCase *tc = tcase_create("escape");
  tcase_add_test(tc, plain_ascii_kept);
  tcase_add_test(tc, quote_and_backslash);
  tcase_add_test(tc, d8_injections);
  tcase_add_test(tc, bidi_and_c1_escaped);
  tcase_add_test(tc, valid_utf8_kept);
  tcase_add_test(tc, invalid_utf8_bytes);
  tcase_add_test(tc, truncation_bounded_and_whole_units);
  tcase_add_test(tc, huge_input_bounded);
  tcase_add_test(tc, random_roundtrip);
  suite_add_tcase(s, tc);
  return s;
}

int main(void)
{
  return ctu_run(suite());
}
