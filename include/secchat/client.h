/*
 * secchat/client.h: the sans-I/O client core (included by secchat/secchat.h;
 * do not include directly). docs/client.md is the normative description
 * (state machine, pinning, trust, pairwise channel wire format, state blob).
 *
 * One secchat_client is one user (one identity) talking to one relay over
 * successive TCP connections. It never touches a socket or a clock:
 *   - the host opens a socket and calls secchat_client_connect(), feeds the
 *     received bytes with secchat_client_recv(), writes what
 *     secchat_client_send() hands out, drains events with
 *     secchat_client_next_event() after every call, and drives deadlines
 *     with secchat_client_next_timeout() / secchat_client_on_timeout();
 *   - when the socket dies (or after an EV_CLOSE event) the host calls
 *     secchat_client_disconnected(); reconnecting is the host's job (call
 *     secchat_client_connect() again on a new socket). Everything but the
 *     connection itself (token, pins, contacts, pairwise sessions, queued
 *     sends) survives reconnects.
 *
 * Time: every now_ms is wall-clock Unix time in milliseconds (tokens carry
 * Unix times). A smaller now_ms than the last one is treated as the last.
 *
 * Errors: negative SECCHAT_ERR_* codes from calls mean the call did nothing.
 * Misbehaviour of the relay or of peers never makes a call fail: it is
 * reported through events (and the connection is condemned when the relay
 * breaks the protocol).
 *
 * Threads: one thread at a time per client. The identity is borrowed and
 * must outlive the client.
 */
#ifndef SECCHAT_CLIENT_H
#define SECCHAT_CLIENT_H

#ifndef SECCHAT_SECCHAT_H
#error "include <secchat/secchat.h>, not <secchat/client.h>"
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef struct secchat_client secchat_client;

/* Server fingerprint: BLAKE2b-256("secchat/server-fpr/v1" || 0x00 ||
 * noise_static_pk (32) || token key fingerprint (32)), where the token key
 * fingerprint is secchat_server_key_fingerprint() (BLAKE2b-256 of the DER
 * SubjectPublicKeyInfo). One value pins both server keys. */
#define SECCHAT_SERVER_FINGERPRINT_BYTES 32u

/* Largest payload of one pairwise message (docs/client.md, "Sizes"). */
#define SECCHAT_CLIENT_MAX_PAIRWISE_PAYLOAD 61282u

/* ---- Configuration -------------------------------------------------------- */
typedef struct secchat_client_config {
  uint32_t struct_size;               /* sizeof(secchat_client_config) */
  uint32_t pad0;
  const secchat_identity *identity;   /* borrowed; required */
  uint32_t ping_interval_ms;          /* keepalive when idle: 60 s */
  uint32_t dead_after_ms;             /* nothing received: close, 180 s */
  uint32_t renew_margin_s;            /* renew this long before expiry:
                                         0 = a tenth of the token lifetime */
  uint32_t max_relay_queue;           /* queued GROUP_SEND/DIRECT: 1024 */
  uint32_t max_pairwise_queue;        /* payloads waiting per peer: 64 */
  uint32_t max_contacts;              /* 4096 */
  uint32_t pairwise_max_messages;     /* re-handshake after: 10000 */
  uint32_t pairwise_max_age_s;        /* re-handshake after: 24 h */
  uint32_t pairwise_retry_ms;         /* handshake retry interval: 10 s */
  uint32_t pairwise_attempts;         /* handshake attempts before FAILED: 5 */
  uint32_t reserved[8];
} secchat_client_config;

/* Fill *cfg with the defaults (struct_size set, identity NULL). */
SECCHAT_API void secchat_client_config_init(secchat_client_config *cfg);

/* Create a client. Requires secchat_init(). Errors:
 * SECCHAT_ERR_INVALID_ARGUMENT (NULL, struct_size too small, no identity, a
 * zero limit), SECCHAT_ERR_NOMEM. */
SECCHAT_API int secchat_client_new(secchat_client **out, const secchat_client_config *cfg);

