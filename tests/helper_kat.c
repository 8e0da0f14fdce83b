/* helper_kat.c: generator of tests/vectors/crypto_kat.json, the crypto
 * known-answer vectors (identities, ratchet, envelopes, key distribution,
 * identity blobs, fingerprints, safety numbers).
 *
 * Everything is derived from the deterministic test RNG seeded with bytes
 * 0x00..0x1f, so the output is a pure function of the code. Two checks keep
 * code and spec honest:
 *  - test_senderkey.c includes this file (with KAT_NO_MAIN), regenerates
 *    the vectors and compares them with the committed JSON, so any change
 *    that alters a byte fails until the vectors are regenerated on purpose;
 *  - tests/python/test_kat.py recomputes every output from the inputs in the
 *    JSON with PyNaCl + hashlib, following docs/crypto.md only.
 *
 * Regenerate: build/tests/helper_kat > tests/vectors/crypto_kat.json
 *
 * `helper_kat open` reads one JSON object from stdin describing a chain and
 * an envelope made by someone else (tests/python/test_kat.py builds them
 * with the independent reference) and prints what sc_sk_open says:
 *   in:  {"sign_pk", "chat_id", "epoch", "log_head", "chain_id",
 *         "iteration", "ck", "route_id", "blob"}   (hex strings, integers)
 *   out: {"rc": "SECCHAT_ERR_..." or "OK", "body", "msg_id", "seq",
 *         "inner"} */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include <secchat/secchat.h>

#include "crypto.h"
#include "identity.h"
#include "rng.h"
#include "senderkey.h"

static json_t *kat_hex(const uint8_t *b, size_t n)
{
  char *s = malloc(2 * n + 1);
  if (!s)
    abort();
  sodium_bin2hex(s, 2 * n + 1, b, n);
  json_t *j = json_string(s);
  free(s);
  return j;
}

static void kat_die(const char *what)
{
  fprintf(stderr, "helper_kat: %s failed\n", what);
  abort();
}

static json_t *kat_identity(const secchat_identity *id)
{
  char uid_s[SECCHAT_UID_STRING_BYTES], fp[SECCHAT_FINGERPRINT_BYTES];
  if (secchat_identity_uid_string(id, uid_s, sizeof uid_s) ||
      secchat_identity_fingerprint(id, fp, sizeof fp))
    kat_die("identity text");
  json_t *j = json_object();
  json_object_set_new(j, "sign_seed", kat_hex(sc_identity_sign_sk(id), 32));
  json_object_set_new(j, "dh_sk", kat_hex(sc_identity_dh_sk(id), 32));
  json_object_set_new(j, "sign_pk", kat_hex(secchat_identity_sign_public_key(id), 32));
  json_object_set_new(j, "dh_pk", kat_hex(secchat_identity_dh_public_key(id), 32));
  json_object_set_new(j, "dh_sig", kat_hex(secchat_identity_dh_sig(id), 64));
  json_object_set_new(j, "uid", kat_hex(secchat_identity_uid(id), 20));
  json_object_set_new(j, "uid_string", json_string(uid_s));
  json_object_set_new(j, "fingerprint", json_string(fp));
  return j;
}

static json_t *kat_ratchet(void)
{
  uint8_t ck[32], mk[32], nxt[32];
  sc_random(ck, sizeof ck);
  json_t *j = json_object();
  json_t *steps = json_array();
  json_object_set_new(j, "ck0", kat_hex(ck, 32));
  for (int i = 0; i < 4; i++) {
    sc_sk_kdf_step(ck, mk, nxt);
    json_t *s = json_object();
    json_object_set_new(s, "i", json_integer(i));
    json_object_set_new(s, "mk", kat_hex(mk, 32));
    json_object_set_new(s, "ck_next", kat_hex(nxt, 32));
    json_array_append_new(steps, s);
    memcpy(ck, nxt, 32);
  }
  json_object_set_new(j, "steps", steps);
  return j;
}

