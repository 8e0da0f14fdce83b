/* group.h: group chats of one local identity (internal, transport-agnostic).
 *
 * Pure protocol logic (protocol.md sections 4, 6, 7; normative description
 * in docs/groups.md): membership logs, route ids, sender-key distribution,
 * message send/receive, history from peers, local history records and the
 * group part of the client state. No sockets, no clock (every entry point
 * takes `now` in ms), randomness only through sc_random().
 *
 * Inputs: local commands (sc_group_create, _invite, _answer, _leave,
 * _remove, _send_text, _request_history, _resync, _tick) and three feeds
 * from the host:
 *  - sc_group_on_pairwise(): a payload that arrived over an AUTHENTICATED
 *    pairwise channel; from_uid MUST be the peer uid the channel verified;
 *  - sc_group_on_deliver(): a group blob the relay delivered on a route
 *    (the relay names no sender: the blob's envelope header does, and
 *    only a successful open under that member's chain confirms it);
 *  - sc_group_on_presence(): the relay's presence report for a route.
 * Outputs are polled: sc_group_next_action() (things the host must send)
 * and sc_group_next_event() (things to show). Both queues are bounded
 * (SC_GRP_MAX_QUEUE; beyond it the oldest entries are dropped and counted).
 *
 * Errors returned by commands are SECCHAT_ERR_* codes. Input from peers or
 * the relay is never fatal: a bad payload returns its error code, is
 * counted and (for anything that looks like a message) reported as a
 * WARNING event; module state is unchanged by a rejected input.
 *
 * One sc_group is used by one thread at a time. It borrows the identity
 * (which must outlive it). */
#ifndef SC_GROUP_H
#define SC_GROUP_H

#include <stddef.h>
#include <stdint.h>

#include <secchat/secchat.h>

#include "codec.h"
#include "senderkey.h"

/* ---- Limits (docs/groups.md section "Limits" derives them) ------------ */
#define SC_GRP_MAX_CHATS 64u
#define SC_GRP_MAX_PENDING_INVITES 8u  /* unanswered invitations */
#define SC_GRP_MAX_MEMBERS 256u        /* current members per chat */
#define SC_GRP_MAX_LOG 4096u           /* log entries per chat */
#define SC_GRP_MAX_FRONT 8u            /* chains in a final frontier */
#define SC_GRP_MAX_QUEUE 65536u        /* actions / events pending */
#define SC_GRP_SEEN_MAX 8192u          /* msg ids remembered per chat */
#define SC_GRP_TRACK_MAX 512u          /* (author, chain) trackers per chat */
#define SC_GRP_HIST_MAX_ITEMS 4096u    /* history items kept per chat */
#define SC_GRP_HIST_MAX_BYTES (8u << 20) /* history bytes kept per chat */
#define SC_GRP_HIST_REPLY_CAP 1000u    /* items answered per request */
#define SC_GRP_HIST_BURST 3u           /* history requests per member ... */
#define SC_GRP_HIST_REFILL_MS 10000u   /* ... refilled one per 10 s */
#define SC_GRP_HIST_TIMEOUT_MS 30000u  /* an unanswered request expires */
#define SC_GRP_LOGREQ_BURST 8u         /* log requests per member ... */
#define SC_GRP_LOGREQ_REFILL_MS 1000u  /* ... refilled one per second */
#define SC_GRP_MAX_REQS 16u            /* open history requests */
#define SC_GRP_PENDING_BLOBS 64u       /* undecryptable blobs kept per chat */
#define SC_GRP_PENDING_BYTES (1u << 20) /* ... and their total bytes per chat */
#define SC_GRP_PENDING_DISTS 32u       /* early key distributions per chat */
#define SC_GRP_ROTATE_MSGS 100u
#define SC_GRP_ROTATE_MS (24ull * 3600 * 1000)
#define SC_GRP_ROTATE_JITTER_MS (3600ull * 1000)
#define SC_GRP_HEARTBEAT_MS 60000u
#define SC_GRP_KEYREQ_INTERVAL_MS 2000u
#define SC_GRP_RETRY_MS 5000u          /* first re-send of a LEAVE / LOG_REQ */
#define SC_GRP_RETRY_MAX_MS 60000u     /* re-send back-off cap (also KEY_REQ) */
#define SC_GRP_CHAIN_GRACE_MS (600ull * 1000) /* retired chains kept */

/* Largest pairwise payload: the DIRECT blob limit minus what the pairwise
 * channel adds (session id, counter, AEAD tag, padding to 256: at most
 * 1024 bytes, reserved generously; see docs/groups.md). */
