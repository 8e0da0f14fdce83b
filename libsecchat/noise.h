/* noise.h: Noise Protocol Framework (revision 34) for exactly two protocols
 * (internal):
 *
 *   Noise_XX_25519_ChaChaPoly_SHA256   client <-> relay
 *   Noise_IK_25519_ChaChaPoly_SHA256   client <-> client (relayed, DIRECT)
 *
 * plus two transports built on Split(): the ordinary in-order transport
 * (implicit counter nonces; TCP is reliable) and an explicit-nonce
 * "datagram" transport with a replay window for pairwise channels, whose
 * messages may be dropped or reordered by the relay. docs/noise.md is the
 * normative description of the wire formats and policies.
 *
 * Memory: nothing here allocates. Every state is a plain fixed-size struct
 * (no pointers inside) that the caller places anywhere (stack, array, a
 * locked slab) and may move with memcpy. Each has a *_wipe() that zeroes
 * it with sodium_memzero; wiping is also what every fatal error does.
 *
 * Buffers: the caller owns every buffer. Where a function says "in place
 * allowed", the output may start at exactly the input address (or, for the
 * datagram transport, at the stated offset); any other overlap is invalid.
 * On a failed decrypt the output buffer's contents are unspecified (libsodium
 * zeroes it), so an in-place decrypt destroys the ciphertext.
 *
 * Errors (negative SECCHAT_ERR_*; 0 is success):
 *   INVALID_ARGUMENT   NULL pointer, bad enum, wrong key presence
 *   INVALID_STATE      call not allowed now (wrong turn, not finished,
 *                      failed or wiped state, cipher without a key)
 *   BUFFER_TOO_SMALL   output capacity too small (no state change)
 *   TOO_LONG           message would exceed / exceeds 65535 bytes
 *   HANDSHAKE          malformed handshake message (too short)
 *   DECRYPT            AEAD authentication failed
 *   BAD_KEY            low-order / invalid X25519 key (all-zero DH output)
 *   NONCE_EXHAUSTED    the cipher reached nonce 2^64-1 (reserved)
 *   REPLAY             datagram already received, or older than the window
 *   TRUNCATED          datagram shorter than header + tag
 *   NOT_FOUND          datagram carries another session id
 *   INTERNAL           libsodium refused an operation (not expected)
 *
 * Threads: no global state; one state object is used by one thread at a
 * time. The ephemeral keys come from sc_random() (rng.h). */
#ifndef SC_NOISE_H
#define SC_NOISE_H

#include <stddef.h>
#include <stdint.h>

#define SC_NOISE_DHLEN 32u
#define SC_NOISE_HASHLEN 32u
#define SC_NOISE_KEYLEN 32u
#define SC_NOISE_TAGLEN 16u
#define SC_NOISE_MAX_MESSAGE 65535u /* = SECCHAT_MAX_WIRE_MESSAGE */

/* Prologue of every secchat handshake: protocol name and MAJOR version. A
 * peer speaking another major version computes another handshake hash, so
 * the first authenticated message fails (by design). */
#define SC_NOISE_PROLOGUE "secchat/1"

/* ---- CipherState (spec section 5.1) ------------------------------------ */

typedef struct sc_noise_cipher {
  uint8_t k[SC_NOISE_KEYLEN];
  uint64_t n;      /* next nonce; 2^64-1 is reserved and never used */
  uint8_t has_key; /* 0: k is empty (EncryptWithAd copies plaintext) */
} sc_noise_cipher;

/* InitializeKey(k); key NULL means empty. n = 0. */
void sc_noise_cipher_init(sc_noise_cipher *cs, const uint8_t key[SC_NOISE_KEYLEN]);
int sc_noise_cipher_has_key(const sc_noise_cipher *cs);
/* SetNonce(n). Used by tests and by the datagram transport's design. */
void sc_noise_cipher_set_nonce(sc_noise_cipher *cs, uint64_t n);

/* EncryptWithAd: out = ENCRYPT(k, n++, ad, in) = ciphertext || tag (len +
 * 16 bytes), or a copy of in if k is empty. In place allowed (out == in).
 * Errors: INVALID_ARGUMENT, BUFFER_TOO_SMALL, TOO_LONG (output > 65535),
 * NONCE_EXHAUSTED (n == 2^64-1; the state is unchanged and every further
 * call fails the same way: the caller must rekey or close). */
