/* Passphrase input (passphrase.c): environment, echo-off prompt on a
 * pseudo-terminal, terminal restored after input and after a signal. */
#include "passphrase.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

START_TEST(from_environment)
{
  char out[64], err[128];
  size_t len;

  setenv("SECCHAT_PASSPHRASE", "correct horse", 1);
  ck_assert_int_eq(chatc_passphrase_get(NULL, 0, out, sizeof(out), &len, err, sizeof(err)),
                   CHATC_PASS_OK);
  ck_assert_str_eq(out, "correct horse");
  ck_assert_uint_eq(len, 13);
  ck_assert_ptr_null(getenv("SECCHAT_PASSPHRASE")); /* not inherited by children */
  setenv("SECCHAT_PASSPHRASE", "", 1);
  ck_assert_int_eq(chatc_passphrase_get(NULL, 0, out, sizeof(out), &len, err, sizeof(err)),
                   CHATC_PASS_EMPTY);
  ck_assert_ptr_nonnull(strstr(err, "SECCHAT_PASSPHRASE"));
  setenv("SECCHAT_PASSPHRASE", "0123456789", 1);
  ck_assert_int_eq(chatc_passphrase_get(NULL, 0, out, 8, &len, err, sizeof(err)),
                   CHATC_PASS_TOO_LONG);
  for (size_t i = 0; i < 8; i++)
    ck_assert_int_eq(out[i], 0);
}
END_TEST

struct pty {
  int master, slave;
  pid_t child;
  int result[2]; /* child -> parent: rc, then the passphrase */
};

/* Read from the master until needle was seen (or 5 s). */
static void wait_for(int master, const char *needle, char *seen, size_t cap)
{
  size_t n = 0;
  struct pollfd p = {master, POLLIN, 0};

  seen[0] = '\0';
  while (strstr(seen, needle) == NULL) {
    ck_assert_msg(poll(&p, 1, 5000) == 1, "timeout waiting for %s (got %s)", needle, seen);
    ssize_t r = read(master, seen + n, cap - 1 - n);
    ck_assert_int_gt(r, 0);
    n += (size_t)r;
    seen[n] = '\0';
  }
}

static int echo_on(int fd)
{
  struct termios tio;

  ck_assert_int_eq(tcgetattr(fd, &tio), 0);
  return (tio.c_lflag & ECHO) != 0;
}

static void start(struct pty *t, size_t cap)
{
  ck_assert_int_ge(t->master = posix_openpt(O_RDWR | O_NOCTTY), 0);
  ck_assert_int_eq(grantpt(t->master), 0);
  ck_assert_int_eq(unlockpt(t->master), 0);
  ck_assert_int_ge(t->slave = open(ptsname(t->master), O_RDWR | O_NOCTTY), 0);
  ck_assert_int_eq(pipe(t->result), 0);
  ck_assert_int_eq(echo_on(t->slave), 1); /* a fresh terminal echoes */
  t->child = fork();
  ck_assert_int_ge(t->child, 0);
  if (t->child == 0) {
    char out[CHATC_PASSPHRASE_MAX];
    size_t len = 0;
    /* Default dispositions as in a fresh chatc (Check installs its own
     * SIGTERM handler, which would kill the whole process group). */
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    int rc = chatc_passphrase_prompt_fd(t->slave, "Pass: ", out, cap, &len);
    if (write(t->result[1], &rc, sizeof(rc)) < 0 || write(t->result[1], out, len) < 0)
      _exit(3);
    _exit(0);
  }
  close(t->result[1]);
}

START_TEST(prompt_echo_off_and_restored)
{
  struct pty t;
  char seen[256], got[64] = {0};
  int rc, status;

  start(&t, 64);
  wait_for(t.master, "Pass: ", seen, sizeof(seen));
  ck_assert_int_eq(echo_on(t.slave), 0); /* while the prompt is up */
  ck_assert_int_eq(write(t.master, "hunter2\n", 8), 8);
  ck_assert_int_eq(read(t.result[0], &rc, sizeof(rc)), (ssize_t)sizeof(rc));
  ck_assert_int_eq(rc, CHATC_PASS_OK);
  ck_assert_int_eq(read(t.result[0], got, sizeof(got) - 1), 7);
  ck_assert_str_eq(got, "hunter2");
  ck_assert_int_eq(waitpid(t.child, &status, 0), t.child);
  ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ck_assert_int_eq(echo_on(t.slave), 1); /* restored */
  /* The terminal never displayed the passphrase (only ECHONL's newline). */
  struct pollfd p = {t.master, POLLIN, 0};
  size_t n = 0;
  while (poll(&p, 1, 100) == 1 && n < sizeof(seen) - 1) {
    ssize_t r = read(t.master, seen + n, sizeof(seen) - 1 - n);
    if (r <= 0)
      break;
    n += (size_t)r;
  }
  seen[n] = '\0';
  ck_assert_ptr_null(strstr(seen, "hunter2"));
}
END_TEST

START_TEST(signal_restores_terminal)
{
  struct pty t;
  char seen[256];
  int status;

  start(&t, 64);
  wait_for(t.master, "Pass: ", seen, sizeof(seen));
  ck_assert_int_eq(echo_on(t.slave), 0);
  ck_assert_int_eq(kill(t.child, SIGTERM), 0);
  ck_assert_int_eq(waitpid(t.child, &status, 0), t.child);
  /* The signal still kills the process (re-raised), and echo is back. */
  ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
  ck_assert_int_eq(echo_on(t.slave), 1);
}
END_TEST

START_TEST(too_long_and_eof)
{
  struct pty t;
  char seen[256];
  int rc, status;

  start(&t, 8);
  wait_for(t.master, "Pass: ", seen, sizeof(seen));
  ck_assert_int_eq(write(t.master, "0123456789\n", 11), 11);
  ck_assert_int_eq(read(t.result[0], &rc, sizeof(rc)), (ssize_t)sizeof(rc));
  ck_assert_int_eq(rc, CHATC_PASS_TOO_LONG);
  waitpid(t.child, &status, 0);
  ck_assert_int_eq(echo_on(t.slave), 1);

  start(&t, 8);
  wait_for(t.master, "Pass: ", seen, sizeof(seen));
  ck_assert_int_eq(write(t.master, "\x04", 1), 1); /* ^D on an empty line */
  ck_assert_int_eq(read(t.result[0], &rc, sizeof(rc)), (ssize_t)sizeof(rc));
  ck_assert_int_eq(rc, CHATC_PASS_INTERRUPTED);
  waitpid(t.child, &status, 0);
}
END_TEST

START_TEST(no_tty)
{
  char out[64], err[256];
  size_t len;
  pid_t pid;
  int status;

  unsetenv("SECCHAT_PASSPHRASE");
  pid = fork();
  if (pid == 0) {
    setsid(); /* no controlling terminal: /dev/tty cannot be opened */
    _exit(chatc_passphrase_get(NULL, 0, out, sizeof(out), &len, err, sizeof(err)) ==
                  CHATC_PASS_NO_TTY && strstr(err, "--no-passphrase") != NULL
              ? 0
              : 1);
  }
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);
  ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("chatc_passphrase");
  TCase *tc = tcase_create("core");
  SRunner *sr;
  int failed;

  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, from_environment);
  tcase_add_test(tc, prompt_echo_off_and_restored);
  tcase_add_test(tc, signal_restores_terminal);
  tcase_add_test(tc, too_long_and_eof);
  tcase_add_test(tc, no_tty);
  suite_add_tcase(s, tc);
  sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? 0 : 1;
}
