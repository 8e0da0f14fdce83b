/* test_chatd_config.c: command line + environment parsing, and the real
 * chatd binary's exit codes and messages. */
#include <arpa/inet.h>
#include <libgen.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chatd_testutil.h"
#include "config.h"

static chatd_config cfg;
static char err[1024];

static char *const home_env[] = {"HOME=/home/tester", NULL};

/* Parse a NULL-terminated argument list (without argv[0]). */
static int parse_env(char *const envp[], const char *a0, ...)
{
  char *argv[32];
  int argc = 0;
  va_list ap;

  argv[argc++] = "chatd";
  va_start(ap, a0);
  for (const char *a = a0; a; a = va_arg(ap, const char *))
    argv[argc++] = (char *)(uintptr_t)a;
  va_end(ap);
  argv[argc] = NULL;
  return chatd_config_parse(&cfg, argc, argv, envp, err, sizeof err);
}
#define PARSE(...) parse_env(home_env, __VA_ARGS__, (const char *)NULL)

static unsigned short port_of(const chatd_addr *a)
{
  if (a->ss.ss_family == AF_INET)
    return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
  return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
}

START_TEST(defaults)
{
  char exe[4096], expect[4096 + 16];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);

  ck_assert_int_eq(parse_env(home_env, NULL), CHATD_EXIT_OK);
  ck_assert_int_eq(cfg.command, CHATD_CMD_RUN);
  ck_assert_str_eq(cfg.listen.text, "127.0.0.1:7420");
  ck_assert_int_eq(cfg.listen.ss.ss_family, AF_INET);
  ck_assert_uint_eq(port_of(&cfg.listen), 7420);
  ck_assert_str_eq(cfg.name, "secchat");
  ck_assert_str_eq(cfg.data_dir, "/home/tester/.local/share/secchat-chatd");
  ck_assert_int_gt(n, 0);
  exe[n] = '\0';
  snprintf(expect, sizeof expect, "%s/chatd.log", dirname(exe));
  ck_assert_str_eq(cfg.log_file, expect);
  ck_assert_int_eq(cfg.log_level, CHATD_LOG_INFO);
  ck_assert_int_eq(cfg.log_ids, CHATD_LOG_IDS_HASHED);
  ck_assert_int_eq(cfg.syslog_enabled, 0);
  ck_assert_int_eq(cfg.metrics_enabled, 0);
  ck_assert_uint_eq(cfg.threads, cpus > 64 ? 64 : (unsigned)cpus);
  ck_assert_uint_eq(cfg.max_conns, 10000);
  ck_assert_uint_eq(cfg.max_conns_per_ip, 16);
  ck_assert_uint_eq(cfg.token_ttl_s, 7 * 86400);
}
END_TEST

START_TEST(xdg_data_home)
{
  char *const xdg[] = {"HOME=/home/tester", "XDG_DATA_HOME=/srv/xdg", NULL};
  char *const rel[] = {"HOME=/home/tester", "XDG_DATA_HOME=relative/dir", NULL};
  char *const none[] = {"XDG_DATA_HOME=", NULL};

  ck_assert_int_eq(parse_env(xdg, NULL), CHATD_EXIT_OK);
  ck_assert_str_eq(cfg.data_dir, "/srv/xdg/secchat-chatd");
  /* XDG base dir spec: a relative value is invalid and ignored. */
  ck_assert_int_eq(parse_env(rel, NULL), CHATD_EXIT_OK);
  ck_assert_str_eq(cfg.data_dir, "/home/tester/.local/share/secchat-chatd");
  /* No HOME: the passwd entry of the user. */
  ck_assert_int_eq(parse_env(none, NULL), CHATD_EXIT_OK);
  ck_assert_ptr_nonnull(strstr(cfg.data_dir, "/.local/share/secchat-chatd"));
}
END_TEST

