"""chatc end to end: real chatd + real chatc processes on loopback, JSON-lines
mode (docs/chatc.md section 5). Each client has its own --home; events are
read on a thread and matched by the tests."""
import base64
import json
import os
import pathlib
import queue
import re
import signal
import subprocess
import threading
import time

import pytest

import chatd_util

BINARY_DIR = pathlib.Path(os.environ.get("SECCHAT_BINARY_DIR", "build"))
CHATC = BINARY_DIR / "apps" / "chatc" / "chatc"


class Relay:
    """chatd on a fixed loopback port that can be restarted on the same
    port and data directory."""

    def __init__(self, workdir, port=None):
        self.dir = pathlib.Path(workdir)
        self.dir.mkdir(exist_ok=True)
        self.port = port or chatd_util.free_port()
        self.proc = None
        self.start()

    def start(self):
        args = [str(chatd_util.CHATD), "--listen", f"127.0.0.1:{self.port}", "--data-dir",
                str(self.dir / "data"), "--log-file", str(self.dir / "chatd.log"),
                "--threads", "1", "--name", "relay.test"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                     stderr=open(self.dir / "chatd.stderr", "a"),
                                     env=chatd_util.child_env())
        deadline = time.monotonic() + 15
        import socket
        while True:
            assert self.proc.poll() is None, "chatd exited"
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                assert time.monotonic() < deadline, "chatd did not listen"
                time.sleep(0.02)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=10)

    @property
    def server(self):
        return f"127.0.0.1:{self.port}"


