/* server.c: the relay server core: lifecycle, connection state machine
 * (Noise XX responder, REGISTER / AUTH / RENEW), output queues, events and
 * deadlines. Routing and relaying live in server_route.c. docs/relay.md is
 * the normative description. */
#include "server.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "crypto.h"
#include "mp.h"
#include "rng.h"

/* ---- accounting allocator ------------------------------------------------ */

void *sc_srv_alloc(secchat_server *srv, size_t n)
{
  void *p = malloc(n);
  if (p != NULL)
    srv->mem += n;
  return p;
}

void *sc_srv_calloc(secchat_server *srv, size_t n)
{
  void *p = calloc(1, n);
  if (p != NULL)
    srv->mem += n;
  return p;
}

void sc_srv_release(secchat_server *srv, void *p, size_t n)
{
  if (p == NULL)
    return;
  free(p);
  srv->mem -= n;
}

/* ---- hash maps (SipHash-2-4 keyed per server: peers choose the keys) ---- */

uint64_t sc_srv_hash(const secchat_server *srv, const uint8_t *key, size_t len)
{
  uint8_t out[crypto_shorthash_BYTES];
  crypto_shorthash(out, key, len, srv->hkey);
  uint64_t h;
  memcpy(&h, out, sizeof h);
  return h;
}

int sc_srv_map_init(secchat_server *srv, sc_map *m)
{
  m->nb = SC_MAP_MIN_BUCKETS;
  m->n = 0;
  m->b = sc_srv_calloc(srv, m->nb * sizeof *m->b);
  return m->b == NULL ? SECCHAT_ERR_NOMEM : 0;
}

void sc_srv_map_free(secchat_server *srv, sc_map *m)
{
  sc_srv_release(srv, m->b, m->nb * sizeof *m->b);
  m->b = NULL;
}

/* Rehash m into nb buckets (a power of two); on no memory m stays as it is:
 * chains only get longer, or the table stays larger. */
static void map_resize(secchat_server *srv, sc_map *m, uint32_t nb)
{
  sc_mapent **b = sc_srv_calloc(srv, nb * sizeof *b);
  if (b == NULL)
    return;
  for (uint32_t i = 0; i < m->nb; i++) {
    sc_mapent *e = m->b[i];
    while (e != NULL) {
      sc_mapent *next = e->next;
      e->next = b[e->hash & (nb - 1)];
      b[e->hash & (nb - 1)] = e;
      e = next;
    }
  }
  sc_srv_release(srv, m->b, m->nb * sizeof *m->b);
  m->b = b;
  m->nb = nb;
}

/* Halve a table that is under a quarter full, down to SC_MAP_MIN_BUCKETS:
 * insertion doubles it at one entry per bucket, so a halved table is at most
 * half full and a load near either threshold does not resize back and
 * forth. Not done in sc_map_remove: callers may be walking the table or a
 * chain while they remove (sc_fan_free, lookups); settle() calls it at the
 * end of each public call. */
static void map_trim(secchat_server *srv, sc_map *m)
{
  uint32_t nb = m->nb;
  while (nb > SC_MAP_MIN_BUCKETS && m->n < nb / 4)
    nb /= 2;
  if (nb != m->nb)
    map_resize(srv, m, nb);
}

void sc_map_insert(secchat_server *srv, sc_map *m, sc_mapent *e)
{
  if (m->n >= m->nb && m->nb < (1u << 24))
    map_resize(srv, m, m->nb * 2); /* past one entry per bucket */
  sc_mapent **head = &m->b[e->hash & (m->nb - 1)];
  e->next = *head;
  *head = e;
  m->n++;
}

void sc_map_remove(sc_map *m, sc_mapent *e)
{
  for (sc_mapent **pp = &m->b[e->hash & (m->nb - 1)]; *pp != NULL; pp = &(*pp)->next) {
    if (*pp == e) {
      *pp = e->next;
      e->next = NULL;
      m->n--;
      return;
    }
  }
}

sc_mapent *sc_map_find(const sc_map *m, const uint8_t *key, uint32_t klen, uint64_t h,
                       sc_mapent *after)
{
  sc_mapent *e = after != NULL ? after->next : m->b[h & (m->nb - 1)];
  for (; e != NULL; e = e->next)
    if (e->hash == h && e->klen == klen && memcmp(e->key, key, klen) == 0)
      return e;
  return NULL;
}

/* ---- token buckets --------------------------------------------------------
 * level in milli-units; refill rate units per period_ms; capacity burst. */
int sc_bucket_take(sc_bucket *b, uint64_t rate, uint64_t burst, uint64_t period_ms, uint64_t cost,
                   uint64_t now)
{
  if (rate == 0 || burst == 0)
    return 1;
  uint64_t cap = burst * 1000u;
  if (b->last_ms == 0) { /* fresh bucket: full */
    b->level = cap;
    b->last_ms = now;
  } else if (now > b->last_ms) {
    uint64_t el = now - b->last_ms;
    /* Past the time that refills the bucket, more idle adds nothing; the
     * clamp keeps el * rate * 1000 far from overflow for any u32 rate. */
    uint64_t fill_ms = cap / ((uint64_t)rate * 1000u) * period_ms + period_ms;
    if (el > fill_ms)
      el = fill_ms;
    uint64_t add = el * rate * 1000u / period_ms;
    b->level = (add >= cap || b->level >= cap - add) ? cap : b->level + add;
    b->last_ms = now;
  }
  if (cost > UINT64_MAX / 1000u || b->level < cost * 1000u)
    return 0;
  b->level -= cost * 1000u;
  return 1;
}

/* ---- connection table ------------------------------------------------------ */

static sc_conn *conn_get(const secchat_server *srv, uint64_t id)
{
  uint32_t slot = (uint32_t)(id & 0xffffffffu);
  if (slot == 0 || slot > srv->cfg.max_conns)
    return NULL;
  sc_conn *c = srv->conns[slot - 1];
  return (c != NULL && c->id == id) ? c : NULL;
}

static sc_conn_secrets *conn_secrets(const secchat_server *srv, const sc_conn *c)
{
  return sc_slab_ptr(&srv->slab, c->slot);
}

/* ---- deadline heap (min-heap on heap_key, positions kept in the conns) -- */

static void heap_swap(secchat_server *srv, uint32_t a, uint32_t b)
{
  sc_conn *t = srv->heap[a];
  srv->heap[a] = srv->heap[b];
  srv->heap[b] = t;
  srv->heap[a]->heap_idx = a;
  srv->heap[b]->heap_idx = b;
}

static void heap_up(secchat_server *srv, uint32_t i)
{
  while (i > 0) {
    uint32_t p = (i - 1) / 2;
    if (srv->heap[p]->heap_key <= srv->heap[i]->heap_key)
      break;
    heap_swap(srv, i, p);
    i = p;
  }
}

static void heap_down(secchat_server *srv, uint32_t i)
{
  for (;;) {
    uint32_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < srv->heap_n && srv->heap[l]->heap_key < srv->heap[m]->heap_key)
      m = l;
    if (r < srv->heap_n && srv->heap[r]->heap_key < srv->heap[m]->heap_key)
      m = r;
    if (m == i)
      break;
    heap_swap(srv, i, m);
    i = m;
  }
}

static void heap_remove(secchat_server *srv, sc_conn *c)
{
  uint32_t i = c->heap_idx;
  if (i == UINT32_MAX)
    return;
  c->heap_idx = UINT32_MAX;
  srv->heap_n--;
  if (i == srv->heap_n)
    return;
  srv->heap[i] = srv->heap[srv->heap_n];
  srv->heap[i]->heap_idx = i;
  heap_up(srv, i);
  heap_down(srv, srv->heap[i]->heap_idx);
}

/* The earliest deadline of c (docs/relay.md, "Deadlines"). */
static uint64_t conn_deadline(const secchat_server *srv, const sc_conn *c)
{
  uint64_t d = UINT64_MAX;
  if (c->state == SC_ST_CLOSING)
    return d;
  if (c->state < SC_ST_AUTHED)
    d = c->opened_ms + srv->cfg.handshake_timeout_ms;
  if (c->frame_start_ms != 0 && c->frame_start_ms + srv->cfg.frame_timeout_ms < d)
    d = c->frame_start_ms + srv->cfg.frame_timeout_ms;
  if (c->last_rx_ms + srv->cfg.idle_timeout_ms < d)
    d = c->last_rx_ms + srv->cfg.idle_timeout_ms;
  if (c->state == SC_ST_AUTHED && c->exp_ms < d)
    d = c->exp_ms;
  if (c->state == SC_ST_EXPIRED && c->exp_ms + srv->cfg.token_grace_ms < d)
    d = c->exp_ms + srv->cfg.token_grace_ms;
  return d;
}

