/* contacts.c: identity trust on the client. Every peer token is verified
 * with the pinned server key (server signature, sub == uid(sig_pk), dh_sig:
 * secchat_token_check_peer); names are pinned to uids on first use (TOFU);
 * a different uid claiming a pinned name is flagged CHANGED, reported with
 * IDENTITY_CHANGED and blocked until the host accepts it; LOOKUP answers
 * with several uids for one name are ambiguous and pin nothing; safety
 * numbers and the verified trust level. docs/client.md, "Identity trust". */
#include "client.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "base32.h"

sc_contact *sc_contact_find(const secchat_client *c, const uint8_t uid[SECCHAT_UID_BYTES])
{
  for (size_t i = 0; i < c->ncontacts; i++)
    if (memcmp(c->contacts[i]->uid, uid, SECCHAT_UID_BYTES) == 0)
      return c->contacts[i];
  return NULL;
}

static sc_contact *pinned_holder(const secchat_client *c, const char *name)
{
  for (size_t i = 0; i < c->ncontacts; i++)
    if ((c->contacts[i]->flags & SECCHAT_CONTACT_PINNED) && strcmp(c->contacts[i]->name, name) == 0)
      return c->contacts[i];
  return NULL;
}

static sc_contact *contact_add(secchat_client *c, const uint8_t uid[SECCHAT_UID_BYTES],
                               const char *name)
{
  if (c->ncontacts >= c->cfg.max_contacts)
    return NULL;
  if (c->ncontacts == c->contacts_cap) {
    size_t cap = c->contacts_cap ? c->contacts_cap * 2 : 16;
    sc_contact **p = realloc(c->contacts, cap * sizeof *p);
    if (p == NULL)
      return NULL;
    c->contacts = p;
    c->contacts_cap = cap;
  }
  sc_contact *ct = calloc(1, sizeof *ct);
  if (ct == NULL)
    return NULL;
  memcpy(ct->uid, uid, SECCHAT_UID_BYTES);
  size_t nl = strlen(name);
  if (nl > SECCHAT_NAME_MAX_BYTES)
    nl = SECCHAT_NAME_MAX_BYTES;
  memcpy(ct->name, name, nl);
  ct->trust = SECCHAT_TRUST_TOFU;
  c->contacts[c->ncontacts++] = ct;
  return ct;
}

sc_contact *sc_contact_upsert(secchat_client *c, const secchat_token_claims *cl)
{
  sc_contact *ct = sc_contact_find(c, cl->uid);
  if (ct == NULL)
    ct = contact_add(c, cl->uid, cl->name);
  if (ct == NULL)
    return NULL;
  if (ct->name[0] == '\0' && cl->name[0] != '\0') /* known by uid only so far */
    memcpy(ct->name, cl->name, strlen(cl->name) + 1);
  /* The uid is the hash of sig_pk, so sig_pk cannot differ; dh_pk may be
   * newer (dh_sig was verified with sig_pk by the token check). */
  memcpy(ct->sign_pk, cl->sig_pk, 32);
  memcpy(ct->dh_pk, cl->dh_pk, 32);
  memcpy(ct->dh_sig, cl->dh_sig, 64);
  ct->has_keys = 1;
  return ct;
}

sc_contact *sc_contact_observe(secchat_client *c, const secchat_token_claims *cl, int allow_pin,
                               int *blocked)
{
  *blocked = 0;
  if (memcmp(cl->uid, secchat_identity_uid(c->id), SECCHAT_UID_BYTES) == 0)
    return NULL; /* ourselves */
  sc_contact *ct = sc_contact_upsert(c, cl);
  if (ct == NULL)
    return NULL;
  if (ct->flags & SECCHAT_CONTACT_PINNED)
    return ct; /* a pinned uid keeps its first name */
  sc_contact *holder = pinned_holder(c, cl->name);
  if (holder == NULL) {
    if (allow_pin && !(ct->flags & SECCHAT_CONTACT_CHANGED)) {
      ct->flags |= SECCHAT_CONTACT_PINNED;
      secchat_client_event *ev = sc_client_event(c, SECCHAT_CLIENT_EV_CONTACT_NEW, NULL, 0,
                                                 ct->name, strlen(ct->name));
      if (ev != NULL) {
        ev->has_uid = 1;
        memcpy(ev->uid, ct->uid, SECCHAT_UID_BYTES);
        ev->trust = ct->trust;
      }
    }
    *blocked = (ct->flags & SECCHAT_CONTACT_CHANGED) != 0;
    return ct;
  }
  if (!(ct->flags & SECCHAT_CONTACT_CHANGED)) {
    ct->flags |= SECCHAT_CONTACT_CHANGED;
    secchat_client_event *ev = sc_client_event(c, SECCHAT_CLIENT_EV_IDENTITY_CHANGED, NULL, 0,
                                               cl->name, strlen(cl->name));
    if (ev != NULL) {
      ev->code = SECCHAT_ERR_IDENTITY_CHANGED;
      ev->has_uid = 1;
      memcpy(ev->uid, ct->uid, SECCHAT_UID_BYTES);
      memcpy(ev->uid2, holder->uid, SECCHAT_UID_BYTES);
    }
  }
  *blocked = 1;
  return ct;
}

