"""GNU Radio flowgraphs: the registry of ``flowgraphs/*.grc`` and a launcher that runs one as a subprocess.

``mtsc_sdr`` never imports ``gnuradio``: each flowgraph is the Python that ``grcc`` generated from its
``.grc`` file, run under a Python that has GNU Radio (:func:`~mtsc_sdr.radio.grpython.require_gr_python`,
overridable with ``MTSC_GR_PYTHON`` or ``python=``). A flowgraph's parameters are read from its
``.grc`` file (GRC "parameter" blocks, which ``grcc`` turns into ``--name value`` command-line
options), so there is no second list to keep in step.

ZeroMQ topology (gr-zeromq sinks bind, sources connect): a flowgraph's ``in_addr`` is where an
upstream sender has *bound* a PUSH socket (:class:`mtsc_sdr.link.IQPush`); its ``out_addr`` is
*bound* by the flowgraph's ``push_sink`` for a downstream receiver that connects
(:class:`mtsc_sdr.link.IQPull`). Samples are raw complex64, full scale 1.0, no tag headers.
gr-zeromq has no CURVE, so the bind rule of :func:`mtsc_sdr.link.endpoints.check_bind_endpoint`
applies to the endpoints a flowgraph binds: loopback, or ``insecure=True`` (``--insecure``);
anything else is refused before the flowgraph starts.

Lifecycle of :class:`Flowgraph` (a :class:`~mtsc_sdr.process.ChildProcess`): :meth:`~Flowgraph.start`
launches it and waits until the flowgraph prints :data:`READY_MARKER` (a Python snippet in every
``.grc`` prints it right after ``tb.start()``, so its blocks are built and its endpoints bound);
:meth:`~Flowgraph.check` raises :class:`FlowgraphFailed` (a :class:`~mtsc_sdr.process.ProcessFailed`)
with the exit code and the tail of its output if it has died; :meth:`~Flowgraph.stop` sends its
process group SIGINT (the generated ``main()`` stops the top block and exits 0), then SIGTERM, then
SIGKILL, each after a timeout. It is a context manager.

Example::

    with Flowgraph("sim_channel", {"in_addr": tx.endpoint, "out_addr": "tcp://127.0.0.1:5556",
                                   "snr_db": 20, "seed": 1}) as fg:
        ...            # stream samples through it
        fg.check()     # raises FlowgraphFailed if it died
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import yaml

from mtsc_sdr.link.endpoints import check_bind_endpoint
from mtsc_sdr.process import ChildProcess, ProcessFailed

from .grpython import require_gr_python

log = logging.getLogger("mtsc_sdr.radio.flowgraph")

#: Environment variable naming a directory of ``.grc`` files and their generated ``.py`` files.
DIR_ENV_VAR = "MTSC_FLOWGRAPH_DIR"
#: Printed on stdout by every flowgraph right after ``tb.start()`` (a GRC Python snippet).
READY_MARKER = "mtsc-sdr: flowgraph running"
#: Seconds :meth:`Flowgraph.start` waits for :data:`READY_MARKER` (radios can take a while to open).
DEFAULT_STARTUP_TIMEOUT_S = 30.0
#: Seconds :meth:`Flowgraph.stop` waits after SIGINT, and again after SIGTERM, before escalating.
DEFAULT_STOP_TIMEOUT_S = 5.0
#: Without a ready marker in its ``.grc``: seconds a flowgraph must stay alive to count as started.
DEFAULT_GRACE_S = 2.0

# GRC parameter types that become command-line options, and how the generated script parses them.
_OPTION_TYPES = {"eng_float", "intx", "long", "str", "complex"}


def flowgraph_dir() -> Path:
    """Directory holding the ``.grc`` files and their generated Python (``$MTSC_FLOWGRAPH_DIR`` or
    the repository's ``flowgraphs/``)."""
    explicit = os.environ.get(DIR_ENV_VAR)
    if explicit:
        return Path(explicit)
    return Path(__file__).resolve().parents[2] / "flowgraphs"


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class FlowgraphError(RuntimeError):
    """Base class of the flowgraph errors."""


class UnknownFlowgraph(FlowgraphError, KeyError):
    """No flowgraph of that name; the message lists the known ones."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class FlowgraphParamError(FlowgraphError, ValueError):
    """A parameter name the flowgraph does not declare, or a value of the wrong type."""


class FlowgraphFailed(ProcessFailed, FlowgraphError):
    """The flowgraph process died (or never started): :class:`~mtsc_sdr.process.ProcessFailed`
    (``name``, ``returncode``, ``output_tail``: its merged stdout/stderr, ``argv``), worded for a
    flowgraph; ``summary`` ends with the exception (or last) line of its output."""

    exit_words = "exited unexpectedly with code {}"

    def _summary(self, what: str) -> str:
        summary = f"flowgraph {self.name}: {what}"
        last = last_error_line(self.output_tail)
        return f"{summary}: {last}" if last else summary

    def _text(self) -> str:
        if self.output_tail.strip():
            return self.summary + "\n--- last output lines ---\n" + self.output_tail.rstrip("\n")
        return self.summary + " (it printed nothing)"


#: gr-uhd (3.10) sums the overflows / underflows UHD reported and logs the count per interval
_REPORTED_XRUNS = re.compile(r"In the last \d+ ms, (\d+) (overflow|underflow)s occurred")
#: One letter per event, printed without a newline, so a run of them starts a line or is glued to
#: the next log line: gr-iio's source prints O when the AD936x DMA status register shows lost
#: samples and its sink U on an underflow; UHD prints O (overflow), D (dropped packet, network
#: devices), U (underflow) and L (late: the samples reached the radio too late; an underflow too).
_LETTER_XRUNS = re.compile(r"^([ODUL]+)(?=\s|\[|$)")


def count_xruns(line: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """What one line of a radio flowgraph's output reports, as ((overflows, underflows) from event
    letters, (overflows, underflows) from gr-uhd's interval counts).

    Receive overflows: samples the host did not take in time (lost); transmit underflows: gaps in
    what the radio sent. UHD both prints a letter per event and gr-uhd logs their count, so the two
    sources are kept apart and a flowgraph's total is the larger of them (:attr:`Flowgraph.xruns`).
    """
    reported = [0, 0]
    for n, what in _REPORTED_XRUNS.findall(line):
        reported[what == "underflow"] += int(n)
    letters = [0, 0]
    m = _LETTER_XRUNS.match(line)
    if m:
        run = m.group(1)
        letters = [run.count("O") + run.count("D"), run.count("U") + run.count("L")]
    return (letters[0], letters[1]), (reported[0], reported[1])


def last_error_line(output: str) -> str:
    """The most telling line of a failed flowgraph's output: the exception line of the last Python
    traceback if there is one, else the last non-empty line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    if not lines:
        return ""
    if any(line.startswith("Traceback (most recent call last)") for line in lines):
        for line in reversed(lines):
            if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|NotFound|Warning)\b.*", line) \
                    or re.match(r"^[A-Za-z_][\w.]*: ", line):
                return line
    return lines[-1]


