/* server_route.c: RAM-only routing of the relay: routes (opaque route id ->
 * connections), the online directory (uid and name -> connection), and the
 * relay of GROUP_SEND / DIRECT, LOOKUP and PRESENCE (docs/relay.md).
 *
 * Hot path: a GROUP_SEND's DELIVER body is encoded once into srv->fan; per
 * recipient it is copied as a record into the recipient's open transport
 * message, encrypted with the rest of that message when the host drains the
 * queue (server.c, sc_srv_send_body). Nothing here closes a connection in the
 * middle of an iteration: a recipient that overflows is only condemned, and
 * detached at the end of the public call (server.c, settle()). */
#include "server.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define CONN_OF(e, field) ((sc_conn *)(void *)((char *)(e)-offsetof(sc_conn, field)))

/* ---- routes --------------------------------------------------------------- */

sc_route *sc_route_find(const secchat_server *srv, const uint8_t *id)
{
  uint64_t h = sc_srv_hash(srv, id, SECCHAT_ROUTE_ID_BYTES);
  return (sc_route *)(void *)sc_map_find(&srv->routes, id, SECCHAT_ROUTE_ID_BYTES, h, NULL);
}

static int conn_route_pos(const sc_conn *c, const sc_route *r)
{
  for (int i = 0; i < c->nroutes; i++)
    if (c->routes[i] == r)
      return i;
  return -1;
}

/* Encode PRESENCE{route, uid, online} once and send it to every member of
 * r except `except`. */
void sc_route_presence(secchat_server *srv, sc_route *r, const sc_conn *except,
                       const uint8_t *uid, int online)
{
  if (srv->freeing || r->n == 0)
    return;
  sc_frame f;
  memset(&f, 0, sizeof f);
  f.type = SC_FRAME_PRESENCE;
  f.u.presence.route_id = r->id;
  f.u.presence.uid = uid;
  f.u.presence.online = online != 0;
  secchat_ssize blen = sc_srv_fan_frame(srv, &f);
  if (blen < 0)
    return;
  for (uint32_t i = r->n; i-- > 0;) {
    sc_conn *m = r->members[i];
    if (m != except && m->state != SC_ST_CLOSING)
      (void)sc_srv_send_body(srv, m, srv->fan, (size_t)blen);
  }
}

static void route_destroy(secchat_server *srv, sc_route *r)
{
  sc_map_remove(&srv->routes, &r->ent);
  sc_srv_release(srv, r->members, r->cap * sizeof *r->members);
  sc_srv_release(srv, r->rmembers, r->rcap * sizeof *r->rmembers);
  sc_srv_release(srv, r, sizeof *r);
  srv->nroutes--;
}

void sc_route_gc(secchat_server *srv, sc_route *r)
{
  if (r->n == 0 && r->rn == 0)
    route_destroy(srv, r);
}

sc_route *sc_route_get(secchat_server *srv, const uint8_t *id)
{
  sc_route *r = sc_route_find(srv, id);
  if (r != NULL)
    return r;
  r = sc_srv_calloc(srv, sizeof *r);
  if (r == NULL)
    return NULL;
  memcpy(r->id, id, SECCHAT_ROUTE_ID_BYTES);
  r->ent.key = r->id;
  r->ent.klen = SECCHAT_ROUTE_ID_BYTES;
  r->ent.hash = sc_srv_hash(srv, r->id, SECCHAT_ROUTE_ID_BYTES);
  sc_map_insert(srv, &srv->routes, &r->ent);
  srv->nroutes++;
  return r;
}

int sc_route_grow_remote(secchat_server *srv, sc_route *r)
{
  if (r->rn < r->rcap)
    return 0;
  uint32_t ncap = r->rcap ? r->rcap * 2 : 4;
  sc_rmember *a = sc_srv_alloc(srv, ncap * sizeof *a);
  if (a == NULL)
    return SECCHAT_ERR_NOMEM;
  if (r->rn > 0)
    memcpy(a, r->rmembers, r->rn * sizeof *a);
  sc_srv_release(srv, r->rmembers, r->rcap * sizeof *a);
  r->rmembers = a;
  r->rcap = ncap;
  return 0;
}

/* Take c off r (and r off c's list); PRESENCE offline to the rest. */
static void route_remove(secchat_server *srv, sc_route *r, sc_conn *c, int notify)
{
  for (uint32_t i = 0; i < r->n; i++) {
    if (r->members[i] == c) {
      r->members[i] = r->members[--r->n];
      break;
    }
  }
  int pos = conn_route_pos(c, r);
  if (pos >= 0)
    c->routes[pos] = c->routes[--c->nroutes];
  /* A replaced login (same uid, new connection) may already be on r: then
   * the uid has not left, and an "offline" would be stale. */
  for (uint32_t i = 0; notify && i < r->n; i++)
    if (memcmp(r->members[i]->uid, c->uid, 20) == 0)
      notify = 0;
  if (notify) {
    sc_route_presence(srv, r, c, c->uid, 0);
    sc_fan_route(srv, r, c->uid, 0);
  }
  sc_route_gc(srv, r);
}

