/*
 * session.c: the chatc session (see session.h): start-up (identity, state,
 * local history), persistence, the relay connection with reconnects, the
 * poll loop. Output is ui.c, client core events events.c, user commands
 * commands.c; the shared state is in session_int.h.
 */
#include "session_int.h"

/* ---- Persistence ------------------------------------------------------------ */

void ss_save_state(sess *s)
{
  char err[512];
  size_t len = 0;
  uint64_t counter = 0;
  uint8_t *blob;
  int rc;

  if (s->dirty) {
    s->dirty = 0;
    rc = secchat_client_export_state(s->c, NULL, 0, &len, NULL);
    if (rc != SECCHAT_ERR_BUFFER_TOO_SMALL && rc != 0) {
      ss_say(s, CHATC_LINE_ERROR, "cannot export the client state: %s", secchat_strerror(rc));
      return;
    }
    if ((blob = malloc(len)) == NULL)
      return;
    rc = secchat_client_export_state(s->c, blob, len, &len, &counter);
    if (rc == 0 && chatc_store_write(s->st, CHATC_FILE_STATE, blob, len, err, sizeof(err)) != 0)
      ss_say(s, CHATC_LINE_ERROR, "%s", err);
    free(blob);
    if (rc == 0) {
      s->prof.counter = counter;
      s->prof_dirty = 1;
    }
  }
  if (s->prof_dirty) {
    s->prof_dirty = 0;
    if (chatc_profile_save(&s->prof, s->st, err, sizeof(err)) != 0)
      ss_say(s, CHATC_LINE_ERROR, "%s", err);
  }
}

/* Identity: load (decrypting with the passphrase) or create and store. */
static int load_identity(sess *s, char *err, size_t errlen)
{
  uint8_t blob[SECCHAT_IDENTITY_BLOB_MAX_BYTES];
  char pass[CHATC_PASSPHRASE_MAX];
  size_t len = 0, plen = 0;
  int rc, enc;

  rc = chatc_store_read(s->st, CHATC_FILE_IDENTITY, blob, sizeof(blob), &len, err, errlen);
  if (rc == CHATC_STORE_OK) {
    enc = secchat_identity_blob_is_encrypted(blob, len);
    if (enc < 0) {
      snprintf(err, errlen, "%.*s/%s is not an identity file", (int)512, s->st->path,
               CHATC_FILE_IDENTITY);
      return CHATC_EXIT_RUNTIME;
    }
    if (enc == 1) {
      if (chatc_passphrase_get("Passphrase for your secchat identity: ", 0, pass, sizeof(pass),
                               &plen, err, errlen) != CHATC_PASS_OK)
        return CHATC_EXIT_PASSPHRASE;
      rc = secchat_identity_import(&s->id, blob, len, pass, plen, 0);
      sodium_memzero(pass, sizeof(pass));
    } else {
      rc = secchat_identity_import(&s->id, blob, len, NULL, 0, SECCHAT_IDENTITY_UNENCRYPTED);
    }
    sodium_memzero(blob, sizeof(blob));
    if (rc == SECCHAT_ERR_PASSPHRASE) {
      snprintf(err, errlen, "wrong passphrase for %.*s/%s (or the file is damaged)", 512,
               s->st->path, CHATC_FILE_IDENTITY);
      return CHATC_EXIT_PASSPHRASE;
    }
    if (rc != 0) {
      snprintf(err, errlen, "cannot load %.*s/%s: %s", (int)512, s->st->path, CHATC_FILE_IDENTITY,
               secchat_strerror(rc));
      return CHATC_EXIT_RUNTIME;
    }
    return CHATC_EXIT_OK;
  }
  if (rc != CHATC_STORE_MISSING)
    return rc == CHATC_STORE_UNSAFE ? CHATC_EXIT_HOME : CHATC_EXIT_RUNTIME;
  /* First run: a new identity. */
  if (!s->opt->no_passphrase &&
      chatc_passphrase_get("New passphrase for your secchat identity: ", 1, pass, sizeof(pass),
                           &plen, err, errlen) != CHATC_PASS_OK)
    return CHATC_EXIT_PASSPHRASE;
  if ((rc = secchat_identity_new(&s->id)) != 0) {
    sodium_memzero(pass, sizeof(pass));
    snprintf(err, errlen, "cannot create an identity: %s", secchat_strerror(rc));
    return CHATC_EXIT_RUNTIME;
  }
  if (s->opt->no_passphrase)
    rc = secchat_identity_export(s->id, NULL, 0, 0, 0, SECCHAT_IDENTITY_UNENCRYPTED, blob,
                                 sizeof(blob), &len);
  else
    rc = secchat_identity_export(s->id, pass, plen, 0, 0, 0, blob, sizeof(blob), &len);
  sodium_memzero(pass, sizeof(pass));
  if (rc != 0) {
    snprintf(err, errlen, "cannot export the identity: %s", secchat_strerror(rc));
    return CHATC_EXIT_RUNTIME;
  }
  rc = chatc_store_write(s->st, CHATC_FILE_IDENTITY, blob, len, err, errlen);
  sodium_memzero(blob, sizeof(blob));
  return rc == CHATC_STORE_OK ? CHATC_EXIT_OK : CHATC_EXIT_RUNTIME;
}

