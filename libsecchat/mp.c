/* mp.c: strict canonical msgpack validator, typed reader and writer.
 *
 * Security notes (why it looks like this):
 *  - sc_mp_validate() is the only code that sees raw peer bytes. It is one
 *    forward pass, iterative (an explicit stack of remaining element counts,
 *    at most SC_MP_MAX_DEPTH entries on the C stack), never allocates, and
 *    touches each byte once, so its cost is O(len) whatever the input says.
 *  - Counts are bounded by bytes, not by policy: every pending element needs
 *    at least one byte, so the validator keeps the sum of all elements still
 *    owed by every open array and fails as soon as that sum exceeds the
 *    bytes left. A header that declares 2^32 elements is rejected on its own
 *    6 bytes.
 *  - Canonical form is checked for every header, so a value has exactly one
 *    accepted encoding (signed and hashed bytes are unique).
 *  - The reader re-checks bounds even though validate ran first: it costs a
 *    compare per field and keeps a misuse (reading unvalidated bytes) from
 *    becoming an out-of-bounds read. */
#include "mp.h"

#include <msgpack.h>
#include <string.h>

#include <secchat/secchat.h>

/* ---- Header decoding ------------------------------------------------------
 * One msgpack header classified into a kind plus its value (integer value,
 * str/bin length or array count). Shared by the validator and the reader so
 * both agree on every byte. */
enum {
  K_NIL,
  K_BOOL,
  K_UINT,
  K_INT, /* negative integer */
  K_STR,
  K_BIN,
  K_ARRAY
};

typedef struct hdr {
  int kind;
  size_t size; /* header bytes */
  uint64_t u;  /* uint value, bool value, str/bin length or array count */
  int64_t i;   /* negative integer value */
} hdr;

static int set(hdr *h, int kind, size_t size, uint64_t u)
{
  h->kind = kind;
  h->size = size;
  h->u = u;
  h->i = 0;
  return 0;
}

/* Sign-extend a w-byte two's-complement field. */
static int64_t sext(uint64_t v, size_t w)
{
  switch (w) {
  case 1:
    return (int8_t)v;
  case 2:
    return (int16_t)v;
  case 4:
    return (int32_t)v;
  default:
    return (int64_t)v;
  }
}

/* The wide (non-fix) forms: header byte -> kind, width of the big-endian
 * value that follows, and the smallest value the form may carry. A smaller
 * value fits a shorter form, so it is NONCANONICAL. For negative ints `min`
 * is unused: see decode_hdr. */
typedef struct wide_form {
  uint8_t byte;
  uint8_t kind;
  uint8_t width;
  uint64_t min;
} wide_form;

static const wide_form wide_forms[] = {
    {0xc4, K_BIN, 1, 0},
    {0xc5, K_BIN, 2, 0x100},
    {0xc6, K_BIN, 4, 0x10000},
    {0xcc, K_UINT, 1, 0x80},
    {0xcd, K_UINT, 2, 0x100},
    {0xce, K_UINT, 4, 0x10000},
    {0xcf, K_UINT, 8, 0x100000000u},
    {0xd0, K_INT, 1, 0},
    {0xd1, K_INT, 2, 0},
    {0xd2, K_INT, 4, 0},
    {0xd3, K_INT, 8, 0},
    {0xd9, K_STR, 1, 32},
    {0xda, K_STR, 2, 0x100},
    {0xdb, K_STR, 4, 0x10000},
    {0xdc, K_ARRAY, 2, 16},
    {0xdd, K_ARRAY, 4, 0x10000},
};

/* Decode the header at p (n bytes available). Returns 0 or TRUNCATED,
 * NONCANONICAL, FORBIDDEN_TYPE, INVALID_BYTE. Does not look at payload
 * bytes (str/bin contents, array elements). */
