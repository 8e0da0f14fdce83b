/*
 * main.c: chatd entry point.
 *
 * For now this is the platform layer only: configuration, process
 * hardening, data directory checks and logging (file + syslog). The relay
 * itself (server core in libsecchat, epoll workers) is not built yet, so
 * running the relay, keygen and pubkey end with a clear message and exit
 * status 1 instead of pretending to work.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <secchat/secchat.h>

#include "config.h"
#include "log.h"
#include "secfile.h"
#include "syslog.h"

#define SYSLOG_FLUSH_MS 2000u /* shutdown budget for the collector */

extern char **environ;

static const char not_built[] = "the relay core is not built yet";

/* Keys live in this process: no core dumps, no ptrace by other processes
 * of the same user, new files private, and a peer closing its socket
 * must not kill the daemon. */
static void harden_process(void)
{
  struct rlimit none = {0, 0};

  umask(077);
  signal(SIGPIPE, SIG_IGN);
  setrlimit(RLIMIT_CORE, &none);
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

static int start_syslog(const chatd_config *cfg, chatd_syslog **out)
{
  chatd_syslog_options so;
  char err[256];

  *out = NULL;
  if (!cfg->syslog_enabled)
    return 0;
  memset(&so, 0, sizeof so);
  so.transport = cfg->syslog_transport;
  so.addr = cfg->syslog.ss;
  so.addrlen = cfg->syslog.len;
  if (chatd_syslog_new(out, &so, err, sizeof err) != 0) {
    fprintf(stderr, "chatd: %s\n", err);
    return -1;
  }
  return 0;
}

static void log_start(chatd_log *lg, const chatd_config *cfg)
{
  CHATD_LOG(lg, CHATD_LOG_INFO, "start", chatd_f_str("version", CHATD_VERSION),
            chatd_f_str("lib", secchat_version_string()), chatd_f_str("listen", cfg->listen.text),
            chatd_f_str("name", cfg->name), chatd_f_str("data_dir", cfg->data_dir),
            chatd_f_uint("threads", cfg->threads), chatd_f_uint("max_conns", cfg->max_conns),
            chatd_f_uint("max_conns_per_ip", cfg->max_conns_per_ip),
            chatd_f_uint("token_ttl_s", cfg->token_ttl_s),
            chatd_f_str("identities",
                        cfg->log_ids == CHATD_LOG_IDS_HASHED ? "hashed" : "plain"),
            chatd_f_str("syslog", cfg->syslog_enabled ? cfg->syslog.text : "off"),
            chatd_f_str("metrics", cfg->metrics_enabled ? cfg->metrics.text : "off"));
}

static int run(const chatd_config *cfg)
{
  chatd_log_options lo;
  chatd_syslog *sl = NULL;
  chatd_log *lg = NULL;
  char err[PATH_MAX + 256];

  harden_process();
  if (chatd_secfile_datadir(cfg->data_dir, err, sizeof err) != CHATD_SECFILE_OK) {
    fprintf(stderr, "chatd: %s\n", err);
    return CHATD_EXIT_FAILURE;
  }
  if (start_syslog(cfg, &sl) != 0)
    return CHATD_EXIT_FAILURE;
  memset(&lo, 0, sizeof lo);
  lo.path = cfg->log_file;
  lo.level = cfg->log_level;
  lo.ids = cfg->log_ids;
  lo.syslog = sl;
  if (chatd_log_new(&lg, &lo, err, sizeof err) != 0) {
    fprintf(stderr, "chatd: %s\n", err);
    chatd_syslog_free(sl);
    return CHATD_EXIT_FAILURE;
  }

  log_start(lg, cfg);
  CHATD_LOG(lg, CHATD_LOG_ERROR, "stop", chatd_f_str("reason", not_built));
  fprintf(stderr, "chatd: cannot serve: %s (configuration, data directory and logging are "
                  "ready; see %s)\n",
          not_built, cfg->log_file);

  if (sl && !chatd_syslog_flush(sl, SYSLOG_FLUSH_MS))
    fprintf(stderr, "chatd: some log records did not reach the syslog collector %s\n",
            cfg->syslog.text);
  chatd_log_free(lg);
  chatd_syslog_free(sl);
  return CHATD_EXIT_FAILURE;
}

int main(int argc, char **argv)
{
  chatd_config cfg;
  char err[PATH_MAX + 256];
  int rc;

  rc = chatd_config_parse(&cfg, argc, argv, environ, err, sizeof err);
  if (rc == CHATD_EXIT_USAGE) {
    fprintf(stderr, "chatd: %s\nTry 'chatd --help' for more information.\n", err);
    return rc;
  }
  if (rc != CHATD_EXIT_OK) {
    fprintf(stderr, "chatd: %s\n", err);
    return rc;
  }

  switch (cfg.command) {
  case CHATD_CMD_HELP:
    chatd_config_usage(stdout);
    return CHATD_EXIT_OK;
  case CHATD_CMD_VERSION:
    printf("chatd %s (libsecchat %s)\n", CHATD_VERSION, secchat_version_string());
    return CHATD_EXIT_OK;
  case CHATD_CMD_KEYGEN:
  case CHATD_CMD_PUBKEY:
    fprintf(stderr, "chatd %s: not yet available: %s\n",
            cfg.command == CHATD_CMD_KEYGEN ? "keygen" : "pubkey", not_built);
    return CHATD_EXIT_FAILURE;
  case CHATD_CMD_RUN:
    break;
  }
  return run(&cfg);
}
