/* test_codec.c: deframer, transport padding and frame schemas
 * (libsecchat/codec.h), including every class A1-A14 of the design's
 * security notes (section A) with its exact error code.
 *
 * Expected bytes are written by hand from the msgpack spec and
 * docs/protocol.md (a tiny spec language, see mk()), not produced by our
 * encoder. Heap use is measured by a counting allocator hook (see "Heap
 * accounting"), so "no allocation" claims are checked, not assumed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <secchat/secchat.h>

#include "codec.h"
#include "mp.h"
#include "testutil.h"

/* ---- Heap accounting ----------------------------------------------------------
 * Tracks live heap bytes, the peak since alloc_begin() and the number of
 * allocations. Under ASan the allocator exposes hooks; otherwise (glibc)
 * the test binary interposes malloc & co. and forwards to __libc_*. */

/* volatile: compilers assume malloc() touches no user globals and would
 * otherwise cache these across allocation calls. */
static volatile size_t g_live, g_peak, g_nalloc;

static void note_alloc(size_t n)
{
  g_live += n;
  g_nalloc++;
  if (g_live > g_peak)
    g_peak = g_live;
}

static void note_free(size_t n)
{
  g_live = n > g_live ? 0 : g_live - n;
}

#if defined(__SANITIZE_ADDRESS__)
#define TU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TU_ASAN 1
#endif
#endif

#ifdef TU_ASAN
/* Declared here: gcc 12 ships no <sanitizer/allocator_interface.h>. */
int __sanitizer_install_malloc_and_free_hooks(void (*m)(const volatile void *, size_t),
                                              void (*f)(const volatile void *));
size_t __sanitizer_get_allocated_size(const volatile void *p);

static void asan_malloc_hook(const volatile void *p, size_t n)
{
  (void)p;
  note_alloc(n);
}

static void asan_free_hook(const volatile void *p)
{
  note_free(__sanitizer_get_allocated_size(p));
}

static void alloc_hooks_install(void)
{
  __sanitizer_install_malloc_and_free_hooks(asan_malloc_hook, asan_free_hook);
}
#else
#include <malloc.h>
void *__libc_malloc(size_t n);
void *__libc_calloc(size_t n, size_t m);
void *__libc_realloc(void *p, size_t n);
void *__libc_memalign(size_t a, size_t n);
void __libc_free(void *p);
int posix_memalign(void **p, size_t a, size_t n);

void *malloc(size_t n)
{
  void *p = __libc_malloc(n);
  if (p)
    note_alloc(malloc_usable_size(p));
  return p;
}

void *calloc(size_t n, size_t m)
{
  void *p = __libc_calloc(n, m);
  if (p)
    note_alloc(malloc_usable_size(p));
  return p;
}

void *realloc(void *old, size_t n)
{
  size_t before = old ? malloc_usable_size(old) : 0;
  void *p = __libc_realloc(old, n);
  if (p || n == 0) {
    note_free(before);
    if (p)
      note_alloc(malloc_usable_size(p));
  }
  return p;
}

void *memalign(size_t a, size_t n)
{
  void *p = __libc_memalign(a, n);
  if (p)
    note_alloc(malloc_usable_size(p));
  return p;
}

void *aligned_alloc(size_t a, size_t n)
{
  return memalign(a, n);
}

int posix_memalign(void **out, size_t a, size_t n)
{
  void *p = memalign(a, n);
  if (!p)
    return 12; /* ENOMEM */
  *out = p;
  return 0;
}

void free(void *p)
{
  if (p)
    note_free(malloc_usable_size(p));
  __libc_free(p);
}

static void alloc_hooks_install(void)
{
}
#endif

static volatile size_t g_base, g_nbase;

static void alloc_begin(void)
{
  g_base = g_live;
  g_peak = g_live;
  g_nbase = g_nalloc;
}

/* Peak extra heap since alloc_begin(), and allocations made since. */
static size_t alloc_peak(void)
{
  return g_peak - g_base;
}

static size_t alloc_count(void)
{
  return g_nalloc - g_nbase;
}

#define MiB ((size_t)1 << 20)

/* NOTE: Check's passing assertions allocate (they report the location to
 * the parent process), so windows that assert an allocation count contain
 * no ck_assert: values are captured first and checked afterwards. */

/* The hook itself must see allocations, or every "no allocation" below
 * would pass vacuously. */
START_TEST(alloc_hook_works)
{
  alloc_begin();
  void *volatile p = malloc(3 * MiB);
  size_t peak = alloc_peak(), count = alloc_count();
  free(p);
  size_t left = g_live - g_base;
  ck_assert_ptr_nonnull(p);
  ck_assert_uint_ge(peak, 3 * MiB);
  ck_assert_uint_eq(count, 1);
  ck_assert_uint_lt(left, 4096);
}
END_TEST

/* ---- Byte spec language ---------------------------------------------------------
 * Space-separated tokens: hex bytes ("92 0a 05" or "920a05"), or "RnnXhh"
 * for nn copies of byte hh ("R32X11" = 32 bytes 0x11). */

static size_t mk(uint8_t *out, size_t cap, const char *spec)
{
  size_t n = 0;
  const char *p = spec;
  while (*p) {
    if (*p == ' ') {
      p++;
      continue;
    }
    if (*p == 'R') {
      char *e;
      unsigned long cnt = strtoul(p + 1, &e, 10);
      ck_assert(*e == 'X');
      unsigned long b = strtoul(e + 1, &e, 16);
      ck_assert_uint_le(n + cnt, cap);
      memset(out + n, (int)b, cnt);
      n += cnt;
      p = e;
      continue;
    }
    char tok[3] = {p[0], p[1], 0};
    ck_assert_msg(p[1] != 0 && p[1] != ' ', "odd hex in %s", spec);
    ck_assert_uint_lt(n, cap);
    ck_assert_int_eq(tu_unhex(tok, out + n, 1), 1);
    n++;
    p += 2;
  }
  return n;
}

static uint8_t g_body[70000];

static int dec(const char *spec)
{
  sc_frame f;
  size_t n = mk(g_body, sizeof g_body, spec);
  return sc_frame_decode(&f, g_body, n);
}

#define DEC(spec, err) ck_assert_msg(dec(spec) == (err), "%s: got %s want %s", spec, \
                                     secchat_error_name(dec(spec)), secchat_error_name(err))

/* ---- Sample frames --------------------------------------------------------------- */

static uint8_t SIGPK[32], DHPK[32], SIG1[64], SIG2[64], UID1[20], UID2[20], ROUTE[32];
static char TOKEN[SECCHAT_MAX_TOKEN_BYTES + 64]; /* tokens start at TOKEN + k */
static uint8_t BLOB[SC_MAX_GROUP_BLOB + 2];

static void fixtures(void)
{
  memset(SIGPK, 0x11, sizeof SIGPK);
  memset(DHPK, 0x22, sizeof DHPK);
  memset(SIG1, 0x33, sizeof SIG1);
  memset(SIG2, 0x44, sizeof SIG2);
  memset(UID1, 0x55, sizeof UID1);
  memset(UID2, 0x66, sizeof UID2);
  memset(ROUTE, 0x77, sizeof ROUTE);
  for (size_t k = 0; k < sizeof TOKEN - 1; k++)
    TOKEN[k] = (char)('a' + k % 26);
  TOKEN[sizeof TOKEN - 1] = 0;
  for (size_t k = 0; k < sizeof BLOB; k++)
    BLOB[k] = (uint8_t)(k * 7);
}

static const int ALL_TYPES[] = {
    SC_FRAME_REGISTER,      SC_FRAME_AUTH,    SC_FRAME_RENEW,       SC_FRAME_LOOKUP_NAME,
    SC_FRAME_LOOKUP_UID,    SC_FRAME_ROUTE_OPEN, SC_FRAME_ROUTE_CLOSE, SC_FRAME_GROUP_SEND,
    SC_FRAME_DIRECT,        SC_FRAME_PING,    SC_FRAME_TOKEN,       SC_FRAME_AUTH_OK,
    SC_FRAME_LOOKUP_RESULT, SC_FRAME_DELIVER, SC_FRAME_DIRECT_DELIVER, SC_FRAME_PRESENCE,
    SC_FRAME_RELAYED,       SC_FRAME_ERROR,   SC_FRAME_PONG,        SC_FRAME_BYE,
};
#define NTYPES (sizeof ALL_TYPES / sizeof ALL_TYPES[0])

static sc_str S(const char *p, size_t n)
{
  sc_str s = {p, n};
  return s;
}

static sc_bin B(const uint8_t *p, size_t n)
{
  sc_bin b = {p, n};
  return b;
}

/* A valid frame of each type; `v` varies sizes and values so that several
 * encodings of each type are exercised. */
static sc_frame sample(int type, unsigned v)
{
  sc_frame f;
  memset(&f, 0, sizeof f);
  f.type = (sc_frame_type)type;
  size_t tl = v == 0 ? 1 : v == 1 ? 300 : SECCHAT_MAX_TOKEN_BYTES;
  size_t bl = v == 0 ? 1 : v == 1 ? 255 : 1000;
  uint64_t num = v == 0 ? 1 : v == 1 ? 300 : UINT64_MAX;
  switch (type) {
  case SC_FRAME_REGISTER:
    f.u.reg.name = v == 2 ? S(TOKEN, SC_MAX_NAME_BYTES) : S("alice", 5);
    f.u.reg.sig_pk = SIGPK;
    f.u.reg.dh_pk = DHPK;
    f.u.reg.dh_sig = SIG1;
    f.u.reg.proof = SIG2;
    break;
  case SC_FRAME_AUTH:
    f.u.auth.token = S(TOKEN, tl);
    f.u.auth.proof = SIG1;
    break;
  case SC_FRAME_RENEW: f.u.renew.proof = SIG2; break;
  case SC_FRAME_LOOKUP_NAME: f.u.lookup_name.name = S("b\xc3\xa9" "b", 4); break;
  case SC_FRAME_LOOKUP_UID: f.u.lookup_uid.uid = UID1; break;
  case SC_FRAME_ROUTE_OPEN:
  case SC_FRAME_ROUTE_CLOSE: f.u.route.route_id = ROUTE; break;
  case SC_FRAME_GROUP_SEND:
    f.u.group_send.ref = num;
    f.u.group_send.route_id = ROUTE;
    f.u.group_send.blob = B(BLOB, bl);
    break;
  case SC_FRAME_DIRECT:
    f.u.direct.ref = num;
    f.u.direct.to_uid = UID2;
    f.u.direct.blob = B(BLOB, bl);
    break;
  case SC_FRAME_PING:
  case SC_FRAME_PONG: f.u.ping.nonce = num - 1; break;
  case SC_FRAME_TOKEN: f.u.token.token = S(TOKEN, tl); break;
  case SC_FRAME_AUTH_OK:
    f.u.auth_ok.uid = UID1;
    f.u.auth_ok.expires_s = 1700000000u + v;
    break;
  case SC_FRAME_LOOKUP_RESULT:
    f.u.lookup_result.count = v == 0 ? 0 : v == 1 ? 2 : SC_MAX_LOOKUP_TOKENS;
    for (size_t k = 0; k < f.u.lookup_result.count; k++)
      f.u.lookup_result.tokens[k] = S(TOKEN + k, tl - (v == 2 ? 0 : k % 2));
    break;
  case SC_FRAME_DELIVER:
    f.u.deliver.route_id = ROUTE;
    f.u.deliver.blob = B(BLOB, bl);
    break;
  case SC_FRAME_DIRECT_DELIVER:
    f.u.direct_deliver.from_uid = UID2;
    f.u.direct_deliver.from_token = S(TOKEN, tl);
    f.u.direct_deliver.blob = B(BLOB, bl);
    break;
  case SC_FRAME_PRESENCE:
    f.u.presence.route_id = ROUTE;
    f.u.presence.uid = UID2;
    f.u.presence.online = v != 1;
    break;
  case SC_FRAME_RELAYED: f.u.relayed.ref = num; break;
  case SC_FRAME_ERROR:
    f.u.error.code = SC_WIRE_RATE_LIMITED;
    f.u.error.ref = num - 1;
    break;
  case SC_FRAME_BYE: f.u.bye.reason = SC_BYE_IDLE + v; break;
  default: ck_abort_msg("no sample for %d", type);
  }
  return f;
}