int sc_client_can_send_to(const secchat_client *c, const uint8_t uid[SECCHAT_UID_BYTES])
{
  const sc_contact *ct = sc_contact_find(c, uid);
  return ct == NULL || !(ct->flags & SECCHAT_CONTACT_CHANGED);
}

int sc_client_check_token(secchat_client *c, const char *tok, size_t len,
                          const uint8_t *expected_uid, secchat_token_claims *cl)
{
  memset(cl, 0, sizeof *cl);
  cl->struct_size = sizeof *cl;
  int reason = SECCHAT_TOKEN_R_INTERNAL;
  int rc = c->verifier == NULL ? SECCHAT_ERR_AUTH
                               : secchat_token_check_peer(c->verifier, tok, len, expected_uid,
                                                          sc_client_now_s(c), cl, &reason);
  if (rc != 0) {
    secchat_client_event *ev =
        sc_client_event(c, SECCHAT_CLIENT_EV_PEER_REJECTED, NULL, 0, NULL, 0);
    if (ev != NULL) {
      ev->code = rc;
      ev->detail = reason;
      if (expected_uid != NULL) {
        ev->has_uid = 1;
        memcpy(ev->uid, expected_uid, SECCHAT_UID_BYTES);
      }
    }
  }
  return rc;
}

/* ---- lookups -------------------------------------------------------------------- */

int sc_client_lookup_push(secchat_client *c, int by_uid, const uint8_t *uid, const char *name,
                          size_t len, int internal)
{
  if (c->cstate != SC_C_ONLINE)
    return SECCHAT_ERR_INVALID_STATE;
  if (c->lk_n == c->lk_cap) {
    if (c->lk_cap >= 256)
      return SECCHAT_ERR_QUEUE_FULL;
    uint32_t cap = c->lk_cap ? c->lk_cap * 2 : 8;
    struct sc_lookup *p = calloc(cap, sizeof *p);
    if (p == NULL)
      return SECCHAT_ERR_NOMEM;
    for (uint32_t i = 0; i < c->lk_n; i++)
      p[i] = c->lk[(c->lk_head + i) % c->lk_cap];
    free(c->lk);
    c->lk = p;
    c->lk_cap = cap;
    c->lk_head = 0;
  }
  struct sc_lookup *l = &c->lk[(c->lk_head + c->lk_n) % c->lk_cap];
  memset(l, 0, sizeof *l);
  l->by_uid = (uint8_t)by_uid;
  l->internal = (uint8_t)internal;
  sc_frame f;
  memset(&f, 0, sizeof f);
  if (by_uid) {
    memcpy(l->uid, uid, SECCHAT_UID_BYTES);
    f.type = SC_FRAME_LOOKUP_UID;
    f.u.lookup_uid.uid = uid;
  } else {
    memcpy(l->name, name, len);
    f.type = SC_FRAME_LOOKUP_NAME;
    f.u.lookup_name.name.p = name;
    f.u.lookup_name.name.len = len;
  }
  int rc = sc_client_send_frame(c, &f);
  if (rc == 0)
    c->lk_n++;
  return rc;
}

int secchat_client_lookup_name(secchat_client *c, const char *name, size_t len)
{
  if (c == NULL || name == NULL || len == 0 || len > SECCHAT_NAME_MAX_BYTES)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  return sc_client_lookup_push(c, 0, NULL, name, len, 0);
}

int secchat_client_lookup_uid(secchat_client *c, const uint8_t uid[SECCHAT_UID_BYTES])
{
  if (c == NULL || uid == NULL)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  return sc_client_lookup_push(c, 1, uid, NULL, 0, 0);
}

