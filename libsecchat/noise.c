/* noise.c: Noise XX / IK over 25519, ChaChaPoly, SHA-256 (see noise.h and
 * docs/noise.md). Names follow the spec (revision 34) so each function can
 * be checked against its section. */
#include "noise.h"

#include <string.h>

#include <sodium.h>

#include <secchat/secchat.h>

#include "rng.h"

/* ---- small helpers ------------------------------------------------------ */

/* ChaChaPoly nonce (spec section 12.3): 32 bits of zeros || LE64(n). */
static void chachapoly_nonce(uint8_t nonce[12], uint64_t n)
{
  memset(nonce, 0, 4);
  for (int i = 0; i < 8; i++)
    nonce[4 + i] = (uint8_t)(n >> (8 * i));
}

static void store_be64(uint8_t out[8], uint64_t v)
{
  for (int i = 7; i >= 0; i--) {
    out[i] = (uint8_t)v;
    v >>= 8;
  }
}

static uint64_t load_be64(const uint8_t in[8])
{
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = v << 8 | in[i];
  return v;
}

/* out == in or disjoint: the only aliasing libsodium's AEAD supports. */
static int bad_overlap(const uint8_t *in, size_t inlen, const uint8_t *out, size_t outlen)
{
  if (in == out || inlen == 0 || outlen == 0)
    return 0;
  return in < out + outlen && out < in + inlen;
}

/* AEAD with an explicit key and nonce; out = ct || tag. libsodium only
 * fails for messages far beyond SC_NOISE_MAX_MESSAGE: INTERNAL if it does. */
static int aead_encrypt(const uint8_t k[32], uint64_t n, const uint8_t *ad, size_t adlen,
                        const uint8_t *in, size_t len, uint8_t *out)
{
  uint8_t nonce[12];
  chachapoly_nonce(nonce, n);
  return crypto_aead_chacha20poly1305_ietf_encrypt(out, NULL, in, len, ad, adlen, NULL, nonce,
                                                   k) == 0
             ? 0
             : SECCHAT_ERR_INTERNAL;
}

static int aead_decrypt(const uint8_t k[32], uint64_t n, const uint8_t *ad, size_t adlen,
                        const uint8_t *in, size_t len, uint8_t *out)
{
  uint8_t nonce[12];
  chachapoly_nonce(nonce, n);
  return crypto_aead_chacha20poly1305_ietf_decrypt(out, NULL, NULL, in, len, ad, adlen, nonce,
                                                   k) == 0
             ? 0
             : SECCHAT_ERR_DECRYPT;
}

/* ---- CipherState -------------------------------------------------------- */

void sc_noise_cipher_init(sc_noise_cipher *cs, const uint8_t key[SC_NOISE_KEYLEN])
{
  if (key) {
    memmove(cs->k, key, SC_NOISE_KEYLEN);
    cs->has_key = 1;
  } else {
    sodium_memzero(cs->k, sizeof cs->k);
    cs->has_key = 0;
  }
  cs->n = 0;
}

int sc_noise_cipher_has_key(const sc_noise_cipher *cs)
{
  return cs->has_key != 0;
}

void sc_noise_cipher_set_nonce(sc_noise_cipher *cs, uint64_t n)
{
  cs->n = n;
}

int sc_noise_cipher_encrypt(sc_noise_cipher *cs, const uint8_t *ad, size_t adlen,
                            const uint8_t *in, size_t len, uint8_t *out, size_t cap,
                            size_t *outlen)
{
  if (!cs || (!in && len) || !out || !outlen || (!ad && adlen))
    return SECCHAT_ERR_INVALID_ARGUMENT;
  size_t need = cs->has_key ? len + SC_NOISE_TAGLEN : len;
  if (len > SC_NOISE_MAX_MESSAGE || need > SC_NOISE_MAX_MESSAGE)
    return SECCHAT_ERR_TOO_LONG;
  if (cap < need)
    return SECCHAT_ERR_BUFFER_TOO_SMALL;
  if (bad_overlap(in, len, out, need))
    return SECCHAT_ERR_INVALID_ARGUMENT;
  if (!cs->has_key) {
    if (len)
      memmove(out, in, len);
    *outlen = len;
    return 0;
  }
  if (cs->n == UINT64_MAX)
    return SECCHAT_ERR_NONCE_EXHAUSTED;
  int rc = aead_encrypt(cs->k, cs->n, ad, adlen, in, len, out);
  if (rc)
    return rc;
  cs->n++;
  *outlen = need;
  return 0;
}

