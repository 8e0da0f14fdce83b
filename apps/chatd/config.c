/* config.c: command line + environment -> chatd_config (see config.h). */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "escape.h"

/* ---- Value parsers ------------------------------------------------------ */

int chatd_parse_uint(const char *s, unsigned min, unsigned max, unsigned *out)
{
  unsigned long long v = 0;

  if (!s || !*s)
    return -1;
  for (const char *p = s; *p; p++) {
    if (*p < '0' || *p > '9')
      return -1;
    v = v * 10 + (unsigned)(*p - '0');
    if (v > max)
      return -1; /* also stops overflow: max fits in unsigned */
  }
  if (v < min)
    return -1;
  *out = (unsigned)v;
  return 0;
}

int chatd_parse_duration(const char *s, uint64_t *seconds)
{
  uint64_t v = 0, unit = 1;
  const char *p = s;

  if (!s || *s < '0' || *s > '9')
    return -1;
  for (; *p >= '0' && *p <= '9'; p++) {
    uint64_t d = (uint64_t)(*p - '0');
    if (v > (UINT64_MAX - d) / 10)
      return -1;
    v = v * 10 + d;
  }
  switch (*p) {
  case '\0': break;
  case 's': unit = 1; p++; break;
  case 'm': unit = 60; p++; break;
  case 'h': unit = 3600; p++; break;
  case 'd': unit = 86400; p++; break;
  default: return -1;
  }
  if (*p != '\0' || v > UINT64_MAX / unit)
    return -1;
  *seconds = v * unit;
  return 0;
}

static void addr_text(chatd_addr *a)
{
  char host[NI_MAXHOST], serv[NI_MAXSERV];

  if (getnameinfo((const struct sockaddr *)&a->ss, a->len, host, sizeof host, serv, sizeof serv,
                  NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
    snprintf(a->text, sizeof a->text, "?");
    return;
  }
  snprintf(a->text, sizeof a->text, a->ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host,
           serv);
}

int chatd_parse_hostport(const char *s, chatd_addr *out, char *why, size_t whylen)
{
  char host[NI_MAXHOST];
  const char *colon, *port;
  struct addrinfo hints, *ai = NULL;
  unsigned portnum;
  size_t hlen;
  int family, rc;

  if (s[0] == '[') {
    const char *close = strchr(s, ']');
    if (!close || close[1] != ':') {
      snprintf(why, whylen, "expected [IPv6]:PORT, e.g. [::1]:7420");
      return -1;
    }
    hlen = (size_t)(close - (s + 1));
    memcpy(host, s + 1, hlen < sizeof host ? hlen : 0);
    port = close + 2;
    family = AF_INET6;
  } else {
    colon = strrchr(s, ':');
    if (!colon) {
      snprintf(why, whylen, "expected HOST:PORT, e.g. 127.0.0.1:7420 or [::1]:7420");
      return -1;
    }
    if (memchr(s, ':', (size_t)(colon - s))) {
      snprintf(why, whylen, "an IPv6 address needs brackets, e.g. [::1]:7420");
      return -1;
    }
    hlen = (size_t)(colon - s);
    memcpy(host, s, hlen < sizeof host ? hlen : 0);
    port = colon + 1;
    family = AF_INET;
  }
  if (hlen == 0 || hlen >= sizeof host) {
    snprintf(why, whylen, "missing or overlong host; expected a numeric IPv4 or [IPv6] address");
    return -1;
  }
  host[hlen] = '\0';
  if (chatd_parse_uint(port, 1, 65535, &portnum) != 0) {
    snprintf(why, whylen, "the port must be a number from 1 to 65535");
    return -1;
  }
  /* getaddrinfo() would take "127.1" or "0x7f.1" for IPv4: insist on a
   * dotted quad so a typo is not silently a different address. */
  if (family == AF_INET) {
    struct in_addr tmp;
    if (inet_pton(AF_INET, host, &tmp) != 1) {
      snprintf(why, whylen,
               "the host must be a numeric IPv4 address (dotted quad) or a bracketed IPv6 "
               "address; names are not resolved");
      return -1;
    }
  }
  memset(&hints, 0, sizeof hints);
  hints.ai_family = family;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  rc = getaddrinfo(host, port, &hints, &ai);
  if (rc != 0 || !ai || ai->ai_addrlen > sizeof out->ss) {
    if (ai)
      freeaddrinfo(ai);
    snprintf(why, whylen, family == AF_INET6 ? "not a numeric IPv6 address"
                                             : "not a numeric IPv4 address");
    return -1;
  }
  memset(out, 0, sizeof *out);
  memcpy(&out->ss, ai->ai_addr, ai->ai_addrlen);
  out->len = ai->ai_addrlen;
  freeaddrinfo(ai);
  addr_text(out);
  return 0;
}

int chatd_parse_syslog_uri(const char *s, chatd_syslog_transport *transport, chatd_addr *out,
                           char *why, size_t whylen)
{
  if (strncmp(s, "udp://", 6) == 0)
    *transport = CHATD_SYSLOG_UDP;
  else if (strncmp(s, "tcp://", 6) == 0)
    *transport = CHATD_SYSLOG_TCP;
  else {
    snprintf(why, whylen, "expected udp://HOST:PORT or tcp://HOST:PORT");
    return -1;
  }
  return chatd_parse_hostport(s + 6, out, why, whylen);
}

/* ---- Option setters ----------------------------------------------------- */

typedef int (*setter)(chatd_config *cfg, const char *v, char *why, size_t whylen);

static int set_listen(chatd_config *cfg, const char *v, char *why, size_t whylen)
{
  return chatd_parse_hostport(v, &cfg->listen, why, whylen);
}

static int set_name(chatd_config *cfg, const char *v, char *why, size_t whylen)
{
  size_t n = strlen(v);

  for (size_t i = 0; i < n; i++) {
    char c = v[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '.' || c == '_' || c == '-'))
      n = 0;
  }
  if (n == 0 || n > CHATD_NAME_MAX) {
    snprintf(why, whylen, "expected 1 to %u characters from A-Z a-z 0-9 . _ -", CHATD_NAME_MAX);
    return -1;
  }
  memcpy(cfg->name, v, n + 1);
  return 0;
}

