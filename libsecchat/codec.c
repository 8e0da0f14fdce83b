/* codec.c: deframer, transport padding, frame schemas (see codec.h).
 *
 * Why schema tables: one table per frame type drives both decode and
 * encode, so the two cannot disagree about field order, types or bounds,
 * and adding a frame is one line plus a struct. */
#include "codec.h"

#include <stdlib.h>
#include <string.h>

#include "mp.h"

/* ---- Compile-time derivation of the limits (docs/protocol.md) ------------ */

#define SC_MAX(a, b) ((a) > (b) ? (a) : (b))

_Static_assert(SECCHAT_MAX_TRANSPORT_PLAINTEXT ==
                   SECCHAT_MAX_WIRE_MESSAGE - SECCHAT_AEAD_TAG_BYTES,
               "plaintext = Noise message - AEAD tag");
_Static_assert(SECCHAT_MAX_FRAME_BODY == SECCHAT_MAX_TRANSPORT_PLAINTEXT - 2,
               "body = plaintext - u16 length");
_Static_assert(SC_GROUP_SEND_ENVELOPE == 45 && SC_DELIVER_ENVELOPE == 36, "group envelopes");
_Static_assert(SC_DIRECT_ENVELOPE == 33 && SC_DIRECT_DELIVER_ENVELOPE == 4123, "direct envelopes");
/* The largest blob fits the larger envelope exactly; one more byte does not. */
_Static_assert(SC_MAX(SC_GROUP_SEND_ENVELOPE, SC_DELIVER_ENVELOPE) +
                       SC_MP_BIN_SIZE(SC_MAX_GROUP_BLOB) == SECCHAT_MAX_FRAME_BODY,
               "SC_MAX_GROUP_BLOB fills a worst-case GROUP_SEND body exactly");
_Static_assert(SC_MAX(SC_DIRECT_ENVELOPE, SC_DIRECT_DELIVER_ENVELOPE) +
                       SC_MP_BIN_SIZE(SC_MAX_DIRECT_BLOB) == SECCHAT_MAX_FRAME_BODY,
               "SC_MAX_DIRECT_BLOB fills a DIRECT_DELIVER body exactly");
/* LOOKUP_RESULT: array header + type + list header + n max-size tokens. */
_Static_assert(2u + 1u + SC_MAX_LOOKUP_TOKENS * SC_MP_STR_SIZE(SECCHAT_MAX_TOKEN_BYTES) <=
                   SECCHAT_MAX_FRAME_BODY,
               "SC_MAX_LOOKUP_TOKENS max-size tokens fit");
_Static_assert(2u + 3u + (SC_MAX_LOOKUP_TOKENS + 1) * SC_MP_STR_SIZE(SECCHAT_MAX_TOKEN_BYTES) >
                   SECCHAT_MAX_FRAME_BODY,
               "SC_MAX_LOOKUP_TOKENS + 1 max-size tokens do not fit");
_Static_assert(SC_MAX_LOOKUP_TOKENS <= 15, "token list header is one byte");

/* ---- Deframer ---------------------------------------------------------------- */

int sc_deframer_init(sc_deframer *d, size_t max)
{
  if (d == NULL || max > SECCHAT_MAX_WIRE_MESSAGE)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  memset(d, 0, sizeof *d);
  d->max = max == 0 ? SECCHAT_MAX_WIRE_MESSAGE : max;
  return 0;
}

void sc_deframer_free(sc_deframer *d)
{
  if (d == NULL)
    return;
  free(d->buf);
  d->buf = NULL;
  d->have = 0;
  d->yielded = false;
}

static void start_next(sc_deframer *d)
{
  free(d->buf);
  d->buf = NULL;
  d->hdr_len = 0;
  d->need = 0;
  d->have = 0;
  d->yielded = false;
}

static secchat_ssize fail(sc_deframer *d, int err)
{
  start_next(d);
  d->err = err;
  return err;
}