/* File c under its earliest deadline. lazy: a deadline that only moved
 * later (the idle deadline after received bytes: every frame) keeps the
 * older, earlier key, so the hot receive path does no heap work; when that
 * key comes due, fire() finds nothing due and re-files c exactly. */
static void heap_update(secchat_server *srv, sc_conn *c, int lazy)
{
  uint64_t d = conn_deadline(srv, c);
  if (d == UINT64_MAX) {
    heap_remove(srv, c);
    return;
  }
  if (c->heap_idx == UINT32_MAX) {
    c->heap_idx = srv->heap_n;
    srv->heap[srv->heap_n++] = c;
    c->heap_key = d;
    heap_up(srv, c->heap_idx);
    return;
  }
  uint64_t old = c->heap_key;
  if (d == old || (lazy && d > old))
    return;
  c->heap_key = d;
  if (d < old)
    heap_up(srv, c->heap_idx);
  else
    heap_down(srv, c->heap_idx);
}

/* ---- events and logs ------------------------------------------------------ */

/* Move the queue into ncap (>= evq_n) items. */
static int evq_resize(secchat_server *srv, uint32_t ncap)
{
  sc_evq_item *q = sc_srv_alloc(srv, ncap * sizeof *q);
  if (q == NULL)
    return SECCHAT_ERR_NOMEM;
  for (uint32_t i = 0; i < srv->evq_n; i++)
    q[i] = srv->evq[(srv->evq_head + i) % srv->evq_cap];
  sc_srv_release(srv, srv->evq, srv->evq_cap * sizeof *q);
  srv->evq = q;
  srv->evq_cap = ncap;
  srv->evq_head = 0;
  return 0;
}

static int evq_push(secchat_server *srv, uint8_t type, uint64_t conn, int32_t reason,
                    uint8_t flush)
{
  if (srv->evq_n == srv->evq_cap &&
      evq_resize(srv, srv->evq_cap ? srv->evq_cap * 2 : SC_EVQ_MIN) != 0)
    return SECCHAT_ERR_NOMEM;
  sc_evq_item *it = &srv->evq[(srv->evq_head + srv->evq_n) % srv->evq_cap];
  it->conn = conn;
  it->type = type;
  it->reason = reason;
  it->flush = flush;
  srv->evq_n++;
  if (srv->evq_n > srv->evq_peak)
    srv->evq_peak = srv->evq_n;
  return 0;
}

/* Called when the host drained every event: a queue that a burst doubled
 * goes back to the smallest power of two >= SC_EVQ_MIN that holds four
 * times the fill since the last drain, so a steady load keeps its size
 * and a falling one gives the memory back. */
static void evq_trim(secchat_server *srv)
{
  uint32_t ncap = SC_EVQ_MIN;
  while (ncap < srv->evq_cap && ncap / 4 < srv->evq_peak)
    ncap *= 2;
  srv->evq_peak = 0;
  if (ncap < srv->evq_cap)
    (void)evq_resize(srv, ncap); /* no memory: keep the larger one */
}

static void log_rec(secchat_server *srv, int level, const char *event, const sc_conn *c, int code,
                    int detail, uint64_t value, const uint8_t *uid, const char *name,
                    size_t name_len)
{
  if (srv->log_n == SC_LOG_RING) {
    srv->st.drops_log++;
    return;
  }
  sc_logrec *r = &srv->logs[(srv->log_head + srv->log_n++) % SC_LOG_RING];
  r->event = event;
  r->conn = c != NULL ? c->id : 0;
  r->value = value;
  r->code = code;
  r->detail = detail;
  r->level = (uint8_t)level;
  r->has_uid = uid != NULL;
  if (uid != NULL)
    memcpy(r->uid, uid, SECCHAT_UID_BYTES);
  if (name_len > sizeof r->name)
    name_len = sizeof r->name;
  r->name_len = (uint8_t)name_len;
  if (name_len > 0)
    memcpy(r->name, name, name_len);
}

void sc_srv_log(secchat_server *srv, int level, const char *event, const sc_conn *c, int code,
                int detail, uint64_t value)
{
  int known = c != NULL && c->name != NULL;
  log_rec(srv, level, event, c, code, detail, value, known ? c->uid : NULL,
          known ? c->name : NULL, known ? c->name_len : 0);
}

/* ---- output queue ------------------------------------------------------- */

static sc_chunk *chunk_get(secchat_server *srv, size_t need, int first)
{
  size_t cap = first ? SC_CHUNK_SMALL : SC_CHUNK_BIG;
  if (need > cap)
    cap = need;
  sc_chunk *ch = NULL;
  if (cap == SC_CHUNK_SMALL && srv->npool_small > 0)
    ch = srv->pool_small[--srv->npool_small];
  else if (cap == SC_CHUNK_BIG && srv->npool_big > 0)
    ch = srv->pool_big[--srv->npool_big];
  else
    ch = sc_srv_alloc(srv, sizeof *ch + cap);
  if (ch == NULL)
    return NULL;
  ch->next = NULL;
  ch->cap = (uint32_t)cap;
  ch->head = ch->tail = 0;
  return ch;
}

static void chunk_put(secchat_server *srv, sc_chunk *ch)
{
  if (ch->cap == SC_CHUNK_SMALL && srv->npool_small < SC_CHUNK_POOL)
    srv->pool_small[srv->npool_small++] = ch;
  else if (ch->cap == SC_CHUNK_BIG && srv->npool_big < SC_CHUNK_POOL)
    srv->pool_big[srv->npool_big++] = ch;
  else
    sc_srv_release(srv, ch, sizeof *ch + ch->cap);
}

static void queue_drop(secchat_server *srv, sc_conn *c)
{
  while (c->qhead != NULL) {
    sc_chunk *n = c->qhead->next;
    chunk_put(srv, c->qhead);
    c->qhead = n;
  }
  c->qtail = NULL;
  c->qbytes = 0;
  c->open_used = 0;
}

/* Wire size of a transport message carrying `used` record bytes. */
static size_t wire_size(size_t used)
{
  return SECCHAT_FRAME_PREFIX_BYTES + sc_pad_size(used) + SC_NOISE_TAGLEN;
}

/* n more bytes fit under the output cap? If not, c is a slow consumer:
 * its queue is dropped and it is condemned. */
static int queue_admit(secchat_server *srv, sc_conn *c, size_t n)
{
  if (c->qbytes + n <= srv->cfg.max_output_bytes)
    return 1;
  srv->st.slow_consumers++;
  sc_srv_log(srv, SECCHAT_LOG_WARNING, "slow_consumer", c, SECCHAT_ERR_QUEUE_FULL, 0, c->qbytes);
  queue_drop(srv, c);
  sc_srv_condemn(srv, c, SC_BYE_SLOW_CONSUMER, 0, SECCHAT_ERR_QUEUE_FULL);
  return 0;
}

/* Room for `need` contiguous bytes at the queue's tail, or NULL: the cap
 * would be exceeded (c is condemned as a slow consumer) or no memory. */
static uint8_t *queue_reserve(secchat_server *srv, sc_conn *c, size_t need)
{
  if (!queue_admit(srv, c, need))
    return NULL;
  sc_chunk *t = c->qtail;
  if (t == NULL || t->cap - t->tail < need) {
    sc_chunk *ch = chunk_get(srv, need, c->qhead == NULL);
    if (ch == NULL) {
      sc_srv_condemn(srv, c, 0, 0, SECCHAT_ERR_NOMEM);
      return NULL;
    }
    if (t == NULL)
      c->qhead = ch;
    else
      t->next = ch;
    c->qtail = t = ch;
  }
  return t->data + t->tail;
}

static void queue_commit(secchat_server *srv, sc_conn *c, size_t n)
{
  c->qtail->tail += (uint32_t)n;
  c->qbytes += n;
  srv->st.bytes_out += n;
  srv->st.frames_out++;
  if (!c->want_write) {
    c->want_write = 1;
    (void)evq_push(srv, SECCHAT_SERVER_EV_WANT_WRITE, c->id, 0, 0);
  }
}