/* Absolute form of path into out (PATH_MAX): relative paths are taken
 * from the current directory now, so a later chdir() cannot move them. */
static int absolute_path(const char *path, char *out, char *why, size_t whylen)
{
  char cwd[PATH_MAX];
  int n;

  if (!*path) {
    snprintf(why, whylen, "expected a non-empty path");
    return -1;
  }
  if (path[0] == '/') {
    n = snprintf(out, PATH_MAX, "%s", path);
  } else {
    if (!getcwd(cwd, sizeof cwd)) {
      snprintf(why, whylen, "relative path, and the current directory is unknown: %s",
               strerror(errno));
      return -1;
    }
    n = snprintf(out, PATH_MAX, "%s/%s", strcmp(cwd, "/") == 0 ? "" : cwd, path);
  }
  if (n < 0 || n >= PATH_MAX) {
    snprintf(why, whylen, "path too long (at most %d bytes)", PATH_MAX - 1);
    return -1;
  }
  return 0;
}

static int set_data_dir(chatd_config *cfg, const char *v, char *why, size_t whylen)
{
  return absolute_path(v, cfg->data_dir, why, whylen);
}

static int set_log_file(chatd_config *cfg, const char *v, char *why, size_t whylen)
{
  return absolute_path(v, cfg->log_file, why, whylen);
}

static int set_log_level(chatd_config *cfg, const char *v, char *why, size_t whylen)
{
  if (chatd_log_level_parse(v, &cfg->log_level) == 0)
    return 0;
  snprintf(why, whylen, "expected debug, info, warn or error");
  return -1;
}

static int set_syslog(chatd_config *cfg, const char *v, char *why, size_t whylen)
{
  if (chatd_parse_syslog_uri(v, &cfg->syslog_transport, &cfg->syslog, why, whylen) != 0)
    return -1;
  cfg->syslog_enabled = 1;
  return 0;
}

static int set_log_identities(chatd_config *cfg, const char *v, char *why, size_t whylen)
{
  if (chatd_log_ids_parse(v, &cfg->log_ids) == 0)
    return 0;
  snprintf(why, whylen, "expected hashed or plain");
  return -1;
}