void sc_client_on_lookup_result(secchat_client *c, const sc_frame *f)
{
  if (c->lk_n == 0)
    return; /* unsolicited: dropped */
  struct sc_lookup l = c->lk[c->lk_head];
  c->lk_head = (c->lk_head + 1) % c->lk_cap;
  c->lk_n--;
  secchat_token_claims cls[SC_MAX_LOOKUP_TOKENS];
  size_t nvalid = 0, distinct = 0;
  for (size_t i = 0; i < f->u.lookup_result.count; i++) {
    secchat_token_claims *cl = &cls[nvalid];
    if (sc_client_check_token(c, f->u.lookup_result.tokens[i].p, f->u.lookup_result.tokens[i].len,
                              l.by_uid ? l.uid : NULL, cl) != 0)
      continue;
    if (!l.by_uid && strcmp(cl->name, l.name) != 0)
      continue; /* not an answer to this question */
    int dup = 0;
    for (size_t j = 0; j < nvalid; j++)
      dup |= memcmp(cls[j].uid, cl->uid, SECCHAT_UID_BYTES) == 0;
    if (dup)
      continue;
    nvalid++;
    distinct++;
  }
  int allow_pin = distinct == 1;
  for (size_t i = 0; i < nvalid; i++) {
    int blocked = 0;
    sc_contact *ct = sc_contact_observe(c, &cls[i], allow_pin, &blocked);
    if (!l.internal) {
      secchat_client_event *ev = sc_client_event(c, SECCHAT_CLIENT_EV_LOOKUP_ENTRY, NULL, 0,
                                                 cls[i].name, strlen(cls[i].name));
      if (ev != NULL) {
        ev->has_uid = 1;
        memcpy(ev->uid, cls[i].uid, SECCHAT_UID_BYTES);
        (void)secchat_fingerprint(cls[i].sig_pk, ev->text, sizeof ev->text);
        ev->trust = ct != NULL ? ct->trust : 0;
        ev->flags = ct != NULL ? ct->flags : 0;
        ev->count = (uint32_t)distinct;
      }
    }
    if (ct != NULL && !blocked)
      sc_pw_keys_known(c, ct);
  }
  if (!l.internal) {
    secchat_client_event *ev = sc_client_event(c, SECCHAT_CLIENT_EV_LOOKUP_DONE, NULL, 0,
                                               l.by_uid ? NULL : l.name,
                                               l.by_uid ? 0 : strlen(l.name));
    if (ev != NULL) {
      ev->count = (uint32_t)distinct;
      ev->flags = distinct > 1 ? SECCHAT_LOOKUP_AMBIGUOUS : 0;
      if (l.by_uid) {
        ev->has_uid = 1;
        memcpy(ev->uid, l.uid, SECCHAT_UID_BYTES);
      }
    }
  } else if (l.by_uid && nvalid == 0) {
    sc_pw_send_failed(c, l.uid, SC_PW_HELLO, SC_WIRE_UNKNOWN_RECIPIENT);
  }
  sodium_memzero(cls, sizeof cls);
}

/* ---- contacts API ---------------------------------------------------------------------- */

static void fill_contact(const secchat_client *c, const sc_contact *ct, secchat_contact *out)
{
  memset(out, 0, sizeof *out);
  out->struct_size = sizeof *out;
  out->trust = ct->trust;
  out->flags = ct->flags;
  if (ct->pw != NULL && ct->pw->cur.live)
    out->flags |= SECCHAT_CONTACT_SESSION;
  memcpy(out->uid, ct->uid, SECCHAT_UID_BYTES);
  memcpy(out->sign_pk, ct->sign_pk, 32);
  (void)secchat_uid_to_string(ct->uid, out->uid_str, sizeof out->uid_str);
  if (ct->has_keys)
    (void)secchat_fingerprint(ct->sign_pk, out->fingerprint, sizeof out->fingerprint);
  memcpy(out->name, ct->name, sizeof out->name);
  (void)c;
}

size_t secchat_client_contact_count(const secchat_client *c)
{
  return c == NULL ? 0 : c->ncontacts;
}

int secchat_client_contact_at(const secchat_client *c, size_t i, secchat_contact *out)
{
  if (c == NULL || out == NULL)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  if (i >= c->ncontacts)
    return SECCHAT_ERR_NOT_FOUND;
  fill_contact(c, c->contacts[i], out);
  return 0;
}

int secchat_client_contact(const secchat_client *c, const uint8_t uid[SECCHAT_UID_BYTES],
                           secchat_contact *out)
{
  if (c == NULL || uid == NULL || out == NULL)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  const sc_contact *ct = sc_contact_find(c, uid);
  if (ct == NULL)
    return SECCHAT_ERR_NOT_FOUND;
  fill_contact(c, ct, out);
  return 0;
}

