/* passphrase.c: SECCHAT_PASSPHRASE or an echo-off prompt on /dev/tty (see passphrase.h). */
#include "passphrase.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP, SIGTTIN, SIGTTOU};
#define NSIGS (sizeof(sigs) / sizeof(sigs[0]))

/* State the signal handler needs: written before the handlers are
 * installed, read only by them. */
static volatile sig_atomic_t caught[NSIGS];
static struct termios saved_tio;
static volatile sig_atomic_t tty_fd = -1;

static void on_signal(int sig)
{
  /* tcsetattr is async-signal-safe: the terminal is back to normal at
   * once, even if the process dies from the re-raised signal later. */
  if (tty_fd >= 0)
    tcsetattr(tty_fd, TCSAFLUSH, &saved_tio);
  for (size_t i = 0; i < NSIGS; i++)
    if (sigs[i] == sig)
      caught[i] = 1;
}

static int set_err(int rc, char *err, size_t errlen, const char *msg)
{
  if (err != NULL && errlen > 0)
    snprintf(err, errlen, "%s", msg);
  return rc;
}

/* Wait until fd is readable with our signals unblocked only while
 * waiting (ppoll): a signal that arrives before the wait is not lost (it
 * was blocked, and is delivered when ppoll unblocks it). 0 readable,
 * CHATC_PASS_INTERRUPTED on a signal, CHATC_PASS_IO on error. */
static int wait_readable(int fd, const sigset_t *waitmask)
{
  struct pollfd p = {fd, POLLIN, 0};

  for (;;) {
    for (size_t i = 0; i < NSIGS; i++)
      if (caught[i])
        return CHATC_PASS_INTERRUPTED;
    if (ppoll(&p, 1, NULL, waitmask) >= 0)
      return 0;
    if (errno != EINTR)
      return CHATC_PASS_IO;
  }
}

int chatc_passphrase_prompt_fd(int fd, const char *prompt, char *out, size_t cap, size_t *len)
{
  struct sigaction sa, old[NSIGS];
  sigset_t block, oldmask;
  struct termios tio;
  size_t n = 0;
  int rc = CHATC_PASS_OK, have_tio;
  char c;
  ssize_t r;

  *len = 0;
  if (cap == 0)
    return CHATC_PASS_TOO_LONG;
  for (size_t i = 0; i < NSIGS; i++)
    caught[i] = 0;
  /* Our signals stay blocked except inside ppoll (see wait_readable). */
  sigemptyset(&block);
  for (size_t i = 0; i < NSIGS; i++)
    sigaddset(&block, sigs[i]);
  sigprocmask(SIG_BLOCK, &block, &oldmask);
  have_tio = tcgetattr(fd, &saved_tio) == 0;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  for (size_t i = 0; i < NSIGS; i++)
    sigaction(sigs[i], &sa, &old[i]);
  if (have_tio) {
    tty_fd = fd;
    tio = saved_tio;
    tio.c_lflag &= (tcflag_t) ~(ECHO | ECHOE | ECHOK);
    tio.c_lflag |= ECHONL;
    tcsetattr(fd, TCSAFLUSH, &tio);
  }
  if (prompt != NULL && write(fd, prompt, strlen(prompt)) < 0)
    rc = CHATC_PASS_IO;
  while (rc == CHATC_PASS_OK) {
    if ((rc = wait_readable(fd, &oldmask)) != 0)
      break;
    r = read(fd, &c, 1);
    if (r < 0 && (errno == EINTR || errno == EAGAIN))
      continue;
    if (r < 0) {
      rc = CHATC_PASS_IO;
      break;
    }
    if (r == 0) {
      rc = n > 0 ? CHATC_PASS_OK : CHATC_PASS_INTERRUPTED; /* EOF */
      break;
    }
    if (c == '\n' || c == '\r')
      break;
    if (n + 1 >= cap) {
      rc = CHATC_PASS_TOO_LONG;
      /* Swallow the rest of the line so it does not reach the next reader. */
      while (wait_readable(fd, &oldmask) == 0 && read(fd, &c, 1) == 1 && c != '\n')
        ;
      break;
    }
    out[n++] = c;
  }
  c = 0;
  if (have_tio) {
    tcsetattr(fd, TCSAFLUSH, &saved_tio);
    tty_fd = -1;
  }
  for (size_t i = 0; i < NSIGS; i++)
    sigaction(sigs[i], &old[i], NULL);
  /* Deliver what was caught now that the terminal is sane again: raised
   * while still blocked, it takes effect (with the previous disposition)
   * as soon as the old mask is back. */
  for (size_t i = 0; i < NSIGS; i++)
    if (caught[i]) {
      rc = CHATC_PASS_INTERRUPTED;
      raise(sigs[i]);
    }
  sigprocmask(SIG_SETMASK, &oldmask, NULL);
  if (rc != CHATC_PASS_OK) {
    sodium_memzero(out, cap);
    return rc;
  }
  out[n] = '\0';
  *len = n;
  return CHATC_PASS_OK;
}

