/* test_senderkey.c: sender-key ratchet, envelopes, key distribution and
 * requests; negative cases (security.md table C: C1, C2, C4, C5, C6) and the
 * known-answer vectors (regenerated and compared with the committed JSON). */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include <secchat/secchat.h>

#include "crypto.h"
#include "identity.h"
#include "mp.h"
#include "rng.h"
#include "senderkey.h"
#include "testutil.h"

#define KAT_NO_MAIN
#include "helper_kat.c"

#define BLOB_CAP SC_SK_SEAL_CAP(SC_SK_MAX_BODY)

typedef struct fixture {
  sc_test_rng rng;
  secchat_identity *alice, *bob, *mallory;
  uint8_t chat[16], head[32], route[32];
  sc_sk_sender as; /* alice's chain */
  sc_sk_peer bp;   /* bob's view of alice */
} fixture;

static fixture F;
static uint8_t work[BLOB_CAP + 64];

static void fx_setup(void)
{
  uint8_t seed[32];
  memset(&F, 0, sizeof F);
  memset(seed, 0x5c, sizeof seed);
  sc_test_rng_init(&F.rng, seed);
  sc_rng_set(sc_test_rng_fn, &F.rng);
  ck_assert_int_eq(secchat_identity_new(&F.alice), 0);
  ck_assert_int_eq(secchat_identity_new(&F.bob), 0);
  ck_assert_int_eq(secchat_identity_new(&F.mallory), 0);
  memset(F.chat, 0xc1, sizeof F.chat);
  memset(F.head, 0x4e, sizeof F.head);
  memset(F.route, 0x70, sizeof F.route);
  sc_sk_sender_init(&F.as, F.chat, 1, F.head);

  /* Distribution alice -> bob, through the signed message. */
  uint8_t buf[SC_SK_MAX_DIST];
  sc_sk_dist d;
  int64_t n = sc_sk_dist_build(&F.as, F.alice, secchat_identity_uid(F.bob), buf, sizeof buf);
  ck_assert_int_gt(n, 0);
  ck_assert_int_eq(sc_sk_dist_parse(buf, (size_t)n, secchat_identity_sign_public_key(F.alice),
                                    secchat_identity_uid(F.bob), &d),
                   0);
  ck_assert_int_eq(sc_sk_peer_init(&F.bp, F.chat, secchat_identity_sign_public_key(F.alice)), 0);
  ck_assert_int_eq(sc_sk_peer_add_dist(&F.bp, &d, 1000), 0);
  sc_sk_dist_wipe(&d);
}

static void fx_teardown(void)
{
  sc_sk_peer_wipe(&F.bp);
  sc_sk_sender_wipe(&F.as);
  secchat_identity_free(F.alice);
  secchat_identity_free(F.bob);
  secchat_identity_free(F.mallory);
  sc_rng_set(NULL, NULL);
}

static size_t seal_text(sc_sk_sender *s, const secchat_identity *author, const char *text,
                        uint8_t *out, uint8_t id[32])
{
  sc_sk_plain m = {1700000000000ull + s->iteration, 0, 1, (const uint8_t *)text, strlen(text)};
  int64_t n = sc_sk_seal(s, author, F.route, &m, out, BLOB_CAP, id);
  ck_assert_int_gt(n, 0);
  return (size_t)n;
}

static int open_blob(sc_sk_peer *p, const uint8_t route[32], const uint8_t *blob, size_t n,
                     sc_sk_opened *o)
{
  return sc_sk_open(p, route, blob, n, work, sizeof work, o);
}

static void digest(const sc_sk_peer *p, uint8_t d[32])
{
  sc_sk_peer_digest(p, d);
}

/* ---- Round trip ------------------------------------------------------------ */

START_TEST(seal_open_round_trip)
{
  fx_setup();
  static uint8_t blob[BLOB_CAP];
  uint8_t id[32], prev[32] = {0};
  const char *texts[] = {"", "hello", "a longer message body that spans more than one block of 64"};
  for (int i = 0; i < 3; i++) {
    size_t n = seal_text(&F.as, F.alice, texts[i], blob, id);
    ck_assert_uint_le(n, SC_SK_MAX_BLOB);
    sc_sk_opened o;
    ck_assert_int_eq(open_blob(&F.bp, F.route, blob, n, &o), 0);
    ck_assert_uint_eq(o.inner.body_len, strlen(texts[i]));
    if (o.inner.body_len)
      ck_assert_mem_eq(o.inner.body, texts[i], o.inner.body_len);
    ck_assert_uint_eq(o.inner_len % 64, 0);
    ck_assert_uint_eq(o.inner.seq, (uint64_t)i);
    ck_assert_uint_eq(o.inner.epoch, 1);
    ck_assert_mem_eq(o.inner.chat_id, F.chat, 16);
    ck_assert_mem_eq(o.inner.author_uid, secchat_identity_uid(F.alice), 20);
    ck_assert_mem_eq(o.inner.prev_msg_id, prev, 32);
    ck_assert_mem_eq(o.msg_id, id, 32);
    /* msg_id = BLAKE2b-256("secchat/msgid/v1" 0x00 inner), computed here
     * with a plain multi-part hash. */
    uint8_t h[32];
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 32);
    crypto_generichash_update(&st, (const uint8_t *)"secchat/msgid/v1", 17);
    crypto_generichash_update(&st, o.inner_bytes, o.inner_len);
    crypto_generichash_final(&st, h, 32);
    ck_assert_mem_eq(h, id, 32);
    /* The signature is over the msg_id (hash, then sign). */
    ck_assert_int_eq(sc_verify_ctx(o.sig, SC_CTX_MSG, h, 32,
                                   secchat_identity_sign_public_key(F.alice)),
                     0);
    memcpy(prev, id, 32);
  }
  fx_teardown();
}
END_TEST

