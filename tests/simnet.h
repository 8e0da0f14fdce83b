/* simnet.h: a simulated network for the Check tests. REAL secchat_server
 * cores and REAL secchat_client cores in one process, no sockets, a fake
 * clock: the net plays every host (event loop) at once. It moves the bytes
 * each core writes to the other side, closes connections the way a host
 * does (flushing what is pending first), fires timers as the clock
 * advances, and records every client event in its node's log.
 *
 * The pump moves raw transport bytes and never looks inside them: a
 * transport message may pack several frames (docs/protocol.md 1.3), which
 * only the cores parse. Tests that play a hostile relay do so at frame
 * level inside the client (sc_client_test_filter / sc_client_test_inject).
 *
 * Ownership: the net owns its servers (set net->srv[i] to a new core, it is
 * freed by sn_free) and its nodes with their identity, client core and
 * event log. A test may replace a node's client core or a server core while
 * nothing is connected to it (process restart). Failures are Check
 * assertions: use it only inside a Check test. Not thread-safe; one net per
 * test (a file-static sn_net, zeroed by sn_free). */
#ifndef SC_SIMNET_H
#define SC_SIMNET_H

#include <stddef.h>
#include <stdint.h>

#include <secchat/secchat.h>

#define SN_MAX_SERVERS 2
#define SN_MAX_NODES 64

/* One client event as recorded (fields copied out of secchat_client_event;
 * name truncated to 129 bytes, text to its 20 bytes). */
typedef struct sn_event {
  uint32_t type, flags, count, trust;
  int code, detail;
  uint64_t ref, epoch, gaps, ts;
  int64_t expires_s;
  uint8_t uid[20], uid2[20], key[32], fpr[32], chat[16], msgid[32];
  char name[130];
  char text[20];
  uint8_t *data; /* malloc'd copy, NULL unless kept (sn_net.keep_data) */
  size_t dlen;
} sn_event;

/* One client host: its identity, core, connection and event log. */
typedef struct sn_node {
  int idx;              /* position in sn_net.node */
  secchat_identity *id; /* owned; set by the test */
  secchat_client *c;    /* owned; set by the test */
  int srv;              /* server it connects to (index into sn_net.srv) */
  uint64_t conn;        /* its server connection, 0 while disconnected */
  sn_event *ev;         /* every event the core emitted, in order */
  int nev, cap;
  char name[64];
} sn_node;

typedef struct sn_net {
  secchat_server *srv[SN_MAX_SERVERS]; /* owned; NULL: not running */
  sn_node *node[SN_MAX_NODES];
  int nnode;
  uint64_t now; /* the fake clock (ms) every call gets */
  /* Bound on a node's event log (0: none): a runaway event loop fails the
   * test instead of eating memory. */
  int max_events;
  /* Which events keep a copy of their data (NULL: all). Large data nobody
   * reads (history records of 50 clients) need not be kept. */
  int (*keep_data)(uint32_t type);
} sn_net;

/* ---- the nodes ---------------------------------------------------------------------------- */

/* A new node named name (truncated to 63 bytes), idx = its position, no
 * identity, core or connection yet: the test creates them. */
sn_node *sn_add(sn_net *net, const char *name);

/* Free every node (client core, identity, event log) and server, then zero
 * *net. */
void sn_free(sn_net *net);

/* ---- what a host does ---------------------------------------------------------------------- */

/* Open a connection from x to server srv (closing x's current one first)
 * with source address src (its length srclen), start the client's
 * handshake, and pump. */
void sn_connect(sn_net *net, sn_node *x, int srv, const uint8_t *src, size_t srclen);

/* Register x under its name, connect to server 0 from src, and check it
 * is online (exactly one REGISTERED and one AUTHENTICATED). */
void sn_online(sn_net *net, sn_node *x, const uint8_t *src, size_t srclen);

/* The host closes x's socket: the server's connection is closed (if any)
 * and the client is told it is disconnected. */
void sn_close(sn_net *net, sn_node *x);

/* x's host process exits: x's state is exported to blob (cap bytes, its
 * length to *len), its socket closed, its last events recorded and its
 * core freed (x->c = NULL: the test creates the new one and imports).
 * Returns 1 if it was connected. */
int sn_stop(sn_net *net, sn_node *x, uint8_t *blob, size_t cap, size_t *len);

/* Pump until nothing moves (bounded: a livelock stops after 10^6 rounds).
 * A round moves every connection's bytes both ways, handles the servers'
 * CLOSE events (flushing first when the server asks) and records every
 * node's events. */
void sn_pump(sn_net *net);

/* Record x's pending events; on CLOSE write what the client still has and
 * close (sn_close), as a host does. */
void sn_drain(sn_net *net, sn_node *x);

/* Advance the clock by ms in steps of at most step ms, firing every
 * server's and client's timers and pumping after each step. */
void sn_advance(sn_net *net, uint64_t ms, uint64_t step);

/* ---- the event log ------------------------------------------------------------------------- */

/* Events of type in x's log from index from on. */
int sn_count(const sn_node *x, uint32_t type, int from);

/* x's latest event of type, NULL if none. */
const sn_event *sn_last(const sn_node *x, uint32_t type);

/* ---- the hostile relay's store ----------------------------------------------------------
 * Tests that play a hostile relay at frame level (sc_client_test_filter)
 * hold frames back to deliver them late (reorder) or record them to send
 * them again (replay). */

#define SN_HELD_MAX 512

typedef struct sn_held {
  uint8_t *body[SN_HELD_MAX]; /* malloc'd frame bodies, oldest first */
  size_t len[SN_HELD_MAX];
  int n;
} sn_held;

/* Keep a copy of a frame body; when full the frame is not kept (the
 * adversary's memory is bounded too). */
void sn_hold(sn_held *h, const uint8_t *body, size_t len);

/* Forget (free) everything held. */
void sn_held_clear(sn_held *h);

/* Inject every held frame into c, oldest first, and keep them (replay).
 * No pump. */
void sn_replay(const sn_net *net, const sn_held *h, secchat_client *c);

/* Inject every held frame into c, newest first (late and reordered), and
 * forget them. No pump. */
void sn_release(const sn_net *net, sn_held *h, secchat_client *c);

/* The adversary's dice: next value (0..32767) of the LCG *state. */
uint32_t sn_dice(uint32_t *state);

#endif
