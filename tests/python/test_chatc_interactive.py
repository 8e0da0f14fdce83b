"""The real chatc in interactive mode on a terminal (tmux plays it, as in
test_chatc_tty.py), against a real chatd, with a peer driven through
`chatc --json`: messages arriving while the user types do not corrupt the
typed line, and a peer's terminal escapes are shown escaped."""
import os
import re

import pytest

from test_chatc_e2e import CHATC, Chatc, Relay, register  # noqa: F401 (fixtures below)
from test_chatc_tty import TMUX, Pane


@pytest.fixture
def relay(tmp_path):
    r = Relay(tmp_path)
    yield r
    r.stop()


def test_interactive_chat_with_peer(relay, tmp_path):
    if not os.access(TMUX, os.X_OK):
        pytest.fail(f"{TMUX} not found: needs the Debian package tmux")
    bob = Chatc(relay, tmp_path / "bob")
    pane = Pane(f"{CHATC} --server {relay.server} --home {tmp_path / 'alice'} --no-passphrase; "
                "echo CHATC-STATUS=$?; sleep 60")
    try:
        register(bob, "bob")
        pane.wait(lambda t: "/help lists the commands" in t, "the greeting")
        pane.keys("/register alice", literal=True)
        pane.keys("Enter")
        pane.wait(lambda t: "logged in as alice" in t, "login")
        pane.keys('/create "book club"', literal=True)
        pane.keys("Enter")
        pane.wait(lambda t: "created chat book club" in t, "the chat")
        chat = re.search(r"created chat book club \(([0-9a-f]{32})\)", pane.text()).group(1)
        pane.keys("/invite bob", literal=True)
        pane.keys("Enter")
        pane.wait(lambda t: "invited bob" in t, "the invitation")
        bob.wait("invited", chat=chat)
        bob.call("accept", "ok", chat=chat)
        pane.wait(lambda t: "bob joined chat book club" in t, "bob joining")

        # The user types; messages arrive meanwhile.
        typed = "typing while bob talks"
        pane.keys(typed, literal=True)
        pane.wait(lambda t: t.rstrip().endswith("[book club]> " + typed), "the typed text")
        bob.call("send", "sent", chat=chat, text="first from bob")
        evil = "evil \x1b[2J \x1b]52;c;aGVsbG8=\x07 \u202edesrever end"
        bob.call("send", "sent", chat=chat, text=evil)
        bob.call("send", "sent", chat=chat, text="third from bob")
        pane.wait(lambda t: "bob: third from bob" in t, "bob's messages")
        lines = [l for l in pane.lines() if l.strip()]
        assert lines[-1] == "[book club]> " + typed
        assert pane.cursor()[0] == len("[book club]> " + typed)
        shown = [l for l in lines if l.startswith("[") and "bob: " in l]
        assert re.fullmatch(r"\[\d\d:\d\d:\d\d\] bob: first from bob", shown[0])
        assert shown[1].endswith(
            "bob: evil \\x1b[2J \\x1b]52;c;aGVsbG8=\\x07 \\u{202E}desrever end"), shown
        assert re.search(r"first contact with bob: pinned, fingerprint [a-z2-7]{4}-", pane.text())
        text = pane.text()
        assert "\x1b" not in text and "\u202e" not in text
        assert "created chat book club" in text  # ESC[2J cleared nothing
        assert pane.tmux("list-buffers").strip() == ""  # no clipboard write

        # Enter sends the untouched line to the chat.
        pane.keys("Enter")
        ev = bob.wait("message", chat=chat)
        assert ev["text"] == typed and ev["from"]["name"] == "alice" and ev["verified"]
        pane.keys("/members", literal=True)
        pane.keys("Enter")
        pane.wait(lambda t: re.search(r"\*\*\* bob  \S+  tofu", t), "members")
        pane.keys("/quit", literal=True)
        pane.keys("Enter")
        pane.wait(lambda t: "CHATC-STATUS=" in t, "chatc to exit")
        assert "CHATC-STATUS=0" in pane.text()
        bob.quit()
    finally:
        bob.kill()
        pane.close()
