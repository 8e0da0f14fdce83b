/*
 * jsonl.h: the JSON-lines protocol of `chatc --json` (schema: docs/chatc.md).
 *
 * Input: one JSON object per line, {"cmd": "...", "id": ..., fields...},
 * parsed strictly into a chatc_cmd: the object must have a string "cmd"
 * naming a JSON command, every required field with the right type, no
 * unknown or duplicate key; "id" (optional) is a string of at most
 * CHATC_JSON_ID_MAX bytes or an integer, echoed in the replies.
 *
 * Output: every event is one compact JSON object ({"event": "...", ...})
 * terminated by "\n", produced by the chatc_ev_* emitters below. Strings
 * coming from peers are repaired to valid UTF-8 (invalid bytes become
 * U+FFFD) and jansson escapes control characters; non-ASCII text is kept
 * as UTF-8. Emitters return a malloc'd line (free() it) or NULL when out of
 * memory. id is the command's "id" (NULL: none, not echoed). String
 * arguments may be NULL where noted: they become JSON null.
 *
 * Threads: no shared state.
 */
#ifndef CHATC_JSONL_H
#define CHATC_JSONL_H

#include "command.h"
#include "linebuf.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define CHATC_JSON_ID_MAX 128u
#define CHATC_JSON_LINE_MAX (64u * 1024u) /* longest input line */

/* Parse one input line (a trailing "\n"/"\r\n" is ignored) into *cmd.
 * CHATC_PARSE_OK, EMPTY (blank line: ignore it), or a negative result with
 * a message in err; cmd->id is set even on failure when the line had a
 * valid "id" (so the error event can echo it); chatc_cmd_clear() it in
 * every case. */
int chatc_json_parse(const char *line, size_t len, chatc_cmd *cmd, char *err, size_t errlen);

/* ---- Input driver: stdin bytes -> commands or error events ---------------
 * Splits the stream into lines (at most CHATC_JSON_LINE_MAX bytes), parses
 * each one and either hands the command to on_cmd or writes the error
 * event through out; blank lines are ignored; an oversized line gives one
 * "too_long" error and is skipped. The process keeps running in every case.
 * on_cmd may keep nothing from cmd after it returns (it is cleared then). */
typedef void (*chatc_json_cmd_fn)(void *arg, chatc_cmd *cmd);
typedef void (*chatc_json_out_fn)(void *arg, const char *line);

typedef struct chatc_jsonin {
  chatc_linebuf lb;
  chatc_json_cmd_fn on_cmd;
  chatc_json_out_fn out;
  void *arg;
} chatc_jsonin;

/* 0, or -1 if out of memory. */
int chatc_jsonin_init(chatc_jsonin *j, chatc_json_cmd_fn on_cmd, chatc_json_out_fn out,
                      void *arg);
void chatc_jsonin_feed(chatc_jsonin *j, const void *data, size_t len);
/* End of input: a last line without "\n" is still processed. */
void chatc_jsonin_finish(chatc_jsonin *j);
void chatc_jsonin_free(chatc_jsonin *j);

/* A user as shown in events: {"uid": uid, "name": name}. name is
 * name_len bytes (not NUL-terminated; NULL -> null). */
typedef struct chatc_ev_user {
  const char *uid;
  const char *name;
  size_t name_len;
} chatc_ev_user;

typedef struct chatc_ev_chat {
  const char *chat;
  const char *name; /* NULL -> null */
  size_t name_len;
  int admin;        /* we are its admin */
  unsigned members; /* member count */
} chatc_ev_chat;

typedef struct chatc_ev_member {
  chatc_ev_user user;
  const char *fingerprint;
  const char *trust; /* "tofu", "verified" or "changed" */
} chatc_ev_member;

typedef struct chatc_ev_msg {
  const char *chat;
  const char *msg; /* message id */
  chatc_ev_user from;
  const char *text;
  size_t text_len;
  uint64_t ts;      /* author timestamp, Unix ms */
  int verified;     /* author signature valid */
  const char *trust; /* the author's trust level */
} chatc_ev_msg;

typedef struct chatc_ev_gap {
  chatc_ev_user from; /* from.uid NULL: unknown author -> null */
  uint64_t count;     /* messages missing */
} chatc_ev_gap;

char *chatc_ev_error(const json_t *id, const char *code, const char *message);
char *chatc_ev_ok(const json_t *id, const char *cmd);
char *chatc_ev_ready(const chatc_ev_user *user);
char *chatc_ev_registered(const json_t *id, const chatc_ev_user *user);
char *chatc_ev_whoami(const json_t *id, const chatc_ev_user *user, const char *fingerprint,
                      const char *token);
char *chatc_ev_chats(const json_t *id, const chatc_ev_chat *chats, size_t n);
char *chatc_ev_members(const json_t *id, const char *chat, const chatc_ev_member *m, size_t n);
/* safety_number NULL (our own fingerprint) -> null. */
char *chatc_ev_fingerprint(const json_t *id, const char *user, const char *fingerprint,
                           const char *safety_number);
/* state: "connecting", "connected", "reconnecting", "offline"; detail may be NULL. */
char *chatc_ev_status(const char *state, const char *detail);
/* chat and detail may be NULL. */
char *chatc_ev_warning(const char *code, const char *chat, const char *detail);
char *chatc_ev_chat_created(const json_t *id, const char *chat, const char *name, size_t name_len);
char *chatc_ev_invited(const char *chat, const char *name, size_t name_len, const chatc_ev_user *by);
char *chatc_ev_joined(const json_t *id, const char *chat);
char *chatc_ev_member_joined(const char *chat, const chatc_ev_user *user);
char *chatc_ev_member_left(const char *chat, const chatc_ev_user *user);
char *chatc_ev_message(const chatc_ev_msg *m);
char *chatc_ev_sent(const json_t *id, const char *chat, const char *msg);
char *chatc_ev_relayed(const char *chat, const char *msg);
char *chatc_ev_history(const json_t *id, const char *chat, const chatc_ev_msg *msgs, size_t n,
                       const chatc_ev_gap *gaps, size_t ngaps);
char *chatc_ev_identity_changed(const char *user);
char *chatc_ev_fork_suspected(const char *chat);

#endif /* CHATC_JSONL_H */