static json_t *kat_message(sc_sk_sender *s, const secchat_identity *author, const uint8_t route[32],
                           uint64_t ts, uint64_t flags, uint64_t ctype, size_t body_len)
{
  static uint8_t body[400], blob[SC_SK_SEAL_CAP(400)], work[sizeof blob + 32];
  for (size_t i = 0; i < body_len; i++)
    body[i] = (uint8_t)('a' + i % 26);
  uint8_t ck_before[32], prev[32], mk[32], nxt[32], id[32];
  uint64_t it = s->iteration;
  memcpy(ck_before, s->ck, 32);
  memcpy(prev, s->prev_msg_id, 32);
  sc_sk_kdf_step(ck_before, mk, nxt);
  sc_sk_plain m = {ts, flags, ctype, body, body_len};
  int64_t n = sc_sk_seal(s, author, route, &m, blob, sizeof blob, id);
  if (n < 0)
    kat_die("seal");

  /* Open it as a peer would, to extract inner and sig for the record. */
  sc_sk_peer peer;
  sc_sk_opened o;
  if (sc_sk_peer_init(&peer, s->chat_id, secchat_identity_sign_public_key(author)) ||
      sc_sk_peer_add_chain(&peer, s->epoch, s->log_head, s->chain_id, it, ck_before, 0) ||
      sc_sk_open(&peer, route, blob, (size_t)n, work, sizeof work, &o))
    kat_die("open");

  json_t *j = json_object();
  json_object_set_new(j, "iteration", json_integer((json_int_t)it));
  json_object_set_new(j, "ts_ms", json_integer((json_int_t)ts));
  json_object_set_new(j, "flags", json_integer((json_int_t)flags));
  json_object_set_new(j, "content_type", json_integer((json_int_t)ctype));
  json_object_set_new(j, "body", kat_hex(body, body_len));
  json_object_set_new(j, "prev_msg_id", kat_hex(prev, 32));
  json_object_set_new(j, "nonce", kat_hex(o.header.nonce, 24));
  json_object_set_new(j, "ck", kat_hex(ck_before, 32));
  json_object_set_new(j, "mk", kat_hex(mk, 32));
  json_object_set_new(j, "inner", kat_hex(o.inner_bytes, o.inner_len));
  json_object_set_new(j, "sig", kat_hex(o.sig, 64));
  json_object_set_new(j, "msg_id", kat_hex(id, 32));
  json_object_set_new(j, "header", kat_hex(o.header.bytes, o.header.len));
  json_object_set_new(j, "blob", kat_hex(blob, (size_t)n));
  sc_sk_peer_wipe(&peer);
  return j;
}

static json_t *kat_group(const secchat_identity *alice, const secchat_identity *bob)
{
  uint8_t chat[16], head[32], route[32];
  sc_random(chat, sizeof chat);
  sc_random(head, sizeof head);
  sc_random(route, sizeof route);
  sc_sk_sender s;
  sc_sk_sender_init(&s, chat, 3, head);
  json_t *j = json_object();
  json_object_set_new(j, "chat_id", kat_hex(chat, 16));
  json_object_set_new(j, "epoch", json_integer(3));
  json_object_set_new(j, "log_head", kat_hex(head, 32));
  json_object_set_new(j, "route_id", kat_hex(route, 32));
  json_object_set_new(j, "author", json_string("alice"));
  json_object_set_new(j, "chain_id", kat_hex(s.chain_id, 16));
  json_object_set_new(j, "ck0", kat_hex(s.ck, 32));
  json_t *msgs = json_array();
  json_array_append_new(msgs, kat_message(&s, alice, route, 1700000000000ull, 0, 1, 0));
  json_array_append_new(msgs, kat_message(&s, alice, route, 1700000000123ull, 1, 1, 100));
  json_array_append_new(msgs, kat_message(&s, alice, route, 1700000999999ull, 3, 7, 300));
  json_object_set_new(j, "messages", msgs);

  uint8_t buf[SC_SK_MAX_DIST];
  int64_t n = sc_sk_dist_build(&s, alice, secchat_identity_uid(bob), buf, sizeof buf);
  if (n < 0)
    kat_die("dist");
  json_t *d = json_object();
  json_object_set_new(d, "owner", json_string("alice"));
  json_object_set_new(d, "recipient", json_string("bob"));
  json_object_set_new(d, "iteration", json_integer((json_int_t)s.iteration));
  json_object_set_new(d, "chain_key", kat_hex(s.ck, 32));
  json_object_set_new(d, "bytes", kat_hex(buf, (size_t)n));
  json_object_set_new(j, "skdist", d);

  n = sc_sk_keyreq_build(bob, chat, 3, secchat_identity_uid(alice), s.chain_id, buf, sizeof buf);
  if (n < 0)
    kat_die("keyreq");
  json_t *q = json_object();
  json_object_set_new(q, "requester", json_string("bob"));
  json_object_set_new(q, "recipient", json_string("alice"));
  json_object_set_new(q, "bytes", kat_hex(buf, (size_t)n));
  json_object_set_new(j, "keyreq", q);
  sc_sk_sender_wipe(&s);
  return j;
}

static json_t *kat_blobs(const secchat_identity *alice)
{
  uint8_t blob[SECCHAT_IDENTITY_BLOB_MAX_BYTES];
  size_t n;
  json_t *j = json_object();
  if (secchat_identity_export(alice, NULL, 0, 0, 0, SECCHAT_IDENTITY_UNENCRYPTED, blob,
                              sizeof blob, &n))
    kat_die("export plain");
  json_object_set_new(j, "plain", kat_hex(blob, n));
  const char *pw = "kat passphrase";
  if (secchat_identity_export(alice, pw, strlen(pw), SECCHAT_IDENTITY_OPSLIMIT_MIN,
                              SECCHAT_IDENTITY_MEMLIMIT_MIN, 0, blob, sizeof blob, &n))
    kat_die("export encrypted");
  json_object_set_new(j, "passphrase", json_string(pw));
  json_object_set_new(j, "encrypted", kat_hex(blob, n));
  return j;
}

