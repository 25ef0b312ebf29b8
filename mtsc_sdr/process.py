"""One child process: start it in its own session, keep the tail of its output, wait until it is
ready, stop its whole process group, and report a failure by name.

Every process the testbed starts -- our own (base station, client, software channel, link-test
transmitter) and GNU Radio flowgraphs (:class:`~mtsc_sdr.radio.flowgraph.Flowgraph` builds on this)
-- is a :class:`ChildProcess`:

* it starts in a new session (Ctrl-C on the terminal reaches the orchestrator only, which stops
  its children in order), with ``stdin`` closed and ``PYTHONUNBUFFERED=1``;
* a reader thread keeps the last :data:`OUTPUT_TAIL_LINES` lines of its stderr (and of its stdout
  with ``stdout="merge"``), hands every line to ``on_line``, and sees the ``ready_marker``;
* :meth:`~ChildProcess.start` waits for the ready marker (or, without one, ``grace_s`` of staying
  alive); :meth:`~ChildProcess.check` raises :class:`ProcessFailed` once it has died on its own;
* :meth:`~ChildProcess.stop` signals the whole process group (children of the child too): SIGINT,
  then SIGTERM, then SIGKILL, ``stop_timeout_s`` apart; :func:`stop_all` stops several side by
  side (SIGINT to all, then each waited for). Leftovers are stopped at interpreter exit.

Example::

    with ChildProcess("software channel", [sys.executable, "-m", "mtsc_sdr.cli", "channel", ...]) as ch:
        ...
        ch.check()     # raises ProcessFailed (name, exit code, last output) if it died
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import logging
import os
import signal
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Literal

log = logging.getLogger("mtsc_sdr.process")

#: Lines of a child's output kept for failure reports.
OUTPUT_TAIL_LINES = 200


class ProcessFailed(RuntimeError):
    """A child process died (or never started, or did not finish in time).

    Attributes:
        name: the process's name ("software channel (mtsc-sdr channel)", ...).
        returncode: exit status (negative: killed by that signal), or None when it was still running.
        output_tail: the last lines of its output (stderr, or merged stdout and stderr).
        argv: the command line it was started with.
        summary: one line: which process and what happened.
    """

    #: What happened when ``what`` is not given: it exited by itself.
    exit_words = "exited with status {}"

    def __init__(self, name: str, returncode: int | None, output_tail: str, *, what: str | None = None,
                 argv: Sequence[str] = ()) -> None:
        self.name = name
        self.returncode = returncode
        self.output_tail = output_tail
        self.argv = list(argv)
        self.summary = self._summary(what or self.exit_words.format(returncode))
        super().__init__(self._text())

    def _summary(self, what: str) -> str:
        return f"{self.name} {what}"

    def _text(self) -> str:
        tail = self.output_tail.rstrip("\n")
        return self.summary + (f"\n--- last lines of its stderr ---\n{tail}" if tail.strip() else "")


_LIVE: weakref.WeakSet[ChildProcess] = weakref.WeakSet()


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold a SIGINT back until the block is done (in the main thread; elsewhere nothing to do),
    then deliver it: the KeyboardInterrupt then comes once the child is known and can be stopped."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)
        if caught:
            os.kill(os.getpid(), signal.SIGINT)


@atexit.register
def _stop_leftovers() -> None:  # never leave a child holding ports or a radio after we exit
    for child in list(_LIVE):
        try:
            child.stop(2.0)
        except Exception:  # noqa: BLE001 - best effort at interpreter exit
            pass


class ChildProcess:
    """A named child process in its own session (see the module docstring).

    Args:
        name: what to call it in messages.
        argv: the command line (may also be set before :meth:`start`, as subclasses do).
        stdout: ``"inherit"`` (the terminal's), ``"capture"`` (kept whole; :meth:`communicate`
            returns it) or ``"merge"`` (into the output tail, with stderr).
        env: extra environment variables. cwd: working directory.
        ready_marker: a line containing this text means it is ready (:meth:`start` waits for it).
        startup_timeout_s: how long :meth:`start` waits for ``ready_marker``; then it is stopped
            and :class:`ProcessFailed` raised.
        grace_s: without a ready marker, how long :meth:`start` watches it stay alive.
        stop_timeout_s: how long :meth:`stop` waits after SIGINT and again after SIGTERM.
        on_line: called with every output line (newline included), in the reader thread.
    """

    #: The error type raised; subclasses may narrow it (it must take ProcessFailed's arguments).
    error: type[ProcessFailed] = ProcessFailed
    #: Lines of the output tail an error quotes.
    error_tail_lines = 20

    def __init__(self, name: str, argv: Sequence[str] = (), *,
                 stdout: Literal["inherit", "capture", "merge"] = "inherit",
                 env: dict[str, str] | None = None, cwd: str | None = None, ready_marker: str | None = None,
                 startup_timeout_s: float = 30.0, grace_s: float = 0.0, stop_timeout_s: float = 3.0,
                 on_line: Callable[[str], None] | None = None) -> None:
        self.name = name
        self.argv = list(argv)
        self.stdout = stdout
        self.env = env
        self.cwd = cwd
        self.ready_marker = ready_marker
        self.startup_timeout_s = startup_timeout_s
        self.grace_s = grace_s
        self.stop_timeout_s = stop_timeout_s
        self.on_line = on_line
        self._proc: subprocess.Popen[str] | None = None
        self._stdout_file = None
        self._tail: collections.deque[str] = collections.deque(maxlen=OUTPUT_TAIL_LINES)
        self._ready = threading.Event()
        self._reader: threading.Thread | None = None
        self._stopping = False
        self._interrupted = False        # SIGINT sent by interrupt()

    # -- state -----------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def returncode(self) -> int | None:
        """Exit status once it has exited (negative: killed by that signal), else None."""
        return self._proc.poll() if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def alive(self) -> bool:
        return self.running

    @property
    def program(self) -> str:
        """The program it runs, as named in "could not start" errors."""
        return self.argv[0] if self.argv else "(no command)"

    def output_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of its output (stderr, or merged stdout and stderr)."""
        return "".join(list(self._tail)[-lines:])

    def __repr__(self) -> str:
        state = "not started" if self._proc is None else (
            f"running, pid {self.pid}" if self.running else f"exited {self.returncode}")
        return f"<{type(self).__name__} {self.name} ({state})>"

    # -- starting --------------------------------------------------------------------------

    def start(self) -> ChildProcess:
        """Launch it and wait until it is ready (ready marker, or ``grace_s`` alive); returns self.

        Raises:
            ProcessFailed: it could not be started, exited during startup, or did not print its
                ready marker within ``startup_timeout_s`` (it is stopped then).
        """
        if self._proc is not None:
            raise RuntimeError(f"{self.name} was already started")
        if self.stdout == "capture":
            self._stdout_file = tempfile.TemporaryFile(mode="w+b")
        out = {"inherit": None, "capture": self._stdout_file, "merge": subprocess.PIPE}[self.stdout]
        log.info("starting %s: %s", self.name, " ".join(self.argv))
        with _sigint_deferred():   # a Ctrl-C inside Popen would leave a child no one knows of, running on
            try:
                self._proc = subprocess.Popen(
                    self.argv, stdin=subprocess.DEVNULL, stdout=out,
                    stderr=subprocess.STDOUT if self.stdout == "merge" else subprocess.PIPE,
                    text=True, errors="replace", bufsize=1,
                    env=dict(os.environ, PYTHONUNBUFFERED="1", **(self.env or {})),
                    cwd=self.cwd, start_new_session=True,  # Ctrl-C reaches us; we stop it in order
                )
            except OSError as exc:
                raise self.error(self.name, None, "", what=f"could not start {self.program}: {exc}",
                                 argv=self.argv) from None
            _LIVE.add(self)
        self._reader = threading.Thread(target=self._read_output, name=f"{self.name}-output", daemon=True)
        self._reader.start()
        self._wait_ready()
        return self

    def _read_output(self) -> None:
        assert self._proc is not None
        pipe = self._proc.stdout if self.stdout == "merge" else self._proc.stderr
        for line in pipe:
            self._tail.append(line)
            if self.ready_marker is not None and self.ready_marker in line:
                self._ready.set()
            if self.on_line is not None:
                self.on_line(line)

    def _wait_ready(self) -> None:
        assert self._proc is not None
        if self.ready_marker is None and self.grace_s <= 0:
            return                      # nothing to wait for: check() reports a death later
        deadline = time.monotonic() + self.startup_timeout_s
        grace_until = time.monotonic() + min(self.grace_s, self.startup_timeout_s)
        while True:
            if self._proc.poll() is not None:
                self._drain()           # its last lines may hold the ready marker
                if self._ready.is_set():
                    return              # it reported running, then ended: check() tells how
                raise self.failure(f"exited with code {self._proc.returncode} during startup")
            if self._ready.is_set() or (self.ready_marker is None and time.monotonic() >= grace_until):
                return
            if time.monotonic() >= deadline:
                self.stop()
                raise self.error(self.name, None, self.output_tail(),
                                 what=f"did not report running within {self.startup_timeout_s:g} s (stopped it)",
                                 argv=self.argv)
            self._ready.wait(0.05)

    def _drain(self, timeout_s: float = 2.0) -> None:
        if self._reader is not None:
            self._reader.join(timeout_s)

    def failure(self, what: str | None = None) -> ProcessFailed:
        """The error reporting it (exit code, output tail); ``what`` happened (default: the error
        type's words for an exit)."""
        return self.error(self.name, self.returncode, self.output_tail(self.error_tail_lines), what=what,
                          argv=self.argv)

    # -- watching --------------------------------------------------------------------------

    def check(self, *, expect_running: bool = True) -> None:
        """Raise :class:`ProcessFailed` if it exited on its own while ``expect_running``, or
        exited non-zero; return quietly while it runs, or after it was asked to stop."""
        if self._proc is None:
            raise RuntimeError(f"{self.name} was not started")
        code = self._proc.poll()
        if code is None or self._stopping:
            return
        if expect_running or code != 0:
            self._drain()
            raise self.failure()

    def wait(self, timeout_s: float | None = None) -> int | None:
        """Wait until it exits by itself; its exit code, or None on timeout."""
        if self._proc is None:
            raise RuntimeError(f"{self.name} was not started")
        try:
            code = self._proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None
        self._drain()
        return code

    def communicate(self, timeout_s: float) -> str:
        """Wait for it to exit and return its stdout (``stdout="capture"``, else "");
        :class:`ProcessFailed` if it exits non-zero or is still running after ``timeout_s``."""
        if self.wait(timeout_s) is None:
            raise self.error(self.name, None, f"(still running after {timeout_s:.0f} s)\n"
                             + self.output_tail(self.error_tail_lines), argv=self.argv)
        self.check(expect_running=False)
        if self._stdout_file is None:
            return ""
        self._stdout_file.seek(0)
        return self._stdout_file.read().decode(errors="replace")

    # -- stopping --------------------------------------------------------------------------

    def stop(self, timeout_s: float | None = None) -> int | None:
        """Stop its process group: SIGINT (unless :meth:`interrupt` sent it already: a second
        one could cut short the child's own clean-up), then SIGTERM, then SIGKILL, waiting
        ``timeout_s`` (default ``stop_timeout_s``) after each. Returns its exit code (None if never
        started). Safe to call more than once."""
        if self._proc is None:
            return None
        timeout_s = self.stop_timeout_s if timeout_s is None else timeout_s
        if self._proc.poll() is None:
            self._stopping = True
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
                try:
                    if not (sig == signal.SIGINT and self._interrupted):
                        os.killpg(self._proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self._proc.wait(timeout_s)
                    break
                except subprocess.TimeoutExpired:
                    log.warning("%s did not stop %.1f s after %s", self.name, timeout_s, signal.Signals(sig).name)
            else:
                self._proc.wait()
        self._kill_group_leftovers()
        self._drain()
        self._close_pipes()
        _LIVE.discard(self)
        return self._proc.returncode

    def interrupt(self) -> None:
        """Send its process group SIGINT and return at once (:meth:`stop` then waits and escalates):
        several children asked to stop together wind down side by side (:func:`stop_all`)."""
        if self._proc is not None and self._proc.poll() is None and not self._interrupted:
            self._stopping = self._interrupted = True
            try:
                os.killpg(self._proc.pid, signal.SIGINT)
            except ProcessLookupError:
                pass

    def _kill_group_leftovers(self) -> None:
        """Children of the child that outlived it (the group still exists) are killed too."""
        try:
            os.killpg(self._proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def _close_pipes(self) -> None:
        pipe = self._proc.stdout if self.stdout == "merge" else self._proc.stderr
        # closing a pipe another thread is still reading blocks on its buffer lock; a reader
        # still alive here (something else holds the pipe open) keeps it until it ends
        if pipe is not None and (self._reader is None or not self._reader.is_alive()):
            pipe.close()
        if self._stdout_file is not None:
            self._stdout_file.close()
            self._stdout_file = None

    def close(self) -> None:
        self.stop()

    def __enter__(self) -> ChildProcess:
        return self if self._proc is not None else self.start()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        died = self._proc is not None and self._proc.poll() is not None and not self._stopping
        self.stop()
        if died and exc_type is None and self._proc is not None and self._proc.returncode != 0:
            raise self.failure()

    def __del__(self) -> None:
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass


def stop_all(processes: Sequence[ChildProcess]) -> None:
    """Stop several children: SIGINT to each at once (:meth:`ChildProcess.interrupt`), then
    :meth:`ChildProcess.stop` on each in the order given, so their exits overlap instead of
    adding up."""
    for proc in processes:
        proc.interrupt()
    for proc in processes:
        proc.stop()


__all__ = ["ChildProcess", "OUTPUT_TAIL_LINES", "ProcessFailed", "stop_all"]
