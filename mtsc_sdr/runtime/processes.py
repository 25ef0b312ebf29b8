"""Child processes of the orchestrator: start, watch, stop cleanly, report failures by name.

Every process the orchestrator starts (a transmitter, the software channel, a GNU Radio flowgraph)
is a :class:`ManagedProcess`. Its stderr goes to a temporary file so that a failure can be
reported with its last lines; :meth:`ManagedProcess.check` raises :class:`ProcessFailed` naming the
process as soon as it has died; :meth:`ManagedProcess.stop` sends SIGINT, then SIGTERM, then
SIGKILL, waiting a little after each, and releases its stderr file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from typing import Sequence


class ProcessFailed(RuntimeError):
    """A child process exited when it should not have (or with a non-zero status)."""

    def __init__(self, name: str, returncode: int | None, stderr_tail: str):
        self.name = name
        self.returncode = returncode
        self.stderr_tail = stderr_tail
        tail = f"\n--- last lines of its stderr ---\n{stderr_tail}" if stderr_tail.strip() else ""
        super().__init__(f"{name} exited with status {returncode}{tail}")


class ManagedProcess:
    """A named child process whose stderr is kept for error reports.

    Args:
        name: what to call it in messages ("software channel", "flowgraph sim_channel", ...).
        argv: the command line.
        capture_stdout: keep stdout in a pipe (read it with :meth:`communicate`); otherwise inherit.
        env: extra environment variables.
    """

    def __init__(self, name: str, argv: Sequence[str], *, capture_stdout: bool = False,
                 env: dict[str, str] | None = None):
        self.name = name
        self.argv = list(argv)
        self._stderr = tempfile.TemporaryFile(mode="w+b")
        full_env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
        self.proc = subprocess.Popen(
            self.argv,
            stdout=subprocess.PIPE if capture_stdout else None,
            stderr=self._stderr,
            stdin=subprocess.DEVNULL,
            env=full_env,
            start_new_session=True,  # Ctrl-C on the terminal reaches the orchestrator only
        )

    # -- state ---------------------------------------------------------------------------------

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stderr_tail(self, max_lines: int = 20) -> str:
        if self._stderr.closed:  # stopped: what mattered was reported when it failed
            return ""
        self._stderr.flush()
        self._stderr.seek(0)
        lines = self._stderr.read().decode(errors="replace").splitlines()
        return "\n".join(lines[-max_lines:])

    def check(self, *, expect_running: bool = True) -> None:
        """Raise :class:`ProcessFailed` if it died (``expect_running``) or exited non-zero."""
        code = self.proc.poll()
        if code is None:
            return
        if expect_running or code != 0:
            raise ProcessFailed(self.name, code, self.stderr_tail())

    def wait_ready(self, seconds: float) -> None:
        """Watch it for ``seconds``; raise :class:`ProcessFailed` if it dies meanwhile."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.check()
            time.sleep(0.05)
        self.check()

    def communicate(self, timeout_s: float) -> str:
        """Wait for exit and return its stdout (when captured); :class:`ProcessFailed` if non-zero."""
        try:
            out, _ = self.proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise ProcessFailed(self.name, None, f"(still running after {timeout_s:.0f} s)\n"
                                + self.stderr_tail()) from None
        self.check(expect_running=False)
        return (out or b"").decode(errors="replace")

    # -- stopping --------------------------------------------------------------------------------

    def stop(self, grace_s: float = 3.0) -> int | None:
        """Stop it: SIGINT, then SIGTERM, then SIGKILL, ``grace_s`` apart. Releases the stderr file; returns the exit status."""
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            if self.proc.poll() is not None:
                break
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                continue
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()
        return self.proc.poll()

    def close(self) -> None:
        self.stop()

    def __enter__(self) -> "ManagedProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
