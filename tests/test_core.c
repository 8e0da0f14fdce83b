/* test_core.c: library basics: init, version, errors, size getters. */
#include <stdlib.h>
#include <string.h>

#include <secchat/secchat.h>

#include "testutil.h"

START_TEST(init_is_idempotent)
{
  ck_assert_int_eq(secchat_init(), 0);
  ck_assert_int_eq(secchat_init(), 0);
}
END_TEST

START_TEST(version_matches_header)
{
  ck_assert_str_eq(secchat_version_string(), SECCHAT_VERSION_STRING);
  ck_assert_uint_eq(secchat_version_number(), SECCHAT_VERSION_NUMBER);
  ck_assert_uint_eq(secchat_version_number() >> 16, SECCHAT_VERSION_MAJOR);
}
END_TEST

START_TEST(sizes_match_getters)
{
  ck_assert_uint_eq(secchat_max_wire_message(), SECCHAT_MAX_WIRE_MESSAGE);
  ck_assert_uint_eq(secchat_max_frame_body(), SECCHAT_MAX_FRAME_BODY);
  ck_assert_uint_eq(secchat_max_token_bytes(), SECCHAT_MAX_TOKEN_BYTES);
  ck_assert_uint_eq(secchat_sign_publickey_bytes(), SECCHAT_SIGN_PUBLICKEY_BYTES);
  ck_assert_uint_eq(secchat_signature_bytes(), SECCHAT_SIGNATURE_BYTES);
  ck_assert_uint_eq(secchat_dh_publickey_bytes(), SECCHAT_DH_PUBLICKEY_BYTES);
  ck_assert_uint_eq(secchat_uid_bytes(), SECCHAT_UID_BYTES);
  ck_assert_uint_eq(secchat_route_id_bytes(), SECCHAT_ROUTE_ID_BYTES);
  ck_assert_uint_eq(secchat_chat_id_bytes(), SECCHAT_CHAT_ID_BYTES);
  ck_assert_uint_eq(secchat_msg_id_bytes(), SECCHAT_MSG_ID_BYTES);
  ck_assert_uint_eq(secchat_hash_bytes(), SECCHAT_HASH_BYTES);
  /* The derivation documented in docs/protocol.md. */
  ck_assert_uint_eq(SECCHAT_MAX_FRAME_BODY + 2 + SECCHAT_AEAD_TAG_BYTES, SECCHAT_MAX_WIRE_MESSAGE);
}
END_TEST

START_TEST(every_code_has_text_and_range)
{
  /* Every code in every range has its own name and text; unknown codes get
   * the fallback and are never NULL. */
  int known = 0;
  for (int code = -999; code <= 0; code++) {
    const char *name = secchat_error_name(code);
    const char *text = secchat_strerror(code);
    ck_assert_ptr_nonnull(name);
    ck_assert_ptr_nonnull(text);
    if (strcmp(name, "SECCHAT_ERR_UNKNOWN") == 0) {
      ck_assert_str_eq(text, "unknown error");
      continue;
    }
    known++;
    ck_assert_str_ne(text, "unknown error");
    ck_assert_int_eq(secchat_is_fatal(code), code <= -900);
  }
  ck_assert_int_ge(known, 40);
  ck_assert_str_eq(secchat_error_name(SECCHAT_ERR_DECRYPT), "SECCHAT_ERR_DECRYPT");
  ck_assert_str_eq(secchat_strerror(12345), "unknown error");
  ck_assert_int_eq(secchat_is_fatal(SECCHAT_ERR_NOMEM), 1);
  ck_assert_int_eq(secchat_is_fatal(SECCHAT_ERR_AUTH), 0);
  ck_assert_int_eq(secchat_is_fatal(0), 0);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("core");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, init_is_idempotent);
  tcase_add_test(tc, version_matches_header);
  tcase_add_test(tc, sizes_match_getters);
  tcase_add_test(tc, every_code_has_text_and_range);
  suite_add_tcase(s, tc);
  return tu_run(s);
}
