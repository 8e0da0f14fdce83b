/* client_group.c: the glue between the client core and the transport-
 * agnostic group layer (group.{h,c}, docs/groups.md), and the public chat
 * API. The group layer consumes verified pairwise payloads (port
 * SC_PORT_GROUP), DELIVER blobs and PRESENCE; its actions become pairwise
 * sends, GROUP_SEND posts (tracked until RELAYED, re-sent with the same
 * ref) and route opens/closes; its events become client events. Sending is
 * refused while a member's identity is contested (the blocked hook). */
#include "client.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "group.h"
#include "identity.h"

#define SC_CTX_HISTKEY "secchat/histkey/v1"
#define SC_GRP_TICK_MS 1000u

static int blocked(void *ctx, const uint8_t uid[20])
{
  return !sc_client_can_send_to((const secchat_client *)ctx, uid);
}

int sc_client_group_init(secchat_client *c)
{
  int rc = sc_group_new(&c->grp, c->id);
  if (rc != 0)
    return rc;
  sc_group_set_blocked(c->grp, blocked, c);
  /* history records are sealed under a key only this identity derives */
  uint8_t key[32];
  if (crypto_generichash(key, sizeof key, (const uint8_t *)SC_CTX_HISTKEY, sizeof SC_CTX_HISTKEY,
                         sc_identity_sign_sk(c->id), 32) != 0)
    return SECCHAT_ERR_INTERNAL;
  sc_group_set_history_key(c->grp, key);
  sodium_memzero(key, sizeof key);
  return 0;
}

void sc_client_group_free(secchat_client *c)
{
  sc_group_free(c->grp);
  c->grp = NULL;
}

/* Send a group pairwise payload: port byte first. */
static void pw_send_group(secchat_client *c, const uint8_t *to, const uint8_t *p, size_t len)
{
  uint8_t *buf = malloc(len + 1);
  if (buf == NULL)
    return;
  buf[0] = SC_PORT_GROUP;
  memcpy(buf + 1, p, len);
  int rc = sc_client_pw_send(c, to, buf, len + 1);
  sodium_memzero(buf, len + 1);
  free(buf);
  if (rc != 0) {
    secchat_client_event *ev = sc_client_event(c, SECCHAT_CLIENT_EV_SEND_FAILED, NULL, 0, NULL, 0);
    if (ev != NULL) {
      ev->code = rc;
      ev->has_uid = 1;
      memcpy(ev->uid, to, SECCHAT_UID_BYTES);
    }
  }
}

static void map_event(secchat_client *c, const sc_group_event *e)
{
  uint32_t type = 32u + (uint32_t)e->type;
  const sc_contact *ct = sc_contact_find(c, e->uid);
  const char *name = ct != NULL ? ct->name : NULL;
  secchat_client_event *ev =
      sc_client_event(c, type, e->data, e->len, name, name != NULL ? strlen(name) : 0);
  if (ev == NULL)
    return;
  memcpy(ev->chat_id, e->chat_id, sizeof ev->chat_id);
  memcpy(ev->msg_id, e->msg_id, sizeof ev->msg_id);
  static const uint8_t zero[20];
  if (memcmp(e->uid, zero, 20) != 0) {
    ev->has_uid = 1;
    memcpy(ev->uid, e->uid, SECCHAT_UID_BYTES);
  }
  ev->ts_ms = e->ts_ms;
  ev->epoch = e->epoch;
  ev->code = e->code;
  ev->count = (uint32_t)(e->count > UINT32_MAX ? UINT32_MAX : e->count);
  ev->gaps = e->gaps;
  ev->trust = ct != NULL ? ct->trust : 0;
  if (e->type == SC_GRP_EV_MESSAGE)
    ev->flags = (e->verified ? SECCHAT_MSG_VERIFIED : 0u) |
                (e->from_history ? SECCHAT_MSG_HISTORY : 0u) |
                (e->shareable ? SECCHAT_MSG_SHAREABLE : 0u);
}