/* Wipe every secret (session keys, token) and free; NULL-safe. */
SECCHAT_API void secchat_client_free(secchat_client *c);

/* ---- Server pinning -------------------------------------------------------
 * Exactly one of three sources decides which server is trusted:
 *  - a pin set with secchat_client_set_server_pin() (or restored by
 *    secchat_client_import_state()): the server must present exactly these
 *    keys;
 *  - an expected fingerprint (secchat_client_expect_server_fingerprint, the
 *    chatc --server-key option): the first server whose keys hash to it is
 *    pinned;
 *  - neither: trust on first use. The first server is pinned and reported
 *    with SECCHAT_CLIENT_EV_SERVER_PINNED so that the host persists it.
 * A server that does not match is refused: SECCHAT_CLIENT_EV_SERVER_KEY_MISMATCH
 * then SECCHAT_CLIENT_EV_CLOSE (a hard error: nothing is sent on that
 * connection). Only secchat_client_accept_server_key() replaces a pin. */

/* Pin a server: its Noise static public key, its token public key (SPKI
 * PEM, pem_len bytes) and its name (token issuer, NUL-terminated). Errors:
 * SECCHAT_ERR_INVALID_ARGUMENT, SECCHAT_ERR_BAD_KEY (not a P-256 key or a
 * low-order X25519 key), SECCHAT_ERR_INVALID_STATE (connected),
 * SECCHAT_ERR_NOMEM. */
SECCHAT_API int secchat_client_set_server_pin(secchat_client *c, const uint8_t noise_pk[32],
                                              const char *token_pem, size_t pem_len,
                                              const char *issuer);

/* Expect a server fingerprint instead of a pin (see above). Errors:
 * SECCHAT_ERR_INVALID_ARGUMENT, SECCHAT_ERR_INVALID_STATE (connected). */
SECCHAT_API int secchat_client_expect_server_fingerprint(
    secchat_client *c, const uint8_t fpr[SECCHAT_SERVER_FINGERPRINT_BYTES]);

/* After SERVER_KEY_MISMATCH: replace the pin by the keys that server
 * presented (the host asked the user). Takes effect on the next connect.
 * SECCHAT_ERR_INVALID_STATE if no mismatch is pending. */
SECCHAT_API int secchat_client_accept_server_key(secchat_client *c);

/* Fingerprint of the pinned server. SECCHAT_ERR_NOT_FOUND if none yet. */
SECCHAT_API int secchat_client_server_fingerprint(const secchat_client *c,
                                                  uint8_t out[SECCHAT_SERVER_FINGERPRINT_BYTES]);

/* The fingerprint of any pair of server keys (chatd prints it). Errors:
 * SECCHAT_ERR_INVALID_ARGUMENT, SECCHAT_ERR_BAD_KEY, SECCHAT_ERR_NOMEM. */
SECCHAT_API int secchat_server_fingerprint(const uint8_t noise_pk[32], const char *token_pem,
                                           size_t pem_len,
                                           uint8_t out[SECCHAT_SERVER_FINGERPRINT_BYTES]);

/* ---- Connection ------------------------------------------------------------ */

/* A new socket to the relay is open: drop any previous connection state and
 * start the Noise XX handshake (output becomes pending). When the handshake
 * completes the client logs in with its token, or registers first if it has
 * none (secchat_client_register), then re-sends every queued GROUP_SEND and
 * DIRECT with its original ref. Errors: SECCHAT_ERR_INVALID_ARGUMENT,
 * SECCHAT_ERR_NOMEM. */
SECCHAT_API int secchat_client_connect(secchat_client *c, uint64_t now_ms);

/* The socket is gone (EOF, reset, or closed by the host after EV_CLOSE).
 * Pending output is discarded; queued sends stay queued. */
SECCHAT_API void secchat_client_disconnected(secchat_client *c, uint64_t now_ms);