int sc_noise_cipher_decrypt(sc_noise_cipher *cs, const uint8_t *ad, size_t adlen,
                            const uint8_t *in, size_t len, uint8_t *out, size_t cap,
                            size_t *outlen)
{
  if (!cs || (!in && len) || !out || !outlen || (!ad && adlen))
    return SECCHAT_ERR_INVALID_ARGUMENT;
  if (len > SC_NOISE_MAX_MESSAGE)
    return SECCHAT_ERR_TOO_LONG;
  if (!cs->has_key) {
    if (cap < len)
      return SECCHAT_ERR_BUFFER_TOO_SMALL;
    if (bad_overlap(in, len, out, len))
      return SECCHAT_ERR_INVALID_ARGUMENT;
    if (len)
      memmove(out, in, len);
    *outlen = len;
    return 0;
  }
  if (len < SC_NOISE_TAGLEN)
    return SECCHAT_ERR_DECRYPT;
  size_t need = len - SC_NOISE_TAGLEN;
  if (cap < need)
    return SECCHAT_ERR_BUFFER_TOO_SMALL;
  if (bad_overlap(in, len, out, need))
    return SECCHAT_ERR_INVALID_ARGUMENT;
  if (cs->n == UINT64_MAX)
    return SECCHAT_ERR_NONCE_EXHAUSTED;
  int rc = aead_decrypt(cs->k, cs->n, ad, adlen, in, len, out);
  if (rc)
    return rc;
  cs->n++;
  *outlen = need;
  return 0;
}

/* REKEY(k) default (spec section 4.2): the first 32 bytes of
 * ENCRYPT(k, maxnonce, zerolen, zeros). */
static int rekey_key(uint8_t k[32])
{
  uint8_t buf[32 + SC_NOISE_TAGLEN] = {0};
  int rc = aead_encrypt(k, UINT64_MAX, NULL, 0, buf, 32, buf);
  if (rc == 0)
    memcpy(k, buf, 32);
  sodium_memzero(buf, sizeof buf);
  return rc;
}

int sc_noise_cipher_rekey(sc_noise_cipher *cs)
{
  if (!cs)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  if (!cs->has_key)
    return SECCHAT_ERR_INVALID_STATE;
  return rekey_key(cs->k);
}

void sc_noise_cipher_wipe(sc_noise_cipher *cs)
{
  if (cs)
    sodium_memzero(cs, sizeof *cs);
}

/* ---- HKDF and SymmetricState ------------------------------------------- */

/* HMAC-SHA256(key, a || b): crypto_auth_hmacsha256_init accepts any key
 * length, as spec section 4.3 requires. These libsodium hash/HMAC calls are
 * documented to always return 0, so they have no error path. */
static void hmac2(uint8_t out[32], const uint8_t *key, size_t keylen, const uint8_t *a,
                  size_t alen, const uint8_t *b, size_t blen)
{
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, key, keylen);
  if (alen)
    crypto_auth_hmacsha256_update(&st, a, alen);
  if (blen)
    crypto_auth_hmacsha256_update(&st, b, blen);
  crypto_auth_hmacsha256_final(&st, out);
  sodium_memzero(&st, sizeof st);
}

void sc_noise_hkdf2(const uint8_t ck[SC_NOISE_HASHLEN], const uint8_t *ikm, size_t len,
                    uint8_t out1[SC_NOISE_HASHLEN], uint8_t out2[SC_NOISE_HASHLEN])
{
  static const uint8_t one = 0x01, two = 0x02;
  uint8_t temp_key[32], o1[32];
  hmac2(temp_key, ck, SC_NOISE_HASHLEN, ikm, len, NULL, 0);
  hmac2(o1, temp_key, sizeof temp_key, &one, 1, NULL, 0);
  hmac2(out2, temp_key, sizeof temp_key, o1, sizeof o1, &two, 1);
  memcpy(out1, o1, 32); /* last: out1 may alias ck */
  sodium_memzero(temp_key, sizeof temp_key);
  sodium_memzero(o1, sizeof o1);
}

