/* test_e2e.c: whole-protocol simulations. One REAL secchat_server core and
 * 3 to 50 REAL secchat_client cores in one process, bytes pumped in memory
 * by tests/simnet (no sockets), fake clock. The clients are driven only through the public
 * secchat_client_* API, as chatc drives them; internals are touched only
 * to play the adversary (the frame-level hostile-relay hook of
 * libsecchat/client.h, a malicious member's raw pairwise sends) and to read
 * sizes for the bounded-memory invariant.
 *
 * Every MESSAGE event any client ever shows is checked against a ledger of
 * what the authors really sent (msg id -> author, chat, text): a message
 * that is not in the ledger, or shown with another author, chat or text, or
 * shown twice to one client, or shown to a client that was not a member
 * when it was sent, fails the test. docs/testing.md maps the tests to
 * security.md tables A-D and to the issue test lists. */
#define _GNU_SOURCE /* memmem */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <check.h>
#include <sodium.h>

#include <secchat/secchat.h>

#include "client.h"
#include "codec.h"
#include "group.h"
#include "group_int.h"
#include "identity.h"
#include "mp.h"
#include "rng.h"
#include "senderkey.h"
#include "simnet.h"
#include "testutil.h"

#define T0 1800000000000ull
#define ISSUER "relay.test"
#define NMAX 64 /* clients; masks are uint64_t */

/* ---- fixture ------------------------------------------------------------------------ */

/* One relay (NET.srv[0]), the clients on tests/simnet. */
static sn_net NET;
static secchat_server_key *KEY;
static uint8_t NSK[32];
static sc_test_rng RNG;
static int NCHK[NMAX]; /* per client: events already checked against the ledger */

typedef sn_node cl;

static void server_start(void)
{
  secchat_server_config cfg;
  secchat_server_config_init(&cfg);
  cfg.name = ISSUER;
  cfg.token_key = KEY;
  cfg.noise_secret_key = NSK;
  cfg.direct_rate = 0; /* key distribution to 50 members is a burst */
  cfg.control_rate = 0;
  cfg.group_send_rate = 0;
  ck_assert_int_eq(secchat_server_new(&NET.srv[0], &cfg), 0);
}

/* Only text needs keeping (history records are large). */
static int keep_text(uint32_t type)
{
  return type == SECCHAT_CLIENT_EV_MESSAGE || type == SECCHAT_CLIENT_EV_HISTORY_RECORD;
}

static void setup(void)
{
  static const unsigned char seed[32] = {7, 7};
  sc_test_rng_init(&RNG, seed);
  sc_rng_set(sc_test_rng_fn, &RNG);
  ck_assert_int_eq(secchat_init(), 0);
  ck_assert_int_eq(secchat_server_key_generate(&KEY), 0);
  sc_random(NSK, 32);
  server_start();
  NET.now = T0;
  NET.keep_data = keep_text;
  memset(NCHK, 0, sizeof NCHK);
}

static void ledger_free(void);

static void teardown(void)
{
  sn_free(&NET);
  ledger_free();
  secchat_server_key_free(KEY);
  sc_rng_set(NULL, NULL);
}

static void client_core(cl *x)
{
  secchat_client_config cfg;
  secchat_client_config_init(&cfg);
  cfg.identity = x->id;
  ck_assert_int_eq(secchat_client_new(&x->c, &cfg), 0);
}

static cl *cl_new(const char *name)
{
  ck_assert_int_lt(NET.nnode, NMAX);
  cl *x = sn_add(&NET, name);
  ck_assert_int_eq(secchat_identity_new(&x->id), 0);
  client_core(x);
  return x;
}

static const uint8_t *UID(const cl *x) { return secchat_identity_uid(x->id); }

static void host_close(cl *x) { sn_close(&NET, x); }
static void pump(void) { sn_pump(&NET); }
static void drain_events(cl *x) { sn_drain(&NET, x); }
static void advance(uint64_t ms) { sn_advance(&NET, ms, 1000); }

/* One source address per client: the per-source registration limit stays
 * at its default. */
static void cl_src(const cl *x, uint8_t src[4])
{
  src[0] = 10;
  src[1] = 0;
  src[2] = (uint8_t)(x->idx >> 8);
  src[3] = (uint8_t)x->idx;
}

static void cl_connect(cl *x)
{
  uint8_t src[4];
  cl_src(x, src);
  sn_connect(&NET, x, 0, src, sizeof src);
}

static void cl_online(cl *x)
{
  uint8_t src[4];
  cl_src(x, src);
  sn_online(&NET, x, src, sizeof src);
}

/* ---- the ledger: what the authors really sent -------------------------------------------- */

typedef struct sent {
  int author;
  uint8_t chat[16];
  uint8_t id[32];
  char text[48];
  uint64_t deny;   /* clients that must never show it (not members when sent) */
  uint64_t expect; /* clients that must show it live (checked by expect_all) */
  uint64_t got;    /* clients that showed it (live or history) */
  uint64_t got_hist;
  int shareable;
  int author_departed; /* its author was removed after sending it */
} sent;

static sent *LED;
static size_t NLED, CAPLED;
static int FORGED_TEXT_SEEN; /* forgeries shown (check_all also aborts at once) */

static void ledger_free(void)
{
  free(LED);
  LED = NULL;
  NLED = CAPLED = 0;
}

/* Mask of clients the test model says are members of chat. */
typedef struct model {
  uint8_t chat[16];
  uint64_t members;
} model;

static sent *ledger_find(const uint8_t id[32])
{
  for (size_t i = NLED; i-- > 0;)
    if (memcmp(LED[i].id, id, 32) == 0)
      return &LED[i];
  return NULL;
}

/* x sends text to m's chat; expected live at `expect`, forbidden to every
 * client outside m->members. Returns the ledger index. */
static size_t say_ex(cl *x, const model *m, const char *text, int shareable, uint64_t expect)
{
  if (NLED == CAPLED) {
    CAPLED = CAPLED ? CAPLED * 2 : 1024;
    LED = realloc(LED, CAPLED * sizeof *LED);
    ck_assert_ptr_nonnull(LED);
  }
  sent *s = &LED[NLED];
  memset(s, 0, sizeof *s);
  s->author = x->idx;
  memcpy(s->chat, m->chat, 16);
  snprintf(s->text, sizeof s->text, "%s", text);
  ck_assert_int_eq(
      secchat_client_chat_send(x->c, m->chat, text, strlen(text), shareable, NET.now, s->id), 0);
  s->deny = ~m->members;
  s->expect = expect & m->members & ~(1ull << x->idx);
  s->shareable = shareable != 0;
  return NLED++;
}

static size_t say(cl *x, const model *m, const char *text)
{
  return say_ex(x, m, text, 0, m->members);
}

/* Check every new MESSAGE event of every client against the ledger. */
static void check_all(void)
{
  for (int i = 0; i < NET.nnode; i++) {
    cl *x = NET.node[i];
    for (; NCHK[x->idx] < x->nev; NCHK[x->idx]++) {
      const sn_event *r = &x->ev[NCHK[x->idx]];
      if (r->type != SECCHAT_CLIENT_EV_MESSAGE)
        continue;
      sent *s = ledger_find(r->msgid);
      if (s == NULL || r->dlen != strlen(s->text) || memcmp(r->data, s->text, r->dlen) != 0) {
        FORGED_TEXT_SEEN++;
        ck_abort_msg("client %d showed a message nobody sent (%.*s)", i, (int)r->dlen,
                     (const char *)r->data);
      }
      ck_assert_msg(memcmp(r->uid, UID(NET.node[s->author]), 20) == 0,
                    "client %d: '%s' shown with the wrong author", i, s->text);
      ck_assert_msg(memcmp(r->chat, s->chat, 16) == 0, "client %d: '%s' in the wrong chat", i,
                    s->text);
      ck_assert_uint_eq(r->flags & SECCHAT_MSG_VERIFIED, SECCHAT_MSG_VERIFIED);
      ck_assert_msg((s->got & (1ull << i)) == 0, "client %d showed '%s' twice", i, s->text);
      ck_assert_uint_eq((r->flags & SECCHAT_MSG_SHAREABLE) != 0, s->shareable);
      /* a non-member at sending time sees it only if the author marked it
       * shareable, and then only through history (after joining) */
      ck_assert_msg((s->deny & (1ull << i)) == 0 ||
                        (s->shareable && (r->flags & SECCHAT_MSG_HISTORY)),
                    "client %d showed '%s' sent while it was not a member (flags %x)", i, s->text,
                    r->flags);
      s->got |= 1ull << i;
      if (r->flags & SECCHAT_MSG_HISTORY)
        s->got_hist |= 1ull << i;
    }
  }
}

/* Every ledger entry from `from` on was shown to every client it expects. */
static void expect_all(size_t from)
{
  check_all();
  for (size_t k = from; k < NLED; k++) {
    uint64_t miss = LED[k].expect & ~LED[k].got;
    ck_assert_msg(miss == 0, "'%s' (by %d) not shown to mask %llx", LED[k].text, LED[k].author,
                  (unsigned long long)miss);
  }
}

