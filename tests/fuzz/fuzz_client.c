/* fuzz_client: relay-controlled frames into an authenticated client core.
 *
 * Setup (once): a real server core, alice and bob registered; alice's state
 * (pin, token, contact bob) is exported. Per input, a fresh client core for
 * alice imports that state and logs in to the real server (so it is in the
 * authenticated state, as after a reconnect); then the first input byte
 * picks the mode:
 *   odd:  the rest is u16be length || frame body, repeated: each body is
 *         handled as if the relay had sent it inside the transport
 *         (sc_client_test_inject): the whole post-authentication dispatch,
 *         LOOKUP answers, DIRECT blobs (HELLO / REPLY / DATA parsing, IK
 *         reads), DELIVER into the group layer, ERROR / BYE / TOKEN...;
 *   even: the rest is raw bytes from a "server" answering a fresh XX
 *         handshake (deframer, message 2, payload and pin checks).
 * Then every deadline runs. Invariants: no crash or sanitizer report; recv
 * consumes everything; event queue drained; the client frees cleanly. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <secchat/secchat.h>

#include "client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define T0 1800000000000ull

static secchat_server_key *KEY;
static secchat_server *SRV;
static secchat_identity *ALICE, *BOB;
static uint8_t STATE[1 << 14];
static size_t STATE_LEN;

static void drain(secchat_client *c)
{
  secchat_client_event ev;
  memset(&ev, 0, sizeof ev);
  ev.struct_size = sizeof ev;
  while (secchat_client_next_event(c, &ev) == 1)
    ;
}

/* Pump bytes between c (on conn) and the server until quiet. */
static void pump(secchat_client *c, uint64_t conn)
{
  static uint8_t buf[65536];
  for (int moved = 1, i = 0; moved && i < 1000; i++) {
    moved = 0;
    secchat_ssize n;
    while ((n = secchat_client_send(c, buf, sizeof buf)) > 0) {
      (void)secchat_server_conn_recv(SRV, conn, buf, (size_t)n, T0);
      moved = 1;
    }
    secchat_iovec iov[8];
    int k;
    while ((k = secchat_server_conn_output(SRV, conn, iov, 8)) > 0) {
      size_t total = 0;
      for (int j = 0; j < k; j++) {
        if (secchat_client_recv(c, iov[j].base, iov[j].len, T0) != (secchat_ssize)iov[j].len)
          abort();
        total += iov[j].len;
      }
      (void)secchat_server_conn_consumed(SRV, conn, total);
      moved = 1;
    }
    secchat_server_event sev;
    memset(&sev, 0, sizeof sev);
    sev.struct_size = sizeof sev;
    while (secchat_server_next_event(SRV, &sev) == 1)
      ;
    drain(c);
  }
}

static secchat_client *client(secchat_identity *id)
{
  secchat_client_config cfg;
  secchat_client_config_init(&cfg);
  cfg.identity = id;
  secchat_client *c = NULL;
  if (secchat_client_new(&c, &cfg) != 0)
    abort();
  return c;
}

static uint64_t connect_to_server(secchat_client *c)
{
  static const uint8_t src[4] = {10, 0, 0, 1};
  uint64_t conn = 0;
  if (secchat_server_conn_open(SRV, &conn, src, sizeof src, T0) != 0 ||
      secchat_client_connect(c, T0) != 0)
    abort();
  pump(c, conn);
  return conn;
}

static void init(void)
{
  if (secchat_init() != 0 || secchat_server_key_generate(&KEY) != 0)
    abort();
  static uint8_t nsk[32] = {1, 2, 3};
  secchat_server_config cfg;
  secchat_server_config_init(&cfg);
  cfg.name = "relay.fuzz";
  cfg.token_key = KEY;
  cfg.noise_secret_key = nsk;
  cfg.register_per_min = 0;
  cfg.control_rate = 0;
  cfg.direct_rate = 0;
  if (secchat_server_new(&SRV, &cfg) != 0 || secchat_identity_new(&ALICE) != 0 ||
      secchat_identity_new(&BOB) != 0)
    abort();
  secchat_client *a = client(ALICE), *b = client(BOB);
  (void)secchat_client_register(a, "alice", 5, T0);
  (void)secchat_client_register(b, "bob", 3, T0);
  uint64_t ca = connect_to_server(a), cb = connect_to_server(b);
  if (!secchat_client_is_online(a) || !secchat_client_is_online(b))
    abort();
  (void)secchat_client_lookup_name(a, "bob", 3);
  pump(a, ca);
  if (secchat_client_export_state(a, STATE, sizeof STATE, &STATE_LEN, NULL) != 0)
    abort();
  secchat_server_conn_closed(SRV, ca, T0);
  secchat_server_conn_closed(SRV, cb, T0);
  secchat_client_free(a);
  secchat_client_free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (KEY == NULL)
    init();
  if (size < 1)
    return 0;
  secchat_client *c = client(ALICE);
  if (secchat_client_import_state(c, STATE, STATE_LEN, 0, T0) != 0)
    abort();
  if (data[0] & 1) {
    uint64_t conn = connect_to_server(c);
    if (!secchat_client_is_online(c))
      abort();
    size_t off = 1;
    while (off + 2 <= size) {
      size_t len = (size_t)data[off] << 8 | data[off + 1];
      off += 2;
      if (len > size - off)
        len = size - off;
      sc_client_test_inject(c, data + off, len, T0);
      off += len;
      drain(c);
    }
    pump(c, conn);
    secchat_client_on_timeout(c, T0 + 3600000u);
    drain(c);
    secchat_server_conn_closed(SRV, conn, T0);
  } else {
    if (secchat_client_connect(c, T0) != 0)
      abort();
    if (secchat_client_recv(c, data + 1, size - 1, T0) != (secchat_ssize)(size - 1))
      abort();
    drain(c);
  }
  secchat_client_free(c);
  return 0;
}
