/* codec.h: the relay frame layer (internal): TCP deframing, transport
 * padding, and the typed frame catalogue. docs/protocol.md is normative;
 * this header mirrors it.
 *
 * Layers, outermost first:
 *   TCP stream  = { u32be len || message }*        sc_deframer
 *   message     = Noise handshake or transport message, 1..65535 bytes
 *   plaintext   = { u16be body_len || body }+ || zeros   sc_records_*
 *   body        = canonical msgpack [type, fields...] sc_frame_decode/encode
 *
 * Nothing here allocates except the deframer (at most one buffer of the
 * declared frame size, see below). All functions are reentrant; one object
 * is used by one thread at a time. */
#ifndef SC_CODEC_H
#define SC_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <secchat/secchat.h>

/* ---- Streaming deframer -----------------------------------------------------
 * Splits a TCP byte stream into length-prefixed messages. Input may arrive
 * in any chunking: the sequence of yielded messages and errors depends only
 * on the concatenated bytes.
 *
 * Memory: nothing while idle or while the 4-byte prefix is incomplete. The
 * prefix is checked first (0 -> SECCHAT_ERR_FRAME_EMPTY, > max ->
 * SECCHAT_ERR_FRAME_TOO_LARGE), so a hostile prefix never causes an
 * allocation. If a whole message is present in one input chunk it is
 * yielded in place (zero copy, no allocation). Otherwise one buffer of
 * exactly the declared size is allocated and released at the start of the
 * next call after the message was yielded (or by sc_deframer_free): per
 * connection, at most max bytes, and only while a message is split across
 * reads.
 *
 * Errors are sticky: after any error every later call returns it again;
 * the connection must be closed. */
typedef struct sc_deframer {
  size_t max;       /* largest accepted message */
  uint8_t hdr[4];   /* prefix bytes seen so far */
  size_t hdr_len;   /* 0..4 */
  size_t need;      /* declared message size (valid when hdr_len == 4) */
  size_t have;      /* message bytes buffered in buf */
  uint8_t *buf;     /* NULL unless a message is split across calls */
  bool yielded;     /* buf holds a message already handed out */
  int err;          /* sticky error, 0 if none */
} sc_deframer;

/* max: largest message (1..SECCHAT_MAX_WIRE_MESSAGE); 0 means
 * SECCHAT_MAX_WIRE_MESSAGE. Returns 0 or SECCHAT_ERR_INVALID_ARGUMENT. */
int sc_deframer_init(sc_deframer *d, size_t max);

/* Release the buffer, if any. The deframer may be re-initialised. */
void sc_deframer_free(sc_deframer *d);

/* Consume bytes from in[0, len) up to the end of the next complete
 * message, and no further. Returns the number of bytes consumed (0 only if
 * len == 0) or a negative error (SECCHAT_ERR_FRAME_EMPTY,
 * SECCHAT_ERR_FRAME_TOO_LARGE, SECCHAT_ERR_NOMEM). If a message completed,
 * *msg / *msg_len describe it, else *msg is NULL. The message is borrowed:
 * it points into `in` or into the deframer's buffer and stays valid until
 * the next call on the deframer (and while `in` is unchanged). Call again
 * with the rest of the input until it is consumed: coalesced messages come
 * out one per call, in order; a trailing partial one stays pending. */
secchat_ssize sc_deframer_feed(sc_deframer *d, const uint8_t *in, size_t len,
                               const uint8_t **msg, size_t *msg_len);

/* true if part of a message (prefix or payload) has been received but the
 * message is not complete: at end of stream this is a truncated frame. */
bool sc_deframer_in_progress(const sc_deframer *d);

/* Write the 4-byte big-endian prefix for a message of len bytes. */
void sc_frame_prefix(uint8_t out[4], uint32_t len);

/* ---- Records and padding ---------------------------------------------------
 * plaintext = record+ || zero bytes         record = u16be body_len || body
 * with body_len >= 1 (a zero length would read as padding) and total size
 * sc_pad_size(used), used = the sum of the records' sizes (2 + body_len
 * each): used rounded up to a multiple of SECCHAT_TRANSPORT_PAD_BLOCK,
 * capped at SECCHAT_MAX_TRANSPORT_PLAINTEXT. The size is a function of the
 * records, so exactly one plaintext is valid per sequence of bodies. A
 * sender may pack several frames into one transport message (the relay
 * packs what it has for a connection in one loop pass: one AEAD instead of
 * one per frame, docs/protocol.md 1.3); with one record this is the
 * single-frame plaintext of earlier drafts, unchanged. */

