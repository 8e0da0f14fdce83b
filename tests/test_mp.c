/* test_mp.c: the strict canonical msgpack layer (libsecchat/mp.h).
 *
 * Expected encodings come from the msgpack specification (hand-written hex),
 * not from our writer; the writer is then checked against them, and the
 * validator against every non-canonical and forbidden form. */
#include <stdlib.h>
#include <string.h>

#include <secchat/secchat.h>

#include "mp.h"
#include "testutil.h"

static int validate_hex(const char *hex)
{
  uint8_t buf[256];
  long n = tu_unhex(hex, buf, sizeof buf);
  ck_assert_int_ge(n, 0);
  return sc_mp_validate(buf, (size_t)n, SC_MP_MAX_DEPTH);
}

#define VALID(hex) ck_assert_msg(validate_hex(hex) == 0, "%s: %s", hex, \
                                 secchat_error_name(validate_hex(hex)))
#define INVALID(hex, err) ck_assert_msg(validate_hex(hex) == (err), "%s: got %s want %s", hex, \
                                        secchat_error_name(validate_hex(hex)), \
                                        secchat_error_name(err))

/* ---- validator: accepted canonical forms --------------------------------- */

START_TEST(valid_canonical_forms)
{
  VALID("c0");                   /* nil */
  VALID("c2");                   /* false */
  VALID("c3");                   /* true */
  VALID("00");                   /* 0 */
  VALID("7f");                   /* 127 */
  VALID("cc80");                 /* 128 */
  VALID("ccff");                 /* 255 */
  VALID("cd0100");               /* 256 */
  VALID("cdffff");
  VALID("ce00010000");           /* 65536 */
  VALID("ceffffffff");
  VALID("cf0000000100000000");   /* 2^32 */
  VALID("cfffffffffffffffff");   /* 2^64-1 */
  VALID("ff");                   /* -1 */
  VALID("e0");                   /* -32 */
  VALID("d0df");                 /* -33 */
  VALID("d080");                 /* -128 */
  VALID("d1ff7f");               /* -129 */
  VALID("d18000");               /* -32768 */
  VALID("d2ffff7fff");           /* -32769 */
  VALID("d280000000");           /* -2^31 */
  VALID("d3ffffffff7fffffff");   /* -2^31-1 */
  VALID("d38000000000000000");   /* -2^63 */
  VALID("a0");                   /* "" */
  VALID("a161");                 /* "a" */
  VALID("c400");                 /* bin, empty */
  VALID("c40100");               /* bin [00]: NUL allowed in bin */
  VALID("90");                   /* [] */
  VALID("9f000102030405060708090a0b0c0d0e"); /* 15 elements */
  VALID("92a3e282ac91c3");       /* ["€", [true]] */
  VALID("a4f09f9880");           /* U+1F600 */
  VALID("a4f48fbfbf");           /* U+10FFFF */
  VALID("a3ed9fbf");             /* U+D7FF */
  VALID("a3ee8080");             /* U+E000 */
}
END_TEST

START_TEST(valid_long_headers)
{
  /* str8 of 32, str16 of 256, bin16 of 256, array16 of 16: the smallest
   * values each wide form may carry. */
  static uint8_t buf[70000];
  buf[0] = 0xd9;
  buf[1] = 32;
  memset(buf + 2, 'x', 32);
  ck_assert_int_eq(sc_mp_validate(buf, 34, 8), 0);
  ck_assert_int_eq(sc_mp_validate(buf, 33, 8), SECCHAT_ERR_TRUNCATED);
  buf[0] = 0xda;
  buf[1] = 1;
  buf[2] = 0;
  memset(buf + 3, 'x', 256);
  ck_assert_int_eq(sc_mp_validate(buf, 259, 8), 0);
  buf[0] = 0xc5;
  ck_assert_int_eq(sc_mp_validate(buf, 259, 8), 0);
  buf[0] = 0xc6; /* bin32 of 65536 */
  buf[1] = 0;
  buf[2] = 1;
  buf[3] = 0;
  buf[4] = 0;
  memset(buf + 5, 0, 65536);
  ck_assert_int_eq(sc_mp_validate(buf, 5 + 65536, 8), 0);
  buf[0] = 0xdb; /* str32 of 65536 */
  memset(buf + 5, 'y', 65536);
  ck_assert_int_eq(sc_mp_validate(buf, 5 + 65536, 8), 0);
  buf[0] = 0xdc;
  buf[1] = 0;
  buf[2] = 16;
  memset(buf + 3, 1, 16);
  ck_assert_int_eq(sc_mp_validate(buf, 19, 8), 0);
  buf[0] = 0xdd; /* array32 of 65536 */
  buf[1] = 0;
  buf[2] = 1;
  buf[3] = 0;
  buf[4] = 0;
  memset(buf + 5, 0xc0, 65536);
  ck_assert_int_eq(sc_mp_validate(buf, 5 + 65536, 8), 0);
  ck_assert_int_eq(sc_mp_validate(buf, 5 + 65535, 8), SECCHAT_ERR_COUNT_OVERFLOW);
  ck_assert_int_eq(sc_mp_validate(buf, 5 + 65537, 8), SECCHAT_ERR_TRAILING_BYTES);
}
END_TEST

