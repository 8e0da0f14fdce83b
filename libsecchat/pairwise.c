/* pairwise.c: authenticated pairwise channels over DIRECT
 * (docs/client.md, "Pairwise channels").
 *
 *   HELLO  [1, IK msg 1]   payload [1, initiator token]
 *   REPLY  [2, IK msg 2]   payload [responder sig]   ctx secchat/pw-resp/v1
 *   DATA   [3, datagram]   sc_noise_dgram message whose plaintext is
 *            [1, sig]            CONFIRM      ctx secchat/pw-init/v1
 *            [2, payload]        DATA
 *            [3, sig, payload]   DATA + CONFIRM (until the responder ACKs)
 *            [4]                 ACK (responder: confirmation received)
 *
 * Signed bytes: resp: h1 || initiator uid || responder uid, where h1 is the
 * handshake hash after message 1 (both sides know it before message 2);
 * init: h || initiator uid || responder uid with h the final hash.
 * The initiator trusts the session once the responder's signature verifies
 * (IK already proves the responder holds the static key of its verified
 * token, the signature binds the uid); the responder trusts it only once
 * the initiator's signature verifies: nothing is delivered before. */
#include "client.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "crypto.h"
#include "identity.h"
#include "mp.h"

#define SC_PW_OLD_KEEP_MS 60000u /* a replaced session still decrypts */
#define SC_PW_SIGNED_MAX (SC_NOISE_HASHLEN + 2 * SECCHAT_UID_BYTES)

_Static_assert(SC_PW_MAX_RAW + 71u + SC_NOISE_DGRAM_OVERHEAD + 5u ==
                   SC_MAX_DIRECT_BLOB,
               "pairwise payload limit derivation (docs/client.md)");

static const uint8_t *self_uid(const secchat_client *c) { return secchat_identity_uid(c->id); }

static int scratch(secchat_client *c)
{
  if (c->pwa == NULL)
    c->pwa = malloc(SECCHAT_MAX_WIRE_MESSAGE);
  if (c->pwb == NULL)
    c->pwb = malloc(SECCHAT_MAX_WIRE_MESSAGE);
  return c->pwa != NULL && c->pwb != NULL ? 0 : SECCHAT_ERR_NOMEM;
}

static sc_pw *pw_get(sc_contact *ct)
{
  if (ct->pw == NULL)
    ct->pw = calloc(1, sizeof *ct->pw);
  return ct->pw;
}

static void sess_wipe(sc_pwsess *s) { sodium_memzero(s, sizeof *s); }

static void queue_drop(sc_pw *pw)
{
  sc_pwq *q = pw->qhead;
  while (q != NULL) {
    sc_pwq *n = q->next;
    sodium_memzero(q, sizeof *q + q->len);
    free(q);
    q = n;
  }
  pw->qhead = pw->qtail = NULL;
  pw->qn = 0;
}

void sc_pw_free(sc_pw *pw)
{
  if (pw == NULL)
    return;
  queue_drop(pw);
  sodium_memzero(pw, sizeof *pw);
  free(pw);
}

void sc_pw_reset_all(secchat_client *c)
{
  for (size_t i = 0; i < c->ncontacts; i++) {
    sc_pw *pw = c->contacts[i]->pw;
    if (pw == NULL)
      continue;
    sc_noise_handshake_wipe(&pw->hs);
    pw->hs_live = 0;
    pw->hs_attempts = 0;
    sess_wipe(&pw->pend);
    sess_wipe(&pw->cur);
    sess_wipe(&pw->old);
  }
}

/* signed = h || initiator uid || responder uid */
static size_t signed_msg(uint8_t out[SC_PW_SIGNED_MAX], const uint8_t h[SC_NOISE_HASHLEN],
                         const uint8_t *init_uid, const uint8_t *resp_uid)
{
  memcpy(out, h, SC_NOISE_HASHLEN);
  memcpy(out + SC_NOISE_HASHLEN, init_uid, SECCHAT_UID_BYTES);
  memcpy(out + SC_NOISE_HASHLEN + SECCHAT_UID_BYTES, resp_uid, SECCHAT_UID_BYTES);
  return SC_PW_SIGNED_MAX;
}

static void peer_event(secchat_client *c, uint32_t type, const uint8_t *uid, int code,
                       int detail, uint32_t count)
{
  secchat_client_event *ev = sc_client_event(c, type, NULL, 0, NULL, 0);
  if (ev != NULL) {
    ev->has_uid = 1;
    memcpy(ev->uid, uid, SECCHAT_UID_BYTES);
    ev->code = code;
    ev->detail = detail;
    ev->count = count;
  }
}

