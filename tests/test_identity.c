/* test_identity.c: identities, export blobs, uid text, fingerprints, safety
 * numbers, low-order X25519 keys. Expected values come from libsodium
 * primitives called directly or from RFC 4648, never from the code under
 * test; byte-exact vectors are in tests/vectors/crypto_kat.json
 * (re-derived independently by tests/python/secchat_ref.py). */
#define _GNU_SOURCE /* memmem */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include <secchat/secchat.h>

#include "base32.h"
#include "crypto.h"
#include "identity.h"
#include "rng.h"
#include "testutil.h"

static secchat_identity *new_seeded(uint8_t seed_byte)
{
  uint8_t seed[32];
  sc_test_rng rng;
  memset(seed, seed_byte, sizeof seed);
  sc_test_rng_init(&rng, seed);
  sc_rng_set(sc_test_rng_fn, &rng);
  secchat_identity *id = NULL;
  ck_assert_int_eq(secchat_identity_new(&id), 0);
  sc_rng_set(NULL, NULL);
  return id;
}

START_TEST(new_identity_is_consistent)
{
  secchat_identity *id = NULL;
  ck_assert_int_eq(secchat_identity_new(&id), 0);
  const uint8_t *spk = secchat_identity_sign_public_key(id);
  const uint8_t *dpk = secchat_identity_dh_public_key(id);
  uint8_t uid[20], dpk2[32], signed_bytes[sizeof SC_CTX_DH + 32];
  /* uid = BLAKE2b-160(sign_pk) */
  crypto_generichash(uid, 20, spk, 32, NULL, 0);
  ck_assert_mem_eq(secchat_identity_uid(id), uid, 20);
  /* dh_pk = X25519 base point times the secret scalar */
  ck_assert_int_eq(crypto_scalarmult_base(dpk2, sc_identity_dh_sk(id)), 0);
  ck_assert_mem_eq(dpk, dpk2, 32);
  /* dh_sig verifies with plain libsodium over "secchat/dh/v1" 0x00 dh_pk */
  memcpy(signed_bytes, "secchat/dh/v1", 13);
  signed_bytes[13] = 0;
  memcpy(signed_bytes + 14, dpk, 32);
  ck_assert_int_eq(
      crypto_sign_verify_detached(secchat_identity_dh_sig(id), signed_bytes, 46, spk), 0);
  signed_bytes[20] ^= 1;
  ck_assert_int_ne(
      crypto_sign_verify_detached(secchat_identity_dh_sig(id), signed_bytes, 46, spk), 0);
  ck_assert_int_eq(sc_check_sign_pk(spk), 0);
  ck_assert_int_eq(sc_check_dh_pk(dpk), 0);
  secchat_identity_free(id);
  secchat_identity_free(NULL);
  ck_assert_int_eq(secchat_identity_new(NULL), SECCHAT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_null(secchat_identity_uid(NULL));
}
END_TEST

START_TEST(deterministic_rng_gives_same_identity)
{
  secchat_identity *a = new_seeded(7), *b = new_seeded(7), *c = new_seeded(8);
  ck_assert_mem_eq(secchat_identity_sign_public_key(a), secchat_identity_sign_public_key(b), 32);
  ck_assert_mem_eq(secchat_identity_dh_public_key(a), secchat_identity_dh_public_key(b), 32);
  ck_assert_mem_ne(secchat_identity_sign_public_key(a), secchat_identity_sign_public_key(c), 32);
  /* The signing seed is drawn first, then the X25519 scalar. */
  sc_test_rng rng;
  uint8_t seed[32], stream[64], pk[32], sk[64];
  memset(seed, 7, sizeof seed);
  sc_test_rng_init(&rng, seed);
  sc_test_rng_fn(&rng, stream, sizeof stream);
  crypto_sign_seed_keypair(pk, sk, stream);
  ck_assert_mem_eq(secchat_identity_sign_public_key(a), pk, 32);
  ck_assert_mem_eq(sc_identity_dh_sk(a), stream + 32, 32);
  secchat_identity_free(a);
  secchat_identity_free(b);
  secchat_identity_free(c);
}
END_TEST

START_TEST(uid_string_is_rfc4648_lowercase)
{
  /* RFC 4648 section 10: BASE32("fooba") = "MZXW6YTB". */
  const uint8_t uid[20] = "foobafoobafoobafooba";
  char s[SECCHAT_UID_STRING_BYTES];
  ck_assert_int_eq(secchat_uid_to_string(uid, s, sizeof s), 0);
  ck_assert_str_eq(s, "mzxw6ytbmzxw6ytbmzxw6ytbmzxw6ytb");
  ck_assert_int_eq(secchat_uid_to_string(uid, s, sizeof s - 1), SECCHAT_ERR_BUFFER_TOO_SMALL);
  ck_assert_int_eq(secchat_uid_to_string(NULL, s, sizeof s), SECCHAT_ERR_INVALID_ARGUMENT);

  secchat_identity *id = new_seeded(1);
  uint8_t back[20];
  ck_assert_int_eq(secchat_identity_uid_string(id, s, sizeof s), 0);
  ck_assert_uint_eq(strlen(s), 32);
  ck_assert_int_eq(sc_base32_decode(back, sizeof back, s, 32), 20);
  ck_assert_mem_eq(back, secchat_identity_uid(id), 20);
  secchat_identity_free(id);
}
END_TEST

/* ---- Blobs ---------------------------------------------------------------- */

static void assert_same_identity(const secchat_identity *a, const secchat_identity *b)
{
  ck_assert_mem_eq(secchat_identity_sign_public_key(a), secchat_identity_sign_public_key(b), 32);
  ck_assert_mem_eq(secchat_identity_dh_public_key(a), secchat_identity_dh_public_key(b), 32);
  ck_assert_mem_eq(secchat_identity_dh_sig(a), secchat_identity_dh_sig(b), 64);
  ck_assert_mem_eq(secchat_identity_uid(a), secchat_identity_uid(b), 20);
  ck_assert_mem_eq(sc_identity_sign_sk(a), sc_identity_sign_sk(b), 64);
  ck_assert_mem_eq(sc_identity_dh_sk(a), sc_identity_dh_sk(b), 32);
}

START_TEST(plain_blob_round_trip_and_errors)
{
  secchat_identity *id = new_seeded(2), *back = NULL;
  uint8_t blob[SECCHAT_IDENTITY_BLOB_MAX_BYTES + 8];
  size_t n = 0;
  ck_assert_int_eq(secchat_identity_export(id, NULL, 0, 0, 0, SECCHAT_IDENTITY_UNENCRYPTED, blob,
                                           sizeof blob, &n),
                   0);
  ck_assert_uint_eq(n, SECCHAT_IDENTITY_BLOB_PLAIN_BYTES);
  ck_assert_int_eq(secchat_identity_blob_is_encrypted(blob, n), 0);
  ck_assert_int_eq(secchat_identity_import(&back, blob, n, NULL, 0, SECCHAT_IDENTITY_UNENCRYPTED),
                   0);
  assert_same_identity(id, back);
  secchat_identity_free(back);
  back = NULL;

  /* Explicitness: a passphrase with UNENCRYPTED, or a plain blob without
   * the flag, is refused. */
  ck_assert_int_eq(secchat_identity_export(id, "pw", 2, 0, 0, SECCHAT_IDENTITY_UNENCRYPTED, blob,
                                           sizeof blob, &n),
                   SECCHAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(secchat_identity_export(id, NULL, 0, 0, 0, 0, blob, sizeof blob, &n),
                   SECCHAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(secchat_identity_export(id, NULL, 0, 0, 0, SECCHAT_IDENTITY_UNENCRYPTED, blob,
                                           SECCHAT_IDENTITY_BLOB_PLAIN_BYTES - 1, &n),
                   SECCHAT_ERR_BUFFER_TOO_SMALL);
  ck_assert_int_eq(secchat_identity_export(id, NULL, 0, 0, 0, SECCHAT_IDENTITY_UNENCRYPTED, blob,
                                           sizeof blob, &n),
                   0);
  ck_assert_int_eq(secchat_identity_import(&back, blob, n, "pw", 2, 0),
                   SECCHAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(secchat_identity_import(&back, blob, n, NULL, 0, 0),
                   SECCHAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(secchat_identity_import(&back, blob, n, NULL, 0, 7),
                   SECCHAT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_null(back);

  /* Truncations and extensions. */
  for (size_t len = 0; len < n; len++)
    ck_assert_int_eq(secchat_identity_import(&back, blob, len, NULL, 0,
                                             SECCHAT_IDENTITY_UNENCRYPTED),
                     SECCHAT_ERR_TRUNCATED);
  ck_assert_int_eq(
      secchat_identity_import(&back, blob, n + 1, NULL, 0, SECCHAT_IDENTITY_UNENCRYPTED),
      SECCHAT_ERR_TRAILING_BYTES);
  /* Any flipped byte is caught: header fields by their checks, the rest by
   * the checksum. */
  for (size_t i = 0; i < n; i++) {
    blob[i] ^= 0x40;
    int rc = secchat_identity_import(&back, blob, n, NULL, 0, SECCHAT_IDENTITY_UNENCRYPTED);
    ck_assert_int_lt(rc, 0);
    ck_assert_ptr_null(back);
    if (i >= 6)
      ck_assert_int_eq(rc, SECCHAT_ERR_PASSPHRASE);
    blob[i] ^= 0x40;
  }
  blob[0] = 'X';
  ck_assert_int_eq(secchat_identity_blob_is_encrypted(blob, n), SECCHAT_ERR_PROTOCOL);
  blob[0] = 'S';
  blob[4] = 2;
  ck_assert_int_eq(secchat_identity_blob_is_encrypted(blob, n), SECCHAT_ERR_VERSION);
  blob[4] = 1;
  blob[5] = 9;
  ck_assert_int_eq(secchat_identity_blob_is_encrypted(blob, n), SECCHAT_ERR_PROTOCOL);
  secchat_identity_free(id);
}
END_TEST

#define OPS_MIN SECCHAT_IDENTITY_OPSLIMIT_MIN
#define MEM_MIN SECCHAT_IDENTITY_MEMLIMIT_MIN

START_TEST(encrypted_blob_round_trip_and_errors)
{
  secchat_identity *id = new_seeded(3), *back = NULL;
  uint8_t blob[SECCHAT_IDENTITY_BLOB_MAX_BYTES];
  size_t n = 0;
  const char *pw = "correct horse battery staple";
  ck_assert_int_eq(
      secchat_identity_export(id, pw, strlen(pw), OPS_MIN, MEM_MIN, 0, blob, sizeof blob, &n), 0);
  ck_assert_uint_eq(n, SECCHAT_IDENTITY_BLOB_ENCRYPTED_BYTES);
  ck_assert_int_eq(secchat_identity_blob_is_encrypted(blob, n), 1);
  /* The secrets do not appear in the clear. */
  ck_assert_ptr_null(memmem(blob, n, sc_identity_sign_sk(id), 32));
  ck_assert_ptr_null(memmem(blob, n, sc_identity_dh_sk(id), 32));
  ck_assert_int_eq(secchat_identity_import(&back, blob, n, pw, strlen(pw), 0), 0);
  assert_same_identity(id, back);
  secchat_identity_free(back);
  back = NULL;

  /* Wrong passphrase; wrong kind; missing passphrase. */
  ck_assert_int_eq(secchat_identity_import(&back, blob, n, "Correct horse battery staple",
                                           strlen(pw), 0),
                   SECCHAT_ERR_PASSPHRASE);
  ck_assert_int_eq(secchat_identity_import(&back, blob, n, NULL, 0, SECCHAT_IDENTITY_UNENCRYPTED),
                   SECCHAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(secchat_identity_import(&back, blob, n, NULL, 0, 0),
                   SECCHAT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_null(back);

  /* Every byte after the header is authenticated (AD or ciphertext). The
   * cost fields are flipped to other in-bounds values. */
  for (size_t i = 6; i < n; i++) {
    uint8_t save = blob[i];
    if (i == 6)
      blob[i] = 2; /* opslimit 1 -> 2 */
    else if (i == 11)
      blob[i] ^= 0x40; /* memlimit 8192 -> 8192 + 16384 */
    else if (i > 6 && i < 18)
      continue; /* other cost bytes would leave the bounds: below */
    else
      blob[i] ^= 0x01;
    ck_assert_int_eq(secchat_identity_import(&back, blob, n, pw, strlen(pw), 0),
                     SECCHAT_ERR_PASSPHRASE);
    blob[i] = save;
  }
  for (size_t len = 0; len < n; len++)
    ck_assert_int_eq(secchat_identity_import(&back, blob, len, pw, strlen(pw), 0),
                     SECCHAT_ERR_TRUNCATED);
  ck_assert_ptr_null(back);
  secchat_identity_free(id);
}
END_TEST

static void put_le(uint8_t *p, uint64_t v, int n)
{
  for (int i = 0; i < n; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

START_TEST(absurd_kdf_params_rejected_before_work)
{
  secchat_identity *id = new_seeded(4), *back = NULL;
  uint8_t blob[SECCHAT_IDENTITY_BLOB_MAX_BYTES];
  size_t n = 0;
  ck_assert_int_eq(secchat_identity_export(id, "pw", 2, OPS_MIN, MEM_MIN, 0, blob, sizeof blob, &n),
                   0);
  static const struct {
    uint64_t ops, mem;
  } bad[] = {
      {0, MEM_MIN},
      {0xffffffffu, MEM_MIN},
      {SECCHAT_IDENTITY_OPSLIMIT_MAX + 1, MEM_MIN},
      {OPS_MIN, 0},
      {OPS_MIN, MEM_MIN - 1},
      {OPS_MIN, (uint64_t)SECCHAT_IDENTITY_MEMLIMIT_MAX + 1},
      {OPS_MIN, UINT64_MAX},
      {0xffffffffu, UINT64_MAX},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    uint8_t b[sizeof blob];
    memcpy(b, blob, n);
    put_le(b + 6, bad[i].ops, 4);
    put_le(b + 10, bad[i].mem, 8);
    /* Returned before Argon2id runs: with UINT64_MAX bytes it could not
     * have allocated, and with 2^32 passes it would not return here. */
    ck_assert_int_eq(secchat_identity_import(&back, b, n, "pw", 2, 0), SECCHAT_ERR_KDF_PARAMS);
    ck_assert_ptr_null(back);
    if (bad[i].ops && bad[i].mem)
      ck_assert_int_eq(
          secchat_identity_export(id, "pw", 2, bad[i].ops, bad[i].mem, 0, b, sizeof b, &n),
          SECCHAT_ERR_KDF_PARAMS);
    n = SECCHAT_IDENTITY_BLOB_ENCRYPTED_BYTES;
  }
  /* Export-side argument checks. */
  char longpw[SECCHAT_IDENTITY_PASSPHRASE_MAX + 1];
  memset(longpw, 'a', sizeof longpw);
  ck_assert_int_eq(
      secchat_identity_export(id, longpw, sizeof longpw, OPS_MIN, MEM_MIN, 0, blob, sizeof blob,
                              &n),
      SECCHAT_ERR_TOO_LONG);
  ck_assert_int_eq(secchat_identity_export(id, "pw", 0, OPS_MIN, MEM_MIN, 0, blob, sizeof blob, &n),
                   SECCHAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(secchat_identity_export(id, "pw", 2, OPS_MIN, MEM_MIN, 0, blob,
                                           SECCHAT_IDENTITY_BLOB_ENCRYPTED_BYTES - 1, &n),
                   SECCHAT_ERR_BUFFER_TOO_SMALL);
  secchat_identity_free(id);
}
END_TEST

START_TEST(default_kdf_params_are_interactive)
{
  secchat_identity *id = new_seeded(5), *back = NULL;
  uint8_t blob[SECCHAT_IDENTITY_BLOB_MAX_BYTES];
  size_t n = 0;
  ck_assert_int_eq(secchat_identity_export(id, "pw", 2, 0, 0, 0, blob, sizeof blob, &n), 0);
  uint64_t ops = 0, mem = 0;
  for (int i = 3; i >= 0; i--)
    ops = ops << 8 | blob[6 + i];
  for (int i = 7; i >= 0; i--)
    mem = mem << 8 | blob[10 + i];
  ck_assert_uint_eq(ops, crypto_pwhash_OPSLIMIT_INTERACTIVE);
  ck_assert_uint_eq(mem, crypto_pwhash_MEMLIMIT_INTERACTIVE);
  ck_assert_int_eq(secchat_identity_import(&back, blob, n, "pw", 2, 0), 0);
  assert_same_identity(id, back);
  secchat_identity_free(back);
  secchat_identity_free(id);
}
END_TEST

/* ---- Fingerprints and safety numbers ----------------------------------- */

START_TEST(fingerprint_format_and_value)
{
  secchat_identity *id = new_seeded(6);
  char fp[SECCHAT_FINGERPRINT_BYTES], fp2[SECCHAT_FINGERPRINT_BYTES];
  ck_assert_int_eq(secchat_identity_fingerprint(id, fp, sizeof fp), 0);
  ck_assert_uint_eq(strlen(fp), 19);
  for (int i = 0; i < 19; i++) {
    if (i % 5 == 4)
      ck_assert_int_eq(fp[i], '-');
    else
      ck_assert(strchr("abcdefghijklmnopqrstuvwxyz234567", fp[i]) && fp[i]);
  }
  /* Recompute: BLAKE2b-256("secchat/fpr/v1" 0x00 pk), first 10 bytes. */
  uint8_t in[15 + 32], h[32], back[10];
  char digits[17];
  memcpy(in, "secchat/fpr/v1", 15);
  memcpy(in + 15, secchat_identity_sign_public_key(id), 32);
  crypto_generichash(h, 32, in, sizeof in, NULL, 0);
  for (int g = 0; g < 4; g++)
    memcpy(digits + 4 * g, fp + 5 * g, 4);
  ck_assert_int_eq(sc_base32_decode(back, sizeof back, digits, 16), 10);
  ck_assert_mem_eq(back, h, 10);
  ck_assert_int_eq(secchat_fingerprint(secchat_identity_sign_public_key(id), fp2, sizeof fp2), 0);
  ck_assert_str_eq(fp, fp2);
  ck_assert_int_eq(secchat_fingerprint(secchat_identity_sign_public_key(id), fp2, 19),
                   SECCHAT_ERR_BUFFER_TOO_SMALL);
  static const uint8_t identity_point[32] = {1};
  ck_assert_int_eq(secchat_fingerprint(identity_point, fp2, sizeof fp2), SECCHAT_ERR_BAD_KEY);
  secchat_identity_free(id);
}
END_TEST

START_TEST(safety_number_properties)
{
  secchat_identity *a = new_seeded(10), *b = new_seeded(11), *c = new_seeded(12);
  const uint8_t *pa = secchat_identity_sign_public_key(a);
  const uint8_t *pb = secchat_identity_sign_public_key(b);
  const uint8_t *pc = secchat_identity_sign_public_key(c);
  char ab[SECCHAT_SAFETY_NUMBER_BYTES], ba[SECCHAT_SAFETY_NUMBER_BYTES],
      ac[SECCHAT_SAFETY_NUMBER_BYTES];
  ck_assert_int_eq(secchat_safety_number(pa, pb, ab, sizeof ab), 0);
  ck_assert_int_eq(secchat_safety_number(pb, pa, ba, sizeof ba), 0);
  ck_assert_int_eq(secchat_safety_number(pa, pc, ac, sizeof ac), 0);
  ck_assert_str_eq(ab, ba);
  ck_assert_uint_eq(strlen(ab), 71);
  for (int i = 0; i < 71; i++)
    ck_assert(i % 6 == 5 ? ab[i] == ' ' : (ab[i] >= '0' && ab[i] <= '9'));
  ck_assert_str_ne(ab, ac);
  /* One user's half is the same in both numbers (a's 30 digits appear in
   * ab and ac), the other differs. */
  ck_assert(memcmp(ab, ac, 35) == 0 || memcmp(ab + 36, ac + 36, 35) == 0 ||
            memcmp(ab, ac + 36, 35) == 0 || memcmp(ab + 36, ac, 35) == 0);

  ck_assert_int_eq(secchat_safety_number_equal(ab, ba), 1);
  ck_assert_int_eq(secchat_safety_number_equal(ab, ac), 0);
  char nospace[61], spaced[80];
  size_t k = 0;
  for (int i = 0; ab[i]; i++)
    if (ab[i] != ' ')
      nospace[k++] = ab[i];
  nospace[k] = 0;
  ck_assert_uint_eq(k, 60);
  ck_assert_int_eq(secchat_safety_number_equal(ab, nospace), 1);
  snprintf(spaced, sizeof spaced, "  %s  ", nospace);
  ck_assert_int_eq(secchat_safety_number_equal(spaced, ab), 1);
  nospace[59] = nospace[59] == '0' ? '1' : '0';
  ck_assert_int_eq(secchat_safety_number_equal(ab, nospace), 0);
  nospace[59] = 0; /* 59 digits */
  ck_assert_int_eq(secchat_safety_number_equal(nospace, nospace), 0);
  char bad[SECCHAT_SAFETY_NUMBER_BYTES];
  memcpy(bad, ab, sizeof bad);
  bad[3] = 'x';
  ck_assert_int_eq(secchat_safety_number_equal(bad, bad), 0);
  snprintf(spaced, sizeof spaced, "%s1", ab); /* 61 digits */
  ck_assert_int_eq(secchat_safety_number_equal(spaced, spaced), 0);
  ck_assert_int_eq(secchat_safety_number_equal(NULL, ab), 0);

  ck_assert_int_eq(secchat_safety_number(pa, pb, ab, 71), SECCHAT_ERR_BUFFER_TOO_SMALL);
  static const uint8_t zero[32];
  ck_assert_int_eq(secchat_safety_number(pa, zero, ab, sizeof ab), SECCHAT_ERR_BAD_KEY);
  ck_assert_int_eq(secchat_safety_number(pa, pa, ab, sizeof ab), 0);
  secchat_identity_free(a);
  secchat_identity_free(b);
  secchat_identity_free(c);
}
END_TEST

START_TEST(size_getters)
{
  ck_assert_uint_eq(secchat_identity_blob_max_bytes(), SECCHAT_IDENTITY_BLOB_MAX_BYTES);
  ck_assert_uint_eq(secchat_uid_string_bytes(), SECCHAT_UID_STRING_BYTES);
  ck_assert_uint_eq(secchat_fingerprint_bytes(), SECCHAT_FINGERPRINT_BYTES);
  ck_assert_uint_eq(secchat_safety_number_bytes(), SECCHAT_SAFETY_NUMBER_BYTES);
}
END_TEST

/* ---- Low-order X25519 keys ----------------------------------------------- */

START_TEST(low_order_x25519_rejected)
{
  /* The points of order 1, 2, 4 and 8, including the non-canonical
   * encodings p, p+1 (RFC 7748 section 6.1 asks implementations to
   * reject their all-zero results). */
  static const char *low[] = {
      "0000000000000000000000000000000000000000000000000000000000000000",
      "0100000000000000000000000000000000000000000000000000000000000000",
      "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
      "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
      "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
      "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
      "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
      /* the same seven with the ignored top bit set */
      "0000000000000000000000000000000000000000000000000000000000000080",
      "0100000000000000000000000000000000000000000000000000000000000080",
      "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b880",
      "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f11d7",
      "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
      "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
      "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
  };
  secchat_identity *id = new_seeded(13);
  for (size_t i = 0; i < sizeof low / sizeof low[0]; i++) {
    uint8_t pk[32], out[32];
    ck_assert_int_eq(tu_unhex(low[i], pk, sizeof pk), 32);
    ck_assert_int_eq(sc_check_dh_pk(pk), SECCHAT_ERR_BAD_KEY);
    memset(out, 0xaa, sizeof out);
    ck_assert_int_eq(sc_x25519(out, sc_identity_dh_sk(id), pk), SECCHAT_ERR_BAD_KEY);
    for (int j = 0; j < 32; j++)
      ck_assert_uint_eq(out[j], 0);
  }
  /* A real key passes and agrees both ways. */
  secchat_identity *other = new_seeded(14);
  uint8_t s1[32], s2[32];
  ck_assert_int_eq(sc_x25519(s1, sc_identity_dh_sk(id), secchat_identity_dh_public_key(other)), 0);
  ck_assert_int_eq(sc_x25519(s2, sc_identity_dh_sk(other), secchat_identity_dh_public_key(id)), 0);
  ck_assert_mem_eq(s1, s2, 32);
  secchat_identity_free(id);
  secchat_identity_free(other);
}
END_TEST

/* sc_check_dh_pk compares against a fixed list of low-order encodings;
 * libsodium decides the same question by multiplying. Both must agree on
 * every input: the list, its top-bit variants and random keys. */
START_TEST(dh_check_agrees_with_scalarmult)
{
  static const uint8_t probe[32] = {9};
  uint8_t pk[32], out[32];
  int rejected = 0;
  for (int i = 0; i < 4000; i++) {
    if (i < 512) {
      /* every list entry with both top-bit values, plus neighbours */
      memset(pk, i & 1 ? 0xff : 0, 32);
      pk[0] = (uint8_t)(i >> 1);
    } else {
      randombytes_buf(pk, sizeof pk);
    }
    int lib_bad = crypto_scalarmult(out, probe, pk) != 0;
    ck_assert_int_eq(sc_check_dh_pk(pk) == SECCHAT_ERR_BAD_KEY, lib_bad);
    rejected += lib_bad;
  }
  ck_assert_int_eq(rejected, 5); /* 0, 1, and p-1, p, p+1 (0xec..0xee) */
}
END_TEST

static Suite *identity_suite(void)
{
  Suite *s = suite_create("identity");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, new_identity_is_consistent);
  tcase_add_test(tc, deterministic_rng_gives_same_identity);
  tcase_add_test(tc, uid_string_is_rfc4648_lowercase);
  tcase_add_test(tc, plain_blob_round_trip_and_errors);
  tcase_add_test(tc, encrypted_blob_round_trip_and_errors);
  tcase_add_test(tc, absurd_kdf_params_rejected_before_work);
  tcase_add_test(tc, default_kdf_params_are_interactive);
  tcase_add_test(tc, fingerprint_format_and_value);
  tcase_add_test(tc, safety_number_properties);
  tcase_add_test(tc, size_getters);
  tcase_add_test(tc, low_order_x25519_rejected);
  tcase_add_test(tc, dh_check_agrees_with_scalarmult);
  suite_add_tcase(s, tc);
  return s;
}

int main(void)
{
  return tu_run(identity_suite());
}