static int load_state(sess *s, char *err, size_t errlen)
{
  uint8_t *blob = NULL;
  size_t len = 0;
  int rc = chatc_store_read_alloc(s->st, CHATC_FILE_STATE, STATE_MAX, &blob, &len, err, errlen);
  if (rc == CHATC_STORE_MISSING)
    return CHATC_EXIT_OK;
  if (rc != CHATC_STORE_OK)
    return rc == CHATC_STORE_UNSAFE ? CHATC_EXIT_HOME : CHATC_EXIT_RUNTIME;
  rc = secchat_client_import_state(s->c, blob, len, s->prof.counter, ss_now_ms());
  free(blob);
  if (rc != 0) {
    snprintf(err, errlen, "cannot load %.*s/%s: %s%s", (int)512, s->st->path, CHATC_FILE_STATE,
             secchat_strerror(rc),
             rc == SECCHAT_ERR_REPLAY ? " (older than the last state written: rolled back?)" : "");
    return CHATC_EXIT_RUNTIME;
  }
  return CHATC_EXIT_OK;
}

/* Local history: hand every stored record back to the client core so it
 * can answer peers' history requests. */
static void load_history(sess *s)
{
  size_t n = secchat_client_chat_count(s->c);
  for (size_t i = 0; i < n; i++) {
    uint8_t id[16], *buf = NULL;
    const uint8_t *rec;
    size_t len = 0, off = 0, rl;
    char err[256];
    if (secchat_client_chat_at(s->c, i, id, NULL, NULL, NULL) != 0)
      continue;
    if (chatc_hist_load(s->st, id, 16, &buf, &len, err, sizeof(err)) != CHATC_STORE_OK)
      continue;
    while (chatc_hist_next(buf, len, &off, &rec, &rl) == 1)
      (void)secchat_client_history_load(s->c, rec, rl, ss_now_ms());
    free(buf);
  }
}

/* ---- The relay connection ----------------------------------------------- */

void ss_sock_close(sess *s)
{
  if (s->fd >= 0) {
    close(s->fd);
    s->fd = -1;
  }
  s->connecting = 0;
  s->out_off = s->out_len = 0;
}

/* Without a registration there is nothing to log in with: the client
 * core would close the connection at once. Wait for register. */
int ss_can_login(const sess *s)
{
  return s->prof.name != NULL || s->registering;
}

static void schedule_reconnect(sess *s, const char *why)
{
  uint64_t now = ss_now_ms();
  uint32_t delay;
  char detail[512];

  if (!ss_can_login(s)) {
    s->reconnect_at = 0;
    ss_status(s, "offline", "not registered yet: register NAME first");
    return;
  }
  delay = chatc_backoff_next(&s->bo, now);

  s->reconnect_at = now + delay + 1;
  /* A reason too long for the status line is cut, not an error. */
  if (snprintf(detail, sizeof(detail), "%s%sretrying in %.1f s", why ? why : "",
               why ? "; " : "", delay / 1000.0) < 0)
    detail[0] = '\0';
  ss_status(s, "reconnecting", detail);
}

void ss_conn_lost(sess *s, const char *why)
{
  int was = s->fd >= 0;
  ss_sock_close(s);
  if (was)
    secchat_client_disconnected(s->c, ss_now_ms());
  if (!s->quit) /* e.g. a relay key mismatch ends chatc */
    schedule_reconnect(s, why);
  /* The core forgets the lookups of a dead connection: the commands that
   * waited for them run now with what we know. */
  while (s->npending > 0)
    ss_pending_run(s, 0);
  s->ncand = 0;
}