/* ---- validator: each non-canonical header form (A11) -------------------- */

START_TEST(noncanonical_ints)
{
  INVALID("cc00", SECCHAT_ERR_NONCANONICAL);           /* uint8 0 */
  INVALID("cc7f", SECCHAT_ERR_NONCANONICAL);           /* uint8 127 */
  INVALID("cd00ff", SECCHAT_ERR_NONCANONICAL);         /* uint16 255 */
  INVALID("cd0001", SECCHAT_ERR_NONCANONICAL);
  INVALID("ce0000ffff", SECCHAT_ERR_NONCANONICAL);     /* uint32 65535 */
  INVALID("cf00000000ffffffff", SECCHAT_ERR_NONCANONICAL); /* uint64 2^32-1 */
  INVALID("cf0000000000000001", SECCHAT_ERR_NONCANONICAL);
  INVALID("d000", SECCHAT_ERR_NONCANONICAL);           /* int8 0 */
  INVALID("d001", SECCHAT_ERR_NONCANONICAL);           /* int8 +1: must be unsigned */
  INVALID("d0ff", SECCHAT_ERR_NONCANONICAL);           /* int8 -1: fixint */
  INVALID("d0e0", SECCHAT_ERR_NONCANONICAL);           /* int8 -32 */
  INVALID("d10001", SECCHAT_ERR_NONCANONICAL);         /* int16 +1 */
  INVALID("d1ff80", SECCHAT_ERR_NONCANONICAL);         /* int16 -128 */
  INVALID("d1ffff", SECCHAT_ERR_NONCANONICAL);         /* int16 -1 */
  INVALID("d200000001", SECCHAT_ERR_NONCANONICAL);     /* int32 +1 */
  INVALID("d2ffff8000", SECCHAT_ERR_NONCANONICAL);     /* int32 -32768 */
  INVALID("d30000000000000001", SECCHAT_ERR_NONCANONICAL); /* int64 +1 */
  INVALID("d3ffffffff80000000", SECCHAT_ERR_NONCANONICAL); /* int64 -2^31 */
  INVALID("d3ffffffffffffffff", SECCHAT_ERR_NONCANONICAL); /* int64 -1 */
}
END_TEST

START_TEST(noncanonical_str_bin_array)
{
  INVALID("d90161", SECCHAT_ERR_NONCANONICAL);        /* str8 of 1 */
  INVALID("d900", SECCHAT_ERR_NONCANONICAL);          /* str8 of 0 */
  INVALID("d91f", SECCHAT_ERR_NONCANONICAL);          /* str8 of 31 (header first) */
  INVALID("da000161", SECCHAT_ERR_NONCANONICAL);      /* str16 of 1 */
  INVALID("da00ff", SECCHAT_ERR_NONCANONICAL);        /* str16 of 255 */
  INVALID("db0000000161", SECCHAT_ERR_NONCANONICAL);  /* str32 of 1 */
  INVALID("dbffff", SECCHAT_ERR_TRUNCATED);           /* str32 header cut */
  INVALID("c5000100", SECCHAT_ERR_NONCANONICAL);      /* bin16 of 1 */
  INVALID("c500ff", SECCHAT_ERR_NONCANONICAL);        /* bin16 of 255 */
  INVALID("c600000000", SECCHAT_ERR_NONCANONICAL);    /* bin32 of 0 */
  INVALID("c60000ffff", SECCHAT_ERR_NONCANONICAL);    /* bin32 of 65535 */
  INVALID("dc0000", SECCHAT_ERR_NONCANONICAL);        /* array16 of 0 */
  INVALID("dc000f", SECCHAT_ERR_NONCANONICAL);        /* array16 of 15 */
  INVALID("dd00000001c0", SECCHAT_ERR_NONCANONICAL);  /* array32 of 1 */
  INVALID("dd0000ffff", SECCHAT_ERR_NONCANONICAL);    /* array32 of 65535 */
  /* Nested: the first bad header inside an array is found. */
  INVALID("9201cc05", SECCHAT_ERR_NONCANONICAL);
}
END_TEST