/* Seal c's open message in place: zero the padding, encrypt, write the
 * length prefix. Its queue extent (prefix + padded + tag) was reserved and
 * counted as records were added, so nothing moves. */
static void seal_open(secchat_server *srv, sc_conn *c)
{
  if (c->open_used == 0)
    return;
  size_t used = c->open_used, padded = sc_pad_size(used), outlen = 0;
  uint8_t *p = c->qtail->data + c->open_off;
  uint8_t *pt = p + SECCHAT_FRAME_PREFIX_BYTES;
  c->open_used = 0;
  memset(pt + used, 0, padded - used);
  int rc = sc_noise_transport_encrypt(&conn_secrets(srv, c)->u.t, pt, padded, pt,
                                      padded + SC_NOISE_TAGLEN, &outlen);
  if (rc < 0) { /* nonce exhaustion: nothing sane to send any more */
    queue_drop(srv, c);
    sc_srv_condemn(srv, c, 0, 0, rc);
    return;
  }
  sc_frame_prefix(p, (uint32_t)outlen);
}

/* Why records are packed: in a loaded relay a connection receives many
 * frames per loop pass (rooms of 10 at saturation: ~70 per write), and one
 * ChaCha20-Poly1305 call per 256-byte frame cost most of the relay's time;
 * one call over the pass's frames costs a fraction (docs/benchmarks.md). The
 * open message never leaves its chunk, so it is bounded by SC_CHUNK_BIG
 * (or one frame's size), and sealing at output time adds no latency. */
int sc_srv_send_body(secchat_server *srv, sc_conn *c, const uint8_t *body, size_t len)
{
  if (c->state == SC_ST_CLOSING || c->state < SC_ST_AUTHWAIT)
    return SECCHAT_ERR_INVALID_STATE;
  if (len == 0 || len > SECCHAT_MAX_FRAME_BODY)
    return SECCHAT_ERR_TOO_LONG;
  size_t rec = 2 + len;
  if (c->open_used != 0) {
    size_t used = c->open_used + rec;
    if (used <= SECCHAT_MAX_TRANSPORT_PLAINTEXT &&
        c->open_off + wire_size(used) <= c->qtail->cap) {
      size_t grow = wire_size(used) - wire_size(c->open_used);
      if (!queue_admit(srv, c, grow))
        return SECCHAT_ERR_QUEUE_FULL;
      uint8_t *dst = c->qtail->data + c->open_off + SECCHAT_FRAME_PREFIX_BYTES + c->open_used;
      (void)sc_record_put(dst, rec, body, len);
      c->open_used = (uint32_t)used;
      queue_commit(srv, c, grow);
      return 0;
    }
    seal_open(srv, c);
    if (c->state == SC_ST_CLOSING)
      return SECCHAT_ERR_INVALID_STATE;
  }
  size_t need = wire_size(rec);
  uint8_t *p = queue_reserve(srv, c, need);
  if (p == NULL)
    return SECCHAT_ERR_QUEUE_FULL;
  (void)sc_record_put(p + SECCHAT_FRAME_PREFIX_BYTES, rec, body, len);
  c->open_off = (uint32_t)(p - c->qtail->data);
  c->open_used = (uint32_t)rec;
  queue_commit(srv, c, need);
  return 0;
}

secchat_ssize sc_srv_fan_frame(secchat_server *srv, const sc_frame *f)
{
  return sc_frame_encode(f, srv->fan, SECCHAT_MAX_FRAME_BODY);
}

int sc_srv_send_frame(secchat_server *srv, sc_conn *c, const sc_frame *f)
{
  secchat_ssize n = sc_frame_encode(f, srv->ctl, SECCHAT_MAX_FRAME_BODY);
  if (n < 0)
    return (int)n;
  return sc_srv_send_body(srv, c, srv->ctl, (size_t)n);
}

void sc_srv_send_error(secchat_server *srv, sc_conn *c, uint64_t code, uint64_t ref)
{
  sc_frame f;
  memset(&f, 0, sizeof f);
  f.type = SC_FRAME_ERROR;
  f.u.error.code = code;
  f.u.error.ref = ref;
  (void)sc_srv_send_frame(srv, c, &f);
}

static void send_bye(secchat_server *srv, sc_conn *c, int reason)
{
  sc_frame f;
  memset(&f, 0, sizeof f);
  f.type = SC_FRAME_BYE;
  f.u.bye.reason = (uint64_t)reason;
  (void)sc_srv_send_frame(srv, c, &f);
}

/* ---- condemning and freeing ------------------------------------------------ */

/* End c: with flush, a BYE{bye_reason} (if a transport exists) goes out
 * first; then one CLOSE event carrying bye_reason. Detaching from routes and the directory is deferred to
 * settle() at the end of the public call, so that nothing iterating a route
 * sees it change. */
void sc_srv_condemn(secchat_server *srv, sc_conn *c, int bye_reason, int flush, int cause)
{
  if (c->state == SC_ST_CLOSING)
    return;
  /* The BYE is only worth queueing if the host will write it. */
  if (flush && bye_reason != 0 && c->state >= SC_ST_AUTHWAIT)
    send_bye(srv, c, bye_reason);
  if (c->state == SC_ST_CLOSING) /* the BYE itself overflowed the queue */
    return;
  if (c->state == SC_ST_AUTHED || c->state == SC_ST_EXPIRED)
    srv->nauthed--;
  c->state = SC_ST_CLOSING;
  heap_remove(srv, c);
  sc_deframer_free(&c->df);
  c->doom_next = srv->doomed;
  c->doomed = 1;
  srv->doomed = c;
  sc_srv_log(srv, SECCHAT_LOG_INFO, "close", c, cause, bye_reason, c->qbytes);
  (void)evq_push(srv, SECCHAT_SERVER_EV_CLOSE, c->id, bye_reason,
                 (uint8_t)(flush && c->qbytes > 0));
}

/* Detach every condemned connection (routes with PRESENCE, directory). */
static void settle(secchat_server *srv)
{
  while (srv->doomed != NULL) {
    sc_conn *c = srv->doomed;
    srv->doomed = c->doom_next;
    c->doom_next = NULL;
    c->doomed = 0;
    sc_dir_leave(srv, c);
    sc_route_leave_all(srv, c);
  }
  /* Tables that grew with the load shrink with it (nothing walks them now). */
  map_trim(srv, &srv->routes);
  map_trim(srv, &srv->uids);
  map_trim(srv, &srv->names);
  map_trim(srv, &srv->ruids);
  map_trim(srv, &srv->rnames);
}

static void conn_free(secchat_server *srv, sc_conn *c)
{
  heap_remove(srv, c);
  sc_deframer_free(&c->df);
  queue_drop(srv, c);
  if (c->token != NULL) {
    sodium_memzero(c->token, c->token_len);
    sc_srv_release(srv, c->token, (size_t)c->token_len + 1);
  }
  sc_srv_release(srv, c->name, c->name_len > 0 ? c->name_len : 1);
  sc_slab_release(&srv->slab, c->slot);
  srv->conns[c->slot] = NULL;
  srv->gens[c->slot]++;
  srv->nlive--;
  sodium_memzero(c, sizeof *c);
  sc_srv_release(srv, c, sizeof *c);
}

/* ---- configuration and lifecycle ----------------------------------------- */

void secchat_server_config_init(secchat_server_config *cfg)
{
  if (cfg == NULL)
    return;
  memset(cfg, 0, sizeof *cfg);
  cfg->struct_size = sizeof *cfg;
  cfg->max_conns = 20000;
  cfg->token_cache_entries = 4096;
  cfg->handshake_timeout_ms = 10000;
  cfg->frame_timeout_ms = 30000;
  cfg->idle_timeout_ms = 300000;
  cfg->token_grace_ms = 60000;
  cfg->max_routes_per_conn = 256;
  cfg->max_conns_per_route = 256;
  cfg->max_output_bytes = 1u << 20;
  cfg->group_send_rate = 100;
  cfg->group_send_burst = 200;
  cfg->direct_rate = 50;
  cfg->direct_burst = 200;
  cfg->control_rate = 50;
  cfg->control_burst = 300;
  cfg->fanout_bytes_rate = 16u << 20;
  cfg->fanout_bytes_burst = 32u << 20;
  cfg->register_per_min = 10;
  cfg->register_burst = 10;
}

