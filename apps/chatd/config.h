/*
 * config.h: chatd's configuration from the command line and the
 * environment (docs/chatd.md lists every option).
 *
 * Every option --foo-bar has an environment variable CHATD_FOO_BAR; the
 * command line wins over the environment, the environment over the
 * defaults. An empty environment variable counts as unset. Both
 * "--opt VALUE" and "--opt=VALUE" are accepted. A value is checked when it
 * is read; an invalid one is a usage error whose message names the option
 * (or variable) and the offending value, escaped.
 *
 * Addresses are numeric only (getaddrinfo with AI_NUMERICHOST: no DNS at
 * start-up): a dotted-quad IPv4 address or a bracketed IPv6 address, then
 * ":PORT" with PORT 1..65535, e.g. 127.0.0.1:7420 or [::1]:7420.
 *
 * Threads: chatd_config_parse() is reentrant (no getopt state); it reads
 * /proc/self/exe and the current directory, nothing else.
 */
#ifndef CHATD_CONFIG_H
#define CHATD_CONFIG_H

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "log.h"
#include "syslog.h"

/* Exit codes of chatd. */
#define CHATD_EXIT_OK 0
#define CHATD_EXIT_FAILURE 1 /* runtime failure: files, keys, sockets */
#define CHATD_EXIT_USAGE 2   /* bad command line or environment */

#define CHATD_DEFAULT_LISTEN "127.0.0.1:7420"
#define CHATD_DEFAULT_NAME "secchat"
#define CHATD_DEFAULT_LOG_NAME "chatd.log"
#define CHATD_DATA_DIR_NAME "secchat-chatd"
#define CHATD_NAME_MAX 64u
#define CHATD_THREADS_MAX 64u
#define CHATD_MAX_CONNS_DEFAULT 10000u
#define CHATD_MAX_CONNS_LIMIT 1000000u
#define CHATD_MAX_CONNS_PER_IP_DEFAULT 16u
#define CHATD_TOKEN_TTL_DEFAULT (7u * 86400u)
#define CHATD_TOKEN_TTL_MIN 60u
#define CHATD_TOKEN_TTL_MAX (30u * 86400u)

typedef enum chatd_command {
  CHATD_CMD_RUN = 0, /* the relay */
  CHATD_CMD_KEYGEN,  /* create the server keys in the data dir */
  CHATD_CMD_PUBKEY,  /* print the token public key and fingerprint */
  CHATD_CMD_HELP,
  CHATD_CMD_VERSION
} chatd_command;

/* A parsed numeric socket address and its canonical text
 * ("127.0.0.1:7420", "[::1]:7420"). */
typedef struct chatd_addr {
  struct sockaddr_storage ss;
  socklen_t len;
  char text[64];
} chatd_addr;

typedef struct chatd_config {
  chatd_command command;
  chatd_addr listen;
  char name[CHATD_NAME_MAX + 1];  /* token issuer and server name */
  char data_dir[PATH_MAX];        /* absolute */
  char log_file[PATH_MAX];        /* absolute; empty for keygen/pubkey */
  chatd_log_level log_level;
  chatd_log_ids log_ids;
  int syslog_enabled;
  chatd_syslog_transport syslog_transport;
  chatd_addr syslog;
  unsigned threads;
  unsigned max_conns;
  unsigned max_conns_per_ip;
  uint32_t token_ttl_s;
  int metrics_enabled;
  chatd_addr metrics;
} chatd_config;

/* Parse argv (argc entries, argv[0] is the program) and envp (a
 * NULL-terminated "NAME=VALUE" array such as environ; may be NULL) into
 * cfg. --help and --version stop the parse and set the command; nothing
 * else is checked then. Returns CHATD_EXIT_OK, CHATD_EXIT_USAGE (message
 * in err) or CHATD_EXIT_FAILURE (a default could not be computed, e.g.
 * /proc/self/exe unreadable; message in err). */
int chatd_config_parse(chatd_config *cfg, int argc, char *const argv[], char *const envp[],
                       char *err, size_t errlen);

/* Parse "IPv4:PORT" or "[IPv6]:PORT". Returns 0, or -1 with the reason
 * (without the value) in why. */
int chatd_parse_hostport(const char *s, chatd_addr *out, char *why, size_t whylen);

/* Parse "udp://HOST:PORT" or "tcp://HOST:PORT". Returns 0 or -1 (why). */
int chatd_parse_syslog_uri(const char *s, chatd_syslog_transport *transport, chatd_addr *out,
                           char *why, size_t whylen);

/* Parse a duration: decimal digits with an optional unit s, m, h or d
 * (none: seconds), e.g. "90", "15m", "7d". No bounds. Returns 0 or -1. */
int chatd_parse_duration(const char *s, uint64_t *seconds);

/* Parse a decimal unsigned integer in [min, max] (digits only). */
int chatd_parse_uint(const char *s, unsigned min, unsigned max, unsigned *out);

/* The --help text. */
void chatd_config_usage(FILE *out);

#endif /* CHATD_CONFIG_H */
