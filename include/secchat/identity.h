/*
 * secchat/identity.h: user identities, fingerprints and safety numbers.
 * Included by <secchat/secchat.h>; do not include directly.
 *
 * An identity is an Ed25519 signing key pair plus a separate X25519 key
 * pair, bound by dh_sig = Ed25519("secchat/dh/v1" || 0x00 || dh_pk). The
 * user id is uid = BLAKE2b-160(sign_pk), shown as 32 lowercase base32
 * characters (RFC 4648 alphabet, no padding). docs/crypto.md is the
 * normative byte-level specification of everything here.
 *
 * Secrets live in one sodium_malloc allocation per identity (guard pages,
 * mlock'd where the system allows) and are wiped by secchat_identity_free().
 * All functions require secchat_init() to have succeeded. A secchat_identity
 * is used by one thread at a time; the free-standing functions
 * (secchat_uid_to_string, secchat_fingerprint, secchat_safety_number*) are
 * thread-safe.
 */
#ifndef SECCHAT_IDENTITY_H
#define SECCHAT_IDENTITY_H

#include <stddef.h>
#include <stdint.h>

#include <secchat/export.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct secchat_identity secchat_identity;

/* Sizes of the text forms, terminating NUL included. */
#define SECCHAT_UID_STRING_BYTES 33u      /* 32 base32 chars + NUL */
#define SECCHAT_FINGERPRINT_BYTES 20u     /* "xxxx-xxxx-xxxx-xxxx" + NUL */
#define SECCHAT_SAFETY_NUMBER_BYTES 72u   /* 12 groups of 5 digits, spaces */

/* Identity blobs (secchat_identity_export). */
#define SECCHAT_IDENTITY_BLOB_PLAIN_BYTES 86u     /* unencrypted kind */
#define SECCHAT_IDENTITY_BLOB_ENCRYPTED_BYTES 138u /* passphrase kind */
#define SECCHAT_IDENTITY_BLOB_MAX_BYTES 138u
#define SECCHAT_IDENTITY_PASSPHRASE_MAX 1024u     /* bytes */

/* Flag for export/import: the blob holds the secrets in the clear. Without
 * it, export requires a passphrase and import accepts only encrypted blobs;
 * with it, the reverse. The two blob kinds are never confused. */
#define SECCHAT_IDENTITY_UNENCRYPTED 1u

/* Argon2id cost bounds (crypto_pwhash). Export uses the defaults when
 * passed 0; import rejects a blob whose stored parameters are outside the
 * bounds with SECCHAT_ERR_KDF_PARAMS before allocating anything. */
#define SECCHAT_IDENTITY_OPSLIMIT_MIN 1u
#define SECCHAT_IDENTITY_OPSLIMIT_DEFAULT 2u    /* OPSLIMIT_INTERACTIVE */
#define SECCHAT_IDENTITY_OPSLIMIT_MAX 10u
#define SECCHAT_IDENTITY_MEMLIMIT_MIN 8192u     /* bytes, libsodium min */
#define SECCHAT_IDENTITY_MEMLIMIT_DEFAULT 67108864u /* 64 MiB, INTERACTIVE */
#define SECCHAT_IDENTITY_MEMLIMIT_MAX 268435456u    /* 256 MiB, MODERATE */

/* Create a fresh identity from the library's random source. On success
 * *out owns a new object (free it with secchat_identity_free).
 * Errors: SECCHAT_ERR_INVALID_ARGUMENT (out NULL), SECCHAT_ERR_NOMEM. */
SECCHAT_API int secchat_identity_new(secchat_identity **out);

/* Wipe and free. NULL is a no-op. */
SECCHAT_API void secchat_identity_free(secchat_identity *id);

/* Serialise the identity's secrets into out[0, cap); *out_len receives the
 * blob size (SECCHAT_IDENTITY_BLOB_ENCRYPTED_BYTES or _PLAIN_BYTES).
 *  - flags == 0: encrypted under passphrase[0, passphrase_len) (any bytes,
 *    1..SECCHAT_IDENTITY_PASSPHRASE_MAX) with Argon2id(opslimit, memlimit)
 *    and XChaCha20-Poly1305; 0 for opslimit/memlimit selects the defaults.
 *    Costs the Argon2id time and memory.
 *  - flags == SECCHAT_IDENTITY_UNENCRYPTED: passphrase must be NULL with
 *    length 0, and opslimit/memlimit 0. The blob is then a secret itself.
 * The caller owns out and should wipe it when done.
 * Errors: SECCHAT_ERR_INVALID_ARGUMENT (NULL, bad flags, passphrase given
 * with UNENCRYPTED or missing without it), SECCHAT_ERR_TOO_LONG
 * (passphrase), SECCHAT_ERR_KDF_PARAMS (costs outside the bounds),
 * SECCHAT_ERR_BUFFER_TOO_SMALL, SECCHAT_ERR_NOMEM (Argon2id memory). */
SECCHAT_API int secchat_identity_export(const secchat_identity *id, const char *passphrase,
                                        size_t passphrase_len, uint64_t opslimit,
                                        uint64_t memlimit, uint32_t flags, uint8_t *out,
                                        size_t cap, size_t *out_len);

