"""Short soak of chatd in CI (security.md D12, D5 along the way): the engine
of scripts/soak for 25 s with 40 clients in churn (logins, route changes,
GROUP_SEND and DIRECT, slow readers, graceful and mid-frame leaves,
abandoned handshakes, and every 10 s one client flooding its route with
500 GROUP_SENDs: D4 scaled down) against a real chatd with 2 workers.

Invariants, as in the long run (see scripts/soak): zero lost acknowledged
messages (counted on the receiving side, byte-exact, at most once), every
message of a client that stayed online answered, no connection closed by
chatd unasked, descriptors back to exactly the idle count once every
client left and fds minus connections flat during the churn, chatd still
serving and exiting 0 on SIGTERM without a sanitizer report. RSS: the
median of the last samples within 5 % or 2 MiB of the median after a 5 s
warm-up: in 25 s a slow leak cannot show, but a per-message or
per-connection leak does (the run makes ~400 messages and ~80 logins).
Under ASan the bound is 20 MiB: the allocator keeps freed blocks in a
quarantine (16 MiB here) that fills during the run, and LeakSanitizer at
chatd's exit (its stderr must stay clean) is the leak check there."""
import importlib.machinery
import importlib.util
import os
import pathlib

import pytest

from chatd_util import CHATD, RELAYCLIENT

SOURCE_DIR = pathlib.Path(os.environ.get("SECCHAT_SOURCE_DIR",
                                         pathlib.Path(__file__).resolve().parents[2]))


def load_soak():
    loader = importlib.machinery.SourceFileLoader("secchat_soak", str(SOURCE_DIR / "scripts" / "soak"))
    spec = importlib.util.spec_from_loader("secchat_soak", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def soak(tmp_path_factory):
    for exe in (CHATD, RELAYCLIENT):
        if not os.access(exe, os.X_OK):
            pytest.fail(f"{exe} not built (set SECCHAT_BINARY_DIR / SECCHAT_HELPER_DIR)")
    mod = load_soak()
    asan = bool(mod.build_is_asan(CHATD.parents[2]))
    s = mod.Soak(duration=25, clients=40, seed=7, rate=40.0, routes=8, warmup=5, sample_every=1.0,
                 rss_tolerance=0.05, rss_slack_kb=20480 if asan else 2048, flood_every=10.0,
                 workdir=str(tmp_path_factory.mktemp("soak")), log=lambda m: None)
    try:
        ok, text = s.run()
    finally:
        s.cleanup()
    s.ok, s.text, s.mod = ok, text, mod
    return s


def test_short_soak_holds_every_invariant(soak):
    print(soak.text)
    assert soak.ok, soak.text
    c = soak.counts
    # The churn really happened (else the checks below prove little).
    assert c["logins"] > 50 and c["graceful"] > 5 and c["abrupt"] > 2, soak.text
    assert c["gsend"] > 120 and c["direct"] > 40 and c["slow"] > 5, soak.text
    assert soak.acked > 200 and soak.expected > 400, soak.text
    assert soak.lost == 0
    # D4 scaled down: each flood of 500 back-to-back GROUP_SENDs was cut by
    # the per-connection bucket (ERROR rate_limited), every one answered.
    assert len(soak.floods) >= 2, soak.text
    for took, sent, accepted, limited in soak.floods:
        assert sent == soak.mod.FLOOD and accepted + limited == sent, soak.text
        assert limited > 0 and accepted >= 200, soak.text
    assert soak.idle_fds_end == soak.idle_fds_start
    assert soak.exit_rc == 0 and soak.serving


def test_loss_and_duplicate_checks_can_fail(soak):
    """The delivery bookkeeping is not vacuous: hide one owed delivery, or
    count one twice, and the check reports it."""
    by_route = {}
    for idx, r, j, leave in soak.route_sessions:
        by_route.setdefault(r, []).append((idx, j, leave))
    victim = None
    for m, info in soak.msgs.items():
        if info["kind"] == "g" and info["relayed"] is not None:
            owed = [idx for idx, j, leave in by_route.get(info["target"], [])
                    if idx != info["sender"] and j + soak.mod.SETTLE <= info["send"]
                    and leave >= info["relayed"] + soak.mod.GRACE]
            if owed:
                victim = (m, owed[0])
                break
    assert victim, "no owed group delivery to tamper with"
    m, idx = victim
    saved = list(soak.received[m])
    try:
        soak.violations = []
        soak.received[m] = [x for x in saved if x != idx]
        soak.check_delivery()
        assert soak.lost == 1 and "lost" in soak.violations[0], soak.violations
        soak.violations = []
        soak.received[m] = saved + [saved[0]]
        soak.check_delivery()
        assert soak.lost == 0 and any("twice" in v for v in soak.violations), soak.violations
    finally:
        soak.received[m] = saved
        soak.violations = []
