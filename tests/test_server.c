/* test_server.c: the relay server core, in process, no sockets, fake clock.
 *
 * Simulated clients are written against the library's own building blocks
 * as a client would use them: Noise XX initiator (noise.h), frames and
 * padding (codec.h), proofs signed with libsodium keys (token.h helpers),
 * tokens checked with a verifier built from the key the server announces in
 * handshake message 2. Bytes are pumped in memory between the clients and
 * one secchat_server. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <sodium.h>

#include <secchat/secchat.h>

#include "codec.h"
#include "crypto.h"
#include "mp.h"
#include "noise.h"
#include "rng.h"
#include "testutil.h"
#include "token.h"

#define T0 1800000000000ull /* fake wall clock, Unix ms */
#define ISSUER "relay.test"
#define MAXSIMS 64
#define INBOX 512

/* ---- fixture ---------------------------------------------------------------- */

static secchat_server *S;      /* the server new sims connect to */
static secchat_server *SRV[4]; /* every server (cluster tests have several) */
static int NSRV;
static secchat_server_key *KEY;
static secchat_server_config CFG;
static uint64_t NOW;
static sc_test_rng RNG;

typedef struct logrec {
  const char *event;
  int code, detail;
  uint64_t conn, value;
} logrec;
static logrec LOGS[4096];
static int NLOGS;

typedef struct sim {
  secchat_server *srv;
  uint64_t id;
  int closed, close_reason, close_flush, hs_failed;
  sc_noise_handshake hs;
  sc_noise_transport t;
  uint8_t hh[32];
  uint8_t sign_pk[32], sign_sk[64], dh_sk[32], dh_pk[32], dh_sig[64], uid[20];
  char name[64];
  char token[SECCHAT_MAX_TOKEN_BYTES + 1];
  size_t token_len;
  sc_deframer df;
  int hs_done;
  uint8_t hsmsg[4096];
  size_t hsmsg_len;
  uint8_t *inbox[INBOX];
  size_t inlen[INBOX];
  int nin, rd;
  int nmsgs; /* transport messages received (each holds >= 1 frame) */
  uint8_t *cur; /* body of the frame last returned by sim_next */
  char pem[SECCHAT_TOKEN_KEY_PEM_MAX];
  size_t pem_len;
  uint64_t minor, features;
  char srv_name[80];
  uint8_t srv_static[32]; /* the relay's Noise static key, from message 2 */
} sim;
static sim *SIMS[MAXSIMS];
static int NSIMS;

static uint64_t FANOUT_JOBS;
static uint64_t WW_CONN, WW_EVENTS; /* WANT_WRITE events seen for one watched conn */

/* Held fanout (interleaving tests): while HOLD is set, each job is queued
 * per (origin, destination) instead of applied, and the test releases the
 * queue heads in the order it chooses. Per origin and destination the
 * order is kept, as chatd's inboxes do; across origins any order is
 * possible, and the tests try them all. */
#define HELD_MAX 1024
static int HOLD;
static uint8_t *HELD[4][4][HELD_MAX];
static size_t HELD_LEN[4][4][HELD_MAX];
static int HELD_HEAD[4][4], HELD_N[4][4];

static void hold_job(int origin, int dest, const uint8_t *job, size_t len)
{
  ck_assert_int_lt(HELD_HEAD[origin][dest] + HELD_N[origin][dest], HELD_MAX);
  int i = HELD_HEAD[origin][dest] + HELD_N[origin][dest]++;
  HELD[origin][dest][i] = malloc(len);
  memcpy(HELD[origin][dest][i], job, len);
  HELD_LEN[origin][dest][i] = len;
}

static void held_clear(void)
{
  for (int o = 0; o < 4; o++)
    for (int d = 0; d < 4; d++) {
      for (int i = 0; i < HELD_N[o][d]; i++)
        free(HELD[o][d][HELD_HEAD[o][d] + i]);
      HELD_HEAD[o][d] = HELD_N[o][d] = 0;
    }
  HOLD = 0;
}

/* Drain every server's events; FANOUT jobs go to every other server, as a
 * host with several workers does. */
static void pump_events(void)
{
  secchat_server_event ev;
  for (int again = 1; again;) {
    again = 0;
    for (int k = 0; k < NSRV; k++)
      while (secchat_server_next_event(SRV[k], &ev) == 1) {
    again = 1;
    ck_assert_uint_eq(ev.struct_size, sizeof ev);
    if (ev.type == SECCHAT_SERVER_EV_WANT_WRITE && ev.conn == WW_CONN)
      WW_EVENTS++;
    if (ev.type == SECCHAT_SERVER_EV_FANOUT) {
      FANOUT_JOBS++;
      ck_assert_uint_gt(ev.job_len, 0);
      for (int j = 0; j < NSRV; j++)
        if (j != k && HOLD)
          hold_job(k, j, ev.job, ev.job_len);
        else if (j != k)
          ck_assert_int_eq(secchat_server_fanout_in(SRV[j], ev.job, ev.job_len, NOW), 0);
    } else if (ev.type == SECCHAT_SERVER_EV_CLOSE) {
      for (int i = 0; i < NSIMS; i++)
        if (SIMS[i]->srv == SRV[k] && SIMS[i]->id == ev.conn && !SIMS[i]->closed) {
          SIMS[i]->closed = 1;
          SIMS[i]->close_reason = ev.reason;
          SIMS[i]->close_flush = (int)ev.flush;
        }
    } else if (ev.type == SECCHAT_SERVER_EV_LOG) {
      ck_assert_ptr_nonnull(ev.event);
      if (NLOGS < (int)(sizeof LOGS / sizeof LOGS[0]))
        LOGS[NLOGS++] = (logrec){ev.event, ev.code, ev.detail, ev.conn, ev.value};
    }
      }
  }
}

/* Apply the head of the (origin, destination) queue at its destination. */
static void held_release(int o, int d)
{
  ck_assert_int_gt(HELD_N[o][d], 0);
  uint8_t *job = HELD[o][d][HELD_HEAD[o][d]];
  size_t len = HELD_LEN[o][d][HELD_HEAD[o][d]];
  HELD_HEAD[o][d]++;
  if (--HELD_N[o][d] == 0)
    HELD_HEAD[o][d] = 0;
  ck_assert_int_eq(secchat_server_fanout_in(SRV[d], job, len, NOW), 0);
  free(job);
  pump_events();
}

static int log_count(const char *event, int code)
{
  int n = 0;
  for (int i = 0; i < NLOGS; i++)
    if (strcmp(LOGS[i].event, event) == 0 && (code == 0 || LOGS[i].code == code))
      n++;
  return n;
}

static void make_server(void)
{
  ck_assert_int_eq(secchat_server_new(&S, &CFG), 0);
  SRV[NSRV++] = S;
}

static void setup(void)
{
  static const unsigned char seed[32] = {7};
  sc_test_rng_init(&RNG, seed);
  sc_rng_set(sc_test_rng_fn, &RNG);
  ck_assert_int_eq(secchat_server_key_generate(&KEY), 0);
  static uint8_t nsk[32];
  sc_random(nsk, sizeof nsk);
  secchat_server_config_init(&CFG);
  CFG.name = ISSUER;
  CFG.token_key = KEY;
  CFG.noise_secret_key = nsk;
  NOW = T0;
  NLOGS = 0;
  NSIMS = 0;
  NSRV = 0;
  FANOUT_JOBS = 0;
  S = NULL;
}

static void sim_free(sim *s)
{
  for (int i = 0; i < s->nin; i++)
    free(s->inbox[i]);
  sc_deframer_free(&s->df);
  free(s);
}

/* Free every simulated client and server (S and SRV[] alike). */
static void world_free(void)
{
  held_clear();
  for (int i = 0; i < NSIMS; i++)
    sim_free(SIMS[i]);
  NSIMS = 0;
  for (int i = 0; i < NSRV; i++)
    secchat_server_free(SRV[i]);
  NSRV = 0;
}

static void teardown(void)
{
  world_free();
  secchat_server_key_free(KEY);
  sc_rng_set(NULL, NULL);
}

/* Make S with the current CFG (tests adjust CFG first). */
static void start(void)
{
  if (S == NULL)
    make_server();
}

/* ---- simulated client ------------------------------------------------------------ */

static sim *sim_new(const char *name)
{
  sim *s = calloc(1, sizeof *s);
  ck_assert_ptr_nonnull(s);
  uint8_t seed[32];
  sc_random(seed, sizeof seed);
  crypto_sign_seed_keypair(s->sign_pk, s->sign_sk, seed);
  sc_random(s->dh_sk, sizeof s->dh_sk);
  crypto_scalarmult_base(s->dh_pk, s->dh_sk);
  ck_assert_int_eq(sc_sign_ctx(s->dh_sig, SC_CTX_DH, s->dh_pk, 32, s->sign_sk), 0);
  sc_uid_from_sign_pk(s->uid, s->sign_pk);
  snprintf(s->name, sizeof s->name, "%s", name);
  s->srv = S;
  ck_assert_int_eq(sc_deframer_init(&s->df, 0), 0);
  ck_assert_int_lt(NSIMS, MAXSIMS);
  SIMS[NSIMS++] = s;
  return s;
}

/* A new user on a reused sim: fresh name, signing key and uid (the DH key
 * is kept and signed again), for tests that cycle many logins through one
 * sim. */
static void sim_reidentify(sim *s, const char *name)
{
  uint8_t seed[32];
  snprintf(s->name, sizeof s->name, "%s", name);
  sc_random(seed, sizeof seed);
  crypto_sign_seed_keypair(s->sign_pk, s->sign_sk, seed);
  sc_uid_from_sign_pk(s->uid, s->sign_pk);
  ck_assert_int_eq(sc_sign_ctx(s->dh_sig, SC_CTX_DH, s->dh_pk, 32, s->sign_sk), 0);
}

/* A clone of s's identity (same keys, fresh connection state). */
static sim *sim_clone(const sim *o)
{
  sim *s = sim_new(o->name);
  memcpy(s->sign_pk, o->sign_pk, 32);
  memcpy(s->sign_sk, o->sign_sk, 64);
  memcpy(s->dh_sk, o->dh_sk, 32);
  memcpy(s->dh_pk, o->dh_pk, 32);
  memcpy(s->dh_sig, o->dh_sig, 64);
  memcpy(s->uid, o->uid, 20);
  memcpy(s->token, o->token, sizeof s->token);
  s->token_len = o->token_len;
  return s;
}

static int SLICE; /* feed one byte per call (A5) */

static void raw_send(sim *s, const uint8_t *b, size_t len)
{
  if (SLICE) {
    for (size_t i = 0; i < len; i++)
      ck_assert_int_eq(secchat_server_conn_recv(s->srv, s->id, b + i, 1, NOW), 1);
  } else {
    ck_assert_int_eq(secchat_server_conn_recv(s->srv, s->id, b, len, NOW), (secchat_ssize)len);
  }
  pump_events();
}

static void send_msg(sim *s, const uint8_t *msg, size_t len)
{
  uint8_t *b = malloc(len + 4);
  sc_frame_prefix(b, (uint32_t)len);
  memcpy(b + 4, msg, len);
  raw_send(s, b, len + 4);
  free(b);
}

/* Move the server's pending output for s into s (handshake message or
 * decrypted frame bodies). */
static void sim_drain(sim *s)
{
  if (s->closed && secchat_server_conn_pending(s->srv, s->id) == 0)
    return;
  secchat_iovec iov[64];
  int n = secchat_server_conn_output(s->srv, s->id, iov, 64);
  if (n < 0)
    return;
  size_t total = 0;
  for (int i = 0; i < n; i++) {
    const uint8_t *p = iov[i].base;
    size_t len = iov[i].len, off = 0;
    total += len;
    while (off < len) {
      const uint8_t *msg;
      size_t mlen;
      secchat_ssize k = sc_deframer_feed(&s->df, p + off, len - off, &msg, &mlen);
      ck_assert_int_gt(k, 0);
      off += (size_t)k;
      if (msg == NULL)
        continue;
      if (!s->hs_done) {
        ck_assert_uint_le(mlen, sizeof s->hsmsg);
        memcpy(s->hsmsg, msg, mlen);
        s->hsmsg_len = mlen;
        continue;
      }
      uint8_t *pt = malloc(mlen);
      size_t ptlen;
      ck_assert_int_eq(sc_noise_transport_decrypt(&s->t, msg, mlen, pt, mlen, &ptlen), 0);
      const uint8_t *body;
      size_t blen;
      sc_records recs;
      ck_assert_int_gt(sc_records_open(&recs, pt, ptlen), 0);
      ck_assert(ptlen % 256 == 0 || ptlen == SECCHAT_MAX_TRANSPORT_PLAINTEXT);
      s->nmsgs++;
      while (sc_records_next(&recs, &body, &blen)) {
        ck_assert_int_lt(s->nin, INBOX);
        s->inbox[s->nin] = malloc(blen);
        memcpy(s->inbox[s->nin], body, blen);
        s->inlen[s->nin++] = blen;
      }
      free(pt);
    }
  }
  ck_assert_int_eq(secchat_server_conn_consumed(s->srv, s->id, total), 0);
}

/* Next received frame (1) or none (0). */
static int sim_next(sim *s, sc_frame *f)
{
  sim_drain(s);
  if (s->rd >= s->nin)
    return 0;
  int i = s->rd++;
  ck_assert_int_eq(sc_frame_decode(f, s->inbox[i], s->inlen[i]), 0);
  return 1;
}

static void sim_expect(sim *s, int type, sc_frame *out)
{
  sc_frame f;
  ck_assert_msg(sim_next(s, &f) == 1, "expected frame %d, got none", type);
  ck_assert_msg((int)f.type == type, "expected frame %d, got %d", type, (int)f.type);
  if (out != NULL)
    *out = f;
}

/* Skip PRESENCE frames; return the next other frame. */
static int sim_next_nonpresence(sim *s, sc_frame *f)
{
  while (sim_next(s, f))
    if (f->type != SC_FRAME_PRESENCE)
      return 1;
  return 0;
}

/* The next frame other than PRESENCE is a DELIVER of exactly `text`. */
static void expect_deliver(sim *s, const char *text)
{
  sc_frame f;
  ck_assert_int_eq(sim_next_nonpresence(s, &f), 1);
  ck_assert_int_eq(f.type, SC_FRAME_DELIVER);
  ck_assert_uint_eq(f.u.deliver.blob.len, strlen(text));
  ck_assert_mem_eq(f.u.deliver.blob.p, text, strlen(text));
}

static void sim_send(sim *s, const sc_frame *f)
{
  static uint8_t body[SECCHAT_MAX_FRAME_BODY], msg[SECCHAT_MAX_WIRE_MESSAGE];
  secchat_ssize n = sc_frame_encode(f, body, sizeof body);
  ck_assert_int_gt(n, 0);
  secchat_ssize pl = sc_pad(msg, sizeof msg, body, (size_t)n);
  ck_assert_int_gt(pl, 0);
  size_t outlen;
  ck_assert_int_eq(sc_noise_transport_encrypt(&s->t, msg, (size_t)pl, msg, sizeof msg, &outlen), 0);
  send_msg(s, msg, outlen);
}

/* Send a plaintext as built by the test (records and padding) as one
 * transport message. */
static void sim_send_plain(sim *s, const uint8_t *pt, size_t len)
{
  static uint8_t msg[SECCHAT_MAX_WIRE_MESSAGE];
  size_t outlen;
  ck_assert_int_eq(sc_noise_transport_encrypt(&s->t, pt, len, msg, sizeof msg, &outlen), 0);
  send_msg(s, msg, outlen);
}

/* Send an arbitrary body (possibly outside the schema) as a transport
 * message. */
static void sim_send_body(sim *s, const uint8_t *body, size_t len)
{
  static uint8_t msg[SECCHAT_MAX_WIRE_MESSAGE];
  secchat_ssize pl = sc_pad(msg, sizeof msg, body, len);
  ck_assert_int_gt(pl, 0);
  size_t outlen;
  ck_assert_int_eq(sc_noise_transport_encrypt(&s->t, msg, (size_t)pl, msg, sizeof msg, &outlen), 0);
  send_msg(s, msg, outlen);
}

