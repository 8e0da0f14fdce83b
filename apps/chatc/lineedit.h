/*
 * lineedit.h: the interactive input line (libedit), driven by the caller's
 * poll loop, with output printed above it.
 *
 * libedit runs in unbuffered mode: the caller polls chatc_edit_fd() along
 * with the relay socket and calls chatc_edit_read() when it is readable;
 * each call handles the keystrokes that are pending and returns at once.
 * Completed lines are handed to a callback. chatc_edit_print() puts a line
 * (already formatted and escaped: see output.h) above the input: it clears
 * the prompt and the partial input, prints, and has libedit redraw the
 * prompt, the partial input and the cursor exactly as they were, so a
 * message arriving while the user types never corrupts the typed line.
 *
 * A submitted line is erased from the screen (the caller shows it in its
 * own form, e.g. "[12:00] alice: hi"). The line history lives in memory
 * only (CHATC_EDIT_HISTORY entries): it holds message plaintext, so it is
 * never written to disk (libedit frees it on chatc_edit_free without
 * wiping; the submitted copies chatc hands out are wiped).
 *
 * Signals: libedit's own handlers are off. The caller handles SIGWINCH
 * (chatc_edit_resize), SIGTSTP/SIGCONT (chatc_edit_suspend/resume) and
 * terminating signals (chatc_edit_free, or chatc_edit_restore_tty from a
 * handler: it is async-signal-safe).
 *
 * Threads: one thread; one chatc_edit per process (terminal state).
 */
#ifndef CHATC_LINEEDIT_H
#define CHATC_LINEEDIT_H

#include <stddef.h>
#include <stdio.h>

#define CHATC_EDIT_HISTORY 500
#define CHATC_EDIT_PROMPT_MAX 128u

typedef struct chatc_edit chatc_edit;

/* A completed line (without its newline; len bytes, NUL-terminated,
 * valid during the call only), or end of input (line NULL: Ctrl-D on an
 * empty line, or the terminal went away). */
typedef void (*chatc_edit_line_fn)(void *arg, const char *line, size_t len);

/* Start editing on in/out (terminals; usually stdin/stdout): raw mode,
 * prompt shown. prog names the libedit settings section (~/.editrc).
 * Returns NULL when out of memory or in is not a terminal. */
chatc_edit *chatc_edit_new(const char *prog, FILE *in, FILE *out, const char *prompt);

/* The descriptor to poll for POLLIN. */
int chatc_edit_fd(const chatc_edit *e);

/* Handle pending input; call it only when poll() reported the fd readable
 * (POLLIN, POLLHUP or POLLERR): nothing to read then means the terminal is
 * gone. fn is called for every completed line. Returns 0, or 1 once end of
 * input was reported. */
int chatc_edit_read(chatc_edit *e, chatc_edit_line_fn fn, void *arg);

/* Print text (len bytes: one or more lines, no trailing newline needed)
 * above the input line, then redraw the prompt and the partial input. */
void chatc_edit_print(chatc_edit *e, const char *text, size_t len);

/* Change the prompt (at most CHATC_EDIT_PROMPT_MAX - 1 bytes, our own
 * text: the caller escapes any user-controlled part) and redraw. */
void chatc_edit_set_prompt(chatc_edit *e, const char *prompt);

/* The terminal changed size (SIGWINCH): re-read it and redraw. */
void chatc_edit_resize(chatc_edit *e);

/* Before stopping the process (SIGTSTP): erase the input, restore the
 * terminal. After SIGCONT: raw mode again, redraw. */
void chatc_edit_suspend(chatc_edit *e);
void chatc_edit_resume(chatc_edit *e);

/* Restore the terminal's settings from when chatc_edit_new ran; safe in a
 * signal handler. */
void chatc_edit_restore_tty(void);

/* Erase the input line, restore the terminal, clear the history, free. */
void chatc_edit_free(chatc_edit *e);

#endif /* CHATC_LINEEDIT_H */
