/* commands.c: user commands (slash or JSON) -> client core calls (see
 * session_int.h). */
#include "session_int.h"

/* ---- Commands --------------------------------------------------------------- */

static int is_uid_text(const char *u)
{
  if (strlen(u) != 32)
    return 0;
  for (const char *p = u; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= '2' && *p <= '7')))
      return 0;
  return 1;
}

/* A command naming a user is run after a LOOKUP of that name (so that a
 * first contact is pinned and a changed identity is noticed); returns 1
 * when the command was queued. */
static int needs_lookup(sess *s, chatc_cmd *cmd)
{
  const char *u = cmd->user, *hash;
  int rc;
  chatc_lookup_key key;
  if (u == NULL || !secchat_client_is_online(s->c) || s->npending == PENDING_MAX)
    return 0;
  memset(&key, 0, sizeof(key));
  if (is_uid_text(u)) {
    if (secchat_client_resolve(s->c, u, strlen(u), key.uid) != 0)
      return 0;
    key.by_uid = 1;
    rc = secchat_client_lookup_uid(s->c, key.uid);
  } else {
    hash = strchr(u, '#');
    size_t nl = hash ? (size_t)(hash - u) : strlen(u);
    if (nl > CHATC_NAME_MAX)
      return 0; /* not a valid name: resolve() reports it */
    memcpy(key.name, u, nl);
    rc = secchat_client_lookup_name(s->c, u, nl);
  }
  if (rc != 0)
    return 0;
  s->pending_key[s->npending] = key;
  s->pending[s->npending++] = *cmd;
  memset(cmd, 0, sizeof(*cmd));
  return 1;
}

/* Run the i-th command waiting for a lookup (its answer came, or will never
 * come) and drop it from the list. */
void ss_pending_run(sess *s, size_t i)
{
  chatc_cmd cmd = s->pending[i];
  size_t rest = s->npending - i - 1;
  memmove(s->pending + i, s->pending + i + 1, rest * sizeof(chatc_cmd));
  memmove(s->pending_key + i, s->pending_key + i + 1, rest * sizeof(chatc_lookup_key));
  s->npending--;
  ss_exec_cmd(s, &cmd, 1);
  chatc_cmd_clear(&cmd);
}

static int find_user(sess *s, const chatc_cmd *cmd, uint8_t uid[SECCHAT_UID_BYTES])
{
  int rc = secchat_client_resolve(s->c, cmd->user, strlen(cmd->user), uid);
  char msg[2048], e[300];
  size_t off;

  if (rc == 0)
    return 0;
  if (rc == SECCHAT_ERR_AMBIGUOUS) {
    off = (size_t)snprintf(msg, sizeof(msg), "%s is ambiguous; use NAME#FINGERPRINT:",
                           ss_esc(e, 200, cmd->user, strlen(cmd->user)));
    for (size_t i = 0; i < s->ncand && off < sizeof(msg); i++)
      off += (size_t)snprintf(msg + off, sizeof(msg) - off, " %s#%s",
                              ss_esc(e, 200, s->cand[i].name, strlen(s->cand[i].name)),
                              s->cand[i].fpr);
    ss_cmd_error(s, cmd->id, "ambiguous", msg);
  } else if (rc == SECCHAT_ERR_IDENTITY_CHANGED) {
    snprintf(msg, sizeof(msg),
             "the identity of %s changed; compare fingerprints with the person, then trust it",
             ss_esc(e, 200, cmd->user, strlen(cmd->user)));
    ss_cmd_error(s, cmd->id, "identity_changed", msg);
  } else {
    snprintf(msg, sizeof(msg), "unknown user %s%s", ss_esc(e, 200, cmd->user, strlen(cmd->user)),
             secchat_client_is_online(s->c) ? "" : " (offline: cannot look it up)");
    ss_cmd_error(s, cmd->id, "not_found", msg);
  }
  return -1;
}

