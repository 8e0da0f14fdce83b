"""JWT interop with independent implementations (security.md table B, issue 4).

- Tokens issued by libsecchat verify in PyJWT (python3-jwt) with the exported
  public PEM, with the claims computed here independently (PyNaCl keys,
  hashlib BLAKE2b uid, RFC 4648 base32 from the standard library).
- Tokens forged in Python are rejected by libsecchat with the expected
  reason: alg none, HS256 MACed with the public PEM (built by hand with hmac:
  PyJWT refuses), expired, other issuer, a PyJWT ES256 token under another key.
- A correctly formed ES256 token signed by PyJWT with the server's private key
  is accepted by libsecchat (interop both ways).
- The registration proof bytes are rebuilt here from docs/tokens.md.
"""
import base64
import hashlib
import hmac
import json
import os
import subprocess
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from nacl.bindings import crypto_scalarmult_base
from nacl.signing import SigningKey

from secchat import token as tk

ISS = "relay.interop"
HH = bytes(range(32))
HH2 = bytes(range(1, 33))


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def sign_ctx(sk, ctx, msg):
    return sk.sign(ctx + b"\x00" + msg).signature


class Ident:
    """An identity built with PyNaCl only."""

    def __init__(self, seed_byte):
        self.sk = SigningKey(bytes([seed_byte]) * 32)
        self.pk = bytes(self.sk.verify_key)
        self.dh_sk = bytes([seed_byte ^ 0x55]) * 32
        self.dh_pk = crypto_scalarmult_base(self.dh_sk)
        self.dh_sig = sign_ctx(self.sk, b"secchat/dh/v1", self.dh_pk)
        self.uid = hashlib.blake2b(self.pk, digest_size=20).digest()
        self.sub = base64.b32encode(self.uid).decode().lower().rstrip("=")

    def registration_proof(self, name, hh):
        n = name.encode()
        msg = hh + len(n).to_bytes(2, "big") + n + self.pk + self.dh_pk
        return sign_ctx(self.sk, b"secchat/register/v1", msg)

    def claims(self, now, name="alice", iss=ISS, ttl=3600):
        return {
            "iss": iss, "sub": self.sub, "name": name, "sig_pk": b64u(self.pk),
            "dh_pk": b64u(self.dh_pk), "dh_sig": b64u(self.dh_sig),
            "jti": b64u(os.urandom(16)), "iat": now, "nbf": now, "exp": now + ttl, "ver": 1,
        }


@pytest.fixture(scope="module")
def server():
    key = tk.ServerKey.generate()
    yield key
    key.close()


@pytest.fixture()
def verifier(server):
    v = tk.Verifier(server.public_pem(), ISS, cache_capacity=16)
    yield v
    v.close()


@pytest.fixture(scope="module")
def alice():
    return Ident(1)


def now():
    return int(time.time())


def issue(server, ident, name="alice", t=None, ttl=0):
    t = now() if t is None else t
    return tk.issue(server, ISS, name, ident.pk, ident.dh_pk, ident.dh_sig,
                    ident.registration_proof(name, HH), HH, ident.dh_pk, t, ttl)


def expect_reject(verifier, token, reason, code=tk.ERR_AUTH, t=None):
    with pytest.raises(tk.TokenError) as e:
        verifier.verify(token, now() if t is None else t)
    assert e.value.code == code, e.value
    assert e.value.reason == reason, e.value
    assert verifier.cache_stats()["entries"] == 0


# ---- libsecchat -> PyJWT ----------------------------------------------------------