#define SC_GRP_MAX_PW (SC_MAX_DIRECT_BLOB - 1024u)
/* A history page carries one item at least: HIST_RESP overhead is at most
 * 128 bytes (type, req id, chat id, headers, sig), so an inner must fit
 * in SC_GRP_MAX_PW - 128, rounded down to the 64-byte inner block. */
#define SC_GRP_MAX_INNER (((SC_GRP_MAX_PW - 128u) / SC_SK_INNER_BLOCK) * SC_SK_INNER_BLOCK)
/* Inner fields other than the body take at most 241 bytes (docs/groups.md),
 * padding included. */
#define SC_GRP_MAX_TEXT (SC_GRP_MAX_INNER - 241u)

/* Content types of the inner message. */
#define SC_GRP_CT_TEXT 1u
#define SC_GRP_CT_FRONTIER 2u /* heartbeat: the author's chain frontiers */
/* Inner flags. */
#define SC_GRP_FLAG_SHAREABLE 1u

/* Signature contexts of this layer. */
#define SC_CTX_LOG "secchat/log/v1"
#define SC_CTX_LOGHASH "secchat/loghash/v1"
#define SC_CTX_ACCEPT "secchat/accept/v1"
#define SC_CTX_LEAVE "secchat/leave/v1"
#define SC_CTX_ROUTE "secchat/route/v1"
#define SC_CTX_HISTREC "secchat/histrec/v1"

/* Log operations. */
#define SC_GRP_OP_CREATE 0u
#define SC_GRP_OP_ADD 1u
#define SC_GRP_OP_REMOVE 2u
#define SC_GRP_OP_LEAVE 3u

/* Chat states (local view). */
typedef enum sc_grp_state {
  SC_GRP_INVITED = 1, /* invitation received, verified log, not answered */
  SC_GRP_JOINING = 2, /* accepted, waiting for the admin's add */
  SC_GRP_ACTIVE = 3,  /* member of the current epoch */
  SC_GRP_LEFT = 4,    /* left, removed or declined: read-only */
} sc_grp_state;

/* ---- Outputs ------------------------------------------------------------ */

typedef enum sc_grp_action_type {
  SC_GRP_PAIRWISE_SEND = 1, /* to_uid, data: send over the pairwise channel */
  SC_GRP_GROUP_POST = 2,    /* route_id, data (blob), msg_id */
  SC_GRP_ROUTE_OPEN = 3,    /* route_id */
  SC_GRP_ROUTE_CLOSE = 4,   /* route_id */
} sc_grp_action_type;

typedef struct sc_group_action {
  sc_grp_action_type type;
  uint8_t to_uid[20];
  uint8_t route_id[32];
  uint8_t msg_id[32];
  uint8_t chat_id[16]; /* GROUP_POST: the chat it belongs to */
  uint8_t *data; /* owned; may hold secrets (key distribution): clear it */
  size_t len;
} sc_group_action;

typedef enum sc_grp_event_type {
  SC_GRP_EV_CHAT_CREATED = 1,
  SC_GRP_EV_INVITED = 2,       /* uid = admin (inviter) */
  SC_GRP_EV_JOINED = 3,        /* I am a member now */
  SC_GRP_EV_DECLINED = 4,      /* admin side: uid declined */
  SC_GRP_EV_MEMBER_JOINED = 5, /* uid */
  SC_GRP_EV_MEMBER_LEFT = 6,   /* uid; code 0 = left, 1 = removed */
  SC_GRP_EV_REMOVED = 7,       /* I was removed (or my leave committed) */
  SC_GRP_EV_MESSAGE = 8,       /* uid = author, msg_id, ts, text, history */
  SC_GRP_EV_HISTORY_DONE = 9,  /* count = items received, gaps = missing */
  SC_GRP_EV_FORK_SUSPECTED = 10,
  SC_GRP_EV_WARNING = 11,      /* code = SECCHAT_ERR_*, uid = peer if known */
  SC_GRP_EV_GAP = 12,          /* uid = author, count = missing messages */
  SC_GRP_EV_HISTORY_RECORD = 13, /* data = sealed local-history record */
} sc_grp_event_type;

typedef struct sc_group_event {
  sc_grp_event_type type;
  uint8_t chat_id[16];
  uint8_t uid[20];
  uint8_t msg_id[32];
  uint64_t ts_ms;
  uint64_t epoch;
  int verified;     /* MESSAGE: always 1 (unverified input is never shown) */
  int from_history; /* MESSAGE came through history */
  int shareable;
  int code;
  uint64_t count, gaps;
  uint8_t *data; /* owned: MESSAGE text (UTF-8, not NUL-terminated) or record */
  size_t len;
} sc_group_event;