/* trust USER: USER names the newcomer of an identity change. */
static int find_changed(sess *s, const char *user, uint8_t uid[SECCHAT_UID_BYTES])
{
  size_t n = secchat_client_contact_count(s->c), hits = 0;
  secchat_contact ct;
  const char *hash = strchr(user, '#');
  size_t nl = hash ? (size_t)(hash - user) : strlen(user);

  for (size_t i = 0; i < n; i++) {
    ct.struct_size = sizeof(ct);
    if (secchat_client_contact_at(s->c, i, &ct) != 0 || !(ct.flags & SECCHAT_CONTACT_CHANGED))
      continue;
    if (strcmp(ct.uid_str, user) == 0 ||
        (strlen(ct.name) == nl && memcmp(ct.name, user, nl) == 0 &&
         (hash == NULL || strcmp(ct.fingerprint, hash + 1) == 0))) {
      memcpy(uid, ct.uid, SECCHAT_UID_BYTES);
      hits++;
    }
  }
  return hits == 1 ? 0 : (hits ? SECCHAT_ERR_AMBIGUOUS : SECCHAT_ERR_NOT_FOUND);
}

static void do_chats(sess *s, const chatc_cmd *cmd)
{
  size_t n = secchat_client_chat_count(s->c), k = 0;
  chatc_ev_chat *cs = calloc(n + 1, sizeof(*cs));
  char(*hex)[33] = calloc(n + 1, 33);
  static const char *states[] = {"?", "invited", "joining", "active", "left"};

  if (cs == NULL || hex == NULL) {
    free(cs);
    free(hex);
    return;
  }
  if (!s->json && n == 0)
    ss_say(s, CHATC_LINE_NOTICE, "no chats yet: /create NAME");
  for (size_t i = 0; i < n; i++) {
    uint8_t id[16];
    int state = 0;
    size_t nm = 0;
    chatc_profile_chat *pc;
    if (secchat_client_chat_at(s->c, i, id, &state, NULL, &nm) != 0)
      continue;
    pc = chatc_profile_chat_find(&s->prof, id);
    ss_hexstr(id, 16, hex[k]);
    cs[k].chat = hex[k];
    cs[k].name = pc ? pc->name : NULL;
    cs[k].name_len = cs[k].name ? strlen(cs[k].name) : 0;
    cs[k].admin = pc ? pc->admin : 0;
    cs[k].members = (unsigned)nm;
    if (!s->json) {
      char e[200];
      ss_say(s, CHATC_LINE_NOTICE, "%s %s  %s, %zu member%s%s%s", hex[k],
             cs[k].name ? ss_esc(e, 100, cs[k].name, cs[k].name_len) : "(no name)",
             states[state >= 1 && state <= 4 ? state : 0], nm, nm == 1 ? "" : "s",
             cs[k].admin ? ", admin" : "",
             s->has_current && memcmp(s->current, id, 16) == 0 ? "  <- current" : "");
    }
    k++;
  }
  if (s->json)
    ss_emit(s, chatc_ev_chats(cmd->id, cs, k));
  free(cs);
  free(hex);
}