static bool in_buf(const void *p, const uint8_t *buf, size_t len)
{
  const uint8_t *q = p;
  return q >= buf && q < buf + len;
}

/* ---- Round trips -------------------------------------------------------------- */

START_TEST(roundtrip_every_type)
{
  static uint8_t a[SECCHAT_MAX_FRAME_BODY], b[SECCHAT_MAX_FRAME_BODY];
  for (unsigned v = 0; v < 3; v++) {
    for (size_t k = 0; k < NTYPES; k++) {
      sc_frame f = sample(ALL_TYPES[k], v), g;
      secchat_ssize n = sc_frame_encode(&f, a, sizeof a);
      ck_assert_msg(n > 0, "%s v%u: %s", sc_frame_type_name(ALL_TYPES[k]), v,
                    secchat_error_name((int)n));
      ck_assert_int_eq(a[1], ALL_TYPES[k]); /* [type, ...]: fixint type */
      ck_assert_int_eq(sc_frame_decode(&g, a, (size_t)n), 0);
      ck_assert_int_eq(g.type, ALL_TYPES[k]);
      secchat_ssize m = sc_frame_encode(&g, b, sizeof b);
      ck_assert_int_eq(m, n);
      ck_assert_mem_eq(a, b, (size_t)n);
      /* One byte short of the exact size fails cleanly. */
      ck_assert_int_eq(sc_frame_encode(&f, b, (size_t)n - 1), SECCHAT_ERR_BUFFER_TOO_SMALL);
    }
  }
}
END_TEST

START_TEST(decoded_fields_point_into_body)
{
  uint8_t buf[8192];
  sc_frame f = sample(SC_FRAME_REGISTER, 0), g;
  secchat_ssize n = sc_frame_encode(&f, buf, sizeof buf);
  ck_assert_int_gt(n, 0);
  ck_assert_int_eq(sc_frame_decode(&g, buf, (size_t)n), 0);
  ck_assert_uint_eq(g.u.reg.name.len, 5);
  ck_assert_mem_eq(g.u.reg.name.p, "alice", 5);
  ck_assert(in_buf(g.u.reg.name.p, buf, (size_t)n));
  ck_assert(in_buf(g.u.reg.proof, buf, (size_t)n));
  ck_assert_mem_eq(g.u.reg.sig_pk, SIGPK, 32);
  ck_assert_mem_eq(g.u.reg.dh_pk, DHPK, 32);
  ck_assert_mem_eq(g.u.reg.dh_sig, SIG1, 64);
  ck_assert_mem_eq(g.u.reg.proof, SIG2, 64);

  f = sample(SC_FRAME_LOOKUP_RESULT, 1);
  n = sc_frame_encode(&f, buf, sizeof buf);
  ck_assert_int_eq(sc_frame_decode(&g, buf, (size_t)n), 0);
  ck_assert_uint_eq(g.u.lookup_result.count, 2);
  ck_assert_uint_eq(g.u.lookup_result.tokens[1].len, 299);
  ck_assert_mem_eq(g.u.lookup_result.tokens[1].p, TOKEN + 1, 299);

  f = sample(SC_FRAME_PRESENCE, 1);
  n = sc_frame_encode(&f, buf, sizeof buf);
  ck_assert_int_eq(sc_frame_decode(&g, buf, (size_t)n), 0);
  ck_assert(!g.u.presence.online);
  ck_assert_mem_eq(g.u.presence.uid, UID2, 20);

  f = sample(SC_FRAME_GROUP_SEND, 2);
  n = sc_frame_encode(&f, buf, sizeof buf);
  ck_assert_int_eq(sc_frame_decode(&g, buf, (size_t)n), 0);
  ck_assert_uint_eq(g.u.group_send.ref, UINT64_MAX);
  ck_assert_uint_eq(g.u.group_send.blob.len, 1000);
  ck_assert_mem_eq(g.u.group_send.blob.p, BLOB, 1000);
}
END_TEST

/* Bytes written by hand from docs/protocol.md. */
START_TEST(known_encodings)
{
  static const struct {
    int type;
    unsigned v;
    const char *spec;
  } kat[] = {
      {SC_FRAME_PING, 0, "92 0a 00"},
      {SC_FRAME_PONG, 1, "92 48 cd012b"},
      {SC_FRAME_PING, 2, "92 0a cffffffffffffffffe"},
      {SC_FRAME_RENEW, 0, "92 03 c440 R64X44"},
      {SC_FRAME_LOOKUP_UID, 0, "92 05 c414 R20X55"},
      {SC_FRAME_ROUTE_CLOSE, 0, "92 07 c420 R32X77"},
      {SC_FRAME_LOOKUP_NAME, 0, "92 04 a4 62c3a962"},
      {SC_FRAME_REGISTER, 0, "96 01 a5 616c696365 c420 R32X11 c420 R32X22 c440 R64X33 c440 R64X44"},
      {SC_FRAME_AUTH, 0, "93 02 a1 61 c440 R64X33"},
      {SC_FRAME_TOKEN, 0, "92 40 a1 61"},
      {SC_FRAME_AUTH_OK, 0, "93 41 c414 R20X55 ce6553f100"},
      {SC_FRAME_LOOKUP_RESULT, 0, "92 42 90"},
      {SC_FRAME_GROUP_SEND, 1, "94 08 cd012c c420 R32X77 c4ff"},
      {SC_FRAME_DIRECT, 0, "94 09 01 c414 R20X66 c401 00"},
      {SC_FRAME_DELIVER, 0, "93 43 c420 R32X77 c401 00"},
      {SC_FRAME_DIRECT_DELIVER, 0, "94 44 c414 R20X66 a1 61 c401 00"},
      {SC_FRAME_PRESENCE, 0, "94 45 c420 R32X77 c414 R20X66 c3"},
      {SC_FRAME_RELAYED, 0, "92 46 01"},
      {SC_FRAME_ERROR, 1, "93 47 05 cd012b"},
      {SC_FRAME_BYE, 0, "92 49 03"},
  };
  static uint8_t want[2048], got[2048];
  for (size_t k = 0; k < sizeof kat / sizeof kat[0]; k++) {
    size_t n = mk(want, sizeof want, kat[k].spec);
    sc_frame f = sample(kat[k].type, kat[k].v);
    secchat_ssize m = sc_frame_encode(&f, got, sizeof got);
    if (kat[k].type == SC_FRAME_GROUP_SEND) { /* spec stops at the blob header */
      ck_assert_int_eq(m, (secchat_ssize)n + 255);
      ck_assert_mem_eq(got + n, BLOB, 255);
    } else {
      ck_assert_msg(m == (secchat_ssize)n, "%s: %lld vs %zu", kat[k].spec, (long long)m, n);
    }
    ck_assert_mem_eq(got, want, n);
  }
}
END_TEST

START_TEST(type_names)
{
  for (size_t k = 0; k < NTYPES; k++)
    ck_assert_ptr_nonnull(sc_frame_type_name(ALL_TYPES[k]));
  ck_assert_str_eq(sc_frame_type_name(SC_FRAME_DIRECT_DELIVER), "DIRECT_DELIVER");
  ck_assert_ptr_null(sc_frame_type_name(0));
  ck_assert_ptr_null(sc_frame_type_name(11));
  ck_assert_ptr_null(sc_frame_type_name(-1));
}
END_TEST

/* ---- Size limits: exactly max and max + 1 --------------------------------------- */

START_TEST(limits_derivation)
{
  /* Recomputed here from the layers, independently of codec.h's asserts. */
  ck_assert_uint_eq(SECCHAT_MAX_WIRE_MESSAGE - 16 - 2, SECCHAT_MAX_FRAME_BODY);
  /* GROUP_SEND with a 9-byte ref: 94 08 cf<8> c420<32> c5 hhhh <blob>; DELIVER
   * (93 43 c420<32> c5 hhhh <blob>) is 9 bytes shorter, so it always fits */
  ck_assert_uint_eq(1 + 1 + 9 + 34 + 3 + SC_MAX_GROUP_BLOB, SECCHAT_MAX_FRAME_BODY);
  ck_assert_uint_eq(1 + 1 + 34 + 3 + SC_MAX_GROUP_BLOB, SECCHAT_MAX_FRAME_BODY - 9);
  /* DIRECT_DELIVER: 94 44 c414<20> da1000<4096> c5 hhhh <blob> */
  ck_assert_uint_eq(1 + 1 + 22 + 3 + 4096 + 3 + SC_MAX_DIRECT_BLOB, SECCHAT_MAX_FRAME_BODY);
  /* LOOKUP_RESULT: 92 42 9f (da1000<4096>)x15 */
  ck_assert_uint_le(3 + 15 * 4099, SECCHAT_MAX_FRAME_BODY);
  ck_assert_uint_gt(5 + 16 * 4099, SECCHAT_MAX_FRAME_BODY);
  ck_assert_uint_eq(SC_MAX_LOOKUP_TOKENS, 15);
}
END_TEST

static uint8_t g_out[SECCHAT_MAX_FRAME_BODY + 64];