static int config_check(const secchat_server_config *c)
{
  if (c->struct_size < sizeof *c || c->name == NULL || c->token_key == NULL ||
      c->noise_secret_key == NULL)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  size_t nl = strlen(c->name);
  if (nl == 0 || nl > SECCHAT_ISSUER_MAX_BYTES)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  if (c->max_conns == 0 || c->max_conns > (1u << 24) || c->handshake_timeout_ms == 0 ||
      c->frame_timeout_ms == 0 || c->idle_timeout_ms == 0 || c->max_routes_per_conn == 0 ||
      c->max_routes_per_conn > 65535 || c->max_conns_per_route < 2 ||
      c->max_output_bytes < 2 * (SECCHAT_MAX_WIRE_MESSAGE + SECCHAT_FRAME_PREFIX_BYTES) ||
      c->token_cache_entries > SECCHAT_TOKEN_CACHE_MAX ||
      c->token_ttl_s > SECCHAT_TOKEN_MAX_LIFETIME || c->worker_id > 0xffffu)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  return 0;
}

int secchat_server_new(secchat_server **out, const secchat_server_config *cfg)
{
  if (out == NULL || cfg == NULL)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  *out = NULL;
  int rc = config_check(cfg);
  if (rc != 0)
    return rc;
  secchat_server *srv = calloc(1, sizeof *srv);
  if (srv == NULL)
    return SECCHAT_ERR_NOMEM;
  srv->mem = sizeof *srv;
  srv->cfg = *cfg;
  memcpy(srv->name, cfg->name, strlen(cfg->name) + 1);
  srv->cfg.name = srv->name;
  srv->cfg.noise_secret_key = NULL;
  srv->key = cfg->token_key;
  srv->st.struct_size = sizeof srv->st;

  rc = SECCHAT_ERR_NOMEM;
  srv->noise_sk = sodium_malloc(SC_NOISE_DHLEN);
  if (srv->noise_sk == NULL)
    goto fail;
  memcpy(srv->noise_sk, cfg->noise_secret_key, SC_NOISE_DHLEN);
  crypto_scalarmult_base(srv->noise_pk, srv->noise_sk);
  if (sc_check_dh_pk(srv->noise_pk) != 0) {
    rc = SECCHAT_ERR_BAD_KEY;
    goto fail;
  }
  sc_random(srv->hkey, sizeof srv->hkey);

  rc = secchat_server_key_public_pem(srv->key, srv->pub_pem, sizeof srv->pub_pem,
                                     &srv->pub_pem_len);
  if (rc != 0)
    goto fail;
  rc = secchat_token_verifier_new(&srv->verifier, srv->pub_pem, srv->pub_pem_len, srv->name,
                                  cfg->token_cache_entries);
  if (rc != 0)
    goto fail;

  rc = sc_slab_init(&srv->slab, sizeof(sc_conn_secrets), cfg->max_conns);
  if (rc != 0)
    goto fail;
  rc = SECCHAT_ERR_NOMEM;
  srv->conns = sc_srv_calloc(srv, (size_t)cfg->max_conns * sizeof *srv->conns);
  srv->gens = sc_srv_calloc(srv, (size_t)cfg->max_conns * sizeof *srv->gens);
  srv->heap = sc_srv_calloc(srv, (size_t)cfg->max_conns * sizeof *srv->heap);
  srv->logs = sc_srv_calloc(srv, SC_LOG_RING * sizeof *srv->logs);
  srv->rx = sc_srv_alloc(srv, SECCHAT_MAX_WIRE_MESSAGE);
  srv->fan = sc_srv_alloc(srv, SECCHAT_MAX_TRANSPORT_PLAINTEXT);
  srv->ctl = sc_srv_alloc(srv, SECCHAT_MAX_FRAME_BODY);
  srv->tokbuf = sc_srv_alloc(srv, SECCHAT_MAX_TOKEN_BYTES + 1);
  srv->src = sc_srv_calloc(srv, SC_SRC_BUCKETS * sizeof *srv->src);
  if (evq_resize(srv, SC_EVQ_MIN) != 0) /* idle size from the start: flat accounting */
    goto fail;
  if (srv->conns == NULL || srv->gens == NULL || srv->heap == NULL || srv->logs == NULL ||
      srv->rx == NULL || srv->fan == NULL || srv->ctl == NULL || srv->tokbuf == NULL ||
      srv->src == NULL)
    goto fail;
  if (sc_srv_map_init(srv, &srv->routes) != 0 || sc_srv_map_init(srv, &srv->uids) != 0 ||
      sc_srv_map_init(srv, &srv->names) != 0 || sc_srv_map_init(srv, &srv->ruids) != 0 ||
      sc_srv_map_init(srv, &srv->rnames) != 0)
    goto fail;
  *out = srv;
  return 0;
fail:
  secchat_server_free(srv);
  return rc;
}

void secchat_server_free(secchat_server *srv)
{
  if (srv == NULL)
    return;
  srv->freeing = 1;
  if (srv->conns != NULL) {
    for (uint32_t i = 0; i < srv->cfg.max_conns; i++) {
      sc_conn *c = srv->conns[i];
      if (c == NULL)
        continue;
      sc_dir_leave(srv, c);
      sc_route_leave_all(srv, c); /* frees the routes; PRESENCE goes nowhere */
    }
    for (uint32_t i = 0; i < srv->cfg.max_conns; i++)
      if (srv->conns[i] != NULL)
        conn_free(srv, srv->conns[i]);
  }
  sc_fan_free(srv); /* remote directory, remote-only routes, jobs */
  for (uint32_t i = 0; i < srv->npool_small; i++)
    free(srv->pool_small[i]);
  for (uint32_t i = 0; i < srv->npool_big; i++)
    free(srv->pool_big[i]);
  sc_srv_map_free(srv, &srv->routes);
  sc_srv_map_free(srv, &srv->uids);
  sc_srv_map_free(srv, &srv->names);
  sc_srv_map_free(srv, &srv->ruids);
  sc_srv_map_free(srv, &srv->rnames);
  free(srv->conns);
  free(srv->gens);
  free(srv->heap);
  free(srv->logs);
  free(srv->evq);
  if (srv->rx != NULL)
    sodium_memzero(srv->rx, SECCHAT_MAX_WIRE_MESSAGE);
  free(srv->rx);
  free(srv->fan);
  free(srv->ctl);
  if (srv->tokbuf != NULL)
    sodium_memzero(srv->tokbuf, SECCHAT_MAX_TOKEN_BYTES + 1);
  free(srv->tokbuf);
  free(srv->src);
  sc_slab_free(&srv->slab);
  secchat_token_verifier_free(srv->verifier);
  sodium_free(srv->noise_sk);
  sodium_memzero(srv, sizeof *srv);
  free(srv);
}

void secchat_server_noise_public_key(const secchat_server *srv, uint8_t out[32])
{
  if (srv != NULL && out != NULL)
    memcpy(out, srv->noise_pk, SC_NOISE_DHLEN);
}

static void set_now(secchat_server *srv, uint64_t now_ms)
{
  if (now_ms > srv->now)
    srv->now = now_ms;
}

/* ---- connections: open ------------------------------------------------------ */

