/*
 * chatc_lineprobe: drives the interactive input loop exactly as chatc does
 * (lineedit + sigfd + output formatting) without a relay, for
 * tests/python/test_chatc_tty.py: every --interval ms (300) a fake incoming
 * message "incoming N" from "peer" is printed above the input line; the
 * third one carries terminal escapes (ESC[2J, an OSC 52 clipboard write,
 * U+202E) that must show up escaped. Submitted lines are shown as
 * "you: LINE" through the same formatter. Exits 0 on Ctrl-D, SIGINT,
 * SIGTERM or SIGHUP, restoring the terminal.
 */
#include "lineedit.h"
#include "output.h"
#include "sigfd.h"

#include <errno.h>
#include <locale.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char evil[] = "evil \x1b[2J \x1b]52;c;aGVsbG8=\x07 \xe2\x80\xae" "desrever end";

struct probe {
  chatc_edit *e;
  int color;
  int done;
};

static long long now_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void show(struct probe *p, const char *name, const char *text, size_t len, unsigned flags)
{
  char line[1024];
  time_t t = time(NULL);
  struct tm tm;
  size_t n;

  localtime_r(&t, &tm);
  n = chatc_format_line(line, sizeof(line), p->color, &tm, name, name ? strlen(name) : 0, text,
                        len, flags);
  chatc_edit_print(p->e, line, n);
}

static void on_line(void *arg, const char *line, size_t len)
{
  struct probe *p = arg;

  if (line == NULL) {
    p->done = 1;
    return;
  }
  show(p, "you", line, len, CHATC_LINE_SELF);
}

int main(int argc, char **argv)
{
  struct probe p = {0};
  struct pollfd fds[2];
  long long next, interval = 300;
  unsigned count = 0;
  int sfd, sig;

  if (argc > 2 && strcmp(argv[1], "--interval") == 0)
    interval = atoll(argv[2]);
  setlocale(LC_ALL, "");
  if ((sfd = chatc_sigfd_install()) < 0 ||
      (p.e = chatc_edit_new("chatc_lineprobe", stdin, stdout, "> ")) == NULL) {
    fprintf(stderr, "chatc_lineprobe: needs a terminal on stdin\n");
    return 1;
  }
  p.color = chatc_color_enabled(1);
  next = now_ms() + interval;
  while (!p.done) {
    long long wait = next - now_ms();
    fds[0].fd = chatc_edit_fd(p.e);
    fds[0].events = POLLIN;
    fds[1].fd = sfd;
    fds[1].events = POLLIN;
    if (poll(fds, 2, wait > 0 ? (int)wait : 0) < 0 && errno != EINTR)
      break;
    if (fds[1].revents & POLLIN) {
      while ((sig = chatc_sigfd_next(sfd)) != 0) {
        if (sig == SIGWINCH) {
          chatc_edit_resize(p.e);
        } else if (sig == SIGTSTP) {
          chatc_edit_suspend(p.e);
          chatc_sigfd_stop_self();
          chatc_edit_resume(p.e);
        } else if (sig != SIGCONT) {
          p.done = 1;
        }
      }
    }
    if (!p.done && (fds[0].revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL)))
      chatc_edit_read(p.e, on_line, &p);
    if (!p.done && now_ms() >= next) {
      char text[64];
      count++;
      if (count == 3) {
        show(&p, "mallory\xe2\x80\xae", evil, sizeof(evil) - 1, 0);
      } else {
        int n = snprintf(text, sizeof(text), "incoming %u", count);
        show(&p, "peer", text, (size_t)n, 0);
      }
      next += interval;
    }
  }
  chatc_edit_free(p.e);
  printf("bye\n");
  return 0;
}
