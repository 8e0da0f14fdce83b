/* group_state.c: group state export/import and local-history records (see
 * group.h; formats in docs/groups.md sections 6 and 7). */
#include "group_int.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "crypto.h"
#include "mp.h"
#include "rng.h"

#define REC_NONCE 24u
#define REC_TAG 16u

/* ---- Local-history records ----------------------------------------------
 * record = nonce(24) || XChaCha20-Poly1305(k, nonce, ad = SC_CTX_HISTREC,
 *                                          MP([1, chat_id, inner, sig]))
 * k = crypto_kdf_derive_from_key(32, 1, "SChistry", history key). */

static void rec_key(const sc_group *g, uint8_t k[32])
{
  (void)crypto_kdf_derive_from_key(k, 32, 1, "SChistry", g->hist_key);
}

void grp_emit_record(sc_group *g, const grp_chat *c, const uint8_t *inner, size_t len,
                     const uint8_t sig[64])
{
  size_t cap = len + 128;
  uint8_t *pt = malloc(cap), *rec = malloc(cap + REC_NONCE + REC_TAG);
  uint8_t k[32];
  if (!pt || !rec)
    goto out;
  sc_mp_writer w;
  sc_mp_writer_init(&w, pt, cap);
  sc_mp_write_array(&w, 4);
  sc_mp_write_uint(&w, 1);
  sc_mp_write_bin(&w, c->id, 16);
  sc_mp_write_bin(&w, inner, len);
  sc_mp_write_bin(&w, sig, 64);
  int64_t n = sc_mp_writer_finish(&w);
  if (n < 0)
    goto out;
  sc_random(rec, REC_NONCE);
  rec_key(g, k);
  if (sc_aead_xchacha_encrypt(rec + REC_NONCE, pt, (size_t)n, (const uint8_t *)SC_CTX_HISTREC,
                              sizeof SC_CTX_HISTREC - 1, rec, k) == 0)
    grp_event(g, SC_GRP_EV_HISTORY_RECORD, c, rec, REC_NONCE + (size_t)n + REC_TAG);
out:
  sodium_memzero(k, sizeof k);
  if (pt) {
    sodium_memzero(pt, cap);
    free(pt);
  }
  free(rec);
}

int sc_group_history_load(sc_group *g, const uint8_t *rec, size_t len, uint64_t now)
{
  if (!g || !rec || !g->has_hist_key)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  if (len < REC_NONCE + REC_TAG + 1)
    return SECCHAT_ERR_TRUNCATED;
  if (len > REC_NONCE + REC_TAG + SC_SK_MAX_INNER + 128)
    return SECCHAT_ERR_TOO_LONG;
  size_t pl = len - REC_NONCE - REC_TAG;
  uint8_t *pt = malloc(pl), k[32];
  if (!pt)
    return SECCHAT_ERR_NOMEM;
  rec_key(g, k);
  int rc = sc_aead_xchacha_decrypt(pt, rec + REC_NONCE, len - REC_NONCE,
                                   (const uint8_t *)SC_CTX_HISTREC, sizeof SC_CTX_HISTREC - 1, rec,
                                   k);
  sodium_memzero(k, sizeof k);
  if (rc)
    goto out;
  sc_mp_reader r;
  uint32_t n;
  uint64_t ver;
  const uint8_t *cid, *inner, *sig;
  size_t il;
  if ((rc = sc_mp_validate(pt, pl, 1)))
    goto out;
  sc_mp_reader_init(&r, pt, pl);
  if ((rc = sc_mp_read_array(&r, &n)) || n != 4 || (rc = sc_mp_read_uint(&r, &ver)) ||
      (rc = sc_mp_read_bin_exact(&r, &cid, 16)) ||
      (rc = sc_mp_read_bin(&r, &inner, &il, 1, SC_SK_MAX_INNER)) ||
      (rc = sc_mp_read_bin_exact(&r, &sig, 64))) {
    rc = rc ? rc : SECCHAT_ERR_SCHEMA;
    goto out;
  }
  if (ver != 1) {
    rc = SECCHAT_ERR_VERSION;
    goto out;
  }
  grp_chat *c = grp_chat_find(g, cid);
  if (!c) {
    rc = SECCHAT_ERR_NOT_FOUND;
    goto out;
  }
  sc_sk_inner in;
  uint8_t id[32];
  rc = grp_verify_item(g, c, inner, il, sig, &in, id);
  g->loading_history = 1;
  if (rc == SECCHAT_ERR_REPLAY && !grp_hist_has(c, id)) {
    /* Seen before the restart (the seen set is in the state) but the
     * history store is not: keep it to answer others. */
    grp_hist_store(g, c, &in, inner, il, sig, id);
    rc = 0;
  } else if (rc == 0) {
    grp_accept_item(g, c, &in, inner, il, sig, id, now);
  }
  g->loading_history = 0;
out:
  sodium_memzero(pt, pl);
  free(pt);
  return rc;
}

