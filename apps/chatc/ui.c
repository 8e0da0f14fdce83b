/* ui.c: chatc output (JSON events or terminal lines), names and chats, the
 * messages shown in this run, each once (see session_int.h). */
#include "session_int.h"

uint64_t ss_now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void ss_hexstr(const uint8_t *b, size_t n, char *out)
{
  static const char d[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = d[b[i] >> 4];
    out[2 * i + 1] = d[b[i] & 15];
  }
  out[2 * n] = 0;
}

void ss_uidstr(const uint8_t uid[SECCHAT_UID_BYTES], char out[SECCHAT_UID_STRING_BYTES])
{
  if (secchat_uid_to_string(uid, out, SECCHAT_UID_STRING_BYTES) != 0)
    out[0] = 0;
}

/* "not_found" from SECCHAT_ERR_NOT_FOUND. */
void ss_err_code(int rc, char *out, size_t cap)
{
  const char *n = secchat_error_name(rc);
  size_t i = 0;
  if (strncmp(n, "SECCHAT_ERR_", 12) == 0)
    n += 12;
  for (; n[i] && i + 1 < cap; i++)
    out[i] = (char)((n[i] >= 'A' && n[i] <= 'Z') ? n[i] - 'A' + 'a' : n[i]);
  out[i] = 0;
}

/* ---- Output ----------------------------------------------------------------
 * JSON mode: one event line on stdout (flushed: scripts wait for it).
 * Interactive mode: lines printed above the input line. */

void ss_emit(sess *s, char *line)
{
  (void)s;
  if (line == NULL) {
    fprintf(stderr, "chatc: out of memory\n");
    return;
  }
  fputs(line, stdout);
  fflush(stdout);
  free(line);
}

void ss_json_out_cb(void *arg, const char *line)
{
  (void)arg;
  fputs(line, stdout);
  fflush(stdout);
}

void ss_print_line(sess *s, const char *line, size_t len)
{
  if (s->edit != NULL) {
    chatc_edit_print(s->edit, line, len);
  } else {
    fwrite(line, 1, len, stdout);
    fputc('\n', stdout);
    fflush(stdout);
  }
}

/* An interactive notice (flags CHATC_LINE_NOTICE or _ERROR). The text is
 * ours; user-controlled parts must already be escaped by the caller. */
void ss_say(sess *s, unsigned flags, const char *fmt, ...)
{
  char text[2048], line[4096];
  va_list ap;
  size_t n;
  const char *mark = (flags & CHATC_LINE_ERROR) ? "!!! " : "*** ";

  va_start(ap, fmt);
  vsnprintf(text, sizeof(text), fmt, ap);
  va_end(ap);
  if (s->json) {
    fprintf(stderr, "chatc: %s\n", text);
    return;
  }
  /* Our own notice text: printed as is (the caller escaped user parts). */
  if (s->color)
    n = (size_t)snprintf(line, sizeof(line), "%s%s%s%s",
                         (flags & CHATC_LINE_ERROR) ? "\x1b[31m" : "\x1b[2m", mark, text,
                         "\x1b[0m");
  else
    n = (size_t)snprintf(line, sizeof(line), "%s%s", mark, text);
  if (n >= sizeof(line))
    n = sizeof(line) - 1;
  ss_print_line(s, line, n);
}

/* Escape len bytes of user-controlled text into out. */
const char *ss_esc(char *out, size_t cap, const char *in, size_t len)
{
  chatc_escape(out, cap, in, len, NULL);
  return out;
}

void ss_cmd_error(sess *s, const json_t *id, const char *code, const char *message)
{
  if (s->json)
    ss_emit(s, chatc_ev_error(id, code, message));
  else
    ss_say(s, CHATC_LINE_ERROR, "%s", message);
}

void ss_cmd_fail(sess *s, const json_t *id, int rc, const char *what)
{
  char code[64], msg[512];
  ss_err_code(rc, code, sizeof(code));
  snprintf(msg, sizeof(msg), "%s: %s", what, secchat_strerror(rc));
  ss_cmd_error(s, id, code, msg);
}

void ss_cmd_ok(sess *s, const json_t *id, chatc_cmd_kind kind, const char *text)
{
  if (s->json)
    ss_emit(s, chatc_ev_ok(id, chatc_cmd_name(kind)));
  else if (text != NULL)
    ss_say(s, CHATC_LINE_NOTICE, "%s", text);
}

void ss_status(sess *s, const char *state, const char *detail)
{
  if (s->json)
    ss_emit(s, chatc_ev_status(state, detail));
  else
    ss_say(s, CHATC_LINE_NOTICE, "%s%s%s", state, detail ? ": " : "", detail ? detail : "");
}

