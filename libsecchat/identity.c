/* identity.c: identities, their export blobs, uid text and fingerprints
 * (see include/secchat/identity.h; byte formats in docs/crypto.md). */
#include "identity.h"

#include <string.h>

#include <sodium.h>

#include "base32.h"
#include "crypto.h"
#include "rng.h"

/* ---- Blob layout (docs/crypto.md, "Identity blobs") --------------------
 *   0  magic "SCID"            4
 *   4  version = 1             1
 *   5  kind: 1 plain, 2 enc    1
 * plain:     6 secrets (seed || dh_sk) 64, 70 checksum BLAKE2b-128(0..70) 16
 * encrypted: 6 opslimit LE32, 10 memlimit LE64, 18 salt 16, 34 nonce 24,
 *            58 XChaCha20-Poly1305(secrets) 64 + 16; ad = bytes 0..58 */
#define BLOB_MAGIC "SCID"
#define BLOB_VERSION 1
#define KIND_PLAIN 1
#define KIND_ENCRYPTED 2
#define HDR_LEN 6
#define SECRETS_LEN 64
#define PLAIN_SUM_OFF (HDR_LEN + SECRETS_LEN)
#define ENC_OPS_OFF 6
#define ENC_MEM_OFF 10
#define ENC_SALT_OFF 18
#define ENC_NONCE_OFF 34
#define ENC_CT_OFF 58

_Static_assert(PLAIN_SUM_OFF + 16 == SECCHAT_IDENTITY_BLOB_PLAIN_BYTES, "plain blob size");
_Static_assert(ENC_CT_OFF + SECRETS_LEN + 16 == SECCHAT_IDENTITY_BLOB_ENCRYPTED_BYTES,
               "encrypted blob size");
_Static_assert(crypto_pwhash_SALTBYTES == 16, "salt size");

int sc_identity_from_secrets(secchat_identity **out, const uint8_t sign_seed[32],
                             const uint8_t dh_sk[32])
{
  if (!out || !sign_seed || !dh_sk)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  *out = NULL;
  secchat_identity *id = sodium_malloc(sizeof *id);
  if (!id)
    return SECCHAT_ERR_NOMEM;
  int rc = SECCHAT_ERR_INTERNAL;
  if (crypto_sign_seed_keypair(id->sign_pk, id->sign_sk, sign_seed) != 0)
    goto fail;
  memcpy(id->dh_sk, dh_sk, 32);
  if (crypto_scalarmult_base(id->dh_pk, id->dh_sk) != 0)
    goto fail;
  rc = sc_sign_ctx(id->dh_sig, SC_CTX_DH, id->dh_pk, 32, id->sign_sk);
  if (rc)
    goto fail;
  sc_uid_from_sign_pk(id->uid, id->sign_pk);
  *out = id;
  return 0;
fail:
  sodium_free(id); /* sodium_free wipes before unmapping */
  return rc;
}

int secchat_identity_new(secchat_identity **out)
{
  uint8_t seed[32], dh_sk[32];
  if (!out)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  /* Order is part of the test vectors: signing seed first. */
  sc_random(seed, sizeof seed);
  sc_random(dh_sk, sizeof dh_sk);
  int rc = sc_identity_from_secrets(out, seed, dh_sk);
  sodium_memzero(seed, sizeof seed);
  sodium_memzero(dh_sk, sizeof dh_sk);
  return rc;
}

void secchat_identity_free(secchat_identity *id)
{
  if (id)
    sodium_free(id);
}

const uint8_t *sc_identity_sign_sk(const secchat_identity *id)
{
  return id->sign_sk;
}

const uint8_t *sc_identity_dh_sk(const secchat_identity *id)
{
  return id->dh_sk;
}

/* ---- Export / import ---------------------------------------------------- */

static void put_le32(uint8_t *p, uint32_t v)
{
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int n)
{
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; i--)
    v = (v << 8) | p[i];
  return v;
}