static void sim_open(sim *s, const char *src)
{
  ck_assert_int_eq(
      secchat_server_conn_open(s->srv, &s->id, (const uint8_t *)src, strlen(src), NOW), 0);
  pump_events();
}

/* Handshake with the given prologue and msg1 payload; returns 0 when it
 * completed on the client side. */
static int sim_handshake_ex(sim *s, const char *prologue, const uint8_t *p1, size_t p1len)
{
  ck_assert_int_eq(sc_noise_handshake_init(&s->hs, SC_NOISE_XX, 1, (const uint8_t *)prologue,
                                           strlen(prologue), s->dh_sk, NULL),
                   0);
  uint8_t msg[4096], payload[4096];
  size_t len, plen;
  ck_assert_int_eq(sc_noise_handshake_write(&s->hs, p1, p1len, msg, sizeof msg, &len), 0);
  send_msg(s, msg, len);
  s->hsmsg_len = 0;
  sim_drain(s);
  if (s->hsmsg_len == 0)
    return -1;
  int rc = sc_noise_handshake_read(&s->hs, s->hsmsg, s->hsmsg_len, payload, sizeof payload, &plen);
  if (rc != 0) {
    s->hs_failed = 1;
    return rc;
  }
  ck_assert_int_eq(sc_noise_handshake_remote_static(&s->hs, s->srv_static), 0);
  /* [minor, features, token key PEM, server name] */
  ck_assert_int_eq(sc_mp_validate(payload, plen, 1), 0);
  sc_mp_reader r;
  uint32_t cnt;
  const char *pem, *nm;
  size_t pemlen, nmlen;
  sc_mp_reader_init(&r, payload, plen);
  ck_assert_int_eq(sc_mp_read_array(&r, &cnt), 0);
  ck_assert_uint_eq(cnt, 4);
  ck_assert_int_eq(sc_mp_read_uint(&r, &s->minor), 0);
  ck_assert_int_eq(sc_mp_read_uint(&r, &s->features), 0);
  ck_assert_int_eq(sc_mp_read_str(&r, &pem, &pemlen, 1, sizeof s->pem - 1), 0);
  ck_assert_int_eq(sc_mp_read_str(&r, &nm, &nmlen, 1, sizeof s->srv_name - 1), 0);
  memcpy(s->pem, pem, pemlen);
  s->pem_len = pemlen;
  memcpy(s->srv_name, nm, nmlen);
  ck_assert_int_eq(sc_noise_handshake_write(&s->hs, NULL, 0, msg, sizeof msg, &len), 0);
  ck_assert_int_eq(sc_noise_handshake_split(&s->hs, &s->t, s->hh), 0);
  s->hs_done = 1;
  send_msg(s, msg, len);
  return 0;
}

static const uint8_t P1[] = {0x92, 0x00, 0x00}; /* [0, 0] */

static void sim_connect(sim *s, const char *src)
{
  sim_open(s, src);
  ck_assert_int_eq(sim_handshake_ex(s, SC_NOISE_PROLOGUE, P1, sizeof P1), 0);
  ck_assert(!s->closed);
}

static void sim_send_register(sim *s)
{
  uint8_t proof[64];
  ck_assert_int_eq(sc_token_sign_registration(proof, s->sign_sk, s->hh, s->name, strlen(s->name),
                                              s->sign_pk, s->dh_pk),
                   0);
  sc_frame f = {.type = SC_FRAME_REGISTER};
  f.u.reg.name.p = s->name;
  f.u.reg.name.len = strlen(s->name);
  f.u.reg.sig_pk = s->sign_pk;
  f.u.reg.dh_pk = s->dh_pk;
  f.u.reg.dh_sig = s->dh_sig;
  f.u.reg.proof = proof;
  sim_send(s, &f);
}

static void sim_register(sim *s)
{
  sim_send_register(s);
  sc_frame f;
  sim_expect(s, SC_FRAME_TOKEN, &f);
  ck_assert_uint_le(f.u.token.token.len, SECCHAT_MAX_TOKEN_BYTES);
  memcpy(s->token, f.u.token.token.p, f.u.token.token.len);
  s->token[f.u.token.token.len] = 0;
  s->token_len = f.u.token.token.len;
  /* The token verifies with the key the server announced in message 2. */
  secchat_token_verifier *v;
  ck_assert_int_eq(secchat_token_verifier_new(&v, s->pem, s->pem_len, ISSUER, 0), 0);
  secchat_token_claims cl;
  int reason = -1;
  ck_assert_int_eq(secchat_token_verify(v, s->token, s->token_len, (int64_t)(NOW / 1000), &cl,
                                        &reason),
                   0);
  ck_assert_mem_eq(cl.uid, s->uid, 20);
  ck_assert_str_eq(cl.name, s->name);
  ck_assert_mem_eq(cl.dh_pk, s->dh_pk, 32);
  secchat_token_verifier_free(v);
}

static void sim_send_auth(sim *s, const uint8_t *hh)
{
  uint8_t proof[64];
  ck_assert_int_eq(sc_token_sign_login(proof, s->sign_sk, hh), 0);
  sc_frame f = {.type = SC_FRAME_AUTH};
  f.u.auth.token.p = s->token;
  f.u.auth.token.len = s->token_len;
  f.u.auth.proof = proof;
  sim_send(s, &f);
}

static void sim_auth(sim *s)
{
  sim_send_auth(s, s->hh);
  sc_frame f;
  sim_expect(s, SC_FRAME_AUTH_OK, &f);
  ck_assert_mem_eq(f.u.auth_ok.uid, s->uid, 20);
}

static sim *login(const char *name, const char *src)
{
  sim *s = sim_new(name);
  sim_connect(s, src);
  sim_register(s);
  sim_auth(s);
  return s;
}

static void route_id(uint8_t id[32], int k)
{
  memset(id, 0, 32);
  id[0] = 0xaa;
  id[31] = (uint8_t)k;
}

static void sim_route_open(sim *s, int k)
{
  uint8_t id[32];
  route_id(id, k);
  sc_frame f = {.type = SC_FRAME_ROUTE_OPEN};
  f.u.route.route_id = id;
  sim_send(s, &f);
}

static void sim_group_send(sim *s, int k, uint64_t ref, const uint8_t *blob, size_t len)
{
  uint8_t id[32];
  route_id(id, k);
  sc_frame f = {.type = SC_FRAME_GROUP_SEND};
  f.u.group_send.ref = ref;
  f.u.group_send.route_id = id;
  f.u.group_send.blob.p = blob;
  f.u.group_send.blob.len = len;
  sim_send(s, &f);
}

static void sim_direct(sim *s, const uint8_t *to, uint64_t ref, const uint8_t *blob, size_t len)
{
  sc_frame f = {.type = SC_FRAME_DIRECT};
  f.u.direct.ref = ref;
  f.u.direct.to_uid = to;
  f.u.direct.blob.p = blob;
  f.u.direct.blob.len = len;
  sim_send(s, &f);
}

static void sim_ping(sim *s, uint64_t nonce)
{
  sc_frame f = {.type = SC_FRAME_PING};
  f.u.ping.nonce = nonce;
  sim_send(s, &f);
}

static void expect_error(sim *s, uint64_t code, uint64_t ref)
{
  sc_frame f;
  ck_assert_msg(sim_next_nonpresence(s, &f) == 1, "expected ERROR %d", (int)code);
  ck_assert_msg(f.type == SC_FRAME_ERROR, "expected ERROR, got %d", (int)f.type);
  ck_assert_uint_eq(f.u.error.code, code);
  ck_assert_uint_eq(f.u.error.ref, ref);
}

static void expect_bye(sim *s, uint64_t reason)
{
  sc_frame f;
  ck_assert_msg(sim_next_nonpresence(s, &f) == 1, "expected BYE");
  ck_assert_msg(f.type == SC_FRAME_BYE, "expected BYE, got %d", (int)f.type);
  ck_assert_uint_eq(f.u.bye.reason, reason);
}

static void advance(uint64_t ms)
{
  NOW += ms;
  for (int i = 0; i < NSRV; i++)
    secchat_server_on_timeout(SRV[i], NOW);
  pump_events();
}

/* The host's part after a CLOSE event: drain (the BYE), then report. */
static void host_close(sim *s)
{
  sim_drain(s);
  ck_assert_int_eq(secchat_server_conn_closed(s->srv, s->id, NOW), 0);
  pump_events();
}

static secchat_server_stats stats(void)
{
  secchat_server_stats st;
  secchat_server_get_stats(S, &st);
  return st;
}

/* ---- handshake and authentication ---------------------------------------------- */

START_TEST(test_register_auth)
{
  start();
  sim *a = sim_new("alice");
  sim_connect(a, "10.0.0.1");
  /* Version negotiation and the server's announced identity. */
  ck_assert_uint_eq(a->minor, 0);
  ck_assert_uint_eq(a->features, 0);
  ck_assert_str_eq(a->srv_name, ISSUER);
  char pem[SECCHAT_TOKEN_KEY_PEM_MAX];
  size_t pl;
  ck_assert_int_eq(secchat_server_key_public_pem(KEY, pem, sizeof pem, &pl), 0);
  ck_assert_uint_eq(pl, a->pem_len);
  ck_assert_mem_eq(pem, a->pem, pl);
  uint8_t spk[32];
  secchat_server_noise_public_key(S, spk);
  ck_assert_mem_eq(spk, a->srv_static, 32);
  /* The server fingerprint a client computes from message 2 equals the one
   * the operator prints from the keys; another Noise key changes it. */
  uint8_t fp_client[32], fp_server[32], fp_other[32], sk2[32], pk2[32];
  ck_assert_int_eq(secchat_server_fingerprint(a->srv_static, a->pem, a->pem_len, fp_client), 0);
  ck_assert_int_eq(secchat_server_fingerprint(spk, pem, pl, fp_server), 0);
  ck_assert_mem_eq(fp_client, fp_server, 32);
  ck_assert_int_eq(secchat_server_noise_keygen(sk2, pk2), 0);
  uint8_t pk2b[32];
  ck_assert_int_eq(secchat_server_noise_public(sk2, pk2b), 0);
  ck_assert_mem_eq(pk2, pk2b, 32);
  ck_assert_int_eq(secchat_server_fingerprint(pk2, pem, pl, fp_other), 0);
  ck_assert_int_ne(memcmp(fp_other, fp_server, 32), 0);
  char fps[SECCHAT_SERVER_FINGERPRINT_STRING_BYTES];
  ck_assert_int_eq(secchat_server_fingerprint_string(fp_server, fps, sizeof fps), 0);
  ck_assert_uint_eq(strlen(fps), 52);
  ck_assert_int_eq(secchat_server_fingerprint_string(fp_server, fps, 52),
                   SECCHAT_ERR_BUFFER_TOO_SMALL);
  ck_assert_int_eq(secchat_server_fingerprint(spk, "junk", 4, fp_other), SECCHAT_ERR_BAD_KEY);
  sim_register(a);
  sim_auth(a);
  secchat_server_stats st = stats();
  ck_assert_uint_eq(st.conns_open, 1);
  ck_assert_uint_eq(st.conns_authenticated, 1);
  ck_assert_uint_eq(st.registrations, 1);
  ck_assert_uint_eq(st.auth_ok, 1);
  ck_assert_uint_eq(st.handshakes_ok, 1);
  ck_assert_int_eq(log_count("auth_ok", 0), 1);
  ck_assert_int_eq(log_count("register", 0), 1);
  /* PING -> PONG with the nonce. */
  sim_ping(a, 77);
  sc_frame f;
  sim_expect(a, SC_FRAME_PONG, &f);
  ck_assert_uint_eq(f.u.ping.nonce, 77);
  /* A second AUTH after authentication is a protocol violation. */
  sim_send_auth(a, a->hh);
  expect_error(a, SC_WIRE_PROTOCOL, 0);
  expect_bye(a, SC_BYE_PROTOCOL_ERROR);
  ck_assert(a->closed);
  ck_assert_int_eq(a->close_reason, SC_BYE_PROTOCOL_ERROR);
  host_close(a);
  ck_assert_uint_eq(stats().conns_open, 0);
  ck_assert_int_eq(secchat_server_conn_recv(S, a->id, P1, 1, NOW), SECCHAT_ERR_NOT_FOUND);
}
END_TEST

START_TEST(test_version_negotiation)
{
  start();
  /* A client announcing a newer minor and unknown features gets ours. */
  sim *a = sim_new("alice");
  sim_open(a, "10.0.0.1");
  const uint8_t p1[] = {0x92, 0x05, 0xcc, 0xff}; /* [5, 255] */
  ck_assert_int_eq(sim_handshake_ex(a, SC_NOISE_PROLOGUE, p1, sizeof p1), 0);
  ck_assert_uint_eq(a->minor, 0);
  ck_assert_uint_eq(a->features, 0);
  sim_register(a);
  sim_auth(a);
  /* Malformed version payloads fail the handshake: none, map, non-canonical. */
  const uint8_t *bad[] = {(const uint8_t *)"", (const uint8_t *)"\x80",
                          (const uint8_t *)"\x92\xcc\x01\x00", (const uint8_t *)"\x91\x00"};
  const size_t badlen[] = {0, 1, 4, 2};
  for (int i = 0; i < 4; i++) {
    sim *b = sim_new("bob");
    sim_open(b, "10.0.0.2");
    ck_assert_int_eq(sim_handshake_ex(b, SC_NOISE_PROLOGUE, bad[i], badlen[i]), -1);
    ck_assert(b->closed);
    ck_assert_int_eq(b->close_flush, 0);
    host_close(b);
  }
  ck_assert_uint_eq(stats().handshakes_failed, 4);
}
END_TEST

START_TEST(test_wrong_prologue)
{
  start();
  /* Another major version computes another handshake hash: message 2 does
   * not authenticate at the client, and a made-up message 3 fails at the
   * server. */
  sim *a = sim_new("alice");
  sim_open(a, "10.0.0.1");
  ck_assert_int_ne(sim_handshake_ex(a, "secchat/2", P1, sizeof P1), 0);
  ck_assert(a->hs_failed);
  uint8_t junk[64];
  memset(junk, 0x41, sizeof junk);
  send_msg(a, junk, sizeof junk);
  ck_assert(a->closed);
  ck_assert_uint_eq(stats().handshakes_failed, 1);
  ck_assert_uint_eq(stats().handshakes_ok, 0);
}
END_TEST

START_TEST(test_replaced_login)
{
  start();
  sim *a1 = login("alice", "10.0.0.1");
  sim *b = login("bob", "10.0.0.2");
  sim_route_open(a1, 1);
  sim_route_open(b, 1);
  sim *a2 = sim_clone(a1);
  sim_connect(a2, "10.0.0.3");
  sim_auth(a2); /* the same token on a new connection */
  ck_assert(a1->closed);
  ck_assert_int_eq(a1->close_reason, SC_BYE_REPLACED);
  ck_assert_int_eq(a1->close_flush, 1);
  expect_bye(a1, SC_BYE_REPLACED);
  ck_assert(!a2->closed);
  ck_assert_uint_eq(stats().replaced, 1);
  /* Bob saw alice's old connection leave the route. */
  sc_frame f;
  int offline = 0;
  while (sim_next(b, &f))
    if (f.type == SC_FRAME_PRESENCE && !f.u.presence.online)
      offline++;
  ck_assert_int_eq(offline, 1);
  /* Directs to alice now reach the new connection. */
  sim_direct(b, a1->uid, 5, (const uint8_t *)"hi", 2);
  sim_expect(a2, SC_FRAME_DIRECT_DELIVER, &f);
  sim_expect(b, SC_FRAME_RELAYED, NULL);
  host_close(a1);
  ck_assert(!a2->closed);
  ck_assert_uint_eq(stats().conns_authenticated, 2);
}
END_TEST