/* Frames a client message may pack: the relay refuses more (protocol
 * error, close). A record can be 3 bytes, so without a cap one 64 KiB
 * message would make the relay decode and answer ~21,000 frames. With it a
 * message costs the relay at most 64 frames' work (measured: 64 rate-limited
 * PINGs in one 532-byte message ~11 us, one PING per 276-byte message
 * ~2.2 us: ~2.6x the relay CPU per attacker byte, bounded, and each frame
 * still draws on its connection's buckets). Relay -> client messages have
 * no such cap (the relay packs what it has, bounded by its queue chunks). */
#define SC_MAX_RECORDS_IN 64

/* Padded size for `used` record bytes, or 0 if used is 0 or larger than
 * SECCHAT_MAX_TRANSPORT_PLAINTEXT. */
size_t sc_pad_size(size_t used);

/* Padded size of a single-record plaintext holding a body of len bytes, or 0
 * if len is 0 or > SECCHAT_MAX_FRAME_BODY. */
size_t sc_padded_size(size_t body_len);

/* Write body[0, len) as one record at out (2 + len bytes; cap is the room).
 * Returns 2 + len, SECCHAT_ERR_TOO_LONG (len 0 or > SECCHAT_MAX_FRAME_BODY)
 * or SECCHAT_ERR_BUFFER_TOO_SMALL. */
secchat_ssize sc_record_put(uint8_t *out, size_t cap, const uint8_t *body, size_t len);

/* Write the single-record padded plaintext of body[0, len) to out (cap
 * bytes). Returns the plaintext size, SECCHAT_ERR_TOO_LONG (len 0 or >
 * SECCHAT_MAX_FRAME_BODY) or SECCHAT_ERR_BUFFER_TOO_SMALL. out and body may
 * not overlap. */
secchat_ssize sc_pad(uint8_t *out, size_t cap, const uint8_t *body, size_t len);

/* Iterator over the records of a padded plaintext (zero copy). */
typedef struct sc_records {
  const uint8_t *pt;
  size_t end; /* bytes used by records */
  size_t off; /* next record */
} sc_records;

/* Check a whole padded plaintext before anything in it is used: one or more
 * records, each inside the plaintext, then only zero bytes, and a total
 * size of sc_pad_size(used). Returns the number of records (>= 1) and sets
 * up r, or SECCHAT_ERR_BAD_PADDING. */
int sc_records_open(sc_records *r, const uint8_t *pt, size_t len);

/* The next body of a checked plaintext: 1 with *body / *body_len set, or 0
 * after the last one. */
int sc_records_next(sc_records *r, const uint8_t **body, size_t *body_len);

/* The body of a plaintext that must hold exactly one record. Returns 0 or
 * SECCHAT_ERR_BAD_PADDING (as sc_records_open, or more than one record). */
int sc_unpad(const uint8_t *pt, size_t len, const uint8_t **body, size_t *body_len);

/* ---- Frame catalogue --------------------------------------------------------
 * body = [type, fields...]: a canonical msgpack array, arrays only. */
typedef enum sc_frame_type {
  /* client -> relay */
  SC_FRAME_REGISTER = 1,    /* [1, name, sig_pk, dh_pk, dh_sig, proof] */
  SC_FRAME_AUTH = 2,        /* [2, token, proof] */
  SC_FRAME_RENEW = 3,       /* [3, proof] */
  SC_FRAME_LOOKUP_NAME = 4, /* [4, name] */
  SC_FRAME_LOOKUP_UID = 5,  /* [5, uid] */
  SC_FRAME_ROUTE_OPEN = 6,  /* [6, route_id] */
  SC_FRAME_ROUTE_CLOSE = 7, /* [7, route_id] */
  SC_FRAME_GROUP_SEND = 8,  /* [8, ref, route_id, blob] */
  SC_FRAME_DIRECT = 9,      /* [9, ref, to_uid, blob] */
  SC_FRAME_PING = 10,       /* [10, nonce] */
  /* relay -> client */
  SC_FRAME_TOKEN = 64,          /* [64, token] */
  SC_FRAME_AUTH_OK = 65,        /* [65, uid, expires_s] */
  SC_FRAME_LOOKUP_RESULT = 66,  /* [66, [token...]] */
  SC_FRAME_DELIVER = 67,        /* [67, route_id, blob] */
  SC_FRAME_DIRECT_DELIVER = 68, /* [68, from_uid, from_token, blob] */
  SC_FRAME_PRESENCE = 69,       /* [69, route_id, uid, online] */
  SC_FRAME_RELAYED = 70,        /* [70, ref] */
  SC_FRAME_ERROR = 71,          /* [71, code, ref] */
  SC_FRAME_PONG = 72,           /* [72, nonce] */
  SC_FRAME_BYE = 73             /* [73, reason] */
} sc_frame_type;