int secchat_server_conn_open(secchat_server *srv, uint64_t *conn, const uint8_t *source,
                             size_t source_len, uint64_t now_ms)
{
  if (srv == NULL || conn == NULL || source_len > 64 || (source == NULL && source_len > 0))
    return SECCHAT_ERR_INVALID_ARGUMENT;
  set_now(srv, now_ms);
  if (srv->nlive >= srv->cfg.max_conns)
    return SECCHAT_ERR_TOO_MANY;
  uint32_t slot = sc_slab_alloc(&srv->slab);
  if (slot == SC_SLAB_NONE)
    return SECCHAT_ERR_NOMEM;
  sc_conn *c = sc_srv_calloc(srv, sizeof *c);
  if (c == NULL) {
    sc_slab_release(&srv->slab, slot);
    return SECCHAT_ERR_NOMEM;
  }
  c->slot = slot;
  /* gens start at 0 in calloc'd (untouched) memory; ids start at 1 << 32. */
  c->id = ((uint64_t)srv->gens[slot] + 1) << 32 | (uint64_t)(slot + 1);
  c->heap_idx = UINT32_MAX;
  c->state = SC_ST_HS1;
  c->opened_ms = c->last_rx_ms = srv->now;
  c->src_idx = (uint32_t)(sc_srv_hash(srv, source, source_len) % SC_SRC_BUCKETS);
  (void)sc_deframer_init(&c->df, SC_HS_MAX_MESSAGE);
  sc_conn_secrets *sec = conn_secrets(srv, c);
  int rc = sc_noise_handshake_init(&sec->u.hs, SC_NOISE_XX, 0, (const uint8_t *)SC_NOISE_PROLOGUE,
                                   strlen(SC_NOISE_PROLOGUE), srv->noise_sk, NULL);
  if (rc != 0) {
    sc_slab_release(&srv->slab, slot);
    sc_srv_release(srv, c, sizeof *c);
    return rc;
  }
  srv->conns[slot] = c;
  srv->nlive++;
  srv->st.conns_total++;
  heap_update(srv, c, 0);
  *conn = c->id;
  sc_srv_log(srv, SECCHAT_LOG_DEBUG, "connect", c, 0, 0, 0);
  return 0;
}

/* ---- handshake -------------------------------------------------------------- */

static void handshake_failed(secchat_server *srv, sc_conn *c, int rc)
{
  srv->st.handshakes_failed++;
  sc_srv_log(srv, SECCHAT_LOG_INFO, "handshake_fail", c, rc, c->state, 0);
  sc_srv_condemn(srv, c, 0, 0, rc);
}

/* Message 1 payload: [minor, features] (canonical msgpack). The reply's
 * payload: [minor, features, token public key PEM, server name], where
 * minor is the smaller of both and features the intersection. */
static void handshake_msg1(secchat_server *srv, sc_conn *c, const uint8_t *msg, size_t len)
{
  sc_conn_secrets *sec = conn_secrets(srv, c);
  size_t plen = 0;
  int rc = sc_noise_handshake_read(&sec->u.hs, msg, len, srv->rx, SC_HS_MAX_MESSAGE, &plen);
  uint64_t minor = 0, features = 0;
  if (rc == 0) {
    rc = sc_mp_validate(srv->rx, plen, 1);
    sc_mp_reader r;
    uint32_t n = 0;
    sc_mp_reader_init(&r, srv->rx, plen);
    if (rc == 0 && (sc_mp_read_array(&r, &n) != 0 || n != 2 || sc_mp_read_uint(&r, &minor) != 0 ||
                    sc_mp_read_uint(&r, &features) != 0))
      rc = SECCHAT_ERR_VERSION;
  }
  if (rc != 0) {
    handshake_failed(srv, c, rc);
    return;
  }
  uint8_t payload[64 + SECCHAT_TOKEN_KEY_PEM_MAX + SECCHAT_ISSUER_MAX_BYTES];
  sc_mp_writer w;
  sc_mp_writer_init(&w, payload, sizeof payload);
  sc_mp_write_array(&w, 4);
  uint64_t ours = SC_PROTO_MINOR;
  sc_mp_write_uint(&w, minor < ours ? minor : ours);
  sc_mp_write_uint(&w, features & SC_PROTO_FEATURES);
  sc_mp_write_str(&w, srv->pub_pem, srv->pub_pem_len);
  sc_mp_write_str(&w, srv->name, strlen(srv->name));
  int64_t pl = sc_mp_writer_finish(&w);
  if (pl < 0) {
    handshake_failed(srv, c, SECCHAT_ERR_INTERNAL);
    return;
  }
  size_t cap = (size_t)pl + 2 * SC_NOISE_DHLEN + 2 * SC_NOISE_TAGLEN;
  uint8_t *p = queue_reserve(srv, c, SECCHAT_FRAME_PREFIX_BYTES + cap);
  if (p == NULL)
    return;
  size_t outlen = 0;
  rc = sc_noise_handshake_write(&sec->u.hs, payload, (size_t)pl, p + SECCHAT_FRAME_PREFIX_BYTES,
                                cap, &outlen);
  if (rc != 0) {
    handshake_failed(srv, c, rc);
    return;
  }
  sc_frame_prefix(p, (uint32_t)outlen);
  queue_commit(srv, c, SECCHAT_FRAME_PREFIX_BYTES + outlen);
  c->state = SC_ST_HS3;
}

/* Message 3 carries the client's static key and an empty payload. */
static void handshake_msg3(secchat_server *srv, sc_conn *c, const uint8_t *msg, size_t len)
{
  sc_conn_secrets *sec = conn_secrets(srv, c);
  size_t plen = 0;
  int rc = sc_noise_handshake_read(&sec->u.hs, msg, len, srv->rx, SC_HS_MAX_MESSAGE, &plen);
  if (rc == 0 && plen != 0)
    rc = SECCHAT_ERR_HANDSHAKE;
  if (rc == 0)
    rc = sc_noise_handshake_remote_static(&sec->u.hs, c->rs);
  if (rc != 0) {
    handshake_failed(srv, c, rc);
    return;
  }
  /* hs and the transport share the slot's union: split via the stack. */
  sc_noise_transport t;
  uint8_t hh[SC_NOISE_HASHLEN];
  rc = sc_noise_handshake_split(&sec->u.hs, &t, hh);
  if (rc == 0) {
    sec->u.t = t;
    memcpy(sec->hh, hh, sizeof hh);
  }
  sodium_memzero(&t, sizeof t);
  sodium_memzero(hh, sizeof hh);
  if (rc != 0) {
    handshake_failed(srv, c, rc);
    return;
  }
  /* Between messages (the deframer yields one message at a time), so the
   * limit can change now: full-size frames from here on. */
  sc_deframer_free(&c->df);
  (void)sc_deframer_init(&c->df, SECCHAT_MAX_WIRE_MESSAGE);
  c->state = SC_ST_AUTHWAIT;
  c->had_transport = 1;
  srv->st.handshakes_ok++;
}

/* ---- authentication ----------------------------------------------------------- */

static int64_t now_s(const secchat_server *srv) { return (int64_t)(srv->now / 1000u); }

static void protocol_violation(secchat_server *srv, sc_conn *c, uint64_t wire, int cause)
{
  srv->st.protocol_errors++;
  sc_srv_log(srv, SECCHAT_LOG_INFO, "protocol_error", c, cause, (int)wire, 0);
  sc_srv_send_error(srv, c, wire, 0);
  sc_srv_condemn(srv, c, SC_BYE_PROTOCOL_ERROR, 1, cause);
}

static void auth_failed(secchat_server *srv, sc_conn *c, const char *event, int rc, int reason)
{
  if (rc == SECCHAT_ERR_TOKEN_EXPIRED)
    srv->st.auth_failed_expired++;
  else if (reason == SECCHAT_TOKEN_R_PROOF || reason == SECCHAT_TOKEN_R_CHANNEL)
    srv->st.auth_failed_proof++;
  else if (rc == SECCHAT_ERR_AUTH)
    srv->st.auth_failed_token++;
  else
    srv->st.auth_failed_other++;
  sc_srv_log(srv, SECCHAT_LOG_INFO, event, c, rc, reason, 0);
  int expired = rc == SECCHAT_ERR_TOKEN_EXPIRED;
  sc_srv_send_error(srv, c, expired ? SC_WIRE_TOKEN_EXPIRED : SC_WIRE_AUTH_FAILED, 0);
  sc_srv_condemn(srv, c, expired ? SC_BYE_TOKEN_EXPIRED : SC_BYE_PROTOCOL_ERROR, 1, rc);
}

/* Replace c's stored token (and expiry) by tok[0, len). */
static int conn_set_token(secchat_server *srv, sc_conn *c, const char *tok, size_t len,
                          int64_t exp_s)
{
  char *t = sc_srv_alloc(srv, len + 1);
  if (t == NULL)
    return SECCHAT_ERR_NOMEM;
  memcpy(t, tok, len);
  t[len] = '\0';
  if (c->token != NULL) {
    sodium_memzero(c->token, c->token_len);
    sc_srv_release(srv, c->token, (size_t)c->token_len + 1);
  }
  c->token = t;
  c->token_len = (uint16_t)len;
  c->exp_ms = exp_s > 0 ? (uint64_t)exp_s * 1000u : 0;
  return 0;
}