/* The group layer's view of a chat (adversary and diagnostics only). */
static grp_chat *grp_chat_of(cl *x, const uint8_t chat[16])
{
  for (size_t i = 0; i < x->c->grp->nchats; i++)
    if (memcmp(x->c->grp->chats[i]->id, chat, 16) == 0)
      return x->c->grp->chats[i];
  return NULL;
}

/* ---- chats ----------------------------------------------------------------------------- */

static void invite_accept(cl *admin, model *m, cl *x, int by_name)
{
  /* the admin needs x's verified token: by uid, or by its name (pinned on
   * first use, then resolved as a user would type it) */
  uint8_t uid[20];
  if (by_name) {
    ck_assert_int_eq(secchat_client_lookup_name(admin->c, x->name, strlen(x->name)), 0);
    pump();
    ck_assert_int_eq(secchat_client_resolve(admin->c, x->name, strlen(x->name), uid), 0);
    ck_assert_mem_eq(uid, UID(x), 20);
  } else {
    ck_assert_int_eq(secchat_client_lookup_uid(admin->c, UID(x)), 0);
    pump();
    memcpy(uid, UID(x), 20);
  }
  int from = x->nev;
  ck_assert_int_eq(secchat_client_chat_invite(admin->c, m->chat, uid, NET.now), 0);
  pump();
  ck_assert_int_eq(sn_count(x, SECCHAT_CLIENT_EV_CHAT_INVITED, from), 1);
  ck_assert_mem_eq(sn_last(x, SECCHAT_CLIENT_EV_CHAT_INVITED)->uid, UID(admin), 20);
  ck_assert_int_eq(tu_chat_state(x->c, m->chat), 1);
  ck_assert_int_eq(secchat_client_chat_answer(x->c, m->chat, 1, NET.now), 0);
  pump();
  ck_assert_int_eq(tu_chat_state(x->c, m->chat), 3);
  ck_assert_int_eq(sn_count(x, SECCHAT_CLIENT_EV_CHAT_JOINED, from), 1);
  m->members |= 1ull << x->idx;
}

static void make_chat(cl *admin, model *m)
{
  memset(m, 0, sizeof *m);
  int from = admin->nev;
  ck_assert_int_eq(secchat_client_chat_create(admin->c, NET.now, m->chat), 0);
  pump();
  ck_assert_int_eq(sn_count(admin, SECCHAT_CLIENT_EV_CHAT_CREATED, from), 1);
  m->members = 1ull << admin->idx;
}

static int popcount64(uint64_t v)
{
  int n = 0;
  for (; v; v &= v - 1)
    n++;
  return n;
}

/* Every client of mask agrees with the model on the member list. */
static void check_members(const model *m, uint64_t who)
{
  static uint8_t uids[NMAX][20];
  for (int i = 0; i < NET.nnode; i++) {
    if (!(who & (1ull << i)))
      continue;
    int n = secchat_client_chat_members(NET.node[i]->c, m->chat, uids, NMAX);
    ck_assert_int_eq(n, popcount64(m->members));
    uint64_t seen = 0;
    for (int k = 0; k < n; k++)
      for (int j = 0; j < NET.nnode; j++)
        if (memcmp(uids[k], UID(NET.node[j]), 20) == 0)
          seen |= 1ull << j;
    ck_assert_uint_eq(seen, m->members);
  }
}

/* The admin's log decides who is a member. */
static uint64_t admin_members(cl *adm, const model *m)
{
  static uint8_t uids[NMAX][20];
  int n = secchat_client_chat_members(adm->c, m->chat, uids, NMAX);
  ck_assert_int_gt(n, 0);
  uint64_t v = 0;
  for (int k = 0; k < n; k++)
    for (int j = 0; j < NET.nnode; j++)
      if (memcmp(uids[k], UID(NET.node[j]), 20) == 0)
        v |= 1ull << j;
  return v;
}

/* ---- the hostile relay (frame level) ----------------------------------------------------- */

typedef struct evil {
  cl *victim;
  int mode;
  int type;                /* frame type acted on */
  const uint8_t *from;     /* only frames from this uid (NULL: any) */
  const uint8_t *except;   /* never frames from this uid */
  sn_held held;            /* held back (reorder) or recorded (replay) */
  uint32_t rnd;
  int seen, dropped, duplicated, reordered, corrupted;
  int limit; /* MODE_DROP: drop at most this many (0: all) */
} evil;

enum { MODE_PASS = 0, MODE_DROP, MODE_CHAOS, MODE_RECORD };

static void evil_clear(evil *e) { sn_held_clear(&e->held); }

/* Re-inject everything held, newest first (reorder / replay). */
static void evil_release(evil *e)
{
  sn_release(&NET, &e->held, e->victim->c);
  pump();
}

static int frame_matches(const evil *e, const uint8_t *body, size_t len)
{
  sc_frame f;
  if (sc_frame_decode(&f, body, len) != 0 || (int)f.type != e->type)
    return 0;
  /* A DELIVER names no sender: the relay reads the (unauthenticated)
   * sender uid of the sender-key envelope, as a hostile relay could. */
  sc_sk_header h;
  const uint8_t *from = f.type == SC_FRAME_DIRECT_DELIVER ? f.u.direct_deliver.from_uid
                        : f.type == SC_FRAME_DELIVER &&
                                sc_sk_parse_blob(f.u.deliver.blob.p, f.u.deliver.blob.len, &h) == 0
                            ? h.sender_uid
                            : NULL;
  if (e->except != NULL && from != NULL && memcmp(from, e->except, 20) == 0)
    return 0;
  if (e->from == NULL)
    return 1;
  return from != NULL && memcmp(from, e->from, 20) == 0;
}

static int evil_filter(void *ctx, const uint8_t *body, size_t len)
{
  evil *e = ctx;
  if (e->mode == MODE_PASS || !frame_matches(e, body, len))
    return 1;
  e->seen++;
  switch (e->mode) {
  case MODE_DROP:
    if (e->limit != 0 && e->dropped >= e->limit)
      return 1;
    e->dropped++;
    return 0;
  case MODE_RECORD: sn_hold(&e->held, body, len); return 1;
  case MODE_CHAOS: {
    uint32_t r = sn_dice(&e->rnd) % 9;
    if (r == 0) {
      e->dropped++;
      return 0;
    }
    if (r == 1) {
      e->duplicated++;
      sc_client_test_inject(e->victim->c, body, len, NET.now);
      return 1;
    }
    if (r == 2) {
      e->reordered++;
      sn_hold(&e->held, body, len);
      return 0;
    }
    if (r == 3) { /* replayed later as well */
      sn_hold(&e->held, body, len);
      return 1;
    }
    if (r == 4 && e->type == SC_FRAME_DELIVER) { /* a bit flipped instead (C4) */
      static uint8_t bad[SECCHAT_MAX_FRAME_BODY];
      sc_frame f;
      ck_assert_int_eq(sc_frame_decode(&f, body, len), 0);
      static uint8_t blob[SECCHAT_MAX_FRAME_BODY];
      memcpy(blob, f.u.deliver.blob.p, f.u.deliver.blob.len);
      uint32_t at = sn_dice(&e->rnd) * 7919u;
      blob[at % f.u.deliver.blob.len] ^= (uint8_t)(1u << (at % 8));
      f.u.deliver.blob.p = blob;
      secchat_ssize bl = sc_frame_encode(&f, bad, sizeof bad);
      ck_assert_int_gt(bl, 0);
      e->corrupted++;
      sc_client_test_inject(e->victim->c, bad, (size_t)bl, NET.now);
      return 0;
    }
    return 1;
  }
  default: return 1;
  }
}

static void evil_on(evil *e, cl *victim, int mode, int type, const uint8_t *from)
{
  memset(e, 0, sizeof *e);
  e->victim = victim;
  e->mode = mode;
  e->type = type;
  e->from = from;
  e->rnd = 4242;
  sc_client_test_filter(victim->c, evil_filter, e);
}

static void evil_off(evil *e)
{
  sc_client_test_filter(e->victim->c, NULL, NULL);
  evil_clear(e);
}

/* The history MESSAGE events of x from event index `from` are in author
 * time order (docs/groups.md section 5). */
static int history_in_order(const cl *x, int from)
{
  uint64_t last = 0;
  int n = 0;
  for (int i = from; i < x->nev; i++)
    if (x->ev[i].type == SECCHAT_CLIENT_EV_MESSAGE && (x->ev[i].flags & SECCHAT_MSG_HISTORY)) {
      ck_assert_uint_ge(x->ev[i].ts, last);
      last = x->ev[i].ts;
      n++;
    }
  return n;
}

/* ---- scale: 3, 10 and 50 members ----------------------------------------------------------- */

/* n clients: the admin, n - 2 invitees who accept (so a chat of n - 1
 * members) and one who declines. */
