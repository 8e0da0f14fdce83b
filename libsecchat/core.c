/* core.c: library initialisation, version, error strings and size getters. */
#include <secchat/secchat.h>

#include <sodium.h>

int secchat_init(void)
{
  /* sodium_init() is itself thread-safe and idempotent (returns 1 when
   * already initialised); it also seeds randombytes. */
  return sodium_init() < 0 ? SECCHAT_ERR_CRYPTO_INIT : SECCHAT_OK;
}

const char *secchat_version_string(void) { return SECCHAT_VERSION_STRING; }

uint32_t secchat_version_number(void) { return SECCHAT_VERSION_NUMBER; }

struct error_info {
  int code;
  const char *name;
  const char *text;
};

#define E(code, text) {code, #code, text}
static const struct error_info errors[] = {
  E(SECCHAT_OK, "success"),
  E(SECCHAT_ERR_INVALID_ARGUMENT, "invalid argument"),
  E(SECCHAT_ERR_BUFFER_TOO_SMALL, "output buffer too small"),
  E(SECCHAT_ERR_INVALID_STATE, "operation not allowed in this state"),
  E(SECCHAT_ERR_NOT_INITIALIZED, "library not initialised"),
  E(SECCHAT_ERR_NOT_FOUND, "not found"),
  E(SECCHAT_ERR_EXISTS, "already exists"),
  E(SECCHAT_ERR_TOO_LONG, "input too long"),
  E(SECCHAT_ERR_AMBIGUOUS, "name matches several identities"),
  E(SECCHAT_ERR_PROTOCOL, "protocol violation"),
  E(SECCHAT_ERR_FRAME_EMPTY, "empty frame (length prefix 0)"),
  E(SECCHAT_ERR_FRAME_TOO_LARGE, "frame larger than the limit"),
  E(SECCHAT_ERR_TRUNCATED, "truncated input"),
  E(SECCHAT_ERR_COUNT_OVERFLOW, "declared length exceeds the remaining bytes"),
  E(SECCHAT_ERR_DEPTH, "nesting too deep"),
  E(SECCHAT_ERR_NONCANONICAL, "non-canonical encoding"),
  E(SECCHAT_ERR_TRAILING_BYTES, "trailing bytes after the object"),
  E(SECCHAT_ERR_FORBIDDEN_TYPE, "msgpack type not allowed"),
  E(SECCHAT_ERR_SCHEMA, "frame does not match its schema"),
  E(SECCHAT_ERR_BAD_UTF8, "invalid UTF-8 in string"),
  E(SECCHAT_ERR_NUL_IN_STRING, "NUL character in string"),
  E(SECCHAT_ERR_BAD_LENGTH, "field has the wrong length"),
  E(SECCHAT_ERR_UNKNOWN_FRAME, "unknown frame type"),
  E(SECCHAT_ERR_INVALID_BYTE, "reserved msgpack byte"),
  E(SECCHAT_ERR_BAD_PADDING, "malformed transport padding"),
  E(SECCHAT_ERR_UNEXPECTED_FRAME, "frame not allowed in this state"),
  E(SECCHAT_ERR_VERSION, "incompatible protocol version"),
  E(SECCHAT_ERR_AUTH, "authentication failed"),
  E(SECCHAT_ERR_DECRYPT, "decryption failed"),
  E(SECCHAT_ERR_SIGNATURE, "invalid signature"),
  E(SECCHAT_ERR_REPLAY, "replayed message"),
  E(SECCHAT_ERR_BAD_KEY, "malformed or weak key"),
  E(SECCHAT_ERR_TOO_FAR_AHEAD, "message too far ahead of the ratchet"),
  E(SECCHAT_ERR_NONCE_EXHAUSTED, "cipher nonces exhausted"),
  E(SECCHAT_ERR_HANDSHAKE, "handshake failed"),
  E(SECCHAT_ERR_PASSPHRASE, "wrong passphrase or corrupt data"),
  E(SECCHAT_ERR_KDF_PARAMS, "key derivation parameters out of bounds"),
  E(SECCHAT_ERR_TOKEN_EXPIRED, "token expired"),
  E(SECCHAT_ERR_KEY_MISMATCH, "key does not match the pinned key"),
  E(SECCHAT_ERR_IDENTITY_CHANGED, "identity changed for a pinned name"),
  E(SECCHAT_ERR_LIMIT, "limit exceeded"),
  E(SECCHAT_ERR_RATE_LIMITED, "rate limited"),
  E(SECCHAT_ERR_QUEUE_FULL, "output queue full"),
  E(SECCHAT_ERR_TOO_MANY, "too many items"),
  E(SECCHAT_ERR_TIMEOUT, "deadline passed"),
  E(SECCHAT_ERR_NOMEM, "out of memory"),
  E(SECCHAT_ERR_INTERNAL, "internal error"),
  E(SECCHAT_ERR_CRYPTO_INIT, "cryptography library initialisation failed"),
};
#undef E

static const struct error_info *find_error(int code)
{
  for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++)
    if (errors[i].code == code)
      return &errors[i];
  return NULL;
}

const char *secchat_strerror(int code)
{
  const struct error_info *e = find_error(code);
  return e ? e->text : "unknown error";
}

const char *secchat_error_name(int code)
{
  const struct error_info *e = find_error(code);
  return e ? e->name : "SECCHAT_ERR_UNKNOWN";
}

int secchat_is_fatal(int code) { return code <= -900 && code > -1000; }

size_t secchat_max_wire_message(void) { return SECCHAT_MAX_WIRE_MESSAGE; }
size_t secchat_max_frame_body(void) { return SECCHAT_MAX_FRAME_BODY; }
size_t secchat_max_token_bytes(void) { return SECCHAT_MAX_TOKEN_BYTES; }
size_t secchat_sign_publickey_bytes(void) { return SECCHAT_SIGN_PUBLICKEY_BYTES; }
size_t secchat_signature_bytes(void) { return SECCHAT_SIGNATURE_BYTES; }
size_t secchat_dh_publickey_bytes(void) { return SECCHAT_DH_PUBLICKEY_BYTES; }
size_t secchat_uid_bytes(void) { return SECCHAT_UID_BYTES; }
size_t secchat_route_id_bytes(void) { return SECCHAT_ROUTE_ID_BYTES; }
size_t secchat_chat_id_bytes(void) { return SECCHAT_CHAT_ID_BYTES; }
size_t secchat_msg_id_bytes(void) { return SECCHAT_MSG_ID_BYTES; }
size_t secchat_hash_bytes(void) { return SECCHAT_HASH_BYTES; }

/* The public sizes must agree with libsodium's, checked at compile time. */
_Static_assert(SECCHAT_SIGN_PUBLICKEY_BYTES == crypto_sign_PUBLICKEYBYTES, "ed25519 pk");
_Static_assert(SECCHAT_SIGNATURE_BYTES == crypto_sign_BYTES, "ed25519 sig");
_Static_assert(SECCHAT_DH_PUBLICKEY_BYTES == crypto_scalarmult_BYTES, "x25519 pk");
_Static_assert(SECCHAT_MAX_TRANSPORT_PLAINTEXT ==
                   SECCHAT_MAX_WIRE_MESSAGE - SECCHAT_AEAD_TAG_BYTES, "plaintext");
_Static_assert(SECCHAT_MAX_FRAME_BODY == SECCHAT_MAX_TRANSPORT_PLAINTEXT - 2, "body");