void sc_noise_symmetric_init(sc_noise_symmetric *ss, const char *protocol_name)
{
  size_t len = strlen(protocol_name);
  memset(ss->h, 0, sizeof ss->h);
  if (len <= SC_NOISE_HASHLEN)
    memcpy(ss->h, protocol_name, len);
  else
    crypto_hash_sha256(ss->h, (const uint8_t *)protocol_name, len);
  memcpy(ss->ck, ss->h, sizeof ss->ck);
  sc_noise_cipher_init(&ss->cs, NULL);
}

void sc_noise_symmetric_mix_key(sc_noise_symmetric *ss, const uint8_t *ikm, size_t len)
{
  uint8_t temp_k[32];
  sc_noise_hkdf2(ss->ck, ikm, len, ss->ck, temp_k);
  sc_noise_cipher_init(&ss->cs, temp_k);
  sodium_memzero(temp_k, sizeof temp_k);
}

void sc_noise_symmetric_mix_hash(sc_noise_symmetric *ss, const uint8_t *data, size_t len)
{
  crypto_hash_sha256_state st;
  crypto_hash_sha256_init(&st);
  crypto_hash_sha256_update(&st, ss->h, sizeof ss->h);
  if (len)
    crypto_hash_sha256_update(&st, data, len);
  crypto_hash_sha256_final(&st, ss->h);
  sodium_memzero(&st, sizeof st);
}

int sc_noise_symmetric_encrypt_and_hash(sc_noise_symmetric *ss, const uint8_t *in, size_t len,
                                        uint8_t *out, size_t cap, size_t *outlen)
{
  if (in && out && in == out && len)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  int rc = sc_noise_cipher_encrypt(&ss->cs, ss->h, sizeof ss->h, in, len, out, cap, outlen);
  if (rc)
    return rc;
  sc_noise_symmetric_mix_hash(ss, out, *outlen);
  return 0;
}

int sc_noise_symmetric_decrypt_and_hash(sc_noise_symmetric *ss, const uint8_t *in, size_t len,
                                        uint8_t *out, size_t cap, size_t *outlen)
{
  if (in && out && in == out && len)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  int rc = sc_noise_cipher_decrypt(&ss->cs, ss->h, sizeof ss->h, in, len, out, cap, outlen);
  if (rc)
    return rc;
  sc_noise_symmetric_mix_hash(ss, in, len);
  return 0;
}

void sc_noise_symmetric_split(const sc_noise_symmetric *ss, sc_noise_cipher *c1,
                              sc_noise_cipher *c2)
{
  uint8_t k1[32], k2[32];
  sc_noise_hkdf2(ss->ck, NULL, 0, k1, k2);
  sc_noise_cipher_init(c1, k1);
  sc_noise_cipher_init(c2, k2);
  sodium_memzero(k1, sizeof k1);
  sodium_memzero(k2, sizeof k2);
}

void sc_noise_symmetric_wipe(sc_noise_symmetric *ss)
{
  if (ss)
    sodium_memzero(ss, sizeof *ss);
}

/* ---- HandshakeState ----------------------------------------------------- */

enum { T_END = 0, T_E, T_S, T_EE, T_ES, T_SE, T_SS };

#define SC_MAX_TOKENS 5
#define SC_MAX_MSGS 3

typedef struct pattern_def {
  const char *name; /* full protocol name */
  uint8_t nmsgs;
  uint8_t tokens[SC_MAX_MSGS][SC_MAX_TOKENS];
} pattern_def;

/* Spec section 7.5. Message i is sent by the initiator when i is even. */
static const pattern_def XX_DEF = {
    "Noise_XX_25519_ChaChaPoly_SHA256",
    3,
    {{T_E, T_END}, {T_E, T_EE, T_S, T_ES, T_END}, {T_S, T_SE, T_END}}};
static const pattern_def IK_DEF = {
    "Noise_IK_25519_ChaChaPoly_SHA256",
    2,
    {{T_E, T_ES, T_S, T_SS, T_END}, {T_E, T_EE, T_SE, T_END}, {T_END}}};

