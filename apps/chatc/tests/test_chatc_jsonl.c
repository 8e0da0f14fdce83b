/* JSON-lines commands and events (jsonl.c). */
#include "jsonl.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char err[512];

static chatc_cmd parse_ok(const char *line)
{
  chatc_cmd c;
  int rc = chatc_json_parse(line, strlen(line), &c, err, sizeof(err));

  ck_assert_msg(rc == CHATC_PARSE_OK, "%s -> %d %s", line, rc, err);
  return c;
}

static int parse_rc(const char *line)
{
  chatc_cmd c;
  int rc = chatc_json_parse(line, strlen(line), &c, err, sizeof(err));

  ck_assert_int_eq(c.kind, CHATC_CMD_NONE);
  chatc_cmd_clear(&c);
  return rc;
}

#define SN "123456789012345678901234567890123456789012345678901234567890"

START_TEST(every_command)
{
  static const struct {
    const char *line;
    chatc_cmd_kind kind;
    const char *name, *chat, *user, *text;
    uint32_t limit;
  } t[] = {
      {"{\"cmd\":\"register\",\"name\":\"alice\"}", CHATC_CMD_REGISTER, "alice", 0, 0, 0, 0},
      {"{\"cmd\":\"login\"}", CHATC_CMD_LOGIN, 0, 0, 0, 0, 0},
      {"{\"cmd\":\"whoami\"}", CHATC_CMD_WHOAMI, 0, 0, 0, 0, 0},
      {"{\"cmd\":\"create\",\"name\":\"room\"}", CHATC_CMD_CREATE, "room", 0, 0, 0, 0},
      {"{\"cmd\":\"chats\"}", CHATC_CMD_CHATS, 0, 0, 0, 0, 0},
      {"{\"cmd\":\"members\",\"chat\":\"c1\"}", CHATC_CMD_MEMBERS, 0, "c1", 0, 0, 0},
      {"{\"cmd\":\"invite\",\"chat\":\"c1\",\"user\":\"bob\"}", CHATC_CMD_INVITE, 0, "c1", "bob", 0, 0},
      {"{\"cmd\":\"accept\",\"chat\":\"c1\"}", CHATC_CMD_ACCEPT, 0, "c1", 0, 0, 0},
      {"{\"cmd\":\"decline\",\"chat\":\"c1\"}", CHATC_CMD_DECLINE, 0, "c1", 0, 0, 0},
      {"{\"cmd\":\"leave\",\"chat\":\"c1\"}", CHATC_CMD_LEAVE, 0, "c1", 0, 0, 0},
      {"{\"cmd\":\"remove\",\"chat\":\"c1\",\"user\":\"eve\"}", CHATC_CMD_REMOVE, 0, "c1", "eve", 0, 0},
      {"{\"cmd\":\"send\",\"chat\":\"c1\",\"text\":\"hi \\u001b[2J\\n\"}", CHATC_CMD_SEND, 0, "c1", 0, "hi \x1b[2J\n", 0},
      {"{\"cmd\":\"history\",\"chat\":\"c1\"}", CHATC_CMD_HISTORY, 0, "c1", 0, 0, 0},
      {"{\"cmd\":\"history\",\"chat\":\"c1\",\"limit\":25}", CHATC_CMD_HISTORY, 0, "c1", 0, 0, 25},
      {"{\"cmd\":\"fingerprint\",\"user\":\"bob\"}", CHATC_CMD_FINGERPRINT, 0, 0, "bob", 0, 0},
      {"{\"cmd\":\"trust\",\"user\":\"bob\"}", CHATC_CMD_TRUST, 0, 0, "bob", 0, 0},
      {"{\"cmd\":\"dm\",\"user\":\"bob\"}", CHATC_CMD_DM, 0, 0, "bob", 0, 0},
      {"{\"cmd\":\"quit\"}\r\n", CHATC_CMD_QUIT, 0, 0, 0, 0, 0},
  };

  for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
    chatc_cmd c = parse_ok(t[i].line);
    ck_assert_int_eq(c.kind, t[i].kind);
#define SAME(f) \
    if (t[i].f) ck_assert_str_eq(c.f, t[i].f); else ck_assert_ptr_null(c.f)
    SAME(name);
    SAME(chat);
    SAME(user);
    SAME(text);
    ck_assert_uint_eq(c.limit, t[i].limit);
    ck_assert_ptr_null(c.id);
    ck_assert_int_eq(strncmp(t[i].line + 8, chatc_cmd_name(c.kind), strlen(chatc_cmd_name(c.kind))), 0);
    chatc_cmd_clear(&c);
  }
  chatc_cmd c = parse_ok("{\"cmd\":\"verify\",\"user\":\"bob\",\"safety_number\":\"12345 67890 "
                         "12345 67890 12345 67890 12345 67890 12345 67890 12345 67890\"}");
  ck_assert_int_eq(c.kind, CHATC_CMD_VERIFY);
  ck_assert_str_eq(c.safety_number, "123456789012345678901234567890123456789012345678901234567890");
  chatc_cmd_clear(&c);
}
END_TEST

