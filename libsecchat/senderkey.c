/* senderkey.c: sender-key chains, envelopes, key distribution (see
 * senderkey.h; byte layouts in docs/crypto.md). */
#include "senderkey.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "crypto.h"
#include "identity.h"
#include "mp.h"
#include "rng.h"

static const uint8_t zeros[64];

/* ---- Ratchet ------------------------------------------------------------ */

void sc_sk_kdf_step(const uint8_t ck[32], uint8_t mk[32], uint8_t ck_next[32])
{
  /* Cannot fail for a 32-byte subkey (within [16, 64]). */
  (void)crypto_kdf_derive_from_key(mk, 32, 1, "SCmsgkey", ck);
  (void)crypto_kdf_derive_from_key(ck_next, 32, 2, "SCchain_", ck);
}

/* From ck = CK_n, derive MK_{n+gap} and CK_{n+gap+1}; intermediate keys
 * are wiped. */
static void derive_forward(const uint8_t ck[32], uint64_t gap, uint8_t mk[32],
                           uint8_t ck_next[32])
{
  uint8_t cur[32], nxt[32];
  memcpy(cur, ck, 32);
  for (uint64_t k = 0;; k++) {
    sc_sk_kdf_step(cur, mk, nxt);
    memcpy(cur, nxt, 32);
    if (k == gap)
      break;
  }
  memcpy(ck_next, cur, 32);
  sodium_memzero(cur, sizeof cur);
  sodium_memzero(nxt, sizeof nxt);
}

void sc_sk_msg_id(uint8_t id[32], const uint8_t *inner, size_t len)
{
  crypto_generichash_state st;
  crypto_generichash_init(&st, NULL, 0, 32);
  crypto_generichash_update(&st, (const uint8_t *)SC_CTX_MSGID, sizeof SC_CTX_MSGID);
  crypto_generichash_update(&st, inner, len);
  crypto_generichash_final(&st, id, 32);
}

/* ---- Parsing ------------------------------------------------------------ */

/* Minimum plaintext [bin inner(64), bin sig(64)] and its ciphertext. */
#define PT_MIN (1 + 2 + SC_SK_INNER_BLOCK + 2 + 64)
#define PT_MAX (1 + 3 + SC_SK_MAX_INNER + 2 + 64)
#define AEAD_TAG 16

int sc_sk_parse_blob(const uint8_t *blob, size_t len, sc_sk_header *h)
{
  if (!blob || !h)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  if (len > SC_SK_MAX_BLOB)
    return SECCHAT_ERR_TOO_LONG;
  int rc = sc_mp_validate(blob, len, 2);
  if (rc)
    return rc;
  sc_mp_reader r;
  uint32_t n;
  sc_mp_reader_init(&r, blob, len);
  if ((rc = sc_mp_read_array(&r, &n)))
    return rc;
  if (n != 2)
    return SECCHAT_ERR_SCHEMA;
  h->bytes = r.p;
  if ((rc = sc_mp_read_array(&r, &n)))
    return rc;
  if (n != 5)
    return SECCHAT_ERR_SCHEMA;
  if ((rc = sc_mp_read_uint(&r, &h->epoch)) ||
      (rc = sc_mp_read_bin_exact(&r, &h->sender_uid, 20)) ||
      (rc = sc_mp_read_bin_exact(&r, &h->chain_id, 16)) ||
      (rc = sc_mp_read_uint(&r, &h->iteration)) ||
      (rc = sc_mp_read_bin_exact(&r, &h->nonce, SC_SK_NONCE_BYTES)))
    return rc;
  h->len = (size_t)(r.p - h->bytes);
  if ((rc = sc_mp_read_bin(&r, &h->ct, &h->ct_len, PT_MIN + AEAD_TAG, PT_MAX + AEAD_TAG)))
    return rc;
  return sc_mp_at_end(&r) ? 0 : SECCHAT_ERR_TRAILING_BYTES;
}