/* docs/crypto.md 6.2: nonce = the chain's 16-byte random prefix ||
 * u64le(iteration): unique per message key, distinct across chains. */
START_TEST(nonce_is_chain_prefix_and_iteration)
{
  fx_setup();
  static uint8_t blob[BLOB_CAP];
  uint8_t id[32], prefix[16];
  for (uint64_t i = 0; i < 3; i++) {
    size_t n = seal_text(&F.as, F.alice, "x", blob, id);
    sc_sk_header h;
    ck_assert_int_eq(sc_sk_parse_blob(blob, n, &h), 0);
    ck_assert_uint_eq(h.iteration, i);
    if (i == 0)
      memcpy(prefix, h.nonce, 16);
    ck_assert_mem_eq(h.nonce, prefix, 16);
    for (unsigned b = 0; b < 8; b++)
      ck_assert_uint_eq(h.nonce[16 + b], (uint8_t)(i >> (8 * b)));
  }
  sc_sk_sender other;
  sc_sk_sender_init(&other, F.chat, 1, F.as.log_head);
  size_t n = seal_text(&other, F.alice, "x", blob, id);
  sc_sk_header h;
  ck_assert_int_eq(sc_sk_parse_blob(blob, n, &h), 0);
  ck_assert_int_ne(memcmp(h.nonce, prefix, 16), 0);
  sc_sk_sender_wipe(&other);
  fx_teardown();
}
END_TEST

START_TEST(ratchet_matches_crypto_kdf_definition)
{
  /* crypto_kdf is keyed BLAKE2b-256 with salt = LE64(id) || 0^8 and
   * personal = ctx || 0^8: recompute with crypto_generichash_blake2b_salt
   * _personal to pin the construction the Python reference relies on. */
  uint8_t ck[32], mk[32], nxt[32], want[32], salt[16] = {0}, pers[16] = {0};
  for (int i = 0; i < 32; i++)
    ck[i] = (uint8_t)(3 * i + 1);
  sc_sk_kdf_step(ck, mk, nxt);
  salt[0] = 1;
  memcpy(pers, "SCmsgkey", 8);
  crypto_generichash_blake2b_salt_personal(want, 32, NULL, 0, ck, 32, salt, pers);
  ck_assert_mem_eq(mk, want, 32);
  salt[0] = 2;
  memcpy(pers, "SCchain_", 8);
  crypto_generichash_blake2b_salt_personal(want, 32, NULL, 0, ck, 32, salt, pers);
  ck_assert_mem_eq(nxt, want, 32);
}
END_TEST

/* ---- Replay, reorder, window ------------------------------------------- */

START_TEST(replay_rejected_state_unchanged)
{
  fx_setup();
  static uint8_t blob[BLOB_CAP];
  uint8_t id[32], d1[32], d2[32];
  size_t n = seal_text(&F.as, F.alice, "once", blob, id);
  sc_sk_opened o;
  ck_assert_int_eq(open_blob(&F.bp, F.route, blob, n, &o), 0);
  digest(&F.bp, d1);
  ck_assert_int_eq(open_blob(&F.bp, F.route, blob, n, &o), SECCHAT_ERR_REPLAY);
  digest(&F.bp, d2);
  ck_assert_mem_eq(d1, d2, 32);
  fx_teardown();
}
END_TEST

START_TEST(reorder_within_window_accepted_once)
{
  fx_setup();
  enum { N = 6 };
  static uint8_t blobs[N][512];
  size_t lens[N];
  uint8_t id[32];
  char text[16];
  for (int i = 0; i < N; i++) {
    snprintf(text, sizeof text, "m%d", i);
    lens[i] = seal_text(&F.as, F.alice, text, blobs[i], id);
  }
  static const int order[N] = {4, 1, 5, 0, 3, 2};
  for (int k = 0; k < N; k++) {
    sc_sk_opened o;
    int i = order[k];
    ck_assert_int_eq(open_blob(&F.bp, F.route, blobs[i], lens[i], &o), 0);
    ck_assert_uint_eq(o.inner.seq, (uint64_t)i);
    snprintf(text, sizeof text, "m%d", i);
    ck_assert_mem_eq(o.inner.body, text, strlen(text));
  }
  ck_assert_uint_eq(F.bp.live, 0); /* every skipped key was used */
  for (int i = 0; i < N; i++) {
    sc_sk_opened o;
    ck_assert_int_eq(open_blob(&F.bp, F.route, blobs[i], lens[i], &o), SECCHAT_ERR_REPLAY);
  }
  fx_teardown();
}
END_TEST