/* Wrap body as a DIRECT blob [kind, bin body] into out. */
static int64_t wrap(uint8_t kind, const uint8_t *body, size_t len, uint8_t *out, size_t cap)
{
  sc_mp_writer w;
  sc_mp_writer_init(&w, out, cap);
  sc_mp_write_array(&w, 2);
  sc_mp_write_uint(&w, kind);
  sc_mp_write_bin(&w, body, len);
  return sc_mp_writer_finish(&w);
}

/* ---- initiator: HELLO ------------------------------------------------------------------------- */

static int pw_start(secchat_client *c, sc_contact *ct)
{
  sc_pw *pw = ct->pw;
  if (c->cstate != SC_C_ONLINE || c->token == NULL)
    return 0; /* on_timeout starts it once online */
  if (!ct->has_keys) {
    if (!pw->want_keys || pw->keys_gen != c->conn_gen) {
      int rc = sc_client_lookup_push(c, 1, ct->uid, NULL, 0, 1);
      if (rc != 0)
        return rc;
      pw->want_keys = 1;
      pw->keys_gen = c->conn_gen;
    }
    return 0;
  }
  int rc = scratch(c);
  if (rc != 0)
    return rc;
  sc_noise_handshake_wipe(&pw->hs);
  pw->hs_live = 0;
  rc = sc_noise_handshake_init(&pw->hs, SC_NOISE_IK, 1, (const uint8_t *)SC_NOISE_PROLOGUE,
                               strlen(SC_NOISE_PROLOGUE), sc_identity_dh_sk(c->id), ct->dh_pk);
  if (rc != 0)
    return rc;
  sc_mp_writer w;
  sc_mp_writer_init(&w, c->pwa, SECCHAT_MAX_WIRE_MESSAGE);
  sc_mp_write_array(&w, 2);
  sc_mp_write_uint(&w, 1);
  sc_mp_write_str(&w, c->token, c->token_len);
  int64_t pl = sc_mp_writer_finish(&w);
  size_t mlen = 0;
  rc = pl < 0 ? (int)pl
              : sc_noise_handshake_write(&pw->hs, c->pwa, (size_t)pl, c->pwb,
                                         SECCHAT_MAX_WIRE_MESSAGE, &mlen);
  if (rc == 0)
    rc = sc_noise_handshake_hash(&pw->hs, pw->h1);
  int64_t bl = rc == 0 ? wrap(SC_PW_HELLO, c->pwb, mlen, c->pwa, SECCHAT_MAX_WIRE_MESSAGE) : rc;
  if (bl < 0) {
    sc_noise_handshake_wipe(&pw->hs);
    return (int)bl;
  }
  rc = sc_client_queue_direct(c, ct->uid, SC_PW_HELLO, c->pwa, (size_t)bl, NULL);
  if (rc != 0) {
    sc_noise_handshake_wipe(&pw->hs);
    return rc;
  }
  pw->hs_live = 1;
  pw->hs_attempts++;
  pw->hs_sent_ms = c->now;
  return 0;
}

/* ---- transport ------------------------------------------------------------------------------- */

static int sess_usable(const sc_pwsess *s) { return s->live && (s->initiator || s->confirmed); }

/* Encrypt one plaintext kind on s and queue the DIRECT. */
static int sess_send(secchat_client *c, sc_contact *ct, sc_pwsess *s, uint8_t kind,
                     const uint8_t *payload, size_t len)
{
  int rc = scratch(c);
  if (rc != 0)
    return rc;
  sc_mp_writer w;
  sc_mp_writer_init(&w, c->pwa, SECCHAT_MAX_WIRE_MESSAGE);
  sc_mp_write_array(&w, kind == SC_PWI_ACK ? 1 : kind == SC_PWI_DATA_CONFIRM ? 3 : 2);
  sc_mp_write_uint(&w, kind);
  if (kind == SC_PWI_CONFIRM || kind == SC_PWI_DATA_CONFIRM)
    sc_mp_write_bin(&w, s->confirm_sig, sizeof s->confirm_sig);
  if (kind == SC_PWI_DATA || kind == SC_PWI_DATA_CONFIRM)
    sc_mp_write_bin(&w, payload, len);
  int64_t pl = sc_mp_writer_finish(&w);
  size_t dl = 0;
  rc = pl < 0 ? (int)pl
              : sc_noise_dgram_encrypt(&s->d, c->pwa, (size_t)pl, c->pwb, SECCHAT_MAX_WIRE_MESSAGE,
                                       &dl);
  sodium_memzero(c->pwa, pl > 0 ? (size_t)pl : 0);
  if (rc != 0)
    return rc;
  int64_t bl = wrap(SC_PW_DATA, c->pwb, dl, c->pwa, SECCHAT_MAX_WIRE_MESSAGE);
  if (bl < 0)
    return (int)bl;
  rc = sc_client_queue_direct(c, ct->uid, SC_PW_DATA, c->pwa, (size_t)bl, NULL);
  sodium_memzero(c->pwa, (size_t)bl);
  return rc;
}

