/*
 * secchat/token.h: server token key, token issuance and strict verification
 * (included by secchat/secchat.h; do not include directly).
 *
 * A token is an ES256 JWT issued by the relay after a registration that
 * proves possession of the user's Ed25519 key inside the Noise channel
 * (docs/tokens.md has the claims, the exact signed bytes and the checks).
 *
 * Errors: every authentication failure returns the one public code
 * SECCHAT_ERR_AUTH (no oracle for the peer), except a token that is valid
 * in every respect but past its expiry, which returns
 * SECCHAT_ERR_TOKEN_EXPIRED so that the client knows to renew. The precise
 * reason (secchat_token_reason) goes to the optional `reason` out-parameter
 * for the host's logs and for tests; never send it to the peer.
 *
 * Time: every function takes the current Unix time in seconds (now_s); the
 * library reads no clock.
 *
 * Threads: a secchat_server_key is immutable after creation and may be
 * shared between threads. A secchat_token_verifier holds a mutable cache:
 * one thread at a time.
 */
#ifndef SECCHAT_TOKEN_H
#define SECCHAT_TOKEN_H

#ifndef SECCHAT_SECCHAT_H
#error "include <secchat/secchat.h>, not <secchat/token.h>"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Limits and defaults (seconds, bytes) ------------------------------ */
#define SECCHAT_TOKEN_TTL_DEFAULT (7 * 24 * 3600)   /* exp - iat when ttl 0 */
#define SECCHAT_TOKEN_MAX_LIFETIME (30 * 24 * 3600) /* exp - iat accepted */
#define SECCHAT_TOKEN_LEEWAY 60                     /* clock skew allowed */
#define SECCHAT_NAME_MAX_CHARS 32u                  /* code points */
#define SECCHAT_NAME_MAX_BYTES 128u                 /* UTF-8 bytes */
#define SECCHAT_ISSUER_MAX_BYTES 64u                /* printable ASCII */
#define SECCHAT_JTI_BYTES 16u
#define SECCHAT_TOKEN_KEY_FINGERPRINT_BYTES 32u     /* BLAKE2b-256 */
#define SECCHAT_TOKEN_KEY_PEM_MAX 1024u             /* private or public */
#define SECCHAT_TOKEN_CACHE_MAX 65536u              /* verifier cache cap */