static int set_threads(chatd_config *cfg, const char *v, char *why, size_t whylen)
{
  if (chatd_parse_uint(v, 1, CHATD_THREADS_MAX, &cfg->threads) == 0)
    return 0;
  snprintf(why, whylen, "expected an integer from 1 to %u", CHATD_THREADS_MAX);
  return -1;
}

static int set_max_conns(chatd_config *cfg, const char *v, char *why, size_t whylen)
{
  if (chatd_parse_uint(v, 1, CHATD_MAX_CONNS_LIMIT, &cfg->max_conns) == 0)
    return 0;
  snprintf(why, whylen, "expected an integer from 1 to %u", CHATD_MAX_CONNS_LIMIT);
  return -1;
}

static int set_max_conns_per_ip(chatd_config *cfg, const char *v, char *why, size_t whylen)
{
  if (chatd_parse_uint(v, 1, CHATD_MAX_CONNS_LIMIT, &cfg->max_conns_per_ip) == 0)
    return 0;
  snprintf(why, whylen, "expected an integer from 1 to %u", CHATD_MAX_CONNS_LIMIT);
  return -1;
}

static int set_token_ttl(chatd_config *cfg, const char *v, char *why, size_t whylen)
{
  uint64_t s;

  if (chatd_parse_duration(v, &s) == 0 && s >= CHATD_TOKEN_TTL_MIN && s <= CHATD_TOKEN_TTL_MAX) {
    cfg->token_ttl_s = (uint32_t)s;
    return 0;
  }
  snprintf(why, whylen,
           "expected a duration from 60s to 30d: digits with an optional unit s, m, h or d "
           "(e.g. 12h)");
  return -1;
}

static int set_metrics(chatd_config *cfg, const char *v, char *why, size_t whylen)
{
  if (chatd_parse_hostport(v, &cfg->metrics, why, whylen) != 0)
    return -1;
  cfg->metrics_enabled = 1;
  return 0;
}

typedef struct option_def {
  const char *name; /* without the leading "--" */
  const char *env;
  setter set;
} option_def;

static const option_def options[] = {
  {"listen", "CHATD_LISTEN", set_listen},
  {"name", "CHATD_NAME", set_name},
  {"data-dir", "CHATD_DATA_DIR", set_data_dir},
  {"log-file", "CHATD_LOG_FILE", set_log_file},
  {"log-level", "CHATD_LOG_LEVEL", set_log_level},
  {"syslog", "CHATD_SYSLOG", set_syslog},
  {"log-identities", "CHATD_LOG_IDENTITIES", set_log_identities},
  {"threads", "CHATD_THREADS", set_threads},
  {"max-conns", "CHATD_MAX_CONNS", set_max_conns},
  {"max-conns-per-ip", "CHATD_MAX_CONNS_PER_IP", set_max_conns_per_ip},
  {"token-ttl", "CHATD_TOKEN_TTL", set_token_ttl},
  {"metrics", "CHATD_METRICS", set_metrics},
};
#define NOPTIONS (sizeof options / sizeof options[0])

/* ---- Parser ------------------------------------------------------------- */

/* "invalid --threads value 'x': why" with the value escaped (it may come
 * from anywhere and ends up on a terminal). */
static int value_error(char *err, size_t errlen, const char *src_prefix, const char *src,
                       const char *v, const char *why)
{
  char ev[160];

  chatd_escape(ev, sizeof ev, v, strlen(v), NULL);
  snprintf(err, errlen, "invalid %s%s value '%s': %s", src_prefix, src, ev, why);
  return CHATD_EXIT_USAGE;
}

static const option_def *find_option(const char *name, size_t n)
{
  for (size_t i = 0; i < NOPTIONS; i++) {
    if (strlen(options[i].name) == n && memcmp(options[i].name, name, n) == 0)
      return &options[i];
  }
  return NULL;
}

static const char *env_get(char *const envp[], const char *name)
{
  size_t n = strlen(name);

  for (size_t i = 0; envp && envp[i]; i++) {
    if (strncmp(envp[i], name, n) == 0 && envp[i][n] == '=')
      return envp[i] + n + 1;
  }
  return NULL;
}

