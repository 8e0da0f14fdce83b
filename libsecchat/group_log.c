/* group_log.c: the membership log (docs/groups.md section 2): entry
 * encoding and verification, membership queries (who was a member at an
 * epoch, final frontiers) and per-epoch routes (section 3). */
#include "group_int.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "crypto.h"
#include "mp.h"

static const uint8_t zero32[32];

/* ---- Membership log ----------------------------------------------------- */

void grp_entry_hash(uint8_t out[32], const uint8_t *raw, size_t len)
{
  crypto_generichash_state st;
  crypto_generichash_init(&st, NULL, 0, 32);
  crypto_generichash_update(&st, (const uint8_t *)SC_CTX_LOGHASH, sizeof SC_CTX_LOGHASH);
  crypto_generichash_update(&st, raw, len);
  crypto_generichash_final(&st, out, 32);
}

void grp_write_front(sc_mp_writer *w, const grp_front *f, uint32_t n)
{
  sc_mp_write_array(w, n);
  for (uint32_t i = 0; i < n; i++) {
    sc_mp_write_array(w, 3);
    sc_mp_write_bin(w, f[i].chain_id, 16);
    sc_mp_write_uint(w, f[i].seq);
    sc_mp_write_bin(w, f[i].msg_id, 32);
  }
}

int grp_read_front(sc_mp_reader *r, grp_front *f, uint32_t *n)
{
  uint32_t cnt, k;
  const uint8_t *b;
  int rc = sc_mp_read_array(r, &cnt);
  if (rc)
    return rc;
  if (cnt > SC_GRP_MAX_FRONT)
    return SECCHAT_ERR_SCHEMA;
  for (uint32_t i = 0; i < cnt; i++) {
    if ((rc = sc_mp_read_array(r, &k)) || k != 3)
      return rc ? rc : SECCHAT_ERR_SCHEMA;
    if ((rc = sc_mp_read_bin_exact(r, &b, 16)))
      return rc;
    memcpy(f[i].chain_id, b, 16);
    if ((rc = sc_mp_read_uint(r, &f[i].seq)))
      return rc;
    if ((rc = sc_mp_read_bin_exact(r, &b, 32)))
      return rc;
    memcpy(f[i].msg_id, b, 32);
  }
  *n = cnt;
  return 0;
}

/* Parse an entry [body, sig] and check it against the chat: epoch equals
 * its index (nlog), prev_hash, signer (entry 0: its own subject; later:
 * the admin of entry 0), op legality against current membership. */
