/* group_hist.c: history from peers (protocol.md 7, docs/groups.md 5): the
 * in-memory history store, verification of history items, requests with
 * gap follow-up, and the rate-limited responder. */
#include "group_int.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "crypto.h"
#include "mp.h"
#include "rng.h"

/* ---- History: storage --------------------------------------------------- */

int grp_hist_has(const grp_chat *c, const uint8_t msg_id[32])
{
  for (uint32_t i = 0; i < c->hist_count; i++)
    if (memcmp(c->hist[(c->hist_head + i) % SC_GRP_HIST_MAX_ITEMS].msg_id, msg_id, 32) == 0)
      return 1;
  return 0;
}

void grp_hist_store(sc_group *g, grp_chat *c, const sc_sk_inner *in, const uint8_t *inner,
                    size_t len, const uint8_t sig[64], const uint8_t msg_id[32])
{
  uint8_t *copy = malloc(len);
  if (!copy)
    return;
  memcpy(copy, inner, len);
  while (c->hist_count == SC_GRP_HIST_MAX_ITEMS ||
         (c->hist_count && c->hist_bytes + len > SC_GRP_HIST_MAX_BYTES)) {
    grp_hist *old = &c->hist[c->hist_head];
    c->hist_bytes -= old->inner_len;
    sodium_memzero(old->inner, old->inner_len); /* plaintext */
    free(old->inner);
    old->inner = NULL;
    c->hist_head = (c->hist_head + 1) % SC_GRP_HIST_MAX_ITEMS;
    c->hist_count--;
  }
  grp_hist *h = &c->hist[(c->hist_head + c->hist_count++) % SC_GRP_HIST_MAX_ITEMS];
  h->inner = copy;
  h->inner_len = len;
  memcpy(h->sig, sig, 64);
  memcpy(h->msg_id, msg_id, 32);
  memcpy(h->author, in->author_uid, 20);
  memcpy(h->chain_id, in->chain_id, 16);
  h->seq = in->seq;
  h->epoch = in->epoch;
  h->flags = in->flags;
  c->hist_bytes += len;
  if (g->has_hist_key && !g->loading_history)
    grp_emit_record(g, c, inner, len, sig);
}

/* Verify a history item against the log (C13-C15): strict parse, chat
 * binding, log head of its epoch, author a member then and within any
 * final frontier, author signature, chain continuity, duplicate. On
 * success fills *in (borrowing inner) and msg_id. */
int grp_verify_item(sc_group *g, grp_chat *c, const uint8_t *inner, size_t len,
                    const uint8_t sig[64], sc_sk_inner *in, uint8_t msg_id[32])
{
  if (len > SC_GRP_MAX_INNER) /* could never be served in one page */
    return SECCHAT_ERR_TOO_LONG;
  int rc = sc_sk_inner_parse(inner, len, in);
  if (rc)
    return rc;
  if (memcmp(in->chat_id, c->id, 16) != 0)
    return SECCHAT_ERR_AUTH;
  sc_sk_msg_id(msg_id, inner, len);
  const grp_member *m = grp_author_ok(g, c, in, msg_id, &rc);
  if (!m)
    return rc;
  /* The author signs msg_id, the hash of the exact inner (crypto.md 6.1). */
  if (sc_verify_ctx(sig, SC_CTX_MSG, msg_id, 32, m->sign_pk))
    return SECCHAT_ERR_SIGNATURE;
  if (grp_seen_find(c, msg_id))
    return SECCHAT_ERR_REPLAY;
  if (!grp_continuity_ok(c, in, msg_id))
    return SECCHAT_ERR_AUTH;
  return 0;
}

/* ---- History: requests -------------------------------------------------- */

static grp_req *req_new(sc_group *g)
{
  for (unsigned i = 0; i < SC_GRP_MAX_REQS; i++)
    if (!g->reqs[i].live)
      return &g->reqs[i];
  return NULL;
}

/* Send HIST_REQ = [8, req_id, chat_id, frontier, max_items] to peer. The
 * frontier lists, per (author, chain), the last seq of the prefix held
 * without holes (the responder skips it). */