# --------------------------------------------------------------------------------------------
# Registry: parameters read from the .grc files
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FlowgraphParam:
    """One GRC parameter block: becomes the ``--name-with-dashes VALUE`` option of the script.

    ``type`` is GRC's (``eng_float``, ``intx``, ``long``, ``str``, ``complex``); ``default`` is the
    parameter's value expression in the ``.grc`` file.
    """

    name: str
    type: str
    default: str
    label: str

    @property
    def option(self) -> str:
        """The generated script's command-line switch, e.g. ``--snr-db``."""
        return "--" + self.name.replace("_", "-")

    def format_value(self, value: Any) -> str:
        """``value`` as the command-line string the generated script parses; raises
        :class:`FlowgraphParamError` naming the parameter when it is not of the right type."""
        try:
            if self.type == "eng_float":
                if isinstance(value, bool):
                    raise ValueError
                number = value if isinstance(value, (int, float)) else parse_eng_float(str(value))
                if not math.isfinite(float(number)):
                    raise ValueError
                return repr(float(number))
            if self.type in ("intx", "long"):
                if isinstance(value, bool):
                    raise ValueError
                if isinstance(value, float):
                    if not value.is_integer():
                        raise ValueError
                    value = int(value)
                return str(value if isinstance(value, int) else int(str(value), 0))
            if self.type == "complex":
                return repr(complex(value) if not isinstance(value, str) else complex(value.replace(" ", "")))
        except (TypeError, ValueError):
            kind = {"eng_float": "a number", "intx": "an integer", "long": "an integer",
                    "complex": "a complex number"}[self.type]
            raise FlowgraphParamError(f"{self.name}: expected {kind}, got {value!r}") from None
        if isinstance(value, (list, tuple)):
            return ",".join(str(v) for v in value)
        return str(value)