START_TEST(skip_beyond_window_is_clear_error)
{
  fx_setup();
  static uint8_t blob[BLOB_CAP];
  uint8_t id[32], d1[32], d2[32];
  /* Alice sends 1002 messages; bob sees only #1001 (gap 1001), then #1000
   * (gap 1000, the maximum). */
  size_t n1000 = 0, n1001 = 0;
  static uint8_t b1000[512];
  for (int i = 0; i <= 1001; i++) {
    size_t n = seal_text(&F.as, F.alice, "x", blob, id);
    if (i == 1000) {
      memcpy(b1000, blob, n);
      n1000 = n;
    }
    n1001 = n;
  }
  sc_sk_opened o;
  digest(&F.bp, d1);
  ck_assert_int_eq(open_blob(&F.bp, F.route, blob, n1001, &o), SECCHAT_ERR_TOO_FAR_AHEAD);
  digest(&F.bp, d2);
  ck_assert_mem_eq(d1, d2, 32);
  ck_assert_int_eq(open_blob(&F.bp, F.route, b1000, n1000, &o), 0);
  ck_assert_uint_eq(F.bp.live, 1000);
  ck_assert_int_eq(open_blob(&F.bp, F.route, blob, n1001, &o), 0);
  fx_teardown();
}
END_TEST

START_TEST(skipped_keys_bounded_per_sender)
{
  fx_setup();
  enum { TOTAL = 3001, SLOT = 512 };
  uint8_t *blobs = malloc((size_t)TOTAL * SLOT);
  size_t *lens = malloc(TOTAL * sizeof *lens);
  uint8_t id[32];
  ck_assert_ptr_nonnull(blobs);
  for (int i = 0; i < TOTAL; i++) {
    uint8_t tmp[BLOB_CAP > 1024 ? 1024 : BLOB_CAP];
    sc_sk_plain m = {1, 0, 1, (const uint8_t *)"k", 1};
    int64_t n = sc_sk_seal(&F.as, F.alice, F.route, &m, tmp, sizeof tmp, id);
    ck_assert_int_gt(n, 0);
    ck_assert_int_le(n, SLOT);
    memcpy(blobs + (size_t)i * SLOT, tmp, (size_t)n);
    lens[i] = (size_t)n;
  }
  sc_sk_opened o;
  /* 1000, 2000, 3000: skipping 1000 + 999 + 999 = 2998 keys, of which the
   * 998 oldest (iterations 0..997) are evicted. */
  for (int i = 1000; i <= 3000; i += 1000)
    ck_assert_int_eq(open_blob(&F.bp, F.route, blobs + (size_t)i * SLOT, lens[i], &o), 0);
  ck_assert_uint_eq(F.bp.live, SC_SK_MAX_SKIPPED);
  ck_assert_uint_le(F.bp.ring_cap, SC_SK_MAX_SKIPPED);
  ck_assert_int_eq(open_blob(&F.bp, F.route, blobs + 997 * SLOT, lens[997], &o),
                   SECCHAT_ERR_REPLAY);
  ck_assert_int_eq(open_blob(&F.bp, F.route, blobs + 998 * SLOT, lens[998], &o), 0);
  ck_assert_int_eq(open_blob(&F.bp, F.route, blobs + 2999 * SLOT, lens[2999], &o), 0);
  ck_assert_uint_eq(F.bp.live, SC_SK_MAX_SKIPPED - 2);
  free(blobs);
  free(lens);
  fx_teardown();
}
END_TEST

/* ---- Tampering ------------------------------------------------------------- */

START_TEST(every_byte_flipped_rejected_state_unchanged)
{
  fx_setup();
  static uint8_t blob[BLOB_CAP];
  uint8_t id[32], d1[32], d2[32];
  /* A skipped key in the store too, so both key paths are exercised. */
  size_t n0 = seal_text(&F.as, F.alice, "first", blob, id);
  static uint8_t first[512];
  memcpy(first, blob, n0);
  size_t n = seal_text(&F.as, F.alice, "tamper with me", blob, id);
  digest(&F.bp, d1);
  for (size_t i = 0; i < n; i++) {
    for (int pass = 0; pass < 2; pass++) {
      uint8_t mask = pass ? 0xff : 0x01;
      blob[i] ^= mask;
      sc_sk_opened o;
      int rc = open_blob(&F.bp, F.route, blob, n, &o);
      ck_assert_msg(rc < 0, "flip of byte %zu accepted", i);
      digest(&F.bp, d2);
      ck_assert_mem_eq(d1, d2, 32);
      blob[i] ^= mask;
    }
  }
  for (size_t i = 0; i < n0; i++) {
    sc_sk_opened o;
    first[i] ^= 0x80;
    ck_assert_int_lt(open_blob(&F.bp, F.route, first, n0, &o), 0);
    first[i] ^= 0x80;
  }
  digest(&F.bp, d2);
  ck_assert_mem_eq(d1, d2, 32);
  sc_sk_opened o;
  ck_assert_int_eq(open_blob(&F.bp, F.route, blob, n, &o), 0);
  ck_assert_int_eq(open_blob(&F.bp, F.route, first, n0, &o), 0);
  fx_teardown();
}
END_TEST