static void run_scale(int n)
{
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int i = 0; i < n; i++) {
    char nm[16];
    snprintf(nm, sizeof nm, "user%02d", i);
    cl_online(cl_new(nm));
  }
  cl *admin = NET.node[0];
  model m;
  make_chat(admin, &m);
  /* everyone but the last is invited and accepts; half by uid, half by
   * name; the last declines */
  for (int i = 1; i < n - 1; i++)
    invite_accept(admin, &m, NET.node[i], i % 2);
  cl *dec = NET.node[n - 1];
  ck_assert_int_eq(secchat_client_lookup_name(admin->c, dec->name, strlen(dec->name)), 0);
  pump();
  ck_assert_int_eq(secchat_client_chat_invite(admin->c, m.chat, UID(dec), NET.now), 0);
  pump();
  ck_assert_int_eq(tu_chat_state(dec->c, m.chat), 1);
  int from = admin->nev;
  ck_assert_int_eq(secchat_client_chat_answer(dec->c, m.chat, 0, NET.now), 0);
  pump();
  ck_assert_int_eq(sn_count(admin, SECCHAT_CLIENT_EV_CHAT_DECLINED, from), 1);
  ck_assert_mem_eq(sn_last(admin, SECCHAT_CLIENT_EV_CHAT_DECLINED)->uid, UID(dec), 20);
  ck_assert_int_ne(tu_chat_state(dec->c, m.chat), 3);
  advance(3000);
  check_members(&m, m.members);

  /* several authors: the admin, the newest member, and up to 8 others */
  int authors[10] = {0, n - 2}, na = 2;
  for (int i = 1; i < n - 2 && na < 10; i += (n > 12 ? n / 8 : 1))
    authors[na++] = i;
  size_t mark = NLED;
  for (int round = 0; round < 2; round++)
    for (int a = 0; a < na; a++) {
      char t[48];
      snprintf(t, sizeof t, "r%d from %d", round, authors[a]);
      say(NET.node[authors[a]], &m, t);
      pump();
    }
  advance(2000);
  expect_all(mark);
  ck_assert_uint_eq(LED[mark].got, m.members & ~1ull); /* exactly the members */

  /* leave: the leaver shows nothing sent after */
  cl *lv = NET.node[1];
  from = NET.node[0]->nev;
  ck_assert_int_eq(secchat_client_chat_leave(lv->c, m.chat, NET.now), 0);
  pump();
  m.members &= ~(1ull << lv->idx);
  advance(2000);
  ck_assert_int_ge(sn_count(NET.node[0], SECCHAT_CLIENT_EV_MEMBER_LEFT, from), 1);
  ck_assert_int_ne(tu_chat_state(lv->c, m.chat), 3);
  /* remove */
  cl *rm = NET.node[2];
  ck_assert_int_eq(secchat_client_chat_remove(admin->c, m.chat, UID(rm), NET.now), 0);
  pump();
  m.members &= ~(1ull << rm->idx);
  advance(2000);
  ck_assert_int_ge(sn_count(rm, SECCHAT_CLIENT_EV_CHAT_REMOVED, 0), 1);
  check_members(&m, m.members);
  mark = NLED;
  for (int a = 0; a < na; a++) {
    if (authors[a] == 1 || authors[a] == 2)
      continue;
    char t[48];
    snprintf(t, sizeof t, "after departures from %d", authors[a]);
    say(NET.node[authors[a]], &m, t);
    pump();
  }
  advance(2000);
  expect_all(mark);
  /* the leaver and the removed one cannot send into the chat either */
  ck_assert_int_ne(secchat_client_chat_send(lv->c, m.chat, "ghost", 5, 0, NET.now, NULL), 0);
  ck_assert_int_ne(secchat_client_chat_send(rm->c, m.chat, "ghost", 5, 0, NET.now, NULL), 0);

  /* rejoin: re-invited, sees only what is sent after */
  size_t during = say(admin, &m, "while rm was out");
  pump();
  invite_accept(admin, &m, rm, 0);
  advance(3000);
  mark = NLED;
  say(NET.node[n - 2], &m, "welcome back");
  say(admin, &m, "admin says hi");
  pump();
  advance(2000);
  expect_all(mark);
  ck_assert_uint_eq(LED[during].got & (1ull << rm->idx), 0);
  check_members(&m, m.members);

  /* catch-up: a member is offline while the others chat, comes back and
   * recovers every missed message from two peers (merged, no duplicates,
   * in order) */
  cl *off = NET.node[n - 2];
  host_close(off);
  pump();
  mark = NLED;
  for (int a = 0; a < na; a++) {
    if (authors[a] == 1 || authors[a] == n - 2)
      continue;
    for (int k = 0; k < 3; k++) {
      char t[48];
      snprintf(t, sizeof t, "missed %d from %d", k, authors[a]);
      say_ex(NET.node[authors[a]], &m, t, 0, m.members & ~(1ull << off->idx));
      pump();
      NET.now += 7;
    }
  }
  advance(2000);
  expect_all(mark);
  cl_connect(off);
  advance(3000);
  from = off->nev;
  int peers = popcount64(m.members & ~(1ull << off->idx));
  ck_assert_int_eq(secchat_client_chat_request_history(off->c, m.chat, 2, 1000, NET.now),
                   peers < 2 ? peers : 2);
  advance(3000);
  for (size_t k = mark; k < NLED; k++)
    LED[k].expect |= 1ull << off->idx;
  expect_all(mark);
  ck_assert_int_eq(history_in_order(off, from), (int)(NLED - mark));
  ck_assert_uint_eq(sn_last(off, SECCHAT_CLIENT_EV_HISTORY_DONE)->gaps, 0);
  ck_assert_int_eq(FORGED_TEXT_SEEN, 0);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  fprintf(stderr, "e2e scale %d: %zu messages, %.2f s\n", n, NLED,
          (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
}

START_TEST(test_scale_3) { run_scale(3 + 1); }
END_TEST

START_TEST(test_scale_10) { run_scale(10 + 1); }
END_TEST

START_TEST(test_scale_50) { run_scale(50 + 1); }
END_TEST

/* n clients online, all members of one chat created by NET.node[0]. */
static void chat_of(int n, model *m)
{
  for (int i = 0; i < n; i++) {
    char nm[16];
    snprintf(nm, sizeof nm, "m%02d", i);
    cl_online(cl_new(nm));
  }
  make_chat(NET.node[0], m);
  for (int i = 1; i < n; i++)
    invite_accept(NET.node[0], m, NET.node[i], i % 2);
  advance(3000);
}

static uint64_t online_mask(void)
{
  uint64_t v = 0;
  for (int i = 0; i < NET.nnode; i++)
    if (secchat_client_is_online(NET.node[i]->c))
      v |= 1ull << i;
  return v;
}

/* ---- history catch-up, two responders merged --------------------------------------------- */

START_TEST(test_history_catchup_merged)
{
  model m;
  chat_of(5, &m);
  cl *a = NET.node[0], *x = NET.node[1], *y = NET.node[2], *z = NET.node[3], *w = NET.node[4];
  host_close(x); /* x misses everything below */
  pump();
  size_t first = NLED;
  for (int k = 0; k < 3; k++) {
    char t[48];
    for (int i = 0; i < NET.nnode; i++) {
      if (i == 1)
        continue;
      snprintf(t, sizeof t, "part1 %d by %d", k, i);
      say_ex(NET.node[i], &m, t, 0, online_mask());
      pump();
      NET.now += 10; /* distinct author timestamps */
    }
  }
  host_close(y); /* y holds only the first part */
  pump();
  for (int k = 0; k < 3; k++) {
    char t[48];
    for (int i = 0; i < NET.nnode; i++) {
      if (i == 1 || i == 2)
        continue;
      snprintf(t, sizeof t, "part2 %d by %d", k, i);
      say_ex(NET.node[i], &m, t, 0, online_mask());
      pump();
      NET.now += 10;
    }
  }
  advance(2000);
  expect_all(first);
  /* only y and z answer: overlapping histories (part 1 from both). a and
   * w go offline after x is back (x sees their PRESENCE offline; a member
   * that went offline while x was away is covered by
   * test_known_bug_stale_presence) */
  cl_connect(y);
  cl_connect(x);
  advance(3000);
  host_close(a);
  host_close(w);
  pump();
  ck_assert(secchat_client_is_online(x->c));
  int from = x->nev;
  ck_assert_int_eq(secchat_client_chat_request_history(x->c, m.chat, 2, 1000, NET.now), 2);
  pump();
  advance(3000);
  check_all();
  const sn_event *hd = sn_last(x, SECCHAT_CLIENT_EV_HISTORY_DONE);
  ck_assert_ptr_nonnull(hd);
  ck_assert_uint_eq(hd->gaps, 0);
  /* every missed message recovered exactly once (check_all refuses
   * duplicates), verified, through history, in order */
  for (size_t k = first; k < NLED; k++) {
    ck_assert_msg(LED[k].got & (1ull << x->idx), "x did not recover '%s'", LED[k].text);
    ck_assert(LED[k].got_hist & (1ull << x->idx));
  }
  ck_assert_int_eq(history_in_order(x, from), (int)(NLED - first));
  /* asking again brings nothing new and shows nothing twice */
  from = x->nev;
  ck_assert_int_gt(secchat_client_chat_request_history(x->c, m.chat, 2, 1000, NET.now), 0);
  advance(3000);
  check_all();
  ck_assert_int_eq(sn_count(x, SECCHAT_CLIENT_EV_MESSAGE, from), 0);
  /* and x is live again */
  size_t mark = say(z, &m, "live again");
  pump();
  LED[mark].expect = online_mask() & m.members & ~(1ull << z->idx);
  expect_all(mark);
}
END_TEST

/* ---- a missed rotation recovered through KEY_REQ ------------------------------------------ */

/* a posts 99 messages; then the relay drops `limit` pairwise frames from a
 * to b (0: all of them until healed) while a sends 4 more: the 100-message
 * rotation's SKDIST for b is among the dropped ones. Returns the ledger
 * index of the first message after the drop started. */
static size_t rotation_with_drop(model *m, evil *e, int limit)
{
  chat_of(3, m);
  cl *a = NET.node[0], *b = NET.node[1];
  size_t first = NLED;
  for (int k = 0; k < 99; k++) {
    char t[32];
    snprintf(t, sizeof t, "msg %d", k);
    say(a, m, t);
    pump();
  }
  expect_all(first);
  evil_on(e, b, MODE_DROP, SC_FRAME_DIRECT_DELIVER, UID(a));
  e->limit = limit;
  size_t rot = NLED;
  for (int k = 99; k < 103; k++) {
    char t[32];
    snprintf(t, sizeof t, "msg %d", k);
    say(a, m, t);
    pump();
  }
  check_all();
  ck_assert_int_gt(e->dropped, 0);
  ck_assert_uint_eq(LED[NLED - 1].got & (1ull << 2), 1ull << 2); /* c was not attacked */
  return rot;
}

START_TEST(test_rotation_keyreq)
{
  /* only the SKDIST is lost: b's KEY_REQ on the first blob of the unknown
   * chain brings it back at once, the kept blobs are retried */
  model m;
  evil e;
  size_t rot = rotation_with_drop(&m, &e, 1);
  cl *b = NET.node[1];
  grp_chat *bc = grp_chat_of(b, m.chat);
  ck_assert_ptr_nonnull(bc);
  ck_assert_ptr_nonnull(bc->mem);
  expect_all(0);
  for (size_t k = rot; k < NLED; k++)
    ck_assert_uint_eq(LED[k].got_hist & (1ull << b->idx), 0); /* live, not history */
  /* the dropped frame really was the new chain: without it b had waited */
  uint32_t kr = 0;
  for (uint32_t k = 0; k < bc->nmem; k++)
    kr += bc->mem[k].keyreq_ms != 0;
  ck_assert_uint_eq(kr, 1);
  evil_off(&e);
}
END_TEST

/* Regression (was SECCHAT_KNOWN_BUG_KEYREQ_NO_RETRY): when the SKDIST
 * AND the owner's answer to the one KEY_REQ are both lost, nothing asked
 * again and b never showed messages that were delivered to it. Now
 * sc_group_tick re-sends KEY_REQ for kept blobs (doubling interval from
 * SC_GRP_KEYREQ_INTERVAL_MS): the kept blobs are shown after the relay
 * heals. */
START_TEST(test_known_bug_keyreq_no_retry)
{
  model m;
  evil e;
  (void)rotation_with_drop(&m, &e, 0);
  evil_off(&e);
  advance(65000);
  expect_all(0);
}
END_TEST

/* ---- relay restart ------------------------------------------------------------------------- */

START_TEST(test_relay_restart)
{
  model m;
  chat_of(4, &m);
  cl *a = NET.node[0], *b = NET.node[1];
  size_t first = NLED;
  say(a, &m, "before");
  say(b, &m, "before too");
  pump();
  expect_all(first);
  /* a's post is relayed but the RELAYED never reaches a: unacknowledged */
  evil e;
  evil_on(&e, a, MODE_DROP, SC_FRAME_RELAYED, NULL);
  size_t un = say(a, &m, "unacknowledged");
  pump();
  ck_assert_int_gt(e.dropped, 0);
  expect_all(un);
  /* the relay process dies: every connection is gone, a new server core
   * with the same keys comes up */
  secchat_server_free(NET.srv[0]);
  NET.srv[0] = NULL;
  for (int i = 0; i < NET.nnode; i++) {
    NET.node[i]->conn = 0;
    secchat_client_disconnected(NET.node[i]->c, NET.now);
  }
  evil_off(&e);
  size_t down = say_ex(b, &m, "sent while the relay was down", 0, m.members);
  NET.now += 5000;
  server_start();
  int from = a->nev;
  for (int i = 0; i < NET.nnode; i++)
    cl_connect(NET.node[i]);
  advance(5000);
  for (int i = 0; i < NET.nnode; i++)
    ck_assert(secchat_client_is_online(NET.node[i]->c));
  /* the unacknowledged post went out again with the same msg id and was
   * acknowledged once; receivers showed it once (check_all) */
  int relayed = 0;
  for (int i = from; i < a->nev; i++)
    relayed += a->ev[i].type == SECCHAT_CLIENT_EV_RELAYED &&
               memcmp(a->ev[i].msgid, LED[un].id, 32) == 0;
  ck_assert_int_eq(relayed, 1);
  /* the post queued while the relay was down went out as soon as b logged
   * in: members that reconnected after b missed it (the relay stores
   * nothing) and get it through history */
  check_all();
  for (int i = 0; i < NET.nnode; i++)
    if (i != b->idx && !(LED[down].got & (1ull << i))) {
      ck_assert_int_gt(
          secchat_client_chat_request_history(NET.node[i]->c, m.chat, 2, 1000, NET.now), 0);
      advance(3000);
    }
  expect_all(down);
  /* routes re-opened on the new relay: everyone talks */
  size_t mark = NLED;
  for (int i = 0; i < NET.nnode; i++) {
    char t[48];
    snprintf(t, sizeof t, "after restart from %d", i);
    say(NET.node[i], &m, t);
    pump();
  }
  advance(2000);
  expect_all(mark);
  ck_assert_int_eq(FORGED_TEXT_SEEN, 0);
}
END_TEST

/* ---- hostile relay: drop, duplicate, reorder, replay DELIVER -------------------------------- */

START_TEST(test_hostile_deliver_chaos)
{
  model m;
  chat_of(4, &m);
  cl *b = NET.node[1], *d = NET.node[3];
  evil e, r;
  evil_on(&e, b, MODE_CHAOS, SC_FRAME_DELIVER, NULL);
  evil_on(&r, d, MODE_RECORD, SC_FRAME_DELIVER, NULL);
  size_t first = NLED;
  for (int k = 0; k < 40; k++) {
    int au = (k % 3 == 0) ? 0 : (k % 3 == 1) ? 2 : 3;
    char t[48];
    snprintf(t, sizeof t, "chaos %d by %d", k, au);
    size_t i = say(NET.node[au], &m, t);
    LED[i].expect &= ~(1ull << b->idx); /* b may lose it to the relay */
    pump();
    if (k % 10 == 9)
      evil_release(&e); /* held frames come late, in reverse order */
  }
  evil_release(&e);
  advance(2000);
  expect_all(first);
  ck_assert_int_gt(e.dropped, 0);
  ck_assert_int_gt(e.duplicated, 0);
  ck_assert_int_gt(e.reordered, 0);
  ck_assert_int_gt(e.corrupted, 0);
  ck_assert_int_gt(sn_count(b, SECCHAT_CLIENT_EV_CHAT_WARNING, 0), 0); /* reported */
  /* replay everything d ever received, twice: nothing new is shown (C1) */
  int before = sn_count(d, SECCHAT_CLIENT_EV_MESSAGE, 0);
  ck_assert_int_gt(r.held.n, 20);
  for (int rep = 0; rep < 2; rep++)
    sn_replay(&NET, &r.held, d->c);
  pump();
  check_all();
  ck_assert_int_eq(sn_count(d, SECCHAT_CLIENT_EV_MESSAGE, 0), before);
  evil_off(&r);
  /* the heartbeat reports what b lost (C3); history fills it */
  evil_off(&e);
  advance(65000);
  int lost = 0;
  for (size_t k = first; k < NLED; k++)
    lost += !(LED[k].got & (1ull << b->idx));
  ck_assert_int_gt(lost, 0);
  ck_assert_int_gt(sn_count(b, SECCHAT_CLIENT_EV_GAP, 0), 0);
  ck_assert_int_gt(secchat_client_chat_request_history(b->c, m.chat, 2, 1000, NET.now), 0);
  advance(3000);
  for (size_t k = first; k < NLED; k++)
    LED[k].expect |= 1ull << b->idx;
  expect_all(first);
  fprintf(stderr,
          "e2e chaos: %d dropped, %d duplicated, %d reordered, %d corrupted, %d recovered by "
          "history\n",
          e.dropped, e.duplicated, e.reordered, e.corrupted, lost);
}
END_TEST

/* ---- hostile relay: re-post onto another route (C5), another sender (C6) -------------------- */

/* from: the sender to claim (alt instead if the blob is from's own). */
static size_t reencode_deliver(const uint8_t *body, size_t len, const uint8_t *route,
                               const uint8_t *from, const uint8_t *alt, uint8_t *out, size_t cap)
{
  static uint8_t blob[SECCHAT_MAX_FRAME_BODY];
  sc_frame f;
  ck_assert_int_eq(sc_frame_decode(&f, body, len), 0);
  ck_assert_int_eq(f.type, SC_FRAME_DELIVER);
  if (route != NULL)
    f.u.deliver.route_id = route;
  if (from != NULL) { /* DELIVER names no sender: rewrite the envelope's claim */
    sc_sk_header h;
    memcpy(blob, f.u.deliver.blob.p, f.u.deliver.blob.len);
    ck_assert_int_eq(sc_sk_parse_blob(blob, f.u.deliver.blob.len, &h), 0);
    if (memcmp(h.sender_uid, from, 20) == 0)
      from = alt;
    ck_assert_mem_ne(h.sender_uid, from, 20);
    memcpy(blob + (h.sender_uid - blob), from, 20);
    f.u.deliver.blob.p = blob;
  }
  secchat_ssize n = sc_frame_encode(&f, out, cap);
  ck_assert_int_gt(n, 0);
  return (size_t)n;
}

START_TEST(test_hostile_repost_other_route)
{
  model m1, m2;
  chat_of(3, &m1);
  cl *a = NET.node[0], *b = NET.node[1], *c = NET.node[2];
  make_chat(a, &m2);
  invite_accept(a, &m2, b, 0);
  advance(3000);
  /* b is in both chats; the relay records what b gets: chat one's posts,
   * then one of chat two (its route id) */
  evil r1;
  evil_on(&r1, b, MODE_RECORD, SC_FRAME_DELIVER, NULL);
  size_t first = NLED;
  say(a, &m1, "only for chat one");
  pump();
  say(c, &m1, "carol in chat one");
  pump();
  int n1 = r1.held.n;
  ck_assert_int_gt(n1, 0);
  say(a, &m2, "chat two");
  pump();
  ck_assert_int_gt(r1.held.n, n1);
  sc_frame f2;
  ck_assert_int_eq(sc_frame_decode(&f2, r1.held.body[r1.held.n - 1], r1.held.len[r1.held.n - 1]),
                   0);
  uint8_t route2[32];
  memcpy(route2, f2.u.deliver.route_id, 32);
  expect_all(first);
  int before = sn_count(b, SECCHAT_CLIENT_EV_MESSAGE, 0);
  static uint8_t out[SECCHAT_MAX_FRAME_BODY];
  for (int i = 0; i < n1; i++) {
    /* C5: chat one's blob re-posted on chat two's route */
    size_t ol =
        reencode_deliver(r1.held.body[i], r1.held.len[i], route2, NULL, NULL, out, sizeof out);
    sc_client_test_inject(b->c, out, ol, NET.now);
    /* C6: claimed by another sender (c, a member of chat one; a for c's) */
    ol = reencode_deliver(r1.held.body[i], r1.held.len[i], NULL, UID(c), UID(a), out, sizeof out);
    sc_client_test_inject(b->c, out, ol, NET.now);
  }
  pump();
  check_all();
  ck_assert_int_eq(sn_count(b, SECCHAT_CLIENT_EV_MESSAGE, 0), before);
  evil_off(&r1);
  /* both chats still work */
  size_t mark = NLED;
  say(a, &m1, "still one");
  say(a, &m2, "still two");
  pump();
  expect_all(mark);
}
END_TEST

/* ---- hostile relay: minted token for a pinned name (C7) -------------------------------------- */

static size_t mint(const secchat_identity *id, const char *name, char *out)
{
  return tu_mint_token(KEY, ISSUER, id, name, NET.now, out);
}

static const uint8_t *FORGE_BODY;
static size_t FORGE_LEN;
static cl *FORGE_VICTIM;

static int replace_lookup(void *ctx, const uint8_t *body, size_t len)
{
  (void)ctx;
  sc_frame f;
  if (sc_frame_decode(&f, body, len) == 0 && f.type == SC_FRAME_LOOKUP_RESULT) {
    sc_client_test_inject(FORGE_VICTIM->c, FORGE_BODY, FORGE_LEN, NET.now);
    return 0;
  }
  return 1;
}

START_TEST(test_hostile_minted_token)
{
  model m;
  chat_of(3, &m); /* m00 (admin) pinned m01 and m02 */
  cl *a = NET.node[0], *b = NET.node[1];
  secchat_identity *eve = NULL;
  ck_assert_int_eq(secchat_identity_new(&eve), 0);
  static char tok[SECCHAT_MAX_TOKEN_BYTES + 1];
  size_t tl = mint(eve, b->name, tok);
  sc_frame f;
  memset(&f, 0, sizeof f);
  f.type = SC_FRAME_LOOKUP_RESULT;
  f.u.lookup_result.count = 1;
  f.u.lookup_result.tokens[0].p = tok;
  f.u.lookup_result.tokens[0].len = tl;
  static uint8_t body[8192];
  secchat_ssize bl = sc_frame_encode(&f, body, sizeof body);
  ck_assert_int_gt(bl, 0);
  FORGE_BODY = body;
  FORGE_LEN = (size_t)bl;
  FORGE_VICTIM = a;
  sc_client_test_filter(a->c, replace_lookup, NULL);
  int from = a->nev;
  ck_assert_int_eq(secchat_client_lookup_name(a->c, b->name, strlen(b->name)), 0);
  pump();
  sc_client_test_filter(a->c, NULL, NULL);
  ck_assert_int_eq(sn_count(a, SECCHAT_CLIENT_EV_IDENTITY_CHANGED, from), 1);
  const sn_event *ic = sn_last(a, SECCHAT_CLIENT_EV_IDENTITY_CHANGED);
  ck_assert_mem_eq(ic->uid, secchat_identity_uid(eve), 20);
  ck_assert_mem_eq(ic->uid2, UID(b), 20);
  /* the name does not resolve silently to the new key; inviting it or
   * talking to it is blocked until the user accepts it */
  uint8_t uid[20];
  ck_assert_int_eq(secchat_client_resolve(a->c, b->name, strlen(b->name), uid),
                   SECCHAT_ERR_IDENTITY_CHANGED);
  ck_assert_int_eq(secchat_client_chat_invite(a->c, m.chat, secchat_identity_uid(eve), NET.now),
                   SECCHAT_ERR_IDENTITY_CHANGED);
  ck_assert_int_eq(secchat_client_pairwise_send(a->c, secchat_identity_uid(eve),
                                                (const uint8_t *)"x", 1, NET.now),
                   SECCHAT_ERR_IDENTITY_CHANGED);
  char s1[SECCHAT_SAFETY_NUMBER_BYTES], s2[SECCHAT_SAFETY_NUMBER_BYTES];
  ck_assert_int_eq(secchat_client_safety_number(a->c, secchat_identity_uid(eve), s1, sizeof s1),
                   0);
  ck_assert_int_eq(secchat_client_safety_number(a->c, UID(b), s2, sizeof s2), 0);
  ck_assert_int_eq(secchat_safety_number_equal(s1, s2), 0);
  /* the chat with the real b is untouched */
  size_t mark = say(a, &m, "the chat goes on");
  pump();
  expect_all(mark);
  ck_assert_uint_eq(secchat_client_chat_members(a->c, m.chat, NULL, 0), 3);
  secchat_identity_free(eve);
}
END_TEST

/* ---- hostile relay: a remove withheld from a returning member ------------------------------ */

START_TEST(test_hostile_withheld_remove)
{
  model m;
  chat_of(4, &m);
  cl *a = NET.node[0], *r = NET.node[1], *v = NET.node[2], *w = NET.node[3];
  host_close(r);
  pump();
  ck_assert_int_eq(secchat_client_chat_remove(a->c, m.chat, UID(v), NET.now), 0);
  pump();
  m.members &= ~(1ull << v->idx);
  advance(2000);
  /* r returns; the relay lets through only what the removed v sends it */
  evil e;
  evil_on(&e, r, MODE_DROP, SC_FRAME_DIRECT_DELIVER, NULL);
  e.except = UID(v);
  evil rec;
  evil_on(&rec, w, MODE_RECORD, SC_FRAME_DELIVER, NULL);
  int vmsgs = sn_count(v, SECCHAT_CLIENT_EV_MESSAGE, 0);
  cl_connect(r);
  advance(5000);
  /* r cannot confirm its log: it sends neither keys nor messages */
  int rc = secchat_client_chat_send(r->c, m.chat, "unconfirmed", 11, 0, NET.now, NULL);
  ck_assert_int_eq(rc, SECCHAT_ERR_INVALID_STATE);
  /* its log is still the stale one (v a member) and unconfirmed: no new
   * chain is drawn or distributed before that (docs/groups.md section 2) */
  grp_chat *rc_chat = grp_chat_of(r, m.chat);
  ck_assert_ptr_nonnull(rc_chat);
  ck_assert_int_eq(rc_chat->synced, 0);
  ck_assert_uint_lt(rc_chat->nlog, grp_chat_of(a, m.chat)->nlog);
  advance(5000);
  /* the relay hands v everything posted in the chat meanwhile, on v's old
   * route too: v shows nothing */
  size_t mark = say(w, &m, "v must not read this");
  LED[mark].expect &= ~(1ull << r->idx); /* r has not got the new route yet */
  pump();
  sn_replay(&NET, &rec.held, v->c);
  pump();
  check_all();
  ck_assert_int_eq(sn_count(v, SECCHAT_CLIENT_EV_MESSAGE, 0), vmsgs);
  ck_assert_int_gt(e.dropped, 0);
  /* healed: r learns the remove and talks to the right members only.
   * (r's log requests were answered while the relay dropped the answers;
   * r would re-ask on tick - test_known_bug_resync_no_retry - but here it
   * reconnects, as chatc does after a send refused with INVALID_STATE.) */
  evil_off(&e);
  evil_clear(&rec);
  host_close(r);
  pump();
  cl_connect(r);
  advance(3000);
  ck_assert_int_gt(secchat_client_chat_request_history(r->c, m.chat, 2, 1000, NET.now), 0);
  advance(3000);
  LED[mark].expect |= 1ull << r->idx; /* sent while r was a member */
  size_t after = say(r, &m, "r is back");
  pump();
  advance(2000);
  expect_all(mark);
  expect_all(after);
  sn_replay(&NET, &rec.held, v->c);
  pump();
  check_all();
  ck_assert_int_eq(sn_count(v, SECCHAT_CLIENT_EV_MESSAGE, 0), vmsgs);
  evil_off(&rec);
}
END_TEST

/* ---- leave while the admin is offline ----------------------------------------------------- */

/* l leaves while the admin a is offline (its LEAVE to a is dropped by the
 * relay: a is not connected; the relay stores nothing), then a comes back
 * and commits a membership change. */
static void leave_while_admin_offline(model *m)
{
  chat_of(4, m);
  cl *a = NET.node[0], *c = NET.node[2], *l = NET.node[3];
  host_close(a);
  pump();
  ck_assert_int_eq(secchat_client_chat_leave(l->c, m->chat, NET.now), 0);
  pump();
  m->members &= ~(1ull << l->idx);
  advance(2000);
  ck_assert_int_eq(tu_chat_state(l->c, m->chat), 4);
  cl_connect(a);
  advance(5000);
  ck_assert_int_eq(secchat_client_chat_remove(a->c, m->chat, UID(c), NET.now), 0);
  pump();
  m->members &= ~(1ull << c->idx);
  advance(3000);
}

START_TEST(test_leave_admin_offline)
{
  /* the members who got the LEAVE honour it, and messages of the epoch
   * right after are not shown to l */
  model m;
  leave_while_admin_offline(&m);
  cl *b = NET.node[1], *l = NET.node[3];
  size_t mark = say(b, &m, "b after the leave");
  pump();
  advance(3000);
  expect_all(mark);
  check_all();
  ck_assert_uint_eq(LED[mark].got & (1ull << l->idx), 0);
}
END_TEST

/* Regression (was SECCHAT_KNOWN_BUG_LEAVE_ADMIN_OFFLINE): a LEAVE sent
 * while the admin is offline was lost for the admin (pairwise DIRECT to an
 * offline uid is dropped); the admin's next commits sent l the log WITH the
 * route secret, l's client (state 4, left) re-activated (CHAT_JOINED
 * without any invitation), took the admin's new sender keys and showed
 * messages sent after it left. Now: a left chat never re-activates without
 * INVITE + accept, l re-sends its LEAVE and the members who honoured it
 * relay it to the admin when it comes online, so the admin commits it. */
START_TEST(test_known_bug_leave_admin_offline)
{
  model m;
  leave_while_admin_offline(&m);
  cl *a = NET.node[0], *l = NET.node[3];
  int l_state = tu_chat_state(l->c, m.chat),
      l_joined = sn_count(l, SECCHAT_CLIENT_EV_CHAT_JOINED, 0);
  uint64_t a_members = admin_members(a, &m);
  /* one more epoch, then the admin talks: l must show nothing (the relay
   * may hand l every blob: here the copies b received). Before the fix
   * check_all aborted: "client 3 showed 'third epoch by a' sent while it
   * was not a member" */
  evil rec;
  evil_on(&rec, NET.node[1], MODE_RECORD, SC_FRAME_DELIVER, NULL);
  invite_accept(a, &m, NET.node[2], 0);
  advance(3000);
  say(a, &m, "third epoch by a");
  pump();
  sn_replay(&NET, &rec.held, l->c);
  pump();
  check_all();
  evil_off(&rec);
  /* the admin committed l's leave (before the fix it still listed l) */
  ck_assert_uint_eq(a_members & (1ull << l->idx), 0);
  ck_assert_uint_eq(admin_members(a, &m) & (1ull << l->idx), 0);
  /* l did not re-join by itself (before: state 3, a second CHAT_JOINED),
   * not even after the later commits */
  ck_assert_int_eq(l_state, 4);
  ck_assert_int_eq(l_joined, 1);
  ck_assert_int_eq(tu_chat_state(l->c, m.chat), 4);
  ck_assert_int_eq(sn_count(l, SECCHAT_CLIENT_EV_CHAT_JOINED, 0), 1);
}
END_TEST

/* ---- a malicious member answers history with forged and edited items (C13-C15) ------------ */

typedef struct item {
  const uint8_t *inner;
  size_t len;
  const uint8_t *sig;
} item;

/* A raw HIST_RESP from mal to x over their authenticated channel. */
static void send_hist_resp(cl *mal, cl *x, const uint8_t req[16], const uint8_t chat[16],
                           const item *it, size_t n, int more)
{
  static uint8_t buf[SC_GRP_MAX_PW + 1];
  sc_mp_writer w;
  buf[0] = SC_PORT_GROUP;
  sc_mp_writer_init(&w, buf + 1, sizeof buf - 1);
  sc_mp_write_array(&w, 5);
  sc_mp_write_uint(&w, 9);
  sc_mp_write_bin(&w, req, 16);
  sc_mp_write_bin(&w, chat, 16);
  sc_mp_write_array(&w, (uint32_t)n);
  for (size_t i = 0; i < n; i++) {
    sc_mp_write_array(&w, 2);
    sc_mp_write_bin(&w, it[i].inner, it[i].len);
    sc_mp_write_bin(&w, it[i].sig, 64);
  }
  sc_mp_write_bool(&w, more != 0);
  int64_t len = sc_mp_writer_finish(&w);
  ck_assert_int_gt(len, 0);
  ck_assert_int_eq(sc_client_pw_send(mal->c, UID(x), buf, (size_t)len + 1), 0);
}

START_TEST(test_history_forged_by_member)
{
  model m;
  chat_of(4, &m);
  cl *a = NET.node[0], *x = NET.node[1], *mal = NET.node[2], *w = NET.node[3];
  host_close(x);
  pump();
  size_t first = NLED;
  for (int k = 0; k < 4; k++) {
    char t[48];
    snprintf(t, sizeof t, "genuine %d by a", k);
    say_ex(a, &m, t, 0, online_mask());
    pump();
    snprintf(t, sizeof t, "genuine %d by w", k);
    say_ex(w, &m, t, 0, online_mask());
    pump();
    NET.now += 10;
  }
  expect_all(first);
  /* only the malicious member is online to answer */
  cl_connect(x);
  advance(3000);
  host_close(a);
  host_close(w);
  pump();
  grp_chat *mc = grp_chat_of(mal, m.chat);
  ck_assert_ptr_nonnull(mc);
  ck_assert_uint_ge(mc->hist_count, 8);
  /* forged items built from genuine ones mal holds */
  static uint8_t edited[SC_GRP_MAX_PW];
  const grp_hist *h0 = &mc->hist[(mc->hist_head + 0) % SC_GRP_HIST_MAX_ITEMS];
  const grp_hist *h1 = &mc->hist[(mc->hist_head + 1) % SC_GRP_HIST_MAX_ITEMS];
  ck_assert_uint_le(h0->inner_len, sizeof edited);
  memcpy(edited, h0->inner, h0->inner_len);
  uint8_t *txt = memmem(edited, h0->inner_len, "genuine", 7);
  ck_assert_ptr_nonnull(txt);
  memcpy(txt, "FORGED!", 7); /* edited body, same signature (C14) */
  static uint8_t junk_sig[64];
  memset(junk_sig, 0x33, sizeof junk_sig);
  item forged[3] = {
      {edited, h0->inner_len, h0->sig},    /* edited body */
      {h0->inner, h0->inner_len, h1->sig}, /* another item's signature */
      {h1->inner, h1->inner_len, junk_sig} /* unsigned / fabricated (C13) */
  };
  /* an unsolicited page (no request open) is dropped */
  uint8_t bogus_req[16];
  memset(bogus_req, 0x77, sizeof bogus_req);
  item real1 = {h1->inner, h1->inner_len, h1->sig};
  send_hist_resp(mal, x, bogus_req, m.chat, &real1, 1, 0);
  pump();
  check_all();
  ck_assert_int_eq(sn_count(x, SECCHAT_CLIENT_EV_MESSAGE, 0), 0);
  /* x asks mal; mal's forged page comes first, then its honest pages */
  int from = x->nev;
  ck_assert_int_eq(secchat_client_chat_request_history(x->c, m.chat, 1, 1000, NET.now), 1);
  const grp_req *q = NULL;
  for (unsigned i = 0; i < SC_GRP_MAX_REQS; i++)
    if (x->c->grp->reqs[i].live && memcmp(x->c->grp->reqs[i].peer, UID(mal), 20) == 0)
      q = &x->c->grp->reqs[i];
  ck_assert_ptr_nonnull(q);
  send_hist_resp(mal, x, q->req_id, m.chat, forged, 3, 1);
  pump();
  advance(3000);
  check_all(); /* aborts on any forged text */
  ck_assert_int_gt(sn_count(x, SECCHAT_CLIENT_EV_CHAT_WARNING, from), 0);
  /* the honest part of the answer still arrived: everything, once */
  for (size_t k = first; k < NLED; k++)
    ck_assert_msg(LED[k].got & (1ull << x->idx), "x lacks '%s'", LED[k].text);
  /* C15: mal omits items. x is away again while a and w post; back with
   * only mal online, x gets from mal a genuine page that skips the middle
   * of a's chain and claims to be complete: the hole is reported as a gap,
   * and the admin fills it when it is back */
  host_close(x);
  cl_connect(a);
  cl_connect(w);
  advance(3000);
  size_t second = NLED;
  for (int k = 0; k < 6; k++) {
    char t[48];
    snprintf(t, sizeof t, "second %d by a", k);
    say_ex(a, &m, t, 0, online_mask());
    pump();
    NET.now += 10;
  }
  expect_all(second);
  cl_connect(x);
  advance(3000);
  host_close(a);
  host_close(w);
  pump();
  item part[6];
  size_t np = 0, seen_a = 0;
  for (uint32_t k = 0; k < mc->hist_count; k++) {
    const grp_hist *h = &mc->hist[(mc->hist_head + k) % SC_GRP_HIST_MAX_ITEMS];
    const sent *sd = ledger_find(h->msg_id);
    if (sd == NULL || (size_t)(sd - LED) < second)
      continue;
    seen_a++;
    if (seen_a == 3 || seen_a == 4)
      continue; /* omitted */
    part[np].inner = h->inner;
    part[np].len = h->inner_len;
    part[np++].sig = h->sig;
  }
  ck_assert_uint_eq(seen_a, 6);
  ck_assert_uint_eq(np, 4);
  from = x->nev;
  ck_assert_int_eq(secchat_client_chat_request_history(x->c, m.chat, 1, 1000, NET.now), 1);
  q = NULL;
  for (unsigned i = 0; i < SC_GRP_MAX_REQS; i++)
    if (x->c->grp->reqs[i].live && memcmp(x->c->grp->reqs[i].peer, UID(mal), 20) == 0)
      q = &x->c->grp->reqs[i];
  ck_assert_ptr_nonnull(q);
  send_hist_resp(mal, x, q->req_id, m.chat, part, np, 0);
  pump();
  advance(3000);
  check_all();
  const sn_event *hd = sn_last(x, SECCHAT_CLIENT_EV_HISTORY_DONE);
  ck_assert_ptr_nonnull(hd);
  ck_assert_int_gt(sn_count(x, SECCHAT_CLIENT_EV_HISTORY_DONE, from), 0);
  ck_assert_uint_eq(hd->gaps, 2); /* exactly the two omitted */
  ck_assert_uint_eq(LED[second + 2].got & (1ull << x->idx), 0);
  ck_assert_uint_eq(LED[second + 3].got & (1ull << x->idx), 0);
  ck_assert(LED[second + 5].got & (1ull << x->idx));
  cl_connect(a);
  advance(3000);
  ck_assert_int_gt(secchat_client_chat_request_history(x->c, m.chat, 2, 1000, NET.now), 0);
  advance(3000);
  for (size_t k = second; k < NLED; k++)
    LED[k].expect |= 1ull << x->idx;
  expect_all(first);
  ck_assert_int_eq(FORGED_TEXT_SEEN, 0);
}
END_TEST

/* Regression (was SECCHAT_KNOWN_BUG_STALE_PRESENCE): the group layer's
 * per-member `online` flags survived a disconnect, so a member that went
 * offline while we were away stayed "online" forever (history requests
 * went to it and were lost with gaps = 0; its coming back was no
 * offline->online transition). Now the flags are cleared when the relay
 * connection goes (sc_group_connection_lost): 1 request (only a is
 * online). */
START_TEST(test_known_bug_stale_presence)
{
  model m;
  chat_of(3, &m);
  cl *b = NET.node[1], *c = NET.node[2];
  host_close(b);
  pump();
  host_close(c); /* while b is away */
  pump();
  cl_connect(b);
  advance(3000);
  ck_assert_int_eq(secchat_client_chat_request_history(b->c, m.chat, 3, 1000, NET.now), 1);
}
END_TEST

/* Regression (was SECCHAT_KNOWN_BUG_RESYNC_NO_RETRY): a returning member
 * whose LOG_REQ answers were lost never asked again while connected and
 * refused every send with SECCHAT_ERR_INVALID_STATE until a reconnect.
 * Now it re-asks the online members on tick (with back-off) and can send
 * once the relay delivers again. */
START_TEST(test_known_bug_resync_no_retry)
{
  model m;
  chat_of(3, &m);
  cl *r = NET.node[1];
  host_close(r);
  pump();
  evil e;
  evil_on(&e, r, MODE_DROP, SC_FRAME_DIRECT_DELIVER, NULL);
  cl_connect(r);
  advance(3000);
  ck_assert_int_gt(e.dropped, 0);
  ck_assert_int_eq(secchat_client_chat_send(r->c, m.chat, "x", 1, 0, NET.now, NULL),
                   SECCHAT_ERR_INVALID_STATE);
  evil_off(&e);
  advance(60000);
  size_t k = say(r, &m, "after the relay healed");
  pump();
  expect_all(k);
}
END_TEST

/* ---- seeded random interaction across the whole stack ---------------------------------------- */

static uint32_t lcg(uint32_t *st)
{
  *st = *st * 1664525u + 1013904223u;
  return *st >> 8;
}

/* Process restart: export, free, new core, import, reload its history
 * records (as chatc does). */
static void cl_restart(cl *x)
{
  static uint8_t blob[1 << 20];
  size_t bl = 0;
  int was = sn_stop(&NET, x, blob, sizeof blob, &bl);
  check_all();
  client_core(x);
  ck_assert_int_eq(secchat_client_import_state(x->c, blob, bl, 0, NET.now), 0);
  for (int i = 0; i < x->nev; i++)
    if (x->ev[i].type == SECCHAT_CLIENT_EV_HISTORY_RECORD)
      (void)secchat_client_history_load(x->c, x->ev[i].data, x->ev[i].dlen, NET.now);
  drain_events(x);
  if (was)
    cl_connect(x);
}

static int ADMIN_OFF = 1; /* the admin may go offline too */
static int PW_CHAOS = 1;  /* pairwise frames of one client go through chaos */
static char TRACE[1 << 16];
static size_t TRACE_LEN;
static void trace(int op, const char *what, int who)
{
  if (TRACE_LEN < sizeof TRACE - 64)
    TRACE_LEN += (size_t)snprintf(TRACE + TRACE_LEN, sizeof TRACE - TRACE_LEN, " %d:%s%d", op,
                                  what, who);
}

/* Re-invite x. The INVITE can be lost when x restarted and the admin
 * still used the session x no longer has (docs/client.md: that first
 * message is lost, the channel is re-established); then nothing changes
 * and a later attempt goes through. Returns 1 if x is a member again. */
static int try_rejoin(cl *adm, model *m, cl *x)
{
  ck_assert_int_eq(secchat_client_lookup_uid(adm->c, UID(x)), 0);
  pump();
  int rc = secchat_client_chat_invite(adm->c, m->chat, UID(x), NET.now);
  ck_assert_msg(rc == 0 || rc == SECCHAT_ERR_EXISTS, "invite rc %d", rc);
  pump();
  if (tu_chat_state(x->c, m->chat) == 1) {
    ck_assert_int_eq(secchat_client_chat_answer(x->c, m->chat, 1, NET.now), 0);
    pump();
    advance(2000);
  }
  uint64_t now_members = admin_members(adm, m);
  ck_assert_uint_eq(now_members & ~m->members & ~(1ull << x->idx), 0);
  m->members = now_members;
  return (now_members >> x->idx) & 1;
}

static void random_run(uint32_t seed, int steps)
{
  TRACE_LEN = 0;
  TRACE[0] = '\0';
  enum { N = 8 };
  model m;
  chat_of(N, &m);
  cl *adm = NET.node[0];
  const int victim = N - 1;  /* its DELIVER frames go through chaos */
  const int victim2 = N - 2; /* its DIRECT_DELIVER (pairwise) frames too */
  evil e, e2;
  evil_on(&e, NET.node[victim], MODE_CHAOS, SC_FRAME_DELIVER, NULL);
  e.rnd = seed;
  evil_on(&e2, NET.node[victim2], PW_CHAOS ? MODE_CHAOS : MODE_PASS, SC_FRAME_DIRECT_DELIVER, NULL);
  e2.rnd = seed * 3u + 1u;
  size_t mem_max = 0;
  int leaves = 0;
  uint32_t st = seed;
  int sends = 0, refused = 0, restarts = 0, removes = 0, rejoins = 0;
  for (int op = 0; op < steps; op++) {
    uint32_t r = lcg(&st) % 100;
    int i = (int)(lcg(&st) % N);
    cl *x = NET.node[i];
    if (r < 55) {
      if (!(m.members & (1ull << i)) || x->conn == 0)
        continue;
      char t[48];
      snprintf(t, sizeof t, "s%u n%d by %d", seed, op, i);
      size_t k = NLED;
      if (NLED == CAPLED) {
        CAPLED = CAPLED ? CAPLED * 2 : 1024;
        LED = realloc(LED, CAPLED * sizeof *LED);
      }
      int shr = (int)(lcg(&st) & 1);
      int rc = secchat_client_chat_send(x->c, m.chat, t, strlen(t), shr, NET.now, LED[k].id);
      ck_assert_msg(rc == 0 || rc == SECCHAT_ERR_INVALID_STATE, "send rc %d", rc);
      if (rc == 0) {
        sent *s = &LED[NLED++];
        s->author = i;
        memcpy(s->chat, m.chat, 16);
        snprintf(s->text, sizeof s->text, "%s", t);
        s->deny = ~m.members;
        s->expect = 0;
        s->got = s->got_hist = 0;
        s->shareable = shr;
        s->author_departed = 0;
        sends++;
      } else {
        refused++;
      }
    } else if (r < 65) {
      if ((i != 0 || ADMIN_OFF) && x->conn != 0) {
        host_close(x);
        trace(op, "off", i);
      }
    } else if (r < 77) {
      if (x->conn == 0) {
        cl_connect(x);
        trace(op, "on", i);
      }
    } else if (r < 80) {
      if (i != 0 && i != victim && i != victim2) {
        cl_restart(x);
        restarts++;
        trace(op, "restart", i);
      }
    } else if (r == 83 || r == 84) {
      /* only while the admin is online: a LEAVE the admin misses is now
       * committed later (re-sent / relayed, test_known_bug_leave_admin_offline),
       * but this model takes the admin's list as the truth right away */
      if (i != 0 && (m.members & (1ull << i)) && x->conn != 0 && adm->conn != 0 &&
          tu_chat_state(x->c, m.chat) == 3) {
        ck_assert_int_eq(secchat_client_chat_leave(x->c, m.chat, NET.now), 0);
        m.members &= ~(1ull << i);
        leaves++;
        trace(op, "leave", i);
        for (size_t k = 0; k < NLED; k++)
          if (LED[k].author == i)
            LED[k].author_departed = 1;
      }
    } else if (r < 83) {
      if (i != 0 && (m.members & (1ull << i)) && adm->conn != 0) {
        ck_assert_int_eq(secchat_client_chat_remove(adm->c, m.chat, UID(x), NET.now), 0);
        m.members &= ~(1ull << i);
        removes++;
        /* a departed member's final frontier lists at most 8 of its chains
         * (docs/groups.md section 2): older chains are refused afterwards,
         * so delivery of what it sent before is not required below */
        for (size_t k = 0; k < NLED; k++)
          if (LED[k].author == i)
            LED[k].author_departed = 1;
        trace(op, "rm", i);
      }
    } else if (r < 90) {
      if (i != 0 && !(m.members & (1ull << i)) && adm->conn != 0 && x->conn != 0 &&
          tu_chat_state(x->c, m.chat) != 1) {
        pump();
        advance(2000);
        if (adm->conn != 0 && x->conn != 0 && try_rejoin(adm, &m, x)) {
          rejoins++;
          trace(op, "join", i);
        }
      }
    } else {
      advance(1000 + lcg(&st) % 3000);
    }
    pump();
    check_all();
    if (op % 50 == 49) {
      evil_release(&e);
      evil_release(&e2);
    }
    /* bounded memory: the group layer's queues are drained, its stores
     * within their caps, no contact beyond the N-1 others */
    for (int k = 0; k < N; k++) {
      sc_group *g = NET.node[k]->c->grp;
      ck_assert_uint_eq(g->aq_n, 0);
      ck_assert_uint_eq(g->eq_n, 0);
      ck_assert_uint_le(g->nchats, 1);
      for (size_t c = 0; c < g->nchats; c++) {
        ck_assert_uint_le(g->chats[c]->hist_count, SC_GRP_HIST_MAX_ITEMS);
        ck_assert_uint_le(g->chats[c]->nmem, N);
        ck_assert_uint_le(g->chats[c]->npblob, SC_GRP_PENDING_BLOBS);
      }
      ck_assert_uint_le(secchat_client_contact_count(NET.node[k]->c), N - 1);
      size_t mem = sc_group_memory(g);
      ck_assert_uint_lt(mem, 8u << 20);
      if (mem > mem_max)
        mem_max = mem;
    }
  }
  /* heal: no more faults, everyone online, every member catches up */
  evil_release(&e);
  evil_off(&e);
  evil_release(&e2);
  evil_off(&e2);
  for (int i = 0; i < N; i++)
    if (NET.node[i]->conn == 0)
      cl_connect(NET.node[i]);
  advance(20000);
  /* everyone asks every other member: a message posted while only its
   * author was online is known to nobody else (no heartbeat reached
   * anyone), so asking a subset can legitimately miss it */
  for (int i = 0; i < N; i++)
    if (m.members & (1ull << i))
      (void)secchat_client_chat_request_history(NET.node[i]->c, m.chat, N, 1000, NET.now);
  advance(40000);
  check_all();
  /* delivered: every message to every final member that was a member when
   * it was sent, and whose author is still a member (a departed author's
   * tail beyond its final frontier is refused by design) */
  int missing = 0, delivered = 0, exempt = 0, exempt_ok = 0;
  for (size_t k = 0; k < NLED; k++) {
    if (!(m.members & (1ull << LED[k].author)))
      continue;
    uint64_t want = m.members & ~LED[k].deny & ~(1ull << LED[k].author);
    if (LED[k].author_departed) {
      exempt++;
      exempt_ok += (want & ~LED[k].got) == 0;
      if (getenv("E2E_VERBOSE") && (want & ~LED[k].got))
        fprintf(stderr, "  exempt undelivered '%s' want %llx got %llx\n", LED[k].text,
                (unsigned long long)want, (unsigned long long)LED[k].got);
      continue;
    }
    uint64_t miss = want & ~LED[k].got;
    delivered += popcount64(LED[k].got);
    if (miss) {
      missing++;
      fprintf(stderr, "seed %u: '%s' missing at mask %llx (got %llx, hist %llx)\n", seed,
              LED[k].text, (unsigned long long)miss, (unsigned long long)LED[k].got,
              (unsigned long long)LED[k].got_hist);
    }
  }
  fprintf(stderr,
          "e2e random seed %u: %d steps, %d sends (%d refused while resyncing), %d restarts, "
          "%d removes, %d leaves, %d rejoins, %d shown, %d+%d chaos drops, %d not delivered, %d "
          "by authors departed since (not required), largest group state %zu bytes\n",
          seed, steps, sends, refused, restarts, removes, leaves, rejoins, delivered, e.dropped,
          e2.dropped, missing, exempt, mem_max);
  fprintf(stderr, "  (of those by departed authors, %d delivered to every final member anyway)\n",
          exempt_ok);
  if (missing)
    fprintf(stderr, "trace:%s\n", TRACE);
  ck_assert_int_eq(missing, 0);
  ck_assert_int_eq(FORGED_TEXT_SEEN, 0);
}

START_TEST(test_random_interaction)
{
  /* E2E_SEEDS=n runs n seeds, E2E_STEPS=k steps each (a longer campaign
   * outside CI); the default is 2 seeds of 1500 steps */
  const char *env = getenv("E2E_SEEDS"), *senv = getenv("E2E_STEPS");
  int nseeds = env != NULL ? atoi(env) : 2;
  int steps = senv != NULL ? atoi(senv) : 1500;
  if (nseeds < 1)
    nseeds = 1;
  if (steps < 1)
    steps = 1500;
  for (int s = 0; s < nseeds; s++) {
    if (s > 0) { /* a fresh world per seed */
      teardown();
      setup();
    }
    random_run(1000u + (uint32_t)s * 7919u, steps);
  }
}
END_TEST

/* ---- suite --------------------------------------------------------------------------------- */

static Suite *e2e_suite(void)
{
  Suite *s = suite_create("e2e");
  TCase *tc = tcase_create("core");
  const char *only = getenv("E2E_ONLY"); /* run the tests whose name contains it */
#define ADD(fn)                                                                               \
  do {                                                                                        \
    if (only == NULL || strstr(#fn, only) != NULL)                                            \
      tcase_add_test(tc, fn);                                                                 \
  } while (0)
  tcase_set_timeout(tc, 600);
  tcase_add_checked_fixture(tc, setup, teardown);
  ADD(test_scale_3);
  ADD(test_scale_10);
  ADD(test_scale_50);
  ADD(test_history_catchup_merged);
  ADD(test_rotation_keyreq);
  ADD(test_known_bug_keyreq_no_retry);
  ADD(test_relay_restart);
  ADD(test_hostile_deliver_chaos);
  ADD(test_hostile_repost_other_route);
  ADD(test_hostile_minted_token);
  ADD(test_hostile_withheld_remove);
  ADD(test_leave_admin_offline);
  ADD(test_known_bug_leave_admin_offline);
  ADD(test_history_forged_by_member);
  ADD(test_random_interaction);
  ADD(test_known_bug_stale_presence);
  ADD(test_known_bug_resync_no_retry);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return tu_run(e2e_suite()); }