/* Bytes received from the relay. Consumes all of them (returns len), or
 * returns SECCHAT_ERR_INVALID_ARGUMENT / SECCHAT_ERR_INVALID_STATE (not
 * connected). After the connection was condemned (EV_CLOSE) bytes are
 * discarded. */
SECCHAT_API secchat_ssize secchat_client_recv(secchat_client *c, const uint8_t *in, size_t len,
                                              uint64_t now_ms);

/* Copy up to cap bytes of pending output into out and consume them.
 * Returns the byte count (0: nothing pending) or
 * SECCHAT_ERR_INVALID_ARGUMENT. */
SECCHAT_API secchat_ssize secchat_client_send(secchat_client *c, uint8_t *out, size_t cap);

/* Bytes of output pending. */
SECCHAT_API size_t secchat_client_pending(const secchat_client *c);

/* 1 while authenticated on the current connection. */
SECCHAT_API int secchat_client_is_online(const secchat_client *c);

/* Our current token (the relay-signed public certificate of our keys; it is
 * useless without the identity's secret keys). Returns a pointer borrowed
 * until the next call on c and sets *len, or NULL (with *len 0) before the
 * first registration. */
SECCHAT_API const char *secchat_client_token(const secchat_client *c, size_t *len);

/* Register name (UTF-8, secchat_name_check rules) on the next (or the
 * current, if waiting) connection instead of logging in with a stored
 * token. The TOKEN received is verified with the pinned token key (it must
 * be for our own keys and name) and then used to log in at once. Errors:
 * SECCHAT_ERR_INVALID_ARGUMENT (bad name). */
SECCHAT_API int secchat_client_register(secchat_client *c, const char *name, size_t len,
                                        uint64_t now_ms);

/* ---- Deadlines ------------------------------------------------------------ */

/* Earliest pending deadline (absolute ms), UINT64_MAX if none. */
SECCHAT_API uint64_t secchat_client_next_timeout(const secchat_client *c);

/* Run every deadline due at now_ms: keepalive, token renewal, pairwise
 * handshake retries, dead-connection detection. */
SECCHAT_API void secchat_client_on_timeout(secchat_client *c, uint64_t now_ms);

