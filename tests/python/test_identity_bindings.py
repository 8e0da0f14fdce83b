"""ctypes bindings of the identity API, checked against PyNaCl/hashlib and
the independent reference (secchat_ref.py)."""
import hashlib
import pathlib
import sys

import nacl.signing
import pytest

from secchat import SecchatError
from secchat import identity as sid

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import secchat_ref as ref  # noqa: E402

OPS_MIN, MEM_MIN = 1, 8192


def test_public_parts_match_independent_computation():
    with sid.Identity.new() as me:
        pk = me.sign_public_key
        assert len(pk) == 32 and len(me.dh_public_key) == 32
        assert me.uid == hashlib.blake2b(pk, digest_size=20).digest()
        nacl.signing.VerifyKey(pk).verify(b"secchat/dh/v1\x00" + me.dh_public_key, me.dh_sig)
        assert me.uid_string == ref.b32(me.uid)
        assert sid.uid_to_string(me.uid) == me.uid_string
        assert me.fingerprint == ref.fingerprint(pk) == sid.fingerprint(pk)


def test_safety_number_matches_reference():
    with sid.Identity.new() as a, sid.Identity.new() as b:
        sn = sid.safety_number(a.sign_public_key, b.sign_public_key)
        assert sn == ref.safety_number(a.sign_public_key, b.sign_public_key)
        assert sn == sid.safety_number(b.sign_public_key, a.sign_public_key)
        assert sid.safety_number_equal(sn, sn.replace(" ", ""))
        other = sn[:-1] + ("1" if sn[-1] == "0" else "0")
        assert not sid.safety_number_equal(sn, other)


def test_encrypted_export_import():
    with sid.Identity.new() as me:
        blob = me.export(b"pass phrase", opslimit=OPS_MIN, memlimit=MEM_MIN)
        assert sid.blob_is_encrypted(blob)
        # Decryptable by the reference implementation from the spec.
        seed, dh_sk = ref.blob_open_encrypted(blob, b"pass phrase")
        assert ref.Identity(seed, dh_sk).sign_pk == me.sign_public_key
        with sid.Identity.import_blob(blob, b"pass phrase") as back:
            assert back.sign_public_key == me.sign_public_key
            assert back.dh_public_key == me.dh_public_key
        with pytest.raises(SecchatError) as e:
            sid.Identity.import_blob(blob, b"wrong")
        assert e.value.name == "SECCHAT_ERR_PASSPHRASE"
        with pytest.raises(SecchatError) as e:
            sid.Identity.import_blob(blob[:-1], b"pass phrase")
        assert e.value.name == "SECCHAT_ERR_TRUNCATED"
        absurd = bytearray(blob)
        absurd[10:18] = (2 ** 63).to_bytes(8, "little")
        with pytest.raises(SecchatError) as e:
            sid.Identity.import_blob(bytes(absurd), b"pass phrase")
        assert e.value.name == "SECCHAT_ERR_KDF_PARAMS"
        # An encrypted blob is not accepted as an unencrypted one.
        with pytest.raises(SecchatError) as e:
            sid.Identity.import_blob(blob)
        assert e.value.name == "SECCHAT_ERR_INVALID_ARGUMENT"


def test_unencrypted_export_is_explicit():
    with sid.Identity.new() as me:
        with pytest.raises(ValueError):
            me.export()
        blob = me.export(unencrypted=True)
        assert not sid.blob_is_encrypted(blob)
        assert blob == ref.blob_plain(ref.Identity(blob[6:38], blob[38:70]))
        with sid.Identity.import_blob(blob) as back:
            assert back.uid == me.uid
        with pytest.raises(SecchatError):
            sid.Identity.import_blob(blob, b"a passphrase")


def test_bad_key_and_closed_identity():
    with pytest.raises(SecchatError) as e:
        sid.fingerprint(bytes(32))
    assert e.value.name == "SECCHAT_ERR_BAD_KEY"
    with pytest.raises(ValueError):
        sid.uid_to_string(b"short")
    me = sid.Identity.new()
    me.close()
    with pytest.raises(ValueError):
        me.uid_string