/* ---- Failure reasons (stable numbers, for logs and tests) --------------- */
typedef enum secchat_token_reason {
  SECCHAT_TOKEN_OK = 0,
  /* structure, checked before any library parses the token */
  SECCHAT_TOKEN_R_EMPTY = 1,          /* zero-length token */
  SECCHAT_TOKEN_R_TOO_LONG = 2,       /* > SECCHAT_MAX_TOKEN_BYTES */
  SECCHAT_TOKEN_R_CHARSET = 3,        /* byte outside base64url and '.' */
  SECCHAT_TOKEN_R_DOTS = 4,           /* not exactly two dots */
  SECCHAT_TOKEN_R_EMPTY_SEGMENT = 5,  /* header, payload or sig empty */
  SECCHAT_TOKEN_R_BASE64 = 6,         /* segment not canonical base64url */
  /* header */
  SECCHAT_TOKEN_R_HEADER_JSON = 7,    /* not a JSON object */
  SECCHAT_TOKEN_R_DUPLICATE = 8,      /* a JSON member appears twice */
  SECCHAT_TOKEN_R_ALG = 9,            /* alg missing / not exactly "ES256" */
  SECCHAT_TOKEN_R_TYP = 10,           /* typ present and not "JWT" */
  SECCHAT_TOKEN_R_HEADER_FIELD = 11,  /* kid, jku, x5u, crit... any other */
  /* payload */
  SECCHAT_TOKEN_R_PAYLOAD_JSON = 12,  /* not a JSON object */
  SECCHAT_TOKEN_R_CLAIM_MISSING = 13,
  SECCHAT_TOKEN_R_CLAIM_TYPE = 14,    /* e.g. exp as string/real/bool */
  SECCHAT_TOKEN_R_CLAIM_RANGE = 15,   /* integer/string out of range */
  SECCHAT_TOKEN_R_CLAIM_UNKNOWN = 16, /* claim not defined for ver 1 */
  SECCHAT_TOKEN_R_VERSION = 17,       /* ver != 1 */
  /* signature (libjwt) */
  SECCHAT_TOKEN_R_SIGNATURE = 18,     /* jwt_decode refused it */
  SECCHAT_TOKEN_R_ALG_MISMATCH = 19,  /* decoded alg is not ES256 */
  /* claims */
  SECCHAT_TOKEN_R_ISSUER = 20,        /* iss differs */
  SECCHAT_TOKEN_R_LIFETIME = 21,      /* not iat <= nbf < exp, or too long */
  SECCHAT_TOKEN_R_KEY_ENCODING = 22,  /* embedded key/sig wrong length */
  SECCHAT_TOKEN_R_SIGN_PK = 23,       /* Ed25519 key invalid */
  SECCHAT_TOKEN_R_DH_PK = 24,         /* X25519 key low-order */
  SECCHAT_TOKEN_R_SUB = 25,           /* sub != base32(uid(sig_pk)) */
  SECCHAT_TOKEN_R_DH_SIG = 26,        /* dh_sig does not verify */
  SECCHAT_TOKEN_R_NAME = 27,          /* name breaks the name rules */
  SECCHAT_TOKEN_R_NOT_YET_VALID = 28, /* nbf > now + leeway */
  SECCHAT_TOKEN_R_IAT_FUTURE = 29,    /* iat > now + leeway */
  SECCHAT_TOKEN_R_EXPIRED = 30,       /* now >= exp + leeway (+ grace) */
  /* proofs and bindings */
  SECCHAT_TOKEN_R_PROOF = 31,         /* possession proof invalid */
  SECCHAT_TOKEN_R_CHANNEL = 32,       /* dh_pk != Noise remote static */
  SECCHAT_TOKEN_R_UID = 33,           /* peer token is not for that uid */
  SECCHAT_TOKEN_R_KEY_MISMATCH = 34,  /* renew: key is not the verifier's */
  /* local failures (not the peer's fault) */
  SECCHAT_TOKEN_R_INTERNAL = 35       /* allocation or library failure */
} secchat_token_reason;

/* Static English text for a reason ("alg is not ES256"); never NULL. */
SECCHAT_API const char *secchat_token_reason_string(int reason);

/* ---- Verified claims ----------------------------------------------------
 * Filled by the verify functions. Fixed-size fields, strings
 * NUL-terminated; safe to copy. struct_size is set by the library. */
typedef struct secchat_token_claims {
  uint32_t struct_size;
  uint32_t ver;
  int64_t iat, nbf, exp;
  uint8_t uid[SECCHAT_UID_BYTES];
  char uid_str[SECCHAT_UID_STRING_BYTES]; /* base32, see identity.h */
  char name[SECCHAT_NAME_MAX_BYTES + 1];
  char iss[SECCHAT_ISSUER_MAX_BYTES + 1];
  uint8_t sig_pk[SECCHAT_SIGN_PUBLICKEY_BYTES];
  uint8_t dh_pk[SECCHAT_DH_PUBLICKEY_BYTES];
  uint8_t dh_sig[SECCHAT_SIGNATURE_BYTES];
  uint8_t jti[SECCHAT_JTI_BYTES];
} secchat_token_claims;

SECCHAT_API size_t secchat_token_claims_size(void); /* sizeof, for ctypes */

/* ---- Server token key (ES256, P-256) ------------------------------------ */
typedef struct secchat_server_key secchat_server_key;

/* Generate a new key. Returns 0, SECCHAT_ERR_NOMEM or
 * SECCHAT_ERR_CRYPTO_INIT. (OpenSSL's own RNG draws the EC scalar: ECDSA
 * keys are not reproducible under the test RNG.) */
SECCHAT_API int secchat_server_key_generate(secchat_server_key **out);

/* Load a private key from PEM (PKCS#8 or SEC1 "EC PRIVATE KEY", not
 * encrypted; len bytes, NUL not required). Anything that is not a P-256
 * private key, including an empty or truncated text, is rejected with
 * SECCHAT_ERR_BAD_KEY. */
SECCHAT_API int secchat_server_key_from_pem(secchat_server_key **out, const char *pem,
                                            size_t len);

