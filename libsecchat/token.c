/* token.c: token issuance and strict verification behind a libjwt adapter
 * (see token.h, include/secchat/token.h and docs/tokens.md).
 *
 * Every libjwt 1.10.2 trap listed in the security notes is closed here:
 *  - jwt_decode() is only called with the verifier's non-empty public PEM;
 *  - the algorithm is pinned twice: the header must say exactly "ES256"
 *    (libjwt matches case-insensitively) and jwt_get_alg() must agree;
 *  - length, charset, dot count and empty segments are checked before
 *    libjwt sees the token (alloca on the token; a 0-byte allocation
 *    overrun on empty segments), which gets a NUL-terminated copy;
 *  - header and payload are decoded here with JSON_REJECT_DUPLICATES and
 *    every claim is read with its exact JSON type (libjwt returns 0 for a
 *    string or float exp and lets the last duplicate win);
 *  - kid/jku/x5u/crit and every other header member are refused;
 *  - iss, nbf, iat, exp, the lifetime, the embedded keys, sub and dh_sig
 *    are all checked here (libjwt 1.10.2 has no validation API). */
#include "token.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <jwt.h>
#include <openssl/err.h>
#include <sodium.h>

#include "base32.h"
#include "crypto.h"
#include "identity.h"
#include "rng.h"
#include "servkey.h"
#include "tokcache.h"

/* Latest instant any time claim may hold: 9999-12-31T23:59:59Z. Keeps all
 * arithmetic below far from int64 overflow. */
#define SC_TIME_MAX INT64_C(253402300799)
#define SC_TOKEN_VER 1

/* Base64url (no padding) lengths of the fixed-size claims. */
#define B64LEN(n) (((n) * 4 + 2) / 3)

/* ---- Reasons ------------------------------------------------------------- */

static const char *const reason_text[] = {
  [SECCHAT_TOKEN_OK] = "ok",
  [SECCHAT_TOKEN_R_EMPTY] = "empty token",
  [SECCHAT_TOKEN_R_TOO_LONG] = "token longer than the limit",
  [SECCHAT_TOKEN_R_CHARSET] = "character outside base64url",
  [SECCHAT_TOKEN_R_DOTS] = "not exactly two dots",
  [SECCHAT_TOKEN_R_EMPTY_SEGMENT] = "empty segment",
  [SECCHAT_TOKEN_R_BASE64] = "segment is not canonical base64url",
  [SECCHAT_TOKEN_R_HEADER_JSON] = "header is not a JSON object",
  [SECCHAT_TOKEN_R_DUPLICATE] = "duplicate JSON member",
  [SECCHAT_TOKEN_R_ALG] = "alg is not ES256",
  [SECCHAT_TOKEN_R_TYP] = "typ is not JWT",
  [SECCHAT_TOKEN_R_HEADER_FIELD] = "forbidden header member",
  [SECCHAT_TOKEN_R_PAYLOAD_JSON] = "payload is not a JSON object",
  [SECCHAT_TOKEN_R_CLAIM_MISSING] = "claim missing",
  [SECCHAT_TOKEN_R_CLAIM_TYPE] = "claim has the wrong JSON type",
  [SECCHAT_TOKEN_R_CLAIM_RANGE] = "claim out of range",
  [SECCHAT_TOKEN_R_CLAIM_UNKNOWN] = "unknown claim",
  [SECCHAT_TOKEN_R_VERSION] = "unsupported token version",
  [SECCHAT_TOKEN_R_SIGNATURE] = "signature invalid",
  [SECCHAT_TOKEN_R_ALG_MISMATCH] = "decoded algorithm is not ES256",
  [SECCHAT_TOKEN_R_ISSUER] = "wrong issuer",
  [SECCHAT_TOKEN_R_LIFETIME] = "inconsistent or too long lifetime",
  [SECCHAT_TOKEN_R_KEY_ENCODING] = "embedded key or signature has the wrong length",
  [SECCHAT_TOKEN_R_SIGN_PK] = "invalid Ed25519 key",
  [SECCHAT_TOKEN_R_DH_PK] = "invalid X25519 key",
  [SECCHAT_TOKEN_R_SUB] = "sub does not match the key",
  [SECCHAT_TOKEN_R_DH_SIG] = "dh_sig does not verify",
  [SECCHAT_TOKEN_R_NAME] = "invalid name",
  [SECCHAT_TOKEN_R_NOT_YET_VALID] = "not valid yet (nbf)",
  [SECCHAT_TOKEN_R_IAT_FUTURE] = "issued in the future (iat)",
  [SECCHAT_TOKEN_R_EXPIRED] = "expired",
  [SECCHAT_TOKEN_R_PROOF] = "possession proof invalid",
  [SECCHAT_TOKEN_R_CHANNEL] = "token key is not the channel's key",
  [SECCHAT_TOKEN_R_UID] = "token is for another user",
  [SECCHAT_TOKEN_R_KEY_MISMATCH] = "server key does not match the verifier",
  [SECCHAT_TOKEN_R_INTERNAL] = "internal error",
};

const char *secchat_token_reason_string(int reason)
{
  if (reason < 0 || (size_t)reason >= sizeof reason_text / sizeof reason_text[0] ||
      !reason_text[reason])
    return "unknown reason";
  return reason_text[reason];
}

size_t secchat_token_claims_size(void) { return sizeof(secchat_token_claims); }

static void set_reason(int *out, int r)
{
  if (out)
    *out = r;
}

/* Public code for a reason: one generic code, expiry apart, local faults
 * as themselves. */