START_TEST(truncated_and_oversized_inputs)
{
  fx_setup();
  static uint8_t blob[SC_SK_MAX_BLOB + 2];
  uint8_t id[32], d1[32], d2[32];
  size_t n = seal_text(&F.as, F.alice, "short", blob, id);
  digest(&F.bp, d1);
  sc_sk_opened o;
  for (size_t len = 0; len < n; len++) {
    int rc = open_blob(&F.bp, F.route, blob, len, &o);
    ck_assert_int_lt(rc, 0);
    ck_assert_int_ne(rc, SECCHAT_ERR_DECRYPT); /* caught by the format */
  }
  blob[n] = 0;
  ck_assert_int_eq(open_blob(&F.bp, F.route, blob, n + 1, &o), SECCHAT_ERR_TRAILING_BYTES);
  ck_assert_int_eq(open_blob(&F.bp, F.route, blob, SC_SK_MAX_BLOB + 1, &o), SECCHAT_ERR_TOO_LONG);
  ck_assert_int_eq(sc_sk_open(&F.bp, F.route, blob, n, work, 16, &o),
                   SECCHAT_ERR_BUFFER_TOO_SMALL);
  digest(&F.bp, d2);
  ck_assert_mem_eq(d1, d2, 32);
  ck_assert_int_eq(open_blob(&F.bp, F.route, blob, n, &o), 0);

  /* Seal-side limits: body too long, output too small (state unchanged). */
  static uint8_t big[SC_SK_MAX_BODY + 1];
  static uint8_t out[BLOB_CAP];
  sc_sk_plain m = {1, 0, 1, big, sizeof big};
  ck_assert_int_eq(sc_sk_seal(&F.as, F.alice, F.route, &m, out, sizeof out, id),
                   SECCHAT_ERR_TOO_LONG);
  uint64_t it = F.as.iteration;
  uint8_t ck[32];
  memcpy(ck, F.as.ck, 32);
  m.body_len = 10;
  for (size_t cap = 0; cap < 300; cap += 7)
    ck_assert_int_eq(sc_sk_seal(&F.as, F.alice, F.route, &m, out, cap, id),
                     SECCHAT_ERR_BUFFER_TOO_SMALL);
  ck_assert_uint_eq(F.as.iteration, it);
  ck_assert_mem_eq(F.as.ck, ck, 32);
  /* The largest body fits the advertised capacity and the blob limit, and
   * opens. */
  m.body_len = SC_SK_MAX_BODY;
  int64_t bn = sc_sk_seal(&F.as, F.alice, F.route, &m, out, SC_SK_SEAL_CAP(SC_SK_MAX_BODY), id);
  ck_assert_int_gt(bn, 0);
  ck_assert_int_le(bn, SC_SK_MAX_BLOB);
  ck_assert_int_le(bn, SECCHAT_MAX_FRAME_BODY - 256);
  ck_assert_int_eq(open_blob(&F.bp, F.route, out, (size_t)bn, &o), 0);
  ck_assert_uint_eq(o.inner.body_len, SC_SK_MAX_BODY);
  ck_assert_uint_le(o.inner_len, SC_SK_MAX_INNER);
  fx_teardown();
}
END_TEST

START_TEST(wrong_route_chat_epoch_rejected)
{
  fx_setup();
  static uint8_t blob[BLOB_CAP];
  uint8_t id[32], other_route[32];
  sc_sk_opened o;
  size_t n = seal_text(&F.as, F.alice, "bound", blob, id);
  /* C5: same ciphertext posted into another route. */
  memcpy(other_route, F.route, 32);
  other_route[31] ^= 1;
  ck_assert_int_eq(open_blob(&F.bp, other_route, blob, n, &o), SECCHAT_ERR_DECRYPT);

  /* A peer record for another chat holding the same chain (as a confused or
   * malicious distribution would produce): the inner's chat does not match. */
  uint8_t other_chat[16];
  memset(other_chat, 0x99, sizeof other_chat);
  sc_sk_peer p2;
  ck_assert_int_eq(sc_sk_peer_init(&p2, other_chat, secchat_identity_sign_public_key(F.alice)), 0);
  ck_assert_int_eq(sc_sk_peer_add_chain(&p2, 1, F.head, F.as.chain_id, 0, F.bp.chains[0].ck, 0), 0);
  ck_assert_int_eq(open_blob(&p2, F.route, blob, n, &o), SECCHAT_ERR_AUTH);
  sc_sk_peer_wipe(&p2);

  /* Chain registered for epoch 2 (or another log head): rejected. */
  ck_assert_int_eq(sc_sk_peer_init(&p2, F.chat, secchat_identity_sign_public_key(F.alice)), 0);
  ck_assert_int_eq(sc_sk_peer_add_chain(&p2, 2, F.head, F.as.chain_id, 0, F.bp.chains[0].ck, 0), 0);
  ck_assert_int_eq(open_blob(&p2, F.route, blob, n, &o), SECCHAT_ERR_AUTH);
  sc_sk_peer_wipe(&p2);
  uint8_t other_head[32];
  memset(other_head, 0x11, sizeof other_head);
  ck_assert_int_eq(sc_sk_peer_init(&p2, F.chat, secchat_identity_sign_public_key(F.alice)), 0);
  ck_assert_int_eq(
      sc_sk_peer_add_chain(&p2, 1, other_head, F.as.chain_id, 0, F.bp.chains[0].ck, 0), 0);
  ck_assert_int_eq(open_blob(&p2, F.route, blob, n, &o), SECCHAT_ERR_AUTH);
  sc_sk_peer_wipe(&p2);

  /* The sender claims another epoch in its header and inner (same chain):
   * the chain's epoch binding rejects it. */
  sc_sk_sender forged = F.as;
  forged.epoch = 2;
  n = seal_text(&forged, F.alice, "epoch", blob, id);
  ck_assert_int_eq(open_blob(&F.bp, F.route, blob, n, &o), SECCHAT_ERR_AUTH);
  sc_sk_sender_wipe(&forged);
  /* The genuine message at that iteration still opens. */
  n = seal_text(&F.as, F.alice, "ok", blob, id);
  ck_assert_int_eq(open_blob(&F.bp, F.route, blob, n, &o), 0);
  fx_teardown();
}
END_TEST

