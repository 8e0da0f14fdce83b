/* server_fanout.c: cluster mode, several workers (threads, later nodes)
 * each with its own server core, sharing users and routes through fanout
 * jobs (docs/relay.md, "Workers").
 *
 * Every worker broadcasts what the others need to know and keeps a replica:
 *   ROUTE    a local connection joined / left a route: the others keep the
 *            remote member list per route (caps, fanout cost, PRESENCE for
 *            newcomers) and tell their own members;
 *   ONLINE   a local user authenticated (or renewed): the others keep its
 *            uid, name and token (LOOKUP, DIRECT routing) and close their own
 *            older connection of that uid (one connection per uid);
 *   OFFLINE  it left;
 *   DELIVER  a GROUP_SEND's DELIVER body, only for routes with remote
 *            members; each worker sends it to its local members;
 *   DIRECT   a DIRECT_DELIVER body for a uid on another worker.
 * A job is a canonical msgpack array [type, origin_worker, fields...];
 * fanout_in validates it as strictly as a frame (it may cross machines
 * later), including the relayed body, which must decode as the frame type
 * the job claims. The newest login wins by (login_ms, worker id). */
#include "server.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "mp.h"

enum {
  JOB_DELIVER = 1,
  JOB_DIRECT = 2,
  JOB_ROUTE = 3,
  JOB_ONLINE = 4,
  JOB_OFFLINE = 5
};

#define JOB_OVERHEAD 128u /* array header, type, origin, ids, bin headers */

#define RDIR_OF(e, field) ((sc_rdir *)(void *)((char *)(e)-offsetof(sc_rdir, field)))

static int active(const secchat_server *srv) { return srv->cfg.cluster && !srv->freeing; }

/* ---- emitting --------------------------------------------------------------- */

static sc_job *job_begin(secchat_server *srv, size_t cap, sc_mp_writer *w)
{
  sc_job *j = sc_srv_alloc(srv, sizeof *j + cap);
  if (j == NULL) {
    srv->st.drops_fanout++;
    return NULL;
  }
  j->next = NULL;
  j->cap = cap;
  j->len = 0;
  sc_mp_writer_init(w, j->data, cap);
  return j;
}

static void job_end(secchat_server *srv, sc_job *j, const sc_mp_writer *w)
{
  int64_t n = sc_mp_writer_finish(w);
  if (n < 0) { /* cannot happen: capacities include the worst case */
    srv->st.drops_fanout++;
    sc_srv_release(srv, j, sizeof *j + j->cap);
    return;
  }
  j->len = (size_t)n;
  if (srv->jobs_tail != NULL)
    srv->jobs_tail->next = j;
  else
    srv->jobs = j;
  srv->jobs_tail = j;
  srv->st.fanout_out++;
}

static void job_head(sc_mp_writer *w, uint32_t count, int type, uint32_t origin)
{
  sc_mp_write_array(w, count);
  sc_mp_write_uint(w, (uint64_t)type);
  sc_mp_write_uint(w, origin);
}

void sc_fan_route(secchat_server *srv, const sc_route *r, const uint8_t *uid, int online)
{
  if (!active(srv))
    return;
  sc_mp_writer w;
  sc_job *j = job_begin(srv, JOB_OVERHEAD, &w);
  if (j == NULL)
    return;
  job_head(&w, 5, JOB_ROUTE, srv->cfg.worker_id);
  sc_mp_write_bin(&w, r->id, SECCHAT_ROUTE_ID_BYTES);
  sc_mp_write_bin(&w, uid, SECCHAT_UID_BYTES);
  sc_mp_write_bool(&w, online != 0);
  job_end(srv, j, &w);
}

static void fan_body(secchat_server *srv, int type, const uint8_t *id, size_t idlen,
                     const uint8_t *body, size_t len)
{
  sc_mp_writer w;
  sc_job *j = job_begin(srv, JOB_OVERHEAD + len, &w);
  if (j == NULL)
    return;
  job_head(&w, 4, type, srv->cfg.worker_id);
  sc_mp_write_bin(&w, id, idlen);
  sc_mp_write_bin(&w, body, len);
  job_end(srv, j, &w);
}

void sc_fan_deliver(secchat_server *srv, const sc_route *r, const uint8_t *body, size_t len)
{
  if (active(srv))
    fan_body(srv, JOB_DELIVER, r->id, SECCHAT_ROUTE_ID_BYTES, body, len);
}

void sc_fan_direct(secchat_server *srv, const uint8_t *to_uid, const uint8_t *body, size_t len)
{
  if (active(srv))
    fan_body(srv, JOB_DIRECT, to_uid, SECCHAT_UID_BYTES, body, len);
}

