/* client_state.c: the client state blob (docs/client.md, "State blob").
 *
 *   blob = "SCST" || version (1) || counter (u64be) || nonce (24) ||
 *          XChaCha20-Poly1305(key, nonce, ad = the 13 header bytes, plaintext)
 *   key  = BLAKE2b-256(key = Ed25519 seed of the identity,
 *                      msg = "secchat/state/v1" || 0x00)
 *   plaintext = canonical msgpack
 *     [1, counter, pin, name, token, next_ref, contacts, group]
 *     pin      = nil | [noise_pk bin32, token_pem str, issuer str]
 *     contacts = [[uid bin20, name str, sig_pk bin32, dh_pk bin32,
 *                  dh_sig bin64, has_keys bool, trust uint, flags uint] ...]
 *     group    = nil | bin (the group layer's own state, opaque here)
 *
 * Pairwise sessions are deliberately absent: a restored blob may be older
 * than the sessions in use, and resuming one would reuse nonces. After an
 * import every channel is opened afresh (peers that still hold the old
 * session get an unknown session id and re-handshake as well). */
#include "client.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "crypto.h"
#include "identity.h"
#include "mp.h"
#include "rng.h"

#define SC_STATE_MAGIC "SCST"
#define SC_STATE_VERSION 1u
#define SC_STATE_HDR 13u
#define SC_STATE_NONCE 24u
#define SC_STATE_OVERHEAD (SC_STATE_HDR + SC_STATE_NONCE + 16u)
#define SC_STATE_CONTACT_MAX (64u + SECCHAT_NAME_MAX_BYTES + 2u * 34u + 66u + 22u)
#define SC_STATE_MAX_GROUP (64u * 1024u * 1024u)

static int state_key(const secchat_client *c, uint8_t key[32])
{
  return crypto_generichash(key, 32, (const uint8_t *)SC_CTX_STATE, sizeof SC_CTX_STATE,
                            sc_identity_sign_sk(c->id), 32) == 0
             ? 0
             : SECCHAT_ERR_INTERNAL;
}

static size_t plain_bound(const secchat_client *c)
{
  return 128u + c->pin_pem_len + SECCHAT_ISSUER_MAX_BYTES + SECCHAT_NAME_MAX_BYTES +
         c->token_len + c->ncontacts * SC_STATE_CONTACT_MAX + c->group_state_len;
}

static int64_t encode_plain(const secchat_client *c, uint64_t counter, uint8_t *out, size_t cap)
{
  sc_mp_writer w;
  sc_mp_writer_init(&w, out, cap);
  sc_mp_write_array(&w, 8);
  sc_mp_write_uint(&w, SC_STATE_VERSION);
  sc_mp_write_uint(&w, counter);
  if (c->pin_set) {
    sc_mp_write_array(&w, 3);
    sc_mp_write_bin(&w, c->pin_noise, 32);
    sc_mp_write_str(&w, c->pin_pem, c->pin_pem_len);
    sc_mp_write_str(&w, c->pin_issuer, strlen(c->pin_issuer));
  } else {
    sc_mp_write_nil(&w);
  }
  sc_mp_write_str(&w, c->name, strlen(c->name));
  if (c->token != NULL)
    sc_mp_write_str(&w, c->token, c->token_len);
  else
    sc_mp_write_nil(&w);
  sc_mp_write_uint(&w, c->next_ref);
  sc_mp_write_array(&w, (uint32_t)c->ncontacts);
  for (size_t i = 0; i < c->ncontacts; i++) {
    const sc_contact *ct = c->contacts[i];
    sc_mp_write_array(&w, 8);
    sc_mp_write_bin(&w, ct->uid, SECCHAT_UID_BYTES);
    sc_mp_write_str(&w, ct->name, strlen(ct->name));
    sc_mp_write_bin(&w, ct->sign_pk, 32);
    sc_mp_write_bin(&w, ct->dh_pk, 32);
    sc_mp_write_bin(&w, ct->dh_sig, 64);
    sc_mp_write_bool(&w, ct->has_keys != 0);
    sc_mp_write_uint(&w, ct->trust);
    uint8_t fl = ct->flags;
    if (ct->pw != NULL && (ct->pw->cur.live || ct->pw->fresh))
      fl |= SC_CONTACT_HAD_SESSION;
    sc_mp_write_uint(&w, fl);
  }
  if (c->group_state != NULL && c->group_state_len > 0)
    sc_mp_write_bin(&w, c->group_state, c->group_state_len);
  else
    sc_mp_write_nil(&w);
  return sc_mp_writer_finish(&w);
}