START_TEST(test_b11_proof_replay)
{
  start();
  sim *a = sim_new("alice");
  sim_connect(a, "10.0.0.1");
  sim_register(a);
  uint8_t old_hh[32];
  memcpy(old_hh, a->hh, 32);
  /* A second connection presents a proof made for the first handshake. */
  sim *b = sim_clone(a);
  sim_connect(b, "10.0.0.2");
  sim_send_auth(b, old_hh);
  expect_error(b, SC_WIRE_AUTH_FAILED, 0);
  expect_bye(b, SC_BYE_PROTOCOL_ERROR);
  ck_assert(b->closed);
  ck_assert_uint_eq(stats().auth_failed_proof, 1);
  ck_assert_int_eq(log_count("auth_fail", SECCHAT_ERR_AUTH), 1);
  /* The stolen token on a connection with another static key (no channel
   * binding) fails too. */
  sim *e = sim_new("eve");
  memcpy(e->token, a->token, sizeof e->token);
  e->token_len = a->token_len;
  sim_connect(e, "10.0.0.3");
  sim_send_auth(e, e->hh);
  expect_error(e, SC_WIRE_AUTH_FAILED, 0);
  ck_assert(e->closed);
  ck_assert_uint_eq(stats().auth_failed_proof + stats().auth_failed_token, 2);
  /* A registration proof over another handshake hash is refused. */
  sim *r = sim_new("mallory");
  sim_connect(r, "10.0.0.4");
  memcpy(r->hh, old_hh, 32);
  sim_send_register(r);
  expect_error(r, SC_WIRE_AUTH_FAILED, 0);
  ck_assert(r->closed);
  /* The legitimate first connection still authenticates. */
  sim_auth(a);
}
END_TEST

START_TEST(test_not_authenticated)
{
  start();
  sim *a = sim_new("alice");
  sim_connect(a, "10.0.0.1");
  sim_route_open(a, 1);
  expect_error(a, SC_WIRE_NOT_AUTHENTICATED, 0);
  expect_bye(a, SC_BYE_PROTOCOL_ERROR);
  ck_assert(a->closed);
  /* PING is allowed before AUTH. */
  sim *b = sim_new("bob");
  sim_connect(b, "10.0.0.2");
  sim_ping(b, 1);
  sim_expect(b, SC_FRAME_PONG, NULL);
  /* A relay->client frame from a client is a violation. */
  sc_frame f = {.type = SC_FRAME_PONG};
  f.u.ping.nonce = 3;
  sim_send(b, &f);
  expect_error(b, SC_WIRE_PROTOCOL, 0);
  ck_assert(b->closed);
}
END_TEST


/* ---- routing and relay ------------------------------------------------------- */

START_TEST(test_relay_group)
{
  start();
  enum { N = 8 };
  sim *m[N];
  char nm[16];
  for (int i = 0; i < N; i++) {
    snprintf(nm, sizeof nm, "user%d", i);
    char src[32];
    snprintf(src, sizeof src, "10.0.1.%d", i);
    m[i] = login(nm, src);
    sim_route_open(m[i], 1);
  }
  sim *outsider = login("outsider", "10.0.2.1");
  sim_route_open(outsider, 2);
  /* Presence: member i saw the i earlier members when it opened, then the
   * N-1-i later ones arriving. */
  for (int i = 0; i < N; i++) {
    sc_frame f;
    int online = 0;
    while (sim_next(m[i], &f)) {
      ck_assert_int_eq(f.type, SC_FRAME_PRESENCE);
      ck_assert(f.u.presence.online);
      online++;
    }
    ck_assert_int_eq(online, N - 1);
  }
  uint8_t blob[200];
  for (size_t i = 0; i < sizeof blob; i++)
    blob[i] = (uint8_t)(i * 7);
  sim_group_send(m[3], 1, 42, blob, sizeof blob);
  uint64_t before = stats().deliveries;
  (void)before;
  for (int i = 0; i < N; i++) {
    sc_frame f;
    if (i == 3) {
      sim_expect(m[i], SC_FRAME_RELAYED, &f);
      ck_assert_uint_eq(f.u.relayed.ref, 42);
    } else {
      sim_expect(m[i], SC_FRAME_DELIVER, &f);
      uint8_t id[32];
      route_id(id, 1);
      ck_assert_mem_eq(f.u.deliver.route_id, id, 32);
      ck_assert_uint_eq(f.u.deliver.blob.len, sizeof blob);
      ck_assert_mem_eq(f.u.deliver.blob.p, blob, sizeof blob);
    }
    ck_assert_int_eq(sim_next(m[i], &f), 0); /* exactly one */
  }
  sc_frame f;
  ck_assert_int_eq(sim_next(outsider, &f), 0);
  ck_assert_uint_eq(stats().deliveries, N - 1);
  ck_assert_uint_eq(stats().relayed, 1);
  /* Only members may send to a route: dropped with
   * ERROR{unknown_recipient, ref}, not closed. */
  sim_group_send(outsider, 1, 9, blob, 10);
  expect_error(outsider, SC_WIRE_UNKNOWN_RECIPIENT, 9);
  ck_assert(!outsider->closed);
  for (int i = 0; i < N; i++)
    ck_assert_int_eq(sim_next(m[i], &f), 0);
  /* A member alone on its route gets RELAYED and nobody anything. */
  sim_group_send(outsider, 2, 10, blob, 10);
  sim_expect(outsider, SC_FRAME_RELAYED, NULL);
}
END_TEST

START_TEST(test_presence)
{
  start();
  sim *a = login("alice", "10.0.0.1");
  sim *b = login("bob", "10.0.0.2");
  sim *c = login("carol", "10.0.0.3");
  sim_route_open(a, 1);
  sim_route_open(b, 1);
  sc_frame f;
  sim_expect(a, SC_FRAME_PRESENCE, &f);
  ck_assert_mem_eq(f.u.presence.uid, b->uid, 20);
  ck_assert(f.u.presence.online);
  sim_expect(b, SC_FRAME_PRESENCE, &f);
  ck_assert_mem_eq(f.u.presence.uid, a->uid, 20);
  /* Opening twice is idempotent. */
  sim_route_open(b, 1);
  ck_assert_int_eq(sim_next(a, &f), 0);
  ck_assert_int_eq(sim_next(b, &f), 0);
  sim_route_open(c, 1);
  sim_expect(a, SC_FRAME_PRESENCE, &f);
  sim_expect(b, SC_FRAME_PRESENCE, &f);
  ck_assert_mem_eq(f.u.presence.uid, c->uid, 20);
  sim_expect(c, SC_FRAME_PRESENCE, NULL);
  sim_expect(c, SC_FRAME_PRESENCE, NULL);
  ck_assert_uint_eq(stats().routes, 1);
  /* ROUTE_CLOSE: offline to the others. */
  uint8_t id[32];
  route_id(id, 1);
  sc_frame rc = {.type = SC_FRAME_ROUTE_CLOSE};
  rc.u.route.route_id = id;
  sim_send(b, &rc);
  sim_expect(a, SC_FRAME_PRESENCE, &f);
  ck_assert_mem_eq(f.u.presence.uid, b->uid, 20);
  ck_assert(!f.u.presence.online);
  sim_expect(c, SC_FRAME_PRESENCE, &f);
  ck_assert(!f.u.presence.online);
  ck_assert_int_eq(sim_next(b, &f), 0);
  /* Disconnect (socket died, half a frame pending): offline too, nothing
   * partial relayed. */
  uint8_t half[3] = {0, 0, 1};
  raw_send(c, half, sizeof half);
  ck_assert_int_eq(secchat_server_conn_closed(S, c->id, NOW), 0);
  pump_events();
  sim_expect(a, SC_FRAME_PRESENCE, &f);
  ck_assert_mem_eq(f.u.presence.uid, c->uid, 20);
  ck_assert(!f.u.presence.online);
  ck_assert_int_eq(sim_next(a, &f), 0);
  ck_assert_int_eq(log_count("disconnect", 0), 1);
  /* Last member leaves: the route is gone. */
  ck_assert_int_eq(secchat_server_conn_closed(S, a->id, NOW), 0);
  ck_assert_uint_eq(stats().routes, 0);
  a->closed = c->closed = 1;
}
END_TEST

START_TEST(test_direct)
{
  start();
  sim *a = login("alice", "10.0.0.1");
  sim *b = login("bob", "10.0.0.2");
  const uint8_t blob[] = "pairwise handshake bytes";
  sim_direct(a, b->uid, 11, blob, sizeof blob);
  sc_frame f;
  sim_expect(b, SC_FRAME_DIRECT_DELIVER, &f);
  ck_assert_mem_eq(f.u.direct_deliver.from_uid, a->uid, 20);
  ck_assert_uint_eq(f.u.direct_deliver.from_token.len, a->token_len);
  ck_assert_mem_eq(f.u.direct_deliver.from_token.p, a->token, a->token_len);
  ck_assert_uint_eq(f.u.direct_deliver.blob.len, sizeof blob);
  ck_assert_mem_eq(f.u.direct_deliver.blob.p, blob, sizeof blob);
  sim_expect(a, SC_FRAME_RELAYED, &f);
  ck_assert_uint_eq(f.u.relayed.ref, 11);
  /* Offline recipient. */
  uint8_t nobody[20];
  memset(nobody, 0x5a, sizeof nobody);
  sim_direct(a, nobody, 12, blob, sizeof blob);
  expect_error(a, SC_WIRE_UNKNOWN_RECIPIENT, 12);
  /* After bob leaves, he is offline too. */
  host_close(b);
  sim_direct(a, b->uid, 13, blob, sizeof blob);
  expect_error(a, SC_WIRE_UNKNOWN_RECIPIENT, 13);
  ck_assert(!a->closed);
  ck_assert_uint_eq(stats().directs, 1);
}
END_TEST

START_TEST(test_lookup)
{
  start();
  sim *a = login("alice", "10.0.0.1");
  sim *b = login("bob", "10.0.0.2");
  sim *b2 = login("bob", "10.0.0.3"); /* names are not unique */
  sc_frame q = {.type = SC_FRAME_LOOKUP_NAME}, f;
  q.u.lookup_name.name.p = "bob";
  q.u.lookup_name.name.len = 3;
  sim_send(a, &q);
  sim_expect(a, SC_FRAME_LOOKUP_RESULT, &f);
  ck_assert_uint_eq(f.u.lookup_result.count, 2);
  int seen_b = 0, seen_b2 = 0;
  for (size_t i = 0; i < f.u.lookup_result.count; i++) {
    const sc_str *t = &f.u.lookup_result.tokens[i];
    seen_b += t->len == b->token_len && memcmp(t->p, b->token, t->len) == 0;
    seen_b2 += t->len == b2->token_len && memcmp(t->p, b2->token, t->len) == 0;
  }
  ck_assert_int_eq(seen_b, 1);
  ck_assert_int_eq(seen_b2, 1);
  q.u.lookup_name.name.p = "zed";
  sim_send(a, &q);
  sim_expect(a, SC_FRAME_LOOKUP_RESULT, &f);
  ck_assert_uint_eq(f.u.lookup_result.count, 0);
  sc_frame u = {.type = SC_FRAME_LOOKUP_UID};
  u.u.lookup_uid.uid = b2->uid;
  sim_send(a, &u);
  sim_expect(a, SC_FRAME_LOOKUP_RESULT, &f);
  ck_assert_uint_eq(f.u.lookup_result.count, 1);
  ck_assert_uint_eq(f.u.lookup_result.tokens[0].len, b2->token_len);
  ck_assert_mem_eq(f.u.lookup_result.tokens[0].p, b2->token, b2->token_len);
  host_close(b2);
  sim_send(a, &u);
  sim_expect(a, SC_FRAME_LOOKUP_RESULT, &f);
  ck_assert_uint_eq(f.u.lookup_result.count, 0);
}
END_TEST

/* ---- limits --------------------------------------------------------------------- */

START_TEST(test_limit_routes_per_conn)
{
  CFG.max_routes_per_conn = 2;
  start();
  sim *a = login("alice", "10.0.0.1");
  sim_route_open(a, 1);
  sim_route_open(a, 2);
  sim_route_open(a, 3);
  expect_error(a, SC_WIRE_TOO_MANY_ROUTES, 0);
  ck_assert(!a->closed);
  ck_assert_uint_eq(stats().limit_routes, 1);
  ck_assert_uint_eq(stats().routes, 2);
  /* Closing one makes room. */
  uint8_t id[32];
  route_id(id, 1);
  sc_frame rc = {.type = SC_FRAME_ROUTE_CLOSE};
  rc.u.route.route_id = id;
  sim_send(a, &rc);
  sim_route_open(a, 3);
  sc_frame f;
  ck_assert_int_eq(sim_next(a, &f), 0);
  ck_assert_uint_eq(stats().routes, 2);
}
END_TEST

START_TEST(test_limit_conns_per_route)
{
  CFG.max_conns_per_route = 2;
  start();
  sim *a = login("alice", "10.0.0.1");
  sim *b = login("bob", "10.0.0.2");
  sim *c = login("carol", "10.0.0.3");
  sim_route_open(a, 1);
  sim_route_open(b, 1);
  sim_route_open(c, 1);
  expect_error(c, SC_WIRE_ROUTE_FULL, 0);
  ck_assert(!c->closed);
  ck_assert_uint_eq(stats().limit_route_full, 1);
  sim_group_send(a, 1, 1, (const uint8_t *)"x", 1);
  sim_expect(b, SC_FRAME_PRESENCE, NULL);
  sim_expect(b, SC_FRAME_DELIVER, NULL);
  sc_frame f;
  ck_assert_int_eq(sim_next(c, &f), 0);
}
END_TEST

START_TEST(test_limit_group_rate)
{
  CFG.group_send_rate = 1;
  CFG.group_send_burst = 3;
  start();
  sim *a = login("alice", "10.0.0.1");
  sim *b = login("bob", "10.0.0.2");
  sim_route_open(a, 1);
  sim_route_open(b, 1);
  for (uint64_t r = 1; r <= 4; r++)
    sim_group_send(a, 1, r, (const uint8_t *)"m", 1);
  sc_frame f;
  sim_expect(a, SC_FRAME_PRESENCE, NULL);
  for (uint64_t r = 1; r <= 3; r++) {
    sim_expect(a, SC_FRAME_RELAYED, &f);
    ck_assert_uint_eq(f.u.relayed.ref, r);
  }
  expect_error(a, SC_WIRE_RATE_LIMITED, 4);
  int delivered = 0;
  while (sim_next(b, &f))
    delivered += f.type == SC_FRAME_DELIVER;
  ck_assert_int_eq(delivered, 3);
  ck_assert(!a->closed);
  ck_assert_uint_eq(stats().limit_rate, 1);
  /* One token per second comes back. */
  advance(1000);
  sim_group_send(a, 1, 5, (const uint8_t *)"m", 1);
  sim_expect(a, SC_FRAME_RELAYED, NULL);
  sim_group_send(a, 1, 6, (const uint8_t *)"m", 1);
  expect_error(a, SC_WIRE_RATE_LIMITED, 6);
  /* b is not affected by a's limit. */
  sim_group_send(b, 1, 7, (const uint8_t *)"m", 1);
  sim_next(b, &f);
  ck_assert_int_eq(f.type, SC_FRAME_DELIVER);
  sim_expect(b, SC_FRAME_RELAYED, NULL);
}
END_TEST

START_TEST(test_limit_direct_rate)
{
  CFG.direct_rate = 1;
  CFG.direct_burst = 2;
  start();
  sim *a = login("alice", "10.0.0.1");
  sim *b = login("bob", "10.0.0.2");
  for (uint64_t r = 1; r <= 3; r++)
    sim_direct(a, b->uid, r, (const uint8_t *)"k", 1);
  sim_expect(a, SC_FRAME_RELAYED, NULL);
  sim_expect(a, SC_FRAME_RELAYED, NULL);
  expect_error(a, SC_WIRE_RATE_LIMITED, 3);
  sim_expect(b, SC_FRAME_DIRECT_DELIVER, NULL);
  sim_expect(b, SC_FRAME_DIRECT_DELIVER, NULL);
  sc_frame f;
  ck_assert_int_eq(sim_next(b, &f), 0);
}
END_TEST

