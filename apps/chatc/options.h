/*
 * options.h: chatc's command line and exit codes.
 *
 *   chatc --server HOST:PORT [--home DIR] [--server-key FINGERPRINT]
 *         [--json] [--no-passphrase] [--history-cap BYTES]
 *   chatc --help | --version
 *
 * Threads: pure.
 */
#ifndef CHATC_OPTIONS_H
#define CHATC_OPTIONS_H

#include <stddef.h>

/* Exit codes (docs/chatc.md). */
#define CHATC_EXIT_OK 0
#define CHATC_EXIT_RUNTIME 1    /* server unreachable for good, I/O error */
#define CHATC_EXIT_USAGE 2      /* bad command line */
#define CHATC_EXIT_HOME 3       /* home or file refused (mode, owner), locked */
#define CHATC_EXIT_PASSPHRASE 4 /* wrong, missing or mismatched passphrase */
#define CHATC_EXIT_SERVER_KEY 5 /* the server's key does not match the pin */
#define CHATC_EXIT_AUTH 6       /* authentication refused twice in a row */

typedef struct chatc_options {
  const char *server;     /* "HOST:PORT" as given */
  char host[256];
  char port[8];
  const char *home;       /* --home or NULL */
  const char *server_key; /* --server-key or NULL */
  int json;
  int no_passphrase;
  size_t history_cap;     /* bytes per chat; 0 = default */
} chatc_options;

typedef enum chatc_opt_result {
  CHATC_OPT_RUN = 0,
  CHATC_OPT_HELP = 1,
  CHATC_OPT_VERSION = 2,
  CHATC_OPT_ERROR = -1
} chatc_opt_result;

/* Parse argv into *o. HOST:PORT accepts "host:port" and "[v6]:port",
 * port 1..65535. Returns a chatc_opt_result; a message in err on error. */
int chatc_options_parse(int argc, char **argv, chatc_options *o, char *err, size_t errlen);

/* The --help text. */
const char *chatc_usage_text(void);

#endif /* CHATC_OPTIONS_H */
