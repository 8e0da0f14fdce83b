/* simnet.c: the simulated network of the Check tests (see simnet.h). */
#include "simnet.h"

#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "client.h" /* sc_client_test_inject */

/* Scratch for one client write; the net is single-threaded. */
static uint8_t WBUF[65536];

static void events_clear(sn_node *x)
{
  for (int i = 0; i < x->nev; i++)
    free(x->ev[i].data);
  free(x->ev);
  x->ev = NULL;
  x->nev = x->cap = 0;
}

void sn_free(sn_net *net)
{
  for (int i = 0; i < net->nnode; i++) {
    sn_node *x = net->node[i];
    events_clear(x);
    secchat_client_free(x->c);
    secchat_identity_free(x->id);
    free(x);
  }
  for (int s = 0; s < SN_MAX_SERVERS; s++)
    secchat_server_free(net->srv[s]);
  memset(net, 0, sizeof *net);
}

sn_node *sn_add(sn_net *net, const char *name)
{
  ck_assert_int_lt(net->nnode, SN_MAX_NODES);
  sn_node *x = calloc(1, sizeof *x);
  ck_assert_ptr_nonnull(x);
  x->idx = net->nnode;
  size_t n = strlen(name);
  memcpy(x->name, name, n < sizeof x->name ? n : sizeof x->name - 1);
  net->node[net->nnode++] = x;
  return x;
}

void sn_close(sn_net *net, sn_node *x)
{
  if (x->conn != 0) {
    ck_assert_int_eq(secchat_server_conn_closed(net->srv[x->srv], x->conn, net->now), 0);
    x->conn = 0;
  }
  secchat_client_disconnected(x->c, net->now);
}

void sn_connect(sn_net *net, sn_node *x, int srv, const uint8_t *src, size_t srclen)
{
  if (x->conn != 0)
    sn_close(net, x);
  x->srv = srv;
  ck_assert_int_eq(secchat_server_conn_open(net->srv[srv], &x->conn, src, srclen, net->now), 0);
  ck_assert_int_eq(secchat_client_connect(x->c, net->now), 0);
  sn_pump(net);
}

int sn_stop(sn_net *net, sn_node *x, uint8_t *blob, size_t cap, size_t *len)
{
  ck_assert_int_eq(secchat_client_export_state(x->c, blob, cap, len, NULL), 0);
  int was = x->conn != 0;
  sn_close(net, x);
  sn_drain(net, x);
  secchat_client_free(x->c);
  x->c = NULL;
  return was;
}

/* Server output of x's connection to the client. strict: a live connection,
 * every byte must be taken; otherwise a flush before close, where the
 * client may refuse (it may have failed already). Returns 1 if any. */
static int deliver(sn_net *net, sn_node *x, int strict)
{
  secchat_server *srv = net->srv[x->srv];
  secchat_iovec iov[8];
  int k, moved = 0;
  while (x->conn != 0 && (k = secchat_server_conn_output(srv, x->conn, iov, 8)) > 0) {
    size_t total = 0;
    for (int j = 0; j < k; j++) {
      secchat_ssize r = secchat_client_recv(x->c, iov[j].base, iov[j].len, net->now);
      if (strict)
        ck_assert_int_eq(r, (secchat_ssize)iov[j].len);
      total += iov[j].len;
    }
    int rc = secchat_server_conn_consumed(srv, x->conn, total);
    if (strict)
      ck_assert_int_eq(rc, 0);
    moved = 1;
  }
  return moved;
}

/* Client writes of x to its server connection (strict as for deliver). */
static int upload(sn_net *net, sn_node *x, int strict)
{
  secchat_ssize n;
  int moved = 0;
  while (x->conn != 0 && (n = secchat_client_send(x->c, WBUF, sizeof WBUF)) > 0) {
    secchat_ssize r =
        secchat_server_conn_recv(net->srv[x->srv], x->conn, WBUF, (size_t)n, net->now);
    if (strict)
      ck_assert_int_eq(r, n);
    moved = 1;
  }
  return moved;
}

/* The servers' CLOSE events: flush if asked, then the host closes. */
static int server_closes(sn_net *net)
{
  int moved = 0;
  for (int s = 0; s < SN_MAX_SERVERS; s++) {
    if (net->srv[s] == NULL)
      continue;
    secchat_server_event sev;
    memset(&sev, 0, sizeof sev);
    sev.struct_size = sizeof sev;
    while (secchat_server_next_event(net->srv[s], &sev) == 1) {
      if (sev.type != SECCHAT_SERVER_EV_CLOSE)
        continue;
      for (int i = 0; i < net->nnode; i++) {
        sn_node *x = net->node[i];
        if (x->srv != s || x->conn != sev.conn)
          continue;
        if (sev.flush)
          (void)deliver(net, x, 0);
        sn_close(net, x);
        moved = 1;
      }
    }
  }
  return moved;
}

/* One round; 1 if anything moved. */
static int pump_once(sn_net *net)
{
  int moved = 0;
  for (int i = 0; i < net->nnode; i++) {
    moved |= upload(net, net->node[i], 1);
    moved |= deliver(net, net->node[i], 1);
  }
  moved |= server_closes(net);
  for (int i = 0; i < net->nnode; i++)
    sn_drain(net, net->node[i]);
  return moved;
}