int secchat_client_export_state(secchat_client *c, uint8_t *out, size_t cap, size_t *out_len,
                                uint64_t *counter)
{
  if (c == NULL || out_len == NULL || (out == NULL && cap > 0))
    return SECCHAT_ERR_INVALID_ARGUMENT;
  /* the group layer's part, fresh (its own counter moves too) */
  uint8_t *g = NULL;
  size_t gl = 0;
  int grc = sc_client_group_export(c, &g, &gl);
  if (grc == 0 && g != NULL) {
    grc = sc_client_set_group_state(c, g, gl);
    sodium_memzero(g, gl);
    free(g);
  }
  if (grc != 0)
    return grc;
  size_t bound = plain_bound(c);
  uint8_t *pt = malloc(bound);
  if (pt == NULL)
    return SECCHAT_ERR_NOMEM;
  uint64_t ctr = c->state_counter + 1;
  int64_t pl = encode_plain(c, ctr, pt, bound);
  if (pl < 0) {
    sodium_memzero(pt, bound);
    free(pt);
    (void)sc_client_set_group_state(c, NULL, 0);
    return SECCHAT_ERR_INTERNAL;
  }
  size_t need = SC_STATE_OVERHEAD + (size_t)pl;
  *out_len = need;
  if (cap < need) {
    sodium_memzero(pt, bound);
    free(pt);
    (void)sc_client_set_group_state(c, NULL, 0);
    return SECCHAT_ERR_BUFFER_TOO_SMALL;
  }
  uint8_t key[32];
  memcpy(out, SC_STATE_MAGIC, 4);
  out[4] = SC_STATE_VERSION;
  for (int i = 0; i < 8; i++)
    out[5 + i] = (uint8_t)(ctr >> (56 - 8 * i));
  sc_random(out + SC_STATE_HDR, SC_STATE_NONCE);
  int rc = state_key(c, key);
  if (rc == 0)
    rc = sc_aead_xchacha_encrypt(out + SC_STATE_HDR + SC_STATE_NONCE, pt, (size_t)pl, out,
                                       SC_STATE_HDR, out + SC_STATE_HDR, key);
  sodium_memzero(key, sizeof key);
  sodium_memzero(pt, bound);
  free(pt);
  (void)sc_client_set_group_state(c, NULL, 0); /* secrets: keep no copy */
  if (rc != 0)
    return rc;
  c->state_counter = ctr;
  if (counter != NULL)
    *counter = ctr;
  return 0;
}