secchat_ssize sc_deframer_feed(sc_deframer *d, const uint8_t *in, size_t len,
                               const uint8_t **msg, size_t *msg_len)
{
  if (d == NULL || msg == NULL || msg_len == NULL || (in == NULL && len != 0))
    return SECCHAT_ERR_INVALID_ARGUMENT;
  *msg = NULL;
  *msg_len = 0;
  if (d->err != 0)
    return d->err;
  if (d->yielded) /* the previous message's borrow ends now */
    start_next(d);

  size_t used = 0;
  while (d->hdr_len < 4 && used < len)
    d->hdr[d->hdr_len++] = in[used++];
  if (d->hdr_len < 4)
    return (secchat_ssize)used;
  if (d->have == 0 && d->buf == NULL) {
    /* Prefix just completed (or completed earlier with no payload yet):
     * judge it before any byte of payload is stored. */
    uint32_t n = (uint32_t)d->hdr[0] << 24 | (uint32_t)d->hdr[1] << 16 |
                 (uint32_t)d->hdr[2] << 8 | d->hdr[3];
    if (n == 0)
      return fail(d, SECCHAT_ERR_FRAME_EMPTY);
    if (n > d->max)
      return fail(d, SECCHAT_ERR_FRAME_TOO_LARGE);
    d->need = n;
    if (len - used >= n) { /* whole message in this chunk: no copy */
      *msg = in + used;
      *msg_len = n;
      d->hdr_len = 0;
      return (secchat_ssize)(used + n);
    }
    if (used == len)
      return (secchat_ssize)used;
    d->buf = malloc(n); /* n <= max: bounded, and only once bytes arrive */
    if (d->buf == NULL)
      return fail(d, SECCHAT_ERR_NOMEM);
  }
  size_t take = d->need - d->have;
  if (take > len - used)
    take = len - used;
  memcpy(d->buf + d->have, in + used, take);
  d->have += take;
  used += take;
  if (d->have == d->need) {
    *msg = d->buf;
    *msg_len = d->need;
    d->hdr_len = 0;
    d->yielded = true;
  }
  return (secchat_ssize)used;
}

bool sc_deframer_in_progress(const sc_deframer *d)
{
  return d->err == 0 && d->hdr_len > 0;
}

void sc_frame_prefix(uint8_t out[4], uint32_t len)
{
  out[0] = (uint8_t)(len >> 24);
  out[1] = (uint8_t)(len >> 16);
  out[2] = (uint8_t)(len >> 8);
  out[3] = (uint8_t)len;
}

/* ---- Padding ------------------------------------------------------------------ */

size_t sc_pad_size(size_t used)
{
  if (used == 0 || used > SECCHAT_MAX_TRANSPORT_PLAINTEXT)
    return 0;
  size_t blk = SECCHAT_TRANSPORT_PAD_BLOCK;
  size_t n = (used + blk - 1) / blk * blk;
  return n > SECCHAT_MAX_TRANSPORT_PLAINTEXT ? SECCHAT_MAX_TRANSPORT_PLAINTEXT : n;
}

size_t sc_padded_size(size_t body_len)
{
  if (body_len == 0 || body_len > SECCHAT_MAX_FRAME_BODY)
    return 0;
  return sc_pad_size(2 + body_len);
}

secchat_ssize sc_record_put(uint8_t *out, size_t cap, const uint8_t *body, size_t len)
{
  if ((out == NULL && cap != 0) || body == NULL)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  if (len == 0 || len > SECCHAT_MAX_FRAME_BODY)
    return SECCHAT_ERR_TOO_LONG;
  if (2 + len > cap)
    return SECCHAT_ERR_BUFFER_TOO_SMALL;
  out[0] = (uint8_t)(len >> 8);
  out[1] = (uint8_t)len;
  memcpy(out + 2, body, len);
  return (secchat_ssize)(2 + len);
}

secchat_ssize sc_pad(uint8_t *out, size_t cap, const uint8_t *body, size_t len)
{
  if ((out == NULL && cap != 0) || body == NULL)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  size_t total = sc_padded_size(len);
  if (total == 0)
    return SECCHAT_ERR_TOO_LONG;
  if (total > cap)
    return SECCHAT_ERR_BUFFER_TOO_SMALL;
  (void)sc_record_put(out, cap, body, len);
  memset(out + 2 + len, 0, total - 2 - len);
  return (secchat_ssize)total;
}

int sc_records_open(sc_records *r, const uint8_t *pt, size_t len)
{
  if (pt == NULL)
    return SECCHAT_ERR_BAD_PADDING;
  size_t off = 0;
  int n = 0;
  /* Records until the plaintext ends or a zero length (= padding) starts. */
  while (len - off >= 2) {
    size_t bl = (size_t)pt[off] << 8 | pt[off + 1];
    if (bl == 0)
      break;
    if (bl > len - off - 2)
      return SECCHAT_ERR_BAD_PADDING;
    off += 2 + bl;
    n++;
  }
  /* Padding must be zero and minimal so that the records have exactly one
   * plaintext. */
  uint8_t acc = 0;
  for (size_t k = off; k < len; k++)
    acc |= pt[k];
  if (n == 0 || acc != 0 || sc_pad_size(off) != len)
    return SECCHAT_ERR_BAD_PADDING;
  r->pt = pt;
  r->end = off;
  r->off = 0;
  return n;
}

