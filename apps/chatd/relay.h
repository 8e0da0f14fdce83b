/*
 * relay.h: the serving process: listening socket, acceptor, worker
 * threads, signals, metrics endpoint (docs/chatd.md, "Serving model").
 *
 * chatd_relay_run() owns the calling (main) thread until SIGTERM or SIGINT:
 * it binds --listen, starts --threads workers (each with its own server
 * core and epoll), then accepts on the main thread and hands every socket
 * to the least-loaded worker, enforcing --max-conns and --max-conns-per-ip
 * at accept (a refused socket is closed at once). SIGHUP reopens the log
 * file. On SIGTERM/SIGINT it closes the listening socket, asks every worker
 * to send BYE{shutdown}, flush and close (bounded by CHATD_LINGER_MS), and
 * returns.
 *
 * Signals: the caller must have blocked SIGTERM, SIGINT and SIGHUP in every
 * thread (chatd_relay_block_signals() before any thread exists); the relay
 * takes them synchronously through a signalfd.
 */
#ifndef CHATD_RELAY_H
#define CHATD_RELAY_H

#include <stddef.h>

#include "config.h"
#include "keys.h"
#include "log.h"
#include "syslog.h"

/* Block the signals the relay handles, in the calling thread (and so in
 * every thread created after). Returns 0 or -1. */
int chatd_relay_block_signals(void);

/* Serve until a stop signal. Returns CHATD_EXIT_OK after a clean stop, or
 * CHATD_EXIT_FAILURE with a message in err (nothing served: bind failed,
 * threads could not start...). sl may be NULL. */
int chatd_relay_run(const chatd_config *cfg, const chatd_keys *keys, chatd_log *lg,
                    chatd_syslog *sl, char *err, size_t errlen);

#endif /* CHATD_RELAY_H */