/* ---- Events ----------------------------------------------------------------- */
typedef enum secchat_client_event_type {
  SECCHAT_CLIENT_EV_NONE = 0,
  SECCHAT_CLIENT_EV_CONNECTED = 1,           /* relay authenticated (fingerprint) */
  SECCHAT_CLIENT_EV_SERVER_PINNED = 2,       /* first contact: persist key, data
                                                (token PEM), name (issuer) */
  SECCHAT_CLIENT_EV_SERVER_KEY_MISMATCH = 3, /* hard error (key, fingerprint of
                                                what the server presented) */
  SECCHAT_CLIENT_EV_REGISTERED = 4,          /* name, expires_s */
  SECCHAT_CLIENT_EV_AUTHENTICATED = 5,       /* uid, expires_s */
  SECCHAT_CLIENT_EV_TOKEN_RENEWED = 6,       /* expires_s */
  SECCHAT_CLIENT_EV_AUTH_FAILED = 7,         /* code, detail (wire code or
                                                token reason) */
  SECCHAT_CLIENT_EV_CLOSE = 8,               /* close the socket after writing
                                                the pending output; code = cause */
  SECCHAT_CLIENT_EV_RELAYED = 9,             /* ref accepted by the relay; a
                                                group post: msg_id, chat_id */
  SECCHAT_CLIENT_EV_SEND_FAILED = 10,        /* ref, detail = wire code, uid for
                                                DIRECT; msg_id, chat_id of a
                                                group post */
  SECCHAT_CLIENT_EV_LOOKUP_ENTRY = 11,       /* one verified identity: uid, name,
                                                text (fingerprint), trust, flags */
  SECCHAT_CLIENT_EV_LOOKUP_DONE = 12,        /* count; flags AMBIGUOUS; names its
                                                request: name, or uid (has_uid) */
  SECCHAT_CLIENT_EV_CONTACT_NEW = 13,        /* name pinned to uid (first use) */
  SECCHAT_CLIENT_EV_IDENTITY_CHANGED = 14,   /* name now claimed by uid, pinned to
                                                uid2: sending blocked until
                                                secchat_client_trust() */
  SECCHAT_CLIENT_EV_PEER_REJECTED = 15,      /* a peer token or handshake refused:
                                                uid (claimed), code, detail */
  SECCHAT_CLIENT_EV_PAIRWISE_OPEN = 16,      /* session with uid authenticated */
  SECCHAT_CLIENT_EV_PAIRWISE_MESSAGE = 17,   /* uid, data = payload */
  SECCHAT_CLIENT_EV_PAIRWISE_FAILED = 18,    /* uid, code; count payloads dropped */
  SECCHAT_CLIENT_EV_RELAY_ERROR = 19,        /* ERROR without ref: detail = code */
  SECCHAT_CLIENT_EV_BYE = 20,                /* detail = BYE reason */
  SECCHAT_CLIENT_EV_GROUP_DELIVER = 21,      /* key = route id, data (no uid: the
                                                relay names no sender) */
  SECCHAT_CLIENT_EV_PRESENCE = 22,           /* key = route id, uid, count = online */
  /* group chats (docs/groups.md); chat_id is set on all of them */
  SECCHAT_CLIENT_EV_CHAT_CREATED = 33,
  SECCHAT_CLIENT_EV_CHAT_INVITED = 34,       /* uid = the admin who invites */
  SECCHAT_CLIENT_EV_CHAT_JOINED = 35,        /* we are a member now */
  SECCHAT_CLIENT_EV_CHAT_DECLINED = 36,      /* admin: uid declined */
  SECCHAT_CLIENT_EV_MEMBER_JOINED = 37,      /* uid */
  SECCHAT_CLIENT_EV_MEMBER_LEFT = 38,        /* uid; code 0 left, 1 removed */
  SECCHAT_CLIENT_EV_CHAT_REMOVED = 39,       /* we were removed / left */
  SECCHAT_CLIENT_EV_MESSAGE = 40,            /* uid = author (name, trust), msg_id,
                                                ts_ms, epoch, data = UTF-8 text,
                                                flags SECCHAT_MSG_* */
  SECCHAT_CLIENT_EV_HISTORY_DONE = 41,       /* count items, gaps missing */
  SECCHAT_CLIENT_EV_FORK_SUSPECTED = 42,
  SECCHAT_CLIENT_EV_CHAT_WARNING = 43,       /* code = SECCHAT_ERR_*, uid if known
                                                (decrypt/verify failures...: then
                                                the uid the envelope header
                                                claims, NOT a verified author) */
  SECCHAT_CLIENT_EV_GAP = 44,                /* uid = author, count missing */
  SECCHAT_CLIENT_EV_HISTORY_RECORD = 45      /* data = sealed local-history record:
                                                append it to the history file */
} secchat_client_event_type;

/* MESSAGE flags. */
#define SECCHAT_MSG_VERIFIED 1u  /* author signature valid with its log key */
#define SECCHAT_MSG_HISTORY 2u   /* came through history from a peer */
#define SECCHAT_MSG_SHAREABLE 4u /* the author marked it shareable */

/* Contact trust levels. */
#define SECCHAT_TRUST_TOFU 1u     /* pinned on first use */
#define SECCHAT_TRUST_VERIFIED 2u /* safety number compared */

/* Contact flags (secchat_contact.flags, LOOKUP_ENTRY flags). */
#define SECCHAT_CONTACT_PINNED 1u   /* its name is pinned to this uid */
#define SECCHAT_CONTACT_CHANGED 2u  /* claims a name pinned to another uid:
                                       blocked until secchat_client_trust */
#define SECCHAT_CONTACT_SESSION 4u  /* a pairwise session is established */
#define SECCHAT_LOOKUP_AMBIGUOUS 8u /* LOOKUP_DONE: several uids for the name */