static json_t *kat_generate(void)
{
  uint8_t seed[32];
  sc_test_rng rng;
  for (int i = 0; i < 32; i++)
    seed[i] = (uint8_t)i;
  sc_test_rng_init(&rng, seed);
  sc_rng_set(sc_test_rng_fn, &rng);

  secchat_identity *alice = NULL, *bob = NULL;
  if (secchat_identity_new(&alice) || secchat_identity_new(&bob))
    kat_die("identity_new");
  json_t *root = json_object();
  json_object_set_new(root, "comment",
                      json_string("secchat crypto known-answer vectors; spec docs/crypto.md; "
                                  "generated by tests/helper_kat.c"));
  json_object_set_new(root, "rng_seed", kat_hex(seed, 32));
  json_t *ids = json_object();
  json_object_set_new(ids, "alice", kat_identity(alice));
  json_object_set_new(ids, "bob", kat_identity(bob));
  json_object_set_new(root, "identities", ids);

  char sn[SECCHAT_SAFETY_NUMBER_BYTES];
  if (secchat_safety_number(secchat_identity_sign_public_key(alice),
                            secchat_identity_sign_public_key(bob), sn, sizeof sn))
    kat_die("safety");
  json_t *s = json_object();
  json_object_set_new(s, "a", json_string("alice"));
  json_object_set_new(s, "b", json_string("bob"));
  json_object_set_new(s, "value", json_string(sn));
  json_object_set_new(root, "safety_number", s);

  json_object_set_new(root, "ratchet", kat_ratchet());
  json_object_set_new(root, "group", kat_group(alice, bob));
  json_object_set_new(root, "identity_blobs", kat_blobs(alice));

  secchat_identity_free(alice);
  secchat_identity_free(bob);
  sc_rng_set(NULL, NULL);
  return root;
}

#ifndef KAT_NO_MAIN
static int unhex_field(json_t *in, const char *key, uint8_t *out, size_t len)
{
  const char *s = json_string_value(json_object_get(in, key));
  size_t n = 0;
  return s && sodium_hex2bin(out, len, s, strlen(s), NULL, &n, NULL) == 0 && n == len ? 0 : -1;
}

static int kat_open(void)
{
  json_error_t err;
  json_t *in = json_loadf(stdin, 0, &err);
  if (!in)
    return 2;
  uint8_t pk[32], chat[16], head[32], chain[16], ck[32], route[32];
  static uint8_t blob[SC_SK_MAX_BLOB + 1], work[SC_SK_MAX_BLOB + 64];
  const char *bhex = json_string_value(json_object_get(in, "blob"));
  size_t blen = 0;
  if (unhex_field(in, "sign_pk", pk, 32) || unhex_field(in, "chat_id", chat, 16) ||
      unhex_field(in, "log_head", head, 32) || unhex_field(in, "chain_id", chain, 16) ||
      unhex_field(in, "ck", ck, 32) || unhex_field(in, "route_id", route, 32) || !bhex ||
      sodium_hex2bin(blob, sizeof blob, bhex, strlen(bhex), NULL, &blen, NULL) != 0)
    return 2;
  uint64_t epoch = (uint64_t)json_integer_value(json_object_get(in, "epoch"));
  uint64_t it = (uint64_t)json_integer_value(json_object_get(in, "iteration"));
  sc_sk_peer peer;
  sc_sk_opened o;
  int rc = sc_sk_peer_init(&peer, chat, pk);
  if (rc == 0)
    rc = sc_sk_peer_add_chain(&peer, epoch, head, chain, it, ck, 0);
  if (rc == 0)
    rc = sc_sk_open(&peer, route, blob, blen, work, sizeof work, &o);
  json_t *out = json_object();
  json_object_set_new(out, "rc", json_string(rc ? secchat_error_name(rc) : "OK"));
  if (rc == 0) {
    json_object_set_new(out, "body", kat_hex(o.inner.body, o.inner.body_len));
    json_object_set_new(out, "msg_id", kat_hex(o.msg_id, 32));
    json_object_set_new(out, "seq", json_integer((json_int_t)o.inner.seq));
    json_object_set_new(out, "inner", kat_hex(o.inner_bytes, o.inner_len));
  }
  sc_sk_peer_wipe(&peer);
  json_dumpf(out, stdout, JSON_COMPACT);
  fputc('\n', stdout);
  json_decref(out);
  json_decref(in);
  return 0;
}

int main(int argc, char **argv)
{
  if (secchat_init() != 0)
    return 1;
  if (argc > 1 && strcmp(argv[1], "open") == 0)
    return kat_open();
  json_t *root = kat_generate();
  char *text = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
  if (!text)
    return 1;
  fputs(text, stdout);
  fputc('\n', stdout);
  free(text);
  json_decref(root);
  return 0;
}
#endif
