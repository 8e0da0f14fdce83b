/*
 * sigfd.h: signals as readable bytes for the poll loop (self-pipe).
 *
 * chatc_sigfd_install() routes SIGINT, SIGTERM, SIGHUP, SIGWINCH, SIGTSTP
 * and SIGCONT to a handler that only writes the signal number into a
 * non-blocking pipe; the main loop polls the read end and acts outside
 * signal context (restore the terminal and exit, redraw, suspend). SIGPIPE
 * is ignored (a dead relay socket is an EPIPE, not a death).
 *
 * Threads: process-wide; install once from the main thread.
 */
#ifndef CHATC_SIGFD_H
#define CHATC_SIGFD_H

/* Returns the fd to poll (POLLIN), or -1 (errno set). */
int chatc_sigfd_install(void);

/* Next pending signal number, 0 if none. */
int chatc_sigfd_next(int fd);

/* Stop the process the way SIGTSTP would (default action), for the loop
 * after it restored the terminal; returns once continued. */
void chatc_sigfd_stop_self(void);

#endif /* CHATC_SIGFD_H */