/* ---- Lifecycle ---------------------------------------------------------- */

typedef struct sc_group sc_group;

/* Host hook: nonzero if the trust layer blocks sending to uid (identity
 * changed and not yet accepted). */
typedef int (*sc_group_blocked_fn)(void *ctx, const uint8_t uid[20]);

/* New empty module for identity me (borrowed). SECCHAT_ERR_INVALID_ARGUMENT,
 * SECCHAT_ERR_NOMEM. */
int sc_group_new(sc_group **out, const secchat_identity *me);
/* Wipe every secret and free. NULL is a no-op. */
void sc_group_free(sc_group *g);
void sc_group_set_blocked(sc_group *g, sc_group_blocked_fn fn, void *ctx);
/* Key (32 bytes, derived from the client state key by the host) sealing
 * local-history records. Once set, every accepted message also produces a
 * HISTORY_RECORD event that the host appends to its history file. */
void sc_group_set_history_key(sc_group *g, const uint8_t key[32]);

/* 1 and *a filled (caller owns a->data: sc_group_action_clear) or 0. */
int sc_group_next_action(sc_group *g, sc_group_action *a);
void sc_group_action_clear(sc_group_action *a);
int sc_group_next_event(sc_group *g, sc_group_event *e);
void sc_group_event_clear(sc_group_event *e);

/* ---- Commands ----------------------------------------------------------- */

/* Create a chat with me as admin. SECCHAT_ERR_TOO_MANY. */
int sc_group_create(sc_group *g, uint64_t now, uint8_t chat_id[16]);
/* Admin only: invite uid with the keys of its verified token.
 * SECCHAT_ERR_NOT_FOUND (chat), SECCHAT_ERR_INVALID_STATE (not admin or not
 * active), SECCHAT_ERR_EXISTS (already a member), SECCHAT_ERR_BAD_KEY,
 * SECCHAT_ERR_AUTH (uid is not uid(sign_pk) or dh_sig invalid),
 * SECCHAT_ERR_TOO_MANY. */
int sc_group_invite(sc_group *g, const uint8_t chat_id[16], const uint8_t uid[20],
                    const uint8_t sign_pk[32], const uint8_t dh_pk[32], const uint8_t dh_sig[64],
                    uint64_t now);
/* Answer an invitation (accept != 0) or decline it. */
int sc_group_answer(sc_group *g, const uint8_t chat_id[16], int accept, uint64_t now);
/* Leave (not the admin: SECCHAT_ERR_INVALID_STATE). */
int sc_group_leave(sc_group *g, const uint8_t chat_id[16], uint64_t now);
/* Admin only: remove uid. */
int sc_group_remove(sc_group *g, const uint8_t chat_id[16], const uint8_t uid[20], uint64_t now);
/* Send UTF-8 text (1..SC_GRP_MAX_TEXT bytes). SECCHAT_ERR_IDENTITY_CHANGED
 * if the host blocks a member, SECCHAT_ERR_INVALID_STATE (not active, or
 * the log is not yet re-synchronised after a restart), SECCHAT_ERR_TOO_LONG,
 * SECCHAT_ERR_BAD_UTF8, SECCHAT_ERR_NUL_IN_STRING. */
int sc_group_send_text(sc_group *g, const uint8_t chat_id[16], const char *text, size_t len,
                       int shareable, uint64_t now, uint8_t msg_id[32]);
/* Ask up to npeers online current members for history (max_items each).
 * Returns the number of requests sent (0: nobody online). */
int sc_group_request_history(sc_group *g, const uint8_t chat_id[16], unsigned npeers,
                             uint32_t max_items, uint64_t now);
/* After a reconnect or an import: ask the admin (and members) for the log;
 * no keys are sent until the admin or two members answered. */
int sc_group_resync(sc_group *g, uint64_t now);
/* Our relay connection is gone (lost, closed or being replaced): forget
 * every member's presence. The relay reports presence only while we are
 * connected, so flags from before would stay stale forever; the routes'
 * re-open after the reconnect brings fresh PRESENCE for those online. */
void sc_group_connection_lost(sc_group *g);
/* Timers: heartbeats, rotation, request expiry, retired chains, and
 * re-sends with back-off: my pending LEAVE, KEY_REQ for kept blobs, and
 * LOG_REQ while re-synchronising. */
void sc_group_tick(sc_group *g, uint64_t now);

/* ---- Feeds -------------------------------------------------------------- */

int sc_group_on_pairwise(sc_group *g, const uint8_t from_uid[20], const uint8_t *p, size_t len,
                         uint64_t now);
