/* group.c: group chats (see group.h; normative description docs/groups.md).
 *
 * This file: queues; lifecycle; chats and members; own chains and key
 * distribution; epoch changes; log messages and commits; commands;
 * sending; receiving; pairwise dispatch; timers; queries. The membership
 * log and routes are in group_log.c, history from peers in group_hist.c,
 * state export/import and local-history records in group_state.c (shared
 * internals: group_int.h). */
#include "group_int.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "crypto.h"
#include "identity.h"
#include "mp.h"
#include "rng.h"

static const uint8_t zero32[32];

/* ---- Queues ------------------------------------------------------------- */

/* Unlink and return the oldest node, or NULL when empty. */
static grp_qnode *q_pop(grp_qnode **head, grp_qnode **tail, size_t *n)
{
  grp_qnode *q = *head;
  if (!q)
    return NULL;
  *head = q->next;
  if (!*head)
    *tail = NULL;
  (*n)--;
  return q;
}

static void q_push(sc_group *g, grp_qnode **head, grp_qnode **tail, size_t *n, grp_qnode *node)
{
  if (*n >= SC_GRP_MAX_QUEUE) { /* drop the oldest: bounded memory */
    grp_qnode_free(q_pop(head, tail, n));
    g->st.dropped_queue++;
  }
  node->next = NULL;
  if (*tail)
    (*tail)->next = node;
  else
    *head = node;
  *tail = node;
  (*n)++;
}

void grp_qnode_free(grp_qnode *q)
{
  if (!q)
    return;
  if (q->a.data) {
    sodium_memzero(q->a.data, q->a.len);
    free(q->a.data);
  }
  if (q->e.data) {
    sodium_memzero(q->e.data, q->e.len);
    free(q->e.data);
  }
  free(q);
}

static grp_qnode *qnode_new(const uint8_t *data, size_t len)
{
  grp_qnode *q = calloc(1, sizeof *q);
  if (!q)
    return NULL;
  if (len) {
    uint8_t *d = malloc(len);
    if (!d) {
      free(q);
      return NULL;
    }
    memcpy(d, data, len);
    q->a.data = d; /* moved to e.data by the event helpers */
    q->a.len = len;
  }
  return q;
}

int grp_action(sc_group *g, sc_grp_action_type t, const uint8_t *to_or_route, const uint8_t *data,
               size_t len, const uint8_t *msg_id)
{
  grp_qnode *q = qnode_new(data, len);
  if (!q)
    return SECCHAT_ERR_NOMEM;
  q->a.type = t;
  if (t == SC_GRP_PAIRWISE_SEND)
    memcpy(q->a.to_uid, to_or_route, 20);
  else
    memcpy(q->a.route_id, to_or_route, 32);
  if (msg_id)
    memcpy(q->a.msg_id, msg_id, 32);
  q_push(g, &g->aq_head, &g->aq_tail, &g->aq_n, q);
  return 0;
}

int grp_pw(sc_group *g, const uint8_t to[20], const uint8_t *data, size_t len)
{
  return grp_action(g, SC_GRP_PAIRWISE_SEND, to, data, len, NULL);
}

/* Queue an event; data (if any) is copied. Returns the node for extra
 * fields, or NULL when out of memory (the event is lost, counted). */
sc_group_event *grp_event(sc_group *g, sc_grp_event_type t, const grp_chat *c, const uint8_t *data,
                          size_t len)
{
  grp_qnode *q = qnode_new(data, len);
  if (!q) {
    g->st.dropped_queue++;
    return NULL;
  }
  q->e.data = q->a.data;
  q->e.len = q->a.len;
  q->a.data = NULL;
  q->a.len = 0;
  q->e.type = t;
  if (c)
    memcpy(q->e.chat_id, c->id, 16);
  q_push(g, &g->eq_head, &g->eq_tail, &g->eq_n, q);
  return &q->e;
}

void grp_warn(sc_group *g, const grp_chat *c, int code, const uint8_t *uid)
{
  sc_group_event *e = grp_event(g, SC_GRP_EV_WARNING, c, NULL, 0);
  if (e) {
    e->code = code;
    if (uid)
      memcpy(e->uid, uid, 20);
  }
}

void grp_fork_suspected(sc_group *g, const grp_chat *c, const uint8_t *uid, uint64_t epoch)
{
  g->st.forks++;
  sc_group_event *e = grp_event(g, SC_GRP_EV_FORK_SUSPECTED, c, NULL, 0);
  if (e) {
    e->epoch = epoch;
    if (uid)
      memcpy(e->uid, uid, 20);
  }
}

int sc_group_next_action(sc_group *g, sc_group_action *a)
{
  grp_qnode *q = g && a ? q_pop(&g->aq_head, &g->aq_tail, &g->aq_n) : NULL;
  if (!q)
    return 0;
  *a = q->a;
  free(q);
  return 1;
}

void sc_group_action_clear(sc_group_action *a)
{
  if (!a)
    return;
  if (a->data) {
    sodium_memzero(a->data, a->len);
    free(a->data);
  }
  memset(a, 0, sizeof *a);
}

int sc_group_next_event(sc_group *g, sc_group_event *e)
{
  grp_qnode *q = g && e ? q_pop(&g->eq_head, &g->eq_tail, &g->eq_n) : NULL;
  if (!q)
    return 0;
  *e = q->e;
  free(q);
  return 1;
}

void sc_group_event_clear(sc_group_event *e)
{
  if (!e)
    return;
  if (e->data) {
    sodium_memzero(e->data, e->len);
    free(e->data);
  }
  memset(e, 0, sizeof *e);
}

/* ---- Lifecycle ---------------------------------------------------------- */

int sc_group_new(sc_group **out, const secchat_identity *me)
{
  if (!out || !me)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  sc_group *g = calloc(1, sizeof *g);
  if (!g)
    return SECCHAT_ERR_NOMEM;
  g->me = me;
  memcpy(g->my_uid, secchat_identity_uid(me), 20);
  *out = g;
  return 0;
}

void grp_req_free(grp_req *r)
{
  for (uint32_t i = 0; i < r->npend; i++)
    sc_group_event_clear(&r->pend[i].ev);
  free(r->pend);
  memset(r, 0, sizeof *r);
}

void grp_chat_free(grp_chat *c)
{
  if (!c)
    return;
  for (uint32_t i = 0; i < c->nlog; i++)
    free(c->log[i].raw);
  free(c->log);
  for (uint32_t i = 0; i < c->nmem; i++) {
    if (c->mem[i].has_peer)
      sc_sk_peer_wipe(&c->mem[i].peer);
    grp_member_drop_leave(&c->mem[i]);
  }
  free(c->mem);
  if (c->has_self)
    sc_sk_peer_wipe(&c->self);
  sc_sk_sender_wipe(&c->tx);
  sc_sk_sender_wipe(&c->tx0);
  sodium_memzero(c->route_secret, sizeof c->route_secret);
  free(c->seen);
  free(c->track);
  if (c->hist) {
    for (uint32_t i = 0; i < c->hist_count; i++) {
      grp_hist *h = &c->hist[(c->hist_head + i) % SC_GRP_HIST_MAX_ITEMS];
      sodium_memzero(h->inner, h->inner_len); /* plaintext */
      free(h->inner);
    }
    free(c->hist);
  }
  for (uint32_t i = 0; i < c->npblob; i++)
    free(c->pblob[i].blob);
  for (uint32_t i = 0; i < c->npdist; i++) {
    sodium_memzero(c->pdist[i].p, c->pdist[i].len);
    free(c->pdist[i].p);
  }
  free(c->inv);
  sodium_memzero(c, sizeof *c);
  free(c);
}

void sc_group_free(sc_group *g)
{
  if (!g)
    return;
  for (size_t i = 0; i < g->nchats; i++)
    grp_chat_free(g->chats[i]);
  for (unsigned i = 0; i < SC_GRP_MAX_REQS; i++)
    grp_req_free(&g->reqs[i]);
  sc_group_action a;
  while (sc_group_next_action(g, &a))
    sc_group_action_clear(&a);
  sc_group_event e;
  while (sc_group_next_event(g, &e))
    sc_group_event_clear(&e);
  sodium_memzero(g->hist_key, sizeof g->hist_key);
  free(g);
}

void sc_group_set_blocked(sc_group *g, sc_group_blocked_fn fn, void *ctx)
{
  if (!g)
    return;
  g->blocked = fn;
  g->blocked_ctx = ctx;
}

void sc_group_set_history_key(sc_group *g, const uint8_t key[32])
{
  if (!g || !key)
    return;
  memcpy(g->hist_key, key, 32);
  g->has_hist_key = 1;
}

/* ---- Chats and members -------------------------------------------------- */

int grp_bucket_take(grp_bucket *b, uint64_t now, uint32_t burst, uint64_t refill_ms)
{
  if (!b->init) {
    b->tokens = burst;
    b->at = now;
    b->init = 1;
  } else if (now < b->at) {
    b->at = now; /* the host's clock went back: restart the period */
  } else {
    uint64_t add = (now - b->at) / refill_ms;
    if (add) {
      b->tokens = add >= burst || b->tokens + add >= burst ? burst : b->tokens + (uint32_t)add;
      b->at += add * refill_ms;
    }
  }
  if (!b->tokens)
    return 0;
  b->tokens--;
  return 1;
}

grp_chat *grp_chat_find(const sc_group *g, const uint8_t id[16])
{
  for (size_t i = 0; i < g->nchats; i++)
    if (memcmp(g->chats[i]->id, id, 16) == 0)
      return g->chats[i];
  return NULL;
}

grp_chat *grp_chat_new(sc_group *g, const uint8_t id[16])
{
  if (g->nchats >= SC_GRP_MAX_CHATS)
    return NULL;
  grp_chat *c = calloc(1, sizeof *c);
  if (!c)
    return NULL;
  c->seen = calloc(SC_GRP_SEEN_MAX, sizeof *c->seen);
  c->track = calloc(SC_GRP_TRACK_MAX, sizeof *c->track);
  c->hist = calloc(SC_GRP_HIST_MAX_ITEMS, sizeof *c->hist);
  if (!c->seen || !c->track || !c->hist) {
    grp_chat_free(c);
    return NULL;
  }
  memcpy(c->id, id, 16);
  g->chats[g->nchats++] = c;
  return c;
}

grp_member *grp_member_find(const grp_chat *c, const uint8_t uid[20])
{
  for (uint32_t i = 0; i < c->nmem; i++)
    if (memcmp(c->mem[i].uid, uid, 20) == 0)
      return &c->mem[i];
  return NULL;
}

/* Everyone ever named by an add (or create) entry has a record; records
 * are never removed (history needs the keys of former members). */
grp_member *grp_member_get(grp_chat *c, const uint8_t uid[20])
{
  grp_member *m = grp_member_find(c, uid);
  if (m)
    return m;
  if (c->nmem == c->mem_cap) {
    uint32_t cap = c->mem_cap ? c->mem_cap * 2 : 8;
    if (cap > SC_GRP_MAX_LOG)
      return NULL;
    /* Not realloc: records hold other members' chain keys, and the old
     * block must be wiped before it goes back to the allocator. */
    grp_member *n = malloc(cap * sizeof *n);
    if (!n)
      return NULL;
    if (c->nmem) {
      memcpy(n, c->mem, c->nmem * sizeof *n);
      sodium_memzero(c->mem, c->mem_cap * sizeof *n);
    }
    free(c->mem);
    c->mem = n;
    c->mem_cap = cap;
  }
  m = &c->mem[c->nmem++];
  memset(m, 0, sizeof *m);
  memcpy(m->uid, uid, 20);
  return m;
}