static int send_payload(secchat_client *c, sc_contact *ct, const uint8_t *p, size_t len)
{
  sc_pwsess *s = &ct->pw->cur;
  uint8_t kind = s->initiator && !s->confirmed ? SC_PWI_DATA_CONFIRM : SC_PWI_DATA;
  return sess_send(c, ct, s, kind, p, len);
}

/* Send what waited, in order, while the session is usable. */
static void flush(secchat_client *c, sc_contact *ct)
{
  sc_pw *pw = ct->pw;
  while (pw->qhead != NULL && sess_usable(&pw->cur) && c->rq_n < c->cfg.max_relay_queue) {
    sc_pwq *q = pw->qhead;
    if (send_payload(c, ct, q->data, q->len) != 0)
      break;
    pw->qhead = q->next;
    if (pw->qhead == NULL)
      pw->qtail = NULL;
    pw->qn--;
    sodium_memzero(q, sizeof *q + q->len);
    free(q);
  }
}

/* Time for a fresh session (10,000 messages or 24 h): start one; the
 * current one carries on until the new one is installed. */
static void maybe_rekey(secchat_client *c, sc_contact *ct)
{
  sc_pw *pw = ct->pw;
  if (!pw->cur.live || pw->hs_live || pw->pend.live)
    return;
  /* An initiator session the responder never acknowledged may exist only
   * on our side (its pending half expired): replace it after a while. */
  int unacked = pw->cur.initiator && !pw->cur.confirmed &&
                c->now >= pw->cur.created_ms + (uint64_t)c->cfg.pairwise_retry_ms *
                                                   c->cfg.pairwise_attempts;
  if (unacked || sc_noise_dgram_sent(&pw->cur.d) >= c->cfg.pairwise_max_messages ||
      c->now >= pw->cur.created_ms + (uint64_t)c->cfg.pairwise_max_age_s * 1000u) {
    pw->hs_attempts = 0;
    (void)pw_start(c, ct);
  }
}

int sc_client_pw_send(secchat_client *c, const uint8_t uid[SECCHAT_UID_BYTES],
                      const uint8_t *payload, size_t len)
{
  if (c == NULL || uid == NULL || payload == NULL || len == 0)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  if (len > SC_PW_MAX_RAW)
    return SECCHAT_ERR_TOO_LONG;
  if (memcmp(uid, self_uid(c), SECCHAT_UID_BYTES) == 0)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  sc_contact *ct = sc_contact_find(c, uid);
  if (ct == NULL) {
    secchat_token_claims cl; /* an unknown uid: keys come from a LOOKUP */
    memset(&cl, 0, sizeof cl);
    memcpy(cl.uid, uid, SECCHAT_UID_BYTES);
    ct = sc_contact_upsert(c, &cl);
    if (ct == NULL)
      return SECCHAT_ERR_NOMEM;
    ct->has_keys = 0;
  }
  if (ct->flags & SECCHAT_CONTACT_CHANGED)
    return SECCHAT_ERR_IDENTITY_CHANGED;
  sc_pw *pw = pw_get(ct);
  if (pw == NULL)
    return SECCHAT_ERR_NOMEM;
  if (sess_usable(&pw->cur) && pw->qhead == NULL) {
    int rc = send_payload(c, ct, payload, len);
    if (rc == 0)
      maybe_rekey(c, ct);
    if (rc != SECCHAT_ERR_INVALID_STATE)
      return rc;
    /* offline: queue it below */
  }
  if (pw->qn >= c->cfg.max_pairwise_queue)
    return SECCHAT_ERR_QUEUE_FULL;
  sc_pwq *q = malloc(sizeof *q + len);
  if (q == NULL)
    return SECCHAT_ERR_NOMEM;
  q->next = NULL;
  q->len = len;
  memcpy(q->data, payload, len);
  if (pw->qtail != NULL)
    pw->qtail->next = q;
  else
    pw->qhead = q;
  pw->qtail = q;
  pw->qn++;
  if (sess_usable(&pw->cur))
    flush(c, ct);
  else if (!pw->hs_live && !pw->pend.live)
    (void)pw_start(c, ct);
  return 0;
}