START_TEST(limits_blob)
{
  sc_frame f = sample(SC_FRAME_GROUP_SEND, 2), g; /* 9-byte ref: the worst case */
  f.u.group_send.blob.len = SC_MAX_GROUP_BLOB;
  secchat_ssize n = sc_frame_encode(&f, g_out, sizeof g_out);
  ck_assert_int_eq(n, SECCHAT_MAX_FRAME_BODY); /* fills a body exactly */
  ck_assert_int_eq(sc_frame_decode(&g, g_out, (size_t)n), 0);
  f.u.group_send.blob.len = SC_MAX_GROUP_BLOB + 1;
  ck_assert_int_eq(sc_frame_encode(&f, g_out, sizeof g_out), SECCHAT_ERR_FRAME_TOO_LARGE);

  /* The relay's DELIVER of the largest blob a client may send fits. */
  f = sample(SC_FRAME_DELIVER, 0);
  f.u.deliver.blob.len = SC_MAX_GROUP_BLOB;
  n = sc_frame_encode(&f, g_out, sizeof g_out);
  ck_assert_int_eq(n, SECCHAT_MAX_FRAME_BODY - (45 - 36));
  ck_assert_int_eq(sc_frame_decode(&g, g_out, (size_t)n), 0);
  f.u.deliver.blob.len = SC_MAX_GROUP_BLOB + 1;
  ck_assert_int_eq(sc_frame_encode(&f, g_out, sizeof g_out), SECCHAT_ERR_BAD_LENGTH);
  f.u.group_send.blob.len = 0;
  ck_assert_int_eq(sc_frame_encode(&f, g_out, sizeof g_out), SECCHAT_ERR_BAD_LENGTH);

  f = sample(SC_FRAME_DIRECT_DELIVER, 2); /* 4096-byte token */
  f.u.direct_deliver.blob.len = SC_MAX_DIRECT_BLOB;
  n = sc_frame_encode(&f, g_out, sizeof g_out);
  ck_assert_int_eq(n, SECCHAT_MAX_FRAME_BODY);
  ck_assert_int_eq(sc_frame_decode(&g, g_out, (size_t)n), 0);
  f.u.direct_deliver.blob.len = SC_MAX_DIRECT_BLOB + 1;
  ck_assert_int_eq(sc_frame_encode(&f, g_out, sizeof g_out), SECCHAT_ERR_FRAME_TOO_LARGE);
  f = sample(SC_FRAME_DIRECT, 2);
  f.u.direct.blob.len = SC_MAX_DIRECT_BLOB + 1;
  ck_assert_int_eq(sc_frame_encode(&f, g_out, sizeof g_out), SECCHAT_ERR_BAD_LENGTH);

  /* Hand-built DIRECT with a blob one over the limit: BAD_LENGTH on decode
   * (the body itself is within the size limit). */
  char spec[64];
  snprintf(spec, sizeof spec, "94 09 01 c414 R20X66 c5 %04x R%uX01",
           SC_MAX_DIRECT_BLOB + 1, SC_MAX_DIRECT_BLOB + 1);
  DEC(spec, SECCHAT_ERR_BAD_LENGTH);
  snprintf(spec, sizeof spec, "94 09 01 c414 R20X66 c5 %04x R%uX01", SC_MAX_DIRECT_BLOB,
           SC_MAX_DIRECT_BLOB);
  DEC(spec, 0);
  snprintf(spec, sizeof spec, "94 08 01 c420 R32X77 c5 %04x R%uX01", SC_MAX_GROUP_BLOB + 1,
           SC_MAX_GROUP_BLOB + 1);
  DEC(spec, SECCHAT_ERR_BAD_LENGTH);
  /* A body one byte over the limit is refused before it is parsed. */
  DEC("R65518X00", SECCHAT_ERR_FRAME_TOO_LARGE);
  DEC("c5fff9 R65529X00", SECCHAT_ERR_FRAME_TOO_LARGE);
}
END_TEST

START_TEST(limits_strings_and_lists)
{
  sc_frame f = sample(SC_FRAME_REGISTER, 2);
  ck_assert_int_gt(sc_frame_encode(&f, g_out, sizeof g_out), 0); /* 128-byte name */
  f.u.reg.name.len = SC_MAX_NAME_BYTES + 1;
  ck_assert_int_eq(sc_frame_encode(&f, g_out, sizeof g_out), SECCHAT_ERR_BAD_LENGTH);
  f.u.reg.name.len = 0;
  ck_assert_int_eq(sc_frame_encode(&f, g_out, sizeof g_out), SECCHAT_ERR_BAD_LENGTH);

  f = sample(SC_FRAME_TOKEN, 2);
  ck_assert_int_gt(sc_frame_encode(&f, g_out, sizeof g_out), 0);
  f.u.token.token.len = SECCHAT_MAX_TOKEN_BYTES + 1;
  ck_assert_int_eq(sc_frame_encode(&f, g_out, sizeof g_out), SECCHAT_ERR_BAD_LENGTH);

  f = sample(SC_FRAME_LOOKUP_RESULT, 2); /* 15 max-size tokens */
  secchat_ssize n = sc_frame_encode(&f, g_out, sizeof g_out);
  ck_assert_int_eq(n, 3 + 15 * 4099);
}
END_TEST

START_TEST(limits_list_count)
{
  /* 16 tokens (array16, canonical for 16): the error is the count. */
  char spec[256] = "92 42 dc0010";
  for (int k = 0; k < 16; k++)
    strcat(spec, " a161");
  DEC(spec, SECCHAT_ERR_BAD_LENGTH);
  char ok[256] = "92 42 9f";
  for (int k = 0; k < 15; k++)
    strcat(ok, " a161");
  DEC(ok, 0);
  DEC("92 42 91 a0", SECCHAT_ERR_BAD_LENGTH); /* empty token */
  DEC("92 42 91 c40161", SECCHAT_ERR_SCHEMA); /* bin for str */
  DEC("92 42 a161", SECCHAT_ERR_SCHEMA);      /* str for list */
  sc_frame f = sample(SC_FRAME_LOOKUP_RESULT, 0);
  f.u.lookup_result.count = SC_MAX_LOOKUP_TOKENS + 1;
  ck_assert_int_eq(sc_frame_encode(&f, g_out, sizeof g_out), SECCHAT_ERR_BAD_LENGTH);
}
END_TEST

START_TEST(encode_misuse)
{
  sc_frame f = sample(SC_FRAME_RENEW, 0);
  f.u.renew.proof = NULL;
  ck_assert_int_eq(sc_frame_encode(&f, g_out, sizeof g_out), SECCHAT_ERR_INVALID_ARGUMENT);
  f.type = (sc_frame_type)11;
  ck_assert_int_eq(sc_frame_encode(&f, g_out, sizeof g_out), SECCHAT_ERR_UNKNOWN_FRAME);
  f = sample(SC_FRAME_RELAYED, 0);
  f.u.relayed.ref = 0;
  ck_assert_int_eq(sc_frame_encode(&f, g_out, sizeof g_out), SECCHAT_ERR_SCHEMA);
  f = sample(SC_FRAME_ERROR, 0);
  f.u.error.ref = 0; /* allowed: "no ref" */
  ck_assert_int_gt(sc_frame_encode(&f, g_out, sizeof g_out), 0);
  /* A14 on the sending side: no silent C-string truncation. */
  f = sample(SC_FRAME_LOOKUP_NAME, 0);
  f.u.lookup_name.name = S("bo\0b", 4);
  ck_assert_int_eq(sc_frame_encode(&f, g_out, sizeof g_out), SECCHAT_ERR_NUL_IN_STRING);
  f.u.lookup_name.name = S("b\xff", 2);
  ck_assert_int_eq(sc_frame_encode(&f, g_out, sizeof g_out), SECCHAT_ERR_BAD_UTF8);
  ck_assert_int_eq(sc_frame_encode(NULL, g_out, sizeof g_out), SECCHAT_ERR_INVALID_ARGUMENT);
  sc_frame g;
  ck_assert_int_eq(sc_frame_decode(&g, NULL, 0), SECCHAT_ERR_TRUNCATED);
  ck_assert_int_eq(sc_frame_decode(NULL, g_out, 1), SECCHAT_ERR_INVALID_ARGUMENT);
}
END_TEST

/* ---- A7-A14: malformed bodies ------------------------------------------------------ */

/* Decode with the allocation count of the decode alone. */
static int dec_counted(const char *spec, size_t *nalloc, size_t *peak)
{
  sc_frame f;
  size_t n = mk(g_body, sizeof g_body, spec);
  alloc_begin();
  int rc = sc_frame_decode(&f, g_body, n);
  *nalloc = alloc_count();
  *peak = alloc_peak();
  return rc;
}

START_TEST(a7_a8_count_bombs)
{
  static const struct {
    const char *spec;
    int err;
  } t[] = {
      {"dd ffffffff", SECCHAT_ERR_COUNT_OVERFLOW},
      {"df ffffffff", SECCHAT_ERR_FORBIDDEN_TYPE}, /* map32: refused on its type byte */
      {"dd 00100000 c0", SECCHAT_ERR_COUNT_OVERFLOW},
      {"dc ffff 0a", SECCHAT_ERR_COUNT_OVERFLOW},
      {"92 42 dd ffffffff", SECCHAT_ERR_COUNT_OVERFLOW}, /* nested bomb */
      {"92 42 dd 00100000 R100X00", SECCHAT_ERR_COUNT_OVERFLOW},
      {"92 05 c6 ffffffff", SECCHAT_ERR_TRUNCATED},
      /* Counts add up across levels: the list's 2 elements plus the outer
       * array's last one need 3 bytes, only 2 are left. */
      {"93 42 92 a161", SECCHAT_ERR_COUNT_OVERFLOW},
  };
  for (size_t k = 0; k < sizeof t / sizeof t[0]; k++) {
    size_t nalloc, peak;
    int rc = dec_counted(t[k].spec, &nalloc, &peak);
    ck_assert_msg(rc == t[k].err, "%s: %s", t[k].spec, secchat_error_name(rc));
    ck_assert_uint_eq(nalloc, 0); /* decoding never allocates */
    ck_assert_uint_eq(peak, 0);
  }
}
END_TEST

static size_t nested_spec(uint8_t *out, size_t depth)
{
  memset(out, 0x91, depth);
  out[depth] = 0xc0;
  return depth + 1;
}

START_TEST(a9_depth)
{
  static uint8_t buf[100001];
  sc_frame f;
  static const size_t depths[] = {9, 33, 65000};
  for (size_t k = 0; k < 3; k++) {
    size_t n = nested_spec(buf, depths[k]);
    alloc_begin();
    int rc = sc_frame_decode(&f, buf, n);
    size_t nalloc = alloc_count();
    ck_assert_int_eq(rc, SECCHAT_ERR_DEPTH);
    ck_assert_uint_eq(nalloc, 0);
  }
  /* 100000 levels exceed the body limit, so the frame layer refuses them
   * on size; the validator underneath still calls it a depth error. */
  size_t n = nested_spec(buf, 100000);
  alloc_begin();
  int rc1 = sc_frame_decode(&f, buf, n);
  int rc2 = sc_mp_validate(buf, n, SC_MP_MAX_DEPTH);
  size_t nalloc = alloc_count();
  ck_assert_int_eq(rc1, SECCHAT_ERR_FRAME_TOO_LARGE);
  ck_assert_int_eq(rc2, SECCHAT_ERR_DEPTH);
  ck_assert_uint_eq(nalloc, 0);
  /* Inside a valid frame type: depth 3 where a str is expected. */
  DEC("92 42 91 91 a161", SECCHAT_ERR_SCHEMA);
  DEC("92 42 91 91 91 91 91 91 91 91 a161", SECCHAT_ERR_DEPTH);
}
END_TEST

