/* jsonl.c: JSON-lines commands and events (see jsonl.h, docs/chatc.md). */
#include "jsonl.h"

#include "apperr.h"
#include "escape.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Parsing ------------------------------------------------------------------ */

/* A key for a message: printable ASCII only, at most 32 bytes. */
static void show_key(char out[40], const char *key)
{
  size_t i = 0;

  for (; i < 32 && key[i] != '\0'; i++)
    out[i] = ((unsigned char)key[i] >= 0x20 && (unsigned char)key[i] < 0x7f) ? key[i] : '?';
  memcpy(out + i, key[i] != '\0' ? "..." : "", key[i] != '\0' ? 4 : 1);
}

static int take_id(json_t *obj, chatc_cmd *cmd, char *err, size_t errlen)
{
  json_t *id = json_object_get(obj, "id");

  if (id == NULL)
    return CHATC_PARSE_OK;
  if (json_is_integer(id) ||
      (json_is_string(id) && json_string_length(id) <= CHATC_JSON_ID_MAX)) {
    cmd->id = json_incref(id);
    return CHATC_PARSE_OK;
  }
  return app_fail(CHATC_PARSE_USAGE, err, errlen,
              "\"id\" must be an integer or a string of at most %u bytes", CHATC_JSON_ID_MAX);
}

static int take_fields(json_t *obj, const chatc_cmd_spec *s, chatc_cmd *cmd, char *err,
                       size_t errlen)
{
  const char *key;
  json_t *v;
  char shown[40];
  int rc;

  /* Unknown keys first: a typo ("txt") must not read as a missing field. */
  json_object_foreach(obj, key, v) {
    const char *l;
    int known = strcmp(key, "cmd") == 0 || strcmp(key, "id") == 0;
    for (l = s->json_req; !known && *l; l++)
      known = strcmp(key, chatc_cmd_field_key(*l)) == 0;
    for (l = s->json_opt; !known && *l; l++)
      known = strcmp(key, chatc_cmd_field_key(*l)) == 0;
    if (!known) {
      show_key(shown, key);
      return app_fail(CHATC_PARSE_USAGE, err, errlen, "%s: unknown field \"%s\"", s->name, shown);
    }
  }
  for (int pass = 0; pass < 2; pass++) {
    for (const char *l = pass == 0 ? s->json_req : s->json_opt; *l; l++) {
      const char *k = chatc_cmd_field_key(*l);
      v = json_object_get(obj, k);
      if (v == NULL) {
        if (pass == 0)
          return app_fail(CHATC_PARSE_USAGE, err, errlen, "%s: missing field \"%s\"", s->name, k);
        continue;
      }
      if (*l == 'l') {
        json_int_t n = json_is_integer(v) ? json_integer_value(v) : 0;
        if (n < 1 || n > (json_int_t)CHATC_HISTORY_MAX)
          return app_fail(CHATC_PARSE_USAGE, err, errlen,
                      "%s: \"%s\" must be an integer from 1 to %u", s->name, k,
                      CHATC_HISTORY_MAX);
        cmd->limit = (uint32_t)n;
        continue;
      }
      if (!json_is_string(v))
        return app_fail(CHATC_PARSE_USAGE, err, errlen, "%s: \"%s\" must be a string", s->name, k);
      rc = chatc_cmd_set_field(cmd, *l, json_string_value(v), json_string_length(v), err, errlen);
      if (rc != CHATC_PARSE_OK)
        return rc;
    }
  }
  return CHATC_PARSE_OK;
}

int chatc_json_parse(const char *line, size_t len, chatc_cmd *cmd, char *err, size_t errlen)
{
  const chatc_cmd_spec *s;
  json_error_t jerr;
  json_t *obj, *c;
  int rc, blank = 1;

  memset(cmd, 0, sizeof(*cmd));
  if (len > 0 && line[len - 1] == '\n')
    len--;
  if (len > 0 && line[len - 1] == '\r')
    len--;
  for (size_t i = 0; i < len && blank; i++)
    blank = line[i] == ' ' || line[i] == '\t';
  if (blank)
    return app_fail(CHATC_PARSE_EMPTY, err, errlen, "empty line");
  if (len > CHATC_JSON_LINE_MAX)
    return app_fail(CHATC_PARSE_TOO_LONG, err, errlen, "line longer than %u bytes",
                CHATC_JSON_LINE_MAX);
  obj = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
  if (obj == NULL)
    return app_fail(CHATC_PARSE_SYNTAX, err, errlen, "malformed JSON at column %d: %s", jerr.column,
                jerr.text);
  if (!json_is_object(obj)) {
    json_decref(obj);
    return app_fail(CHATC_PARSE_USAGE, err, errlen, "a command must be a JSON object");
  }
  rc = take_id(obj, cmd, err, errlen);
  if (rc == CHATC_PARSE_OK) {
    c = json_object_get(obj, "cmd");
    if (!json_is_string(c))
      rc = app_fail(CHATC_PARSE_USAGE, err, errlen, "missing string field \"cmd\"");
    else if ((s = chatc_cmd_lookup(json_string_value(c), json_string_length(c))) == NULL ||
             s->json_req == NULL) {
      char shown[40];
      show_key(shown, json_string_value(c));
      rc = app_fail(CHATC_PARSE_UNKNOWN, err, errlen, "unknown command \"%s\"", shown);
    } else {
      cmd->kind = s->kind;
      rc = take_fields(obj, s, cmd, err, errlen);
    }
  }
  json_decref(obj);
  if (rc != CHATC_PARSE_OK) {
    json_t *id = cmd->id;
    cmd->id = NULL;
    chatc_cmd_clear(cmd);
    cmd->id = id; /* kept so the error event can echo it */
  }
  return rc;
}