_ENG_SUFFIXES = {"y": -24, "z": -21, "a": -18, "f": -15, "p": -12, "n": -9, "u": -6, "m": -3,
                 "k": 3, "K": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18, "Z": 21, "Y": 24}


def parse_eng_float(text: str) -> float:
    """Parse a float as GNU Radio's ``eng_float`` does: ``2.4e9``, ``2.4G``, ``100k``, ``-3``."""
    text = text.strip()
    if text and text[-1] in _ENG_SUFFIXES:
        return float(text[:-1]) * 10.0 ** _ENG_SUFFIXES[text[-1]]
    return float(text)


@dataclasses.dataclass(frozen=True)
class FlowgraphSpec:
    """A flowgraph in the registry: its files, title, parameters and ZeroMQ endpoints.

    Attributes:
        name: the ``.grc`` options block id, also the generated script's file name.
        grc: path of the ``.grc`` file; script: path of the Python generated from it.
        params: parameter name -> :class:`FlowgraphParam`, in the order of the ``.grc`` file.
        binds: parameters holding endpoints the flowgraph binds (its ``push_sink`` addresses).
        connects: parameters holding endpoints it connects to (its ``pull_source`` addresses).
        ready_marker: whether it prints :data:`READY_MARKER` once started.
    """

    name: str
    grc: Path
    script: Path
    title: str
    description: str
    params: dict[str, FlowgraphParam]
    binds: tuple[str, ...]
    connects: tuple[str, ...]
    ready_marker: bool

    def resolve_param(self, key: str) -> FlowgraphParam:
        """The parameter called ``key`` (``snr_db``, ``snr-db`` or ``--snr-db``); raises
        :class:`FlowgraphParamError` naming it and listing the known ones."""
        name = key.lstrip("-").replace("-", "_")
        try:
            return self.params[name]
        except KeyError:
            known = ", ".join(self.params) or "(none)"
            raise FlowgraphParamError(
                f"flowgraph {self.name} has no parameter {key!r} (its parameters: {known})") from None

    def command_args(self, params: Mapping[str, Any] | None = None) -> list[str]:
        """``["--option=value", ...]`` for ``params`` (validated; unset ones keep their defaults)."""
        args: list[str] = []
        seen: dict[str, str] = {}
        for key, value in (params or {}).items():
            param = self.resolve_param(key)
            if param.name in seen:
                raise FlowgraphParamError(f"flowgraph {self.name}: parameter {param.name} given twice "
                                          f"(as {seen[param.name]!r} and {key!r})")
            seen[param.name] = key
            # --name=value: a value starting with "-" is never taken for an option
            args.append(f"{param.option}={param.format_value(value)}")
        return args