int secchat_client_pairwise_send(secchat_client *c, const uint8_t uid[SECCHAT_UID_BYTES],
                                 const uint8_t *payload, size_t len, uint64_t now_ms)
{
  if (c == NULL || uid == NULL || payload == NULL || len == 0)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  if (len > SECCHAT_CLIENT_MAX_PAIRWISE_PAYLOAD)
    return SECCHAT_ERR_TOO_LONG;
  if (now_ms > c->now)
    c->now = now_ms;
  uint8_t *p = malloc(len + 1);
  if (p == NULL)
    return SECCHAT_ERR_NOMEM;
  p[0] = SC_PORT_APP;
  memcpy(p + 1, payload, len);
  int rc = sc_client_pw_send(c, uid, p, len + 1);
  sodium_memzero(p, len + 1);
  free(p);
  return rc;
}

/* ---- responder: HELLO -> REPLY ----------------------------------------------------------------- */

static void reject(secchat_client *c, const uint8_t *uid, int code, int detail)
{
  peer_event(c, SECCHAT_CLIENT_EV_PEER_REJECTED, uid, code, detail, 0);
}

static void on_hello(secchat_client *c, const uint8_t *from, const uint8_t *msg, size_t len)
{
  uint8_t digest[32];
  crypto_generichash(digest, sizeof digest, msg, len, NULL, 0);
  sc_contact *ct = sc_contact_find(c, from);
  if (ct != NULL && ct->pw != NULL && sodium_memcmp(ct->pw->last_hello, digest, 32) == 0)
    return; /* the same HELLO again (re-sent after a reconnect, or replayed) */
  sc_noise_handshake hs;
  sc_noise_transport t;
  uint8_t rs[32], h1[32], h[32], sig[64], sm[SC_PW_SIGNED_MAX];
  secchat_token_claims cl;
  size_t plen = 0;
  int detail = 0;
  int rc = sc_noise_handshake_init(&hs, SC_NOISE_IK, 0, (const uint8_t *)SC_NOISE_PROLOGUE,
                                   strlen(SC_NOISE_PROLOGUE), sc_identity_dh_sk(c->id), NULL);
  if (rc == 0)
    rc = sc_noise_handshake_read(&hs, msg, len, c->pwa, SECCHAT_MAX_WIRE_MESSAGE, &plen);
  if (rc == 0)
    rc = sc_noise_handshake_remote_static(&hs, rs);
  const char *tok = NULL;
  size_t tl = 0;
  if (rc == 0) {
    sc_mp_reader r;
    uint32_t n = 0;
    uint64_t ver = 0;
    sc_mp_reader_init(&r, c->pwa, plen);
    if (sc_mp_validate(c->pwa, plen, 1) != 0 || sc_mp_read_array(&r, &n) != 0 || n != 2 ||
        sc_mp_read_uint(&r, &ver) != 0 || ver != 1 ||
        sc_mp_read_str(&r, &tok, &tl, 1, SECCHAT_MAX_TOKEN_BYTES) != 0)
      rc = SECCHAT_ERR_SCHEMA;
  }
  if (rc != 0) {
    sc_noise_handshake_wipe(&hs);
    reject(c, from, rc, 0);
    return;
  }
  /* The token: server signature, sub == uid(sig_pk), dh_sig, for the uid
   * the relay says sent it, and its dh_pk is the IK static just proven. */
  rc = sc_client_check_token(c, tok, tl, from, &cl);
  if (rc != 0) {
    sc_noise_handshake_wipe(&hs);
    return; /* PEER_REJECTED already reported */
  }
  if (sodium_memcmp(cl.dh_pk, rs, 32) != 0) {
    sc_noise_handshake_wipe(&hs);
    reject(c, from, SECCHAT_ERR_AUTH, SECCHAT_TOKEN_R_CHANNEL);
    return;
  }
  int blocked = 0;
  ct = sc_contact_observe(c, &cl, 1, &blocked);
  sc_pw *pw = ct != NULL ? pw_get(ct) : NULL;
  if (pw == NULL || blocked) {
    sc_noise_handshake_wipe(&hs);
    reject(c, from, blocked ? SECCHAT_ERR_IDENTITY_CHANGED : SECCHAT_ERR_NOMEM, 0);
    return;
  }
  if (pw->hs_live && memcmp(self_uid(c), from, SECCHAT_UID_BYTES) < 0) {
    sc_noise_handshake_wipe(&hs); /* simultaneous open: the lower uid's session wins */
    return;
  }
  if (pw->hs_live) {
    sc_noise_handshake_wipe(&pw->hs);
    pw->hs_live = 0;
    pw->hs_attempts = 0;
  }
  rc = sc_noise_handshake_hash(&hs, h1);
  if (rc == 0)
    rc = sc_sign_ctx(sig, SC_CTX_PW_RESP, sm, signed_msg(sm, h1, from, self_uid(c)),
                     sc_identity_sign_sk(c->id));
  sc_mp_writer w;
  sc_mp_writer_init(&w, c->pwa, SECCHAT_MAX_WIRE_MESSAGE);
  sc_mp_write_array(&w, 1);
  sc_mp_write_bin(&w, sig, sizeof sig);
  int64_t pl = sc_mp_writer_finish(&w);
  size_t mlen = 0;
  if (rc == 0)
    rc = pl < 0 ? (int)pl
                : sc_noise_handshake_write(&hs, c->pwa, (size_t)pl, c->pwb,
                                           SECCHAT_MAX_WIRE_MESSAGE, &mlen);
  if (rc == 0)
    rc = sc_noise_handshake_split(&hs, &t, h);
  sc_pwsess ns;
  memset(&ns, 0, sizeof ns);
  if (rc == 0)
    rc = sc_noise_dgram_init(&ns.d, &t, h);
  int64_t bl = rc == 0 ? wrap(SC_PW_REPLY, c->pwb, mlen, c->pwa, SECCHAT_MAX_WIRE_MESSAGE) : rc;
  if (bl >= 0)
    rc = sc_client_queue_direct(c, from, SC_PW_REPLY, c->pwa, (size_t)bl, NULL);
  else
    rc = (int)bl;
  if (rc == 0) {
    memcpy(ns.h, h, sizeof h);
    ns.created_ms = c->now;
    ns.live = 1;
    sess_wipe(&pw->pend);
    pw->pend = ns;
    memcpy(pw->last_hello, digest, 32);
  } else {
    detail = rc;
    reject(c, from, rc, detail);
  }
  sc_noise_handshake_wipe(&hs);
  sc_noise_transport_wipe(&t);
  sess_wipe(&ns);
  sodium_memzero(h1, sizeof h1);
  sodium_memzero(h, sizeof h);
  sodium_memzero(&cl, sizeof cl);
}