/* Drain the group layer: actions first (they may be what events report). */
static void pump(secchat_client *c)
{
  if (c->grp == NULL)
    return;
  sc_group_action a;
  while (sc_group_next_action(c->grp, &a) == 1) {
    switch (a.type) {
    case SC_GRP_PAIRWISE_SEND: pw_send_group(c, a.to_uid, a.data, a.len); break;
    case SC_GRP_GROUP_POST: {
      int rc = sc_client_group_post_id(c, a.route_id, a.data, a.len, a.msg_id, a.chat_id, NULL);
      if (rc != 0) {
        secchat_client_event *ev =
            sc_client_event(c, SECCHAT_CLIENT_EV_SEND_FAILED, NULL, 0, NULL, 0);
        if (ev != NULL) {
          ev->code = rc;
          memcpy(ev->msg_id, a.msg_id, sizeof ev->msg_id);
          memcpy(ev->chat_id, a.chat_id, sizeof ev->chat_id);
        }
      }
      break;
    }
    case SC_GRP_ROUTE_OPEN: (void)sc_client_route(c, a.route_id, 1); break;
    case SC_GRP_ROUTE_CLOSE: (void)sc_client_route(c, a.route_id, 0); break;
    }
    sc_group_action_clear(&a);
  }
  sc_group_event e;
  while (sc_group_next_event(c->grp, &e) == 1) {
    map_event(c, &e);
    sc_group_event_clear(&e);
  }
}

void sc_client_group_pairwise(secchat_client *c, const uint8_t uid[SECCHAT_UID_BYTES],
                              const uint8_t *p, size_t len)
{
  if (c->grp == NULL)
    return;
  (void)sc_group_on_pairwise(c->grp, uid, p, len, c->now); /* errors: counted, reported */
  pump(c);
}

void sc_client_group_deliver(secchat_client *c, const sc_frame *f)
{
  (void)sc_group_on_deliver(c->grp, f->u.deliver.route_id, f->u.deliver.blob.p,
                            f->u.deliver.blob.len, c->now);
  pump(c);
}

void sc_client_group_presence(secchat_client *c, const sc_frame *f)
{
  sc_group_on_presence(c->grp, f->u.presence.route_id, f->u.presence.uid, f->u.presence.online,
                       c->now);
  pump(c);
}

void sc_client_group_online(secchat_client *c)
{
  if (c->grp == NULL)
    return;
  (void)sc_group_resync(c->grp, c->now);
  pump(c);
}

void sc_client_group_tick(secchat_client *c)
{
  if (c->grp == NULL || c->now < c->grp_tick_ms)
    return;
  c->grp_tick_ms = c->now + SC_GRP_TICK_MS;
  sc_group_tick(c->grp, c->now);
  pump(c);
}

uint64_t sc_client_group_next_timeout(const secchat_client *c)
{
  if (c->grp == NULL || sc_group_chat_count(c->grp) == 0)
    return UINT64_MAX;
  return c->grp_tick_ms;
}

int sc_client_group_export(secchat_client *c, uint8_t **out, size_t *len)
{
  *out = NULL;
  *len = 0;
  if (c->grp == NULL)
    return 0;
  return sc_group_export(c->grp, out, len);
}

int sc_client_group_import(secchat_client *c, const uint8_t *in, size_t len)
{
  if (c->grp == NULL)
    return SECCHAT_ERR_INVALID_STATE;
  int rc = sc_group_import(c->grp, in, len, c->now);
  pump(c);
  return rc;
}

/* ---- public chat API ---------------------------------------------------------------- */

static void set_now(secchat_client *c, uint64_t now_ms)
{
  if (now_ms > c->now)
    c->now = now_ms;
}

#define GRP_CHECK(c)                                                                          \
  do {                                                                                        \
    if ((c) == NULL || (c)->grp == NULL)                                                      \
      return SECCHAT_ERR_INVALID_ARGUMENT;                                                    \
  } while (0)

