/* Command line (options.c) and the real binary's exit codes / D10 refusal. */
#include "options.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char err[256];

static int parse(chatc_options *o, const char *a1, const char *a2, const char *a3, const char *a4)
{
  /* getopt wants char *: private copies (kept alive: o points into them). */
  static char store[5][64];
  const char *in[5] = {"chatc", a1, a2, a3, a4};
  static char *argv[6];
  int argc = 0;

  while (argc < 5 && in[argc] != NULL) {
    snprintf(store[argc], sizeof(store[argc]), "%s", in[argc]);
    argv[argc] = store[argc];
    argc++;
  }
  argv[argc] = NULL;
  return chatc_options_parse(argc, argv, o, err, sizeof(err));
}

START_TEST(parse_ok)
{
  chatc_options o;

  ck_assert_int_eq(parse(&o, "--server", "127.0.0.1:7000", "--json", NULL), CHATC_OPT_RUN);
  ck_assert_str_eq(o.host, "127.0.0.1");
  ck_assert_str_eq(o.port, "7000");
  ck_assert_int_eq(o.json, 1);
  ck_assert_ptr_null(o.home);
  ck_assert_int_eq(parse(&o, "--server=[::1]:443", "--home", "/h", "--no-passphrase"),
                   CHATC_OPT_RUN);
  ck_assert_str_eq(o.host, "::1");
  ck_assert_str_eq(o.port, "443");
  ck_assert_str_eq(o.home, "/h");
  ck_assert_int_eq(o.no_passphrase, 1);
  ck_assert_int_eq(parse(&o, "--server", "h:1", "--history-cap", "65536"), CHATC_OPT_RUN);
  ck_assert_uint_eq(o.history_cap, 65536);
  ck_assert_int_eq(parse(&o, "--server", "h:1", "--server-key", "abcd"), CHATC_OPT_RUN);
  ck_assert_str_eq(o.server_key, "abcd");
  ck_assert_int_eq(parse(&o, "--help", NULL, NULL, NULL), CHATC_OPT_HELP);
  ck_assert_int_eq(parse(&o, "-V", NULL, NULL, NULL), CHATC_OPT_VERSION);
}
END_TEST

START_TEST(parse_errors)
{
  chatc_options o;

  ck_assert_int_eq(parse(&o, NULL, NULL, NULL, NULL), CHATC_OPT_ERROR);
  ck_assert_ptr_nonnull(strstr(err, "--server"));
  ck_assert_int_eq(parse(&o, "--server", "nohost", NULL, NULL), CHATC_OPT_ERROR);
  ck_assert_int_eq(parse(&o, "--server", "h:0", NULL, NULL), CHATC_OPT_ERROR);
  ck_assert_int_eq(parse(&o, "--server", "h:65536", NULL, NULL), CHATC_OPT_ERROR);
  ck_assert_int_eq(parse(&o, "--server", ":80", NULL, NULL), CHATC_OPT_ERROR);
  ck_assert_int_eq(parse(&o, "--server", "::1:80", NULL, NULL), CHATC_OPT_ERROR);
  ck_assert_int_eq(parse(&o, "--server", "h:1x", NULL, NULL), CHATC_OPT_ERROR);
  ck_assert_int_eq(parse(&o, "--server", "h:1", "--bogus", NULL), CHATC_OPT_ERROR);
  ck_assert_ptr_nonnull(strstr(err, "--bogus"));
  ck_assert_int_eq(parse(&o, "--server", "h:1", "extra", NULL), CHATC_OPT_ERROR);
  ck_assert_int_eq(parse(&o, "--server", "h:1", "--history-cap", "10"), CHATC_OPT_ERROR);
  ck_assert_int_eq(parse(&o, "--server", "h:1", "--home", NULL), CHATC_OPT_ERROR);
  ck_assert_ptr_nonnull(strstr(err, "missing value"));
}
END_TEST

/* Run the chatc binary; returns its exit code, output in out. */
static int run(const char *args, char *out, size_t cap)
{
  const char *bin = getenv("CHATC_BIN");
  char cmd[1024];
  FILE *p;
  size_t n;
  int st;

  ck_assert_msg(bin != NULL, "CHATC_BIN not set (run through ctest)");
  snprintf(cmd, sizeof(cmd), "%s %s 2>&1 </dev/null", bin, args);
  ck_assert_ptr_nonnull(p = popen(cmd, "r"));
  n = fread(out, 1, cap - 1, p);
  out[n] = '\0';
  st = pclose(p);
  ck_assert(WIFEXITED(st));
  return WEXITSTATUS(st);
}

START_TEST(binary_exit_codes)
{
  char out[4096], dir[64], args[256];

  ck_assert_int_eq(run("--help", out, sizeof(out)), CHATC_EXIT_OK);
  ck_assert_ptr_nonnull(strstr(out, "Usage: chatc --server HOST:PORT"));
  ck_assert_int_eq(run("--version", out, sizeof(out)), CHATC_EXIT_OK);
  ck_assert_ptr_nonnull(strstr(out, "chatc "));
  ck_assert_int_eq(run("--server", out, sizeof(out)), CHATC_EXIT_USAGE);
  ck_assert_int_eq(run("--server x", out, sizeof(out)), CHATC_EXIT_USAGE);
  ck_assert_ptr_nonnull(strstr(out, "chatc --help"));
  /* D10: a home with loose permissions is refused before anything else. */
  snprintf(dir, sizeof(dir), "/tmp/chatc-opt-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(dir));
  ck_assert_int_eq(chmod(dir, 0755), 0);
  snprintf(args, sizeof(args), "--server 127.0.0.1:1 --home %s", dir);
  ck_assert_int_eq(run(args, out, sizeof(out)), CHATC_EXIT_HOME);
  ck_assert_ptr_nonnull(strstr(out, "mode 0755"));
  ck_assert_ptr_nonnull(strstr(out, dir));
  rmdir(dir);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("chatc_options");
  TCase *tc = tcase_create("core");
  SRunner *sr;
  int failed;

  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, parse_ok);
  tcase_add_test(tc, parse_errors);
  tcase_add_test(tc, binary_exit_codes);
  suite_add_tcase(s, tc);
  sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? 0 : 1;
}