START_TEST(every_option_from_command_line)
{
  ck_assert_int_eq(PARSE("--listen", "0.0.0.0:9000", "--name", "relay-1.example",
                         "--data-dir", "/var/lib/chatd", "--log-file", "/var/log/chatd.log",
                         "--log-level", "debug", "--syslog", "tcp://10.0.0.5:6514",
                         "--log-identities", "plain", "--threads", "3", "--max-conns", "500",
                         "--max-conns-per-ip", "4", "--token-ttl", "12h", "--metrics",
                         "127.0.0.1:9100"),
                   CHATD_EXIT_OK);
  ck_assert_str_eq(cfg.listen.text, "0.0.0.0:9000");
  ck_assert_str_eq(cfg.name, "relay-1.example");
  ck_assert_str_eq(cfg.data_dir, "/var/lib/chatd");
  ck_assert_str_eq(cfg.log_file, "/var/log/chatd.log");
  ck_assert_int_eq(cfg.log_level, CHATD_LOG_DEBUG);
  ck_assert_int_eq(cfg.syslog_enabled, 1);
  ck_assert_int_eq(cfg.syslog_transport, CHATD_SYSLOG_TCP);
  ck_assert_str_eq(cfg.syslog.text, "10.0.0.5:6514");
  ck_assert_int_eq(cfg.log_ids, CHATD_LOG_IDS_PLAIN);
  ck_assert_uint_eq(cfg.threads, 3);
  ck_assert_uint_eq(cfg.max_conns, 500);
  ck_assert_uint_eq(cfg.max_conns_per_ip, 4);
  ck_assert_uint_eq(cfg.token_ttl_s, 12 * 3600);
  ck_assert_int_eq(cfg.metrics_enabled, 1);
  ck_assert_str_eq(cfg.metrics.text, "127.0.0.1:9100");
}
END_TEST

START_TEST(equals_form)
{
  ck_assert_int_eq(PARSE("--threads=5", "--syslog=udp://127.0.0.1:514", "--name=a=b"),
                   CHATD_EXIT_USAGE); /* '=' is not allowed in a name */
  ck_assert_ptr_nonnull(strstr(err, "--name"));
  ck_assert_int_eq(PARSE("--threads=5", "--syslog=udp://127.0.0.1:514"), CHATD_EXIT_OK);
  ck_assert_uint_eq(cfg.threads, 5);
  ck_assert_int_eq(cfg.syslog_transport, CHATD_SYSLOG_UDP);
  ck_assert_str_eq(cfg.syslog.text, "127.0.0.1:514");
}
END_TEST

static char *const full_env[] = {
  "HOME=/home/tester",
  "CHATD_LISTEN=[::1]:7001",
  "CHATD_NAME=envname",
  "CHATD_DATA_DIR=/env/data",
  "CHATD_LOG_FILE=/env/chatd.log",
  "CHATD_LOG_LEVEL=warn",
  "CHATD_SYSLOG=udp://127.0.0.1:5514",
  "CHATD_LOG_IDENTITIES=plain",
  "CHATD_THREADS=7",
  "CHATD_MAX_CONNS=200",
  "CHATD_MAX_CONNS_PER_IP=20",
  "CHATD_TOKEN_TTL=2d",
  "CHATD_METRICS=127.0.0.1:9200",
  NULL};

START_TEST(every_option_from_environment)
{
  ck_assert_int_eq(parse_env(full_env, NULL), CHATD_EXIT_OK);
  ck_assert_str_eq(cfg.listen.text, "[::1]:7001");
  ck_assert_str_eq(cfg.name, "envname");
  ck_assert_str_eq(cfg.data_dir, "/env/data");
  ck_assert_str_eq(cfg.log_file, "/env/chatd.log");
  ck_assert_int_eq(cfg.log_level, CHATD_LOG_WARN);
  ck_assert_int_eq(cfg.syslog_transport, CHATD_SYSLOG_UDP);
  ck_assert_str_eq(cfg.syslog.text, "127.0.0.1:5514");
  ck_assert_int_eq(cfg.log_ids, CHATD_LOG_IDS_PLAIN);
  ck_assert_uint_eq(cfg.threads, 7);
  ck_assert_uint_eq(cfg.max_conns, 200);
  ck_assert_uint_eq(cfg.max_conns_per_ip, 20);
  ck_assert_uint_eq(cfg.token_ttl_s, 2 * 86400);
  ck_assert_str_eq(cfg.metrics.text, "127.0.0.1:9200");
}
END_TEST

