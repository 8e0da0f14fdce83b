/* group_int.h: internals shared by group.c (protocol) and group_state.c
 * (state export/import, local-history records). Not an API. */
#ifndef SC_GROUP_INT_H
#define SC_GROUP_INT_H

#include <stdbool.h>

#include "group.h"
#include "mp.h"

/* Pairwise payload types: [type, ...] (docs/groups.md section 3). */
enum {
  GRP_T_INVITE = 1,
  GRP_T_ANSWER = 2,
  GRP_T_LOG = 3,
  GRP_T_LOG_REQ = 4,
  GRP_T_LEAVE = 5,
  GRP_T_SKDIST = 6,
  GRP_T_KEYREQ = 7,
  GRP_T_HIST_REQ = 8,
  GRP_T_HIST_RESP = 9,
};

#define GRP_ENTRY_MAX 1024u /* encoded log entry [body, sig] */
#define GRP_MAX_INVITES 64u
#define GRP_MAX_ASKED 4u    /* peers asked for one history catch-up */

typedef struct grp_front {
  uint8_t chain_id[16];
  uint64_t seq; /* last seq sent on the chain */
  uint8_t msg_id[32];
  uint64_t epoch; /* own chains only (heartbeats); not in log entries */
} grp_front;

typedef struct grp_entry {
  uint8_t *raw; /* exact [body, sig] bytes as signed and hashed */
  size_t raw_len;
  uint8_t hash[32];
  uint64_t epoch;
  unsigned op;
  uint8_t subject[20], sign_pk[32], dh_pk[32], dh_sig[64];
  uint32_t nfront;
  grp_front front[SC_GRP_MAX_FRONT];
} grp_entry;

/* Token bucket (C16): `burst` tokens, one more per `refill_ms`. */
typedef struct grp_bucket {
  uint32_t tokens;
  uint64_t at;
  int init;
} grp_bucket;

/* 1 if a token was taken, 0 if empty (rate limited). */
int grp_bucket_take(grp_bucket *b, uint64_t now, uint32_t burst, uint64_t refill_ms);

typedef struct grp_member {
  uint8_t uid[20], sign_pk[32], dh_pk[32], dh_sig[64];
  int current;       /* member of the current epoch per the log */
  int leaving;       /* announced a signed leave, not yet committed */
  int left_reported; /* MEMBER_LEFT already emitted for the leave */
  uint32_t nfront;   /* the leave's frontier */
  grp_front front[SC_GRP_MAX_FRONT];
  int online;
  sc_sk_peer peer; /* its chains (receiving) */
  int has_peer;
  uint64_t dist_gen;  /* my chain generation last sent to it */
  uint64_t keyreq_ms; /* last KEYREQ I sent it */
  uint64_t keyreq_backoff_ms; /* tick re-send interval (0: the base one) */
  uint64_t resend_ms; /* last resend after its KEYREQ */
  grp_bucket hist_bucket;   /* its history requests */
  grp_bucket logreq_bucket; /* its log requests */
  /* Its signed LEAVE payload while `leaving` (not persisted): forwarded to
   * the admin when the admin comes online, so a leave the admin missed is
   * still committed (the signature is the leaver's: any member may relay). */
  uint8_t *leave_msg;
  size_t leave_len;
  uint64_t leave_fwd_ms; /* last relayed (rate limit) */
} grp_member;

typedef struct grp_seen {
  uint8_t msg_id[32], author[20], chain_id[16], prev[32];
  uint64_t seq;
} grp_seen;

/* Per (author, chain): what we hold, for gap detection. */
typedef struct grp_track {
  uint8_t author[20], chain_id[16], max_msg_id[32];
  uint64_t epoch, max_seq, have, claimed, reported;
  uint64_t contig; /* seqs 0..contig-1 all held (0: not even seq 0) */
  int fresh; /* nothing held yet */
} grp_track;

typedef struct grp_hist {
  uint8_t *inner;
  size_t inner_len;
  uint8_t sig[64], msg_id[32], author[20], chain_id[16];
  uint64_t seq, epoch, flags;
} grp_hist;

