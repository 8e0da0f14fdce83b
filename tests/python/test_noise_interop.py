"""Live interop of libsecchat's Noise (tests/helper_noise) with an independent
implementation, Debian's python3-dissononce: XX and IK handshakes in both
roles, handshake hashes, remote statics, transport messages both ways, rekey,
and the explicit-nonce datagram transport re-implemented here from
docs/noise.md on top of dissononce's CipherState."""
import hashlib
import os
import struct
import subprocess

import pytest

from dissononce.cipher.chachapoly import ChaChaPolyCipher
from dissononce.dh.x25519.private import PrivateKey
from dissononce.dh.x25519.public import PublicKey
from dissononce.dh.x25519.x25519 import X25519DH
from dissononce.exceptions.decrypt import DecryptFailedException
from dissononce.hash.sha256 import SHA256Hash
from dissononce.processing.handshakepatterns.interactive.IK import IKHandshakePattern
from dissononce.processing.handshakepatterns.interactive.XX import XXHandshakePattern
from dissononce.processing.impl.cipherstate import CipherState
from dissononce.processing.impl.handshakestate import HandshakeState
from dissononce.processing.impl.symmetricstate import SymmetricState

PROLOGUE = b"secchat/1"
PATTERNS = {"XX": (XXHandshakePattern, 3), "IK": (IKHandshakePattern, 2)}