void sc_fan_online(secchat_server *srv, const sc_conn *c)
{
  if (!active(srv))
    return;
  sc_mp_writer w;
  sc_job *j = job_begin(srv, JOB_OVERHEAD + c->name_len + c->token_len, &w);
  if (j == NULL)
    return;
  job_head(&w, 6, JOB_ONLINE, srv->cfg.worker_id);
  sc_mp_write_bin(&w, c->uid, SECCHAT_UID_BYTES);
  sc_mp_write_uint(&w, c->login_ms);
  sc_mp_write_str(&w, c->name, c->name_len);
  sc_mp_write_str(&w, c->token, c->token_len);
  job_end(srv, j, &w);
}

void sc_fan_offline(secchat_server *srv, const sc_conn *c)
{
  if (!active(srv))
    return;
  sc_mp_writer w;
  sc_job *j = job_begin(srv, JOB_OVERHEAD, &w);
  if (j == NULL)
    return;
  job_head(&w, 4, JOB_OFFLINE, srv->cfg.worker_id);
  sc_mp_write_bin(&w, c->uid, SECCHAT_UID_BYTES);
  sc_mp_write_uint(&w, c->login_ms);
  job_end(srv, j, &w);
}

/* ---- remote directory -------------------------------------------------------- */

sc_rdir *sc_rdir_find_uid(const secchat_server *srv, const uint8_t *uid)
{
  if (!srv->cfg.cluster)
    return NULL;
  uint64_t h = sc_srv_hash(srv, uid, SECCHAT_UID_BYTES);
  sc_mapent *e = sc_map_find(&srv->ruids, uid, SECCHAT_UID_BYTES, h, NULL);
  return e != NULL ? RDIR_OF(e, uid_ent) : NULL;
}

static void rdir_free(secchat_server *srv, sc_rdir *d)
{
  sc_map_remove(&srv->ruids, &d->uid_ent);
  sc_map_remove(&srv->rnames, &d->name_ent);
  if (d->token != NULL)
    sodium_memzero(d->token, d->token_len);
  sc_srv_release(srv, d->token, (size_t)d->token_len + 1);
  sc_srv_release(srv, d->name, d->name_len ? d->name_len : 1);
  sc_srv_release(srv, d, sizeof *d);
}

/* Set name and token of d (d is out of the name map meanwhile). */
static int rdir_fill(secchat_server *srv, sc_rdir *d, const char *name, size_t nlen,
                     const char *tok, size_t tlen)
{
  char *n = sc_srv_alloc(srv, nlen ? nlen : 1);
  char *t = sc_srv_alloc(srv, tlen + 1);
  if (n == NULL || t == NULL) {
    sc_srv_release(srv, n, nlen ? nlen : 1);
    sc_srv_release(srv, t, tlen + 1);
    return SECCHAT_ERR_NOMEM;
  }
  memcpy(n, name, nlen);
  memcpy(t, tok, tlen);
  t[tlen] = '\0';
  if (d->token != NULL)
    sodium_memzero(d->token, d->token_len);
  sc_srv_release(srv, d->token, (size_t)d->token_len + 1);
  sc_srv_release(srv, d->name, d->name_len ? d->name_len : 1);
  d->name = n;
  d->name_len = (uint8_t)nlen;
  d->token = t;
  d->token_len = (uint16_t)tlen;
  d->name_ent.key = (const uint8_t *)d->name;
  d->name_ent.klen = (uint32_t)nlen;
  d->name_ent.hash = sc_srv_hash(srv, d->name_ent.key, nlen);
  return 0;
}

/* (login_ms, worker) order: 1 if a is newer than b. */
static int newer(uint64_t a_ms, uint32_t a_w, uint64_t b_ms, uint32_t b_w)
{
  return a_ms > b_ms || (a_ms == b_ms && a_w > b_w);
}