/* ---- Input driver ------------------------------------------------------------ */

static void emit(chatc_jsonin *j, char *line)
{
  if (line != NULL) {
    j->out(j->arg, line);
    free(line);
  }
}

static void on_line(void *arg, const char *line, size_t len, int too_long)
{
  chatc_jsonin *j = arg;
  chatc_cmd cmd;
  char err[256];
  int rc;

  if (too_long) {
    snprintf(err, sizeof(err), "line longer than %u bytes: ignored", CHATC_JSON_LINE_MAX);
    emit(j, chatc_ev_error(NULL, chatc_parse_code(CHATC_PARSE_TOO_LONG), err));
    return;
  }
  rc = chatc_json_parse(line, len, &cmd, err, sizeof(err));
  if (rc == CHATC_PARSE_OK)
    j->on_cmd(j->arg, &cmd);
  else if (rc != CHATC_PARSE_EMPTY)
    emit(j, chatc_ev_error(cmd.id, chatc_parse_code(rc), err));
  chatc_cmd_clear(&cmd);
}

int chatc_jsonin_init(chatc_jsonin *j, chatc_json_cmd_fn on_cmd, chatc_json_out_fn out,
                      void *arg)
{
  j->on_cmd = on_cmd;
  j->out = out;
  j->arg = arg;
  return chatc_linebuf_init(&j->lb, CHATC_JSON_LINE_MAX);
}

void chatc_jsonin_feed(chatc_jsonin *j, const void *data, size_t len)
{
  chatc_linebuf_feed(&j->lb, data, len, on_line, j);
}

void chatc_jsonin_finish(chatc_jsonin *j)
{
  chatc_linebuf_finish(&j->lb, on_line, j);
}

void chatc_jsonin_free(chatc_jsonin *j)
{
  chatc_linebuf_free(&j->lb);
}

/* ---- Emitting ----------------------------------------------------------------- */

/* A JSON string from len bytes of possibly invalid UTF-8 (U+FFFD for every
 * byte that does not start a well-formed sequence). NULL s -> null. */
static json_t *jstr(const char *s, size_t len)
{
  const unsigned char *p = (const unsigned char *)s;
  unsigned long cp;
  json_t *j;
  char *fix;
  size_t o = 0, n;

  if (s == NULL)
    return json_null();
  if (chatc_utf8_valid(s, len))
    return json_stringn(s, len);
  if ((fix = malloc(len * 3 + 1)) == NULL)
    return NULL;
  for (size_t i = 0; i < len;) {
    if (p[i] < 0x80) {
      fix[o++] = (char)p[i++];
    } else if ((n = chatc_utf8_decode(p + i, len - i, &cp)) != 0) {
      memcpy(fix + o, p + i, n);
      o += n, i += n;
    } else {
      memcpy(fix + o, "\xef\xbf\xbd", 3);
      o += 3, i++;
    }
  }
  j = json_stringn(fix, o);
  free(fix);
  return j;
}

static json_t *jcstr(const char *s)
{
  return jstr(s, s != NULL ? strlen(s) : 0);
}

/* Set key to v (stolen); a NULL v marks the object failed (out of memory). */
static void put(json_t *obj, int *bad, const char *key, json_t *v)
{
  if (v == NULL || json_object_set_new(obj, key, v) != 0)
    *bad = 1;
}

static json_t *juser(const chatc_ev_user *u)
{
  json_t *o = json_object();
  int bad = o == NULL;

  if (bad)
    return NULL;
  put(o, &bad, "uid", jcstr(u != NULL ? u->uid : NULL));
  put(o, &bad, "name", u != NULL ? jstr(u->name, u->name_len) : json_null());
  if (bad) {
    json_decref(o);
    return NULL;
  }
  return o;
}

