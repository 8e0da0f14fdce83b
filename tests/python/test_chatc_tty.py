"""chatc's interactive line editor on a real terminal (tmux, Debian package).

chatc_lineprobe (apps/chatc/tests) runs chatc's input loop (libedit in
unbuffered mode + print-above) and prints a fake incoming message every
300 ms; the third one comes from "mallory\\u202e" and carries ESC[2J, an
OSC 52 clipboard write and U+202E. tmux plays the terminal: send-keys types,
capture-pane shows what a user would see.
"""
import os
import pathlib
import re
import shutil
import subprocess
import time
import uuid

import pytest

BINARY_DIR = pathlib.Path(os.environ.get("SECCHAT_BINARY_DIR", "build"))
PROBE = BINARY_DIR / "apps" / "chatc" / "chatc_lineprobe"
TMUX = "/usr/bin/tmux"


class Pane:
    def __init__(self, command):
        self.sock = "chatc-test-" + uuid.uuid4().hex[:12]
        # tmux itself is not instrumented: keep sanitizer preloads out of it.
        env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
        env["NO_COLOR"] = "1"
        env["LC_ALL"] = "C.UTF-8"
        self.env = env
        self.tmux("new-session", "-d", "-x", "120", "-y", "30", command)
        self.tmux("set-option", "-g", "remain-on-exit", "on")

    def tmux(self, *args):
        return subprocess.run([TMUX, "-L", self.sock, "-f", "/dev/null", *args], env=self.env,
                              check=True, capture_output=True, text=True, timeout=10).stdout

    def keys(self, *keys, literal=False):
        self.tmux("send-keys", "-t", "0", *(["-l"] if literal else []), *keys)

    def lines(self):
        out = self.tmux("capture-pane", "-p", "-t", "0")
        return [l.rstrip() for l in out.split("\n")]

    def text(self):
        return "\n".join(self.lines())

    def cursor(self):
        x, y = self.tmux("display-message", "-p", "-t", "0", "#{cursor_x} #{cursor_y}").split()
        return int(x), int(y)

    def wait(self, pred, what, timeout=10):
        end = time.time() + timeout
        while time.time() < end:
            if pred(self.text()):
                return
            time.sleep(0.05)
        pytest.fail(f"timeout waiting for {what}; screen:\n{self.text()}")

    def close(self):
        subprocess.run([TMUX, "-L", self.sock, "kill-server"], env=self.env,
                       capture_output=True, timeout=10)


def count_incoming(text):
    return len(re.findall(r"peer: incoming \d+", text))


@pytest.fixture
def pane():
    if not os.access(TMUX, os.X_OK):
        pytest.fail(f"{TMUX} not found: this test needs the Debian package tmux "
                    "(scripts/install-deps must install it)")
    if not os.access(PROBE, os.X_OK):
        pytest.fail(f"{PROBE} not built (set SECCHAT_BINARY_DIR to the build tree)")
    p = Pane(f"{PROBE}; echo PROBE-STATUS=$?; stty -a; echo PROBE-EXITED; sleep 60")
    yield p
    p.close()


def last_nonempty(lines):
    body = [l for l in lines if l.strip()]
    return body[-1], len(body) - 1, body