static int decode_hdr(const uint8_t *p, size_t n, hdr *h)
{
  if (n < 1)
    return SECCHAT_ERR_TRUNCATED;
  uint8_t b = p[0];
  if (b <= 0x7f)
    return set(h, K_UINT, 1, b);
  if (b >= 0xe0) {
    set(h, K_INT, 1, 0);
    h->i = (int8_t)b;
    return 0;
  }
  if (b >= 0xa0 && b <= 0xbf)
    return set(h, K_STR, 1, b & 0x1fu);
  if (b >= 0x90 && b <= 0x9f)
    return set(h, K_ARRAY, 1, b & 0x0fu);
  if (b == 0xc0)
    return set(h, K_NIL, 1, 0);
  if (b == 0xc2 || b == 0xc3)
    return set(h, K_BOOL, 1, b & 1u);
  if (b == 0xc1)
    return SECCHAT_ERR_INVALID_BYTE;

  const wide_form *f = NULL;
  for (size_t k = 0; k < sizeof wide_forms / sizeof wide_forms[0]; k++)
    if (wide_forms[k].byte == b)
      f = &wide_forms[k];
  if (f == NULL) /* fixmap, map16/32, float32/64, ext8/16/32, fixext */
    return SECCHAT_ERR_FORBIDDEN_TYPE;
  if (n - 1 < f->width)
    return SECCHAT_ERR_TRUNCATED;
  uint64_t v = 0;
  for (size_t k = 1; k <= f->width; k++)
    v = (v << 8) | p[k];
  if (f->kind != K_INT) {
    if (v < f->min)
      return SECCHAT_ERR_NONCANONICAL;
    return set(h, f->kind, 1u + f->width, v);
  }
  /* Signed forms are canonical only for negative values below the range
   * of the next narrower form (-32 for the fixint); anything non-negative
   * must be encoded unsigned. */
  int64_t s = sext(v, f->width);
  int64_t lim = f->width == 1   ? -32
                : f->width == 2 ? INT8_MIN
                : f->width == 4 ? INT16_MIN
                                : INT32_MIN;
  if (s >= lim)
    return SECCHAT_ERR_NONCANONICAL;
  set(h, K_INT, 1u + f->width, 0);
  h->i = s;
  return 0;
}

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above
 * U+10FFFF, and no U+0000 (strings may end up as C strings). */
static int check_utf8(const uint8_t *s, size_t n)
{
  size_t k = 0;
  while (k < n) {
    uint8_t c = s[k];
    if (c < 0x80) {
      if (c == 0)
        return SECCHAT_ERR_NUL_IN_STRING;
      k++;
      continue;
    }
    size_t len;
    uint8_t lo = 0x80, hi = 0xbf; /* allowed range of the 2nd byte */
    if (c >= 0xc2 && c <= 0xdf)
      len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      if (c == 0xe0)
        lo = 0xa0; /* overlong */
      else if (c == 0xed)
        hi = 0x9f; /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      if (c == 0xf0)
        lo = 0x90; /* overlong */
      else if (c == 0xf4)
        hi = 0x8f; /* > U+10FFFF */
    } else {
      return SECCHAT_ERR_BAD_UTF8; /* continuation, c0/c1, f5..ff */
    }
    if (n - k < len)
      return SECCHAT_ERR_BAD_UTF8;
    if (s[k + 1] < lo || s[k + 1] > hi)
      return SECCHAT_ERR_BAD_UTF8;
    for (size_t j = 2; j < len; j++)
      if ((s[k + j] & 0xc0) != 0x80)
        return SECCHAT_ERR_BAD_UTF8;
    k += len;
  }
  return 0;
}

/* ---- Validator ------------------------------------------------------------ */

int sc_mp_validate(const uint8_t *buf, size_t len, unsigned max_depth)
{
  if ((buf == NULL && len != 0) || max_depth > SC_MP_MAX_DEPTH)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  if (len == 0) /* also keeps NULL + 0 out of the arithmetic below */
    return SECCHAT_ERR_TRUNCATED;
  uint32_t stack[SC_MP_MAX_DEPTH]; /* elements still owed per open array */
  unsigned depth = 0;
  uint64_t owed = 1; /* elements owed in total (the top object included) */
  size_t pos = 0;

  while (owed > 0) {
    hdr h;
    int rc = decode_hdr(buf + pos, len - pos, &h);
    if (rc != 0)
      return rc;
    pos += h.size;
    owed--;
    if (depth > 0)
      stack[depth - 1]--;

    if (h.kind == K_STR || h.kind == K_BIN) {
      if (h.u > len - pos)
        return SECCHAT_ERR_TRUNCATED;
      if (h.kind == K_STR) {
        rc = check_utf8(buf + pos, (size_t)h.u);
        if (rc != 0)
          return rc;
      }
      pos += (size_t)h.u;
    } else if (h.kind == K_ARRAY) {
      if (depth >= max_depth)
        return SECCHAT_ERR_DEPTH;
      /* Every owed element needs >= 1 byte: refuse counts the remaining
       * input cannot possibly hold. owed <= len - pos here and h.u < 2^32,
       * so the sum cannot overflow. */
      if (owed + h.u > len - pos)
        return SECCHAT_ERR_COUNT_OVERFLOW;
      if (h.u > 0) {
        stack[depth++] = (uint32_t)h.u;
        owed += h.u;
      }
    }
    /* Close every array whose last element was just read. */
    while (depth > 0 && stack[depth - 1] == 0)
      depth--;
  }
  return pos == len ? 0 : SECCHAT_ERR_TRAILING_BYTES;
}