/* ---- initiator: REPLY --------------------------------------------------------------------------- */

static void install(secchat_client *c, sc_contact *ct, sc_pwsess *ns)
{
  sc_pw *pw = ct->pw;
  sess_wipe(&pw->old);
  if (pw->cur.live) {
    pw->old = pw->cur;
    pw->old.created_ms = c->now; /* kept SC_PW_OLD_KEEP_MS from now */
  }
  pw->cur = *ns;
  sess_wipe(ns);
  peer_event(c, SECCHAT_CLIENT_EV_PAIRWISE_OPEN, ct->uid, 0, pw->cur.initiator, 0);
}

static void on_reply(secchat_client *c, const uint8_t *from, const uint8_t *msg, size_t len)
{
  sc_contact *ct = sc_contact_find(c, from);
  if (ct == NULL || ct->pw == NULL || !ct->pw->hs_live)
    return; /* no handshake of ours waits for it (late or replayed) */
  sc_pw *pw = ct->pw;
  sc_noise_handshake hs = pw->hs; /* a bad REPLY must not kill ours */
  sc_noise_transport t;
  sc_pwsess ns;
  memset(&ns, 0, sizeof ns);
  uint8_t sm[SC_PW_SIGNED_MAX];
  size_t plen = 0;
  const uint8_t *sig = NULL;
  int rc = sc_noise_handshake_read(&hs, msg, len, c->pwa, SECCHAT_MAX_WIRE_MESSAGE, &plen);
  if (rc == 0) {
    sc_mp_reader r;
    uint32_t n = 0;
    sc_mp_reader_init(&r, c->pwa, plen);
    if (sc_mp_validate(c->pwa, plen, 1) != 0 || sc_mp_read_array(&r, &n) != 0 || n != 1 ||
        sc_mp_read_bin_exact(&r, &sig, 64) != 0)
      rc = SECCHAT_ERR_SCHEMA;
  }
  if (rc == 0)
    rc = sc_verify_ctx(sig, SC_CTX_PW_RESP, sm, signed_msg(sm, pw->h1, self_uid(c), from),
                       ct->sign_pk);
  if (rc == 0)
    rc = sc_noise_handshake_split(&hs, &t, ns.h);
  if (rc == 0)
    rc = sc_noise_dgram_init(&ns.d, &t, ns.h);
  if (rc == 0)
    rc = sc_sign_ctx(ns.confirm_sig, SC_CTX_PW_INIT, sm,
                     signed_msg(sm, ns.h, self_uid(c), from), sc_identity_sign_sk(c->id));
  sc_noise_handshake_wipe(&hs);
  sc_noise_transport_wipe(&t);
  if (rc != 0) {
    sess_wipe(&ns);
    reject(c, from, rc, 0);
    return;
  }
  sc_noise_handshake_wipe(&pw->hs);
  pw->hs_live = 0;
  pw->hs_attempts = 0;
  ns.live = 1;
  ns.initiator = 1;
  ns.created_ms = c->now;
  install(c, ct, &ns);
  (void)sess_send(c, ct, &pw->cur, SC_PWI_CONFIRM, NULL, 0);
  flush(c, ct);
}

