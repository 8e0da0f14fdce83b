/*
 * syslog.h: forwarding of log records to a remote syslog collector.
 *
 * Records are RFC 5424 messages, facility daemon (3):
 *
 *   <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - MSG
 *
 * sent over UDP (one datagram per record) or TCP with RFC 6587 octet
 * counting ("LEN SP RECORD", no trailer).
 *
 * Never blocking the caller is the whole point: a slow, stuck or absent
 * collector must not stall relaying (security.md, D7). So
 * chatd_syslog_submit() only copies the record into a bounded in-memory
 * queue (CHATD_SYSLOG_QUEUE_RECORDS records and CHATD_SYSLOG_QUEUE_BYTES
 * bytes by default, allocated once) under a short mutex; a dedicated sender
 * thread drains it through a non-blocking socket. When the queue is full
 * the new record is dropped and counted. A TCP connection that fails, is
 * refused, or makes no progress for stall_timeout_ms is closed and retried
 * with exponential backoff (backoff_min_ms doubling up to backoff_max_ms);
 * the record being sent is kept and resent whole on the next connection.
 * The sender thread sleeps in poll(2) whenever it has nothing to do.
 *
 * Threads: chatd_syslog_submit() and chatd_syslog_stats_get() may be called
 * from any thread concurrently. chatd_syslog_new()/chatd_syslog_free() are
 * not concurrent with other calls on the same client.
 */
#ifndef CHATD_SYSLOG_H
#define CHATD_SYSLOG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define CHATD_SYSLOG_QUEUE_RECORDS 1024u
#define CHATD_SYSLOG_QUEUE_BYTES (1024u * 1024u)
#define CHATD_SYSLOG_RECORD_MAX 8192u    /* longer MSG parts are cut */
#define CHATD_SYSLOG_FACILITY_DAEMON 3

/* RFC 5424 severities used by chatd. */
#define CHATD_SYSLOG_SEV_ERR 3
#define CHATD_SYSLOG_SEV_WARNING 4
#define CHATD_SYSLOG_SEV_INFO 6
#define CHATD_SYSLOG_SEV_DEBUG 7

typedef enum chatd_syslog_transport {
  CHATD_SYSLOG_UDP = 1,
  CHATD_SYSLOG_TCP = 2
} chatd_syslog_transport;

typedef struct chatd_syslog chatd_syslog;

typedef struct chatd_syslog_options {
  chatd_syslog_transport transport;
  struct sockaddr_storage addr; /* collector, numeric (config.h parses it) */
  socklen_t addrlen;
  const char *app_name;         /* NULL: "chatd" */
  const char *hostname;         /* NULL: gethostname() */
  size_t queue_records;         /* 0: CHATD_SYSLOG_QUEUE_RECORDS */
  size_t queue_bytes;           /* 0: CHATD_SYSLOG_QUEUE_BYTES */
  unsigned stall_timeout_ms;    /* 0: 30000; TCP write or connect stalled */
  unsigned backoff_min_ms;      /* 0: 100 */
  unsigned backoff_max_ms;      /* 0: 30000 */
} chatd_syslog_options;

typedef enum chatd_syslog_state {
  CHATD_SYSLOG_DOWN = 0,        /* TCP: waiting for the next attempt */
  CHATD_SYSLOG_CONNECTING = 1,  /* TCP: connect(2) in progress */
  CHATD_SYSLOG_UP = 2           /* TCP connected, or UDP socket ready */
} chatd_syslog_state;

typedef struct chatd_syslog_stats {
  uint64_t submitted;   /* records accepted into the queue */
  uint64_t sent;        /* records completely handed to the kernel */
  uint64_t dropped;     /* records refused because the queue was full */
  uint64_t send_errors; /* UDP records lost to a send error */
  uint64_t connects;    /* TCP connections established */
  uint64_t failures;    /* TCP connect failures and broken connections */
  uint64_t stalls;      /* TCP connections closed for lack of progress */
  size_t queued_records;
  size_t queued_bytes;
  chatd_syslog_state state;
} chatd_syslog_stats;

/* Allocate the queue, create the socket (UDP) and start the sender thread
 * (TCP connects in the background: an absent collector is not an error
 * here). Returns 0, or -1 with a message in err. */
int chatd_syslog_new(chatd_syslog **out, const chatd_syslog_options *opt, char *err,
                     size_t errlen);

/* Wait at most timeout_ms for the queue to drain (records sent). Returns 1
 * if it drained, 0 on timeout. For a clean shutdown; never on a hot path. */
int chatd_syslog_flush(chatd_syslog *sl, unsigned timeout_ms);

/* Stop the sender thread (queued records are discarded: flush first),
 * close the socket, free everything. NULL-safe. */
void chatd_syslog_free(chatd_syslog *sl);

/* Queue one record: severity (CHATD_SYSLOG_SEV_*), RFC 3339 timestamp,
 * msgid (an event name; non-PRINTUSASCII bytes become '_', cut at 32),
 * and the MSG part (msg, len bytes; should be UTF-8 without newlines, as
 * log.c produces). Never blocks on the network. Returns 0 if queued, -1 if
 * dropped (queue full; counted). */
int chatd_syslog_submit(chatd_syslog *sl, int severity, const char *timestamp,
                        const char *msgid, const char *msg, size_t len);

void chatd_syslog_stats_get(chatd_syslog *sl, chatd_syslog_stats *out);

const char *chatd_syslog_state_name(chatd_syslog_state st);

#endif /* CHATD_SYSLOG_H */
