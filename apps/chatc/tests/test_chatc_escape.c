/* Terminal escaping (escape.c) and line formatting (output.c): D8 strings. */
#include "escape.h"
#include "output.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *esc(const char *in, size_t len)
{
  static char out[1024];

  chatc_escape(out, sizeof(out), in, len, NULL);
  ck_assert_uint_eq(strlen(out), chatc_escaped_len(in, len));
  return out;
}
#define ESC(lit) esc(lit, sizeof(lit) - 1)

START_TEST(d8_strings)
{
  ck_assert_str_eq(ESC("\x1b[2Jclear"), "\\x1b[2Jclear");
  ck_assert_str_eq(ESC("\x1b]52;c;SGVsbG8=\x07"), "\\x1b]52;c;SGVsbG8=\\x07");
  ck_assert_str_eq(ESC("abc\xe2\x80\xae" "fdp.exe"), "abc\\u{202E}fdp.exe");
  ck_assert_str_eq(ESC("eve\ninjected line"), "eve\\x0ainjected line");
  ck_assert_str_eq(ESC("cr\rreturn"), "cr\\x0dreturn");
  ck_assert_str_eq(ESC("nul\0byte"), "nul\\x00byte");
  ck_assert_str_eq(ESC("tab\tdel\x7f"), "tab\\x09del\\x7f");
  /* C1 CSI as UTF-8 (U+009B) would act as ESC[ on some terminals. */
  ck_assert_str_eq(ESC("\xc2\x9b" "2J"), "\\u{009B}2J");
  ck_assert_str_eq(ESC("\xe2\x80\xa8\xe2\x80\xa9"), "\\u{2028}\\u{2029}");
}
END_TEST

START_TEST(every_bidi_control)
{
  static const unsigned long cps[] = {0x061c, 0x200e, 0x200f, 0x202a, 0x202b, 0x202c,
                                      0x202d, 0x202e, 0x2066, 0x2067, 0x2068, 0x2069};
  char in[4], want[16];

  for (size_t i = 0; i < sizeof(cps) / sizeof(cps[0]); i++) {
    unsigned long c = cps[i];
    size_t n;
    if (c < 0x800) {
      in[0] = (char)(0xc0 | (c >> 6)), in[1] = (char)(0x80 | (c & 0x3f)), n = 2;
    } else {
      in[0] = (char)(0xe0 | (c >> 12)), in[1] = (char)(0x80 | ((c >> 6) & 0x3f));
      in[2] = (char)(0x80 | (c & 0x3f)), n = 3;
    }
    snprintf(want, sizeof(want), "\\u{%04lX}", c);
    ck_assert_str_eq(esc(in, n), want);
  }
  /* Neighbours are ordinary text. */
  ck_assert_str_eq(ESC("\xe2\x80\xa9x\xe2\x80\xaf"), "\\u{2029}x\xe2\x80\xaf");
}
END_TEST

