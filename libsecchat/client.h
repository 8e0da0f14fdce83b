/* client.h: internal types of the client core (public API in
 * include/secchat/client.h; docs/client.md is the normative description).
 *
 * Files, one concern each:
 *   client.c        relay session: XX initiator, server pinning, register /
 *                   login / renew, relay queue with refs, keepalive, events
 *   contacts.c      contacts: token checks, name -> uid pins (TOFU),
 *                   identity changes, trust levels, safety numbers, lookups
 *   pairwise.c      pairwise channels: Noise IK over DIRECT with both
 *                   identity signatures, explicit-nonce transport
 *   client_state.c  state export / import
 *
 * Glue for the group layer (libsecchat/group.{h,c}, transport-agnostic):
 * the group module gets verified pairwise payloads (uid, payload) and group
 * DELIVER blobs, and asks for pairwise sends, GROUP_SEND posts and route
 * opens/closes through the sc_client_* functions at the end of this file.
 * Until it is wired in, those inputs surface as the public events
 * PAIRWISE_MESSAGE, GROUP_DELIVER and PRESENCE (see "GLUE" in client.c). */
#ifndef SC_CLIENT_H
#define SC_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <secchat/secchat.h>

#include "codec.h"
#include "noise.h"

/* Signature and hash contexts of this layer. */
#define SC_CTX_PW_RESP "secchat/pw-resp/v1"      /* responder, IK message 2 */
#define SC_CTX_PW_INIT "secchat/pw-init/v1"      /* initiator, first transport */
#define SC_CTX_STATE "secchat/state/v1"          /* state blob key */

/* Pairwise payload = port (1 byte) || data: which layer consumes it. */
enum { SC_PORT_GROUP = 1, SC_PORT_APP = 2 };
#define SC_PW_MAX_RAW (SECCHAT_CLIENT_MAX_PAIRWISE_PAYLOAD + 1u)

/* DIRECT blob kinds ([kind, bin]) and pairwise plaintext kinds. */
enum { SC_PW_HELLO = 1, SC_PW_REPLY = 2, SC_PW_DATA = 3 };
enum { SC_PWI_CONFIRM = 1, SC_PWI_DATA = 2, SC_PWI_DATA_CONFIRM = 3, SC_PWI_ACK = 4 };

/* Connection states. */
enum sc_cstate {
  SC_C_IDLE = 0,     /* no connection */
  SC_C_HS = 1,       /* XX message 1 sent, waiting for message 2 */
  SC_C_REGISTER = 2, /* REGISTER sent */
  SC_C_AUTH = 3,     /* AUTH sent */
  SC_C_ONLINE = 4,   /* AUTH_OK received */
  SC_C_DEAD = 5      /* condemned: EV_CLOSE emitted */
};

/* A queued event with its own copies of the borrowed data. */
typedef struct sc_cev {
  struct sc_cev *next;
  secchat_client_event ev;
  uint8_t *data; /* owned copy of ev.data (wiped on free) */
  char name[SECCHAT_NAME_MAX_BYTES];
} sc_cev;

/* A GROUP_SEND or DIRECT waiting for RELAYED{ref}. */
typedef struct sc_rq {
  struct sc_rq *next;
  uint64_t ref;
  uint64_t conn_gen; /* connection it was last sent on (0: not sent) */
  uint8_t type;      /* SC_FRAME_GROUP_SEND or SC_FRAME_DIRECT */
  uint8_t pw_kind;   /* DIRECT: SC_PW_*; 0 for GROUP_SEND */
  uint8_t target[32]; /* route id, or uid in the first 20 bytes */
  uint8_t has_msg_id;
  uint8_t msg_id[SECCHAT_MSG_ID_BYTES]; /* group post: reported with RELAYED */
  uint8_t chat_id[SECCHAT_CHAT_ID_BYTES]; /* ... with its chat */
  size_t len;
  uint8_t blob[];
} sc_rq;

