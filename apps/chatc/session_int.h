/*
 * session_int.h: chatc's session internals shared by session.c (start-up,
 * persistence, the connection and the poll loop), ui.c (output, names, the
 * messages shown in this run), events.c (client core events) and commands.c (user
 * commands). One sess per process, one thread.
 */
#ifndef CHATC_SESSION_INT_H
#define CHATC_SESSION_INT_H

#include "session.h"

#include "backoff.h"
#include "command.h"
#include "escape.h"
#include "jsonl.h"
#include "lineedit.h"
#include "output.h"
#include "passphrase.h"
#include "profile.h"
#include "sigfd.h"
#include "slash.h"

#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <secchat/secchat.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define OUTBUF_CAP 65536u
#define STATE_MAX (64u * 1024u * 1024u)
#define MEM_MSGS_MAX 10000u    /* messages kept in memory per chat */
#define HIST_WAIT_MS 5000u     /* a history command waits this long for peers */
#define CATCHUP_DELAY_MS 1000u /* after login: presence known, then catch up */
#define CATCHUP_RETRY_MS 3000u
#define HIST_PEERS 3u
#define HIST_ITEMS 1000u
#define CHATC_GAPS_MAX 64u /* authors listed in a history event's gaps */
#define PENDING_MAX 64u
#define CANDIDATES_MAX 16u

/* ---- Types ---------------------------------------------------------------- */

typedef struct mem_msg {
  char msg[2 * SECCHAT_MSG_ID_BYTES + 1];
  char uid[SECCHAT_UID_STRING_BYTES];
  char *name;
  size_t name_len;
  char *text;
  size_t text_len;
  uint64_t ts;
  int verified;
  uint32_t trust;
} mem_msg;

typedef struct mem_chat {
  uint8_t id[SECCHAT_CHAT_ID_BYTES];
  mem_msg *msgs;
  size_t n, cap;
} mem_chat;

typedef struct hist_wait {
  uint8_t chat[SECCHAT_CHAT_ID_BYTES];
  json_t *id;
  uint32_t limit;
  uint64_t deadline;
  int asked; /* 0: no member known online yet, ask again */
} hist_wait;

typedef struct candidate {
  char name[SECCHAT_NAME_MAX_BYTES + 1];
  char fpr[SECCHAT_FINGERPRINT_BYTES];
  char uid[SECCHAT_UID_STRING_BYTES];
} candidate;

typedef struct sess {
  const chatc_options *opt;
  chatc_store *st;
  chatc_profile prof;
  secchat_identity *id;
  secchat_client *c;
  char uid[SECCHAT_UID_STRING_BYTES];
  char fpr[SECCHAT_FINGERPRINT_BYTES];

  /* connection */
  int fd;
  int connecting; /* non-blocking connect in progress */
  int ever_online;
  uint8_t out[OUTBUF_CAP];
  size_t out_off, out_len;
  uint64_t reconnect_at; /* 0: not scheduled */
  chatc_backoff bo;
  uint64_t catchup_at;
  int catchup_tries;
  uint64_t online_since;

  /* input / output */
  int json;
  int jin_ok;
  chatc_jsonin jin;
  chatc_edit *edit;
  int color;
  int sigfd;
  int quit;
  int exit_code;
  char current[SECCHAT_CHAT_ID_BYTES];
  int has_current;

  /* requests waiting for the relay */
  json_t *register_id;
  int registering;                /* a register command is under way */
  int auth_refusals;              /* refused since the last login */
  chatc_cmd pending[PENDING_MAX]; /* commands waiting for their LOOKUP */
  chatc_lookup_key pending_key[PENDING_MAX]; /* ... and what each asked */
  size_t npending;
  candidate cand[CANDIDATES_MAX];
  size_t ncand;
  hist_wait waits[PENDING_MAX];
  size_t nwaits;

  mem_chat *mem;
  size_t nmem;
  int dirty; /* state blob to save */
  int prof_dirty;
} sess;

/* commands.c */
void ss_exec_cmd(sess *s, chatc_cmd *cmd, int looked_up);
void ss_pending_run(sess *s, size_t i);
void ss_on_edit_line(void *arg, const char *line, size_t len);
void ss_on_json_cmd(void *arg, chatc_cmd *cmd);

/* events.c */
void ss_catchup(sess *s);
void ss_fpr_text(const uint8_t fp[SECCHAT_SERVER_FINGERPRINT_BYTES], char *out, size_t cap);
void ss_hist_done(sess *s, const uint8_t *chat, uint64_t now);
void ss_hist_reply(sess *s, hist_wait *w);
void ss_pump(sess *s);

/* session.c */
int ss_can_login(const sess *s);
void ss_conn_lost(sess *s, const char *why);
void ss_conn_start(sess *s);
void ss_flush_out(sess *s);
void ss_save_state(sess *s);
void ss_sock_close(sess *s);

/* ui.c */
const char *ss_chat_name(sess *s, const uint8_t id[16]);
int ss_cmd_chat(sess *s, const chatc_cmd *cmd, uint8_t out[16]);
void ss_cmd_error(sess *s, const json_t *id, const char *code, const char *message);
void ss_cmd_fail(sess *s, const json_t *id, int rc, const char *what);
void ss_cmd_ok(sess *s, const json_t *id, chatc_cmd_kind kind, const char *text);
void ss_emit(sess *s, char *line);
void ss_err_code(int rc, char *out, size_t cap);
const char *ss_esc(char *out, size_t cap, const char *in, size_t len);
void ss_ev_msg_of(const mem_msg *m, const char *chat, chatc_ev_msg *e);
void ss_hexstr(const uint8_t *b, size_t n, char *out);
void ss_json_out_cb(void *arg, const char *line);
int ss_mem_add(sess *s, const uint8_t chat[16], const mem_msg *src);
mem_chat *ss_mem_get(sess *s, const uint8_t id[16]);
void ss_mem_msg_free(mem_msg *m);
uint64_t ss_now_ms(void);
void ss_print_line(sess *s, const char *line, size_t len);
__attribute__((format(printf, 3, 4))) void ss_say(sess *s, unsigned flags, const char *fmt, ...);
void ss_set_current(sess *s, const uint8_t id[16]);
void ss_set_prompt(sess *s);
void ss_show_msg(sess *s, const uint8_t chat[16], const mem_msg *m, int self);
void ss_status(sess *s, const char *state, const char *detail);
const char *ss_trust_str(uint32_t trust, uint32_t flags);
const char *ss_uid_name(sess *s, const uint8_t uid[SECCHAT_UID_BYTES], secchat_contact *ct);
void ss_uidstr(const uint8_t uid[SECCHAT_UID_BYTES], char out[SECCHAT_UID_STRING_BYTES]);

#endif /* CHATC_SESSION_INT_H */
