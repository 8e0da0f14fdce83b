/*
 * main.c: chatd entry point: configuration, process hardening, the data
 * directory and its keys, logging (file + syslog), then the relay
 * (relay.h) until SIGTERM/SIGINT. `chatd keygen` and `chatd pubkey` manage
 * the server keys (keys.h).
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
#include "keys.h"
#include "log.h"
#include "relay.h"
#include "secfile.h"
#include "syslog.h"

#define SYSLOG_FLUSH_MS 300u /* shutdown budget for the collector (exit within 2 s) */

extern char **environ;

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

/* Load the keys, or create them on a first start (both files absent). */
static int open_keys(const chatd_config *cfg, chatd_log *lg, chatd_keys *keys, char *err,
                     size_t errlen)
{
  int rc = chatd_keys_load(keys, cfg->data_dir, err, errlen);

  if (rc == CHATD_KEYS_MISSING) {
    if (chatd_keys_create(cfg->data_dir, err, errlen) != 0)
      return -1;
    rc = chatd_keys_load(keys, cfg->data_dir, err, errlen);
    if (rc == 0) {
      CHATD_LOG(lg, CHATD_LOG_WARN, "keys_created", chatd_f_str("data_dir", cfg->data_dir),
                chatd_f_str("fingerprint", keys->fingerprint));
      fprintf(stderr, "chatd: created new server keys in %s (fingerprint %s)\n", cfg->data_dir,
              keys->fingerprint);
    }
  }
  return rc == 0 ? 0 : -1;
}

static int run(const chatd_config *cfg)
{
  chatd_log_options lo;
  chatd_syslog *sl = NULL;
  chatd_log *lg = NULL;
  chatd_keys keys;
  char err[PATH_MAX + 256];
  int rc = CHATD_EXIT_FAILURE;

  harden_process();
  memset(&keys, 0, sizeof keys);
  /* Before any thread exists (the syslog sender, workers): signals are
   * taken synchronously by the relay through a signalfd. */
  if (chatd_relay_block_signals() != 0) {
    fprintf(stderr, "chatd: cannot block signals\n");
    return CHATD_EXIT_FAILURE;
  }
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
  if (open_keys(cfg, lg, &keys, err, sizeof err) == 0)
    rc = chatd_relay_run(cfg, &keys, lg, sl, err, sizeof err);
  chatd_keys_clear(&keys);
  if (rc != CHATD_EXIT_OK) {
    CHATD_LOG(lg, CHATD_LOG_ERROR, "stop", chatd_f_str("reason", err));
    fprintf(stderr, "chatd: %s\n", err);
  } else {
    CHATD_LOG(lg, CHATD_LOG_INFO, "stop", chatd_f_str("reason", "signal"));
  }

  if (sl && !chatd_syslog_flush(sl, SYSLOG_FLUSH_MS))
    fprintf(stderr, "chatd: some log records did not reach the syslog collector %s\n",
            cfg->syslog.text);
  chatd_log_free(lg);
  chatd_syslog_free(sl);
  return rc;
}

static int cmd_keygen(const chatd_config *cfg)
{
  char err[PATH_MAX + 256];
  chatd_keys keys;

  if (chatd_secfile_datadir(cfg->data_dir, err, sizeof err) != CHATD_SECFILE_OK ||
      chatd_keys_create(cfg->data_dir, err, sizeof err) != 0 ||
      chatd_keys_load(&keys, cfg->data_dir, err, sizeof err) != 0) {
    fprintf(stderr, "chatd: %s\n", err);
    return CHATD_EXIT_FAILURE;
  }
  printf("created %s/%s and %s/%s\nfingerprint %s\n", cfg->data_dir, CHATD_TOKEN_KEY_FILE,
         cfg->data_dir, CHATD_NOISE_KEY_FILE, keys.fingerprint);
  chatd_keys_clear(&keys);
  return CHATD_EXIT_OK;
}

static int cmd_pubkey(const chatd_config *cfg)
{
  char err[PATH_MAX + 256];
  chatd_keys keys;
  int rc = chatd_keys_load(&keys, cfg->data_dir, err, sizeof err);

  if (rc == CHATD_KEYS_MISSING) {
    fprintf(stderr, "chatd: no server keys in %s (create them with 'chatd keygen')\n",
            cfg->data_dir);
    return CHATD_EXIT_FAILURE;
  }
  if (rc != 0) {
    fprintf(stderr, "chatd: %s\n", err);
    return CHATD_EXIT_FAILURE;
  }
  /* The PEM ends with a newline. */
  printf("%sfingerprint %s\n", keys.public_pem, keys.fingerprint);
  chatd_keys_clear(&keys);
  return CHATD_EXIT_OK;
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
    harden_process();
    if (secchat_init() != 0) {
      fprintf(stderr, "chatd: cannot initialise libsecchat\n");
      return CHATD_EXIT_FAILURE;
    }
    return cfg.command == CHATD_CMD_KEYGEN ? cmd_keygen(&cfg) : cmd_pubkey(&cfg);
  case CHATD_CMD_RUN:
    break;
  }
  if (secchat_init() != 0) {
    fprintf(stderr, "chatd: cannot initialise libsecchat\n");
    return CHATD_EXIT_FAILURE;
  }
  return run(&cfg);
}