/* Parse and apply a decrypted plaintext to a fresh client. */
static int apply_plain(secchat_client *c, const uint8_t *pt, size_t len, uint64_t hdr_ctr)
{
  int rc = sc_mp_validate(pt, len, 4);
  if (rc != 0)
    return rc;
  sc_mp_reader r;
  sc_mp_reader_init(&r, pt, len);
  uint32_t n = 0, np = 0, nc = 0;
  uint64_t ver = 0, ctr = 0, next_ref = 0;
  if (sc_mp_read_array(&r, &n) != 0 || n != 8 || sc_mp_read_uint(&r, &ver) != 0)
    return SECCHAT_ERR_SCHEMA;
  if (ver != SC_STATE_VERSION)
    return SECCHAT_ERR_VERSION;
  if (sc_mp_read_uint(&r, &ctr) != 0 || ctr != hdr_ctr)
    return SECCHAT_ERR_SCHEMA;
  if (sc_mp_read_nil(&r) != 0) {
    const uint8_t *noise = NULL;
    const char *pem = NULL, *iss = NULL;
    size_t pem_len = 0, il = 0;
    char issuer[SECCHAT_ISSUER_MAX_BYTES + 1];
    if (sc_mp_read_array(&r, &np) != 0 || np != 3 || sc_mp_read_bin_exact(&r, &noise, 32) != 0 ||
        sc_mp_read_str(&r, &pem, &pem_len, 1, SECCHAT_TOKEN_KEY_PEM_MAX) != 0 ||
        sc_mp_read_str(&r, &iss, &il, 1, SECCHAT_ISSUER_MAX_BYTES) != 0)
      return SECCHAT_ERR_SCHEMA;
    memcpy(issuer, iss, il);
    issuer[il] = '\0';
    rc = secchat_client_set_server_pin(c, noise, pem, pem_len, issuer);
    if (rc != 0)
      return rc;
  }
  const char *name = NULL, *tok = NULL;
  size_t nl = 0, tl = 0;
  if (sc_mp_read_str(&r, &name, &nl, 0, SECCHAT_NAME_MAX_BYTES) != 0)
    return SECCHAT_ERR_SCHEMA;
  memcpy(c->name, name, nl);
  c->name[nl] = '\0';
  if (sc_mp_read_nil(&r) != 0) {
    if (sc_mp_read_str(&r, &tok, &tl, 1, SECCHAT_MAX_TOKEN_BYTES) != 0)
      return SECCHAT_ERR_SCHEMA;
    secchat_token_claims cl;
    memset(&cl, 0, sizeof cl);
    cl.struct_size = sizeof cl;
    int reason = 0;
    /* Keep it only if it still verifies for us; else register again. */
    if (c->verifier != NULL &&
        secchat_token_check_peer(c->verifier, tok, tl, secchat_identity_uid(c->id),
                                 sc_client_now_s(c), &cl, &reason) == 0) {
      c->token = malloc(tl + 1);
      if (c->token == NULL)
        return SECCHAT_ERR_NOMEM;
      memcpy(c->token, tok, tl);
      c->token[tl] = '\0';
      c->token_len = tl;
      c->token_iat = cl.iat;
      c->token_exp = cl.exp;
    } else if (nl > 0) {
      c->want_register = 1;
    }
  }
  if (sc_mp_read_uint(&r, &next_ref) != 0 || next_ref == 0 || sc_mp_read_array(&r, &nc) != 0 ||
      nc > c->cfg.max_contacts)
    return SECCHAT_ERR_SCHEMA;
  c->next_ref = next_ref;
  for (uint32_t i = 0; i < nc; i++) {
    uint32_t k = 0;
    const uint8_t *uid = NULL, *spk = NULL, *dpk = NULL, *dsig = NULL;
    const char *cn = NULL;
    size_t cnl = 0;
    bool has_keys = false;
    uint64_t trust = 0, flags = 0;
    if (sc_mp_read_array(&r, &k) != 0 || k != 8 ||
        sc_mp_read_bin_exact(&r, &uid, SECCHAT_UID_BYTES) != 0 ||
        sc_mp_read_str(&r, &cn, &cnl, 0, SECCHAT_NAME_MAX_BYTES) != 0 ||
        sc_mp_read_bin_exact(&r, &spk, 32) != 0 || sc_mp_read_bin_exact(&r, &dpk, 32) != 0 ||
        sc_mp_read_bin_exact(&r, &dsig, 64) != 0 ||
        sc_mp_read_bool(&r, &has_keys) != 0 || sc_mp_read_uint(&r, &trust) != 0 ||
        sc_mp_read_uint(&r, &flags) != 0 || trust < SECCHAT_TRUST_TOFU ||
        trust > SECCHAT_TRUST_VERIFIED ||
        (flags & ~(uint64_t)(SECCHAT_CONTACT_PINNED | SECCHAT_CONTACT_CHANGED |
                             SC_CONTACT_HAD_SESSION)) != 0)
      return SECCHAT_ERR_SCHEMA;
    if (sc_contact_find(c, uid) != NULL)
      return SECCHAT_ERR_SCHEMA;
    secchat_token_claims cl;
    memset(&cl, 0, sizeof cl);
    memcpy(cl.uid, uid, SECCHAT_UID_BYTES);
    memcpy(cl.name, cn, cnl);
    memcpy(cl.sig_pk, spk, 32);
    memcpy(cl.dh_pk, dpk, 32);
    memcpy(cl.dh_sig, dsig, 64);
    sc_contact *ct = sc_contact_upsert(c, &cl);
    if (ct == NULL)
      return SECCHAT_ERR_NOMEM;
    ct->has_keys = has_keys;
    ct->trust = (uint8_t)trust;
    ct->flags = (uint8_t)(flags & ~(uint64_t)SC_CONTACT_HAD_SESSION);
    if ((flags & SC_CONTACT_HAD_SESSION) && has_keys) {
      /* the peer may still hold our old session: open a new one as soon
       * as we are online, so its stale session is replaced quickly */
      ct->pw = calloc(1, sizeof *ct->pw);
      if (ct->pw == NULL)
        return SECCHAT_ERR_NOMEM;
      ct->pw->fresh = 1;
    }
  }
  if (sc_mp_read_nil(&r) != 0) {
    const uint8_t *g = NULL;
    size_t gl = 0;
    if (sc_mp_read_bin(&r, &g, &gl, 0, SC_STATE_MAX_GROUP) != 0)
      return SECCHAT_ERR_SCHEMA;
    rc = gl > 0 ? sc_client_group_import(c, g, gl) : 0;
    if (rc != 0)
      return rc;
  }
  if (!sc_mp_at_end(&r))
    return SECCHAT_ERR_TRAILING_BYTES;
  c->state_counter = ctr;
  sc_pw_reset_all(c);
  return 0;
}