int sc_sk_inner_parse(const uint8_t *inner, size_t len, sc_sk_inner *o)
{
  if (!inner || !o)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  if (len > SC_SK_MAX_INNER)
    return SECCHAT_ERR_TOO_LONG;
  if (len % SC_SK_INNER_BLOCK)
    return SECCHAT_ERR_BAD_PADDING;
  int rc = sc_mp_validate(inner, len, 1);
  if (rc)
    return rc;
  sc_mp_reader r;
  uint32_t n;
  uint64_t ver;
  const uint8_t *pad;
  size_t pad_len;
  sc_mp_reader_init(&r, inner, len);
  if ((rc = sc_mp_read_array(&r, &n)))
    return rc;
  if (n != 13)
    return SECCHAT_ERR_SCHEMA;
  if ((rc = sc_mp_read_uint(&r, &ver)))
    return rc;
  if (ver != SC_SK_VERSION)
    return SECCHAT_ERR_VERSION;
  if ((rc = sc_mp_read_bin_exact(&r, &o->chat_id, 16)) || (rc = sc_mp_read_uint(&r, &o->epoch)) ||
      (rc = sc_mp_read_bin_exact(&r, &o->log_head, 32)) ||
      (rc = sc_mp_read_bin_exact(&r, &o->author_uid, 20)) ||
      (rc = sc_mp_read_bin_exact(&r, &o->chain_id, 16)) || (rc = sc_mp_read_uint(&r, &o->seq)) ||
      (rc = sc_mp_read_bin_exact(&r, &o->prev_msg_id, 32)) ||
      (rc = sc_mp_read_uint(&r, &o->ts_ms)) || (rc = sc_mp_read_uint(&r, &o->flags)) ||
      (rc = sc_mp_read_uint(&r, &o->content_type)) ||
      (rc = sc_mp_read_bin(&r, &o->body, &o->body_len, 0, SC_SK_MAX_BODY)) ||
      (rc = sc_mp_read_bin(&r, &pad, &pad_len, 0, SC_SK_MAX_INNER)))
    return rc;
  /* Minimal zero padding makes the encoding of a message unique. */
  if (pad_len >= SC_SK_INNER_BLOCK || sodium_memcmp(pad, zeros, pad_len) != 0)
    return SECCHAT_ERR_BAD_PADDING;
  return sc_mp_at_end(&r) ? 0 : SECCHAT_ERR_TRAILING_BYTES;
}

/* ---- Sending ------------------------------------------------------------ */

void sc_sk_sender_init(sc_sk_sender *s, const uint8_t chat_id[16], uint64_t epoch,
                       const uint8_t log_head[32])
{
  memset(s, 0, sizeof *s);
  memcpy(s->chat_id, chat_id, 16);
  s->epoch = epoch;
  memcpy(s->log_head, log_head, 32);
  sc_random(s->chain_id, sizeof s->chain_id);
  sc_random(s->ck, sizeof s->ck);
  sc_random(s->nonce_prefix, sizeof s->nonce_prefix);
}

void sc_sk_sender_wipe(sc_sk_sender *s)
{
  sodium_memzero(s, sizeof *s);
}

/* Where seal() first encodes the inner: far enough into out that the final
 * envelope prefix (<= 93 bytes) fits before it. */
#define SEAL_INNER_OFF 128
#define HDR_MAX 96

static size_t bin_hdr_len(size_t n)
{
  return n < 256 ? 2 : n < 65536 ? 3 : 5;
}

static uint8_t *put_bin_hdr(uint8_t *p, size_t n)
{
  if (n < 256) {
    *p++ = 0xc4;
    *p++ = (uint8_t)n;
  } else if (n < 65536) {
    *p++ = 0xc5;
    *p++ = (uint8_t)(n >> 8);
    *p++ = (uint8_t)n;
  } else {
    *p++ = 0xc6;
    for (int i = 3; i >= 0; i--)
      *p++ = (uint8_t)(n >> (8 * i));
  }
  return p;
}

/* Encode the padded inner at out (cap bytes). Returns its length or
 * SECCHAT_ERR_BUFFER_TOO_SMALL. */
static int64_t write_inner(const sc_sk_sender *s, const uint8_t uid[20], const sc_sk_plain *m,
                           uint8_t *out, size_t cap)
{
  sc_mp_writer w;
  sc_mp_writer_init(&w, out, cap);
  sc_mp_write_array(&w, 13);
  sc_mp_write_uint(&w, SC_SK_VERSION);
  sc_mp_write_bin(&w, s->chat_id, 16);
  sc_mp_write_uint(&w, s->epoch);
  sc_mp_write_bin(&w, s->log_head, 32);
  sc_mp_write_bin(&w, uid, 20);
  sc_mp_write_bin(&w, s->chain_id, 16);
  sc_mp_write_uint(&w, s->iteration);
  sc_mp_write_bin(&w, s->prev_msg_id, 32);
  sc_mp_write_uint(&w, m->ts_ms);
  sc_mp_write_uint(&w, m->flags);
  sc_mp_write_uint(&w, m->content_type);
  sc_mp_write_bin(&w, m->body_len ? m->body : zeros, m->body_len);
  /* Padding p < 64 with a 2-byte bin8 header: (len + 2 + p) % 64 == 0. */
  size_t pad = (SC_SK_INNER_BLOCK - (w.len + 2) % SC_SK_INNER_BLOCK) % SC_SK_INNER_BLOCK;
  sc_mp_write_bin(&w, zeros, pad);
  return sc_mp_writer_finish(&w);
}