/* New event object {"event": name}. */
static json_t *ev_new(const char *name, int *bad)
{
  json_t *o = json_object();

  *bad = o == NULL;
  if (o != NULL)
    put(o, bad, "event", json_string(name));
  return o;
}

/* Add the id, dump compactly with a newline, free the object. */
static char *ev_finish(json_t *o, int bad, const json_t *id)
{
  char *s, *line = NULL;
  size_t n;

  if (o == NULL)
    return NULL;
  if (id != NULL)
    put(o, &bad, "id", json_deep_copy(id));
  if (!bad && (s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER)) != NULL) {
    n = strlen(s);
    if ((line = malloc(n + 2)) != NULL) {
      memcpy(line, s, n);
      line[n] = '\n';
      line[n + 1] = '\0';
    }
    free(s);
  }
  json_decref(o);
  return line;
}

char *chatc_ev_error(const json_t *id, const char *code, const char *message)
{
  int bad;
  json_t *o = ev_new("error", &bad);

  put(o, &bad, "code", jcstr(code));
  put(o, &bad, "message", jcstr(message));
  return ev_finish(o, bad, id);
}

char *chatc_ev_ok(const json_t *id, const char *cmd)
{
  int bad;
  json_t *o = ev_new("ok", &bad);

  put(o, &bad, "cmd", jcstr(cmd));
  return ev_finish(o, bad, id);
}

static char *ev_user(const char *event, const json_t *id, const chatc_ev_user *u)
{
  int bad;
  json_t *o = ev_new(event, &bad);

  put(o, &bad, "user", juser(u));
  return ev_finish(o, bad, id);
}

char *chatc_ev_ready(const chatc_ev_user *user)
{
  return ev_user("ready", NULL, user);
}

char *chatc_ev_registered(const json_t *id, const chatc_ev_user *user)
{
  return ev_user("registered", id, user);
}

char *chatc_ev_whoami(const json_t *id, const chatc_ev_user *user, const char *fingerprint,
                      const char *token)
{
  int bad;
  json_t *o = ev_new("whoami", &bad), *u = juser(user);

  if (u != NULL)
    put(u, &bad, "fingerprint", jcstr(fingerprint));
  put(o, &bad, "user", u);
  put(o, &bad, "token", jcstr(token));
  return ev_finish(o, bad, id);
}

char *chatc_ev_chats(const json_t *id, const chatc_ev_chat *chats, size_t n)
{
  int bad;
  json_t *o = ev_new("chats", &bad), *a = json_array();

  for (size_t i = 0; a != NULL && i < n; i++) {
    json_t *c = json_object();
    if (c == NULL) {
      bad = 1;
      break;
    }
    put(c, &bad, "chat", jcstr(chats[i].chat));
    put(c, &bad, "name", jstr(chats[i].name, chats[i].name_len));
    put(c, &bad, "admin", json_boolean(chats[i].admin));
    put(c, &bad, "members", json_integer(chats[i].members));
    if (json_array_append_new(a, c) != 0)
      bad = 1;
  }
  put(o, &bad, "chats", a);
  return ev_finish(o, bad, id);
}

char *chatc_ev_members(const json_t *id, const char *chat, const chatc_ev_member *m, size_t n)
{
  int bad;
  json_t *o = ev_new("members", &bad), *a = json_array();

  put(o, &bad, "chat", jcstr(chat));
  for (size_t i = 0; a != NULL && i < n; i++) {
    json_t *u = juser(&m[i].user);
    if (u == NULL) {
      bad = 1;
      break;
    }
    put(u, &bad, "fingerprint", jcstr(m[i].fingerprint));
    put(u, &bad, "trust", jcstr(m[i].trust));
    if (json_array_append_new(a, u) != 0)
      bad = 1;
  }
  put(o, &bad, "members", a);
  return ev_finish(o, bad, id);
}

char *chatc_ev_fingerprint(const json_t *id, const char *user, const char *fingerprint,
                           const char *safety_number)
{
  int bad;
  json_t *o = ev_new("fingerprint", &bad);

  put(o, &bad, "user", jcstr(user));
  put(o, &bad, "fingerprint", jcstr(fingerprint));
  put(o, &bad, "safety_number", jcstr(safety_number));
  return ev_finish(o, bad, id);
}

char *chatc_ev_status(const char *state, const char *detail)
{
  int bad;
  json_t *o = ev_new("status", &bad);

  put(o, &bad, "state", jcstr(state));
  put(o, &bad, "detail", jcstr(detail));
  return ev_finish(o, bad, NULL);
}

char *chatc_ev_warning(const char *code, const char *chat, const char *detail)
{
  int bad;
  json_t *o = ev_new("warning", &bad);

  put(o, &bad, "code", jcstr(code));
  put(o, &bad, "chat", jcstr(chat));
  put(o, &bad, "detail", jcstr(detail));
  return ev_finish(o, bad, NULL);
}