enum { F_S = 1, F_E = 2, F_RS = 4, F_RE = 8, F_E_FIXED = 16 };

static const pattern_def *def_of(const sc_noise_handshake *hs)
{
  return hs->pattern == SC_NOISE_XX ? &XX_DEF : hs->pattern == SC_NOISE_IK ? &IK_DEF : NULL;
}

void sc_noise_handshake_wipe(sc_noise_handshake *hs)
{
  if (hs)
    sodium_memzero(hs, sizeof *hs);
}

static int fail(sc_noise_handshake *hs, int rc)
{
  sc_noise_handshake_wipe(hs);
  hs->action = SC_NOISE_ACTION_FAILED;
  return rc;
}

/* Whose turn: the initiator writes the even-numbered messages. */
static void set_next_action(sc_noise_handshake *hs)
{
  const pattern_def *d = def_of(hs);
  if (hs->msg >= d->nmsgs)
    hs->action = SC_NOISE_ACTION_SPLIT;
  else
    hs->action = ((hs->msg % 2 == 0) == (hs->initiator != 0)) ? SC_NOISE_ACTION_WRITE
                                                               : SC_NOISE_ACTION_READ;
}

int sc_noise_handshake_init(sc_noise_handshake *hs, sc_noise_pattern pattern, int initiator,
                            const uint8_t *prologue, size_t prologue_len,
                            const uint8_t s_sk[SC_NOISE_DHLEN],
                            const uint8_t rs[SC_NOISE_DHLEN])
{
  if (!hs)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  sc_noise_handshake_wipe(hs);
  int ik_init = pattern == SC_NOISE_IK && initiator;
  if ((pattern != SC_NOISE_XX && pattern != SC_NOISE_IK) || !s_sk ||
      (!prologue && prologue_len) || (ik_init ? !rs : rs != NULL))
    return fail(hs, SECCHAT_ERR_INVALID_ARGUMENT);
  hs->pattern = (uint8_t)pattern;
  hs->initiator = initiator ? 1 : 0;
  memcpy(hs->s_sk, s_sk, SC_NOISE_DHLEN);
  if (crypto_scalarmult_base(hs->s_pk, hs->s_sk) != 0)
    return fail(hs, SECCHAT_ERR_BAD_KEY);
  hs->flags = F_S;
  if (rs) {
    /* Refuse a low-order responder key now rather than at the first DH. */
    static const uint8_t probe[32] = {9};
    uint8_t tmp[32];
    int bad = crypto_scalarmult(tmp, probe, rs) != 0;
    sodium_memzero(tmp, sizeof tmp);
    if (bad)
      return fail(hs, SECCHAT_ERR_BAD_KEY);
    memcpy(hs->rs, rs, SC_NOISE_DHLEN);
    hs->flags |= F_RS;
  }
  sc_noise_symmetric_init(&hs->ss, def_of(hs)->name);
  sc_noise_symmetric_mix_hash(&hs->ss, prologue, prologue_len);
  /* Pre-messages (IK: <- s): both sides hash the responder's static. */
  if (pattern == SC_NOISE_IK)
    sc_noise_symmetric_mix_hash(&hs->ss, initiator ? hs->rs : hs->s_pk, SC_NOISE_DHLEN);
  hs->msg = 0;
  set_next_action(hs);
  return 0;
}

int sc_noise_handshake_fix_ephemeral(sc_noise_handshake *hs, const uint8_t e_sk[SC_NOISE_DHLEN])
{
  if (!hs || !e_sk)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  if (hs->action != SC_NOISE_ACTION_WRITE && hs->action != SC_NOISE_ACTION_READ)
    return SECCHAT_ERR_INVALID_STATE;
  if (hs->flags & F_E)
    return SECCHAT_ERR_INVALID_STATE;
  memcpy(hs->e_sk, e_sk, SC_NOISE_DHLEN);
  hs->flags |= F_E_FIXED;
  return 0;
}

sc_noise_action sc_noise_handshake_action(const sc_noise_handshake *hs)
{
  return hs ? (sc_noise_action)hs->action : SC_NOISE_ACTION_NONE;
}