def test_issued_token_verifies_in_pyjwt(server, alice):
    t0 = now()
    tok = issue(server, alice, "alice", t0)
    pub = serialization.load_pem_public_key(server.public_pem())
    assert isinstance(pub, ec.EllipticCurvePublicKey) and pub.curve.name == "secp256r1"
    header = jwt.get_unverified_header(tok)
    assert header == {"alg": "ES256", "typ": "JWT"}
    claims = jwt.decode(tok, pub, algorithms=["ES256"], issuer=ISS,
                        options={"require": ["exp", "iat", "nbf", "iss", "sub"]})
    assert claims["sub"] == alice.sub
    assert claims["name"] == "alice"
    assert claims["sig_pk"] == b64u(alice.pk)
    assert claims["dh_pk"] == b64u(alice.dh_pk)
    assert claims["dh_sig"] == b64u(alice.dh_sig)
    assert claims["iat"] == claims["nbf"] == t0
    assert claims["exp"] == t0 + tk.TTL_DEFAULT
    assert claims["ver"] == 1
    assert len(base64.urlsafe_b64decode(claims["jti"] + "==")) == 16
    assert set(claims) == {"iss", "sub", "name", "sig_pk", "dh_pk", "dh_sig", "jti", "iat",
                           "nbf", "exp", "ver"}