START_TEST(other_members_signature_rejected)
{
  fx_setup();
  static uint8_t blob[BLOB_CAP];
  uint8_t id[32];
  sc_sk_opened o;
  /* Mallory is a member and holds alice's chain key (she received the
   * same distribution). C6: she seals on alice's chain... */
  sc_sk_sender stolen = F.as;
  /* (a) as herself: header sender = mallory, so not alice's envelope. */
  size_t n = seal_text(&stolen, F.mallory, "as me", blob, id);
  ck_assert_int_eq(open_blob(&F.bp, F.route, blob, n, &o), SECCHAT_ERR_AUTH);
  /* (b) claiming alice's uid but signing with her own key. */
  stolen = F.as;
  secchat_identity *fake = NULL;
  ck_assert_int_eq(sc_identity_from_secrets(&fake, sc_identity_sign_sk(F.mallory),
                                            sc_identity_dh_sk(F.mallory)),
                   0);
  memcpy(fake->uid, secchat_identity_uid(F.alice), 20);
  n = seal_text(&stolen, fake, "as alice", blob, id);
  ck_assert_int_eq(open_blob(&F.bp, F.route, blob, n, &o), SECCHAT_ERR_SIGNATURE);
  secchat_identity_free(fake);
  sc_sk_sender_wipe(&stolen);
  /* Alice's real message at iteration 0 is still accepted. */
  n = seal_text(&F.as, F.alice, "real", blob, id);
  ck_assert_int_eq(open_blob(&F.bp, F.route, blob, n, &o), 0);
  fx_teardown();
}
END_TEST

/* ---- Hand-built envelopes: non-canonical or inconsistent inners --------- */

/* Inner with the layout of docs/crypto.md, written byte by byte. `variant`
 * breaks one rule: 1 epoch as uint16 (non-canonical), 2 non-zero padding,
 * 3 padding of 64 bytes more (not minimal), 4 seq != iteration, 5 inner
 * not a multiple of 64, 6 a 14th field, 7 version 2, 9 another chain id
 * than the header's. (Variant 8, another author uid in the inner, is made
 * by the caller.) */
static size_t hand_inner(uint8_t *out, const sc_sk_sender *s, const uint8_t uid[20], int variant)
{
  uint8_t *p = out;
  *p++ = variant == 6 ? 0x9e : 0x9d;
  *p++ = variant == 7 ? 2 : 1;
  *p++ = 0xc4, *p++ = 16, memcpy(p, s->chat_id, 16), p += 16;
  if (variant == 1)
    *p++ = 0xcd, *p++ = 0, *p++ = (uint8_t)s->epoch;
  else
    *p++ = (uint8_t)s->epoch;
  *p++ = 0xc4, *p++ = 32, memcpy(p, s->log_head, 32), p += 32;
  *p++ = 0xc4, *p++ = 20, memcpy(p, uid, 20), p += 20;
  *p++ = 0xc4, *p++ = 16, memcpy(p, s->chain_id, 16);
  if (variant == 9)
    p[15] ^= 1;
  p += 16;
  *p++ = (uint8_t)(s->iteration + (variant == 4));
  *p++ = 0xc4, *p++ = 32, memcpy(p, s->prev_msg_id, 32), p += 32;
  *p++ = 5;                  /* ts_ms */
  *p++ = 0;                  /* flags */
  *p++ = 1;                  /* content type */
  *p++ = 0xc4, *p++ = 2, *p++ = 'h', *p++ = 'i';
  if (variant == 6)
    *p++ = 0;
  size_t base = (size_t)(p - out);
  size_t pad = (64 - (base + 2) % 64) % 64;
  if (variant == 3)
    pad += 64;
  if (variant == 5)
    pad = (pad + 1) % 64;
  *p++ = 0xc4, *p++ = (uint8_t)pad;
  memset(p, 0, pad);
  if (variant == 2 && pad)
    p[pad - 1] = 1;
  p += pad;
  return (size_t)(p - out);
}

/* Envelope around (inner, sig) for s's current iteration, built with the
 * msgpack writer and the AEAD wrapper directly. */
static size_t hand_envelope(uint8_t *out, size_t cap, const sc_sk_sender *s, const uint8_t uid[20],
                            const uint8_t *inner, size_t inner_len, const uint8_t sig[64])
{
  uint8_t hdr[128], ad[160], pt[1024], mk[32], nxt[32], nonce[24];
  memset(nonce, 0x33, sizeof nonce);
  sc_mp_writer w;
  sc_mp_writer_init(&w, hdr, sizeof hdr);
  sc_mp_write_array(&w, 5);
  sc_mp_write_uint(&w, s->epoch);
  sc_mp_write_bin(&w, uid, 20);
  sc_mp_write_bin(&w, s->chain_id, 16);
  sc_mp_write_uint(&w, s->iteration);
  sc_mp_write_bin(&w, nonce, 24);
  int64_t hl = sc_mp_writer_finish(&w);
  ck_assert_int_gt(hl, 0);
  memcpy(ad, hdr, (size_t)hl);
  memcpy(ad + hl, F.route, 32);
  sc_mp_writer_init(&w, pt, sizeof pt);
  sc_mp_write_array(&w, 2);
  sc_mp_write_bin(&w, inner, inner_len);
  sc_mp_write_bin(&w, sig, 64);
  int64_t pl = sc_mp_writer_finish(&w);
  ck_assert_int_gt(pl, 0);
  uint8_t ct[1024 + 16];
  sc_sk_kdf_step(s->ck, mk, nxt);
  ck_assert_int_eq(sc_aead_xchacha_encrypt(ct, pt, (size_t)pl, ad, (size_t)hl + 32, nonce, mk), 0);
  ck_assert_uint_gt(cap, 1 + (size_t)hl);
  out[0] = 0x92; /* [header, ct]: the header bytes go in verbatim */
  memcpy(out + 1, hdr, (size_t)hl);
  sc_mp_writer w2;
  sc_mp_writer_init(&w2, out + 1 + hl, cap - 1 - (size_t)hl);
  sc_mp_write_bin(&w2, ct, (size_t)pl + 16);
  int64_t cl = sc_mp_writer_finish(&w2);
  ck_assert_int_gt(cl, 0);
  return 1 + (size_t)hl + (size_t)cl;
}