START_TEST(ids)
{
  chatc_cmd c = parse_ok("{\"id\":\"req-1\",\"cmd\":\"chats\"}");

  ck_assert(json_is_string(c.id));
  ck_assert_str_eq(json_string_value(c.id), "req-1");
  chatc_cmd_clear(&c);
  c = parse_ok("{\"cmd\":\"chats\",\"id\":42}");
  ck_assert_int_eq(json_integer_value(c.id), 42);
  chatc_cmd_clear(&c);
  /* The id survives a failed parse, for the error event. */
  ck_assert_int_eq(chatc_json_parse("{\"id\":7,\"cmd\":\"nope\"}", 21, &c, err, sizeof(err)),
                   CHATC_PARSE_UNKNOWN);
  ck_assert_int_eq(json_integer_value(c.id), 7);
  ck_assert_int_eq(c.kind, CHATC_CMD_NONE);
  chatc_cmd_clear(&c);
  ck_assert_int_eq(parse_rc("{\"id\":1.5,\"cmd\":\"chats\"}"), CHATC_PARSE_USAGE);
  ck_assert_int_eq(parse_rc("{\"id\":[1],\"cmd\":\"chats\"}"), CHATC_PARSE_USAGE);
  ck_assert_int_eq(parse_rc("{\"id\":null,\"cmd\":\"chats\"}"), CHATC_PARSE_USAGE);
}
END_TEST