/* ---- State export --------------------------------------------------------
 * MP([1, counter, my_uid, [chat...]]), chat =
 *  [id, state, invite_id, invite_complete, [entry_raw...], route_epoch,
 *   route_secret | nil, [invite...], [member...], [seen...], [track...],
 *   [own_front...]]
 *  invite = [uid, sign_pk, dh_pk, dh_sig, invite_id]
 *  member = [uid, leaving, [front...], [chain...]]   (chains of its peer)
 *  chain  = [chain_id, log_head, ck, epoch, next, retired_ms, current]
 *  seen   = [msg_id, author, chain_id, seq, prev]
 *  track  = [author, chain_id, max_msg_id, epoch, max_seq, have, claimed,
 *            contig]
 * Own chains and skipped message keys are not exported: an import always
 * starts new chains, and messages whose keys were skipped come back
 * through history. */

static void w_front(sc_mp_writer *w, const grp_front *f, uint32_t n)
{
  sc_mp_write_array(w, n);
  for (uint32_t i = 0; i < n; i++) {
    sc_mp_write_array(w, 3);
    sc_mp_write_bin(w, f[i].chain_id, 16);
    sc_mp_write_uint(w, f[i].seq);
    sc_mp_write_bin(w, f[i].msg_id, 32);
  }
}

static void w_chat(sc_mp_writer *w, const grp_chat *c)
{
  sc_mp_write_array(w, 12);
  sc_mp_write_bin(w, c->id, 16);
  sc_mp_write_uint(w, (uint64_t)c->state);
  sc_mp_write_bin(w, c->invite_id, 16);
  sc_mp_write_bool(w, c->invite_complete != 0);
  sc_mp_write_array(w, c->nlog);
  for (uint32_t i = 0; i < c->nlog; i++)
    sc_mp_write_bin(w, c->log[i].raw, c->log[i].raw_len);
  sc_mp_write_uint(w, c->route_epoch);
  if (c->have_route)
    sc_mp_write_bin(w, c->route_secret, 32);
  else
    sc_mp_write_nil(w);
  sc_mp_write_array(w, c->ninv);
  for (uint32_t i = 0; i < c->ninv; i++) {
    const grp_invite *v = &c->inv[i];
    sc_mp_write_array(w, 5);
    sc_mp_write_bin(w, v->uid, 20);
    sc_mp_write_bin(w, v->sign_pk, 32);
    sc_mp_write_bin(w, v->dh_pk, 32);
    sc_mp_write_bin(w, v->dh_sig, 64);
    sc_mp_write_bin(w, v->invite_id, 16);
  }
  sc_mp_write_array(w, c->nmem);
  for (uint32_t i = 0; i < c->nmem; i++) {
    const grp_member *m = &c->mem[i];
    uint32_t nch = 0;
    if (m->has_peer)
      for (unsigned k = 0; k <= SC_SK_MAX_OLD_CHAINS; k++)
        nch += m->peer.chains[k].live != 0;
    sc_mp_write_array(w, 4);
    sc_mp_write_bin(w, m->uid, 20);
    sc_mp_write_bool(w, m->leaving != 0);
    w_front(w, m->front, m->nfront);
    sc_mp_write_array(w, nch);
    for (unsigned k = 0; m->has_peer && k <= SC_SK_MAX_OLD_CHAINS; k++) {
      const sc_sk_chain *ch = &m->peer.chains[k];
      if (!ch->live)
        continue;
      sc_mp_write_array(w, 7);
      sc_mp_write_bin(w, ch->chain_id, 16);
      sc_mp_write_bin(w, ch->log_head, 32);
      sc_mp_write_bin(w, ch->ck, 32);
      sc_mp_write_uint(w, ch->epoch);
      sc_mp_write_uint(w, ch->next);
      sc_mp_write_uint(w, ch->retired_ms);
      sc_mp_write_bool(w, ch->current != 0);
    }
  }
  sc_mp_write_array(w, c->seen_count);
  for (uint32_t i = 0; i < c->seen_count; i++) {
    const grp_seen *s = &c->seen[(c->seen_head + i) % SC_GRP_SEEN_MAX];
    sc_mp_write_array(w, 5);
    sc_mp_write_bin(w, s->msg_id, 32);
    sc_mp_write_bin(w, s->author, 20);
    sc_mp_write_bin(w, s->chain_id, 16);
    sc_mp_write_uint(w, s->seq);
    sc_mp_write_bin(w, s->prev, 32);
  }
  uint32_t nt = 0;
  for (uint32_t i = 0; i < c->track_count; i++)
    nt += !c->track[(c->track_head + i) % SC_GRP_TRACK_MAX].fresh;
  sc_mp_write_array(w, nt);
  for (uint32_t i = 0; i < c->track_count; i++) {
    const grp_track *t = &c->track[(c->track_head + i) % SC_GRP_TRACK_MAX];
    if (t->fresh)
      continue;
    sc_mp_write_array(w, 8);
    sc_mp_write_bin(w, t->author, 20);
    sc_mp_write_bin(w, t->chain_id, 16);
    sc_mp_write_bin(w, t->max_msg_id, 32);
    sc_mp_write_uint(w, t->epoch);
    sc_mp_write_uint(w, t->max_seq);
    sc_mp_write_uint(w, t->have);
    sc_mp_write_uint(w, t->claimed);
    sc_mp_write_uint(w, t->contig);
  }
  w_front(w, c->own_front, c->n_own_front);
}

