/* sigfd.c: self-pipe signal delivery (see sigfd.h). */
#include "sigfd.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

static int pipe_w = -1;

static void on_signal(int sig)
{
  int saved = errno;
  unsigned char b = (unsigned char)sig;

  if (write(pipe_w, &b, 1) < 0) {
    /* Pipe full: the loop has signals pending already. */
  }
  errno = saved;
}

int chatc_sigfd_install(void)
{
  static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGWINCH, SIGTSTP, SIGCONT};
  struct sigaction sa;
  int p[2];

  if (pipe(p) != 0)
    return -1;
  for (int i = 0; i < 2; i++) {
    fcntl(p[i], F_SETFL, fcntl(p[i], F_GETFL) | O_NONBLOCK);
    fcntl(p[i], F_SETFD, FD_CLOEXEC);
  }
  pipe_w = p[1];
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
    sigaction(sigs[i], &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  return p[0];
}

int chatc_sigfd_next(int fd)
{
  unsigned char b;

  return read(fd, &b, 1) == 1 ? b : 0;
}

void chatc_sigfd_stop_self(void)
{
  struct sigaction sa, old;

  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = SIG_DFL;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTSTP, &sa, &old);
  raise(SIGTSTP);
  /* Continued: our handler back for the next ^Z. */
  sigaction(SIGTSTP, &old, NULL);
}
