/* slash.c: interactive line -> command (rules in slash.h). */
#include "slash.h"

#include "apperr.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ARGS 4

static int is_space(char c)
{
  return c == ' ' || c == '\t';
}

/* Split p[0..len) into at most MAX_ARGS arguments (quotes, backslashes),
 * unquoted into buf (len bytes suffice: unquoting only shrinks). A
 * "rest" argument at index rest_at takes the remainder verbatim. */
static int split(const char *p, size_t len, char *buf, char *argv[MAX_ARGS], size_t argl[MAX_ARGS],
                 int *argc, int rest_at, char *err, size_t errlen)
{
  size_t i = 0, o = 0;
  int n = 0;

  for (;;) {
    while (i < len && is_space(p[i]))
      i++;
    if (i == len)
      break;
    if (n == MAX_ARGS)
      return app_fail(CHATC_PARSE_USAGE, err, errlen, "too many arguments");
    argv[n] = buf + o;
    if (n == rest_at) {
      size_t end = len;
      while (end > i && is_space(p[end - 1]))
        end--;
      memcpy(buf + o, p + i, end - i);
      argl[n++] = end - i;
      break;
    }
    int quoted = 0;
    size_t start = o;
    while (i < len) {
      char c = p[i];
      if (c == '\\') {
        if (i + 1 == len)
          return app_fail(CHATC_PARSE_SYNTAX, err, errlen, "a backslash ends the line");
        buf[o++] = p[i + 1];
        i += 2;
      } else if (c == '"') {
        quoted = !quoted;
        i++;
      } else if (!quoted && is_space(c)) {
        break;
      } else {
        buf[o++] = c;
        i++;
      }
    }
    if (quoted)
      return app_fail(CHATC_PARSE_SYNTAX, err, errlen, "unterminated quote");
    argl[n++] = o - start;
  }
  *argc = n;
  return CHATC_PARSE_OK;
}

static int usage(const chatc_cmd_spec *s, int rc, const char *why, char *err, size_t errlen)
{
  return app_fail(rc, err, errlen, "%s; usage: %s", why, s->usage);
}

static int parse_limit(const char *s, size_t len, uint32_t *out)
{
  uint32_t v = 0;

  if (len == 0 || len > 5)
    return -1;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -1;
    v = v * 10 + (uint32_t)(s[i] - '0');
  }
  if (v == 0 || v > CHATC_HISTORY_MAX)
    return -1;
  *out = v;
  return 0;
}

static int parse_command(const char *p, size_t len, chatc_cmd *cmd, char *err, size_t errlen)
{
  const chatc_cmd_spec *s;
  char *argv[MAX_ARGS], *buf;
  size_t argl[MAX_ARGS], nlen = 0, nreq = 0, nall;
  int argc = 0, rc, rest_at = -1;

  while (nlen < len && !is_space(p[nlen]))
    nlen++;
  s = chatc_cmd_lookup(p, nlen);
  if (s == NULL || s->slash == NULL) {
    char shown[40];
    size_t k = nlen < 24 ? nlen : 24;
    for (size_t i = 0; i < k; i++)
      shown[i] = ((unsigned char)p[i] >= 0x20 && (unsigned char)p[i] < 0x7f) ? p[i] : '?';
    shown[k] = '\0';
    return app_fail(CHATC_PARSE_UNKNOWN, err, errlen, "unknown command /%s%s (try /help)", shown,
                nlen > k ? "..." : "");
  }
  nall = strlen(s->slash);
  for (size_t i = 0; i < nall; i++) {
    if (s->slash[i] >= 'a' && s->slash[i] <= 'z')
      nreq++;
    if (s->slash[i] == 's')
      rest_at = (int)i;
  }
  if ((buf = malloc(len + 1)) == NULL)
    return app_fail(CHATC_PARSE_NOMEM, err, errlen, "out of memory");
  rc = split(p + nlen, len - nlen, buf, argv, argl, &argc, rest_at, err, errlen);
  if (rc == CHATC_PARSE_OK && (size_t)argc < nreq)
    rc = usage(s, CHATC_PARSE_USAGE, "missing argument", err, errlen);
  if (rc == CHATC_PARSE_OK && (size_t)argc > nall)
    rc = usage(s, CHATC_PARSE_USAGE, "too many arguments", err, errlen);
  cmd->kind = s->kind;
  for (int i = 0; rc == CHATC_PARSE_OK && i < argc; i++) {
    char letter = s->slash[i];
    if (letter >= 'A' && letter <= 'Z')
      letter = (char)(letter - 'A' + 'a');
    if (letter == 'l') {
      if (parse_limit(argv[i], argl[i], &cmd->limit) != 0)
        rc = app_fail(CHATC_PARSE_USAGE, err, errlen, "N must be a number from 1 to %u; usage: %s",
                  CHATC_HISTORY_MAX, s->usage);
    } else {
      char sub[200];
      rc = chatc_cmd_set_field(cmd, letter, argv[i], argl[i], sub, sizeof(sub));
      if (rc != CHATC_PARSE_OK)
        app_fail(rc, err, errlen, "%s; usage: %s", sub, s->usage);
    }
  }
  free(buf);
  return rc;
}

int chatc_slash_parse(const char *line, size_t len, chatc_cmd *cmd, char *err, size_t errlen)
{
  int rc;

  memset(cmd, 0, sizeof(*cmd));
  if (len > 0 && line[len - 1] == '\n')
    len--;
  if (len > 0 && line[len - 1] == '\r')
    len--;
  if (len == 0)
    return app_fail(CHATC_PARSE_EMPTY, err, errlen, "empty line");
  if (line[0] == '/' && !(len > 1 && line[1] == '/')) {
    if (len > CHATC_TEXT_MAX)
      return app_fail(CHATC_PARSE_TOO_LONG, err, errlen, "command line too long");
    rc = parse_command(line + 1, len - 1, cmd, err, errlen);
  } else {
    if (line[0] == '/') /* "//text" sends "/text" */
      line++, len--;
    int blank = 1;
    for (size_t i = 0; i < len && blank; i++)
      blank = is_space(line[i]);
    if (blank)
      return app_fail(CHATC_PARSE_EMPTY, err, errlen, "empty line");
    cmd->kind = CHATC_CMD_SEND;
    rc = chatc_cmd_set_field(cmd, 't', line, len, err, errlen);
  }
  if (rc != CHATC_PARSE_OK)
    chatc_cmd_clear(cmd);
  return rc;
}
