/* command.c: the command table, field validation, cleanup (see command.h). */
#include "command.h"

#include "apperr.h"
#include "escape.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const chatc_cmd_spec specs[] = {
    {"register", CHATC_CMD_REGISTER, "n", "n", "", "/register NAME",
     "register NAME with the relay (first run)"},
    {"login", CHATC_CMD_LOGIN, "", "", "", "/login", "log in again with the stored identity"},
    {"whoami", CHATC_CMD_WHOAMI, "", "", "", "/whoami", "show your uid, name and fingerprint"},
    {"chats", CHATC_CMD_CHATS, "", "", "", "/chats", "list your chats and invitations"},
    {"create", CHATC_CMD_CREATE, "n", "n", "", "/create NAME", "create a chat (you are its admin)"},
    {"switch", CHATC_CMD_SWITCH, "c", NULL, NULL, "/switch CHAT",
     "make CHAT the current chat (plain text goes there)"},
    {"members", CHATC_CMD_MEMBERS, "", "c", "", "/members",
     "list the current chat's members with their trust levels"},
    {"invite", CHATC_CMD_INVITE, "u", "cu", "", "/invite USER",
     "invite USER to the current chat (admin)"},
    {"accept", CHATC_CMD_ACCEPT, "c", "c", "", "/accept CHAT", "accept an invitation"},
    {"decline", CHATC_CMD_DECLINE, "c", "c", "", "/decline CHAT", "decline an invitation"},
    {"leave", CHATC_CMD_LEAVE, "", "c", "", "/leave", "leave the current chat"},
    {"remove", CHATC_CMD_REMOVE, "u", "cu", "", "/remove USER",
     "remove USER from the current chat (admin)"},
    {"dm", CHATC_CMD_DM, "u", "u", "", "/dm USER", "open a direct chat with USER"},
    {"send", CHATC_CMD_SEND, NULL, "ct", "", "TEXT", "send TEXT to the current chat"},
    {"history", CHATC_CMD_HISTORY, "L", "c", "l", "/history [N]",
     "show the last N messages (default 50) of the current chat"},
    {"fingerprint", CHATC_CMD_FINGERPRINT, "U", "u", "", "/fingerprint [USER]",
     "show your fingerprint, or USER's with your safety number"},
    {"verify", CHATC_CMD_VERIFY, "us", "us", "", "/verify USER SAFETY-NUMBER",
     "mark USER verified after comparing the safety number out of band"},
    {"trust", CHATC_CMD_TRUST, "u", "u", "", "/trust USER",
     "accept USER's new identity after an identity change"},
    {"help", CHATC_CMD_HELP, "", NULL, NULL, "/help", "this list"},
    {"quit", CHATC_CMD_QUIT, "", "", "", "/quit", "leave chatc"},
};

const chatc_cmd_spec *chatc_cmd_lookup(const char *name, size_t len)
{
  for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++)
    if (strlen(specs[i].name) == len && memcmp(specs[i].name, name, len) == 0)
      return &specs[i];
  return NULL;
}

const chatc_cmd_spec *chatc_cmd_spec_of(chatc_cmd_kind kind)
{
  for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++)
    if (specs[i].kind == kind)
      return &specs[i];
  return NULL;
}

const char *chatc_cmd_name(chatc_cmd_kind kind)
{
  const chatc_cmd_spec *s = chatc_cmd_spec_of(kind);

  return s != NULL ? s->name : "";
}

const char *chatc_cmd_field_key(char letter)
{
  switch (letter) {
  case 'n': return "name";
  case 'c': return "chat";
  case 'u': return "user";
  case 't': return "text";
  case 's': return "safety_number";
  case 'l': return "limit";
  default: return "?";
  }
}

static void free_str(char **p, size_t len)
{
  if (*p != NULL) {
    sodium_memzero(*p, len);
    free(*p);
    *p = NULL;
  }
}

size_t chatc_lookup_match(const chatc_lookup_key *keys, size_t n, int has_uid,
                          const uint8_t *uid, const char *name, size_t name_len)
{
  for (size_t i = 0; i < n; i++) {
    const chatc_lookup_key *k = &keys[i];
    if (has_uid ? (k->by_uid && uid != NULL && memcmp(k->uid, uid, sizeof(k->uid)) == 0)
                : (!k->by_uid && name != NULL && strlen(k->name) == name_len &&
                   memcmp(k->name, name, name_len) == 0))
      return i;
  }
  return n;
}