static int64_t write_header(const sc_sk_sender *s, const uint8_t uid[20],
                            const uint8_t nonce[24], uint8_t out[HDR_MAX])
{
  sc_mp_writer w;
  sc_mp_writer_init(&w, out, HDR_MAX);
  sc_mp_write_array(&w, 5);
  sc_mp_write_uint(&w, s->epoch);
  sc_mp_write_bin(&w, uid, 20);
  sc_mp_write_bin(&w, s->chain_id, 16);
  sc_mp_write_uint(&w, s->iteration);
  sc_mp_write_bin(&w, nonce, SC_SK_NONCE_BYTES);
  return sc_mp_writer_finish(&w);
}

/* Layout of the final envelope, everything in out:
 *   0x92 | header | bin-hdr(ct_len) | AEAD( 0x92 | bin-hdr(L) | inner |
 *                                            0xc4 0x40 | sig ) */
static int64_t seal_into(sc_sk_sender *s, const secchat_identity *author,
                         const uint8_t route_id[32], const sc_sk_plain *m, uint8_t *out,
                         size_t cap, uint8_t msg_id[32], uint8_t ck_next[32])
{
  uint8_t ad[HDR_MAX + 32], nonce[SC_SK_NONCE_BYTES], sig[64], mk[32];
  if (cap < SEAL_INNER_OFF)
    return SECCHAT_ERR_BUFFER_TOO_SMALL;
  int64_t l = write_inner(s, author->uid, m, out + SEAL_INNER_OFF, cap - SEAL_INNER_OFF);
  if (l < 0)
    return l;
  size_t inner_len = (size_t)l;
  if (inner_len > SC_SK_MAX_INNER)
    return SECCHAT_ERR_TOO_LONG;

  memcpy(nonce, s->nonce_prefix, sizeof s->nonce_prefix);
  for (unsigned i = 0; i < 8; i++)
    nonce[16 + i] = (uint8_t)(s->iteration >> (8 * i));
  int64_t hl = write_header(s, author->uid, nonce, ad);
  if (hl < 0)
    return SECCHAT_ERR_INTERNAL;
  size_t hdr_len = (size_t)hl;
  memcpy(ad + hdr_len, route_id, 32);

  size_t pt_pre = 1 + bin_hdr_len(inner_len);
  size_t pt_len = pt_pre + inner_len + 2 + 64;
  size_t ct_len = pt_len + AEAD_TAG;
  size_t blob_pre = 1 + hdr_len + bin_hdr_len(ct_len);
  size_t total = blob_pre + ct_len;
  if (total > cap)
    return SECCHAT_ERR_BUFFER_TOO_SMALL;

  uint8_t *inner = out + SEAL_INNER_OFF;
  /* Hash, then sign the 32-byte msg_id (docs/crypto.md 6.1): one BLAKE2b
   * pass over the inner instead of Ed25519's two SHA-512 passes. */
  sc_sk_msg_id(msg_id, inner, inner_len);
  int rc = sc_sign_ctx(sig, SC_CTX_MSG, msg_id, 32, author->sign_sk);
  if (rc)
    return rc;

  uint8_t *p = out;
  uint8_t *pt = out + blob_pre;
  memmove(pt + pt_pre, inner, inner_len); /* pt + pt_pre <= 93 < 128 */
  *p++ = 0x92;
  memcpy(p, ad, hdr_len);
  p = put_bin_hdr(p + hdr_len, ct_len);
  *p++ = 0x92;
  p = put_bin_hdr(p, inner_len) + inner_len;
  *p++ = 0xc4;
  *p++ = 64;
  memcpy(p, sig, 64);

  sc_sk_kdf_step(s->ck, mk, ck_next);
  rc = sc_aead_xchacha_encrypt(pt, pt, pt_len, ad, hdr_len + 32, nonce, mk);
  sodium_memzero(mk, sizeof mk);
  return rc ? rc : (int64_t)total;
}

int64_t sc_sk_seal(sc_sk_sender *s, const secchat_identity *author, const uint8_t route_id[32],
                   const sc_sk_plain *m, uint8_t *out, size_t cap, uint8_t msg_id[32])
{
  if (!s || !author || !route_id || !m || !out || !msg_id || (!m->body && m->body_len))
    return SECCHAT_ERR_INVALID_ARGUMENT;
  if (m->body_len > SC_SK_MAX_BODY)
    return SECCHAT_ERR_TOO_LONG;
  if (s->iteration > SC_SK_MAX_ITERATION)
    return SECCHAT_ERR_LIMIT;
  uint8_t ck_next[32], id[32];
  int64_t n = seal_into(s, author, route_id, m, out, cap, id, ck_next);
  if (n < 0) {
    sodium_memzero(out, cap); /* it may hold the signed plaintext */
    sodium_memzero(ck_next, sizeof ck_next);
    return n;
  }
  /* Commit: CK_i is replaced (wiped) by CK_{i+1}. */
  memcpy(s->ck, ck_next, 32);
  sodium_memzero(ck_next, sizeof ck_next);
  s->iteration++;
  memcpy(s->prev_msg_id, id, 32);
  memcpy(msg_id, id, 32);
  return n;
}