/* Room for one more pointer in arr (n used of *cap, doubling up to max):
 * the array to use from now on (arr itself if it had room), or NULL (no
 * memory, or max reached; arr is then unchanged). */
static void *grow_ptrs(secchat_server *srv, void *arr, uint32_t n, uint32_t *cap, uint32_t max)
{
  if (n < *cap)
    return arr;
  uint32_t ncap = *cap ? *cap * 2 : 4;
  if (ncap > max)
    ncap = max;
  if (ncap <= n)
    return NULL;
  void *a = sc_srv_alloc(srv, ncap * sizeof(void *));
  if (a == NULL)
    return NULL;
  if (n > 0)
    memcpy(a, arr, n * sizeof(void *));
  sc_srv_release(srv, arr, *cap * sizeof(void *));
  *cap = ncap;
  return a;
}

void sc_route_open(secchat_server *srv, sc_conn *c, const uint8_t *route_id)
{
  sc_route *r = sc_route_find(srv, route_id);
  if (r != NULL && conn_route_pos(c, r) >= 0)
    return; /* already open: idempotent */
  if (c->nroutes >= srv->cfg.max_routes_per_conn) {
    srv->st.limit_routes++;
    sc_srv_log(srv, SECCHAT_LOG_DEBUG, "limit", c, SECCHAT_ERR_TOO_MANY, SC_FRAME_ROUTE_OPEN,
               c->nroutes);
    sc_srv_send_error(srv, c, SC_WIRE_TOO_MANY_ROUTES, 0);
    return;
  }
  if (r != NULL && r->n + r->rn >= srv->cfg.max_conns_per_route) {
    srv->st.limit_route_full++;
    sc_srv_log(srv, SECCHAT_LOG_DEBUG, "limit", c, SECCHAT_ERR_TOO_MANY, SC_FRAME_ROUTE_OPEN,
               r->n);
    sc_srv_send_error(srv, c, SC_WIRE_ROUTE_FULL, 0);
    return;
  }
  uint32_t rcap = c->routes_cap;
  sc_route **routes = grow_ptrs(srv, c->routes, c->nroutes, &rcap, srv->cfg.max_routes_per_conn);
  if (routes == NULL)
    goto nomem;
  c->routes = routes;
  c->routes_cap = (uint16_t)rcap;
  r = sc_route_get(srv, route_id);
  if (r == NULL)
    goto nomem;
  sc_conn **members = grow_ptrs(srv, r->members, r->n, &r->cap, srv->cfg.max_conns_per_route);
  if (members == NULL) {
    sc_route_gc(srv, r);
    goto nomem;
  }
  r->members = members;
  /* Tell the others, then tell the newcomer who is already there. */
  sc_route_presence(srv, r, c, c->uid, 1);
  for (uint32_t i = 0; i < r->n && c->state != SC_ST_CLOSING; i++) {
    if (r->members[i]->state == SC_ST_CLOSING)
      continue;
    sc_frame f;
    memset(&f, 0, sizeof f);
    f.type = SC_FRAME_PRESENCE;
    f.u.presence.route_id = r->id;
    f.u.presence.uid = r->members[i]->uid;
    f.u.presence.online = true;
    (void)sc_srv_send_frame(srv, c, &f);
  }
  for (uint32_t i = 0; i < r->rn && c->state != SC_ST_CLOSING; i++) {
    sc_frame f;
    memset(&f, 0, sizeof f);
    f.type = SC_FRAME_PRESENCE;
    f.u.presence.route_id = r->id;
    f.u.presence.uid = r->rmembers[i].uid;
    f.u.presence.online = true;
    (void)sc_srv_send_frame(srv, c, &f);
  }
  r->members[r->n++] = c;
  c->routes[c->nroutes++] = r;
  sc_fan_route(srv, r, c->uid, 1);
  sc_srv_log(srv, SECCHAT_LOG_DEBUG, "route_open", c, 0, 0, r->n);
  return;
nomem:
  sc_srv_log(srv, SECCHAT_LOG_ERROR, "route_open_fail", c, SECCHAT_ERR_NOMEM, 0, 0);
  sc_srv_send_error(srv, c, SC_WIRE_PROTOCOL, 0);
}

void sc_route_close(secchat_server *srv, sc_conn *c, const uint8_t *route_id)
{
  sc_route *r = sc_route_find(srv, route_id);
  if (r == NULL || conn_route_pos(c, r) < 0)
    return; /* not open: nothing to do */
  route_remove(srv, r, c, 1);
  sc_srv_log(srv, SECCHAT_LOG_DEBUG, "route_close", c, 0, 0, 0);
}