/* A payload waiting for a pairwise session. */
typedef struct sc_pwq {
  struct sc_pwq *next;
  size_t len;
  uint8_t data[];
} sc_pwq;

/* One pairwise session's transport. */
typedef struct sc_pwsess {
  sc_noise_dgram d;
  uint8_t h[SC_NOISE_HASHLEN]; /* final handshake hash */
  uint8_t confirm_sig[64];     /* initiator: its signature over h */
  uint64_t created_ms;
  uint8_t live, initiator, confirmed;
} sc_pwsess;

/* Pairwise state of a contact. Plain heap memory, wiped on every free. */
typedef struct sc_pw {
  sc_noise_handshake hs; /* our pending initiator handshake */
  uint8_t hs_live;
  uint8_t hs_attempts;
  uint8_t want_keys;       /* waiting for the peer's keys (LOOKUP) */
  uint64_t keys_gen;       /* connection the LOOKUP was sent on */
  uint64_t hs_sent_ms;
  uint8_t h1[SC_NOISE_HASHLEN]; /* handshake hash after message 1 */
  sc_pwsess pend;          /* responder side, waiting for the confirmation */
  sc_pwsess cur;           /* established */
  sc_pwsess old;           /* previous one, receive only (late messages) */
  uint8_t last_hello[32];  /* hash of the last HELLO answered (duplicates) */
  uint64_t last_restart_ms;
  uint64_t start_at_ms;    /* a failed start (queue full) waits until then */
  uint8_t fresh;           /* re-open after an import (the peer may hold a
                              session we no longer have) */
  sc_pwq *qhead, *qtail;
  uint32_t qn;
} sc_pw;

/* Internal contact flag kept in the state blob (not in the public flags):
 * we had a pairwise session with it when the state was exported. */
#define SC_CONTACT_HAD_SESSION 0x10u

typedef struct sc_contact {
  uint8_t uid[SECCHAT_UID_BYTES];
  uint8_t sign_pk[32], dh_pk[32], dh_sig[64];
  uint8_t has_keys;
  uint8_t trust;  /* SECCHAT_TRUST_* */
  uint8_t flags;  /* SECCHAT_CONTACT_PINNED / _CHANGED */
  char name[SECCHAT_NAME_MAX_BYTES + 1];
  sc_pw *pw;      /* NULL until used */
} sc_contact;

struct secchat_client {
  secchat_client_config cfg;
  const secchat_identity *id;
  uint64_t now;

  /* server pin */
  uint8_t pin_set;                   /* pin_noise/pin_pem/pin_issuer valid */
  uint8_t pin_noise[32];
  char *pin_pem;
  size_t pin_pem_len;
  char pin_issuer[SECCHAT_ISSUER_MAX_BYTES + 1];
  uint8_t expect_fpr_set;
  uint8_t expect_fpr[32];
  uint8_t mismatch_pending;          /* what the refused server presented: */
  uint8_t mm_noise[32];
  char *mm_pem;
  size_t mm_pem_len;
  char mm_issuer[SECCHAT_ISSUER_MAX_BYTES + 1];
  secchat_token_verifier *verifier;  /* over the pinned token key */

  /* own registration */
  char name[SECCHAT_NAME_MAX_BYTES + 1];
  uint8_t want_register;
  char *token;
  size_t token_len;
  int64_t token_iat, token_exp;

  /* connection */
  int cstate;
  uint64_t conn_gen;
  sc_noise_handshake hs;
  sc_noise_transport tr;
  uint8_t hh[SC_NOISE_HASHLEN];
  sc_deframer df;
  uint64_t last_rx_ms, last_tx_ms;
  uint8_t renew_sent, expired;
  uint64_t renew_at_ms;
  uint8_t *out;            /* pending output [out_head, out_len) */
  size_t out_head, out_len, out_cap;
  uint8_t *rx;             /* decrypted plaintext scratch (65535) */
  uint8_t *tx;             /* frame body / plaintext scratch (65535) */
  uint64_t next_ping_nonce;
  uint8_t *pwa, *pwb;      /* pairwise scratch (65535 each), lazily */