int sc_group_export(sc_group *g, uint8_t **out, size_t *len)
{
  if (!g || !out || !len)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  size_t cap = 4096;
  for (size_t i = 0; i < g->nchats; i++) {
    const grp_chat *c = g->chats[i];
    cap += 1024 + (size_t)c->nlog * (GRP_ENTRY_MAX + 8) + (size_t)c->ninv * 200 +
           (size_t)c->nmem * (600 + (SC_SK_MAX_OLD_CHAINS + 1) * 160) +
           (size_t)c->seen_count * 140 + (size_t)c->track_count * 110;
  }
  uint8_t *buf = malloc(cap);
  if (!buf)
    return SECCHAT_ERR_NOMEM;
  g->counter++;
  sc_mp_writer w;
  sc_mp_writer_init(&w, buf, cap);
  sc_mp_write_array(&w, 4);
  sc_mp_write_uint(&w, 1);
  sc_mp_write_uint(&w, g->counter);
  sc_mp_write_bin(&w, g->my_uid, 20);
  sc_mp_write_array(&w, (uint32_t)g->nchats);
  for (size_t i = 0; i < g->nchats; i++)
    w_chat(&w, g->chats[i]);
  int64_t n = sc_mp_writer_finish(&w);
  if (n < 0) {
    sodium_memzero(buf, cap);
    free(buf);
    return SECCHAT_ERR_INTERNAL;
  }
  *out = buf;
  *len = (size_t)n;
  return 0;
}

uint64_t sc_group_counter(const sc_group *g)
{
  return g ? g->counter : 0;
}

/* ---- State import -------------------------------------------------------- */

#define TRY(x)                                                                                     \
  do {                                                                                             \
    if ((rc = (x)) != 0)                                                                           \
      return rc;                                                                                   \
  } while (0)

static int r_arr(sc_mp_reader *r, uint32_t want)
{
  uint32_t n;
  int rc = sc_mp_read_array(r, &n);
  if (rc)
    return rc;
  return n == want ? 0 : SECCHAT_ERR_SCHEMA;
}

static int r_bin(sc_mp_reader *r, uint8_t *dst, size_t n)
{
  const uint8_t *b;
  int rc = sc_mp_read_bin_exact(r, &b, n);
  if (!rc)
    memcpy(dst, b, n);
  return rc;
}