/* ---- validator: forbidden and invalid types (A11/A12) -------------------- */

START_TEST(forbidden_types)
{
  INVALID("80", SECCHAT_ERR_FORBIDDEN_TYPE);          /* fixmap {} */
  INVALID("81a161a162", SECCHAT_ERR_FORBIDDEN_TYPE);  /* {"a":"b"} */
  INVALID("de0000", SECCHAT_ERR_FORBIDDEN_TYPE);      /* map16 */
  INVALID("df00000000", SECCHAT_ERR_FORBIDDEN_TYPE);  /* map32 */
  INVALID("ca3f800000", SECCHAT_ERR_FORBIDDEN_TYPE);  /* float32 1.0 */
  INVALID("cb3ff0000000000000", SECCHAT_ERR_FORBIDDEN_TYPE); /* float64 */
  INVALID("d40100", SECCHAT_ERR_FORBIDDEN_TYPE);      /* fixext1 */
  INVALID("d5010000", SECCHAT_ERR_FORBIDDEN_TYPE);
  INVALID("d601", SECCHAT_ERR_FORBIDDEN_TYPE);        /* type byte decides */
  INVALID("d701", SECCHAT_ERR_FORBIDDEN_TYPE);
  INVALID("d801", SECCHAT_ERR_FORBIDDEN_TYPE);
  INVALID("c70001", SECCHAT_ERR_FORBIDDEN_TYPE);      /* ext8 */
  INVALID("c8000001", SECCHAT_ERR_FORBIDDEN_TYPE);
  INVALID("c900000000", SECCHAT_ERR_FORBIDDEN_TYPE);
  INVALID("c1", SECCHAT_ERR_INVALID_BYTE);
  INVALID("9101c1", SECCHAT_ERR_TRAILING_BYTES);     /* 0xc1 after the object */
  INVALID("9201c1", SECCHAT_ERR_INVALID_BYTE);
  INVALID("920180", SECCHAT_ERR_FORBIDDEN_TYPE);      /* map inside array */
  INVALID("9201ca3f800000", SECCHAT_ERR_FORBIDDEN_TYPE);
}
END_TEST

/* ---- validator: truncation, counts, trailing bytes (A7, A8, A10, A13) ---- */