typedef struct grp_pblob {
  uint8_t route[32]; /* the sender is in the blob's header */
  uint8_t *blob;
  size_t len;
} grp_pblob;

typedef struct grp_pdist {
  uint8_t from[20];
  uint8_t *p; /* whole pairwise payload (secret) */
  size_t len;
} grp_pdist;

typedef struct grp_invite {
  uint8_t uid[20], sign_pk[32], dh_pk[32], dh_sig[64], invite_id[16];
} grp_invite;

typedef struct grp_chat {
  uint8_t id[16];
  sc_grp_state state;
  uint8_t invite_id[16];
  int invite_complete;
  uint8_t admin[20];
  grp_entry *log;
  uint32_t nlog, log_cap;
  grp_member *mem;
  uint32_t nmem, mem_cap;
  /* routes */
  uint8_t route_secret[32];
  uint64_t route_epoch;
  int have_route;
  uint8_t route[32], old_route[32];
  int route_open, old_route_open;
  /* my chain: tx advances, tx0 is its start (for resends) */
  sc_sk_sender tx, tx0;
  int have_tx;
  uint64_t tx_gen, tx_count, tx_rotate_at;
  sc_sk_peer self; /* my own chains, to keep my messages' signed bytes */
  int has_self;
  grp_front own_front[SC_GRP_MAX_FRONT];
  uint32_t n_own_front;
  uint64_t last_hb, last_send;
  int hb_dirty;
  /* re-synchronisation after a restart */
  int synced;
  uint8_t voters[2][20];
  uint32_t nvotes;
  /* received */
  grp_seen *seen;
  uint32_t seen_head, seen_count;
  grp_track *track;
  uint32_t track_head, track_count;
  grp_hist *hist;
  uint32_t hist_head, hist_count;
  size_t hist_bytes;
  grp_pblob pblob[SC_GRP_PENDING_BLOBS];
  uint32_t npblob;
  grp_pdist pdist[SC_GRP_PENDING_DISTS];
  uint32_t npdist;
  grp_bucket inv_logreq_bucket; /* log requests from invitees, together */
  /* my own leave, until I see it committed: next re-send to the admin and
   * the current back-off (state LEFT and still current in my log) */
  uint64_t leave_next_ms, leave_backoff_ms;
  /* re-synchronisation: next LOG_REQ round and its back-off */
  uint64_t logreq_next_ms, logreq_backoff_ms;
  /* admin */
  grp_invite *inv;
  uint32_t ninv;
} grp_chat;

typedef struct grp_pend {
  sc_group_event ev;
  uint8_t chain_id[16];
  uint64_t seq;
} grp_pend;

typedef struct grp_req {
  int live;
  uint8_t req_id[16], chat_id[16], peer[20];
  uint64_t started;
  uint32_t max_items, accepted;
  uint8_t asked[GRP_MAX_ASKED][20];
  uint32_t nasked;
  grp_pend *pend;
  uint32_t npend;
} grp_req;

typedef struct grp_qnode {
  struct grp_qnode *next;
  sc_group_action a;
  sc_group_event e;
} grp_qnode;

struct sc_group {
  const secchat_identity *me;
  uint8_t my_uid[20];
  grp_chat *chats[SC_GRP_MAX_CHATS];
  size_t nchats;
  grp_qnode *aq_head, *aq_tail, *eq_head, *eq_tail;
  size_t aq_n, eq_n;
  sc_group_blocked_fn blocked;
  void *blocked_ctx;
  uint8_t hist_key[32];
  int has_hist_key;
  int loading_history;
  grp_req reqs[SC_GRP_MAX_REQS];
  sc_group_stats st;
  uint64_t counter;
};

/* group.c */
void grp_qnode_free(grp_qnode *q);
int grp_action(sc_group *g, sc_grp_action_type t, const uint8_t *to_or_route, const uint8_t *data,
               size_t len, const uint8_t *msg_id);
int grp_pw(sc_group *g, const uint8_t to[20], const uint8_t *data, size_t len);
sc_group_event *grp_event(sc_group *g, sc_grp_event_type t, const grp_chat *c, const uint8_t *data,
                          size_t len);