/* The per-source registration limit: the host's shared admission when it
 * set one (several workers, one budget), else this server's buckets. */
static int register_admitted(secchat_server *srv, const sc_conn *c)
{
  if (srv->cfg.register_admit != NULL)
    return srv->cfg.register_admit(srv->cfg.register_admit_ctx, c->id, srv->now) == 1;
  return sc_bucket_take(&srv->src[c->src_idx], srv->cfg.register_per_min,
                        srv->cfg.register_burst, 60000u, 1, srv->now);
}

static void do_register(secchat_server *srv, sc_conn *c, const sc_frame *f)
{
  if (c->registered) {
    protocol_violation(srv, c, SC_WIRE_PROTOCOL, SECCHAT_ERR_UNEXPECTED_FRAME);
    return;
  }
  if (!register_admitted(srv, c)) {
    srv->st.limit_register++;
    sc_srv_log(srv, SECCHAT_LOG_WARNING, "limit", c, SECCHAT_ERR_RATE_LIMITED,
               SC_FRAME_REGISTER, 0);
    sc_srv_send_error(srv, c, SC_WIRE_RATE_LIMITED, 0);
    return;
  }
  int reason = 0;
  size_t tlen = 0;
  int rc = secchat_token_issue(srv->key, srv->name, f->u.reg.name.p, f->u.reg.name.len,
                               f->u.reg.sig_pk, f->u.reg.dh_pk, f->u.reg.dh_sig, f->u.reg.proof,
                               conn_secrets(srv, c)->hh, c->rs, now_s(srv), srv->cfg.token_ttl_s,
                               srv->tokbuf, SECCHAT_MAX_TOKEN_BYTES + 1, &tlen, &reason);
  uint8_t uid[SECCHAT_UID_BYTES];
  sc_uid_from_sign_pk(uid, f->u.reg.sig_pk);
  if (rc != 0) {
    auth_failed(srv, c, "register_fail", rc, reason);
    return;
  }
  c->registered = 1;
  srv->st.registrations++;
  log_rec(srv, SECCHAT_LOG_INFO, "register", c, 0, 0, 0, uid, f->u.reg.name.p, f->u.reg.name.len);
  sc_frame r;
  memset(&r, 0, sizeof r);
  r.type = SC_FRAME_TOKEN;
  r.u.token.token.p = srv->tokbuf;
  r.u.token.token.len = tlen;
  (void)sc_srv_send_frame(srv, c, &r);
  sodium_memzero(srv->tokbuf, tlen);
}

static void do_auth(secchat_server *srv, sc_conn *c, const sc_frame *f)
{
  secchat_token_claims cl;
  memset(&cl, 0, sizeof cl);
  cl.struct_size = sizeof cl;
  int reason = 0;
  int rc = secchat_token_verify_login(srv->verifier, f->u.auth.token.p, f->u.auth.token.len,
                                      f->u.auth.proof, conn_secrets(srv, c)->hh, c->rs,
                                      now_s(srv), &cl, &reason);
  if (rc == 0) {
    size_t nl = strlen(cl.name);
    c->name = sc_srv_alloc(srv, nl > 0 ? nl : 1);
    if (c->name == NULL ||
        conn_set_token(srv, c, f->u.auth.token.p, f->u.auth.token.len, cl.exp) != 0) {
      sc_srv_release(srv, c->name, nl > 0 ? nl : 1);
      c->name = NULL;
      rc = SECCHAT_ERR_NOMEM;
    } else {
      memcpy(c->name, cl.name, nl);
      c->name_len = (uint8_t)nl;
    }
  }
  if (rc != 0) {
    auth_failed(srv, c, "auth_fail", rc, reason);
    return;
  }
  memcpy(c->uid, cl.uid, SECCHAT_UID_BYTES);
  c->state = SC_ST_AUTHED;
  srv->nauthed++;
  srv->st.auth_ok++;
  sc_dir_enter(srv, c);
  sc_srv_log(srv, SECCHAT_LOG_INFO, "auth_ok", c, 0, 0, (uint64_t)cl.exp);
  sc_frame r;
  memset(&r, 0, sizeof r);
  r.type = SC_FRAME_AUTH_OK;
  r.u.auth_ok.uid = c->uid;
  r.u.auth_ok.expires_s = (uint64_t)cl.exp;
  (void)sc_srv_send_frame(srv, c, &r);
}

static void do_renew(secchat_server *srv, sc_conn *c, const sc_frame *f)
{
  int reason = 0;
  size_t tlen = 0;
  int rc = secchat_token_renew(srv->key, srv->verifier, c->token, c->token_len, f->u.renew.proof,
                               conn_secrets(srv, c)->hh, c->rs, now_s(srv),
                               srv->cfg.token_grace_ms / 1000u, srv->cfg.token_ttl_s, srv->tokbuf,
                               SECCHAT_MAX_TOKEN_BYTES + 1, &tlen, &reason);
  uint32_t ttl = srv->cfg.token_ttl_s ? srv->cfg.token_ttl_s : SECCHAT_TOKEN_TTL_DEFAULT;
  if (rc == 0)
    rc = conn_set_token(srv, c, srv->tokbuf, tlen, now_s(srv) + (int64_t)ttl);
  if (rc != 0) {
    sodium_memzero(srv->tokbuf, SECCHAT_MAX_TOKEN_BYTES + 1);
    auth_failed(srv, c, "renew_fail", rc == SECCHAT_ERR_TOKEN_EXPIRED ? SECCHAT_ERR_AUTH : rc,
                reason);
    return;
  }
  if (c->state == SC_ST_EXPIRED)
    c->state = SC_ST_AUTHED;
  srv->st.renewals++;
  if (c->in_dir)
    sc_fan_online(srv, c); /* the other workers hand out the new token */
  sc_srv_log(srv, SECCHAT_LOG_INFO, "renew", c, 0, 0, c->exp_ms / 1000u);
  sc_frame r;
  memset(&r, 0, sizeof r);
  r.type = SC_FRAME_TOKEN;
  r.u.token.token.p = srv->tokbuf;
  r.u.token.token.len = tlen;
  (void)sc_srv_send_frame(srv, c, &r);
  sodium_memzero(srv->tokbuf, tlen);
}

/* ---- frame dispatch ------------------------------------------------------------ */

static int is_client_frame(int type) { return type >= SC_FRAME_REGISTER && type <= SC_FRAME_PING; }

static void limited(secchat_server *srv, sc_conn *c, uint64_t *counter, int type, uint64_t ref)
{
  (*counter)++;
  sc_srv_log(srv, SECCHAT_LOG_DEBUG, "limit", c, SECCHAT_ERR_RATE_LIMITED, type, ref);
  sc_srv_send_error(srv, c, SC_WIRE_RATE_LIMITED, ref);
}

static void do_ping(secchat_server *srv, sc_conn *c, const sc_frame *f)
{
  sc_frame r;
  memset(&r, 0, sizeof r);
  r.type = SC_FRAME_PONG;
  r.u.ping.nonce = f->u.ping.nonce;
  (void)sc_srv_send_frame(srv, c, &r);
}