/* Write the private key (PKCS#8 PEM) or the public key (SubjectPublicKeyInfo
 * PEM), NUL-terminated, into out. *out_len (optional) gets the length
 * without NUL. SECCHAT_ERR_BUFFER_TOO_SMALL when cap is too small
 * (SECCHAT_TOKEN_KEY_PEM_MAX always suffices). The caller must wipe the
 * private PEM when done. */
SECCHAT_API int secchat_server_key_private_pem(const secchat_server_key *key, char *out,
                                               size_t cap, size_t *out_len);
SECCHAT_API int secchat_server_key_public_pem(const secchat_server_key *key, char *out,
                                              size_t cap, size_t *out_len);

/* BLAKE2b-256 of the DER SubjectPublicKeyInfo of the public key. */
SECCHAT_API int secchat_server_key_fingerprint(const secchat_server_key *key,
                                               uint8_t out[SECCHAT_TOKEN_KEY_FINGERPRINT_BYTES]);

/* Wipe and free; NULL-safe. */
SECCHAT_API void secchat_server_key_free(secchat_server_key *key);

/* ---- Verifier (relay and clients) ----------------------------------------
 * Holds the server's public key (the relay's own, or the one a client
 * pinned), the expected issuer and a bounded cache of verified tokens
 * (cache_capacity entries, 0 = no cache, at most SECCHAT_TOKEN_CACHE_MAX;
 * RAM only, LRU per set; a hit re-checks nbf/iat/exp against now_s). */
typedef struct secchat_token_verifier secchat_token_verifier;

/* public_pem: SubjectPublicKeyInfo PEM of a P-256 key (len bytes);
 * issuer: NUL-terminated, 1..SECCHAT_ISSUER_MAX_BYTES printable ASCII.
 * Returns 0, SECCHAT_ERR_BAD_KEY (not a P-256 public key, empty text),
 * SECCHAT_ERR_INVALID_ARGUMENT or SECCHAT_ERR_NOMEM. */
SECCHAT_API int secchat_token_verifier_new(secchat_token_verifier **out, const char *public_pem,
                                           size_t len, const char *issuer,
                                           size_t cache_capacity);
SECCHAT_API void secchat_token_verifier_free(secchat_token_verifier *v);

/* Cache counters (any pointer may be NULL). */
SECCHAT_API void secchat_token_verifier_cache_stats(const secchat_token_verifier *v,
                                                    uint64_t *hits, uint64_t *misses,
                                                    uint64_t *entries);

/* Verify a token strictly (docs/tokens.md, "Verification order"). On 0 the
 * claims are filled (claims may be NULL). Returns 0, SECCHAT_ERR_AUTH,
 * SECCHAT_ERR_TOKEN_EXPIRED, SECCHAT_ERR_INVALID_ARGUMENT or
 * SECCHAT_ERR_NOMEM. */
SECCHAT_API int secchat_token_verify(secchat_token_verifier *v, const char *token, size_t len,
                                     int64_t now_s, secchat_token_claims *claims, int *reason);

/* Client side: check another user's token with the pinned server key; when
 * expected_uid is not NULL the token must be for that uid (reason
 * SECCHAT_TOKEN_R_UID). Same returns as secchat_token_verify. */
SECCHAT_API int secchat_token_check_peer(secchat_token_verifier *v, const char *token,
                                         size_t len, const uint8_t *expected_uid,
                                         int64_t now_s, secchat_token_claims *claims,
                                         int *reason);

/* Relay side, AUTH: verify the token, then the login proof (Ed25519 by the
 * token's sig_pk over context "secchat/auth/v1" and the Noise handshake
 * hash) and the channel binding (token dh_pk == Noise remote static). */
SECCHAT_API int secchat_token_verify_login(secchat_token_verifier *v, const char *token,
                                           size_t len,
                                           const uint8_t proof[SECCHAT_SIGNATURE_BYTES],
                                           const uint8_t handshake_hash[SECCHAT_HASH_BYTES],
                                           const uint8_t remote_static[SECCHAT_DH_PUBLICKEY_BYTES],
                                           int64_t now_s, secchat_token_claims *claims,
                                           int *reason);