START_TEST(a10_length_past_end)
{
  DEC("92 04 a5 616263", SECCHAT_ERR_TRUNCATED);
  DEC("92 04 d9 64 R40X61", SECCHAT_ERR_TRUNCATED);
  DEC("92 05 c4 14 R19X55", SECCHAT_ERR_TRUNCATED);
  DEC("92 05 c6 ffffffff", SECCHAT_ERR_TRUNCATED);
  DEC("92 40 db ffffffff 61", SECCHAT_ERR_TRUNCATED);
  DEC("94 08 01 c420 R32X77 c5 ffff R10X00", SECCHAT_ERR_TRUNCATED);
  DEC("", SECCHAT_ERR_TRUNCATED);
  DEC("92 0a", SECCHAT_ERR_COUNT_OVERFLOW);
  DEC("92 0a cd 01", SECCHAT_ERR_TRUNCATED);
}
END_TEST

START_TEST(a11_wrong_types)
{
  /* Not an array / type not a uint / unknown type. */
  DEC("0a", SECCHAT_ERR_SCHEMA);
  DEC("a4 50494e47", SECCHAT_ERR_SCHEMA);
  DEC("90", SECCHAT_ERR_SCHEMA);
  DEC("92 a1 0a 05", SECCHAT_ERR_SCHEMA);
  DEC("92 ff 05", SECCHAT_ERR_SCHEMA);     /* negative type */
  DEC("92 c0 05", SECCHAT_ERR_SCHEMA);     /* nil type */
  DEC("92 0b 05", SECCHAT_ERR_UNKNOWN_FRAME);
  DEC("92 00 05", SECCHAT_ERR_UNKNOWN_FRAME);
  DEC("92 3f 05", SECCHAT_ERR_UNKNOWN_FRAME);
  DEC("92 4a 05", SECCHAT_ERR_UNKNOWN_FRAME);
  DEC("92 cc8a 05", SECCHAT_ERR_UNKNOWN_FRAME); /* 138 = 10 + 128 */
  DEC("91 0a", SECCHAT_ERR_SCHEMA);             /* field missing */
  DEC("93 0a 05 05", SECCHAT_ERR_SCHEMA);       /* extra field */
  /* ref: negative, float, nil, bool, zero, str. */
  DEC("92 46 ff", SECCHAT_ERR_SCHEMA);
  DEC("92 46 d0 80", SECCHAT_ERR_SCHEMA);
  DEC("92 46 cb 3ff0000000000000", SECCHAT_ERR_FORBIDDEN_TYPE);
  DEC("92 46 ca 3f800000", SECCHAT_ERR_FORBIDDEN_TYPE);
  DEC("92 46 c0", SECCHAT_ERR_SCHEMA);
  DEC("92 46 c3", SECCHAT_ERR_SCHEMA);
  DEC("92 46 00", SECCHAT_ERR_SCHEMA);
  DEC("92 46 a131", SECCHAT_ERR_SCHEMA);
  DEC("94 08 00 c420 R32X77 c401 00", SECCHAT_ERR_SCHEMA);   /* GROUP_SEND ref 0 */
  DEC("94 09 ff c414 R20X66 c401 00", SECCHAT_ERR_SCHEMA);   /* DIRECT ref -1 */
  /* nil or wrong type for required fields. */
  DEC("92 03 c0", SECCHAT_ERR_SCHEMA);
  DEC("92 06 c0", SECCHAT_ERR_SCHEMA);
  DEC("92 04 c0", SECCHAT_ERR_SCHEMA);
  DEC("92 04 c401 61", SECCHAT_ERR_SCHEMA);                 /* bin for str */
  DEC("92 05 b4 R20X61", SECCHAT_ERR_SCHEMA);               /* str for bin */
  DEC("92 05 94 01 02 03 04", SECCHAT_ERR_SCHEMA);          /* array for bin */
  DEC("94 45 c420 R32X77 c414 R20X66 01", SECCHAT_ERR_SCHEMA); /* int for bool */
  DEC("94 45 c420 R32X77 c414 R20X66 c0", SECCHAT_ERR_SCHEMA); /* nil for bool */
  DEC("93 41 c414 R20X55 c0", SECCHAT_ERR_SCHEMA);
  /* exact lengths for keys, signatures, ids. */
  DEC("92 03 c43f R63X44", SECCHAT_ERR_BAD_LENGTH);
  DEC("92 03 c441 R65X44", SECCHAT_ERR_BAD_LENGTH);
  DEC("92 05 c413 R19X55", SECCHAT_ERR_BAD_LENGTH);
  DEC("92 05 c415 R21X55", SECCHAT_ERR_BAD_LENGTH);
  DEC("92 06 c41f R31X77", SECCHAT_ERR_BAD_LENGTH);
  DEC("92 06 c400", SECCHAT_ERR_BAD_LENGTH);
  DEC("96 01 a161 c41f R31X11 c420 R32X22 c440 R64X33 c440 R64X44", SECCHAT_ERR_BAD_LENGTH);
  DEC("96 01 a161 c420 R32X11 c420 R32X22 c43f R63X33 c440 R64X44", SECCHAT_ERR_BAD_LENGTH);
  DEC("96 01 a0 c420 R32X11 c420 R32X22 c440 R64X33 c440 R64X44", SECCHAT_ERR_BAD_LENGTH);
  DEC("96 01 a161 c420 R32X11 c420 R32X22 c440 R64X33 c440 R64X44", 0);
}
END_TEST

START_TEST(a11_noncanonical_in_frames)
{
  DEC("92 0a 05", 0);
  DEC("92 0a cc05", SECCHAT_ERR_NONCANONICAL);                /* uint8 */
  DEC("92 0a cd0005", SECCHAT_ERR_NONCANONICAL);              /* uint16 */
  DEC("92 0a ce00000005", SECCHAT_ERR_NONCANONICAL);          /* uint32 */
  DEC("92 0a cf0000000000000005", SECCHAT_ERR_NONCANONICAL);  /* uint64 */
  DEC("92 0a d005", SECCHAT_ERR_NONCANONICAL);                /* int8 >= 0 */
  DEC("92 0a d10005", SECCHAT_ERR_NONCANONICAL);
  DEC("92 0a d200000005", SECCHAT_ERR_NONCANONICAL);
  DEC("92 0a d30000000000000005", SECCHAT_ERR_NONCANONICAL);
  DEC("92 cc0a 05", SECCHAT_ERR_NONCANONICAL);                /* the type itself */
  DEC("92 04 d905 616c696365", SECCHAT_ERR_NONCANONICAL);     /* str8 */
  DEC("92 04 da0005 616c696365", SECCHAT_ERR_NONCANONICAL);   /* str16 */
  DEC("92 04 db00000005 616c696365", SECCHAT_ERR_NONCANONICAL); /* str32 */
  DEC("92 05 c50014 R20X55", SECCHAT_ERR_NONCANONICAL);       /* bin16 */
  DEC("92 05 c600000014 R20X55", SECCHAT_ERR_NONCANONICAL);   /* bin32 */
  DEC("dc0002 0a 05", SECCHAT_ERR_NONCANONICAL);              /* array16 */
  DEC("dd00000002 0a 05", SECCHAT_ERR_NONCANONICAL);          /* array32 */
  DEC("92 42 dc0001 a161", SECCHAT_ERR_NONCANONICAL);         /* nested array16 */
}
END_TEST

START_TEST(a12_maps)
{
  DEC("80", SECCHAT_ERR_FORBIDDEN_TYPE);
  DEC("82 a474797065 0a a56e6f6e6365 05", SECCHAT_ERR_FORBIDDEN_TYPE);
  DEC("de0001 0a 05", SECCHAT_ERR_FORBIDDEN_TYPE);
  DEC("92 42 81 a161 a162", SECCHAT_ERR_FORBIDDEN_TYPE);
  DEC("92 0a 80", SECCHAT_ERR_FORBIDDEN_TYPE);
  DEC("92 0a c7 01 05 00", SECCHAT_ERR_FORBIDDEN_TYPE); /* ext */
  DEC("92 0a d6 ff 00000000", SECCHAT_ERR_FORBIDDEN_TYPE); /* timestamp ext */
  DEC("92 0a c1", SECCHAT_ERR_INVALID_BYTE);
}
END_TEST

START_TEST(a13_trailing)
{
  DEC("92 0a 05 00", SECCHAT_ERR_TRAILING_BYTES);
  DEC("92 0a 05 92 0a 05", SECCHAT_ERR_TRAILING_BYTES);
  DEC("92 0a 05 c1", SECCHAT_ERR_TRAILING_BYTES);
  DEC("92 03 c440 R64X44 R1X00", SECCHAT_ERR_TRAILING_BYTES);
}
END_TEST

START_TEST(a14_utf8_nul)
{
  DEC("92 04 a3 626f62", 0);
  DEC("92 04 a3 620062", SECCHAT_ERR_NUL_IN_STRING);       /* name "b\0b" */
  DEC("92 04 a1 00", SECCHAT_ERR_NUL_IN_STRING);
  DEC("93 02 a3 612e00 c440 R64X33", SECCHAT_ERR_NUL_IN_STRING); /* token */
  DEC("94 44 c414 R20X66 a2 6100 c401 00", SECCHAT_ERR_NUL_IN_STRING);
  DEC("92 42 92 a161 a2 6200", SECCHAT_ERR_NUL_IN_STRING);
  DEC("92 04 a2 c080", SECCHAT_ERR_BAD_UTF8);              /* overlong NUL */
  DEC("92 04 a3 e080af", SECCHAT_ERR_BAD_UTF8);            /* overlong '/' */
  DEC("92 04 a4 f08282ac", SECCHAT_ERR_BAD_UTF8);          /* overlong U+20AC */
  DEC("92 04 a3 eda080", SECCHAT_ERR_BAD_UTF8);            /* surrogate */
  DEC("92 04 a4 f4908080", SECCHAT_ERR_BAD_UTF8);          /* > U+10FFFF */
  DEC("92 04 a1 ff", SECCHAT_ERR_BAD_UTF8);
  DEC("92 04 a1 80", SECCHAT_ERR_BAD_UTF8);                /* lone continuation */
  DEC("92 04 a2 61c3", SECCHAT_ERR_BAD_UTF8);              /* truncated */
  DEC("92 40 a3 e28228", SECCHAT_ERR_BAD_UTF8);            /* bad continuation */
}
END_TEST