/* ---- Skipped-key ring ---------------------------------------------------
 * FIFO in insertion order from `head`; `count` slots in use of which `live`
 * hold keys (the others are tombstones of used or wiped keys). When the
 * ring is full at SC_SK_MAX_SKIPPED it is compacted, and only if every
 * slot is live is the oldest key evicted. */

static sc_sk_skipped *ring_at(const sc_sk_peer *p, uint32_t i)
{
  return &p->ring[(p->head + i) % p->ring_cap];
}

static void ring_pop_tombstones(sc_sk_peer *p)
{
  while (p->count && !p->ring[p->head].live) {
    p->head = (p->head + 1) % p->ring_cap;
    p->count--;
  }
  if (!p->count)
    p->head = 0;
}

/* Make room for n more entries without eviction where the cap allows, so
 * that commit never allocates. */
static int ring_reserve(sc_sk_peer *p, uint64_t n)
{
  uint64_t need = (uint64_t)p->count + n;
  if (need > SC_SK_MAX_SKIPPED)
    need = SC_SK_MAX_SKIPPED;
  if (need <= p->ring_cap)
    return 0;
  uint64_t cap = p->ring_cap ? (uint64_t)p->ring_cap * 2 : 16;
  if (cap < need)
    cap = need;
  if (cap > SC_SK_MAX_SKIPPED)
    cap = SC_SK_MAX_SKIPPED;
  sc_sk_skipped *ring = calloc((size_t)cap, sizeof *ring);
  if (!ring)
    return SECCHAT_ERR_NOMEM;
  for (uint32_t i = 0; i < p->count; i++)
    ring[i] = *ring_at(p, i);
  if (p->ring) {
    sodium_memzero(p->ring, (size_t)p->ring_cap * sizeof *p->ring);
    free(p->ring);
  }
  p->ring = ring;
  p->ring_cap = (uint32_t)cap;
  p->head = 0;
  return 0;
}

static void ring_compact(sc_sk_peer *p)
{
  uint32_t j = 0;
  for (uint32_t i = 0; i < p->count; i++) {
    sc_sk_skipped *src = ring_at(p, i);
    if (src->live) {
      if (i != j) {
        *ring_at(p, j) = *src;
        sodium_memzero(src, sizeof *src);
      }
      j++;
    } else {
      sodium_memzero(src, sizeof *src);
    }
  }
  p->count = j;
}

static void ring_push(sc_sk_peer *p, const uint8_t chain_id[16], uint64_t iteration,
                      const uint8_t mk[32])
{
  if (p->count == p->ring_cap) {
    if (p->live < p->count)
      ring_compact(p);
    if (p->count == p->ring_cap) {
      sodium_memzero(&p->ring[p->head], sizeof p->ring[p->head]);
      p->head = (p->head + 1) % p->ring_cap;
      p->count--;
      p->live--;
      ring_pop_tombstones(p);
    }
  }
  sc_sk_skipped *e = ring_at(p, p->count);
  memcpy(e->chain_id, chain_id, 16);
  e->iteration = iteration;
  memcpy(e->mk, mk, 32);
  e->live = 1;
  p->count++;
  p->live++;
}

static sc_sk_skipped *ring_find(const sc_sk_peer *p, const uint8_t chain_id[16],
                                uint64_t iteration)
{
  for (uint32_t i = 0; i < p->count; i++) {
    sc_sk_skipped *e = ring_at(p, i);
    if (e->live && e->iteration == iteration && memcmp(e->chain_id, chain_id, 16) == 0)
      return e;
  }
  return NULL;
}

static void ring_kill(sc_sk_peer *p, sc_sk_skipped *e)
{
  sodium_memzero(e, sizeof *e);
  p->live--;
  ring_pop_tombstones(p);
}

static void ring_kill_chain(sc_sk_peer *p, const uint8_t chain_id[16])
{
  for (uint32_t i = 0; i < p->count; i++) {
    sc_sk_skipped *e = ring_at(p, i);
    if (e->live && memcmp(e->chain_id, chain_id, 16) == 0) {
      sodium_memzero(e, sizeof *e);
      p->live--;
    }
  }
  ring_pop_tombstones(p);
}

/* ---- Peers -------------------------------------------------------------- */

int sc_sk_peer_init(sc_sk_peer *p, const uint8_t chat_id[16], const uint8_t sign_pk[32])
{
  memset(p, 0, sizeof *p);
  if (sc_check_sign_pk(sign_pk))
    return SECCHAT_ERR_BAD_KEY;
  memcpy(p->chat_id, chat_id, 16);
  memcpy(p->sign_pk, sign_pk, 32);
  sc_uid_from_sign_pk(p->uid, sign_pk);
  return 0;
}

