/* client.c: the client core's relay session: Noise XX initiator, server key
 * pinning, register / login / renewal, the relay queue (GROUP_SEND and
 * DIRECT stay queued until RELAYED{ref} and are re-sent with the same ref
 * after a reconnect), keepalive, and the event queue. docs/client.md. */
#include "client.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "crypto.h"
#include "group.h"
#include "identity.h"
#include "mp.h"
#include "rng.h"
#include "servkey.h"

#define SC_CLIENT_MAX_OUTPUT (8u * 1024u * 1024u) /* pending socket bytes */
#define SC_CLIENT_MAX_EVENTS 65536u
#define SC_CLIENT_MAX_EVENT_BYTES (64u * 1024u * 1024u) /* data held by queued events */
#define SC_PROTO_MINOR_C 0u
#define SC_PROTO_FEATURES_C 0u

/* ---- small helpers ---------------------------------------------------------- */

int64_t sc_client_now_s(const secchat_client *c) { return (int64_t)(c->now / 1000u); }

static void set_now(secchat_client *c, uint64_t now_ms)
{
  if (now_ms > c->now)
    c->now = now_ms;
}

static void free_secret_str(char **p, size_t len)
{
  if (*p != NULL) {
    sodium_memzero(*p, len);
    free(*p);
    *p = NULL;
  }
}

/* ---- events ------------------------------------------------------------------ */

secchat_client_event *sc_client_event(secchat_client *c, uint32_t type, const uint8_t *data,
                                      size_t data_len, const char *name, size_t name_len)
{
  /* Bounded even if the host stops draining while a peer keeps sending. */
  if (c->ev_n >= SC_CLIENT_MAX_EVENTS || c->ev_bytes + data_len > SC_CLIENT_MAX_EVENT_BYTES) {
    c->ev_dropped++;
    return NULL;
  }
  sc_cev *e = calloc(1, sizeof *e);
  if (e == NULL) {
    c->ev_dropped++;
    return NULL;
  }
  if (data_len > 0) {
    e->data = malloc(data_len);
    if (e->data == NULL) {
      free(e);
      c->ev_dropped++;
      return NULL;
    }
    memcpy(e->data, data, data_len);
  }
  if (name_len > sizeof e->name)
    name_len = sizeof e->name;
  if (name_len > 0)
    memcpy(e->name, name, name_len);
  e->ev.struct_size = sizeof e->ev;
  e->ev.type = type;
  e->ev.name_len = name_len;
  e->ev.data_len = data_len;
  c->ev_bytes += data_len;
  if (c->ev_tail != NULL)
    c->ev_tail->next = e;
  else
    c->ev_head = e;
  c->ev_tail = e;
  c->ev_n++;
  return &e->ev;
}

static void cev_free(sc_cev *e)
{
  if (e == NULL)
    return;
  if (e->data != NULL) {
    sodium_memzero(e->data, e->ev.data_len);
    free(e->data);
  }
  sodium_memzero(e, sizeof *e);
  free(e);
}

int secchat_client_next_event(secchat_client *c, secchat_client_event *ev)
{
  if (c == NULL || ev == NULL || ev->struct_size < sizeof *ev)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  cev_free(c->ev_out);
  c->ev_out = NULL;
  sc_cev *e = c->ev_head;
  if (e == NULL)
    return 0;
  c->ev_head = e->next;
  if (c->ev_head == NULL)
    c->ev_tail = NULL;
  c->ev_n--;
  c->ev_bytes -= e->ev.data_len;
  c->ev_out = e;
  *ev = e->ev;
  ev->struct_size = sizeof *ev;
  ev->data = e->data;
  ev->name = e->ev.name_len > 0 ? e->name : NULL;
  return 1;
}

size_t secchat_client_event_size(void) { return sizeof(secchat_client_event); }
size_t secchat_contact_size(void) { return sizeof(secchat_contact); }

/* ---- configuration and lifecycle ----------------------------------------------- */

void secchat_client_config_init(secchat_client_config *cfg)
{
  if (cfg == NULL)
    return;
  memset(cfg, 0, sizeof *cfg);
  cfg->struct_size = sizeof *cfg;
  cfg->ping_interval_ms = 60000;
  cfg->dead_after_ms = 180000;
  cfg->max_relay_queue = 1024;
  cfg->max_pairwise_queue = 64;
  cfg->max_contacts = 4096;
  cfg->pairwise_max_messages = 10000;
  cfg->pairwise_max_age_s = 86400;
  cfg->pairwise_retry_ms = 10000;
  cfg->pairwise_attempts = 5;
}

int secchat_client_new(secchat_client **out, const secchat_client_config *cfg)
{
  if (out == NULL || cfg == NULL || cfg->struct_size < sizeof *cfg || cfg->identity == NULL ||
      cfg->ping_interval_ms == 0 || cfg->dead_after_ms == 0 || cfg->max_relay_queue == 0 ||
      cfg->max_pairwise_queue == 0 || cfg->max_contacts == 0 ||
      cfg->pairwise_max_messages == 0 || cfg->pairwise_max_age_s == 0 ||
      cfg->pairwise_retry_ms == 0 || cfg->pairwise_attempts == 0)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  *out = NULL;
  secchat_client *c = calloc(1, sizeof *c);
  if (c == NULL)
    return SECCHAT_ERR_NOMEM;
  c->cfg = *cfg;
  c->id = cfg->identity;
  c->next_ref = 1;
  c->rx = malloc(SECCHAT_MAX_WIRE_MESSAGE);
  c->tx = malloc(SECCHAT_MAX_WIRE_MESSAGE);
  if (c->rx == NULL || c->tx == NULL) {
    secchat_client_free(c);
    return SECCHAT_ERR_NOMEM;
  }
  (void)sc_deframer_init(&c->df, SECCHAT_MAX_WIRE_MESSAGE);
  int rc = sc_client_group_init(c);
  if (rc != 0) {
    secchat_client_free(c);
    return rc;
  }
  *out = c;
  return 0;
}

static void rq_free_all(secchat_client *c)
{
  sc_rq *q = c->rq_head;
  while (q != NULL) {
    sc_rq *n = q->next;
    sodium_memzero(q, sizeof *q + q->len);
    free(q);
    q = n;
  }
  c->rq_head = c->rq_tail = NULL;
  c->rq_n = 0;
}

