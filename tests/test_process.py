"""mtsc_sdr.process: one child process -- ready marker, output tail in errors, the process group stopped."""

from __future__ import annotations

import os
import sys
import time

import pytest

from mtsc_sdr.process import ChildProcess, ProcessFailed


def _py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie (killed, not yet reaped by its parent) counts as gone
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0] == "Z"


def test_ready_marker_is_waited_for():
    child = ChildProcess("marker", _py("import time; time.sleep(0.3); print('ready now', flush=True); "
                                       "time.sleep(60)"), stdout="merge", ready_marker="ready now")
    t0 = time.monotonic()
    with child:
        assert time.monotonic() - t0 >= 0.25 and child.running
        assert "ready now" in child.output_tail()
    assert not child.running


def test_a_child_that_reports_ready_and_ends_at_once_has_started():
    """The marker and the exit can reach the parent in either order (the reader thread may not have
    seen the marker yet when the exit is noticed); a child that said it was running has started."""
    for _ in range(20):
        child = ChildProcess("quick", _py("print('ready now', flush=True)"), stdout="merge",
                             ready_marker="ready now")
        child.start()
        assert child.wait(10) == 0 and "ready now" in child.output_tail()
        child.stop()


def test_no_ready_marker_in_time_stops_it():
    child = ChildProcess("silent", _py("import time; time.sleep(60)"), ready_marker="never",
                         startup_timeout_s=0.5, stop_timeout_s=0.5)
    with pytest.raises(ProcessFailed, match="silent did not report running within 0.5 s") as info:
        child.start()
    assert info.value.returncode is None and not child.running


def test_death_is_reported_with_name_exit_code_and_output_tail():
    child = ChildProcess("the worker", _py("import sys; print('line one', file=sys.stderr); "
                                           "print('fatal: out of cheese', file=sys.stderr); sys.exit(5)")).start()
    assert child.wait(10) == 5
    with pytest.raises(ProcessFailed) as info:
        child.check()
    err = info.value
    assert err.name == "the worker" and err.returncode == 5 and "out of cheese" in err.output_tail
    assert str(err).startswith("the worker exited with status 5\n--- last lines of its stderr ---\nline one")
    child.stop()


def test_communicate_returns_stdout_and_fails_on_non_zero_exit():
    ok = ChildProcess("echo", _py("print('{\"sent\": 3}')"), stdout="capture").start()
    assert ok.communicate(timeout_s=10).strip() == '{"sent": 3}'
    ok.stop()
    bad = ChildProcess("bad", _py("import sys; sys.exit(2)"), stdout="capture").start()
    with pytest.raises(ProcessFailed, match="bad exited with status 2"):
        bad.communicate(timeout_s=10)
    bad.stop()


def test_could_not_start_names_the_program():
    with pytest.raises(ProcessFailed, match="nothing could not start /nonexistent/program"):
        ChildProcess("nothing", ["/nonexistent/program"]).start()


def test_stop_ends_the_whole_process_group(tmp_path):
    """A child that started a grandchild: both are gone after stop."""
    pidfile = tmp_path / "grandchild.pid"
    code = ("import subprocess, sys, time; "
            "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
            f"open({str(pidfile)!r}, 'w').write(str(g.pid)); print('started', flush=True); time.sleep(60)")
    child = ChildProcess("parent", _py(code), stdout="merge", ready_marker="started").start()
    grandchild = int(pidfile.read_text())
    assert not _gone(grandchild)
    child.stop()
    assert _gone(child.pid)
    deadline = time.monotonic() + 5
    while not _gone(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(grandchild)


def test_stop_escalates_when_sigint_is_ignored():
    ignore_int = ("import signal, sys, time; signal.signal(signal.SIGINT, signal.SIG_IGN); "
                  "signal.signal(signal.SIGTERM, lambda *a: (print('term', flush=True), sys.exit(0))); "
                  "print('up', flush=True); time.sleep(60)")
    child = ChildProcess("ignores int", _py(ignore_int), stdout="merge", ready_marker="up",
                         stop_timeout_s=0.3).start()
    assert child.stop() == 0 and "term" in child.output_tail()        # SIGINT ignored, SIGTERM handled
    stubborn = ("import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); "
                "signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)")
    child = ChildProcess("stubborn", _py(stubborn), stdout="merge", ready_marker="up", stop_timeout_s=0.3).start()
    assert child.stop() == -9
    assert child.stop() == -9                                           # idempotent
    child.check()                                                       # stopped on request: no failure


def test_stop_all_interrupts_every_child_at_once_and_only_once():
    """Each child takes 1 s to wind down after SIGINT: together they stop in about 1 s, not 1 s each,
    and the second SIGINT that would cut a clean-up short is never sent."""
    from mtsc_sdr.process import stop_all

    code = ("import signal, sys, time\n"
            "hits = []\n"
            "def on_int(*_):\n"
            "    hits.append(1)\n"
            "    if len(hits) > 1: sys.exit(7)\n"
            "signal.signal(signal.SIGINT, on_int)\n"
            "print('ready now', flush=True)\n"
            "while not hits: time.sleep(0.02)\n"
            "time.sleep(1.0)\n"
            "sys.exit(0)\n")
    children = [ChildProcess(f"slow {i}", _py(code), stdout="merge", ready_marker="ready now",
                             stop_timeout_s=10).start() for i in range(3)]
    t0 = time.monotonic()
    stop_all(children)
    assert time.monotonic() - t0 < 2.5
    assert [c.returncode for c in children] == [0, 0, 0]


def test_ctrl_c_while_a_child_is_being_created_leaves_it_known(monkeypatch):
    """A SIGINT that lands inside Popen is held back until the child is registered: the
    KeyboardInterrupt comes after, and the child can be stopped (no orphan keeps running)."""
    import signal
    import subprocess

    real = subprocess.Popen

    def popen_then_ctrl_c(*args, **kwargs):
        proc = real(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)                # the handler runs here, inside "Popen"
        return proc

    monkeypatch.setattr(subprocess, "Popen", popen_then_ctrl_c)
    child = ChildProcess("interrupted", _py("import time; time.sleep(60)"))
    with pytest.raises(KeyboardInterrupt):
        child.start()
    assert child.pid is not None and child.running
    child.stop()
    assert _gone(child.pid)