void sc_sk_peer_wipe(sc_sk_peer *p)
{
  if (p->ring) {
    sodium_memzero(p->ring, (size_t)p->ring_cap * sizeof *p->ring);
    free(p->ring);
  }
  sodium_memzero(p, sizeof *p);
}

static void chain_wipe(sc_sk_peer *p, sc_sk_chain *c)
{
  ring_kill_chain(p, c->chain_id);
  sodium_memzero(c, sizeof *c);
}

static sc_sk_chain *find_chain(sc_sk_peer *p, const uint8_t chain_id[16])
{
  for (size_t i = 0; i <= SC_SK_MAX_OLD_CHAINS; i++)
    if (p->chains[i].live && memcmp(p->chains[i].chain_id, chain_id, 16) == 0)
      return &p->chains[i];
  return NULL;
}

static sc_sk_chain *current_chain(sc_sk_peer *p)
{
  for (size_t i = 0; i <= SC_SK_MAX_OLD_CHAINS; i++)
    if (p->chains[i].live && p->chains[i].current)
      return &p->chains[i];
  return NULL;
}

/* A free slot, evicting the oldest retired chain if all are live. */
static sc_sk_chain *free_chain_slot(sc_sk_peer *p)
{
  sc_sk_chain *oldest = NULL;
  for (size_t i = 0; i <= SC_SK_MAX_OLD_CHAINS; i++) {
    sc_sk_chain *c = &p->chains[i];
    if (!c->live)
      return c;
    if (!c->current && (!oldest || c->retired_ms < oldest->retired_ms))
      oldest = c;
  }
  if (!oldest) /* cannot happen: add_chain retires the current first */
    oldest = &p->chains[0];
  chain_wipe(p, oldest);
  return oldest;
}

int sc_sk_peer_add_chain(sc_sk_peer *p, uint64_t epoch, const uint8_t log_head[32],
                         const uint8_t chain_id[16], uint64_t iteration, const uint8_t ck[32],
                         uint64_t now_ms)
{
  if (!p || !log_head || !chain_id || !ck)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  if (iteration > SC_SK_MAX_ITERATION)
    return SECCHAT_ERR_LIMIT;
  if (find_chain(p, chain_id))
    return SECCHAT_ERR_EXISTS;
  sc_sk_chain *cur = current_chain(p);
  if (cur && epoch < cur->epoch)
    return SECCHAT_ERR_PROTOCOL;
  if (cur) {
    cur->current = 0;
    cur->retired_ms = now_ms;
  }
  sc_sk_chain *c = free_chain_slot(p);
  memcpy(c->chain_id, chain_id, 16);
  memcpy(c->log_head, log_head, 32);
  memcpy(c->ck, ck, 32);
  c->epoch = epoch;
  c->next = iteration;
  c->retired_ms = 0;
  c->live = 1;
  c->current = 1;
  return 0;
}

void sc_sk_peer_expire(sc_sk_peer *p, uint64_t now_ms, uint64_t grace_ms)
{
  for (size_t i = 0; i <= SC_SK_MAX_OLD_CHAINS; i++) {
    sc_sk_chain *c = &p->chains[i];
    if (c->live && !c->current && now_ms >= c->retired_ms && now_ms - c->retired_ms >= grace_ms)
      chain_wipe(p, c);
  }
}

void sc_sk_peer_digest(const sc_sk_peer *p, uint8_t out[32])
{
  crypto_generichash_state st;
  crypto_generichash_init(&st, NULL, 0, 32);
  crypto_generichash_update(&st, p->chat_id, 16);
  crypto_generichash_update(&st, p->uid, 20);
  crypto_generichash_update(&st, p->sign_pk, 32);
  for (size_t i = 0; i <= SC_SK_MAX_OLD_CHAINS; i++) {
    const sc_sk_chain *c = &p->chains[i];
    crypto_generichash_update(&st, &c->live, 1);
    if (!c->live)
      continue;
    uint8_t nums[3 * 8 + 1];
    for (int k = 0; k < 8; k++) {
      nums[k] = (uint8_t)(c->epoch >> (8 * k));
      nums[8 + k] = (uint8_t)(c->next >> (8 * k));
      nums[16 + k] = (uint8_t)(c->retired_ms >> (8 * k));
    }
    nums[24] = c->current;
    crypto_generichash_update(&st, c->chain_id, 16);
    crypto_generichash_update(&st, c->log_head, 32);
    crypto_generichash_update(&st, c->ck, 32);
    crypto_generichash_update(&st, nums, sizeof nums);
  }
  for (uint32_t i = 0; i < p->count; i++) {
    const sc_sk_skipped *e = ring_at(p, i);
    if (!e->live)
      continue;
    uint8_t it[8];
    for (int k = 0; k < 8; k++)
      it[k] = (uint8_t)(e->iteration >> (8 * k));
    crypto_generichash_update(&st, e->chain_id, 16);
    crypto_generichash_update(&st, it, 8);
    crypto_generichash_update(&st, e->mk, 32);
  }
  crypto_generichash_final(&st, out, 32);
}