char *chatc_ev_chat_created(const json_t *id, const char *chat, const char *name, size_t name_len)
{
  int bad;
  json_t *o = ev_new("chat_created", &bad);

  put(o, &bad, "chat", jcstr(chat));
  put(o, &bad, "name", jstr(name, name_len));
  return ev_finish(o, bad, id);
}

char *chatc_ev_invited(const char *chat, const char *name, size_t name_len, const chatc_ev_user *by)
{
  int bad;
  json_t *o = ev_new("invited", &bad);

  put(o, &bad, "chat", jcstr(chat));
  put(o, &bad, "name", jstr(name, name_len));
  put(o, &bad, "by", juser(by));
  return ev_finish(o, bad, NULL);
}

char *chatc_ev_joined(const json_t *id, const char *chat)
{
  int bad;
  json_t *o = ev_new("joined", &bad);

  put(o, &bad, "chat", jcstr(chat));
  return ev_finish(o, bad, id);
}

static char *ev_member(const char *event, const char *chat, const chatc_ev_user *user)
{
  int bad;
  json_t *o = ev_new(event, &bad);

  put(o, &bad, "chat", jcstr(chat));
  put(o, &bad, "user", juser(user));
  return ev_finish(o, bad, NULL);
}

char *chatc_ev_member_joined(const char *chat, const chatc_ev_user *user)
{
  return ev_member("member_joined", chat, user);
}

char *chatc_ev_member_left(const char *chat, const chatc_ev_user *user)
{
  return ev_member("member_left", chat, user);
}

/* The message fields into o (shared by message events and history items). */
static void message_fields(json_t *o, int *bad, const chatc_ev_msg *m)
{
  put(o, bad, "chat", jcstr(m->chat));
  put(o, bad, "msg", jcstr(m->msg));
  put(o, bad, "from", juser(&m->from));
  put(o, bad, "text", jstr(m->text != NULL ? m->text : "", m->text != NULL ? m->text_len : 0));
  put(o, bad, "ts", json_integer((json_int_t)m->ts));
  put(o, bad, "verified", json_boolean(m->verified));
  put(o, bad, "trust", jcstr(m->trust));
}

char *chatc_ev_message(const chatc_ev_msg *m)
{
  int bad;
  json_t *o = ev_new("message", &bad);

  if (o != NULL)
    message_fields(o, &bad, m);
  return ev_finish(o, bad, NULL);
}

char *chatc_ev_sent(const json_t *id, const char *chat, const char *msg)
{
  int bad;
  json_t *o = ev_new("sent", &bad);

  put(o, &bad, "chat", jcstr(chat));
  put(o, &bad, "msg", jcstr(msg));
  return ev_finish(o, bad, id);
}

char *chatc_ev_relayed(const char *chat, const char *msg)
{
  int bad;
  json_t *o = ev_new("relayed", &bad);

  put(o, &bad, "chat", jcstr(chat));
  put(o, &bad, "msg", jcstr(msg));
  return ev_finish(o, bad, NULL);
}

char *chatc_ev_history(const json_t *id, const char *chat, const chatc_ev_msg *msgs, size_t n,
                       const chatc_ev_gap *gaps, size_t ngaps)
{
  int bad;
  json_t *o = ev_new("history", &bad), *a = json_array(), *g = json_array();

  put(o, &bad, "chat", jcstr(chat));
  for (size_t i = 0; a != NULL && i < n; i++) {
    json_t *m = json_object();
    if (m == NULL) {
      bad = 1;
      break;
    }
    message_fields(m, &bad, &msgs[i]);
    if (json_array_append_new(a, m) != 0)
      bad = 1;
  }
  for (size_t i = 0; g != NULL && i < ngaps; i++) {
    json_t *x = json_object();
    if (x == NULL) {
      bad = 1;
      break;
    }
    put(x, &bad, "from", gaps[i].from.uid != NULL ? juser(&gaps[i].from) : json_null());
    put(x, &bad, "count", json_integer((json_int_t)gaps[i].count));
    if (json_array_append_new(g, x) != 0)
      bad = 1;
  }
  put(o, &bad, "messages", a);
  put(o, &bad, "gaps", g);
  return ev_finish(o, bad, id);
}

char *chatc_ev_identity_changed(const char *user)
{
  int bad;
  json_t *o = ev_new("identity_changed", &bad);

  put(o, &bad, "user", jcstr(user));
  return ev_finish(o, bad, NULL);
}

char *chatc_ev_fork_suspected(const char *chat)
{
  int bad;
  json_t *o = ev_new("fork_suspected", &bad);

  put(o, &bad, "chat", jcstr(chat));
  return ev_finish(o, bad, NULL);
}