void ss_conn_start(sess *s)
{
  struct addrinfo hints, *res = NULL, *ai;
  char why[512];
  int rc, fd = -1;

  s->reconnect_at = 0;
  memset(&hints, 0, sizeof(hints));
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_family = AF_UNSPEC;
  ss_status(s, "connecting", s->opt->server);
  rc = getaddrinfo(s->opt->host, s->opt->port, &hints, &res);
  if (rc != 0) {
    snprintf(why, sizeof(why), "cannot resolve %s: %s", s->opt->host, gai_strerror(rc));
    schedule_reconnect(s, why);
    return;
  }
  for (ai = res; ai != NULL; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
      continue;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 || errno == EINPROGRESS)
      break;
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd < 0) {
    snprintf(why, sizeof(why), "cannot reach %s: %s", s->opt->server, strerror(errno));
    schedule_reconnect(s, why);
    return;
  }
  {
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  s->fd = fd;
  s->connecting = 1;
}

/* The TCP connection is up: start the secchat session on it. */
static void conn_established(sess *s)
{
  int rc;
  s->connecting = 0;
  rc = secchat_client_connect(s->c, ss_now_ms());
  if (rc != 0) {
    ss_sock_close(s);
    schedule_reconnect(s, secchat_strerror(rc));
  }
}

/* Write what the client core has for the relay. */
void ss_flush_out(sess *s)
{
  if (s->fd < 0 || s->connecting)
    return;
  for (;;) {
    if (s->out_off == s->out_len) {
      secchat_ssize n = secchat_client_send(s->c, s->out, sizeof(s->out));
      s->out_off = 0;
      s->out_len = n > 0 ? (size_t)n : 0;
      if (s->out_len == 0)
        return;
    }
    ssize_t w = send(s->fd, s->out + s->out_off, s->out_len - s->out_off, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return;
      char why[256];
      snprintf(why, sizeof(why), "connection lost: %s", strerror(errno));
      ss_conn_lost(s, why);
      return;
    }
    s->out_off += (size_t)w;
  }
}

/* ---- The loop --------------------------------------------------------------- */

