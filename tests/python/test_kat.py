"""Recompute tests/vectors/crypto_kat.json with the independent reference
implementation (secchat_ref.py, written from docs/crypto.md), and check that
the C generator still prints the committed file."""
import json
import os
import pathlib
import subprocess
import sys

import nacl.exceptions
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import secchat_ref as ref  # noqa: E402


def h(s):
    return bytes.fromhex(s)


@pytest.fixture(scope="module")
def kat(vectors_dir):
    with open(vectors_dir / "crypto_kat.json") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def ids(kat):
    return {name: ref.Identity(h(v["sign_seed"]), h(v["dh_sk"]))
            for name, v in kat["identities"].items()}


def test_identities(kat, ids):
    for name, v in kat["identities"].items():
        i = ids[name]
        assert i.sign_pk.hex() == v["sign_pk"]
        assert i.dh_pk.hex() == v["dh_pk"]
        assert i.dh_sig.hex() == v["dh_sig"]
        assert i.uid.hex() == v["uid"]
        assert i.uid_string == v["uid_string"] and len(v["uid_string"]) == 32
        assert i.fingerprint == v["fingerprint"]
        ref.verify(i.sign_pk, ref.CTX_DH, i.dh_pk, i.dh_sig)


def test_safety_number(kat, ids):
    s = kat["safety_number"]
    a, b = ids[s["a"]].sign_pk, ids[s["b"]].sign_pk
    assert ref.safety_number(a, b) == s["value"]
    assert ref.safety_number(b, a) == s["value"]
    assert len(s["value"]) == 71


def test_ratchet_steps(kat):
    ck = h(kat["ratchet"]["ck0"])
    for step in kat["ratchet"]["steps"]:
        mk, nxt = ref.ratchet_step(ck)
        assert mk.hex() == step["mk"]
        assert nxt.hex() == step["ck_next"]
        ck = nxt


def test_envelopes(kat, ids):
    g = kat["group"]
    author = ids[g["author"]]
    chat, head, route, chain = (h(g[k]) for k in ("chat_id", "log_head", "route_id", "chain_id"))
    ck0 = h(g["ck0"])
    prev = bytes(32)
    for m in g["messages"]:
        it = m["iteration"]
        ck = ref.chain_key_at(ck0, it)
        assert ck.hex() == m["ck"]
        mk = ref.ratchet_step(ck)[0]
        assert mk.hex() == m["mk"]
        assert m["prev_msg_id"] == prev.hex()
        inner = ref.inner_bytes(chat, g["epoch"], head, author.uid, chain, it, prev, m["ts_ms"],
                                m["flags"], m["content_type"], h(m["body"]))
        assert len(inner) % 64 == 0
        assert inner.hex() == m["inner"]
        sig = ref.sign_inner(author.sign_seed, inner)
        assert sig.hex() == m["sig"]
        mid = ref.msg_id(inner)
        assert mid.hex() == m["msg_id"]
        nonce = h(m["nonce"])
        header = ref.header_bytes(g["epoch"], author.uid, chain, it, nonce)
        assert header.hex() == m["header"]
        blob = ref.seal(mk, header, route, inner, sig, nonce)
        assert blob.hex() == m["blob"]
        # The AD binds header and route: any other route fails to open.
        assert ref.open_envelope(mk, blob, len(header), route, nonce) == (inner, sig)
        with pytest.raises(nacl.exceptions.CryptoError):
            ref.open_envelope(mk, blob, len(header), bytes(32), nonce)
        prev = mid


def test_skdist_and_keyreq(kat, ids):
    g = kat["group"]
    d = g["skdist"]
    owner, rcpt = ids[d["owner"]], ids[d["recipient"]]
    ck = ref.chain_key_at(h(g["ck0"]), d["iteration"])
    assert ck.hex() == d["chain_key"]
    body = ref.skdist_body(h(g["chat_id"]), g["epoch"], h(g["log_head"]), owner.uid, rcpt.uid,
                           h(g["chain_id"]), d["iteration"], ck)
    assert ref.signed_message(ref.CTX_SKDIST, owner.sign_seed, body).hex() == d["bytes"]
    q = g["keyreq"]
    req, to = ids[q["requester"]], ids[q["recipient"]]
    body = ref.keyreq_body(h(g["chat_id"]), g["epoch"], req.uid, to.uid, h(g["chain_id"]))
    assert ref.signed_message(ref.CTX_KEYREQ, req.sign_seed, body).hex() == q["bytes"]