class Chatc:
    """One `chatc --json` process."""

    def __init__(self, relay, home, name=None, passphrase=None, extra=()):
        self.home = pathlib.Path(home)
        self.name = name or self.home.name
        env = {"SECCHAT_PASSPHRASE": passphrase} if passphrase else None
        args = [str(CHATC), "--server", relay.server, "--home", str(self.home), "--json"]
        if passphrase is None:
            args.append("--no-passphrase")
        self.proc = subprocess.Popen(args + list(extra), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=chatd_util.child_env(env))
        self.events = queue.Queue()
        self.log = []
        self.stderr = b""
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()
        self._e = threading.Thread(target=self._read_err, daemon=True)
        self._e.start()

    def _read(self):
        for line in self.proc.stdout:
            ev = json.loads(line)  # every stdout line must be one JSON object
            assert isinstance(ev, dict) and "event" in ev, line
            self.log.append(ev)
            self.events.put(ev)
        self.events.put(None)

    def _read_err(self):
        self.stderr = self.proc.stderr.read()

    def send_raw(self, data):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def cmd(self, cmd, **fields):
        self.send_raw((json.dumps(dict(cmd=cmd, **fields)) + "\n").encode())

    def wait(self, event, timeout=15, **match):
        """Next event of this type (matching fields); others are skipped
        (but kept in self.log)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{self.name}: no {event} {match}; log tail: {self.log[-8:]}")
            try:
                ev = self.events.get(timeout=left)
            except queue.Empty:
                continue
            if ev is None:
                raise AssertionError(f"{self.name} exited ({self.proc.wait()}) waiting for "
                                     f"{event}: {self.stderr!r}")
            if ev["event"] == event and all(ev.get(k) == v for k, v in match.items()):
                return ev

    def call(self, cmd, reply, **fields):
        """Command with an id; returns its reply (or raises on an error)."""
        cid = f"{cmd}-{time.monotonic_ns()}"
        self.cmd(cmd, id=cid, **fields)
        deadline = time.monotonic() + 15
        while True:
            ev = self.wait_any(deadline)
            if ev.get("id") == cid:
                assert ev["event"] == reply, f"{self.name}: {cmd} -> {ev}"
                return ev

    def wait_any(self, deadline):
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"{self.name}: timeout; log tail: {self.log[-8:]}"
            try:
                ev = self.events.get(timeout=left)
            except queue.Empty:
                continue
            assert ev is not None, f"{self.name} exited: {self.stderr!r}"
            return ev

    def messages(self, chat=None):
        return [e for e in self.log if e["event"] == "message" and (chat is None or e["chat"] == chat)]

    def quit(self):
        if self.proc.poll() is None:
            try:
                self.cmd("quit")
            except BrokenPipeError:
                pass
            rc = self.proc.wait(timeout=15)
            assert rc == 0, self.stderr
        self._t.join(5)
        self._e.join(5)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def relay(tmp_path):
    r = Relay(tmp_path)
    yield r
    r.stop()


@pytest.fixture
def clients():
    made = []
    yield made
    for c in made:
        c.kill()


def start(relay, clients, home, **kw):
    c = Chatc(relay, home, **kw)
    clients.append(c)
    return c


def register(c, name):
    ev = c.call("register", "registered", name=name)
    assert ev["user"]["name"] == name
    c.wait("ready")
    return ev["user"]["uid"]


def make_chat(admin, members, name="club"):
    chat = admin.call("create", "chat_created", name=name)["chat"]
    for m, mname in members:
        admin.call("invite", "ok", chat=chat, user=mname)
        m.wait("invited", chat=chat)
        m.call("accept", "ok", chat=chat)
        m.wait("joined", chat=chat)
        admin.wait("member_joined", chat=chat)
    return chat


def say(sender, chat, text, receivers):
    """Send and wait until every receiver shows it; returns the msg id."""
    msg = sender.call("send", "sent", chat=chat, text=text)["msg"]
    for r in receivers:
        ev = r.wait("message", chat=chat, msg=msg)
        assert ev["text"] == text and ev["verified"] is True
    return msg


def test_three_clients_quit_history_and_relay_restart(relay, clients, tmp_path):
    alice = start(relay, clients, tmp_path / "alice")
    bob = start(relay, clients, tmp_path / "bob", passphrase="bob's secret")
    carol = start(relay, clients, tmp_path / "carol")
    uids = {n: register(c, n) for c, n in ((alice, "alice"), (bob, "bob"), (carol, "carol"))}
    chat = make_chat(alice, [(bob, "bob"), (carol, "carol")])
    # The chat id is the shared id: the same string for everyone.
    for c in (bob, carol):
        assert chat in [x["chat"] for x in c.call("chats", "chats")["chats"]]
    time.sleep(0.5)
    earlier = [say(alice, chat, "hello all", [bob, carol])]
    m = say(bob, chat, "hi alice", [alice, carol])
    earlier.append(m)
    ev = [e for e in alice.messages(chat) if e["msg"] == m][0]
    assert ev["from"] == {"uid": uids["bob"], "name": "bob"} and ev["trust"] == "tofu"
    earlier.append(say(carol, chat, "carol here", [alice, bob]))
    members = alice.call("members", "members", chat=chat)["members"]
    assert sorted(x["name"] for x in members) == ["alice", "bob", "carol"]

    # carol quits; the others keep chatting.
    carol.quit()
    missed = [say(alice, chat, "while carol is away 1", [bob]),
              say(bob, chat, "while carol is away 2", [alice]),
              say(alice, chat, "while carol is away 3 \u00e9\u4e2d", [bob])]
    carol = start(relay, clients, tmp_path / "carol")
    carol.wait("ready")
    hist = carol.call("history", "history", chat=chat, limit=100)
    got = [x["msg"] for x in hist["messages"]]
    # What carol saw before (her local history) and exactly what she missed.
    assert got == earlier + missed, (got, earlier, missed)
    assert all(x["verified"] is True and x["chat"] == chat for x in hist["messages"])
    assert [x["text"] for x in hist["messages"]][5] == "while carol is away 3 \u00e9\u4e2d"
    assert hist["messages"][4]["from"]["name"] == "bob"
    assert hist["messages"][2]["from"] == {"uid": uids["carol"], "name": "carol"}
    assert hist["gaps"] == []

    # chatd restarted mid-conversation (same data dir, same port).
    say(carol, chat, "before restart", [alice, bob])
    relay.stop()
    for c in (alice, bob, carol):
        c.wait("status", state="reconnecting")
    relay.start()
    for c in (alice, bob, carol):
        c.wait("ready", timeout=30)
    time.sleep(1.5)
    after = [say(alice, chat, "after restart 1", [bob, carol]),
             say(bob, chat, "after restart 2", [alice, carol]),
             say(carol, chat, "after restart 3", [alice, bob])]
    time.sleep(1)
    # No duplicates anywhere: every msg id shown at most once per client.
    for c in (alice, bob, carol):
        ids = [e["msg"] for e in c.messages(chat)]
        assert len(ids) == len(set(ids)), c.name
    for c, own in ((alice, after[0]), (bob, after[1]), (carol, after[2])):
        ids = {e["msg"] for e in c.messages(chat)}
        assert set(after) - {own} <= ids
    for c in (alice, bob, carol):
        c.quit()
    # State and local history were written; the home stays private.
    for n in ("alice", "bob", "carol"):
        home = tmp_path / n
        assert (os.stat(home).st_mode & 0o777) == 0o700
        for f in ("identity", "state", "profile"):
            assert (os.stat(home / f).st_mode & 0o777) == 0o600
        logs = list((home / "history").glob("*.log"))
        assert len(logs) == 1 and logs[0].read_bytes().startswith(b"SCHIST1\n")
    # bob's identity is encrypted: his passphrase is not in the file.
    assert b"secret" not in (tmp_path / "bob" / "identity").read_bytes()


def test_history_answered_from_local_records(relay, clients, tmp_path):
    """Messages carol missed are served by alice after alice restarted: alice
    can only have them from her local history file (the client state does
    not hold the group history), which chatc hands back to libsecchat at
    start."""
    alice = start(relay, clients, tmp_path / "alice")
    bob = start(relay, clients, tmp_path / "bob")
    carol = start(relay, clients, tmp_path / "carol")
    for c, n in ((alice, "alice"), (bob, "bob"), (carol, "carol")):
        register(c, n)
    chat = make_chat(alice, [(bob, "bob"), (carol, "carol")])
    time.sleep(0.5)
    seen = say(alice, chat, "everyone sees this", [bob, carol])
    carol.quit()
    missed = [say(bob, chat, "carol misses 1", [alice]), say(alice, chat, "carol misses 2", [bob])]
    alice.quit()
    bob.quit()
    alice = start(relay, clients, tmp_path / "alice")
    alice.wait("ready")
    carol = start(relay, clients, tmp_path / "carol")
    carol.wait("ready")
    hist = carol.call("history", "history", chat=chat)
    assert [x["msg"] for x in hist["messages"]] == [seen] + missed
    assert [x["from"]["name"] for x in hist["messages"]] == ["alice", "bob", "alice"]
    assert all(x["verified"] for x in hist["messages"])
    carol.quit()
    alice.quit()


def test_history_of_earlier_runs(relay, clients, tmp_path):
    """history lists the messages of earlier runs from the local encrypted
    history, with nobody online to fetch them from: oldest first, limit
    honoured, each shaped exactly like the `message` event it was."""
    alice = start(relay, clients, tmp_path / "alice")
    bob = start(relay, clients, tmp_path / "bob")
    uids = {n: register(c, n) for c, n in ((alice, "alice"), (bob, "bob"))}
    chat = make_chat(alice, [(bob, "bob")])
    time.sleep(0.5)
    sent = [say(bob, chat, "one \u00e9", [alice]), say(alice, chat, "two", [bob]),
            say(bob, chat, "three \x1b[2J", [alice])]
    live = {e["msg"]: e for e in alice.messages(chat)}
    bob.quit()
    alice.quit()
    alice = start(relay, clients, tmp_path / "alice")
    alice.wait("ready")
    hist = alice.call("history", "history", chat=chat, limit=10)
    assert [x["msg"] for x in hist["messages"]] == sent
    assert hist["gaps"] == []
    for x in hist["messages"]:
        assert x["verified"] is True and x["chat"] == chat
        if x["msg"] in live:  # bob's: exactly the message event of the first run
            want = dict(live[x["msg"]])
            del want["event"]
            assert x == want, (x, want)
    own = hist["messages"][1]
    assert own["text"] == "two" and own["from"] == {"uid": uids["alice"], "name": "alice"}
    # limit: the newest N, still oldest first
    hist = alice.call("history", "history", chat=chat, limit=2)
    assert [x["msg"] for x in hist["messages"]] == sent[1:]
    # the history of a run without any message from it is the same after
    # another restart (records are not duplicated)
    alice.quit()
    alice = start(relay, clients, tmp_path / "alice")
    alice.wait("ready")
    hist = alice.call("history", "history", chat=chat)
    assert [x["msg"] for x in hist["messages"]] == sent
    alice.quit()


def test_history_reports_known_gaps(relay, clients, tmp_path):
    """Messages that exist but that no member can supply are listed in the
    history event's gaps. carol misses alice's m1 and m2; alice's local
    history is lost (file removed) before she restarts, so nobody holds
    them. alice's next post comes with her heartbeat, whose frontier shows
    carol that her earlier chain went on: carol warns about the gap, asks
    alice (who has nothing), and `history` reports {from: alice, count: 2}."""
    alice = start(relay, clients, tmp_path / "alice")
    carol = start(relay, clients, tmp_path / "carol")
    uids = {n: register(c, n) for c, n in ((alice, "alice"), (carol, "carol"))}
    chat = make_chat(alice, [(carol, "carol")])
    time.sleep(0.5)
    a0 = say(alice, chat, "a0", [carol])
    time.sleep(1.5)  # alice's first heartbeat reaches carol too
    carol.quit()
    say(alice, chat, "m1", [])
    say(alice, chat, "m2", [])
    alice.quit()
    for f in (tmp_path / "alice" / "history").glob("*.log"):
        f.unlink()
    alice = start(relay, clients, tmp_path / "alice")
    alice.wait("ready")
    carol = start(relay, clients, tmp_path / "carol")
    carol.wait("ready")
    time.sleep(2)  # carol's catch-up after the login: nothing to find yet
    h0 = carol.call("history", "history", chat=chat)
    assert [x["msg"] for x in h0["messages"]] == [a0] and h0["gaps"] == []
    a3 = say(alice, chat, "a3", [carol])
    carol.wait("warning", code="gap", chat=chat)
    hist = carol.call("history", "history", chat=chat)
    assert [x["msg"] for x in hist["messages"]] == [a0, a3]
    assert hist["gaps"] == [{"from": {"uid": uids["alice"], "name": "alice"}, "count": 2}]
    alice.quit()
    carol.quit()


def test_concurrent_lookups_run_their_own_commands(relay, clients, tmp_path):
    """Commands waiting for a directory lookup are matched to the answer by
    the name or uid they asked about: several in flight at once (names,
    uids, an unknown name) each get their own reply."""
    alice = start(relay, clients, tmp_path / "alice")
    bob = start(relay, clients, tmp_path / "bob")
    carol = start(relay, clients, tmp_path / "carol")
    uids = {n: register(c, n) for c, n in ((alice, "alice"), (bob, "bob"), (carol, "carol"))}
    fprs = {n: c.call("whoami", "whoami")["user"]["fingerprint"]
            for c, n in ((bob, "bob"), (carol, "carol"))}
    chat = alice.call("create", "chat_created", name="club")["chat"]
    alice.cmd("fingerprint", id="f-carol", user="carol")
    alice.cmd("invite", id="i-nobody", chat=chat, user="nobody")
    alice.cmd("fingerprint", id="f-bob", user=uids["bob"])
    alice.cmd("invite", id="i-bob", chat=chat, user="bob")
    alice.cmd("fingerprint", id="f-carol2", user="carol#" + fprs["carol"])
    got = {}
    deadline = time.monotonic() + 15
    while len(got) < 5:
        ev = alice.wait_any(deadline)
        if ev.get("id") in ("f-carol", "i-nobody", "f-bob", "i-bob", "f-carol2"):
            got[ev["id"]] = ev
    assert got["f-carol"]["event"] == "fingerprint" and got["f-carol"]["user"] == "carol"
    assert got["f-carol"]["fingerprint"] == fprs["carol"]
    assert got["f-carol2"]["fingerprint"] == fprs["carol"]
    assert got["f-bob"]["event"] == "fingerprint" and got["f-bob"]["fingerprint"] == fprs["bob"]
    assert got["i-nobody"]["event"] == "error" and got["i-nobody"]["code"] == "not_found"
    assert got["i-bob"] == {"event": "ok", "cmd": "invite", "id": "i-bob"}
    bob.wait("invited", chat=chat)
    for c in (alice, bob, carol):
        c.quit()


def test_identity_change_trust_and_verify(relay, clients, tmp_path):
    alice = start(relay, clients, tmp_path / "alice")
    bob = start(relay, clients, tmp_path / "bob")
    register(alice, "alice")
    old_uid = register(bob, "bob")
    chat = make_chat(alice, [(bob, "bob")])
    time.sleep(0.5)
    say(alice, chat, "hi bob", [bob])
    say(bob, chat, "hi alice", [alice])
    bob.quit()

    # A second identity registers as "bob".
    bob2 = start(relay, clients, tmp_path / "bob2")
    new_uid = register(bob2, "bob")
    assert new_uid != old_uid
    chat2 = alice.call("create", "chat_created", name="second")["chat"]
    alice.cmd("invite", id="inv", chat=chat2, user="bob")
    ch = alice.wait("identity_changed")
    assert ch["user"] == "bob"
    err = alice.wait("error", id="inv")
    assert err["code"] == "identity_changed"
    # Still refused, by name, by uid and as a direct chat.
    assert alice.call("invite", "error", chat=chat2, user="bob")["code"] == "identity_changed"
    assert alice.call("invite", "error", chat=chat2, user=new_uid)["code"] == "identity_changed"
    assert alice.call("dm", "error", user="bob")["code"] == "identity_changed"
    assert alice.call("verify", "error", user="bob", safety_number="1" * 60)["code"] in (
        "identity_changed", "not_found")
    assert not [e for e in bob2.log if e["event"] == "invited"]

    # Accept the new identity, then everything works with it.
    alice.call("trust", "ok", user="bob")
    alice.call("invite", "ok", chat=chat2, user="bob")
    bob2.wait("invited", chat=chat2)
    bob2.call("accept", "ok", chat=chat2)
    alice.wait("member_joined", chat=chat2)
    time.sleep(0.5)
    say(alice, chat2, "welcome new bob", [bob2])
    m = say(bob2, chat2, "thanks", [alice])
    assert [e for e in alice.messages(chat2) if e["msg"] == m][0]["trust"] == "tofu"

    # Safety numbers: the same on both sides; a wrong one changes nothing.
    sa = alice.call("fingerprint", "fingerprint", user="bob")
    sb = bob2.call("fingerprint", "fingerprint", user="alice")
    assert sa["safety_number"] == sb["safety_number"]
    assert len(sa["safety_number"].replace(" ", "")) == 60
    wrong = ("9" if sb["safety_number"][0] != "9" else "8") + sb["safety_number"][1:]
    assert alice.call("verify", "error", user="bob", safety_number=wrong)["code"] == "key_mismatch"
    mem = {x["name"]: x for x in alice.call("members", "members", chat=chat2)["members"]}
    assert mem["bob"]["trust"] == "tofu" and mem["bob"]["uid"] == new_uid
    alice.call("verify", "ok", user="bob", safety_number=sb["safety_number"])
    mem = {x["name"]: x for x in alice.call("members", "members", chat=chat2)["members"]}
    assert mem["bob"]["trust"] == "verified"
    m = say(bob2, chat2, "now verified", [alice])
    assert [e for e in alice.messages(chat2) if e["msg"] == m][0]["trust"] == "verified"
    # Trust survives a restart of alice (state blob).
    alice.quit()
    alice = start(relay, clients, tmp_path / "alice")
    alice.wait("ready")
    mem = {x["name"]: x for x in alice.call("members", "members", chat=chat2)["members"]}
    assert mem["bob"]["trust"] == "verified"
    alice.quit()
    bob2.quit()


def test_bad_input_keeps_running(relay, clients, tmp_path):
    alice = start(relay, clients, tmp_path / "alice")
    register(alice, "alice")
    chat = alice.call("create", "chat_created", name="solo")["chat"]
    bad = [(b"{not json\n", "bad_json"),
           (b'{"cmd":"send","chat":"x","text":"a","text":"b"}\n', "bad_json"),
           (b"[1,2]\n", "bad_arguments"),
           (b'{"cmd":"frobnicate"}\n', "unknown_command"),
           (b'{"cmd":"switch","chat":"x"}\n', "unknown_command"),
           (b'{"cmd":"send","chat":"' + chat.encode() + b'"}\n', "bad_arguments"),
           (b'{"cmd":"send","chat":"' + chat.encode() + b'","text":"' + b"x" * 40000 + b'"}\n',
            "too_long"),
           (b'{"cmd":"send","text":"' + b"y" * 70000 + b'"}\n', "too_long"),
           (b'{"cmd":"send","chat":"00112233445566778899aabbccddeeff","text":"hi"}\n',
            "unknown_chat"),
           (b'{"cmd":"members","chat":"nope"}\n', "unknown_chat"),
           (b'{"cmd":"invite","chat":"' + chat.encode() + b'","user":"nobody"}\n', "not_found"),
           (b'{"cmd":"verify","user":"alice","safety_number":"12"}\n', "bad_arguments")]
    for line, code in bad:
        alice.send_raw(line)
        ev = alice.wait("error")
        assert ev["code"] == code, (line[:60], ev)
    alice.send_raw(b"\n\n")
    # Still running, nothing lost: the chat is there and sending works.
    assert [c["chat"] for c in alice.call("chats", "chats")["chats"]] == [chat]
    alice.call("send", "sent", chat=chat, text="still alive")
    who = alice.call("whoami", "whoami")
    assert who["user"]["name"] == "alice" and len(who["user"]["fingerprint"]) == 19
    # The token is our relay-signed certificate: its claims name us.
    seg = who["token"].split(".")
    assert len(seg) == 3
    claims = json.loads(base64.urlsafe_b64decode(seg[1] + "=" * (-len(seg[1]) % 4)))
    assert claims["name"] == "alice" and claims["sub"] == who["user"]["uid"]
    alice.quit()
    state = (tmp_path / "alice" / "state").read_bytes()

    # Wrong passphrase: a clear error, exit code 4, nothing changed.
    bob_home = tmp_path / "bob"
    bob = start(relay, clients, bob_home, passphrase="right one")
    register(bob, "bob")
    bob.quit()
    ident = (bob_home / "identity").read_bytes()
    bad = subprocess.run([str(CHATC), "--server", relay.server, "--home", str(bob_home), "--json"],
                         input=b"", capture_output=True, timeout=30,
                         env=chatd_util.child_env({"SECCHAT_PASSPHRASE": "wrong one"}))
    assert bad.returncode == 4
    assert b"wrong passphrase" in bad.stderr
    assert json.loads(bad.stdout.splitlines()[-1])["event"] == "error"
    assert (bob_home / "identity").read_bytes() == ident

    # A home directory other users can read: refused, exit code 3, untouched.
    os.chmod(tmp_path / "alice", 0o755)
    loose = subprocess.run([str(CHATC), "--server", relay.server, "--home", str(tmp_path / "alice"),
                            "--json", "--no-passphrase"], input=b"", capture_output=True,
                           timeout=30, env=chatd_util.child_env())
    assert loose.returncode == 3
    assert b"mode 0755" in loose.stderr and b"chmod 700" in loose.stderr
    os.chmod(tmp_path / "alice", 0o700)
    assert (tmp_path / "alice" / "state").read_bytes() == state
    # And the home still works afterwards.
    alice = start(relay, clients, tmp_path / "alice")
    alice.wait("ready")
    assert [c["chat"] for c in alice.call("chats", "chats")["chats"]] == [chat]
    alice.quit()


def run_until_exit(relay, home, *extra, stdin=b"", env=None):
    """chatc --json with stdin kept open after `stdin`: only chatc itself
    decides when to stop."""
    p = subprocess.Popen([str(CHATC), "--server", relay.server, "--home", str(home), "--json",
                          "--no-passphrase", *extra], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=chatd_util.child_env(env))
    p.stdin.write(stdin)
    p.stdin.flush()
    try:
        p.wait(timeout=20)
    finally:
        p.kill()
    out, err = p.communicate(timeout=10)
    return p.returncode, [json.loads(l) for l in out.splitlines()], err


def test_server_key_mismatch(relay, clients, tmp_path):
    out = chatd_util.run_chatd(["pubkey", "--data-dir", relay.dir / "data"])
    assert out.returncode == 0
    fpr = re.search(r"^fingerprint ([a-z2-7]{52})$", out.stdout, re.M).group(1)
    alice = start(relay, clients, tmp_path / "alice", extra=["--server-key", fpr])
    register(alice, "alice")
    alice.quit()
    # A wrong --server-key: refused before anything is sent, exit 5.
    wrong = ("a" if fpr[0] != "a" else "b") + fpr[1:]
    rc, events, err = run_until_exit(relay, tmp_path / "new", "--server-key", wrong,
                                     stdin=b'{"cmd":"register","name":"eve"}\n')
    assert rc == 5, (events, err)
    assert events[-1]["event"] == "error" and events[-1]["code"] == "server_key_mismatch"
    assert b"impersonat" in err
    assert not [e for e in events if e["event"] in ("registered", "ready")]
    # --server-key contradicting the pin stored in the home: refused at start.
    rc, events, err = run_until_exit(relay, tmp_path / "alice", "--server-key", wrong)
    assert rc == 5 and events[-1]["code"] == "server_key_mismatch"
    # A malformed one: usage error.
    rc, events, err = run_until_exit(relay, tmp_path / "alice", "--server-key", "xyz")
    assert rc == 2

    # TOFU: bob pins the first relay; another relay (other keys) on the same
    # address is refused with a clear message.
    bob = start(relay, clients, tmp_path / "bob")
    register(bob, "bob")
    bob.quit()
    relay.stop()
    other = Relay(tmp_path / "other", port=relay.port)
    try:
        rc, events, err = run_until_exit(other, tmp_path / "bob")
        assert rc == 5, (events, err)
        assert events[-1]["code"] == "server_key_mismatch"
        assert b"key pinned earlier" in err
    finally:
        other.stop()


def clockshift_lib(tmp_path):
    """tests/python/clockshift.c built as an LD_PRELOAD library: the process
    that loads it sees CLOCK_REALTIME shifted by CLOCKSHIFT_S seconds."""
    src = pathlib.Path(__file__).with_name("clockshift.c")
    so = tmp_path / "clockshift.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-o", str(so), str(src), "-ldl"], check=True)
    return so


def test_auth_refused_exit_6(relay, clients, tmp_path):
    """Authentication that cannot succeed ends chatc with exit code 6 instead
    of retrying forever. alice registered; her clock is then 40 days ahead
    (past any token lifetime), so no token of the relay is valid for her:
    the login is refused, the automatic re-registration of the same
    identity and name on the next connection too, and chatc stops. Nothing
    is lost: with the clock fixed the same home logs in again. A first
    registration refused twice in a row ends the same way."""
    alice = start(relay, clients, tmp_path / "alice")
    uid = register(alice, "alice")
    alice.quit()
    so = clockshift_lib(tmp_path)
    env = {"LD_PRELOAD": str(so), "CLOCKSHIFT_S": str(40 * 86400),
           # the sanitizer runtime must come first unless told otherwise
           "ASAN_OPTIONS": "abort_on_error=1:detect_leaks=1:verify_asan_link_order=0"}
    ident = (tmp_path / "alice" / "identity").read_bytes()
    rc, events, err = run_until_exit(relay, tmp_path / "alice", env=env)
    assert rc == 6, (events, err)
    refused = [e for e in events if e["event"] == "error" and e["code"] == "auth_failed"]
    assert len(refused) == 2, events
    assert "registering again" in refused[0]["message"]
    assert "token expired" in refused[1]["message"] and "twice" in refused[1]["message"]
    assert not [e for e in events if e["event"] == "ready"]
    assert b"refused twice in a row" in err
    assert (tmp_path / "alice" / "identity").read_bytes() == ident
    # The clock fixed: the same identity logs in (registering again if needed).
    alice = start(relay, clients, tmp_path / "alice")
    assert alice.wait("ready")["user"] == {"uid": uid, "name": "alice"}
    alice.quit()
    # First registration: refused (the user may try again), refused again: exit 6.
    p = subprocess.Popen([str(CHATC), "--server", relay.server, "--home", str(tmp_path / "new"),
                          "--json", "--no-passphrase"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=chatd_util.child_env(env))
    try:
        for i in (1, 2):
            p.stdin.write(b'{"id":%d,"cmd":"register","name":"bob"}\n' % i)
            p.stdin.flush()
            while True:
                line = p.stdout.readline()
                assert line, p.stderr.read()
                ev = json.loads(line)
                if ev["event"] == "error":
                    assert ev["code"] == "auth_failed" and ev["id"] == i, ev
                    break
                assert ev["event"] in ("status",), ev
        assert p.wait(timeout=15) == 6
    finally:
        p.kill()
        p.communicate(timeout=10)