START_TEST(truncation_and_counts)
{
  ck_assert_int_eq(sc_mp_validate(NULL, 0, 8), SECCHAT_ERR_TRUNCATED);
  INVALID("cc", SECCHAT_ERR_TRUNCATED);
  INVALID("cd01", SECCHAT_ERR_TRUNCATED);
  INVALID("cf00000001000000", SECCHAT_ERR_TRUNCATED);
  INVALID("d2ff", SECCHAT_ERR_TRUNCATED);
  INVALID("a2", SECCHAT_ERR_TRUNCATED);                /* A10: str len 2, 0 left */
  INVALID("a261", SECCHAT_ERR_TRUNCATED);
  INVALID("c405", SECCHAT_ERR_TRUNCATED);              /* A10: bin len 5 */
  INVALID("c6ffffffff", SECCHAT_ERR_TRUNCATED);        /* A10: bin32 4 GiB */
  INVALID("dbffffffff", SECCHAT_ERR_TRUNCATED);        /* A10: str32 4 GiB */
  INVALID("9201", SECCHAT_ERR_COUNT_OVERFLOW);
  INVALID("91", SECCHAT_ERR_COUNT_OVERFLOW);
  INVALID("ddffffffff", SECCHAT_ERR_COUNT_OVERFLOW);   /* A7 */
  INVALID("dfffffffff", SECCHAT_ERR_FORBIDDEN_TYPE);   /* A7 map32: refused on its type */
  INVALID("dd00100000c0", SECCHAT_ERR_COUNT_OVERFLOW); /* A8 */
  INVALID("dcffff", SECCHAT_ERR_COUNT_OVERFLOW);
  INVALID("dd", SECCHAT_ERR_TRUNCATED);
  /* Counts add up across levels: [[1,2], x] needs 4 element bytes. */
  INVALID("92920102", SECCHAT_ERR_COUNT_OVERFLOW);
  INVALID("929201020304", SECCHAT_ERR_TRAILING_BYTES);
  VALID("9292010203");
  /* A count that fits only if the outer array's own debt is ignored. */
  INVALID("9293010203", SECCHAT_ERR_COUNT_OVERFLOW);
  INVALID("00" "00", SECCHAT_ERR_TRAILING_BYTES);       /* A13 */
  INVALID("9100c0", SECCHAT_ERR_TRAILING_BYTES);
  INVALID("90" "90", SECCHAT_ERR_TRAILING_BYTES);
  INVALID("a161" "00", SECCHAT_ERR_TRAILING_BYTES);
}
END_TEST

/* ---- validator: depth (A9) ----------------------------------------------- */

static int nested(size_t depth, unsigned max_depth)
{
  /* depth arrays: [[[...[nil]...]]] */
  uint8_t *buf = malloc(depth + 1);
  ck_assert_ptr_nonnull(buf);
  memset(buf, 0x91, depth);
  buf[depth] = 0xc0;
  int rc = sc_mp_validate(buf, depth + 1, max_depth);
  free(buf);
  return rc;
}

START_TEST(depth_limit)
{
  ck_assert_int_eq(nested(1, 8), 0);
  ck_assert_int_eq(nested(8, 8), 0);
  ck_assert_int_eq(nested(9, 8), SECCHAT_ERR_DEPTH);
  ck_assert_int_eq(nested(33, 8), SECCHAT_ERR_DEPTH);
  ck_assert_int_eq(nested(100000, 8), SECCHAT_ERR_DEPTH);
  ck_assert_int_eq(nested(3, 3), 0);
  ck_assert_int_eq(nested(4, 3), SECCHAT_ERR_DEPTH);
  ck_assert_int_eq(nested(1, 0), SECCHAT_ERR_DEPTH);
  ck_assert_int_eq(nested(1, 9), SECCHAT_ERR_INVALID_ARGUMENT);
  /* An empty array counts as a level too; siblings do not add depth. */
  INVALID("9191919191919191" "90", SECCHAT_ERR_DEPTH);
  VALID("91919191919191" "90");
  VALID("98" "919191919191" "90" "00000000000000");
  VALID("92" "919191919191" "90" "919191919191" "90");
  INVALID("92" "919191919191" "90" "91919191919191" "90", SECCHAT_ERR_DEPTH);
}
END_TEST

/* ---- validator: UTF-8 and NUL (A14) -------------------------------------- */