START_TEST(test_limit_fanout_budget)
{
  CFG.fanout_bytes_rate = 1000;
  CFG.fanout_bytes_burst = 1000;
  start();
  sim *a = login("alice", "10.0.0.1");
  sim *b = login("bob", "10.0.0.2");
  sim *c = login("carol", "10.0.0.3");
  sim_route_open(a, 1);
  sim_route_open(b, 1);
  sim_route_open(c, 1);
  uint8_t blob[400] = {0};
  sim_group_send(a, 1, 1, blob, sizeof blob); /* 400 x 2 = 800 */
  sim_group_send(a, 1, 2, blob, sizeof blob); /* 800 more: over budget */
  sc_frame f;
  ck_assert_int_eq(sim_next_nonpresence(a, &f), 1);
  ck_assert_int_eq(f.type, SC_FRAME_RELAYED);
  expect_error(a, SC_WIRE_RATE_LIMITED, 2);
  ck_assert_uint_eq(stats().limit_fanout, 1);
  ck_assert_uint_eq(stats().deliveries, 2);
  advance(1000);
  sim_group_send(a, 1, 3, blob, sizeof blob);
  sim_expect(a, SC_FRAME_RELAYED, NULL);
  ck_assert_uint_eq(stats().deliveries, 4);
  /* DIRECT spends the same budget (blob bytes x 1): 200 left, 400 asked. */
  sim_direct(a, b->uid, 4, blob, sizeof blob);
  expect_error(a, SC_WIRE_RATE_LIMITED, 4);
  ck_assert_uint_eq(stats().limit_fanout, 2);
  int logged = 0;
  for (int i = 0; i < NLOGS; i++)
    if (strcmp(LOGS[i].event, "limit") == 0 && LOGS[i].detail == SC_FRAME_DIRECT &&
        LOGS[i].code == SECCHAT_ERR_RATE_LIMITED && LOGS[i].value == sizeof blob)
      logged++;
  ck_assert_int_eq(logged, 1);
}
END_TEST

START_TEST(test_limit_output_queue)
{
  CFG.max_output_bytes = 2 * (SECCHAT_MAX_WIRE_MESSAGE + 4);
  start();
  sim *a = login("alice", "10.0.0.1");
  sim *slow = login("slow", "10.0.0.2");
  sim *fast = login("fast", "10.0.0.3");
  sim_route_open(a, 1);
  sim_route_open(slow, 1);
  sim_route_open(fast, 1);
  sim_drain(slow); /* then it stops reading */
  static uint8_t blob[60000];
  for (uint64_t r = 1; r <= 3; r++) {
    sim_group_send(a, 1, r, blob, sizeof blob);
    sim_drain(fast);
    sim_drain(a);
  }
  ck_assert(slow->closed);
  ck_assert_int_eq(slow->close_reason, SC_BYE_SLOW_CONSUMER);
  ck_assert_int_eq(slow->close_flush, 0);
  ck_assert_uint_eq(secchat_server_conn_pending(S, slow->id), 0);
  ck_assert_uint_eq(stats().slow_consumers, 1);
  ck_assert(!a->closed && !fast->closed);
  sc_frame f;
  int relayed = 0, delivered = 0, offline = 0;
  while (sim_next(a, &f)) {
    relayed += f.type == SC_FRAME_RELAYED;
    offline += f.type == SC_FRAME_PRESENCE && !f.u.presence.online;
  }
  while (sim_next(fast, &f))
    delivered += f.type == SC_FRAME_DELIVER;
  ck_assert_int_eq(relayed, 3);
  ck_assert_int_eq(delivered, 3);
  ck_assert_int_eq(offline, 1);
  ck_assert_int_eq(secchat_server_conn_closed(S, slow->id, NOW), 0);
  /* Nobody's queue ever held more than the cap. */
  ck_assert_uint_le(secchat_server_conn_pending(S, a->id), CFG.max_output_bytes);
}
END_TEST

START_TEST(test_limit_register_per_source)
{
  CFG.register_per_min = 2;
  CFG.register_burst = 2;
  start();
  sim *r[4];
  for (int i = 0; i < 3; i++) {
    r[i] = sim_new("reg");
    sim_connect(r[i], "192.0.2.9");
    sim_send_register(r[i]);
  }
  sim_expect(r[0], SC_FRAME_TOKEN, NULL);
  sim_expect(r[1], SC_FRAME_TOKEN, NULL);
  expect_error(r[2], SC_WIRE_RATE_LIMITED, 0);
  ck_assert(!r[2]->closed); /* dropped, not closed */
  ck_assert_uint_eq(stats().limit_register, 1);
  /* Another source is not affected. */
  r[3] = sim_new("other");
  sim_connect(r[3], "192.0.2.10");
  sim_register(r[3]);
  /* One registration per 30 s comes back (the earlier connections have
   * hit their handshake deadline by then). */
  advance(30000);
  ck_assert(r[2]->closed);
  sim *late = sim_new("late");
  sim_connect(late, "192.0.2.9");
  sim_register(late);
  sim *later = sim_new("later");
  sim_connect(later, "192.0.2.9");
  sim_send_register(later);
  expect_error(later, SC_WIRE_RATE_LIMITED, 0);
  ck_assert_uint_eq(stats().registrations, 4);
  ck_assert_uint_eq(stats().limit_register, 2);
}
END_TEST

/* A host with several workers shares one registration budget through
 * register_admit: the callback decides, once per REGISTER, with the
 * connection's id and the server's time; the server's own buckets are
 * unused (here they would refuse the second registration per server). */
typedef struct admit_ctx {
  int budget, calls;
  uint64_t conns[8];
  uint64_t now[8];
} admit_ctx;

static int admit_cb(void *ctx, uint64_t conn, uint64_t now_ms)
{
  admit_ctx *a = ctx;
  ck_assert_int_lt(a->calls, 8);
  a->conns[a->calls] = conn;
  a->now[a->calls++] = now_ms;
  if (a->budget == 0)
    return 0;
  a->budget--;
  return 1;
}

START_TEST(test_limit_register_shared_admission)
{
  admit_ctx ac = {.budget = 3};
  CFG.cluster = 1;
  CFG.register_per_min = 1; /* the server's own budget: 1 per server */
  CFG.register_burst = 1;
  CFG.register_admit = admit_cb;
  CFG.register_admit_ctx = &ac;
  CFG.worker_id = 0;
  make_server();
  secchat_server *w0 = S;
  CFG.worker_id = 1;
  make_server();
  secchat_server *w1 = S;
  sim *r[4];
  for (int i = 0; i < 4; i++) {
    S = i % 2 ? w1 : w0; /* spread over the workers, one source */
    r[i] = sim_new("reg");
    sim_connect(r[i], "192.0.2.9");
    NOW += 7;
    sim_send_register(r[i]);
  }
  for (int i = 0; i < 3; i++)
    sim_expect(r[i], SC_FRAME_TOKEN, NULL);
  expect_error(r[3], SC_WIRE_RATE_LIMITED, 0);
  ck_assert(!r[3]->closed);
  ck_assert_int_eq(ac.calls, 4);
  for (int i = 0; i < 4; i++) {
    ck_assert_uint_eq(ac.conns[i], r[i]->id);
    ck_assert_uint_eq(ac.now[i], T0 + 7u * (uint64_t)(i + 1));
  }
  secchat_server_stats st0, st1;
  secchat_server_get_stats(w0, &st0);
  secchat_server_get_stats(w1, &st1);
  ck_assert_uint_eq(st0.registrations + st1.registrations, 3);
  ck_assert_uint_eq(st0.limit_register, 0);
  ck_assert_uint_eq(st1.limit_register, 1);
  /* A second REGISTER on a registered connection is a protocol error,
   * not a registration: the admission is not consulted. */
  sim_send_register(r[0]);
  ck_assert_int_eq(ac.calls, 4);
}
END_TEST

START_TEST(test_limit_control_rate)
{
  CFG.control_rate = 1;
  CFG.control_burst = 2;
  start();
  sim *a = login("alice", "10.0.0.1");
  sim_ping(a, 1);
  sim_ping(a, 2);
  sim_ping(a, 3);
  sim_expect(a, SC_FRAME_PONG, NULL);
  sim_expect(a, SC_FRAME_PONG, NULL);
  expect_error(a, SC_WIRE_RATE_LIMITED, 0);
  ck_assert(!a->closed);
}
END_TEST

/* ---- deadlines ------------------------------------------------------------------- */

START_TEST(test_handshake_timeout)
{
  start();
  sim *a = sim_new("alice");
  sim_open(a, "10.0.0.1");
  ck_assert_uint_eq(secchat_server_next_timeout(S), NOW + 10000);
  advance(9999);
  ck_assert(!a->closed);
  advance(1);
  ck_assert(a->closed);
  ck_assert_int_eq(a->close_flush, 0); /* nothing to say before a transport */
  ck_assert_uint_eq(stats().timeouts_handshake, 1);
  host_close(a);
  /* Transport up but no AUTH: BYE{auth_timeout} at 10 s from connect. */
  sim *b = sim_new("bob");
  sim_connect(b, "10.0.0.2");
  sim_register(b); /* registering does not stop the clock */
  advance(9999);
  ck_assert(!b->closed);
  advance(1);
  ck_assert(b->closed);
  ck_assert_int_eq(b->close_flush, 1);
  expect_bye(b, SC_BYE_AUTH_TIMEOUT);
  ck_assert_uint_eq(secchat_server_next_timeout(S), UINT64_MAX);
}
END_TEST

START_TEST(test_slowloris)
{
  start();
  sim *a = login("alice", "10.0.0.1");
  sim *b = login("bob", "10.0.0.2");
  sim_route_open(a, 1);
  sim_route_open(b, 1);
  /* a starts a 300-byte frame and trickles one byte every 5 s. */
  uint8_t pre[4];
  sc_frame_prefix(pre, 300);
  raw_send(a, pre, 4);
  uint64_t start_ms = NOW;
  uint8_t byte = 0;
  for (int i = 0; i < 5; i++) {
    advance(5000);
    raw_send(a, &byte, 1);
    /* a legitimate client is served meanwhile */
    sim_ping(b, (uint64_t)i);
    sc_frame f;
    ck_assert_int_eq(sim_next_nonpresence(b, &f), 1);
    ck_assert_int_eq(f.type, SC_FRAME_PONG);
  }
  advance(start_ms + 29999 - NOW);
  ck_assert(!a->closed);
  advance(1);
  ck_assert(a->closed);
  ck_assert_int_eq(a->close_flush, 0);
  ck_assert_uint_eq(stats().timeouts_frame, 1);
  host_close(a);
  ck_assert(!b->closed);
  /* A3: a lone partial prefix of 0xFF bytes, then silence, during the
   * handshake: closed by the handshake deadline, nothing allocated. */
  sim *c = sim_new("carol");
  sim_open(c, "10.0.0.3");
  const uint8_t ff[3] = {0xff, 0xff, 0xff};
  uint64_t mem0 = stats().mem_bytes;
  raw_send(c, ff, 3);
  ck_assert_uint_eq(stats().mem_bytes, mem0);
  advance(10000);
  ck_assert(c->closed);
}
END_TEST

START_TEST(test_idle_ping)
{
  start();
  sim *a = login("alice", "10.0.0.1");
  advance(299000);
  ck_assert(!a->closed);
  sim_ping(a, 1);
  sim_expect(a, SC_FRAME_PONG, NULL);
  uint64_t t = NOW;
  /* The idle deadline moved later: re-filed lazily, so the heap may still
   * hold the old (earlier) one; never a later one. */
  ck_assert_uint_le(secchat_server_next_timeout(S), t + 300000);
  advance(299999); /* passes the old deadline: nothing fires, re-filed */
  ck_assert(!a->closed);
  ck_assert_uint_eq(stats().timeouts_idle, 0);
  ck_assert_uint_eq(secchat_server_next_timeout(S), t + 300000);
  advance(t + 300000 - NOW);
  ck_assert(a->closed);
  expect_bye(a, SC_BYE_IDLE);
  ck_assert_uint_eq(stats().timeouts_idle, 1);
}
END_TEST

static void sim_renew(sim *s)
{
  uint8_t proof[64];
  ck_assert_int_eq(sc_token_sign_renew(proof, s->sign_sk, s->hh), 0);
  sc_frame f = {.type = SC_FRAME_RENEW};
  f.u.renew.proof = proof;
  sim_send(s, &f);
}

START_TEST(test_b13_token_expiry)
{
  CFG.token_ttl_s = 600;
  CFG.idle_timeout_ms = 3600000;
  start();
  sim *a = login("alice", "10.0.0.1");
  sim *b = login("bob", "10.0.0.2");
  sim_route_open(a, 1);
  sim_route_open(b, 1);
  sim_drain(a);
  sim_drain(b);
  a->rd = a->nin;
  b->rd = b->nin;
  /* b logged in a moment later: same second, same expiry. Move b's expiry
   * away by renewing b early. */
  advance(300000);
  sim_renew(b);
  sim_expect(b, SC_FRAME_TOKEN, NULL);
  advance(300000 - 1);
  sc_frame f;
  ck_assert_int_eq(sim_next(a, &f), 0);
  advance(1);
  expect_error(a, SC_WIRE_TOKEN_EXPIRED, 0);
  ck_assert(!a->closed);
  ck_assert_int_eq(log_count("token_expired", 0), 1);
  /* During the grace period a's sends are refused; it still receives. */
  sim_group_send(a, 1, 21, (const uint8_t *)"late", 4);
  expect_error(a, SC_WIRE_TOKEN_EXPIRED, 21);
  ck_assert_int_eq(sim_next(b, &f), 0);
  sim_direct(a, b->uid, 22, (const uint8_t *)"late", 4);
  expect_error(a, SC_WIRE_TOKEN_EXPIRED, 22);
  ck_assert_int_eq(sim_next(b, &f), 0);
  sim_group_send(b, 1, 23, (const uint8_t *)"to a", 4);
  sim_expect(a, SC_FRAME_DELIVER, NULL);
  advance(59999);
  ck_assert(!a->closed);
  advance(1);
  ck_assert(a->closed);
  expect_bye(a, SC_BYE_TOKEN_EXPIRED);
  ck_assert_uint_eq(stats().token_expired_closed, 1);
  /* Nothing is relayed for it after the grace period. */
  ck_assert_int_eq(secchat_server_conn_recv(S, a->id, (const uint8_t *)"x", 1, NOW), 1);
  host_close(a);
  sim_expect(b, SC_FRAME_RELAYED, NULL);
  sim_expect(b, SC_FRAME_PRESENCE, &f);
  ck_assert(!f.u.presence.online);
}
END_TEST

START_TEST(test_b13_renew_in_grace)
{
  CFG.token_ttl_s = 600;
  CFG.idle_timeout_ms = 3600000;
  start();
  sim *a = login("alice", "10.0.0.1");
  sim *b = login("bob", "10.0.0.2");
  sim_route_open(a, 1);
  sim_route_open(b, 1);
  advance(300000);
  sim_renew(b); /* b stays valid throughout */
  sim_expect(b, SC_FRAME_PRESENCE, NULL);
  sim_expect(b, SC_FRAME_TOKEN, NULL);
  advance(300000);
  sc_frame f;
  expect_error(a, SC_WIRE_TOKEN_EXPIRED, 0);
  advance(30000);
  sim_renew(a);
  sim_expect(a, SC_FRAME_TOKEN, &f);
  /* The new token verifies and lasts another TTL from now. */
  secchat_token_verifier *v;
  ck_assert_int_eq(secchat_token_verifier_new(&v, a->pem, a->pem_len, ISSUER, 0), 0);
  secchat_token_claims cl;
  int reason;
  ck_assert_int_eq(secchat_token_verify(v, f.u.token.token.p, f.u.token.token.len,
                                        (int64_t)(NOW / 1000), &cl, &reason),
                   0);
  ck_assert_int_eq(cl.exp, (int64_t)(NOW / 1000) + 600);
  ck_assert_mem_eq(cl.uid, a->uid, 20);
  secchat_token_verifier_free(v);
  ck_assert_uint_eq(stats().renewals, 2);
  advance(60000);
  ck_assert(!a->closed);
  sim_group_send(a, 1, 5, (const uint8_t *)"ok", 2);
  sim_expect(a, SC_FRAME_RELAYED, NULL);
  expect_deliver(b, "ok");
  /* A renewal proof over a foreign handshake hash is refused and closes. */
  memset(a->hh, 0, 32);
  sim_renew(a);
  expect_error(a, SC_WIRE_AUTH_FAILED, 0);
  ck_assert(a->closed);
}
END_TEST

