/* Interactive line parsing (slash.c, command.c). */
#include "slash.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char err[512];

static chatc_cmd parse_ok(const char *line)
{
  chatc_cmd c;
  int rc = chatc_slash_parse(line, strlen(line), &c, err, sizeof(err));

  ck_assert_msg(rc == CHATC_PARSE_OK, "%s -> %d %s", line, rc, err);
  return c;
}

static int parse_rc(const char *line)
{
  chatc_cmd c;
  int rc = chatc_slash_parse(line, strlen(line), &c, err, sizeof(err));

  ck_assert_int_eq(c.kind, CHATC_CMD_NONE); /* cleared on failure */
  ck_assert_ptr_null(c.user);
  return rc;
}

START_TEST(every_command)
{
  static const char sn[] = "12345 67890 12345 67890 12345 67890 12345 67890 12345 67890 "
                           "12345 67890";
  char line[256];
  chatc_cmd c;

  c = parse_ok("/register alice");
  ck_assert_int_eq(c.kind, CHATC_CMD_REGISTER);
  ck_assert_str_eq(c.name, "alice");
  chatc_cmd_clear(&c);
  c = parse_ok("/login");
  ck_assert_int_eq(c.kind, CHATC_CMD_LOGIN);
  chatc_cmd_clear(&c);
  c = parse_ok("/chats");
  ck_assert_int_eq(c.kind, CHATC_CMD_CHATS);
  chatc_cmd_clear(&c);
  c = parse_ok("/create \"book club\"");
  ck_assert_int_eq(c.kind, CHATC_CMD_CREATE);
  ck_assert_str_eq(c.name, "book club");
  chatc_cmd_clear(&c);
  c = parse_ok("/switch 0123abcd");
  ck_assert_int_eq(c.kind, CHATC_CMD_SWITCH);
  ck_assert_str_eq(c.chat, "0123abcd");
  chatc_cmd_clear(&c);
  c = parse_ok("/invite bob#abcd-efgh-ijkl-mnop");
  ck_assert_int_eq(c.kind, CHATC_CMD_INVITE);
  ck_assert_ptr_null(c.chat); /* the current chat */
  ck_assert_str_eq(c.user, "bob#abcd-efgh-ijkl-mnop");
  chatc_cmd_clear(&c);
  c = parse_ok("/accept c1");
  ck_assert_int_eq(c.kind, CHATC_CMD_ACCEPT);
  ck_assert_str_eq(c.chat, "c1");
  chatc_cmd_clear(&c);
  c = parse_ok("/decline c2");
  ck_assert_int_eq(c.kind, CHATC_CMD_DECLINE);
  ck_assert_str_eq(c.chat, "c2");
  chatc_cmd_clear(&c);
  c = parse_ok("/leave");
  ck_assert_int_eq(c.kind, CHATC_CMD_LEAVE);
  chatc_cmd_clear(&c);
  c = parse_ok("/remove carol");
  ck_assert_int_eq(c.kind, CHATC_CMD_REMOVE);
  ck_assert_str_eq(c.user, "carol");
  chatc_cmd_clear(&c);
  c = parse_ok("/members");
  ck_assert_int_eq(c.kind, CHATC_CMD_MEMBERS);
  chatc_cmd_clear(&c);
  c = parse_ok("/dm dave");
  ck_assert_int_eq(c.kind, CHATC_CMD_DM);
  ck_assert_str_eq(c.user, "dave");
  chatc_cmd_clear(&c);
  c = parse_ok("/history");
  ck_assert_int_eq(c.kind, CHATC_CMD_HISTORY);
  ck_assert_uint_eq(c.limit, 0);
  chatc_cmd_clear(&c);
  c = parse_ok("/history 20");
  ck_assert_uint_eq(c.limit, 20);
  chatc_cmd_clear(&c);
  c = parse_ok("/fingerprint");
  ck_assert_int_eq(c.kind, CHATC_CMD_FINGERPRINT);
  ck_assert_ptr_null(c.user);
  chatc_cmd_clear(&c);
  c = parse_ok("/fingerprint bob");
  ck_assert_str_eq(c.user, "bob");
  chatc_cmd_clear(&c);
  snprintf(line, sizeof(line), "/verify bob %s  ", sn);
  c = parse_ok(line);
  ck_assert_int_eq(c.kind, CHATC_CMD_VERIFY);
  ck_assert_str_eq(c.user, "bob");
  ck_assert_uint_eq(strlen(c.safety_number), 60);
  ck_assert_str_eq(c.safety_number,
                   "123456789012345678901234567890123456789012345678901234567890");
  chatc_cmd_clear(&c);
  c = parse_ok("/trust bob");
  ck_assert_int_eq(c.kind, CHATC_CMD_TRUST);
  chatc_cmd_clear(&c);
  c = parse_ok("/help");
  ck_assert_int_eq(c.kind, CHATC_CMD_HELP);
  chatc_cmd_clear(&c);
  c = parse_ok("/quit\r\n");
  ck_assert_int_eq(c.kind, CHATC_CMD_QUIT);
  chatc_cmd_clear(&c);
  ck_assert_int_eq(c.kind, CHATC_CMD_NONE);
}
END_TEST