/* Pointers are borrowed until the next call on the client. */
typedef struct secchat_client_event {
  uint32_t struct_size;
  uint32_t type;      /* secchat_client_event_type */
  int32_t code;       /* SECCHAT_ERR_* cause, 0 if none */
  int32_t detail;     /* wire code, BYE reason or token reason */
  uint64_t ref;       /* RELAYED, SEND_FAILED */
  int64_t expires_s;  /* REGISTERED, AUTHENTICATED, TOKEN_RENEWED */
  uint32_t has_uid;
  uint32_t trust;     /* SECCHAT_TRUST_* */
  uint32_t flags;     /* SECCHAT_CONTACT_*, SECCHAT_LOOKUP_AMBIGUOUS */
  uint32_t count;
  uint8_t uid[SECCHAT_UID_BYTES];
  uint8_t uid2[SECCHAT_UID_BYTES]; /* IDENTITY_CHANGED: the pinned uid */
  uint8_t key[32];    /* server Noise key, or route id */
  uint8_t fingerprint[SECCHAT_SERVER_FINGERPRINT_BYTES];
  char text[SECCHAT_FINGERPRINT_BYTES]; /* contact fingerprint text */
  const char *name;   /* NOT NUL-terminated; name_len bytes */
  size_t name_len;
  const uint8_t *data;
  size_t data_len;
  uint8_t chat_id[SECCHAT_CHAT_ID_BYTES]; /* group events, RELAYED / SEND_FAILED
                                             of a group post */
  uint8_t msg_id[SECCHAT_MSG_ID_BYTES];   /* MESSAGE, RELAYED of a group post */
  uint64_t ts_ms;                         /* MESSAGE: author timestamp */
  uint64_t epoch;                         /* group events */
  uint64_t gaps;                          /* HISTORY_DONE */
  uint64_t reserved[4];
} secchat_client_event;

/* Next pending event: 1 (filled), 0 (none), SECCHAT_ERR_INVALID_ARGUMENT
 * (NULL or struct_size too small). */
SECCHAT_API int secchat_client_next_event(secchat_client *c, secchat_client_event *ev);

/* ---- Directory and contacts --------------------------------------------- */

/* LOOKUP a name or uid in the relay's online directory. Every token in the
 * answer is verified; each valid one gives a LOOKUP_ENTRY (and may pin a
 * name, or raise IDENTITY_CHANGED), then LOOKUP_DONE. The wire answer has
 * no request id, so the events identify their request by what was asked:
 * LOOKUP_DONE carries the name exactly as given to lookup_name (name,
 * name_len; has_uid 0), or the uid given to lookup_uid (has_uid 1), and
 * every LOOKUP_ENTRY before it has that name or uid. A host waiting on
 * several lookups matches answers by these, not by order. Lookups sent on
 * a connection that dies are never answered (no event): ask again after
 * the next login. Errors:
 * SECCHAT_ERR_INVALID_ARGUMENT, SECCHAT_ERR_INVALID_STATE (not online),
 * SECCHAT_ERR_NOMEM. */
SECCHAT_API int secchat_client_lookup_name(secchat_client *c, const char *name, size_t len);
SECCHAT_API int secchat_client_lookup_uid(secchat_client *c, const uint8_t uid[SECCHAT_UID_BYTES]);

typedef struct secchat_contact {
  uint32_t struct_size;
  uint32_t trust;     /* SECCHAT_TRUST_* */
  uint32_t flags;     /* SECCHAT_CONTACT_* */
  uint32_t pad0;
  uint8_t uid[SECCHAT_UID_BYTES];
  uint8_t sign_pk[32];
  char uid_str[SECCHAT_UID_STRING_BYTES];
  char fingerprint[SECCHAT_FINGERPRINT_BYTES];
  char name[SECCHAT_NAME_MAX_BYTES + 1];
  uint64_t reserved[2];
} secchat_contact;

/* Number of contacts, and the i-th (0-based, stable until a contact is
 * added). SECCHAT_ERR_NOT_FOUND past the end. */