static int apply_online(secchat_server *srv, uint32_t origin, const uint8_t *uid,
                        uint64_t login_ms, const char *name, size_t nlen, const char *tok,
                        size_t tlen)
{
  sc_rdir *d = sc_rdir_find_uid(srv, uid);
  if (d != NULL && newer(d->login_ms, d->worker, login_ms, origin))
    d = NULL; /* we hold a newer login already: this one is on its way out */
  else if (d == NULL) {
    d = sc_srv_calloc(srv, sizeof *d);
    if (d == NULL)
      return SECCHAT_ERR_NOMEM;
    memcpy(d->uid, uid, SECCHAT_UID_BYTES);
    d->uid_ent.key = d->uid;
    d->uid_ent.klen = SECCHAT_UID_BYTES;
    d->uid_ent.hash = sc_srv_hash(srv, uid, SECCHAT_UID_BYTES);
    if (rdir_fill(srv, d, name, nlen, tok, tlen) != 0) {
      sc_srv_release(srv, d, sizeof *d);
      return SECCHAT_ERR_NOMEM;
    }
    sc_map_insert(srv, &srv->ruids, &d->uid_ent);
    sc_map_insert(srv, &srv->rnames, &d->name_ent);
  } else {
    sc_map_remove(&srv->rnames, &d->name_ent);
    int rc = rdir_fill(srv, d, name, nlen, tok, tlen);
    sc_map_insert(srv, &srv->rnames, &d->name_ent);
    if (rc != 0)
      return rc;
  }
  if (d != NULL) {
    d->worker = (uint16_t)origin;
    d->login_ms = login_ms;
  }
  /* One live connection per uid across workers: the newest login wins. */
  sc_conn *c = sc_dir_find_uid(srv, uid);
  if (c != NULL && c->state != SC_ST_CLOSING &&
      newer(login_ms, origin, c->login_ms, srv->cfg.worker_id)) {
    sc_dir_leave(srv, c);
    srv->st.replaced++;
    sc_srv_condemn(srv, c, SC_BYE_REPLACED, 1, 0);
  }
  return 0;
}

static void apply_offline(secchat_server *srv, uint32_t origin, const uint8_t *uid,
                          uint64_t login_ms)
{
  sc_rdir *d = sc_rdir_find_uid(srv, uid);
  if (d != NULL && d->worker == origin && d->login_ms == login_ms)
    rdir_free(srv, d);
}

/* ---- remote route membership -------------------------------------------------- */

static int apply_route(secchat_server *srv, uint32_t origin, const uint8_t *id,
                       const uint8_t *uid, bool online)
{
  sc_route *r = online ? sc_route_get(srv, id) : sc_route_find(srv, id);
  if (r == NULL)
    return online ? SECCHAT_ERR_NOMEM : 0;
  uint32_t i = 0;
  while (i < r->rn && !(r->rmembers[i].worker == origin &&
                        memcmp(r->rmembers[i].uid, uid, SECCHAT_UID_BYTES) == 0))
    i++;
  if (online) {
    if (i < r->rn)
      return 0; /* known */
    if (sc_route_grow_remote(srv, r) != 0) {
      sc_route_gc(srv, r);
      return SECCHAT_ERR_NOMEM;
    }
    memcpy(r->rmembers[r->rn].uid, uid, SECCHAT_UID_BYTES);
    r->rmembers[r->rn++].worker = (uint16_t)origin;
    sc_route_presence(srv, r, NULL, uid, 1);
  } else {
    if (i == r->rn)
      return 0;
    r->rmembers[i] = r->rmembers[--r->rn];
    sc_route_presence(srv, r, NULL, uid, 0);
    sc_route_gc(srv, r);
  }
  return 0;
}

/* ---- relayed bodies ------------------------------------------------------------------ */

static void apply_deliver(secchat_server *srv, const uint8_t *id, const uint8_t *body,
                          size_t len)
{
  sc_route *r = sc_route_find(srv, id);
  if (r == NULL || r->n == 0)
    return;
  for (uint32_t i = r->n; i-- > 0;) {
    sc_conn *m = r->members[i];
    if (m->state != SC_ST_CLOSING && sc_srv_send_body(srv, m, body, len) == 0)
      srv->st.deliveries++;
  }
}

static void apply_direct(secchat_server *srv, const uint8_t *uid, const uint8_t *body,
                         size_t len)
{
  sc_conn *c = sc_dir_find_uid(srv, uid);
  if (c != NULL && c->state != SC_ST_CLOSING)
    (void)sc_srv_send_body(srv, c, body, len);
}

/* ---- fanout_in ------------------------------------------------------------------------ */