/* ---- Reader --------------------------------------------------------------- */

void sc_mp_reader_init(sc_mp_reader *r, const uint8_t *buf, size_t len)
{
  r->p = buf;
  r->end = len != 0 ? buf + len : buf; /* no NULL + 0 */
}

/* Decode the next header and require the given kind. */
static int next(const sc_mp_reader *r, int kind, hdr *h)
{
  int rc = decode_hdr(r->p, (size_t)(r->end - r->p), h);
  if (rc != 0)
    return rc;
  return h->kind == kind ? 0 : SECCHAT_ERR_SCHEMA;
}

int sc_mp_read_array(sc_mp_reader *r, uint32_t *count)
{
  hdr h;
  int rc = next(r, K_ARRAY, &h);
  if (rc != 0)
    return rc;
  *count = (uint32_t)h.u;
  r->p += h.size;
  return 0;
}

int sc_mp_read_uint(sc_mp_reader *r, uint64_t *v)
{
  hdr h;
  int rc = next(r, K_UINT, &h);
  if (rc != 0)
    return rc;
  *v = h.u;
  r->p += h.size;
  return 0;
}

int sc_mp_read_int(sc_mp_reader *r, int64_t *v)
{
  hdr h;
  int rc = decode_hdr(r->p, (size_t)(r->end - r->p), &h);
  if (rc != 0)
    return rc;
  if (h.kind == K_INT)
    *v = h.i;
  else if (h.kind == K_UINT && h.u <= (uint64_t)INT64_MAX)
    *v = (int64_t)h.u;
  else
    return SECCHAT_ERR_SCHEMA;
  r->p += h.size;
  return 0;
}

int sc_mp_read_bool(sc_mp_reader *r, bool *v)
{
  hdr h;
  int rc = next(r, K_BOOL, &h);
  if (rc != 0)
    return rc;
  *v = h.u != 0;
  r->p += h.size;
  return 0;
}

int sc_mp_read_nil(sc_mp_reader *r)
{
  hdr h;
  int rc = next(r, K_NIL, &h);
  if (rc != 0)
    return rc;
  r->p += h.size;
  return 0;
}

/* str or bin payload with a length bound. */
static int read_blob(sc_mp_reader *r, int kind, const uint8_t **b, size_t *len, size_t min,
                     size_t max)
{
  hdr h;
  int rc = next(r, kind, &h);
  if (rc != 0)
    return rc;
  if (h.u > (uint64_t)(r->end - r->p) - h.size)
    return SECCHAT_ERR_TRUNCATED;
  if (h.u < min || h.u > max)
    return SECCHAT_ERR_BAD_LENGTH;
  *b = r->p + h.size;
  *len = (size_t)h.u;
  r->p += h.size + (size_t)h.u;
  return 0;
}

int sc_mp_read_str(sc_mp_reader *r, const char **s, size_t *len, size_t min, size_t max)
{
  const uint8_t *b;
  int rc = read_blob(r, K_STR, &b, len, min, max);
  if (rc == 0)
    *s = (const char *)b;
  return rc;
}

int sc_mp_read_bin(sc_mp_reader *r, const uint8_t **b, size_t *len, size_t min, size_t max)
{
  return read_blob(r, K_BIN, b, len, min, max);
}