START_TEST(utf8_rules)
{
  INVALID("a3616200", SECCHAT_ERR_NUL_IN_STRING);       /* "ab\0" */
  INVALID("a100", SECCHAT_ERR_NUL_IN_STRING);
  INVALID("a26100", SECCHAT_ERR_NUL_IN_STRING);
  INVALID("a2c080", SECCHAT_ERR_BAD_UTF8);              /* overlong NUL */
  INVALID("a2c1bf", SECCHAT_ERR_BAD_UTF8);              /* overlong 2-byte */
  INVALID("a3e080af", SECCHAT_ERR_BAD_UTF8);            /* overlong 3-byte '/' */
  INVALID("a3e09fbf", SECCHAT_ERR_BAD_UTF8);            /* overlong U+07FF */
  INVALID("a4f08fbfbf", SECCHAT_ERR_BAD_UTF8);          /* overlong U+FFFF */
  INVALID("a3eda080", SECCHAT_ERR_BAD_UTF8);            /* U+D800 */
  INVALID("a3edbfbf", SECCHAT_ERR_BAD_UTF8);            /* U+DFFF */
  INVALID("a4f4908080", SECCHAT_ERR_BAD_UTF8);          /* U+110000 */
  INVALID("a4f5808080", SECCHAT_ERR_BAD_UTF8);
  INVALID("a1ff", SECCHAT_ERR_BAD_UTF8);
  INVALID("a1fe", SECCHAT_ERR_BAD_UTF8);
  INVALID("a180", SECCHAT_ERR_BAD_UTF8);                /* lone continuation */
  INVALID("a1c3", SECCHAT_ERR_BAD_UTF8);                /* cut 2-byte */
  INVALID("a2e282", SECCHAT_ERR_BAD_UTF8);              /* cut 3-byte */
  INVALID("a3f09f98", SECCHAT_ERR_BAD_UTF8);            /* cut 4-byte */
  INVALID("a2c341", SECCHAT_ERR_BAD_UTF8);              /* bad continuation */
  INVALID("a3e282c0", SECCHAT_ERR_BAD_UTF8);
  INVALID("a4f09f9841", SECCHAT_ERR_BAD_UTF8);
  /* A multi-byte char must not run past the string into the next field. */
  INVALID("92a1e28282ac", SECCHAT_ERR_BAD_UTF8);
  VALID("a2c2a0");                                       /* U+00A0 */
  VALID("a2c480");
}
END_TEST

/* ---- reader -------------------------------------------------------------- */

START_TEST(reader_typed)
{
  uint8_t buf[64];
  /* [7, -33, true, nil, "hi", bin(3), [1], 300] */
  long n = tu_unhex("9807d0dfc3c0a26869c403616263" "9101" "cd012c", buf, sizeof buf);
  ck_assert_int_gt(n, 0);
  ck_assert_int_eq(sc_mp_validate(buf, (size_t)n, 8), 0);
  sc_mp_reader r;
  sc_mp_reader_init(&r, buf, (size_t)n);
  uint32_t cnt;
  uint64_t u;
  int64_t i;
  bool b;
  const char *s;
  const uint8_t *bp;
  size_t len;
  ck_assert_int_eq(sc_mp_read_uint(&r, &u), SECCHAT_ERR_SCHEMA);
  ck_assert_ptr_eq(r.p, buf); /* unchanged on error */
  ck_assert_int_eq(sc_mp_read_array(&r, &cnt), 0);
  ck_assert_uint_eq(cnt, 8);
  ck_assert_int_eq(sc_mp_read_str(&r, &s, &len, 0, 10), SECCHAT_ERR_SCHEMA);
  ck_assert_int_eq(sc_mp_read_int(&r, &i), 0);
  ck_assert_int_eq(i, 7);
  ck_assert_int_eq(sc_mp_read_uint(&r, &u), SECCHAT_ERR_SCHEMA); /* -33 */
  ck_assert_int_eq(sc_mp_read_int(&r, &i), 0);
  ck_assert_int_eq(i, -33);
  ck_assert_int_eq(sc_mp_read_nil(&r), SECCHAT_ERR_SCHEMA);
  ck_assert_int_eq(sc_mp_read_bool(&r, &b), 0);
  ck_assert(b);
  ck_assert_int_eq(sc_mp_read_bool(&r, &b), SECCHAT_ERR_SCHEMA);
  ck_assert_int_eq(sc_mp_read_nil(&r), 0);
  ck_assert_int_eq(sc_mp_read_str(&r, &s, &len, 3, 10), SECCHAT_ERR_BAD_LENGTH);
  ck_assert_int_eq(sc_mp_read_str(&r, &s, &len, 0, 1), SECCHAT_ERR_BAD_LENGTH);
  ck_assert_int_eq(sc_mp_read_bin(&r, &bp, &len, 0, 10), SECCHAT_ERR_SCHEMA);
  ck_assert_int_eq(sc_mp_read_str(&r, &s, &len, 2, 2), 0);
  ck_assert_uint_eq(len, 2);
  ck_assert_int_eq(memcmp(s, "hi", 2), 0);
  ck_assert_int_eq(sc_mp_read_bin_exact(&r, &bp, 4), SECCHAT_ERR_BAD_LENGTH);
  ck_assert_int_eq(sc_mp_read_bin_exact(&r, &bp, 2), SECCHAT_ERR_BAD_LENGTH);
  ck_assert_int_eq(sc_mp_read_str(&r, &s, &len, 0, 10), SECCHAT_ERR_SCHEMA);
  ck_assert_int_eq(sc_mp_read_bin_exact(&r, &bp, 3), 0);
  ck_assert_int_eq(memcmp(bp, "abc", 3), 0);
  ck_assert_ptr_eq(bp, buf + 11); /* zero copy */
  ck_assert_int_eq(sc_mp_skip(&r), 0); /* [1] */
  ck_assert_int_eq(sc_mp_at_end(&r), 0);
  ck_assert_int_eq(sc_mp_read_uint(&r, &u), 0);
  ck_assert_uint_eq(u, 300);
  ck_assert_int_eq(sc_mp_at_end(&r), 1);
  ck_assert_int_eq(sc_mp_read_uint(&r, &u), SECCHAT_ERR_TRUNCATED);
}
END_TEST