/* ---- Opening ------------------------------------------------------------ */

/* Plaintext lands at work + WORK_OFF (kept: the scratch layout is part of
 * the work_cap contract in senderkey.h). */
#define WORK_OFF 32

/* Everything after key selection that can fail: decrypt, parse, verify,
 * bind. Touches nothing in p. */
static int open_checked(const sc_sk_peer *p, const sc_sk_chain *c, const uint8_t route_id[32],
                        const uint8_t mk[32], uint8_t *work, sc_sk_opened *o)
{
  const sc_sk_header *h = &o->header;
  uint8_t ad[HDR_MAX + 32];
  if (h->len > HDR_MAX)
    return SECCHAT_ERR_SCHEMA;
  memcpy(ad, h->bytes, h->len);
  memcpy(ad + h->len, route_id, 32);
  uint8_t *pt = work + WORK_OFF;
  size_t pt_len = h->ct_len - AEAD_TAG;
  int rc = sc_aead_xchacha_decrypt(pt, h->ct, h->ct_len, ad, h->len + 32, h->nonce, mk);
  if (rc)
    return rc;
  if ((rc = sc_mp_validate(pt, pt_len, 1)))
    return rc;
  sc_mp_reader r;
  uint32_t n;
  sc_mp_reader_init(&r, pt, pt_len);
  if ((rc = sc_mp_read_array(&r, &n)))
    return rc;
  if (n != 2)
    return SECCHAT_ERR_SCHEMA;
  const uint8_t *inner;
  if ((rc = sc_mp_read_bin(&r, &inner, &o->inner_len, SC_SK_INNER_BLOCK, SC_SK_MAX_INNER)) ||
      (rc = sc_mp_read_bin_exact(&r, &o->sig, 64)))
    return rc;
  if ((rc = sc_sk_inner_parse(inner, o->inner_len, &o->inner)))
    return rc;
  sc_sk_msg_id(o->msg_id, inner, o->inner_len);
  if ((rc = sc_verify_ctx(o->sig, SC_CTX_MSG, o->msg_id, 32, p->sign_pk)))
    return rc;
  const sc_sk_inner *in = &o->inner;
  if (memcmp(in->author_uid, h->sender_uid, 20) != 0 ||
      memcmp(in->chat_id, p->chat_id, 16) != 0 || in->epoch != h->epoch ||
      in->epoch != c->epoch || memcmp(in->log_head, c->log_head, 32) != 0 ||
      memcmp(in->chain_id, h->chain_id, 16) != 0 || in->seq != h->iteration)
    return SECCHAT_ERR_AUTH;
  o->inner_bytes = inner;
  return 0;
}

int sc_sk_open(sc_sk_peer *p, const uint8_t route_id[32], const uint8_t *blob, size_t len,
               uint8_t *work, size_t work_cap, sc_sk_opened *o)
{
  if (!p || !route_id || !blob || !work || !o)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  memset(o, 0, sizeof *o);
  sc_sk_header *h = &o->header;
  int rc = sc_sk_parse_blob(blob, len, h);
  if (rc)
    return rc;
  if (work_cap < h->ct_len - AEAD_TAG + WORK_OFF)
    return SECCHAT_ERR_BUFFER_TOO_SMALL;
  if (memcmp(h->sender_uid, p->uid, 20) != 0)
    return SECCHAT_ERR_AUTH;
  sc_sk_chain *c = find_chain(p, h->chain_id);
  if (!c)
    return SECCHAT_ERR_NOT_FOUND;
  if (h->epoch != c->epoch)
    return SECCHAT_ERR_AUTH;

  /* Select the key without changing anything ("a copy of the ratchet"). */
  uint8_t mk[32], ck_next[32];
  sc_sk_skipped *old = NULL;
  uint64_t gap = 0;
  if (h->iteration < c->next) {
    old = ring_find(p, h->chain_id, h->iteration);
    if (!old)
      return SECCHAT_ERR_REPLAY;
    memcpy(mk, old->mk, 32);
  } else {
    gap = h->iteration - c->next;
    if (gap > SC_SK_MAX_SKIP)
      return SECCHAT_ERR_TOO_FAR_AHEAD;
    /* Growing the store is not a visible state change; doing it now means
     * the commit below cannot fail. */
    if ((rc = ring_reserve(p, gap)))
      return rc;
    derive_forward(c->ck, gap, mk, ck_next);
  }

  rc = open_checked(p, c, route_id, mk, work, o);
  sodium_memzero(mk, sizeof mk);
  if (rc) {
    sodium_memzero(ck_next, sizeof ck_next);
    sodium_memzero(work, h->ct_len - AEAD_TAG + WORK_OFF);
    sc_sk_header keep = *h;
    memset(o, 0, sizeof *o);
    o->header = keep;
    return rc;
  }

  /* Commit. */
  if (old) {
    ring_kill(p, old);
    return 0;
  }
  uint8_t cur[32], nxt[32], skipped_mk[32];
  memcpy(cur, c->ck, 32);
  for (uint64_t k = 0; k < gap; k++) {
    sc_sk_kdf_step(cur, skipped_mk, nxt);
    ring_push(p, c->chain_id, c->next + k, skipped_mk);
    memcpy(cur, nxt, 32);
  }
  memcpy(c->ck, ck_next, 32);
  c->next = h->iteration + 1;
  sodium_memzero(cur, sizeof cur);
  sodium_memzero(nxt, sizeof nxt);
  sodium_memzero(skipped_mk, sizeof skipped_mk);
  sodium_memzero(ck_next, sizeof ck_next);
  return 0;
}