static void on_sock(sess *s, short revents)
{
  uint8_t buf[65536];
  if (s->connecting) {
    int soerr = 0;
    socklen_t sl = sizeof(soerr);
    if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
      soerr = errno;
    if (soerr != 0) {
      char why[512];
      snprintf(why, sizeof(why), "cannot reach %s: %s", s->opt->server, strerror(soerr));
      ss_sock_close(s);
      schedule_reconnect(s, why);
      return;
    }
    if (revents & (POLLOUT | POLLIN))
      conn_established(s);
    return;
  }
  if (revents & (POLLIN | POLLHUP | POLLERR)) {
    for (;;) {
      ssize_t n = recv(s->fd, buf, sizeof(buf), 0);
      if (n > 0) {
        (void)secchat_client_recv(s->c, buf, (size_t)n, ss_now_ms());
        ss_pump(s);
        if (s->fd < 0)
          return;
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        break;
      ss_conn_lost(s, n == 0 ? "the relay closed the connection" : strerror(errno));
      return;
    }
  }
}

static int on_signals(sess *s)
{
  int sig;
  while ((sig = chatc_sigfd_next(s->sigfd)) != 0) {
    if (sig == SIGWINCH) {
      if (s->edit)
        chatc_edit_resize(s->edit);
    } else if (sig == SIGTSTP) {
      if (s->edit)
        chatc_edit_suspend(s->edit);
      chatc_sigfd_stop_self();
      if (s->edit)
        chatc_edit_resume(s->edit);
    } else if (sig != SIGCONT) {
      s->quit = 1;
    }
  }
  return 0;
}

/* Before exiting: give what is already encrypted for the relay (a message
 * sent just before quit) up to QUIT_DRAIN_MS to leave. */
#define QUIT_DRAIN_MS 2000u
static void drain(sess *s)
{
  uint64_t end = ss_now_ms() + QUIT_DRAIN_MS;
  if (s->exit_code != CHATC_EXIT_OK)
    return;
  while (s->fd >= 0 && !s->connecting && ss_now_ms() < end &&
         (s->out_off < s->out_len || secchat_client_pending(s->c) > 0)) {
    struct pollfd pf = {.fd = s->fd, .events = POLLOUT};
    if (poll(&pf, 1, 100) < 0 && errno != EINTR)
      return;
    ss_flush_out(s);
  }
}

static int loop(sess *s)
{
  struct pollfd fds[3];
  uint8_t buf[16384];
  int in_open = 1;

  if (ss_can_login(s))
    ss_conn_start(s);
  else
    ss_status(s, "offline", "not registered yet: register NAME first");
  ss_pump(s);
  while (!s->quit) {
    uint64_t now = ss_now_ms(), next = secchat_client_next_timeout(s->c);
    int nfds = 0, ti = -1, si = -1, timeout;

    if (s->reconnect_at && s->reconnect_at < next)
      next = s->reconnect_at;
    if (s->catchup_at && s->catchup_at < next)
      next = s->catchup_at;
    for (size_t i = 0; i < s->nwaits; i++) {
      uint64_t at = s->waits[i].asked ? s->waits[i].deadline : now + 100;
      if (at < next)
        next = at;
    }
    timeout = next == UINT64_MAX ? 60000
              : next <= now      ? 0
                                 : (int)((next - now) > 60000 ? 60000 : next - now);
    fds[nfds].fd = s->sigfd;
    fds[nfds++].events = POLLIN;
    if (in_open) {
      ti = nfds;
      fds[nfds].fd = s->edit ? chatc_edit_fd(s->edit) : 0;
      fds[nfds++].events = POLLIN;
    }
    if (s->fd >= 0) {
      si = nfds;
      fds[nfds].fd = s->fd;
      fds[nfds++].events =
          (short)(POLLIN | ((s->connecting || s->out_off < s->out_len) ? POLLOUT : 0));
    }
    if (poll(fds, (nfds_t)nfds, timeout) < 0 && errno != EINTR)
      return CHATC_EXIT_RUNTIME;
    if (fds[0].revents & POLLIN)
      on_signals(s);
    if (si >= 0 && fds[si].revents) {
      on_sock(s, fds[si].revents);
      ss_flush_out(s);
      ss_pump(s);
    }
    /* POLLNVAL too: a closed input must end the loop, not spin it. */
    if (!s->quit && ti >= 0 && fds[ti].revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL)) {
      if (s->edit) {
        if (chatc_edit_read(s->edit, ss_on_edit_line, s) == 1)
          s->quit = 1;
      } else {
        ssize_t n = read(0, buf, sizeof(buf));
        if (n > 0) {
          chatc_jsonin_feed(&s->jin, buf, (size_t)n);
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
          chatc_jsonin_finish(&s->jin);
          in_open = 0;
          s->quit = 1; /* end of input: exit like quit */
        }
      }
      sodium_memzero(buf, sizeof(buf));
    }
    now = ss_now_ms();
    if (now >= secchat_client_next_timeout(s->c))
      secchat_client_on_timeout(s->c, now);
    if (s->reconnect_at && now >= s->reconnect_at && s->fd < 0)
      ss_conn_start(s);
    if (s->catchup_at && now >= s->catchup_at && secchat_client_is_online(s->c))
      ss_catchup(s);
    for (size_t i = 0; i < s->nwaits; i++)
      if (!s->waits[i].asked && secchat_client_is_online(s->c))
        s->waits[i].asked = secchat_client_chat_request_history(s->c, s->waits[i].chat, HIST_PEERS,
                                                                HIST_ITEMS, now) > 0;
    if (s->nwaits)
      ss_hist_done(s, NULL, now);
    ss_pump(s);
  }
  ss_pump(s);
  drain(s);
  return s->exit_code;
}

/* ---- Entry ------------------------------------------------------------------- */

static void early_error(const chatc_options *opt, const char *code, const char *msg)
{
  fprintf(stderr, "chatc: %s\n", msg);
  if (opt->json) {
    char *l = chatc_ev_error(NULL, code, msg);
    if (l) {
      fputs(l, stdout);
      fflush(stdout);
      free(l);
    }
  }
}

/* --server-key: the text `chatd pubkey` prints (lowercase base32, RFC
 * 4648, no padding). Decoded here, then re-encoded by libsecchat and
 * compared, so only the canonical form is accepted. */
static int parse_server_key(const char *text, uint8_t out[SECCHAT_SERVER_FINGERPRINT_BYTES])
{
  static const char alpha[] = "abcdefghijklmnopqrstuvwxyz234567";
  char back[128];
  size_t n = 0;
  uint32_t acc = 0;
  int bits = 0;

  for (const char *p = text; *p; p++) {
    const char *d = strchr(alpha, *p);
    if (d == NULL || *p == 0)
      return -1;
    acc = (acc << 5) | (uint32_t)(d - alpha);
    bits += 5;
    if (bits >= 8) {
      if (n == SECCHAT_SERVER_FINGERPRINT_BYTES)
        return -1;
      out[n++] = (uint8_t)(acc >> (bits - 8));
      bits -= 8;
    }
  }
  if (n != SECCHAT_SERVER_FINGERPRINT_BYTES ||
      secchat_server_fingerprint_string(out, back, sizeof(back)) != 0 || strcmp(back, text) != 0)
    return -1;
  return 0;
}

