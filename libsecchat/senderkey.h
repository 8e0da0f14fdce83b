/* senderkey.h: group message encryption with sender keys (internal).
 *
 * Each member of a chat sends on its own symmetric chain (protocol.md
 * section 6; byte layouts normative in docs/crypto.md):
 *     MK_i     = crypto_kdf_derive_from_key(32, 1, "SCmsgkey", CK_i)
 *     CK_{i+1} = crypto_kdf_derive_from_key(32, 2, "SCchain_", CK_i)
 * and CK_i is wiped once used. A message is an inner record signed by its
 * author (Ed25519, context "secchat/msg/v1") and encrypted with MK_i
 * (XChaCha20-Poly1305, ad = header bytes || route id).
 *
 * Objects:
 *  - sc_sk_sender: my own chain in one chat and epoch. seal() advances it.
 *  - sc_sk_peer:   what I hold about one other member (the "sender") in one
 *    chat: its pinned signing key, its current chain and up to
 *    SC_SK_MAX_OLD_CHAINS retired ones, and at most SC_SK_MAX_SKIPPED
 *    message keys skipped over (oldest evicted first). open() is
 *    transactional: nothing changes unless decryption, signature and every
 *    binding check succeed.
 * The structs are plain memory owned by the caller; call the matching
 * _wipe() before releasing them (peers own one heap array).
 * No function reads a clock: times are passed in (ms).
 * Not thread-safe per object. */
#ifndef SC_SENDERKEY_H
#define SC_SENDERKEY_H

#include <stddef.h>
#include <stdint.h>

#include <secchat/secchat.h>

#define SC_SK_VERSION 1u
#define SC_SK_MAX_SKIP 1000u      /* forward skip per chain */
#define SC_SK_MAX_SKIPPED 2000u   /* stored skipped keys per peer */
#define SC_SK_MAX_OLD_CHAINS 5u   /* retired chains kept per peer */
#define SC_SK_MAX_ITERATION 0xffffffffu /* a chain never goes beyond */
#define SC_SK_INNER_BLOCK 64u     /* inner length is a multiple of this */
#define SC_SK_MAX_INNER 61440u    /* inner bytes, padding included */
#define SC_SK_MAX_BODY 61184u     /* body bytes: always fits the inner */
#define SC_SK_MAX_BLOB 61696u     /* whole envelope */
#define SC_SK_CHAIN_ID_BYTES 16u
#define SC_SK_NONCE_BYTES 24u
#define SC_SK_MAX_DIST 256u       /* distribution / key request message */

/* Output capacity seal() needs for a body of n bytes (always enough). */
#define SC_SK_SEAL_CAP(n) ((size_t)(n) + 512u)

/* One ratchet step: mk = MK_i and ck_next = CK_{i+1} from ck = CK_i.
 * Outputs must not alias ck. */
void sc_sk_kdf_step(const uint8_t ck[32], uint8_t mk[32], uint8_t ck_next[32]);

/* ---- Parsed forms (pointers borrow the parsed buffer) ------------------ */

typedef struct sc_sk_header {
  uint64_t epoch;
  const uint8_t *sender_uid; /* 20 */
  const uint8_t *chain_id;   /* 16 */
  uint64_t iteration;
  const uint8_t *nonce;      /* 24 */
  const uint8_t *bytes;      /* the header's exact encoding (part of AD) */
  size_t len;
  const uint8_t *ct;         /* AEAD ciphertext with tag */
  size_t ct_len;
} sc_sk_header;

/* Parse an envelope [header, ct] (strict canonical msgpack). Lets the
 * caller pick the peer (sender_uid) before sc_sk_open. Errors:
 * SECCHAT_ERR_TOO_LONG (> SC_SK_MAX_BLOB), the sc_mp_validate codes,
 * SECCHAT_ERR_SCHEMA, SECCHAT_ERR_BAD_LENGTH. */
int sc_sk_parse_blob(const uint8_t *blob, size_t len, sc_sk_header *h);

typedef struct sc_sk_inner {
  const uint8_t *chat_id;     /* 16 */
  uint64_t epoch;
  const uint8_t *log_head;    /* 32 */
  const uint8_t *author_uid;  /* 20 */
  const uint8_t *chain_id;    /* 16 */
  uint64_t seq;
  const uint8_t *prev_msg_id; /* 32 (zeros for seq 0 of a chain) */
  uint64_t ts_ms;
  uint64_t flags;
  uint64_t content_type;
  const uint8_t *body;
  size_t body_len;
} sc_sk_inner;

/* Parse inner bytes (also used for history items). Checks: length a
 * multiple of 64 and <= SC_SK_MAX_INNER, canonical msgpack, 13 fields of
 * the right types and sizes, ver == 1, padding zero bytes and shorter than
 * 64. Errors: SECCHAT_ERR_TOO_LONG, SECCHAT_ERR_BAD_PADDING, the
 * sc_mp_validate codes, SECCHAT_ERR_SCHEMA, SECCHAT_ERR_BAD_LENGTH,
 * SECCHAT_ERR_VERSION. Signature not checked here. */
