/*
 * secchat/server.h: the relay's sans-I/O server core (included by
 * secchat/secchat.h; do not include directly). docs/relay.md is the
 * normative description (state table, limits, deadlines, events).
 *
 * One secchat_server serves the connections of one worker thread. It never
 * touches a socket or a clock: the host (chatd) accepts connections, feeds
 * received bytes with secchat_server_conn_recv(), writes what
 * secchat_server_conn_output() describes and reports progress with
 * secchat_server_conn_consumed(), drains events with
 * secchat_server_next_event() after every call, and drives deadlines with
 * secchat_server_next_timeout() / secchat_server_on_timeout().
 *
 * Time: every now_ms is wall-clock Unix time in milliseconds (tokens carry
 * Unix times). The server never lets its clock go backwards: a smaller
 * now_ms than the last one is treated as the last one.
 *
 * Connection ids: nonzero 64-bit handles, unique over the server's life (a
 * slot index plus a generation). An id stays valid from
 * secchat_server_conn_open() until the host calls
 * secchat_server_conn_closed() for it; later calls with it return
 * SECCHAT_ERR_NOT_FOUND.
 *
 * Closing: the server never closes sockets. When it decides to end a
 * connection it stops reading it, takes it off every route and the
 * directory, and emits one SECCHAT_SERVER_EV_CLOSE (with a flush flag: write
 * the pending output, e.g. a final BYE, before closing). The host then
 * closes the socket and calls secchat_server_conn_closed(). When the
 * socket dies first, the host just calls secchat_server_conn_closed().
 *
 * Errors: negative SECCHAT_ERR_* codes; nothing a peer sends makes a call
 * fail (peer misbehaviour ends that connection, reported through events).
 * SECCHAT_ERR_NOMEM from a call means that operation did not happen.
 *
 * Threads: one thread at a time per server; distinct servers are
 * independent (they share only the borrowed, immutable token key).
 */
#ifndef SECCHAT_SERVER_H
#define SECCHAT_SERVER_H

#ifndef SECCHAT_SECCHAT_H
#error "include <secchat/secchat.h>, not <secchat/server.h>"
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef struct secchat_server secchat_server;
typedef struct secchat_server_key secchat_server_key; /* <secchat/token.h> */

/* ---- Configuration --------------------------------------------------------
 * Fill with secchat_server_config_init() (defaults of docs/relay.md, which
 * follow the hardening norms of the security design), then override. For
 * every rate: 0 disables that limit. */
typedef struct secchat_server_config {
  uint32_t struct_size;                 /* sizeof(secchat_server_config) */
  const char *name;                     /* server name = token issuer (required) */
  const secchat_server_key *token_key;  /* borrowed; must outlive the server */
  const uint8_t *noise_secret_key;      /* 32-byte X25519 secret, copied */
  uint32_t token_ttl_s;                 /* issued tokens; 0 = 7 days */
  uint32_t worker_id;                   /* 0..65535: logs and fanout jobs */
  uint32_t cluster;                     /* 1: several workers share users and
                                           routes through fanout jobs */
  uint32_t max_conns;                   /* connections on this server */
  uint32_t token_cache_entries;         /* verified-token cache (0 = none) */

  /* deadlines (milliseconds) */
  uint32_t handshake_timeout_ms;        /* connect -> authenticated: 10 s */
  uint32_t frame_timeout_ms;            /* a started frame completes: 30 s */
  uint32_t idle_timeout_ms;             /* nothing received: 300 s */
  uint32_t token_grace_ms;              /* after expiry, to RENEW: 60 s */

  /* counts and sizes */
  uint32_t max_routes_per_conn;         /* 256 */
  uint32_t max_conns_per_route;         /* 256 (chat size) */
  uint32_t max_output_bytes;            /* per-connection queue: 1 MiB
                                           (at least 2 x 65539) */

  /* token buckets: rate per second and burst (count of frames) */
  uint32_t group_send_rate, group_send_burst;   /* 100/s, 200 */
  uint32_t direct_rate, direct_burst;           /* 50/s, 200 */
  uint32_t control_rate, control_burst;         /* other frames: 50/s, 300 */
  /* fanout budget: blob bytes x recipients per sender per second */
  uint32_t fanout_bytes_rate, fanout_bytes_burst; /* 16 MiB/s, 32 MiB */
  /* registrations per source address per minute, burst */
  uint32_t register_per_min, register_burst;    /* 10/min, 10 */
  uint32_t reserved[8];

  /* Registration admission shared by several servers (optional). A host
   * running N servers (workers) over one address space sets it so that
   * register_per_min holds for the whole process, not N times over: with
   * per-server buckets, a source whose connections are spread over the
   * workers would get N x the budget. NULL: this server keeps its own
   * per-source buckets (register_per_min, register_burst).
   * Non-NULL: called once for every REGISTER that reaches the limit check
   * (well-formed, on a connection that has not registered), before the
   * token is issued, with the connection's id and now_ms; it returns 1 to
   * admit (and counts the registration against conn's source) or 0 to
   * refuse (ERROR{rate_limited}, a "limit" log record, limit_register).
   * The server's own buckets and register_per_min/register_burst are then
   * unused. It runs inside secchat_server_conn_recv() on the calling
   * thread and must not call back into this server; thread safety across
   * servers is the host's business (docs/chatd.md, "Limits across
   * workers"). */
  int (*register_admit)(void *ctx, uint64_t conn, uint64_t now_ms);
  void *register_admit_ctx;
} secchat_server_config;

