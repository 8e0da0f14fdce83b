/* events.c: client core events -> JSON events / terminal lines, history
 * catch-up, persistence triggers (see session_int.h). */
#include "session_int.h"

/* ---- Client core events ---------------------------------------------------- */

static void user_of(sess *s, const uint8_t uid[SECCHAT_UID_BYTES],
                    char ubuf[SECCHAT_UID_STRING_BYTES], secchat_contact *ct, chatc_ev_user *u)
{
  ss_uidstr(uid, ubuf);
  u->uid = ubuf;
  u->name = ss_uid_name(s, uid, ct);
  u->name_len = u->name ? strlen(u->name) : 0;
}

void ss_catchup(sess *s)
{
  size_t n = secchat_client_chat_count(s->c);
  int asked = 0, any = 0;
  for (size_t i = 0; i < n; i++) {
    uint8_t id[16];
    int state = 0;
    if (secchat_client_chat_at(s->c, i, id, &state, NULL, NULL) != 0 || state != 3)
      continue;
    any = 1;
    if (secchat_client_chat_request_history(s->c, id, HIST_PEERS, HIST_ITEMS, ss_now_ms()) > 0)
      asked = 1;
  }
  s->catchup_at = 0;
  /* Nobody online yet (presence not known): try again a little later. */
  if (any && !asked && ++s->catchup_tries < 4)
    s->catchup_at = ss_now_ms() + CATCHUP_RETRY_MS;
}

/* Known gaps of the chat as history event objects; *n gets the count. */
static chatc_ev_gap *hist_gaps(sess *s, const uint8_t chat[16], size_t *n,
                               char (**ubufs)[SECCHAT_UID_STRING_BYTES])
{
  secchat_chat_gap g[CHATC_GAPS_MAX];
  secchat_contact ct;
  int k = secchat_client_chat_gaps(s->c, chat, g, CHATC_GAPS_MAX);
  chatc_ev_gap *out;

  *n = 0;
  *ubufs = NULL;
  if (k <= 0)
    return NULL;
  if (k > (int)CHATC_GAPS_MAX)
    k = (int)CHATC_GAPS_MAX; /* the first authors (in order of first appearance) */
  out = calloc((size_t)k, sizeof(*out));
  *ubufs = calloc((size_t)k, SECCHAT_UID_STRING_BYTES);
  if (out == NULL || *ubufs == NULL) {
    free(out);
    free(*ubufs);
    *ubufs = NULL;
    return NULL;
  }
  for (int i = 0; i < k; i++) {
    user_of(s, g[i].uid, (*ubufs)[i], &ct, &out[i].from);
    /* user_of may point into ct: keep the name only for our own uid or
     * copy it (ct is reused) */
    if (out[i].from.name != NULL && out[i].from.name == ct.name) {
      char *nm = strdup(ct.name);
      out[i].from.name = nm;
      out[i].from.name_len = nm ? strlen(nm) : 0;
    }
    out[i].count = g[i].missing;
  }
  *n = (size_t)k;
  return out;
}

static void hist_gaps_free(sess *s, chatc_ev_gap *g, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (g[i].from.name != NULL && g[i].from.name != s->prof.name)
      free((char *)(uintptr_t)g[i].from.name);
  free(g);
}

/* The history reply: the newest `limit` messages of the chat's local store
 * in libsecchat (this run's and earlier runs' alike), oldest first, each
 * shaped like a `message` event, and the chat's known gaps. */