void grp_member_drop_leave(grp_member *m)
{
  free(m->leave_msg);
  m->leave_msg = NULL;
  m->leave_len = 0;
}

int grp_is_me(const sc_group *g, const uint8_t uid[20])
{
  return memcmp(g->my_uid, uid, 20) == 0;
}

static int am_admin(const sc_group *g, const grp_chat *c)
{
  return c->nlog > 0 && grp_is_me(g, c->admin);
}

/* Current member that has not announced its leave. */
int grp_active_member(const grp_member *m)
{
  return m && m->current && !m->leaving;
}

size_t grp_current_count(const grp_chat *c)
{
  size_t n = 0;
  for (uint32_t i = 0; i < c->nmem; i++)
    n += c->mem[i].current != 0;
  return n;
}

uint64_t grp_epoch(const grp_chat *c)
{
  return c->nlog ? c->nlog - 1 : 0;
}

/* ---- Own chains and key distribution ------------------------------------ */

static int wrap_send(sc_group *g, const uint8_t to[20], unsigned type, const uint8_t *inner,
                     size_t len)
{
  uint8_t buf[SC_SK_MAX_DIST + 16];
  sc_mp_writer w;
  sc_mp_writer_init(&w, buf, sizeof buf);
  sc_mp_write_array(&w, 2);
  sc_mp_write_uint(&w, type);
  sc_mp_write_bin(&w, inner, len);
  int64_t n = sc_mp_writer_finish(&w);
  int rc = n < 0 ? (int)n : grp_pw(g, to, buf, (size_t)n);
  sodium_memzero(buf, sizeof buf);
  return rc;
}

/* Send the start of my current chain to m (an SKDIST at iteration 0: m
 * can read the whole chain; rotation bounds that to 100 messages). */
static void send_dist(sc_group *g, grp_chat *c, grp_member *m)
{
  uint8_t buf[SC_SK_MAX_DIST];
  if (!c->have_tx || grp_is_me(g, m->uid))
    return;
  int64_t n = sc_sk_dist_build(&c->tx0, g->me, m->uid, buf, sizeof buf);
  if (n > 0 && wrap_send(g, m->uid, GRP_T_SKDIST, buf, (size_t)n) == 0)
    m->dist_gen = c->tx_gen;
  sodium_memzero(buf, sizeof buf);
}

/* Record the end of my current chain in my own frontier ring (newest at
 * index 0), used by a leave. */
static void own_front_push(grp_chat *c)
{
  if (!c->have_tx || c->tx.iteration == 0)
    return;
  grp_front f;
  memcpy(f.chain_id, c->tx.chain_id, 16);
  f.seq = c->tx.iteration - 1;
  memcpy(f.msg_id, c->tx.prev_msg_id, 32);
  f.epoch = c->tx.epoch;
  if (c->n_own_front && memcmp(c->own_front[0].chain_id, f.chain_id, 16) == 0) {
    c->own_front[0] = f;
    return;
  }
  memmove(&c->own_front[1], &c->own_front[0],
          (SC_GRP_MAX_FRONT - 1) * sizeof c->own_front[0]);
  c->own_front[0] = f;
  if (c->n_own_front < SC_GRP_MAX_FRONT)
    c->n_own_front++;
}

/* Start a new chain for the current epoch and send it to exactly the
 * epoch's active members. Also installs it in my self view, so that my
 * own messages can be opened for the local history. */
void grp_rotate(sc_group *g, grp_chat *c, uint64_t now)
{
  uint64_t epoch = grp_epoch(c);
  uint8_t jit[8];
  uint64_t j = 0;

  own_front_push(c);
  sc_sk_sender_wipe(&c->tx);
  sc_sk_sender_wipe(&c->tx0);
  sc_sk_sender_init(&c->tx, c->id, epoch, c->log[epoch].hash);
  c->tx0 = c->tx;
  c->have_tx = 1;
  c->tx_gen++;
  c->tx_count = 0;
  sc_random(jit, sizeof jit);
  for (int i = 0; i < 8; i++)
    j = (j << 8) | jit[i];
  c->tx_rotate_at = now + SC_GRP_ROTATE_MS - j % SC_GRP_ROTATE_JITTER_MS;

  if (!c->has_self) {
    if (sc_sk_peer_init(&c->self, c->id, secchat_identity_sign_public_key(g->me)) == 0)
      c->has_self = 1;
  }
  if (c->has_self)
    (void)sc_sk_peer_add_chain(&c->self, epoch, c->tx.log_head, c->tx.chain_id, 0, c->tx.ck, now);

  for (uint32_t i = 0; i < c->nmem; i++)
    if (grp_active_member(&c->mem[i]))
      send_dist(g, c, &c->mem[i]);
}

/* ---- Epoch changes ------------------------------------------------------ */

static void emit_uid(sc_group *g, const grp_chat *c, sc_grp_event_type t, const uint8_t uid[20],
                     int code)
{
  sc_group_event *e = grp_event(g, t, c, NULL, 0);
  if (e) {
    memcpy(e->uid, uid, 20);
    e->code = code;
    e->epoch = grp_epoch(c);
  }
}

/* Called after entries were appended (first_new = index of the first).
 * Reports membership changes, moves my own state, rotates my chain. */
void grp_after_append(sc_group *g, grp_chat *c, uint32_t first_new, uint64_t now)
{
  grp_member *me = grp_member_find(c, g->my_uid);
  int was_active = c->state == SC_GRP_ACTIVE;

  for (uint32_t k = first_new; k < c->nlog; k++) {
    const grp_entry *e = &c->log[k];
    if (grp_is_me(g, e->subject) || !was_active)
      continue;
    if (e->op == SC_GRP_OP_ADD)
      emit_uid(g, c, SC_GRP_EV_MEMBER_JOINED, e->subject, 0);
    else if (e->op != SC_GRP_OP_CREATE) {
      grp_member *m = grp_member_find(c, e->subject);
      if (!(m && m->left_reported))
        emit_uid(g, c, SC_GRP_EV_MEMBER_LEFT, e->subject, e->op == SC_GRP_OP_REMOVE);
      if (m)
        m->left_reported = 0;
    }
  }
  if (me && me->current) {
    /* Only an accepted invitation (JOINING) becomes active: a chat I left
     * stays LEFT even while the admin's log, having missed my LEAVE, still
     * lists me (it would hand me its route secret and keys). Re-entry takes
     * a fresh INVITE + ANSWER. */
    if (c->state == SC_GRP_JOINING) {
      c->state = SC_GRP_ACTIVE;
      emit_uid(g, c, SC_GRP_EV_JOINED, g->my_uid, 0);
    }
    if (c->state == SC_GRP_ACTIVE && c->synced && first_new < c->nlog)
      grp_rotate(g, c, now);
  } else if (c->state == SC_GRP_ACTIVE) {
    c->state = SC_GRP_LEFT;
    grp_close_routes(g, c);
    sc_sk_sender_wipe(&c->tx);
    sc_sk_sender_wipe(&c->tx0);
    c->have_tx = 0;
    emit_uid(g, c, SC_GRP_EV_REMOVED, g->my_uid, 1);
  }
}

/* ---- Log messages ------------------------------------------------------- */

static void grp_send_log_upto(sc_group *g, grp_chat *c, const uint8_t to[20], uint32_t from,
                              uint32_t upto, int with_secret);

/* LOG = [3, chat_id, from, [entry...], total, route_epoch, secret | nil]:
 * entries from index `from`, as many as fit one pairwise payload. The
 * route secret goes only to active members. */
void grp_send_log(sc_group *g, grp_chat *c, const uint8_t to[20], uint32_t from, int with_secret)
{
  grp_send_log_upto(g, c, to, from, c->nlog, with_secret);
}

/* Same, with entries (and `total`) limited to the first upto entries. */
static void grp_send_log_upto(sc_group *g, grp_chat *c, const uint8_t to[20], uint32_t from,
                              uint32_t upto, int with_secret)
{
  sc_mp_writer w;
  uint8_t *buf = malloc(SC_GRP_MAX_PW);
  uint32_t n = 0;
  size_t room = SC_GRP_MAX_PW - 200;
  if (!buf)
    return;
  if (upto > c->nlog)
    upto = c->nlog;
  if (from > upto)
    from = upto;
  for (size_t used = 0; from + n < upto; n++) {
    used += c->log[from + n].raw_len + 3;
    if (used > room)
      break;
  }
  sc_mp_writer_init(&w, buf, SC_GRP_MAX_PW);
  sc_mp_write_array(&w, 7);
  sc_mp_write_uint(&w, GRP_T_LOG);
  sc_mp_write_bin(&w, c->id, 16);
  sc_mp_write_uint(&w, from);
  sc_mp_write_array(&w, n);
  for (uint32_t i = 0; i < n; i++)
    sc_mp_write_bin(&w, c->log[from + i].raw, c->log[from + i].raw_len);
  sc_mp_write_uint(&w, upto);
  sc_mp_write_uint(&w, c->route_epoch);
  if (with_secret && c->have_route && upto == c->nlog)
    sc_mp_write_bin(&w, c->route_secret, 32);
  else
    sc_mp_write_nil(&w);
  int64_t len = sc_mp_writer_finish(&w);
  if (len > 0)
    grp_pw(g, to, buf, (size_t)len);
  sodium_memzero(buf, SC_GRP_MAX_PW);
  free(buf);
}

static void send_log_req(sc_group *g, grp_chat *c, const uint8_t to[20])
{
  uint8_t buf[64];
  sc_mp_writer w;
  sc_mp_writer_init(&w, buf, sizeof buf);
  sc_mp_write_array(&w, 3);
  sc_mp_write_uint(&w, GRP_T_LOG_REQ);
  sc_mp_write_bin(&w, c->id, 16);
  sc_mp_write_uint(&w, c->nlog);
  int64_t n = sc_mp_writer_finish(&w);
  if (n > 0)
    grp_pw(g, to, buf, (size_t)n);
}

/* Admin: sign and append an entry, draw the new epoch's route secret and
 * tell everyone concerned. */