static int parse_and_apply(secchat_server *srv, const uint8_t *job, size_t len)
{
  int rc = sc_mp_validate(job, len, 1);
  if (rc != 0)
    return rc;
  sc_mp_reader r;
  sc_mp_reader_init(&r, job, len);
  uint32_t count;
  uint64_t type, origin;
  if (sc_mp_read_array(&r, &count) != 0 || count < 4 || sc_mp_read_uint(&r, &type) != 0 ||
      sc_mp_read_uint(&r, &origin) != 0 || origin > 0xffffu)
    return SECCHAT_ERR_PROTOCOL;
  if (origin == srv->cfg.worker_id)
    return 0; /* our own broadcast */
  const uint8_t *id, *body;
  size_t blen;
  sc_frame f;
  switch (type) {
  case JOB_DELIVER:
  case JOB_DIRECT: {
    size_t idlen = type == JOB_DELIVER ? SECCHAT_ROUTE_ID_BYTES : SECCHAT_UID_BYTES;
    if (count != 4 || sc_mp_read_bin_exact(&r, &id, idlen) != 0 ||
        sc_mp_read_bin(&r, &body, &blen, 1, SECCHAT_MAX_FRAME_BODY) != 0)
      return SECCHAT_ERR_PROTOCOL;
    rc = sc_frame_decode(&f, body, blen);
    if (rc != 0)
      return rc;
    if (type == JOB_DELIVER) {
      if (f.type != SC_FRAME_DELIVER ||
          memcmp(f.u.deliver.route_id, id, SECCHAT_ROUTE_ID_BYTES) != 0)
        return SECCHAT_ERR_PROTOCOL;
      apply_deliver(srv, id, body, blen);
    } else {
      if (f.type != SC_FRAME_DIRECT_DELIVER)
        return SECCHAT_ERR_PROTOCOL;
      apply_direct(srv, id, body, blen);
    }
    return 0;
  }
  case JOB_ROUTE: {
    const uint8_t *uid;
    bool online;
    if (count != 5 || sc_mp_read_bin_exact(&r, &id, SECCHAT_ROUTE_ID_BYTES) != 0 ||
        sc_mp_read_bin_exact(&r, &uid, SECCHAT_UID_BYTES) != 0 ||
        sc_mp_read_bool(&r, &online) != 0)
      return SECCHAT_ERR_PROTOCOL;
    return apply_route(srv, (uint32_t)origin, id, uid, online);
  }
  case JOB_ONLINE: {
    uint64_t login_ms;
    const char *name, *tok;
    size_t nlen, tlen;
    if (count != 6 || sc_mp_read_bin_exact(&r, &id, SECCHAT_UID_BYTES) != 0 ||
        sc_mp_read_uint(&r, &login_ms) != 0 ||
        sc_mp_read_str(&r, &name, &nlen, 1, SC_MAX_NAME_BYTES) != 0 ||
        sc_mp_read_str(&r, &tok, &tlen, 1, SECCHAT_MAX_TOKEN_BYTES) != 0)
      return SECCHAT_ERR_PROTOCOL;
    return apply_online(srv, (uint32_t)origin, id, login_ms, name, nlen, tok, tlen);
  }
  case JOB_OFFLINE: {
    uint64_t login_ms;
    if (count != 4 || sc_mp_read_bin_exact(&r, &id, SECCHAT_UID_BYTES) != 0 ||
        sc_mp_read_uint(&r, &login_ms) != 0)
      return SECCHAT_ERR_PROTOCOL;
    apply_offline(srv, (uint32_t)origin, id, login_ms);
    return 0;
  }
  default: return SECCHAT_ERR_PROTOCOL;
  }
}

int sc_srv_fanout_apply(secchat_server *srv, const uint8_t *job, size_t len)
{
  if (!srv->cfg.cluster)
    return SECCHAT_ERR_INVALID_STATE;
  srv->st.fanout_in++;
  int rc = parse_and_apply(srv, job, len);
  if (rc != 0) {
    srv->st.fanout_bad++;
    sc_srv_log(srv, SECCHAT_LOG_ERROR, "fanout_bad", NULL, rc, 0, len);
  }
  return rc;
}

/* ---- teardown ------------------------------------------------------------------------ */

void sc_fan_free(secchat_server *srv)
{
  if (srv->ruids.b != NULL && srv->rnames.b != NULL) {
    for (uint32_t i = 0; i < srv->ruids.nb; i++)
      while (srv->ruids.b[i] != NULL)
        rdir_free(srv, RDIR_OF(srv->ruids.b[i], uid_ent));
  }
  if (srv->routes.b != NULL) {
    for (uint32_t i = 0; i < srv->routes.nb; i++)
      while (srv->routes.b[i] != NULL) {
        sc_route *r = (sc_route *)(void *)srv->routes.b[i];
        r->n = 0; /* every local connection is gone by now */
        r->rn = 0;
        sc_route_gc(srv, r);
      }
  }
  while (srv->jobs != NULL) {
    sc_job *j = srv->jobs;
    srv->jobs = j->next;
    sc_srv_release(srv, j, sizeof *j + j->cap);
  }
  srv->jobs_tail = NULL;
  if (srv->cur_job != NULL)
    sc_srv_release(srv, srv->cur_job, sizeof *srv->cur_job + srv->cur_job->cap);
  srv->cur_job = NULL;
}
