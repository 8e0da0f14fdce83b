/* test_chatd_iptable.c: per-address connection counts (D2). */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "chatd_testutil.h"
#include "iptable.h"

static chatd_ipkey key4(const char *a)
{
  struct sockaddr_in in;
  chatd_ipkey k;
  memset(&in, 0, sizeof in);
  in.sin_family = AF_INET;
  ck_assert_int_eq(inet_pton(AF_INET, a, &in.sin_addr), 1);
  chatd_ipkey_from_sockaddr(&k, (struct sockaddr *)&in);
  return k;
}

static chatd_ipkey key6(const char *a)
{
  struct sockaddr_in6 in6;
  chatd_ipkey k;
  memset(&in6, 0, sizeof in6);
  in6.sin6_family = AF_INET6;
  ck_assert_int_eq(inet_pton(AF_INET6, a, &in6.sin6_addr), 1);
  chatd_ipkey_from_sockaddr(&k, (struct sockaddr *)&in6);
  return k;
}

START_TEST(test_cap_per_address)
{
  chatd_iptable *t = chatd_iptable_new(3);
  chatd_ipkey a = key4("127.0.0.2"), b = key4("127.0.0.3");
  ck_assert_ptr_nonnull(t);
  for (int i = 0; i < 3; i++)
    ck_assert_int_eq(chatd_iptable_acquire(t, &a), 1);
  ck_assert_int_eq(chatd_iptable_acquire(t, &a), 0); /* beyond the cap */
  ck_assert_uint_eq(chatd_iptable_count(t, &a), 3);
  ck_assert_int_eq(chatd_iptable_acquire(t, &b), 1); /* others unaffected */
  chatd_iptable_release(t, &a);
  ck_assert_int_eq(chatd_iptable_acquire(t, &a), 1); /* room again */
  for (int i = 0; i < 3; i++)
    chatd_iptable_release(t, &a);
  ck_assert_uint_eq(chatd_iptable_count(t, &a), 0);
  chatd_iptable_release(t, &a); /* unknown: ignored */
  ck_assert_uint_eq(chatd_iptable_count(t, &b), 1);
  chatd_iptable_free(t);
}
END_TEST

START_TEST(test_v4_mapped_is_v4)
{
  chatd_iptable *t = chatd_iptable_new(1);
  chatd_ipkey a = key4("10.1.2.3"), m = key6("::ffff:10.1.2.3"), o = key6("::1");
  ck_assert_mem_eq(a.b, m.b, 16);
  ck_assert_int_eq(chatd_iptable_acquire(t, &a), 1);
  ck_assert_int_eq(chatd_iptable_acquire(t, &m), 0);
  ck_assert_int_eq(chatd_iptable_acquire(t, &o), 1);
  chatd_iptable_free(t); /* frees remaining entries (ASan checks) */
}
END_TEST

/* Native IPv6 counts per /64: a host cannot walk past the cap by taking a
 * fresh address of its /64 per connection. */
START_TEST(test_v6_counts_per_64)
{
  chatd_iptable *t = chatd_iptable_new(1);
  chatd_ipkey a = key6("2001:db8:1:2::1"), b = key6("2001:db8:1:2:ffff:ffff:ffff:fffe"),
              c = key6("2001:db8:1:3::1");
  ck_assert_mem_eq(a.b, b.b, 16);
  ck_assert_int_eq(chatd_iptable_acquire(t, &a), 1);
  ck_assert_int_eq(chatd_iptable_acquire(t, &b), 0);
  ck_assert_int_eq(chatd_iptable_acquire(t, &c), 1);
  chatd_iptable_free(t);
}
END_TEST

START_TEST(test_many_addresses)
{
  chatd_iptable *t = chatd_iptable_new(2);
  for (unsigned i = 0; i < 20000; i++) {
    chatd_ipkey k;
    memset(&k, 0, sizeof k);
    memcpy(k.b, &i, sizeof i);
    ck_assert_int_eq(chatd_iptable_acquire(t, &k), 1);
    ck_assert_int_eq(chatd_iptable_acquire(t, &k), 1);
    ck_assert_int_eq(chatd_iptable_acquire(t, &k), 0);
  }
  for (unsigned i = 0; i < 20000; i++) {
    chatd_ipkey k;
    memset(&k, 0, sizeof k);
    memcpy(k.b, &i, sizeof i);
    ck_assert_uint_eq(chatd_iptable_count(t, &k), 2);
    chatd_iptable_release(t, &k);
    chatd_iptable_release(t, &k);
    ck_assert_uint_eq(chatd_iptable_count(t, &k), 0);
  }
  chatd_iptable_free(t);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("chatd_iptable");
  TCase *tc = tcase_create("iptable");
  tcase_add_test(tc, test_cap_per_address);
  tcase_add_test(tc, test_v4_mapped_is_v4);
  tcase_add_test(tc, test_v6_counts_per_64);
  tcase_add_test(tc, test_many_addresses);
  suite_add_tcase(s, tc);
  return ctu_run(s);
}