static int entry_verify(const grp_chat *c, const uint8_t *raw, size_t len, grp_entry *e)
{
  sc_mp_reader r;
  uint32_t n;
  const uint8_t *body, *sig, *b;
  size_t body_len;
  uint64_t ver, op;
  int rc;

  memset(e, 0, sizeof *e);
  if (len > GRP_ENTRY_MAX)
    return SECCHAT_ERR_TOO_LONG;
  if ((rc = sc_mp_validate(raw, len, 2)))
    return rc;
  sc_mp_reader_init(&r, raw, len);
  if ((rc = sc_mp_read_array(&r, &n)) || n != 2)
    return rc ? rc : SECCHAT_ERR_SCHEMA;
  if ((rc = sc_mp_read_bin(&r, &body, &body_len, 1, GRP_ENTRY_MAX)) ||
      (rc = sc_mp_read_bin_exact(&r, &sig, 64)))
    return rc;
  if ((rc = sc_mp_validate(body, body_len, 3)))
    return rc;
  sc_mp_reader_init(&r, body, body_len);
  if ((rc = sc_mp_read_array(&r, &n)) || n != 10)
    return rc ? rc : SECCHAT_ERR_SCHEMA;
  if ((rc = sc_mp_read_uint(&r, &ver)))
    return rc;
  if (ver != 1)
    return SECCHAT_ERR_VERSION;
  if ((rc = sc_mp_read_bin_exact(&r, &b, 16)))
    return rc;
  if (memcmp(b, c->id, 16) != 0)
    return SECCHAT_ERR_AUTH;
  if ((rc = sc_mp_read_uint(&r, &e->epoch)))
    return rc;
  if ((rc = sc_mp_read_bin_exact(&r, &b, 32)))
    return rc;
  const uint8_t *prev = c->nlog ? c->log[c->nlog - 1].hash : zero32;
  if (e->epoch != c->nlog || memcmp(b, prev, 32) != 0)
    return SECCHAT_ERR_AUTH;
  if ((rc = sc_mp_read_uint(&r, &op)))
    return rc;
  if (op > SC_GRP_OP_LEAVE)
    return SECCHAT_ERR_SCHEMA;
  e->op = (unsigned)op;
  if ((rc = sc_mp_read_bin_exact(&r, &b, 20)))
    return rc;
  memcpy(e->subject, b, 20);
  if ((rc = sc_mp_read_bin_exact(&r, &b, 32)))
    return rc;
  memcpy(e->sign_pk, b, 32);
  if ((rc = sc_mp_read_bin_exact(&r, &b, 32)))
    return rc;
  memcpy(e->dh_pk, b, 32);
  if ((rc = sc_mp_read_bin_exact(&r, &b, 64)))
    return rc;
  memcpy(e->dh_sig, b, 64);
  if ((rc = grp_read_front(&r, e->front, &e->nfront)))
    return rc;
  if (!sc_mp_at_end(&r))
    return SECCHAT_ERR_TRAILING_BYTES;

  const uint8_t *signer = c->nlog ? c->log[0].sign_pk : e->sign_pk;
  if (sc_verify_ctx(sig, SC_CTX_LOG, body, body_len, signer))
    return SECCHAT_ERR_SIGNATURE;

  const grp_member *m = grp_member_find(c, e->subject);
  if (e->op == SC_GRP_OP_CREATE || e->op == SC_GRP_OP_ADD) {
    uint8_t uid[20];
    if ((e->op == SC_GRP_OP_CREATE) != (c->nlog == 0) || e->nfront)
      return SECCHAT_ERR_AUTH;
    if (m && m->current)
      return SECCHAT_ERR_EXISTS;
    if (e->op == SC_GRP_OP_ADD && grp_current_count(c) >= SC_GRP_MAX_MEMBERS)
      return SECCHAT_ERR_TOO_MANY;
    if (sc_check_sign_pk(e->sign_pk) || sc_check_dh_pk(e->dh_pk))
      return SECCHAT_ERR_BAD_KEY;
    sc_uid_from_sign_pk(uid, e->sign_pk);
    if (memcmp(uid, e->subject, 20) != 0)
      return SECCHAT_ERR_AUTH;
    if (sc_verify_ctx(e->dh_sig, SC_CTX_DH, e->dh_pk, 32, e->sign_pk))
      return SECCHAT_ERR_SIGNATURE;
    /* A rejoining uid keeps its signing key (uid = H(sign_pk)). */
    if (m && memcmp(m->sign_pk, e->sign_pk, 32) != 0)
      return SECCHAT_ERR_AUTH;
  } else {
    if (c->nlog == 0 || !m || !m->current || memcmp(e->subject, c->log[0].subject, 20) == 0)
      return SECCHAT_ERR_AUTH;
  }
  e->raw = malloc(len);
  if (!e->raw)
    return SECCHAT_ERR_NOMEM;
  memcpy(e->raw, raw, len);
  e->raw_len = len;
  grp_entry_hash(e->hash, raw, len);
  return 0;
}

/* Append a verified entry and apply it to the member records. */
static int entry_apply(grp_chat *c, grp_entry *e)
{
  if (c->nlog >= SC_GRP_MAX_LOG)
    return SECCHAT_ERR_TOO_MANY;
  if (c->nlog == c->log_cap) {
    uint32_t cap = c->log_cap ? c->log_cap * 2 : 8;
    grp_entry *n = realloc(c->log, cap * sizeof *n);
    if (!n)
      return SECCHAT_ERR_NOMEM;
    c->log = n;
    c->log_cap = cap;
  }
  grp_member *m = grp_member_get(c, e->subject);
  if (!m)
    return SECCHAT_ERR_NOMEM;
  c->log[c->nlog++] = *e;
  grp_member_drop_leave(m); /* any entry about it supersedes its LEAVE */
  if (e->op == SC_GRP_OP_CREATE)
    memcpy(c->admin, e->subject, 20);
  if (e->op == SC_GRP_OP_CREATE || e->op == SC_GRP_OP_ADD) {
    memcpy(m->sign_pk, e->sign_pk, 32);
    memcpy(m->dh_pk, e->dh_pk, 32);
    memcpy(m->dh_sig, e->dh_sig, 64);
    m->current = 1;
    m->leaving = 0;
    m->nfront = 0;
  } else {
    m->current = 0;
    m->leaving = 0;
  }
  return 0;
}

/* Verify and append raw as the next entry. */
int grp_log_append(grp_chat *c, const uint8_t *raw, size_t len)
{
  grp_entry e;
  int rc = entry_verify(c, raw, len, &e);
  if (rc)
    return rc;
  rc = entry_apply(c, &e);
  if (rc)
    free(e.raw);
  return rc;
}

/* Was uid a member at epoch? Sets *closing to the remove/leave entry that
 * ended that membership (NULL if still open). */