/* The state table of docs/relay.md. */
static void dispatch(secchat_server *srv, sc_conn *c, const sc_frame *f)
{
  int t = f->type;
  if (!is_client_frame(t)) {
    protocol_violation(srv, c, SC_WIRE_PROTOCOL, SECCHAT_ERR_UNEXPECTED_FRAME);
    return;
  }
  /* Control frames (everything but the two relayed kinds and the two
   * authentication frames, which are once per connection) share a bucket. */
  int control = t != SC_FRAME_GROUP_SEND && t != SC_FRAME_DIRECT && t != SC_FRAME_REGISTER &&
                t != SC_FRAME_AUTH;
  if (control && !sc_bucket_take(&c->b_ctrl, srv->cfg.control_rate, srv->cfg.control_burst,
                                 1000u, 1, srv->now)) {
    limited(srv, c, &srv->st.limit_rate, t, 0);
    return;
  }
  if (c->state == SC_ST_AUTHWAIT) {
    if (t == SC_FRAME_REGISTER)
      do_register(srv, c, f);
    else if (t == SC_FRAME_AUTH)
      do_auth(srv, c, f);
    else if (t == SC_FRAME_PING)
      do_ping(srv, c, f);
    else
      protocol_violation(srv, c, SC_WIRE_NOT_AUTHENTICATED, SECCHAT_ERR_UNEXPECTED_FRAME);
    return;
  }
  if (t == SC_FRAME_REGISTER || t == SC_FRAME_AUTH) {
    protocol_violation(srv, c, SC_WIRE_PROTOCOL, SECCHAT_ERR_UNEXPECTED_FRAME);
    return;
  }
  if (c->state == SC_ST_EXPIRED && t != SC_FRAME_RENEW && t != SC_FRAME_PING &&
      t != SC_FRAME_ROUTE_CLOSE) {
    uint64_t ref = t == SC_FRAME_GROUP_SEND ? f->u.group_send.ref
                   : t == SC_FRAME_DIRECT   ? f->u.direct.ref
                                            : 0;
    sc_srv_send_error(srv, c, SC_WIRE_TOKEN_EXPIRED, ref);
    return;
  }
  switch (t) {
  case SC_FRAME_RENEW: do_renew(srv, c, f); break;
  case SC_FRAME_LOOKUP_NAME:
  case SC_FRAME_LOOKUP_UID: sc_route_lookup(srv, c, f); break;
  case SC_FRAME_ROUTE_OPEN: sc_route_open(srv, c, f->u.route.route_id); break;
  case SC_FRAME_ROUTE_CLOSE: sc_route_close(srv, c, f->u.route.route_id); break;
  case SC_FRAME_GROUP_SEND:
    if (!sc_bucket_take(&c->b_group, srv->cfg.group_send_rate, srv->cfg.group_send_burst, 1000u, 1,
                        srv->now))
      limited(srv, c, &srv->st.limit_rate, t, f->u.group_send.ref);
    else
      sc_route_group_send(srv, c, f);
    break;
  case SC_FRAME_DIRECT:
    if (!sc_bucket_take(&c->b_direct, srv->cfg.direct_rate, srv->cfg.direct_burst, 1000u, 1,
                        srv->now))
      limited(srv, c, &srv->st.limit_rate, t, f->u.direct.ref);
    else
      sc_route_direct(srv, c, f);
    break;
  case SC_FRAME_PING: do_ping(srv, c, f); break;
  default: protocol_violation(srv, c, SC_WIRE_PROTOCOL, SECCHAT_ERR_UNEXPECTED_FRAME); break;
  }
}

/* One complete message from the deframer. */
static void on_message(secchat_server *srv, sc_conn *c, const uint8_t *msg, size_t len)
{
  if (c->state < SC_ST_AUTHWAIT)
    srv->st.frames_in++; /* a handshake message; transport ones count per frame */
  if (c->state == SC_ST_HS1) {
    handshake_msg1(srv, c, msg, len);
    return;
  }
  if (c->state == SC_ST_HS3) {
    handshake_msg3(srv, c, msg, len);
    return;
  }
  size_t ptlen = 0;
  int rc = sc_noise_transport_decrypt(&conn_secrets(srv, c)->u.t, msg, len, srv->rx,
                                      SECCHAT_MAX_WIRE_MESSAGE, &ptlen);
  if (rc != 0) { /* tampering on a reliable stream: nothing more to say */
    srv->st.protocol_errors++;
    sc_srv_log(srv, SECCHAT_LOG_INFO, "decrypt_fail", c, rc, 0, 0);
    sc_srv_condemn(srv, c, 0, 0, rc);
    return;
  }
  sc_records recs;
  rc = sc_records_open(&recs, srv->rx, ptlen);
  if (rc > SC_MAX_RECORDS_IN)
    rc = SECCHAT_ERR_TOO_MANY;
  if (rc < 0) {
    protocol_violation(srv, c, SC_WIRE_PROTOCOL, rc);
    return;
  }
  /* The frames of one message in order, as if each had come alone; a frame
   * that fails to decode closes the connection after the ones before it. */
  const uint8_t *body = NULL;
  size_t blen = 0;
  while (c->state != SC_ST_CLOSING && sc_records_next(&recs, &body, &blen)) {
    sc_frame f;
    srv->st.frames_in++;
    rc = sc_frame_decode(&f, body, blen);
    if (rc != 0) {
      protocol_violation(srv, c, SC_WIRE_PROTOCOL, rc);
      return;
    }
    dispatch(srv, c, &f);
  }
}

/* A deframer error: the length prefix itself is bad (A1, A2). */
static void on_frame_error(secchat_server *srv, sc_conn *c, int rc)
{
  if (c->state < SC_ST_AUTHWAIT) {
    handshake_failed(srv, c, rc);
    return;
  }
  protocol_violation(srv, c, rc == SECCHAT_ERR_FRAME_TOO_LARGE ? SC_WIRE_FRAME_TOO_LARGE
                                                               : SC_WIRE_PROTOCOL,
                     rc);
}

secchat_ssize secchat_server_conn_recv(secchat_server *srv, uint64_t conn, const uint8_t *in,
                                       size_t len, uint64_t now_ms)
{
  if (srv == NULL || (in == NULL && len > 0))
    return SECCHAT_ERR_INVALID_ARGUMENT;
  sc_conn *c = conn_get(srv, conn);
  if (c == NULL)
    return SECCHAT_ERR_NOT_FOUND;
  set_now(srv, now_ms);
  if (c->state == SC_ST_CLOSING)
    return (secchat_ssize)len;
  srv->st.bytes_in += len;
  if (len > 0)
    c->last_rx_ms = srv->now;
  size_t off = 0;
  while (off < len && c->state != SC_ST_CLOSING) {
    const uint8_t *msg = NULL;
    size_t mlen = 0;
    secchat_ssize n = sc_deframer_feed(&c->df, in + off, len - off, &msg, &mlen);
    if (n < 0) {
      on_frame_error(srv, c, (int)n);
      break;
    }
    off += (size_t)n;
    if (msg != NULL) {
      c->frame_start_ms = 0;
      on_message(srv, c, msg, mlen);
    }
  }
  if (c->state != SC_ST_CLOSING) {
    if (sc_deframer_in_progress(&c->df)) {
      if (c->frame_start_ms == 0)
        c->frame_start_ms = srv->now; /* a frame started: it must finish in time */
    } else {
      c->frame_start_ms = 0;
    }
    heap_update(srv, c, 1);
  }
  settle(srv);
  return (secchat_ssize)len;
}

/* ---- output ------------------------------------------------------------------------ */

int secchat_server_conn_output(secchat_server *srv, uint64_t conn, secchat_iovec *iov, int max)
{
  if (srv == NULL || (iov == NULL && max > 0) || max < 0)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  sc_conn *c = conn_get(srv, conn);
  if (c == NULL)
    return SECCHAT_ERR_NOT_FOUND;
  seal_open(srv, c);
  int n = 0;
  for (sc_chunk *ch = c->qhead; ch != NULL && n < max; ch = ch->next) {
    if (ch->tail == ch->head)
      continue;
    iov[n].base = ch->data + ch->head;
    iov[n].len = ch->tail - ch->head;
    n++;
  }
  return n;
}

size_t secchat_server_conn_pending(const secchat_server *srv, uint64_t conn)
{
  const sc_conn *c = srv != NULL ? conn_get(srv, conn) : NULL;
  return c != NULL ? c->qbytes : 0;
}

int secchat_server_conn_consumed(secchat_server *srv, uint64_t conn, size_t n)
{
  if (srv == NULL)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  sc_conn *c = conn_get(srv, conn);
  if (c == NULL)
    return SECCHAT_ERR_NOT_FOUND;
  seal_open(srv, c); /* only sealed bytes can have been handed out */
  if (n > c->qbytes) /* (a failed seal drops the queue: then any n > 0) */
    return SECCHAT_ERR_INVALID_ARGUMENT;
  c->qbytes -= n;
  while (n > 0 || (c->qhead != NULL && c->qhead->head == c->qhead->tail)) {
    sc_chunk *ch = c->qhead;
    size_t avail = ch->tail - ch->head;
    size_t take = n < avail ? n : avail;
    ch->head += (uint32_t)take;
    n -= take;
    if (ch->head == ch->tail) { /* drained: back to the pool */
      c->qhead = ch->next;
      if (c->qhead == NULL)
        c->qtail = NULL;
      chunk_put(srv, ch);
    }
  }
  if (c->qbytes == 0)
    c->want_write = 0;
  return 0;
}