static int commit(sc_group *g, grp_chat *c, unsigned op, const uint8_t subject[20],
                  const uint8_t sign_pk[32], const uint8_t dh_pk[32], const uint8_t dh_sig[64],
                  const grp_front *front, uint32_t nfront, uint64_t now)
{
  uint8_t body[GRP_ENTRY_MAX], raw[GRP_ENTRY_MAX], sig[64], secret[32];
  sc_mp_writer w;
  sc_mp_writer_init(&w, body, sizeof body);
  sc_mp_write_array(&w, 10);
  sc_mp_write_uint(&w, 1);
  sc_mp_write_bin(&w, c->id, 16);
  sc_mp_write_uint(&w, c->nlog);
  sc_mp_write_bin(&w, c->nlog ? c->log[c->nlog - 1].hash : zero32, 32);
  sc_mp_write_uint(&w, op);
  sc_mp_write_bin(&w, subject, 20);
  sc_mp_write_bin(&w, sign_pk ? sign_pk : zero32, 32);
  sc_mp_write_bin(&w, dh_pk ? dh_pk : zero32, 32);
  uint8_t z64[64] = {0};
  sc_mp_write_bin(&w, dh_sig ? dh_sig : z64, 64);
  grp_write_front(&w, front, nfront);
  int64_t bl = sc_mp_writer_finish(&w);
  if (bl < 0)
    return (int)bl;
  int rc = sc_sign_ctx(sig, SC_CTX_LOG, body, (size_t)bl, sc_identity_sign_sk(g->me));
  if (rc)
    return rc;
  sc_mp_writer_init(&w, raw, sizeof raw);
  sc_mp_write_array(&w, 2);
  sc_mp_write_bin(&w, body, (size_t)bl);
  sc_mp_write_bin(&w, sig, 64);
  int64_t rl = sc_mp_writer_finish(&w);
  if (rl < 0)
    return (int)rl;
  uint32_t first = c->nlog;
  if ((rc = grp_log_append(c, raw, (size_t)rl)))
    return rc;
  if (first == 0)
    c->state = SC_GRP_ACTIVE;
  sc_random(secret, sizeof secret);
  grp_set_route(g, c, grp_epoch(c), secret);
  sodium_memzero(secret, sizeof secret);
  for (uint32_t i = 0; i < c->nmem; i++) {
    grp_member *m = &c->mem[i];
    if (grp_is_me(g, m->uid))
      continue;
    if (m->current)
      grp_send_log(g, c, m->uid, (op == SC_GRP_OP_ADD && memcmp(m->uid, subject, 20) == 0) ? 0 : first,
                   1);
    else if (memcmp(m->uid, subject, 20) == 0)
      grp_send_log(g, c, m->uid, first, 0); /* tell the subject, no secret */
  }
  grp_after_append(g, c, first, now);
  return 0;
}

/* ---- Commands ----------------------------------------------------------- */

int sc_group_create(sc_group *g, uint64_t now, uint8_t chat_id[16])
{
  uint8_t id[16];
  if (!g || !chat_id)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  sc_random(id, sizeof id);
  grp_chat *c = grp_chat_new(g, id);
  if (!c)
    return SECCHAT_ERR_TOO_MANY;
  c->synced = 1;
  int rc = commit(g, c, SC_GRP_OP_CREATE, g->my_uid, secchat_identity_sign_public_key(g->me),
                  secchat_identity_dh_public_key(g->me), secchat_identity_dh_sig(g->me), NULL, 0,
                  now);
  if (rc) {
    g->nchats--;
    grp_chat_free(c);
    return rc;
  }
  grp_event(g, SC_GRP_EV_CHAT_CREATED, c, NULL, 0);
  memcpy(chat_id, id, 16);
  return 0;
}

int sc_group_invite(sc_group *g, const uint8_t chat_id[16], const uint8_t uid[20],
                    const uint8_t sign_pk[32], const uint8_t dh_pk[32], const uint8_t dh_sig[64],
                    uint64_t now)
{
  (void)now;
  if (!g || !chat_id || !uid || !sign_pk || !dh_pk || !dh_sig)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  grp_chat *c = grp_chat_find(g, chat_id);
  if (!c)
    return SECCHAT_ERR_NOT_FOUND;
  if (!am_admin(g, c) || c->state != SC_GRP_ACTIVE)
    return SECCHAT_ERR_INVALID_STATE;
  grp_member *m = grp_member_find(c, uid);
  if (m && m->current)
    return SECCHAT_ERR_EXISTS;
  if (sc_check_sign_pk(sign_pk) || sc_check_dh_pk(dh_pk))
    return SECCHAT_ERR_BAD_KEY;
  uint8_t u[20];
  sc_uid_from_sign_pk(u, sign_pk);
  if (memcmp(u, uid, 20) != 0 || sc_verify_ctx(dh_sig, SC_CTX_DH, dh_pk, 32, sign_pk))
    return SECCHAT_ERR_AUTH;
  if (grp_current_count(c) >= SC_GRP_MAX_MEMBERS)
    return SECCHAT_ERR_TOO_MANY;

  grp_invite *inv = NULL;
  for (uint32_t i = 0; i < c->ninv; i++)
    if (memcmp(c->inv[i].uid, uid, 20) == 0)
      inv = &c->inv[i];
  if (!inv) {
    if (c->ninv >= GRP_MAX_INVITES)
      return SECCHAT_ERR_TOO_MANY;
    grp_invite *n = realloc(c->inv, (c->ninv + 1) * sizeof *n);
    if (!n)
      return SECCHAT_ERR_NOMEM;
    c->inv = n;
    inv = &c->inv[c->ninv++];
  }
  memcpy(inv->uid, uid, 20);
  memcpy(inv->sign_pk, sign_pk, 32);
  memcpy(inv->dh_pk, dh_pk, 32);
  memcpy(inv->dh_sig, dh_sig, 64);
  sc_random(inv->invite_id, 16);

  /* INVITE = [1, chat_id, invite_id, from, [entry...], total, epoch, nil]:
   * the LOG layout with an invite id, built by reusing the LOG writer. */
  uint8_t *buf = malloc(SC_GRP_MAX_PW);
  if (!buf)
    return SECCHAT_ERR_NOMEM;
  sc_mp_writer w;
  uint32_t n = 0;
  for (size_t used = 0; n < c->nlog; n++) {
    used += c->log[n].raw_len + 3;
    if (used > SC_GRP_MAX_PW - 200)
      break;
  }
  sc_mp_writer_init(&w, buf, SC_GRP_MAX_PW);
  sc_mp_write_array(&w, 5);
  sc_mp_write_uint(&w, GRP_T_INVITE);
  sc_mp_write_bin(&w, c->id, 16);
  sc_mp_write_bin(&w, inv->invite_id, 16);
  sc_mp_write_array(&w, n);
  for (uint32_t i = 0; i < n; i++)
    sc_mp_write_bin(&w, c->log[i].raw, c->log[i].raw_len);
  sc_mp_write_uint(&w, c->nlog);
  int64_t len = sc_mp_writer_finish(&w);
  int rc = len < 0 ? (int)len : grp_pw(g, uid, buf, (size_t)len);
  free(buf);
  return rc;
}

int sc_group_answer(sc_group *g, const uint8_t chat_id[16], int accept, uint64_t now)
{
  (void)now;
  if (!g || !chat_id)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  grp_chat *c = grp_chat_find(g, chat_id);
  if (!c)
    return SECCHAT_ERR_NOT_FOUND;
  if (c->state != SC_GRP_INVITED || !c->invite_complete)
    return SECCHAT_ERR_INVALID_STATE;
  uint8_t body[128], sig[64], out[256];
  sc_mp_writer w;
  sc_mp_writer_init(&w, body, sizeof body);
  sc_mp_write_array(&w, 5);
  sc_mp_write_uint(&w, 1);
  sc_mp_write_bin(&w, c->id, 16);
  sc_mp_write_bin(&w, c->invite_id, 16);
  sc_mp_write_bin(&w, g->my_uid, 20);
  sc_mp_write_bool(&w, accept != 0);
  int64_t bl = sc_mp_writer_finish(&w);
  if (bl < 0)
    return (int)bl;
  int rc = sc_sign_ctx(sig, SC_CTX_ACCEPT, body, (size_t)bl, sc_identity_sign_sk(g->me));
  if (rc)
    return rc;
  sc_mp_writer_init(&w, out, sizeof out);
  sc_mp_write_array(&w, 3);
  sc_mp_write_uint(&w, GRP_T_ANSWER);
  sc_mp_write_bin(&w, body, (size_t)bl);
  sc_mp_write_bin(&w, sig, 64);
  int64_t n = sc_mp_writer_finish(&w);
  if (n < 0)
    return (int)n;
  if ((rc = grp_pw(g, c->admin, out, (size_t)n)))
    return rc;
  c->state = accept ? SC_GRP_JOINING : SC_GRP_LEFT;
  return 0;
}

/* LEAVE = [5, body, sig], body = [1, chat_id, my uid, epoch, my final
 * frontier]. Rebuilt on every (re-)send from the chat state (my frontier
 * is final once I left), so a pending leave survives export/import. */
#define GRP_LEAVE_MAX (GRP_ENTRY_MAX + 128u)
static int64_t build_leave(sc_group *g, const grp_chat *c, uint8_t out[GRP_LEAVE_MAX])
{
  uint8_t body[GRP_ENTRY_MAX], sig[64];
  sc_mp_writer w;
  sc_mp_writer_init(&w, body, sizeof body);
  sc_mp_write_array(&w, 5);
  sc_mp_write_uint(&w, 1);
  sc_mp_write_bin(&w, c->id, 16);
  sc_mp_write_bin(&w, g->my_uid, 20);
  sc_mp_write_uint(&w, grp_epoch(c));
  grp_write_front(&w, c->own_front, c->n_own_front);
  int64_t bl = sc_mp_writer_finish(&w);
  if (bl < 0)
    return bl;
  int rc = sc_sign_ctx(sig, SC_CTX_LEAVE, body, (size_t)bl, sc_identity_sign_sk(g->me));
  if (rc)
    return rc;
  sc_mp_writer_init(&w, out, GRP_LEAVE_MAX);
  sc_mp_write_array(&w, 3);
  sc_mp_write_uint(&w, GRP_T_LEAVE);
  sc_mp_write_bin(&w, body, (size_t)bl);
  sc_mp_write_bin(&w, sig, 64);
  return sc_mp_writer_finish(&w);
}

/* My leave is pending while the chat is LEFT but my log still lists me:
 * the admin has not committed it (or I have not seen the commit yet). */
static int leave_pending(const sc_group *g, const grp_chat *c)
{
  const grp_member *me = grp_member_find(c, g->my_uid);
  return c->state == SC_GRP_LEFT && me && me->current && !am_admin(g, c);
}

/* Re-send my pending LEAVE to the admin (a pairwise message to an offline
 * uid is dropped by the relay) and schedule the next try with back-off.
 * The admin answers a LEAVE of a former member with the log up to its
 * departure, which ends the re-sending. */
static void leave_resend(sc_group *g, grp_chat *c, uint64_t now)
{
  uint8_t out[GRP_LEAVE_MAX];
  int64_t n = build_leave(g, c, out);
  if (n > 0)
    grp_pw(g, c->admin, out, (size_t)n);
  c->leave_backoff_ms = c->leave_backoff_ms ? c->leave_backoff_ms * 2 : SC_GRP_RETRY_MS;
  if (c->leave_backoff_ms > SC_GRP_RETRY_MAX_MS)
    c->leave_backoff_ms = SC_GRP_RETRY_MAX_MS;
  c->leave_next_ms = now + c->leave_backoff_ms;
}

int sc_group_leave(sc_group *g, const uint8_t chat_id[16], uint64_t now)
{
  if (!g || !chat_id)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  grp_chat *c = grp_chat_find(g, chat_id);
  if (!c)
    return SECCHAT_ERR_NOT_FOUND;
  if (c->state != SC_GRP_ACTIVE || am_admin(g, c))
    return SECCHAT_ERR_INVALID_STATE;
  own_front_push(c);
  uint8_t out[GRP_LEAVE_MAX];
  int64_t n = build_leave(g, c, out);
  if (n < 0)
    return (int)n;
  for (uint32_t i = 0; i < c->nmem; i++)
    if (c->mem[i].current && !grp_is_me(g, c->mem[i].uid))
      grp_pw(g, c->mem[i].uid, out, (size_t)n);
  c->state = SC_GRP_LEFT;
  grp_close_routes(g, c);
  sc_sk_sender_wipe(&c->tx);
  sc_sk_sender_wipe(&c->tx0);
  c->have_tx = 0;
  c->leave_backoff_ms = 0;
  c->leave_next_ms = now + SC_GRP_RETRY_MS;
  return 0;
}