SECCHAT_API size_t secchat_client_contact_count(const secchat_client *c);
SECCHAT_API int secchat_client_contact_at(const secchat_client *c, size_t i, secchat_contact *out);
SECCHAT_API int secchat_client_contact(const secchat_client *c,
                                       const uint8_t uid[SECCHAT_UID_BYTES],
                                       secchat_contact *out);

/* Resolve what a user typed: a uid (32 base32 characters), name#fingerprint
 * or a name. A bare name resolves only to its pinned uid. Errors:
 * SECCHAT_ERR_NOT_FOUND, SECCHAT_ERR_AMBIGUOUS (several unpinned
 * identities use the name: ask for name#fingerprint),
 * SECCHAT_ERR_IDENTITY_CHANGED (the pin is contested), INVALID_ARGUMENT. */
SECCHAT_API int secchat_client_resolve(const secchat_client *c, const char *text, size_t len,
                                       uint8_t uid[SECCHAT_UID_BYTES]);

/* Accept uid as the holder of its name (after IDENTITY_CHANGED, or to
 * choose among ambiguous ones): re-pins the name, clears the block; the
 * trust level restarts at TOFU. SECCHAT_ERR_NOT_FOUND. */
SECCHAT_API int secchat_client_trust(secchat_client *c, const uint8_t uid[SECCHAT_UID_BYTES]);

/* Safety number between us and the contact (secchat_safety_number). */
SECCHAT_API int secchat_client_safety_number(const secchat_client *c,
                                             const uint8_t uid[SECCHAT_UID_BYTES], char *out,
                                             size_t cap);

/* Compare a safety number the user read out of band with ours (constant
 * time); on a match the contact becomes VERIFIED. Errors:
 * SECCHAT_ERR_KEY_MISMATCH (differs: nothing changes), SECCHAT_ERR_NOT_FOUND,
 * SECCHAT_ERR_IDENTITY_CHANGED (accept the identity first). */
SECCHAT_API int secchat_client_verify(secchat_client *c, const uint8_t uid[SECCHAT_UID_BYTES],
                                      const char *safety_number);

/* ---- Pairwise channels ------------------------------------------------------
 * Send payload (1..SECCHAT_CLIENT_MAX_PAIRWISE_PAYLOAD bytes) to uid over
 * the authenticated pairwise channel, opening it if needed (the peer's keys
 * come from its verified token: a LOOKUP is sent when the contact is
 * unknown). Payloads wait (bounded) while the channel is set up. The
 * receiver gets SECCHAT_CLIENT_EV_PAIRWISE_MESSAGE at most once per send.
 * Errors: SECCHAT_ERR_INVALID_ARGUMENT, SECCHAT_ERR_TOO_LONG,
 * SECCHAT_ERR_IDENTITY_CHANGED (sending to it is blocked),
 * SECCHAT_ERR_QUEUE_FULL, SECCHAT_ERR_NOMEM. */
SECCHAT_API int secchat_client_pairwise_send(secchat_client *c,
                                             const uint8_t uid[SECCHAT_UID_BYTES],
                                             const uint8_t *payload, size_t len, uint64_t now_ms);

/* ---- Group chats ----------------------------------------------------------
 * The group layer (libsecchat/group.c, docs/groups.md) driven by the
 * client: its pairwise traffic goes over the authenticated channels above,
 * its posts through GROUP_SEND with RELAYED tracking, its routes are opened
 * on every login, and sending is refused while a member's identity is
 * contested (SECCHAT_ERR_IDENTITY_CHANGED). chat ids are 16 bytes. */

/* Create a chat with us as its admin. SECCHAT_ERR_TOO_MANY. */
SECCHAT_API int secchat_client_chat_create(secchat_client *c, uint64_t now_ms,
                                           uint8_t chat_id[SECCHAT_CHAT_ID_BYTES]);
/* Admin: invite a contact (its keys from a verified token). Errors:
 * SECCHAT_ERR_NOT_FOUND (chat or contact without keys),
 * SECCHAT_ERR_IDENTITY_CHANGED, SECCHAT_ERR_EXISTS, INVALID_STATE. */
