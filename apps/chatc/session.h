/*
 * session.h: one chatc run: identity, client state, the relay connection
 * (TCP, non-blocking, reconnect with backoff), the poll loop over the
 * socket, the input (JSON lines on stdin or the libedit line) and the
 * signal pipe, commands -> client core calls, client core events -> JSON
 * events or terminal lines, persistence of the state blob, the profile and
 * the local history records. No protocol logic: libsecchat does that.
 *
 * Threads: single-threaded; one session per process.
 */
#ifndef CHATC_SESSION_H
#define CHATC_SESSION_H

#include "options.h"
#include "store.h"

/* Run chatc with the parsed options on an opened (locked) home. Returns the
 * process exit code (CHATC_EXIT_*). Errors before the loop starts go to
 * stderr (and, in JSON mode, also as an "error" event on stdout). */
int chatc_session_run(const chatc_options *opt, chatc_store *st);

#endif /* CHATC_SESSION_H */