void ss_hist_reply(sess *s, hist_wait *w)
{
  /* The library's store holds at most 4,096 items per chat: a larger
   * limit would only make the three arrays below larger. */
  size_t cap = w->limit ? (w->limit < 4096 ? w->limit : 4096) : 50, ngaps = 0;
  secchat_chat_message *ms = calloc(cap, sizeof(*ms));
  mem_msg *mm = calloc(cap, sizeof(*mm));
  chatc_ev_msg *evs = calloc(cap, sizeof(*evs));
  char hex[33], (*gu)[SECCHAT_UID_STRING_BYTES] = NULL;
  secchat_contact ct;
  chatc_ev_gap *gaps;
  int n;

  ss_hexstr(w->chat, 16, hex);
  if (ms == NULL || mm == NULL || evs == NULL) {
    ss_cmd_error(s, w->id, "nomem", "out of memory");
    goto out;
  }
  ms[0].struct_size = sizeof(*ms);
  n = secchat_client_chat_messages(s->c, w->chat, ms, cap);
  if (n < 0) {
    ss_cmd_fail(s, w->id, n, "history");
    goto out;
  }
  for (int i = 0; i < n; i++) {
    mem_msg *m = &mm[i];
    const char *nm;
    ss_hexstr(ms[i].msg_id, SECCHAT_MSG_ID_BYTES, m->msg);
    ss_uidstr(ms[i].uid, m->uid);
    if (ms[i].name != NULL) {
      m->name = (char *)(uintptr_t)ms[i].name;
      m->name_len = ms[i].name_len;
    } else if ((nm = ss_uid_name(s, ms[i].uid, &ct)) != NULL) {
      m->name = strdup(nm); /* ct is reused: own it */
      m->name_len = m->name ? strlen(m->name) : 0;
    }
    m->text = (char *)(uintptr_t)ms[i].text;
    m->text_len = ms[i].text_len;
    m->ts = ms[i].ts_ms;
    m->verified = (ms[i].flags & SECCHAT_MSG_VERIFIED) != 0;
    m->trust = ms[i].trust;
  }
  gaps = hist_gaps(s, w->chat, &ngaps, &gu);
  if (s->json) {
    for (int i = 0; i < n; i++)
      ss_ev_msg_of(&mm[i], hex, &evs[i]);
    ss_emit(s, chatc_ev_history(w->id, hex, evs, (size_t)n, gaps, ngaps));
  } else {
    ss_say(s, CHATC_LINE_NOTICE, "history: %d message%s", n, n == 1 ? "" : "s");
    for (int i = 0; i < n; i++)
      ss_show_msg(s, w->chat, &mm[i], strcmp(mm[i].uid, s->uid) == 0);
    for (size_t i = 0; i < ngaps; i++)
      ss_say(s, CHATC_LINE_NOTICE, "%llu message(s) from %s missing (no member could send them)",
             (unsigned long long)gaps[i].count, gaps[i].from.uid);
  }
  hist_gaps_free(s, gaps, ngaps);
  free(gu);
  for (int i = 0; i < n; i++)
    if (ms[i].name == NULL && mm[i].name != NULL)
      free(mm[i].name);
out:
  free(ms);
  free(mm);
  free(evs);
}

void ss_hist_done(sess *s, const uint8_t *chat, uint64_t now)
{
  size_t j = 0;
  for (size_t i = 0; i < s->nwaits; i++) {
    hist_wait *w = &s->waits[i];
    if ((chat != NULL && memcmp(w->chat, chat, 16) == 0) || (chat == NULL && now >= w->deadline)) {
      ss_hist_reply(s, w);
      json_decref(w->id);
      continue;
    }
    s->waits[j++] = *w;
  }
  s->nwaits = j;
}

static void on_message(sess *s, const secchat_client_event *ev)
{
  mem_msg m;
  char hex[33];
  secchat_contact ct;
  const char *nm;

  memset(&m, 0, sizeof(m));
  ss_hexstr(ev->msg_id, SECCHAT_MSG_ID_BYTES, m.msg);
  ss_uidstr(ev->uid, m.uid);
  if (ev->name_len > 0) {
    m.name = (char *)(uintptr_t)ev->name;
    m.name_len = ev->name_len;
  } else if ((nm = ss_uid_name(s, ev->uid, &ct)) != NULL) {
    m.name = (char *)(uintptr_t)nm;
    m.name_len = strlen(nm);
  }
  m.text = (char *)(uintptr_t)ev->data;
  m.text_len = ev->data_len;
  m.ts = ev->ts_ms;
  m.verified = (ev->flags & SECCHAT_MSG_VERIFIED) != 0;
  m.trust = ev->trust;
  if (!ss_mem_add(s, ev->chat_id, &m))
    return; /* shown already */
  ss_hexstr(ev->chat_id, 16, hex);
  if (s->json) {
    chatc_ev_msg e;
    ss_ev_msg_of(&m, hex, &e);
    ss_emit(s, chatc_ev_message(&e));
  } else {
    ss_show_msg(s, ev->chat_id, &m, strcmp(m.uid, s->uid) == 0);
  }
}