int sc_noise_cipher_encrypt(sc_noise_cipher *cs, const uint8_t *ad, size_t adlen,
                            const uint8_t *in, size_t len, uint8_t *out, size_t cap,
                            size_t *outlen);

/* DecryptWithAd: out = plaintext (len - 16 bytes). n advances only on
 * success. In place allowed. Errors: INVALID_ARGUMENT, BUFFER_TOO_SMALL,
 * TOO_LONG (input > 65535), DECRYPT (bad tag or input shorter than the
 * tag), NONCE_EXHAUSTED. */
int sc_noise_cipher_decrypt(sc_noise_cipher *cs, const uint8_t *ad, size_t adlen,
                            const uint8_t *in, size_t len, uint8_t *out, size_t cap,
                            size_t *outlen);

/* Rekey(): k = first 32 bytes of ENCRYPT(k, 2^64-1, empty, 32 zero bytes)
 * (spec section 4.2 default REKEY). n is unchanged. INVALID_STATE without
 * a key. */
int sc_noise_cipher_rekey(sc_noise_cipher *cs);

void sc_noise_cipher_wipe(sc_noise_cipher *cs);

/* ---- SymmetricState (spec section 5.2) ---------------------------------- */

typedef struct sc_noise_symmetric {
  sc_noise_cipher cs;
  uint8_t ck[SC_NOISE_HASHLEN];
  uint8_t h[SC_NOISE_HASHLEN];
} sc_noise_symmetric;

void sc_noise_symmetric_init(sc_noise_symmetric *ss, const char *protocol_name);
void sc_noise_symmetric_mix_key(sc_noise_symmetric *ss, const uint8_t *ikm, size_t len);
void sc_noise_symmetric_mix_hash(sc_noise_symmetric *ss, const uint8_t *data, size_t len);
/* EncryptAndHash / DecryptAndHash: errors as the cipher functions. In place
 * is NOT allowed here (the hash covers the ciphertext, read after). */
int sc_noise_symmetric_encrypt_and_hash(sc_noise_symmetric *ss, const uint8_t *in, size_t len,
                                        uint8_t *out, size_t cap, size_t *outlen);
int sc_noise_symmetric_decrypt_and_hash(sc_noise_symmetric *ss, const uint8_t *in, size_t len,
                                        uint8_t *out, size_t cap, size_t *outlen);
/* Split(): c1 (initiator -> responder), c2 (responder -> initiator). */
void sc_noise_symmetric_split(const sc_noise_symmetric *ss, sc_noise_cipher *c1,
                              sc_noise_cipher *c2);
void sc_noise_symmetric_wipe(sc_noise_symmetric *ss);

/* HKDF(chaining_key, ikm, 2) exactly as spec section 4.3 (HMAC-SHA256 with
 * any key length). Exposed for tests. */
void sc_noise_hkdf2(const uint8_t ck[SC_NOISE_HASHLEN], const uint8_t *ikm, size_t len,
                    uint8_t out1[SC_NOISE_HASHLEN], uint8_t out2[SC_NOISE_HASHLEN]);

/* ---- HandshakeState (spec section 5.3) ---------------------------------- */

typedef enum sc_noise_pattern {
  SC_NOISE_XX = 1, /* -> e; <- e, ee, s, es; -> s, se */
  SC_NOISE_IK = 2  /* <- s; ...; -> e, es, s, ss; <- e, ee, se */
} sc_noise_pattern;

/* What the handshake expects next (sc_noise_handshake_action). */
typedef enum sc_noise_action {
  SC_NOISE_ACTION_NONE = 0,  /* wiped / never initialised */
  SC_NOISE_ACTION_WRITE = 1, /* call sc_noise_handshake_write */
  SC_NOISE_ACTION_READ = 2,  /* call sc_noise_handshake_read */
  SC_NOISE_ACTION_SPLIT = 3, /* finished: call sc_noise_handshake_split */
  SC_NOISE_ACTION_FAILED = 4 /* a step failed: the state is wiped, unusable */
} sc_noise_action;

typedef struct sc_noise_handshake {
  sc_noise_symmetric ss;
  uint8_t s_sk[SC_NOISE_DHLEN], s_pk[SC_NOISE_DHLEN]; /* local static */
  uint8_t e_sk[SC_NOISE_DHLEN], e_pk[SC_NOISE_DHLEN]; /* local ephemeral */
  uint8_t rs[SC_NOISE_DHLEN], re[SC_NOISE_DHLEN];     /* remote keys */
  uint8_t pattern;   /* sc_noise_pattern */
  uint8_t initiator; /* 1 or 0 */
  uint8_t msg;       /* index of the next message pattern */
  uint8_t flags;     /* which keys are set (noise.c) */
  uint8_t action;    /* sc_noise_action */
} sc_noise_handshake;