static int r_front(sc_mp_reader *r, grp_front *f, uint32_t *nf)
{
  uint32_t n;
  int rc;
  TRY(sc_mp_read_array(r, &n));
  if (n > SC_GRP_MAX_FRONT)
    return SECCHAT_ERR_SCHEMA;
  for (uint32_t i = 0; i < n; i++) {
    TRY(r_arr(r, 3));
    TRY(r_bin(r, f[i].chain_id, 16));
    TRY(sc_mp_read_uint(r, &f[i].seq));
    TRY(r_bin(r, f[i].msg_id, 32));
  }
  *nf = n;
  return 0;
}

static int r_member(grp_chat *c, sc_mp_reader *r)
{
  uint8_t uid[20];
  bool leaving;
  uint32_t nch;
  int rc;
  grp_front f[SC_GRP_MAX_FRONT];
  uint32_t nf;
  TRY(r_arr(r, 4));
  TRY(r_bin(r, uid, 20));
  TRY(sc_mp_read_bool(r, &leaving));
  TRY(r_front(r, f, &nf));
  grp_member *m = grp_member_find(c, uid);
  if (!m)
    return SECCHAT_ERR_AUTH; /* not in the verified log */
  m->leaving = leaving && m->current;
  memcpy(m->front, f, sizeof f);
  m->nfront = nf;
  TRY(sc_mp_read_array(r, &nch));
  if (nch > SC_SK_MAX_OLD_CHAINS + 1)
    return SECCHAT_ERR_SCHEMA;
  if (nch && !m->has_peer) {
    TRY(sc_sk_peer_init(&m->peer, c->id, m->sign_pk));
    m->has_peer = 1;
  }
  for (uint32_t k = 0; k < nch; k++) {
    sc_sk_chain *ch = &m->peer.chains[k];
    bool cur;
    TRY(r_arr(r, 7));
    TRY(r_bin(r, ch->chain_id, 16));
    TRY(r_bin(r, ch->log_head, 32));
    TRY(r_bin(r, ch->ck, 32));
    TRY(sc_mp_read_uint(r, &ch->epoch));
    TRY(sc_mp_read_uint(r, &ch->next));
    TRY(sc_mp_read_uint(r, &ch->retired_ms));
    TRY(sc_mp_read_bool(r, &cur));
    if (ch->epoch >= c->nlog || memcmp(c->log[ch->epoch].hash, ch->log_head, 32) != 0)
      return SECCHAT_ERR_AUTH;
    ch->current = cur;
    ch->live = 1;
  }
  return 0;
}