/* ---- framing attacks (table A) via the wire ---------------------------------------- */

START_TEST(test_a1_a2_a3)
{
  start();
  sim *a = login("alice", "10.0.0.1");
  sim *b = login("bob", "10.0.0.2");
  sim *c = login("carol", "10.0.0.3");
  /* A1: length prefix 0. */
  const uint8_t zero[4] = {0, 0, 0, 0};
  raw_send(a, zero, 4);
  expect_error(a, SC_WIRE_PROTOCOL, 0);
  expect_bye(a, SC_BYE_PROTOCOL_ERROR);
  ck_assert(a->closed);
  /* A2: max + 1, rejected before any allocation. */
  uint64_t mem0 = stats().mem_bytes;
  uint8_t big[4];
  sc_frame_prefix(big, SECCHAT_MAX_WIRE_MESSAGE + 1);
  raw_send(b, big, 4);
  ck_assert_uint_lt(stats().mem_bytes - mem0, 8192); /* the ERROR + BYE queue chunk */
  expect_error(b, SC_WIRE_FRAME_TOO_LARGE, 0);
  ck_assert(b->closed);
  /* A3: 0xFFFFFFFF is refused at once too. */
  const uint8_t ff[4] = {0xff, 0xff, 0xff, 0xff};
  raw_send(c, ff, 4);
  expect_error(c, SC_WIRE_FRAME_TOO_LARGE, 0);
  ck_assert(c->closed);
  /* ... and during the handshake (no transport: plain close). */
  sim *d = sim_new("dave");
  sim_open(d, "10.0.0.4");
  raw_send(d, ff, 4);
  ck_assert(d->closed);
  ck_assert_int_eq(d->close_flush, 0);
  ck_assert_uint_eq(stats().protocol_errors, 3);
}
END_TEST

START_TEST(test_garbage_after_auth)
{
  start();
  sim *a = login("alice", "10.0.0.1");
  sim *b = login("bob", "10.0.0.2");
  sim *c = login("carol", "10.0.0.3");
  sim_route_open(a, 1);
  sim_route_open(b, 1);
  sim_route_open(c, 1);
  /* Bytes that are not a transport message: decrypt fails, close. */
  uint8_t junk[100];
  sc_random(junk, sizeof junk);
  send_msg(a, junk, sizeof junk);
  ck_assert(a->closed);
  ck_assert_int_eq(a->close_flush, 0);
  /* A valid transport message whose body is not a frame: ERROR, close. */
  uint8_t pt[256] = {0, 3, 0xc1, 0xc1, 0xc1}, msg[512];
  size_t outlen;
  ck_assert_int_eq(sc_noise_transport_encrypt(&b->t, pt, sizeof pt, msg, sizeof msg, &outlen), 0);
  send_msg(b, msg, outlen);
  expect_error(b, SC_WIRE_PROTOCOL, 0);
  ck_assert(b->closed);
  /* Bad padding. */
  sim *d = login("dave", "10.0.0.4");
  uint8_t pt2[256] = {0, 1, 0xc0, 1};
  ck_assert_int_eq(sc_noise_transport_encrypt(&d->t, pt2, sizeof pt2, msg, sizeof msg, &outlen),
                   0);
  send_msg(d, msg, outlen);
  expect_error(d, SC_WIRE_PROTOCOL, 0);
  ck_assert(d->closed);
  /* carol is unaffected and alone on the route now. */
  ck_assert(!c->closed);
  sim_group_send(c, 1, 1, (const uint8_t *)"still here", 10);
  sc_frame f;
  ck_assert_int_eq(sim_next_nonpresence(c, &f), 1);
  ck_assert_int_eq(f.type, SC_FRAME_RELAYED);
  ck_assert_uint_eq(stats().conns_authenticated, 1);
}
END_TEST

/* alice and bob logged in, both on route 1, their PRESENCE frames read. */
static void alice_and_bob_on_route(sim **a, sim **b)
{
  sc_frame f;
  *a = login("alice", "10.0.0.1");
  *b = login("bob", "10.0.0.2");
  sim_route_open(*a, 1);
  sim_route_open(*b, 1);
  while (sim_next(*a, &f) || sim_next(*b, &f))
    ;
}

/* Frames queued for a connection between two drains travel packed, several
 * records in one transport message, in order; the pending count given
 * before the drain is exactly what the drain hands out. */
START_TEST(test_packing_out)
{
  start();
  sim *a, *b;
  alice_and_bob_on_route(&a, &b);
  sc_frame f;
  enum { N = 50 };
  uint8_t blob[200];
  int before_a = a->nmsgs, before_b = b->nmsgs;
  for (int i = 0; i < N; i++) {
    memset(blob, i + 1, sizeof blob);
    sim_group_send(a, 1, (uint64_t)i + 1, blob, sizeof blob);
  }
  /* Nothing sealed yet: pending counts the open message as it will be. */
  size_t pending = secchat_server_conn_pending(S, b->id);
  secchat_iovec iov[64];
  int n = secchat_server_conn_output(S, b->id, iov, 64);
  ck_assert_int_gt(n, 0);
  size_t described = 0;
  for (int i = 0; i < n; i++)
    described += iov[i].len;
  ck_assert_uint_eq(described, pending);
  for (int i = 0; i < N; i++) {
    sim_expect(b, SC_FRAME_DELIVER, &f);
    ck_assert_uint_eq(f.u.deliver.blob.len, sizeof blob);
    ck_assert_uint_eq(f.u.deliver.blob.p[0], (uint8_t)(i + 1));
    sim_expect(a, SC_FRAME_RELAYED, &f);
    ck_assert_uint_eq(f.u.relayed.ref, (uint64_t)i + 1);
  }
  ck_assert_int_eq(sim_next(b, &f), 0);
  /* 50 frames in a handful of messages (bounded by the queue's chunks),
   * not 50. */
  ck_assert_int_ge(b->nmsgs - before_b, 1);
  ck_assert_int_le(b->nmsgs - before_b, 4);
  ck_assert_int_le(a->nmsgs - before_a, 4);
  ck_assert_uint_eq(stats().deliveries, N);
  /* After a drain the next frame starts a new message (no reopening of a
   * sealed one). */
  sim_ping(b, 77);
  sim_expect(b, SC_FRAME_PONG, &f);
  ck_assert_uint_eq(f.u.ping.nonce, 77);
  int m = b->nmsgs;
  sim_ping(b, 78);
  sim_expect(b, SC_FRAME_PONG, &f);
  ck_assert_int_eq(b->nmsgs, m + 1);
}
END_TEST

/* Build a plaintext of records for the given PING nonces (0 = a record
 * that is not a frame), padded as the protocol requires. */
static size_t pings_plaintext(uint8_t *pt, size_t cap, const uint64_t *nonces, int n)
{
  size_t used = 0;
  for (int i = 0; i < n; i++) {
    uint8_t body[16];
    secchat_ssize bl;
    if (nonces[i] == 0) {
      body[0] = 0xc1; /* never valid msgpack */
      bl = 1;
    } else {
      sc_frame f = {.type = SC_FRAME_PING};
      f.u.ping.nonce = nonces[i];
      bl = sc_frame_encode(&f, body, sizeof body);
      ck_assert_int_gt(bl, 0);
    }
    secchat_ssize k = sc_record_put(pt + used, cap - used, body, (size_t)bl);
    ck_assert_int_gt(k, 0);
    used += (size_t)k;
  }
  size_t total = sc_pad_size(used);
  ck_assert_uint_le(total, cap);
  memset(pt + used, 0, total - used);
  return total;
}

/* A client may pack frames too: each is handled as if it came alone; a
 * frame that is not valid closes the connection after the ones before it;
 * a malformed record layout is refused whole. */
START_TEST(test_packing_in)
{
  start();
  sim *a = login("alice", "10.0.0.1");
  uint8_t pt[1024];
  sc_frame f;
  static const uint64_t three[] = {11, 12, 13};
  sim_send_plain(a, pt, pings_plaintext(pt, sizeof pt, three, 3));
  for (int i = 0; i < 3; i++) {
    sim_expect(a, SC_FRAME_PONG, &f);
    ck_assert_uint_eq(f.u.ping.nonce, three[i]);
  }
  ck_assert_msg(sim_next(a, &f) == 0, "unexpected frame %d", (int)f.type);
  ck_assert(!a->closed);
  /* Second record is garbage: PONG for the first, then ERROR and close;
   * the third is never handled. */
  static const uint64_t bad[] = {21, 0, 23};
  sim_send_plain(a, pt, pings_plaintext(pt, sizeof pt, bad, 3));
  sim_expect(a, SC_FRAME_PONG, &f);
  ck_assert_uint_eq(f.u.ping.nonce, 21);
  expect_error(a, SC_WIRE_PROTOCOL, 0);
  ck_assert(a->closed);
  sim_expect(a, SC_FRAME_BYE, NULL);
  ck_assert_msg(sim_next(a, &f) == 0, "unexpected frame %d", (int)f.type);
  /* Nonzero bytes after the padding starts: nothing in it is handled. */
  sim *b = login("bob", "10.0.0.2");
  static const uint64_t two[] = {31, 32};
  size_t len = pings_plaintext(pt, sizeof pt, two, 2);
  pt[len - 1] = 1;
  sim_send_plain(b, pt, len);
  expect_error(b, SC_WIRE_PROTOCOL, 0);
  ck_assert(b->closed);
  /* At most SC_MAX_RECORDS_IN frames per message: 64 are each answered (PONG,
   * or ERROR{rate_limited} once the control bucket is empty), 65 close the
   * connection before any is handled. */
  sim *d = login("dave", "10.0.0.4");
  static uint8_t big[4096];
  uint64_t many[SC_MAX_RECORDS_IN + 1];
  for (int i = 0; i <= SC_MAX_RECORDS_IN; i++)
    many[i] = 100 + (uint64_t)i;
  sim_send_plain(d, big, pings_plaintext(big, sizeof big, many, SC_MAX_RECORDS_IN));
  for (int i = 0; i < SC_MAX_RECORDS_IN; i++) {
    ck_assert_int_eq(sim_next(d, &f), 1);
    ck_assert(f.type == SC_FRAME_PONG || f.type == SC_FRAME_ERROR);
    if (f.type == SC_FRAME_PONG)
      ck_assert_uint_eq(f.u.ping.nonce, many[i]);
  }
  ck_assert_int_eq(sim_next(d, &f), 0);
  ck_assert(!d->closed);
  sim_send_plain(d, big, pings_plaintext(big, sizeof big, many, SC_MAX_RECORDS_IN + 1));
  expect_error(d, SC_WIRE_PROTOCOL, 0);
  ck_assert(d->closed);
  /* Padding longer than the records need (512 for < 256 bytes): refused. */
  sim *c = login("carol", "10.0.0.3");
  len = pings_plaintext(pt, sizeof pt, two, 2);
  memset(pt + len, 0, 256);
  sim_send_plain(c, pt, len + 256);
  expect_error(c, SC_WIRE_PROTOCOL, 0);
  ck_assert(c->closed);
}
END_TEST

/* A5: one byte per call gives the same session; A6: coalesced frames. */
START_TEST(test_a5_a6_slicing)
{
  start();
  SLICE = 1;
  sim *a = login("alice", "10.0.0.1");
  sim *b = login("bob", "10.0.0.2");
  sim_route_open(a, 1);
  sim_route_open(b, 1);
  sim_group_send(a, 1, 3, (const uint8_t *)"sliced", 6);
  expect_deliver(b, "sliced");
  sc_frame f;
  SLICE = 0;
  sim_drain(a);
  a->rd = a->nin;
  /* Three PINGs in one buffer, the third cut short. */
  uint8_t buf[3 * 600];
  size_t len = 0;
  for (uint64_t i = 0; i < 3; i++) {
    uint8_t body[32], pt[256];
    sc_frame p = {.type = SC_FRAME_PING};
    p.u.ping.nonce = 100 + i;
    secchat_ssize n = sc_frame_encode(&p, body, sizeof body);
    ck_assert_int_gt(n, 0);
    ck_assert_int_eq(sc_pad(pt, sizeof pt, body, (size_t)n), 256);
    size_t outlen;
    ck_assert_int_eq(
        sc_noise_transport_encrypt(&a->t, pt, 256, buf + len + 4, sizeof buf - len - 4, &outlen),
        0);
    sc_frame_prefix(buf + len, (uint32_t)outlen);
    len += 4 + outlen;
  }
  raw_send(a, buf, len - 10);
  while (sim_next(a, &f) && f.type == SC_FRAME_PRESENCE)
    ;
  ck_assert_int_eq(f.type, SC_FRAME_PONG);
  ck_assert_uint_eq(f.u.ping.nonce, 100);
  sim_expect(a, SC_FRAME_PONG, &f);
  ck_assert_uint_eq(f.u.ping.nonce, 101);
  ck_assert_int_eq(sim_next(a, &f), 0);
  raw_send(a, buf + len - 10, 10);
  sim_expect(a, SC_FRAME_PONG, &f);
  ck_assert_uint_eq(f.u.ping.nonce, 102);
}
END_TEST

START_TEST(test_shutdown)
{
  start();
  sim *a = login("alice", "10.0.0.1");
  sim *b = sim_new("bob");
  sim_open(b, "10.0.0.2");
  secchat_server_shutdown(S, NOW);
  pump_events();
  ck_assert(a->closed && b->closed);
  ck_assert_int_eq(a->close_flush, 1);
  expect_bye(a, SC_BYE_SHUTDOWN);
  ck_assert_int_eq(b->close_flush, 0);
}
END_TEST

/* ---- memory of idle authenticated connections ---------------------------------------- */

#if defined(__SANITIZE_ADDRESS__)
#define HAVE_REAL_MALLINFO 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_REAL_MALLINFO 0
#endif
#endif
#ifndef HAVE_REAL_MALLINFO
#define HAVE_REAL_MALLINFO 1
#endif

/* Reset a sim for reuse on a new connection (client-side memory freed, so
 * that the process heap grows only by what the server keeps). */
static void sim_reset(sim *s)
{
  for (int i = 0; i < s->nin; i++)
    free(s->inbox[i]);
  s->nin = s->rd = 0;
  s->hs_done = 0;
  s->closed = 0;
  sc_deframer_free(&s->df);
  ck_assert_int_eq(sc_deframer_init(&s->df, 0), 0);
}

START_TEST(test_memory_idle_connections)
{
  enum { N = 2000 };
  CFG.max_conns = N + 16;
  CFG.register_per_min = 0; /* one source registers everyone here */
  start();
  sim *s = sim_new("idle");
  /* Warm up: pools, tables, first slab chunk. */
  sim_connect(s, "10.1.0.0");
  sim_register(s);
  sim_auth(s);
  sim_reset(s);
  secchat_server_stats st0 = stats();
#if HAVE_REAL_MALLINFO
  struct mallinfo2 mi0 = mallinfo2();
#endif
  for (int i = 0; i < N; i++) {
    char nm[32];
    snprintf(nm, sizeof nm, "user%05d", i); /* realistic, distinct names */
    sim_reidentify(s, nm);
    sim_connect(s, "10.1.0.1");
    sim_register(s);
    sim_auth(s);
    sim_drain(s);
    ck_assert_uint_eq(secchat_server_conn_pending(S, s->id), 0);
    sim_reset(s);
  }
  secchat_server_stats st1 = stats();
  ck_assert_uint_eq(st1.conns_authenticated, N + 1);
  double per = (double)(st1.mem_bytes - st0.mem_bytes) / N;
  fprintf(stderr, "relay memory per idle authenticated connection: %.0f bytes (server "
                  "accounting, incl. %.0f locked slab bytes)\n",
          per, (double)(st1.slab_bytes - st0.slab_bytes) / N);
  ck_assert_msg(per <= 4096.0, "%.0f bytes per idle connection", per);
#if HAVE_REAL_MALLINFO
  struct mallinfo2 mi1 = mallinfo2();
  if (mi1.uordblks == mi0.uordblks) { /* another allocator (valgrind): nothing to read */
    fprintf(stderr, "mallinfo2 shows no heap change: not glibc's malloc, skipped\n");
    return;
  }
  double heap = (double)(mi1.uordblks - mi0.uordblks) / N;
  double slab = (double)(st1.slab_bytes - st0.slab_bytes) / N;
  fprintf(stderr, "relay memory per idle authenticated connection: %.0f bytes (malloc heap "
                  "in use) + %.0f (slab) = %.0f\n",
          heap, slab, heap + slab);
  ck_assert_msg(heap + slab <= 4096.0, "%.0f bytes per idle connection", heap + slab);
#endif
}
END_TEST