static void do_members(sess *s, const chatc_cmd *cmd, const uint8_t chat[16])
{
  uint8_t(*uids)[SECCHAT_UID_BYTES] = NULL;
  int n = secchat_client_chat_members(s->c, chat, NULL, 0);
  char hex[33];
  chatc_ev_member *ms;
  char(*ub)[SECCHAT_UID_STRING_BYTES];
  secchat_contact *cts;

  if (n < 0) {
    ss_cmd_fail(s, cmd->id, n, "members");
    return;
  }
  uids = calloc((size_t)n + 1, SECCHAT_UID_BYTES);
  ms = calloc((size_t)n + 1, sizeof(*ms));
  ub = calloc((size_t)n + 1, sizeof(*ub));
  cts = calloc((size_t)n + 1, sizeof(*cts));
  if (uids && ms && ub && cts) {
    n = secchat_client_chat_members(s->c, chat, uids, (size_t)n);
    ss_hexstr(chat, 16, hex);
    for (int i = 0; i < n; i++) {
      const uint8_t *u = uids[i];
      ss_uidstr(u, ub[i]);
      ms[i].user.uid = ub[i];
      if (sodium_memcmp(u, secchat_identity_uid(s->id), SECCHAT_UID_BYTES) == 0) {
        ms[i].user.name = s->prof.name;
        ms[i].fingerprint = s->fpr;
        ms[i].trust = "self";
      } else {
        cts[i].struct_size = sizeof(cts[i]);
        if (secchat_client_contact(s->c, u, &cts[i]) == 0) {
          ms[i].user.name = cts[i].name[0] ? cts[i].name : NULL;
          ms[i].fingerprint = cts[i].fingerprint;
          ms[i].trust = ss_trust_str(cts[i].trust, cts[i].flags);
        } else {
          ms[i].fingerprint = "";
          ms[i].trust = "unknown";
        }
      }
      ms[i].user.name_len = ms[i].user.name ? strlen(ms[i].user.name) : 0;
      if (!s->json) {
        char e[200];
        ss_say(s, CHATC_LINE_NOTICE, "%s  %s  %s  %s",
               ms[i].user.name ? ss_esc(e, 100, ms[i].user.name, ms[i].user.name_len) : "?",
               ms[i].fingerprint, ms[i].trust, ub[i]);
      }
    }
    if (s->json)
      ss_emit(s, chatc_ev_members(cmd->id, hex, ms, (size_t)n));
  }
  free(uids);
  free(ms);
  free(ub);
  free(cts);
}

static void do_fingerprint(sess *s, const chatc_cmd *cmd)
{
  uint8_t uid[SECCHAT_UID_BYTES];
  char sn[SECCHAT_SAFETY_NUMBER_BYTES], e[300];
  secchat_contact ct;
  int rc;

  if (cmd->user == NULL) {
    if (s->json)
      ss_emit(s, chatc_ev_fingerprint(cmd->id, s->uid, s->fpr, NULL));
    else
      ss_say(s, CHATC_LINE_NOTICE, "your fingerprint: %s (uid %s)", s->fpr, s->uid);
    return;
  }
  if (find_user(s, cmd, uid) != 0)
    return;
  ct.struct_size = sizeof(ct);
  if ((rc = secchat_client_contact(s->c, uid, &ct)) != 0 ||
      (rc = secchat_client_safety_number(s->c, uid, sn, sizeof(sn))) != 0) {
    ss_cmd_fail(s, cmd->id, rc, "fingerprint");
    return;
  }
  if (s->json)
    ss_emit(s, chatc_ev_fingerprint(cmd->id, cmd->user, ct.fingerprint, sn));
  else
    ss_say(
        s, CHATC_LINE_NOTICE,
        "%s: fingerprint %s, trust %s\n*** safety number: %s\n*** compare it with %s out of band, "
        "then /verify %s SAFETY-NUMBER",
        ss_esc(e, 200, cmd->user, strlen(cmd->user)), ct.fingerprint,
        ss_trust_str(ct.trust, ct.flags), sn, e, e);
}

static void do_history(sess *s, chatc_cmd *cmd, const uint8_t chat[16])
{
  int rc;
  hist_wait *w;
  if (s->nwaits == PENDING_MAX) {
    ss_cmd_error(s, cmd->id, "busy", "too many history requests in flight");
    return;
  }
  w = &s->waits[s->nwaits];
  memcpy(w->chat, chat, 16);
  w->limit = cmd->limit ? cmd->limit : 50;
  w->id = cmd->id;
  json_incref(w->id);
  w->deadline = ss_now_ms() + HIST_WAIT_MS;
  rc = secchat_client_is_online(s->c)
           ? secchat_client_chat_request_history(s->c, chat, HIST_PEERS, HIST_ITEMS, ss_now_ms())
           : 0;
  w->asked = rc > 0;
  /* Answered on HISTORY_DONE or at the deadline. Just after a login the
   * members' presence may not be known yet: keep asking until then. */
  if (rc > 0 || (secchat_client_is_online(s->c) && ss_now_ms() < s->online_since + HIST_WAIT_MS)) {
    s->nwaits++;
    return;
  }
  ss_hist_reply(s, w);
  json_decref(w->id);
}