/* Bytes of message hs->msg: fixed part (keys) and the payload's AEAD
 * overhead, following the has_key transitions of the token list. */
static void message_layout(const sc_noise_handshake *hs, size_t *fixed, size_t *payload_tag)
{
  const uint8_t *t = def_of(hs)->tokens[hs->msg];
  int keyed = hs->ss.cs.has_key;
  size_t n = 0;
  for (; *t != T_END; t++) {
    if (*t == T_E)
      n += SC_NOISE_DHLEN;
    else if (*t == T_S)
      n += SC_NOISE_DHLEN + (keyed ? SC_NOISE_TAGLEN : 0);
    else
      keyed = 1; /* every DH token ends in MixKey */
  }
  *fixed = n;
  *payload_tag = keyed ? SC_NOISE_TAGLEN : 0;
}

/* MixKey(DH(sk, pk)). An all-zero output (low-order pk) is BAD_KEY. */
static int mix_dh(sc_noise_handshake *hs, const uint8_t sk[32], const uint8_t pk[32])
{
  uint8_t shared[32];
  int rc = crypto_scalarmult(shared, sk, pk) == 0 ? 0 : SECCHAT_ERR_BAD_KEY;
  if (rc == 0)
    sc_noise_symmetric_mix_key(&hs->ss, shared, sizeof shared);
  sodium_memzero(shared, sizeof shared);
  return rc;
}

/* The DH tokens, from our side (spec section 5.3). */
static int dh_token(sc_noise_handshake *hs, uint8_t tok)
{
  int init = hs->initiator;
  switch (tok) {
  case T_EE:
    return mix_dh(hs, hs->e_sk, hs->re);
  case T_ES:
    return init ? mix_dh(hs, hs->e_sk, hs->rs) : mix_dh(hs, hs->s_sk, hs->re);
  case T_SE:
    return init ? mix_dh(hs, hs->s_sk, hs->re) : mix_dh(hs, hs->e_sk, hs->rs);
  case T_SS:
    return mix_dh(hs, hs->s_sk, hs->rs);
  default:
    return SECCHAT_ERR_INTERNAL;
  }
}

static int generate_ephemeral(sc_noise_handshake *hs)
{
  if (!(hs->flags & F_E_FIXED))
    sc_random(hs->e_sk, SC_NOISE_DHLEN);
  if (crypto_scalarmult_base(hs->e_pk, hs->e_sk) != 0)
    return SECCHAT_ERR_BAD_KEY;
  hs->flags = (uint8_t)((hs->flags & ~F_E_FIXED) | F_E);
  return 0;
}

int sc_noise_handshake_write(sc_noise_handshake *hs, const uint8_t *payload, size_t plen,
                             uint8_t *out, size_t cap, size_t *outlen)
{
  if (!hs || (!payload && plen) || !out || !outlen)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  if (hs->action != SC_NOISE_ACTION_WRITE)
    return SECCHAT_ERR_INVALID_STATE;
  size_t fixed, tag;
  message_layout(hs, &fixed, &tag);
  if (plen > SC_NOISE_MAX_MESSAGE || fixed + tag + plen > SC_NOISE_MAX_MESSAGE)
    return SECCHAT_ERR_TOO_LONG;
  size_t total = fixed + tag + plen;
  if (cap < total)
    return SECCHAT_ERR_BUFFER_TOO_SMALL;
  if (bad_overlap(payload, plen, out, total))
    return SECCHAT_ERR_INVALID_ARGUMENT;

  size_t p = 0, n;
  int rc = 0;
  for (const uint8_t *t = def_of(hs)->tokens[hs->msg]; *t != T_END && rc == 0; t++) {
    switch (*t) {
    case T_E:
      rc = generate_ephemeral(hs);
      if (rc)
        break;
      memcpy(out + p, hs->e_pk, SC_NOISE_DHLEN);
      sc_noise_symmetric_mix_hash(&hs->ss, hs->e_pk, SC_NOISE_DHLEN);
      p += SC_NOISE_DHLEN;
      break;
    case T_S:
      rc = sc_noise_symmetric_encrypt_and_hash(&hs->ss, hs->s_pk, SC_NOISE_DHLEN, out + p,
                                               cap - p, &n);
      p += n;
      break;
    default:
      rc = dh_token(hs, *t);
    }
  }
  if (rc == 0)
    rc = sc_noise_symmetric_encrypt_and_hash(&hs->ss, payload, plen, out + p, cap - p, &n);
  if (rc) {
    sodium_memzero(out, cap < total ? cap : total);
    return fail(hs, rc);
  }
  *outlen = p + n;
  hs->msg++;
  set_next_action(hs);
  return 0;
}