int sc_records_next(sc_records *r, const uint8_t **body, size_t *body_len)
{
  if (r->off >= r->end)
    return 0;
  size_t bl = (size_t)r->pt[r->off] << 8 | r->pt[r->off + 1];
  *body = r->pt + r->off + 2;
  *body_len = bl;
  r->off += 2 + bl;
  return 1;
}

int sc_unpad(const uint8_t *pt, size_t len, const uint8_t **body, size_t *body_len)
{
  sc_records r;
  if (sc_records_open(&r, pt, len) != 1)
    return SECCHAT_ERR_BAD_PADDING;
  return sc_records_next(&r, body, body_len) == 1 ? 0 : SECCHAT_ERR_BAD_PADDING;
}

/* ---- Frame schemas -------------------------------------------------------------- */

enum field_kind {
  F_STR,    /* sc_str, length in [min, max] */
  F_BIN,    /* sc_bin, length in [min, max] */
  F_FIXED,  /* const uint8_t *, exactly min bytes */
  F_UINT,   /* uint64_t, >= min */
  F_BOOL,   /* bool */
  F_TOKENS  /* lookup_result: list of 0..max str(min..SECCHAT_MAX_TOKEN_BYTES) */
};

typedef struct field {
  uint8_t kind;
  uint16_t off; /* offsetof(sc_frame, ...) */
  uint32_t min, max;
} field;

#define SC_MAX_FIELDS 5

typedef struct schema {
  uint8_t type;
  const char *name;
  uint8_t nfields;
  field f[SC_MAX_FIELDS];
} schema;

#define OFF(m) ((uint16_t)offsetof(sc_frame, u.m))
#define STR(m, lo, hi) {F_STR, OFF(m), (lo), (hi)}
#define BIN(m, lo, hi) {F_BIN, OFF(m), (lo), (hi)}
#define FIXED(m, n) {F_FIXED, OFF(m), (n), (n)}
#define UINT(m, lo) {F_UINT, OFF(m), (lo), 0}
#define TOKEN(m) STR(m, 1, SECCHAT_MAX_TOKEN_BYTES)
#define NAME(m) STR(m, 1, SC_MAX_NAME_BYTES)

static const schema schemas[] = {
    {SC_FRAME_REGISTER, "REGISTER", 5,
     {NAME(reg.name), FIXED(reg.sig_pk, SECCHAT_SIGN_PUBLICKEY_BYTES),
      FIXED(reg.dh_pk, SECCHAT_DH_PUBLICKEY_BYTES), FIXED(reg.dh_sig, SECCHAT_SIGNATURE_BYTES),
      FIXED(reg.proof, SECCHAT_SIGNATURE_BYTES)}},
    {SC_FRAME_AUTH, "AUTH", 2, {TOKEN(auth.token), FIXED(auth.proof, SECCHAT_SIGNATURE_BYTES)}},
    {SC_FRAME_RENEW, "RENEW", 1, {FIXED(renew.proof, SECCHAT_SIGNATURE_BYTES)}},
    {SC_FRAME_LOOKUP_NAME, "LOOKUP_NAME", 1, {NAME(lookup_name.name)}},
    {SC_FRAME_LOOKUP_UID, "LOOKUP_UID", 1, {FIXED(lookup_uid.uid, SECCHAT_UID_BYTES)}},
    {SC_FRAME_ROUTE_OPEN, "ROUTE_OPEN", 1, {FIXED(route.route_id, SECCHAT_ROUTE_ID_BYTES)}},
    {SC_FRAME_ROUTE_CLOSE, "ROUTE_CLOSE", 1, {FIXED(route.route_id, SECCHAT_ROUTE_ID_BYTES)}},
    {SC_FRAME_GROUP_SEND, "GROUP_SEND", 3,
     {UINT(group_send.ref, 1), FIXED(group_send.route_id, SECCHAT_ROUTE_ID_BYTES),
      BIN(group_send.blob, 1, SC_MAX_GROUP_BLOB)}},
    {SC_FRAME_DIRECT, "DIRECT", 3,
     {UINT(direct.ref, 1), FIXED(direct.to_uid, SECCHAT_UID_BYTES),
      BIN(direct.blob, 1, SC_MAX_DIRECT_BLOB)}},
    {SC_FRAME_PING, "PING", 1, {UINT(ping.nonce, 0)}},
    {SC_FRAME_TOKEN, "TOKEN", 1, {TOKEN(token.token)}},
    {SC_FRAME_AUTH_OK, "AUTH_OK", 2,
     {FIXED(auth_ok.uid, SECCHAT_UID_BYTES), UINT(auth_ok.expires_s, 0)}},
    {SC_FRAME_LOOKUP_RESULT, "LOOKUP_RESULT", 1,
     {{F_TOKENS, OFF(lookup_result), 1, SC_MAX_LOOKUP_TOKENS}}},
    {SC_FRAME_DELIVER, "DELIVER", 2,
     {FIXED(deliver.route_id, SECCHAT_ROUTE_ID_BYTES), BIN(deliver.blob, 1, SC_MAX_GROUP_BLOB)}},
    {SC_FRAME_DIRECT_DELIVER, "DIRECT_DELIVER", 3,
     {FIXED(direct_deliver.from_uid, SECCHAT_UID_BYTES), TOKEN(direct_deliver.from_token),
      BIN(direct_deliver.blob, 1, SC_MAX_DIRECT_BLOB)}},
    {SC_FRAME_PRESENCE, "PRESENCE", 3,
     {FIXED(presence.route_id, SECCHAT_ROUTE_ID_BYTES), FIXED(presence.uid, SECCHAT_UID_BYTES),
      {F_BOOL, OFF(presence.online), 0, 0}}},
    {SC_FRAME_RELAYED, "RELAYED", 1, {UINT(relayed.ref, 1)}},
    {SC_FRAME_ERROR, "ERROR", 2, {UINT(error.code, 0), UINT(error.ref, 0)}},
    {SC_FRAME_PONG, "PONG", 1, {UINT(ping.nonce, 0)}},
    {SC_FRAME_BYE, "BYE", 1, {UINT(bye.reason, 0)}},
};