START_TEST(reader_int_ranges)
{
  uint8_t buf[16];
  sc_mp_reader r;
  int64_t i;
  uint64_t u;
  long n = tu_unhex("cfffffffffffffffff", buf, sizeof buf);
  sc_mp_reader_init(&r, buf, (size_t)n);
  ck_assert_int_eq(sc_mp_read_int(&r, &i), SECCHAT_ERR_SCHEMA); /* > INT64_MAX */
  ck_assert_int_eq(sc_mp_read_uint(&r, &u), 0);
  ck_assert_uint_eq(u, UINT64_MAX);
  n = tu_unhex("cf7fffffffffffffff", buf, sizeof buf);
  sc_mp_reader_init(&r, buf, (size_t)n);
  ck_assert_int_eq(sc_mp_read_int(&r, &i), 0);
  ck_assert_int_eq(i, INT64_MAX);
  n = tu_unhex("d38000000000000000", buf, sizeof buf);
  sc_mp_reader_init(&r, buf, (size_t)n);
  ck_assert_int_eq(sc_mp_read_int(&r, &i), 0);
  ck_assert_int_eq(i, INT64_MIN);
}
END_TEST

START_TEST(reader_bounds_without_validate)
{
  /* Misuse (reading unvalidated bytes) must still stay in bounds. */
  uint8_t buf[8];
  sc_mp_reader r;
  const uint8_t *bp;
  size_t len;
  long n = tu_unhex("c4ff00", buf, sizeof buf);
  sc_mp_reader_init(&r, buf, (size_t)n);
  ck_assert_int_eq(sc_mp_read_bin(&r, &bp, &len, 0, 1000), SECCHAT_ERR_TRUNCATED);
  ck_assert_int_eq(sc_mp_skip(&r), SECCHAT_ERR_TRUNCATED);
  n = tu_unhex("ddffffffff00", buf, sizeof buf);
  sc_mp_reader_init(&r, buf, (size_t)n);
  ck_assert_int_eq(sc_mp_skip(&r), SECCHAT_ERR_COUNT_OVERFLOW);
  n = tu_unhex("dc00", buf, sizeof buf);
  sc_mp_reader_init(&r, buf, (size_t)n);
  ck_assert_int_eq(sc_mp_skip(&r), SECCHAT_ERR_TRUNCATED);
  ck_assert_ptr_eq(r.p, buf);
}
END_TEST

/* ---- writer -------------------------------------------------------------- */

static void expect_hex(const uint8_t *got, int64_t len, const char *hex)
{
  uint8_t want[128];
  long n = tu_unhex(hex, want, sizeof want);
  ck_assert_int_ge(n, 0);
  ck_assert_int_eq(len, n);
  ck_assert_mem_eq(got, want, (size_t)n);
}