void sc_route_leave_all(secchat_server *srv, sc_conn *c)
{
  while (c->nroutes > 0)
    route_remove(srv, c->routes[c->nroutes - 1], c, 1);
  sc_srv_release(srv, c->routes, c->routes_cap * sizeof *c->routes);
  c->routes = NULL;
  c->routes_cap = 0;
}

/* ---- relay ------------------------------------------------------------------ */

void sc_route_group_send(secchat_server *srv, sc_conn *c, const sc_frame *f)
{
  uint64_t ref = f->u.group_send.ref;
  sc_route *r = sc_route_find(srv, f->u.group_send.route_id);
  if (r == NULL || conn_route_pos(c, r) < 0) { /* only members may send */
    sc_srv_send_error(srv, c, SC_WIRE_UNKNOWN_RECIPIENT, ref);
    return;
  }
  uint64_t recipients = (uint64_t)r->n - 1 + r->rn;
  uint64_t cost = (uint64_t)f->u.group_send.blob.len * recipients;
  if (cost > 0 && !sc_bucket_take(&c->b_fanout, srv->cfg.fanout_bytes_rate,
                                  srv->cfg.fanout_bytes_burst, 1000u, cost, srv->now)) {
    srv->st.limit_fanout++;
    sc_srv_log(srv, SECCHAT_LOG_DEBUG, "limit", c, SECCHAT_ERR_RATE_LIMITED,
               SC_FRAME_GROUP_SEND, cost);
    sc_srv_send_error(srv, c, SC_WIRE_RATE_LIMITED, ref);
    return;
  }
  if (recipients > 0) {
    sc_frame d;
    memset(&d, 0, sizeof d);
    d.type = SC_FRAME_DELIVER;
    d.u.deliver.route_id = r->id;
    d.u.deliver.blob = f->u.group_send.blob;
    secchat_ssize blen = sc_srv_fan_frame(srv, &d);
    if (blen < 0) { /* cannot happen: the limits are derived so that it fits */
      sc_srv_send_error(srv, c, SC_WIRE_FRAME_TOO_LARGE, ref);
      return;
    }
    for (uint32_t i = r->n; i-- > 0;) {
      sc_conn *m = r->members[i];
      if (m == c || m->state == SC_ST_CLOSING)
        continue;
      if (sc_srv_send_body(srv, m, srv->fan, (size_t)blen) == 0)
        srv->st.deliveries++;
    }
    if (r->rn > 0)
      sc_fan_deliver(srv, r, srv->fan, (size_t)blen);
  }
  srv->st.relayed++;
  sc_frame a;
  memset(&a, 0, sizeof a);
  a.type = SC_FRAME_RELAYED;
  a.u.relayed.ref = ref;
  (void)sc_srv_send_frame(srv, c, &a);
}

sc_conn *sc_dir_find_uid(const secchat_server *srv, const uint8_t *uid)
{
  uint64_t h = sc_srv_hash(srv, uid, SECCHAT_UID_BYTES);
  sc_mapent *e = sc_map_find(&srv->uids, uid, SECCHAT_UID_BYTES, h, NULL);
  return e != NULL ? CONN_OF(e, uid_ent) : NULL;
}

void sc_route_direct(secchat_server *srv, sc_conn *c, const sc_frame *f)
{
  uint64_t ref = f->u.direct.ref;
  sc_conn *dst = sc_dir_find_uid(srv, f->u.direct.to_uid);
  if (dst != NULL && dst->state == SC_ST_CLOSING)
    dst = NULL;
  sc_rdir *rd = dst == NULL ? sc_rdir_find_uid(srv, f->u.direct.to_uid) : NULL;
  if (dst == NULL && rd == NULL) {
    sc_srv_send_error(srv, c, SC_WIRE_UNKNOWN_RECIPIENT, ref);
    return;
  }
  if (!sc_bucket_take(&c->b_fanout, srv->cfg.fanout_bytes_rate, srv->cfg.fanout_bytes_burst,
                      1000u, f->u.direct.blob.len, srv->now)) {
    srv->st.limit_fanout++;
    sc_srv_log(srv, SECCHAT_LOG_DEBUG, "limit", c, SECCHAT_ERR_RATE_LIMITED, SC_FRAME_DIRECT,
               f->u.direct.blob.len);
    sc_srv_send_error(srv, c, SC_WIRE_RATE_LIMITED, ref);
    return;
  }
  sc_frame d;
  memset(&d, 0, sizeof d);
  d.type = SC_FRAME_DIRECT_DELIVER;
  d.u.direct_deliver.from_uid = c->uid;
  d.u.direct_deliver.from_token.p = c->token;
  d.u.direct_deliver.from_token.len = c->token_len;
  d.u.direct_deliver.blob = f->u.direct.blob;
  secchat_ssize n = sc_frame_encode(&d, srv->fan, SECCHAT_MAX_FRAME_BODY);
  if (n < 0) {
    sc_srv_send_error(srv, c, SC_WIRE_FRAME_TOO_LARGE, ref);
    return;
  }
  if (dst == NULL) {
    sc_fan_direct(srv, f->u.direct.to_uid, srv->fan, (size_t)n);
  } else if (sc_srv_send_body(srv, dst, srv->fan, (size_t)n) != 0) {
    sc_srv_send_error(srv, c, SC_WIRE_QUEUE_FULL, ref);
    return;
  }
  srv->st.directs++;
  sc_frame a;
  memset(&a, 0, sizeof a);
  a.type = SC_FRAME_RELAYED;
  a.u.relayed.ref = ref;
  (void)sc_srv_send_frame(srv, c, &a);
}

