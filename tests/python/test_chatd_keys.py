"""chatd's server keys at process level: keygen / pubkey output and file
modes, generation on first start, and refusal to start with a bad key file
(security.md B3, D10)."""
import os
import re
import stat

import pytest

from chatd_util import CHATD, Chatd, free_port, run_chatd

FPR = re.compile(r"fingerprint ([a-z2-7]{52})\n")


@pytest.fixture(autouse=True)
def built():
    if not os.access(CHATD, os.X_OK):
        pytest.fail(f"{CHATD} not built (set SECCHAT_BINARY_DIR to the build tree)")


def mode(p):
    return stat.S_IMODE(os.stat(p).st_mode)


def test_keygen_and_pubkey(tmp_path):
    data = tmp_path / "a" / "data"
    p = run_chatd(["keygen", "--data-dir", data])
    assert p.returncode == 0, p.stderr
    fpr = FPR.search(p.stdout).group(1)
    assert mode(data) == 0o700 and mode(data.parent) == 0o700
    assert sorted(os.listdir(data)) == ["noise_key", "token_key.pem"]
    assert mode(data / "noise_key") == 0o600 and mode(data / "token_key.pem") == 0o600
    assert os.path.getsize(data / "noise_key") == 32
    assert (data / "token_key.pem").read_text().startswith("-----BEGIN PRIVATE KEY-----\n")

    p = run_chatd(["pubkey", "--data-dir", data])
    assert p.returncode == 0, p.stderr
    pem, _, tail = p.stdout.partition("-----END PUBLIC KEY-----\n")
    assert pem.startswith("-----BEGIN PUBLIC KEY-----\n")
    assert tail == f"fingerprint {fpr}\n"
    # The public PEM is really the public half of the stored key.
    from cryptography.hazmat.primitives import serialization
    priv = serialization.load_pem_private_key((data / "token_key.pem").read_bytes(), None)
    pub = serialization.load_pem_public_key((pem + "-----END PUBLIC KEY-----\n").encode())
    assert priv.public_key().public_numbers() == pub.public_numbers()
    assert "PRIVATE" not in p.stdout

    # keygen never overwrites; keys stay as they were.
    before = (data / "token_key.pem").read_bytes()
    p = run_chatd(["keygen", "--data-dir", data])
    assert p.returncode == 1 and "exists" in p.stderr
    assert (data / "token_key.pem").read_bytes() == before

    p = run_chatd(["pubkey", "--data-dir", tmp_path / "empty"])
    assert p.returncode == 1 and "chatd keygen" in p.stderr


def test_first_start_creates_keys_and_reuses_them(tmp_path):
    d = Chatd(tmp_path, metrics=False)
    assert d.stop()[0] == 0
    assert "created new server keys" in d.stderr()
    first = re.search(r"server fingerprint ([a-z2-7]{52})", d.stderr()).group(1)
    assert re.search(r" warn keys_created .*fingerprint=" + first, d.log_text())
    assert mode(d.data / "noise_key") == 0o600 and mode(d.data / "token_key.pem") == 0o600
    p = run_chatd(["pubkey", "--data-dir", d.data])
    assert FPR.search(p.stdout).group(1) == first
    d2 = Chatd(tmp_path, metrics=False)
    assert d2.stop()[0] == 0
    assert "created new" not in d2.stderr()
    assert f"server fingerprint {first}" in d2.stderr()


def _corrupt(data, how):
    tok, noise = data / "token_key.pem", data / "noise_key"
    pem = tok.read_bytes()
    if how == "token_empty":
        tok.write_bytes(b"")
    elif how == "token_truncated":
        tok.write_bytes(pem[: len(pem) // 2])
    elif how == "token_corrupt":
        body = bytearray(pem)
        body[60] = ord("A") if body[60] != ord("A") else ord("B")
        body[61] = ord("!")
        tok.write_bytes(bytes(body))
    elif how == "token_0644":
        os.chmod(tok, 0o644)
    elif how == "token_0640":
        os.chmod(tok, 0o640)
    elif how == "noise_truncated":
        noise.write_bytes(noise.read_bytes()[:31])
    elif how == "noise_empty":
        noise.write_bytes(b"")
    elif how == "noise_long":
        noise.write_bytes(noise.read_bytes() + b"\n")
    elif how == "noise_0644":
        os.chmod(noise, 0o644)
    elif how == "noise_missing":
        noise.unlink()
    elif how == "token_symlink":
        os.rename(tok, data / "elsewhere.pem")
        os.symlink(data / "elsewhere.pem", tok)
    elif how == "datadir_0755":
        os.chmod(data, 0o755)
    return tok, noise


@pytest.mark.parametrize("how", ["token_empty", "token_truncated", "token_corrupt", "token_0644",
                                 "token_0640", "noise_truncated", "noise_empty", "noise_long",
                                 "noise_0644", "noise_missing", "token_symlink", "datadir_0755"])
def test_refuses_to_start_with_bad_keys(tmp_path, how):
    data = tmp_path / "data"
    assert run_chatd(["keygen", "--data-dir", data]).returncode == 0
    tok, noise = _corrupt(data, how)
    port = free_port()
    p = run_chatd(["--listen", f"127.0.0.1:{port}", "--data-dir", data, "--log-file",
                   tmp_path / "chatd.log"], timeout=20)
    assert p.returncode == 1, p.stderr
    # One clear line naming the offending file (or directory).
    msg = p.stderr.strip().splitlines()[-1]
    assert msg.startswith("chatd: "), p.stderr
    named = {"datadir_0755": str(data), "noise_missing": str(noise)}.get(
        how, str(noise) if how.startswith("noise") else str(tok))
    assert named in msg, msg
    if how.endswith(("0644", "0640", "0755")):
        assert "mode 0" in msg
    assert "serving" not in p.stderr
    # Refusing never "repairs" anything: no new key was written.
    assert sorted(os.listdir(data)) == sorted(
        ["token_key.pem", "noise_key", "elsewhere.pem"] if how == "token_symlink"
        else ["token_key.pem"] if how == "noise_missing" else ["token_key.pem", "noise_key"])