static int public_code(int r)
{
  switch (r) {
  case SECCHAT_TOKEN_OK: return 0;
  case SECCHAT_TOKEN_R_EXPIRED: return SECCHAT_ERR_TOKEN_EXPIRED;
  case SECCHAT_TOKEN_R_INTERNAL: return SECCHAT_ERR_INTERNAL;
  default: return SECCHAT_ERR_AUTH;
  }
}

/* ---- Small codecs ---------------------------------------------------------- */

/* Strict base64url without padding: exactly one encoding per byte string
 * (libsodium rejects non-zero trailing bits and leftover characters). */
static int b64u_decode(uint8_t *out, size_t cap, const char *in, size_t len, size_t *out_len)
{
  return sodium_base642bin(out, cap, in, len, NULL, out_len, NULL,
                           sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0
             ? 0
             : -1;
}

/* Decode a base64url string into exactly n bytes. */
static int b64u_exact(uint8_t *out, size_t n, const char *in)
{
  size_t got = 0;
  size_t len = strlen(in);
  if (len != B64LEN(n) || b64u_decode(out, n, in, len, &got) != 0 || got != n)
    return -1;
  return 0;
}

static void b64u_encode(char *out, size_t cap, const uint8_t *in, size_t len)
{
  sodium_bin2base64(out, cap, in, len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

/* Strict UTF-8 decoder: no overlong forms, no surrogates, <= U+10FFFF. */
static int utf8_next(const uint8_t *s, size_t len, size_t *i, uint32_t *cp)
{
  uint8_t b = s[*i];
  size_t n;
  uint32_t c, min;
  if (b < 0x80) { *cp = b; (*i)++; return 0; }
  if (b >= 0xc2 && b <= 0xdf) { n = 1; c = b & 0x1f; min = 0x80; }
  else if (b >= 0xe0 && b <= 0xef) { n = 2; c = b & 0x0f; min = 0x800; }
  else if (b >= 0xf0 && b <= 0xf4) { n = 3; c = b & 0x07; min = 0x10000; }
  else return -1;
  if (len - *i <= n)
    return -1;
  for (size_t k = 1; k <= n; k++) {
    uint8_t t = s[*i + k];
    if ((t & 0xc0) != 0x80)
      return -1;
    c = c << 6 | (t & 0x3f);
  }
  if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
    return -1;
  *cp = c;
  *i += n + 1;
  return 0;
}

/* ---- Names ----------------------------------------------------------------- */

struct range { uint32_t lo, hi; };

/* Code points refused anywhere in a name (docs/tokens.md, "Names"). We do
 * not normalise (no Unicode tables in our dependencies): we refuse what we
 * could not normalise or display safely instead. */
static const struct range name_forbidden[] = {
  {0x0000, 0x001f}, {0x007f, 0x009f},          /* C0, DEL, C1 */
  {0x00a0, 0x00a0}, {0x00ad, 0x00ad},          /* NBSP, soft hyphen */
  {0x0300, 0x036f}, {0x034f, 0x034f},          /* combining marks, CGJ */
  {0x061c, 0x061c},                            /* arabic letter mark */
  {0x1100, 0x11ff},                            /* conjoining jamo */
  {0x115f, 0x1160}, {0x1680, 0x1680},          /* hangul fillers, ogham space */
  {0x180b, 0x180e},                            /* mongolian FVS, MVS */
  {0x1ab0, 0x1aff}, {0x1dc0, 0x1dff},          /* combining marks */
  {0x2000, 0x200f},                            /* spaces, ZW*, LRM, RLM */
  {0x2028, 0x202f},                            /* LS, PS, bidi embeddings, NNBSP */
  {0x205f, 0x206f},                            /* MMSP, invisible ops, bidi isolates */
  {0x20d0, 0x20ff},                            /* combining marks for symbols */
  {0x2126, 0x2126}, {0x212a, 0x212b},          /* ohm, kelvin, angstrom: not NFC */
  {0x3000, 0x3000}, {0x3164, 0x3164},          /* ideographic space, hangul filler */
  {0xa960, 0xa97f}, {0xd7b0, 0xd7ff},          /* conjoining jamo */
  {0xe000, 0xf8ff},                            /* private use */
  {0xf900, 0xfaff},                            /* CJK compatibility: not NFC */
  {0xfdd0, 0xfdef},                            /* noncharacters */
  {0xfe00, 0xfe0f}, {0xfe20, 0xfe2f},          /* variation selectors, half marks */
  {0xfeff, 0xfeff}, {0xffa0, 0xffa0},          /* BOM, halfwidth hangul filler */
  {0xfff0, 0xfffb},                            /* specials, interlinear annotation */
  {0x1d173, 0x1d17a},                          /* musical format controls */
  {0x2f800, 0x2fa1f},                          /* CJK compatibility supplement */
  {0xe0000, 0xe0fff},                          /* tags, variation selectors suppl. */
  {0xf0000, 0x10ffff},                         /* private use planes */
};

static int name_cp_ok(uint32_t cp)
{
  if ((cp & 0xfffe) == 0xfffe) /* noncharacters U+xxFFFE/U+xxFFFF */
    return 0;
  for (size_t i = 0; i < sizeof name_forbidden / sizeof name_forbidden[0]; i++)
    if (cp >= name_forbidden[i].lo && cp <= name_forbidden[i].hi)
      return 0;
  return 1;
}

int sc_token_name_reason(const char *name, size_t len)
{
  if (!name || len == 0 || len > SECCHAT_NAME_MAX_BYTES)
    return SECCHAT_TOKEN_R_NAME;
  const uint8_t *s = (const uint8_t *)name;
  size_t i = 0, chars = 0;
  uint32_t cp = 0;
  while (i < len) {
    if (utf8_next(s, len, &i, &cp) != 0 || !name_cp_ok(cp))
      return SECCHAT_TOKEN_R_NAME;
    /* Only U+0020 is allowed as a space, and not at either end. */
    if (cp == 0x20 && (chars == 0 || i == len))
      return SECCHAT_TOKEN_R_NAME;
    chars++;
  }
  return chars <= SECCHAT_NAME_MAX_CHARS ? 0 : SECCHAT_TOKEN_R_NAME;
}

int secchat_name_check(const char *name, size_t len)
{
  return sc_token_name_reason(name, len) ? SECCHAT_ERR_INVALID_ARGUMENT : 0;
}

int sc_token_issuer_ok(const char *issuer)
{
  if (!issuer)
    return 0;
  /* Bounded scan: the caller's string may be long. */
  size_t n = 0;
  while (n <= SECCHAT_ISSUER_MAX_BYTES && issuer[n])
    n++;
  if (n == 0 || n > SECCHAT_ISSUER_MAX_BYTES)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (issuer[i] < 0x21 || issuer[i] > 0x7e)
      return 0;
  return 1;
}

/* ---- Proof messages ---------------------------------------------------------- */

size_t sc_token_registration_msg(uint8_t out[SC_TOKEN_REG_MSG_MAX], const uint8_t hh[32],
                                 const char *name, size_t name_len, const uint8_t sig_pk[32],
                                 const uint8_t dh_pk[32])
{
  if (name_len > SECCHAT_NAME_MAX_BYTES)
    return 0;
  size_t o = 0;
  memcpy(out + o, hh, 32), o += 32;
  out[o++] = (uint8_t)(name_len >> 8);
  out[o++] = (uint8_t)name_len;
  if (name_len)
    memcpy(out + o, name, name_len), o += name_len;
  memcpy(out + o, sig_pk, 32), o += 32;
  memcpy(out + o, dh_pk, 32), o += 32;
  return o;
}

int sc_token_sign_registration(uint8_t proof[64], const uint8_t sk[64], const uint8_t hh[32],
                               const char *name, size_t name_len, const uint8_t sig_pk[32],
                               const uint8_t dh_pk[32])
{
  uint8_t msg[SC_TOKEN_REG_MSG_MAX];
  size_t n = sc_token_registration_msg(msg, hh, name, name_len, sig_pk, dh_pk);
  if (n == 0)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  return sc_sign_ctx(proof, SC_CTX_REGISTER, msg, n, sk);
}

int sc_token_sign_login(uint8_t proof[64], const uint8_t sk[64], const uint8_t hh[32])
{
  return sc_sign_ctx(proof, SC_CTX_AUTH, hh, 32, sk);
}

int sc_token_sign_renew(uint8_t proof[64], const uint8_t sk[64], const uint8_t hh[32])
{
  return sc_sign_ctx(proof, SC_CTX_RENEW, hh, 32, sk);
}

int secchat_token_registration_proof(const secchat_identity *id, const char *name,
                                     size_t name_len,
                                     const uint8_t handshake_hash[SECCHAT_HASH_BYTES],
                                     uint8_t proof[SECCHAT_SIGNATURE_BYTES])
{
  if (!id || !handshake_hash || !proof || sc_token_name_reason(name, name_len) != 0)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  return sc_token_sign_registration(proof, sc_identity_sign_sk(id), handshake_hash, name,
                                    name_len, secchat_identity_sign_public_key(id),
                                    secchat_identity_dh_public_key(id));
}

int secchat_token_login_proof(const secchat_identity *id,
                              const uint8_t handshake_hash[SECCHAT_HASH_BYTES],
                              uint8_t proof[SECCHAT_SIGNATURE_BYTES])
{
  if (!id || !handshake_hash || !proof)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  return sc_token_sign_login(proof, sc_identity_sign_sk(id), handshake_hash);
}

int secchat_token_renew_proof(const secchat_identity *id,
                              const uint8_t handshake_hash[SECCHAT_HASH_BYTES],
                              uint8_t proof[SECCHAT_SIGNATURE_BYTES])
{
  if (!id || !handshake_hash || !proof)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  return sc_token_sign_renew(proof, sc_identity_sign_sk(id), handshake_hash);
}

/* ---- Structural pre-check (before libjwt) ---------------------------------- */

enum claim_type { CT_STR, CT_TIME, CT_VER };

static const struct claim_def {
  const char *name;
  enum claim_type type;
} claim_defs[] = {
  {"iss", CT_STR},    {"sub", CT_STR},   {"name", CT_STR}, {"sig_pk", CT_STR},
  {"dh_pk", CT_STR},  {"dh_sig", CT_STR}, {"jti", CT_STR}, {"iat", CT_TIME},
  {"nbf", CT_TIME},   {"exp", CT_TIME},  {"ver", CT_VER},
};
#define N_CLAIMS (sizeof claim_defs / sizeof claim_defs[0])

static int is_b64u_char(unsigned char c)
{
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '_';
}

/* Split into three non-empty base64url segments. */
static int split_segments(const char *t, size_t len, size_t off[3], size_t seglen[3])
{
  size_t dots = 0, start = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)t[i];
    if (c == '.') {
      if (++dots > 2)
        return SECCHAT_TOKEN_R_DOTS;
      off[dots - 1] = start;
      seglen[dots - 1] = i - start;
      start = i + 1;
    } else if (!is_b64u_char(c)) {
      return SECCHAT_TOKEN_R_CHARSET;
    }
  }
  if (dots != 2)
    return SECCHAT_TOKEN_R_DOTS;
  off[2] = start;
  seglen[2] = len - start;
  for (int k = 0; k < 3; k++)
    if (seglen[k] == 0)
      return SECCHAT_TOKEN_R_EMPTY_SEGMENT;
  return 0;
}

/* Decode one segment as a JSON object, refusing duplicate members. */
static int load_segment(const char *seg, size_t len, json_t **out, int bad_json)
{
  uint8_t buf[SECCHAT_MAX_TOKEN_BYTES];
  size_t n = 0;
  *out = NULL;
  if (b64u_decode(buf, sizeof buf, seg, len, &n) != 0)
    return SECCHAT_TOKEN_R_BASE64;
  json_error_t err;
  json_t *j = json_loadb((const char *)buf, n, JSON_REJECT_DUPLICATES, &err);
  if (!j)
    return json_error_code(&err) == json_error_duplicate_key ? SECCHAT_TOKEN_R_DUPLICATE
           : json_error_code(&err) == json_error_out_of_memory ? SECCHAT_TOKEN_R_INTERNAL
                                                                : bad_json;
  if (!json_is_object(j)) {
    json_decref(j);
    return bad_json;
  }
  *out = j;
  return 0;
}

static int check_header(json_t *h)
{
  const json_t *alg = json_object_get(h, "alg");
  if (!json_is_string(alg) || strcmp(json_string_value(alg), "ES256") != 0 ||
      json_string_length(alg) != 5)
    return SECCHAT_TOKEN_R_ALG;
  const char *key;
  json_t *val;
  json_object_foreach(h, key, val) {
    if (strcmp(key, "alg") == 0)
      continue;
    if (strcmp(key, "typ") != 0)
      return SECCHAT_TOKEN_R_HEADER_FIELD; /* kid, jku, x5u, crit, jwk, x5c... */
    if (!json_is_string(val) || strcmp(json_string_value(val), "JWT") != 0 ||
        json_string_length(val) != 3)
      return SECCHAT_TOKEN_R_TYP;
  }
  return 0;
}

static int check_claim_types(const json_t *p)
{
  for (size_t i = 0; i < N_CLAIMS; i++) {
    const json_t *v = json_object_get(p, claim_defs[i].name);
    if (!v)
      return SECCHAT_TOKEN_R_CLAIM_MISSING;
    if (claim_defs[i].type == CT_STR) {
      if (!json_is_string(v))
        return SECCHAT_TOKEN_R_CLAIM_TYPE;
      /* No embedded NUL (jansson refuses \u0000 already) and bounded. */
      if (json_string_length(v) > SECCHAT_MAX_TOKEN_BYTES ||
          strlen(json_string_value(v)) != json_string_length(v))
        return SECCHAT_TOKEN_R_CLAIM_RANGE;
      continue;
    }
    /* json_is_integer excludes reals (1.5, 1e30), strings and booleans. */
    if (!json_is_integer(v))
      return SECCHAT_TOKEN_R_CLAIM_TYPE;
    json_int_t x = json_integer_value(v);
    if (claim_defs[i].type == CT_VER) {
      if (x != SC_TOKEN_VER)
        return SECCHAT_TOKEN_R_VERSION;
    } else if (x < 0 || x > SC_TIME_MAX) {
      return SECCHAT_TOKEN_R_CLAIM_RANGE;
    }
  }
  /* All known claims are present exactly once: anything more is unknown. */
  if (json_object_size(p) != N_CLAIMS)
    return SECCHAT_TOKEN_R_CLAIM_UNKNOWN;
  return 0;
}

/* ES256 signatures are exactly 64 bytes (JOSE r || s), canonical base64url. */
static int check_signature_segment(const char *seg, size_t len)
{
  uint8_t sig[64];
  size_t n = 0;
  if (len != B64LEN(sizeof sig))
    return SECCHAT_TOKEN_R_SIGNATURE;
  if (b64u_decode(sig, sizeof sig, seg, len, &n) != 0 || n != sizeof sig)
    return SECCHAT_TOKEN_R_BASE64;
  return 0;
}

/* Full pre-check; on success *payload holds the parsed claims object. */
static int precheck(const char *t, size_t len, json_t **payload)
{
  size_t off[3], seglen[3];
  *payload = NULL;
  if (len == 0)
    return SECCHAT_TOKEN_R_EMPTY;
  if (len > SECCHAT_MAX_TOKEN_BYTES)
    return SECCHAT_TOKEN_R_TOO_LONG;
  int r = split_segments(t, len, off, seglen);
  if (r)
    return r;
  json_t *h = NULL, *p = NULL;
  r = load_segment(t + off[0], seglen[0], &h, SECCHAT_TOKEN_R_HEADER_JSON);
  if (!r)
    r = check_header(h);
  if (!r)
    r = load_segment(t + off[1], seglen[1], &p, SECCHAT_TOKEN_R_PAYLOAD_JSON);
  if (!r)
    r = check_claim_types(p);
  if (!r)
    r = check_signature_segment(t + off[2], seglen[2]);
  json_decref(h);
  if (r) {
    json_decref(p);
    return r;
  }
  *payload = p;
  return 0;
}

int sc_token_precheck(const char *token, size_t len)
{
  json_t *p = NULL;
  if (!token && len)
    return SECCHAT_TOKEN_R_INTERNAL;
  int r = precheck(token, len, &p);
  json_decref(p);
  return r;
}

/* ---- libjwt adapter ---------------------------------------------------------- */

/* Verify the ES256 signature with libjwt. Only called after precheck(), with
 * a non-empty public PEM. */
static int libjwt_verify(const char *t, size_t len, const char *pem, size_t pem_len)
{
  char copy[SECCHAT_MAX_TOKEN_BYTES + 1];
  if (len > SECCHAT_MAX_TOKEN_BYTES || !pem || pem_len == 0 || pem_len > INT_MAX)
    return SECCHAT_TOKEN_R_INTERNAL;
  memcpy(copy, t, len);
  copy[len] = 0;
  jwt_t *jwt = NULL;
  int rc = jwt_decode(&jwt, copy, (const unsigned char *)pem, (int)pem_len);
  int r = 0;
  if (rc != 0 || !jwt) {
    r = rc == ENOMEM ? SECCHAT_TOKEN_R_INTERNAL : SECCHAT_TOKEN_R_SIGNATURE;
    ERR_clear_error(); /* libjwt leaves OpenSSL's per-thread queue dirty */
  }
  else if (jwt_get_alg(jwt) != JWT_ALG_ES256)
    r = SECCHAT_TOKEN_R_ALG_MISMATCH;
  jwt_free(jwt);
  return r;
}

/* Sign claims (a JSON object) with libjwt into out. */
static int libjwt_sign(const secchat_server_key *key, json_t *claims, char *out, size_t cap,
                       size_t *out_len)
{
  size_t pem_len;
  const char *pem = sc_servkey_private_pem(key, &pem_len);
  char *grants = json_dumps(claims, JSON_COMPACT | JSON_SORT_KEYS);
  if (!grants)
    return SECCHAT_ERR_NOMEM;
  jwt_t *jwt = NULL;
  char *tok = NULL;
  int rc = SECCHAT_ERR_INTERNAL;
  if (jwt_new(&jwt) == 0 && jwt_add_grants_json(jwt, grants) == 0 &&
      jwt_set_alg(jwt, JWT_ALG_ES256, (const unsigned char *)pem, (int)pem_len) == 0)
    tok = jwt_encode_str(jwt);
  if (tok) {
    size_t n = strlen(tok);
    if (n > SECCHAT_MAX_TOKEN_BYTES)
      rc = SECCHAT_ERR_INTERNAL;
    else if (cap < n + 1)
      rc = SECCHAT_ERR_BUFFER_TOO_SMALL;
    else {
      memcpy(out, tok, n + 1);
      if (out_len)
        *out_len = n;
      rc = 0;
    }
    free(tok);
  }
  jwt_free(jwt);
  free(grants);
  return rc;
}

/* ---- Claims after the signature ------------------------------------------- */

static const char *str_claim(const json_t *p, const char *name)
{
  return json_string_value(json_object_get(p, name));
}

static int64_t int_claim(const json_t *p, const char *name)
{
  return (int64_t)json_integer_value(json_object_get(p, name));
}

/* Time checks against now (grace only extends expiry, for renewal).
 * *in_grace is set when the token is accepted only thanks to grace. */
static int time_reason(const secchat_token_claims *c, int64_t now, int64_t grace, int *in_grace)
{
  *in_grace = 0;
  if (c->iat > now + SECCHAT_TOKEN_LEEWAY)
    return SECCHAT_TOKEN_R_IAT_FUTURE;
  if (c->nbf > now + SECCHAT_TOKEN_LEEWAY) /* iat <= nbf: only nbf is late */
    return SECCHAT_TOKEN_R_NOT_YET_VALID;
  if (now >= c->exp + SECCHAT_TOKEN_LEEWAY) {
    if (now >= c->exp + SECCHAT_TOKEN_LEEWAY + grace)
      return SECCHAT_TOKEN_R_EXPIRED;
    *in_grace = 1;
  }
  return 0;
}

/* Everything after libjwt accepted the signature, expiry last so that
 * SECCHAT_ERR_TOKEN_EXPIRED means "authentic and otherwise valid". */
static int claims_reason(const json_t *p, const char *issuer, int64_t now, int64_t grace,
                         secchat_token_claims *c, int *in_grace)
{
  memset(c, 0, sizeof *c);
  c->struct_size = (uint32_t)sizeof *c;
  c->ver = SC_TOKEN_VER;

  const char *iss = str_claim(p, "iss");
  if (strcmp(iss, issuer) != 0)
    return SECCHAT_TOKEN_R_ISSUER;
  memcpy(c->iss, iss, strlen(iss) + 1); /* == issuer, so it fits */

  c->iat = int_claim(p, "iat");
  c->nbf = int_claim(p, "nbf");
  c->exp = int_claim(p, "exp");
  if (c->iat > c->nbf || c->nbf >= c->exp || c->exp - c->iat > SECCHAT_TOKEN_MAX_LIFETIME)
    return SECCHAT_TOKEN_R_LIFETIME;

  if (b64u_exact(c->sig_pk, sizeof c->sig_pk, str_claim(p, "sig_pk")) ||
      b64u_exact(c->dh_pk, sizeof c->dh_pk, str_claim(p, "dh_pk")) ||
      b64u_exact(c->dh_sig, sizeof c->dh_sig, str_claim(p, "dh_sig")))
    return SECCHAT_TOKEN_R_KEY_ENCODING;
  if (sc_check_dh_pk(c->dh_pk) != 0)
    return SECCHAT_TOKEN_R_DH_PK;

  sc_uid_from_sign_pk(c->uid, c->sig_pk);
  if (sc_base32_encode(c->uid_str, sizeof c->uid_str, c->uid, sizeof c->uid) !=
      (int)SC_BASE32_LEN(SECCHAT_UID_BYTES))
    return SECCHAT_TOKEN_R_INTERNAL;
  if (strcmp(str_claim(p, "sub"), c->uid_str) != 0)
    return SECCHAT_TOKEN_R_SUB;

  const char *name = str_claim(p, "name");
  size_t name_len = strlen(name);
  if (sc_token_name_reason(name, name_len) != 0)
    return SECCHAT_TOKEN_R_NAME;
  memcpy(c->name, name, name_len + 1);

  if (b64u_exact(c->jti, sizeof c->jti, str_claim(p, "jti")))
    return SECCHAT_TOKEN_R_CLAIM_RANGE;

  /* The dh_sig check validates sig_pk too: libsodium's verify refuses a
   * non-canonical, small-order or off-curve key. What it does not test is
   * prime-order subgroup membership (~30 us, a fifth of the cost of a
   * verify): the issuer tested that at registration, and a torsioned key
   * would only let its owner mint more uids for its own secret. So the
   * full test runs only to name the reason of a failure. */
  if (sc_verify_ctx(c->dh_sig, SC_CTX_DH, c->dh_pk, sizeof c->dh_pk, c->sig_pk) != 0)
    return sc_check_sign_pk(c->sig_pk) != 0 ? SECCHAT_TOKEN_R_SIGN_PK : SECCHAT_TOKEN_R_DH_SIG;

  return time_reason(c, now, grace, in_grace);
}

/* ---- Verifier ------------------------------------------------------------------ */

struct secchat_token_verifier {
  char *pem; /* canonical SPKI PEM, never empty */
  size_t pem_len;
  char issuer[SECCHAT_ISSUER_MAX_BYTES + 1];
  sc_tokcache *cache; /* NULL when capacity 0 */
};

int secchat_token_verifier_new(secchat_token_verifier **out, const char *public_pem,
                               size_t len, const char *issuer, size_t cache_capacity)
{
  if (!out)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  *out = NULL;
  if (!sc_token_issuer_ok(issuer) || cache_capacity > SECCHAT_TOKEN_CACHE_MAX ||
      (!public_pem && len))
    return SECCHAT_ERR_INVALID_ARGUMENT;
  secchat_token_verifier *v = calloc(1, sizeof *v);
  if (!v)
    return SECCHAT_ERR_NOMEM;
  int rc = sc_servkey_canonical_public_pem(public_pem, len, &v->pem, &v->pem_len, NULL);
  if (rc == 0 && cache_capacity)
    rc = sc_tokcache_new(&v->cache, cache_capacity);
  if (rc) {
    secchat_token_verifier_free(v);
    return rc;
  }
  memcpy(v->issuer, issuer, strlen(issuer) + 1);
  *out = v;
  return 0;
}

void secchat_token_verifier_free(secchat_token_verifier *v)
{
  if (!v)
    return;
  sc_tokcache_free(v->cache);
  free(v->pem);
  free(v);
}

void secchat_token_verifier_cache_stats(const secchat_token_verifier *v, uint64_t *hits,
                                        uint64_t *misses, uint64_t *entries)
{
  sc_tokcache_stats st;
  memset(&st, 0, sizeof st);
  if (v && v->cache)
    sc_tokcache_get_stats(v->cache, &st);
  if (hits)
    *hits = st.hits;
  if (misses)
    *misses = st.misses;
  if (entries)
    *entries = st.entries;
}

static int now_ok(int64_t now_s) { return now_s >= 0 && now_s <= SC_TIME_MAX; }

/* The whole verification; returns a reason. Fills c on success. A token is
 * cached only when it passed every check without needing grace. */
static int verify_reason(secchat_token_verifier *v, const char *t, size_t len, int64_t now,
                         int64_t grace, secchat_token_claims *c)
{
  int in_grace = 0;
  if (len == 0)
    return SECCHAT_TOKEN_R_EMPTY;
  if (len > SECCHAT_MAX_TOKEN_BYTES)
    return SECCHAT_TOKEN_R_TOO_LONG; /* before hashing or parsing anything */

  uint8_t h[SC_TOKCACHE_HASH_BYTES] = {0};
  if (v->cache) {
    sc_tokcache_hash(v->cache, t, len, h);
    if (sc_tokcache_lookup(v->cache, h, c)) {
      int r = time_reason(c, now, grace, &in_grace);
      if (r == SECCHAT_TOKEN_R_EXPIRED || in_grace)
        sc_tokcache_remove(v->cache, h); /* expired for everyone from now on */
      return r;
    }
  }

  json_t *payload = NULL;
  int r = precheck(t, len, &payload);
  if (!r)
    r = libjwt_verify(t, len, v->pem, v->pem_len);
  if (!r)
    r = claims_reason(payload, v->issuer, now, grace, c, &in_grace);
  json_decref(payload);
  if (!r && v->cache && !in_grace)
    sc_tokcache_insert(v->cache, h, c);
  return r;
}

/* Shared entry: argument checks, verification, reason and public code. */
static int verify_common(secchat_token_verifier *v, const char *token, size_t len,
                         int64_t now_s, int64_t grace, secchat_token_claims *claims,
                         int *reason)
{
  set_reason(reason, SECCHAT_TOKEN_R_INTERNAL);
  if (!v || (!token && len) || !now_ok(now_s))
    return SECCHAT_ERR_INVALID_ARGUMENT;
  secchat_token_claims tmp;
  int r = verify_reason(v, token, len, now_s, grace, &tmp);
  set_reason(reason, r);
  if (r == 0 && claims)
    *claims = tmp;
  return public_code(r);
}

int secchat_token_verify(secchat_token_verifier *v, const char *token, size_t len,
                         int64_t now_s, secchat_token_claims *claims, int *reason)
{
  return verify_common(v, token, len, now_s, 0, claims, reason);
}

int secchat_token_check_peer(secchat_token_verifier *v, const char *token, size_t len,
                             const uint8_t *expected_uid, int64_t now_s,
                             secchat_token_claims *claims, int *reason)
{
  secchat_token_claims c;
  int rc = verify_common(v, token, len, now_s, 0, &c, reason);
  if (rc)
    return rc;
  if (expected_uid && sodium_memcmp(c.uid, expected_uid, sizeof c.uid) != 0) {
    set_reason(reason, SECCHAT_TOKEN_R_UID);
    return SECCHAT_ERR_AUTH;
  }
  if (claims)
    *claims = c;
  return 0;
}

/* Possession proof over the handshake hash plus channel binding. */
static int proof_reason(const secchat_token_claims *c, const char *ctx,
                        const uint8_t proof[64], const uint8_t hh[32],
                        const uint8_t remote_static[32])
{
  if (sc_verify_ctx(proof, ctx, hh, 32, c->sig_pk) != 0)
    return SECCHAT_TOKEN_R_PROOF;
  if (sodium_memcmp(c->dh_pk, remote_static, 32) != 0)
    return SECCHAT_TOKEN_R_CHANNEL;
  return 0;
}

int secchat_token_verify_login(secchat_token_verifier *v, const char *token, size_t len,
                               const uint8_t proof[SECCHAT_SIGNATURE_BYTES],
                               const uint8_t handshake_hash[SECCHAT_HASH_BYTES],
                               const uint8_t remote_static[SECCHAT_DH_PUBLICKEY_BYTES],
                               int64_t now_s, secchat_token_claims *claims, int *reason)
{
  if (!proof || !handshake_hash || !remote_static) {
    set_reason(reason, SECCHAT_TOKEN_R_INTERNAL);
    return SECCHAT_ERR_INVALID_ARGUMENT;
  }
  secchat_token_claims c;
  int rc = verify_common(v, token, len, now_s, 0, &c, reason);
  if (rc)
    return rc;
  int r = proof_reason(&c, SC_CTX_AUTH, proof, handshake_hash, remote_static);
  set_reason(reason, r);
  if (r)
    return SECCHAT_ERR_AUTH;
  if (claims)
    *claims = c;
  return 0;
}

/* ---- Issuance ------------------------------------------------------------------ */

static int json_set_str(json_t *o, const char *k, const char *s)
{
  return json_object_set_new(o, k, json_string(s));
}

/* Build and sign a token for identity claims that are already verified. */
static int mint(const secchat_server_key *key, const char *issuer, const char *name,
                size_t name_len, const uint8_t sig_pk[32], const uint8_t dh_pk[32],
                const uint8_t dh_sig[64], int64_t now, uint32_t ttl, char *out, size_t cap,
                size_t *out_len)
{
  uint8_t uid[SECCHAT_UID_BYTES], jti[SECCHAT_JTI_BYTES];
  char sub[SECCHAT_UID_STRING_BYTES], jti_s[B64LEN(16) + 1];
  char sig_pk_s[B64LEN(32) + 1], dh_pk_s[B64LEN(32) + 1], dh_sig_s[B64LEN(64) + 1];
  char name_s[SECCHAT_NAME_MAX_BYTES + 1];

  sc_uid_from_sign_pk(uid, sig_pk);
  if (sc_base32_encode(sub, sizeof sub, uid, sizeof uid) < 0)
    return SECCHAT_ERR_INTERNAL;
  sc_random(jti, sizeof jti);
  b64u_encode(jti_s, sizeof jti_s, jti, sizeof jti);
  b64u_encode(sig_pk_s, sizeof sig_pk_s, sig_pk, 32);
  b64u_encode(dh_pk_s, sizeof dh_pk_s, dh_pk, 32);
  b64u_encode(dh_sig_s, sizeof dh_sig_s, dh_sig, 64);
  memcpy(name_s, name, name_len);
  name_s[name_len] = 0;

  json_t *o = json_object();
  if (!o)
    return SECCHAT_ERR_NOMEM;
  int bad = json_set_str(o, "iss", issuer) | json_set_str(o, "sub", sub) |
            json_set_str(o, "name", name_s) | json_set_str(o, "sig_pk", sig_pk_s) |
            json_set_str(o, "dh_pk", dh_pk_s) | json_set_str(o, "dh_sig", dh_sig_s) |
            json_set_str(o, "jti", jti_s) |
            json_object_set_new(o, "iat", json_integer((json_int_t)now)) |
            json_object_set_new(o, "nbf", json_integer((json_int_t)now)) |
            json_object_set_new(o, "exp", json_integer((json_int_t)(now + ttl))) |
            json_object_set_new(o, "ver", json_integer(SC_TOKEN_VER));
  int rc = bad ? SECCHAT_ERR_NOMEM : libjwt_sign(key, o, out, cap, out_len);
  json_decref(o);
  return rc;
}

static int ttl_of(uint32_t ttl_s, uint32_t *ttl)
{
  *ttl = ttl_s ? ttl_s : SECCHAT_TOKEN_TTL_DEFAULT;
  return *ttl <= SECCHAT_TOKEN_MAX_LIFETIME;
}

/* Registration checks in the order of docs/tokens.md. */
static int registration_reason(const char *name, size_t name_len, const uint8_t sig_pk[32],
                               const uint8_t dh_pk[32], const uint8_t dh_sig[64],
                               const uint8_t proof[64], const uint8_t hh[32],
                               const uint8_t remote_static[32])
{
  if (sc_token_name_reason(name, name_len) != 0)
    return SECCHAT_TOKEN_R_NAME;
  if (sc_check_sign_pk(sig_pk) != 0)
    return SECCHAT_TOKEN_R_SIGN_PK;
  if (sc_check_dh_pk(dh_pk) != 0)
    return SECCHAT_TOKEN_R_DH_PK;
  if (sc_verify_ctx(dh_sig, SC_CTX_DH, dh_pk, 32, sig_pk) != 0)
    return SECCHAT_TOKEN_R_DH_SIG;
  uint8_t msg[SC_TOKEN_REG_MSG_MAX];
  size_t n = sc_token_registration_msg(msg, hh, name, name_len, sig_pk, dh_pk);
  if (n == 0 || sc_verify_ctx(proof, SC_CTX_REGISTER, msg, n, sig_pk) != 0)
    return SECCHAT_TOKEN_R_PROOF;
  if (sodium_memcmp(dh_pk, remote_static, 32) != 0)
    return SECCHAT_TOKEN_R_CHANNEL;
  return 0;
}

int secchat_token_issue(const secchat_server_key *key, const char *issuer, const char *name,
                        size_t name_len, const uint8_t sig_pk[SECCHAT_SIGN_PUBLICKEY_BYTES],
                        const uint8_t dh_pk[SECCHAT_DH_PUBLICKEY_BYTES],
                        const uint8_t dh_sig[SECCHAT_SIGNATURE_BYTES],
                        const uint8_t proof[SECCHAT_SIGNATURE_BYTES],
                        const uint8_t handshake_hash[SECCHAT_HASH_BYTES],
                        const uint8_t remote_static[SECCHAT_DH_PUBLICKEY_BYTES], int64_t now_s,
                        uint32_t ttl_s, char *out, size_t cap, size_t *out_len, int *reason)
{
  uint32_t ttl;
  set_reason(reason, SECCHAT_TOKEN_R_INTERNAL);
  if (!key || !sc_token_issuer_ok(issuer) || (!name && name_len) || !sig_pk || !dh_pk ||
      !dh_sig || !proof || !handshake_hash || !remote_static || !out || !now_ok(now_s) ||
      !ttl_of(ttl_s, &ttl))
    return SECCHAT_ERR_INVALID_ARGUMENT;
  int r = registration_reason(name, name_len, sig_pk, dh_pk, dh_sig, proof, handshake_hash,
                              remote_static);
  set_reason(reason, r);
  if (r)
    return SECCHAT_ERR_AUTH;
  int rc = mint(key, issuer, name, name_len, sig_pk, dh_pk, dh_sig, now_s, ttl, out, cap,
                out_len);
  if (rc)
    set_reason(reason, SECCHAT_TOKEN_R_INTERNAL);
  return rc;
}

int secchat_token_renew(const secchat_server_key *key, secchat_token_verifier *v,
                        const char *token, size_t len,
                        const uint8_t proof[SECCHAT_SIGNATURE_BYTES],
                        const uint8_t handshake_hash[SECCHAT_HASH_BYTES],
                        const uint8_t remote_static[SECCHAT_DH_PUBLICKEY_BYTES], int64_t now_s,
                        int64_t grace_s, uint32_t ttl_s, char *out, size_t cap,
                        size_t *out_len, int *reason)
{
  uint32_t ttl;
  set_reason(reason, SECCHAT_TOKEN_R_INTERNAL);
  if (!key || !v || !proof || !handshake_hash || !remote_static || !out || grace_s < 0 ||
      grace_s > SECCHAT_TOKEN_MAX_LIFETIME || !ttl_of(ttl_s, &ttl))
    return SECCHAT_ERR_INVALID_ARGUMENT;
  size_t kpem_len;
  const char *kpem = sc_servkey_public_pem(key, &kpem_len);
  if (kpem_len != v->pem_len || memcmp(kpem, v->pem, kpem_len) != 0) {
    set_reason(reason, SECCHAT_TOKEN_R_KEY_MISMATCH);
    return SECCHAT_ERR_INVALID_ARGUMENT;
  }
  secchat_token_claims c;
  int rc = verify_common(v, token, len, now_s, grace_s, &c, reason);
  if (rc)
    return rc == SECCHAT_ERR_TOKEN_EXPIRED ? SECCHAT_ERR_AUTH : rc;
  int r = proof_reason(&c, SC_CTX_RENEW, proof, handshake_hash, remote_static);
  set_reason(reason, r);
  if (r)
    return SECCHAT_ERR_AUTH;
  rc = mint(key, v->issuer, c.name, strlen(c.name), c.sig_pk, c.dh_pk, c.dh_sig, now_s, ttl,
            out, cap, out_len);
  set_reason(reason, rc ? SECCHAT_TOKEN_R_INTERNAL : 0);
  return rc;
}