static void conn_reset(secchat_client *c)
{
  sc_noise_handshake_wipe(&c->hs);
  sc_noise_transport_wipe(&c->tr);
  sodium_memzero(c->hh, sizeof c->hh);
  sc_deframer_free(&c->df);
  (void)sc_deframer_init(&c->df, SECCHAT_MAX_WIRE_MESSAGE);
  if (c->out != NULL)
    sodium_memzero(c->out, c->out_cap);
  c->out_head = c->out_len = 0;
  c->cstate = SC_C_IDLE;
  c->renew_sent = 0;
  c->lk_head = c->lk_n = 0; /* answers to lookups of a dead connection never come */
  if (c->grp != NULL)
    sc_group_connection_lost(c->grp); /* presence is per connection */
}

void secchat_client_free(secchat_client *c)
{
  if (c == NULL)
    return;
  conn_reset(c);
  sc_deframer_free(&c->df);
  free(c->out);
  if (c->rx != NULL) {
    sodium_memzero(c->rx, SECCHAT_MAX_WIRE_MESSAGE);
    free(c->rx);
  }
  uint8_t *bufs[3] = {c->tx, c->pwa, c->pwb};
  for (int i = 0; i < 3; i++)
    if (bufs[i] != NULL) {
      sodium_memzero(bufs[i], SECCHAT_MAX_WIRE_MESSAGE);
      free(bufs[i]);
    }
  free(c->pin_pem);
  free(c->mm_pem);
  secchat_token_verifier_free(c->verifier);
  free_secret_str(&c->token, c->token_len);
  rq_free_all(c);
  free(c->lk);
  free(c->routes);
  sc_client_group_free(c);
  sc_contacts_free(c);
  cev_free(c->ev_out);
  for (sc_cev *e = c->ev_head; e != NULL;) {
    sc_cev *n = e->next;
    cev_free(e);
    e = n;
  }
  if (c->group_state != NULL) {
    sodium_memzero(c->group_state, c->group_state_len);
    free(c->group_state);
  }
  sodium_memzero(c, sizeof *c);
  free(c);
}

/* ---- server pinning ------------------------------------------------------------ */

/* Install a pin (canonical PEM) and its verifier. */
static int install_pin(secchat_client *c, const uint8_t noise_pk[32], const char *pem,
                       size_t pem_len, const char *issuer)
{
  size_t il = strlen(issuer);
  if (il == 0 || il > SECCHAT_ISSUER_MAX_BYTES)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  if (sc_check_dh_pk(noise_pk) != 0)
    return SECCHAT_ERR_BAD_KEY;
  char *canon = NULL;
  size_t clen = 0;
  int rc = sc_servkey_canonical_public_pem(pem, pem_len, &canon, &clen, NULL);
  if (rc != 0)
    return rc;
  secchat_token_verifier *v = NULL;
  rc = secchat_token_verifier_new(&v, canon, clen, issuer, 256);
  if (rc != 0) {
    free(canon);
    return rc;
  }
  secchat_token_verifier_free(c->verifier);
  free(c->pin_pem);
  c->verifier = v;
  c->pin_pem = canon;
  c->pin_pem_len = clen;
  memcpy(c->pin_noise, noise_pk, 32);
  memcpy(c->pin_issuer, issuer, il + 1);
  c->pin_set = 1;
  return 0;
}

int secchat_client_set_server_pin(secchat_client *c, const uint8_t noise_pk[32],
                                  const char *token_pem, size_t pem_len, const char *issuer)
{
  if (c == NULL || noise_pk == NULL || token_pem == NULL || pem_len == 0 || issuer == NULL)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  if (c->cstate != SC_C_IDLE)
    return SECCHAT_ERR_INVALID_STATE;
  return install_pin(c, noise_pk, token_pem, pem_len, issuer);
}

int secchat_client_expect_server_fingerprint(secchat_client *c,
                                             const uint8_t fpr[SECCHAT_SERVER_FINGERPRINT_BYTES])
{
  if (c == NULL || fpr == NULL)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  if (c->cstate != SC_C_IDLE)
    return SECCHAT_ERR_INVALID_STATE;
  memcpy(c->expect_fpr, fpr, 32);
  c->expect_fpr_set = 1;
  return 0;
}

int secchat_client_accept_server_key(secchat_client *c)
{
  if (c == NULL)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  if (!c->mismatch_pending)
    return SECCHAT_ERR_INVALID_STATE;
  int rc = install_pin(c, c->mm_noise, c->mm_pem, c->mm_pem_len, c->mm_issuer);
  if (rc != 0)
    return rc;
  c->expect_fpr_set = 0;
  c->mismatch_pending = 0;
  free(c->mm_pem);
  c->mm_pem = NULL;
  /* A token from another server is worthless there: register again. */
  free_secret_str(&c->token, c->token_len);
  c->token_len = 0;
  if (c->name[0] != '\0')
    c->want_register = 1;
  return 0;
}

int secchat_client_server_fingerprint(const secchat_client *c,
                                      uint8_t out[SECCHAT_SERVER_FINGERPRINT_BYTES])
{
  if (c == NULL || out == NULL)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  if (!c->pin_set)
    return SECCHAT_ERR_NOT_FOUND;
  return secchat_server_fingerprint(c->pin_noise, c->pin_pem, c->pin_pem_len, out);
}

/* ---- output ------------------------------------------------------------------------ */

/* Reserve n bytes at the end of the output queue (compacting first). */
static uint8_t *out_reserve(secchat_client *c, size_t n)
{
  if (c->out_head > 0 && c->out_head == c->out_len)
    c->out_head = c->out_len = 0;
  if (c->out_len - c->out_head + n > SC_CLIENT_MAX_OUTPUT)
    return NULL;
  if (c->out_len + n > c->out_cap) {
    if (c->out_head > 0) {
      memmove(c->out, c->out + c->out_head, c->out_len - c->out_head);
      c->out_len -= c->out_head;
      c->out_head = 0;
    }
    if (c->out_len + n > c->out_cap) {
      size_t cap = c->out_cap ? c->out_cap : 4096;
      while (cap < c->out_len + n)
        cap *= 2;
      uint8_t *p = malloc(cap);
      if (p == NULL)
        return NULL;
      if (c->out_len > 0)
        memcpy(p, c->out, c->out_len);
      if (c->out != NULL) {
        sodium_memzero(c->out, c->out_cap);
        free(c->out);
      }
      c->out = p;
      c->out_cap = cap;
    }
  }
  return c->out + c->out_len;
}