int grp_member_at(const grp_chat *c, const uint8_t uid[20], uint64_t epoch,
                     const grp_entry **closing)
{
  int in = 0;
  *closing = NULL;
  if (epoch >= c->nlog)
    return 0;
  for (uint64_t k = 0; k <= epoch; k++) {
    const grp_entry *e = &c->log[k];
    if (memcmp(e->subject, uid, 20) != 0)
      continue;
    in = e->op == SC_GRP_OP_CREATE || e->op == SC_GRP_OP_ADD;
  }
  if (!in)
    return 0;
  for (uint64_t k = epoch + 1; k < c->nlog; k++) {
    const grp_entry *e = &c->log[k];
    if (memcmp(e->subject, uid, 20) == 0) {
      *closing = e;
      break;
    }
  }
  return 1;
}

/* Is (chain, seq, msg_id) within the frontier? */
static int within_front(const grp_front *f, uint32_t n, const uint8_t chain[16], uint64_t seq,
                        const uint8_t msg_id[32])
{
  for (uint32_t i = 0; i < n; i++) {
    if (memcmp(f[i].chain_id, chain, 16) != 0)
      continue;
    if (seq < f[i].seq)
      return 1;
    return seq == f[i].seq && memcmp(f[i].msg_id, msg_id, 32) == 0;
  }
  return 0;
}

/* Author authorisation of an inner: member at its epoch, log head of that
 * epoch, not beyond a final frontier (committed or announced). Returns the
 * member record (for its key) or NULL with *err. */
const grp_member *grp_author_ok(sc_group *g, const grp_chat *c, const sc_sk_inner *in,
                                   const uint8_t msg_id[32], int *err)
{
  const grp_entry *closing;
  *err = SECCHAT_ERR_AUTH;
  if (in->epoch >= c->nlog)
    return NULL;
  if (memcmp(c->log[in->epoch].hash, in->log_head, 32) != 0) {
    grp_fork_suspected(g, c, in->author_uid, in->epoch);
    return NULL;
  }
  if (!grp_member_at(c, in->author_uid, in->epoch, &closing))
    return NULL;
  const grp_member *m = grp_member_find(c, in->author_uid);
  if (!m)
    return NULL;
  if (closing) {
    if (!within_front(closing->front, closing->nfront, in->chain_id, in->seq, msg_id))
      return NULL;
  } else if (m->leaving) {
    if (!within_front(m->front, m->nfront, in->chain_id, in->seq, msg_id))
      return NULL;
  }
  *err = 0;
  return m;
}

/* ---- Routes ------------------------------------------------------------- */

static void route_compute(uint8_t out[32], const uint8_t secret[32], const uint8_t chat_id[16],
                          uint64_t epoch)
{
  uint8_t msg[sizeof SC_CTX_ROUTE + 16 + 8];
  memcpy(msg, SC_CTX_ROUTE, sizeof SC_CTX_ROUTE);
  memcpy(msg + sizeof SC_CTX_ROUTE, chat_id, 16);
  for (int i = 0; i < 8; i++)
    msg[sizeof SC_CTX_ROUTE + 16 + i] = (uint8_t)(epoch >> (56 - 8 * i));
  crypto_generichash(out, 32, msg, sizeof msg, secret, 32);
}

void grp_close_routes(sc_group *g, grp_chat *c)
{
  if (c->old_route_open)
    grp_action(g, SC_GRP_ROUTE_CLOSE, c->old_route, NULL, 0, NULL);
  if (c->route_open)
    grp_action(g, SC_GRP_ROUTE_CLOSE, c->route, NULL, 0, NULL);
  c->old_route_open = c->route_open = 0;
}

/* Install the route secret of `epoch`; the previous route stays open (in
 * flight messages of the old epoch), the one before is closed. */
void grp_set_route(sc_group *g, grp_chat *c, uint64_t epoch, const uint8_t secret[32])
{
  uint8_t r[32];
  route_compute(r, secret, c->id, epoch);
  memcpy(c->route_secret, secret, 32);
  c->route_epoch = epoch;
  c->have_route = 1;
  if (c->route_open && memcmp(r, c->route, 32) == 0)
    return;
  if (c->route_open) {
    if (c->old_route_open)
      grp_action(g, SC_GRP_ROUTE_CLOSE, c->old_route, NULL, 0, NULL);
    memcpy(c->old_route, c->route, 32);
    c->old_route_open = 1;
  }
  memcpy(c->route, r, 32);
  c->route_open = 1;
  grp_action(g, SC_GRP_ROUTE_OPEN, c->route, NULL, 0, NULL);
}

