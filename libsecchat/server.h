/* server.h: internal types of the relay server core (public API in
 * include/secchat/server.h; docs/relay.md is the normative description).
 *
 * Files: server.c (lifecycle, connection state machine, handshake and
 * authentication, output queues, events, deadlines) and server_route.c
 * (routes, online directory, relay of GROUP_SEND / DIRECT, LOOKUP,
 * PRESENCE). slab.c holds the per-connection secrets.
 *
 * Memory per connection, by design (docs/relay.md, "Memory"): one sc_conn
 * (heap), one slab slot (locked), nothing else while idle: the deframer
 * allocates only while a message is split across reads, the output queue
 * only while bytes are pending, the token and name once authenticated, the
 * route list once a route is opened. */
#ifndef SC_SERVER_H
#define SC_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include <secchat/secchat.h>

#include "codec.h"
#include "noise.h"
#include "slab.h"

/* Version negotiation in the handshake payloads (docs/relay.md). */
#define SC_PROTO_MINOR 0u
#define SC_PROTO_FEATURES 0u
#define SC_HS_MAX_MESSAGE 2048u /* handshake messages are small */

enum sc_conn_state {
  SC_ST_HS1 = 1,      /* waiting for Noise message 1 */
  SC_ST_HS3 = 2,      /* message 2 sent, waiting for message 3 */
  SC_ST_AUTHWAIT = 3, /* transport up: REGISTER / AUTH / PING */
  SC_ST_AUTHED = 4,   /* authenticated */
  SC_ST_EXPIRED = 5,  /* token expired: RENEW within the grace period */
  SC_ST_CLOSING = 6   /* condemned: CLOSE emitted, waiting for conn_closed */
};

/* Token bucket in milli-units (so integer refill is exact enough). */
typedef struct sc_bucket {
  uint64_t level;
  uint64_t last_ms;
} sc_bucket;

/* Intrusive hash-map entry; the key lives in the owning object. */
typedef struct sc_mapent {
  struct sc_mapent *next;
  const uint8_t *key;
  uint64_t hash;
  uint32_t klen;
} sc_mapent;

typedef struct sc_map {
  sc_mapent **b;
  uint32_t nb; /* power of two */
  uint32_t n;
} sc_map;

/* Output queue chunk: bytes [head, tail) are pending. */
typedef struct sc_chunk {
  struct sc_chunk *next;
  uint32_t cap, head, tail;
  uint8_t data[];
} sc_chunk;

/* What one connection keeps in the locked slab. */
typedef struct sc_conn_secrets {
  union {
    sc_noise_handshake hs; /* until message 3 */
    sc_noise_transport t;  /* after */
  } u;
  uint8_t hh[SC_NOISE_HASHLEN]; /* final handshake hash (proofs) */
} sc_conn_secrets;

struct sc_route;

typedef struct sc_conn {
  uint64_t id;
  uint32_t slot;     /* slab slot = index in srv->conns */
  uint32_t heap_idx; /* position in the deadline heap, UINT32_MAX if none */
  uint32_t src_idx;  /* registration bucket */
  uint8_t state;     /* enum sc_conn_state */
  uint8_t registered, want_write, in_dir, doomed, had_transport;
  uint8_t name_len;
  uint16_t token_len;
  uint16_t nroutes, routes_cap;
  uint64_t heap_key;
  uint64_t opened_ms, last_rx_ms, frame_start_ms, exp_ms, login_ms;
  sc_deframer df;
  uint8_t uid[SECCHAT_UID_BYTES];
  uint8_t rs[SC_NOISE_DHLEN]; /* Noise remote static (= token dh_pk) */
  char *token;                /* NUL-terminated, token_len bytes */
  char *name;                 /* name_len bytes */
  struct sc_route **routes;
  sc_mapent uid_ent, name_ent;
  sc_chunk *qhead, *qtail;
  size_t qbytes;     /* pending output, the open message counted as sealed */
  uint32_t open_off; /* open (unsealed) message: its prefix in qtail->data */
  uint32_t open_used; /* its record bytes; 0 = none open */
  struct sc_conn *doom_next;
  sc_bucket b_group, b_direct, b_ctrl, b_fanout;
} sc_conn;

/* A member of a route on another worker (cluster mode). */
typedef struct sc_rmember {
  uint8_t uid[SECCHAT_UID_BYTES];
  uint16_t worker;
} sc_rmember;