secchat_ssize secchat_client_send(secchat_client *c, uint8_t *out, size_t cap)
{
  if (c == NULL || (out == NULL && cap > 0))
    return SECCHAT_ERR_INVALID_ARGUMENT;
  size_t n = c->out_len - c->out_head;
  if (n > cap)
    n = cap;
  if (n > 0) {
    memcpy(out, c->out + c->out_head, n);
    sodium_memzero(c->out + c->out_head, n);
    c->out_head += n;
    if (c->out_head == c->out_len)
      c->out_head = c->out_len = 0;
  }
  return (secchat_ssize)n;
}

size_t secchat_client_pending(const secchat_client *c)
{
  return c == NULL ? 0 : c->out_len - c->out_head;
}

const char *secchat_client_token(const secchat_client *c, size_t *len)
{
  const char *t = c && c->token && c->token_len ? c->token : NULL;
  if (len)
    *len = t ? c->token_len : 0;
  return t;
}

int secchat_client_is_online(const secchat_client *c)
{
  return c != NULL && c->cstate == SC_C_ONLINE;
}

int sc_client_send_frame(secchat_client *c, const sc_frame *f)
{
  if (c->cstate < SC_C_REGISTER || c->cstate == SC_C_DEAD)
    return SECCHAT_ERR_INVALID_STATE;
  secchat_ssize bl = sc_frame_encode(f, c->tx, SECCHAT_MAX_FRAME_BODY);
  if (bl < 0)
    return (int)bl;
  size_t pl = sc_padded_size((size_t)bl);
  size_t need = SECCHAT_FRAME_PREFIX_BYTES + pl + SECCHAT_AEAD_TAG_BYTES;
  uint8_t *p = out_reserve(c, need);
  if (p == NULL)
    return SECCHAT_ERR_QUEUE_FULL;
  uint8_t *pt = p + SECCHAT_FRAME_PREFIX_BYTES;
  secchat_ssize n = sc_pad(pt, pl, c->tx, (size_t)bl);
  size_t ctlen = 0;
  int rc = n < 0 ? (int)n
                 : sc_noise_transport_encrypt(&c->tr, pt, (size_t)n, pt,
                                              pl + SECCHAT_AEAD_TAG_BYTES, &ctlen);
  sodium_memzero(c->tx, (size_t)bl);
  if (rc != 0) {
    sodium_memzero(pt, pl);
    return rc;
  }
  sc_frame_prefix(p, (uint32_t)ctlen);
  c->out_len += SECCHAT_FRAME_PREFIX_BYTES + ctlen;
  c->last_tx_ms = c->now;
  return 0;
}

/* ---- connection failure ------------------------------------------------------------ */

/* Condemn the connection: one CLOSE event, nothing more is read or sent
 * except what is already pending (flush). */
static void condemn(secchat_client *c, int code, int detail)
{
  if (c->cstate == SC_C_DEAD || c->cstate == SC_C_IDLE)
    return;
  c->cstate = SC_C_DEAD;
  secchat_client_event *ev = sc_client_event(c, SECCHAT_CLIENT_EV_CLOSE, NULL, 0, NULL, 0);
  if (ev != NULL) {
    ev->code = code;
    ev->detail = detail;
  }
}

/* ---- relay queue -------------------------------------------------------------------- */

static void rq_send(secchat_client *c, sc_rq *q)
{
  sc_frame f;
  memset(&f, 0, sizeof f);
  f.type = (sc_frame_type)q->type;
  if (q->type == SC_FRAME_GROUP_SEND) {
    f.u.group_send.ref = q->ref;
    f.u.group_send.route_id = q->target;
    f.u.group_send.blob.p = q->blob;
    f.u.group_send.blob.len = q->len;
  } else {
    f.u.direct.ref = q->ref;
    f.u.direct.to_uid = q->target;
    f.u.direct.blob.p = q->blob;
    f.u.direct.blob.len = q->len;
  }
  if (sc_client_send_frame(c, &f) == 0)
    q->conn_gen = c->conn_gen;
}

static void rq_flush(secchat_client *c)
{
  if (c->cstate != SC_C_ONLINE || c->expired)
    return;
  for (sc_rq *q = c->rq_head; q != NULL; q = q->next)
    if (q->conn_gen != c->conn_gen)
      rq_send(c, q);
}

static int rq_push(secchat_client *c, uint8_t type, const uint8_t *target, size_t tlen,
                   uint8_t pw_kind, const uint8_t *blob, size_t len, uint64_t *ref)
{
  size_t max = type == SC_FRAME_GROUP_SEND ? SC_MAX_GROUP_BLOB : SC_MAX_DIRECT_BLOB;
  if (len == 0 || len > max)
    return SECCHAT_ERR_TOO_LONG;
  if (c->rq_n >= c->cfg.max_relay_queue)
    return SECCHAT_ERR_QUEUE_FULL;
  sc_rq *q = calloc(1, sizeof *q + len);
  if (q == NULL)
    return SECCHAT_ERR_NOMEM;
  q->ref = c->next_ref++;
  q->type = type;
  q->pw_kind = pw_kind;
  memcpy(q->target, target, tlen);
  q->len = len;
  memcpy(q->blob, blob, len);
  if (c->rq_tail != NULL)
    c->rq_tail->next = q;
  else
    c->rq_head = q;
  c->rq_tail = q;
  c->rq_n++;
  if (ref != NULL)
    *ref = q->ref;
  if (c->cstate == SC_C_ONLINE && !c->expired)
    rq_send(c, q);
  return 0;
}

static sc_rq *rq_take(secchat_client *c, uint64_t ref)
{
  sc_rq *prev = NULL;
  for (sc_rq *q = c->rq_head; q != NULL; prev = q, q = q->next) {
    if (q->ref != ref)
      continue;
    if (prev != NULL)
      prev->next = q->next;
    else
      c->rq_head = q->next;
    if (c->rq_tail == q)
      c->rq_tail = prev;
    c->rq_n--;
    return q;
  }
  return NULL;
}