/* ---- Distribution and key requests ------------------------------------- */

/* [body(bin), sig(bin64)] around a body already in body[0, blen). */
static int64_t wrap_signed(const char *ctx, const uint8_t *body, size_t blen,
                           const secchat_identity *signer, uint8_t *out, size_t cap)
{
  uint8_t sig[64];
  int rc = sc_sign_ctx(sig, ctx, body, blen, signer->sign_sk);
  if (rc)
    return rc;
  sc_mp_writer w;
  sc_mp_writer_init(&w, out, cap);
  sc_mp_write_array(&w, 2);
  sc_mp_write_bin(&w, body, blen);
  sc_mp_write_bin(&w, sig, 64);
  int64_t n = sc_mp_writer_finish(&w);
  if (n < 0)
    sodium_memzero(out, cap);
  return n;
}

int64_t sc_sk_dist_build(const sc_sk_sender *s, const secchat_identity *owner,
                         const uint8_t recipient_uid[20], uint8_t *out, size_t cap)
{
  if (!s || !owner || !recipient_uid || !out)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  uint8_t body[SC_SK_MAX_DIST];
  sc_mp_writer w;
  sc_mp_writer_init(&w, body, sizeof body);
  sc_mp_write_array(&w, 9);
  sc_mp_write_uint(&w, SC_SK_VERSION);
  sc_mp_write_bin(&w, s->chat_id, 16);
  sc_mp_write_uint(&w, s->epoch);
  sc_mp_write_bin(&w, s->log_head, 32);
  sc_mp_write_bin(&w, owner->uid, 20);
  sc_mp_write_bin(&w, recipient_uid, 20);
  sc_mp_write_bin(&w, s->chain_id, 16);
  sc_mp_write_uint(&w, s->iteration);
  sc_mp_write_bin(&w, s->ck, 32);
  int64_t blen = sc_mp_writer_finish(&w);
  int64_t n = blen < 0 ? SECCHAT_ERR_INTERNAL
                       : wrap_signed(SC_CTX_SKDIST, body, (size_t)blen, owner, out, cap);
  sodium_memzero(body, sizeof body);
  return n;
}

/* Validate [body, sig], verify sig with pk under ctx, and open a reader on
 * the body array of `fields` elements with ver == 1 read. */
static int open_signed(const uint8_t *in, size_t len, const char *ctx, const uint8_t pk[32],
                       uint32_t fields, sc_mp_reader *br)
{
  if (!in || !pk)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  if (len > SC_SK_MAX_DIST)
    return SECCHAT_ERR_TOO_LONG;
  int rc = sc_mp_validate(in, len, 1);
  if (rc)
    return rc;
  sc_mp_reader r;
  uint32_t n;
  const uint8_t *body, *sig;
  size_t blen;
  sc_mp_reader_init(&r, in, len);
  if ((rc = sc_mp_read_array(&r, &n)))
    return rc;
  if (n != 2)
    return SECCHAT_ERR_SCHEMA;
  if ((rc = sc_mp_read_bin(&r, &body, &blen, 1, SC_SK_MAX_DIST)) ||
      (rc = sc_mp_read_bin_exact(&r, &sig, 64)))
    return rc;
  if ((rc = sc_verify_ctx(sig, ctx, body, blen, pk)))
    return rc;
  if ((rc = sc_mp_validate(body, blen, 1)))
    return rc;
  uint64_t ver;
  sc_mp_reader_init(br, body, blen);
  if ((rc = sc_mp_read_array(br, &n)))
    return rc;
  if (n != fields)
    return SECCHAT_ERR_SCHEMA;
  if ((rc = sc_mp_read_uint(br, &ver)))
    return rc;
  return ver == SC_SK_VERSION ? 0 : SECCHAT_ERR_VERSION;
}