/* ---- DATA --------------------------------------------------------------------------------------- */

/* A verified pairwise payload from uid: port byte, then the group layer's
 * payload or the application's (PAIRWISE_MESSAGE event). */
static void deliver(secchat_client *c, const uint8_t *uid, const uint8_t *p, size_t len)
{
  if (len >= 2 && p[0] == SC_PORT_GROUP) {
    sc_client_group_pairwise(c, uid, p + 1, len - 1);
    return;
  }
  if (len < 2 || p[0] != SC_PORT_APP) {
    reject(c, uid, SECCHAT_ERR_UNKNOWN_FRAME, len > 0 ? p[0] : 0);
    return;
  }
  secchat_client_event *ev =
      sc_client_event(c, SECCHAT_CLIENT_EV_PAIRWISE_MESSAGE, p + 1, len - 1, NULL, 0);
  if (ev != NULL) {
    ev->has_uid = 1;
    memcpy(ev->uid, uid, SECCHAT_UID_BYTES);
  }
}

/* A message for a session we do not have: the peer kept one we lost (a
 * state import), or kept one whose pending half we dropped. If we have no
 * usable session, or ours was never acknowledged (so the peer may not
 * have it), open a fresh one, at most once per retry period. With a
 * confirmed session of our own it is stale or forged: ignored. */
static void restart(secchat_client *c, sc_contact *ct)
{
  sc_pw *pw = pw_get(ct);
  if (pw == NULL || pw->hs_live || pw->pend.live || !ct->has_keys ||
      (ct->flags & SECCHAT_CONTACT_CHANGED) ||
      (sess_usable(&pw->cur) && pw->cur.confirmed) ||
      (pw->last_restart_ms != 0 && c->now < pw->last_restart_ms + c->cfg.pairwise_retry_ms))
    return;
  pw->last_restart_ms = c->now;
  pw->hs_attempts = 0;
  (void)pw_start(c, ct);
}