int sc_noise_handshake_read(sc_noise_handshake *hs, const uint8_t *msg, size_t len,
                            uint8_t *payload, size_t cap, size_t *plen)
{
  if (!hs || (!msg && len) || !payload || !plen)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  if (hs->action != SC_NOISE_ACTION_READ)
    return SECCHAT_ERR_INVALID_STATE;
  if (len > SC_NOISE_MAX_MESSAGE)
    return fail(hs, SECCHAT_ERR_TOO_LONG);
  size_t fixed, tag;
  message_layout(hs, &fixed, &tag);
  if (len < fixed + tag)
    return fail(hs, SECCHAT_ERR_HANDSHAKE);
  size_t body = len - fixed - tag;
  if (cap < body)
    return SECCHAT_ERR_BUFFER_TOO_SMALL;
  if (bad_overlap(msg, len, payload, body))
    return SECCHAT_ERR_INVALID_ARGUMENT;

  size_t p = 0, n;
  int rc = 0;
  for (const uint8_t *t = def_of(hs)->tokens[hs->msg]; *t != T_END && rc == 0; t++) {
    switch (*t) {
    case T_E:
      memcpy(hs->re, msg + p, SC_NOISE_DHLEN);
      hs->flags |= F_RE;
      sc_noise_symmetric_mix_hash(&hs->ss, hs->re, SC_NOISE_DHLEN);
      p += SC_NOISE_DHLEN;
      break;
    case T_S: {
      size_t sl = SC_NOISE_DHLEN + (hs->ss.cs.has_key ? SC_NOISE_TAGLEN : 0);
      rc = sc_noise_symmetric_decrypt_and_hash(&hs->ss, msg + p, sl, hs->rs, sizeof hs->rs, &n);
      hs->flags |= F_RS;
      p += sl;
      break;
    }
    default:
      rc = dh_token(hs, *t);
    }
  }
  if (rc == 0)
    rc = sc_noise_symmetric_decrypt_and_hash(&hs->ss, msg + p, len - p, payload, cap, plen);
  if (rc) {
    sodium_memzero(payload, body);
    return fail(hs, rc);
  }
  hs->msg++;
  set_next_action(hs);
  return 0;
}

static int usable(const sc_noise_handshake *hs)
{
  return hs && (hs->action == SC_NOISE_ACTION_WRITE || hs->action == SC_NOISE_ACTION_READ ||
                hs->action == SC_NOISE_ACTION_SPLIT);
}

int sc_noise_handshake_hash(const sc_noise_handshake *hs, uint8_t h[SC_NOISE_HASHLEN])
{
  if (!h)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  if (!usable(hs))
    return SECCHAT_ERR_INVALID_STATE;
  memcpy(h, hs->ss.h, SC_NOISE_HASHLEN);
  return 0;
}

int sc_noise_handshake_remote_static(const sc_noise_handshake *hs, uint8_t rs[SC_NOISE_DHLEN])
{
  if (!rs)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  if (!usable(hs) || !(hs->flags & F_RS))
    return SECCHAT_ERR_INVALID_STATE;
  memcpy(rs, hs->rs, SC_NOISE_DHLEN);
  return 0;
}

int sc_noise_handshake_split(sc_noise_handshake *hs, sc_noise_transport *t,
                             uint8_t h[SC_NOISE_HASHLEN])
{
  if (!hs || !t)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  if (hs->action != SC_NOISE_ACTION_SPLIT)
    return SECCHAT_ERR_INVALID_STATE;
  if (hs->initiator)
    sc_noise_symmetric_split(&hs->ss, &t->tx, &t->rx);
  else
    sc_noise_symmetric_split(&hs->ss, &t->rx, &t->tx);
  if (h)
    memcpy(h, hs->ss.h, SC_NOISE_HASHLEN);
  sc_noise_handshake_wipe(hs);
  return 0;
}