  /* relay queue */
  sc_rq *rq_head, *rq_tail;
  uint32_t rq_n;
  uint64_t next_ref;

  /* routes the group layer keeps open (re-opened after every login,
   * before the queue is re-sent: the relay only takes GROUP_SEND from
   * members of the route) */
  uint8_t (*routes)[SECCHAT_ROUTE_ID_BYTES];
  uint32_t nroutes, routes_cap;

  /* pending lookups (LOOKUP_RESULT has no id: answers come in order) */
  struct sc_lookup {
    uint8_t by_uid, internal;
    uint8_t uid[SECCHAT_UID_BYTES];
    char name[SECCHAT_NAME_MAX_BYTES + 1];
  } *lk;
  uint32_t lk_head, lk_n, lk_cap;

  /* contacts */
  sc_contact **contacts;
  size_t ncontacts, contacts_cap;

  /* events */
  sc_cev *ev_head, *ev_tail, *ev_out;
  uint32_t ev_n;
  size_t ev_bytes;
  uint64_t ev_dropped;

  /* the group layer (group.c), driven by client_group.c */
  struct sc_group *grp;
  uint64_t grp_tick_ms;

  /* state */
  uint64_t state_counter;
  uint8_t *group_state; /* opaque group-layer part of the state blob */
  size_t group_state_len;

  /* test hook: the hostile relay (frame level, see sc_client_test_filter) */
  int (*filter)(void *ctx, const uint8_t *body, size_t len);
  void *filter_ctx;
};

/* ---- client.c ------------------------------------------------------------- */
int64_t sc_client_now_s(const secchat_client *c);
/* Queue an event; data/name copied. Returns the queued event (to fill more
 * fields) or NULL if the queue is full or out of memory (counted). */
secchat_client_event *sc_client_event(secchat_client *c, uint32_t type, const uint8_t *data,
                                      size_t data_len, const char *name, size_t name_len);
/* Encrypt and queue one frame on the current connection (0 or error). */
int sc_client_send_frame(secchat_client *c, const sc_frame *f);
/* Queue a DIRECT (kind = SC_PW_*) for the relay. */
int sc_client_queue_direct(secchat_client *c, const uint8_t uid[SECCHAT_UID_BYTES], uint8_t kind,
                           const uint8_t *blob, size_t len, uint64_t *ref);

/* ---- contacts.c ------------------------------------------------------------ */
sc_contact *sc_contact_find(const secchat_client *c, const uint8_t uid[SECCHAT_UID_BYTES]);
/* Find or create a contact for verified claims; records keys. NULL on
 * NOMEM or the contact cap. */
sc_contact *sc_contact_upsert(secchat_client *c, const secchat_token_claims *cl);
/* Apply the TOFU rule to a verified token's (name, uid): pin the name on
 * first use (CONTACT_NEW), or flag the contact CHANGED and raise
 * IDENTITY_CHANGED when the name is pinned to another uid. allow_pin = 0
 * for an ambiguous lookup answer (nothing is pinned). Returns the contact
 * (NULL on NOMEM) ; *blocked = 1 if sending to it is blocked. */
sc_contact *sc_contact_observe(secchat_client *c, const secchat_token_claims *cl, int allow_pin,
                               int *blocked);
/* Verify a peer token (server signature, sub == uid, dh_sig; expected_uid
 * may be NULL); PEER_REJECTED event on failure. */
int sc_client_check_token(secchat_client *c, const char *tok, size_t len,
                          const uint8_t *expected_uid, secchat_token_claims *cl);
void sc_client_on_lookup_result(secchat_client *c, const sc_frame *f);
int sc_client_lookup_push(secchat_client *c, int by_uid, const uint8_t *uid, const char *name,
                          size_t len, int internal);
void sc_contacts_free(secchat_client *c);