/* ---- Names and chats -------------------------------------------------------- */

const char *ss_trust_str(uint32_t trust, uint32_t flags)
{
  if (flags & SECCHAT_CONTACT_CHANGED)
    return "changed";
  return trust == SECCHAT_TRUST_VERIFIED ? "verified" : "tofu";
}

/* The name of uid (ours, or a contact's), NULL if unknown. */
const char *ss_uid_name(sess *s, const uint8_t uid[SECCHAT_UID_BYTES], secchat_contact *ct)
{
  if (sodium_memcmp(uid, secchat_identity_uid(s->id), SECCHAT_UID_BYTES) == 0)
    return s->prof.name;
  ct->struct_size = sizeof(*ct);
  if (secchat_client_contact(s->c, uid, ct) == 0 && ct->name[0] != 0)
    return ct->name;
  return NULL;
}

const char *ss_chat_name(sess *s, const uint8_t id[16])
{
  chatc_profile_chat *pc = chatc_profile_chat_find(&s->prof, id);
  return pc ? pc->name : NULL;
}

/* Resolve a chat reference: the shared id (32 hex), else a unique local
 * name, else (interactive) a unique id prefix. */
static int find_chat(sess *s, const char *ref, uint8_t out[16], char *err, size_t errlen)
{
  size_t n = secchat_client_chat_count(s->c), hits = 0, rl = strlen(ref);
  uint8_t id[16];
  char hex[33];

  for (size_t i = 0; i < n; i++) {
    if (secchat_client_chat_at(s->c, i, id, NULL, NULL, NULL) != 0)
      continue;
    ss_hexstr(id, 16, hex);
    if (strcmp(hex, ref) == 0) {
      memcpy(out, id, 16);
      return 0;
    }
  }
  for (int pass = 0; pass < 2; pass++) {
    hits = 0;
    for (size_t i = 0; i < n; i++) {
      const char *nm;
      if (secchat_client_chat_at(s->c, i, id, NULL, NULL, NULL) != 0)
        continue;
      ss_hexstr(id, 16, hex);
      nm = ss_chat_name(s, id);
      if ((pass == 0 && nm != NULL && strcmp(nm, ref) == 0) ||
          (pass == 1 && !s->json && rl >= 4 && strncmp(hex, ref, rl) == 0)) {
        memcpy(out, id, 16);
        hits++;
      }
    }
    if (hits == 1)
      return 0;
    if (hits > 1) {
      snprintf(err, errlen, "several chats match; use the chat id (see chats)");
      return SECCHAT_ERR_AMBIGUOUS;
    }
  }
  snprintf(err, errlen, "no such chat");
  return SECCHAT_ERR_NOT_FOUND;
}

/* The chat a command names (cmd->chat), or the current chat. */
int ss_cmd_chat(sess *s, const chatc_cmd *cmd, uint8_t out[16])
{
  char err[128];
  int rc;
  if (cmd->chat == NULL) {
    if (!s->has_current) {
      ss_cmd_error(s, cmd->id, "no_chat", "no current chat: /switch CHAT or /create NAME first");
      return -1;
    }
    memcpy(out, s->current, 16);
    return 0;
  }
  if ((rc = find_chat(s, cmd->chat, out, err, sizeof(err))) != 0) {
    char code[64];
    ss_err_code(rc, code, sizeof(code));
    ss_cmd_error(s, cmd->id, rc == SECCHAT_ERR_NOT_FOUND ? "unknown_chat" : code, err);
    return -1;
  }
  return 0;
}

void ss_set_prompt(sess *s)
{
  char p[CHATC_EDIT_PROMPT_MAX], e[80], hex[33];
  const char *nm;
  if (s->edit == NULL)
    return;
  if (!s->has_current) {
    chatc_edit_set_prompt(s->edit, "> ");
    return;
  }
  nm = ss_chat_name(s, (const uint8_t *)s->current);
  ss_hexstr((const uint8_t *)s->current, 16, hex);
  if (nm != NULL)
    ss_esc(e, 40, nm, strlen(nm));
  else
    snprintf(e, sizeof(e), "%.8s", hex);
  snprintf(p, sizeof(p), "[%s]> ", e);
  chatc_edit_set_prompt(s->edit, p);
}

void ss_set_current(sess *s, const uint8_t id[16])
{
  memcpy(s->current, id, 16);
  s->has_current = 1;
  ss_set_prompt(s);
}

/* ---- In-memory messages (this run: live and fetched from peers) ---------- */