START_TEST(writer_shortest_forms)
{
  /* Each boundary value in the shortest form the spec allows. */
  static const struct { uint64_t v; const char *hex; } u[] = {
    {0, "00"}, {127, "7f"}, {128, "cc80"}, {255, "ccff"}, {256, "cd0100"},
    {65535, "cdffff"}, {65536, "ce00010000"}, {0xffffffffu, "ceffffffff"},
    {0x100000000u, "cf0000000100000000"}, {UINT64_MAX, "cfffffffffffffffff"},
  };
  static const struct { int64_t v; const char *hex; } s[] = {
    {0, "00"}, {5, "05"}, {200, "ccc8"}, {-1, "ff"}, {-32, "e0"}, {-33, "d0df"},
    {-128, "d080"}, {-129, "d1ff7f"}, {-32768, "d18000"}, {-32769, "d2ffff7fff"},
    {INT32_MIN, "d280000000"}, {(int64_t)INT32_MIN - 1, "d3ffffffff7fffffff"},
    {INT64_MIN, "d38000000000000000"},
  };
  uint8_t buf[32];
  sc_mp_writer w;
  for (size_t k = 0; k < sizeof u / sizeof u[0]; k++) {
    sc_mp_writer_init(&w, buf, sizeof buf);
    sc_mp_write_uint(&w, u[k].v);
    expect_hex(buf, sc_mp_writer_finish(&w), u[k].hex);
  }
  for (size_t k = 0; k < sizeof s / sizeof s[0]; k++) {
    sc_mp_writer_init(&w, buf, sizeof buf);
    sc_mp_write_int(&w, s[k].v);
    expect_hex(buf, sc_mp_writer_finish(&w), s[k].hex);
  }
  sc_mp_writer_init(&w, buf, sizeof buf);
  sc_mp_write_array(&w, 5);
  sc_mp_write_nil(&w);
  sc_mp_write_bool(&w, true);
  sc_mp_write_bool(&w, false);
  sc_mp_write_str(&w, "hi", 2);
  sc_mp_write_bin(&w, (const uint8_t *)"\x00\x01", 2);
  expect_hex(buf, sc_mp_writer_finish(&w), "95c0c3c2a26869c4020001");
  sc_mp_writer_init(&w, buf, sizeof buf);
  sc_mp_write_str(&w, "", 0);
  sc_mp_write_bin(&w, NULL, 0);
  sc_mp_write_array(&w, 16);
  expect_hex(buf, sc_mp_writer_finish(&w), "a0c400dc0010");
}
END_TEST

START_TEST(writer_long_headers)
{
  static uint8_t buf[70000], data[65536];
  memset(data, 'z', sizeof data);
  sc_mp_writer w;
  static const struct { size_t len; const char *hex; } str[] = {
    {31, "bf"}, {32, "d920"}, {255, "d9ff"}, {256, "da0100"}, {65535, "daffff"},
    {65536, "db00010000"},
  };
  for (size_t k = 0; k < sizeof str / sizeof str[0]; k++) {
    sc_mp_writer_init(&w, buf, sizeof buf);
    sc_mp_write_str(&w, (const char *)data, str[k].len);
    int64_t n = sc_mp_writer_finish(&w);
    uint8_t want[8];
    long h = tu_unhex(str[k].hex, want, sizeof want);
    ck_assert_int_eq(n, h + (long)str[k].len);
    ck_assert_mem_eq(buf, want, (size_t)h);
    ck_assert_int_eq(sc_mp_validate(buf, (size_t)n, 8), 0);
  }
  static const struct { size_t len; const char *hex; } bin[] = {
    {0, "c400"}, {255, "c4ff"}, {256, "c50100"}, {65535, "c5ffff"}, {65536, "c600010000"},
  };
  for (size_t k = 0; k < sizeof bin / sizeof bin[0]; k++) {
    sc_mp_writer_init(&w, buf, sizeof buf);
    sc_mp_write_bin(&w, data, bin[k].len);
    int64_t n = sc_mp_writer_finish(&w);
    uint8_t want[8];
    long h = tu_unhex(bin[k].hex, want, sizeof want);
    ck_assert_int_eq(n, h + (long)bin[k].len);
    ck_assert_mem_eq(buf, want, (size_t)h);
    ck_assert_int_eq(sc_mp_validate(buf, (size_t)n, 8), 0);
  }
  static const struct { uint32_t n; const char *hex; } arr[] = {
    {0, "90"}, {15, "9f"}, {16, "dc0010"}, {65535, "dcffff"}, {65536, "dd00010000"},
  };
  for (size_t k = 0; k < sizeof arr / sizeof arr[0]; k++) {
    sc_mp_writer_init(&w, buf, sizeof buf);
    sc_mp_write_array(&w, arr[k].n);
    expect_hex(buf, sc_mp_writer_finish(&w), arr[k].hex);
  }
}
END_TEST