START_TEST(command_line_wins)
{
  ck_assert_int_eq(parse_env(full_env, "--listen", "127.0.0.2:8000", "--threads", "2",
                             "--log-level", "error", "--syslog", "tcp://127.0.0.1:601",
                             "--token-ttl", "60", NULL),
                   CHATD_EXIT_OK);
  ck_assert_str_eq(cfg.listen.text, "127.0.0.2:8000");
  ck_assert_uint_eq(cfg.threads, 2);
  ck_assert_int_eq(cfg.log_level, CHATD_LOG_ERROR);
  ck_assert_int_eq(cfg.syslog_transport, CHATD_SYSLOG_TCP);
  ck_assert_uint_eq(cfg.token_ttl_s, 60);
  /* Untouched ones still come from the environment. */
  ck_assert_str_eq(cfg.name, "envname");
  ck_assert_uint_eq(cfg.max_conns, 200);
}
END_TEST

START_TEST(command_line_wins_over_invalid_env)
{
  /* An invalid variable that the command line overrides is not read. */
  char *const env[] = {"HOME=/h", "CHATD_THREADS=lots", NULL};
  ck_assert_int_eq(parse_env(env, "--threads", "4", NULL), CHATD_EXIT_OK);
  ck_assert_int_eq(parse_env(env, NULL), CHATD_EXIT_USAGE);
  ck_assert_str_eq(err, "invalid CHATD_THREADS value 'lots': expected an integer from 1 to 64");
}
END_TEST

START_TEST(empty_env_is_unset)
{
  char *const env[] = {"HOME=/h", "CHATD_SYSLOG=", "CHATD_THREADS=", NULL};
  ck_assert_int_eq(parse_env(env, NULL), CHATD_EXIT_OK);
  ck_assert_int_eq(cfg.syslog_enabled, 0);
}
END_TEST

START_TEST(ipv6_and_ipv4_addresses)
{
  ck_assert_int_eq(PARSE("--listen", "[::1]:7420"), CHATD_EXIT_OK);
  ck_assert_int_eq(cfg.listen.ss.ss_family, AF_INET6);
  ck_assert_uint_eq(cfg.listen.len, sizeof(struct sockaddr_in6));
  ck_assert_uint_eq(port_of(&cfg.listen), 7420);
  ck_assert_str_eq(cfg.listen.text, "[::1]:7420");
  ck_assert_int_eq(PARSE("--listen", "[::]:1"), CHATD_EXIT_OK);
  ck_assert_str_eq(cfg.listen.text, "[::]:1");
  ck_assert_int_eq(PARSE("--listen", "[2001:DB8:0::1]:65535"), CHATD_EXIT_OK);
  ck_assert_str_eq(cfg.listen.text, "[2001:db8::1]:65535");
  ck_assert_int_eq(PARSE("--syslog", "tcp://[::1]:601"), CHATD_EXIT_OK);
  ck_assert_int_eq(cfg.syslog.ss.ss_family, AF_INET6);
  ck_assert_int_eq(PARSE("--listen", "10.1.2.3:80"), CHATD_EXIT_OK);
  ck_assert_int_eq(cfg.listen.ss.ss_family, AF_INET);
  ck_assert_uint_eq(cfg.listen.len, sizeof(struct sockaddr_in));
}
END_TEST

