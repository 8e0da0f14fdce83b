/* lineedit.c: libedit in unbuffered mode with print-above (see lineedit.h). */
#include "lineedit.h"

#include <histedit.h>
#include <signal.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>
#include <wchar.h>

struct chatc_edit {
  EditLine *el;
  History *hist;
  FILE *out;
  int infd;
  int eof;
  char prompt[CHATC_EDIT_PROMPT_MAX];
};

/* The terminal as we found it, for chatc_edit_restore_tty(). */
static struct termios orig_tio;
static volatile sig_atomic_t orig_fd = -1;

static char *prompt_fn(EditLine *el)
{
  chatc_edit *e = NULL;

  el_get(el, EL_CLIENTDATA, &e);
  return e != NULL ? e->prompt : (char *)"";
}

chatc_edit *chatc_edit_new(const char *prog, FILE *in, FILE *out, const char *prompt)
{
  chatc_edit *e;
  HistEvent ev;

  if (!isatty(fileno(in)) || (e = calloc(1, sizeof(*e))) == NULL)
    return NULL;
  e->out = out;
  e->infd = fileno(in);
  snprintf(e->prompt, sizeof(e->prompt), "%s", prompt != NULL ? prompt : "> ");
  if (tcgetattr(e->infd, &orig_tio) == 0)
    orig_fd = e->infd;
  e->hist = history_init();
  e->el = el_init(prog, in, out, stderr);
  if (e->hist == NULL || e->el == NULL) {
    chatc_edit_free(e);
    return NULL;
  }
  history(e->hist, &ev, H_SETSIZE, CHATC_EDIT_HISTORY);
  history(e->hist, &ev, H_SETUNIQUE, 1);
  el_set(e->el, EL_CLIENTDATA, e);
  el_set(e->el, EL_EDITOR, "emacs");
  el_set(e->el, EL_SIGNAL, 0);
  el_set(e->el, EL_HIST, history, e->hist);
  el_set(e->el, EL_PROMPT, prompt_fn);
  el_source(e->el, NULL); /* ~/.editrc, as every libedit program */
  /* Raw mode, reset line, prompt printed. */
  el_set(e->el, EL_UNBUFFERED, 1);
  return e;
}

int chatc_edit_fd(const chatc_edit *e)
{
  return e->infd;
}

/* Display width of len bytes of UTF-8 s (controls count as libedit shows
 * them: "^X", two columns). */
static size_t text_width(const char *s, size_t len)
{
  mbstate_t st;
  size_t w = 0, n;
  wchar_t wc;
  int cw;

  memset(&st, 0, sizeof(st));
  while (len > 0) {
    n = mbrtowc(&wc, s, len, &st);
    if (n == (size_t)-1 || n == (size_t)-2) {
      memset(&st, 0, sizeof(st));
      n = 1, wc = L'?';
    } else if (n == 0) {
      n = 1;
    }
    cw = wcwidth(wc);
    w += cw >= 0 ? (size_t)cw : 2;
    s += n, len -= n;
  }
  return w;
}