int secchat_client_chat_create(secchat_client *c, uint64_t now_ms,
                               uint8_t chat_id[SECCHAT_CHAT_ID_BYTES])
{
  GRP_CHECK(c);
  if (chat_id == NULL)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  set_now(c, now_ms);
  int rc = sc_group_create(c->grp, c->now, chat_id);
  pump(c);
  return rc;
}

int secchat_client_chat_invite(secchat_client *c, const uint8_t chat_id[SECCHAT_CHAT_ID_BYTES],
                               const uint8_t uid[SECCHAT_UID_BYTES], uint64_t now_ms)
{
  GRP_CHECK(c);
  if (chat_id == NULL || uid == NULL)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  set_now(c, now_ms);
  const sc_contact *ct = sc_contact_find(c, uid);
  if (ct == NULL || !ct->has_keys)
    return SECCHAT_ERR_NOT_FOUND;
  if (ct->flags & SECCHAT_CONTACT_CHANGED)
    return SECCHAT_ERR_IDENTITY_CHANGED;
  int rc = sc_group_invite(c->grp, chat_id, uid, ct->sign_pk, ct->dh_pk, ct->dh_sig, c->now);
  pump(c);
  return rc;
}

int secchat_client_chat_answer(secchat_client *c, const uint8_t chat_id[SECCHAT_CHAT_ID_BYTES],
                               int accept, uint64_t now_ms)
{
  GRP_CHECK(c);
  if (chat_id == NULL)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  set_now(c, now_ms);
  int rc = sc_group_answer(c->grp, chat_id, accept, c->now);
  pump(c);
  return rc;
}

int secchat_client_chat_leave(secchat_client *c, const uint8_t chat_id[SECCHAT_CHAT_ID_BYTES],
                              uint64_t now_ms)
{
  GRP_CHECK(c);
  if (chat_id == NULL)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  set_now(c, now_ms);
  int rc = sc_group_leave(c->grp, chat_id, c->now);
  pump(c);
  return rc;
}

int secchat_client_chat_remove(secchat_client *c, const uint8_t chat_id[SECCHAT_CHAT_ID_BYTES],
                               const uint8_t uid[SECCHAT_UID_BYTES], uint64_t now_ms)
{
  GRP_CHECK(c);
  if (chat_id == NULL || uid == NULL)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  set_now(c, now_ms);
  int rc = sc_group_remove(c->grp, chat_id, uid, c->now);
  pump(c);
  return rc;
}

int secchat_client_chat_send(secchat_client *c, const uint8_t chat_id[SECCHAT_CHAT_ID_BYTES],
                             const char *text, size_t len, int shareable, uint64_t now_ms,
                             uint8_t msg_id[SECCHAT_MSG_ID_BYTES])
{
  GRP_CHECK(c);
  if (chat_id == NULL || text == NULL)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  set_now(c, now_ms);
  uint8_t id[SECCHAT_MSG_ID_BYTES];
  int rc = sc_group_send_text(c->grp, chat_id, text, len, shareable, c->now, id);
  if (rc == 0 && msg_id != NULL)
    memcpy(msg_id, id, sizeof id);
  pump(c);
  return rc;
}

int secchat_client_chat_request_history(secchat_client *c,
                                        const uint8_t chat_id[SECCHAT_CHAT_ID_BYTES],
                                        unsigned npeers, uint32_t max_items, uint64_t now_ms)
{
  GRP_CHECK(c);
  if (chat_id == NULL)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  set_now(c, now_ms);
  int rc = sc_group_request_history(c->grp, chat_id, npeers, max_items, c->now);
  pump(c);
  return rc;
}

size_t secchat_client_chat_count(const secchat_client *c)
{
  return c == NULL || c->grp == NULL ? 0 : sc_group_chat_count(c->grp);
}