int secchat_client_resolve(const secchat_client *c, const char *text, size_t len,
                           uint8_t uid[SECCHAT_UID_BYTES])
{
  if (c == NULL || text == NULL || uid == NULL || len == 0 || len > 2 * SECCHAT_NAME_MAX_BYTES)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  if (len == 32 && sc_base32_decode(uid, SECCHAT_UID_BYTES, text, len) == SECCHAT_UID_BYTES)
    return 0;
  const char *hash = memchr(text, '#', len);
  size_t nl = hash != NULL ? (size_t)(hash - text) : len;
  if (nl == 0 || nl > SECCHAT_NAME_MAX_BYTES)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  char name[SECCHAT_NAME_MAX_BYTES + 1];
  memcpy(name, text, nl);
  name[nl] = '\0';
  if (hash != NULL) {
    size_t fl = len - nl - 1;
    const sc_contact *found = NULL;
    for (size_t i = 0; i < c->ncontacts; i++) {
      const sc_contact *ct = c->contacts[i];
      char fpr[SECCHAT_FINGERPRINT_BYTES];
      if (!ct->has_keys || strcmp(ct->name, name) != 0 ||
          secchat_fingerprint(ct->sign_pk, fpr, sizeof fpr) != 0)
        continue;
      if (fl == strlen(fpr) && memcmp(fpr, hash + 1, fl) == 0)
        found = ct;
    }
    if (found == NULL)
      return SECCHAT_ERR_NOT_FOUND;
    memcpy(uid, found->uid, SECCHAT_UID_BYTES);
    return 0;
  }
  const sc_contact *holder = pinned_holder(c, name), *any = NULL;
  size_t n = 0;
  int contested = 0;
  for (size_t i = 0; i < c->ncontacts; i++) {
    const sc_contact *ct = c->contacts[i];
    if (strcmp(ct->name, name) != 0)
      continue;
    n++;
    any = ct;
    contested |= (ct->flags & SECCHAT_CONTACT_CHANGED) != 0;
  }
  if (holder != NULL && contested)
    return SECCHAT_ERR_IDENTITY_CHANGED;
  if (holder == NULL && n > 1)
    return SECCHAT_ERR_AMBIGUOUS;
  if (holder == NULL)
    holder = any;
  if (holder == NULL)
    return SECCHAT_ERR_NOT_FOUND;
  memcpy(uid, holder->uid, SECCHAT_UID_BYTES);
  return 0;
}

int secchat_client_trust(secchat_client *c, const uint8_t uid[SECCHAT_UID_BYTES])
{
  if (c == NULL || uid == NULL)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  sc_contact *ct = sc_contact_find(c, uid);
  if (ct == NULL)
    return SECCHAT_ERR_NOT_FOUND;
  sc_contact *holder = pinned_holder(c, ct->name);
  if (holder != NULL && holder != ct) {
    holder->flags &= (uint8_t)~SECCHAT_CONTACT_PINNED;
    holder->trust = SECCHAT_TRUST_TOFU;
  }
  if (holder != ct)
    ct->trust = SECCHAT_TRUST_TOFU;
  ct->flags = (uint8_t)((ct->flags | SECCHAT_CONTACT_PINNED) & ~SECCHAT_CONTACT_CHANGED);
  if (ct->pw != NULL)
    sc_pw_keys_known(c, ct); /* payloads that waited may go now */
  return 0;
}

int secchat_client_safety_number(const secchat_client *c, const uint8_t uid[SECCHAT_UID_BYTES],
                                 char *out, size_t cap)
{
  if (c == NULL || uid == NULL || out == NULL)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  const sc_contact *ct = sc_contact_find(c, uid);
  if (ct == NULL || !ct->has_keys)
    return SECCHAT_ERR_NOT_FOUND;
  return secchat_safety_number(secchat_identity_sign_public_key(c->id), ct->sign_pk, out, cap);
}

int secchat_client_verify(secchat_client *c, const uint8_t uid[SECCHAT_UID_BYTES],
                          const char *safety_number)
{
  if (c == NULL || uid == NULL || safety_number == NULL)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  sc_contact *ct = sc_contact_find(c, uid);
  if (ct == NULL || !ct->has_keys)
    return SECCHAT_ERR_NOT_FOUND;
  if (ct->flags & SECCHAT_CONTACT_CHANGED)
    return SECCHAT_ERR_IDENTITY_CHANGED;
  char ours[SECCHAT_SAFETY_NUMBER_BYTES];
  int rc = secchat_safety_number(secchat_identity_sign_public_key(c->id), ct->sign_pk, ours,
                                 sizeof ours);
  if (rc != 0)
    return rc;
  if (secchat_safety_number_equal(ours, safety_number) != 1)
    return SECCHAT_ERR_KEY_MISMATCH;
  ct->trust = SECCHAT_TRUST_VERIFIED;
  return 0;
}

void sc_contacts_free(secchat_client *c)
{
  for (size_t i = 0; i < c->ncontacts; i++) {
    sc_pw_free(c->contacts[i]->pw);
    sodium_memzero(c->contacts[i], sizeof *c->contacts[i]);
    free(c->contacts[i]);
  }
  free(c->contacts);
  c->contacts = NULL;
  c->ncontacts = c->contacts_cap = 0;
}