static int kdf_params_ok(uint64_t ops, uint64_t mem)
{
  return ops >= SECCHAT_IDENTITY_OPSLIMIT_MIN && ops <= SECCHAT_IDENTITY_OPSLIMIT_MAX &&
         mem >= SECCHAT_IDENTITY_MEMLIMIT_MIN && mem <= SECCHAT_IDENTITY_MEMLIMIT_MAX;
}

static int derive_blob_key(uint8_t key[32], const char *pass, size_t pass_len,
                           const uint8_t salt[16], uint64_t ops, uint64_t mem)
{
  /* Only reached with bounded parameters; the one failure mode left is
   * Argon2id failing to allocate its memlimit. */
  if (crypto_pwhash(key, 32, pass, pass_len, salt, ops, (size_t)mem,
                    crypto_pwhash_ALG_ARGON2ID13) != 0) {
    sodium_memzero(key, 32);
    return SECCHAT_ERR_NOMEM;
  }
  return 0;
}

static void write_header(uint8_t *out, uint8_t kind)
{
  memcpy(out, BLOB_MAGIC, 4);
  out[4] = BLOB_VERSION;
  out[5] = kind;
}

static int export_plain(const secchat_identity *id, uint8_t *out)
{
  write_header(out, KIND_PLAIN);
  memcpy(out + HDR_LEN, id->sign_sk, 32);
  memcpy(out + HDR_LEN + 32, id->dh_sk, 32);
  crypto_generichash(out + PLAIN_SUM_OFF, 16, out, PLAIN_SUM_OFF, NULL, 0);
  return 0;
}

static int export_encrypted(const secchat_identity *id, const char *pass, size_t pass_len,
                            uint64_t ops, uint64_t mem, uint8_t *out)
{
  uint8_t key[32];
  write_header(out, KIND_ENCRYPTED);
  put_le32(out + ENC_OPS_OFF, (uint32_t)ops);
  put_le64(out + ENC_MEM_OFF, mem);
  sc_random(out + ENC_SALT_OFF, 16);
  sc_random(out + ENC_NONCE_OFF, 24);
  int rc = derive_blob_key(key, pass, pass_len, out + ENC_SALT_OFF, ops, mem);
  if (rc)
    return rc;
  /* The secrets are copied into the output buffer and encrypted in place,
   * so no plaintext copy is left anywhere else. */
  memcpy(out + ENC_CT_OFF, id->sign_sk, 32);
  memcpy(out + ENC_CT_OFF + 32, id->dh_sk, 32);
  rc = sc_aead_xchacha_encrypt(out + ENC_CT_OFF, out + ENC_CT_OFF, SECRETS_LEN, out,
                               ENC_CT_OFF, out + ENC_NONCE_OFF, key);
  sodium_memzero(key, sizeof key);
  return rc;
}

int secchat_identity_export(const secchat_identity *id, const char *passphrase,
                            size_t passphrase_len, uint64_t opslimit, uint64_t memlimit,
                            uint32_t flags, uint8_t *out, size_t cap, size_t *out_len)
{
  if (!id || !out || !out_len || (flags & ~SECCHAT_IDENTITY_UNENCRYPTED))
    return SECCHAT_ERR_INVALID_ARGUMENT;
  *out_len = 0;
  if (flags & SECCHAT_IDENTITY_UNENCRYPTED) {
    if (passphrase || passphrase_len || opslimit || memlimit)
      return SECCHAT_ERR_INVALID_ARGUMENT;
    if (cap < SECCHAT_IDENTITY_BLOB_PLAIN_BYTES)
      return SECCHAT_ERR_BUFFER_TOO_SMALL;
    export_plain(id, out);
    *out_len = SECCHAT_IDENTITY_BLOB_PLAIN_BYTES;
    return 0;
  }
  if (!passphrase || passphrase_len == 0)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  if (passphrase_len > SECCHAT_IDENTITY_PASSPHRASE_MAX)
    return SECCHAT_ERR_TOO_LONG;
  if (!opslimit)
    opslimit = SECCHAT_IDENTITY_OPSLIMIT_DEFAULT;
  if (!memlimit)
    memlimit = SECCHAT_IDENTITY_MEMLIMIT_DEFAULT;
  if (!kdf_params_ok(opslimit, memlimit))
    return SECCHAT_ERR_KDF_PARAMS;
  if (cap < SECCHAT_IDENTITY_BLOB_ENCRYPTED_BYTES)
    return SECCHAT_ERR_BUFFER_TOO_SMALL;
  int rc = export_encrypted(id, passphrase, passphrase_len, opslimit, memlimit, out);
  if (rc) {
    sodium_memzero(out, SECCHAT_IDENTITY_BLOB_ENCRYPTED_BYTES);
    return rc;
  }
  *out_len = SECCHAT_IDENTITY_BLOB_ENCRYPTED_BYTES;
  return 0;
}