def test_identity_blobs(kat, ids):
    b = kat["identity_blobs"]
    alice = ids["alice"]
    assert ref.blob_plain(alice).hex() == b["plain"]
    enc = h(b["encrypted"])
    ops = int.from_bytes(enc[6:10], "little")
    mem = int.from_bytes(enc[10:18], "little")
    salt, nonce = enc[18:34], enc[34:58]
    pw = b["passphrase"].encode()
    assert ref.blob_encrypted(alice, pw, ops, mem, salt, nonce) == enc
    assert ref.blob_open_encrypted(enc, pw) == (alice.sign_seed, alice.dh_sk)
    # The cost parameters are associated data: changing one breaks the tag.
    altered = bytearray(enc)
    altered[6] ^= 3  # opslimit 1 -> 2
    with pytest.raises(nacl.exceptions.CryptoError):
        ref.blob_open_encrypted(bytes(altered), pw)
    with pytest.raises(nacl.exceptions.CryptoError):
        ref.blob_open_encrypted(enc, b"wrong")


def test_c_generator_reproduces_committed_json(kat, helper_dir):
    exe = pathlib.Path(helper_dir) / "helper_kat"
    if not exe.exists():
        pytest.fail("helper_kat not built at %s" % exe)
    out = subprocess.run([str(exe)], check=True, capture_output=True, timeout=120,
                         env=dict(os.environ)).stdout
    assert json.loads(out) == kat


# ---- C opens envelopes built by the reference ------------------------------

def _c_open(helper_dir, case):
    exe = pathlib.Path(helper_dir) / "helper_kat"
    out = subprocess.run([str(exe), "open"], input=json.dumps(case).encode(), check=True,
                         capture_output=True, timeout=60).stdout
    return json.loads(out)


def _fresh_case(inner_fn=None, iteration=7, route=None, header_epoch=None):
    """A chain and an envelope made only by secchat_ref, with fresh random
    keys and nonce."""
    author = ref.Identity(os.urandom(32), os.urandom(32))
    chat, head, chain, ck0 = os.urandom(16), os.urandom(32), os.urandom(16), os.urandom(32)
    route_id = os.urandom(32)
    epoch = 300  # needs a 2-byte uint: exercises the 0xcd form
    ck = ref.chain_key_at(ck0, iteration)
    mk = ref.ratchet_step(ck)[0]
    body = os.urandom(1000)
    prev = os.urandom(32)
    inner = (inner_fn or ref.inner_bytes)(chat, epoch, head, author.uid, chain, iteration, prev,
                                          1700000000000, 1, 2, body)
    sig = ref.sign_inner(author.sign_seed, inner)
    nonce = os.urandom(24)
    header = ref.header_bytes(header_epoch if header_epoch is not None else epoch, author.uid,
                              chain, iteration, nonce)
    blob = ref.seal(mk, header, route if route is not None else route_id, inner, sig, nonce)
    case = {"sign_pk": author.sign_pk.hex(), "chat_id": chat.hex(), "epoch": epoch,
            "log_head": head.hex(), "chain_id": chain.hex(), "iteration": iteration,
            "ck": ck.hex(), "route_id": route_id.hex(), "blob": blob.hex()}
    return case, inner, body


def test_c_opens_reference_envelopes(helper_dir):
    for _ in range(3):
        case, inner, body = _fresh_case()
        res = _c_open(helper_dir, case)
        assert res["rc"] == "OK"
        assert res["body"] == body.hex()
        assert res["inner"] == inner.hex()
        assert res["msg_id"] == ref.msg_id(inner).hex()
        assert res["seq"] == 7


def test_c_rejects_reference_envelopes_with_bad_bindings(helper_dir):
    case, _, _ = _fresh_case(route=bytes(32))
    assert _c_open(helper_dir, case)["rc"] == "SECCHAT_ERR_DECRYPT"
    case, _, _ = _fresh_case(header_epoch=301)
    assert _c_open(helper_dir, case)["rc"] == "SECCHAT_ERR_AUTH"

    def noncanonical(chat, epoch, head, uid, chain, seq, prev, ts, flags, ctype, body):
        # As ref.inner_bytes, but epoch 300 as uint32 (0xce) instead of the
        # shortest uint16, still padded to a multiple of 64 and validly signed.
        items = [ref.mp_uint(1), ref.mp_bin(chat), b"\xce" + epoch.to_bytes(4, "big"),
                 ref.mp_bin(head), ref.mp_bin(uid), ref.mp_bin(chain), ref.mp_uint(seq),
                 ref.mp_bin(prev), ref.mp_uint(ts), ref.mp_uint(flags), ref.mp_uint(ctype),
                 ref.mp_bin(body)]
        length = len(ref.mp_array(items + [b""]))
        pad = (64 - (length + 2) % 64) % 64
        return ref.mp_array(items + [ref.mp_bin(bytes(pad))])

    case, inner, _ = _fresh_case(inner_fn=noncanonical)
    assert len(inner) % 64 == 0
    assert _c_open(helper_dir, case)["rc"] == "SECCHAT_ERR_NONCANONICAL"