START_TEST(hand_built_envelopes)
{
  fx_setup();
  const uint8_t *uid = secchat_identity_uid(F.alice);
  const uint8_t *sk = sc_identity_sign_sk(F.alice);
  static const int want[] = {0,
                             SECCHAT_ERR_NONCANONICAL,
                             SECCHAT_ERR_BAD_PADDING,
                             SECCHAT_ERR_BAD_PADDING,
                             SECCHAT_ERR_AUTH,
                             SECCHAT_ERR_BAD_PADDING,
                             SECCHAT_ERR_SCHEMA,
                             SECCHAT_ERR_VERSION,
                             SECCHAT_ERR_AUTH,
                             SECCHAT_ERR_AUTH};
  uint8_t inner[512], sig[64], blob[1024], d1[32], d2[32], ck0[32];
  sc_sk_opened o;
  memcpy(ck0, F.as.ck, 32);
  for (int v = 9; v >= 0; v--) {
    /* 8: alice signs, on her own chain, an inner naming mallory as author */
    size_t il = v == 8 ? hand_inner(inner, &F.as, secchat_identity_uid(F.mallory), 0)
                       : hand_inner(inner, &F.as, uid, v);
    uint8_t mid[32];
    sc_sk_msg_id(mid, inner, il);
    ck_assert_int_eq(sc_sign_ctx(sig, SC_CTX_MSG, mid, 32, sk), 0);
    size_t n = hand_envelope(blob, sizeof blob, &F.as, uid, inner, il, sig);
    digest(&F.bp, d1);
    int rc = open_blob(&F.bp, F.route, blob, n, &o);
    ck_assert_msg(rc == want[v], "variant %d: got %d want %d", v, rc, want[v]);
    if (v) {
      digest(&F.bp, d2);
      ck_assert_mem_eq(d1, d2, 32);
    }
  }
  /* The hand-built canonical inner is exactly what seal produces for the
   * same fields (opened on a second peer holding CK_0). */
  sc_sk_sender again = F.as;
  again.iteration = 0;
  sc_sk_peer p2;
  ck_assert_int_eq(sc_sk_peer_init(&p2, F.chat, secchat_identity_sign_public_key(F.alice)), 0);
  ck_assert_int_eq(sc_sk_peer_add_chain(&p2, 1, F.head, F.as.chain_id, 0, ck0, 0), 0);
  memcpy(again.ck, ck0, 32);
  sc_sk_plain m = {5, 0, 1, (const uint8_t *)"hi", 2};
  uint8_t id[32];
  int64_t bn = sc_sk_seal(&again, F.alice, F.route, &m, blob, sizeof blob, id);
  ck_assert_int_gt(bn, 0);
  ck_assert_int_eq(open_blob(&p2, F.route, blob, (size_t)bn, &o), 0);
  size_t il0 = hand_inner(inner, &F.as, uid, 0);
  ck_assert_uint_eq(o.inner_len, il0);
  ck_assert_mem_eq(o.inner_bytes, inner, il0);
  sc_sk_peer_wipe(&p2);
  sc_sk_sender_wipe(&again);
  fx_teardown();
}
END_TEST

/* ---- Chains: rotation, old-chain limit, grace ---------------------------- */