static int send_hist_req(sc_group *g, grp_chat *c, const uint8_t peer[20], uint32_t max_items,
                         const uint8_t (*asked)[20], uint32_t nasked, uint32_t accepted,
                         uint64_t now)
{
  grp_req *q = req_new(g);
  if (!q)
    return SECCHAT_ERR_TOO_MANY;
  uint8_t *buf = malloc(SC_GRP_MAX_PW);
  if (!buf)
    return SECCHAT_ERR_NOMEM;
  memset(q, 0, sizeof *q);
  sc_random(q->req_id, 16);
  memcpy(q->chat_id, c->id, 16);
  memcpy(q->peer, peer, 20);
  q->started = now;
  q->max_items = max_items;
  q->accepted = accepted; /* carried over by a follow-up request */
  for (uint32_t i = 0; i < nasked && i < GRP_MAX_ASKED; i++)
    memcpy(q->asked[q->nasked++], asked[i], 20);
  if (q->nasked < GRP_MAX_ASKED)
    memcpy(q->asked[q->nasked++], peer, 20);
  uint32_t nf = 0;
  for (uint32_t i = 0; i < c->track_count; i++) {
    const grp_track *t = &c->track[(c->track_head + i) % SC_GRP_TRACK_MAX];
    nf += t->contig > 0;
  }
  if (nf > 256)
    nf = 256;
  sc_mp_writer w;
  sc_mp_writer_init(&w, buf, SC_GRP_MAX_PW);
  sc_mp_write_array(&w, 5);
  sc_mp_write_uint(&w, GRP_T_HIST_REQ);
  sc_mp_write_bin(&w, q->req_id, 16);
  sc_mp_write_bin(&w, c->id, 16);
  sc_mp_write_array(&w, nf);
  uint32_t k = 0;
  for (uint32_t i = 0; i < c->track_count && k < nf; i++) {
    const grp_track *t = &c->track[(c->track_head + c->track_count - 1 - i) % SC_GRP_TRACK_MAX];
    if (t->contig == 0)
      continue;
    sc_mp_write_array(&w, 3);
    sc_mp_write_bin(&w, t->author, 20);
    sc_mp_write_bin(&w, t->chain_id, 16);
    sc_mp_write_uint(&w, t->contig - 1);
    k++;
  }
  sc_mp_write_uint(&w, max_items);
  int64_t n = sc_mp_writer_finish(&w);
  int rc = n < 0 ? (int)n : grp_pw(g, peer, buf, (size_t)n);
  free(buf);
  if (rc == 0)
    q->live = 1;
  return rc;
}

int sc_group_request_history(sc_group *g, const uint8_t chat_id[16], unsigned npeers,
                             uint32_t max_items, uint64_t now)
{
  if (!g || !chat_id || npeers == 0)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  grp_chat *c = grp_chat_find(g, chat_id);
  if (!c)
    return SECCHAT_ERR_NOT_FOUND;
  if (c->state != SC_GRP_ACTIVE)
    return SECCHAT_ERR_INVALID_STATE;
  if (max_items == 0 || max_items > SC_GRP_HIST_REPLY_CAP)
    max_items = SC_GRP_HIST_REPLY_CAP;
  int sent = 0;
  for (uint32_t i = 0; i < c->nmem && (unsigned)sent < npeers; i++) {
    grp_member *m = &c->mem[i];
    if (!grp_active_member(m) || !m->online || grp_is_me(g, m->uid))
      continue;
    int rc = send_hist_req(g, c, m->uid, max_items, NULL, 0, 0, now);
    if (rc)
      return sent ? sent : rc;
    sent++;
  }
  return sent;
}