def load_spec(grc: str | Path) -> FlowgraphSpec:
    """Read a ``.grc`` file (GRC 3.10 YAML) into a :class:`FlowgraphSpec`."""
    grc = Path(grc)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    data = yaml.load(grc.read_text(encoding="utf-8"), Loader=loader)
    if not isinstance(data, dict) or "options" not in data:
        raise FlowgraphError(f"{grc} is not a GRC 3.10 YAML flowgraph (no options block)")
    options = data["options"].get("parameters", {})
    name = str(options.get("id") or grc.stem)
    blocks = [b for b in data.get("blocks", []) if b.get("states", {}).get("state", "enabled") != "disabled"]
    params: dict[str, FlowgraphParam] = {}
    binds: list[str] = []
    connects: list[str] = []
    ready = False
    for block in blocks:
        p = block.get("parameters", {}) or {}
        if block.get("id") == "parameter" and str(p.get("type", "")) in _OPTION_TYPES:
            params[block["name"]] = FlowgraphParam(block["name"], str(p["type"]), str(p.get("value", "")),
                                                   str(p.get("label") or block["name"]))
        elif block.get("id") in ("zeromq_push_sink", "zeromq_pub_sink", "zeromq_rep_sink"):
            binds.append(str(p.get("address", "")))
        elif block.get("id") in ("zeromq_pull_source", "zeromq_sub_source", "zeromq_req_source"):
            connects.append(str(p.get("address", "")))
        elif block.get("id") == "snippet" and READY_MARKER in str(p.get("code", "")) \
                and p.get("section") == "main_after_start":
            ready = True
    return FlowgraphSpec(
        name=name, grc=grc, script=grc.with_name(name + ".py"),
        title=str(options.get("title") or name), description=str(options.get("description") or ""),
        params=params,
        binds=tuple(a for a in binds if a in params), connects=tuple(a for a in connects if a in params),
        ready_marker=ready,
    )


@functools.lru_cache(maxsize=4)
def _load_registry(directory: str) -> dict[str, FlowgraphSpec]:
    specs = {}
    for grc in sorted(Path(directory).glob("*.grc")):
        spec = load_spec(grc)
        specs[spec.name] = spec
    return specs


class _Registry(Mapping):
    """Name -> :class:`FlowgraphSpec` for every ``.grc`` in :func:`flowgraph_dir` (read on first use)."""

    def _specs(self) -> dict[str, FlowgraphSpec]:
        return _load_registry(str(flowgraph_dir()))

    def __getitem__(self, name: str) -> FlowgraphSpec:
        specs = self._specs()
        try:
            return specs[name]
        except KeyError:
            raise UnknownFlowgraph(f"no flowgraph named {name!r} in {flowgraph_dir()} "
                                   f"(known: {', '.join(specs) or 'none'})") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs())

    def __len__(self) -> int:
        return len(self._specs())

    def __repr__(self) -> str:
        return f"FLOWGRAPHS({', '.join(self)})"


#: Every flowgraph: name -> :class:`FlowgraphSpec` (``sim_channel``, ``pluto_tx``, ``pluto_rx``,
#: ``usrp_tx``, ``usrp_rx``).
FLOWGRAPHS: Mapping[str, FlowgraphSpec] = _Registry()


# --------------------------------------------------------------------------------------------
# Compiling .grc files (grcc)
# --------------------------------------------------------------------------------------------

_GRCC_MODULE = "import sys; from gnuradio.grc.compiler import main; sys.argv[0] = 'grcc'; sys.exit(main())"


def grcc_command(python: str | None = None) -> list[str]:
    """Command that runs ``grcc`` under ``python`` (default: the GNU Radio Python): the ``grcc``
    script beside that interpreter or on ``PATH``, else GRC's compiler module (what ``grcc`` runs)."""
    python = python or require_gr_python()
    for candidate in (Path(python).parent / "grcc", shutil.which("grcc")):
        if candidate and Path(candidate).is_file():
            return [python, str(candidate)]
    return [python, "-c", _GRCC_MODULE]