def test_typed_line_survives_incoming_messages(pane):
    pane.wait(lambda t: "incoming 1" in t, "the first message")
    typed = "hello partial wor"
    pane.keys(typed, literal=True)
    pane.wait(lambda t: t.rstrip().endswith("> " + typed), "the typed text")
    before = count_incoming(pane.text())
    pane.wait(lambda t: count_incoming(t) >= before + 4, "four more messages")
    last, idx, body = last_nonempty(pane.lines())
    # The partial input is intact on the last line, the cursor after it...
    assert last == "> " + typed
    assert pane.cursor()[0] == len("> " + typed)
    # ...and every message is above it, whole, one per line, in order.
    nums = [int(m.group(1)) for l in body[:idx] for m in [re.search(r"incoming (\d+)$", l)] if m]
    assert len(nums) >= before + 3
    assert nums == sorted(nums)
    assert all(re.fullmatch(r"\[\d\d:\d\d:\d\d\] (peer: incoming \d+|mallory.*)", l)
               for l in body[:idx]), body[:idx]

    # Editing in the middle of the line keeps working across redraws.
    pane.keys("Left", "Left", "Left")
    pane.keys("X", literal=True)
    n = count_incoming(pane.text())
    pane.wait(lambda t: count_incoming(t) >= n + 2, "two more messages")
    assert last_nonempty(pane.lines())[0] == "> hello partial Xwor"
    assert pane.cursor()[0] == len("> hello partial X")

    # Submitting: the line comes back through the formatter, the prompt is empty.
    pane.keys("End")
    pane.keys("ld", literal=True)
    pane.keys("Enter")
    pane.wait(lambda t: "you: hello partial Xworld" in t, "the submitted line")
    n = count_incoming(pane.text())
    pane.wait(lambda t: count_incoming(t) >= n + 1, "one more message")
    assert last_nonempty(pane.lines())[0] == ">"
    # History: Up recalls the submitted line into the editor.
    pane.keys("Up")
    pane.wait(lambda t: t.rstrip().endswith("> hello partial Xworld"), "history recall")


def test_terminal_escapes_are_shown_escaped(pane):
    pane.wait(lambda t: "mallory" in t and count_incoming(t) >= 3, "the hostile message")
    text = pane.text()
    line = next(l for l in pane.lines() if "mallory" in l)
    assert "mallory\\u{202E}:" in line
    assert "evil \\x1b[2J \\x1b]52;c;aGVsbG8=\\x07 \\u{202E}desrever end" in line
    assert "\u202e" not in text and "\x1b" not in text
    # ESC[2J did not clear the screen: the earlier messages are still there.
    assert "peer: incoming 1" in text and "peer: incoming 2" in text
    # The OSC 52 clipboard write never reached the terminal.
    assert pane.tmux("list-buffers").strip() == ""


def test_wrapped_input_and_resize(pane):
    pane.wait(lambda t: "incoming 1" in t, "the first message")
    typed = "".join(chr(ord("a") + i % 26) for i in range(150)) + "-end"
    pane.keys(typed, literal=True)

    def input_rows_ok(width):
        lines = [l for l in pane.lines() if l.strip()]
        rows = -(-(len(typed) + 2) // width)  # ceil
        return "".join(lines[-rows:]) == "> " + typed

    pane.wait(lambda t: t.rstrip().endswith("-end"), "the typed text")
    n = count_incoming(pane.text())
    pane.wait(lambda t: count_incoming(t) >= n + 3, "three more messages")
    assert input_rows_ok(120), pane.text()
    # SIGWINCH: the line is redrawn for the new width and stays intact.
    pane.tmux("resize-window", "-t", "0", "-x", "70")
    n = count_incoming(pane.text())
    pane.wait(lambda t: count_incoming(t) >= n + 3, "three more messages")
    assert input_rows_ok(70), pane.text()


def test_eof_restores_terminal(pane):
    pane.wait(lambda t: "incoming 1" in t, "the first message")
    pane.keys("partial", literal=True)
    pane.keys("C-u")  # kill the line: Ctrl-D only ends input on an empty line
    pane.keys("C-d")
    pane.wait(lambda t: "PROBE-EXITED" in t, "the probe to exit")
    text = pane.text()
    assert "bye" in text
    assert "PROBE-STATUS=0" in text  # clean exit (and no sanitizer report)
    # stty -a ran right after: canonical mode and echo are back on.
    stty = text[text.index("bye"):]
    assert re.search(r"(?<![-\w])icanon\b", stty), stty
    assert re.search(r"(?<![-\w])echo\b", stty), stty