/* Every invalid value: usage error naming the option and the value. */
START_TEST(invalid_values_named)
{
  static const struct { const char *opt, *val, *why; } bad[] = {
    {"--listen", "localhost:7420", "names are not resolved"},
    {"--listen", "127.0.0.1", "expected HOST:PORT"},
    {"--listen", "127.0.0.1:0", "port"},
    {"--listen", "127.0.0.1:65536", "port"},
    {"--listen", "127.0.0.1:", "port"},
    {"--listen", "127.0.0.1:80x", "port"},
    {"--listen", "127.0.0.1:+80", "port"},
    {"--listen", "127.1:7420", "dotted quad"},
    {"--listen", "256.0.0.1:7420", "IPv4"},
    {"--listen", ":7420", "host"},
    {"--listen", "::1:7420", "brackets"},
    {"--listen", "[::1]7420", "[IPv6]:PORT"},
    {"--listen", "[::1:7420", "[IPv6]:PORT"},
    {"--listen", "[127.0.0.1]:7420", "IPv6"},
    {"--listen", "[]:7420", "host"},
    {"--listen", "", "HOST:PORT"},
    {"--name", "", "1 to 64"},
    {"--name", "has space", "1 to 64"},
    {"--name", "caf\xc3\xa9", "1 to 64"},
    {"--name", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "1 to 64"},
    {"--data-dir", "", "non-empty"},
    {"--log-file", "", "non-empty"},
    {"--log-level", "verbose", "debug, info, warn or error"},
    {"--log-level", "INFO", "debug, info, warn or error"},
    {"--syslog", "127.0.0.1:514", "udp://HOST:PORT or tcp://HOST:PORT"},
    {"--syslog", "tls://127.0.0.1:6514", "udp://HOST:PORT or tcp://HOST:PORT"},
    {"--syslog", "udp://127.0.0.1", "HOST:PORT"},
    {"--syslog", "tcp://loghost:514", "names are not resolved"},
    {"--log-identities", "hash", "hashed or plain"},
    {"--threads", "0", "1 to 64"},
    {"--threads", "65", "1 to 64"},
    {"--threads", "-1", "1 to 64"},
    {"--threads", "two", "1 to 64"},
    {"--threads", " 2", "1 to 64"},
    {"--threads", "99999999999999999999", "1 to 64"},
    {"--max-conns", "0", "1 to 1000000"},
    {"--max-conns", "1000001", "1 to 1000000"},
    {"--max-conns-per-ip", "0", "1 to 1000000"},
    {"--token-ttl", "59", "60s to 30d"},
    {"--token-ttl", "59s", "60s to 30d"},
    {"--token-ttl", "31d", "60s to 30d"},
    {"--token-ttl", "2592001", "60s to 30d"},
    {"--token-ttl", "1.5h", "60s to 30d"},
    {"--token-ttl", "7D", "60s to 30d"},
    {"--token-ttl", "d", "60s to 30d"},
    {"--token-ttl", "1dd", "60s to 30d"},
    {"--token-ttl", "-7d", "60s to 30d"},
    {"--token-ttl", "99999999999999999999999d", "60s to 30d"},
    {"--metrics", "9100", "HOST:PORT"},
  };
  char expect[256];

  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int rc = PARSE(bad[i].opt, bad[i].val);
    ck_assert_msg(rc == CHATD_EXIT_USAGE, "%s '%s' accepted", bad[i].opt, bad[i].val);
    snprintf(expect, sizeof expect, "invalid %s value '", bad[i].opt);
    ck_assert_msg(strncmp(err, expect, strlen(expect)) == 0, "message: %s", err);
    if (strlen(bad[i].val) < 40 && (unsigned char)bad[i].val[0] < 0x80)
      ck_assert_msg(strstr(err, bad[i].val) != NULL, "value missing: %s", err);
    ck_assert_msg(strstr(err, bad[i].why) != NULL, "reason '%s' missing: %s", bad[i].why, err);
  }
}
END_TEST

START_TEST(invalid_env_named)
{
  static const struct { const char *var, *val; } bad[] = {
    {"CHATD_LISTEN", "nowhere"},         {"CHATD_NAME", "a b"},
    {"CHATD_LOG_LEVEL", "loud"},         {"CHATD_SYSLOG", "udp:/x"},
    {"CHATD_LOG_IDENTITIES", "secret"},  {"CHATD_THREADS", "0"},
    {"CHATD_MAX_CONNS", "x"},            {"CHATD_MAX_CONNS_PER_IP", "0"},
    {"CHATD_TOKEN_TTL", "1y"},           {"CHATD_METRICS", "[::1]"},
  };
  char kv[128], expect[128];

  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char *env[] = {"HOME=/h", kv, NULL};
    snprintf(kv, sizeof kv, "%s=%s", bad[i].var, bad[i].val);
    ck_assert_int_eq(parse_env(env, NULL), CHATD_EXIT_USAGE);
    snprintf(expect, sizeof expect, "invalid %s value '%s': ", bad[i].var, bad[i].val);
    ck_assert_msg(strncmp(err, expect, strlen(expect)) == 0, "message: %s", err);
  }
}
END_TEST

START_TEST(value_in_message_is_escaped)
{
  ck_assert_int_eq(PARSE("--log-level", "\x1b[2J\nx"), CHATD_EXIT_USAGE);
  ck_assert_ptr_null(strchr(err, '\x1b'));
  ck_assert_ptr_null(strchr(err, '\n'));
  ck_assert_ptr_nonnull(strstr(err, "'\\x1b[2J\\x0ax'"));
  ck_assert_int_eq(PARSE("--bogus\x1b]52;c;AAAA\x07"), CHATD_EXIT_USAGE);
  ck_assert_ptr_null(strchr(err, '\x1b'));
}
END_TEST