/* Checks magic, version, kind and exact length. Returns the kind or an
 * error code. */
static int blob_kind(const uint8_t *blob, size_t len)
{
  if (!blob)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  if (len < HDR_LEN)
    return SECCHAT_ERR_TRUNCATED;
  if (memcmp(blob, BLOB_MAGIC, 4) != 0)
    return SECCHAT_ERR_PROTOCOL;
  if (blob[4] != BLOB_VERSION)
    return SECCHAT_ERR_VERSION;
  size_t want;
  if (blob[5] == KIND_PLAIN)
    want = SECCHAT_IDENTITY_BLOB_PLAIN_BYTES;
  else if (blob[5] == KIND_ENCRYPTED)
    want = SECCHAT_IDENTITY_BLOB_ENCRYPTED_BYTES;
  else
    return SECCHAT_ERR_PROTOCOL;
  if (len < want)
    return SECCHAT_ERR_TRUNCATED;
  if (len > want)
    return SECCHAT_ERR_TRAILING_BYTES;
  return blob[5];
}

int secchat_identity_blob_is_encrypted(const uint8_t *blob, size_t len)
{
  int kind = blob_kind(blob, len);
  if (kind < 0)
    return kind;
  return kind == KIND_ENCRYPTED;
}

static int import_plain(secchat_identity **out, const uint8_t *blob)
{
  uint8_t sum[16];
  crypto_generichash(sum, sizeof sum, blob, PLAIN_SUM_OFF, NULL, 0);
  /* Not a MAC (anyone can recompute it): it only catches corruption. */
  if (sodium_memcmp(sum, blob + PLAIN_SUM_OFF, 16) != 0)
    return SECCHAT_ERR_PASSPHRASE;
  return sc_identity_from_secrets(out, blob + HDR_LEN, blob + HDR_LEN + 32);
}

static int import_encrypted(secchat_identity **out, const uint8_t *blob, const char *pass,
                            size_t pass_len)
{
  uint64_t ops = get_le(blob + ENC_OPS_OFF, 4);
  uint64_t mem = get_le(blob + ENC_MEM_OFF, 8);
  if (!kdf_params_ok(ops, mem))
    return SECCHAT_ERR_KDF_PARAMS;
  uint8_t key[32], secrets[SECRETS_LEN];
  int rc = derive_blob_key(key, pass, pass_len, blob + ENC_SALT_OFF, ops, mem);
  if (rc)
    return rc;
  rc = sc_aead_xchacha_decrypt(secrets, blob + ENC_CT_OFF, SECRETS_LEN + 16, blob, ENC_CT_OFF,
                               blob + ENC_NONCE_OFF, key);
  sodium_memzero(key, sizeof key);
  if (rc)
    return SECCHAT_ERR_PASSPHRASE;
  rc = sc_identity_from_secrets(out, secrets, secrets + 32);
  sodium_memzero(secrets, sizeof secrets);
  return rc;
}