static sc_rq *rq_find(secchat_client *c, uint64_t ref)
{
  for (sc_rq *q = c->rq_head; q != NULL; q = q->next)
    if (q->ref == ref)
      return q;
  return NULL;
}

static void rq_release(sc_rq *q)
{
  sodium_memzero(q, sizeof *q + q->len);
  free(q);
}

int sc_client_queue_direct(secchat_client *c, const uint8_t uid[SECCHAT_UID_BYTES], uint8_t kind,
                           const uint8_t *blob, size_t len, uint64_t *ref)
{
  return rq_push(c, SC_FRAME_DIRECT, uid, SECCHAT_UID_BYTES, kind, blob, len, ref);
}

int sc_client_group_post_id(secchat_client *c, const uint8_t route_id[SECCHAT_ROUTE_ID_BYTES],
                            const uint8_t *blob, size_t len, const uint8_t *msg_id,
                            const uint8_t *chat_id, uint64_t *ref)
{
  if (c == NULL || route_id == NULL || blob == NULL)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  uint64_t r = 0;
  int rc = rq_push(c, SC_FRAME_GROUP_SEND, route_id, SECCHAT_ROUTE_ID_BYTES, 0, blob, len, &r);
  if (rc == 0 && msg_id != NULL) {
    sc_rq *q = rq_find(c, r);
    if (q != NULL) {
      memcpy(q->msg_id, msg_id, SECCHAT_MSG_ID_BYTES);
      q->has_msg_id = 1;
      if (chat_id != NULL)
        memcpy(q->chat_id, chat_id, SECCHAT_CHAT_ID_BYTES);
    }
  }
  if (rc == 0 && ref != NULL)
    *ref = r;
  return rc;
}

int sc_client_group_post(secchat_client *c, const uint8_t route_id[SECCHAT_ROUTE_ID_BYTES],
                         const uint8_t *blob, size_t len, uint64_t *ref)
{
  return sc_client_group_post_id(c, route_id, blob, len, NULL, NULL, ref);
}

static int send_route(secchat_client *c, const uint8_t *route_id, int open)
{
  sc_frame f;
  memset(&f, 0, sizeof f);
  f.type = open ? SC_FRAME_ROUTE_OPEN : SC_FRAME_ROUTE_CLOSE;
  f.u.route.route_id = route_id;
  return sc_client_send_frame(c, &f);
}

int sc_client_route(secchat_client *c, const uint8_t route_id[SECCHAT_ROUTE_ID_BYTES], int open)
{
  if (c == NULL || route_id == NULL)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  uint32_t i = 0;
  while (i < c->nroutes && memcmp(c->routes[i], route_id, SECCHAT_ROUTE_ID_BYTES) != 0)
    i++;
  if (open && i == c->nroutes) {
    if (c->nroutes >= SC_CLIENT_MAX_ROUTES)
      return SECCHAT_ERR_TOO_MANY;
    if (c->nroutes == c->routes_cap) {
      uint32_t cap = c->routes_cap ? c->routes_cap * 2 : 8;
      void *p = realloc(c->routes, (size_t)cap * SECCHAT_ROUTE_ID_BYTES);
      if (p == NULL)
        return SECCHAT_ERR_NOMEM;
      c->routes = p;
      c->routes_cap = cap;
    }
    memcpy(c->routes[c->nroutes++], route_id, SECCHAT_ROUTE_ID_BYTES);
  } else if (!open && i < c->nroutes) {
    memmove(c->routes[i], c->routes[i + 1], (size_t)(c->nroutes - i - 1) * SECCHAT_ROUTE_ID_BYTES);
    c->nroutes--;
  } else {
    return 0; /* already in that state */
  }
  return c->cstate == SC_C_ONLINE ? send_route(c, route_id, open) : 0;
}

int sc_client_set_group_state(secchat_client *c, const uint8_t *blob, size_t len)
{
  uint8_t *p = NULL;
  if (len > 0) {
    p = malloc(len);
    if (p == NULL)
      return SECCHAT_ERR_NOMEM;
    memcpy(p, blob, len);
  }
  if (c->group_state != NULL) {
    sodium_memzero(c->group_state, c->group_state_len);
    free(c->group_state);
  }
  c->group_state = p;
  c->group_state_len = len;
  return 0;
}

/* ---- connect and handshake ------------------------------------------------------------- */

int secchat_client_connect(secchat_client *c, uint64_t now_ms)
{
  if (c == NULL)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  set_now(c, now_ms);
  conn_reset(c);
  c->conn_gen++;
  int rc = sc_noise_handshake_init(&c->hs, SC_NOISE_XX, 1, (const uint8_t *)SC_NOISE_PROLOGUE,
                                   strlen(SC_NOISE_PROLOGUE), sc_identity_dh_sk(c->id), NULL);
  if (rc != 0)
    return rc;
  uint8_t payload[16];
  sc_mp_writer w;
  sc_mp_writer_init(&w, payload, sizeof payload);
  sc_mp_write_array(&w, 2);
  sc_mp_write_uint(&w, SC_PROTO_MINOR_C);
  sc_mp_write_uint(&w, SC_PROTO_FEATURES_C);
  int64_t pl = sc_mp_writer_finish(&w);
  size_t cap = 64 + (size_t)pl;
  uint8_t *p = out_reserve(c, SECCHAT_FRAME_PREFIX_BYTES + cap);
  if (pl < 0 || p == NULL) {
    sc_noise_handshake_wipe(&c->hs);
    return SECCHAT_ERR_NOMEM;
  }
  size_t outlen = 0;
  rc = sc_noise_handshake_write(&c->hs, payload, (size_t)pl, p + SECCHAT_FRAME_PREFIX_BYTES, cap,
                                &outlen);
  if (rc != 0) {
    sc_noise_handshake_wipe(&c->hs);
    return rc;
  }
  sc_frame_prefix(p, (uint32_t)outlen);
  c->out_len += SECCHAT_FRAME_PREFIX_BYTES + outlen;
  c->cstate = SC_C_HS;
  c->last_rx_ms = c->last_tx_ms = c->now;
  return 0;
}