START_TEST(usage_errors)
{
  ck_assert_int_eq(PARSE("--frobnicate"), CHATD_EXIT_USAGE);
  ck_assert_str_eq(err, "unknown option '--frobnicate'");
  ck_assert_int_eq(PARSE("--frobnicate=1"), CHATD_EXIT_USAGE);
  ck_assert_str_eq(err, "unknown option '--frobnicate'");
  ck_assert_int_eq(PARSE("-x"), CHATD_EXIT_USAGE);
  ck_assert_str_eq(err, "unknown option '-x'");
  ck_assert_int_eq(PARSE("--listen"), CHATD_EXIT_USAGE);
  ck_assert_str_eq(err, "option --listen needs a value");
  ck_assert_int_eq(PARSE("serve"), CHATD_EXIT_USAGE);
  ck_assert_str_eq(err, "unknown command 'serve' (expected keygen or pubkey)");
  ck_assert_int_eq(PARSE("keygen", "pubkey"), CHATD_EXIT_USAGE);
  ck_assert_str_eq(err, "unexpected argument 'pubkey'");
  ck_assert_int_eq(PARSE("--max-conns", "10", "--max-conns-per-ip", "11"), CHATD_EXIT_USAGE);
  ck_assert_str_eq(err, "--max-conns-per-ip (11) must not exceed --max-conns (10)");
  /* The default per-IP cap (16) against a smaller total is reported too. */
  ck_assert_int_eq(PARSE("--max-conns", "8"), CHATD_EXIT_USAGE);
}
END_TEST

START_TEST(commands)
{
  ck_assert_int_eq(PARSE("keygen", "--data-dir", "/d"), CHATD_EXIT_OK);
  ck_assert_int_eq(cfg.command, CHATD_CMD_KEYGEN);
  ck_assert_str_eq(cfg.data_dir, "/d");
  ck_assert_str_eq(cfg.log_file, ""); /* keygen writes no log */
  ck_assert_int_eq(PARSE("--data-dir", "/e", "pubkey"), CHATD_EXIT_OK);
  ck_assert_int_eq(cfg.command, CHATD_CMD_PUBKEY);
  ck_assert_str_eq(cfg.data_dir, "/e");
  ck_assert_int_eq(PARSE("--threads", "bad", "--help"), CHATD_EXIT_USAGE);
  ck_assert_int_eq(PARSE("--help", "--threads", "bad"), CHATD_EXIT_OK);
  ck_assert_int_eq(cfg.command, CHATD_CMD_HELP);
  ck_assert_int_eq(PARSE("-V"), CHATD_EXIT_OK);
  ck_assert_int_eq(cfg.command, CHATD_CMD_VERSION);
}
END_TEST

START_TEST(relative_paths_made_absolute)
{
  char cwd[4096], expect[4200];

  ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
  ck_assert_int_eq(PARSE("--data-dir", "data", "--log-file", "logs/c.log"), CHATD_EXIT_OK);
  snprintf(expect, sizeof expect, "%s/data", cwd);
  ck_assert_str_eq(cfg.data_dir, expect);
  snprintf(expect, sizeof expect, "%s/logs/c.log", cwd);
  ck_assert_str_eq(cfg.log_file, expect);
}
END_TEST

START_TEST(durations)
{
  uint64_t s;
  ck_assert_int_eq(chatd_parse_duration("60", &s), 0);
  ck_assert_uint_eq(s, 60);
  ck_assert_int_eq(chatd_parse_duration("90s", &s), 0);
  ck_assert_uint_eq(s, 90);
  ck_assert_int_eq(chatd_parse_duration("15m", &s), 0);
  ck_assert_uint_eq(s, 900);
  ck_assert_int_eq(chatd_parse_duration("36h", &s), 0);
  ck_assert_uint_eq(s, 129600);
  ck_assert_int_eq(chatd_parse_duration("30d", &s), 0);
  ck_assert_uint_eq(s, 2592000);
  ck_assert_int_eq(chatd_parse_duration("", &s), -1);
  ck_assert_int_eq(chatd_parse_duration("m", &s), -1);
  ck_assert_int_eq(chatd_parse_duration("5 m", &s), -1);
  ck_assert_int_eq(chatd_parse_duration("18446744073709551615", &s), 0);
  ck_assert_int_eq(chatd_parse_duration("18446744073709551616", &s), -1);
  ck_assert_int_eq(chatd_parse_duration("18446744073709551615m", &s), -1);
  /* Bounds of --token-ttl: 60 s .. 30 d inclusive. */
  ck_assert_int_eq(PARSE("--token-ttl", "1m"), CHATD_EXIT_OK);
  ck_assert_uint_eq(cfg.token_ttl_s, 60);
  ck_assert_int_eq(PARSE("--token-ttl", "720h"), CHATD_EXIT_OK);
  ck_assert_uint_eq(cfg.token_ttl_s, 2592000);
}
END_TEST