def test_fingerprint_is_blake2b_of_spki(server):
    pub = serialization.load_pem_public_key(server.public_pem())
    der = pub.public_bytes(serialization.Encoding.DER,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    assert server.fingerprint() == hashlib.blake2b(der, digest_size=32).digest()
    # The private PEM loads in cryptography and matches.
    priv = serialization.load_pem_private_key(server.private_pem(), password=None)
    assert priv.public_key().public_numbers() == pub.public_numbers()


def test_utf8_name_roundtrip(server, verifier):
    bob = Ident(2)
    name = "J\u00f6rg \u65e5\u672c \U0001F600"
    tok = issue(server, bob, name)
    assert jwt.decode(tok, server.public_pem(), algorithms=["ES256"])["name"] == name
    assert verifier.verify(tok, now())["name"] == name


# ---- PyJWT -> libsecchat ------------------------------------------------------------

def test_pyjwt_es256_with_server_key_is_accepted(server, verifier, alice):
    t0 = now()
    claims = alice.claims(t0)
    tok = jwt.encode(claims, server.private_pem(), algorithm="ES256")
    got = verifier.verify(tok, t0)
    assert got["sub"] == alice.sub
    assert got["uid"] == alice.uid
    assert got["sig_pk"] == alice.pk and got["dh_pk"] == alice.dh_pk
    assert got["dh_sig"] == alice.dh_sig
    assert got["exp"] == claims["exp"] and got["iss"] == ISS
    # Login with a proof made by PyNaCl over another handshake hash.
    proof = sign_ctx(alice.sk, b"secchat/auth/v1", HH2)
    assert verifier.verify_login(tok, proof, HH2, alice.dh_pk, t0)["name"] == "alice"
    with pytest.raises(tk.TokenError) as e:
        verifier.verify_login(tok, proof, HH, alice.dh_pk, t0)
    assert e.value.reason == tk.R_PROOF


def test_pyjwt_es256_with_other_key_is_rejected(verifier, alice):
    other = ec.generate_private_key(ec.SECP256R1())
    tok = jwt.encode(alice.claims(now()), other, algorithm="ES256")
    expect_reject(verifier, tok, tk.R_SIGNATURE)


def test_alg_none_is_rejected(verifier, alice):
    tok = jwt.encode(alice.claims(now()), None, algorithm="none")
    assert tok.endswith(".")
    expect_reject(verifier, tok, tk.R_EMPTY_SEGMENT)
    for alg in ("none", "NONE", "nOnE"):
        h = b64u(json.dumps({"alg": alg, "typ": "JWT"}).encode())
        p = b64u(json.dumps(alice.claims(now())).encode())
        expect_reject(verifier, "%s.%s.%s" % (h, p, b64u(os.urandom(64))), tk.R_ALG)


def test_hs256_with_public_pem_is_rejected(server, verifier, alice):
    pem = server.public_pem()
    h = b64u(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    p = b64u(json.dumps(alice.claims(now()), separators=(",", ":")).encode())
    signing_input = ("%s.%s" % (h, p)).encode()
    sig = hmac.new(pem, signing_input, hashlib.sha256).digest()
    tok = "%s.%s.%s" % (h, p, b64u(sig))
    # It is a genuine HS256 token for that secret (PyJWT's HMAC agrees).
    assert jwt.algorithms.HMACAlgorithm(hashlib.sha256).verify(signing_input, pem, sig)
    expect_reject(verifier, tok, tk.R_ALG)


def test_expired_and_other_issuer_are_rejected(server, verifier, alice):
    t0 = now()
    old = jwt.encode(alice.claims(t0 - 7200, ttl=3600), server.private_pem(), algorithm="ES256")
    expect_reject(verifier, old, tk.R_EXPIRED, code=tk.ERR_TOKEN_EXPIRED, t=t0)
    other = jwt.encode(alice.claims(t0, iss="other.relay"), server.private_pem(), algorithm="ES256")
    expect_reject(verifier, other, tk.R_ISSUER, t=t0)
    # Claims PyJWT accepts but libsecchat does not: float exp, duplicate sub.
    c = alice.claims(t0)
    c["exp"] = float(c["exp"])
    expect_reject(verifier, jwt.encode(c, server.private_pem(), algorithm="ES256"), tk.R_CLAIM_TYPE, t=t0)
    body = json.dumps(alice.claims(t0))[:-1] + ', "sub": "%s"}' % Ident(3).sub
    tok = jwt.api_jws.encode(body.encode(), server.private_pem(), algorithm="ES256")
    assert jwt.decode(tok, server.public_pem(), algorithms=["ES256"])["sub"] == Ident(3).sub
    expect_reject(verifier, tok, tk.R_DUPLICATE, t=t0)


def test_registration_rejections(server, alice):
    eve = Ident(9)
    with pytest.raises(tk.TokenError) as e:  # proof replayed on another handshake
        tk.issue(server, ISS, "alice", alice.pk, alice.dh_pk, alice.dh_sig,
                 alice.registration_proof("alice", HH), HH2, alice.dh_pk, now())
    assert e.value.code == tk.ERR_AUTH and e.value.reason == tk.R_PROOF
    with pytest.raises(tk.TokenError) as e:  # Eve claims Alice's keys
        tk.issue(server, ISS, "alice", alice.pk, alice.dh_pk, alice.dh_sig,
                 eve.registration_proof("alice", HH), HH, alice.dh_pk, now())
    assert e.value.reason == tk.R_PROOF
    with pytest.raises(tk.TokenError) as e:  # Noise static is not dh_pk
        tk.issue(server, ISS, "alice", alice.pk, alice.dh_pk, alice.dh_sig,
                 alice.registration_proof("alice", HH), HH, eve.dh_pk, now())
    assert e.value.reason == tk.R_CHANNEL
    assert not tk.name_check("bad\u202ename") and tk.name_check("good name")


def test_renewal_and_cache(server, verifier, alice):
    t0 = now()
    tok = issue(server, alice, t=t0, ttl=3600)
    assert verifier.verify(tok, t0)["sub"] == alice.sub
    assert verifier.verify(tok, t0 + 1)["sub"] == alice.sub
    assert verifier.cache_stats()["hits"] == 1
    proof = sign_ctx(alice.sk, b"secchat/renew/v1", HH2)
    fresh = verifier.renew(server, tok, proof, HH2, alice.dh_pk, t0 + 100)
    c = jwt.decode(fresh, server.public_pem(), algorithms=["ES256"], leeway=200)
    assert c["iat"] == t0 + 100 and c["sub"] == alice.sub


# ---- The C helper (CLI) agrees ---------------------------------------------------------

def test_helper_verifies_pyjwt_tokens(server, alice, helper_dir, tmp_path):
    helper = helper_dir / "helper_token"
    if not helper.exists():
        pytest.fail("helper_token not built at %s" % helper)
    pem = tmp_path / "pub.pem"
    pem.write_bytes(server.public_pem())
    t0 = now()
    good = jwt.encode(alice.claims(t0), server.private_pem(), algorithm="ES256")
    bad = jwt.encode(alice.claims(t0, iss="x"), server.private_pem(), algorithm="ES256")
    for tok, want in ((good, "ok " + alice.sub), (bad, "reject %d" % tk.R_ISSUER)):
        r = subprocess.run([str(helper), "verify", str(pem), ISS, str(t0)], input=tok.encode(),
                           capture_output=True, check=False)
        assert r.stdout.decode().strip() == want, r
        assert r.returncode == (0 if want.startswith("ok") else 1)