int secchat_client_chat_at(const secchat_client *c, size_t i,
                           uint8_t chat_id[SECCHAT_CHAT_ID_BYTES], int *state, uint64_t *epoch,
                           size_t *nmembers)
{
  GRP_CHECK(c);
  return sc_group_chat_at(c->grp, i, chat_id, state, epoch, nmembers);
}

int secchat_client_chat_members(const secchat_client *c,
                                const uint8_t chat_id[SECCHAT_CHAT_ID_BYTES],
                                uint8_t (*uids)[SECCHAT_UID_BYTES], size_t cap)
{
  GRP_CHECK(c);
  if (chat_id == NULL || (uids == NULL && cap > 0))
    return SECCHAT_ERR_INVALID_ARGUMENT;
  return sc_group_members(c->grp, chat_id, uids, cap);
}

int secchat_client_history_load(secchat_client *c, const uint8_t *rec, size_t len,
                                uint64_t now_ms)
{
  GRP_CHECK(c);
  if (rec == NULL)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  set_now(c, now_ms);
  int rc = sc_group_history_load(c->grp, rec, len, c->now);
  pump(c);
  return rc;
}

int secchat_client_chat_messages(const secchat_client *c,
                                 const uint8_t chat_id[SECCHAT_CHAT_ID_BYTES],
                                 secchat_chat_message *out, size_t cap)
{
  GRP_CHECK(c);
  if (chat_id == NULL || (cap > 0 && (out == NULL || out[0].struct_size != sizeof *out)))
    return SECCHAT_ERR_INVALID_ARGUMENT;
  if (cap > SC_GRP_HIST_MAX_ITEMS)
    cap = SC_GRP_HIST_MAX_ITEMS; /* the store never holds more */
  sc_group_msg *m = NULL;
  if (cap > 0 && (m = calloc(cap, sizeof *m)) == NULL)
    return SECCHAT_ERR_NOMEM;
  int n = sc_group_messages(c->grp, chat_id, m, cap);
  for (int i = 0; i < n; i++) {
    secchat_chat_message *o = &out[i];
    const sc_contact *ct = sc_contact_find(c, m[i].uid);
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->flags = SECCHAT_MSG_VERIFIED | (m[i].shareable ? SECCHAT_MSG_SHAREABLE : 0u);
    o->trust = ct != NULL ? ct->trust : 0;
    memcpy(o->uid, m[i].uid, SECCHAT_UID_BYTES);
    memcpy(o->msg_id, m[i].msg_id, SECCHAT_MSG_ID_BYTES);
    o->ts_ms = m[i].ts_ms;
    o->epoch = m[i].epoch;
    if (ct != NULL && ct->name[0] != '\0') {
      o->name = ct->name;
      o->name_len = strlen(ct->name);
    }
    o->text = (const char *)m[i].text;
    o->text_len = m[i].len;
  }
  free(m);
  return n;
}

int secchat_client_chat_gaps(const secchat_client *c, const uint8_t chat_id[SECCHAT_CHAT_ID_BYTES],
                             secchat_chat_gap *out, size_t cap)
{
  GRP_CHECK(c);
  if (chat_id == NULL || (cap > 0 && out == NULL))
    return SECCHAT_ERR_INVALID_ARGUMENT;
  if (cap > SC_GRP_TRACK_MAX)
    cap = SC_GRP_TRACK_MAX; /* never more authors than chain trackers */
  sc_group_gap *g = NULL;
  if (cap > 0 && (g = calloc(cap, sizeof *g)) == NULL)
    return SECCHAT_ERR_NOMEM;
  int n = sc_group_gaps(c->grp, chat_id, g, cap);
  for (int i = 0; i < n && (size_t)i < cap; i++) {
    memset(&out[i], 0, sizeof out[i]);
    memcpy(out[i].uid, g[i].uid, SECCHAT_UID_BYTES);
    out[i].missing = g[i].missing;
  }
  free(g);
  return n;
}