/* Codes carried by ERROR.code (a peer may send codes unknown to us: treat
 * them as SC_WIRE_PROTOCOL). */
typedef enum sc_wire_error {
  SC_WIRE_PROTOCOL = 1,          /* malformed or unexpected frame */
  SC_WIRE_FRAME_TOO_LARGE = 2,
  SC_WIRE_AUTH_FAILED = 3,       /* token or proof rejected */
  SC_WIRE_TOKEN_EXPIRED = 4,     /* renew within the grace period */
  SC_WIRE_RATE_LIMITED = 5,
  SC_WIRE_TOO_MANY_ROUTES = 6,   /* per-connection route cap */
  SC_WIRE_ROUTE_FULL = 7,        /* per-route connection cap */
  SC_WIRE_UNKNOWN_RECIPIENT = 8, /* DIRECT to a uid not online */
  SC_WIRE_NOT_AUTHENTICATED = 9, /* frame needs AUTH first */
  SC_WIRE_QUEUE_FULL = 10,       /* recipient's queue full: dropped */
  SC_WIRE_VERSION = 11           /* unsupported protocol version */
} sc_wire_error;

/* Codes carried by BYE.reason. */
typedef enum sc_bye_reason {
  SC_BYE_SHUTDOWN = 1,       /* relay is stopping */
  SC_BYE_REPLACED = 2,       /* a newer connection of the same uid */
  SC_BYE_IDLE = 3,           /* idle timeout */
  SC_BYE_PROTOCOL_ERROR = 4, /* follows an ERROR{protocol} */
  SC_BYE_AUTH_TIMEOUT = 5,   /* no AUTH/REGISTER in time */
  SC_BYE_SLOW_CONSUMER = 6,  /* output queue over its cap */
  SC_BYE_TOKEN_EXPIRED = 7   /* not renewed within the grace period */
} sc_bye_reason;

/* Field limits. */
#define SC_MAX_NAME_BYTES 128u

/* Encoded size of msgpack headers (canonical forms), used to derive the
 * blob limits at compile time. */
#define SC_MP_UINT_MAX_BYTES 9u
#define SC_MP_BIN_HDR(n) ((n) <= 0xffu ? 2u : (n) <= 0xffffu ? 3u : 5u)
#define SC_MP_STR_HDR(n) ((n) <= 31u ? 1u : (n) <= 0xffu ? 2u : (n) <= 0xffffu ? 3u : 5u)
#define SC_MP_BIN_SIZE(n) (SC_MP_BIN_HDR(n) + (n))
#define SC_MP_STR_SIZE(n) (SC_MP_STR_HDR(n) + (n))

/* Envelope = frame bytes other than the blob's header and payload, at
 * worst (9-byte ref); the array header and type are 1 byte each. */
#define SC_GROUP_SEND_ENVELOPE \
  (2u + SC_MP_UINT_MAX_BYTES + SC_MP_BIN_SIZE(SECCHAT_ROUTE_ID_BYTES))
#define SC_DELIVER_ENVELOPE (2u + SC_MP_BIN_SIZE(SECCHAT_ROUTE_ID_BYTES))
#define SC_DIRECT_ENVELOPE (2u + SC_MP_UINT_MAX_BYTES + SC_MP_BIN_SIZE(SECCHAT_UID_BYTES))
#define SC_DIRECT_DELIVER_ENVELOPE \
  (2u + SC_MP_BIN_SIZE(SECCHAT_UID_BYTES) + SC_MP_STR_SIZE(SECCHAT_MAX_TOKEN_BYTES))

/* 65517 - 45 - 3 (bin16 header) = 65469: GROUP_SEND is the larger envelope
 * (DELIVER carries no sender uid: 36). */