void sc_route_lookup(secchat_server *srv, sc_conn *c, const sc_frame *f)
{
  sc_frame r;
  memset(&r, 0, sizeof r);
  r.type = SC_FRAME_LOOKUP_RESULT;
  size_t k = 0;
  if (f->type == SC_FRAME_LOOKUP_UID) {
    sc_conn *m = sc_dir_find_uid(srv, f->u.lookup_uid.uid);
    sc_rdir *rd = sc_rdir_find_uid(srv, f->u.lookup_uid.uid);
    if (m != NULL && m->state != SC_ST_CLOSING) {
      r.u.lookup_result.tokens[k].p = m->token;
      r.u.lookup_result.tokens[k++].len = m->token_len;
    } else if (rd != NULL) {
      r.u.lookup_result.tokens[k].p = rd->token;
      r.u.lookup_result.tokens[k++].len = rd->token_len;
    }
  } else {
    const uint8_t *key = (const uint8_t *)f->u.lookup_name.name.p;
    uint32_t klen = (uint32_t)f->u.lookup_name.name.len;
    uint64_t h = sc_srv_hash(srv, key, klen);
    /* Names are not unique (nothing is stored, anyone may register any
     * name): return up to SC_MAX_LOOKUP_TOKENS online holders. */
    for (sc_mapent *e = sc_map_find(&srv->names, key, klen, h, NULL);
         e != NULL && k < SC_MAX_LOOKUP_TOKENS; e = sc_map_find(&srv->names, key, klen, h, e)) {
      sc_conn *m = CONN_OF(e, name_ent);
      if (m->state == SC_ST_CLOSING)
        continue;
      r.u.lookup_result.tokens[k].p = m->token;
      r.u.lookup_result.tokens[k++].len = m->token_len;
    }
    for (sc_mapent *e = sc_map_find(&srv->rnames, key, klen, h, NULL);
         e != NULL && k < SC_MAX_LOOKUP_TOKENS; e = sc_map_find(&srv->rnames, key, klen, h, e)) {
      sc_rdir *rd = (sc_rdir *)(void *)((char *)e - offsetof(sc_rdir, name_ent));
      r.u.lookup_result.tokens[k].p = rd->token;
      r.u.lookup_result.tokens[k++].len = rd->token_len;
    }
  }
  r.u.lookup_result.count = k;
  (void)sc_srv_send_frame(srv, c, &r);
}

/* ---- directory ------------------------------------------------------------ */

void sc_dir_enter(secchat_server *srv, sc_conn *c)
{
  sc_conn *old = sc_dir_find_uid(srv, c->uid);
  if (old != NULL && old != c) { /* one live connection per uid */
    sc_dir_leave(srv, old);
    srv->st.replaced++;
    sc_srv_condemn(srv, old, SC_BYE_REPLACED, 1, 0);
  }
  c->uid_ent.key = c->uid;
  c->uid_ent.klen = SECCHAT_UID_BYTES;
  c->uid_ent.hash = sc_srv_hash(srv, c->uid, SECCHAT_UID_BYTES);
  sc_map_insert(srv, &srv->uids, &c->uid_ent);
  c->name_ent.key = (const uint8_t *)c->name;
  c->name_ent.klen = c->name_len;
  c->name_ent.hash = sc_srv_hash(srv, c->name_ent.key, c->name_len);
  sc_map_insert(srv, &srv->names, &c->name_ent);
  c->in_dir = 1;
  c->login_ms = srv->now;
  sc_fan_online(srv, c);
}

void sc_dir_leave(secchat_server *srv, sc_conn *c)
{
  if (!c->in_dir)
    return;
  sc_map_remove(&srv->uids, &c->uid_ent);
  sc_map_remove(&srv->names, &c->name_ent);
  c->in_dir = 0;
  sc_fan_offline(srv, c);
}