/* The admin's view of a member's frontier: its most recent chains. */
static uint32_t member_front(const grp_chat *c, const uint8_t uid[20], grp_front *f)
{
  uint32_t n = 0;
  for (uint32_t k = 0; k < c->track_count && n < SC_GRP_MAX_FRONT; k++) {
    const grp_track *t =
        &c->track[(c->track_head + c->track_count - 1 - k) % SC_GRP_TRACK_MAX];
    if (memcmp(t->author, uid, 20) != 0)
      continue;
    memcpy(f[n].chain_id, t->chain_id, 16);
    f[n].seq = t->max_seq;
    memcpy(f[n].msg_id, t->max_msg_id, 32);
    n++;
  }
  return n;
}

int sc_group_remove(sc_group *g, const uint8_t chat_id[16], const uint8_t uid[20], uint64_t now)
{
  if (!g || !chat_id || !uid)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  grp_chat *c = grp_chat_find(g, chat_id);
  if (!c)
    return SECCHAT_ERR_NOT_FOUND;
  if (!am_admin(g, c) || c->state != SC_GRP_ACTIVE || grp_is_me(g, uid))
    return SECCHAT_ERR_INVALID_STATE;
  grp_member *m = grp_member_find(c, uid);
  if (!m || !m->current)
    return SECCHAT_ERR_NOT_FOUND;
  grp_front f[SC_GRP_MAX_FRONT];
  uint32_t nf = member_front(c, uid, f);
  return commit(g, c, SC_GRP_OP_REMOVE, uid, NULL, NULL, NULL, f, nf, now);
}