/* 1 if blob is an encrypted identity blob, 0 if an unencrypted one, else
 * the error secchat_identity_import would report for its header. */
SECCHAT_API int secchat_identity_blob_is_encrypted(const uint8_t *blob, size_t len);

/* Rebuild an identity from a blob made by secchat_identity_export. flags
 * and passphrase must match the blob kind (see SECCHAT_IDENTITY_UNENCRYPTED).
 * On success *out owns a new object. Errors: SECCHAT_ERR_INVALID_ARGUMENT
 * (NULL, or flags/passphrase do not match the blob kind),
 * SECCHAT_ERR_TRUNCATED (shorter than its kind), SECCHAT_ERR_TRAILING_BYTES
 * (longer), SECCHAT_ERR_PROTOCOL (not an identity blob),
 * SECCHAT_ERR_VERSION (unknown version), SECCHAT_ERR_KDF_PARAMS (stored
 * costs out of bounds), SECCHAT_ERR_PASSPHRASE (wrong passphrase, or the
 * blob was altered: both fail the same authentication), SECCHAT_ERR_TOO_LONG,
 * SECCHAT_ERR_NOMEM. */
SECCHAT_API int secchat_identity_import(secchat_identity **out, const uint8_t *blob, size_t len,
                                        const char *passphrase, size_t passphrase_len,
                                        uint32_t flags);

/* Public parts. The returned pointers are borrowed: valid until the
 * identity is freed. NULL if id is NULL. */
SECCHAT_API const uint8_t *secchat_identity_uid(const secchat_identity *id);             /* 20 */
SECCHAT_API const uint8_t *secchat_identity_sign_public_key(const secchat_identity *id); /* 32 */
SECCHAT_API const uint8_t *secchat_identity_dh_public_key(const secchat_identity *id);   /* 32 */
SECCHAT_API const uint8_t *secchat_identity_dh_sig(const secchat_identity *id);          /* 64 */

/* The identity's uid as text into out (cap >= SECCHAT_UID_STRING_BYTES).
 * Errors: SECCHAT_ERR_INVALID_ARGUMENT, SECCHAT_ERR_BUFFER_TOO_SMALL. */
SECCHAT_API int secchat_identity_uid_string(const secchat_identity *id, char *out, size_t cap);

/* Any uid (20 bytes) as text: lowercase RFC 4648 base32, no padding,
 * exactly 32 characters. Same errors. */
SECCHAT_API int secchat_uid_to_string(const uint8_t uid[20], char *out, size_t cap);

/* Short fingerprint of a signing public key, for display next to a name:
 * the first 10 bytes of BLAKE2b-256("secchat/fpr/v1" || 0x00 || sign_pk)
 * as 16 base32 characters in four dash-separated groups of four
 * ("abcd-efgh-ijkl-mnop"). 80 bits: a recognition aid, not a verification
 * (use safety numbers for that). cap >= SECCHAT_FINGERPRINT_BYTES.
 * Errors: SECCHAT_ERR_INVALID_ARGUMENT, SECCHAT_ERR_BUFFER_TOO_SMALL,
 * SECCHAT_ERR_BAD_KEY (not a valid Ed25519 public key). */
SECCHAT_API int secchat_fingerprint(const uint8_t sign_pk[32], char *out, size_t cap);

/* secchat_fingerprint of the identity's own signing key. */
SECCHAT_API int secchat_identity_fingerprint(const secchat_identity *id, char *out, size_t cap);

/* Safety number of two users given their signing public keys: 60 decimal
 * digits printed as 12 groups of 5 separated by single spaces (71 chars +
 * NUL). Order-independent: (a, b) and (b, a) give the same string. Both
 * users see the same number iff they hold the same two keys. Takes 2 x 5200
 * BLAKE2b-512 iterations (a few milliseconds).
 * cap >= SECCHAT_SAFETY_NUMBER_BYTES. Errors: SECCHAT_ERR_INVALID_ARGUMENT,
 * SECCHAT_ERR_BUFFER_TOO_SMALL, SECCHAT_ERR_BAD_KEY. */
SECCHAT_API int secchat_safety_number(const uint8_t sign_pk_a[32], const uint8_t sign_pk_b[32],
                                      char *out, size_t cap);

/* Compare two safety-number strings (NUL-terminated) in constant time over
 * their digits, ignoring spaces (so a user may type them without the
 * grouping). Returns 1 if both hold the same 60 digits, 0 otherwise
 * (including NULL, any other character, or a digit count other than 60). */
SECCHAT_API int secchat_safety_number_equal(const char *a, const char *b);

/* Runtime forms of the size macros above, for bindings. */
SECCHAT_API size_t secchat_identity_blob_max_bytes(void);
SECCHAT_API size_t secchat_uid_string_bytes(void);
SECCHAT_API size_t secchat_fingerprint_bytes(void);
SECCHAT_API size_t secchat_safety_number_bytes(void);

#ifdef __cplusplus
}
#endif

#endif /* SECCHAT_IDENTITY_H */