/* Responder. */
int grp_on_hist_req(sc_group *g, const uint8_t from[20], sc_mp_reader *r, uint64_t now)
{
  const uint8_t *rid, *cid;
  uint32_t nf, k;
  uint64_t max_items;
  int rc;
  if ((rc = sc_mp_read_bin_exact(r, &rid, 16)) || (rc = sc_mp_read_bin_exact(r, &cid, 16)) ||
      (rc = sc_mp_read_array(r, &nf)))
    return rc;
  if (nf > 256)
    return SECCHAT_ERR_TOO_MANY;
  struct {
    const uint8_t *author, *chain;
    uint64_t seq;
  } fr[256];
  for (uint32_t i = 0; i < nf; i++) {
    if ((rc = sc_mp_read_array(r, &k)) || k != 3)
      return rc ? rc : SECCHAT_ERR_SCHEMA;
    if ((rc = sc_mp_read_bin_exact(r, &fr[i].author, 20)) ||
        (rc = sc_mp_read_bin_exact(r, &fr[i].chain, 16)) || (rc = sc_mp_read_uint(r, &fr[i].seq)))
      return rc;
  }
  if ((rc = sc_mp_read_uint(r, &max_items)))
    return rc;
  grp_chat *c = grp_chat_find(g, cid);
  if (!c || c->state != SC_GRP_ACTIVE)
    return SECCHAT_ERR_NOT_FOUND;
  grp_member *m = grp_member_find(c, from);
  if (!grp_active_member(m) || grp_is_me(g, from))
    return SECCHAT_ERR_AUTH; /* only current members of the verified log */
  /* Token bucket per member (C16). */
  if (!grp_bucket_take(&m->hist_bucket, now, SC_GRP_HIST_BURST, SC_GRP_HIST_REFILL_MS)) {
    g->st.rate_limited++;
    return SECCHAT_ERR_RATE_LIMITED;
  }
  if (max_items > SC_GRP_HIST_REPLY_CAP)
    max_items = SC_GRP_HIST_REPLY_CAP;

  uint8_t *buf = malloc(SC_GRP_MAX_PW);
  if (!buf)
    return SECCHAT_ERR_NOMEM;
  /* Page = [9, req_id, chat_id, [[inner, sig]...], more]; items are
   * collected by index first so that `more` is known when writing. */
  uint32_t idx[SC_GRP_HIST_REPLY_CAP];
  uint32_t nsel = 0;
  for (uint32_t i = 0; i < c->hist_count && nsel < max_items; i++) {
    uint32_t j = (c->hist_head + i) % SC_GRP_HIST_MAX_ITEMS;
    const grp_hist *h = &c->hist[j];
    int skip = 0;
    for (uint32_t f = 0; f < nf && !skip; f++)
      skip = memcmp(fr[f].author, h->author, 20) == 0 && memcmp(fr[f].chain, h->chain_id, 16) == 0 &&
             h->seq <= fr[f].seq;
    if (skip)
      continue;
    const grp_entry *closing;
    if (!(h->flags & SC_GRP_FLAG_SHAREABLE) && !grp_member_at(c, from, h->epoch, &closing))
      continue;
    idx[nsel++] = j;
  }
  uint32_t i = 0;
  do {
    uint32_t cnt = 0;
    size_t used = 64;
    while (i + cnt < nsel) {
      size_t item = c->hist[idx[i + cnt]].inner_len + 80;
      if (cnt && used + item > SC_GRP_MAX_PW)
        break;
      used += item;
      cnt++;
    }
    sc_mp_writer w;
    sc_mp_writer_init(&w, buf, SC_GRP_MAX_PW);
    sc_mp_write_array(&w, 5);
    sc_mp_write_uint(&w, GRP_T_HIST_RESP);
    sc_mp_write_bin(&w, rid, 16);
    sc_mp_write_bin(&w, c->id, 16);
    sc_mp_write_array(&w, cnt);
    for (uint32_t q = 0; q < cnt; q++) {
      const grp_hist *h = &c->hist[idx[i + q]];
      sc_mp_write_array(&w, 2);
      sc_mp_write_bin(&w, h->inner, h->inner_len);
      sc_mp_write_bin(&w, h->sig, 64);
    }
    i += cnt;
    sc_mp_write_bool(&w, i < nsel);
    int64_t n = sc_mp_writer_finish(&w);
    if (n < 0) {
      rc = (int)n;
      break;
    }
    if ((rc = grp_pw(g, from, buf, (size_t)n)))
      break;
  } while (i < nsel);
  free(buf);
  return rc;
}