void secchat_client_disconnected(secchat_client *c, uint64_t now_ms)
{
  if (c == NULL)
    return;
  set_now(c, now_ms);
  conn_reset(c);
}

int secchat_client_register(secchat_client *c, const char *name, size_t len, uint64_t now_ms)
{
  if (c == NULL || name == NULL || len > SECCHAT_NAME_MAX_BYTES ||
      secchat_name_check(name, len) != 0)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  set_now(c, now_ms);
  memcpy(c->name, name, len);
  c->name[len] = '\0';
  c->want_register = 1;
  return 0;
}

static void send_register_or_auth(secchat_client *c)
{
  sc_frame f;
  memset(&f, 0, sizeof f);
  uint8_t proof[SECCHAT_SIGNATURE_BYTES];
  int rc;
  if (c->want_register || c->token == NULL) {
    size_t nl = strlen(c->name);
    if (nl == 0) { /* nothing to log in with: the host must register */
      condemn(c, SECCHAT_ERR_INVALID_STATE, 0);
      return;
    }
    rc = secchat_token_registration_proof(c->id, c->name, nl, c->hh, proof);
    f.type = SC_FRAME_REGISTER;
    f.u.reg.name.p = c->name;
    f.u.reg.name.len = nl;
    f.u.reg.sig_pk = secchat_identity_sign_public_key(c->id);
    f.u.reg.dh_pk = secchat_identity_dh_public_key(c->id);
    f.u.reg.dh_sig = secchat_identity_dh_sig(c->id);
    f.u.reg.proof = proof;
    c->cstate = SC_C_REGISTER;
  } else {
    rc = secchat_token_login_proof(c->id, c->hh, proof);
    f.type = SC_FRAME_AUTH;
    f.u.auth.token.p = c->token;
    f.u.auth.token.len = c->token_len;
    f.u.auth.proof = proof;
    c->cstate = SC_C_AUTH;
  }
  if (rc == 0)
    rc = sc_client_send_frame(c, &f);
  sodium_memzero(proof, sizeof proof);
  if (rc != 0)
    condemn(c, rc, 0);
}

/* Check the server's keys against the pin / expected fingerprint, pinning
 * on first use. 0 to go on; otherwise the connection is condemned. */
static int check_server(secchat_client *c, const uint8_t rs[32], const char *pem, size_t pem_len,
                        const char *issuer, size_t il)
{
  char iss[SECCHAT_ISSUER_MAX_BYTES + 1];
  if (il == 0 || il > SECCHAT_ISSUER_MAX_BYTES)
    return SECCHAT_ERR_HANDSHAKE;
  memcpy(iss, issuer, il);
  iss[il] = '\0';
  char *canon = NULL;
  size_t clen = 0;
  uint8_t tfp[32], fpr[32];
  int rc = sc_servkey_canonical_public_pem(pem, pem_len, &canon, &clen, tfp);
  if (rc != 0)
    return SECCHAT_ERR_HANDSHAKE;
  rc = sc_servkey_server_fingerprint(rs, tfp, fpr);
  int match;
  if (c->pin_set)
    match = sodium_memcmp(rs, c->pin_noise, 32) == 0 && clen == c->pin_pem_len &&
            memcmp(canon, c->pin_pem, clen) == 0 && strcmp(iss, c->pin_issuer) == 0;
  else if (c->expect_fpr_set)
    match = sodium_memcmp(fpr, c->expect_fpr, 32) == 0;
  else
    match = 1;
  if (rc == 0 && !match) {
    free(c->mm_pem);
    c->mm_pem = canon;
    c->mm_pem_len = clen;
    memcpy(c->mm_noise, rs, 32);
    memcpy(c->mm_issuer, iss, il + 1);
    c->mismatch_pending = 1;
    secchat_client_event *ev =
        sc_client_event(c, SECCHAT_CLIENT_EV_SERVER_KEY_MISMATCH, (const uint8_t *)canon, clen,
                        iss, il);
    if (ev != NULL) {
      ev->code = SECCHAT_ERR_KEY_MISMATCH;
      memcpy(ev->key, rs, 32);
      memcpy(ev->fingerprint, fpr, 32);
    }
    return SECCHAT_ERR_KEY_MISMATCH;
  }
  if (rc == 0 && !c->pin_set) {
    rc = install_pin(c, rs, canon, clen, iss);
    if (rc == 0) {
      secchat_client_event *ev = sc_client_event(c, SECCHAT_CLIENT_EV_SERVER_PINNED,
                                                 (const uint8_t *)canon, clen, iss, il);
      if (ev != NULL) {
        memcpy(ev->key, rs, 32);
        memcpy(ev->fingerprint, fpr, 32);
      }
    }
  }
  free(canon);
  if (rc == 0) {
    secchat_client_event *ev = sc_client_event(c, SECCHAT_CLIENT_EV_CONNECTED, NULL, 0, iss, il);
    if (ev != NULL) {
      memcpy(ev->key, rs, 32);
      memcpy(ev->fingerprint, fpr, 32);
    }
  }
  return rc;
}

/* XX message 2 (payload [minor, features, token PEM, server name]), then
 * message 3 with an empty payload. */