/* Initialize(pattern, initiator, prologue, s, rs). The protocol name is
 * fixed by the pattern. s_sk: the local static X25519 secret key (both
 * patterns, both roles need it); it is copied (and wiped with the state).
 * rs: the responder's static public key, required for the IK initiator and
 * NULL otherwise. Errors: INVALID_ARGUMENT, BAD_KEY (rs low-order, or s_sk
 * yields the zero public key). On error the state is wiped (action FAILED).
 * prologue may be NULL when prologue_len is 0. */
int sc_noise_handshake_init(sc_noise_handshake *hs, sc_noise_pattern pattern, int initiator,
                            const uint8_t *prologue, size_t prologue_len,
                            const uint8_t s_sk[SC_NOISE_DHLEN],
                            const uint8_t rs[SC_NOISE_DHLEN]);

/* TEST ONLY: use e_sk as the local ephemeral secret instead of drawing one
 * from sc_random() when the "e" token is written (published test vectors
 * fix the ephemerals). Only before that token; else INVALID_STATE. */
int sc_noise_handshake_fix_ephemeral(sc_noise_handshake *hs, const uint8_t e_sk[SC_NOISE_DHLEN]);

sc_noise_action sc_noise_handshake_action(const sc_noise_handshake *hs);

/* WriteMessage(payload, message_buffer). out receives the whole handshake
 * message (*outlen bytes); payload and out must not overlap. Errors before
 * any state change (retry possible): INVALID_ARGUMENT, INVALID_STATE (not
 * our turn), BUFFER_TOO_SMALL, TOO_LONG (message would exceed 65535).
 * Errors after (state wiped, action FAILED): BAD_KEY. */
int sc_noise_handshake_write(sc_noise_handshake *hs, const uint8_t *payload, size_t plen,
                             uint8_t *out, size_t cap, size_t *outlen);

/* ReadMessage(message, payload_buffer). payload receives the decrypted
 * payload (*plen bytes); msg and payload must not overlap. Errors before any
 * state change: INVALID_ARGUMENT, INVALID_STATE, BUFFER_TOO_SMALL (cap is
 * checked against the payload size implied by len). Errors that fail the
 * handshake (state wiped, action FAILED, every later call INVALID_STATE):
 * TOO_LONG (len > 65535), HANDSHAKE (message too short for the pattern),
 * DECRYPT (a static key or the payload failed authentication), BAD_KEY
 * (the peer's key gives a low-order DH). Nothing from a failed message may
 * be used. */
int sc_noise_handshake_read(sc_noise_handshake *hs, const uint8_t *msg, size_t len,
                            uint8_t *payload, size_t cap, size_t *plen);

/* GetHandshakeHash(): h so far; final (for channel binding) once action is
 * SPLIT. INVALID_STATE on a wiped/failed state. */
int sc_noise_handshake_hash(const sc_noise_handshake *hs, uint8_t h[SC_NOISE_HASHLEN]);

/* The remote static public key once received (XX: after message 2 for the
 * initiator, message 3 for the responder; IK: from init for the initiator,
 * after message 1 for the responder). INVALID_STATE before. The caller must
 * authenticate it (token, pinning) before trusting anything. */
int sc_noise_handshake_remote_static(const sc_noise_handshake *hs, uint8_t rs[SC_NOISE_DHLEN]);

void sc_noise_handshake_wipe(sc_noise_handshake *hs);

/* ---- In-order transport (client <-> relay) ------------------------------ */

typedef struct sc_noise_transport {
  sc_noise_cipher tx; /* our sending direction */
  sc_noise_cipher rx; /* our receiving direction */
} sc_noise_transport;

/* Split() the finished handshake into t (initiator: tx = c1, rx = c2;
 * responder the reverse), copy the final handshake hash to h (may be NULL),
 * and wipe hs. INVALID_STATE unless action is SPLIT. */
int sc_noise_handshake_split(sc_noise_handshake *hs, sc_noise_transport *t,
                             uint8_t h[SC_NOISE_HASHLEN]);

/* Transport messages, associated data empty (spec section 5). out gets len
 * + 16 bytes / in minus 16 bytes; in place allowed. Errors as
 * sc_noise_cipher_encrypt / _decrypt. A DECRYPT error leaves t unchanged,
 * but on a reliable stream it means tampering: close the connection. */