static void on_data(secchat_client *c, const uint8_t *from, const uint8_t *msg, size_t len)
{
  sc_contact *ct = sc_contact_find(c, from);
  uint8_t sid[SC_NOISE_SID_BYTES], s2[SC_NOISE_SID_BYTES];
  if (ct == NULL || sc_noise_dgram_peek_session_id(msg, len, sid) != 0)
    return;
  sc_pw *pw = ct->pw;
  sc_pwsess *s = NULL;
  sc_pwsess *cands[3] = {pw ? &pw->cur : NULL, pw ? &pw->pend : NULL, pw ? &pw->old : NULL};
  for (int i = 0; i < 3 && s == NULL; i++) {
    if (cands[i] == NULL || !cands[i]->live)
      continue;
    sc_noise_dgram_session_id(&cands[i]->d, s2);
    if (memcmp(s2, sid, sizeof sid) == 0)
      s = cands[i];
  }
  if (s == NULL) {
    restart(c, ct);
    return;
  }
  size_t ptlen = 0;
  if (sc_noise_dgram_decrypt(&s->d, msg, len, c->pwa, SECCHAT_MAX_WIRE_MESSAGE, &ptlen, NULL) != 0)
    return; /* forged, corrupted, replayed or duplicated: dropped */
  sc_mp_reader r;
  uint32_t n = 0;
  uint64_t kind = 0;
  const uint8_t *sig = NULL, *payload = NULL;
  size_t plen = 0;
  sc_mp_reader_init(&r, c->pwa, ptlen);
  if (sc_mp_validate(c->pwa, ptlen, 1) != 0 || sc_mp_read_array(&r, &n) != 0 || n < 1 ||
      sc_mp_read_uint(&r, &kind) != 0)
    goto out;
  if ((kind == SC_PWI_CONFIRM && n != 2) || (kind == SC_PWI_DATA && n != 2) ||
      (kind == SC_PWI_DATA_CONFIRM && n != 3) || (kind == SC_PWI_ACK && n != 1) || kind == 0 ||
      kind > SC_PWI_ACK)
    goto out;
  if ((kind == SC_PWI_CONFIRM || kind == SC_PWI_DATA_CONFIRM) &&
      sc_mp_read_bin_exact(&r, &sig, 64) != 0)
    goto out;
  if ((kind == SC_PWI_DATA || kind == SC_PWI_DATA_CONFIRM) &&
      sc_mp_read_bin(&r, &payload, &plen, 1, SC_PW_MAX_RAW) != 0)
    goto out;
  if (s == &pw->pend) {
    /* Nothing counts before the initiator's signature verifies. */
    uint8_t sm[SC_PW_SIGNED_MAX];
    if (sig == NULL ||
        sc_verify_ctx(sig, SC_CTX_PW_INIT, sm, signed_msg(sm, s->h, from, self_uid(c)),
                      ct->sign_pk) != 0)
      goto out;
    s->confirmed = 1;
    sc_pwsess ns = *s;
    sess_wipe(s);
    install(c, ct, &ns);
    s = &pw->cur;
    (void)sess_send(c, ct, s, SC_PWI_ACK, NULL, 0);
  } else if (kind == SC_PWI_ACK && s == &pw->cur && s->initiator) {
    s->confirmed = 1;
  }
  if (payload != NULL) {
    /* copy out of the scratch buffer: sending the queue reuses it */
    uint8_t *copy = malloc(plen);
    if (copy != NULL) {
      memcpy(copy, payload, plen);
      sodium_memzero(c->pwa, ptlen);
      ptlen = 0;
      deliver(c, from, copy, plen);
      sodium_memzero(copy, plen);
      free(copy);
    }
  }
  flush(c, ct);
out:
  if (ptlen > 0)
    sodium_memzero(c->pwa, ptlen);
}

void sc_pw_on_direct(secchat_client *c, const sc_frame *f)
{
  const uint8_t *from = f->u.direct_deliver.from_uid;
  if (memcmp(from, self_uid(c), SECCHAT_UID_BYTES) == 0 || scratch(c) != 0)
    return;
  const uint8_t *b = f->u.direct_deliver.blob.p;
  size_t bl = f->u.direct_deliver.blob.len;
  sc_mp_reader r;
  uint32_t n = 0;
  uint64_t kind = 0;
  const uint8_t *body = NULL;
  size_t len = 0;
  sc_mp_reader_init(&r, b, bl);
  if (sc_mp_validate(b, bl, 1) != 0 || sc_mp_read_array(&r, &n) != 0 || n != 2 ||
      sc_mp_read_uint(&r, &kind) != 0 ||
      sc_mp_read_bin(&r, &body, &len, 1, SC_MAX_DIRECT_BLOB) != 0) {
    reject(c, from, SECCHAT_ERR_SCHEMA, 0);
    return;
  }
  switch (kind) {
  case SC_PW_HELLO: on_hello(c, from, body, len); break;
  case SC_PW_REPLY: on_reply(c, from, body, len); break;
  case SC_PW_DATA: on_data(c, from, body, len); break;
  default: reject(c, from, SECCHAT_ERR_UNKNOWN_FRAME, (int)kind); break;
  }
}

/* ---- keys, failures, deadlines ----------------------------------------------------------------------- */

void sc_pw_keys_known(secchat_client *c, sc_contact *ct)
{
  sc_pw *pw = ct->pw;
  if (pw == NULL)
    return;
  pw->want_keys = 0;
  if (pw->qhead == NULL || (ct->flags & SECCHAT_CONTACT_CHANGED))
    return;
  if (sess_usable(&pw->cur))
    flush(c, ct);
  else if (!pw->hs_live && !pw->pend.live)
    (void)pw_start(c, ct);
}

static void fail(secchat_client *c, sc_contact *ct, int code)
{
  sc_pw *pw = ct->pw;
  uint32_t dropped = pw->qn;
  queue_drop(pw);
  sc_noise_handshake_wipe(&pw->hs);
  pw->hs_live = 0;
  pw->hs_attempts = 0;
  pw->want_keys = 0;
  peer_event(c, SECCHAT_CLIENT_EV_PAIRWISE_FAILED, ct->uid, code, 0, dropped);
}