START_TEST(error_paths)
{
  char *big;

  ck_assert_int_eq(parse_rc(""), CHATC_PARSE_EMPTY);
  ck_assert_int_eq(parse_rc("  \r\n"), CHATC_PARSE_EMPTY);
  ck_assert_int_eq(parse_rc("{\"cmd\":"), CHATC_PARSE_SYNTAX);
  ck_assert_ptr_nonnull(strstr(err, "malformed JSON"));
  ck_assert_int_eq(parse_rc("not json"), CHATC_PARSE_SYNTAX);
  ck_assert_int_eq(parse_rc("{\"cmd\":\"chats\"} {}"), CHATC_PARSE_SYNTAX);
  ck_assert_int_eq(parse_rc("{\"cmd\":\"chats\",\"cmd\":\"quit\"}"), CHATC_PARSE_SYNTAX);
  ck_assert_int_eq(parse_rc("{\"cmd\":\"send\",\"chat\":\"c\",\"text\":\"a\\u0000b\"}"),
                   CHATC_PARSE_SYNTAX); /* NUL refused by jansson */
  ck_assert_int_eq(parse_rc("[\"chats\"]"), CHATC_PARSE_USAGE);
  ck_assert_ptr_nonnull(strstr(err, "object"));
  ck_assert_int_eq(parse_rc("{\"name\":\"x\"}"), CHATC_PARSE_USAGE);
  ck_assert_ptr_nonnull(strstr(err, "\"cmd\""));
  ck_assert_int_eq(parse_rc("{\"cmd\":5}"), CHATC_PARSE_USAGE);
  ck_assert_int_eq(parse_rc("{\"cmd\":\"frobnicate\"}"), CHATC_PARSE_UNKNOWN);
  ck_assert_ptr_nonnull(strstr(err, "frobnicate"));
  ck_assert_int_eq(parse_rc("{\"cmd\":\"switch\",\"chat\":\"c\"}"), CHATC_PARSE_UNKNOWN);
  ck_assert_int_eq(parse_rc("{\"cmd\":\"help\"}"), CHATC_PARSE_UNKNOWN);
  ck_assert_int_eq(parse_rc("{\"cmd\":\"send\",\"chat\":\"c\"}"), CHATC_PARSE_USAGE);
  ck_assert_ptr_nonnull(strstr(err, "missing field \"text\""));
  ck_assert_int_eq(parse_rc("{\"cmd\":\"send\",\"chat\":\"c\",\"txt\":\"hi\"}"), CHATC_PARSE_USAGE);
  ck_assert_ptr_nonnull(strstr(err, "unknown field \"txt\""));
  ck_assert_int_eq(parse_rc("{\"cmd\":\"send\",\"chat\":1,\"text\":\"hi\"}"), CHATC_PARSE_USAGE);
  ck_assert_ptr_nonnull(strstr(err, "must be a string"));
  ck_assert_int_eq(parse_rc("{\"cmd\":\"send\",\"chat\":\"\",\"text\":\"hi\"}"), CHATC_PARSE_USAGE);
  ck_assert_int_eq(parse_rc("{\"cmd\":\"history\",\"chat\":\"c\",\"limit\":0}"), CHATC_PARSE_USAGE);
  ck_assert_int_eq(parse_rc("{\"cmd\":\"history\",\"chat\":\"c\",\"limit\":\"5\"}"), CHATC_PARSE_USAGE);
  ck_assert_int_eq(parse_rc("{\"cmd\":\"history\",\"chat\":\"c\",\"limit\":10001}"), CHATC_PARSE_USAGE);
  ck_assert_int_eq(parse_rc("{\"cmd\":\"verify\",\"user\":\"b\",\"safety_number\":\"123\"}"),
                   CHATC_PARSE_USAGE);
  ck_assert_int_eq(parse_rc("{\"cmd\":\"register\",\"name\":\"a\\nb\"}"), CHATC_PARSE_USAGE);
  ck_assert_int_eq(parse_rc("{\"cmd\":\"login\",\"extra\":true}"), CHATC_PARSE_USAGE);
  /* Oversized text. */
  big = malloc(CHATC_TEXT_MAX + 100);
  int n = snprintf(big, 64, "{\"cmd\":\"send\",\"chat\":\"c\",\"text\":\"");
  memset(big + n, 'x', CHATC_TEXT_MAX + 1);
  strcpy(big + n + CHATC_TEXT_MAX + 1, "\"}");
  ck_assert_int_eq(parse_rc(big), CHATC_PARSE_TOO_LONG);
  ck_assert_str_eq(chatc_parse_code(CHATC_PARSE_TOO_LONG), "too_long");
  free(big);
  /* Oversized line. */
  big = malloc(CHATC_JSON_LINE_MAX + 2);
  memset(big, ' ', CHATC_JSON_LINE_MAX + 1);
  big[0] = '{';
  big[CHATC_JSON_LINE_MAX] = '}';
  big[CHATC_JSON_LINE_MAX + 1] = '\0';
  ck_assert_int_eq(parse_rc(big), CHATC_PARSE_TOO_LONG);
  free(big);
  ck_assert_str_eq(chatc_parse_code(CHATC_PARSE_SYNTAX), "bad_json");
  ck_assert_str_eq(chatc_parse_code(CHATC_PARSE_UNKNOWN), "unknown_command");
  ck_assert_str_eq(chatc_parse_code(CHATC_PARSE_USAGE), "bad_arguments");
}
END_TEST

/* Parse an emitted line back: one line, compact, newline-terminated, no raw
 * control byte; checks the event name. */