int secchat_client_import_state(secchat_client *c, const uint8_t *blob, size_t len,
                                uint64_t min_counter, uint64_t now_ms)
{
  if (c == NULL || blob == NULL)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  if (c->cstate != SC_C_IDLE || c->conn_gen != 0 || c->ncontacts != 0)
    return SECCHAT_ERR_INVALID_STATE;
  if (now_ms > c->now)
    c->now = now_ms;
  if (len < SC_STATE_OVERHEAD)
    return SECCHAT_ERR_TRUNCATED;
  if (memcmp(blob, SC_STATE_MAGIC, 4) != 0)
    return SECCHAT_ERR_PROTOCOL;
  if (blob[4] != SC_STATE_VERSION)
    return SECCHAT_ERR_VERSION;
  uint64_t ctr = 0;
  for (int i = 0; i < 8; i++)
    ctr = (ctr << 8) | blob[5 + i];
  if (ctr < min_counter)
    return SECCHAT_ERR_REPLAY;
  size_t pl = len - SC_STATE_OVERHEAD;
  uint8_t *pt = malloc(pl > 0 ? pl : 1);
  if (pt == NULL)
    return SECCHAT_ERR_NOMEM;
  uint8_t key[32];
  int rc = state_key(c, key);
  if (rc == 0)
    rc = sc_aead_xchacha_decrypt(pt, blob + SC_STATE_HDR + SC_STATE_NONCE,
                                 len - SC_STATE_HDR - SC_STATE_NONCE, blob, SC_STATE_HDR,
                                 blob + SC_STATE_HDR, key);
  sodium_memzero(key, sizeof key);
  if (rc == 0)
    rc = apply_plain(c, pt, pl, ctr);
  sodium_memzero(pt, pl);
  free(pt);
  if (rc != 0) { /* leave the client as fresh as it was */
    sc_contacts_free(c);
    free(c->token);
    c->token = NULL;
    c->token_len = 0;
    c->want_register = 0;
    c->name[0] = '\0';
    c->pin_set = 0;
    secchat_token_verifier_free(c->verifier);
    c->verifier = NULL;
    sc_client_group_free(c); /* a half-imported group state goes too */
    int grc = sc_client_group_init(c);
    if (grc != 0)
      return grc;
  }
  return rc;
}