/* Strict UTF-8 without NUL (same rules as sc_mp_validate's strings). */
static int utf8_check(const uint8_t *s, size_t n)
{
  size_t i = 0;
  while (i < n) {
    uint32_t c = s[i], need, min;
    if (c == 0)
      return SECCHAT_ERR_NUL_IN_STRING;
    if (c < 0x80) {
      i++;
      continue;
    }
    if ((c & 0xe0) == 0xc0)
      need = 1, min = 0x80, c &= 0x1f;
    else if ((c & 0xf0) == 0xe0)
      need = 2, min = 0x800, c &= 0x0f;
    else if ((c & 0xf8) == 0xf0)
      need = 3, min = 0x10000, c &= 0x07;
    else
      return SECCHAT_ERR_BAD_UTF8;
    if (i + need >= n)
      return SECCHAT_ERR_BAD_UTF8;
    for (uint32_t k = 1; k <= need; k++) {
      if ((s[i + k] & 0xc0) != 0x80)
        return SECCHAT_ERR_BAD_UTF8;
      c = (c << 6) | (s[i + k] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
      return SECCHAT_ERR_BAD_UTF8;
    i += need + 1;
  }
  return 0;
}

static int blocked_chat(sc_group *g, const grp_chat *c)
{
  if (!g->blocked)
    return 0;
  for (uint32_t i = 0; i < c->nmem; i++)
    if (c->mem[i].current && !grp_is_me(g, c->mem[i].uid) && g->blocked(g->blocked_ctx, c->mem[i].uid))
      return 1;
  return 0;
}


/* Seal body with my chain and post it; the message is also opened on my
 * self view so that my own history holds the exact signed bytes. */
static int post(sc_group *g, grp_chat *c, uint64_t ct, uint64_t flags, const uint8_t *body,
                size_t len, uint64_t now, uint8_t msg_id[32])
{
  if (c->tx_count >= SC_GRP_ROTATE_MSGS || now >= c->tx_rotate_at)
    grp_rotate(g, c, now);
  size_t cap = SC_SK_SEAL_CAP(len);
  uint8_t *blob = malloc(cap), *work = malloc(cap + 16);
  int rc = SECCHAT_ERR_NOMEM;
  if (!blob || !work)
    goto out;
  sc_sk_plain p = {.ts_ms = now, .flags = flags, .content_type = ct, .body = body, .body_len = len};
  int64_t n = sc_sk_seal(&c->tx, g->me, c->route, &p, blob, cap, msg_id);
  if (n == SECCHAT_ERR_LIMIT) {
    grp_rotate(g, c, now);
    n = sc_sk_seal(&c->tx, g->me, c->route, &p, blob, cap, msg_id);
  }
  if (n < 0) {
    rc = (int)n;
    goto out;
  }
  c->tx_count++;
  c->last_send = now;
  own_front_push(c);
  sc_sk_opened o;
  if (c->has_self && sc_sk_open(&c->self, c->route, blob, (size_t)n, work, cap + 16, &o) == 0)
    grp_accept_item(g, c, &o.inner, o.inner_bytes, o.inner_len, o.sig, o.msg_id, now);
  rc = grp_action(g, SC_GRP_GROUP_POST, c->route, blob, (size_t)n, msg_id);
  if (rc == 0) /* the node just queued: the host reports RELAYED per chat */
    memcpy(g->aq_tail->a.chat_id, c->id, 16);
out:
  if (work) {
    sodium_memzero(work, cap + 16);
    free(work);
  }
  free(blob);
  return rc;
}

int sc_group_send_text(sc_group *g, const uint8_t chat_id[16], const char *text, size_t len,
                       int shareable, uint64_t now, uint8_t msg_id[32])
{
  uint8_t tmp[32];
  if (!g || !chat_id || (!text && len))
    return SECCHAT_ERR_INVALID_ARGUMENT;
  grp_chat *c = grp_chat_find(g, chat_id);
  if (!c)
    return SECCHAT_ERR_NOT_FOUND;
  if (c->state != SC_GRP_ACTIVE || !c->synced || !c->have_tx || !c->route_open)
    return SECCHAT_ERR_INVALID_STATE;
  if (len == 0)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  if (len > SC_GRP_MAX_TEXT)
    return SECCHAT_ERR_TOO_LONG;
  int rc = utf8_check((const uint8_t *)text, len);
  if (rc)
    return rc;
  if (blocked_chat(g, c))
    return SECCHAT_ERR_IDENTITY_CHANGED;
  c->hb_dirty = 1;
  return post(g, c, SC_GRP_CT_TEXT, shareable ? SC_GRP_FLAG_SHAREABLE : 0, (const uint8_t *)text,
              len, now, msg_id ? msg_id : tmp);
}

/* Heartbeat body: [[chain_id, epoch, last_seq]...] of my newest chains. */
static void heartbeat(sc_group *g, grp_chat *c, uint64_t now)
{
  uint8_t body[512], id[32];
  sc_mp_writer w;
  own_front_push(c);
  uint32_t n = c->n_own_front < 4 ? c->n_own_front : 4;
  sc_mp_writer_init(&w, body, sizeof body);
  sc_mp_write_array(&w, n);
  for (uint32_t i = 0; i < n; i++) {
    sc_mp_write_array(&w, 3);
    sc_mp_write_bin(&w, c->own_front[i].chain_id, 16);
    sc_mp_write_uint(&w, c->own_front[i].epoch);
    sc_mp_write_uint(&w, c->own_front[i].seq);
  }
  int64_t bl = sc_mp_writer_finish(&w);
  if (bl > 0 && !blocked_chat(g, c))
    (void)post(g, c, SC_GRP_CT_FRONTIER, SC_GRP_FLAG_SHAREABLE, body, (size_t)bl, now, id);
  c->hb_dirty = 0;
  c->last_hb = now;
}

/* ---- Receiving ---------------------------------------------------------- */

grp_seen *grp_seen_find(const grp_chat *c, const uint8_t id[32])
{
  for (uint32_t i = 0; i < c->seen_count; i++) {
    grp_seen *s = &c->seen[(c->seen_head + i) % SC_GRP_SEEN_MAX];
    if (memcmp(s->msg_id, id, 32) == 0)
      return s;
  }
  return NULL;
}

static grp_seen *seen_chain_seq(const grp_chat *c, const uint8_t author[20],
                                const uint8_t chain[16], uint64_t seq)
{
  for (uint32_t i = 0; i < c->seen_count; i++) {
    grp_seen *s = &c->seen[(c->seen_head + i) % SC_GRP_SEEN_MAX];
    if (s->seq == seq && memcmp(s->chain_id, chain, 16) == 0 &&
        memcmp(s->author, author, 20) == 0)
      return s;
  }
  return NULL;
}

/* prev_msg_id continuity with the neighbours already held (either may be
 * missing: that is a gap, not an error). A mismatch means the author
 * signed two different histories of one chain: rejected. */
int grp_continuity_ok(const grp_chat *c, const sc_sk_inner *in, const uint8_t msg_id[32])
{
  if (in->seq > 0) {
    const grp_seen *p = seen_chain_seq(c, in->author_uid, in->chain_id, in->seq - 1);
    if (p && memcmp(p->msg_id, in->prev_msg_id, 32) != 0)
      return 0;
  } else if (memcmp(in->prev_msg_id, zero32, 32) != 0) {
    return 0;
  }
  const grp_seen *nx = seen_chain_seq(c, in->author_uid, in->chain_id, in->seq + 1);
  if (nx && memcmp(nx->prev, msg_id, 32) != 0)
    return 0;
  /* Same (chain, seq) with another id: equivocation. */
  return seen_chain_seq(c, in->author_uid, in->chain_id, in->seq) == NULL;
}

static grp_track *track_find(grp_chat *c, const uint8_t author[20], const uint8_t chain[16])
{
  for (uint32_t i = 0; i < c->track_count; i++) {
    grp_track *t = &c->track[(c->track_head + i) % SC_GRP_TRACK_MAX];
    if (memcmp(t->chain_id, chain, 16) == 0 && memcmp(t->author, author, 20) == 0)
      return t;
  }
  return NULL;
}

grp_track *grp_track_get(grp_chat *c, const uint8_t author[20], const uint8_t chain[16],
                         uint64_t epoch)
{
  for (uint32_t i = 0; i < c->track_count; i++) {
    grp_track *t = &c->track[(c->track_head + i) % SC_GRP_TRACK_MAX];
    if (memcmp(t->chain_id, chain, 16) == 0 && memcmp(t->author, author, 20) == 0)
      return t;
  }
  if (c->track_count == SC_GRP_TRACK_MAX) { /* evict the oldest */
    c->track_head = (c->track_head + 1) % SC_GRP_TRACK_MAX;
    c->track_count--;
  }
  grp_track *t = &c->track[(c->track_head + c->track_count++) % SC_GRP_TRACK_MAX];
  memset(t, 0, sizeof *t);
  memcpy(t->author, author, 20);
  memcpy(t->chain_id, chain, 16);
  t->epoch = epoch;
  t->fresh = 1;
  return t;
}

uint64_t grp_track_missing(const grp_track *t)
{
  uint64_t known = t->fresh ? 0 : t->max_seq + 1;
  if (t->claimed > known)
    known = t->claimed;
  return known > t->have ? known - t->have : 0;
}

/* Report newly detected missing messages of one chain (live path). */
static void gap_check(sc_group *g, grp_chat *c, grp_track *t)
{
  uint64_t miss = grp_track_missing(t);
  if (miss > t->reported) {
    sc_group_event *e = grp_event(g, SC_GRP_EV_GAP, c, NULL, 0);
    if (e) {
      memcpy(e->uid, t->author, 20);
      e->count = miss;
      e->epoch = t->epoch;
    }
  }
  t->reported = miss;
}


/* Record an accepted (verified, new) item: seen set, chain tracker,
 * history store. */
void grp_accept_item(sc_group *g, grp_chat *c, const sc_sk_inner *in, const uint8_t *inner,
                        size_t inner_len, const uint8_t sig[64], const uint8_t msg_id[32],
                        uint64_t now)
{
  (void)now;
  if (c->seen_count == SC_GRP_SEEN_MAX) {
    c->seen_head = (c->seen_head + 1) % SC_GRP_SEEN_MAX;
    c->seen_count--;
  }
  grp_seen *s = &c->seen[(c->seen_head + c->seen_count++) % SC_GRP_SEEN_MAX];
  memcpy(s->msg_id, msg_id, 32);
  memcpy(s->author, in->author_uid, 20);
  memcpy(s->chain_id, in->chain_id, 16);
  s->seq = in->seq;
  memcpy(s->prev, in->prev_msg_id, 32);

  grp_track *t = grp_track_get(c, in->author_uid, in->chain_id, in->epoch);
  if (t->fresh || in->seq > t->max_seq) {
    t->max_seq = in->seq;
    memcpy(t->max_msg_id, msg_id, 32);
  }
  t->fresh = 0;
  t->have++;
  if (in->seq == t->contig) {
    t->contig++;
    while (seen_chain_seq(c, in->author_uid, in->chain_id, t->contig))
      t->contig++;
  }
  grp_hist_store(g, c, in, inner, inner_len, sig, msg_id);
}

/* MESSAGE event (text) or heartbeat processing. */
/* Epoch of my latest create/add entry. */
uint64_t grp_my_join_epoch(const sc_group *g, const grp_chat *c)
{
  uint64_t e = 0;
  for (uint32_t k = 0; k < c->nlog; k++)
    if ((c->log[k].op == SC_GRP_OP_ADD || c->log[k].op == SC_GRP_OP_CREATE) &&
        grp_is_me(g, c->log[k].subject))
      e = k;
  return e;
}

void grp_deliver_content(sc_group *g, grp_chat *c, const sc_sk_inner *in,
                            const uint8_t msg_id[32], int from_history, grp_pend *pend)
{
  if (in->content_type == SC_GRP_CT_FRONTIER) {
    sc_mp_reader r;
    uint32_t n, k;
    if (sc_mp_validate(in->body, in->body_len, 2))
      return;
    sc_mp_reader_init(&r, in->body, in->body_len);
    if (sc_mp_read_array(&r, &n) || n > 8)
      return;
    uint64_t joined = grp_my_join_epoch(g, c);
    for (uint32_t i = 0; i < n; i++) {
      const uint8_t *chain;
      uint64_t seq, epoch;
      if (sc_mp_read_array(&r, &k) || k != 3 || sc_mp_read_bin_exact(&r, &chain, 16) ||
          sc_mp_read_uint(&r, &epoch) || sc_mp_read_uint(&r, &seq))
        return;
      /* Chains from before I (re)joined were never meant for me. For a
       * chain I already track, its epoch comes from its signed messages:
       * an author restored from its state claims its older chains with
       * epoch 0 (the state does not keep their epochs), which must not hide
       * what I miss of them. */
      grp_track *t = track_find(c, in->author_uid, chain);
      uint64_t chain_epoch = t != NULL ? t->epoch : epoch;
      if (chain_epoch < joined || epoch > in->epoch)
        continue;
      if (t == NULL)
        t = grp_track_get(c, in->author_uid, chain, epoch);
      if (seq + 1 > t->claimed)
        t->claimed = seq + 1;
      if (!from_history)
        gap_check(g, c, t);
    }
    return;
  }
  if (in->content_type != SC_GRP_CT_TEXT)
    return;
  sc_group_event ev;
  memset(&ev, 0, sizeof ev);
  ev.type = SC_GRP_EV_MESSAGE;
  memcpy(ev.chat_id, c->id, 16);
  memcpy(ev.uid, in->author_uid, 20);
  memcpy(ev.msg_id, msg_id, 32);
  ev.ts_ms = in->ts_ms;
  ev.epoch = in->epoch;
  ev.verified = 1;
  ev.from_history = from_history;
  ev.shareable = (in->flags & SC_GRP_FLAG_SHAREABLE) != 0;
  if (pend) { /* history: emitted later, in order */
    ev.data = malloc(in->body_len ? in->body_len : 1);
    if (!ev.data)
      return;
    memcpy(ev.data, in->body, in->body_len);
    ev.len = in->body_len;
    pend->ev = ev;
    pend->seq = in->seq;
    memcpy(pend->chain_id, in->chain_id, 16);
    return;
  }
  sc_group_event *e = grp_event(g, SC_GRP_EV_MESSAGE, c, in->body, in->body_len);
  if (e) {
    uint8_t *d = e->data;
    size_t l = e->len;
    *e = ev;
    e->data = d;
    e->len = l;
  }
}

static void stash_blob(grp_chat *c, const uint8_t route[32], const uint8_t *blob, size_t len)
{
  uint8_t *copy = malloc(len);
  if (!copy)
    return;
  memcpy(copy, blob, len);
  /* The relay chooses what lands here (nothing is authenticated yet), so
   * both the count and the bytes are capped; the oldest go first. */
  size_t bytes = len;
  for (uint32_t i = 0; i < c->npblob; i++)
    bytes += c->pblob[i].len;
  while (c->npblob > 0 && (c->npblob == SC_GRP_PENDING_BLOBS || bytes > SC_GRP_PENDING_BYTES)) {
    bytes -= c->pblob[0].len;
    free(c->pblob[0].blob);
    memmove(&c->pblob[0], &c->pblob[1], (c->npblob - 1) * sizeof c->pblob[0]);
    c->npblob--;
  }
  grp_pblob *p = &c->pblob[c->npblob++];
  memcpy(p->route, route, 32);
  p->blob = copy;
  p->len = len;
}

static void send_keyreq(sc_group *g, grp_chat *c, grp_member *m, uint64_t epoch,
                        const uint8_t chain[16], uint64_t now)
{
  uint8_t buf[SC_SK_MAX_DIST];
  if (m->keyreq_ms && now < m->keyreq_ms + SC_GRP_KEYREQ_INTERVAL_MS)
    return;
  int64_t n = sc_sk_keyreq_build(g->me, c->id, epoch, m->uid, chain, buf, sizeof buf);
  if (n > 0 && wrap_send(g, m->uid, GRP_T_KEYREQ, buf, (size_t)n) == 0)
    m->keyreq_ms = now;
}

static grp_chat *chat_by_route(const sc_group *g, const uint8_t route[32])
{
  for (size_t i = 0; i < g->nchats; i++) {
    grp_chat *c = g->chats[i];
    if ((c->route_open && memcmp(c->route, route, 32) == 0) ||
        (c->old_route_open && memcmp(c->old_route, route, 32) == 0))
      return c;
  }
  return NULL;
}

/* The sender is the envelope header's sender_uid: the relay attests none
 * (DELIVER carries no sender, docs/protocol.md 2.2). It is only a claim
 * until sc_sk_open: the chain looked up under it must open the blob, and
 * the signature (sender key of that member) binds header and inner author,
 * so a blob re-labelled with another member's uid fails there. */
static int deliver(sc_group *g, grp_chat *c, const uint8_t route_id[32], const uint8_t *blob,
                   size_t len, uint64_t now, int retry)
{
  sc_sk_header h;
  int rc = sc_sk_parse_blob(blob, len, &h);
  if (rc) {
    g->st.decrypt_fail++;
    grp_warn(g, c, rc, NULL);
    return rc;
  }
  const uint8_t *from_uid = h.sender_uid;
  if (grp_is_me(g, from_uid))
    return 0; /* my own post echoed */
  grp_member *m = grp_member_find(c, from_uid);
  if (!m || !m->has_peer) {
    if (m && m->current) {
      if (!retry)
        stash_blob(c, route_id, blob, len);
      send_keyreq(g, c, m, h.epoch, h.chain_id, now);
      return SECCHAT_ERR_NOT_FOUND;
    }
    g->st.verify_fail++;
    grp_warn(g, c, SECCHAT_ERR_AUTH, from_uid);
    return SECCHAT_ERR_AUTH;
  }
  size_t cap = len + 16;
  uint8_t *work = malloc(cap);
  if (!work)
    return SECCHAT_ERR_NOMEM;
  sc_sk_opened o;
  rc = sc_sk_open(&m->peer, route_id, blob, len, work, cap, &o);
  if (rc == SECCHAT_ERR_NOT_FOUND) {
    if (!retry)
      stash_blob(c, route_id, blob, len);
    if (m->current && !m->leaving)
      send_keyreq(g, c, m, h.epoch, h.chain_id, now);
  } else if (rc == SECCHAT_ERR_REPLAY) {
    g->st.duplicates++;
  } else if (rc) {
    if (rc == SECCHAT_ERR_SIGNATURE || rc == SECCHAT_ERR_AUTH)
      g->st.verify_fail++;
    else
      g->st.decrypt_fail++;
    grp_warn(g, c, rc, from_uid);
  } else {
    int err;
    /* Every stored inner must fit one history page (group.h): an author
     * who seals a larger one directly must not be able to stall everyone's
     * history catch-up. */
    if (o.inner_len > SC_GRP_MAX_INNER || !grp_author_ok(g, c, &o.inner, o.msg_id, &err) ||
        !grp_continuity_ok(c, &o.inner, o.msg_id)) {
      g->st.verify_fail++;
      grp_warn(g, c, SECCHAT_ERR_AUTH, from_uid);
      rc = SECCHAT_ERR_AUTH;
    } else if (grp_seen_find(c, o.msg_id)) {
      g->st.duplicates++;
      rc = SECCHAT_ERR_REPLAY;
    } else {
      grp_accept_item(g, c, &o.inner, o.inner_bytes, o.inner_len, o.sig, o.msg_id, now);
      grp_track *t = grp_track_get(c, o.inner.author_uid, o.inner.chain_id, o.inner.epoch);
      gap_check(g, c, t);
      grp_deliver_content(g, c, &o.inner, o.msg_id, 0, NULL);
    }
  }
  sodium_memzero(work, cap);
  free(work);
  return rc;
}

int sc_group_on_deliver(sc_group *g, const uint8_t route_id[32], const uint8_t *blob, size_t len,
                        uint64_t now)
{
  if (!g || !route_id || (!blob && len))
    return SECCHAT_ERR_INVALID_ARGUMENT;
  grp_chat *c = chat_by_route(g, route_id);
  if (!c || c->state != SC_GRP_ACTIVE) {
    g->st.unsolicited++;
    return SECCHAT_ERR_NOT_FOUND;
  }
  return deliver(g, c, route_id, blob, len, now, 0);
}

/* Retry stashed blobs after a new chain arrived. */
static void retry_pending(sc_group *g, grp_chat *c, uint64_t now)
{
  uint32_t n = c->npblob;
  grp_pblob tmp[SC_GRP_PENDING_BLOBS];
  memcpy(tmp, c->pblob, n * sizeof tmp[0]);
  c->npblob = 0;
  for (uint32_t i = 0; i < n; i++) {
    int rc = SECCHAT_ERR_NOT_FOUND;
    if (c->state == SC_GRP_ACTIVE)
      rc = deliver(g, c, tmp[i].route, tmp[i].blob, tmp[i].len, now, 1);
    if (rc == SECCHAT_ERR_NOT_FOUND && c->npblob < SC_GRP_PENDING_BLOBS)
      c->pblob[c->npblob++] = tmp[i];
    else
      free(tmp[i].blob);
  }
}

void sc_group_on_presence(sc_group *g, const uint8_t route_id[32], const uint8_t uid[20],
                          int online, uint64_t now)
{
  if (!g || !route_id || !uid)
    return;
  grp_chat *c = chat_by_route(g, route_id);
  if (!c)
    return;
  grp_member *m = grp_member_find(c, uid);
  if (!m)
    return;
  int was = m->online;
  m->online = online != 0;
  /* The admin comes online: relay the signed LEAVEs it may have missed
   * while away (it commits them; a stale one is ignored). Rate limited
   * per leaver, so a relay toggling presence cannot make us spam. */
  if (online && !was && c->state == SC_GRP_ACTIVE && memcmp(uid, c->admin, 20) == 0 &&
      !grp_is_me(g, uid))
    for (uint32_t k = 0; k < c->nmem; k++) {
      grp_member *l = &c->mem[k];
      if (!l->leaving || !l->leave_msg ||
          (l->leave_fwd_ms && now < l->leave_fwd_ms + SC_GRP_KEYREQ_INTERVAL_MS / 2))
        continue;
      l->leave_fwd_ms = now;
      grp_pw(g, uid, l->leave_msg, l->leave_len);
    }
  /* Waiting for a log confirmation: ask whoever comes online. */
  if (online && !was && c->state == SC_GRP_ACTIVE && !c->synced && m->current &&
      !grp_is_me(g, uid))
    send_log_req(g, c, uid);
  /* Resend my chain to a member who comes online (it may have missed it;
   * a chain it already holds is ignored by its receiver). */
  if (online && !was && c->state == SC_GRP_ACTIVE && c->synced && grp_active_member(m) &&
      (!m->resend_ms || now >= m->resend_ms + SC_GRP_KEYREQ_INTERVAL_MS / 2)) {
    m->resend_ms = now; /* a relay toggling presence cannot make us spam */
    send_dist(g, c, m);
  }
}

/* ---- Pairwise handlers -------------------------------------------------- */

/* Entries array at r, applied from index `from`; an entry we already hold
 * must hash the same (else fork). Returns 0 or the first error. */
static int take_entries(sc_group *g, grp_chat *c, sc_mp_reader *r, uint64_t from,
                        const uint8_t peer[20])
{
  uint32_t n;
  int rc = sc_mp_read_array(r, &n);
  if (rc)
    return rc;
  if (from > c->nlog) {
    for (uint32_t i = 0; i < n; i++)
      if ((rc = sc_mp_skip(r)))
        return rc;
    return SECCHAT_ERR_NOT_FOUND; /* gap: the caller asks for the rest */
  }
  for (uint32_t i = 0; i < n; i++) {
    const uint8_t *raw;
    size_t len;
    if ((rc = sc_mp_read_bin(r, &raw, &len, 1, GRP_ENTRY_MAX)))
      return rc;
    uint64_t idx = from + i;
    if (idx < c->nlog) {
      uint8_t h[32];
      grp_entry_hash(h, raw, len);
      if (memcmp(h, c->log[idx].hash, 32) != 0) {
        grp_fork_suspected(g, c, peer, idx);
        return SECCHAT_ERR_AUTH;
      }
      continue;
    }
    if ((rc = grp_log_append(c, raw, len))) {
      /* A valid-looking entry that conflicts with our head: admin
       * equivocation or a forged branch. */
      if (rc == SECCHAT_ERR_AUTH)
        grp_fork_suspected(g, c, peer, idx);
      return rc;
    }
  }
  return 0;
}

static int on_invite(sc_group *g, const uint8_t from[20], sc_mp_reader *r, uint64_t now)
{
  const uint8_t *cid, *iid;
  uint64_t total;
  int rc;
  (void)now;
  if ((rc = sc_mp_read_bin_exact(r, &cid, 16)) || (rc = sc_mp_read_bin_exact(r, &iid, 16)))
    return rc;
  grp_chat *c = grp_chat_find(g, cid);
  int created = 0;
  if (c) {
    if (c->state == SC_GRP_ACTIVE || c->state == SC_GRP_JOINING)
      return SECCHAT_ERR_EXISTS;
    if (memcmp(c->admin, from, 20) != 0)
      return SECCHAT_ERR_AUTH;
  } else {
    /* Anyone may invite me: unanswered invitations are capped so that a
     * flood cannot fill the chat table. */
    size_t pending = 0;
    for (size_t i = 0; i < g->nchats; i++)
      pending += g->chats[i]->state == SC_GRP_INVITED;
    if (pending >= SC_GRP_MAX_PENDING_INVITES)
      return SECCHAT_ERR_TOO_MANY;
    if (!(c = grp_chat_new(g, cid)))
      return SECCHAT_ERR_TOO_MANY;
    created = 1;
  }
  rc = take_entries(g, c, r, 0, from);
  if (!rc && (rc = sc_mp_read_uint(r, &total)) == 0 && !sc_mp_at_end(r))
    rc = SECCHAT_ERR_TRAILING_BYTES;
  /* The invitation must come from the chat's admin, and I must not be in. */
  grp_member *me = grp_member_find(c, g->my_uid);
  if (!rc && (c->nlog == 0 || memcmp(c->admin, from, 20) != 0))
    rc = SECCHAT_ERR_AUTH;
  if (!rc && me && me->current)
    rc = SECCHAT_ERR_EXISTS;
  if (rc) {
    if (created) {
      g->nchats--;
      grp_chat_free(c);
    }
    return rc;
  }
  c->state = SC_GRP_INVITED;
  memcpy(c->invite_id, iid, 16);
  c->invite_complete = total <= c->nlog;
  if (c->invite_complete) {
    sc_group_event *e = grp_event(g, SC_GRP_EV_INVITED, c, NULL, 0);
    if (e) {
      memcpy(e->uid, from, 20);
      e->epoch = grp_epoch(c);
    }
  } else {
    send_log_req(g, c, from);
  }
  return 0;
}

static int on_answer(sc_group *g, const uint8_t from[20], sc_mp_reader *r, uint64_t now)
{
  const uint8_t *body, *sig, *cid, *iid, *uid;
  size_t bl;
  uint32_t n;
  uint64_t ver;
  bool yes;
  int rc;
  if ((rc = sc_mp_read_bin(r, &body, &bl, 1, 256)) || (rc = sc_mp_read_bin_exact(r, &sig, 64)))
    return rc;
  if ((rc = sc_mp_validate(body, bl, 1)))
    return rc;
  sc_mp_reader b;
  sc_mp_reader_init(&b, body, bl);
  if ((rc = sc_mp_read_array(&b, &n)) || n != 5)
    return rc ? rc : SECCHAT_ERR_SCHEMA;
  if ((rc = sc_mp_read_uint(&b, &ver)) || (rc = sc_mp_read_bin_exact(&b, &cid, 16)) ||
      (rc = sc_mp_read_bin_exact(&b, &iid, 16)) || (rc = sc_mp_read_bin_exact(&b, &uid, 20)) ||
      (rc = sc_mp_read_bool(&b, &yes)))
    return rc;
  if (ver != 1)
    return SECCHAT_ERR_VERSION;
  grp_chat *c = grp_chat_find(g, cid);
  if (!c || !am_admin(g, c) || c->state != SC_GRP_ACTIVE)
    return SECCHAT_ERR_NOT_FOUND;
  if (memcmp(uid, from, 20) != 0)
    return SECCHAT_ERR_AUTH;
  uint32_t k;
  for (k = 0; k < c->ninv; k++)
    if (memcmp(c->inv[k].uid, from, 20) == 0 && sodium_memcmp(c->inv[k].invite_id, iid, 16) == 0)
      break;
  if (k == c->ninv)
    return SECCHAT_ERR_NOT_FOUND; /* unsolicited */
  grp_invite inv = c->inv[k];
  if (sc_verify_ctx(sig, SC_CTX_ACCEPT, body, bl, inv.sign_pk))
    return SECCHAT_ERR_SIGNATURE;
  c->inv[k] = c->inv[--c->ninv];
  if (!yes) {
    emit_uid(g, c, SC_GRP_EV_DECLINED, from, 0);
    return 0;
  }
  return commit(g, c, SC_GRP_OP_ADD, inv.uid, inv.sign_pk, inv.dh_pk, inv.dh_sig, NULL, 0, now);
}

static int on_log(sc_group *g, const uint8_t from[20], sc_mp_reader *r, uint64_t now)
{
  const uint8_t *cid, *secret = NULL;
  uint64_t fromi, total, repoch;
  int rc;
  if ((rc = sc_mp_read_bin_exact(r, &cid, 16)) || (rc = sc_mp_read_uint(r, &fromi)))
    return rc;
  grp_chat *c = grp_chat_find(g, cid);
  if (!c || c->nlog == 0)
    return SECCHAT_ERR_NOT_FOUND;
  /* Entries are admin-signed, so any member may relay them; the route
   * secret is trusted from the admin, or from a current member when we
   * have none for that epoch. */
  const grp_member *sender = grp_member_find(c, from);
  int from_admin = memcmp(from, c->admin, 20) == 0;
  if (!from_admin && !(sender && sender->current))
    return SECCHAT_ERR_AUTH;
  if (c->state == SC_GRP_INVITED && !from_admin)
    return SECCHAT_ERR_AUTH;
  uint32_t first = c->nlog;
  rc = take_entries(g, c, r, fromi, from);
  if (rc == SECCHAT_ERR_NOT_FOUND) {
    send_log_req(g, c, from);
    return 0;
  }
  if (!rc && !(rc = sc_mp_read_uint(r, &total)) && !(rc = sc_mp_read_uint(r, &repoch))) {
    if (sc_mp_read_nil(r) != 0)
      rc = sc_mp_read_bin_exact(r, &secret, 32);
    if (!rc && !sc_mp_at_end(r))
      rc = SECCHAT_ERR_TRAILING_BYTES;
  }
  if (rc) {
    if (c->nlog > first)
      grp_after_append(g, c, first, now);
    return rc;
  }
  if (c->state == SC_GRP_INVITED) {
    if (!c->invite_complete && total <= c->nlog) {
      c->invite_complete = 1;
      sc_group_event *e = grp_event(g, SC_GRP_EV_INVITED, c, NULL, 0);
      if (e)
        memcpy(e->uid, from, 20);
    } else if (total > c->nlog) {
      send_log_req(g, c, from);
    }
    return 0;
  }
  if (total > c->nlog)
    send_log_req(g, c, from);
  grp_member *me = grp_member_find(c, g->my_uid);
  int new_secret = 0;
  if (secret && me && me->current && repoch == grp_epoch(c) &&
      (from_admin || !c->have_route || c->route_epoch < repoch ||
       sodium_memcmp(secret, c->route_secret, 32) == 0)) {
    new_secret = !c->have_route || c->route_epoch != repoch;
    if (c->state == SC_GRP_ACTIVE || c->state == SC_GRP_JOINING)
      grp_set_route(g, c, repoch, secret);
  }
  /* Re-synchronisation vote: the admin, or two distinct members, whose
   * log is not older than ours. */
  int was_synced = c->synced;
  if (!c->synced && total == c->nlog) {
    if (from_admin)
      c->synced = 1;
    else if (c->nvotes == 0 || memcmp(c->voters[0], from, 20) != 0) {
      memcpy(c->voters[c->nvotes < 2 ? c->nvotes : 1], from, 20);
      if (++c->nvotes >= 2)
        c->synced = 1;
    }
  }
  if (c->nlog > first) {
    grp_after_append(g, c, first, now);
  } else if (c->state == SC_GRP_JOINING && me && me->current) {
    grp_after_append(g, c, c->nlog, now);
  }
  if (c->state == SC_GRP_ACTIVE && c->synced && (!was_synced || (new_secret && !c->have_tx)))
    grp_rotate(g, c, now);
  /* Early key distributions waiting for this epoch. */
  if (c->npdist) {
    uint32_t n = c->npdist;
    grp_pdist tmp[SC_GRP_PENDING_DISTS];
    memcpy(tmp, c->pdist, n * sizeof tmp[0]);
    c->npdist = 0;
    for (uint32_t i = 0; i < n; i++) {
      (void)sc_group_on_pairwise(g, tmp[i].from, tmp[i].p, tmp[i].len, now);
      sodium_memzero(tmp[i].p, tmp[i].len);
      free(tmp[i].p);
    }
  }
  return 0;
}

/* A former member learns the log only up to its own removal, without a
 * route secret. */
static void send_log_former(sc_group *g, grp_chat *c, const uint8_t uid[20], uint64_t have)
{
  uint32_t upto = 0;
  for (uint32_t k = 0; k < c->nlog; k++)
    if (memcmp(c->log[k].subject, uid, 20) == 0)
      upto = k + 1;
  grp_send_log_upto(g, c, uid, have > upto ? upto : (uint32_t)have, upto, 0);
}

static int on_log_req(sc_group *g, const uint8_t from[20], sc_mp_reader *r, uint64_t now)
{
  const uint8_t *cid;
  uint64_t have;
  int rc;
  if ((rc = sc_mp_read_bin_exact(r, &cid, 16)) || (rc = sc_mp_read_uint(r, &have)))
    return rc;
  grp_chat *c = grp_chat_find(g, cid);
  if (!c || c->nlog == 0 || (c->state != SC_GRP_ACTIVE))
    return SECCHAT_ERR_NOT_FOUND;
  grp_member *m = grp_member_find(c, from);
  int invited = 0;
  for (uint32_t i = 0; i < c->ninv; i++)
    invited |= memcmp(c->inv[i].uid, from, 20) == 0;
  if (!m && !invited)
    return SECCHAT_ERR_AUTH;
  /* Each answer is up to a full pairwise payload: rate limited. */
  grp_bucket *b = m ? &m->logreq_bucket : &c->inv_logreq_bucket;
  if (!grp_bucket_take(b, now, SC_GRP_LOGREQ_BURST, SC_GRP_LOGREQ_REFILL_MS)) {
    g->st.rate_limited++;
    return SECCHAT_ERR_RATE_LIMITED;
  }
  if (m && !m->current && !invited) {
    send_log_former(g, c, from, have);
    return 0;
  }
  grp_send_log(g, c, from, have > c->nlog ? c->nlog : (uint32_t)have, grp_active_member(m));
  return 0;
}

/* Epoch of uid's latest create/add entry (its current membership). */
static uint64_t join_epoch(const grp_chat *c, const uint8_t uid[20])
{
  uint64_t e = 0;
  for (uint32_t k = 0; k < c->nlog; k++)
    if ((c->log[k].op == SC_GRP_OP_ADD || c->log[k].op == SC_GRP_OP_CREATE) &&
        memcmp(c->log[k].subject, uid, 20) == 0)
      e = k;
  return e;
}

/* LEAVE, from the leaver itself or relayed by a current member (it is
 * signed by the leaver, so its origin does not matter). `whole` is the
 * payload, kept to relay it to the admin. */
static int on_leave(sc_group *g, const uint8_t from[20], sc_mp_reader *r, const uint8_t *whole,
                    size_t whole_len, uint64_t now)
{
  const uint8_t *body, *sig, *cid, *uid;
  size_t bl;
  uint32_t n;
  uint64_t ver, epoch;
  grp_front f[SC_GRP_MAX_FRONT];
  uint32_t nf;
  int rc;
  if ((rc = sc_mp_read_bin(r, &body, &bl, 1, GRP_ENTRY_MAX)) ||
      (rc = sc_mp_read_bin_exact(r, &sig, 64)))
    return rc;
  if (!sc_mp_at_end(r) || whole_len > GRP_LEAVE_MAX)
    return SECCHAT_ERR_TRAILING_BYTES; /* kept for relaying: bounded */
  if ((rc = sc_mp_validate(body, bl, 3)))
    return rc;
  sc_mp_reader b;
  sc_mp_reader_init(&b, body, bl);
  if ((rc = sc_mp_read_array(&b, &n)) || n != 5)
    return rc ? rc : SECCHAT_ERR_SCHEMA;
  if ((rc = sc_mp_read_uint(&b, &ver)) || (rc = sc_mp_read_bin_exact(&b, &cid, 16)) ||
      (rc = sc_mp_read_bin_exact(&b, &uid, 20)) || (rc = sc_mp_read_uint(&b, &epoch)) ||
      (rc = grp_read_front(&b, f, &nf)))
    return rc;
  if (!sc_mp_at_end(&b))
    return SECCHAT_ERR_TRAILING_BYTES;
  if (ver != 1)
    return SECCHAT_ERR_VERSION;
  grp_chat *c = grp_chat_find(g, cid);
  if (!c || c->state != SC_GRP_ACTIVE)
    return SECCHAT_ERR_NOT_FOUND;
  grp_member *m = grp_member_find(c, uid);
  int relayed = memcmp(uid, from, 20) != 0;
  if (!m || grp_is_me(g, uid) || memcmp(uid, c->admin, 20) == 0)
    return SECCHAT_ERR_AUTH;
  if (relayed) {
    const grp_member *fm = grp_member_find(c, from);
    if (!fm || !fm->current)
      return SECCHAT_ERR_AUTH;
  }
  if (sc_verify_ctx(sig, SC_CTX_LEAVE, body, bl, m->sign_pk))
    return SECCHAT_ERR_SIGNATURE;
  if (!m->current) {
    /* Already out (a re-sent LEAVE whose commit the leaver missed): the
     * admin tells it, which ends its re-sending. */
    if (am_admin(g, c) && !relayed) {
      if (!grp_bucket_take(&m->logreq_bucket, now, SC_GRP_LOGREQ_BURST, SC_GRP_LOGREQ_REFILL_MS)) {
        g->st.rate_limited++;
        return SECCHAT_ERR_RATE_LIMITED;
      }
      send_log_former(g, c, uid, epoch + 1);
    }
    return 0;
  }
  /* A leave of an earlier membership (before a re-add) must not end the
   * current one: a member could replay it. */
  if (epoch < join_epoch(c, uid))
    return SECCHAT_ERR_REPLAY;
  /* The admin commits it; should that fail (log full, no memory) it still
   * honours the leave like a member: no key of its reaches the leaver. */
  if (am_admin(g, c) && (rc = commit(g, c, SC_GRP_OP_LEAVE, uid, NULL, NULL, NULL, f, nf, now)) == 0)
    return 0;
  if (m->leaving)
    return rc;
  /* Honoured at once: no more keys for it, a new chain it cannot read. */
  m->leaving = 1;
  memcpy(m->front, f, nf * sizeof f[0]);
  m->nfront = nf;
  m->left_reported = 1;
  /* Kept to relay to the admin when it comes online: it may have missed
   * the leave (sc_group_on_presence). */
  grp_member_drop_leave(m);
  if ((m->leave_msg = malloc(whole_len)) != NULL) {
    memcpy(m->leave_msg, whole, whole_len);
    m->leave_len = whole_len;
  }
  emit_uid(g, c, SC_GRP_EV_MEMBER_LEFT, uid, 0);
  if (c->synced)
    grp_rotate(g, c, now);
  return rc; /* 0, or the admin's failed commit */
}

static int stash_dist(grp_chat *c, const uint8_t from[20], const uint8_t *p, size_t len)
{
  if (c->npdist >= SC_GRP_PENDING_DISTS)
    return SECCHAT_ERR_TOO_MANY;
  uint8_t *copy = malloc(len);
  if (!copy)
    return SECCHAT_ERR_NOMEM;
  memcpy(copy, p, len);
  grp_pdist *d = &c->pdist[c->npdist++];
  memcpy(d->from, from, 20);
  d->p = copy;
  d->len = len;
  return 0;
}

static int on_skdist(sc_group *g, const uint8_t from[20], sc_mp_reader *r, const uint8_t *whole,
                     size_t whole_len, uint64_t now)
{
  const uint8_t *d;
  size_t dl;
  int rc;
  if ((rc = sc_mp_read_bin(r, &d, &dl, 1, SC_SK_MAX_DIST)))
    return rc;
  /* The chat id sits at a fixed place inside the body; find the chat by
   * trying the ones where the sender is known (few chats per peer). */
  sc_sk_dist dist;
  for (size_t i = 0; i < g->nchats; i++) {
    grp_chat *c = g->chats[i];
    grp_member *m = grp_member_find(c, from);
    if (!m || (c->state != SC_GRP_ACTIVE && c->state != SC_GRP_JOINING))
      continue;
    if (sc_sk_dist_parse(d, dl, m->sign_pk, g->my_uid, &dist) != 0)
      continue;
    if (memcmp(dist.chat_id, c->id, 16) != 0) {
      sc_sk_dist_wipe(&dist);
      continue;
    }
    grp_member *me = grp_member_find(c, g->my_uid);
    if (dist.epoch > grp_epoch(c) || c->state != SC_GRP_ACTIVE) {
      /* From an epoch we do not know yet: keep it, fetch the log. */
      sc_sk_dist_wipe(&dist);
      rc = stash_dist(c, from, whole, whole_len);
      send_log_req(g, c, c->admin);
      return rc;
    }
    const grp_entry *closing;
    if (!me || !me->current || !grp_active_member(m) || !grp_member_at(c, from, dist.epoch, &closing) ||
        closing) {
      sc_sk_dist_wipe(&dist);
      return SECCHAT_ERR_AUTH;
    }
    if (memcmp(c->log[dist.epoch].hash, dist.log_head, 32) != 0) {
      grp_fork_suspected(g, c, from, dist.epoch);
      sc_sk_dist_wipe(&dist);
      return SECCHAT_ERR_AUTH;
    }
    if (!m->has_peer) {
      if ((rc = sc_sk_peer_init(&m->peer, c->id, m->sign_pk))) {
        sc_sk_dist_wipe(&dist);
        return rc;
      }
      m->has_peer = 1;
    }
    rc = sc_sk_peer_add_dist(&m->peer, &dist, now);
    sc_sk_dist_wipe(&dist);
    if (rc == SECCHAT_ERR_EXISTS)
      return 0;
    if (rc == 0) {
      m->keyreq_backoff_ms = 0;
      retry_pending(g, c, now);
    }
    return rc;
  }
  return SECCHAT_ERR_AUTH;
}

static int on_keyreq(sc_group *g, const uint8_t from[20], sc_mp_reader *r, uint64_t now)
{
  const uint8_t *d;
  size_t dl;
  int rc;
  if ((rc = sc_mp_read_bin(r, &d, &dl, 1, SC_SK_MAX_DIST)))
    return rc;
  sc_sk_keyreq kr;
  for (size_t i = 0; i < g->nchats; i++) {
    grp_chat *c = g->chats[i];
    grp_member *m = grp_member_find(c, from);
    if (!m || sc_sk_keyreq_parse(d, dl, m->sign_pk, g->my_uid, &kr) != 0 ||
        memcmp(kr.chat_id, c->id, 16) != 0)
      continue;
    if (c->state != SC_GRP_ACTIVE || !c->synced || !grp_active_member(m))
      return SECCHAT_ERR_AUTH;
    if (m->resend_ms && now < m->resend_ms + SC_GRP_KEYREQ_INTERVAL_MS / 2) {
      g->st.rate_limited++;
      return SECCHAT_ERR_RATE_LIMITED;
    }
    m->resend_ms = now;
    send_dist(g, c, m);
    return 0;
  }
  return SECCHAT_ERR_AUTH;
}

int sc_group_on_pairwise(sc_group *g, const uint8_t from_uid[20], const uint8_t *p, size_t len,
                         uint64_t now)
{
  sc_mp_reader r;
  uint32_t n;
  uint64_t type;
  int rc;
  if (!g || !from_uid || (!p && len))
    return SECCHAT_ERR_INVALID_ARGUMENT;
  if (len > SC_GRP_MAX_PW)
    rc = SECCHAT_ERR_TOO_LONG;
  else if (!(rc = sc_mp_validate(p, len, 5))) {
    sc_mp_reader_init(&r, p, len);
    if (!(rc = sc_mp_read_array(&r, &n)) && !(rc = sc_mp_read_uint(&r, &type))) {
      switch (type) {
      case GRP_T_INVITE:
        rc = n == 5 ? on_invite(g, from_uid, &r, now) : SECCHAT_ERR_SCHEMA;
        break;
      case GRP_T_ANSWER:
        rc = n == 3 ? on_answer(g, from_uid, &r, now) : SECCHAT_ERR_SCHEMA;
        break;
      case GRP_T_LOG:
        rc = n == 7 ? on_log(g, from_uid, &r, now) : SECCHAT_ERR_SCHEMA;
        break;
      case GRP_T_LOG_REQ:
        rc = n == 3 ? on_log_req(g, from_uid, &r, now) : SECCHAT_ERR_SCHEMA;
        break;
      case GRP_T_LEAVE:
        rc = n == 3 ? on_leave(g, from_uid, &r, p, len, now) : SECCHAT_ERR_SCHEMA;
        break;
      case GRP_T_SKDIST:
        rc = n == 2 ? on_skdist(g, from_uid, &r, p, len, now) : SECCHAT_ERR_SCHEMA;
        break;
      case GRP_T_KEYREQ:
        rc = n == 2 ? on_keyreq(g, from_uid, &r, now) : SECCHAT_ERR_SCHEMA;
        break;
      case GRP_T_HIST_REQ:
        rc = n == 5 ? grp_on_hist_req(g, from_uid, &r, now) : SECCHAT_ERR_SCHEMA;
        break;
      case GRP_T_HIST_RESP:
        rc = n == 5 ? grp_on_hist_resp(g, from_uid, &r, now) : SECCHAT_ERR_SCHEMA;
        break;
      default:
        rc = SECCHAT_ERR_UNKNOWN_FRAME;
      }
    }
  }
  if (rc)
    g->st.rejected_pairwise++;
  return rc;
}

/* ---- Timers ------------------------------------------------------------- */

/* Kept blobs whose chain is still unknown: both the chain's SKDIST and the
 * answer to the first KEY_REQ may have been lost, so ask the (still
 * active) owner again, with a doubling interval (base
 * SC_GRP_KEYREQ_INTERVAL_MS, at most SC_GRP_RETRY_MAX_MS). A chain that
 * arrives resets the back-off (on_skdist). */
static void keyreq_retry(sc_group *g, grp_chat *c, uint64_t now)
{
  for (uint32_t i = 0; i < c->npblob; i++) {
    sc_sk_header h;
    if (sc_sk_parse_blob(c->pblob[i].blob, c->pblob[i].len, &h) != 0)
      continue;
    grp_member *m = grp_member_find(c, h.sender_uid);
    if (!grp_active_member(m) || grp_is_me(g, m->uid))
      continue;
    uint64_t wait = m->keyreq_backoff_ms ? m->keyreq_backoff_ms : SC_GRP_KEYREQ_INTERVAL_MS;
    if (m->keyreq_ms && now < m->keyreq_ms + wait)
      continue;
    send_keyreq(g, c, m, h.epoch, h.chain_id, now);
    if (m->keyreq_ms == now)
      m->keyreq_backoff_ms = wait * 2 > SC_GRP_RETRY_MAX_MS ? SC_GRP_RETRY_MAX_MS : wait * 2;
  }
}

/* Re-synchronising (after a reconnect or an import) and the answers were
 * lost: ask the online members again, with back-off. Nobody online: the
 * next PRESENCE asks (sc_group_on_presence). */
static void logreq_retry(sc_group *g, grp_chat *c, uint64_t now)
{
  if (now < c->logreq_next_ms)
    return;
  int asked = 0;
  for (uint32_t k = 0; k < c->nmem; k++)
    if (c->mem[k].current && c->mem[k].online && !grp_is_me(g, c->mem[k].uid)) {
      send_log_req(g, c, c->mem[k].uid);
      asked = 1;
    }
  if (!asked)
    return;
  uint64_t b = c->logreq_backoff_ms ? c->logreq_backoff_ms * 2 : SC_GRP_RETRY_MS;
  c->logreq_backoff_ms = b > SC_GRP_RETRY_MAX_MS ? SC_GRP_RETRY_MAX_MS : b;
  c->logreq_next_ms = now + c->logreq_backoff_ms;
}

void sc_group_tick(sc_group *g, uint64_t now)
{
  if (!g)
    return;
  for (size_t i = 0; i < g->nchats; i++) {
    grp_chat *c = g->chats[i];
    if (leave_pending(g, c) && now >= c->leave_next_ms)
      leave_resend(g, c, now);
    if (c->state != SC_GRP_ACTIVE)
      continue;
    if (c->npblob)
      keyreq_retry(g, c, now);
    if (!c->synced && !am_admin(g, c))
      logreq_retry(g, c, now);
    if (!c->synced || !c->have_tx)
      continue;
    if (c->hb_dirty && now >= c->last_hb + SC_GRP_HEARTBEAT_MS)
      heartbeat(g, c, now);
    else if (now >= c->tx_rotate_at)
      grp_rotate(g, c, now);
    for (uint32_t k = 0; k < c->nmem; k++)
      if (c->mem[k].has_peer)
        sc_sk_peer_expire(&c->mem[k].peer, now, SC_GRP_CHAIN_GRACE_MS);
  }
  for (unsigned i = 0; i < SC_GRP_MAX_REQS; i++)
    if (g->reqs[i].live && now >= g->reqs[i].started + SC_GRP_HIST_TIMEOUT_MS)
      grp_req_finish(g, &g->reqs[i], now);
}

void sc_group_connection_lost(sc_group *g)
{
  if (!g)
    return;
  for (size_t i = 0; i < g->nchats; i++)
    for (uint32_t k = 0; k < g->chats[i]->nmem; k++)
      g->chats[i]->mem[k].online = 0;
}

int sc_group_resync(sc_group *g, uint64_t now)
{
  if (!g)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  for (size_t i = 0; i < g->nchats; i++) {
    grp_chat *c = g->chats[i];
    if (leave_pending(g, c)) {
      c->leave_backoff_ms = 0; /* reconnected: the admin may be back */
      leave_resend(g, c, now);
    }
    if (c->state != SC_GRP_ACTIVE)
      continue;
    if (am_admin(g, c)) {
      if (!c->synced) {
        c->synced = 1;
        grp_rotate(g, c, now);
      }
      continue;
    }
    c->synced = 0;
    c->nvotes = 0;
    c->logreq_backoff_ms = 0;
    c->logreq_next_ms = now + SC_GRP_RETRY_MS; /* then logreq_retry */
    for (uint32_t k = 0; k < c->nmem; k++)
      if (c->mem[k].current && !grp_is_me(g, c->mem[k].uid))
        send_log_req(g, c, c->mem[k].uid);
  }
  return 0;
}

/* ---- Queries ------------------------------------------------------------ */

size_t sc_group_chat_count(const sc_group *g)
{
  return g ? g->nchats : 0;
}

int sc_group_chat_at(const sc_group *g, size_t i, uint8_t chat_id[16], int *state,
                     uint64_t *epoch, size_t *nmembers)
{
  if (!g || i >= g->nchats)
    return SECCHAT_ERR_NOT_FOUND;
  const grp_chat *c = g->chats[i];
  if (chat_id)
    memcpy(chat_id, c->id, 16);
  if (state)
    *state = (int)c->state;
  if (epoch)
    *epoch = grp_epoch(c);
  if (nmembers)
    *nmembers = grp_current_count(c);
  return 0;
}

int sc_group_members(const sc_group *g, const uint8_t chat_id[16], uint8_t (*uids)[20],
                     size_t cap)
{
  if (!g || !chat_id)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  const grp_chat *c = grp_chat_find(g, chat_id);
  if (!c)
    return SECCHAT_ERR_NOT_FOUND;
  size_t n = 0;
  for (uint32_t i = 0; i < c->nmem; i++) {
    if (!c->mem[i].current)
      continue;
    if (uids && n < cap)
      memcpy(uids[n], c->mem[i].uid, 20);
    n++;
  }
  return (int)n;
}

int sc_group_log_head(const sc_group *g, const uint8_t chat_id[16], uint64_t *epoch,
                      uint8_t head[32])
{
  if (!g || !chat_id)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  const grp_chat *c = grp_chat_find(g, chat_id);
  if (!c || !c->nlog)
    return SECCHAT_ERR_NOT_FOUND;
  if (epoch)
    *epoch = grp_epoch(c);
  if (head)
    memcpy(head, c->log[c->nlog - 1].hash, 32);
  return 0;
}

void sc_group_get_stats(const sc_group *g, sc_group_stats *s)
{
  if (g && s)
    *s = g->st;
}

size_t sc_group_memory(const sc_group *g)
{
  if (!g)
    return 0;
  size_t n = sizeof *g + g->aq_n * sizeof(grp_qnode) + g->eq_n * sizeof(grp_qnode);
  for (size_t i = 0; i < g->nchats; i++) {
    const grp_chat *c = g->chats[i];
    n += sizeof *c + c->log_cap * sizeof *c->log + c->mem_cap * sizeof *c->mem + c->hist_bytes +
         SC_GRP_SEEN_MAX * sizeof *c->seen + SC_GRP_TRACK_MAX * sizeof *c->track +
         SC_GRP_HIST_MAX_ITEMS * sizeof *c->hist;
    for (uint32_t k = 0; k < c->nlog; k++)
      n += c->log[k].raw_len;
    for (uint32_t k = 0; k < c->nmem; k++) {
      if (c->mem[k].has_peer)
        n += c->mem[k].peer.ring_cap * sizeof(sc_sk_skipped);
      n += c->mem[k].leave_len; /* kept signed LEAVEs (<= 1152 bytes each) */
    }
    for (uint32_t k = 0; k < c->npblob; k++)
      n += c->pblob[k].len;
  }
  return n;
}