static int r_chat(sc_group *g, sc_mp_reader *r, uint64_t now)
{
  uint8_t id[16];
  uint64_t state, repoch;
  uint32_t n;
  bool complete;
  int rc;
  TRY(r_arr(r, 12));
  TRY(r_bin(r, id, 16));
  if (grp_chat_find(g, id))
    return SECCHAT_ERR_EXISTS;
  grp_chat *c = grp_chat_new(g, id);
  if (!c)
    return SECCHAT_ERR_TOO_MANY;
  TRY(sc_mp_read_uint(r, &state));
  if (state < SC_GRP_INVITED || state > SC_GRP_LEFT)
    return SECCHAT_ERR_SCHEMA;
  c->state = (sc_grp_state)state;
  TRY(r_bin(r, c->invite_id, 16));
  TRY(sc_mp_read_bool(r, &complete));
  c->invite_complete = complete;
  TRY(sc_mp_read_array(r, &n));
  if (n == 0 || n > SC_GRP_MAX_LOG)
    return SECCHAT_ERR_SCHEMA;
  for (uint32_t i = 0; i < n; i++) { /* every entry verified again */
    const uint8_t *raw;
    size_t len;
    TRY(sc_mp_read_bin(r, &raw, &len, 1, GRP_ENTRY_MAX));
    TRY(grp_log_append(c, raw, len));
  }
  grp_member *me = grp_member_find(c, g->my_uid);
  if (c->state == SC_GRP_ACTIVE && !(me && me->current))
    c->state = SC_GRP_LEFT;
  TRY(sc_mp_read_uint(r, &repoch));
  if (sc_mp_read_nil(r) != 0) {
    uint8_t secret[32];
    TRY(r_bin(r, secret, 32));
    if (c->state == SC_GRP_ACTIVE && repoch == grp_epoch(c))
      grp_set_route(g, c, repoch, secret);
    sodium_memzero(secret, sizeof secret);
  }
  TRY(sc_mp_read_array(r, &n));
  if (n > GRP_MAX_INVITES)
    return SECCHAT_ERR_SCHEMA;
  if (n) {
    c->inv = calloc(n, sizeof *c->inv);
    if (!c->inv)
      return SECCHAT_ERR_NOMEM;
  }
  for (uint32_t i = 0; i < n; i++) {
    grp_invite *v = &c->inv[i];
    TRY(r_arr(r, 5));
    TRY(r_bin(r, v->uid, 20));
    TRY(r_bin(r, v->sign_pk, 32));
    TRY(r_bin(r, v->dh_pk, 32));
    TRY(r_bin(r, v->dh_sig, 64));
    TRY(r_bin(r, v->invite_id, 16));
    c->ninv++;
  }
  TRY(sc_mp_read_array(r, &n));
  for (uint32_t i = 0; i < n; i++)
    TRY(r_member(c, r));
  TRY(sc_mp_read_array(r, &n));
  if (n > SC_GRP_SEEN_MAX)
    return SECCHAT_ERR_SCHEMA;
  for (uint32_t i = 0; i < n; i++) {
    grp_seen *s = &c->seen[c->seen_count];
    TRY(r_arr(r, 5));
    TRY(r_bin(r, s->msg_id, 32));
    TRY(r_bin(r, s->author, 20));
    TRY(r_bin(r, s->chain_id, 16));
    TRY(sc_mp_read_uint(r, &s->seq));
    TRY(r_bin(r, s->prev, 32));
    c->seen_count++;
  }
  TRY(sc_mp_read_array(r, &n));
  if (n > SC_GRP_TRACK_MAX)
    return SECCHAT_ERR_SCHEMA;
  for (uint32_t i = 0; i < n; i++) {
    uint8_t author[20], chain[16];
    TRY(r_arr(r, 8));
    TRY(r_bin(r, author, 20));
    TRY(r_bin(r, chain, 16));
    grp_track *t = grp_track_get(c, author, chain, 0);
    TRY(r_bin(r, t->max_msg_id, 32));
    TRY(sc_mp_read_uint(r, &t->epoch));
    TRY(sc_mp_read_uint(r, &t->max_seq));
    TRY(sc_mp_read_uint(r, &t->have));
    TRY(sc_mp_read_uint(r, &t->claimed));
    TRY(sc_mp_read_uint(r, &t->contig));
    if (t->contig > t->have)
      return SECCHAT_ERR_SCHEMA;
    t->fresh = 0;
    t->reported = t->have <= t->max_seq ? t->max_seq + 1 - t->have : 0;
  }
  TRY(r_front(r, c->own_front, &c->n_own_front));
  /* Not synchronised until the log is confirmed (sc_group_resync). */
  c->synced = 0;
  (void)now;
  return 0;
}

int sc_group_import(sc_group *g, const uint8_t *in, size_t len, uint64_t now)
{
  sc_mp_reader r;
  uint32_t n;
  uint64_t ver, counter;
  uint8_t uid[20];
  int rc;
  if (!g || !in)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  if (g->nchats)
    return SECCHAT_ERR_INVALID_STATE;
  if ((rc = sc_mp_validate(in, len, SC_MP_MAX_DEPTH)))
    return rc;
  sc_mp_reader_init(&r, in, len);
  if ((rc = r_arr(&r, 4)) || (rc = sc_mp_read_uint(&r, &ver)) ||
      (rc = sc_mp_read_uint(&r, &counter)) || (rc = r_bin(&r, uid, 20)) ||
      (rc = sc_mp_read_array(&r, &n)))
    return rc;
  if (ver != 1)
    return SECCHAT_ERR_VERSION;
  if (memcmp(uid, g->my_uid, 20) != 0)
    return SECCHAT_ERR_AUTH;
  if (n > SC_GRP_MAX_CHATS)
    return SECCHAT_ERR_TOO_MANY;
  for (uint32_t i = 0; i < n && !rc; i++)
    rc = r_chat(g, &r, now);
  if (rc)
    goto fail;
  g->counter = counter;
  return sc_group_resync(g, now);
fail:
  while (g->nchats)
    grp_chat_free(g->chats[--g->nchats]);
  /* Drop actions queued by the partial import (route opens). */
  sc_group_action a;
  while (sc_group_next_action(g, &a))
    sc_group_action_clear(&a);
  return rc;
}