/* ---- Deframer -------------------------------------------------------------------- */

/* Collected output of one run: concatenated messages, their lengths, and
 * the final status. */
typedef struct run {
  uint8_t *data;
  size_t data_len;
  size_t lens[64];
  size_t nmsg;
  int err;
  bool in_progress;
} run;

static uint64_t g_rand = 0x9e3779b97f4a7c15u;

static uint64_t rnd(void)
{
  /* splitmix64: deterministic, independent of the library's RNG. */
  uint64_t z = (g_rand += 0x9e3779b97f4a7c15u);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

/* Feed `in` in chunks: chunk 0 = all at once, 1 = byte by byte, else
 * random sizes in [1, chunk]. */
static void feed_all(run *r, const uint8_t *in, size_t len, size_t chunk, size_t max)
{
  sc_deframer d;
  ck_assert_int_eq(sc_deframer_init(&d, max), 0);
  memset(r, 0, sizeof *r);
  r->data = malloc(len + 1);
  ck_assert_ptr_nonnull(r->data);
  size_t pos = 0;
  while (pos < len && r->err == 0) {
    size_t c = chunk == 0 ? len - pos : chunk == 1 ? 1 : 1 + (size_t)(rnd() % chunk);
    if (c > len - pos)
      c = len - pos;
    size_t off = 0;
    while (off < c) {
      const uint8_t *m;
      size_t mlen;
      secchat_ssize n = sc_deframer_feed(&d, in + pos + off, c - off, &m, &mlen);
      if (n < 0) {
        r->err = (int)n;
        break;
      }
      ck_assert_int_gt(n, 0);
      off += (size_t)n;
      if (m) {
        ck_assert_uint_lt(r->nmsg, 64);
        memcpy(r->data + r->data_len, m, mlen);
        r->data_len += mlen;
        r->lens[r->nmsg++] = mlen;
      }
    }
    pos += c;
  }
  r->in_progress = sc_deframer_in_progress(&d);
  sc_deframer_free(&d);
}

static void same_run(const run *a, const run *b)
{
  ck_assert_int_eq(a->err, b->err);
  ck_assert_uint_eq(a->nmsg, b->nmsg);
  ck_assert_mem_eq(a->lens, b->lens, a->nmsg * sizeof a->lens[0]);
  ck_assert_uint_eq(a->data_len, b->data_len);
  if (a->data_len)
    ck_assert_mem_eq(a->data, b->data, a->data_len);
  ck_assert_int_eq(a->in_progress, b->in_progress);
}

/* A stream of every sample frame (3 variants), each prefixed, plus one
 * message of the maximum size; optionally a bad tail. */
static size_t build_stream(uint8_t *out, size_t cap, size_t *lens, size_t *count)
{
  size_t n = 0;
  *count = 0;
  for (unsigned v = 0; v < 3; v++) {
    for (size_t k = 0; k < NTYPES; k++) {
      sc_frame f = sample(ALL_TYPES[k], v);
      secchat_ssize m = sc_frame_encode(&f, out + n + 4, cap - n - 4);
      ck_assert_int_gt(m, 0);
      sc_frame_prefix(out + n, (uint32_t)m);
      n += 4 + (size_t)m;
      lens[(*count)++] = (size_t)m;
    }
  }
  ck_assert_uint_ge(cap - n, 4 + SECCHAT_MAX_WIRE_MESSAGE);
  sc_frame_prefix(out + n, SECCHAT_MAX_WIRE_MESSAGE);
  memset(out + n + 4, 0xab, SECCHAT_MAX_WIRE_MESSAGE);
  n += 4 + SECCHAT_MAX_WIRE_MESSAGE;
  lens[(*count)++] = SECCHAT_MAX_WIRE_MESSAGE;
  return n;
}

START_TEST(deframer_chunking_invariant)
{
  static uint8_t stream[400000];
  size_t lens[64], count;
  size_t n = build_stream(stream, sizeof stream, lens, &count);
  run whole, one, rand1, rand2;
  feed_all(&whole, stream, n, 0, 0);
  ck_assert_int_eq(whole.err, 0);
  ck_assert_uint_eq(whole.nmsg, count);
  ck_assert_mem_eq(whole.lens, lens, count * sizeof lens[0]);
  ck_assert(!whole.in_progress);
  /* Every yielded message decodes (the last is the filler). */
  size_t off = 0;
  for (size_t k = 0; k + 1 < count; k++) {
    sc_frame f;
    ck_assert_int_eq(sc_frame_decode(&f, whole.data + off, lens[k]), 0);
    ck_assert_int_eq(f.type, ALL_TYPES[k % NTYPES]);
    off += lens[k];
  }
  feed_all(&one, stream, n, 1, 0);
  feed_all(&rand1, stream, n, 7, 0);
  feed_all(&rand2, stream, n, 5000, 0);
  same_run(&whole, &one);
  same_run(&whole, &rand1);
  same_run(&whole, &rand2);
  /* Same with a trailing partial frame and with a trailing bad prefix. */
  run a, b;
  feed_all(&a, stream, n - 10, 0, 0);
  feed_all(&b, stream, n - 10, 1, 0);
  same_run(&a, &b);
  ck_assert(a.in_progress);
  ck_assert_uint_eq(a.nmsg, count - 1);
  free(a.data);
  free(b.data);
  memcpy(stream + n, "\x00\x01\x00\x00", 4);
  feed_all(&a, stream, n + 4, 0, 0);
  feed_all(&b, stream, n + 4, 3, 0);
  same_run(&a, &b);
  ck_assert_int_eq(a.err, SECCHAT_ERR_FRAME_TOO_LARGE);
  ck_assert_uint_eq(a.nmsg, count);
  free(whole.data);
  free(one.data);
  free(rand1.data);
  free(rand2.data);
  free(a.data);
  free(b.data);
}
END_TEST

START_TEST(a1_empty_prefix)
{
  sc_deframer d;
  const uint8_t *m;
  size_t ml;
  ck_assert_int_eq(sc_deframer_init(&d, 0), 0);
  ck_assert_int_eq(sc_deframer_feed(&d, (const uint8_t *)"\0\0\0", 3, &m, &ml), 3);
  ck_assert(sc_deframer_in_progress(&d));
  ck_assert_int_eq(sc_deframer_feed(&d, (const uint8_t *)"\0\0\0\x03" "abc", 7, &m, &ml),
                   SECCHAT_ERR_FRAME_EMPTY);
  ck_assert_ptr_null(m);
  /* Sticky: even valid input is refused now. */
  ck_assert_int_eq(sc_deframer_feed(&d, (const uint8_t *)"\0\0\0\x01" "a", 5, &m, &ml),
                   SECCHAT_ERR_FRAME_EMPTY);
  ck_assert(!sc_deframer_in_progress(&d));
  sc_deframer_free(&d);
}
END_TEST

START_TEST(a2_a3_too_large_no_alloc)
{
  static const char *prefixes[] = {"\x00\x01\x00\x00", "\xff\xff\xff\xff", "\x80\x00\x00\x00"};
  for (size_t k = 0; k < 3; k++) {
    for (int bytewise = 0; bytewise < 2; bytewise++) {
      sc_deframer d;
      const uint8_t *m;
      size_t ml;
      uint8_t in[4 + 100];
      memcpy(in, prefixes[k], 4);
      memset(in + 4, 0x5a, 100);
      ck_assert_int_eq(sc_deframer_init(&d, 0), 0);
      alloc_begin();
      secchat_ssize rc = 0;
      for (size_t i = 0; i < sizeof in && rc >= 0; i++)
        rc = sc_deframer_feed(&d, in + i, bytewise ? 1 : sizeof in - i, &m, &ml);
      size_t nalloc = alloc_count();
      ck_assert_int_eq(rc, SECCHAT_ERR_FRAME_TOO_LARGE);
      ck_assert_uint_eq(nalloc, 0);
      sc_deframer_free(&d);
    }
  }
  /* Limit parameter: max accepted, max + 1 refused, both before storing. */
  sc_deframer d;
  const uint8_t *m;
  size_t ml;
  ck_assert_int_eq(sc_deframer_init(&d, 1000), 0);
  ck_assert_int_eq(sc_deframer_feed(&d, (const uint8_t *)"\0\0\x03\xe9", 4, &m, &ml),
                   SECCHAT_ERR_FRAME_TOO_LARGE);
  sc_deframer_free(&d);
  ck_assert_int_eq(sc_deframer_init(&d, 1000), 0);
  ck_assert_int_eq(sc_deframer_feed(&d, (const uint8_t *)"\0\0\x03\xe8", 4, &m, &ml), 4);
  ck_assert(sc_deframer_in_progress(&d));
  sc_deframer_free(&d);
  ck_assert_int_eq(sc_deframer_init(&d, SECCHAT_MAX_WIRE_MESSAGE + 1),
                   SECCHAT_ERR_INVALID_ARGUMENT);
  /* The default limit: 65535 accepted, prefix alone allocates nothing
   * (A3 "then silence" with an acceptable size). */
  ck_assert_int_eq(sc_deframer_init(&d, 0), 0);
  alloc_begin();
  secchat_ssize c1 = sc_deframer_feed(&d, (const uint8_t *)"\0\0\xff\xff", 4, &m, &ml);
  size_t n1 = alloc_count();
  /* First payload byte of a split message: one buffer of the declared size. */
  secchat_ssize c2 = sc_deframer_feed(&d, (const uint8_t *)"x", 1, &m, &ml);
  size_t n2 = alloc_count(), peak = alloc_peak();
  sc_deframer_free(&d);
  size_t left = g_live - g_base;
  ck_assert_int_eq(c1, 4);
  ck_assert_uint_eq(n1, 0);
  ck_assert_int_eq(c2, 1);
  ck_assert_uint_eq(n2, 1);
  ck_assert_uint_ge(peak, 65535);
  ck_assert_uint_lt(peak, 65535 + 4096);
  ck_assert_uint_lt(left, 64); /* released */
}
END_TEST

START_TEST(a4_half_frame_then_eof)
{
  uint8_t in[4 + 100];
  sc_frame_prefix(in, 100);
  memset(in + 4, 1, 100);
  sc_deframer d;
  const uint8_t *m;
  size_t ml;
  ck_assert_int_eq(sc_deframer_init(&d, 0), 0);
  ck_assert_int_eq(sc_deframer_feed(&d, in, 54, &m, &ml), 54);
  ck_assert_ptr_null(m);
  ck_assert(sc_deframer_in_progress(&d));
  ck_assert_int_eq(sc_deframer_feed(&d, in, 0, &m, &ml), 0);
  ck_assert_ptr_null(m);
  sc_deframer_free(&d); /* end of stream: nothing yielded, nothing leaked */
}
END_TEST

START_TEST(a6_coalesced)
{
  uint8_t in[64];
  size_t n = 0;
  static const char *bodies[] = {"\x92\x0a\x01", "\x92\x0a\x02", "\x92\x0a\x03"};
  for (int k = 0; k < 3; k++) {
    sc_frame_prefix(in + n, 3);
    memcpy(in + n + 4, bodies[k], 3);
    n += 7;
  }
  sc_deframer d;
  const uint8_t *m;
  size_t ml;
  sc_frame f;
  ck_assert_int_eq(sc_deframer_init(&d, 0), 0);
  size_t first = n - 2; /* the third frame lacks its last two bytes */
  size_t off = 0;
  for (uint64_t want = 1; want <= 2; want++) {
    secchat_ssize c = sc_deframer_feed(&d, in + off, first - off, &m, &ml);
    ck_assert_int_eq(c, 7);
    ck_assert_ptr_eq(m, in + off + 4); /* whole message in the chunk: zero copy */
    ck_assert_int_eq(sc_frame_decode(&f, m, ml), 0);
    ck_assert_uint_eq(f.u.ping.nonce, want);
    off += (size_t)c;
  }
  ck_assert_int_eq(sc_deframer_feed(&d, in + off, first - off, &m, &ml), 5);
  ck_assert_ptr_null(m);
  ck_assert(sc_deframer_in_progress(&d));
  ck_assert_int_eq(sc_deframer_feed(&d, in + first, 2, &m, &ml), 2);
  ck_assert_ptr_nonnull(m);
  ck_assert_int_eq(sc_frame_decode(&f, m, ml), 0);
  ck_assert_uint_eq(f.u.ping.nonce, 3);
  ck_assert(!sc_deframer_in_progress(&d));
  sc_deframer_free(&d);
}
END_TEST

START_TEST(a7_a8_through_deframer)
{
  /* The bombs inside an honest prefix: the deframer stores 5-6 bytes, the
   * decoder refuses on the count. */
  static const char *bombs[] = {"\xdd\xff\xff\xff\xff", "\xdf\xff\xff\xff\xff",
                                "\xdd\x00\x10\x00\x00\xc0"};
  static const int want[] = {SECCHAT_ERR_COUNT_OVERFLOW, SECCHAT_ERR_FORBIDDEN_TYPE,
                             SECCHAT_ERR_COUNT_OVERFLOW};
  for (size_t k = 0; k < 3; k++) {
    size_t bl = k == 2 ? 6 : 5;
    uint8_t in[16];
    sc_frame_prefix(in, (uint32_t)bl);
    memcpy(in + 4, bombs[k], bl);
    sc_deframer d;
    const uint8_t *m;
    size_t ml;
    sc_frame f;
    ck_assert_int_eq(sc_deframer_init(&d, 0), 0);
    alloc_begin();
    size_t off = 0;
    secchat_ssize c;
    do {
      c = sc_deframer_feed(&d, in + off, 1, &m, &ml); /* byte by byte */
      off++;
    } while (c == 1 && m == NULL && off < 4 + bl);
    int rc = m ? sc_frame_decode(&f, m, ml) : 1;
    size_t peak = alloc_peak(), nalloc = alloc_count();
    sc_deframer_free(&d);
    ck_assert_int_eq(c, 1);
    ck_assert_uint_eq(off, 4 + bl);
    ck_assert_uint_eq(ml, bl);
    ck_assert_int_eq(rc, want[k]);
    ck_assert_uint_eq(nalloc, 1);  /* the split message's buffer */
    ck_assert_uint_lt(peak, 64);   /* of its declared size */
  }
}
END_TEST

START_TEST(deframer_buffer_lifetime)
{
  /* A split message is yielded from the internal buffer, which is freed on
   * the next call: heap returns to its baseline between messages. */
  uint8_t in[4 + 1000];
  sc_frame_prefix(in, 1000);
  memset(in + 4, 7, 1000);
  sc_deframer d;
  const uint8_t *m;
  size_t ml;
  ck_assert_int_eq(sc_deframer_init(&d, 0), 0);
  alloc_begin();
  secchat_ssize c[3][2];
  bool copied[3];
  for (int round = 0; round < 3; round++) {
    c[round][0] = sc_deframer_feed(&d, in, 500, &m, &ml);
    c[round][1] = sc_deframer_feed(&d, in + 500, 504, &m, &ml);
    copied[round] = m != NULL && (m < in || m >= in + sizeof in) && ml == 1000 && m[999] == 7;
  }
  secchat_ssize c_end = sc_deframer_feed(&d, in, 0, &m, &ml);
  size_t left = g_live - g_base, peak = alloc_peak(), nalloc = alloc_count();
  for (int round = 0; round < 3; round++) {
    ck_assert_int_eq(c[round][0], 500);
    ck_assert_int_eq(c[round][1], 504);
    ck_assert(copied[round]); /* yielded from the buffer, not in place */
  }
  ck_assert_int_eq(c_end, 0);
  ck_assert_uint_lt(left, 64);        /* freed on the call after the yield */
  ck_assert_uint_lt(peak, 1000 + 64); /* one buffer at a time */
  ck_assert_uint_eq(nalloc, 3);
  ck_assert_int_eq(sc_deframer_feed(NULL, in, 1, &m, &ml), SECCHAT_ERR_INVALID_ARGUMENT);
  sc_deframer_free(&d);
  sc_deframer_free(NULL);
}
END_TEST

/* ---- Padding -------------------------------------------------------------------- */

START_TEST(padding_sizes)
{
  static const struct { size_t body, padded; } t[] = {
      {0, 0},        {1, 256},         {254, 256},       {255, 512},
      {510, 512},    {511, 768},       {65278, 65280},   {65279, 65519},
      {65517, 65519}, {65518, 0},
  };
  for (size_t k = 0; k < sizeof t / sizeof t[0]; k++)
    ck_assert_uint_eq(sc_padded_size(t[k].body), t[k].padded);
}
END_TEST

START_TEST(padding_roundtrip_and_errors)
{
  static uint8_t pt[SECCHAT_MAX_TRANSPORT_PLAINTEXT + 8], body[SECCHAT_MAX_FRAME_BODY + 1];
  for (size_t k = 0; k < sizeof body; k++)
    body[k] = (uint8_t)(k + 1);
  static const size_t sizes[] = {1, 3, 254, 255, 1000, 65279, 65517};
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    secchat_ssize n = sc_pad(pt, sizeof pt, body, sizes[k]);
    ck_assert_int_eq(n, (secchat_ssize)sc_padded_size(sizes[k]));
    ck_assert_int_eq(n % 256 == 0 || n == SECCHAT_MAX_TRANSPORT_PLAINTEXT, 1);
    const uint8_t *b;
    size_t bl;
    ck_assert_int_eq(sc_unpad(pt, (size_t)n, &b, &bl), 0);
    ck_assert_uint_eq(bl, sizes[k]);
    ck_assert_ptr_eq(b, pt + 2);
    ck_assert_mem_eq(b, body, bl);
  }
  ck_assert_int_eq(sc_pad(pt, sizeof pt, body, SECCHAT_MAX_FRAME_BODY + 1), SECCHAT_ERR_TOO_LONG);
  /* An empty body has no record: its zero length would read as padding. */
  ck_assert_int_eq(sc_pad(pt, sizeof pt, body, 0), SECCHAT_ERR_TOO_LONG);
  ck_assert_int_eq(sc_pad(pt, 255, body, 3), SECCHAT_ERR_BUFFER_TOO_SMALL);

  const uint8_t *b;
  size_t bl;
  secchat_ssize n = sc_pad(pt, sizeof pt, body, 10);
  ck_assert_int_eq(n, 256);
  ck_assert_int_eq(sc_unpad(pt, 1, &b, &bl), SECCHAT_ERR_BAD_PADDING);
  ck_assert_int_eq(sc_unpad(pt, 0, &b, &bl), SECCHAT_ERR_BAD_PADDING);
  ck_assert_int_eq(sc_unpad(pt, 255, &b, &bl), SECCHAT_ERR_BAD_PADDING); /* wrong total */
  ck_assert_int_eq(sc_unpad(pt, 12, &b, &bl), SECCHAT_ERR_BAD_PADDING);  /* unpadded */
  pt[255] = 1;
  ck_assert_int_eq(sc_unpad(pt, 256, &b, &bl), SECCHAT_ERR_BAD_PADDING); /* nonzero pad */
  pt[255] = 0;
  pt[12] = 0x80;
  ck_assert_int_eq(sc_unpad(pt, 256, &b, &bl), SECCHAT_ERR_BAD_PADDING);
  pt[12] = 0;
  pt[1] = 255; /* claims 255 bytes: needs a 512-byte plaintext */
  ck_assert_int_eq(sc_unpad(pt, 256, &b, &bl), SECCHAT_ERR_BAD_PADDING);
  pt[0] = 0xff; /* 65535 + 2 > 256 available */
  pt[1] = 0xff;
  ck_assert_int_eq(sc_unpad(pt, 256, &b, &bl), SECCHAT_ERR_BAD_PADDING);
  /* 65518 claimed in a max-size plaintext: more than the plaintext holds. */
  memset(pt, 0, SECCHAT_MAX_TRANSPORT_PLAINTEXT);
  pt[0] = 0xff;
  pt[1] = 0xee;
  ck_assert_int_eq(sc_unpad(pt, SECCHAT_MAX_TRANSPORT_PLAINTEXT, &b, &bl),
                   SECCHAT_ERR_BAD_PADDING);
  pt[1] = 0xed; /* 65517: the largest body */
  ck_assert_int_eq(sc_unpad(pt, SECCHAT_MAX_TRANSPORT_PLAINTEXT, &b, &bl), 0);
  ck_assert_int_eq(sc_unpad(pt, SECCHAT_MAX_TRANSPORT_PLAINTEXT + 1, &b, &bl),
                   SECCHAT_ERR_BAD_PADDING);
}
END_TEST