int secchat_identity_import(secchat_identity **out, const uint8_t *blob, size_t len,
                            const char *passphrase, size_t passphrase_len, uint32_t flags)
{
  if (!out || (flags & ~SECCHAT_IDENTITY_UNENCRYPTED))
    return SECCHAT_ERR_INVALID_ARGUMENT;
  *out = NULL;
  int kind = blob_kind(blob, len);
  if (kind < 0)
    return kind;
  if (flags & SECCHAT_IDENTITY_UNENCRYPTED) {
    if (kind != KIND_PLAIN || passphrase || passphrase_len)
      return SECCHAT_ERR_INVALID_ARGUMENT;
    return import_plain(out, blob);
  }
  if (kind != KIND_ENCRYPTED || !passphrase || passphrase_len == 0)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  if (passphrase_len > SECCHAT_IDENTITY_PASSPHRASE_MAX)
    return SECCHAT_ERR_TOO_LONG;
  return import_encrypted(out, blob, passphrase, passphrase_len);
}

/* ---- Public parts and text forms --------------------------------------- */

const uint8_t *secchat_identity_uid(const secchat_identity *id)
{
  return id ? id->uid : NULL;
}

const uint8_t *secchat_identity_sign_public_key(const secchat_identity *id)
{
  return id ? id->sign_pk : NULL;
}

const uint8_t *secchat_identity_dh_public_key(const secchat_identity *id)
{
  return id ? id->dh_pk : NULL;
}

const uint8_t *secchat_identity_dh_sig(const secchat_identity *id)
{
  return id ? id->dh_sig : NULL;
}

int secchat_uid_to_string(const uint8_t uid[20], char *out, size_t cap)
{
  if (!uid || !out)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  if (cap < SECCHAT_UID_STRING_BYTES)
    return SECCHAT_ERR_BUFFER_TOO_SMALL;
  int rc = sc_base32_encode(out, cap, uid, 20);
  return rc < 0 ? rc : 0;
}

int secchat_identity_uid_string(const secchat_identity *id, char *out, size_t cap)
{
  if (!id)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  return secchat_uid_to_string(id->uid, out, cap);
}

int secchat_fingerprint(const uint8_t sign_pk[32], char *out, size_t cap)
{
  if (!sign_pk || !out)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  if (cap < SECCHAT_FINGERPRINT_BYTES)
    return SECCHAT_ERR_BUFFER_TOO_SMALL;
  if (sc_check_sign_pk(sign_pk))
    return SECCHAT_ERR_BAD_KEY;
  uint8_t in[sizeof SC_CTX_FPR + 32], h[32];
  char b32[17];
  memcpy(in, SC_CTX_FPR, sizeof SC_CTX_FPR); /* includes the 0x00 separator */
  memcpy(in + sizeof SC_CTX_FPR, sign_pk, 32);
  crypto_generichash(h, sizeof h, in, sizeof in, NULL, 0);
  if (sc_base32_encode(b32, sizeof b32, h, 10) != 16)
    return SECCHAT_ERR_INTERNAL;
  for (int g = 0, o = 0; g < 4; g++) {
    memcpy(out + o, b32 + 4 * g, 4);
    o += 4;
    out[o++] = g < 3 ? '-' : '\0';
  }
  return 0;
}

int secchat_identity_fingerprint(const secchat_identity *id, char *out, size_t cap)
{
  if (!id)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  return secchat_fingerprint(id->sign_pk, out, cap);
}

size_t secchat_identity_blob_max_bytes(void)
{
  return SECCHAT_IDENTITY_BLOB_MAX_BYTES;
}

size_t secchat_uid_string_bytes(void)
{
  return SECCHAT_UID_STRING_BYTES;
}

size_t secchat_fingerprint_bytes(void)
{
  return SECCHAT_FINGERPRINT_BYTES;
}