typedef struct sc_route {
  sc_mapent ent; /* first: a map entry is the route */
  uint8_t id[SECCHAT_ROUTE_ID_BYTES];
  uint32_t n, cap;   /* local members */
  sc_conn **members;
  uint32_t rn, rcap; /* members on other workers */
  sc_rmember *rmembers;
} sc_route;

/* An online user on another worker (cluster mode): enough for LOOKUP, for
 * routing DIRECT and for one-connection-per-uid across workers. */
typedef struct sc_rdir {
  sc_mapent uid_ent, name_ent;
  uint8_t uid[SECCHAT_UID_BYTES];
  uint16_t worker;
  uint8_t name_len;
  uint16_t token_len;
  uint64_t login_ms;
  char *token; /* NUL-terminated */
  char *name;
} sc_rdir;

/* A fanout job waiting for the host. */
typedef struct sc_job {
  struct sc_job *next;
  size_t len, cap;
  uint8_t data[];
} sc_job;

typedef struct sc_evq_item {
  uint64_t conn;
  uint8_t type;
  uint8_t flush;
  int32_t reason;
} sc_evq_item;

#define SC_LOG_RING 512u
typedef struct sc_logrec {
  const char *event;
  uint64_t conn, value;
  int32_t code, detail;
  uint8_t level, has_uid, name_len;
  uint8_t uid[SECCHAT_UID_BYTES];
  char name[SC_MAX_NAME_BYTES];
} sc_logrec;

#define SC_SRC_BUCKETS 4096u /* registration buckets (direct-mapped) */
#define SC_CHUNK_SMALL 2048u /* first chunk of an empty queue */
#define SC_CHUNK_BIG 16384u
#define SC_CHUNK_POOL 64u
#define SC_EVQ_MIN 256u        /* event queue items (its idle size) */
#define SC_MAP_MIN_BUCKETS 64u /* hash map buckets (its idle size) */

struct secchat_server {
  secchat_server_config cfg;
  char name[SECCHAT_ISSUER_MAX_BYTES + 1];
  const secchat_server_key *key;
  secchat_token_verifier *verifier;
  char pub_pem[SECCHAT_TOKEN_KEY_PEM_MAX];
  size_t pub_pem_len;
  uint8_t noise_pk[SC_NOISE_DHLEN];
  uint8_t *noise_sk;  /* sodium_malloc'd */
  uint8_t hkey[16];   /* SipHash key for the maps (peer-chosen keys) */
  uint64_t now;
  int freeing;        /* secchat_server_free: no more output */

  sc_slab slab;
  sc_conn **conns;    /* by slot */
  uint32_t *gens;     /* generation per slot */
  uint32_t nlive, nauthed;

  sc_conn **heap;
  uint32_t heap_n;

  sc_map routes, uids, names;
  uint64_t nroutes;
  sc_map ruids, rnames; /* remote directory (cluster) */
  sc_job *jobs, *jobs_tail, *cur_job;

  sc_evq_item *evq;
  uint32_t evq_cap, evq_head, evq_n;
  uint32_t evq_peak;  /* most items queued since the host last drained */
  sc_logrec *logs;
  uint32_t log_head, log_n;
  sc_logrec cur_log;

  sc_conn *doomed;    /* condemned, detach pending */

  uint8_t *rx;        /* decrypted plaintext, SECCHAT_MAX_TRANSPORT_PLAINTEXT */
  uint8_t *fan;       /* padded plaintext made once for many recipients */
  uint8_t *ctl;       /* body of a single reply */
  char *tokbuf;       /* issued token, SECCHAT_MAX_TOKEN_BYTES + 1 */

  sc_chunk *pool_small[SC_CHUNK_POOL], *pool_big[SC_CHUNK_POOL];
  uint32_t npool_small, npool_big;

  sc_bucket *src;     /* SC_SRC_BUCKETS registration buckets */

  secchat_server_stats st;
  uint64_t mem;       /* heap bytes allocated by the server */
};

/* ---- shared between server.c and server_route.c ------------------------ */
void *sc_srv_alloc(secchat_server *srv, size_t n);
void *sc_srv_calloc(secchat_server *srv, size_t n);
void sc_srv_release(secchat_server *srv, void *p, size_t n);