static int from_env(char *out, size_t cap, size_t *len, char *err, size_t errlen)
{
  char *v = getenv("SECCHAT_PASSPHRASE");
  size_t n = strlen(v);

  if (n + 1 > cap) {
    sodium_memzero(v, n);
    unsetenv("SECCHAT_PASSPHRASE");
    return set_err(CHATC_PASS_TOO_LONG, err, errlen, "SECCHAT_PASSPHRASE is too long");
  }
  memcpy(out, v, n + 1);
  *len = n;
  /* Wipe the environment's copy and drop the variable: children must not
   * inherit it, and a core dump should not hold it twice. */
  sodium_memzero(v, n);
  unsetenv("SECCHAT_PASSPHRASE");
  if (n == 0) {
    sodium_memzero(out, cap);
    return set_err(CHATC_PASS_EMPTY, err, errlen, "SECCHAT_PASSPHRASE is empty");
  }
  return CHATC_PASS_OK;
}

int chatc_passphrase_get(const char *prompt, int confirm, char *out, size_t cap, size_t *len,
                         char *err, size_t errlen)
{
  char again[CHATC_PASSPHRASE_MAX];
  size_t alen;
  int fd, rc;

  *len = 0;
  if (cap > CHATC_PASSPHRASE_MAX)
    cap = CHATC_PASSPHRASE_MAX;
  if (getenv("SECCHAT_PASSPHRASE") != NULL)
    return from_env(out, cap, len, err, errlen);
  fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (fd < 0)
    return set_err(CHATC_PASS_NO_TTY, err, errlen,
                   "no terminal to ask for the passphrase: set SECCHAT_PASSPHRASE or use "
                   "--no-passphrase");
  rc = chatc_passphrase_prompt_fd(fd, prompt != NULL ? prompt : "Passphrase: ", out, cap, len);
  if (rc == CHATC_PASS_OK && *len == 0)
    rc = CHATC_PASS_EMPTY;
  if (rc == CHATC_PASS_OK && confirm) {
    rc = chatc_passphrase_prompt_fd(fd, "Repeat passphrase: ", again, cap, &alen);
    if (rc == CHATC_PASS_OK && (alen != *len || sodium_memcmp(again, out, alen) != 0)) {
      close(fd);
      sodium_memzero(again, sizeof(again));
      sodium_memzero(out, cap);
      *len = 0;
      return set_err(CHATC_PASS_MISMATCH, err, errlen, "the passphrases do not match");
    }
    sodium_memzero(again, sizeof(again));
  }
  close(fd);
  if (rc != CHATC_PASS_OK) {
    sodium_memzero(out, cap);
    *len = 0;
    return set_err(rc, err, errlen,
                   rc == CHATC_PASS_EMPTY       ? "empty passphrase"
                   : rc == CHATC_PASS_TOO_LONG  ? "passphrase too long"
                   : rc == CHATC_PASS_INTERRUPTED ? "passphrase prompt interrupted"
                                                  : "cannot read the passphrase");
  }
  return CHATC_PASS_OK;
}