START_TEST(writer_overflow_latches)
{
  uint8_t buf[4];
  sc_mp_writer w;
  sc_mp_writer_init(&w, buf, sizeof buf);
  sc_mp_write_str(&w, "abcd", 4); /* 5 bytes: does not fit */
  sc_mp_write_uint(&w, 1);        /* would fit, but must be dropped */
  ck_assert_int_eq(sc_mp_writer_finish(&w), SECCHAT_ERR_BUFFER_TOO_SMALL);
  ck_assert_int_eq(w.overflow, 1);
  sc_mp_writer_init(&w, buf, sizeof buf);
  sc_mp_write_str(&w, "abc", 3); /* exactly 4 */
  ck_assert_int_eq(sc_mp_writer_finish(&w), 4);
  sc_mp_write_nil(&w);
  ck_assert_int_eq(sc_mp_writer_finish(&w), SECCHAT_ERR_BUFFER_TOO_SMALL);
  sc_mp_writer_init(&w, NULL, 100);
  sc_mp_write_nil(&w);
  ck_assert_int_eq(sc_mp_writer_finish(&w), SECCHAT_ERR_BUFFER_TOO_SMALL);
  /* A copied writer keeps working (no self-pointer inside). */
  uint8_t big[8];
  sc_mp_writer a, b;
  sc_mp_writer_init(&a, big, sizeof big);
  sc_mp_write_uint(&a, 1);
  b = a;
  sc_mp_write_uint(&b, 2);
  ck_assert_int_eq(sc_mp_writer_finish(&b), 2);
  ck_assert_int_eq(sc_mp_writer_finish(&a), 1);
  ck_assert_uint_eq(big[1], 2);
}
END_TEST

/* Everything the writer emits validates and reads back. */
START_TEST(writer_output_validates)
{
  uint8_t buf[512];
  sc_mp_writer w;
  sc_mp_writer_init(&w, buf, sizeof buf);
  sc_mp_write_array(&w, 4);
  sc_mp_write_int(&w, -40000);
  sc_mp_write_str(&w, "h\xc3\xa9llo", 6);
  sc_mp_write_array(&w, 2);
  sc_mp_write_uint(&w, 1u << 20);
  sc_mp_write_bool(&w, false);
  sc_mp_write_bin(&w, (const uint8_t *)"\0\0\0", 3);
  int64_t n = sc_mp_writer_finish(&w);
  ck_assert_int_gt(n, 0);
  ck_assert_int_eq(sc_mp_validate(buf, (size_t)n, 2), 0);
  ck_assert_int_eq(sc_mp_validate(buf, (size_t)n, 1), SECCHAT_ERR_DEPTH);
  sc_mp_reader r;
  uint32_t c;
  int64_t i;
  sc_mp_reader_init(&r, buf, (size_t)n);
  ck_assert_int_eq(sc_mp_read_array(&r, &c), 0);
  ck_assert_int_eq(sc_mp_read_int(&r, &i), 0);
  ck_assert_int_eq(i, -40000);
  ck_assert_int_eq(sc_mp_skip(&r), 0);
  ck_assert_int_eq(sc_mp_skip(&r), 0);
  ck_assert_int_eq(sc_mp_skip(&r), 0);
  ck_assert(sc_mp_at_end(&r));
}
END_TEST

int main(void)
{
  Suite *s = suite_create("mp");
  TCase *tc = tcase_create("mp");
  tcase_add_test(tc, valid_canonical_forms);
  tcase_add_test(tc, valid_long_headers);
  tcase_add_test(tc, noncanonical_ints);
  tcase_add_test(tc, noncanonical_str_bin_array);
  tcase_add_test(tc, forbidden_types);
  tcase_add_test(tc, truncation_and_counts);
  tcase_add_test(tc, depth_limit);
  tcase_add_test(tc, utf8_rules);
  tcase_add_test(tc, reader_typed);
  tcase_add_test(tc, reader_int_ranges);
  tcase_add_test(tc, reader_bounds_without_validate);
  tcase_add_test(tc, writer_shortest_forms);
  tcase_add_test(tc, writer_long_headers);
  tcase_add_test(tc, writer_overflow_latches);
  tcase_add_test(tc, writer_output_validates);
  suite_add_tcase(s, tc);
  return tu_run(s);
}