void sn_pump(sn_net *net)
{
  for (int i = 0; i < 1000000 && pump_once(net); i++)
    ;
}

/* Append a cleared record to x's log. */
static sn_event *log_slot(sn_net *net, sn_node *x)
{
  if (net->max_events > 0)
    ck_assert_int_lt(x->nev, net->max_events);
  if (x->nev == x->cap) {
    x->cap = x->cap ? x->cap * 2 : 256;
    x->ev = realloc(x->ev, (size_t)x->cap * sizeof *x->ev);
    ck_assert_ptr_nonnull(x->ev);
  }
  sn_event *r = &x->ev[x->nev++];
  memset(r, 0, sizeof *r);
  return r;
}

void sn_drain(sn_net *net, sn_node *x)
{
  secchat_client_event ev;
  memset(&ev, 0, sizeof ev);
  ev.struct_size = sizeof ev;
  while (secchat_client_next_event(x->c, &ev) == 1) {
    ck_assert_uint_eq(ev.struct_size, sizeof ev);
    sn_event *r = log_slot(net, x);
    r->type = ev.type;
    r->flags = ev.flags;
    r->count = ev.count;
    r->trust = ev.trust;
    r->code = ev.code;
    r->detail = ev.detail;
    r->ref = ev.ref;
    r->epoch = ev.epoch;
    r->gaps = ev.gaps;
    r->ts = ev.ts_ms;
    r->expires_s = ev.expires_s;
    memcpy(r->uid, ev.uid, 20);
    memcpy(r->uid2, ev.uid2, 20);
    memcpy(r->key, ev.key, 32);
    memcpy(r->fpr, ev.fingerprint, 32);
    memcpy(r->chat, ev.chat_id, 16);
    memcpy(r->msgid, ev.msg_id, 32);
    memcpy(r->text, ev.text, sizeof r->text);
    if (ev.name_len > 0) {
      ck_assert_ptr_nonnull(ev.name);
      memcpy(r->name, ev.name, ev.name_len < 129 ? ev.name_len : 129);
    }
    if (ev.data_len > 0 && (net->keep_data == NULL || net->keep_data(ev.type))) {
      r->data = malloc(ev.data_len);
      ck_assert_ptr_nonnull(r->data);
      memcpy(r->data, ev.data, ev.data_len);
      r->dlen = ev.data_len;
    }
    if (ev.type == SECCHAT_CLIENT_EV_CLOSE) {
      /* the host writes what is pending, then closes */
      (void)upload(net, x, 0);
      sn_close(net, x);
    }
  }
}

void sn_advance(sn_net *net, uint64_t ms, uint64_t step)
{
  uint64_t end = net->now + ms;
  while (net->now < end) {
    net->now += ms < step ? ms : step;
    if (net->now > end)
      net->now = end;
    for (int s = 0; s < SN_MAX_SERVERS; s++)
      if (net->srv[s] != NULL)
        secchat_server_on_timeout(net->srv[s], net->now);
    for (int i = 0; i < net->nnode; i++)
      secchat_client_on_timeout(net->node[i]->c, net->now);
    sn_pump(net);
  }
}

int sn_count(const sn_node *x, uint32_t type, int from)
{
  int n = 0;
  for (int i = from; i < x->nev; i++)
    n += x->ev[i].type == type;
  return n;
}

const sn_event *sn_last(const sn_node *x, uint32_t type)
{
  for (int i = x->nev - 1; i >= 0; i--)
    if (x->ev[i].type == type)
      return &x->ev[i];
  return NULL;
}

void sn_online(sn_net *net, sn_node *x, const uint8_t *src, size_t srclen)
{
  int from = x->nev;
  ck_assert_int_eq(secchat_client_register(x->c, x->name, strlen(x->name), net->now), 0);
  sn_connect(net, x, 0, src, srclen);
  ck_assert_int_eq(sn_count(x, SECCHAT_CLIENT_EV_REGISTERED, from), 1);
  ck_assert_int_eq(sn_count(x, SECCHAT_CLIENT_EV_AUTHENTICATED, from), 1);
  ck_assert(secchat_client_is_online(x->c));
}

void sn_hold(sn_held *h, const uint8_t *body, size_t len)
{
  if (h->n >= SN_HELD_MAX)
    return;
  h->body[h->n] = malloc(len);
  ck_assert_ptr_nonnull(h->body[h->n]);
  memcpy(h->body[h->n], body, len);
  h->len[h->n++] = len;
}

void sn_held_clear(sn_held *h)
{
  for (int i = 0; i < h->n; i++)
    free(h->body[i]);
  h->n = 0;
}

void sn_replay(const sn_net *net, const sn_held *h, secchat_client *c)
{
  for (int i = 0; i < h->n; i++)
    sc_client_test_inject(c, h->body[i], h->len[i], net->now);
}

void sn_release(const sn_net *net, sn_held *h, secchat_client *c)
{
  for (int i = h->n - 1; i >= 0; i--)
    sc_client_test_inject(c, h->body[i], h->len[i], net->now);
  sn_held_clear(h);
}

uint32_t sn_dice(uint32_t *state)
{
  *state = *state * 1103515245u + 12345u;
  return (*state >> 16) & 0x7fff;
}
