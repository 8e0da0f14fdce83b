/* test_chatd_keys.c: server key files: create, load, refuse bad ones (B3,
 * D10), fingerprint consistent with the library's own computation. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "chatd_testutil.h"
#include "keys.h"
#include "secfile.h"

static char *dir;
static char tpath[512], npath[512], err[1024];

static void setup(void)
{
  ck_assert_int_eq(secchat_init(), 0);
  dir = ctu_tmpdir();
  snprintf(tpath, sizeof tpath, "%s/%s", dir, CHATD_TOKEN_KEY_FILE);
  snprintf(npath, sizeof npath, "%s/%s", dir, CHATD_NOISE_KEY_FILE);
}

static void teardown(void)
{
  ctu_rm_rf(dir);
  free(dir);
}

static unsigned mode_of(const char *p)
{
  struct stat st;
  ck_assert_int_eq(stat(p, &st), 0);
  return st.st_mode & 07777;
}

START_TEST(test_create_load)
{
  chatd_keys k, k2;
  ck_assert_int_eq(chatd_keys_load(&k, dir, err, sizeof err), CHATD_KEYS_MISSING);
  ck_assert_int_eq(chatd_keys_create(dir, err, sizeof err), 0);
  ck_assert_uint_eq(mode_of(tpath), 0600);
  ck_assert_uint_eq(mode_of(npath), 0600);
  ck_assert_int_eq(chatd_keys_load(&k, dir, err, sizeof err), 0);
  ck_assert_uint_eq(strlen(k.fingerprint), SECCHAT_SERVER_FINGERPRINT_STRING_BYTES - 1);
  ck_assert_ptr_nonnull(strstr(k.public_pem, "-----BEGIN PUBLIC KEY-----"));
  /* The fingerprint is the library's hash of the two public keys. */
  uint8_t pk[32], fp[SECCHAT_SERVER_FINGERPRINT_BYTES];
  char fps[SECCHAT_SERVER_FINGERPRINT_STRING_BYTES];
  ck_assert_int_eq(secchat_server_noise_public(k.noise_sk, pk), 0);
  ck_assert_mem_eq(pk, k.noise_pk, 32);
  ck_assert_int_eq(secchat_server_fingerprint(pk, k.public_pem, strlen(k.public_pem), fp), 0);
  ck_assert_int_eq(secchat_server_fingerprint_string(fp, fps, sizeof fps), 0);
  ck_assert_str_eq(fps, k.fingerprint);
  /* Loading again gives the same keys; creating again refuses to overwrite. */
  ck_assert_int_eq(chatd_keys_load(&k2, dir, err, sizeof err), 0);
  ck_assert_str_eq(k.fingerprint, k2.fingerprint);
  chatd_keys_clear(&k2);
  ck_assert_int_eq(chatd_keys_create(dir, err, sizeof err), CHATD_KEYS_BAD);
  ck_assert_int_eq(chatd_keys_load(&k2, dir, err, sizeof err), 0);
  ck_assert_str_eq(k.fingerprint, k2.fingerprint);
  chatd_keys_clear(&k);
  chatd_keys_clear(&k2);
  ck_assert_ptr_null(k.token);
}
END_TEST

static void expect_refused(const char *what)
{
  chatd_keys k;
  ck_assert_int_eq(chatd_keys_load(&k, dir, err, sizeof err), CHATD_KEYS_BAD);
  ck_assert_msg(strstr(err, what) != NULL, "message '%s' lacks '%s'", err, what);
  ck_assert_ptr_null(k.token);
}

START_TEST(test_refuse_bad_files)
{
  size_t tlen, nlen;
  ck_assert_int_eq(chatd_keys_create(dir, err, sizeof err), 0);
  char *tok = ctu_read_file(tpath, &tlen);
  char *nk = ctu_read_file(npath, &nlen);
  ck_assert_uint_eq(nlen, 32);

  ctu_write_file(tpath, "", 0, 0600); /* empty */
  expect_refused(tpath);
  ctu_write_file(tpath, tok, tlen / 2, 0600); /* truncated */
  expect_refused("not a valid P-256 private key");
  char *bad = strdup(tok);
  bad[40] ^= 0x11; /* corrupt base64 */
  ctu_write_file(tpath, bad, tlen, 0600);
  expect_refused("not a valid P-256 private key");
  ctu_write_file(tpath, tok, tlen, 0644); /* group/world readable */
  expect_refused("mode 0644");
  ctu_write_file(tpath, tok, tlen, 0640);
  expect_refused("mode 0640");
  ctu_write_file(tpath, tok, tlen, 0600);

  ctu_write_file(npath, nk, 31, 0600); /* truncated Noise key */
  expect_refused("must be exactly 32");
  ctu_write_file(npath, "", 0, 0600);
  expect_refused(npath);
  ctu_write_file(npath, nk, 32, 0604);
  expect_refused("mode 0604");
  unlink(npath); /* half a pair */
  expect_refused("is missing");
  ctu_write_file(npath, nk, 32, 0600);
  chatd_keys k;
  ck_assert_int_eq(chatd_keys_load(&k, dir, err, sizeof err), 0);
  chatd_keys_clear(&k);
  free(tok);
  free(nk);
  free(bad);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("chatd_keys");
  TCase *tc = tcase_create("keys");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_create_load);
  tcase_add_test(tc, test_refuse_bad_files);
  suite_add_tcase(s, tc);
  return ctu_run(s);
}