static int parse_args(chatd_config *cfg, int argc, char *const argv[], int seen[NOPTIONS],
                      char *err, size_t errlen)
{
  char why[256], ea[160];
  int have_cmd = 0, only_positional = 0;

  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *eq, *v;
    const option_def *o;
    size_t nlen;

    if (only_positional || a[0] != '-') {
      chatd_escape(ea, sizeof ea, a, strlen(a), NULL);
      if (have_cmd) {
        snprintf(err, errlen, "unexpected argument '%s'", ea);
        return CHATD_EXIT_USAGE;
      }
      if (strcmp(a, "keygen") == 0)
        cfg->command = CHATD_CMD_KEYGEN;
      else if (strcmp(a, "pubkey") == 0)
        cfg->command = CHATD_CMD_PUBKEY;
      else {
        snprintf(err, errlen, "unknown command '%s' (expected keygen or pubkey)", ea);
        return CHATD_EXIT_USAGE;
      }
      have_cmd = 1;
      continue;
    }
    if (strcmp(a, "--") == 0) {
      only_positional = 1;
      continue;
    }
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      cfg->command = CHATD_CMD_HELP;
      return CHATD_EXIT_OK;
    }
    if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
      cfg->command = CHATD_CMD_VERSION;
      return CHATD_EXIT_OK;
    }
    eq = strchr(a, '=');
    nlen = eq ? (size_t)(eq - a) : strlen(a);
    o = (a[1] == '-') ? find_option(a + 2, nlen - 2) : NULL;
    if (!o) {
      chatd_escape(ea, sizeof ea, a, nlen, NULL);
      snprintf(err, errlen, "unknown option '%s'", ea);
      return CHATD_EXIT_USAGE;
    }
    if (eq) {
      v = eq + 1;
    } else if (i + 1 < argc) {
      v = argv[++i];
    } else {
      snprintf(err, errlen, "option --%s needs a value", o->name);
      return CHATD_EXIT_USAGE;
    }
    if (o->set(cfg, v, why, sizeof why) != 0)
      return value_error(err, errlen, "--", o->name, v, why);
    seen[o - options] = 1;
  }
  return CHATD_EXIT_OK;
}

static int parse_env(chatd_config *cfg, char *const envp[], int seen[NOPTIONS], char *err,
                     size_t errlen)
{
  char why[256];

  for (size_t i = 0; i < NOPTIONS; i++) {
    const char *v = env_get(envp, options[i].env);
    if (seen[i] || !v || !*v)
      continue;
    if (options[i].set(cfg, v, why, sizeof why) != 0)
      return value_error(err, errlen, "", options[i].env, v, why);
    seen[i] = 1;
  }
  return CHATD_EXIT_OK;
}

/* ---- Defaults ----------------------------------------------------------- */

static unsigned default_threads(void)
{
  long n = sysconf(_SC_NPROCESSORS_ONLN);

  if (n < 1)
    return 1;
  return n > (long)CHATD_THREADS_MAX ? CHATD_THREADS_MAX : (unsigned)n;
}

/* $XDG_DATA_HOME/secchat-chatd, else $HOME/.local/share/secchat-chatd
 * (the XDG base directory rule: a relative XDG_DATA_HOME is ignored). */
static int default_data_dir(chatd_config *cfg, char *const envp[], char *err, size_t errlen)
{
  const char *xdg = env_get(envp, "XDG_DATA_HOME");
  const char *home = env_get(envp, "HOME");
  struct passwd *pw;
  int n;

  if (xdg && xdg[0] == '/') {
    n = snprintf(cfg->data_dir, sizeof cfg->data_dir, "%s/%s", xdg, CHATD_DATA_DIR_NAME);
  } else {
    if (!home || home[0] != '/') {
      pw = getpwuid(geteuid());
      home = pw && pw->pw_dir && pw->pw_dir[0] == '/' ? pw->pw_dir : NULL;
    }
    if (!home) {
      snprintf(err, errlen,
               "cannot choose a data directory: neither XDG_DATA_HOME nor HOME is set; "
               "use --data-dir");
      return CHATD_EXIT_USAGE;
    }
    n = snprintf(cfg->data_dir, sizeof cfg->data_dir, "%s/.local/share/%s", home,
                 CHATD_DATA_DIR_NAME);
  }
  if (n < 0 || (size_t)n >= sizeof cfg->data_dir) {
    snprintf(err, errlen, "default data directory path too long; use --data-dir");
    return CHATD_EXIT_USAGE;
  }
  return CHATD_EXIT_OK;
}