/* ---- The real binary ---------------------------------------------------- */

static const char *chatd_bin(void)
{
  const char *b = getenv("CHATD_BIN");
  ck_assert_msg(b && *b, "CHATD_BIN not set (run through ctest)");
  return b;
}

START_TEST(binary_usage_error_exit_2)
{
  char *out, *er;
  char *argv[] = {(char *)(uintptr_t)chatd_bin(), "--threads", "0", NULL};
  char *env[] = {"HOME=/tmp", NULL};

  ck_assert_int_eq(ctu_exec(argv, env, &out, &er), 2);
  ck_assert_str_eq(out, "");
  ck_assert_str_eq(er, "chatd: invalid --threads value '0': expected an integer from 1 to 64\n"
                       "Try 'chatd --help' for more information.\n");
  free(out), free(er);

  char *env2[] = {"HOME=/tmp", "CHATD_LISTEN=[::1]:99999", NULL};
  char *argv2[] = {(char *)(uintptr_t)chatd_bin(), NULL};
  ck_assert_int_eq(ctu_exec(argv2, env2, NULL, &er), 2);
  ck_assert_ptr_nonnull(strstr(er, "invalid CHATD_LISTEN value '[::1]:99999'"));
  free(er);
}
END_TEST

START_TEST(binary_help_and_version)
{
  char *out, *er;
  char *argv[] = {(char *)(uintptr_t)chatd_bin(), "--help", NULL};
  char *argv2[] = {(char *)(uintptr_t)chatd_bin(), "--version", NULL};
  char *env[] = {NULL};
  static const char *const mention[] = {
    "--listen", "--name", "--data-dir", "--log-file", "--log-level", "--syslog",
    "--log-identities", "--threads", "--max-conns", "--max-conns-per-ip", "--token-ttl",
    "--metrics", "CHATD_LISTEN", "CHATD_NAME", "CHATD_DATA_DIR", "CHATD_LOG_FILE",
    "CHATD_LOG_LEVEL", "CHATD_SYSLOG", "CHATD_LOG_IDENTITIES", "CHATD_THREADS",
    "CHATD_MAX_CONNS", "CHATD_MAX_CONNS_PER_IP", "CHATD_TOKEN_TTL", "CHATD_METRICS",
    "keygen", "pubkey", "Exit status"};

  ck_assert_int_eq(ctu_exec(argv, env, &out, &er), 0);
  ck_assert_str_eq(er, "");
  ck_assert(strncmp(out, "Usage: chatd", 12) == 0);
  for (size_t i = 0; i < sizeof mention / sizeof mention[0]; i++)
    ck_assert_msg(strstr(out, mention[i]) != NULL, "--help lacks %s", mention[i]);
  for (char *line = out, *nl; (nl = strchr(line, '\n')); line = nl + 1)
    ck_assert_msg(nl - line <= 79, "--help line over 79 columns: %.*s", (int)(nl - line), line);
  free(out), free(er);

  ck_assert_int_eq(ctu_exec(argv2, env, &out, &er), 0);
  ck_assert(strncmp(out, "chatd ", 6) == 0);
  ck_assert_ptr_nonnull(strstr(out, "libsecchat"));
  free(out), free(er);
}
END_TEST

/* keygen creates the data directory (0700) and the keys; a second keygen
 * refuses to overwrite them. (Key file checks: test_chatd_keys.) */
START_TEST(binary_keygen)
{
  char *dir = ctu_tmpdir(), data[512], *out, *er;
  struct stat st;
  char *argv[] = {(char *)(uintptr_t)chatd_bin(), "keygen", "--data-dir", data, NULL};
  char *env[] = {NULL};

  snprintf(data, sizeof data, "%s/k/data", dir);
  ck_assert_int_eq(ctu_exec(argv, env, &out, &er), 0);
  ck_assert_ptr_nonnull(strstr(out, "\nfingerprint "));
  ck_assert_int_eq(stat(data, &st), 0);
  ck_assert_uint_eq(st.st_mode & 07777, 0700);
  free(out), free(er);
  ck_assert_int_eq(ctu_exec(argv, env, NULL, &er), 1);
  ck_assert_ptr_nonnull(strstr(er, "the file exists"));
  free(er);
  ctu_rm_rf(dir);
  free(dir);
}
END_TEST