START_TEST(plain_text)
{
  chatc_cmd c = parse_ok("  hello, world  \n");

  ck_assert_int_eq(c.kind, CHATC_CMD_SEND);
  ck_assert_ptr_null(c.chat);
  ck_assert_str_eq(c.text, "  hello, world  "); /* verbatim */
  ck_assert_uint_eq(c.text_len, 16);
  chatc_cmd_clear(&c);
  c = parse_ok("//not a command");
  ck_assert_int_eq(c.kind, CHATC_CMD_SEND);
  ck_assert_str_eq(c.text, "/not a command");
  chatc_cmd_clear(&c);
  c = parse_ok("caf\xc3\xa9 \x1b[2J"); /* escapes are sent as typed, shown escaped */
  ck_assert_str_eq(c.text, "caf\xc3\xa9 \x1b[2J");
  chatc_cmd_clear(&c);
}
END_TEST

START_TEST(quoting)
{
  chatc_cmd c = parse_ok("/create \"a \\\"quoted\\\" name\"");

  ck_assert_str_eq(c.name, "a \"quoted\" name");
  chatc_cmd_clear(&c);
  c = parse_ok("/create two\\ words");
  ck_assert_str_eq(c.name, "two words");
  chatc_cmd_clear(&c);
  c = parse_ok("/create \t x\"y z\"w ");
  ck_assert_str_eq(c.name, "xy zw");
  chatc_cmd_clear(&c);
  ck_assert_int_eq(parse_rc("/create \"open"), CHATC_PARSE_SYNTAX);
  ck_assert_ptr_nonnull(strstr(err, "unterminated quote"));
  ck_assert_int_eq(parse_rc("/create x\\"), CHATC_PARSE_SYNTAX);
  ck_assert_int_eq(parse_rc("/create \"\""), CHATC_PARSE_USAGE);
  ck_assert_ptr_nonnull(strstr(err, "empty"));
}
END_TEST

START_TEST(usage_errors)
{
  char big[400];

  ck_assert_int_eq(parse_rc(""), CHATC_PARSE_EMPTY);
  ck_assert_int_eq(parse_rc("   \n"), CHATC_PARSE_EMPTY);
  ck_assert_int_eq(parse_rc("/frobnicate x"), CHATC_PARSE_UNKNOWN);
  ck_assert_ptr_nonnull(strstr(err, "/frobnicate"));
  ck_assert_ptr_nonnull(strstr(err, "/help"));
  ck_assert_int_eq(parse_rc("/\x1b[2J"), CHATC_PARSE_UNKNOWN);
  ck_assert_ptr_null(strchr(err, 0x1b)); /* the message is printable */
  ck_assert_int_eq(parse_rc("/Register bob"), CHATC_PARSE_UNKNOWN);
  ck_assert_int_eq(parse_rc("/send x"), CHATC_PARSE_UNKNOWN); /* JSON only */
  ck_assert_int_eq(parse_rc("/register"), CHATC_PARSE_USAGE);
  ck_assert_ptr_nonnull(strstr(err, "usage: /register NAME"));
  ck_assert_int_eq(parse_rc("/register a b"), CHATC_PARSE_USAGE);
  ck_assert_ptr_nonnull(strstr(err, "too many"));
  ck_assert_int_eq(parse_rc("/leave now"), CHATC_PARSE_USAGE);
  ck_assert_int_eq(parse_rc("/invite"), CHATC_PARSE_USAGE);
  ck_assert_int_eq(parse_rc("/history 0"), CHATC_PARSE_USAGE);
  ck_assert_int_eq(parse_rc("/history 10001"), CHATC_PARSE_USAGE);
  ck_assert_int_eq(parse_rc("/history -3"), CHATC_PARSE_USAGE);
  ck_assert_int_eq(parse_rc("/history ten"), CHATC_PARSE_USAGE);
  ck_assert_int_eq(parse_rc("/verify bob 1234"), CHATC_PARSE_USAGE);
  ck_assert_ptr_nonnull(strstr(err, "expected 60"));
  ck_assert_int_eq(parse_rc("/verify bob 12345x"), CHATC_PARSE_USAGE);
  ck_assert_int_eq(parse_rc("/verify bob"), CHATC_PARSE_USAGE);
  memset(big, 'a', sizeof(big));
  memcpy(big, "/dm ", 4);
  big[sizeof(big) - 1] = '\0';
  ck_assert_int_eq(parse_rc(big), CHATC_PARSE_TOO_LONG);
  ck_assert_int_eq(parse_rc("/register bad\x01name"), CHATC_PARSE_USAGE);
  ck_assert_int_eq(parse_rc("/register \xff\xfe"), CHATC_PARSE_ENCODING);
  ck_assert_int_eq(parse_rc("text \xc0\xaf"), CHATC_PARSE_ENCODING);
}
END_TEST