static void on_handshake_msg2(secchat_client *c, const uint8_t *msg, size_t len)
{
  size_t plen = 0;
  int rc = sc_noise_handshake_read(&c->hs, msg, len, c->rx, SECCHAT_MAX_WIRE_MESSAGE, &plen);
  uint64_t minor = 0, features = 0;
  const char *pem = NULL, *iss = NULL;
  size_t pem_len = 0, il = 0;
  uint8_t rs[32];
  if (rc == 0)
    rc = sc_mp_validate(c->rx, plen, 1);
  if (rc == 0) {
    sc_mp_reader r;
    uint32_t n = 0;
    sc_mp_reader_init(&r, c->rx, plen);
    if (sc_mp_read_array(&r, &n) != 0 || n != 4 || sc_mp_read_uint(&r, &minor) != 0 ||
        sc_mp_read_uint(&r, &features) != 0 ||
        sc_mp_read_str(&r, &pem, &pem_len, 1, SECCHAT_TOKEN_KEY_PEM_MAX) != 0 ||
        sc_mp_read_str(&r, &iss, &il, 1, SECCHAT_ISSUER_MAX_BYTES) != 0)
      rc = SECCHAT_ERR_VERSION;
    else if (minor > SC_PROTO_MINOR_C)
      rc = SECCHAT_ERR_VERSION; /* the server must answer min(ours, its) */
  }
  if (rc == 0)
    rc = sc_noise_handshake_remote_static(&c->hs, rs);
  if (rc == 0)
    rc = check_server(c, rs, pem, pem_len, iss, il);
  if (rc != 0) {
    sc_noise_handshake_wipe(&c->hs);
    c->cstate = SC_C_REGISTER; /* so that condemn() reports it */
    condemn(c, rc, 0);
    return;
  }
  uint8_t *p = out_reserve(c, SECCHAT_FRAME_PREFIX_BYTES + 128);
  size_t outlen = 0;
  rc = p == NULL ? SECCHAT_ERR_NOMEM
                 : sc_noise_handshake_write(&c->hs, NULL, 0, p + SECCHAT_FRAME_PREFIX_BYTES, 128,
                                            &outlen);
  if (rc == 0)
    rc = sc_noise_handshake_split(&c->hs, &c->tr, c->hh);
  if (rc != 0) {
    c->cstate = SC_C_REGISTER;
    condemn(c, rc, 0);
    return;
  }
  sc_frame_prefix(p, (uint32_t)outlen);
  c->out_len += SECCHAT_FRAME_PREFIX_BYTES + outlen;
  c->cstate = SC_C_REGISTER; /* transport up; send_register_or_auth decides */
  send_register_or_auth(c);
}

/* ---- frames from the relay ---------------------------------------------------------------- */

static void schedule_renew(secchat_client *c)
{
  int64_t life = c->token_exp - c->token_iat;
  int64_t margin = c->cfg.renew_margin_s ? (int64_t)c->cfg.renew_margin_s : life / 10;
  if (margin < 30)
    margin = 30;
  int64_t at = c->token_exp - margin;
  c->renew_at_ms = at > 0 ? (uint64_t)at * 1000u : 0;
}

static void send_renew(secchat_client *c)
{
  if (c->renew_sent || c->token == NULL)
    return;
  uint8_t proof[SECCHAT_SIGNATURE_BYTES];
  sc_frame f;
  memset(&f, 0, sizeof f);
  f.type = SC_FRAME_RENEW;
  f.u.renew.proof = proof;
  int rc = secchat_token_renew_proof(c->id, c->hh, proof);
  if (rc == 0)
    rc = sc_client_send_frame(c, &f);
  sodium_memzero(proof, sizeof proof);
  if (rc == 0)
    c->renew_sent = 1;
}

/* TOKEN: after REGISTER or RENEW. It must verify with the pinned key and be
 * for exactly our keys (and the name we registered). */
static void on_token(secchat_client *c, const sc_frame *f)
{
  if (c->cstate != SC_C_REGISTER && !(c->cstate == SC_C_ONLINE && c->renew_sent)) {
    condemn(c, SECCHAT_ERR_UNEXPECTED_FRAME, SC_FRAME_TOKEN);
    return;
  }
  secchat_token_claims cl;
  memset(&cl, 0, sizeof cl);
  cl.struct_size = sizeof cl;
  int reason = 0;
  int rc = secchat_token_check_peer(c->verifier, f->u.token.token.p, f->u.token.token.len,
                                    secchat_identity_uid(c->id), sc_client_now_s(c), &cl, &reason);
  if (rc == 0 && (sodium_memcmp(cl.sig_pk, secchat_identity_sign_public_key(c->id), 32) != 0 ||
                  sodium_memcmp(cl.dh_pk, secchat_identity_dh_public_key(c->id), 32) != 0 ||
                  (c->name[0] != '\0' && strcmp(cl.name, c->name) != 0))) {
    rc = SECCHAT_ERR_AUTH;
    reason = SECCHAT_TOKEN_R_KEY_MISMATCH;
  }
  if (rc != 0) {
    secchat_client_event *ev = sc_client_event(c, SECCHAT_CLIENT_EV_AUTH_FAILED, NULL, 0, NULL, 0);
    if (ev != NULL) {
      ev->code = rc;
      ev->detail = reason;
    }
    condemn(c, rc, reason);
    return;
  }
  char *t = malloc(f->u.token.token.len + 1);
  if (t == NULL) {
    condemn(c, SECCHAT_ERR_NOMEM, 0);
    return;
  }
  memcpy(t, f->u.token.token.p, f->u.token.token.len);
  t[f->u.token.token.len] = '\0';
  free_secret_str(&c->token, c->token_len);
  c->token = t;
  c->token_len = f->u.token.token.len;
  c->token_iat = cl.iat;
  c->token_exp = cl.exp;
  if (c->name[0] == '\0')
    memcpy(c->name, cl.name, strlen(cl.name) + 1);
  if (c->cstate == SC_C_REGISTER) {
    c->want_register = 0;
    secchat_client_event *ev = sc_client_event(c, SECCHAT_CLIENT_EV_REGISTERED, NULL, 0, cl.name,
                                               strlen(cl.name));
    if (ev != NULL)
      ev->expires_s = cl.exp;
    send_register_or_auth(c); /* now AUTH with it */
    return;
  }
  c->renew_sent = 0;
  c->expired = 0;
  schedule_renew(c);
  secchat_client_event *ev = sc_client_event(c, SECCHAT_CLIENT_EV_TOKEN_RENEWED, NULL, 0, NULL, 0);
  if (ev != NULL)
    ev->expires_s = cl.exp;
  rq_flush(c);
}

static void on_auth_ok(secchat_client *c, const sc_frame *f)
{
  if (c->cstate != SC_C_AUTH ||
      sodium_memcmp(f->u.auth_ok.uid, secchat_identity_uid(c->id), SECCHAT_UID_BYTES) != 0) {
    condemn(c, SECCHAT_ERR_UNEXPECTED_FRAME, SC_FRAME_AUTH_OK);
    return;
  }
  c->cstate = SC_C_ONLINE;
  c->expired = 0;
  schedule_renew(c);
  secchat_client_event *ev = sc_client_event(c, SECCHAT_CLIENT_EV_AUTHENTICATED, NULL, 0, c->name,
                                             strlen(c->name));
  if (ev != NULL) {
    ev->has_uid = 1;
    memcpy(ev->uid, f->u.auth_ok.uid, SECCHAT_UID_BYTES);
    ev->expires_s = c->token_exp;
  }
  for (uint32_t i = 0; i < c->nroutes; i++)
    (void)send_route(c, c->routes[i], 1);
  rq_flush(c);
  sc_client_group_online(c);
  sc_pw_on_timeout(c); /* lookups and handshakes that waited for us */
}