int secchat_server_conn_closed(secchat_server *srv, uint64_t conn, uint64_t now_ms)
{
  if (srv == NULL)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  sc_conn *c = conn_get(srv, conn);
  if (c == NULL)
    return SECCHAT_ERR_NOT_FOUND;
  set_now(srv, now_ms);
  if (c->state != SC_ST_CLOSING) {
    /* The peer went away on its own: a partial frame is simply dropped. */
    sc_srv_log(srv, SECCHAT_LOG_INFO, "disconnect", c, 0, sc_deframer_in_progress(&c->df), 0);
    if (c->state == SC_ST_AUTHED || c->state == SC_ST_EXPIRED)
      srv->nauthed--;
    c->state = SC_ST_CLOSING;
    sc_dir_leave(srv, c);
    sc_route_leave_all(srv, c);
  } else if (c->doomed) { /* condemned in this very call chain: unlink */
    for (sc_conn **pp = &srv->doomed; *pp != NULL; pp = &(*pp)->doom_next)
      if (*pp == c) {
        *pp = c->doom_next;
        break;
      }
    sc_dir_leave(srv, c);
    sc_route_leave_all(srv, c);
  }
  conn_free(srv, c);
  settle(srv);
  return 0;
}

void secchat_server_shutdown(secchat_server *srv, uint64_t now_ms)
{
  if (srv == NULL)
    return;
  set_now(srv, now_ms);
  for (uint32_t i = 0; i < srv->cfg.max_conns; i++) {
    sc_conn *c = srv->conns[i];
    if (c != NULL && c->state != SC_ST_CLOSING)
      sc_srv_condemn(srv, c, SC_BYE_SHUTDOWN, 1, 0);
  }
  settle(srv);
}

/* ---- events ------------------------------------------------------------------------ */

int secchat_server_next_event(secchat_server *srv, secchat_server_event *ev)
{
  if (srv == NULL || ev == NULL)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  memset(ev, 0, sizeof *ev);
  ev->struct_size = sizeof *ev;
  if (srv->cur_job != NULL) { /* the previous FANOUT job was copied by now */
    sc_srv_release(srv, srv->cur_job, sizeof *srv->cur_job + srv->cur_job->cap);
    srv->cur_job = NULL;
  }
  while (srv->evq_n > 0) {
    sc_evq_item it = srv->evq[srv->evq_head];
    srv->evq_head = (srv->evq_head + 1) % srv->evq_cap;
    srv->evq_n--;
    sc_conn *c = conn_get(srv, it.conn);
    if (c == NULL)
      continue; /* freed meanwhile */
    if (it.type == SECCHAT_SERVER_EV_WANT_WRITE && c->qbytes == 0)
      continue; /* already written */
    ev->type = it.type;
    ev->conn = it.conn;
    ev->reason = it.reason;
    ev->flush = it.type == SECCHAT_SERVER_EV_CLOSE && c->qbytes > 0 ? it.flush : 0;
    return 1;
  }
  if (srv->jobs != NULL) {
    sc_job *j = srv->jobs;
    srv->jobs = j->next;
    if (srv->jobs == NULL)
      srv->jobs_tail = NULL;
    srv->cur_job = j;
    ev->type = SECCHAT_SERVER_EV_FANOUT;
    ev->job = j->data;
    ev->job_len = j->len;
    return 1;
  }
  if (srv->log_n > 0) {
    srv->cur_log = srv->logs[srv->log_head];
    srv->log_head = (srv->log_head + 1) % SC_LOG_RING;
    srv->log_n--;
    const sc_logrec *r = &srv->cur_log;
    ev->type = SECCHAT_SERVER_EV_LOG;
    ev->conn = r->conn;
    ev->level = r->level;
    ev->event = r->event;
    ev->code = r->code;
    ev->detail = r->detail;
    ev->has_uid = r->has_uid;
    memcpy(ev->uid, r->uid, sizeof ev->uid);
    ev->name = r->name;
    ev->name_len = r->name_len;
    ev->value = r->value;
    return 1;
  }
  evq_trim(srv); /* drained */
  return 0;
}

int secchat_server_fanout_in(secchat_server *srv, const uint8_t *job, size_t len, uint64_t now_ms)
{
  if (srv == NULL || (job == NULL && len > 0))
    return SECCHAT_ERR_INVALID_ARGUMENT;
  set_now(srv, now_ms);
  int rc = sc_srv_fanout_apply(srv, job, len);
  settle(srv);
  return rc;
}

/* ---- deadlines --------------------------------------------------------------------- */

uint64_t secchat_server_next_timeout(const secchat_server *srv)
{
  if (srv == NULL || srv->heap_n == 0)
    return UINT64_MAX;
  return srv->heap[0]->heap_key;
}

static void fire(secchat_server *srv, sc_conn *c)
{
  uint64_t now = srv->now;
  if (c->state < SC_ST_AUTHED && now >= c->opened_ms + srv->cfg.handshake_timeout_ms) {
    srv->st.timeouts_handshake++;
    sc_srv_condemn(srv, c, SC_BYE_AUTH_TIMEOUT, 1, SECCHAT_ERR_TIMEOUT);
  } else if (c->frame_start_ms != 0 && now >= c->frame_start_ms + srv->cfg.frame_timeout_ms) {
    srv->st.timeouts_frame++; /* slowloris: no BYE, it would not be read */
    sc_srv_condemn(srv, c, 0, 0, SECCHAT_ERR_TIMEOUT);
  } else if (now >= c->last_rx_ms + srv->cfg.idle_timeout_ms) {
    srv->st.timeouts_idle++;
    sc_srv_condemn(srv, c, SC_BYE_IDLE, 1, SECCHAT_ERR_TIMEOUT);
  } else if (c->state == SC_ST_AUTHED && now >= c->exp_ms) {
    c->state = SC_ST_EXPIRED;
    sc_srv_log(srv, SECCHAT_LOG_INFO, "token_expired", c, SECCHAT_ERR_TOKEN_EXPIRED, 0, 0);
    sc_srv_send_error(srv, c, SC_WIRE_TOKEN_EXPIRED, 0);
  } else if (c->state == SC_ST_EXPIRED && now >= c->exp_ms + srv->cfg.token_grace_ms) {
    srv->st.token_expired_closed++;
    sc_srv_condemn(srv, c, SC_BYE_TOKEN_EXPIRED, 1, SECCHAT_ERR_TOKEN_EXPIRED);
  }
  if (c->state != SC_ST_CLOSING)
    heap_update(srv, c, 0);
}

void secchat_server_on_timeout(secchat_server *srv, uint64_t now_ms)
{
  if (srv == NULL)
    return;
  set_now(srv, now_ms);
  while (srv->heap_n > 0 && srv->heap[0]->heap_key <= srv->now) {
    sc_conn *c = srv->heap[0];
    /* Several deadlines may be due at once (token expiry, then the end of
     * a zero grace period); each fire() changes the state. */
    for (int k = 0; k < 4 && c->heap_idx != UINT32_MAX && c->heap_key <= srv->now; k++)
      fire(srv, c);
    if (c->heap_idx != UINT32_MAX && c->heap_key <= srv->now)
      heap_remove(srv, c); /* a deadline that fires nothing: never spin */
  }
  settle(srv);
}

/* ---- stats -------------------------------------------------------------------------- */

void secchat_server_get_stats(const secchat_server *srv, secchat_server_stats *st)
{
  if (srv == NULL || st == NULL)
    return;
  *st = srv->st;
  st->struct_size = sizeof *st;
  st->conns_open = srv->nlive;
  st->conns_authenticated = srv->nauthed;
  st->routes = srv->nroutes;
  st->slab_bytes = sc_slab_bytes(&srv->slab);
  st->mem_bytes = srv->mem + st->slab_bytes;
  st->pool_bytes = 0;
  for (uint32_t i = 0; i < srv->npool_small; i++)
    st->pool_bytes += sizeof *srv->pool_small[i] + srv->pool_small[i]->cap;
  for (uint32_t i = 0; i < srv->npool_big; i++)
    st->pool_bytes += sizeof *srv->pool_big[i] + srv->pool_big[i]->cap;
}