START_TEST(invalid_utf8)
{
  ck_assert_str_eq(ESC("\xff"), "\\xff");
  ck_assert_str_eq(ESC("\xc0\xaf"), "\\xc0\\xaf");             /* overlong '/' */
  ck_assert_str_eq(ESC("\xed\xa0\x80"), "\\xed\\xa0\\x80");     /* surrogate */
  ck_assert_str_eq(ESC("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80"); /* > U+10FFFF */
  ck_assert_str_eq(ESC("\xe2\x82"), "\\xe2\\x82");             /* truncated */
  ck_assert_str_eq(ESC("\x80"), "\\x80");                      /* lone continuation */
  ck_assert_int_eq(chatc_utf8_valid("\xe2\x82", 2), 0);
  ck_assert_int_eq(chatc_utf8_valid("h\xc3\xa9", 3), 1);
}
END_TEST

START_TEST(text_kept)
{
  ck_assert_str_eq(ESC("plain ASCII ~!@#"), "plain ASCII ~!@#");
  ck_assert_str_eq(ESC("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80"),
                   "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80");
  /* A backslash is doubled: "\x1b" typed as text never looks like an escape. */
  ck_assert_str_eq(ESC("a\\x1b"), "a\\\\x1b");
  ck_assert_str_eq(ESC(""), "");
}
END_TEST

START_TEST(bounded)
{
  char big[4096], out[64];
  int tr = 0;
  size_t n;

  memset(big, 0x1b, sizeof(big));
  n = chatc_escape(out, sizeof(out), big, sizeof(big), &tr);
  ck_assert_int_eq(tr, 1);
  ck_assert_uint_le(n, sizeof(out) - 1);
  ck_assert_uint_eq(n, strlen(out));
  /* Whole units only: 15 "\x1b" (60 bytes) then "..." = 63 = cap - 1. */
  ck_assert_uint_eq(n, 60 + 3);
  ck_assert_str_eq(out + n - 3, "...");
  for (size_t i = 0; i + 3 < n; i += 4)
    ck_assert_int_eq(memcmp(out + i, "\\x1b", 4), 0);
  /* Exactly fitting output is not cut. */
  n = chatc_escape(out, 5, "\x1b", 1, &tr);
  ck_assert_int_eq(tr, 0);
  ck_assert_str_eq(out, "\\x1b");
  /* A UTF-8 sequence is never split. */
  n = chatc_escape(out, 6, "ab\xe2\x82\xac" "cdef", 9, &tr);
  ck_assert_int_eq(tr, 1);
  ck_assert_str_eq(out, "ab...");
  ck_assert_uint_eq(chatc_escape(out, 1, "abc", 3, NULL), 0);
  ck_assert_str_eq(out, "");
}
END_TEST

START_TEST(color_policy)
{
  ck_assert_int_eq(chatc_color_wanted(1, NULL), 1);
  ck_assert_int_eq(chatc_color_wanted(1, ""), 1);
  ck_assert_int_eq(chatc_color_wanted(1, "1"), 0);
  ck_assert_int_eq(chatc_color_wanted(0, NULL), 0);
}
END_TEST

static const char evil_name[] = "mal\x1b[31mlory\xe2\x80\xae";
static const char evil_text[] = "x\x1b[2J\x1b]52;c;SGk=\x07\r\n\xe2\x80\xae" "y";

START_TEST(format_plain)
{
  char line[256];
  struct tm tm = {.tm_hour = 9, .tm_min = 5, .tm_sec = 7};
  size_t n = chatc_format_line(line, sizeof(line), 0, &tm, evil_name, sizeof(evil_name) - 1,
                               evil_text, sizeof(evil_text) - 1, CHATC_LINE_UNVERIFIED);

  ck_assert_uint_eq(n, strlen(line));
  ck_assert_str_eq(line, "[09:05:07] mal\\x1b[31mlory\\u{202E} [unverified]: "
                         "x\\x1b[2J\\x1b]52;c;SGk=\\x07\\x0d\\x0a\\u{202E}y");
  for (size_t i = 0; i < n; i++)
    ck_assert((unsigned char)line[i] >= 0x20 && line[i] != 0x7f);
  n = chatc_format_line(line, sizeof(line), 0, NULL, NULL, 0, "connected", 9, CHATC_LINE_NOTICE);
  ck_assert_str_eq(line, "*** connected");
}
END_TEST

START_TEST(format_color_only_sgr)
{
  char line[256];
  struct tm tm = {.tm_hour = 23, .tm_min = 59, .tm_sec = 59};
  size_t n = chatc_format_line(line, sizeof(line), 1, &tm, evil_name, sizeof(evil_name) - 1,
                               evil_text, sizeof(evil_text) - 1, CHATC_LINE_SELF);
  int escapes = 0;

  /* Every ESC in the output is one of our SGR sequences: ESC [ digits/; m. */
  for (size_t i = 0; i < n; i++) {
    if (line[i] != 0x1b)
      continue;
    escapes++;
    ck_assert_int_eq(line[i + 1], '[');
    size_t j = i + 2;
    while (j < n && ((line[j] >= '0' && line[j] <= '9') || line[j] == ';'))
      j++;
    ck_assert_int_eq(line[j], 'm');
  }
  ck_assert_int_ge(escapes, 4);
  ck_assert_ptr_nonnull(strstr(line, "\\x1b[2J"));
}
END_TEST

START_TEST(format_bounded)
{
  char text[2000], line[100];
  size_t n;

  memset(text, '\n', sizeof(text));
  n = chatc_format_line(line, sizeof(line), 1, NULL, "bob", 3, text, sizeof(text), 0);
  ck_assert_uint_lt(n, sizeof(line));
  ck_assert_uint_eq(n, strlen(line));
  /* The colour is still reset at the end of a cut line. */
  n = chatc_format_line(line, sizeof(line), 1, NULL, NULL, 0, text, sizeof(text),
                        CHATC_LINE_ERROR);
  ck_assert_str_eq(line + n - 4, "\x1b[0m");
}
END_TEST

int main(void)
{
  Suite *s = suite_create("chatc_escape");
  TCase *tc = tcase_create("core");
  SRunner *sr;
  int failed;

  tcase_add_test(tc, d8_strings);
  tcase_add_test(tc, every_bidi_control);
  tcase_add_test(tc, invalid_utf8);
  tcase_add_test(tc, text_kept);
  tcase_add_test(tc, bounded);
  tcase_add_test(tc, color_policy);
  tcase_add_test(tc, format_plain);
  tcase_add_test(tc, format_color_only_sgr);
  tcase_add_test(tc, format_bounded);
  suite_add_tcase(s, tc);
  sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? 0 : 1;
}
