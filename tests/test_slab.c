/* test_slab.c: the locked slot slab (libsecchat/slab.c): chunks follow the
 * load both ways, with hysteresis, lowest chunk first. */
#include <stdint.h>
#include <string.h>

#include <check.h>
#include <sodium.h>

#include <secchat/secchat.h>

#include "slab.h"
#include "testutil.h"

#define CH SC_SLAB_CHUNK_SLOTS

static sc_slab S;
static uint32_t IDX[4 * CH];

static void setup(void)
{
  ck_assert_int_eq(secchat_init(), 0);
  ck_assert_int_eq(sc_slab_init(&S, 100, 4 * CH), 0);
}

static void teardown(void) { sc_slab_free(&S); }

static size_t chunk_bytes(void) { return (size_t)CH * S.slot_size; }

/* Take n slots into IDX[0..n). */
static void take(uint32_t n)
{
  for (uint32_t i = 0; i < n; i++) {
    IDX[i] = sc_slab_alloc(&S);
    ck_assert_uint_ne(IDX[i], SC_SLAB_NONE);
  }
}

START_TEST(test_init_maps_one_chunk)
{
  ck_assert_uint_eq(S.slot_size, 128); /* rounded up to 64 */
  ck_assert_uint_eq(sc_slab_bytes(&S), chunk_bytes());
  sc_slab t;
  ck_assert_int_eq(sc_slab_init(&t, 0, 1), SECCHAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(sc_slab_init(&t, 65537, 1), SECCHAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(sc_slab_init(&t, 64, 0), SECCHAT_ERR_INVALID_ARGUMENT);
}
END_TEST

START_TEST(test_slots_zeroed_and_distinct)
{
  take(CH + 1);
  for (uint32_t i = 0; i <= CH; i++) {
    uint8_t *p = sc_slab_ptr(&S, IDX[i]);
    for (size_t k = 0; k < S.slot_size; k++)
      ck_assert_uint_eq(p[k], 0);
    memset(p, (int)(i & 0xff) | 1, S.slot_size);
  }
  for (uint32_t i = 0; i <= CH; i++) /* no slot overlaps another */
    ck_assert_uint_eq(((uint8_t *)sc_slab_ptr(&S, IDX[i]))[S.slot_size - 1], (i & 0xff) | 1);
  sc_slab_release(&S, IDX[3]);
  uint32_t again = sc_slab_alloc(&S);
  ck_assert_uint_eq(again, IDX[3]); /* the lowest chunk's free slot */
  uint8_t *p = sc_slab_ptr(&S, again);
  for (size_t k = 0; k < S.slot_size; k++)
    ck_assert_uint_eq(p[k], 0); /* wiped on release */
}
END_TEST

START_TEST(test_shrinks_with_hysteresis)
{
  take(CH + 1); /* the first slot of a second chunk */
  ck_assert_uint_eq(sc_slab_bytes(&S), 2 * chunk_bytes());
  ck_assert_uint_eq(IDX[CH] / CH, 1);
  /* Chunk 1 empty, chunk 0 full: kept (a load at the boundary must not
   * map and unmap a chunk per connection). */
  sc_slab_release(&S, IDX[CH]);
  ck_assert_uint_eq(sc_slab_bytes(&S), 2 * chunk_bytes());
  IDX[CH] = sc_slab_alloc(&S);
  ck_assert_uint_eq(IDX[CH] / CH, 1);
  sc_slab_release(&S, IDX[CH]);
  /* Chunk 0 down to half a chunk minus one free slot: still both ... */
  for (uint32_t i = 0; i < CH / 2 - 1; i++)
    sc_slab_release(&S, IDX[i]);
  ck_assert_uint_eq(sc_slab_bytes(&S), 2 * chunk_bytes());
  /* ... one more and chunk 1 goes. */
  sc_slab_release(&S, IDX[CH / 2 - 1]);
  ck_assert_uint_eq(sc_slab_bytes(&S), chunk_bytes());
  ck_assert_uint_eq(S.nchunks, 1);
  /* The last chunk stays even when empty. */
  for (uint32_t i = CH / 2; i < CH; i++)
    sc_slab_release(&S, IDX[i]);
  ck_assert_uint_eq(S.used, 0);
  ck_assert_uint_eq(sc_slab_bytes(&S), chunk_bytes());
}
END_TEST

START_TEST(test_peak_drains_to_one_chunk)
{
  take(4 * CH); /* max_slots */
  ck_assert_uint_eq(sc_slab_alloc(&S), SC_SLAB_NONE);
  ck_assert_uint_eq(sc_slab_bytes(&S), 4 * chunk_bytes());
  /* Free chunk 0 entirely and most of chunk 2: chunk 0 goes (a hole),
   * chunk 1 and 3 are full, 2 holds the rest. */
  for (uint32_t i = 0; i < CH; i++)
    sc_slab_release(&S, IDX[i]);
  for (uint32_t i = 2 * CH; i < 2 * CH + CH / 2; i++)
    sc_slab_release(&S, IDX[i]);
  ck_assert_ptr_null(S.chunks[0]);
  ck_assert_uint_eq(sc_slab_bytes(&S), 3 * chunk_bytes());
  /* New slots fill the lowest mapped chunk first (2), then re-map 0. */
  uint32_t a = sc_slab_alloc(&S);
  ck_assert_uint_eq(a / CH, 2);
  sc_slab_release(&S, a);
  /* Everyone leaves: back to one chunk. */
  for (uint32_t i = CH; i < 4 * CH; i++)
    if (i < 2 * CH || i >= 2 * CH + CH / 2)
      sc_slab_release(&S, IDX[i]);
  ck_assert_uint_eq(S.used, 0);
  ck_assert_uint_eq(S.nchunks, 1);
  ck_assert_uint_eq(sc_slab_bytes(&S), chunk_bytes());
  /* And grows again to the full capacity. */
  take(4 * CH);
  ck_assert_uint_eq(sc_slab_alloc(&S), SC_SLAB_NONE);
  ck_assert_uint_eq(sc_slab_bytes(&S), 4 * chunk_bytes());
}
END_TEST

START_TEST(test_short_last_chunk)
{
  sc_slab_free(&S);
  ck_assert_int_eq(sc_slab_init(&S, 64, CH + 10), 0);
  take(CH + 10);
  ck_assert_uint_eq(sc_slab_alloc(&S), SC_SLAB_NONE);
  for (uint32_t i = 0; i < CH + 10; i++)
    ck_assert_uint_lt(IDX[i], CH + 10);
  for (uint32_t i = CH + 10; i-- > 0;)
    sc_slab_release(&S, IDX[i]);
  ck_assert_uint_eq(S.nchunks, 1);
}
END_TEST

static Suite *slab_suite(void)
{
  Suite *s = suite_create("slab");
  TCase *tc = tcase_create("core");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_init_maps_one_chunk);
  tcase_add_test(tc, test_slots_zeroed_and_distinct);
  tcase_add_test(tc, test_shrinks_with_hysteresis);
  tcase_add_test(tc, test_peak_drains_to_one_chunk);
  tcase_add_test(tc, test_short_last_chunk);
  suite_add_tcase(s, tc);
  return s;
}

int main(void)
{
  return tu_run(slab_suite());
}