static void send_failed(secchat_client *c, sc_rq *q, uint64_t code)
{
  if (q->type == SC_FRAME_DIRECT) {
    sc_pw_send_failed(c, q->target, q->pw_kind, code);
    return;
  }
  secchat_client_event *ev = sc_client_event(c, SECCHAT_CLIENT_EV_SEND_FAILED, NULL, 0, NULL, 0);
  if (ev != NULL) {
    ev->ref = q->ref;
    ev->detail = (int32_t)code;
    if (q->has_msg_id) {
      memcpy(ev->msg_id, q->msg_id, SECCHAT_MSG_ID_BYTES);
      memcpy(ev->chat_id, q->chat_id, SECCHAT_CHAT_ID_BYTES);
    }
  }
}

static void on_error(secchat_client *c, const sc_frame *f)
{
  uint64_t code = f->u.error.code;
  sc_rq *q = f->u.error.ref != 0 ? rq_find(c, f->u.error.ref) : NULL;
  if (code == SC_WIRE_TOKEN_EXPIRED) {
    if (c->cstate == SC_C_AUTH) { /* expired before login: register again */
      c->want_register = 1;
      secchat_client_event *ev =
          sc_client_event(c, SECCHAT_CLIENT_EV_AUTH_FAILED, NULL, 0, NULL, 0);
      if (ev != NULL) {
        ev->code = SECCHAT_ERR_TOKEN_EXPIRED;
        ev->detail = (int32_t)code;
      }
      return;
    }
    c->expired = 1;
    if (q != NULL)
      q->conn_gen = 0; /* re-sent once renewed */
    send_renew(c);
    return;
  }
  if (code == SC_WIRE_AUTH_FAILED || code == SC_WIRE_NOT_AUTHENTICATED) {
    if (c->cstate == SC_C_AUTH && c->name[0] != '\0')
      c->want_register = 1; /* the relay refuses our token: get a new one */
    secchat_client_event *ev = sc_client_event(c, SECCHAT_CLIENT_EV_AUTH_FAILED, NULL, 0, NULL, 0);
    if (ev != NULL) {
      ev->code = SECCHAT_ERR_AUTH;
      ev->detail = (int32_t)code;
    }
    return;
  }
  if (q != NULL) {
    if (code == SC_WIRE_RATE_LIMITED || code == SC_WIRE_QUEUE_FULL) {
      q->conn_gen = 0; /* retried by the timer */
      return;
    }
    q = rq_take(c, f->u.error.ref);
    send_failed(c, q, code);
    rq_release(q);
    return;
  }
  secchat_client_event *ev = sc_client_event(c, SECCHAT_CLIENT_EV_RELAY_ERROR, NULL, 0, NULL, 0);
  if (ev != NULL) {
    ev->detail = (int32_t)code;
    ev->ref = f->u.error.ref;
  }
}

static void on_relayed(secchat_client *c, const sc_frame *f)
{
  sc_rq *q = rq_take(c, f->u.relayed.ref);
  if (q == NULL)
    return; /* duplicate or unknown: harmless */
  if (q->type == SC_FRAME_GROUP_SEND) {
    secchat_client_event *ev = sc_client_event(c, SECCHAT_CLIENT_EV_RELAYED, NULL, 0, NULL, 0);
    if (ev != NULL) {
      ev->ref = q->ref;
      if (q->has_msg_id) {
        memcpy(ev->msg_id, q->msg_id, SECCHAT_MSG_ID_BYTES);
        memcpy(ev->chat_id, q->chat_id, SECCHAT_CHAT_ID_BYTES);
      }
    }
  }
  rq_release(q);
}

/* GLUE (group layer): DELIVER and PRESENCE go to group.c once wired in;
 * until then they surface as events. */
static void on_deliver(secchat_client *c, const sc_frame *f)
{
  if (c->grp != NULL) {
    sc_client_group_deliver(c, f);
    return;
  }
  secchat_client_event *ev = sc_client_event(c, SECCHAT_CLIENT_EV_GROUP_DELIVER,
                                             f->u.deliver.blob.p, f->u.deliver.blob.len, NULL, 0);
  /* No uid: DELIVER names no sender (the relay's word would not be
   * trusted anyway); the author is in the blob, verified by the group layer. */
  if (ev != NULL)
    memcpy(ev->key, f->u.deliver.route_id, SECCHAT_ROUTE_ID_BYTES);
}

static void on_presence(secchat_client *c, const sc_frame *f)
{
  secchat_client_event *ev = sc_client_event(c, SECCHAT_CLIENT_EV_PRESENCE, NULL, 0, NULL, 0);
  if (ev != NULL) {
    memcpy(ev->key, f->u.presence.route_id, SECCHAT_ROUTE_ID_BYTES);
    ev->has_uid = 1;
    memcpy(ev->uid, f->u.presence.uid, SECCHAT_UID_BYTES);
    ev->count = f->u.presence.online ? 1u : 0u;
  }
  if (c->grp != NULL)
    sc_client_group_presence(c, f);
}