int sc_sk_dist_parse(const uint8_t *in, size_t len, const uint8_t owner_pk[32],
                     const uint8_t my_uid[20], sc_sk_dist *d)
{
  if (!my_uid || !d)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  memset(d, 0, sizeof *d);
  sc_mp_reader r;
  int rc = open_signed(in, len, SC_CTX_SKDIST, owner_pk, 9, &r);
  if (rc)
    return rc;
  const uint8_t *chat, *head, *owner, *rcpt, *chain, *ck;
  if ((rc = sc_mp_read_bin_exact(&r, &chat, 16)) || (rc = sc_mp_read_uint(&r, &d->epoch)) ||
      (rc = sc_mp_read_bin_exact(&r, &head, 32)) || (rc = sc_mp_read_bin_exact(&r, &owner, 20)) ||
      (rc = sc_mp_read_bin_exact(&r, &rcpt, 20)) || (rc = sc_mp_read_bin_exact(&r, &chain, 16)) ||
      (rc = sc_mp_read_uint(&r, &d->iteration)) || (rc = sc_mp_read_bin_exact(&r, &ck, 32)))
    return rc;
  uint8_t uid[20];
  sc_uid_from_sign_pk(uid, owner_pk);
  if (memcmp(owner, uid, 20) != 0 || memcmp(rcpt, my_uid, 20) != 0)
    return SECCHAT_ERR_AUTH;
  if (d->iteration > SC_SK_MAX_ITERATION)
    return SECCHAT_ERR_LIMIT;
  memcpy(d->chat_id, chat, 16);
  memcpy(d->log_head, head, 32);
  memcpy(d->owner_uid, owner, 20);
  memcpy(d->chain_id, chain, 16);
  memcpy(d->ck, ck, 32);
  return 0;
}

void sc_sk_dist_wipe(sc_sk_dist *d)
{
  sodium_memzero(d, sizeof *d);
}

int sc_sk_peer_add_dist(sc_sk_peer *p, const sc_sk_dist *d, uint64_t now_ms)
{
  if (!p || !d)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  if (memcmp(d->owner_uid, p->uid, 20) != 0 || memcmp(d->chat_id, p->chat_id, 16) != 0)
    return SECCHAT_ERR_AUTH;
  return sc_sk_peer_add_chain(p, d->epoch, d->log_head, d->chain_id, d->iteration, d->ck, now_ms);
}

int64_t sc_sk_keyreq_build(const secchat_identity *requester, const uint8_t chat_id[16],
                           uint64_t epoch, const uint8_t recipient_uid[20],
                           const uint8_t chain_id[16], uint8_t *out, size_t cap)
{
  if (!requester || !chat_id || !recipient_uid || !chain_id || !out)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  uint8_t body[SC_SK_MAX_DIST];
  sc_mp_writer w;
  sc_mp_writer_init(&w, body, sizeof body);
  sc_mp_write_array(&w, 6);
  sc_mp_write_uint(&w, SC_SK_VERSION);
  sc_mp_write_bin(&w, chat_id, 16);
  sc_mp_write_uint(&w, epoch);
  sc_mp_write_bin(&w, requester->uid, 20);
  sc_mp_write_bin(&w, recipient_uid, 20);
  sc_mp_write_bin(&w, chain_id, 16);
  int64_t blen = sc_mp_writer_finish(&w);
  if (blen < 0)
    return SECCHAT_ERR_INTERNAL;
  return wrap_signed(SC_CTX_KEYREQ, body, (size_t)blen, requester, out, cap);
}

int sc_sk_keyreq_parse(const uint8_t *in, size_t len, const uint8_t requester_pk[32],
                       const uint8_t my_uid[20], sc_sk_keyreq *q)
{
  if (!my_uid || !q)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  memset(q, 0, sizeof *q);
  sc_mp_reader r;
  int rc = open_signed(in, len, SC_CTX_KEYREQ, requester_pk, 6, &r);
  if (rc)
    return rc;
  const uint8_t *chat, *req, *rcpt, *chain;
  if ((rc = sc_mp_read_bin_exact(&r, &chat, 16)) || (rc = sc_mp_read_uint(&r, &q->epoch)) ||
      (rc = sc_mp_read_bin_exact(&r, &req, 20)) || (rc = sc_mp_read_bin_exact(&r, &rcpt, 20)) ||
      (rc = sc_mp_read_bin_exact(&r, &chain, 16)))
    return rc;
  uint8_t uid[20];
  sc_uid_from_sign_pk(uid, requester_pk);
  if (memcmp(req, uid, 20) != 0 || memcmp(rcpt, my_uid, 20) != 0)
    return SECCHAT_ERR_AUTH;
  memcpy(q->chat_id, chat, 16);
  memcpy(q->requester_uid, req, 20);
  memcpy(q->chain_id, chain, 16);
  return 0;
}