/* Fill *cfg with the defaults (struct_size set, name/keys NULL). */
SECCHAT_API void secchat_server_config_init(secchat_server_config *cfg);

/* Create a server. Requires secchat_init(). Errors:
 * SECCHAT_ERR_INVALID_ARGUMENT (NULL, struct_size too small, missing name or
 * key, a zero limit that must be positive), SECCHAT_ERR_BAD_KEY (the Noise
 * secret gives a low-order public key), SECCHAT_ERR_NOMEM. */
SECCHAT_API int secchat_server_new(secchat_server **out, const secchat_server_config *cfg);

/* Wipe every secret and free everything; NULL-safe. Connections are
 * dropped without events. */
SECCHAT_API void secchat_server_free(secchat_server *srv);

/* The server's Noise static public key (32 bytes). */
SECCHAT_API void secchat_server_noise_public_key(const secchat_server *srv, uint8_t out[32]);

/* ---- Server keys and fingerprint -------------------------------------------
 * The relay has two public keys: the Noise static X25519 key (transport)
 * and the ES256 token key. The server fingerprint is ONE hash over both, the
 * string users pin or compare out of band (docs/relay.md, "Fingerprint"):
 *   fp = BLAKE2b-256("secchat/server-fpr/v1" || 0x00 || noise_pk (32) ||
 *                    token key fingerprint (32, BLAKE2b-256 of the DER SPKI))
 * computed by secchat_server_fingerprint() (declared in <secchat/client.h>:
 * clients compute it from handshake message 2), shown as 52 characters of
 * lowercase RFC 4648 base32 without padding. */
#ifndef SECCHAT_SERVER_FINGERPRINT_BYTES
#define SECCHAT_SERVER_FINGERPRINT_BYTES 32u
#endif
#define SECCHAT_SERVER_FINGERPRINT_STRING_BYTES 53u /* 52 chars + NUL */

/* A new Noise static key pair (secret from the library's random source).
 * The caller stores sk as a secret. Returns 0 or SECCHAT_ERR_INVALID_ARGUMENT. */
SECCHAT_API int secchat_server_noise_keygen(uint8_t sk[32], uint8_t pk[32]);

/* The public key of a Noise static secret key; SECCHAT_ERR_BAD_KEY if it
 * is unusable (low-order result). */
SECCHAT_API int secchat_server_noise_public(const uint8_t sk[32], uint8_t pk[32]);

/* The text form of a server fingerprint into out (cap >=
 * SECCHAT_SERVER_FINGERPRINT_STRING_BYTES). Errors:
 * SECCHAT_ERR_INVALID_ARGUMENT, SECCHAT_ERR_BUFFER_TOO_SMALL. */