void ss_exec_cmd(sess *s, chatc_cmd *cmd, int looked_up)
{
  uint8_t chat[16], uid[SECCHAT_UID_BYTES], msg[SECCHAT_MSG_ID_BYTES];
  char hex[33], mhex[65], e[400], txt[600];
  uint64_t now = ss_now_ms();
  int rc;

  switch (cmd->kind) {
  case CHATC_CMD_REGISTER:
    rc = secchat_client_register(s->c, cmd->name, strlen(cmd->name), now);
    if (rc != 0) {
      ss_cmd_fail(s, cmd->id, rc, "register");
      return;
    }
    json_decref(s->register_id);
    s->register_id = json_incref(cmd->id);
    s->registering = 1;
    if (s->fd >= 0 && secchat_client_is_online(s->c)) {
      /* Already logged in: register on a fresh connection. */
      ss_sock_close(s);
      secchat_client_disconnected(s->c, now);
      ss_conn_start(s);
    } else if (s->fd < 0) {
      ss_conn_start(s);
    }
    if (!s->json)
      ss_say(s, CHATC_LINE_NOTICE, "registering %s...",
             ss_esc(e, 200, cmd->name, strlen(cmd->name)));
    return;
  case CHATC_CMD_LOGIN:
    if (!ss_can_login(s)) {
      ss_cmd_error(s, cmd->id, "not_registered", "not registered yet: register NAME first");
      return;
    }
    if (!secchat_client_is_online(s->c)) {
      chatc_backoff_reset(&s->bo);
      if (s->fd >= 0) {
        ss_sock_close(s);
        secchat_client_disconnected(s->c, now);
      }
      ss_conn_start(s);
    }
    ss_cmd_ok(s, cmd->id, cmd->kind, secchat_client_is_online(s->c) ? "already logged in" : NULL);
    return;
  case CHATC_CMD_WHOAMI: {
    chatc_ev_user u = {s->uid, s->prof.name, s->prof.name ? strlen(s->prof.name) : 0};
    if (s->json) {
      /* A copy: the event builder wants a C string. */
      size_t tl = 0;
      const char *tok = secchat_client_token(s->c, &tl);
      char *t = tok ? strndup(tok, tl) : NULL;
      ss_emit(s, chatc_ev_whoami(cmd->id, &u, s->fpr, t));
      free(t);
    } else {
      ss_say(s, CHATC_LINE_NOTICE, "%s, uid %s, fingerprint %s, %s",
             u.name ? ss_esc(e, 200, u.name, u.name_len) : "(not registered)", s->uid, s->fpr,
             secchat_client_is_online(s->c) ? "online" : "offline");
    }
    return;
  }
  case CHATC_CMD_CHATS:
    do_chats(s, cmd);
    return;
  case CHATC_CMD_CREATE:
    if ((rc = secchat_client_chat_create(s->c, now, chat)) != 0) {
      ss_cmd_fail(s, cmd->id, rc, "create");
      return;
    }
    (void)chatc_profile_chat_set(&s->prof, chat, cmd->name, 1);
    s->prof_dirty = s->dirty = 1;
    ss_hexstr(chat, 16, hex);
    if (s->json) {
      ss_emit(s, chatc_ev_chat_created(cmd->id, hex, cmd->name, strlen(cmd->name)));
    } else {
      ss_say(s, CHATC_LINE_NOTICE, "created chat %s (%s); /invite USER to add people",
             ss_esc(e, 200, cmd->name, strlen(cmd->name)), hex);
      ss_set_current(s, chat);
    }
    return;
  case CHATC_CMD_SWITCH:
    if (ss_cmd_chat(s, cmd, chat) == 0) {
      ss_set_current(s, chat);
      ss_hexstr(chat, 16, hex);
      ss_say(s, CHATC_LINE_NOTICE, "current chat: %s", hex);
    }
    return;
  case CHATC_CMD_MEMBERS:
    if (ss_cmd_chat(s, cmd, chat) == 0)
      do_members(s, cmd, chat);
    return;
  case CHATC_CMD_INVITE:
  case CHATC_CMD_REMOVE:
    if (ss_cmd_chat(s, cmd, chat) != 0)
      return;
    if (!looked_up && cmd->kind == CHATC_CMD_INVITE && needs_lookup(s, cmd))
      return;
    if (find_user(s, cmd, uid) != 0)
      return;
    rc = cmd->kind == CHATC_CMD_INVITE ? secchat_client_chat_invite(s->c, chat, uid, now)
                                       : secchat_client_chat_remove(s->c, chat, uid, now);
    if (rc != 0) {
      ss_cmd_fail(s, cmd->id, rc, chatc_cmd_name(cmd->kind));
      return;
    }
    s->dirty = 1;
    snprintf(txt, sizeof(txt), "%s %s", cmd->kind == CHATC_CMD_INVITE ? "invited" : "removed",
             ss_esc(e, 200, cmd->user, strlen(cmd->user)));
    ss_cmd_ok(s, cmd->id, cmd->kind, txt);
    return;
  case CHATC_CMD_ACCEPT:
  case CHATC_CMD_DECLINE:
    if (ss_cmd_chat(s, cmd, chat) != 0)
      return;
    if ((rc = secchat_client_chat_answer(s->c, chat, cmd->kind == CHATC_CMD_ACCEPT, now)) != 0) {
      ss_cmd_fail(s, cmd->id, rc, chatc_cmd_name(cmd->kind));
      return;
    }
    s->dirty = 1;
    ss_cmd_ok(s, cmd->id, cmd->kind,
              cmd->kind == CHATC_CMD_ACCEPT ? "accepted; joining..." : "declined");
    return;
  case CHATC_CMD_LEAVE:
    if (ss_cmd_chat(s, cmd, chat) != 0)
      return;
    if ((rc = secchat_client_chat_leave(s->c, chat, now)) != 0) {
      ss_cmd_fail(s, cmd->id, rc, "leave");
      return;
    }
    s->dirty = 1;
    ss_cmd_ok(s, cmd->id, cmd->kind, "left the chat");
    return;
  case CHATC_CMD_DM:
    if (!looked_up && needs_lookup(s, cmd))
      return;
    if (find_user(s, cmd, uid) != 0)
      return;
    if ((rc = secchat_client_chat_create(s->c, now, chat)) != 0) {
      ss_cmd_fail(s, cmd->id, rc, "dm");
      return;
    }
    if ((rc = secchat_client_chat_invite(s->c, chat, uid, now)) != 0) {
      (void)secchat_client_chat_leave(s->c, chat, now);
      ss_cmd_fail(s, cmd->id, rc, "dm");
      return;
    }
    snprintf(txt, sizeof(txt), "@%s", cmd->user);
    (void)chatc_profile_chat_set(&s->prof, chat, txt, 1);
    s->prof_dirty = s->dirty = 1;
    ss_hexstr(chat, 16, hex);
    if (s->json) {
      ss_emit(s, chatc_ev_chat_created(cmd->id, hex, txt, strlen(txt)));
    } else {
      ss_say(s, CHATC_LINE_NOTICE, "direct chat with %s (%s): invitation sent",
             ss_esc(e, 200, cmd->user, strlen(cmd->user)), hex);
      ss_set_current(s, chat);
    }
    return;
  case CHATC_CMD_SEND: {
    mem_msg m;
    if (ss_cmd_chat(s, cmd, chat) != 0)
      return;
    rc = secchat_client_chat_send(s->c, chat, cmd->text, cmd->text_len, 1, now, msg);
    if (rc != 0) {
      ss_cmd_fail(s, cmd->id, rc, "send");
      return;
    }
    s->dirty = 1;
    ss_hexstr(chat, 16, hex);
    ss_hexstr(msg, sizeof(msg), mhex);
    memset(&m, 0, sizeof(m));
    memcpy(m.msg, mhex, sizeof(m.msg));
    memcpy(m.uid, s->uid, sizeof(m.uid));
    m.name = s->prof.name;
    m.name_len = m.name ? strlen(m.name) : 0;
    m.text = cmd->text;
    m.text_len = cmd->text_len;
    m.ts = now;
    m.verified = 1;
    m.trust = SECCHAT_TRUST_VERIFIED;
    (void)ss_mem_add(s, chat, &m);
    if (s->json)
      ss_emit(s, chatc_ev_sent(cmd->id, hex, mhex));
    else
      ss_show_msg(s, chat, &m, 1);
    return;
  }
  case CHATC_CMD_HISTORY:
    if (ss_cmd_chat(s, cmd, chat) == 0)
      do_history(s, cmd, chat);
    return;
  case CHATC_CMD_FINGERPRINT:
    if (!looked_up && needs_lookup(s, cmd))
      return;
    do_fingerprint(s, cmd);
    return;
  case CHATC_CMD_VERIFY:
    if (find_user(s, cmd, uid) != 0)
      return;
    rc = secchat_client_verify(s->c, uid, cmd->safety_number);
    if (rc == SECCHAT_ERR_KEY_MISMATCH) {
      ss_cmd_error(s, cmd->id, "key_mismatch",
                   "the safety number does not match: this may not be the person you think; "
                   "nothing changed");
      return;
    }
    if (rc != 0) {
      ss_cmd_fail(s, cmd->id, rc, "verify");
      return;
    }
    s->dirty = 1;
    snprintf(txt, sizeof(txt), "%s is now verified", ss_esc(e, 200, cmd->user, strlen(cmd->user)));
    ss_cmd_ok(s, cmd->id, cmd->kind, txt);
    return;
  case CHATC_CMD_TRUST:
    rc = find_changed(s, cmd->user, uid);
    if (rc == SECCHAT_ERR_NOT_FOUND &&
        secchat_client_resolve(s->c, cmd->user, strlen(cmd->user), uid) == 0)
      rc = 0;
    if (rc == 0)
      rc = secchat_client_trust(s->c, uid);
    if (rc != 0) {
      ss_cmd_fail(s, cmd->id, rc, "trust");
      return;
    }
    s->dirty = 1;
    snprintf(txt, sizeof(txt), "%s: new identity accepted (trust: tofu)",
             ss_esc(e, 200, cmd->user, strlen(cmd->user)));
    ss_cmd_ok(s, cmd->id, cmd->kind, txt);
    return;
  case CHATC_CMD_HELP: {
    char help[4096];
    size_t n = chatc_help_format(help, sizeof(help));
    while (n > 0 && help[n - 1] == '\n')
      n--;
    ss_print_line(s, help, n);
    return;
  }
  case CHATC_CMD_QUIT:
    ss_cmd_ok(s, cmd->id, cmd->kind, "bye");
    s->quit = 1;
    return;
  default:
    ss_cmd_error(s, cmd->id, "unknown_command", "unknown command");
    return;
  }
}

void ss_on_json_cmd(void *arg, chatc_cmd *cmd)
{
  sess *s = arg;
  ss_exec_cmd(s, cmd, 0);
  ss_pump(s);
}

void ss_on_edit_line(void *arg, const char *line, size_t len)
{
  sess *s = arg;
  chatc_cmd cmd;
  char err[512];
  int rc;

  if (line == NULL) {
    s->quit = 1;
    return;
  }
  memset(&cmd, 0, sizeof(cmd));
  rc = chatc_slash_parse(line, len, &cmd, err, sizeof(err));
  if (rc == CHATC_PARSE_OK)
    ss_exec_cmd(s, &cmd, 0);
  else if (rc != CHATC_PARSE_EMPTY)
    ss_say(s, CHATC_LINE_ERROR, "%s", err);
  chatc_cmd_clear(&cmd);
  ss_pump(s);
}
