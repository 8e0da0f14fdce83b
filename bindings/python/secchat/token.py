"""secchat.token: server token key, token issuance and verification (ctypes).

Mirrors include/secchat/token.h. Errors raise TokenError, a SecchatError
that also carries the precise internal reason (for logs and tests; never
send it to a peer). Times are Unix seconds passed in by the caller.
"""
import ctypes
from ctypes import POINTER, byref, c_char, c_char_p, c_int, c_int64, c_size_t, c_uint8, c_uint32, c_uint64, c_void_p

from . import SecchatError, _lib

_lib.secchat_max_token_bytes.restype = c_size_t
MAX_TOKEN_BYTES = _lib.secchat_max_token_bytes()
PEM_MAX = 1024
TTL_DEFAULT = 7 * 24 * 3600
MAX_LIFETIME = 30 * 24 * 3600
LEEWAY = 60

ERR_AUTH = -200
ERR_TOKEN_EXPIRED = -210

# secchat_token_reason (stable numbers; include/secchat/token.h).
(R_OK, R_EMPTY, R_TOO_LONG, R_CHARSET, R_DOTS, R_EMPTY_SEGMENT, R_BASE64, R_HEADER_JSON,
 R_DUPLICATE, R_ALG, R_TYP, R_HEADER_FIELD, R_PAYLOAD_JSON, R_CLAIM_MISSING, R_CLAIM_TYPE,
 R_CLAIM_RANGE, R_CLAIM_UNKNOWN, R_VERSION, R_SIGNATURE, R_ALG_MISMATCH, R_ISSUER, R_LIFETIME,
 R_KEY_ENCODING, R_SIGN_PK, R_DH_PK, R_SUB, R_DH_SIG, R_NAME, R_NOT_YET_VALID, R_IAT_FUTURE,
 R_EXPIRED, R_PROOF, R_CHANNEL, R_UID, R_KEY_MISMATCH, R_INTERNAL) = range(36)


class Claims(ctypes.Structure):
    """secchat_token_claims (fixed-size fields)."""

    _fields_ = [
        ("struct_size", c_uint32),
        ("ver", c_uint32),
        ("iat", c_int64),
        ("nbf", c_int64),
        ("exp", c_int64),
        ("uid", c_uint8 * 20),
        ("uid_str", c_char * 33),
        ("name", c_char * 129),
        ("iss", c_char * 65),
        ("sig_pk", c_uint8 * 32),
        ("dh_pk", c_uint8 * 32),
        ("dh_sig", c_uint8 * 64),
        ("jti", c_uint8 * 16),
    ]

    def as_dict(self):
        return {
            "ver": self.ver,
            "iat": self.iat,
            "nbf": self.nbf,
            "exp": self.exp,
            "uid": bytes(self.uid),
            "sub": self.uid_str.decode(),
            "name": self.name.decode("utf-8"),
            "iss": self.iss.decode(),
            "sig_pk": bytes(self.sig_pk),
            "dh_pk": bytes(self.dh_pk),
            "dh_sig": bytes(self.dh_sig),
            "jti": bytes(self.jti),
        }


_u8p = POINTER(c_uint8)


def _decl(name, restype, argtypes):
    f = getattr(_lib, name)
    f.restype = restype
    f.argtypes = argtypes
    return f


_reason_string = _decl("secchat_token_reason_string", c_char_p, [c_int])
_claims_size = _decl("secchat_token_claims_size", c_size_t, [])
_key_generate = _decl("secchat_server_key_generate", c_int, [POINTER(c_void_p)])
_key_from_pem = _decl("secchat_server_key_from_pem", c_int, [POINTER(c_void_p), c_char_p, c_size_t])
_key_private_pem = _decl("secchat_server_key_private_pem", c_int,
                         [c_void_p, c_char_p, c_size_t, POINTER(c_size_t)])
_key_public_pem = _decl("secchat_server_key_public_pem", c_int,
                        [c_void_p, c_char_p, c_size_t, POINTER(c_size_t)])
_key_fingerprint = _decl("secchat_server_key_fingerprint", c_int, [c_void_p, _u8p])
_key_free = _decl("secchat_server_key_free", None, [c_void_p])
_ver_new = _decl("secchat_token_verifier_new", c_int,
                 [POINTER(c_void_p), c_char_p, c_size_t, c_char_p, c_size_t])
_ver_free = _decl("secchat_token_verifier_free", None, [c_void_p])
_ver_stats = _decl("secchat_token_verifier_cache_stats", None,
                   [c_void_p, POINTER(c_uint64), POINTER(c_uint64), POINTER(c_uint64)])
_verify = _decl("secchat_token_verify", c_int,
                [c_void_p, c_char_p, c_size_t, c_int64, POINTER(Claims), POINTER(c_int)])
_check_peer = _decl("secchat_token_check_peer", c_int,
                    [c_void_p, c_char_p, c_size_t, c_char_p, c_int64, POINTER(Claims), POINTER(c_int)])
_verify_login = _decl("secchat_token_verify_login", c_int,
                      [c_void_p, c_char_p, c_size_t, c_char_p, c_char_p, c_char_p, c_int64,
                       POINTER(Claims), POINTER(c_int)])
_issue = _decl("secchat_token_issue", c_int,
               [c_void_p, c_char_p, c_char_p, c_size_t, c_char_p, c_char_p, c_char_p, c_char_p,
                c_char_p, c_char_p, c_int64, c_uint32, c_char_p, c_size_t, POINTER(c_size_t),
                POINTER(c_int)])
_renew = _decl("secchat_token_renew", c_int,
               [c_void_p, c_void_p, c_char_p, c_size_t, c_char_p, c_char_p, c_char_p, c_int64,
                c_int64, c_uint32, c_char_p, c_size_t, POINTER(c_size_t), POINTER(c_int)])
