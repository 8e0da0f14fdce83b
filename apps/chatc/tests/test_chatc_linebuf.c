/* Bounded line splitting for --json stdin (linebuf.c). */
#include "linebuf.h"

#include <check.h>
#include <string.h>

struct got {
  char lines[16][64];
  int too_long[16];
  int n;
};

static void on_line(void *arg, const char *line, size_t len, int too_long)
{
  struct got *g = arg;

  ck_assert_int_lt(g->n, 16);
  ck_assert_uint_lt(len, 64);
  if (line != NULL)
    memcpy(g->lines[g->n], line, len);
  g->lines[g->n][len] = '\0';
  g->too_long[g->n++] = too_long;
}

START_TEST(split_across_chunks)
{
  chatc_linebuf lb;
  struct got g = {0};

  ck_assert_int_eq(chatc_linebuf_init(&lb, 16), 0);
  chatc_linebuf_feed(&lb, "ab", 2, on_line, &g);
  ck_assert_int_eq(g.n, 0);
  chatc_linebuf_feed(&lb, "c\nde\n\nf", 7, on_line, &g);
  ck_assert_int_eq(g.n, 3);
  ck_assert_str_eq(g.lines[0], "abc");
  ck_assert_str_eq(g.lines[1], "de");
  ck_assert_str_eq(g.lines[2], "");
  chatc_linebuf_finish(&lb, on_line, &g);
  ck_assert_int_eq(g.n, 4);
  ck_assert_str_eq(g.lines[3], "f");
  chatc_linebuf_free(&lb);
}
END_TEST

START_TEST(oversized_line_reported_once_and_skipped)
{
  chatc_linebuf lb;
  struct got g = {0};
  char big[100];

  ck_assert_int_eq(chatc_linebuf_init(&lb, 8), 0);
  chatc_linebuf_feed(&lb, "12345678\n", 9, on_line, &g); /* exactly max: fine */
  ck_assert_int_eq(g.n, 1);
  ck_assert_str_eq(g.lines[0], "12345678");
  memset(big, 'x', sizeof(big));
  chatc_linebuf_feed(&lb, big, 5, on_line, &g);
  chatc_linebuf_feed(&lb, big, 5, on_line, &g); /* now 10 > 8: reported at once */
  ck_assert_int_eq(g.n, 2);
  ck_assert_int_eq(g.too_long[1], 1);
  chatc_linebuf_feed(&lb, big, sizeof(big), on_line, &g); /* still discarding */
  ck_assert_int_eq(g.n, 2);
  chatc_linebuf_feed(&lb, "xx\nok\n", 6, on_line, &g);
  ck_assert_int_eq(g.n, 3);
  ck_assert_str_eq(g.lines[2], "ok");
  ck_assert_int_eq(g.too_long[2], 0);
  /* A too-long line without newline at EOF is not delivered. */
  chatc_linebuf_feed(&lb, big, 20, on_line, &g);
  chatc_linebuf_finish(&lb, on_line, &g);
  ck_assert_int_eq(g.n, 4);
  ck_assert_int_eq(g.too_long[3], 1);
  chatc_linebuf_free(&lb);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("chatc_linebuf");
  TCase *tc = tcase_create("core");
  SRunner *sr;
  int failed;

  tcase_add_test(tc, split_across_chunks);
  tcase_add_test(tc, oversized_line_reported_once_and_skipped);
  suite_add_tcase(s, tc);
  sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? 0 : 1;
}