/* ---- In-order transport ------------------------------------------------- */

int sc_noise_transport_encrypt(sc_noise_transport *t, const uint8_t *in, size_t len,
                               uint8_t *out, size_t cap, size_t *outlen)
{
  if (!t)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  if (!t->tx.has_key)
    return SECCHAT_ERR_INVALID_STATE;
  return sc_noise_cipher_encrypt(&t->tx, NULL, 0, in, len, out, cap, outlen);
}

int sc_noise_transport_decrypt(sc_noise_transport *t, const uint8_t *in, size_t len,
                               uint8_t *out, size_t cap, size_t *outlen)
{
  if (!t)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  if (!t->rx.has_key)
    return SECCHAT_ERR_INVALID_STATE;
  return sc_noise_cipher_decrypt(&t->rx, NULL, 0, in, len, out, cap, outlen);
}

void sc_noise_transport_wipe(sc_noise_transport *t)
{
  if (t)
    sodium_memzero(t, sizeof *t);
}

/* ---- Explicit-nonce transport ------------------------------------------ */

#define SC_SID_CTX "secchat/noise/sid/v1"

int sc_noise_dgram_init(sc_noise_dgram *d, sc_noise_transport *t,
                        const uint8_t h[SC_NOISE_HASHLEN])
{
  if (!d || !t || !h)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  if (!t->tx.has_key || !t->rx.has_key || t->tx.n != 0 || t->rx.n != 0)
    return SECCHAT_ERR_INVALID_STATE;
  sodium_memzero(d, sizeof *d);
  memcpy(d->tx_k, t->tx.k, SC_NOISE_KEYLEN);
  memcpy(d->rx_k, t->rx.k, SC_NOISE_KEYLEN);
  crypto_generichash_state st;
  static const uint8_t zero = 0;
  if (crypto_generichash_init(&st, NULL, 0, SC_NOISE_SID_BYTES) != 0 ||
      crypto_generichash_update(&st, (const uint8_t *)SC_SID_CTX, sizeof SC_SID_CTX - 1) != 0 ||
      crypto_generichash_update(&st, &zero, 1) != 0 ||
      crypto_generichash_update(&st, h, SC_NOISE_HASHLEN) != 0 ||
      crypto_generichash_final(&st, d->sid, SC_NOISE_SID_BYTES) != 0) {
    sc_noise_dgram_wipe(d);
    return SECCHAT_ERR_INTERNAL;
  }
  sc_noise_transport_wipe(t);
  return 0;
}

void sc_noise_dgram_session_id(const sc_noise_dgram *d, uint8_t sid[SC_NOISE_SID_BYTES])
{
  memcpy(sid, d->sid, SC_NOISE_SID_BYTES);
}

int sc_noise_dgram_peek_session_id(const uint8_t *msg, size_t len,
                                   uint8_t sid[SC_NOISE_SID_BYTES])
{
  if ((!msg && len) || !sid)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  if (len < SC_NOISE_DGRAM_OVERHEAD)
    return SECCHAT_ERR_TRUNCATED;
  memcpy(sid, msg, SC_NOISE_SID_BYTES);
  return 0;
}

uint64_t sc_noise_dgram_sent(const sc_noise_dgram *d)
{
  return d->tx_n;
}

int sc_noise_dgram_encrypt(sc_noise_dgram *d, const uint8_t *pt, size_t len, uint8_t *out,
                           size_t cap, size_t *outlen)
{
  if (!d || (!pt && len) || !out || !outlen)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  if (len > SC_NOISE_MAX_MESSAGE - SC_NOISE_DGRAM_OVERHEAD)
    return SECCHAT_ERR_TOO_LONG;
  size_t need = len + SC_NOISE_DGRAM_OVERHEAD;
  if (cap < need)
    return SECCHAT_ERR_BUFFER_TOO_SMALL;
  uint8_t *ct = out + SC_NOISE_DGRAM_HEADER_BYTES;
  if (bad_overlap(pt, len, ct, len + SC_NOISE_TAGLEN) ||
      bad_overlap(pt, len, out, SC_NOISE_DGRAM_HEADER_BYTES))
    return SECCHAT_ERR_INVALID_ARGUMENT;
  if (d->tx_n == UINT64_MAX)
    return SECCHAT_ERR_NONCE_EXHAUSTED;
  memcpy(out, d->sid, SC_NOISE_SID_BYTES);
  store_be64(out + SC_NOISE_SID_BYTES, d->tx_n);
  int rc = aead_encrypt(d->tx_k, d->tx_n, out, SC_NOISE_DGRAM_HEADER_BYTES, pt, len, ct);
  if (rc)
    return rc;
  d->tx_n++;
  *outlen = need;
  return 0;
}

