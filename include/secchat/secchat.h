/*
 * secchat/secchat.h: the umbrella header of libsecchat. Consumers include
 * this file only.
 *
 * libsecchat is the sans-I/O core of secchat: it never touches sockets,
 * files, clocks, threads or the environment. The host passes bytes and the
 * current time in, and drains bytes and events out.
 *
 * Conventions (docs/api.md says more):
 *  - Errors: functions return int; 0 (or a count) is success, a negative
 *    SECCHAT_ERR_* code is failure. secchat_strerror() never returns NULL.
 *    After a fatal code (secchat_is_fatal()), the only valid call on that
 *    object is its free function.
 *  - Ownership: the caller owns every buffer it passes in; every object the
 *    library allocates has a matching NULL-safe secchat_*_free() that wipes
 *    secrets before releasing memory. Pointers returned inside events are
 *    borrowed until the next call on the same object.
 *  - Threads: secchat_init(), secchat_version_*(), secchat_strerror() and
 *    the size getters are thread-safe. One object is used by one thread at
 *    a time; distinct objects are independent. No mutable global state
 *    after secchat_init().
 *  - Sizes are also available as functions, for bindings that cannot see
 *    macros (ctypes).
 */
#ifndef SECCHAT_SECCHAT_H
#define SECCHAT_SECCHAT_H

#include <stddef.h>
#include <stdint.h>

#include <secchat/export.h>
#include <secchat/version.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Errors -------------------------------------------------------------
 * One enum; ranges group the classes:
 *    -1 ..  -99  misuse by the caller (bad argument, wrong state, buffer)
 *  -100 .. -199  codec / protocol: bytes from a peer violate the format
 *  -200 .. -299  crypto and authentication
 *  -300 .. -399  limits and policy (rate, size, quota)
 *  -900 .. -999  fatal: the object is unusable, free it
 * Codes are stable: never renumbered, only appended within their range. */
typedef enum secchat_error {
  SECCHAT_OK = 0,

  /* misuse */
  SECCHAT_ERR_INVALID_ARGUMENT = -1,  /* NULL or out-of-range argument */
  SECCHAT_ERR_BUFFER_TOO_SMALL = -2,  /* output buffer cannot hold result */
  SECCHAT_ERR_INVALID_STATE = -3,     /* call not allowed in this state */
  SECCHAT_ERR_NOT_INITIALIZED = -4,   /* secchat_init() was not called */
  SECCHAT_ERR_NOT_FOUND = -5,         /* no such item */
  SECCHAT_ERR_EXISTS = -6,            /* item already exists */
  SECCHAT_ERR_TOO_LONG = -7,          /* input longer than its limit */
  SECCHAT_ERR_AMBIGUOUS = -8,         /* a name matches several identities */

  /* codec / protocol */
  SECCHAT_ERR_PROTOCOL = -100,          /* generic protocol violation */
  SECCHAT_ERR_FRAME_EMPTY = -101,       /* length prefix of 0 */
  SECCHAT_ERR_FRAME_TOO_LARGE = -102,   /* length prefix above the limit */
  SECCHAT_ERR_TRUNCATED = -103,         /* object ends past the input */
  SECCHAT_ERR_COUNT_OVERFLOW = -104,    /* declared count > bytes left */
  SECCHAT_ERR_DEPTH = -105,             /* nesting deeper than the cap */
  SECCHAT_ERR_NONCANONICAL = -106,      /* not the shortest encoding */
  SECCHAT_ERR_TRAILING_BYTES = -107,    /* bytes after the object */
  SECCHAT_ERR_FORBIDDEN_TYPE = -108,    /* map, float, ext, nil... */
  SECCHAT_ERR_SCHEMA = -109,            /* field type/count not per schema */
  SECCHAT_ERR_BAD_UTF8 = -110,          /* string is not valid UTF-8 */
  SECCHAT_ERR_NUL_IN_STRING = -111,     /* string contains U+0000 */
  SECCHAT_ERR_BAD_LENGTH = -112,        /* key/sig/id of the wrong size */
  SECCHAT_ERR_UNKNOWN_FRAME = -113,     /* unknown frame type */
  SECCHAT_ERR_INVALID_BYTE = -114,      /* reserved msgpack byte 0xc1 */
  SECCHAT_ERR_BAD_PADDING = -115,       /* transport padding malformed */
  SECCHAT_ERR_UNEXPECTED_FRAME = -116,  /* frame not allowed in this state */
  SECCHAT_ERR_VERSION = -117,           /* incompatible protocol version */

  /* crypto / authentication */
  SECCHAT_ERR_AUTH = -200,            /* authentication failed (generic) */
  SECCHAT_ERR_DECRYPT = -201,         /* AEAD open failed */
  SECCHAT_ERR_SIGNATURE = -202,       /* signature invalid */
  SECCHAT_ERR_REPLAY = -203,          /* message already seen */
  SECCHAT_ERR_BAD_KEY = -204,         /* malformed or low-order key */
  SECCHAT_ERR_TOO_FAR_AHEAD = -205,   /* skip beyond the ratchet window */
  SECCHAT_ERR_NONCE_EXHAUSTED = -206, /* cipher state out of nonces */
  SECCHAT_ERR_HANDSHAKE = -207,       /* Noise handshake failed */
  SECCHAT_ERR_PASSPHRASE = -208,      /* wrong passphrase or corrupt blob */
  SECCHAT_ERR_KDF_PARAMS = -209,      /* KDF parameters out of bounds */
  SECCHAT_ERR_TOKEN_EXPIRED = -210,   /* token past its expiry */
  SECCHAT_ERR_KEY_MISMATCH = -211,    /* pinned key differs */
  SECCHAT_ERR_IDENTITY_CHANGED = -212,/* pinned name now maps to other uid */

  /* limits / policy */
  SECCHAT_ERR_LIMIT = -300,            /* generic limit exceeded */
  SECCHAT_ERR_RATE_LIMITED = -301,     /* token bucket empty */
  SECCHAT_ERR_QUEUE_FULL = -302,       /* output queue cap reached */
  SECCHAT_ERR_TOO_MANY = -303,         /* count cap (routes, conns...) */
  SECCHAT_ERR_TIMEOUT = -304,          /* deadline passed */

  /* fatal */
  SECCHAT_ERR_NOMEM = -900,            /* allocation failed */
  SECCHAT_ERR_INTERNAL = -901,         /* library bug or broken invariant */
  SECCHAT_ERR_CRYPTO_INIT = -902       /* libsodium/OpenSSL init failed */
} secchat_error;

