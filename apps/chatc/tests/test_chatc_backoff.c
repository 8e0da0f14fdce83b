/* Reconnect backoff with full jitter (backoff.c), with a seeded RNG. */
#include "backoff.h"

#include <check.h>
#include <stdint.h>

/* xorshift32: a deterministic, seedable stand-in for the system RNG. */
static uint32_t xs(void *arg)
{
  uint32_t *s = arg;

  *s ^= *s << 13;
  *s ^= *s >> 17;
  *s ^= *s << 5;
  return *s;
}

static uint32_t fixed(void *arg)
{
  return *(uint32_t *)arg;
}

START_TEST(ceilings)
{
  chatc_backoff b;
  static const uint32_t want[] = {500, 1000, 2000, 4000, 8000, 16000, 30000, 30000};

  chatc_backoff_init(&b, NULL, NULL);
  for (uint32_t i = 0; i < 8; i++)
    ck_assert_uint_eq(chatc_backoff_ceiling(&b, i), want[i]);
  ck_assert_uint_eq(chatc_backoff_ceiling(&b, UINT32_MAX), 30000); /* no overflow */
}
END_TEST

START_TEST(extremes_of_jitter)
{
  chatc_backoff b;
  uint32_t v = 0;

  chatc_backoff_init(&b, fixed, &v);
  ck_assert_uint_eq(chatc_backoff_next(&b, 1000), 0);
  v = UINT32_MAX;
  chatc_backoff_reset(&b);
  ck_assert_uint_eq(chatc_backoff_next(&b, 1000), 500); /* the ceiling is reachable */
  ck_assert_uint_eq(chatc_backoff_next(&b, 1000), 1000);
  for (int i = 0; i < 40; i++)
    ck_assert_uint_le(chatc_backoff_next(&b, 1000), 30000);
  ck_assert_uint_eq(chatc_backoff_next(&b, 1000), 30000);
}
END_TEST

START_TEST(seeded_sequence_within_bounds)
{
  chatc_backoff b;
  uint32_t seed = 12345, seed2 = 12345, first[10];

  chatc_backoff_init(&b, xs, &seed);
  for (uint32_t i = 0; i < 10; i++) {
    first[i] = chatc_backoff_next(&b, 5000);
    ck_assert_uint_le(first[i], chatc_backoff_ceiling(&b, i));
  }
  /* Same seed, same delays: the policy has no hidden randomness. */
  chatc_backoff_init(&b, xs, &seed2);
  for (uint32_t i = 0; i < 10; i++)
    ck_assert_uint_eq(chatc_backoff_next(&b, 5000), first[i]);
}
END_TEST

START_TEST(full_jitter_is_uniform)
{
  chatc_backoff b;
  uint32_t seed = 987654321;
  uint64_t sum = 0;
  unsigned low = 0;
  const int n = 20000;

  chatc_backoff_init(&b, xs, &seed);
  for (int i = 0; i < n; i++) {
    b.attempt = 6; /* ceiling 30000 */
    uint32_t d = chatc_backoff_next(&b, 1);
    sum += d;
    low += d < 3000;
  }
  /* Mean of U[0, 30000] is 15000; 10% of draws fall below 3000. */
  ck_assert_uint_gt(sum / n, 14500);
  ck_assert_uint_lt(sum / n, 15500);
  ck_assert_uint_gt(low, n / 10 - n / 50);
  ck_assert_uint_lt(low, n / 10 + n / 50);
}
END_TEST

START_TEST(reset_after_stable_session)
{
  chatc_backoff b;
  uint32_t v = UINT32_MAX;

  chatc_backoff_init(&b, fixed, &v);
  ck_assert_uint_eq(chatc_backoff_next(&b, 1000), 500);
  ck_assert_uint_eq(chatc_backoff_next(&b, 2000), 1000);
  ck_assert_uint_eq(chatc_backoff_next(&b, 3000), 2000);
  /* A session that dies quickly does not reset the backoff (a relay that
   * accepts and crashes must not be hammered)... */
  chatc_backoff_connected(&b, 10000);
  ck_assert_uint_eq(chatc_backoff_next(&b, 10000 + CHATC_BACKOFF_STABLE_MS - 1), 4000);
  /* ...a stable one does. */
  chatc_backoff_connected(&b, 50000);
  ck_assert_uint_eq(chatc_backoff_next(&b, 50000 + CHATC_BACKOFF_STABLE_MS), 500);
  ck_assert_uint_eq(chatc_backoff_next(&b, 70000), 1000);
  chatc_backoff_reset(&b);
  ck_assert_uint_eq(chatc_backoff_next(&b, 80000), 500);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("chatc_backoff");
  TCase *tc = tcase_create("core");
  SRunner *sr;
  int failed;

  tcase_add_test(tc, ceilings);
  tcase_add_test(tc, extremes_of_jitter);
  tcase_add_test(tc, seeded_sequence_within_bounds);
  tcase_add_test(tc, full_jitter_is_uniform);
  tcase_add_test(tc, reset_after_stable_session);
  suite_add_tcase(s, tc);
  sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? 0 : 1;
}