START_TEST(old_chains_bounded_and_expire)
{
  fx_setup();
  static uint8_t blobs[8][512];
  size_t lens[8];
  uint8_t id[32];
  sc_sk_opened o;
  /* chain 0 is current (from setup). Rotate 6 times; keep one unread
   * message per chain. */
  sc_sk_sender chains[7];
  chains[0] = F.as;
  lens[0] = seal_text(&chains[0], F.alice, "c0", blobs[0], id);
  for (int c = 1; c <= 6; c++) {
    sc_sk_sender_init(&chains[c], F.chat, 1, F.head);
    ck_assert_int_eq(sc_sk_peer_add_chain(&F.bp, 1, F.head, chains[c].chain_id, 0, chains[c].ck,
                                          1000 + (uint64_t)c * 100),
                     0);
    char t[4] = {'c', (char)('0' + c), 0, 0};
    lens[c] = seal_text(&chains[c], F.alice, t, blobs[c], id);
  }
  /* Six rotations, five retired kept: chain 0 was wiped. */
  ck_assert_int_eq(open_blob(&F.bp, F.route, blobs[0], lens[0], &o), SECCHAT_ERR_NOT_FOUND);
  /* Retired chains within grace still decrypt (late messages). */
  ck_assert_int_eq(open_blob(&F.bp, F.route, blobs[1], lens[1], &o), 0);
  /* A re-sent key never rewinds or replaces a chain. */
  ck_assert_int_eq(
      sc_sk_peer_add_chain(&F.bp, 1, F.head, chains[6].chain_id, 0, chains[6].ck, 5000),
      SECCHAT_ERR_EXISTS);
  /* Older epoch than the current chain: refused. */
  uint8_t cid[16] = {9};
  ck_assert_int_eq(sc_sk_peer_add_chain(&F.bp, 0, F.head, cid, 0, chains[6].ck, 5000),
                   SECCHAT_ERR_PROTOCOL);
  /* Grace: chain 2 retired at 1300 (when chain 3 arrived); at 1300+999
   * with grace 1000 it lives, at 1300+1000 it is wiped; the current chain
   * (6) never expires. */
  sc_sk_peer_expire(&F.bp, 2299, 1000);
  ck_assert_int_eq(open_blob(&F.bp, F.route, blobs[2], lens[2], &o), 0);
  ck_assert_int_eq(open_blob(&F.bp, F.route, blobs[2], lens[2], &o), SECCHAT_ERR_REPLAY);
  sc_sk_peer_expire(&F.bp, 2300, 1000);
  ck_assert_int_eq(open_blob(&F.bp, F.route, blobs[2], lens[2], &o), SECCHAT_ERR_NOT_FOUND);
  sc_sk_peer_expire(&F.bp, 1000000, 1000);
  for (int c = 1; c <= 5; c++)
    ck_assert_int_eq(open_blob(&F.bp, F.route, blobs[c], lens[c], &o), SECCHAT_ERR_NOT_FOUND);
  ck_assert_int_eq(open_blob(&F.bp, F.route, blobs[6], lens[6], &o), 0);
  for (int c = 1; c <= 6; c++)
    sc_sk_sender_wipe(&chains[c]);
  fx_teardown();
}
END_TEST

START_TEST(skipped_keys_of_wiped_chain_are_dropped)
{
  fx_setup();
  static uint8_t blob[BLOB_CAP];
  uint8_t id[32];
  sc_sk_opened o;
  for (int i = 0; i < 10; i++)
    (void)seal_text(&F.as, F.alice, "s", blob, id);
  size_t n = seal_text(&F.as, F.alice, "tenth", blob, id);
  ck_assert_int_eq(open_blob(&F.bp, F.route, blob, n, &o), 0);
  ck_assert_uint_eq(F.bp.live, 10);
  sc_sk_sender next;
  sc_sk_sender_init(&next, F.chat, 1, F.head);
  ck_assert_int_eq(sc_sk_peer_add_chain(&F.bp, 1, F.head, next.chain_id, 0, next.ck, 2000), 0);
  sc_sk_peer_expire(&F.bp, 2000, 0);
  ck_assert_uint_eq(F.bp.live, 0);
  sc_sk_sender_wipe(&next);
  fx_teardown();
}
END_TEST

/* ---- Distribution and key requests --------------------------------------- */

START_TEST(distribution_bound_to_owner_recipient_chat)
{
  fx_setup();
  uint8_t buf[SC_SK_MAX_DIST];
  sc_sk_dist d;
  const uint8_t *apk = secchat_identity_sign_public_key(F.alice);
  const uint8_t *mpk = secchat_identity_sign_public_key(F.mallory);
  int64_t n = sc_sk_dist_build(&F.as, F.alice, secchat_identity_uid(F.bob), buf, sizeof buf);
  ck_assert_int_gt(n, 0);
  /* Not addressed to mallory. */
  ck_assert_int_eq(sc_sk_dist_parse(buf, (size_t)n, apk, secchat_identity_uid(F.mallory), &d),
                   SECCHAT_ERR_AUTH);
  /* Checked against someone else's key: bad signature. */
  ck_assert_int_eq(sc_sk_dist_parse(buf, (size_t)n, mpk, secchat_identity_uid(F.bob), &d),
                   SECCHAT_ERR_SIGNATURE);
  /* Every byte matters. */
  for (int64_t i = 0; i < n; i++) {
    buf[i] ^= 0x04;
    ck_assert_int_lt(sc_sk_dist_parse(buf, (size_t)n, apk, secchat_identity_uid(F.bob), &d), 0);
    buf[i] ^= 0x04;
  }
  for (int64_t len = 0; len < n; len++)
    ck_assert_int_lt(sc_sk_dist_parse(buf, (size_t)len, apk, secchat_identity_uid(F.bob), &d), 0);
  ck_assert_int_eq(sc_sk_dist_parse(buf, (size_t)n, apk, secchat_identity_uid(F.bob), &d), 0);
  ck_assert_mem_eq(d.chain_id, F.as.chain_id, 16);
  ck_assert_mem_eq(d.ck, F.as.ck, 32);
  ck_assert_uint_eq(d.epoch, 1);
  /* Installing it again: a re-sent key never rewinds the chain. */
  ck_assert_int_eq(sc_sk_peer_add_dist(&F.bp, &d, 2000), SECCHAT_ERR_EXISTS);
  sc_sk_dist_wipe(&d);

  /* Mallory signs a distribution claiming alice's chain: she cannot use
   * alice's uid (it is derived from the verifying key), and a peer record
   * for alice refuses a dist whose owner is mallory. */
  sc_sk_sender ms;
  sc_sk_sender_init(&ms, F.chat, 1, F.head);
  n = sc_sk_dist_build(&ms, F.mallory, secchat_identity_uid(F.bob), buf, sizeof buf);
  ck_assert_int_eq(sc_sk_dist_parse(buf, (size_t)n, mpk, secchat_identity_uid(F.bob), &d), 0);
  ck_assert_int_eq(sc_sk_peer_add_dist(&F.bp, &d, 2000), SECCHAT_ERR_AUTH);
  sc_sk_dist_wipe(&d);
  /* A dist for another chat is refused by the peer record. */
  uint8_t other_chat[16] = {1};
  sc_sk_sender_wipe(&ms);
  sc_sk_sender_init(&ms, other_chat, 1, F.head);
  n = sc_sk_dist_build(&ms, F.alice, secchat_identity_uid(F.bob), buf, sizeof buf);
  ck_assert_int_eq(sc_sk_dist_parse(buf, (size_t)n, apk, secchat_identity_uid(F.bob), &d), 0);
  ck_assert_int_eq(sc_sk_peer_add_dist(&F.bp, &d, 2000), SECCHAT_ERR_AUTH);
  sc_sk_dist_wipe(&d);
  sc_sk_sender_wipe(&ms);
  /* Buffer too small. */
  ck_assert_int_eq(sc_sk_dist_build(&F.as, F.alice, secchat_identity_uid(F.bob), buf, 50),
                   SECCHAT_ERR_BUFFER_TOO_SMALL);
  fx_teardown();
}
END_TEST