uint64_t sc_srv_hash(const secchat_server *srv, const uint8_t *key, size_t len);
void sc_map_insert(secchat_server *srv, sc_map *m, sc_mapent *e);
void sc_map_remove(sc_map *m, sc_mapent *e);
/* First entry with this key after `after` (NULL: from the start). */
sc_mapent *sc_map_find(const sc_map *m, const uint8_t *key, uint32_t klen, uint64_t h,
                       sc_mapent *after);

/* Bucket: take cost units if available. rate/burst 0: unlimited. */
int sc_bucket_take(sc_bucket *b, uint64_t rate, uint64_t burst, uint64_t period_ms, uint64_t cost,
                   uint64_t now);

/* Queue one encoded frame body to c: appended as a record to c's open
 * transport message, which is sealed (padded, encrypted in place) when the
 * host asks for output or when the next record does not fit. 0, or an error
 * after which c may be condemned (slow consumer). */
int sc_srv_send_body(secchat_server *srv, sc_conn *c, const uint8_t *body, size_t len);
int sc_srv_send_frame(secchat_server *srv, sc_conn *c, const sc_frame *f);
/* Fanout: encode f once into srv->fan and return its length or a codec
 * error; callers then sc_srv_send_body(srv->fan) to each recipient (a copy
 * into its open message; the AEAD is per message, not per recipient frame).
 * srv->fan stays valid until the next sc_srv_fan_frame: nothing on the send
 * path re-encodes into it (condemned connections are detached later, in
 * settle()). */
secchat_ssize sc_srv_fan_frame(secchat_server *srv, const sc_frame *f);
void sc_srv_send_error(secchat_server *srv, sc_conn *c, uint64_t code, uint64_t ref);
void sc_srv_condemn(secchat_server *srv, sc_conn *c, int bye_reason, int flush, int cause);
void sc_srv_log(secchat_server *srv, int level, const char *event, const sc_conn *c, int code,
                int detail, uint64_t value);

/* server_fanout.c (cluster mode; every function is a no-op otherwise) */
void sc_fan_route(secchat_server *srv, const sc_route *r, const uint8_t *uid, int online);
void sc_fan_deliver(secchat_server *srv, const sc_route *r, const uint8_t *body, size_t len);
void sc_fan_direct(secchat_server *srv, const uint8_t *to_uid, const uint8_t *body, size_t len);
void sc_fan_online(secchat_server *srv, const sc_conn *c);
void sc_fan_offline(secchat_server *srv, const sc_conn *c);
sc_rdir *sc_rdir_find_uid(const secchat_server *srv, const uint8_t *uid);
void sc_fan_free(secchat_server *srv); /* remote directory and pending jobs */
int sc_srv_fanout_apply(secchat_server *srv, const uint8_t *job, size_t len);
/* A remote-only route with no members left anywhere is destroyed. */
void sc_route_gc(secchat_server *srv, sc_route *r);
sc_route *sc_route_find(const secchat_server *srv, const uint8_t *id);
sc_route *sc_route_get(secchat_server *srv, const uint8_t *id); /* find or create */
int sc_route_grow_remote(secchat_server *srv, sc_route *r);
void sc_route_presence(secchat_server *srv, sc_route *r, const sc_conn *except,
                       const uint8_t *uid, int online);
sc_conn *sc_dir_find_uid(const secchat_server *srv, const uint8_t *uid);
int sc_srv_map_init(secchat_server *srv, sc_map *m);
void sc_srv_map_free(secchat_server *srv, sc_map *m);

/* server_route.c */
void sc_route_open(secchat_server *srv, sc_conn *c, const uint8_t *route_id);
void sc_route_close(secchat_server *srv, sc_conn *c, const uint8_t *route_id);
void sc_route_group_send(secchat_server *srv, sc_conn *c, const sc_frame *f);
void sc_route_direct(secchat_server *srv, sc_conn *c, const sc_frame *f);
void sc_route_lookup(secchat_server *srv, sc_conn *c, const sc_frame *f);
/* Directory: enter c (replacing another connection of the same uid), or
 * take it out. */
void sc_dir_enter(secchat_server *srv, sc_conn *c);
void sc_dir_leave(secchat_server *srv, sc_conn *c);
/* Leave every route (PRESENCE offline to the others). */
void sc_route_leave_all(secchat_server *srv, sc_conn *c);

#endif