mem_chat *ss_mem_get(sess *s, const uint8_t id[16])
{
  mem_chat *m;
  for (size_t i = 0; i < s->nmem; i++)
    if (memcmp(s->mem[i].id, id, 16) == 0)
      return &s->mem[i];
  m = realloc(s->mem, (s->nmem + 1) * sizeof(*m));
  if (m == NULL)
    return NULL;
  s->mem = m;
  m = &s->mem[s->nmem++];
  memset(m, 0, sizeof(*m));
  memcpy(m->id, id, 16);
  return m;
}

void ss_mem_msg_free(mem_msg *m)
{
  if (m->text != NULL)
    sodium_memzero(m->text, m->text_len);
  free(m->text);
  free(m->name);
}

/* Keep a message; ordered by author timestamp; a msg id seen already is
 * not added twice. Returns 1 if added. */
int ss_mem_add(sess *s, const uint8_t chat[16], const mem_msg *src)
{
  mem_chat *mc = ss_mem_get(s, chat);
  mem_msg m = *src;
  size_t pos;

  if (mc == NULL)
    return 0;
  for (size_t i = 0; i < mc->n; i++)
    if (strcmp(mc->msgs[i].msg, src->msg) == 0)
      return 0;
  m.text = malloc(src->text_len + 1);
  m.name = src->name ? malloc(src->name_len + 1) : NULL;
  if (m.text == NULL || (src->name && m.name == NULL)) {
    free(m.text);
    free(m.name);
    return 0;
  }
  memcpy(m.text, src->text, src->text_len);
  m.text[src->text_len] = 0;
  if (m.name) {
    memcpy(m.name, src->name, src->name_len);
    m.name[src->name_len] = 0;
  }
  if (mc->n == MEM_MSGS_MAX) {
    ss_mem_msg_free(&mc->msgs[0]);
    memmove(mc->msgs, mc->msgs + 1, (mc->n - 1) * sizeof(mem_msg));
    mc->n--;
  }
  if (mc->n == mc->cap) {
    size_t nc = mc->cap ? mc->cap * 2 : 64;
    mem_msg *nm = realloc(mc->msgs, nc * sizeof(*nm));
    if (nm == NULL) {
      ss_mem_msg_free(&m);
      return 0;
    }
    mc->msgs = nm;
    mc->cap = nc;
  }
  pos = mc->n;
  while (pos > 0 && mc->msgs[pos - 1].ts > m.ts)
    pos--;
  memmove(mc->msgs + pos + 1, mc->msgs + pos, (mc->n - pos) * sizeof(mem_msg));
  mc->msgs[pos] = m;
  mc->n++;
  return 1;
}

void ss_ev_msg_of(const mem_msg *m, const char *chat, chatc_ev_msg *e)
{
  memset(e, 0, sizeof(*e));
  e->chat = chat;
  e->msg = m->msg;
  e->from.uid = m->uid;
  e->from.name = m->name;
  e->from.name_len = m->name_len;
  e->text = m->text;
  e->text_len = m->text_len;
  e->ts = m->ts;
  e->verified = m->verified;
  e->trust = ss_trust_str(m->trust, 0);
}

void ss_show_msg(sess *s, const uint8_t chat[16], const mem_msg *m, int self)
{
  char line[CHATC_TEXT_MAX * 2], who[256];
  const char *cn = ss_chat_name(s, chat);
  time_t t = (time_t)(m->ts / 1000u);
  struct tm tm;
  size_t n, wl;
  unsigned flags = (self ? CHATC_LINE_SELF : 0) | (m->verified ? 0 : CHATC_LINE_UNVERIFIED);

  localtime_r(&t, &tm);
  if (s->has_current && memcmp(s->current, chat, 16) == 0) {
    wl = (size_t)snprintf(who, sizeof(who), "%.*s", (int)(m->name ? m->name_len : 0),
                          m->name ? m->name : "");
    if (m->name == NULL)
      wl = (size_t)snprintf(who, sizeof(who), "%.8s", m->uid);
  } else {
    char hex[33];
    ss_hexstr(chat, 16, hex);
    wl = (size_t)snprintf(who, sizeof(who), "(%s) %.*s", cn ? cn : hex,
                          (int)(m->name ? m->name_len : 8), m->name ? m->name : m->uid);
  }
  if (wl >= sizeof(who))
    wl = sizeof(who) - 1;
  n = chatc_format_line(line, sizeof(line), s->color, &tm, who, wl, m->text, m->text_len, flags);
  ss_print_line(s, line, n);
}