/* Accounted memory apart from the output-chunk pools (a bounded cache). */
static uint64_t mem_unpooled(secchat_server *srv)
{
  secchat_server_stats st;
  secchat_server_get_stats(srv, &st);
  ck_assert_uint_le(st.pool_bytes, 64u * (16384 + 2048) + 128u * 64);
  return st.mem_bytes - st.pool_bytes;
}

/* Load that grows every table, then everyone leaves: the structures sized
 * by the peak (secret slab, event queue, uid/name/route maps, the remote
 * directory) shrink back, so the idle server accounts exactly what it did
 * before the first client (the long soak's idle check, scripts/soak). */
START_TEST(test_memory_returns_after_load)
{
  enum { N = 300, HS = 300, ROUTES = 16 };
  CFG.cluster = 1;
  CFG.max_conns = N + HS + 64;
  CFG.register_per_min = 0; /* one source registers everyone here */
  CFG.worker_id = 0;
  make_server();
  secchat_server *w[2];
  w[0] = S;
  CFG.worker_id = 1;
  make_server();
  w[1] = S;
  uint64_t idle[2] = {mem_unpooled(w[0]), mem_unpooled(w[1])};
  secchat_server_stats st;
  secchat_server_get_stats(w[0], &st);
  uint64_t slab0 = st.slab_bytes;
  ck_assert_uint_gt(slab0, 0); /* one chunk from the start */

  /* N authenticated connections per worker, 2 routes each: local and
   * remote directories, route members both ways. */
  static uint64_t ids[2][N];
  sim *s[2];
  for (int k = 0; k < 2; k++) {
    S = w[k];
    s[k] = sim_new("load");
  }
  for (int i = 0; i < N; i++)
    for (int k = 0; k < 2; k++) {
      sim *c = s[k];
      char nm[32];
      snprintf(nm, sizeof nm, "load%d-%04d", k, i);
      sim_reidentify(c, nm);
      sim_connect(c, "10.2.0.1");
      sim_register(c);
      sim_auth(c);
      sim_route_open(c, i % ROUTES);
      sim_route_open(c, (i + 5) % ROUTES);
      sim_drain(c);
      ids[k][i] = c->id;
      sim_reset(c);
    }
  /* HS handshakes opened at once on worker 0 and abandoned: HS CLOSE
   * events in one call (the event queue doubles) and a third slab chunk. */
  static uint64_t hs[HS];
  for (int i = 0; i < HS; i++)
    ck_assert_int_eq(secchat_server_conn_open(w[0], &hs[i], (const uint8_t *)"10.3.0.1", 8, NOW),
                     0);
  secchat_server_get_stats(w[0], &st);
  ck_assert_uint_ge(st.slab_bytes, 3 * slab0);
  ck_assert_uint_eq(st.routes, ROUTES);
  uint64_t peak = mem_unpooled(w[0]);
  advance(CFG.handshake_timeout_ms + 1);
  secchat_server_get_stats(w[0], &st);
  ck_assert_uint_eq(st.timeouts_handshake, HS);
  for (int i = 0; i < HS; i++)
    ck_assert_int_eq(secchat_server_conn_closed(w[0], hs[i], NOW), 0);
  pump_events();
  ck_assert_uint_gt(peak, idle[0] + 3 * slab0);

  /* Everyone leaves (the host closes; departures cross to the other
   * worker as fanout jobs). */
  for (int i = 0; i < N; i++)
    for (int k = 0; k < 2; k++) {
      ck_assert_int_eq(secchat_server_conn_closed(w[k], ids[k][i], NOW), 0);
      pump_events();
    }
  for (int k = 0; k < 2; k++) {
    secchat_server_get_stats(w[k], &st);
    ck_assert_uint_eq(st.conns_open, 0);
    ck_assert_uint_eq(st.routes, 0);
    ck_assert_uint_eq(st.slab_bytes, slab0);
    ck_assert_msg(mem_unpooled(w[k]) == idle[k],
                  "worker %d: %llu bytes accounted idle after the load, %llu before", k,
                  (unsigned long long)mem_unpooled(w[k]), (unsigned long long)idle[k]);
  }

  /* The shrunk tables still serve: a fresh pair across the workers. */
  S = w[0];
  sim *a = login("fresh-a", "10.4.0.1");
  S = w[1];
  sim *b = login("fresh-b", "10.4.0.2");
  sim_route_open(a, 1);
  sim_route_open(b, 1);
  sim_group_send(a, 1, 7, (const uint8_t *)"hi", 2);
  expect_deliver(b, "hi");
}
END_TEST

/* ---- several workers (cluster mode, fanout jobs) -------------------------------------- */

START_TEST(test_cluster)
{
  CFG.cluster = 1;
  CFG.worker_id = 0;
  make_server();
  secchat_server *w0 = S;
  CFG.worker_id = 1;
  make_server();
  secchat_server *w1 = S;
  S = w0;
  sim *a = login("alice", "10.0.0.1");
  S = w1;
  sim *b = login("bob", "10.0.0.2");
  sim *c = login("carol", "10.0.0.3");
  sim_route_open(a, 1);
  sim_route_open(b, 1);
  sim_route_open(c, 1);
  sc_frame f;
  /* Presence crosses workers both ways. */
  int online = 0;
  while (sim_next(a, &f))
    online += f.type == SC_FRAME_PRESENCE && f.u.presence.online;
  ck_assert_int_eq(online, 2);
  online = 0;
  while (sim_next(c, &f)) /* c opened last: learns a (remote) and b */
    online += f.type == SC_FRAME_PRESENCE && f.u.presence.online;
  ck_assert_int_eq(online, 2);
  while (sim_next(b, &f))
    ;
  /* Relay: exactly one DELIVER each, across and within workers. */
  sim_group_send(a, 1, 1, (const uint8_t *)"from a", 6);
  sim_expect(a, SC_FRAME_RELAYED, NULL);
  sim_expect(b, SC_FRAME_DELIVER, &f);
  ck_assert_mem_eq(f.u.deliver.blob.p, "from a", 6);
  sim_expect(c, SC_FRAME_DELIVER, NULL);
  ck_assert_int_eq(sim_next(b, &f) + sim_next(c, &f), 0);
  sim_group_send(b, 1, 2, (const uint8_t *)"from b", 6);
  sim_expect(a, SC_FRAME_DELIVER, &f);
  ck_assert_mem_eq(f.u.deliver.blob.p, "from b", 6);
  sim_expect(c, SC_FRAME_DELIVER, NULL);
  sim_expect(b, SC_FRAME_RELAYED, NULL);
  ck_assert_int_eq(sim_next(a, &f) + sim_next(c, &f), 0);
  /* DIRECT to a user on the other worker carries the sender's token. */
  sim_direct(a, b->uid, 3, (const uint8_t *)"psst", 4);
  sim_expect(a, SC_FRAME_RELAYED, NULL);
  sim_expect(b, SC_FRAME_DIRECT_DELIVER, &f);
  ck_assert_mem_eq(f.u.direct_deliver.from_uid, a->uid, 20);
  ck_assert_uint_eq(f.u.direct_deliver.from_token.len, a->token_len);
  ck_assert_int_eq(sim_next(c, &f), 0);
  /* LOOKUP sees users of every worker. */
  sc_frame q = {.type = SC_FRAME_LOOKUP_NAME};
  q.u.lookup_name.name.p = "bob";
  q.u.lookup_name.name.len = 3;
  sim_send(a, &q);
  sim_expect(a, SC_FRAME_LOOKUP_RESULT, &f);
  ck_assert_uint_eq(f.u.lookup_result.count, 1);
  ck_assert_mem_eq(f.u.lookup_result.tokens[0].p, b->token, b->token_len);
  /* One connection per uid across workers: alice logs in again on w1. */
  S = w1;
  sim *a2 = sim_clone(a);
  sim_connect(a2, "10.0.0.4");
  sim_auth(a2);
  ck_assert(a->closed);
  ck_assert_int_eq(a->close_reason, SC_BYE_REPLACED);
  expect_bye(a, SC_BYE_REPLACED);
  ck_assert(!a2->closed);
  host_close(a);
  sim_direct(b, a->uid, 4, (const uint8_t *)"to a2", 5);
  sim_expect(a2, SC_FRAME_DIRECT_DELIVER, NULL);
  sim_expect(b, SC_FRAME_PRESENCE, &f); /* a's old connection left the route */
  ck_assert(!f.u.presence.online);
  sim_expect(b, SC_FRAME_RELAYED, NULL);
  /* b leaves: the other worker forgets it (presence, directory). */
  sim *d = NULL;
  S = w0;
  d = login("dave", "10.0.0.5");
  sim_route_open(d, 1);
  while (sim_next(d, &f))
    ;
  host_close(b);
  sim_expect(d, SC_FRAME_PRESENCE, &f);
  ck_assert_mem_eq(f.u.presence.uid, b->uid, 20);
  ck_assert(!f.u.presence.online);
  sim_direct(d, b->uid, 5, (const uint8_t *)"gone", 4);
  expect_error(d, SC_WIRE_UNKNOWN_RECIPIENT, 5);
  /* A route whose members are all on one worker costs no DELIVER job. */
  sim_route_open(d, 7);
  uint64_t jobs = FANOUT_JOBS;
  sim_group_send(d, 7, 6, (const uint8_t *)"local", 5);
  sim_expect(d, SC_FRAME_RELAYED, NULL);
  ck_assert_uint_eq(FANOUT_JOBS, jobs);
  secchat_server_stats st0, st1;
  secchat_server_get_stats(w0, &st0);
  secchat_server_get_stats(w1, &st1);
  ck_assert_uint_gt(st0.fanout_out, 0);
  ck_assert_uint_gt(st1.fanout_in, 0);
  ck_assert_uint_eq(st0.fanout_bad + st1.fanout_bad, 0);
  /* A malformed job is refused and changes nothing. */
  const uint8_t bad[] = {0x94, 0x01, 0x01, 0xc4, 0x01, 0x00, 0xc4, 0x00};
  ck_assert_int_lt(secchat_server_fanout_in(w0, bad, sizeof bad, NOW), 0);
  const uint8_t junk[] = {0x81, 0x00, 0x00};
  ck_assert_int_lt(secchat_server_fanout_in(w0, junk, sizeof junk, NOW), 0);
  secchat_server_get_stats(w0, &st0);
  ck_assert_uint_eq(st0.fanout_bad, 2);
  pump_events();
}
END_TEST

/* A replaced login across workers, with a DIRECT racing the switch, in
 * every order the jobs can arrive in (docs/relay.md, "Workers").
 *
 * Workers: 0 holds T's old connection t0 (and a sender u), 1 gets T's new
 * login t1, 2 holds the sender s. Schedulable steps: t1's AUTH on worker
 * 1, s's DIRECT to T on worker 2, and the release of any held job queue
 * head (ONLINE(t1) from 1, DIRECT from 2, OFFLINE(t0) from 0 once 0 has
 * replaced t0). Every interleaving is run from scratch.
 *
 * What must hold in each: the directory converges (t0 gets BYE{replaced},
 * t1 stays, and afterwards a DIRECT from worker 2 and from worker 0 each
 * reaches t1 exactly once); the racing DIRECT is either refused
 * (ERROR{unknown_recipient}: worker 2 had forgotten t0 and not yet learnt
 * t1) or RELAYED, and then reaches exactly the connections that were in
 * their worker's directory when its job arrived: t0 iff worker 0 applied
 * it before ONLINE(t1), t1 iff worker 1 applied it after t1's AUTH. So a
 * RELAYED message can reach neither (sent while T was switching: RELAYED
 * means accepted by the relay, not delivered; docs/protocol.md) or both;
 * this test pins down that these are the only such cases. */
enum { W_OLD = 0, W_NEW = 1, W_S = 2 };
enum { STEP_AUTH = 100, STEP_DIRECT = 101 };

typedef struct switch_ids {
  sim *s, *u, *t; /* registered identities (tokens from a first server) */
} switch_ids;

typedef struct switch_out {
  int relayed, refused, to_t0, to_t1, want_t0, want_t1;
} switch_out;

static void world_reset(void)
{
  world_free();
  S = NULL;
  NLOGS = 0;
}

/* A fresh connection of identity o on the current S (handshake + AUTH, or
 * only the handshake). */
static sim *relogin(const sim *o, const char *src, int auth)
{
  sim *c = sim_clone(o);
  sim_connect(c, src);
  if (auth)
    sim_auth(c);
  return c;
}

static int count_blob(sim *c, const char *blob)
{
  sc_frame f;
  int n = 0;
  while (sim_next(c, &f))
    if (f.type == SC_FRAME_DIRECT_DELIVER && f.u.direct_deliver.blob.len == strlen(blob) &&
        memcmp(f.u.direct_deliver.blob.p, blob, strlen(blob)) == 0)
      n++;
  return n;
}

static int job_type(int o, int d)
{
  const uint8_t *j = HELD[o][d][HELD_HEAD[o][d]];
  ck_assert_uint_ge(HELD_LEN[o][d][HELD_HEAD[o][d]], 2);
  return j[1]; /* [type, origin, ...]: a positive fixint after the array header */
}

/* Run one interleaving: choice[k] picks among the steps available at step
 * k (in a fixed order); nopts[k] receives how many there were. */