/* chatd.log next to the executable, as the product promises. */
static int default_log_file(chatd_config *cfg, char *err, size_t errlen)
{
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  char *slash;
  int m;

  if (n <= 0 || (size_t)n >= sizeof exe - 1) {
    snprintf(err, errlen, "cannot find the directory of the chatd executable (/proc/self/exe: %s); "
                          "use --log-file",
             n < 0 ? strerror(errno) : "path too long");
    return CHATD_EXIT_FAILURE;
  }
  exe[n] = '\0';
  slash = strrchr(exe, '/');
  if (!slash) {
    snprintf(err, errlen, "unexpected /proc/self/exe value; use --log-file");
    return CHATD_EXIT_FAILURE;
  }
  *slash = '\0';
  m = snprintf(cfg->log_file, sizeof cfg->log_file, "%s/%s", exe, CHATD_DEFAULT_LOG_NAME);
  if (m < 0 || (size_t)m >= sizeof cfg->log_file) {
    snprintf(err, errlen, "default log file path too long; use --log-file");
    return CHATD_EXIT_FAILURE;
  }
  return CHATD_EXIT_OK;
}

static void set_static_defaults(chatd_config *cfg)
{
  char why[128];

  memset(cfg, 0, sizeof *cfg);
  cfg->command = CHATD_CMD_RUN;
  (void)chatd_parse_hostport(CHATD_DEFAULT_LISTEN, &cfg->listen, why, sizeof why);
  memcpy(cfg->name, CHATD_DEFAULT_NAME, sizeof CHATD_DEFAULT_NAME);
  cfg->log_level = CHATD_LOG_INFO;
  cfg->log_ids = CHATD_LOG_IDS_HASHED;
  cfg->threads = default_threads();
  cfg->max_conns = CHATD_MAX_CONNS_DEFAULT;
  cfg->max_conns_per_ip = CHATD_MAX_CONNS_PER_IP_DEFAULT;
  cfg->token_ttl_s = CHATD_TOKEN_TTL_DEFAULT;
}

int chatd_config_parse(chatd_config *cfg, int argc, char *const argv[], char *const envp[],
                       char *err, size_t errlen)
{
  int seen[NOPTIONS] = {0};
  int rc;

  set_static_defaults(cfg);
  err[0] = '\0';
  rc = parse_args(cfg, argc, argv, seen, err, errlen);
  if (rc != CHATD_EXIT_OK || cfg->command == CHATD_CMD_HELP ||
      cfg->command == CHATD_CMD_VERSION)
    return rc;
  rc = parse_env(cfg, envp, seen, err, errlen);
  if (rc != CHATD_EXIT_OK)
    return rc;

  if (cfg->max_conns_per_ip > cfg->max_conns) {
    snprintf(err, errlen, "--max-conns-per-ip (%u) must not exceed --max-conns (%u)",
             cfg->max_conns_per_ip, cfg->max_conns);
    return CHATD_EXIT_USAGE;
  }
  if (!cfg->data_dir[0] && (rc = default_data_dir(cfg, envp, err, errlen)) != CHATD_EXIT_OK)
    return rc;
  /* keygen and pubkey write no log: no default log file to compute. */
  if (cfg->command == CHATD_CMD_RUN && !cfg->log_file[0] &&
      (rc = default_log_file(cfg, err, errlen)) != CHATD_EXIT_OK)
    return rc;
  return CHATD_EXIT_OK;
}

/* ---- Help --------------------------------------------------------------- */

