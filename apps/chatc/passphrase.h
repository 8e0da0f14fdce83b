/*
 * passphrase.h: get the passphrase that protects the identity file.
 *
 * Source: the environment variable SECCHAT_PASSPHRASE when set (for
 * scripts; it is removed from the environment once read so child
 * processes do not inherit it), else a prompt on /dev/tty with echo off.
 * --no-passphrase is the caller's business (it never calls this).
 *
 * The terminal's settings are restored on every path: normal return,
 * error, and the signals SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP, SIGTTIN
 * and SIGTTOU arriving during the prompt (restored in the handler, then the
 * signal's previous disposition is put back and the signal re-raised once
 * the prompt is over). Buffers are wiped with sodium_memzero.
 *
 * Threads: uses process-wide signal dispositions; call from the main
 * thread before other threads exist.
 */
#ifndef CHATC_PASSPHRASE_H
#define CHATC_PASSPHRASE_H

#include <stddef.h>

#define CHATC_PASSPHRASE_MAX 1024u

typedef enum chatc_pass_result {
  CHATC_PASS_OK = 0,
  CHATC_PASS_NO_TTY = -1,      /* no environment variable and no /dev/tty */
  CHATC_PASS_EMPTY = -2,       /* empty passphrase entered */
  CHATC_PASS_TOO_LONG = -3,    /* longer than cap - 1 bytes */
  CHATC_PASS_INTERRUPTED = -4, /* a signal or end of input at the prompt */
  CHATC_PASS_IO = -5,
  CHATC_PASS_MISMATCH = -6     /* confirm: the two entries differ */
} chatc_pass_result;

/* Read the passphrase into out (cap bytes, at most CHATC_PASSPHRASE_MAX),
 * NUL-terminated, trailing "\r\n" removed; *len = its length. The caller
 * wipes out (sodium_memzero) when done; on failure it is wiped already
 * and err holds a message. confirm != 0 asks twice on the terminal (a new
 * identity): CHATC_PASS_MISMATCH if the entries differ. */
int chatc_passphrase_get(const char *prompt, int confirm, char *out, size_t cap, size_t *len,
                         char *err, size_t errlen);

/* The prompt part alone, on an already open terminal fd (tests drive it
 * through a pseudo-terminal): echo off, read one line, restore. */
int chatc_passphrase_prompt_fd(int fd, const char *prompt, char *out, size_t cap, size_t *len);

#endif /* CHATC_PASSPHRASE_H */