/* Several records in one plaintext: the layout of docs/protocol.md 1.3. */
START_TEST(records_roundtrip_and_errors)
{
  static uint8_t pt[SECCHAT_MAX_TRANSPORT_PLAINTEXT + 8];
  uint8_t body[300];
  for (size_t k = 0; k < sizeof body; k++)
    body[k] = (uint8_t)(k + 1);
  /* sizes: used bytes -> padded */
  ck_assert_uint_eq(sc_pad_size(0), 0);
  ck_assert_uint_eq(sc_pad_size(1), 256);
  ck_assert_uint_eq(sc_pad_size(256), 256);
  ck_assert_uint_eq(sc_pad_size(257), 512);
  ck_assert_uint_eq(sc_pad_size(65519), 65519);
  ck_assert_uint_eq(sc_pad_size(65520), 0);
  /* record_put */
  ck_assert_int_eq(sc_record_put(pt, sizeof pt, body, 0), SECCHAT_ERR_TOO_LONG);
  ck_assert_int_eq(sc_record_put(pt, 11, body, 10), SECCHAT_ERR_BUFFER_TOO_SMALL);
  ck_assert_int_eq(sc_record_put(pt, 12, body, 10), 12);
  ck_assert_int_eq(pt[0], 0);
  ck_assert_int_eq(pt[1], 10);

  /* 3 records of 10, 300 and 1 bytes: 317 used -> 512, in order. */
  static const size_t lens[] = {10, 300, 1};
  size_t used = 0;
  for (int i = 0; i < 3; i++)
    used += (size_t)sc_record_put(pt + used, sizeof pt - used, body, lens[i]);
  ck_assert_uint_eq(used, 317);
  memset(pt + used, 0, 512 - used);
  sc_records r;
  ck_assert_int_eq(sc_records_open(&r, pt, 512), 3);
  const uint8_t *b;
  size_t bl, off = 2;
  for (int i = 0; i < 3; i++) {
    ck_assert_int_eq(sc_records_next(&r, &b, &bl), 1);
    ck_assert_uint_eq(bl, lens[i]);
    ck_assert_ptr_eq(b, pt + off);
    ck_assert_mem_eq(b, body, bl);
    off += bl + 2;
  }
  ck_assert_int_eq(sc_records_next(&r, &b, &bl), 0);
  ck_assert_int_eq(sc_unpad(pt, 512, &b, &bl), SECCHAT_ERR_BAD_PADDING); /* not one */
  /* wrong totals: unpadded, over-padded, one byte short */
  ck_assert_int_eq(sc_records_open(&r, pt, used), SECCHAT_ERR_BAD_PADDING);
  memset(pt + 512, 0, 256);
  ck_assert_int_eq(sc_records_open(&r, pt, 768), SECCHAT_ERR_BAD_PADDING);
  ck_assert_int_eq(sc_records_open(&r, pt, 511), SECCHAT_ERR_BAD_PADDING);
  /* a record after a zero length: nonzero padding */
  pt[used + 2] = 0;
  pt[used + 3] = 1;
  pt[used + 4] = 0x90;
  ck_assert_int_eq(sc_records_open(&r, pt, 512), SECCHAT_ERR_BAD_PADDING);
  memset(pt + used, 0, 512 - used);
  /* a length past the end */
  pt[2 + 10 + 2 + 300] = 0x02; /* third record claims 0x0201 bytes */
  ck_assert_int_eq(sc_records_open(&r, pt, 512), SECCHAT_ERR_BAD_PADDING);

  /* a length one byte past the end, and one that ends exactly at it */
  memset(pt, 0, 256);
  pt[0] = 0;
  pt[1] = 255; /* 2 + 255 = 257 > 256 */
  ck_assert_int_eq(sc_records_open(&r, pt, 256), SECCHAT_ERR_BAD_PADDING);
  pt[1] = 254; /* 2 + 254 = 256: fits exactly */
  ck_assert_int_eq(sc_records_open(&r, pt, 256), 1);
  pt[1] = 10;
  pt[12] = 0;
  pt[13] = 243; /* second record 2 + 243 = 245 > 244 left */
  ck_assert_int_eq(sc_records_open(&r, pt, 256), SECCHAT_ERR_BAD_PADDING);
  pt[13] = 242; /* 12 + 2 + 242 = 256 */
  ck_assert_int_eq(sc_records_open(&r, pt, 256), 2);
  /* records filling the plaintext exactly (no zero length after them) */
  used = (size_t)sc_record_put(pt, sizeof pt, body, 126);
  used += (size_t)sc_record_put(pt + used, sizeof pt - used, body, 126);
  ck_assert_uint_eq(used, 256);
  ck_assert_int_eq(sc_records_open(&r, pt, 256), 2);
  /* one byte left after the records: too short for a length, must be 0 */
  used = (size_t)sc_record_put(pt, sizeof pt, body, 125);
  used += (size_t)sc_record_put(pt + used, sizeof pt - used, body, 126);
  ck_assert_uint_eq(used, 255);
  pt[255] = 0;
  ck_assert_int_eq(sc_records_open(&r, pt, 256), 2);
  pt[255] = 7;
  ck_assert_int_eq(sc_records_open(&r, pt, 256), SECCHAT_ERR_BAD_PADDING);
  /* no record at all */
  memset(pt, 0, 256);
  ck_assert_int_eq(sc_records_open(&r, pt, 256), SECCHAT_ERR_BAD_PADDING);
  ck_assert_int_eq(sc_records_open(&r, pt, 0), SECCHAT_ERR_BAD_PADDING);
  ck_assert_int_eq(sc_records_open(&r, NULL, 256), SECCHAT_ERR_BAD_PADDING);
  /* the largest plaintext, many small records: all found */
  used = 0;
  int n = 0;
  while (used + 3 <= SECCHAT_MAX_TRANSPORT_PLAINTEXT) {
    used += (size_t)sc_record_put(pt + used, sizeof pt - used, body, 1);
    n++;
  }
  memset(pt + used, 0, SECCHAT_MAX_TRANSPORT_PLAINTEXT - used);
  ck_assert_int_eq(sc_records_open(&r, pt, SECCHAT_MAX_TRANSPORT_PLAINTEXT), n);
  int seen = 0;
  while (sc_records_next(&r, &b, &bl) == 1)
    seen++;
  ck_assert_int_eq(seen, n);
}
END_TEST