static int pend_cmp(const void *a, const void *b)
{
  const grp_pend *x = a, *y = b;
  if (x->ev.ts_ms != y->ev.ts_ms)
    return x->ev.ts_ms < y->ev.ts_ms ? -1 : 1;
  int k = memcmp(x->ev.uid, y->ev.uid, 20);
  if (k)
    return k;
  k = memcmp(x->chain_id, y->chain_id, 16);
  if (k)
    return k;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Messages known to exist but not held, on chains meant for me (from my
 * latest join on; older ones may legitimately be withheld). */
static uint64_t chat_gaps(const sc_group *g, const grp_chat *c)
{
  uint64_t gaps = 0, joined = grp_my_join_epoch(g, c);
  for (uint32_t i = 0; i < c->track_count; i++) {
    const grp_track *t = &c->track[(c->track_head + i) % SC_GRP_TRACK_MAX];
    if (t->epoch >= joined)
      gaps += grp_track_missing(t);
  }
  return gaps;
}

/* A request is complete (last page or timeout): emit its items in order,
 * then ask another peer for what is still missing, or report the gaps. */
void grp_req_finish(sc_group *g, grp_req *q, uint64_t now)
{
  grp_chat *c = grp_chat_find(g, q->chat_id);
  if (!c) {
    grp_req_free(q);
    return;
  }
  if (q->npend)
    qsort(q->pend, q->npend, sizeof *q->pend, pend_cmp);
  for (uint32_t i = 0; i < q->npend; i++) {
    sc_group_event *e = grp_event(g, SC_GRP_EV_MESSAGE, c, NULL, 0);
    if (e) {
      *e = q->pend[i].ev;
      q->pend[i].ev.data = NULL;
    }
  }
  /* The request's slot is released before a follow-up may reuse it. */
  uint8_t asked[GRP_MAX_ASKED][20];
  uint32_t nasked = q->nasked, accepted = q->accepted, max_items = q->max_items;
  memcpy(asked, q->asked, sizeof asked);
  grp_req_free(q);

  uint64_t gaps = chat_gaps(g, c);
  if (gaps && c->state == SC_GRP_ACTIVE && nasked < GRP_MAX_ASKED) {
    for (uint32_t i = 0; i < c->nmem; i++) {
      const grp_member *m = &c->mem[i];
      int done = 0;
      for (uint32_t k = 0; k < nasked; k++)
        done |= memcmp(asked[k], m->uid, 20) == 0;
      if (done || !grp_active_member(m) || !m->online || grp_is_me(g, m->uid))
        continue;
      if (send_hist_req(g, c, m->uid, max_items, (const uint8_t(*)[20])asked, nasked, accepted,
                        now) == 0)
        return; /* the follow-up reports when it completes */
      break;
    }
  }
  sc_group_event *e = grp_event(g, SC_GRP_EV_HISTORY_DONE, c, NULL, 0);
  if (e) {
    e->count = accepted;
    e->gaps = gaps;
  }
}

int grp_on_hist_resp(sc_group *g, const uint8_t from[20], sc_mp_reader *r, uint64_t now)
{
  const uint8_t *rid, *cid;
  uint32_t n, k;
  bool more;
  int rc;
  if ((rc = sc_mp_read_bin_exact(r, &rid, 16)) || (rc = sc_mp_read_bin_exact(r, &cid, 16)))
    return rc;
  grp_req *q = NULL;
  for (unsigned i = 0; i < SC_GRP_MAX_REQS; i++)
    if (g->reqs[i].live && sodium_memcmp(g->reqs[i].req_id, rid, 16) == 0 &&
        memcmp(g->reqs[i].peer, from, 20) == 0 && memcmp(g->reqs[i].chat_id, cid, 16) == 0)
      q = &g->reqs[i];
  grp_chat *c = grp_chat_find(g, cid);
  if (!q || !c) {
    g->st.unsolicited++;
    return SECCHAT_ERR_AUTH; /* a response to nothing we asked */
  }
  if ((rc = sc_mp_read_array(r, &n)))
    return rc;
  for (uint32_t i = 0; i < n; i++) {
    const uint8_t *inner, *sig;
    size_t il;
    if ((rc = sc_mp_read_array(r, &k)) || k != 2)
      return rc ? rc : SECCHAT_ERR_SCHEMA;
    if ((rc = sc_mp_read_bin(r, &inner, &il, 1, SC_GRP_MAX_INNER)) ||
        (rc = sc_mp_read_bin_exact(r, &sig, 64)))
      return rc;
    sc_sk_inner in;
    uint8_t id[32];
    int vr = grp_verify_item(g, c, inner, il, sig, &in, id);
    if (vr == SECCHAT_ERR_REPLAY) {
      g->st.duplicates++;
      continue;
    }
    if (vr) {
      g->st.verify_fail++;
      grp_warn(g, c, vr, from);
      continue;
    }
    if (q->accepted >= q->max_items) /* the responder exceeded our cap */
      continue;
    grp_accept_item(g, c, &in, inner, il, sig, id, now);
    if (in.content_type == SC_GRP_CT_TEXT) {
      grp_pend *np = realloc(q->pend, (q->npend + 1) * sizeof *np);
      if (!np)
        continue;
      q->pend = np;
      memset(&q->pend[q->npend], 0, sizeof *np);
      grp_deliver_content(g, c, &in, id, 1, &q->pend[q->npend]);
      if (q->pend[q->npend].ev.type)
        q->npend++;
    } else {
      grp_deliver_content(g, c, &in, id, 1, NULL);
    }
    q->accepted++;
  }
  if ((rc = sc_mp_read_bool(r, &more)))
    return rc;
  if (!sc_mp_at_end(r))
    return SECCHAT_ERR_TRAILING_BYTES;
  if (!more)
    grp_req_finish(g, q, now);
  return 0;
}


/* ---- History: queries for the host --------------------------------------- */

typedef struct msg_ref {
  uint64_t ts;
  uint32_t order; /* position in the store: arrival order breaks ts ties */
  uint32_t slot;
} msg_ref;

static int msg_ref_cmp(const void *a, const void *b)
{
  const msg_ref *x = a, *y = b;
  if (x->ts != y->ts)
    return x->ts < y->ts ? -1 : 1;
  return x->order < y->order ? -1 : x->order > y->order;
}

int sc_group_messages(const sc_group *g, const uint8_t chat_id[16], sc_group_msg *out, size_t cap)
{
  if (!g || !chat_id || (!out && cap))
    return SECCHAT_ERR_INVALID_ARGUMENT;
  const grp_chat *c = grp_chat_find(g, chat_id);
  if (!c)
    return SECCHAT_ERR_NOT_FOUND;
  if (cap == 0 || c->hist_count == 0)
    return 0;
  msg_ref *refs = malloc((size_t)c->hist_count * sizeof *refs);
  if (!refs)
    return SECCHAT_ERR_NOMEM;
  uint32_t n = 0;
  for (uint32_t i = 0; i < c->hist_count; i++) {
    uint32_t j = (c->hist_head + i) % SC_GRP_HIST_MAX_ITEMS;
    sc_sk_inner in;
    /* Stored items were parsed and verified when accepted; heartbeats and
     * other non-text content are not messages. */
    if (sc_sk_inner_parse(c->hist[j].inner, c->hist[j].inner_len, &in) != 0 ||
        in.content_type != SC_GRP_CT_TEXT)
      continue;
    refs[n].ts = in.ts_ms;
    refs[n].order = i;
    refs[n].slot = j;
    n++;
  }
  qsort(refs, n, sizeof *refs, msg_ref_cmp);
  uint32_t first = n > cap ? n - (uint32_t)cap : 0;
  for (uint32_t k = first; k < n; k++) {
    const grp_hist *h = &c->hist[refs[k].slot];
    sc_sk_inner in;
    (void)sc_sk_inner_parse(h->inner, h->inner_len, &in); /* succeeded above */
    sc_group_msg *m = &out[k - first];
    memset(m, 0, sizeof *m);
    memcpy(m->uid, h->author, 20);
    memcpy(m->msg_id, h->msg_id, 32);
    m->ts_ms = in.ts_ms;
    m->epoch = h->epoch;
    m->shareable = (h->flags & SC_GRP_FLAG_SHAREABLE) != 0;
    m->text = in.body;
    m->len = in.body_len;
  }
  free(refs);
  return (int)(n - first);
}

int sc_group_gaps(const sc_group *g, const uint8_t chat_id[16], sc_group_gap *out, size_t cap)
{
  if (!g || !chat_id || (!out && cap))
    return SECCHAT_ERR_INVALID_ARGUMENT;
  const grp_chat *c = grp_chat_find(g, chat_id);
  if (!c)
    return SECCHAT_ERR_NOT_FOUND;
  /* Same rule as chat_gaps(): only chains meant for me count. One entry
   * per author, in order of first appearance; authors past cap are still
   * counted (the return value), so the caller can tell it missed some. */
  uint64_t joined = grp_my_join_epoch(g, c);
  size_t nauth = 0;
  for (uint32_t i = 0; i < c->track_count; i++) {
    const grp_track *t = &c->track[(c->track_head + i) % SC_GRP_TRACK_MAX];
    uint64_t miss = t->epoch >= joined ? grp_track_missing(t) : 0;
    if (miss == 0)
      continue;
    int seen = 0;
    for (uint32_t k = 0; k < i && !seen; k++) {
      const grp_track *p = &c->track[(c->track_head + k) % SC_GRP_TRACK_MAX];
      seen = memcmp(p->author, t->author, 20) == 0 && p->epoch >= joined &&
             grp_track_missing(p) > 0;
    }
    if (seen) {
      for (size_t k = 0; k < nauth && k < cap; k++)
        if (memcmp(out[k].uid, t->author, 20) == 0)
          out[k].missing += miss;
      continue;
    }
    if (nauth < cap) {
      memcpy(out[nauth].uid, t->author, 20);
      out[nauth].missing = miss;
    }
    nauth++;
  }
  return nauth > INT32_MAX ? INT32_MAX : (int)nauth;
}