def compile_grc(grc: str | Path, out_dir: str | Path, *, python: str | None = None,
                timeout_s: float = 120.0) -> Path:
    """Compile ``grc`` with ``grcc`` into ``out_dir``; returns the generated script's path.

    Raises :class:`FlowgraphError` with grcc's output when it fails.
    """
    grc = Path(grc)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = grcc_command(python) + ["-o", str(out_dir), str(grc)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    script = out_dir / (load_spec(grc).name + ".py")
    if proc.returncode != 0 or not script.is_file():
        raise FlowgraphError(f"grcc failed on {grc} (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return script


def generated_source_lines(text: str) -> list[str]:
    """Lines of a generated script that must match its ``.grc`` (drops the GNU Radio version line
    of the header, the only line that differs between GNU Radio 3.10.x releases for our graphs)."""
    return [line for line in text.splitlines() if not line.startswith("# GNU Radio version:")]


# --------------------------------------------------------------------------------------------
# Launcher
# --------------------------------------------------------------------------------------------

class Flowgraph(ChildProcess):
    """Runs one registered flowgraph as a :class:`~mtsc_sdr.process.ChildProcess` under a Python
    that has GNU Radio (stdout and stderr merged into its output tail; ready at :data:`READY_MARKER`).

    Args:
        name: a key of :data:`FLOWGRAPHS`.
        params: parameter values, e.g. ``{"snr_db": 20, "seed": 1}`` (``snr-db`` works too);
            unknown names and ill-typed values raise :class:`FlowgraphParamError`.
        python: interpreter to use (default: :func:`~mtsc_sdr.radio.grpython.require_gr_python`,
            which raises :class:`~mtsc_sdr.radio.grpython.GnuRadioNotFound` with install advice).
        echo: a text stream to copy the flowgraph's output to, line by line (None: keep it only
            for failure reports).
        startup_timeout_s: how long :meth:`start` waits for the flowgraph to report it is running.
        stop_timeout_s: how long :meth:`stop` waits after SIGINT and again after SIGTERM.
        insecure: let it bind endpoints beyond loopback (gr-zeromq has no CURVE: in clear);
            without it such an endpoint raises :class:`~mtsc_sdr.link.NonLoopbackBindError`.
    """

    error = FlowgraphFailed
    error_tail_lines = 40

    def __init__(self, name: str, params: Mapping[str, Any] | None = None, *, python: str | None = None,
                 echo: IO[str] | None = None, startup_timeout_s: float = DEFAULT_STARTUP_TIMEOUT_S,
                 stop_timeout_s: float = DEFAULT_STOP_TIMEOUT_S, insecure: bool = False) -> None:
        self.spec = FLOWGRAPHS[name]
        self.params = dict(params or {})
        self._args = self.spec.command_args(self.params)  # validate before anything starts
        given = {self.spec.resolve_param(k).name: v for k, v in self.params.items()}
        for bound in self.spec.binds:                      # gr-zeromq sinks: no CURVE, loopback or insecure
            check_bind_endpoint(str(given.get(bound, self.spec.params[bound].default)), insecure=insecure,
                                curve_possible=False)
        super().__init__(self.spec.name, stdout="merge", cwd=str(self.spec.script.parent),
                         ready_marker=READY_MARKER if self.spec.ready_marker else None,
                         startup_timeout_s=startup_timeout_s, grace_s=DEFAULT_GRACE_S,
                         stop_timeout_s=stop_timeout_s, on_line=self._on_line)
        self.python = python
        self.echo = echo
        self._xrun_letters = [0, 0]     # (overflows, underflows) from event letters (count_xruns)
        self._xrun_reports = [0, 0]     # ... from gr-uhd's interval counts

    @property
    def program(self) -> str:
        return self.python or "python"

    @property
    def xruns(self) -> dict[str, int]:
        """Receive ``overflows`` and transmit ``underflows`` the radio blocks reported so far (the
        larger of the letter count and gr-uhd's interval counts, which report the same events)."""
        return {"overflows": max(self._xrun_letters[0], self._xrun_reports[0]),
                "underflows": max(self._xrun_letters[1], self._xrun_reports[1])}

    def start(self) -> Flowgraph:
        """Launch the flowgraph and wait until it runs.

        Raises:
            GnuRadioNotFound: no Python with GNU Radio (and none given).
            FlowgraphFailed: it exited during startup, or did not report running within
                ``startup_timeout_s`` (it is stopped then); the error carries its output tail.
        """
        if self._proc is not None:
            raise FlowgraphError(f"flowgraph {self.name} was already started")
        if not self.spec.script.is_file():
            raise FlowgraphError(f"{self.spec.script} is missing: generate it with "
                                 f"`grcc -o {self.spec.script.parent} {self.spec.grc}`")
        self.python = self.python or require_gr_python()
        if not shutil.which(self.python):
            raise FlowgraphFailed(self.name, None, "", what=f"could not start {self.python}: no such executable",
                                  argv=[self.python])
        # stdbuf: C stdio unbuffered too, so that gr-iio's and UHD's event letters arrive as they happen
        self.argv = [*(["stdbuf", "-o0", "-e0"] if shutil.which("stdbuf") else []),
                     self.python, "-u", str(self.spec.script), *self._args]
        super().start()
        log.info("flowgraph %s running (pid %d)", self.name, self.pid)
        return self

    def _on_line(self, line: str) -> None:
        letters, reports = count_xruns(line)
        for k in (0, 1):
            self._xrun_letters[k] += letters[k]
            self._xrun_reports[k] += reports[k]
        if self.echo is not None:
            try:
                self.echo.write(f"[{self.name}] {line}")
                self.echo.flush()
            except (OSError, ValueError):
                pass


def describe(spec: FlowgraphSpec) -> str:
    """Human-readable summary of a flowgraph and its parameters (for ``--list``)."""
    lines = [f"{spec.name}: {spec.title}"]
    if spec.description:
        lines.append(f"    {spec.description}")
    width = max((len(p.option) for p in spec.params.values()), default=0)
    for p in spec.params.values():
        role = " [binds]" if p.name in spec.binds else " [connects]" if p.name in spec.connects else ""
        lines.append(f"    {p.option:<{width}}  {p.label} (default {p.default!r}){role}")
    return "\n".join(lines)


def split_param_args(tokens: list[str]) -> dict[str, str]:
    """``["--snr-db", "20", "--seed=3"]`` -> ``{"snr-db": "20", "seed": "3"}``.

    Raises :class:`FlowgraphParamError` for a token that is not ``--name`` or lacks its value.
    """
    out: dict[str, str] = {}
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if not token.startswith("--") or len(token) == 2:
            raise FlowgraphParamError(f"expected --name VALUE, got {token!r}")
        if "=" in token:
            key, value = token[2:].split("=", 1)
            i += 1
        else:
            if i + 1 >= len(tokens):
                raise FlowgraphParamError(f"{token} needs a value")
            key, value = token[2:], tokens[i + 1]
            i += 2
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", key):
            raise FlowgraphParamError(f"not a parameter name: {token!r}")
        if key in out:
            raise FlowgraphParamError(f"--{key} given twice")
        out[key] = value
    return out


__all__ = [
    "DIR_ENV_VAR", "FLOWGRAPHS", "READY_MARKER", "Flowgraph", "FlowgraphError", "FlowgraphFailed",
    "FlowgraphParam", "FlowgraphParamError", "FlowgraphSpec", "UnknownFlowgraph", "compile_grc",
    "describe", "flowgraph_dir", "last_error_line", "generated_source_lines", "grcc_command", "load_spec",
    "parse_eng_float", "split_param_args",
]