int sc_mp_read_bin_exact(sc_mp_reader *r, const uint8_t **b, size_t len)
{
  size_t got;
  return read_blob(r, K_BIN, b, &got, len, len);
}

int sc_mp_skip(sc_mp_reader *r)
{
  /* Iterative like the validator: each element consumes >= 1 byte, so the
   * loop ends within (end - p) steps even on unvalidated input. */
  const uint8_t *p = r->p;
  uint64_t owed = 1;
  while (owed > 0) {
    hdr h;
    int rc = decode_hdr(p, (size_t)(r->end - p), &h);
    if (rc != 0)
      return rc;
    p += h.size;
    owed--;
    if (h.kind == K_STR || h.kind == K_BIN) {
      if (h.u > (uint64_t)(r->end - p))
        return SECCHAT_ERR_TRUNCATED;
      p += (size_t)h.u;
    } else if (h.kind == K_ARRAY) {
      if (owed + h.u > (uint64_t)(r->end - p))
        return SECCHAT_ERR_COUNT_OVERFLOW;
      owed += h.u;
    }
  }
  r->p = p;
  return 0;
}

int sc_mp_at_end(const sc_mp_reader *r)
{
  return r->p == r->end;
}

/* ---- Writer ---------------------------------------------------------------
 * msgpack-c's packer is two pointers (data, callback) and carries no state
 * between calls, so each call builds one on the stack pointing at the
 * writer. That keeps the writer free of msgpack types, safe to copy or move,
 * and avoids type-punning a storage array into a msgpack_packer. */

static int writer_cb(void *data, const char *buf, size_t len)
{
  sc_mp_writer *w = data;
  if (w->overflow || len > w->cap - w->len) {
    w->overflow = 1; /* latch: later writes would leave a hole */
    return -1;
  }
  if (len > 0)
    memcpy(w->buf + w->len, buf, len);
  w->len += len;
  return 0;
}

void sc_mp_writer_init(sc_mp_writer *w, uint8_t *buf, size_t cap)
{
  memset(w, 0, sizeof *w);
  w->buf = buf;
  w->cap = buf != NULL ? cap : 0;
}

void sc_mp_write_array(sc_mp_writer *w, uint32_t count)
{
  msgpack_packer pk;
  msgpack_packer_init(&pk, w, writer_cb);
  msgpack_pack_array(&pk, count);
}

void sc_mp_write_uint(sc_mp_writer *w, uint64_t v)
{
  msgpack_packer pk;
  msgpack_packer_init(&pk, w, writer_cb);
  msgpack_pack_uint64(&pk, v);
}

void sc_mp_write_int(sc_mp_writer *w, int64_t v)
{
  msgpack_packer pk;
  msgpack_packer_init(&pk, w, writer_cb);
  msgpack_pack_int64(&pk, v);
}

void sc_mp_write_bool(sc_mp_writer *w, bool v)
{
  msgpack_packer pk;
  msgpack_packer_init(&pk, w, writer_cb);
  if (v)
    msgpack_pack_true(&pk);
  else
    msgpack_pack_false(&pk);
}

void sc_mp_write_nil(sc_mp_writer *w)
{
  msgpack_packer pk;
  msgpack_packer_init(&pk, w, writer_cb);
  msgpack_pack_nil(&pk);
}

void sc_mp_write_str(sc_mp_writer *w, const char *s, size_t len)
{
  if (len > UINT32_MAX) {
    w->overflow = 1;
    return;
  }
  msgpack_packer pk;
  msgpack_packer_init(&pk, w, writer_cb);
  msgpack_pack_str(&pk, len);
  if (len > 0)
    msgpack_pack_str_body(&pk, s, len);
}

void sc_mp_write_bin(sc_mp_writer *w, const uint8_t *b, size_t len)
{
  if (len > UINT32_MAX) {
    w->overflow = 1;
    return;
  }
  msgpack_packer pk;
  msgpack_packer_init(&pk, w, writer_cb);
  msgpack_pack_bin(&pk, len);
  if (len > 0)
    msgpack_pack_bin_body(&pk, b, len);
}

int64_t sc_mp_writer_finish(const sc_mp_writer *w)
{
  return w->overflow ? SECCHAT_ERR_BUFFER_TOO_SMALL : (int64_t)w->len;
}
