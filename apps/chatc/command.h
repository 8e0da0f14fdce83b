/*
 * command.h: one user command, parsed from an interactive line (slash.c) or
 * from a JSON-lines object (jsonl.c). The chatc main program executes it;
 * parsing does no I/O and knows nothing of the protocol.
 *
 * Fields a command does not use are NULL / 0. Strings are NUL-terminated,
 * malloc'd and owned by the command; chatc_cmd_clear() wipes the message
 * text and the other strings before freeing them.
 *
 * Threads: no shared state.
 */
#ifndef CHATC_COMMAND_H
#define CHATC_COMMAND_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef enum chatc_cmd_kind {
  CHATC_CMD_NONE = 0,
  CHATC_CMD_REGISTER,    /* name */
  CHATC_CMD_LOGIN,
  CHATC_CMD_WHOAMI,
  CHATC_CMD_CHATS,
  CHATC_CMD_CREATE,      /* name */
  CHATC_CMD_SWITCH,      /* chat (interactive only) */
  CHATC_CMD_MEMBERS,     /* chat (NULL: the current chat) */
  CHATC_CMD_INVITE,      /* chat (NULL: current), user */
  CHATC_CMD_ACCEPT,      /* chat */
  CHATC_CMD_DECLINE,     /* chat */
  CHATC_CMD_LEAVE,       /* chat (NULL: current) */
  CHATC_CMD_REMOVE,      /* chat (NULL: current), user */
  CHATC_CMD_DM,          /* user */
  CHATC_CMD_SEND,        /* chat (NULL: current), text */
  CHATC_CMD_HISTORY,     /* chat (NULL: current), limit (0: default) */
  CHATC_CMD_FINGERPRINT, /* user (NULL: our own) */
  CHATC_CMD_VERIFY,      /* user, safety_number (60 digits, spaces removed) */
  CHATC_CMD_TRUST,       /* user */
  CHATC_CMD_HELP,        /* interactive only */
  CHATC_CMD_QUIT
} chatc_cmd_kind;

/* Input limits (bytes). */
#define CHATC_NAME_MAX 64u      /* user and chat names */
#define CHATC_CHAT_MAX 128u     /* a chat reference */
#define CHATC_USER_MAX 256u     /* a user reference: name, name#fingerprint, uid */
#define CHATC_TEXT_MAX 32768u   /* one message */
#define CHATC_HISTORY_MAX 10000u /* largest history limit */
#define CHATC_SAFETY_DIGITS 60u

typedef struct chatc_cmd {
  chatc_cmd_kind kind;
  json_t *id; /* JSON mode: the "id" (string or integer) to echo, owned */
  char *name;
  char *chat;
  char *user;
  char *text;
  size_t text_len;
  char *safety_number;
  uint32_t limit;
} chatc_cmd;

/* Wipe and free what cmd owns; leaves it zeroed (kind NONE). */
void chatc_cmd_clear(chatc_cmd *cmd);

/* What a command naming a user asked the relay's directory before it runs:
 * a uid (by_uid) or a name. The answer (libsecchat's LOOKUP_DONE event)
 * carries the same uid or name, which is how it finds its command: the
 * relay's answers carry no request id, and matching by order would run the
 * wrong command after any lost or unexpected answer. */
typedef struct chatc_lookup_key {
  int by_uid;
  uint8_t uid[20];
  char name[CHATC_NAME_MAX + 1];
} chatc_lookup_key;

/* Index of the first key (oldest first) that an answer for uid (has_uid)
 * or for name[0, name_len) belongs to; n when none does. */
size_t chatc_lookup_match(const chatc_lookup_key *keys, size_t n, int has_uid,
                          const uint8_t *uid, const char *name, size_t name_len);

/* The command's name as used in JSON ("send"...), "" for NONE. */
const char *chatc_cmd_name(chatc_cmd_kind kind);

/* Parse errors (slash and JSON); the message names the problem. */
typedef enum chatc_parse_result {
  CHATC_PARSE_OK = 0,
  CHATC_PARSE_EMPTY = -1,   /* blank line: nothing to do */
  CHATC_PARSE_UNKNOWN = -2, /* unknown command */
  CHATC_PARSE_USAGE = -3,   /* wrong arguments: missing, extra, wrong type */
  CHATC_PARSE_TOO_LONG = -4,/* a field or the line over its limit */
  CHATC_PARSE_SYNTAX = -5,  /* malformed JSON, unterminated quote */
  CHATC_PARSE_ENCODING = -6,/* not valid UTF-8 */
  CHATC_PARSE_NOMEM = -7
} chatc_parse_result;

/* The error event code of a parse result ("bad_json"...). */
const char *chatc_parse_code(int result);

/* What each command takes. Field letters: n name, c chat, u user, t text,
 * s safety_number, l limit. */
typedef struct chatc_cmd_spec {
  const char *name;     /* "invite" */
  chatc_cmd_kind kind;
  const char *slash;    /* interactive arguments in order, lower case =
                           required, upper case = optional; NULL = not an
                           interactive command */
  const char *json_req; /* required JSON fields; NULL = not a JSON command */
  const char *json_opt; /* optional JSON fields */
  const char *usage;    /* "/invite USER" */
  const char *help;     /* one-line description */
} chatc_cmd_spec;

/* The spec of command name (len bytes), NULL if unknown. */
const chatc_cmd_spec *chatc_cmd_lookup(const char *name, size_t len);

/* The spec of kind (never NULL for a valid kind other than NONE/SEND's
 * interactive form). */
const chatc_cmd_spec *chatc_cmd_spec_of(chatc_cmd_kind kind);

/* Validate and store field letter (see above; not 'l') from len bytes of
 * s: non-empty, within its limit, valid UTF-8, and for names/chats/users
 * no control character; a safety number keeps its 60 digits only.
 * Returns CHATC_PARSE_OK, USAGE, TOO_LONG, ENCODING or NOMEM (message in
 * err naming the field by key). */
int chatc_cmd_set_field(chatc_cmd *cmd, char letter, const char *s, size_t len, char *err,
                        size_t errlen);

/* The JSON key of a field letter ("name"...). */
const char *chatc_cmd_field_key(char letter);

/* Interactive usage of every command, one "  USAGE  description\n" line
 * each, into out (cap bytes; 2048 is enough); whole lines only. Returns
 * the length written. */
size_t chatc_help_format(char *out, size_t cap);

#endif /* CHATC_COMMAND_H */