static json_t *back(char *line, const char *event)
{
  json_error_t je;
  json_t *j;
  size_t n;

  ck_assert_ptr_nonnull(line);
  n = strlen(line);
  ck_assert_int_eq(line[n - 1], '\n');
  for (size_t i = 0; i + 1 < n; i++)
    ck_assert_msg((unsigned char)line[i] >= 0x20, "raw control byte in %s", line);
  ck_assert_ptr_null(strstr(line, "\": ")); /* compact */
  j = json_loadb(line, n, JSON_REJECT_DUPLICATES, &je);
  ck_assert_msg(j != NULL, "%s: %s", line, je.text);
  ck_assert_str_eq(json_string_value(json_object_get(j, "event")), event);
  free(line);
  return j;
}

static const char *sget(json_t *o, const char *path)
{
  json_t *v = json_object_get(o, path);
  ck_assert_msg(json_is_string(v), "%s not a string", path);
  return json_string_value(v);
}

START_TEST(emit_events)
{
  chatc_ev_user alice = {"uidalice", "alice", 5};
  chatc_ev_user mallory = {"uidm", "mal\x1b[2J\xe2\x80\xae\xff", 11};
  json_t *id = json_integer(9), *j, *u;

  j = back(chatc_ev_ready(&alice), "ready");
  u = json_object_get(j, "user");
  ck_assert_str_eq(sget(u, "uid"), "uidalice");
  ck_assert_str_eq(sget(u, "name"), "alice");
  ck_assert_ptr_null(json_object_get(j, "id"));
  json_decref(j);

  j = back(chatc_ev_registered(id, &alice), "registered");
  ck_assert_int_eq(json_integer_value(json_object_get(j, "id")), 9);
  json_decref(j);

  j = back(chatc_ev_whoami(id, &alice, "abcd-efgh-ijkl-mnop", "tok.en.x"), "whoami");
  ck_assert_str_eq(sget(json_object_get(j, "user"), "fingerprint"), "abcd-efgh-ijkl-mnop");
  ck_assert_str_eq(sget(json_object_get(j, "user"), "name"), "alice");
  ck_assert_str_eq(sget(j, "token"), "tok.en.x");
  json_decref(j);

  chatc_ev_chat chats[2] = {{"c1", "room", 4, 1, 3}, {"c2", NULL, 0, 0, 2}};
  j = back(chatc_ev_chats(id, chats, 2), "chats");
  json_t *a = json_object_get(j, "chats");
  ck_assert_uint_eq(json_array_size(a), 2);
  ck_assert_str_eq(sget(json_array_get(a, 0), "name"), "room");
  ck_assert(json_is_true(json_object_get(json_array_get(a, 0), "admin")));
  ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(a, 0), "members")), 3);
  ck_assert(json_is_null(json_object_get(json_array_get(a, 1), "name")));
  ck_assert(json_is_false(json_object_get(json_array_get(a, 1), "admin")));
  json_decref(j);
  j = back(chatc_ev_chats(NULL, NULL, 0), "chats");
  ck_assert_uint_eq(json_array_size(json_object_get(j, "chats")), 0);
  json_decref(j);

  chatc_ev_member m[1] = {{{"uidb", "bob", 3}, "fpfp", "verified"}};
  j = back(chatc_ev_members(id, "c1", m, 1), "members");
  ck_assert_str_eq(sget(j, "chat"), "c1");
  u = json_array_get(json_object_get(j, "members"), 0);
  ck_assert_str_eq(sget(u, "uid"), "uidb");
  ck_assert_str_eq(sget(u, "name"), "bob");
  ck_assert_str_eq(sget(u, "fingerprint"), "fpfp");
  ck_assert_str_eq(sget(u, "trust"), "verified");
  json_decref(j);

  j = back(chatc_ev_fingerprint(id, "bob", "fpfp", SN), "fingerprint");
  ck_assert_str_eq(sget(j, "safety_number"), SN);
  json_decref(j);
  j = back(chatc_ev_fingerprint(id, "me", "fpfp", NULL), "fingerprint");
  ck_assert(json_is_null(json_object_get(j, "safety_number")));
  json_decref(j);

  j = back(chatc_ev_ok(id, "trust"), "ok");
  ck_assert_str_eq(sget(j, "cmd"), "trust");
  json_decref(j);
  j = back(chatc_ev_status("reconnecting", "in 1.2 s"), "status");
  ck_assert_str_eq(sget(j, "state"), "reconnecting");
  ck_assert_str_eq(sget(j, "detail"), "in 1.2 s");
  json_decref(j);
  j = back(chatc_ev_warning("decrypt_failed", "c1", NULL), "warning");
  ck_assert_str_eq(sget(j, "code"), "decrypt_failed");
  ck_assert(json_is_null(json_object_get(j, "detail")));
  json_decref(j);
  j = back(chatc_ev_chat_created(id, "c1", "room", 4), "chat_created");
  ck_assert_str_eq(sget(j, "name"), "room");
  json_decref(j);
  j = back(chatc_ev_invited("c1", "room", 4, &alice), "invited");
  ck_assert_str_eq(sget(json_object_get(j, "by"), "uid"), "uidalice");
  json_decref(j);
  j = back(chatc_ev_joined(id, "c1"), "joined");
  ck_assert_str_eq(sget(j, "chat"), "c1");
  json_decref(j);
  j = back(chatc_ev_member_joined("c1", &alice), "member_joined");
  ck_assert_str_eq(sget(json_object_get(j, "user"), "name"), "alice");
  json_decref(j);
  j = back(chatc_ev_member_left("c1", &alice), "member_left");
  ck_assert_str_eq(sget(json_object_get(j, "user"), "uid"), "uidalice");
  json_decref(j);

  /* Peer-controlled strings: control characters escaped by jansson,
   * invalid UTF-8 repaired, non-ASCII kept as UTF-8. */
  static const char evil[] = "a\x1b]52;c;SGk=\x07\n\xc3\xa9\xc0";
  chatc_ev_msg msg = {"c1", "m1", mallory, evil, sizeof(evil) - 1,
                      1700000000123ull, 1, "tofu"};
  char *line = chatc_ev_message(&msg);
  ck_assert_ptr_nonnull(strstr(line, "\\u001B"));
  ck_assert_ptr_nonnull(strstr(line, "\xc3\xa9"));
  j = back(line, "message");
  ck_assert_str_eq(sget(j, "text"), "a\x1b]52;c;SGk=\x07\n\xc3\xa9\xef\xbf\xbd");
  ck_assert_str_eq(sget(json_object_get(j, "from"), "name"), "mal\x1b[2J\xe2\x80\xae\xef\xbf\xbd");
  ck_assert_int_eq(json_integer_value(json_object_get(j, "ts")), 1700000000123ll);
  ck_assert(json_is_true(json_object_get(j, "verified")));
  ck_assert_str_eq(sget(j, "trust"), "tofu");
  ck_assert_str_eq(sget(j, "msg"), "m1");
  json_decref(j);

  j = back(chatc_ev_sent(id, "c1", "m1"), "sent");
  ck_assert_str_eq(sget(j, "msg"), "m1");
  json_decref(j);
  j = back(chatc_ev_relayed("c1", "m1"), "relayed");
  ck_assert_str_eq(sget(j, "chat"), "c1");
  json_decref(j);

  chatc_ev_msg hist[2] = {msg, msg};
  hist[1].msg = "m2";
  hist[1].verified = 0;
  chatc_ev_gap gaps[2] = {{alice, 3}, {{NULL, NULL, 0}, 1}};
  j = back(chatc_ev_history(id, "c1", hist, 2, gaps, 2), "history");
  a = json_object_get(j, "messages");
  ck_assert_uint_eq(json_array_size(a), 2);
  ck_assert_ptr_null(json_object_get(json_array_get(a, 0), "event"));
  ck_assert_str_eq(sget(json_array_get(a, 1), "msg"), "m2");
  ck_assert(json_is_false(json_object_get(json_array_get(a, 1), "verified")));
  a = json_object_get(j, "gaps");
  ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(a, 0), "count")), 3);
  ck_assert(json_is_null(json_object_get(json_array_get(a, 1), "from")));
  json_decref(j);

  j = back(chatc_ev_identity_changed("bob"), "identity_changed");
  ck_assert_str_eq(sget(j, "user"), "bob");
  json_decref(j);
  j = back(chatc_ev_fork_suspected("c1"), "fork_suspected");
  ck_assert_str_eq(sget(j, "chat"), "c1");
  json_decref(j);
  json_decref(id);

  json_t *sid = json_string("x\ny");
  j = back(chatc_ev_error(sid, "bad_json", "malformed \x1b"), "error");
  ck_assert_str_eq(sget(j, "id"), "x\ny");
  ck_assert_str_eq(sget(j, "code"), "bad_json");
  json_decref(j);
  json_decref(sid);
}
END_TEST