static void run_switch(const switch_ids *ids, const int *choice, int *nopts, int *nsteps,
                       switch_out *out)
{
  CFG.cluster = 1;
  CFG.max_conns = 16;
  uint64_t idle[3];
  for (int w = 0; w < 3; w++) {
    CFG.worker_id = (uint32_t)w;
    make_server();
    idle[w] = mem_unpooled(S);
  }
  S = SRV[W_OLD];
  sim *t0 = relogin(ids->t, "10.0.0.1", 1);
  sim *u = relogin(ids->u, "10.0.0.2", 1);
  S = SRV[W_S];
  sim *s = relogin(ids->s, "10.0.0.3", 1);
  NOW += 10; /* t1's login is the newer one */
  S = SRV[W_NEW];
  sim *t1 = relogin(ids->t, "10.0.0.4", 0);
  HOLD = 1;
  int auth_done = 0, direct_done = 0, online_at_old = 0;
  memset(out, 0, sizeof *out);
  int step = 0;
  for (;; step++) {
    int opts[16], n = 0;
    if (!auth_done)
      opts[n++] = STEP_AUTH;
    if (!direct_done)
      opts[n++] = STEP_DIRECT;
    for (int o = 0; o < 3; o++)
      for (int d = 0; d < 3; d++)
        if (HELD_N[o][d] > 0)
          opts[n++] = o * 3 + d;
    if (n == 0)
      break;
    ck_assert_int_lt(step, 32);
    nopts[step] = n;
    ck_assert_int_lt(choice[step], n);
    int pick = opts[choice[step]];
    if (pick == STEP_AUTH) {
      auth_done = 1;
      sim_send_auth(t1, t1->hh);
    } else if (pick == STEP_DIRECT) {
      direct_done = 1;
      sim_direct(s, ids->t->uid, 1, (const uint8_t *)"switch", 6);
    } else {
      int o = pick / 3, d = pick % 3, type = job_type(o, d);
      if (type == 2 && d == W_OLD) /* JOB_DIRECT */
        out->want_t0 = !online_at_old;
      if (type == 2 && d == W_NEW)
        out->want_t1 = auth_done;
      if (type == 4 && d == W_OLD) /* JOB_ONLINE */
        online_at_old = 1;
      held_release(o, d);
    }
  }
  *nsteps = step;
  HOLD = 0;

  /* The racing DIRECT: answered once, delivered as predicted. */
  sc_frame f;
  ck_assert_int_eq(sim_next_nonpresence(s, &f), 1);
  if (f.type == SC_FRAME_RELAYED) {
    ck_assert_uint_eq(f.u.relayed.ref, 1);
    out->relayed = 1;
  } else {
    ck_assert_int_eq(f.type, SC_FRAME_ERROR);
    ck_assert_uint_eq(f.u.error.code, SC_WIRE_UNKNOWN_RECIPIENT);
    out->refused = 1;
    out->want_t0 = out->want_t1 = 0; /* no job was sent */
  }
  sim_expect(t1, SC_FRAME_AUTH_OK, NULL);
  out->to_t0 = count_blob(t0, "switch");
  out->to_t1 = count_blob(t1, "switch");
  ck_assert_int_eq(out->to_t0, out->want_t0);
  ck_assert_int_eq(out->to_t1, out->want_t1);

  /* Converged: t0 replaced, t1 reachable from every worker, once. */
  ck_assert(t0->closed);
  ck_assert_int_eq(t0->close_reason, SC_BYE_REPLACED);
  ck_assert(!t1->closed);
  sim_direct(s, ids->t->uid, 2, (const uint8_t *)"after-s", 7);
  sim_expect(s, SC_FRAME_RELAYED, NULL);
  ck_assert_int_eq(count_blob(t1, "after-s"), 1);
  sim_direct(u, ids->t->uid, 3, (const uint8_t *)"after-u", 7);
  sim_expect(u, SC_FRAME_RELAYED, NULL);
  ck_assert_int_eq(count_blob(t1, "after-u"), 1);
  ck_assert_int_eq(count_blob(t0, "after-s") + count_blob(t0, "after-u"), 0);
  for (int w = 0; w < 3; w++) {
    secchat_server_stats st;
    secchat_server_get_stats(SRV[w], &st);
    ck_assert_uint_eq(st.fanout_bad, 0);
  }

  /* Everyone leaves (the replaced t0 too: the host closes it after its
   * BYE): whichever order the race took, every worker accounts exactly
   * what it did before the first login (no remote directory entry, job or
   * replaced session left behind: the soak's idle check). */
  ck_assert_int_eq(NSIMS, 4);
  for (int i = 0; i < NSIMS; i++) {
    ck_assert_int_eq(secchat_server_conn_closed(SIMS[i]->srv, SIMS[i]->id, NOW), 0);
    pump_events();
  }
  for (int w = 0; w < 3; w++)
    ck_assert_msg(mem_unpooled(SRV[w]) == idle[w],
                  "worker %d: %llu bytes accounted after everyone left, %llu before", w,
                  (unsigned long long)mem_unpooled(SRV[w]), (unsigned long long)idle[w]);
}

START_TEST(test_cluster_replaced_login_direct_race)
{
  /* Register the three identities once (tokens outlive the server). */
  start();
  sim *reg[3] = {login("s", "10.0.0.3"), login("u", "10.0.0.2"), login("t", "10.0.0.1")};
  /* world_reset frees every sim: keep copies of the identities (keys,
   * uid, name, token; sim_clone reads nothing else). */
  static sim idcopy[3];
  for (int i = 0; i < 3; i++)
    memcpy(&idcopy[i], reg[i], sizeof idcopy[i]);
  switch_ids ids;
  ids.s = &idcopy[0];
  ids.u = &idcopy[1];
  ids.t = &idcopy[2];
  world_reset();
  int choice[32] = {0}, nopts[32], n;
  int runs = 0, lost = 0, both = 0, refused = 0;
  for (;;) {
    switch_out o;
    run_switch(&ids, choice, nopts, &n, &o);
    runs++;
    refused += o.refused;
    lost += o.relayed && !o.to_t0 && !o.to_t1;
    both += o.to_t0 && o.to_t1;
    world_reset();
    int k = n - 1;
    while (k >= 0 && choice[k] + 1 >= nopts[k])
      k--;
    if (k < 0)
      break;
    choice[k]++;
    for (int i = k + 1; i < 32; i++)
      choice[i] = 0;
  }
  /* Every order was tried, and each outcome the comment names occurs. */
  ck_assert_int_gt(runs, 500);
  ck_assert_int_gt(refused, 0);
  ck_assert_int_gt(lost, 0);
  ck_assert_int_gt(both, 0);
}
END_TEST

START_TEST(test_no_cluster_no_jobs)
{
  start();
  sim *a = login("alice", "10.0.0.1");
  sim *b = login("bob", "10.0.0.2");
  sim_route_open(a, 1);
  sim_route_open(b, 1);
  sim_group_send(a, 1, 1, (const uint8_t *)"x", 1);
  ck_assert_uint_eq(FANOUT_JOBS, 0);
  const uint8_t job[] = {0x94, 0x05, 0x01, 0xc4, 0x00, 0x00};
  ck_assert_int_eq(secchat_server_fanout_in(S, job, sizeof job, NOW), SECCHAT_ERR_INVALID_STATE);
}
END_TEST

START_TEST(test_auth_bad_tokens)
{
  CFG.token_ttl_s = 120;
  start();
  /* A token from another server key (same issuer name): rejected. */
  secchat_server_key *other;
  ck_assert_int_eq(secchat_server_key_generate(&other), 0);
  secchat_server_config c2 = CFG;
  c2.token_key = other;
  secchat_server *s2;
  ck_assert_int_eq(secchat_server_new(&s2, &c2), 0);
  SRV[NSRV++] = s2;
  S = s2;
  sim *m = login("mallory", "10.0.0.9");
  S = SRV[0];
  sim *a = sim_clone(m);
  sim_connect(a, "10.0.0.1");
  sim_send_auth(a, a->hh);
  expect_error(a, SC_WIRE_AUTH_FAILED, 0);
  expect_bye(a, SC_BYE_PROTOCOL_ERROR);
  ck_assert(a->closed);
  ck_assert_uint_eq(stats().auth_failed_token, 1);
  /* A token that is not a JWT at all. */
  sim *b = sim_new("bob");
  sim_connect(b, "10.0.0.2");
  strcpy(b->token, "not.a.token");
  b->token_len = strlen(b->token);
  sim_send_auth(b, b->hh);
  expect_error(b, SC_WIRE_AUTH_FAILED, 0);
  ck_assert(b->closed);
  /* 4097 bytes: over the token limit, refused by the frame schema. */
  sim *c = sim_new("carol");
  sim_connect(c, "10.0.0.3");
  static uint8_t body[4097 + 80];
  size_t n = 0;
  body[n++] = 0x93;
  body[n++] = 0x02;
  body[n++] = 0xda;
  body[n++] = 0x10;
  body[n++] = 0x01;
  memset(body + n, 'a', 4097);
  n += 4097;
  body[n++] = 0xc4;
  body[n++] = 0x40;
  memset(body + n, 0, 64);
  n += 64;
  sim_send_body(c, body, n);
  expect_error(c, SC_WIRE_PROTOCOL, 0);
  ck_assert(c->closed);
  /* An expired token at AUTH: token_expired, then close. */
  sim *d = sim_new("dave");
  sim_connect(d, "10.0.0.4");
  sim_register(d);
  NOW += 120000 + 61000; /* past exp + leeway; no timers run meanwhile */
  sim_send_auth(d, d->hh);
  expect_error(d, SC_WIRE_TOKEN_EXPIRED, 0);
  expect_bye(d, SC_BYE_TOKEN_EXPIRED);
  ck_assert(d->closed);
  ck_assert_uint_eq(stats().auth_failed_expired, 1);
  /* s2 borrows `other`: free the server first, then the key. */
  for (int i = 0; i < NSRV; i++)
    if (SRV[i] == s2) {
      secchat_server_free(s2);
      SRV[i] = SRV[--NSRV];
    }
  secchat_server_key_free(other);
}
END_TEST