int chatc_session_run(const chatc_options *opt, chatc_store *st)
{
  sess *s = calloc(1, sizeof(*s));
  secchat_client_config cfg;
  char err[1024];
  int rc;

  if (s == NULL)
    return CHATC_EXIT_RUNTIME;
  s->opt = opt;
  s->st = st;
  s->fd = -1;
  s->json = opt->json || !isatty(0);
  err[0] = 0;
  if (chatc_profile_load(&s->prof, st, err, sizeof(err)) != CHATC_STORE_OK) {
    early_error(opt, "home", err);
    rc = CHATC_EXIT_HOME;
    goto out;
  }
  if ((rc = load_identity(s, err, sizeof(err))) != CHATC_EXIT_OK) {
    early_error(opt, rc == CHATC_EXIT_PASSPHRASE ? "passphrase" : "identity", err);
    goto out;
  }
  (void)secchat_identity_uid_string(s->id, s->uid, sizeof(s->uid));
  (void)secchat_identity_fingerprint(s->id, s->fpr, sizeof(s->fpr));
  secchat_client_config_init(&cfg);
  cfg.identity = s->id;
  if ((rc = secchat_client_new(&s->c, &cfg)) != 0) {
    early_error(opt, "internal", secchat_strerror(rc));
    rc = CHATC_EXIT_RUNTIME;
    goto out;
  }
  if ((rc = load_state(s, err, sizeof(err))) != CHATC_EXIT_OK) {
    early_error(opt, "state", err);
    goto out;
  }
  if (opt->server_key != NULL) {
    uint8_t fpr[SECCHAT_SERVER_FINGERPRINT_BYTES], have[SECCHAT_SERVER_FINGERPRINT_BYTES];
    if (parse_server_key(opt->server_key, fpr) != 0) {
      early_error(opt, "bad_arguments",
                  "--server-key: expected the fingerprint printed by `chatd pubkey` "
                  "(52 base32 characters)");
      rc = CHATC_EXIT_USAGE;
      goto out;
    }
    if (secchat_client_server_fingerprint(s->c, have) == 0) {
      if (sodium_memcmp(have, fpr, sizeof(fpr)) != 0) {
        char h[128];
        ss_fpr_text(have, h, sizeof(h));
        snprintf(err, sizeof(err),
                 "--server-key does not match the relay key pinned in %.512s (%s); refusing",
                 st->path, h);
        early_error(opt, "server_key_mismatch", err);
        rc = CHATC_EXIT_SERVER_KEY;
        goto out;
      }
    } else {
      (void)secchat_client_expect_server_fingerprint(s->c, fpr);
    }
  }
  load_history(s);
  chatc_backoff_init(&s->bo, NULL, NULL);
  if ((s->sigfd = chatc_sigfd_install()) < 0) {
    early_error(opt, "internal", "cannot install signal handlers");
    rc = CHATC_EXIT_RUNTIME;
    goto out;
  }
  if (s->json) {
    if (chatc_jsonin_init(&s->jin, ss_on_json_cmd, ss_json_out_cb, s) != 0) {
      rc = CHATC_EXIT_RUNTIME;
      goto out;
    }
    s->jin_ok = 1;
  } else {
    setlocale(LC_ALL, "");
    s->color = chatc_color_enabled(1);
    if ((s->edit = chatc_edit_new("chatc", stdin, stdout, "> ")) == NULL) {
      early_error(opt, "internal", "cannot start the line editor");
      rc = CHATC_EXIT_RUNTIME;
      goto out;
    }
    ss_say(s, CHATC_LINE_NOTICE, "chatc %s: you are %s (fingerprint %s). /help lists the commands.",
           CHATC_VERSION, s->prof.name ? s->prof.name : "not registered yet: /register NAME",
           s->fpr);
  }
  rc = loop(s);
  s->dirty = 1;
  ss_save_state(s);
out:
  if (s->edit)
    chatc_edit_free(s->edit);
  if (s->jin_ok)
    chatc_jsonin_free(&s->jin);
  for (size_t i = 0; i < s->npending; i++)
    chatc_cmd_clear(&s->pending[i]);
  for (size_t i = 0; i < s->nwaits; i++)
    json_decref(s->waits[i].id);
  json_decref(s->register_id);
  for (size_t i = 0; i < s->nmem; i++) {
    for (size_t j = 0; j < s->mem[i].n; j++)
      ss_mem_msg_free(&s->mem[i].msgs[j]);
    free(s->mem[i].msgs);
  }
  free(s->mem);
  ss_sock_close(s);
  secchat_client_free(s->c);
  secchat_identity_free(s->id);
  chatc_profile_free(&s->prof);
  free(s);
  return rc;
}