/* ---- Issuance (relay) ------------------------------------------------------
 * Verify a registration (name rules, keys, dh_sig, proof over context
 * "secchat/register/v1", dh_pk == Noise remote static) and, if valid, issue
 * a token for it: iat = nbf = now_s, exp = now_s + ttl_s (0 means
 * SECCHAT_TOKEN_TTL_DEFAULT; more than SECCHAT_TOKEN_MAX_LIFETIME is
 * SECCHAT_ERR_INVALID_ARGUMENT). The token is written NUL-terminated to out
 * (cap >= SECCHAT_MAX_TOKEN_BYTES + 1 always suffices), *out_len (optional)
 * gets its length. Returns 0, SECCHAT_ERR_AUTH (registration rejected; see
 * reason), SECCHAT_ERR_INVALID_ARGUMENT, SECCHAT_ERR_BUFFER_TOO_SMALL,
 * SECCHAT_ERR_NOMEM or SECCHAT_ERR_INTERNAL. */
SECCHAT_API int secchat_token_issue(const secchat_server_key *key, const char *issuer,
                                    const char *name, size_t name_len,
                                    const uint8_t sig_pk[SECCHAT_SIGN_PUBLICKEY_BYTES],
                                    const uint8_t dh_pk[SECCHAT_DH_PUBLICKEY_BYTES],
                                    const uint8_t dh_sig[SECCHAT_SIGNATURE_BYTES],
                                    const uint8_t proof[SECCHAT_SIGNATURE_BYTES],
                                    const uint8_t handshake_hash[SECCHAT_HASH_BYTES],
                                    const uint8_t remote_static[SECCHAT_DH_PUBLICKEY_BYTES],
                                    int64_t now_s, uint32_t ttl_s, char *out, size_t cap,
                                    size_t *out_len, int *reason);

/* Renewal: the token must verify with v (which must hold key's public key,
 * else SECCHAT_TOKEN_R_KEY_MISMATCH), or be expired by at most grace_s
 * seconds (0..SECCHAT_TOKEN_MAX_LIFETIME); the proof is Ed25519 by the
 * token's sig_pk over context "secchat/renew/v1" and the handshake hash;
 * dh_pk must equal the Noise remote static. The new token keeps name and
 * keys, with fresh iat/nbf/exp/jti and v's issuer. Returns as
 * secchat_token_issue (SECCHAT_ERR_AUTH for any rejection, expiry
 * included). */
SECCHAT_API int secchat_token_renew(const secchat_server_key *key, secchat_token_verifier *v,
                                    const char *token, size_t len,
                                    const uint8_t proof[SECCHAT_SIGNATURE_BYTES],
                                    const uint8_t handshake_hash[SECCHAT_HASH_BYTES],
                                    const uint8_t remote_static[SECCHAT_DH_PUBLICKEY_BYTES],
                                    int64_t now_s, int64_t grace_s, uint32_t ttl_s, char *out,
                                    size_t cap, size_t *out_len, int *reason);

/* ---- Client-side proofs (the client holds the identity) -------------------
 * Each writes a 64-byte Ed25519 signature by the identity's signing key:
 *  - registration: context "secchat/register/v1" over
 *      handshake_hash || u16be(name_len) || name || sig_pk || dh_pk
 *    (name must satisfy secchat_name_check);
 *  - login: context "secchat/auth/v1" over handshake_hash;
 *  - renewal: context "secchat/renew/v1" over handshake_hash.
 * handshake_hash is the Noise handshake hash of the current connection.
 * Returns 0 or SECCHAT_ERR_INVALID_ARGUMENT. */
SECCHAT_API int secchat_token_registration_proof(const secchat_identity *id, const char *name,
                                                 size_t name_len,
                                                 const uint8_t handshake_hash[SECCHAT_HASH_BYTES],
                                                 uint8_t proof[SECCHAT_SIGNATURE_BYTES]);
SECCHAT_API int secchat_token_login_proof(const secchat_identity *id,
                                          const uint8_t handshake_hash[SECCHAT_HASH_BYTES],
                                          uint8_t proof[SECCHAT_SIGNATURE_BYTES]);
SECCHAT_API int secchat_token_renew_proof(const secchat_identity *id,
                                          const uint8_t handshake_hash[SECCHAT_HASH_BYTES],
                                          uint8_t proof[SECCHAT_SIGNATURE_BYTES]);

/* 0 if name (len bytes) satisfies the name rules (docs/tokens.md), else
 * SECCHAT_ERR_INVALID_ARGUMENT. Lets clients check before registering. */
SECCHAT_API int secchat_name_check(const char *name, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* SECCHAT_TOKEN_H */