START_TEST(test_api_misuse)
{
  /* Configuration checks. */
  secchat_server *x = NULL;
  secchat_server_config bad = CFG;
  ck_assert_int_eq(secchat_server_new(NULL, &CFG), SECCHAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(secchat_server_new(&x, NULL), SECCHAT_ERR_INVALID_ARGUMENT);
  bad.name = NULL;
  ck_assert_int_eq(secchat_server_new(&x, &bad), SECCHAT_ERR_INVALID_ARGUMENT);
  bad = CFG;
  bad.name = "";
  ck_assert_int_eq(secchat_server_new(&x, &bad), SECCHAT_ERR_INVALID_ARGUMENT);
  bad = CFG;
  bad.token_key = NULL;
  ck_assert_int_eq(secchat_server_new(&x, &bad), SECCHAT_ERR_INVALID_ARGUMENT);
  bad = CFG;
  bad.struct_size = 8;
  ck_assert_int_eq(secchat_server_new(&x, &bad), SECCHAT_ERR_INVALID_ARGUMENT);
  bad = CFG;
  bad.max_output_bytes = 1000; /* must hold two maximal messages */
  ck_assert_int_eq(secchat_server_new(&x, &bad), SECCHAT_ERR_INVALID_ARGUMENT);
  bad = CFG;
  bad.max_conns = 0;
  ck_assert_int_eq(secchat_server_new(&x, &bad), SECCHAT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_null(x);
  /* Connection table. */
  CFG.max_conns = 2;
  start();
  uint64_t c1, c2, c3;
  ck_assert_int_eq(secchat_server_conn_open(S, &c1, NULL, 0, NOW), 0);
  ck_assert_int_eq(secchat_server_conn_open(S, &c2, (const uint8_t *)"x", 1, NOW), 0);
  ck_assert_int_eq(secchat_server_conn_open(S, &c3, (const uint8_t *)"y", 1, NOW),
                   SECCHAT_ERR_TOO_MANY);
  ck_assert_uint_ne(c1, c2);
  uint8_t big[65];
  ck_assert_int_eq(secchat_server_conn_open(S, &c3, big, sizeof big, NOW),
                   SECCHAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(secchat_server_conn_consumed(S, c1, 1), SECCHAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(secchat_server_conn_closed(S, c1, NOW), 0);
  ck_assert_int_eq(secchat_server_conn_closed(S, c1, NOW), SECCHAT_ERR_NOT_FOUND);
  /* The slot is reused with a new id: the old one stays dead. */
  ck_assert_int_eq(secchat_server_conn_open(S, &c3, NULL, 0, NOW), 0);
  ck_assert_uint_ne(c3, c1);
  secchat_iovec iov[2];
  ck_assert_int_eq(secchat_server_conn_output(S, c1, iov, 2), SECCHAT_ERR_NOT_FOUND);
  ck_assert_int_eq(secchat_server_conn_recv(S, c1, big, 1, NOW), SECCHAT_ERR_NOT_FOUND);
  ck_assert_int_eq(secchat_server_conn_recv(S, 0, big, 1, NOW), SECCHAT_ERR_NOT_FOUND);
  ck_assert_uint_eq(secchat_server_conn_pending(S, c1), 0);
  ck_assert_int_eq(secchat_server_next_event(S, NULL), SECCHAT_ERR_INVALID_ARGUMENT);
  ck_assert_uint_eq(stats().conns_open, 2);
  /* A clock going backwards is treated as the last time seen. */
  secchat_server_on_timeout(S, NOW - 100000);
  ck_assert_uint_eq(stats().timeouts_handshake, 0);
}
END_TEST
/* ---- packing under partial writes ------------------------------------------------
 * A host may write part of what conn_output describes, and more frames may be
 * queued between conn_output and conn_consumed. Random blob sizes (1 byte to
 * 40 KB: some frames larger than a queue chunk), random partial takes: every
 * message must decrypt in nonce order, every DELIVER arrive once, in order,
 * intact, and conn_pending always equal what conn_output describes. */
static uint64_t ST_RNG;
static int st_rand(void)
{
  ST_RNG ^= ST_RNG << 13;
  ST_RNG ^= ST_RNG >> 7;
  ST_RNG ^= ST_RNG << 17;
  return (int)(ST_RNG >> 33);
}

static uint8_t ST_ACC[1 << 22];
static size_t ST_ACCN;

/* Take up to lim bytes of b's output (copied, as a host writes them), then
 * optionally let `between` queue more before consumed(). */
static size_t partial_take(sim *s, size_t lim, void (*between)(void))
{
  secchat_iovec iov[64];
  size_t pend = secchat_server_conn_pending(s->srv, s->id);
  int n = secchat_server_conn_output(s->srv, s->id, iov, 64);
  ck_assert_int_ge(n, 0);
  size_t tot = 0, took = 0;
  for (int i = 0; i < n; i++)
    tot += iov[i].len;
  if (n < 64)
    ck_assert_uint_eq(tot, pend);
  for (int i = 0; i < n && took < lim; i++) {
    size_t k = iov[i].len < lim - took ? iov[i].len : lim - took;
    ck_assert_uint_le(ST_ACCN + k, sizeof ST_ACC);
    memcpy(ST_ACC + ST_ACCN, iov[i].base, k);
    ST_ACCN += k;
    took += k;
  }
  if (between)
    between();
  ck_assert_int_eq(secchat_server_conn_consumed(s->srv, s->id, took), 0);
  return took;
}

static sim *SA, *SB;
static uint64_t SREF, SEXP_DELIV;
static uint8_t SBLOB[40000];

static size_t rsz(void)
{
  uint32_t r = (uint32_t)st_rand();
  switch (r % 8) {
  case 0: return 1 + r / 8 % 40000;
  case 1: return 1 + r / 8 % 17000;
  case 2: return 15000 + r / 8 % 3000;
  default: return 1 + r / 8 % 600;
  }
}

static void st_send_some(void)
{
  int k = st_rand() % 6;
  for (int i = 0; i < k; i++) {
    size_t len = rsz();
    SREF++;
    for (size_t j = 0; j < len; j++)
      SBLOB[j] = (uint8_t)(SREF * 31 + j);
    /* The host learns of output only by WANT_WRITE: every time SB's queue
     * goes from empty to non-empty the event must come, whatever partial
     * writes and packing happened before (else the output sits unseen). */
    WW_CONN = SB->id;
    uint64_t ev0 = WW_EVENTS;
    int was_empty = secchat_server_conn_pending(S, SB->id) == 0;
    sim_group_send(SA, 1, SREF, SBLOB, len);
    if (was_empty && !SB->closed && secchat_server_conn_pending(S, SB->id) > 0)
      ck_assert_uint_eq(WW_EVENTS, ev0 + 1);
  }
  /* the sender's own RELAYEDs: drain fully */
  sc_frame f;
  while (sim_next(SA, &f))
    ;
  for (int i = 0; i < SA->nin; i++)
    free(SA->inbox[i]);
  SA->nin = SA->rd = 0;
}

/* Parse what B has accumulated so far: full messages only. */
static size_t ST_PARSED;
static void st_parse(void)
{
  for (;;) {
    if (ST_ACCN - ST_PARSED < 4)
      return;
    const uint8_t *p = ST_ACC + ST_PARSED;
    uint32_t ml = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    ck_assert_uint_gt(ml, 0);
    ck_assert_uint_le(ml, 65535);
    if (ST_ACCN - ST_PARSED - 4 < ml)
      return;
    static uint8_t pt[65536];
    size_t ptlen;
    ck_assert_int_eq(sc_noise_transport_decrypt(&SB->t, p + 4, ml, pt, sizeof pt, &ptlen), 0);
    sc_records r;
    ck_assert_int_gt(sc_records_open(&r, pt, ptlen), 0);
    const uint8_t *body;
    size_t bl;
    while (sc_records_next(&r, &body, &bl)) {
      sc_frame f;
      ck_assert_int_eq(sc_frame_decode(&f, body, bl), 0);
      if (f.type == SC_FRAME_PRESENCE)
        continue;
      ck_assert_int_eq(f.type, SC_FRAME_DELIVER);
      SEXP_DELIV++;
      for (size_t j = 0; j < f.u.deliver.blob.len; j++)
        if (f.u.deliver.blob.p[j] != (uint8_t)(SEXP_DELIV * 31 + j))
          ck_abort_msg("blob %llu byte %zu", (unsigned long long)SEXP_DELIV, j);
    }
    ST_PARSED += 4 + ml;
    if (ST_PARSED == ST_ACCN)
      ST_PARSED = ST_ACCN = 0;
  }
}

/* Relay limits off, output cap `cap`; SA and SB on route 1, inboxes empty. */
static void st_start(uint32_t cap, uint64_t seed)
{
  CFG.group_send_rate = 1000000;
  CFG.group_send_burst = 1000000;
  CFG.fanout_bytes_rate = 1u << 30;
  CFG.fanout_bytes_burst = 1u << 30;
  CFG.control_rate = 1000000;
  CFG.control_burst = 1000000;
  CFG.max_output_bytes = cap;
  start();
  ST_RNG = seed;
  alice_and_bob_on_route(&SA, &SB);
  ST_ACCN = ST_PARSED = 0;
  SREF = SEXP_DELIV = 0;
}

START_TEST(test_packing_partial_writes)
{
  st_start(64u << 20, 12345 + (uint64_t)_i);
  for (int it = 0; it < 1000; it++) {
    st_send_some();
    size_t lim;
    switch (st_rand() % 5) {
    case 0: lim = 0; break;
    case 1: lim = (size_t)st_rand() % 8; break;
    case 2: lim = (size_t)st_rand() % 300; break;
    case 3: lim = (size_t)st_rand() % 20000; break;
    default: lim = (size_t)-1; break;
    }
    partial_take(SB, lim, st_rand() % 2 ? st_send_some : NULL);
    st_parse();
  }
  /* drain everything */
  for (int i = 0; i < 100 && secchat_server_conn_pending(S, SB->id) > 0; i++) {
    partial_take(SB, (size_t)-1, NULL);
    st_parse();
  }
  ck_assert_uint_eq(ST_ACCN, 0);
  ck_assert_uint_eq(SEXP_DELIV, SREF);
}
END_TEST

/* Slow consumer with an open message: the smallest cap, rarely drained:
 * pending stays exact and under the cap until the connection is closed. */
START_TEST(test_packing_slow_consumer)
{
  st_start(2 * (65535 + 4), 777 + (uint64_t)_i);
  for (int it = 0; it < 400 && !SB->closed; it++) {
    st_send_some();
    if (st_rand() % 3 == 0)
      partial_take(SB, (size_t)st_rand() % 5000, NULL);
    /* pending must always be what output describes */
    secchat_iovec iov[64];
    size_t pend = secchat_server_conn_pending(S, SB->id);
    int n = secchat_server_conn_output(S, SB->id, iov, 64);
    size_t tot = 0;
    for (int i = 0; i < n; i++)
      tot += iov[i].len;
    ck_assert_uint_eq(tot, pend);
    ck_assert_uint_le(pend, CFG.max_output_bytes);
  }
  ck_assert(SB->closed);
  ck_assert_uint_eq(secchat_server_conn_pending(S, SB->id), 0);
}
END_TEST

/* ---- churn across workers against a model --------------------------------------------
 * Random logins (fresh, or replacing the live connection of the same user
 * from any worker), closes, route opens and closes and GROUP_SENDs on three
 * workers, with every fanout job held and released in a random order (FIFO
 * per origin and destination, as chatd's inboxes are). The model knows
 * which user's live connection is on which route.
 *
 * A send made while no job is in flight (and followed by the release of
 * every job it caused) must reach exactly the users whose live connection
 * is on the route, the sender excepted, once each; the sender gets RELAYED.
 * A send made with jobs in flight may miss a member whose join has not
 * crossed yet, or reach one whose leave has not (docs/relay.md, "Workers"),
 * but never reaches a connection twice. This is the relay-side half of the
 * soak's "no acknowledged message lost" (scripts/soak), without sockets or
 * timing, so a failure replays from its seed. */
enum { CH_USERS = 10, CH_ROUTES = 5, CH_W = 3, CH_MSGS = 4096 };

typedef struct ch_user {
  sim *s[2];      /* two connections' worth: a new login uses the other one */
  int cur;        /* index of the live connection in s[], -1 offline */
  unsigned routes; /* routes the live connection has opened */
  int open[2];    /* s[k] has a connection the host has not closed */
  int session[2]; /* session number of each s[] (deliveries count per session) */
} ch_user;

static ch_user CH[CH_USERS];
static uint8_t CH_WANT[CH_MSGS][CH_USERS]; /* strict sends: expected receipts */
static uint16_t CH_GOT[CH_MSGS][CH_USERS];
static uint8_t CH_STRICT[CH_MSGS], CH_RELAYED[CH_MSGS];
static uint32_t CH_LASTSESS[CH_MSGS][CH_USERS]; /* at most once per connection */
static int CH_SESSIONS;
static uint64_t CH_IDLE[CH_W]; /* accounted memory of each worker before any login */

/* Read everything queued for user u's connection k: deliveries, RELAYED. */
static void ch_consume(int u, int k)
{
  sim *s = CH[u].s[k];
  sc_frame f;
  if (!s->hs_done)
    return;
  while (sim_next(s, &f)) {
    if (f.type == SC_FRAME_DELIVER) {
      ck_assert_uint_eq(f.u.deliver.blob.len, 8);
      uint64_t m = 0;
      for (int i = 0; i < 8; i++)
        m = m << 8 | f.u.deliver.blob.p[i];
      ck_assert_uint_lt(m, CH_MSGS);
      uint32_t sess = (uint32_t)CH[u].session[k];
      ck_assert_msg(CH_LASTSESS[m][u] != sess, "message %d reached user %d's connection twice",
                    (int)m, u);
      CH_LASTSESS[m][u] = sess;
      CH_GOT[m][u]++;
    } else if (f.type == SC_FRAME_RELAYED) {
      ck_assert_uint_lt(f.u.relayed.ref, CH_MSGS);
      CH_RELAYED[f.u.relayed.ref]++;
    } else {
      ck_assert_msg(f.type == SC_FRAME_PRESENCE || f.type == SC_FRAME_BYE,
                    "unexpected frame %d", (int)f.type);
    }
  }
  for (int i = 0; i < s->nin; i++)
    free(s->inbox[i]);
  s->nin = s->rd = 0;
}

/* Release one held job (a random non-empty queue's head); 0 if none. */
static int ch_release_one(void)
{
  int cand[CH_W * CH_W], n = 0;
  for (int o = 0; o < CH_W; o++)
    for (int d = 0; d < CH_W; d++)
      if (HELD_N[o][d] > 0)
        cand[n++] = o * CH_W + d;
  if (n == 0)
    return 0;
  int pick = cand[st_rand() % n];
  held_release(pick / CH_W, pick % CH_W);
  return 1;
}

/* The host reads user u's connection k and reports it closed; the user
 * is offline if it was the live one. */
static void ch_end(int u, int k)
{
  host_close(CH[u].s[k]);
  ch_consume(u, k);
  CH[u].open[k] = 0;
  if (CH[u].cur == k) {
    CH[u].cur = -1;
    CH[u].routes = 0;
  }
}

/* End every connection the relay closed (replaced). */
static void ch_reap(void)
{
  for (int u = 0; u < CH_USERS; u++)
    for (int k = 0; k < 2; k++)
      if (CH[u].s[k]->closed && CH[u].open[k])
        ch_end(u, k);
}

/* No job in flight, every closed connection reaped. */
static void ch_quiesce(void)
{
  do {
    while (ch_release_one())
      ;
    ch_reap();
  } while (ch_release_one());
}

static void ch_login(int u, int w)
{
  ch_user *c = &CH[u];
  int k = c->cur < 0 ? 0 : 1 - c->cur;
  sim *s = c->s[k];
  if (c->open[k]) /* still open (replaced, not yet reaped): the host closes it */
    ch_end(u, k);
  sim_reset(s);
  s->srv = SRV[w];
  advance(1); /* a login newer than the one it replaces (ties go by worker id) */
  c->session[k] = ++CH_SESSIONS;
  char src[32];
  snprintf(src, sizeof src, "10.9.%d.%d", w, u);
  sim_connect(s, src);
  sim_auth(s);
  c->open[k] = 1;
  /* The previous connection (if any) is replaced: at once on the same
   * worker, when ONLINE arrives on another; the model moves on now. */
  c->cur = k;
  c->routes = 0;
}

static void ch_route(int u, int r)
{
  ch_user *c = &CH[u];
  uint8_t id[32];
  route_id(id, r);
  sc_frame f = {.type = (c->routes >> r & 1) ? SC_FRAME_ROUTE_CLOSE : SC_FRAME_ROUTE_OPEN};
  f.u.route.route_id = id;
  sim_send(c->s[c->cur], &f);
  c->routes ^= 1u << r;
}

static void ch_send(int u, int r, uint64_t m, int strict)
{
  ch_user *c = &CH[u];
  uint8_t blob[8];
  for (int i = 0; i < 8; i++)
    blob[i] = (uint8_t)(m >> (56 - 8 * i));
  CH_STRICT[m] = (uint8_t)strict;
  if (strict)
    for (int v = 0; v < CH_USERS; v++)
      CH_WANT[m][v] = v != u && CH[v].cur >= 0 && (CH[v].routes >> r & 1);
  sim_group_send(c->s[c->cur], r, m, blob, sizeof blob);
}

static void ch_run(uint64_t seed, int steps)
{
  ST_RNG = seed;
  HOLD = 1;
  uint64_t m = 1;
  for (int step = 0; step < steps && m < CH_MSGS; step++) {
    if (step % 16 == 0)
      advance(20); /* 50 steps/s: under every rate limit */
    int u = st_rand() % CH_USERS, x = st_rand() % 100;
    ch_user *c = &CH[u];
    if (x < 25) {
      for (int j = st_rand() % 4; j >= 0; j--)
        ch_release_one();
    } else if (c->cur < 0 || c->s[c->cur]->closed) {
      ch_reap();
      if (c->cur < 0)
        ch_login(u, st_rand() % CH_W);
    } else if (x < 28) {
      ch_login(u, st_rand() % CH_W); /* replaces the live connection */
    } else if (x < 30) {
      ch_end(u, c->cur);
    } else if (x < 55) {
      int r = st_rand() % CH_ROUTES;
      if (!(c->routes >> r & 1) || st_rand() % 2) /* opens outweigh closes */
        ch_route(u, r);
    } else if (x < 65) {
      ch_consume(u, c->cur);
    } else if (c->routes != 0) {
      int r;
      do
        r = st_rand() % CH_ROUTES;
      while (!(c->routes >> r & 1));
      int strict = x < 80;
      if (strict) {
        ch_quiesce();
        if (c->cur < 0 || c->s[c->cur]->closed)
          continue;
      }
      ch_send(u, r, m++, strict);
      if (strict)
        ch_quiesce();
    }
  }
  ch_quiesce();
  for (int u = 0; u < CH_USERS; u++)
    for (int k = 0; k < 2; k++)
      ch_consume(u, k);
  int strict = 0, owed = 0;
  for (uint64_t i = 1; i < m; i++) {
    ck_assert_msg(CH_RELAYED[i] == 1, "seed %llu: message %d answered %d times",
                  (unsigned long long)seed, (int)i, CH_RELAYED[i]);
    if (!CH_STRICT[i])
      continue;
    strict++;
    for (int v = 0; v < CH_USERS; v++) {
      owed += CH_WANT[i][v];
      ck_assert_msg(CH_GOT[i][v] == CH_WANT[i][v],
                    "seed %llu: message %d reached user %d %d times, owed %d",
                    (unsigned long long)seed, (int)i, v, CH_GOT[i][v], CH_WANT[i][v]);
    }
  }
  fprintf(stderr, "churn seed %llu: %d sends, %d checked strictly (%d deliveries owed), %d logins\n",
          (unsigned long long)seed, (int)m - 1, strict, owed, CH_SESSIONS);
  ck_assert_int_gt(strict, 100);
  ck_assert_int_gt(owed, 200);
  /* Everyone leaves: no worker keeps a route, a remote member or a remote
   * directory entry (stale ones would not show in deliveries above). */
  for (int u = 0; u < CH_USERS; u++)
    for (int k = 0; k < 2; k++)
      if (CH[u].open[k])
        ch_end(u, k);
  ch_quiesce();
  for (int w = 0; w < CH_W; w++) {
    secchat_server_stats st;
    secchat_server_get_stats(SRV[w], &st);
    ck_assert_uint_eq(st.conns_open, 0);
    ck_assert_msg(st.routes == 0, "seed %llu: worker %d keeps %llu routes",
                  (unsigned long long)seed, w, (unsigned long long)st.routes);
    ck_assert_uint_eq(mem_unpooled(SRV[w]), CH_IDLE[w]);
  }
  HOLD = 0;
}

START_TEST(test_cluster_churn_model)
{
  CFG.cluster = 1;
  CFG.register_per_min = 0;
  for (int w = 0; w < CH_W; w++) {
    CFG.worker_id = (uint32_t)w;
    make_server();
    CH_IDLE[w] = mem_unpooled(S);
  }
  S = SRV[0];
  for (int u = 0; u < CH_USERS; u++) {
    char nm[16];
    snprintf(nm, sizeof nm, "churn%d", u);
    sim *reg = login(nm, "10.9.9.9");
    host_close(reg);
    CH[u].s[0] = sim_clone(reg);
    CH[u].s[1] = sim_clone(reg);
    CH[u].cur = -1;
    CH[u].routes = 0;
    CH[u].open[0] = CH[u].open[1] = 0;
  }
  memset(CH_GOT, 0, sizeof CH_GOT);
  memset(CH_RELAYED, 0, sizeof CH_RELAYED);
  memset(CH_LASTSESS, 0, sizeof CH_LASTSESS);
  CH_SESSIONS = 0;
  ch_run(0x5eed0000u + (uint64_t)_i, 6000);
}
END_TEST

static Suite *server_suite(void)
{
  Suite *s = suite_create("server");
  TCase *tc = tcase_create("core");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_register_auth);
  tcase_add_test(tc, test_version_negotiation);
  tcase_add_test(tc, test_wrong_prologue);
  tcase_add_test(tc, test_replaced_login);
  tcase_add_test(tc, test_b11_proof_replay);
  tcase_add_test(tc, test_not_authenticated);
  tcase_add_test(tc, test_auth_bad_tokens);
  tcase_add_test(tc, test_relay_group);
  tcase_add_test(tc, test_presence);
  tcase_add_test(tc, test_direct);
  tcase_add_test(tc, test_lookup);
  tcase_add_test(tc, test_limit_routes_per_conn);
  tcase_add_test(tc, test_limit_conns_per_route);
  tcase_add_test(tc, test_limit_group_rate);
  tcase_add_test(tc, test_limit_direct_rate);
  tcase_add_test(tc, test_limit_fanout_budget);
  tcase_add_test(tc, test_limit_output_queue);
  tcase_add_test(tc, test_limit_register_per_source);
  tcase_add_test(tc, test_limit_register_shared_admission);
  tcase_add_test(tc, test_limit_control_rate);
  tcase_add_test(tc, test_handshake_timeout);
  tcase_add_test(tc, test_slowloris);
  tcase_add_test(tc, test_idle_ping);
  tcase_add_test(tc, test_b13_token_expiry);
  tcase_add_test(tc, test_b13_renew_in_grace);
  tcase_add_test(tc, test_a1_a2_a3);
  tcase_add_test(tc, test_garbage_after_auth);
  tcase_add_test(tc, test_packing_out);
  tcase_add_test(tc, test_packing_in);
  tcase_add_loop_test(tc, test_packing_partial_writes, 0, 2);
  tcase_add_loop_test(tc, test_packing_slow_consumer, 0, 2);
  tcase_add_test(tc, test_a5_a6_slicing);
  tcase_add_test(tc, test_shutdown);
  tcase_add_test(tc, test_memory_idle_connections);
  tcase_add_test(tc, test_memory_returns_after_load);
  tcase_add_test(tc, test_cluster);
  tcase_add_test(tc, test_cluster_replaced_login_direct_race);
  tcase_add_loop_test(tc, test_cluster_churn_model, 0, 8);
  tcase_add_test(tc, test_no_cluster_no_jobs);
  tcase_add_test(tc, test_api_misuse);
  suite_add_tcase(s, tc);
  return s;
}

int main(void)
{
  return tu_run(server_suite());
}