class Helper:
    """One helper_noise process: send a command line, get 'OK ...'."""

    def __init__(self, helper_dir):
        exe = os.path.join(str(helper_dir), "helper_noise")
        if not os.path.exists(exe):
            pytest.fail("helper_noise not built in %s" % helper_dir)
        self.p = subprocess.Popen([exe], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def raw(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        out = self.p.stdout.readline()
        assert out, "helper_noise died on %r" % line[:80]
        return out.rstrip("\n")

    def ok(self, line):
        out = self.raw(line)
        assert out.startswith("OK"), "%s -> %s" % (line[:80], out)
        return out[3:]

    def close(self):
        try:
            self.p.stdin.write("QUIT\n")
            self.p.stdin.close()
        except BrokenPipeError:
            pass
        assert self.p.wait(timeout=10) == 0


@pytest.fixture
def helper(helper_dir):
    h = Helper(helper_dir)
    yield h
    h.close()


def hx(b):
    return b.hex() if b else "-"


class FixedDH(X25519DH):
    """X25519 whose GENERATE_KEYPAIR returns a given key (test vectors)."""

    def __init__(self, eph):
        super().__init__()
        self.eph = eph

    def generate_keypair(self, privatekey=None):
        if privatekey is None and self.eph is not None:
            privatekey = PrivateKey(self.eph)
        return super().generate_keypair(privatekey)


def dissononce_hs(pattern, initiator, s_sk, rs_pk=None, prologue=PROLOGUE, eph=None):
    dh = FixedDH(eph)
    hs = HandshakeState(SymmetricState(CipherState(ChaChaPolyCipher()), SHA256Hash()), dh)
    kp = dh.generate_keypair(PrivateKey(s_sk))
    hs.initialize(PATTERNS[pattern][0](), initiator, prologue, s=kp,
                  rs=PublicKey(rs_pk) if rs_pk else None)
    return hs, kp.public.data


def spec_rekey(cs):
    """Rekey() per spec sections 4.2 / 5.1: k = first 32 bytes of
    ENCRYPT(k, 2^64-1, zerolen, zeros), n unchanged. dissononce 0.34.3's own
    CipherState.rekey() keeps all 48 bytes (tag included) and resets n to
    0, so it cannot be used as the reference here."""
    n = cs._nonce
    cs.initialize_key(cs.cipher.encrypt(cs._key, 2**64 - 1, b"", bytes(32))[:32])
    cs.set_nonce(n)


def public_of(sk):
    return X25519DH().generate_keypair(PrivateKey(sk)).public.data


def handshake(helper, pattern, c_is_initiator, c_sk, d_sk, prologue=PROLOGUE,
              c_eph=None, d_eph=None):
    """Run a full handshake; return (C hash, dissononce hash, D's cipher pair,
    list of messages on the wire)."""
    nmsgs = PATTERNS[pattern][1]
    c_pk, d_pk = public_of(c_sk), public_of(d_sk)
    # IK: the initiator knows the responder's static in advance.
    c_rs = d_pk if (pattern == "IK" and c_is_initiator) else None
    d_rs = c_pk if (pattern == "IK" and not c_is_initiator) else None
    helper.ok("INIT %s %s %s %s %s" % (pattern, "init" if c_is_initiator else "resp",
                                       c_sk.hex(), hx(c_rs), hx(prologue)))
    if c_eph:
        helper.ok("EPH " + c_eph.hex())
    hs, _ = dissononce_hs(pattern, not c_is_initiator, d_sk, d_rs, prologue, d_eph)
    wire, ciphers = [], None
    for i in range(nmsgs):
        payload = ("payload %d from %s" % (i, "i" if i % 2 == 0 else "r")).encode()
        c_writes = (i % 2 == 0) == c_is_initiator
        if c_writes:
            msg = bytes.fromhex(helper.ok("W " + payload.hex()))
            buf = bytearray()
            ciphers = hs.read_message(msg, buf) or ciphers
            assert bytes(buf) == payload
        else:
            buf = bytearray()
            ciphers = hs.write_message(payload, buf) or ciphers
            msg = bytes(buf)
            assert bytes.fromhex(helper.ok("R " + msg.hex())) == payload
        wire.append(msg)
    assert ciphers is not None
    # Both learned the other's static key.
    assert bytes.fromhex(helper.ok("RS")) == d_pk
    assert hs.rs.data == c_pk
    c_h = bytes.fromhex(helper.ok("SPLIT"))
    d_h = hs.symmetricstate.get_handshake_hash()
    return c_h, d_h, ciphers, wire


ROLES = [(p, r) for p in ("XX", "IK") for r in (True, False)]


@pytest.mark.parametrize("pattern,c_init", ROLES,
                         ids=["%s-%s" % (p, "C-initiator" if r else "C-responder") for p, r in ROLES])
def test_handshake_and_transport(helper, pattern, c_init):
    c_sk, d_sk = os.urandom(32), os.urandom(32)
    c_h, d_h, (c1, c2), _ = handshake(helper, pattern, c_init, c_sk, d_sk)
    assert c_h == d_h, "handshake hashes differ"
    # dissononce sends with c1 if it is the initiator, else c2.
    d_tx, d_rx = (c2, c1) if c_init else (c1, c2)
    sizes = [0, 1, 15, 16, 17, 255, 256, 1000, 65519]
    for k, size in enumerate(sizes):
        pt = os.urandom(size)
        # C -> dissononce
        ct = bytes.fromhex(helper.ok("E " + hx(pt)))
        assert len(ct) == size + 16
        assert d_rx.decrypt_with_ad(b"", ct) == pt
        # dissononce -> C
        ct = d_tx.encrypt_with_ad(b"", pt[::-1])
        assert bytes.fromhex(helper.ok("D " + hx(ct))) == pt[::-1]
        if k == 4:
            # Rekey (spec 4.2) in both directions at the same point.
            helper.ok("REKEY tx")
            helper.ok("REKEY rx")
            spec_rekey(d_tx)
            spec_rekey(d_rx)
    # Tampered transport message: rejected, and the session goes on.
    ct = bytearray(d_tx.encrypt_with_ad(b"", b"tamper me"))
    ct[3] ^= 1
    assert helper.raw("D " + bytes(ct).hex()) == "ERR SECCHAT_ERR_DECRYPT"
    d_tx.set_nonce(d_tx._nonce - 1)  # resend with the same nonce, untouched
    ct = d_tx.encrypt_with_ad(b"", b"tamper me")
    assert bytes.fromhex(helper.ok("D " + ct.hex())) == b"tamper me"


@pytest.mark.parametrize("pattern", ["XX", "IK"])
def test_same_bytes_in_both_role_assignments(helper_dir, pattern):
    """With fixed statics and ephemerals, the wire bytes must not depend on
    which implementation plays which role: C-initiator/dissononce-responder
    and dissononce-initiator/C-responder produce identical messages."""
    i_sk, r_sk = bytes(range(1, 33)), bytes(range(33, 65))
    i_eph, r_eph = bytes(range(65, 97)), bytes(range(97, 129))
    runs = []
    for c_init in (True, False):
        h = Helper(helper_dir)
        try:
            c_sk, d_sk = (i_sk, r_sk) if c_init else (r_sk, i_sk)
            c_eph, d_eph = (i_eph, r_eph) if c_init else (r_eph, i_eph)
            c_h, d_h, _, wire = handshake(h, pattern, c_init, c_sk, d_sk,
                                          c_eph=c_eph, d_eph=d_eph)
            assert c_h == d_h
            runs.append((c_h, wire))
        finally:
            h.close()
    assert runs[0] == runs[1]


@pytest.mark.parametrize("pattern,c_init", ROLES,
                         ids=["%s-%s" % (p, "C-initiator" if r else "C-responder") for p, r in ROLES])
def test_explicit_nonce_transport(helper, pattern, c_init):
    """docs/noise.md: header = session_id || BE64(n) is the AD, nonce n,
    session_id = BLAKE2b-64("secchat/noise/sid/v1" || 0x00 || h)."""
    c_h, d_h, (c1, c2), _ = handshake(helper, pattern, c_init, os.urandom(32), os.urandom(32))
    d_tx, d_rx = (c2, c1) if c_init else (c1, c2)
    sid = hashlib.blake2b(b"secchat/noise/sid/v1\x00" + d_h, digest_size=8).digest()
    assert bytes.fromhex(helper.ok("DGRAM")) == sid

    def d_seal(n, pt):
        header = sid + struct.pack(">Q", n)
        d_tx.set_nonce(n)
        return header + d_tx.encrypt_with_ad(header, pt)

    def c_open(msg):
        out = helper.raw("DD " + msg.hex())
        if out.startswith("ERR"):
            return out
        _, n, pt = (out.split(" ") + [""])[:3]
        return int(n), bytes.fromhex(pt)

    # dissononce -> C: dropped, reordered, replayed, too old.
    msgs = {n: d_seal(n, b"m%d" % n) for n in list(range(0, 10)) + [1500, 2000, 2600]}
    for n in (0, 3, 2, 9, 5):
        assert c_open(msgs[n]) == (n, b"m%d" % n)
    assert c_open(msgs[3]) == "ERR SECCHAT_ERR_REPLAY"
    assert c_open(msgs[1]) == (1, b"m1")
    assert c_open(msgs[2000]) == (2000, b"m2000")
    assert c_open(msgs[1500]) == (1500, b"m1500")  # 500 behind: in the window
    assert c_open(msgs[4]) == "ERR SECCHAT_ERR_REPLAY"  # never seen, too old
    assert c_open(msgs[2600]) == (2600, b"m2600")
    assert c_open(msgs[2000]) == "ERR SECCHAT_ERR_REPLAY"
    bad = bytearray(d_seal(2601, b"x"))
    bad[10] ^= 1  # header is authenticated
    assert c_open(bytes(bad)) == "ERR SECCHAT_ERR_DECRYPT"
    other = bytearray(d_seal(2602, b"x"))
    other[0] ^= 1
    assert c_open(bytes(other)) == "ERR SECCHAT_ERR_NOT_FOUND"

    # C -> dissononce: parse the header, decrypt with nonce n, AD header.
    for n in range(3):
        msg = bytes.fromhex(helper.ok("DE " + (b"c%d" % n).hex()))
        header, ct = msg[:16], msg[16:]
        assert header[:8] == sid
        assert struct.unpack(">Q", header[8:])[0] == n
        d_rx.set_nonce(n)
        assert d_rx.decrypt_with_ad(header, ct) == b"c%d" % n


@pytest.mark.parametrize("pattern", ["XX", "IK"])
def test_prologue_mismatch_fails(helper, pattern):
    """A peer of another major version (prologue) cannot complete."""
    c_sk, d_sk = os.urandom(32), os.urandom(32)
    helper.ok("INIT %s init %s %s %s" % (pattern, c_sk.hex(),
                                         hx(public_of(d_sk) if pattern == "IK" else None),
                                         PROLOGUE.hex()))
    hs, _ = dissononce_hs(pattern, False, d_sk, None, b"secchat/2")
    msg = bytes.fromhex(helper.ok("W -"))
    if pattern == "IK":
        with pytest.raises(DecryptFailedException):
            hs.read_message(msg, bytearray())
    else:
        hs.read_message(msg, bytearray())  # message 1 is unauthenticated
        buf = bytearray()
        hs.write_message(b"", buf)
        assert helper.raw("R " + bytes(buf).hex()) == "ERR SECCHAT_ERR_DECRYPT"
        assert helper.raw("HASH") == "ERR SECCHAT_ERR_INVALID_STATE"


def test_tampered_dissononce_message_rejected(helper):
    c_sk, d_sk = os.urandom(32), os.urandom(32)
    helper.ok("INIT IK resp %s - %s" % (c_sk.hex(), PROLOGUE.hex()))
    hs, _ = dissononce_hs("IK", True, d_sk, public_of(c_sk))
    buf = bytearray()
    hs.write_message(b"hello", buf)
    buf[40] ^= 0x10  # inside the encrypted static key
    assert helper.raw("R " + bytes(buf).hex()) == "ERR SECCHAT_ERR_DECRYPT"
    assert helper.raw("W -") == "ERR SECCHAT_ERR_INVALID_STATE"