struct sink {
  chatc_cmd_kind kinds[16];
  int ncmd;
  char *out[16];
  int nout;
};

static void on_cmd(void *arg, chatc_cmd *cmd)
{
  struct sink *k = arg;

  ck_assert_int_lt(k->ncmd, 16);
  k->kinds[k->ncmd++] = cmd->kind;
}

static void on_out(void *arg, const char *line)
{
  struct sink *k = arg;

  ck_assert_int_lt(k->nout, 16);
  k->out[k->nout++] = strdup(line);
}

START_TEST(input_stream_keeps_running)
{
  static const char head[] = "{\"cmd\":\"chats\"}\n"
                             "{\"cmd\":\n"                  /* malformed */
                             "\n   \n"                       /* blank: ignored */
                             "{\"id\":\"q\",\"cmd\":\"nope\"}\n" /* unknown, id echoed */
                             "{\"cmd\":\"whoami\"";          /* continues below */
  struct sink k = {0};
  chatc_jsonin j;
  char *big = malloc(70000);
  json_t *e;

  ck_assert_int_eq(chatc_jsonin_init(&j, on_cmd, on_out, &k), 0);
  chatc_jsonin_feed(&j, head, sizeof(head) - 1);
  chatc_jsonin_feed(&j, "}\r\n", 3);
  /* An oversized line in pieces, then a good command on the same chunk. */
  memset(big, 'x', 70000);
  chatc_jsonin_feed(&j, big, 40000);
  chatc_jsonin_feed(&j, big, 30000);
  chatc_jsonin_feed(&j, "xx\n{\"cmd\":\"quit\"}", 17);
  chatc_jsonin_finish(&j); /* last line without newline */
  chatc_jsonin_free(&j);
  free(big);

  ck_assert_int_eq(k.ncmd, 3);
  ck_assert_int_eq(k.kinds[0], CHATC_CMD_CHATS);
  ck_assert_int_eq(k.kinds[1], CHATC_CMD_WHOAMI);
  ck_assert_int_eq(k.kinds[2], CHATC_CMD_QUIT);
  ck_assert_int_eq(k.nout, 3);
  e = json_loads(k.out[0], 0, NULL);
  ck_assert_str_eq(json_string_value(json_object_get(e, "code")), "bad_json");
  ck_assert_ptr_null(json_object_get(e, "id"));
  json_decref(e);
  e = json_loads(k.out[1], 0, NULL);
  ck_assert_str_eq(json_string_value(json_object_get(e, "code")), "unknown_command");
  ck_assert_str_eq(json_string_value(json_object_get(e, "id")), "q");
  json_decref(e);
  e = json_loads(k.out[2], 0, NULL);
  ck_assert_str_eq(json_string_value(json_object_get(e, "event")), "error");
  ck_assert_str_eq(json_string_value(json_object_get(e, "code")), "too_long");
  json_decref(e);
  for (int i = 0; i < k.nout; i++)
    free(k.out[i]);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("chatc_jsonl");
  TCase *tc = tcase_create("core");
  SRunner *sr;
  int failed;

  tcase_add_test(tc, every_command);
  tcase_add_test(tc, ids);
  tcase_add_test(tc, error_paths);
  tcase_add_test(tc, emit_events);
  tcase_add_test(tc, input_stream_keeps_running);
  suite_add_tcase(s, tc);
  sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? 0 : 1;
}