/* RFC 6479: a ring of REPLAY_WORDS 64-bit words; bit n mod (64 * WORDS)
 * marks n as received. One spare word lets the window advance a whole word
 * at a time while still covering SC_NOISE_REPLAY_WINDOW values below top. */
#define SC_RING_BITS (64u * SC_NOISE_REPLAY_WORDS)

static int replay_check(const sc_noise_dgram *d, uint64_t n)
{
  if (n > d->rx_top)
    return 0;
  if (d->rx_top - n >= SC_NOISE_REPLAY_WINDOW)
    return SECCHAT_ERR_REPLAY;
  uint64_t bit = n % SC_RING_BITS;
  return (d->rx_bits[bit / 64] >> (bit % 64)) & 1 ? SECCHAT_ERR_REPLAY : 0;
}

static void replay_update(sc_noise_dgram *d, uint64_t n)
{
  if (n > d->rx_top) {
    uint64_t cur = d->rx_top / 64, next = n / 64;
    uint64_t diff = next - cur;
    if (diff > SC_NOISE_REPLAY_WORDS)
      diff = SC_NOISE_REPLAY_WORDS;
    for (uint64_t i = 1; i <= diff; i++)
      d->rx_bits[(cur + i) % SC_NOISE_REPLAY_WORDS] = 0;
    d->rx_top = n;
  }
  uint64_t bit = n % SC_RING_BITS;
  d->rx_bits[bit / 64] |= (uint64_t)1 << (bit % 64);
}

int sc_noise_dgram_decrypt(sc_noise_dgram *d, const uint8_t *msg, size_t len, uint8_t *pt,
                           size_t cap, size_t *ptlen, uint64_t *n_out)
{
  if (!d || (!msg && len) || !pt || !ptlen)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  if (len < SC_NOISE_DGRAM_OVERHEAD)
    return SECCHAT_ERR_TRUNCATED;
  if (len > SC_NOISE_MAX_MESSAGE)
    return SECCHAT_ERR_TOO_LONG;
  size_t need = len - SC_NOISE_DGRAM_OVERHEAD;
  if (cap < need)
    return SECCHAT_ERR_BUFFER_TOO_SMALL;
  const uint8_t *ct = msg + SC_NOISE_DGRAM_HEADER_BYTES;
  if (bad_overlap(ct, len - SC_NOISE_DGRAM_HEADER_BYTES, pt, need) ||
      bad_overlap(msg, SC_NOISE_DGRAM_HEADER_BYTES, pt, need))
    return SECCHAT_ERR_INVALID_ARGUMENT;
  if (memcmp(msg, d->sid, SC_NOISE_SID_BYTES) != 0)
    return SECCHAT_ERR_NOT_FOUND;
  uint64_t n = load_be64(msg + SC_NOISE_SID_BYTES);
  if (n == UINT64_MAX)
    return SECCHAT_ERR_DECRYPT; /* reserved: no honest sender uses it */
  int rc = replay_check(d, n);
  if (rc)
    return rc;
  /* The header is read before the in-place decrypt can zero pt on
   * failure; the header itself never overlaps pt. */
  rc = aead_decrypt(d->rx_k, n, msg, SC_NOISE_DGRAM_HEADER_BYTES, ct,
                    len - SC_NOISE_DGRAM_HEADER_BYTES, pt);
  if (rc)
    return rc;
  replay_update(d, n);
  *ptlen = need;
  if (n_out)
    *n_out = n;
  return 0;
}

void sc_noise_dgram_wipe(sc_noise_dgram *d)
{
  if (d)
    sodium_memzero(d, sizeof *d);
}