_name_check = _decl("secchat_name_check", c_int, [c_char_p, c_size_t])

if _claims_size() != ctypes.sizeof(Claims):
    raise ImportError("secchat_token_claims layout mismatch (%d != %d)"
                      % (_claims_size(), ctypes.sizeof(Claims)))


def reason_string(reason):
    return _reason_string(reason).decode()


class TokenError(SecchatError):
    """A rejected token or registration: code (public) and reason (internal)."""

    def __init__(self, code, reason):
        self.reason = reason
        self.reason_text = reason_string(reason) if reason >= 0 else ""
        super().__init__(code)
        self.args = ("%s [reason %d: %s]" % (self.args[0], reason, self.reason_text),)


def _check(rc, reason=-1):
    if rc < 0:
        raise TokenError(rc, reason)
    return rc


def _bytes(b, n, what):
    b = bytes(b)
    if len(b) != n:
        raise ValueError("%s must be %d bytes" % (what, n))
    return b


def _as_bytes(s):
    return s.encode() if isinstance(s, str) else bytes(s)


def name_check(name):
    """True if name satisfies the name rules (docs/tokens.md)."""
    b = _as_bytes(name)
    return _name_check(b, len(b)) == 0


class ServerKey:
    """The server's ES256 (P-256) token key."""

    def __init__(self, handle):
        self._h = handle

    @classmethod
    def generate(cls):
        h = c_void_p()
        _check(_key_generate(byref(h)))
        return cls(h)

    @classmethod
    def from_pem(cls, pem):
        pem = _as_bytes(pem)
        h = c_void_p()
        _check(_key_from_pem(byref(h), pem, len(pem)))
        return cls(h)

    def _pem(self, fn):
        buf = ctypes.create_string_buffer(PEM_MAX)
        n = c_size_t()
        _check(fn(self._h, buf, PEM_MAX, byref(n)))
        out = buf.raw[:n.value]
        ctypes.memset(buf, 0, PEM_MAX)
        return out

    def private_pem(self):
        return self._pem(_key_private_pem)

    def public_pem(self):
        return self._pem(_key_public_pem)

    def fingerprint(self):
        out = (c_uint8 * 32)()
        _check(_key_fingerprint(self._h, out))
        return bytes(out)

    def close(self):
        if self._h:
            _key_free(self._h)
            self._h = None

    def __del__(self):
        self.close()


def issue(key, issuer, name, sig_pk, dh_pk, dh_sig, proof, handshake_hash, remote_static, now,
          ttl=0):
    """Verify a registration and issue a token (str); raises TokenError."""
    name = _as_bytes(name)
    out = ctypes.create_string_buffer(MAX_TOKEN_BYTES + 1)
    n = c_size_t()
    reason = c_int(-1)
    rc = _issue(key._h, _as_bytes(issuer), name, len(name), _bytes(sig_pk, 32, "sig_pk"),
                _bytes(dh_pk, 32, "dh_pk"), _bytes(dh_sig, 64, "dh_sig"), _bytes(proof, 64, "proof"),
                _bytes(handshake_hash, 32, "handshake_hash"), _bytes(remote_static, 32, "remote_static"),
                now, ttl, out, len(out), byref(n), byref(reason))
    _check(rc, reason.value)
    return out.raw[:n.value].decode()


class Verifier:
    """Strict token verifier for one server public key and issuer."""

    def __init__(self, public_pem, issuer, cache_capacity=0):
        pem = _as_bytes(public_pem)
        self._h = c_void_p()
        _check(_ver_new(byref(self._h), pem, len(pem), _as_bytes(issuer), cache_capacity))

    def verify(self, token, now):
        """Claims dict of a valid token; raises TokenError."""
        t = _as_bytes(token)
        c = Claims()
        reason = c_int(-1)
        _check(_verify(self._h, t, len(t), now, byref(c), byref(reason)), reason.value)
        return c.as_dict()

    def check_peer(self, token, now, expected_uid=None):
        t = _as_bytes(token)
        c = Claims()
        reason = c_int(-1)
        uid = None if expected_uid is None else _bytes(expected_uid, 20, "uid")
        _check(_check_peer(self._h, t, len(t), uid, now, byref(c), byref(reason)), reason.value)
        return c.as_dict()

    def verify_login(self, token, proof, handshake_hash, remote_static, now):
        t = _as_bytes(token)
        c = Claims()
        reason = c_int(-1)
        rc = _verify_login(self._h, t, len(t), _bytes(proof, 64, "proof"),
                           _bytes(handshake_hash, 32, "handshake_hash"),
                           _bytes(remote_static, 32, "remote_static"), now, byref(c), byref(reason))
        _check(rc, reason.value)
        return c.as_dict()

    def renew(self, key, token, proof, handshake_hash, remote_static, now, grace=0, ttl=0):
        t = _as_bytes(token)
        out = ctypes.create_string_buffer(MAX_TOKEN_BYTES + 1)
        n = c_size_t()
        reason = c_int(-1)
        rc = _renew(key._h, self._h, t, len(t), _bytes(proof, 64, "proof"),
                    _bytes(handshake_hash, 32, "handshake_hash"),
                    _bytes(remote_static, 32, "remote_static"), now, grace, ttl, out, len(out),
                    byref(n), byref(reason))
        _check(rc, reason.value)
        return out.raw[:n.value].decode()

    def cache_stats(self):
        h, m, e = c_uint64(), c_uint64(), c_uint64()
        _ver_stats(self._h, byref(h), byref(m), byref(e))
        return {"hits": h.value, "misses": m.value, "entries": e.value}

    def close(self):
        if self._h:
            _ver_free(self._h)
            self._h = None

    def __del__(self):
        self.close()