static const schema *find_schema(uint64_t type)
{
  for (size_t k = 0; k < sizeof schemas / sizeof schemas[0]; k++)
    if (schemas[k].type == type)
      return &schemas[k];
  return NULL;
}

const char *sc_frame_type_name(int type)
{
  const schema *s = type > 0 ? find_schema((uint64_t)type) : NULL;
  return s != NULL ? s->name : NULL;
}

/* Field storage inside the frame (the schema's offset says where). */
#define AT(f, fd, T) ((T *)(void *)((char *)(f) + (fd)->off))
#define AT_C(f, fd, T) ((const T *)(const void *)((const char *)(f) + (fd)->off))

static int read_tokens(sc_mp_reader *r, sc_frame *f, const field *fd)
{
  uint32_t n;
  int rc = sc_mp_read_array(r, &n);
  if (rc != 0)
    return rc;
  if (n > fd->max)
    return SECCHAT_ERR_BAD_LENGTH;
  f->u.lookup_result.count = n;
  for (uint32_t k = 0; k < n; k++) {
    sc_str *t = &f->u.lookup_result.tokens[k];
    rc = sc_mp_read_str(r, &t->p, &t->len, fd->min, SECCHAT_MAX_TOKEN_BYTES);
    if (rc != 0)
      return rc;
  }
  return 0;
}

static int read_field(sc_mp_reader *r, sc_frame *f, const field *fd)
{
  switch (fd->kind) {
  case F_STR: {
    sc_str *s = AT(f, fd, sc_str);
    return sc_mp_read_str(r, &s->p, &s->len, fd->min, fd->max);
  }
  case F_BIN: {
    sc_bin *b = AT(f, fd, sc_bin);
    return sc_mp_read_bin(r, &b->p, &b->len, fd->min, fd->max);
  }
  case F_FIXED:
    return sc_mp_read_bin_exact(r, AT(f, fd, const uint8_t *), fd->min);
  case F_UINT: {
    uint64_t v;
    int rc = sc_mp_read_uint(r, &v);
    if (rc != 0)
      return rc;
    if (v < fd->min)
      return SECCHAT_ERR_SCHEMA; /* ref 0 is reserved for "no request" */
    *AT(f, fd, uint64_t) = v;
    return 0;
  }
  case F_BOOL:
    return sc_mp_read_bool(r, AT(f, fd, bool));
  case F_TOKENS:
    return read_tokens(r, f, fd);
  default:
    return SECCHAT_ERR_INTERNAL;
  }
}