void ss_fpr_text(const uint8_t fp[SECCHAT_SERVER_FINGERPRINT_BYTES], char *out, size_t cap)
{
  if (secchat_server_fingerprint_string(fp, out, cap) != 0)
    snprintf(out, cap, "?");
}

static void on_event(sess *s, const secchat_client_event *ev)
{
  char hex[33], ubuf[SECCHAT_UID_STRING_BYTES], e1[512], e2[512], fp[80];
  secchat_contact ct;
  chatc_ev_user u;

  ss_hexstr(ev->chat_id, 16, hex);
  if (ev->type >= SECCHAT_CLIENT_EV_CHAT_CREATED)
    s->dirty = 1;
  switch (ev->type) {
  case SECCHAT_CLIENT_EV_CONNECTED:
    ss_status(s, "connected", s->opt->server);
    break;
  case SECCHAT_CLIENT_EV_SERVER_PINNED:
    ss_fpr_text(ev->fingerprint, fp, sizeof(fp));
    ss_say(s, CHATC_LINE_NOTICE, "pinned the relay's key on first contact: %s", fp);
    s->dirty = 1;
    break;
  case SECCHAT_CLIENT_EV_SERVER_KEY_MISMATCH:
    ss_fpr_text(ev->fingerprint, fp, sizeof(fp));
    snprintf(e1, sizeof(e1),
             "the relay at %s presented key %s, which is not the %s; refusing to talk to it "
             "(someone may be impersonating the relay)",
             s->opt->server, fp,
             s->opt->server_key ? "fingerprint given with --server-key" : "key pinned earlier");
    if (s->json)
      ss_emit(s, chatc_ev_error(NULL, "server_key_mismatch", e1));
    fprintf(stderr, "chatc: %s\n", e1);
    if (!s->json)
      ss_say(s, CHATC_LINE_ERROR, "%s", e1);
    s->quit = 1;
    s->exit_code = CHATC_EXIT_SERVER_KEY;
    break;
  case SECCHAT_CLIENT_EV_REGISTERED:
    s->dirty = 1;
    s->auth_refusals = 0; /* a token that verifies: authentication works */
    if (ev->name_len > 0) {
      memcpy(e1, ev->name, ev->name_len < 200 ? ev->name_len : 200);
      e1[ev->name_len < 200 ? ev->name_len : 200] = 0;
      (void)chatc_profile_set_name(&s->prof, e1);
      s->prof_dirty = 1;
    }
    u.uid = s->uid;
    u.name = s->prof.name;
    u.name_len = u.name ? strlen(u.name) : 0;
    if (s->json)
      ss_emit(s, chatc_ev_registered(s->register_id, &u));
    else
      ss_say(s, CHATC_LINE_NOTICE, "registered as %s (fingerprint %s)",
             ss_esc(e2, 200, u.name, u.name_len), s->fpr);
    json_decref(s->register_id);
    s->register_id = NULL;
    s->registering = 0;
    break;
  case SECCHAT_CLIENT_EV_AUTHENTICATED:
    s->dirty = 1;
    s->auth_refusals = 0; /* the token verified: refusals are no longer "in a row" */
    chatc_backoff_connected(&s->bo, ss_now_ms());
    u.uid = s->uid;
    u.name = s->prof.name;
    u.name_len = u.name ? strlen(u.name) : 0;
    if (s->json)
      ss_emit(s, chatc_ev_ready(&u));
    else
      ss_say(s, CHATC_LINE_NOTICE, "logged in as %s",
             u.name ? ss_esc(e2, 200, u.name, u.name_len) : s->uid);
    s->ever_online = 1;
    s->online_since = ss_now_ms();
    s->catchup_tries = 0;
    s->catchup_at = ss_now_ms() + CATCHUP_DELAY_MS;
    break;
  case SECCHAT_CLIENT_EV_TOKEN_RENEWED:
    s->dirty = 1;
    s->auth_refusals = 0;
    break;
  case SECCHAT_CLIENT_EV_AUTH_FAILED:
    /* A refused login is normal once (an expired token): the core then
     * registers the same identity and name again. Refused again before a
     * token verified (AUTHENTICATED, REGISTERED, TOKEN_RENEWED), retrying cannot
     * help (the relay rejects our keys or name, or its tokens are not valid
     * by our clock): exit 6. */
    s->auth_refusals++;
    snprintf(e1, sizeof(e1), "the relay refused %s (%s); %s",
             s->register_id || s->auth_refusals > 1 ? "the registration" : "the login",
             ev->code == SECCHAT_ERR_TOKEN_EXPIRED ? "token expired"
                                                   : secchat_token_reason_string(ev->detail),
             s->auth_refusals > 1
                 ? "refused twice in a row, giving up (check the system clock and the relay; "
                   "the identity is kept)"
                 : "registering again on the next connection");
    ss_cmd_error(s, s->register_id, "auth_failed", e1);
    json_decref(s->register_id);
    s->register_id = NULL;
    s->registering = 0;
    if (s->auth_refusals > 1) {
      fprintf(stderr, "chatc: %s\n", e1);
      s->quit = 1;
      s->exit_code = CHATC_EXIT_AUTH;
    }
    break;
  case SECCHAT_CLIENT_EV_CLOSE:
    ss_flush_out(s);
    if (s->fd >= 0)
      ss_conn_lost(s, ev->code ? secchat_strerror(ev->code) : "the relay closed the connection");
    break;
  case SECCHAT_CLIENT_EV_RELAYED:
    if (!sodium_is_zero(ev->msg_id, 32) && s->json) { /* a group post: msg id and chat */
      char msg[65];
      ss_hexstr(ev->msg_id, 32, msg);
      ss_emit(s, chatc_ev_relayed(hex, msg));
    }
    break;
  case SECCHAT_CLIENT_EV_SEND_FAILED:
    snprintf(e1, sizeof(e1), "the relay did not deliver a message (code %d)", ev->detail);
    if (s->json)
      ss_emit(s, chatc_ev_warning("send_failed", sodium_is_zero(ev->msg_id, 32) ? NULL : hex, e1));
    else
      ss_say(s, CHATC_LINE_ERROR, "%s", e1);
    break;
  case SECCHAT_CLIENT_EV_LOOKUP_ENTRY:
    if (s->ncand < CANDIDATES_MAX) {
      candidate *cd = &s->cand[s->ncand++];
      size_t nl = ev->name_len < SECCHAT_NAME_MAX_BYTES ? ev->name_len : SECCHAT_NAME_MAX_BYTES;
      memcpy(cd->name, ev->name, nl);
      cd->name[nl] = 0;
      memcpy(cd->fpr, ev->text, sizeof(cd->fpr));
      cd->fpr[sizeof(cd->fpr) - 1] = 0;
      ss_uidstr(ev->uid, cd->uid);
    }
    s->dirty = 1;
    break;
  case SECCHAT_CLIENT_EV_LOOKUP_DONE:
    /* The answer names its request (uid or name): run the command that
     * waited for it, whatever the order of the answers. */
    {
      size_t i = chatc_lookup_match(s->pending_key, s->npending, ev->has_uid != 0, ev->uid,
                                    ev->name, ev->name_len);
      if (i < s->npending)
        ss_pending_run(s, i);
    }
    s->ncand = 0;
    break;
  case SECCHAT_CLIENT_EV_CONTACT_NEW:
    s->dirty = 1;
    if (!s->json) {
      user_of(s, ev->uid, ubuf, &ct, &u);
      ct.struct_size = sizeof(ct);
      if (secchat_client_contact(s->c, ev->uid, &ct) != 0)
        snprintf(ct.fingerprint, sizeof(ct.fingerprint), "?");
      ss_say(s, CHATC_LINE_NOTICE, "first contact with %s: pinned, fingerprint %s",
             ss_esc(e2, 200, u.name, u.name_len), ct.fingerprint);
    }
    break;
  case SECCHAT_CLIENT_EV_IDENTITY_CHANGED:
    s->dirty = 1;
    user_of(s, ev->uid, ubuf, &ct, &u);
    memset(&ct, 0, sizeof(ct));
    ct.struct_size = sizeof(ct);
    if (secchat_client_contact(s->c, ev->uid, &ct) != 0)
      snprintf(ct.fingerprint, sizeof(ct.fingerprint), "?");
    if (s->json) {
      char nm[SECCHAT_NAME_MAX_BYTES + 1];
      size_t nl = ev->name_len ? ev->name_len : u.name_len;
      if (nl > SECCHAT_NAME_MAX_BYTES)
        nl = SECCHAT_NAME_MAX_BYTES;
      memcpy(nm, ev->name_len ? ev->name : (u.name ? u.name : ""), nl);
      nm[nl] = 0;
      ss_emit(s, chatc_ev_identity_changed(nl ? nm : ubuf));
    } else {
      ss_say(s, CHATC_LINE_ERROR,
             "IDENTITY CHANGED: %s is now claimed by another key (uid %s, fingerprint %s). "
             "Sending to it is blocked. Check with the person, then /trust %s#%s",
             ev->name_len ? ss_esc(e2, 200, ev->name, ev->name_len)
                          : ss_esc(e2, 200, u.name, u.name_len),
             ubuf, ct.fingerprint, e2, ct.fingerprint);
    }
    break;
  case SECCHAT_CLIENT_EV_PEER_REJECTED:
    snprintf(e1, sizeof(e1), "refused a peer's credentials: %s", secchat_strerror(ev->code));
    if (s->json)
      ss_emit(s, chatc_ev_warning("peer_rejected", NULL, e1));
    else
      ss_say(s, CHATC_LINE_ERROR, "%s", e1);
    break;
  case SECCHAT_CLIENT_EV_RELAY_ERROR:
    snprintf(e1, sizeof(e1), "the relay reported error %d", ev->detail);
    if (s->json)
      ss_emit(s, chatc_ev_warning("relay_error", NULL, e1));
    else
      ss_say(s, CHATC_LINE_ERROR, "%s", e1);
    break;
  case SECCHAT_CLIENT_EV_BYE:
    ss_say(s, CHATC_LINE_NOTICE, "the relay said goodbye (reason %d)", ev->detail);
    break;
  case SECCHAT_CLIENT_EV_CHAT_INVITED:
    user_of(s, ev->uid, ubuf, &ct, &u);
    (void)chatc_profile_chat_set(&s->prof, ev->chat_id, NULL, 0);
    s->prof_dirty = 1;
    if (s->json)
      ss_emit(s, chatc_ev_invited(hex, NULL, 0, &u));
    else
      ss_say(s, CHATC_LINE_NOTICE, "%s invites you to chat %s: /accept %s or /decline %s",
             u.name ? ss_esc(e2, 200, u.name, u.name_len) : ubuf, hex, hex, hex);
    break;
  case SECCHAT_CLIENT_EV_CHAT_JOINED:
    if (s->json)
      ss_emit(s, chatc_ev_joined(NULL, hex));
    else {
      ss_say(s, CHATC_LINE_NOTICE, "joined chat %s", hex);
      ss_set_current(s, ev->chat_id);
    }
    s->catchup_at = ss_now_ms() + CATCHUP_DELAY_MS;
    s->catchup_tries = 0;
    break;
  case SECCHAT_CLIENT_EV_CHAT_DECLINED:
    user_of(s, ev->uid, ubuf, &ct, &u);
    ss_say(s, CHATC_LINE_NOTICE, "%s declined the invitation to %s",
           u.name ? ss_esc(e2, 200, u.name, u.name_len) : ubuf, hex);
    break;
  case SECCHAT_CLIENT_EV_MEMBER_JOINED:
  case SECCHAT_CLIENT_EV_MEMBER_LEFT:
    user_of(s, ev->uid, ubuf, &ct, &u);
    if (s->json)
      ss_emit(s, ev->type == SECCHAT_CLIENT_EV_MEMBER_JOINED ? chatc_ev_member_joined(hex, &u)
                                                             : chatc_ev_member_left(hex, &u));
    else
      ss_say(s, CHATC_LINE_NOTICE, "%s %s chat %s",
             u.name ? ss_esc(e2, 200, u.name, u.name_len) : ubuf,
             ev->type == SECCHAT_CLIENT_EV_MEMBER_JOINED ? "joined"
             : ev->code == 1                             ? "was removed from"
                                                         : "left",
             ss_esc(e1, 200, ss_chat_name(s, ev->chat_id) ? ss_chat_name(s, ev->chat_id) : hex,
                    strlen(ss_chat_name(s, ev->chat_id) ? ss_chat_name(s, ev->chat_id) : hex)));
    break;
  case SECCHAT_CLIENT_EV_CHAT_REMOVED:
    u.uid = s->uid;
    u.name = s->prof.name;
    u.name_len = u.name ? strlen(u.name) : 0;
    if (s->json)
      ss_emit(s, chatc_ev_member_left(hex, &u));
    else
      ss_say(s, CHATC_LINE_NOTICE, "you are no longer a member of chat %s", hex);
    if (s->has_current && memcmp(s->current, ev->chat_id, 16) == 0) {
      s->has_current = 0;
      ss_set_prompt(s);
    }
    break;
  case SECCHAT_CLIENT_EV_MESSAGE:
    on_message(s, ev);
    break;
  case SECCHAT_CLIENT_EV_HISTORY_DONE:
    if (ev->gaps > 0) {
      snprintf(e1, sizeof(e1), "%llu message(s) could not be fetched from peers",
               (unsigned long long)ev->gaps);
      if (s->json)
        ss_emit(s, chatc_ev_warning("gap", hex, e1));
      else
        ss_say(s, CHATC_LINE_NOTICE, "%s", e1);
    }
    ss_hist_done(s, ev->chat_id, 0);
    break;
  case SECCHAT_CLIENT_EV_FORK_SUSPECTED:
    if (s->json)
      ss_emit(s, chatc_ev_fork_suspected(hex));
    else
      ss_say(s, CHATC_LINE_ERROR, "chat %s: members see different histories (fork suspected)", hex);
    break;
  case SECCHAT_CLIENT_EV_CHAT_WARNING:
    ss_err_code(ev->code, e2, sizeof(e2));
    snprintf(e1, sizeof(e1), "%s", secchat_strerror(ev->code));
    if (s->json)
      ss_emit(s, chatc_ev_warning(e2, hex, e1));
    else
      ss_say(s, CHATC_LINE_ERROR, "chat %s: %s", hex, e1);
    break;
  case SECCHAT_CLIENT_EV_GAP:
    user_of(s, ev->uid, ubuf, &ct, &u);
    snprintf(e1, sizeof(e1), "%u message(s) from %s missing; fetching them from peers", ev->count,
             ubuf);
    if (s->json)
      ss_emit(s, chatc_ev_warning("gap", hex, e1));
    else
      ss_say(s, CHATC_LINE_NOTICE, "%s", e1);
    (void)secchat_client_chat_request_history(s->c, ev->chat_id, HIST_PEERS, HIST_ITEMS,
                                              ss_now_ms());
    break;
  case SECCHAT_CLIENT_EV_HISTORY_RECORD:
    if (ev->data_len > 0 &&
        chatc_hist_append(s->st, ev->chat_id, 16, ev->data, ev->data_len, e1, sizeof(e1)) != 0)
      ss_say(s, CHATC_LINE_ERROR, "%s", e1);
    break;
  default:
    break;
  }
}

/* Drain events, write output, save what changed. Called after every input. */
void ss_pump(sess *s)
{
  secchat_client_event ev;
  for (int round = 0; round < 4; round++) {
    memset(&ev, 0, sizeof(ev));
    ev.struct_size = sizeof(ev);
    while (secchat_client_next_event(s->c, &ev) == 1) {
      on_event(s, &ev);
      memset(&ev, 0, sizeof(ev));
      ev.struct_size = sizeof(ev);
    }
    ss_flush_out(s);
    if (secchat_client_next_event(s->c, &ev) != 1)
      break;
    on_event(s, &ev);
  }
  ss_save_state(s);
}