START_TEST(key_request_round_trip)
{
  fx_setup();
  uint8_t buf[SC_SK_MAX_DIST];
  sc_sk_keyreq q;
  const uint8_t *bpk = secchat_identity_sign_public_key(F.bob);
  int64_t n = sc_sk_keyreq_build(F.bob, F.chat, 1, secchat_identity_uid(F.alice), F.as.chain_id,
                                 buf, sizeof buf);
  ck_assert_int_gt(n, 0);
  ck_assert_int_eq(sc_sk_keyreq_parse(buf, (size_t)n, bpk, secchat_identity_uid(F.alice), &q), 0);
  ck_assert_mem_eq(q.chat_id, F.chat, 16);
  ck_assert_mem_eq(q.requester_uid, secchat_identity_uid(F.bob), 20);
  ck_assert_mem_eq(q.chain_id, F.as.chain_id, 16);
  ck_assert_uint_eq(q.epoch, 1);
  ck_assert_int_eq(sc_sk_keyreq_parse(buf, (size_t)n, bpk, secchat_identity_uid(F.mallory), &q),
                   SECCHAT_ERR_AUTH);
  ck_assert_int_eq(sc_sk_keyreq_parse(buf, (size_t)n, secchat_identity_sign_public_key(F.mallory),
                                      secchat_identity_uid(F.alice), &q),
                   SECCHAT_ERR_SIGNATURE);
  /* A key request is not a distribution: contexts differ. */
  sc_sk_dist d;
  ck_assert_int_lt(sc_sk_dist_parse(buf, (size_t)n, bpk, secchat_identity_uid(F.alice), &d), 0);
  for (int64_t i = 0; i < n; i++) {
    buf[i] ^= 0x20;
    ck_assert_int_lt(sc_sk_keyreq_parse(buf, (size_t)n, bpk, secchat_identity_uid(F.alice), &q),
                     0);
    buf[i] ^= 0x20;
  }
  fx_teardown();
}
END_TEST

/* ---- Known-answer vectors --------------------------------------------------- */

START_TEST(kat_matches_committed_json)
{
  const char *dir = getenv("SECCHAT_VECTORS_DIR");
  char path[4096];
  snprintf(path, sizeof path, "%s/crypto_kat.json", dir ? dir : "tests/vectors");
  json_error_t err;
  json_t *committed = json_load_file(path, 0, &err);
  ck_assert_msg(committed != NULL, "cannot load %s: %s", path, err.text);
  json_t *now = kat_generate();
  if (!json_equal(committed, now)) {
    char *a = json_dumps(now, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    fprintf(stderr, "regenerated vectors differ from %s:\n%s\n", path, a ? a : "?");
    free(a);
    ck_abort_msg("crypto_kat.json no longer matches the code");
  }
  json_decref(committed);
  json_decref(now);
}
END_TEST

static Suite *senderkey_suite(void)
{
  Suite *s = suite_create("senderkey");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, seal_open_round_trip);
  tcase_add_test(tc, nonce_is_chain_prefix_and_iteration);
  tcase_add_test(tc, ratchet_matches_crypto_kdf_definition);
  tcase_add_test(tc, replay_rejected_state_unchanged);
  tcase_add_test(tc, reorder_within_window_accepted_once);
  tcase_add_test(tc, skip_beyond_window_is_clear_error);
  tcase_add_test(tc, skipped_keys_bounded_per_sender);
  tcase_add_test(tc, every_byte_flipped_rejected_state_unchanged);
  tcase_add_test(tc, truncated_and_oversized_inputs);
  tcase_add_test(tc, wrong_route_chat_epoch_rejected);
  tcase_add_test(tc, other_members_signature_rejected);
  tcase_add_test(tc, hand_built_envelopes);
  tcase_add_test(tc, old_chains_bounded_and_expire);
  tcase_add_test(tc, skipped_keys_of_wiped_chain_are_dropped);
  tcase_add_test(tc, distribution_bound_to_owner_recipient_chat);
  tcase_add_test(tc, key_request_round_trip);
  tcase_add_test(tc, kat_matches_committed_json);
  suite_add_tcase(s, tc);
  return s;
}

int main(void)
{
  return tu_run(senderkey_suite());
}