/* Signed size type for byte-pump returns: >= 0 bytes, < 0 error code. */
typedef int64_t secchat_ssize;

/* ---- Library basics ----------------------------------------------------- */

/* Initialise the library (libsodium included). Call once before anything
 * else; further calls are harmless and return 0. Thread-safe.
 * Returns 0 or SECCHAT_ERR_CRYPTO_INIT. */
SECCHAT_API int secchat_init(void);

/* Runtime version, e.g. "0.1.0". Static string. Thread-safe. */
SECCHAT_API const char *secchat_version_string(void);

/* Runtime version as 0xMMmmpp (see SECCHAT_VERSION_NUMBER). Thread-safe. */
SECCHAT_API uint32_t secchat_version_number(void);

/* English description of an error code. Never NULL; unknown codes give
 * "unknown error". Static string. Thread-safe. */
SECCHAT_API const char *secchat_strerror(int code);

/* Symbolic name of an error code ("SECCHAT_ERR_DECRYPT"), for logs and
 * bindings. Never NULL; unknown codes give "SECCHAT_ERR_UNKNOWN". */
SECCHAT_API const char *secchat_error_name(int code);

/* 1 if the code is fatal (the object must be freed), else 0. */
SECCHAT_API int secchat_is_fatal(int code);

/* ---- Sizes ----------------------------------------------------------------
 * Wire limits, derived in docs/protocol.md ("Size limits"):
 *  - a Noise transport message is at most 65535 bytes;
 *  - its plaintext at most 65535 - 16 (AEAD tag) = 65519 bytes;
 *  - that plaintext is u16 body length + frame body + zero padding, so a
 *    frame body (one msgpack array) is at most 65519 - 2 = 65517 bytes. */
#define SECCHAT_MAX_WIRE_MESSAGE 65535u /* length-prefixed unit on TCP */
#define SECCHAT_FRAME_PREFIX_BYTES 4u   /* big-endian u32 length prefix */
#define SECCHAT_AEAD_TAG_BYTES 16u
#define SECCHAT_MAX_TRANSPORT_PLAINTEXT 65519u
#define SECCHAT_MAX_FRAME_BODY 65517u
#define SECCHAT_TRANSPORT_PAD_BLOCK 256u
#define SECCHAT_MAX_TOKEN_BYTES 4096u

#define SECCHAT_SIGN_PUBLICKEY_BYTES 32u /* Ed25519 public key */
#define SECCHAT_SIGNATURE_BYTES 64u      /* Ed25519 signature */
#define SECCHAT_DH_PUBLICKEY_BYTES 32u   /* X25519 public key */
#define SECCHAT_UID_BYTES 20u            /* BLAKE2b-160(ed25519 pk) */
#define SECCHAT_ROUTE_ID_BYTES 32u
#define SECCHAT_CHAT_ID_BYTES 16u
#define SECCHAT_MSG_ID_BYTES 32u
#define SECCHAT_HASH_BYTES 32u           /* Noise handshake hash (SHA-256) */

SECCHAT_API size_t secchat_max_wire_message(void);
SECCHAT_API size_t secchat_max_frame_body(void);
SECCHAT_API size_t secchat_max_token_bytes(void);
SECCHAT_API size_t secchat_sign_publickey_bytes(void);
SECCHAT_API size_t secchat_signature_bytes(void);
SECCHAT_API size_t secchat_dh_publickey_bytes(void);
SECCHAT_API size_t secchat_uid_bytes(void);
SECCHAT_API size_t secchat_route_id_bytes(void);
SECCHAT_API size_t secchat_chat_id_bytes(void);
SECCHAT_API size_t secchat_msg_id_bytes(void);
SECCHAT_API size_t secchat_hash_bytes(void);

#include <secchat/identity.h>
#include <secchat/token.h>
#include <secchat/server.h>
#include <secchat/client.h>

#ifdef __cplusplus
}
#endif

#endif /* SECCHAT_SECCHAT_H */