START_TEST(text_limit)
{
  size_t n = CHATC_TEXT_MAX + 1;
  char *t = malloc(n + 1);
  chatc_cmd c;

  memset(t, 'x', n);
  t[n] = '\0';
  ck_assert_int_eq(chatc_slash_parse(t, n, &c, err, sizeof(err)), CHATC_PARSE_TOO_LONG);
  ck_assert_int_eq(chatc_slash_parse(t, n - 1, &c, err, sizeof(err)), CHATC_PARSE_OK);
  ck_assert_uint_eq(c.text_len, CHATC_TEXT_MAX);
  chatc_cmd_clear(&c);
  free(t);
}
END_TEST

START_TEST(help_lists_everything)
{
  static const char *cmds[] = {"/register", "/login", "/chats", "/create", "/switch",
                               "/invite", "/accept", "/decline", "/leave", "/remove",
                               "/members", "/dm", "/history", "/fingerprint", "/verify",
                               "/trust", "/quit", "/help"};
  char help[2048];
  size_t n = chatc_help_format(help, sizeof(help));

  ck_assert_uint_eq(n, strlen(help));
  for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
    ck_assert_msg(strstr(help, cmds[i]) != NULL, "%s missing", cmds[i]);
  ck_assert_uint_lt(n, sizeof(help) - 1); /* nothing was cut */
  n = chatc_help_format(help, 100);
  ck_assert_uint_lt(n, 100);
  ck_assert_int_eq(help[n - 1], '\n'); /* whole lines only */
}
END_TEST

/* Commands waiting for a LOOKUP find their answer by what they asked, in
 * whatever order the answers come, and an answer nobody asked for runs
 * nothing (by order, the first waiting command would have run). */
START_TEST(lookup_answers_by_request)
{
  chatc_lookup_key k[3];
  uint8_t uid[20], other[20];
  memset(k, 0, sizeof(k));
  strcpy(k[0].name, "bob");
  k[1].by_uid = 1;
  memset(k[1].uid, 7, sizeof(k[1].uid));
  strcpy(k[2].name, "carol");
  memset(uid, 7, sizeof(uid));
  memset(other, 8, sizeof(other));
  ck_assert_uint_eq(chatc_lookup_match(k, 3, 0, NULL, "carol", 5), 2);
  ck_assert_uint_eq(chatc_lookup_match(k, 3, 1, uid, NULL, 0), 1);
  ck_assert_uint_eq(chatc_lookup_match(k, 3, 0, NULL, "bob", 3), 0);
  /* not asked: no command */
  ck_assert_uint_eq(chatc_lookup_match(k, 3, 1, other, NULL, 0), 3);
  ck_assert_uint_eq(chatc_lookup_match(k, 3, 0, NULL, "dave", 4), 3);
  /* a prefix or a longer name is another name; a name is not a uid */
  ck_assert_uint_eq(chatc_lookup_match(k, 3, 0, NULL, "bo", 2), 3);
  ck_assert_uint_eq(chatc_lookup_match(k, 3, 0, NULL, "bobby", 5), 3);
  ck_assert_uint_eq(chatc_lookup_match(k + 1, 1, 0, NULL, "", 0), 1);
  /* two waiting for the same name: the older one first */
  strcpy(k[2].name, "bob");
  ck_assert_uint_eq(chatc_lookup_match(k, 3, 0, NULL, "bob", 3), 0);
  ck_assert_uint_eq(chatc_lookup_match(k + 1, 2, 0, NULL, "bob", 3), 1);
  ck_assert_uint_eq(chatc_lookup_match(k, 0, 0, NULL, "bob", 3), 0);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("chatc_slash");
  TCase *tc = tcase_create("core");
  SRunner *sr;
  int failed;

  tcase_add_test(tc, every_command);
  tcase_add_test(tc, plain_text);
  tcase_add_test(tc, quoting);
  tcase_add_test(tc, usage_errors);
  tcase_add_test(tc, text_limit);
  tcase_add_test(tc, help_lists_everything);
  tcase_add_test(tc, lookup_answers_by_request);
  suite_add_tcase(s, tc);
  sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? 0 : 1;
}
