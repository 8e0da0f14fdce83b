/*
 * chatc: the secchat client. This file: command line, home directory
 * (created/checked/locked), exit codes; the session itself (identity,
 * connection, events -> output) is session.c.
 */
#include "options.h"
#include "session.h"
#include "store.h"

#include <secchat/secchat.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
  chatc_options opt;
  chatc_store st;
  char err[512], home[4096];
  int rc;

  rc = chatc_options_parse(argc, argv, &opt, err, sizeof(err));
  if (rc == CHATC_OPT_HELP) {
    fputs(chatc_usage_text(), stdout);
    return CHATC_EXIT_OK;
  }
  if (rc == CHATC_OPT_VERSION) {
    printf("chatc %s (libsecchat %s)\n", CHATC_VERSION, secchat_version_string());
    return CHATC_EXIT_OK;
  }
  if (rc != CHATC_OPT_RUN) {
    fprintf(stderr, "chatc: %s\nTry 'chatc --help'.\n", err);
    return CHATC_EXIT_USAGE;
  }
  if (secchat_init() != 0) {
    fprintf(stderr, "chatc: cannot initialise libsecchat\n");
    return CHATC_EXIT_RUNTIME;
  }
  if (chatc_home_default(opt.home, home, sizeof(home), err, sizeof(err)) != CHATC_STORE_OK ||
      chatc_store_open(&st, home, err, sizeof(err)) != CHATC_STORE_OK) {
    fprintf(stderr, "chatc: %s\n", err);
    return CHATC_EXIT_HOME;
  }
  if (opt.history_cap != 0)
    chatc_store_set_hist_cap(&st, opt.history_cap);
  rc = chatc_session_run(&opt, &st);
  chatc_store_close(&st);
  return rc;
}