/* ---- Random input: 1 MiB ---------------------------------------------------------- */

static bool documented_decode_error(int rc)
{
  switch (rc) {
  case SECCHAT_ERR_TRUNCATED:
  case SECCHAT_ERR_COUNT_OVERFLOW:
  case SECCHAT_ERR_DEPTH:
  case SECCHAT_ERR_NONCANONICAL:
  case SECCHAT_ERR_TRAILING_BYTES:
  case SECCHAT_ERR_FORBIDDEN_TYPE:
  case SECCHAT_ERR_INVALID_BYTE:
  case SECCHAT_ERR_BAD_UTF8:
  case SECCHAT_ERR_NUL_IN_STRING:
  case SECCHAT_ERR_FRAME_TOO_LARGE:
  case SECCHAT_ERR_UNKNOWN_FRAME:
  case SECCHAT_ERR_SCHEMA:
  case SECCHAT_ERR_BAD_LENGTH:
    return true;
  default:
    return false;
  }
}

static size_t g_ok, g_err;

static void check_message(const uint8_t *m, size_t ml)
{
  static uint8_t again[SECCHAT_MAX_FRAME_BODY];
  const uint8_t *bodies[2] = {m, NULL};
  size_t blens[2] = {ml, 0};
  int rc = sc_unpad(m, ml, &bodies[1], &blens[1]);
  ck_assert(rc == 0 || rc == SECCHAT_ERR_BAD_PADDING);
  for (int k = 0; k < (rc == 0 ? 2 : 1); k++) {
    sc_frame f;
    int d = sc_frame_decode(&f, bodies[k], blens[k]);
    ck_assert_msg(d == 0 || documented_decode_error(d), "undocumented %d", d);
    if (d == 0) {
      g_ok++;
      secchat_ssize n = sc_frame_encode(&f, again, sizeof again);
      ck_assert_int_eq(n, (secchat_ssize)blens[k]);
      ck_assert_mem_eq(again, bodies[k], blens[k]);
    } else {
      g_err++;
    }
  }
}

/* Stream `in` through a deframer in random chunks; restart after each
 * (documented) deframing error one byte further on. */
static void pump_random(const uint8_t *in, size_t len)
{
  size_t pos = 0;
  while (pos < len) {
    sc_deframer d;
    ck_assert_int_eq(sc_deframer_init(&d, 0), 0);
    secchat_ssize c = 0;
    while (pos < len) {
      size_t chunk = 1 + (size_t)(rnd() % 3000);
      if (chunk > len - pos)
        chunk = len - pos;
      const uint8_t *m;
      size_t ml;
      c = sc_deframer_feed(&d, in + pos, chunk, &m, &ml);
      if (c < 0)
        break;
      pos += (size_t)c;
      if (m)
        check_message(m, ml);
    }
    if (c < 0) { /* resume one byte past the failing chunk's start */
      ck_assert(c == SECCHAT_ERR_FRAME_EMPTY || c == SECCHAT_ERR_FRAME_TOO_LARGE);
      pos++;
    }
    sc_deframer_free(&d);
  }
}

START_TEST(random_megabyte)
{
  const size_t len = MiB;
  uint8_t *in = malloc(len);
  ck_assert_ptr_nonnull(in);
  g_rand = 12345;
  alloc_begin();
  size_t live0 = g_live;

  /* (1) Raw random bytes: mostly oversized prefixes. */
  for (size_t k = 0; k < len; k += 8) {
    uint64_t r = rnd();
    memcpy(in + k, &r, 8);
  }
  pump_random(in, len);

  /* (2) Random bodies behind honest prefixes: every message is decoded. */
  for (size_t k = 0; k < len; k += 8) {
    uint64_t r = rnd();
    memcpy(in + k, &r, 8);
  }
  for (size_t off = 0; off + 4 < len;) {
    size_t ml = 1 + (size_t)(rnd() % 600);
    if (ml > len - off - 4)
      ml = len - off - 4;
    sc_frame_prefix(in + off, (uint32_t)ml);
    if (rnd() % 2) /* steer half of them towards the frame grammar */
      in[off + 4] = (uint8_t)(0x91 + rnd() % 6);
    if (rnd() % 2 && ml > 1)
      in[off + 5] = (uint8_t)ALL_TYPES[rnd() % NTYPES];
    off += 4 + ml;
  }
  pump_random(in, len);

  /* (3) Mutations of valid frames (1-4 random bytes changed). */
  uint8_t frame[8192];
  for (int it = 0; it < 20000; it++) {
    sc_frame f = sample(ALL_TYPES[rnd() % NTYPES], (unsigned)(rnd() % 2));
    secchat_ssize n = sc_frame_encode(&f, frame, sizeof frame);
    ck_assert_int_gt(n, 0);
    int flips = 1 + (int)(rnd() % 4);
    for (int j = 0; j < flips; j++)
      frame[rnd() % (uint64_t)n] = (uint8_t)rnd();
    size_t cut = rnd() % 8 == 0 ? (size_t)(rnd() % (uint64_t)n) : (size_t)n;
    check_message(frame, cut);
  }
  ck_assert_uint_gt(g_ok, 1000);  /* the mutations reach valid frames too */
  ck_assert_uint_gt(g_err, 10000);
  ck_assert_uint_lt(alloc_peak(), MiB);                 /* one frame buffer at most */
  ck_assert_uint_le(alloc_peak(), 65535 + 4096);
  ck_assert_uint_lt(g_live - live0, 64);                /* nothing retained */
  free(in);
}
END_TEST

/* ---- Seed corpus: bytes written by an independent Python generator ------------
 * Each file of tests/fuzz/corpus/frame is mode byte || TCP stream. The valid
 * ones must decode and re-encode identically; the A-class samples must give
 * their documented error. */

