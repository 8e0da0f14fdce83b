/* iptable.c: per-address connection counts (see iptable.h). */
#include "iptable.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#define NBUCKETS 4096u /* power of two; chains stay short up to ~100k sources */

typedef struct entry {
  struct entry *next;
  chatd_ipkey key;
  unsigned count;
} entry;

struct chatd_iptable {
  pthread_mutex_t mu;
  unsigned cap;
  uint8_t hkey[crypto_shorthash_KEYBYTES];
  entry *bucket[NBUCKETS];
};

chatd_iptable *chatd_iptable_new(unsigned cap)
{
  chatd_iptable *t = calloc(1, sizeof *t);

  if (t == NULL)
    return NULL;
  pthread_mutex_init(&t->mu, NULL);
  t->cap = cap ? cap : 1;
  randombytes_buf(t->hkey, sizeof t->hkey);
  return t;
}

void chatd_iptable_free(chatd_iptable *t)
{
  if (t == NULL)
    return;
  for (size_t i = 0; i < NBUCKETS; i++)
    for (entry *e = t->bucket[i], *n; e; e = n) {
      n = e->next;
      free(e);
    }
  pthread_mutex_destroy(&t->mu);
  free(t);
}

void chatd_ipkey_from_sockaddr(chatd_ipkey *k, const struct sockaddr *sa)
{
  memset(k, 0, sizeof *k);
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
    k->b[10] = 0xff;
    k->b[11] = 0xff;
    memcpy(k->b + 12, &in->sin_addr, 4);
  } else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
    memcpy(k->b, &in6->sin6_addr, 16); /* v4-mapped is already canonical */
    /* A native IPv6 source counts as its /64: one host usually holds a
     * whole /64 and could otherwise take a fresh address per connection
     * (or registration) and walk past every per-source limit. */
    if (!IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
      memset(k->b + 8, 0, 8);
  }
}

static entry **slot(chatd_iptable *t, const chatd_ipkey *k)
{
  uint8_t h[crypto_shorthash_BYTES];
  uint64_t v;

  crypto_shorthash(h, k->b, sizeof k->b, t->hkey);
  memcpy(&v, h, sizeof v);
  entry **pp = &t->bucket[v & (NBUCKETS - 1)];
  while (*pp && memcmp((*pp)->key.b, k->b, sizeof k->b) != 0)
    pp = &(*pp)->next;
  return pp;
}

int chatd_iptable_acquire(chatd_iptable *t, const chatd_ipkey *k)
{
  int rc = 1;

  pthread_mutex_lock(&t->mu);
  entry **pp = slot(t, k);
  if (*pp == NULL) {
    entry *e = malloc(sizeof *e);
    if (e == NULL) {
      rc = -1;
    } else {
      e->next = NULL;
      e->key = *k;
      e->count = 1;
      *pp = e;
    }
  } else if ((*pp)->count >= t->cap) {
    rc = 0;
  } else {
    (*pp)->count++;
  }
  pthread_mutex_unlock(&t->mu);
  return rc;
}

void chatd_iptable_release(chatd_iptable *t, const chatd_ipkey *k)
{
  pthread_mutex_lock(&t->mu);
  entry **pp = slot(t, k);
  entry *e = *pp;
  if (e != NULL && --e->count == 0) {
    *pp = e->next;
    free(e);
  }
  pthread_mutex_unlock(&t->mu);
}

unsigned chatd_iptable_count(chatd_iptable *t, const chatd_ipkey *k)
{
  unsigned n;

  pthread_mutex_lock(&t->mu);
  entry *e = *slot(t, k);
  n = e ? e->count : 0;
  pthread_mutex_unlock(&t->mu);
  return n;
}