int sc_noise_transport_encrypt(sc_noise_transport *t, const uint8_t *in, size_t len,
                               uint8_t *out, size_t cap, size_t *outlen);
int sc_noise_transport_decrypt(sc_noise_transport *t, const uint8_t *in, size_t len,
                               uint8_t *out, size_t cap, size_t *outlen);
void sc_noise_transport_wipe(sc_noise_transport *t);

/* ---- Explicit-nonce transport with replay window (client <-> client) ----
 * Message = header || ciphertext || tag, header = session_id (8 bytes) ||
 * n (u64 big-endian), the header is the AEAD associated data and the AEAD
 * nonce is n (Noise encoding: 4 zero bytes || LE64(n)).
 * session_id = BLAKE2b-64("secchat/noise/sid/v1" || 0x00 || h) of the final
 * handshake hash: both peers derive it, neither chooses it alone, and it is
 * unique per session. The receiver accepts each n at most once and only
 * within SC_NOISE_REPLAY_WINDOW of the highest n accepted so far (RFC 6479
 * bitmap); its state changes only after a successful decrypt. */
#define SC_NOISE_SID_BYTES 8u
#define SC_NOISE_DGRAM_HEADER_BYTES 16u
#define SC_NOISE_DGRAM_OVERHEAD (SC_NOISE_DGRAM_HEADER_BYTES + SC_NOISE_TAGLEN)
#define SC_NOISE_REPLAY_WINDOW 1024u
#define SC_NOISE_REPLAY_WORDS (SC_NOISE_REPLAY_WINDOW / 64u + 1u) /* ring + 1 spare */

typedef struct sc_noise_dgram {
  uint8_t tx_k[SC_NOISE_KEYLEN];
  uint8_t rx_k[SC_NOISE_KEYLEN];
  uint64_t tx_n;   /* next nonce to send */
  uint64_t rx_top; /* highest n accepted (0 with an empty bitmap: none) */
  uint64_t rx_bits[SC_NOISE_REPLAY_WORDS];
  uint8_t sid[SC_NOISE_SID_BYTES];
} sc_noise_dgram;

/* Take over the keys of a fresh transport t (wiped afterwards; its nonces
 * must still be 0, else INVALID_STATE) and derive the session id from the
 * final handshake hash h. */
int sc_noise_dgram_init(sc_noise_dgram *d, sc_noise_transport *t,
                        const uint8_t h[SC_NOISE_HASHLEN]);

/* The session id (to demultiplex received messages by session). */
void sc_noise_dgram_session_id(const sc_noise_dgram *d, uint8_t sid[SC_NOISE_SID_BYTES]);

/* Read the session id of a received message without decrypting. TRUNCATED
 * if len < SC_NOISE_DGRAM_OVERHEAD. */
int sc_noise_dgram_peek_session_id(const uint8_t *msg, size_t len,
                                   uint8_t sid[SC_NOISE_SID_BYTES]);

/* Number of messages sent so far (the caller's re-handshake policy). */
uint64_t sc_noise_dgram_sent(const sc_noise_dgram *d);

/* Encrypt: out = header || ciphertext || tag (len + 32 bytes). In place
 * allowed with pt == out + SC_NOISE_DGRAM_HEADER_BYTES. Errors:
 * INVALID_ARGUMENT, BUFFER_TOO_SMALL, TOO_LONG (> 65535), NONCE_EXHAUSTED. */
int sc_noise_dgram_encrypt(sc_noise_dgram *d, const uint8_t *pt, size_t len, uint8_t *out,
                           size_t cap, size_t *outlen);

/* Decrypt: pt = plaintext (len - 32 bytes). In place allowed with pt ==
 * msg + SC_NOISE_DGRAM_HEADER_BYTES. Errors (state unchanged on every one):
 * INVALID_ARGUMENT, BUFFER_TOO_SMALL, TRUNCATED, TOO_LONG, NOT_FOUND (other
 * session id), REPLAY (seen, or n <= highest - SC_NOISE_REPLAY_WINDOW),
 * DECRYPT (bad tag, or the reserved n = 2^64-1). *n_out (may be NULL)
 * receives n on success. */
int sc_noise_dgram_decrypt(sc_noise_dgram *d, const uint8_t *msg, size_t len, uint8_t *pt,
                           size_t cap, size_t *ptlen, uint64_t *n_out);

void sc_noise_dgram_wipe(sc_noise_dgram *d);

#endif