void chatc_cmd_clear(chatc_cmd *cmd)
{
  free_str(&cmd->name, cmd->name ? strlen(cmd->name) : 0);
  free_str(&cmd->chat, cmd->chat ? strlen(cmd->chat) : 0);
  free_str(&cmd->user, cmd->user ? strlen(cmd->user) : 0);
  free_str(&cmd->text, cmd->text_len);
  free_str(&cmd->safety_number, cmd->safety_number ? strlen(cmd->safety_number) : 0);
  json_decref(cmd->id);
  memset(cmd, 0, sizeof(*cmd));
}

static char *dup_n(const char *s, size_t len)
{
  char *p = malloc(len + 1);

  if (p != NULL) {
    memcpy(p, s, len);
    p[len] = '\0';
  }
  return p;
}

/* Keep the 60 digits of a safety number typed with or without spaces. */
static int set_safety(chatc_cmd *cmd, const char *s, size_t len, char *err, size_t errlen)
{
  char digits[CHATC_SAFETY_DIGITS + 1];
  size_t n = 0;

  for (size_t i = 0; i < len; i++) {
    if (s[i] == ' ' || s[i] == '\t')
      continue;
    if (s[i] < '0' || s[i] > '9')
      return app_fail(CHATC_PARSE_USAGE, err, errlen,
                  "safety_number: only digits and spaces are allowed");
    if (n == CHATC_SAFETY_DIGITS)
      return app_fail(CHATC_PARSE_USAGE, err, errlen, "safety_number: more than %u digits",
                  CHATC_SAFETY_DIGITS);
    digits[n++] = s[i];
  }
  if (n != CHATC_SAFETY_DIGITS)
    return app_fail(CHATC_PARSE_USAGE, err, errlen, "safety_number: %zu digits, expected %u", n,
                CHATC_SAFETY_DIGITS);
  if ((cmd->safety_number = dup_n(digits, n)) == NULL)
    return app_fail(CHATC_PARSE_NOMEM, err, errlen, "out of memory");
  return CHATC_PARSE_OK;
}

int chatc_cmd_set_field(chatc_cmd *cmd, char letter, const char *s, size_t len, char *err,
                        size_t errlen)
{
  const char *key = chatc_cmd_field_key(letter);
  size_t max;
  char **dst;

  switch (letter) {
  case 'n': max = CHATC_NAME_MAX, dst = &cmd->name; break;
  case 'c': max = CHATC_CHAT_MAX, dst = &cmd->chat; break;
  case 'u': max = CHATC_USER_MAX, dst = &cmd->user; break;
  case 't': max = CHATC_TEXT_MAX, dst = &cmd->text; break;
  case 's': return set_safety(cmd, s, len, err, errlen);
  default: return app_fail(CHATC_PARSE_USAGE, err, errlen, "unknown field");
  }
  if (len == 0)
    return app_fail(CHATC_PARSE_USAGE, err, errlen, "%s: must not be empty", key);
  if (len > max)
    return app_fail(CHATC_PARSE_TOO_LONG, err, errlen, "%s: %zu bytes, at most %zu allowed", key, len,
                max);
  if (!chatc_utf8_valid(s, len))
    return app_fail(CHATC_PARSE_ENCODING, err, errlen, "%s: not valid UTF-8", key);
  if (memchr(s, '\0', len) != NULL)
    return app_fail(CHATC_PARSE_USAGE, err, errlen, "%s: contains a NUL character", key);
  if (letter != 't') {
    for (size_t i = 0; i < len; i++)
      if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
        return app_fail(CHATC_PARSE_USAGE, err, errlen, "%s: contains a control character", key);
  }
  if (*dst != NULL)
    free_str(dst, strlen(*dst));
  if ((*dst = dup_n(s, len)) == NULL)
    return app_fail(CHATC_PARSE_NOMEM, err, errlen, "out of memory");
  if (letter == 't')
    cmd->text_len = len;
  return CHATC_PARSE_OK;
}

const char *chatc_parse_code(int result)
{
  switch (result) {
  case CHATC_PARSE_OK: return "ok";
  case CHATC_PARSE_EMPTY: return "empty";
  case CHATC_PARSE_UNKNOWN: return "unknown_command";
  case CHATC_PARSE_USAGE: return "bad_arguments";
  case CHATC_PARSE_TOO_LONG: return "too_long";
  case CHATC_PARSE_SYNTAX: return "bad_json";
  case CHATC_PARSE_ENCODING: return "bad_encoding";
  case CHATC_PARSE_NOMEM: return "out_of_memory";
  default: return "error";
  }
}

size_t chatc_help_format(char *out, size_t cap)
{
  size_t o = 0;

  if (cap == 0)
    return 0;
  out[0] = '\0';
  for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
    int w = snprintf(out + o, cap - o, "  %-28s %s\n", specs[i].usage, specs[i].help);
    if (w < 0 || (size_t)w >= cap - o) {
      out[o] = '\0';
      break;
    }
    o += (size_t)w;
  }
  return o;
}