int sc_frame_decode(sc_frame *f, const uint8_t *body, size_t len)
{
  if (f == NULL || (body == NULL && len != 0))
    return SECCHAT_ERR_INVALID_ARGUMENT;
  if (len > SECCHAT_MAX_FRAME_BODY)
    return SECCHAT_ERR_FRAME_TOO_LARGE;
  /* The bounded pass comes first: after it, every header is canonical,
   * every length fits and strings are clean UTF-8. */
  int rc = sc_mp_validate(body, len, SC_MP_MAX_DEPTH);
  if (rc != 0)
    return rc;

  sc_mp_reader r;
  uint32_t count;
  uint64_t type;
  sc_mp_reader_init(&r, body, len);
  if (sc_mp_read_array(&r, &count) != 0 || count == 0)
    return SECCHAT_ERR_SCHEMA;
  if (sc_mp_read_uint(&r, &type) != 0)
    return SECCHAT_ERR_SCHEMA;
  const schema *s = find_schema(type);
  if (s == NULL)
    return SECCHAT_ERR_UNKNOWN_FRAME;
  if (count != 1u + s->nfields)
    return SECCHAT_ERR_SCHEMA;
  memset(f, 0, sizeof *f);
  f->type = (sc_frame_type)s->type;
  for (unsigned k = 0; k < s->nfields; k++) {
    rc = read_field(&r, f, &s->f[k]);
    if (rc != 0)
      return rc;
  }
  /* validate() proved one object spans the body and the count matched. */
  return sc_mp_at_end(&r) ? 0 : SECCHAT_ERR_INTERNAL;
}

static int write_field(sc_mp_writer *w, const sc_frame *f, const field *fd)
{
  switch (fd->kind) {
  case F_STR: {
    const sc_str *s = AT_C(f, fd, sc_str);
    if (s->p == NULL && s->len != 0)
      return SECCHAT_ERR_INVALID_ARGUMENT;
    sc_mp_write_str(w, s->p, s->len);
    return 0;
  }
  case F_BIN: {
    const sc_bin *b = AT_C(f, fd, sc_bin);
    if (b->p == NULL && b->len != 0)
      return SECCHAT_ERR_INVALID_ARGUMENT;
    sc_mp_write_bin(w, b->p, b->len);
    return 0;
  }
  case F_FIXED: {
    const uint8_t *p = *(const uint8_t *const *)(const void *)((const char *)f + fd->off);
    if (p == NULL)
      return SECCHAT_ERR_INVALID_ARGUMENT;
    sc_mp_write_bin(w, p, fd->min);
    return 0;
  }
  case F_UINT:
    sc_mp_write_uint(w, *AT_C(f, fd, uint64_t));
    return 0;
  case F_BOOL:
    sc_mp_write_bool(w, *AT_C(f, fd, bool));
    return 0;
  case F_TOKENS: {
    size_t n = f->u.lookup_result.count;
    if (n > fd->max)
      return SECCHAT_ERR_BAD_LENGTH;
    sc_mp_write_array(w, (uint32_t)n);
    for (size_t k = 0; k < n; k++) {
      const sc_str *t = &f->u.lookup_result.tokens[k];
      if (t->p == NULL && t->len != 0)
        return SECCHAT_ERR_INVALID_ARGUMENT;
      sc_mp_write_str(w, t->p, t->len);
    }
    return 0;
  }
  default:
    return SECCHAT_ERR_INTERNAL;
  }
}

secchat_ssize sc_frame_encode(const sc_frame *f, uint8_t *out, size_t cap)
{
  if (f == NULL || (out == NULL && cap != 0))
    return SECCHAT_ERR_INVALID_ARGUMENT;
  const schema *s = find_schema((uint64_t)f->type);
  if (s == NULL)
    return SECCHAT_ERR_UNKNOWN_FRAME;
  sc_mp_writer w;
  sc_mp_writer_init(&w, out, cap);
  sc_mp_write_array(&w, 1u + s->nfields);
  sc_mp_write_uint(&w, s->type);
  for (unsigned k = 0; k < s->nfields; k++) {
    int rc = write_field(&w, f, &s->f[k]);
    if (rc != 0)
      return rc;
  }
  int64_t n = sc_mp_writer_finish(&w);
  if (n < 0)
    return n;
  /* Emit only what a peer would accept: the decoder is the one definition
   * of a valid frame (bounds, UTF-8, NUL, ref >= 1, body size). */
  sc_frame check;
  int rc = sc_frame_decode(&check, out, (size_t)n);
  return rc != 0 ? rc : n;
}