int sc_group_on_deliver(sc_group *g, const uint8_t route_id[32], const uint8_t *blob, size_t len,
                        uint64_t now);
void sc_group_on_presence(sc_group *g, const uint8_t route_id[32], const uint8_t uid[20],
                          int online, uint64_t now);

/* ---- Queries ------------------------------------------------------------ */

size_t sc_group_chat_count(const sc_group *g);
/* Chat i (0-based): id, state, epoch, number of current members. */
int sc_group_chat_at(const sc_group *g, size_t i, uint8_t chat_id[16], int *state,
                     uint64_t *epoch, size_t *nmembers);
/* Current members' uids into uids[cap][20]; returns the count (may exceed
 * cap) or SECCHAT_ERR_NOT_FOUND. */
int sc_group_members(const sc_group *g, const uint8_t chat_id[16], uint8_t (*uids)[20],
                     size_t cap);
/* Log head hash of the chat's current epoch. */
int sc_group_log_head(const sc_group *g, const uint8_t chat_id[16], uint64_t *epoch,
                      uint8_t head[32]);
/* Counters of rejected input (decrypt/verify failures, duplicates, ...). */
typedef struct sc_group_stats {
  uint64_t decrypt_fail, verify_fail, duplicates, rejected_pairwise, rate_limited,
      unsolicited, dropped_queue, forks;
} sc_group_stats;
void sc_group_get_stats(const sc_group *g, sc_group_stats *s);
/* Bytes of heap the module holds (for bounded-memory tests). */
size_t sc_group_memory(const sc_group *g);

/* A text message of the chat's history store (every verified text message
 * accepted: live, from peers, my own posts, reloaded records). text points
 * into the store: valid until the next non-const call on g. */
typedef struct sc_group_msg {
  uint8_t uid[20], msg_id[32];
  uint64_t ts_ms, epoch;
  int shareable;
  const uint8_t *text; /* UTF-8, not NUL-terminated */
  size_t len;
} sc_group_msg;
/* The newest min(cap, stored) text messages, oldest first (author
 * timestamp, then arrival order). Returns the count written, or
 * SECCHAT_ERR_NOT_FOUND, SECCHAT_ERR_INVALID_ARGUMENT, SECCHAT_ERR_NOMEM. */
int sc_group_messages(const sc_group *g, const uint8_t chat_id[16], sc_group_msg *out, size_t cap);

/* Messages known to exist but not held (the GAP events' count), per
 * author, summed over its chains meant for me. Fills up to cap entries;
 * returns the number of authors with gaps (may exceed cap), or
 * SECCHAT_ERR_NOT_FOUND / SECCHAT_ERR_INVALID_ARGUMENT. */
typedef struct sc_group_gap {
  uint8_t uid[20];
  uint64_t missing;
} sc_group_gap;
int sc_group_gaps(const sc_group *g, const uint8_t chat_id[16], sc_group_gap *out, size_t cap);

/* ---- State and local history ------------------------------------------ */

/* Serialise the group state (canonical msgpack, secrets included: the
 * caller encrypts it and wipes *out). The counter increases by one per
 * export. *out is malloc'd. SECCHAT_ERR_NOMEM. */
int sc_group_export(sc_group *g, uint8_t **out, size_t *len);
/* Load an exported state into a fresh module (no chats yet) of the same
 * identity. Own chains are never restored: every chat starts a new chain
 * once its log is re-synchronised (sc_group_resync is called). Errors: the
 * msgpack codes, SECCHAT_ERR_SCHEMA, SECCHAT_ERR_AUTH (a log that does not
 * verify, or a state of another identity), SECCHAT_ERR_INVALID_STATE (the
 * module has chats), SECCHAT_ERR_NOMEM. */
int sc_group_import(sc_group *g, const uint8_t *in, size_t len, uint64_t now);
uint64_t sc_group_counter(const sc_group *g);

/* Load one sealed local-history record (from a HISTORY_RECORD event of an
 * earlier run) under the history key: it is decrypted, verified like a
 * history item from a peer, and kept to answer history requests (no
 * MESSAGE event; a msg id not yet seen is marked seen). Call after
 * sc_group_import. Errors: SECCHAT_ERR_INVALID_ARGUMENT (no key set),
 * SECCHAT_ERR_TRUNCATED / SECCHAT_ERR_TOO_LONG, SECCHAT_ERR_DECRYPT (wrong
 * key or altered), SECCHAT_ERR_NOT_FOUND (unknown chat), the verification
 * codes, SECCHAT_ERR_REPLAY (already in the history store). */
int sc_group_history_load(sc_group *g, const uint8_t *rec, size_t len, uint64_t now);

#endif