typedef struct corpus_case {
  const char *name;
  int deframe_err; /* expected sc_deframer_feed error, 0 if none */
  int decode_err;  /* expected error of the first message, 0 = decodes */
} corpus_case;

static const corpus_case corpus[] = {
    {"a1_empty_prefix", SECCHAT_ERR_FRAME_EMPTY, 0},
    {"a2_max_plus_1", SECCHAT_ERR_FRAME_TOO_LARGE, 0},
    {"a3_ffffffff", SECCHAT_ERR_FRAME_TOO_LARGE, 0},
    {"a7_array32", 0, SECCHAT_ERR_COUNT_OVERFLOW},
    {"a7_map32", 0, SECCHAT_ERR_FORBIDDEN_TYPE},
    {"a8_array_bomb", 0, SECCHAT_ERR_COUNT_OVERFLOW},
    {"a9_depth9", 0, SECCHAT_ERR_DEPTH},
    {"a9_depth33", 0, SECCHAT_ERR_DEPTH},
    {"a9_depth1000", 0, SECCHAT_ERR_DEPTH},
    {"a9_depth_in_list", 0, SECCHAT_ERR_DEPTH},
    {"a10_str_past_end", 0, SECCHAT_ERR_TRUNCATED},
    {"a10_bin_past_end", 0, SECCHAT_ERR_TRUNCATED},
    {"a11_float_ref", 0, SECCHAT_ERR_FORBIDDEN_TYPE},
    {"a11_negative_ref", 0, SECCHAT_ERR_SCHEMA},
    {"a11_nil_field", 0, SECCHAT_ERR_SCHEMA},
    {"a11_ref_zero", 0, SECCHAT_ERR_SCHEMA},
    {"a11_noncanon_uint", 0, SECCHAT_ERR_NONCANONICAL},
    {"a11_noncanon_int", 0, SECCHAT_ERR_NONCANONICAL},
    {"a11_noncanon_str", 0, SECCHAT_ERR_NONCANONICAL},
    {"a11_noncanon_bin", 0, SECCHAT_ERR_NONCANONICAL},
    {"a11_noncanon_array", 0, SECCHAT_ERR_NONCANONICAL},
    {"a11_short_sig", 0, SECCHAT_ERR_BAD_LENGTH},
    {"a11_unknown_type", 0, SECCHAT_ERR_UNKNOWN_FRAME},
    {"a12_map", 0, SECCHAT_ERR_FORBIDDEN_TYPE},
    {"a13_trailing", 0, SECCHAT_ERR_TRAILING_BYTES},
    {"a14_nul_name", 0, SECCHAT_ERR_NUL_IN_STRING},
    {"a14_overlong", 0, SECCHAT_ERR_BAD_UTF8},
    {"a14_surrogate", 0, SECCHAT_ERR_BAD_UTF8},
    {"a14_above_max", 0, SECCHAT_ERR_BAD_UTF8},
};

static const char *const corpus_frames[] = {
    "register", "auth",    "renew",         "lookup_name",   "lookup_uid",
    "route_open", "route_close", "group_send", "direct",     "ping",
    "token",    "auth_ok", "lookup_result", "lookup_result_empty", "deliver",
    "direct_deliver", "presence", "relayed", "error",       "pong",
    "bye",
};

static uint8_t *read_corpus(const char *name, size_t *len)
{
  const char *src = getenv("SECCHAT_SOURCE_DIR");
  ck_assert_msg(src != NULL, "SECCHAT_SOURCE_DIR not set");
  char path[1024];
  snprintf(path, sizeof path, "%s/tests/fuzz/corpus/frame/%s", src, name);
  uint8_t *data = (uint8_t *)tu_read_file(path, len);
  ck_assert_msg(data != NULL, "cannot read %s", path);
  ck_assert_uint_ge(*len, 1);
  return data;
}

/* First message of a corpus file (mode byte skipped); returns the
 * deframer's error or 0, with *m pointing into buf (valid until free). */
static int first_message(sc_deframer *d, const uint8_t *data, size_t len, const uint8_t **m,
                         size_t *ml)
{
  ck_assert_int_eq(sc_deframer_init(d, 0), 0);
  secchat_ssize n = sc_deframer_feed(d, data + 1, len - 1, m, ml);
  return n < 0 ? (int)n : 0;
}

START_TEST(corpus_files)
{
  static uint8_t again[SECCHAT_MAX_FRAME_BODY];
  for (size_t k = 0; k < sizeof corpus / sizeof corpus[0]; k++) {
    size_t len, ml;
    const uint8_t *m = NULL;
    sc_deframer d;
    sc_frame f;
    uint8_t *data = read_corpus(corpus[k].name, &len);
    int rc = first_message(&d, data, len, &m, &ml);
    ck_assert_msg(rc == corpus[k].deframe_err, "%s: %s", corpus[k].name, secchat_error_name(rc));
    if (rc == 0) {
      ck_assert_ptr_nonnull(m);
      rc = sc_frame_decode(&f, m, ml);
      ck_assert_msg(rc == corpus[k].decode_err, "%s: %s", corpus[k].name,
                    secchat_error_name(rc));
    }
    sc_deframer_free(&d);
    free(data);
  }
  for (size_t k = 0; k < sizeof corpus_frames / sizeof corpus_frames[0]; k++) {
    for (int padded = 0; padded < 2; padded++) {
      char name[64];
      snprintf(name, sizeof name, "%s_%s", padded ? "padded" : "valid", corpus_frames[k]);
      size_t len, ml, bl;
      const uint8_t *m = NULL, *b;
      sc_deframer d;
      sc_frame f;
      uint8_t *data = read_corpus(name, &len);
      ck_assert_int_eq(first_message(&d, data, len, &m, &ml), 0);
      ck_assert_ptr_nonnull(m);
      if (padded) {
        ck_assert_int_eq(sc_unpad(m, ml, &b, &bl), 0);
      } else {
        b = m;
        bl = ml;
      }
      int rc = sc_frame_decode(&f, b, bl);
      ck_assert_msg(rc == 0, "%s: %s", name, secchat_error_name(rc));
      ck_assert_ptr_nonnull(sc_frame_type_name(f.type));
      ck_assert_int_eq(sc_frame_encode(&f, again, sizeof again), (secchat_ssize)bl);
      ck_assert_mem_eq(again, b, bl);
      sc_deframer_free(&d);
      free(data);
    }
  }
  /* Packed plaintexts written by hand (tests/fuzz/gen_frame_corpus.py): every
   * frame of the catalogue in one message, in order; two malformed ones. */
  static const struct { const char *name; int records; } packed[] = {
      {"packed_all", (int)(sizeof corpus_frames / sizeof corpus_frames[0])},
      {"packed_relay_acks", 3},
      {"bad_packed_overrun", SECCHAT_ERR_BAD_PADDING},
      {"bad_packed_overpadded", SECCHAT_ERR_BAD_PADDING},
  };
  for (size_t k = 0; k < sizeof packed / sizeof packed[0]; k++) {
    size_t plen, ml, bl;
    const uint8_t *m = NULL, *b;
    sc_deframer d;
    sc_records recs;
    uint8_t *pdata = read_corpus(packed[k].name, &plen);
    ck_assert_int_eq(first_message(&d, pdata, plen, &m, &ml), 0);
    ck_assert_msg(sc_records_open(&recs, m, ml) == packed[k].records, "%s", packed[k].name);
    for (int i = 0; packed[k].records > 0 && sc_records_next(&recs, &b, &bl); i++) {
      sc_frame f;
      ck_assert_msg(sc_frame_decode(&f, b, bl) == 0, "%s record %d", packed[k].name, i);
      if (k == 0) { /* packed_all: record i is the body of valid_<frame i> */
        char name[64];
        size_t vlen, vml;
        const uint8_t *vm = NULL;
        sc_deframer vd;
        snprintf(name, sizeof name, "valid_%s", corpus_frames[i]);
        uint8_t *v = read_corpus(name, &vlen);
        ck_assert_int_eq(first_message(&vd, v, vlen, &vm, &vml), 0);
        ck_assert_uint_eq(bl, vml);
        ck_assert_mem_eq(b, vm, bl);
        sc_deframer_free(&vd);
        free(v);
      }
    }
    sc_deframer_free(&d);
    free(pdata);
  }
  /* The coalesced sample: two frames, then a partial third. */
  size_t len;
  uint8_t *data = read_corpus("a6_coalesced", &len);
  run r;
  feed_all(&r, data + 1, len - 1, 0, 0);
  ck_assert_int_eq(r.err, 0);
  ck_assert_uint_eq(r.nmsg, 2);
  ck_assert(r.in_progress);
  free(r.data);
  free(data);
  data = read_corpus("a4_half_frame", &len);
  feed_all(&r, data + 1, len - 1, 1, 0);
  ck_assert_uint_eq(r.nmsg, 0);
  ck_assert(r.in_progress);
  free(r.data);
  free(data);
}
END_TEST

int main(void)
{
  alloc_hooks_install();
  fixtures();
  Suite *s = suite_create("codec");
  TCase *tc = tcase_create("codec");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, alloc_hook_works);
  tcase_add_test(tc, roundtrip_every_type);
  tcase_add_test(tc, decoded_fields_point_into_body);
  tcase_add_test(tc, known_encodings);
  tcase_add_test(tc, type_names);
  tcase_add_test(tc, limits_derivation);
  tcase_add_test(tc, limits_blob);
  tcase_add_test(tc, limits_strings_and_lists);
  tcase_add_test(tc, limits_list_count);
  tcase_add_test(tc, encode_misuse);
  tcase_add_test(tc, a7_a8_count_bombs);
  tcase_add_test(tc, a9_depth);
  tcase_add_test(tc, a10_length_past_end);
  tcase_add_test(tc, a11_wrong_types);
  tcase_add_test(tc, a11_noncanonical_in_frames);
  tcase_add_test(tc, a12_maps);
  tcase_add_test(tc, a13_trailing);
  tcase_add_test(tc, a14_utf8_nul);
  tcase_add_test(tc, deframer_chunking_invariant);
  tcase_add_test(tc, a1_empty_prefix);
  tcase_add_test(tc, a2_a3_too_large_no_alloc);
  tcase_add_test(tc, a4_half_frame_then_eof);
  tcase_add_test(tc, a6_coalesced);
  tcase_add_test(tc, a7_a8_through_deframer);
  tcase_add_test(tc, deframer_buffer_lifetime);
  tcase_add_test(tc, padding_sizes);
  tcase_add_test(tc, padding_roundtrip_and_errors);
  tcase_add_test(tc, records_roundtrip_and_errors);
  tcase_add_test(tc, random_megabyte);
  tcase_add_test(tc, corpus_files);
  suite_add_tcase(s, tc);
  return tu_run(s);
}