SECCHAT_API int secchat_client_chat_invite(secchat_client *c,
                                           const uint8_t chat_id[SECCHAT_CHAT_ID_BYTES],
                                           const uint8_t uid[SECCHAT_UID_BYTES], uint64_t now_ms);
/* Accept (accept = 1) or decline an invitation. */
SECCHAT_API int secchat_client_chat_answer(secchat_client *c,
                                           const uint8_t chat_id[SECCHAT_CHAT_ID_BYTES],
                                           int accept, uint64_t now_ms);
SECCHAT_API int secchat_client_chat_leave(secchat_client *c,
                                          const uint8_t chat_id[SECCHAT_CHAT_ID_BYTES],
                                          uint64_t now_ms);
/* Admin: remove a member. */
SECCHAT_API int secchat_client_chat_remove(secchat_client *c,
                                           const uint8_t chat_id[SECCHAT_CHAT_ID_BYTES],
                                           const uint8_t uid[SECCHAT_UID_BYTES], uint64_t now_ms);
/* Send UTF-8 text; msg_id (may be NULL) receives its id. Errors as
 * sc_group_send_text (docs/groups.md). */
SECCHAT_API int secchat_client_chat_send(secchat_client *c,
                                         const uint8_t chat_id[SECCHAT_CHAT_ID_BYTES],
                                         const char *text, size_t len, int shareable,
                                         uint64_t now_ms, uint8_t msg_id[SECCHAT_MSG_ID_BYTES]);
/* Ask up to npeers online members for history. Returns requests sent. */
SECCHAT_API int secchat_client_chat_request_history(secchat_client *c,
                                                    const uint8_t chat_id[SECCHAT_CHAT_ID_BYTES],
                                                    unsigned npeers, uint32_t max_items,
                                                    uint64_t now_ms);
/* Chats: count, and chat i (state: 1 invited, 2 joining, 3 active, 4 left). */
SECCHAT_API size_t secchat_client_chat_count(const secchat_client *c);
SECCHAT_API int secchat_client_chat_at(const secchat_client *c, size_t i,
                                       uint8_t chat_id[SECCHAT_CHAT_ID_BYTES], int *state,
                                       uint64_t *epoch, size_t *nmembers);
/* Current members' uids into uids[cap][20]; returns the count (may exceed
 * cap). Their trust levels: secchat_client_contact(). */
SECCHAT_API int secchat_client_chat_members(const secchat_client *c,
                                            const uint8_t chat_id[SECCHAT_CHAT_ID_BYTES],
                                            uint8_t (*uids)[SECCHAT_UID_BYTES], size_t cap);
/* Load one record from a HISTORY_RECORD event of an earlier run (to answer
 * history requests). Errors as sc_group_history_load. */
SECCHAT_API int secchat_client_history_load(secchat_client *c, const uint8_t *rec, size_t len,
                                            uint64_t now_ms);

/* One message of a chat's local store (secchat_client_chat_messages). The
 * store holds every verified text message this client accepted: received
 * live, fetched from peers, its own posts, and those reloaded from earlier
 * runs with secchat_client_history_load() (bounded per chat, oldest
 * dropped: docs/groups.md). name and text are borrowed: valid until the
 * next call on the client that is not a const query. */
typedef struct secchat_chat_message {
  uint32_t struct_size;  /* caller: sizeof(secchat_chat_message) in out[0] */
  uint32_t flags;        /* SECCHAT_MSG_VERIFIED (always: only verified
                            messages are stored), SECCHAT_MSG_SHAREABLE */
  uint32_t trust;        /* the author's contact trust (SECCHAT_TRUST_*),
                            0 for ourselves or an author without contact */
  uint32_t pad0;
  uint8_t uid[SECCHAT_UID_BYTES];       /* author */
  uint8_t msg_id[SECCHAT_MSG_ID_BYTES]; /* as in the MESSAGE event */
  uint8_t pad1[4];
  uint64_t ts_ms;        /* author timestamp */
  uint64_t epoch;
  const char *name;      /* the author's contact name, NOT NUL-terminated
                            (name_len bytes); NULL for ourselves/unknown */
  size_t name_len;
  const char *text;      /* UTF-8, NOT NUL-terminated; text_len bytes */
  size_t text_len;
  uint64_t reserved[2];
} secchat_chat_message;