static void dispatch(secchat_client *c, const sc_frame *f)
{
  int online = c->cstate == SC_C_ONLINE;
  switch (f->type) {
  case SC_FRAME_TOKEN: on_token(c, f); return;
  case SC_FRAME_AUTH_OK: on_auth_ok(c, f); return;
  case SC_FRAME_ERROR: on_error(c, f); return;
  case SC_FRAME_PONG: return;
  case SC_FRAME_BYE: {
    secchat_client_event *ev = sc_client_event(c, SECCHAT_CLIENT_EV_BYE, NULL, 0, NULL, 0);
    if (ev != NULL)
      ev->detail = (int32_t)f->u.bye.reason;
    if (f->u.bye.reason == SC_BYE_TOKEN_EXPIRED && c->name[0] != '\0')
      c->want_register = 1;
    condemn(c, 0, (int)f->u.bye.reason);
    return;
  }
  case SC_FRAME_RELAYED:
    if (online) on_relayed(c, f);
    return;
  case SC_FRAME_LOOKUP_RESULT:
    if (online) sc_client_on_lookup_result(c, f);
    return;
  case SC_FRAME_DELIVER:
    if (online) on_deliver(c, f);
    return;
  case SC_FRAME_DIRECT_DELIVER:
    if (online) sc_pw_on_direct(c, f);
    return;
  case SC_FRAME_PRESENCE:
    if (online) on_presence(c, f);
    return;
  default: /* a client -> relay frame: the relay is broken or hostile */
    condemn(c, SECCHAT_ERR_UNEXPECTED_FRAME, (int)f->type);
    return;
  }
}

/* One decrypted frame body. */
static void on_body(secchat_client *c, const uint8_t *body, size_t len)
{
  if (c->filter != NULL && !c->filter(c->filter_ctx, body, len))
    return;
  sc_frame f;
  int rc = sc_frame_decode(&f, body, len);
  if (rc != 0) {
    condemn(c, rc, 0);
    return;
  }
  dispatch(c, &f);
}

static void on_message(secchat_client *c, const uint8_t *msg, size_t len)
{
  if (c->cstate == SC_C_HS) {
    on_handshake_msg2(c, msg, len);
    return;
  }
  size_t ptlen = 0;
  int rc = sc_noise_transport_decrypt(&c->tr, msg, len, c->rx, SECCHAT_MAX_WIRE_MESSAGE, &ptlen);
  sc_records recs;
  if (rc == 0)
    rc = sc_records_open(&recs, c->rx, ptlen);
  if (rc < 0) {
    condemn(c, rc, 0);
    sodium_memzero(c->rx, ptlen);
    return;
  }
  /* The relay packs the frames it has for us into one message: each is
   * handled as if it had come alone, until one kills the session. */
  const uint8_t *body = NULL;
  size_t blen = 0;
  while (c->cstate != SC_C_DEAD && c->cstate != SC_C_IDLE &&
         sc_records_next(&recs, &body, &blen))
    on_body(c, body, blen);
  sodium_memzero(c->rx, ptlen);
}

secchat_ssize secchat_client_recv(secchat_client *c, const uint8_t *in, size_t len,
                                  uint64_t now_ms)
{
  if (c == NULL || (in == NULL && len > 0))
    return SECCHAT_ERR_INVALID_ARGUMENT;
  if (c->cstate == SC_C_IDLE)
    return SECCHAT_ERR_INVALID_STATE;
  set_now(c, now_ms);
  if (len > 0)
    c->last_rx_ms = c->now;
  size_t off = 0;
  while (off < len && c->cstate != SC_C_DEAD && c->cstate != SC_C_IDLE) {
    const uint8_t *msg = NULL;
    size_t mlen = 0;
    secchat_ssize n = sc_deframer_feed(&c->df, in + off, len - off, &msg, &mlen);
    if (n < 0) {
      condemn(c, (int)n, 0);
      break;
    }
    off += (size_t)n;
    if (msg != NULL)
      on_message(c, msg, mlen);
  }
  return (secchat_ssize)len;
}

void sc_client_test_filter(secchat_client *c,
                           int (*fn)(void *ctx, const uint8_t *body, size_t len), void *ctx)
{
  c->filter = fn;
  c->filter_ctx = ctx;
}

void sc_client_test_inject(secchat_client *c, const uint8_t *body, size_t len, uint64_t now_ms)
{
  set_now(c, now_ms);
  if (c->cstate == SC_C_IDLE || c->cstate == SC_C_DEAD)
    return;
  sc_frame f;
  if (sc_frame_decode(&f, body, len) != 0) {
    condemn(c, SECCHAT_ERR_PROTOCOL, 0);
    return;
  }
  dispatch(c, &f);
}

/* ---- deadlines ------------------------------------------------------------------------------ */

uint64_t secchat_client_next_timeout(const secchat_client *c)
{
  if (c == NULL)
    return UINT64_MAX;
  uint64_t t = UINT64_MAX;
  if (c->cstate != SC_C_IDLE && c->cstate != SC_C_DEAD) {
    uint64_t ping = c->last_tx_ms + c->cfg.ping_interval_ms;
    uint64_t dead = c->last_rx_ms + c->cfg.dead_after_ms;
    t = ping < dead ? ping : dead;
    if (c->cstate == SC_C_ONLINE && !c->renew_sent && c->renew_at_ms < t)
      t = c->renew_at_ms;
    if (c->cstate == SC_C_ONLINE)
      for (sc_rq *q = c->rq_head; q != NULL; q = q->next)
        if (q->conn_gen != c->conn_gen && !c->expired) {
          uint64_t r = c->now + 1000u; /* rate-limited sends: retry in 1 s */
          if (r < t)
            t = r;
          break;
        }
  }
  uint64_t p = sc_pw_next_timeout(c);
  if (p < t)
    t = p;
  p = sc_client_group_next_timeout(c);
  return p < t ? p : t;
}

void secchat_client_on_timeout(secchat_client *c, uint64_t now_ms)
{
  if (c == NULL)
    return;
  set_now(c, now_ms);
  if (c->cstate != SC_C_IDLE && c->cstate != SC_C_DEAD) {
    if (c->now >= c->last_rx_ms + c->cfg.dead_after_ms) {
      condemn(c, SECCHAT_ERR_TIMEOUT, 0);
      return;
    }
    if (c->cstate >= SC_C_REGISTER && c->now >= c->last_tx_ms + c->cfg.ping_interval_ms) {
      sc_frame f;
      memset(&f, 0, sizeof f);
      f.type = SC_FRAME_PING;
      f.u.ping.nonce = ++c->next_ping_nonce;
      (void)sc_client_send_frame(c, &f);
    }
    if (c->cstate == SC_C_ONLINE && c->now >= c->renew_at_ms)
      send_renew(c);
    rq_flush(c);
  }
  sc_pw_on_timeout(c);
  sc_client_group_tick(c);
}