/* ---- pairwise.c ------------------------------------------------------------- */
void sc_pw_on_direct(secchat_client *c, const sc_frame *f);
/* Keys for uid arrived (lookup): start the handshakes waiting for them. */
void sc_pw_keys_known(secchat_client *c, sc_contact *ct);
/* A DIRECT we queued failed at the relay (unknown recipient...). */
void sc_pw_send_failed(secchat_client *c, const uint8_t uid[SECCHAT_UID_BYTES], uint8_t kind,
                       uint64_t wire);
uint64_t sc_pw_next_timeout(const secchat_client *c);
/* Handshake retries and expiries; lookups for keys that were waiting. */
void sc_pw_on_timeout(secchat_client *c);
void sc_pw_free(sc_pw *pw);
/* Drop every session (after a state import: never reuse nonces). */
void sc_pw_reset_all(secchat_client *c);
/* Send a pairwise payload (also the group layer's entry point). */
int sc_client_pw_send(secchat_client *c, const uint8_t uid[SECCHAT_UID_BYTES],
                      const uint8_t *payload, size_t len);

/* ---- group glue (for libsecchat/group.c) ---------------------------------- */
/* 1 if sending to uid is allowed (no contested identity). */
int sc_client_can_send_to(const secchat_client *c, const uint8_t uid[SECCHAT_UID_BYTES]);
int sc_client_group_post(secchat_client *c, const uint8_t route_id[SECCHAT_ROUTE_ID_BYTES],
                         const uint8_t *blob, size_t len, uint64_t *ref);
/* Open (open = 1) or close a route; remembered and re-opened after every
 * login. SECCHAT_ERR_TOO_MANY beyond SC_CLIENT_MAX_ROUTES. */
#define SC_CLIENT_MAX_ROUTES 256u
int sc_client_route(secchat_client *c, const uint8_t route_id[SECCHAT_ROUTE_ID_BYTES], int open);
/* Opaque group state carried inside the client state blob. */
int sc_client_set_group_state(secchat_client *c, const uint8_t *blob, size_t len);
/* As sc_client_group_post, remembering the message id and its chat (either
 * may be NULL) for the RELAYED event. */
int sc_client_group_post_id(secchat_client *c, const uint8_t route_id[SECCHAT_ROUTE_ID_BYTES],
                            const uint8_t *blob, size_t len, const uint8_t *msg_id,
                            const uint8_t *chat_id, uint64_t *ref);

/* ---- client_group.c: the glue ------------------------------------------- */
int sc_client_group_init(secchat_client *c);
void sc_client_group_free(secchat_client *c);
/* Feeds (each drains the group's actions and events afterwards). */
void sc_client_group_pairwise(secchat_client *c, const uint8_t uid[SECCHAT_UID_BYTES],
                              const uint8_t *p, size_t len);
void sc_client_group_deliver(secchat_client *c, const sc_frame *f);
void sc_client_group_presence(secchat_client *c, const sc_frame *f);
void sc_client_group_online(secchat_client *c);
void sc_client_group_tick(secchat_client *c);
uint64_t sc_client_group_next_timeout(const secchat_client *c);
/* State: the group part (malloc'd, caller wipes and frees) and its load. */
int sc_client_group_export(secchat_client *c, uint8_t **out, size_t *len);
int sc_client_group_import(secchat_client *c, const uint8_t *in, size_t len);

/* ---- tests ---------------------------------------------------------------------
 * A hostile relay controls exactly the frame stream inside the Noise
 * transport. filter (NULL: none) sees every decrypted frame body before it
 * is handled; returning 0 drops it. sc_client_test_inject handles body as
 * if the relay had sent it (to replay, reorder, duplicate, corrupt, forge). */
void sc_client_test_filter(secchat_client *c,
                           int (*fn)(void *ctx, const uint8_t *body, size_t len), void *ctx);
void sc_client_test_inject(secchat_client *c, const uint8_t *body, size_t len, uint64_t now_ms);

#endif