/* The newest min(cap, stored) messages of a chat into out[0..], oldest
 * first (author timestamp, then arrival order): what a history view shows,
 * including messages of earlier runs. out is an array of cap structs with
 * out[0].struct_size = sizeof(secchat_chat_message) (out[0..n) are
 * written, the rest untouched). Returns the count written, or SECCHAT_ERR_INVALID_ARGUMENT
 * (NULL, cap > 0 without out, wrong struct_size), SECCHAT_ERR_NOT_FOUND
 * (unknown chat), SECCHAT_ERR_NOMEM. Nothing is allocated for the caller. */
SECCHAT_API int secchat_client_chat_messages(const secchat_client *c,
                                             const uint8_t chat_id[SECCHAT_CHAT_ID_BYTES],
                                             secchat_chat_message *out, size_t cap);

/* Known gaps of a chat: messages an author's chain shows to exist (later
 * sequence numbers, or its heartbeat) that this client does not hold, on
 * the chains meant for us (from our latest join on). The same counts the
 * GAP events report; history fetched from peers closes them. */
typedef struct secchat_chat_gap {
  uint8_t uid[SECCHAT_UID_BYTES]; /* author */
  uint32_t pad0;
  uint64_t missing;               /* messages missing, over its chains */
} secchat_chat_gap;

/* One entry per author with missing messages, in the order their chains
 * were first seen, up to cap of them into out. Returns the number of such
 * authors (may exceed cap; 0: no known gap), or
 * SECCHAT_ERR_INVALID_ARGUMENT, SECCHAT_ERR_NOT_FOUND (unknown chat). */
SECCHAT_API int secchat_client_chat_gaps(const secchat_client *c,
                                         const uint8_t chat_id[SECCHAT_CHAT_ID_BYTES],
                                         secchat_chat_gap *out, size_t cap);

/* ---- State -----------------------------------------------------------------
 * The client's persistent state (server pin, token, own name, contacts with
 * their pins and trust levels, the group layer's state) as one blob,
 * encrypted and authenticated with a key derived from the identity
 * (docs/client.md, "State blob"). Each export increments a monotonic
 * counter stored inside. Pairwise sessions are NOT exported: after an
 * import every pairwise channel is re-established, so a restored old blob
 * can never reuse a nonce. */

/* *out_len gets the size; SECCHAT_ERR_BUFFER_TOO_SMALL when cap is too
 * small (then *out_len is the size needed and the counter is unchanged).
 * *counter (may be NULL) gets the counter written. */
SECCHAT_API int secchat_client_export_state(secchat_client *c, uint8_t *out, size_t cap,
                                            size_t *out_len, uint64_t *counter);

/* Load a blob into a fresh (never connected) client. min_counter: the
 * highest counter the host knows was written (0 = no check); an older blob
 * is SECCHAT_ERR_REPLAY. Errors: SECCHAT_ERR_INVALID_STATE (connected),
 * SECCHAT_ERR_DECRYPT (other identity or altered), SECCHAT_ERR_VERSION,
 * decoding errors (SECCHAT_ERR_SCHEMA...), SECCHAT_ERR_NOMEM. */
SECCHAT_API int secchat_client_import_state(secchat_client *c, const uint8_t *blob, size_t len,
                                            uint64_t min_counter, uint64_t now_ms);

/* sizeof for bindings. */
SECCHAT_API size_t secchat_client_event_size(void);
SECCHAT_API size_t secchat_contact_size(void);

#ifdef __cplusplus
}
#endif

#endif /* SECCHAT_CLIENT_H */