#define SC_MAX_GROUP_BLOB 65469u
/* 65517 - 4123 - 3 = 61391: DIRECT_DELIVER carries a 4096-byte token. */
#define SC_MAX_DIRECT_BLOB 61391u
/* 15 * (3 + 4096) + 3 = 61488 <= 65517; 16 would need an array16 header
 * and 65589 bytes. */
#define SC_MAX_LOOKUP_TOKENS 15u

typedef struct sc_str {
  const char *p; /* UTF-8 without NUL, NOT NUL-terminated */
  size_t len;
} sc_str;

typedef struct sc_bin {
  const uint8_t *p;
  size_t len;
} sc_bin;

/* A decoded (or to-be-encoded) frame. After sc_frame_decode every pointer
 * points into the body buffer (zero copy): the frame is valid only while
 * that buffer is. Fixed-size fields are pointers to exactly that many bytes
 * (SECCHAT_*_BYTES). Pick the union member by type (ROUTE_OPEN/CLOSE share
 * `route`, PING/PONG share `ping`). */
typedef struct sc_frame {
  sc_frame_type type;
  union {
    struct {
      sc_str name;
      const uint8_t *sig_pk, *dh_pk, *dh_sig, *proof;
    } reg;
    struct {
      sc_str token;
      const uint8_t *proof;
    } auth;
    struct {
      const uint8_t *proof;
    } renew;
    struct {
      sc_str name;
    } lookup_name;
    struct {
      const uint8_t *uid;
    } lookup_uid;
    struct {
      const uint8_t *route_id;
    } route;
    struct {
      uint64_t ref;
      const uint8_t *route_id;
      sc_bin blob;
    } group_send;
    struct {
      uint64_t ref;
      const uint8_t *to_uid;
      sc_bin blob;
    } direct;
    struct {
      uint64_t nonce;
    } ping;
    struct {
      sc_str token;
    } token;
    struct {
      const uint8_t *uid;
      uint64_t expires_s;
    } auth_ok;
    struct {
      size_t count;
      sc_str tokens[SC_MAX_LOOKUP_TOKENS];
    } lookup_result;
    struct {
      const uint8_t *route_id;
      sc_bin blob;
    } deliver;
    struct {
      const uint8_t *from_uid;
      sc_str from_token;
      sc_bin blob;
    } direct_deliver;
    struct {
      const uint8_t *route_id, *uid;
      bool online;
    } presence;
    struct {
      uint64_t ref;
    } relayed;
    struct {
      uint64_t code; /* sc_wire_error */
      uint64_t ref;  /* 0 = not about a particular request */
    } error;
    struct {
      uint64_t reason; /* sc_bye_reason */
    } bye;
  } u;
} sc_frame;

/* Decode a frame body (the output of sc_unpad). Strict: sc_mp_validate
 * first (its errors pass through: TRUNCATED, COUNT_OVERFLOW, DEPTH,
 * NONCANONICAL, TRAILING_BYTES, FORBIDDEN_TYPE, INVALID_BYTE, BAD_UTF8,
 * NUL_IN_STRING), then per schema:
 *   SECCHAT_ERR_FRAME_TOO_LARGE  len > SECCHAT_MAX_FRAME_BODY
 *   SECCHAT_ERR_UNKNOWN_FRAME    type is a uint but not in the catalogue
 *   SECCHAT_ERR_SCHEMA           not an array, type not a uint, wrong
 *                                field count or field type (nil, float,
 *                                negative...), ref == 0
 *   SECCHAT_ERR_BAD_LENGTH       str/bin/list length outside its range
 *                                (keys, signatures, ids: exact)
 * On error *f is unspecified. */
int sc_frame_decode(sc_frame *f, const uint8_t *body, size_t len);

/* Encode f into out (cap bytes). Returns the body size or an error: the
 * output is re-decoded, so any field outside its schema gives the same code
 * sc_frame_decode would (BAD_LENGTH, SCHEMA, BAD_UTF8, NUL_IN_STRING...);
 * SECCHAT_ERR_UNKNOWN_FRAME for an unknown type; SECCHAT_ERR_INVALID_ARGUMENT
 * for a NULL field pointer; SECCHAT_ERR_BUFFER_TOO_SMALL. Encoding is
 * canonical, so decode(encode(f)) == f and encode(decode(b)) == b. */
secchat_ssize sc_frame_encode(const sc_frame *f, uint8_t *out, size_t cap);

/* Name of a frame type ("GROUP_SEND"), or NULL if unknown. For logs. */
const char *sc_frame_type_name(int type);

#endif
