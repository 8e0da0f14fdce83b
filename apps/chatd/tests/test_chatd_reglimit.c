/* test_chatd_reglimit.c: the process-wide registration budget per address
 * (docs/chatd.md, "Limits across workers"). */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "chatd_testutil.h"
#include "reglimit.h"

#define T0 1800000000000ull

static chatd_ipkey key(unsigned i)
{
  chatd_ipkey k;
  memset(&k, 0, sizeof k);
  k.b[10] = k.b[11] = 0xff;
  memcpy(k.b + 12, &i, sizeof i);
  return k;
}

START_TEST(test_burst_then_refill)
{
  chatd_reglimit *t = chatd_reglimit_new(10, 10); /* one per 6 s */
  chatd_ipkey a = key(1);
  ck_assert_ptr_nonnull(t);
  for (int i = 0; i < 10; i++)
    ck_assert_int_eq(chatd_reglimit_take(t, &a, T0), 1);
  ck_assert_int_eq(chatd_reglimit_take(t, &a, T0), 0);
  ck_assert_int_eq(chatd_reglimit_take(t, &a, T0 + 5999), 0); /* 0.9998 of one */
  ck_assert_int_eq(chatd_reglimit_take(t, &a, T0 + 6000), 1);
  ck_assert_int_eq(chatd_reglimit_take(t, &a, T0 + 6000), 0);
  /* Others unaffected: a key shares a's bucket with probability 1/65,536
   * (random SipHash key), so of 8 other keys at most one may be refused. */
  int others = 0;
  for (unsigned k = 2; k < 10; k++) {
    chatd_ipkey o = key(k);
    others += chatd_reglimit_take(t, &o, T0);
  }
  ck_assert_int_ge(others, 7);
  /* A clock that goes back (another worker's slightly older time) refills
   * nothing and does not break the bucket. */
  ck_assert_int_eq(chatd_reglimit_take(t, &a, T0 + 3000), 0);
  ck_assert_int_eq(chatd_reglimit_take(t, &a, T0 + 12000), 1);
  /* An hour idle: full again, not more. */
  int n = 0;
  while (chatd_reglimit_take(t, &a, T0 + 3600000))
    n++;
  ck_assert_int_eq(n, 10);
  chatd_reglimit_free(t);
}
END_TEST

START_TEST(test_disabled)
{
  chatd_reglimit *t = chatd_reglimit_new(0, 10);
  chatd_ipkey a = key(1);
  for (int i = 0; i < 1000; i++)
    ck_assert_int_eq(chatd_reglimit_take(t, &a, T0), 1);
  chatd_reglimit_free(t);
  chatd_reglimit_free(NULL);
}
END_TEST

/* Four threads (workers) take from one address at once: exactly the
 * burst is admitted in total. */
typedef struct race {
  chatd_reglimit *t;
  atomic_int admitted;
} race;

static void *racer(void *arg)
{
  race *r = arg;
  chatd_ipkey a = key(7);
  for (int i = 0; i < 500; i++)
    if (chatd_reglimit_take(r->t, &a, T0))
      atomic_fetch_add(&r->admitted, 1);
  return NULL;
}

START_TEST(test_shared_by_threads)
{
  race r;
  pthread_t th[4];
  r.t = chatd_reglimit_new(10, 25);
  atomic_init(&r.admitted, 0);
  for (int i = 0; i < 4; i++)
    ck_assert_int_eq(pthread_create(&th[i], NULL, racer, &r), 0);
  for (int i = 0; i < 4; i++)
    pthread_join(th[i], NULL);
  ck_assert_int_eq(atomic_load(&r.admitted), 25);
  chatd_reglimit_free(r.t);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("chatd_reglimit");
  TCase *tc = tcase_create("reglimit");
  tcase_add_test(tc, test_burst_then_refill);
  tcase_add_test(tc, test_disabled);
  tcase_add_test(tc, test_shared_by_threads);
  suite_add_tcase(s, tc);
  return ctu_run(s);
}