grp_chat *grp_chat_find(const sc_group *g, const uint8_t id[16]);
grp_chat *grp_chat_new(sc_group *g, const uint8_t id[16]);
void grp_chat_free(grp_chat *c);
grp_member *grp_member_find(const grp_chat *c, const uint8_t uid[20]);
uint64_t grp_epoch(const grp_chat *c);
int grp_log_append(grp_chat *c, const uint8_t *raw, size_t len);
void grp_set_route(sc_group *g, grp_chat *c, uint64_t epoch, const uint8_t secret[32]);
void grp_rotate(sc_group *g, grp_chat *c, uint64_t now);
void grp_after_append(sc_group *g, grp_chat *c, uint32_t first_new, uint64_t now);
void grp_send_log(sc_group *g, grp_chat *c, const uint8_t to[20], uint32_t from, int with_secret);
grp_track *grp_track_get(grp_chat *c, const uint8_t author[20], const uint8_t chain[16],
                         uint64_t epoch);
int grp_verify_item(sc_group *g, grp_chat *c, const uint8_t *inner, size_t len,
                    const uint8_t sig[64], sc_sk_inner *in, uint8_t msg_id[32]);
void grp_accept_item(sc_group *g, grp_chat *c, const sc_sk_inner *in, const uint8_t *inner,
                     size_t inner_len, const uint8_t sig[64], const uint8_t msg_id[32],
                     uint64_t now);
/* Helpers shared by group.c and group_hist.c. */
void grp_warn(sc_group *g, const grp_chat *c, int code, const uint8_t *uid);
int grp_is_me(const sc_group *g, const uint8_t uid[20]);
int grp_active_member(const grp_member *m);
/* Was uid a member at epoch? *closing: the entry that ended it, or NULL. */
int grp_member_at(const grp_chat *c, const uint8_t uid[20], uint64_t epoch,
                  const grp_entry **closing);
const grp_member *grp_author_ok(sc_group *g, const grp_chat *c, const sc_sk_inner *in,
                                const uint8_t msg_id[32], int *err);
grp_seen *grp_seen_find(const grp_chat *c, const uint8_t id[32]);
int grp_continuity_ok(const grp_chat *c, const sc_sk_inner *in, const uint8_t msg_id[32]);
void grp_deliver_content(sc_group *g, grp_chat *c, const sc_sk_inner *in,
                         const uint8_t msg_id[32], int from_history, grp_pend *pend);
uint64_t grp_track_missing(const grp_track *t);
/* Epoch of my latest create/add entry (chains before it were not for me). */
uint64_t grp_my_join_epoch(const sc_group *g, const grp_chat *c);
void grp_req_free(grp_req *r);
void grp_req_finish(sc_group *g, grp_req *q, uint64_t now);

grp_member *grp_member_get(grp_chat *c, const uint8_t uid[20]);
size_t grp_current_count(const grp_chat *c);
void grp_fork_suspected(sc_group *g, const grp_chat *c, const uint8_t *uid, uint64_t epoch);
void grp_member_drop_leave(grp_member *m);

/* group_log.c */
void grp_entry_hash(uint8_t out[32], const uint8_t *raw, size_t len);
void grp_write_front(sc_mp_writer *w, const grp_front *f, uint32_t n);
int grp_read_front(sc_mp_reader *r, grp_front *f, uint32_t *n);
void grp_close_routes(sc_group *g, grp_chat *c);

/* group_hist.c: the in-memory history store (answers history requests). */
int grp_hist_has(const grp_chat *c, const uint8_t msg_id[32]);
void grp_hist_store(sc_group *g, grp_chat *c, const sc_sk_inner *in, const uint8_t *inner,
                    size_t len, const uint8_t sig[64], const uint8_t msg_id[32]);
int grp_on_hist_req(sc_group *g, const uint8_t from[20], sc_mp_reader *r, uint64_t now);
int grp_on_hist_resp(sc_group *g, const uint8_t from[20], sc_mp_reader *r, uint64_t now);

/* group_state.c */
void grp_emit_record(sc_group *g, const grp_chat *c, const uint8_t *inner, size_t len,
                     const uint8_t sig[64]);

#endif