static size_t term_cols(const chatc_edit *e)
{
  struct winsize ws;

  if (ioctl(fileno(e->out), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
    return ws.ws_col;
  return 80;
}

/* Move to the first column of the prompt's row and clear to the end of
 * the screen. Rows are counted up to the cursor, which libedit leaves
 * where the user is editing. */
static void erase_input(chatc_edit *e)
{
  const LineInfo *li = el_line(e->el);
  size_t cols = term_cols(e), w = text_width(e->prompt, strlen(e->prompt));

  if (li != NULL)
    w += text_width(li->buffer, (size_t)(li->cursor - li->buffer));
  fflush(e->out);
  if (w / cols > 0)
    fprintf(e->out, "\r\x1b[%zuA\x1b[J", w / cols);
  else
    fputs("\r\x1b[J", e->out);
}

static void redraw(chatc_edit *e)
{
  fflush(e->out);
  el_set(e->el, EL_REFRESH); /* assumes a blank area at the cursor */
  fflush(e->out);
}

void chatc_edit_print(chatc_edit *e, const char *text, size_t len)
{
  erase_input(e);
  fwrite(text, 1, len, e->out);
  if (len == 0 || text[len - 1] != '\n')
    fputs("\r\n", e->out);
  redraw(e);
}

void chatc_edit_set_prompt(chatc_edit *e, const char *prompt)
{
  erase_input(e);
  snprintf(e->prompt, sizeof(e->prompt), "%s", prompt);
  redraw(e);
}

void chatc_edit_resize(chatc_edit *e)
{
  el_resize(e->el);
  erase_input(e);
  redraw(e);
}

void chatc_edit_suspend(chatc_edit *e)
{
  erase_input(e);
  fflush(e->out);
  el_set(e->el, EL_PREP_TERM, 0);
}

void chatc_edit_resume(chatc_edit *e)
{
  el_set(e->el, EL_PREP_TERM, 1);
  el_resize(e->el);
  redraw(e);
}

/* A line was completed: hand it out, remember it, start a fresh line. */
static void line_done(chatc_edit *e, const char *buf, size_t len, chatc_edit_line_fn fn,
                      void *arg)
{
  HistEvent ev;
  char *copy = malloc(len + 1);
  size_t rows;

  /* libedit printed a newline after the input: erase the submitted line. */
  rows = text_width(e->prompt, strlen(e->prompt)) + text_width(buf, len);
  rows = rows / term_cols(e) + 1;
  fprintf(e->out, "\r\x1b[%zuA\x1b[J", rows);
  fflush(e->out);
  if (copy != NULL) {
    memcpy(copy, buf, len);
    copy[len] = '\0';
  }
  /* Toggling unbuffered mode resets libedit's line and prints the prompt. */
  el_set(e->el, EL_UNBUFFERED, 0);
  el_set(e->el, EL_UNBUFFERED, 1);
  if (copy == NULL)
    return;
  if (len > 0)
    history(e->hist, &ev, H_ENTER, copy);
  fn(arg, copy, len);
  sodium_memzero(copy, len);
  free(copy);
}

int chatc_edit_read(chatc_edit *e, chatc_edit_line_fn fn, void *arg)
{
  const char *buf;
  int count, pending = 1, rounds = 0;

  if (e->eof)
    return 1;
  /* Called because poll() reported the terminal readable: in raw mode any
   * byte is readable at once, so nothing pending means a hangup or end of
   * input (libedit would otherwise return the partial line forever). */
  if (ioctl(e->infd, FIONREAD, &pending) != 0 || pending == 0) {
    e->eof = 1;
    fn(arg, NULL, 0);
    return 1;
  }
  /* One el_gets() per keystroke; go on while more input is queued (a
   * paste), but bounded so the caller's other fds are not starved. */
  while (pending > 0 && rounds++ < 4096) {
    buf = el_gets(e->el, &count);
    if (buf == NULL && count < 0) {
      e->eof = 1; /* read error or the terminal hung up */
      fn(arg, NULL, 0);
      return 1;
    }
    if (buf != NULL && count == 1 && buf[0] == 0x04) { /* Ctrl-D, empty line */
      e->eof = 1;
      fn(arg, NULL, 0);
      return 1;
    }
    if (buf != NULL && count > 0 && buf[count - 1] == '\n')
      line_done(e, buf, (size_t)count - 1, fn, arg);
    if (ioctl(e->infd, FIONREAD, &pending) != 0)
      pending = 0;
  }
  return 0;
}

void chatc_edit_restore_tty(void)
{
  if (orig_fd >= 0)
    tcsetattr(orig_fd, TCSADRAIN, &orig_tio);
}

void chatc_edit_free(chatc_edit *e)
{
  HistEvent ev;

  if (e == NULL)
    return;
  if (e->el != NULL) {
    erase_input(e);
    fflush(e->out);
    el_set(e->el, EL_UNBUFFERED, 0);
    el_end(e->el);
  }
  if (e->hist != NULL) {
    /* history(H_CLEAR) frees the entries; their text is not wiped by
     * libedit, which is why nothing of it ever reaches the disk. */
    history(e->hist, &ev, H_CLEAR);
    history_end(e->hist);
  }
  chatc_edit_restore_tty();
  orig_fd = -1;
  sodium_memzero(e->prompt, sizeof(e->prompt));
  free(e);
}