SECCHAT_API int secchat_server_fingerprint_string(const uint8_t fp[SECCHAT_SERVER_FINGERPRINT_BYTES],
                                                  char *out, size_t cap);

/* ---- Connections ---------------------------------------------------------- */

/* A new TCP connection. source/source_len: the peer's address bytes (any
 * stable encoding, at most 64 bytes; used only for the per-source
 * registration limit, never logged). Errors: SECCHAT_ERR_TOO_MANY (max_conns
 * reached: the host should close the socket), SECCHAT_ERR_NOMEM,
 * SECCHAT_ERR_INVALID_ARGUMENT. */
SECCHAT_API int secchat_server_conn_open(secchat_server *srv, uint64_t *conn,
                                         const uint8_t *source, size_t source_len,
                                         uint64_t now_ms);

/* Bytes received on conn. Consumes all of them (returns len) unless an
 * argument is bad; bytes after the connection was condemned are discarded.
 * Errors: SECCHAT_ERR_NOT_FOUND (unknown id), SECCHAT_ERR_INVALID_ARGUMENT. */
SECCHAT_API secchat_ssize secchat_server_conn_recv(secchat_server *srv, uint64_t conn,
                                                   const uint8_t *in, size_t len,
                                                   uint64_t now_ms);

/* One contiguous run of pending output (layout-compatible with POSIX
 * struct iovec on the usual ABIs; chatd checks that at compile time). */
typedef struct secchat_iovec {
  const void *base;
  size_t len;
} secchat_iovec;

/* Describe up to max runs of pending output in order, without copying. The
 * memory stays valid until the next call on the server. Frames queued since
 * the last call travel packed in one transport message (docs/protocol.md
 * 1.3), encrypted here: call it once per connection per loop pass, after
 * the pass's input was fed, so that a pass costs one AEAD per connection
 * rather than one per frame. Returns the number of runs (0: nothing
 * pending) or SECCHAT_ERR_NOT_FOUND. */
SECCHAT_API int secchat_server_conn_output(secchat_server *srv, uint64_t conn,
                                           secchat_iovec *iov, int max);

/* Bytes pending on conn (0 for an unknown id), exactly what the next
 * secchat_server_conn_output() describes. */
SECCHAT_API size_t secchat_server_conn_pending(const secchat_server *srv, uint64_t conn);

/* n bytes of the output were written. Errors: SECCHAT_ERR_NOT_FOUND,
 * SECCHAT_ERR_INVALID_ARGUMENT (n > pending). */
SECCHAT_API int secchat_server_conn_consumed(secchat_server *srv, uint64_t conn, size_t n);

/* The socket is gone (after a CLOSE event, or on its own: EOF, reset).
 * Frees the connection; the route's other members get PRESENCE offline.
 * Errors: SECCHAT_ERR_NOT_FOUND. */
SECCHAT_API int secchat_server_conn_closed(secchat_server *srv, uint64_t conn, uint64_t now_ms);

/* Host-initiated end of every connection (shutdown): each gets BYE{shutdown}
 * and a CLOSE event with flush. */
SECCHAT_API void secchat_server_shutdown(secchat_server *srv, uint64_t now_ms);

/* ---- Events --------------------------------------------------------------- */
typedef enum secchat_server_event_type {
  SECCHAT_SERVER_EV_NONE = 0,
  SECCHAT_SERVER_EV_WANT_WRITE = 1, /* conn has output (it was empty before) */
  SECCHAT_SERVER_EV_CLOSE = 2,      /* close conn (flush first if flush) */
  SECCHAT_SERVER_EV_LOG = 3,        /* a structured log record */
  SECCHAT_SERVER_EV_FANOUT = 4      /* job for every other worker (cluster) */
} secchat_server_event_type;

typedef enum secchat_server_log_level {
  SECCHAT_LOG_ERROR = 0,
  SECCHAT_LOG_WARNING = 1,
  SECCHAT_LOG_INFO = 2,
  SECCHAT_LOG_DEBUG = 3
} secchat_server_log_level;

/* Pointers are borrowed until the next call on the server. Log records
 * carry no content, token, key or address; `name` is user-controlled (the
 * host escapes it) and `uid` identifies a user (the host hashes it unless
 * configured otherwise). */
