/* options.c: chatc's command line (see options.h). */
#include "options.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *chatc_usage_text(void)
{
  return "Usage: chatc --server HOST:PORT [options]\n"
         "       chatc --help | --version\n"
         "\n"
         "End-to-end encrypted chat client for a secchat relay (chatd). Messages are\n"
         "encrypted and signed on this machine; the relay only forwards them.\n"
         "\n"
         "Options:\n"
         "  --server HOST:PORT     relay to connect to ([v6addr]:PORT for IPv6)\n"
         "  --server-key FPR       the relay's fingerprint as printed by `chatd pubkey`\n"
         "                         (52 base32 characters); without it the key seen on\n"
         "                         first contact is pinned and a later change is refused\n"
         "  --home DIR             state directory (default $XDG_CONFIG_HOME/secchat,\n"
         "                         else ~/.config/secchat); mode 0700, files 0600\n"
         "  --json                 JSON-lines mode: commands on stdin, events on stdout\n"
         "                         (default when stdin is not a terminal)\n"
         "  --no-passphrase        keep the identity unencrypted (otherwise the\n"
         "                         passphrase comes from SECCHAT_PASSPHRASE or a prompt)\n"
         "  --history-cap BYTES    local history kept per chat (default 16777216)\n"
         "  -h, --help             this help\n"
         "  -V, --version          print the version\n"
         "\n"
         "Interactive mode (stdin is a terminal): text you type goes to the current\n"
         "chat; commands start with '/':\n"
         "  /register NAME  /login  /whoami  /chats  /create NAME  /switch CHAT\n"
         "  /invite USER  /accept CHAT  /decline CHAT  /leave  /remove USER\n"
         "  /members  /dm USER  /history [N]  /fingerprint [USER]\n"
         "  /verify USER SAFETY-NUMBER  /trust USER  /help  /quit\n"
         "USER is a name, NAME#FINGERPRINT or a uid; CHAT a chat id or its name.\n"
         "Compare safety numbers (/fingerprint USER) with your contact over another\n"
         "channel, then /verify. A changed identity for a known name is blocked\n"
         "until you /trust it.\n"
         "\n"
         "Files (in the home): identity, state, profile, lock, history/*.log.\n"
         "Environment: SECCHAT_PASSPHRASE, XDG_CONFIG_HOME, HOME, NO_COLOR.\n"
         "Exit status: 0 ok, 1 runtime error, 2 usage, 3 home directory refused or\n"
         "in use, 4 passphrase wrong or missing, 5 relay key mismatch, 6 registration\n"
         "or login refused.\n"
         "\n"
         "Example:\n"
         "  chatc --server 127.0.0.1:7420 --server-key FPR   (FPR: the \"fingerprint\"\n"
         "  line of `chatd pubkey --data-dir DIR` on the relay's machine)\n"
         "  then /register alice, /create club, /invite bob.\n"
         "Full reference: docs/chatc.md.\n";
}

static int fail(char *err, size_t errlen, const char *msg, const char *arg)
{
  if (err != NULL && errlen > 0)
    snprintf(err, errlen, "%s%s%s", msg, arg ? ": " : "", arg ? arg : "");
  return CHATC_OPT_ERROR;
}

static int split_server(chatc_options *o, const char *s)
{
  const char *colon, *host = s;
  size_t hlen;
  char *end;
  long port;

  if (s[0] == '[') {
    const char *rb = strchr(s, ']');
    if (rb == NULL || rb[1] != ':')
      return -1;
    host = s + 1;
    hlen = (size_t)(rb - host);
    colon = rb + 1;
  } else {
    colon = strrchr(s, ':');
    if (colon == NULL || memchr(s, ':', (size_t)(colon - s)) != NULL)
      return -1; /* bare IPv6 needs brackets */
    hlen = (size_t)(colon - s);
  }
  if (hlen == 0 || hlen >= sizeof(o->host))
    return -1;
  port = strtol(colon + 1, &end, 10);
  if (colon[1] == '\0' || *end != '\0' || port < 1 || port > 65535)
    return -1;
  memcpy(o->host, host, hlen);
  o->host[hlen] = '\0';
  snprintf(o->port, sizeof(o->port), "%ld", port);
  return 0;
}

int chatc_options_parse(int argc, char **argv, chatc_options *o, char *err, size_t errlen)
{
  enum { OPT_SERVER = 256, OPT_HOME, OPT_KEY, OPT_JSON, OPT_NOPASS, OPT_HCAP };
  static const struct option longopts[] = {
      {"server", required_argument, NULL, OPT_SERVER},
      {"home", required_argument, NULL, OPT_HOME},
      {"server-key", required_argument, NULL, OPT_KEY},
      {"json", no_argument, NULL, OPT_JSON},
      {"no-passphrase", no_argument, NULL, OPT_NOPASS},
      {"history-cap", required_argument, NULL, OPT_HCAP},
      {"help", no_argument, NULL, 'h'},
      {"version", no_argument, NULL, 'V'},
      {NULL, 0, NULL, 0}};
  char *end;
  unsigned long long v;
  int c;

  memset(o, 0, sizeof(*o));
  optind = 0; /* glibc: full re-initialisation (tests parse repeatedly) */
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":hV", longopts, NULL)) != -1) {
    switch (c) {
    case OPT_SERVER: o->server = optarg; break;
    case OPT_HOME: o->home = optarg; break;
    case OPT_KEY: o->server_key = optarg; break;
    case OPT_JSON: o->json = 1; break;
    case OPT_NOPASS: o->no_passphrase = 1; break;
    case OPT_HCAP:
      v = strtoull(optarg, &end, 10);
      if (optarg[0] < '0' || optarg[0] > '9' || *end != '\0' || v < 4096 ||
          v > (1ull << 32))
        return fail(err, errlen, "--history-cap: a number of bytes from 4096 to 4294967296",
                    optarg);
      o->history_cap = (size_t)v;
      break;
    case 'h': return CHATC_OPT_HELP;
    case 'V': return CHATC_OPT_VERSION;
    case ':': return fail(err, errlen, "missing value for option", argv[optind - 1]);
    default: return fail(err, errlen, "unknown option", argv[optind - 1]);
    }
  }
  if (optind < argc)
    return fail(err, errlen, "unexpected argument", argv[optind]);
  if (o->server == NULL)
    return fail(err, errlen, "--server HOST:PORT is required", NULL);
  if (split_server(o, o->server) != 0)
    return fail(err, errlen, "--server: expected HOST:PORT (port 1-65535)", o->server);
  return CHATC_OPT_RUN;
}