int sc_sk_inner_parse(const uint8_t *inner, size_t len, sc_sk_inner *out);

/* msg_id = BLAKE2b-256("secchat/msgid/v1" || 0x00 || inner). */
void sc_sk_msg_id(uint8_t id[32], const uint8_t *inner, size_t len);

/* ---- Sending ------------------------------------------------------------ */

typedef struct sc_sk_sender {
  uint8_t chat_id[16];
  uint64_t epoch;
  uint8_t log_head[32];
  uint8_t chain_id[16];
  uint8_t ck[32];          /* CK_iteration */
  uint64_t iteration;      /* next iteration to send */
  uint8_t prev_msg_id[32]; /* msg_id of the previous message, zeros first */
  uint8_t nonce_prefix[16]; /* nonce = nonce_prefix || u64le(iteration) */
} sc_sk_sender;

/* Start a fresh chain: chain_id (16), CK_0 (32), then nonce_prefix (16)
 * from sc_random(). Sending chains live in memory only (client state never
 * stores one), so (chain, iteration) -- hence the message key -- is never
 * used twice, and a per-chain random prefix with the iteration is a unique
 * nonce without a getrandom call per message (docs/crypto.md 6.2). */
void sc_sk_sender_init(sc_sk_sender *s, const uint8_t chat_id[16], uint64_t epoch,
                       const uint8_t log_head[32]);
void sc_sk_sender_wipe(sc_sk_sender *s);

typedef struct sc_sk_plain {
  uint64_t ts_ms;
  uint64_t flags;
  uint64_t content_type;
  const uint8_t *body;
  size_t body_len;
} sc_sk_plain;

/* Seal one message from author (whose uid goes in header and inner) for
 * route_id. Writes the envelope to out[0, cap) and its msg_id; the only
 * memory used is out and the stack. On success the chain advances (CK_i
 * wiped) and the envelope length is returned; on error out is wiped and s
 * is unchanged. Errors: SECCHAT_ERR_INVALID_ARGUMENT, SECCHAT_ERR_TOO_LONG
 * (body > SC_SK_MAX_BODY), SECCHAT_ERR_BUFFER_TOO_SMALL (cap <
 * SC_SK_SEAL_CAP(body_len) is always enough), SECCHAT_ERR_LIMIT (chain
 * exhausted: start a new one), SECCHAT_ERR_INTERNAL. */
int64_t sc_sk_seal(sc_sk_sender *s, const secchat_identity *author, const uint8_t route_id[32],
                   const sc_sk_plain *m, uint8_t *out, size_t cap, uint8_t msg_id[32]);

/* ---- Receiving ---------------------------------------------------------- */

typedef struct sc_sk_chain {
  uint8_t chain_id[16];
  uint8_t log_head[32];
  uint8_t ck[32];      /* CK_next */
  uint64_t epoch;
  uint64_t next;       /* next iteration not yet derived */
  uint64_t retired_ms; /* when it stopped being current */
  uint8_t live;
  uint8_t current;
} sc_sk_chain;

typedef struct sc_sk_skipped {
  uint8_t chain_id[16];
  uint64_t iteration;
  uint8_t mk[32];
  uint8_t live; /* 0 = tombstone (used or wiped) */
} sc_sk_skipped;

typedef struct sc_sk_peer {
  uint8_t chat_id[16];
  uint8_t uid[20];
  uint8_t sign_pk[32]; /* pinned author key (from the membership log) */
  sc_sk_chain chains[1 + SC_SK_MAX_OLD_CHAINS];
  sc_sk_skipped *ring; /* FIFO of skipped keys, grows up to the cap */
  uint32_t ring_cap, head, count, live;
} sc_sk_peer;

/* Set up a peer for chat_id with its signing key. 0 or SECCHAT_ERR_BAD_KEY. */
int sc_sk_peer_init(sc_sk_peer *p, const uint8_t chat_id[16], const uint8_t sign_pk[32]);
/* Wipe every key and free the ring. */
void sc_sk_peer_wipe(sc_sk_peer *p);

/* Install a chain received from the peer (after sc_sk_dist_parse) as its
 * current one; the previous current chain is retired at now_ms; beyond
 * SC_SK_MAX_OLD_CHAINS retired chains the oldest is wiped with its skipped
 * keys. Errors: SECCHAT_ERR_EXISTS (chain id already known: a re-sent key
 * never rewinds a chain), SECCHAT_ERR_PROTOCOL (epoch older than the
 * current chain's), SECCHAT_ERR_LIMIT (iteration beyond the cap). */
int sc_sk_peer_add_chain(sc_sk_peer *p, uint64_t epoch, const uint8_t log_head[32],
                         const uint8_t chain_id[16], uint64_t iteration, const uint8_t ck[32],
                         uint64_t now_ms);

/* Wipe retired chains (and their skipped keys) retired for grace_ms or
 * longer at now_ms. */
void sc_sk_peer_expire(sc_sk_peer *p, uint64_t now_ms, uint64_t grace_ms);