typedef struct secchat_server_event {
  uint32_t struct_size;
  uint32_t type;          /* secchat_server_event_type */
  uint64_t conn;          /* WANT_WRITE, CLOSE, LOG (0: not about one conn) */
  /* CLOSE */
  int32_t reason;         /* BYE reason code sent (docs/relay.md), 0 if none */
  uint32_t flush;         /* 1: write pending output before closing */
  /* LOG */
  uint32_t level;         /* secchat_server_log_level */
  const char *event;      /* static name: "auth_ok", "limit", ... */
  int32_t code;           /* SECCHAT_ERR_* cause, 0 if none */
  int32_t detail;         /* event-specific: token reason, wire code, frame type */
  uint32_t has_uid;
  uint8_t uid[20];
  const char *name;       /* NOT NUL-terminated; name_len bytes (may be 0) */
  size_t name_len;
  uint64_t value;         /* event-specific number (see docs/relay.md) */
  /* FANOUT: pass a copy of job[0, job_len) to secchat_server_fanout_in()
   * of every other worker (docs/relay.md, "Workers") */
  const uint8_t *job;
  size_t job_len;
  uint64_t reserved[4];
} secchat_server_event;

/* Next pending event: 1 (filled), 0 (none). SECCHAT_ERR_INVALID_ARGUMENT. */
SECCHAT_API int secchat_server_next_event(secchat_server *srv, secchat_server_event *ev);

/* Apply a fanout job emitted by another worker's server (in any order
 * relative to local calls, but jobs of one origin in their order). Jobs
 * with this server's own worker_id are ignored. Errors:
 * SECCHAT_ERR_INVALID_STATE (cluster is 0), SECCHAT_ERR_PROTOCOL or a
 * decoding error (malformed job: nothing applied), SECCHAT_ERR_NOMEM. */
SECCHAT_API int secchat_server_fanout_in(secchat_server *srv, const uint8_t *job, size_t len,
                                         uint64_t now_ms);

/* ---- Deadlines ------------------------------------------------------------ */

/* Earliest pending deadline (absolute now_ms scale), UINT64_MAX if none.
 * It may be earlier than any real deadline: a deadline that moved later
 * (received data) is re-filed only when its old time comes due, and
 * secchat_server_on_timeout() then does nothing but that. */
SECCHAT_API uint64_t secchat_server_next_timeout(const secchat_server *srv);

/* Run every deadline that is due at now_ms. */
SECCHAT_API void secchat_server_on_timeout(secchat_server *srv, uint64_t now_ms);

/* ---- Metrics -------------------------------------------------------------- */
typedef struct secchat_server_stats {
  uint32_t struct_size;
  uint32_t pad0;
  uint64_t conns_open, conns_authenticated, conns_total, routes;
  uint64_t frames_in, frames_out, bytes_in, bytes_out;
  uint64_t deliveries, relayed, directs;
  uint64_t handshakes_ok, handshakes_failed;
  uint64_t registrations, auth_ok, renewals;
  uint64_t auth_failed_token, auth_failed_proof, auth_failed_expired, auth_failed_other;
  uint64_t limit_rate, limit_fanout, limit_routes, limit_route_full, limit_register;
  uint64_t slow_consumers, protocol_errors, timeouts_handshake, timeouts_frame, timeouts_idle;
  uint64_t token_expired_closed, replaced, drops_log;
  uint64_t fanout_out, fanout_in, fanout_bad, drops_fanout;
  uint64_t mem_bytes;   /* bytes the server allocated (heap + locked slab) */
  uint64_t slab_bytes;  /* of which locked secret slab */
  uint64_t pool_bytes;  /* of which output-queue chunks kept for reuse (at most 64 of
                           16 KiB and 64 of 2 KiB, plus headers) */
  uint64_t reserved[7];
} secchat_server_stats;

SECCHAT_API void secchat_server_get_stats(const secchat_server *srv, secchat_server_stats *st);

#ifdef __cplusplus
}
#endif

#endif /* SECCHAT_SERVER_H */