void chatd_config_usage(FILE *out)
{
  fputs(
    "Usage: chatd [OPTION]...                 run the relay\n"
    "       chatd keygen [--data-dir DIR]     create the server keys\n"
    "       chatd pubkey [--data-dir DIR]     print the token public key (PEM)\n"
    "                                         and the server fingerprint\n"
    "\n"
    "chatd is the relay of secchat, an end-to-end encrypted group chat. It forwards\n"
    "encrypted messages between authenticated clients and stores nothing: no\n"
    "messages, no chat membership, no history.\n"
    "\n"
    "Options (each also read from the environment variable in brackets; the\n"
    "command line wins, an empty variable counts as unset):\n"
    "  --listen HOST:PORT         address to accept clients on: a numeric IPv4\n"
    "                             address or a bracketed IPv6 address, e.g.\n"
    "                             0.0.0.0:7420 or [::]:7420 (names are not\n"
    "                             resolved)\n"
    "                             [CHATD_LISTEN] (default 127.0.0.1:7420)\n"
    "  --name NAME                server name, also the issuer of the tokens it\n"
    "                             signs; 1-64 characters from A-Z a-z 0-9 . _ -\n"
    "                             [CHATD_NAME] (default secchat)\n"
    "  --data-dir DIR             directory of the server keys, created with mode\n"
    "                             0700; refused if group or others have access\n"
    "                             [CHATD_DATA_DIR] (default\n"
    "                             $XDG_DATA_HOME/secchat-chatd, else\n"
    "                             ~/.local/share/secchat-chatd)\n"
    "  --log-file PATH            event log, one line per event, created with mode\n"
    "                             0600; reopened on SIGHUP (for logrotate)\n"
    "                             [CHATD_LOG_FILE] (default chatd.log in the\n"
    "                             directory of the chatd executable)\n"
    "  --log-level LEVEL          debug, info, warn or error\n"
    "                             [CHATD_LOG_LEVEL] (default info)\n"
    "  --syslog udp://HOST:PORT | tcp://HOST:PORT\n"
    "                             also send every log record to a syslog collector\n"
    "                             (RFC 5424; octet counting over TCP). Never slows\n"
    "                             the relay: records that do not fit the bounded\n"
    "                             queue are dropped and counted\n"
    "                             [CHATD_SYSLOG] (default: off)\n"
    "  --log-identities hashed|plain\n"
    "                             hashed writes user names and ids as a keyed hash\n"
    "                             (\"h:\" + 16 hex digits) whose key is new at every\n"
    "                             start, so the log is no lasting record of who\n"
    "                             talks to whom; plain writes them escaped\n"
    "                             [CHATD_LOG_IDENTITIES] (default hashed)\n"
    "  --threads N                worker threads, 1-64\n"
    "                             [CHATD_THREADS] (default: the number of online\n"
    "                             CPUs, at most 64)\n"
    "  --max-conns N              connections in all, 1-1000000\n"
    "                             [CHATD_MAX_CONNS] (default 10000)\n"
    "  --max-conns-per-ip N       connections per source address, at most\n"
    "                             --max-conns\n"
    "                             [CHATD_MAX_CONNS_PER_IP] (default 16)\n"
    "  --token-ttl DURATION       lifetime of the tokens it signs, 60s to 30d; a\n"
    "                             number with an optional unit s, m, h or d\n"
    "                             (none: seconds) [CHATD_TOKEN_TTL] (default 7d)\n"
    "  --metrics HOST:PORT        serve Prometheus metrics over HTTP on this\n"
    "                             address\n"
    "                             [CHATD_METRICS] (default: off)\n"
    "  -h, --help                 show this help and exit\n"
    "  -V, --version              show the version and exit\n"
    "\n"
    "Signals: SIGHUP reopens the log file; SIGTERM and SIGINT stop the relay.\n"
    "\n"
    "Exit status: 0 success, 1 runtime failure (files, keys, sockets), 2 invalid\n"
    "command line or environment.\n"
    "\n"
    "Files: the data directory holds the server's secret keys (mode 0600, made\n"
    "by chatd keygen or at the first start); chatd refuses to start when a key\n"
    "file is empty, corrupt, not a regular file, a symbolic link, owned by\n"
    "another user or accessible to group or others.\n"
    "\n"
    "See docs/chatd.md for the log format and the syslog behaviour.\n",
    out);
}