void sc_pw_send_failed(secchat_client *c, const uint8_t uid[SECCHAT_UID_BYTES], uint8_t kind,
                       uint64_t wire)
{
  sc_contact *ct = sc_contact_find(c, uid);
  if (ct == NULL || ct->pw == NULL)
    return;
  if (kind == SC_PW_HELLO) {
    fail(c, ct, wire == SC_WIRE_UNKNOWN_RECIPIENT ? SECCHAT_ERR_NOT_FOUND : SECCHAT_ERR_PROTOCOL);
  } else if (kind == SC_PW_DATA) {
    secchat_client_event *ev =
        sc_client_event(c, SECCHAT_CLIENT_EV_SEND_FAILED, NULL, 0, NULL, 0);
    if (ev != NULL) {
      ev->has_uid = 1;
      memcpy(ev->uid, uid, SECCHAT_UID_BYTES);
      ev->detail = (int32_t)wire;
    }
  }
}

uint64_t sc_pw_next_timeout(const secchat_client *c)
{
  uint64_t t = UINT64_MAX;
  uint64_t pend_ms = (uint64_t)c->cfg.pairwise_retry_ms * c->cfg.pairwise_attempts;
  for (size_t i = 0; i < c->ncontacts; i++) {
    const sc_pw *pw = c->contacts[i]->pw;
    if (pw == NULL)
      continue;
    uint64_t d = UINT64_MAX;
    if (pw->hs_live)
      d = pw->hs_sent_ms + c->cfg.pairwise_retry_ms;
    if (pw->pend.live && pw->pend.created_ms + pend_ms < d)
      d = pw->pend.created_ms + pend_ms;
    if (pw->old.live && pw->old.created_ms + SC_PW_OLD_KEEP_MS < d)
      d = pw->old.created_ms + SC_PW_OLD_KEEP_MS;
    if (pw->qhead != NULL && !pw->hs_live && !pw->pend.live && !sess_usable(&pw->cur) &&
        c->cstate == SC_C_ONLINE && (!pw->want_keys || pw->keys_gen != c->conn_gen) &&
        !(c->contacts[i]->flags & SECCHAT_CONTACT_CHANGED))
      d = pw->start_at_ms > c->now ? pw->start_at_ms : c->now; /* waiting to be started */
    if (pw->fresh && c->cstate == SC_C_ONLINE)
      d = c->now;
    if (d < t)
      t = d;
  }
  return t;
}

void sc_pw_on_timeout(secchat_client *c)
{
  uint64_t pend_ms = (uint64_t)c->cfg.pairwise_retry_ms * c->cfg.pairwise_attempts;
  for (size_t i = 0; i < c->ncontacts; i++) {
    sc_contact *ct = c->contacts[i];
    sc_pw *pw = ct->pw;
    if (pw == NULL)
      continue;
    if (pw->old.live && c->now >= pw->old.created_ms + SC_PW_OLD_KEEP_MS)
      sess_wipe(&pw->old);
    if (pw->pend.live && c->now >= pw->pend.created_ms + pend_ms)
      sess_wipe(&pw->pend); /* the initiator never confirmed */
    if (pw->hs_live && c->now >= pw->hs_sent_ms + c->cfg.pairwise_retry_ms) {
      if (pw->hs_attempts >= c->cfg.pairwise_attempts)
        fail(c, ct, SECCHAT_ERR_TIMEOUT);
      else if (c->cstate == SC_C_ONLINE)
        (void)pw_start(c, ct); /* a new ephemeral: a lost message 1 or 2 */
    }
    if (pw->fresh && c->cstate == SC_C_ONLINE) {
      pw->fresh = 0;
      if (!pw->hs_live && !pw->pend.live && !sess_usable(&pw->cur) &&
          !(ct->flags & SECCHAT_CONTACT_CHANGED))
        (void)pw_start(c, ct);
    }
    if (pw->qhead != NULL && !pw->hs_live && !pw->pend.live && !sess_usable(&pw->cur) &&
        !(ct->flags & SECCHAT_CONTACT_CHANGED) && c->now >= pw->start_at_ms) {
      if (pw_start(c, ct) != 0)
        pw->start_at_ms = c->now + 1000u; /* relay or lookup queue full: back off */
    } else if (pw->qhead != NULL && sess_usable(&pw->cur))
      flush(c, ct);
  }
}