/* Running the relay on an address already in use: the platform part
 * really runs (data dir created 0700, log file 0600 with a start record,
 * keys created), then a clear exit 1 naming the address. */
START_TEST(binary_run_stops_clearly)
{
  char *dir = ctu_tmpdir(), data[512], logf[512], dd[600], lf[600], ls[64], *er, *log;
  struct stat st;
  struct sockaddr_in busy;
  int bfd = ctu_tcp_listener(&busy, 1);

  snprintf(data, sizeof data, "%s/a/b/data", dir);
  snprintf(logf, sizeof logf, "%s/chatd.log", dir);
  snprintf(dd, sizeof dd, "--data-dir=%s", data);
  snprintf(lf, sizeof lf, "--log-file=%s", logf);
  snprintf(ls, sizeof ls, "--listen=127.0.0.1:%u", (unsigned)ntohs(busy.sin_port));
  char *argv[] = {(char *)(uintptr_t)chatd_bin(), dd, lf, ls, "--name", "t1", NULL};
  char *env[] = {NULL};

  ck_assert_int_eq(ctu_exec(argv, env, NULL, &er), 1);
  ck_assert_ptr_nonnull(strstr(er, "cannot listen on 127.0.0.1:"));
  free(er);
  ck_assert_int_eq(stat(data, &st), 0);
  ck_assert_uint_eq(st.st_mode & 07777, 0700);
  ck_assert_int_eq(stat(logf, &st), 0);
  ck_assert_uint_eq(st.st_mode & 07777, 0600);
  log = ctu_read_file(logf, NULL);
  ck_assert_ptr_nonnull(strstr(log, " info start version="));
  ck_assert_ptr_nonnull(strstr(log, " name=t1 "));
  ck_assert_ptr_nonnull(strstr(log, " error stop reason=\"cannot listen on 127.0.0.1:"));
  free(log);
  char key[600];
  snprintf(key, sizeof key, "%s/token_key.pem", data);
  ck_assert_int_eq(stat(key, &st), 0);
  ck_assert_uint_eq(st.st_mode & 07777, 0600);

  /* A data dir open to others is refused before anything else. */
  ck_assert_int_eq(chmod(data, 0755), 0);
  ck_assert_int_eq(ctu_exec(argv, env, NULL, &er), 1);
  ck_assert_ptr_nonnull(strstr(er, "mode 0755, must be 0700"));
  ck_assert_ptr_nonnull(strstr(er, data));
  free(er);
  close(bfd);
  ctu_rm_rf(dir);
  free(dir);
}
END_TEST

static Suite *suite(void)
{
  Suite *s = suite_create("chatd_config");
  TCase *tc = tcase_create("parse");
  tcase_add_test(tc, defaults);
  tcase_add_test(tc, xdg_data_home);
  tcase_add_test(tc, every_option_from_command_line);
  tcase_add_test(tc, equals_form);
  tcase_add_test(tc, every_option_from_environment);
  tcase_add_test(tc, command_line_wins);
  tcase_add_test(tc, command_line_wins_over_invalid_env);
  tcase_add_test(tc, empty_env_is_unset);
  tcase_add_test(tc, ipv6_and_ipv4_addresses);
  tcase_add_test(tc, invalid_values_named);
  tcase_add_test(tc, invalid_env_named);
  tcase_add_test(tc, value_in_message_is_escaped);
  tcase_add_test(tc, usage_errors);
  tcase_add_test(tc, commands);
  tcase_add_test(tc, relative_paths_made_absolute);
  tcase_add_test(tc, durations);
  suite_add_tcase(s, tc);
  TCase *bin = tcase_create("binary");
  tcase_set_timeout(bin, 30);
  tcase_add_test(bin, binary_usage_error_exit_2);
  tcase_add_test(bin, binary_help_and_version);
  tcase_add_test(bin, binary_keygen);
  tcase_add_test(bin, binary_run_stops_clearly);
  suite_add_tcase(s, bin);
  return s;
}

int main(void)
{
  return ctu_run(suite());
}