typedef struct sc_sk_opened {
  sc_sk_header header;
  sc_sk_inner inner;  /* fields of the verified inner */
  const uint8_t *inner_bytes; /* exact signed bytes (in work) */
  size_t inner_len;
  const uint8_t *sig; /* 64, in work */
  uint8_t msg_id[32];
} sc_sk_opened;

/* Open an envelope from peer p received on route_id. work[0, work_cap) is
 * scratch that receives the plaintext (work_cap >= len + 16 is always
 * enough);
 * out's pointers borrow blob and work. Checks, in order: envelope format;
 * sender_uid == p's uid; known chain; epoch; iteration (replay, window);
 * AEAD; inner format; author signature with p's pinned key; author ==
 * sender, chat, epoch, log head, chain id, seq == iteration. Only then the
 * ratchet commits. Errors (state unchanged): the parse codes,
 * SECCHAT_ERR_NOT_FOUND (unknown chain: request the key),
 * SECCHAT_ERR_REPLAY (iteration already used, or its key was evicted),
 * SECCHAT_ERR_TOO_FAR_AHEAD, SECCHAT_ERR_DECRYPT, SECCHAT_ERR_SIGNATURE,
 * SECCHAT_ERR_AUTH (a binding check), SECCHAT_ERR_BUFFER_TOO_SMALL,
 * SECCHAT_ERR_NOMEM (growing the skipped-key store). */
int sc_sk_open(sc_sk_peer *p, const uint8_t route_id[32], const uint8_t *blob, size_t len,
               uint8_t *work, size_t work_cap, sc_sk_opened *out);

/* BLAKE2b-256 of p's logical state (chains and live skipped keys in
 * order), for tests of transactionality. */
void sc_sk_peer_digest(const sc_sk_peer *p, uint8_t out[32]);

/* ---- Key distribution and key requests ---------------------------------
 * Both are [body(bin), sig(bin 64)] with sig = sc_sign_ctx(ctx, body):
 *  SKDIST body = [1, chat_id, epoch, log_head, owner_uid, recipient_uid,
 *                 chain_id, iteration, chain_key]      ctx SC_CTX_SKDIST
 *  KEYREQ body = [1, chat_id, epoch, requester_uid, recipient_uid,
 *                 chain_id]                            ctx SC_CTX_KEYREQ
 * They travel inside pairwise (Noise) channels only. */

/* SKDIST for s's current position (chain key CK_iteration), signed by
 * owner. out receives a secret (the chain key): wipe it after sending.
 * Returns the length or SECCHAT_ERR_BUFFER_TOO_SMALL /
 * SECCHAT_ERR_INVALID_ARGUMENT / SECCHAT_ERR_INTERNAL. */
int64_t sc_sk_dist_build(const sc_sk_sender *s, const secchat_identity *owner,
                         const uint8_t recipient_uid[20], uint8_t *out, size_t cap);

typedef struct sc_sk_dist {
  uint8_t chat_id[16];
  uint64_t epoch;
  uint8_t log_head[32];
  uint8_t owner_uid[20];
  uint8_t chain_id[16];
  uint64_t iteration;
  uint8_t ck[32]; /* secret: sc_sk_dist_wipe() */
} sc_sk_dist;

/* Verify and parse an SKDIST from the owner whose pinned key is owner_pk,
 * addressed to my_uid. Errors: format codes, SECCHAT_ERR_SIGNATURE,
 * SECCHAT_ERR_AUTH (owner_uid is not uid(owner_pk) or recipient is not
 * me), SECCHAT_ERR_VERSION. Then the caller checks chat/epoch against its
 * log and calls sc_sk_peer_add_chain. */
int sc_sk_dist_parse(const uint8_t *in, size_t len, const uint8_t owner_pk[32],
                     const uint8_t my_uid[20], sc_sk_dist *out);
void sc_sk_dist_wipe(sc_sk_dist *d);

/* Install a parsed SKDIST into p: its owner must be p's member and its
 * chat p's chat (else SECCHAT_ERR_AUTH); then as sc_sk_peer_add_chain. */
int sc_sk_peer_add_dist(sc_sk_peer *p, const sc_sk_dist *d, uint64_t now_ms);

/* KEYREQ from requester to the owner recipient_uid for chain_id (zeros:
 * "your current chain"). Returns the length or an error as above. */
int64_t sc_sk_keyreq_build(const secchat_identity *requester, const uint8_t chat_id[16],
                           uint64_t epoch, const uint8_t recipient_uid[20],
                           const uint8_t chain_id[16], uint8_t *out, size_t cap);

typedef struct sc_sk_keyreq {
  uint8_t chat_id[16];
  uint64_t epoch;
  uint8_t requester_uid[20];
  uint8_t chain_id[16];
} sc_sk_keyreq;

/* Verify and parse a KEYREQ from the requester whose pinned key is
 * requester_pk, addressed to my_uid. Errors as sc_sk_dist_parse. */
int sc_sk_keyreq_parse(const uint8_t *in, size_t len, const uint8_t requester_pk[32],
                       const uint8_t my_uid[20], sc_sk_keyreq *out);

#endif
