"""``mtsc-sdr run CONFIG``: base station, channel and clients as separate processes, and a report.

Processes (each its own OS process; IQ senders bind, receivers connect)::

    client k --IQ--> link k (software channel | GNU Radio sim | Pluto / USRP TX+RX) --IQ--> bs
    client k <------------------- control link (semantics, one message per item) -------- bs

The base station runs for the whole run. For each SNR point of the sweep, every client gets a
fresh link at that SNR (of its own ``channel`` kind, else the run's: one run can compare the
software channel and the GNU Radio flowgraph side by side) and a fresh client process with its own
session id, all clients at once
(the base station serves them side by side, keyed by session); the point ends when every client
has exited. With ``concurrent_points: true`` every point's clients and links start together
instead (one wave). With ``client_per_point: false`` every point's link starts at once, and each
configured client is one process that sends its items at every point in turn, each point over
its own link with its own session: the model loads once per client instead of once per point,
and two cores are not shared by a process per point (what the demo runs). Over radios the air sets
the SNR: the sweep must then have one point, which only labels the results.

Outputs in ``out`` (default ``results/run/<name>``):

* ``report.json``: ``{"meta", "rows", "points", "processes", "failures"}`` (``points``: session,
  SNR, client and precision of each client process); rows (DESIGN.md schema) per task and
  SNR: task metrics (VQA accuracy and BLEU, CIDEr-D and BLEU, PSNR and SSIM), ``snr_est_db``,
  ``error_items``; per stage ``latency_ms_p50/_p90/_p99`` (``stage`` key; the first item of each
  client is its warm-up and resent items are not counted); ``items_per_s`` per point; ``peak_rss_mb`` and
  ``weight_bytes`` per process (``process`` key); the base station's ``samples_dropped`` and
  ``chunks_dropped`` (IQ it could not keep up with, :mod:`.bs`); over a GNU Radio link (sim or radio), the receive
  ``overflows`` and transmit ``underflows`` its radio blocks reported, per point (also in ``points``);
* ``items.jsonl``: every item's record (the clients' JSON lines, with ``channel`` added);
* ``metrics_vs_snr.png`` and ``latency.png`` (:mod:`.plots`);
* ``work/``: each client process's JSON lines (``items_<session>.jsonl``) and summaries
  (``client_<session>.json``, a JSON line per point; named after its first point's session),
  the base station's counters (``bs.json``) and the first received payloads of each session
  (``constellation.npz``, key ``s<session>``);
* ``recordings/`` (with ``capture: true``): the base station's input, one SigMF recording per
  link slot (``bs-rx<i>.sigmf-meta`` + ``.sigmf-data``, :mod:`mtsc_sdr.capture`), with the frames
  it received and the sessions it served; listed in the report's ``meta.recordings``;
  ``mtsc-sdr replay`` decodes one again.

The exit status is 0 only when every process behaved and every item has a result: 1 when an item
ended in an error or a process failed (the message names it; a dead channel or flowgraph stops the
run at once), 4 when the base station refused a client's checkpoint, 130 on Ctrl-C (everything is
torn down first).
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import numpy as np

from mtsc_sdr import tasks as task_table
from mtsc_sdr.config import ConfigError, check, load_yaml, to_dict
from mtsc_sdr.link import free_tcp_endpoint
from mtsc_sdr.metrics import METRIC_UNITS, standard_error
from mtsc_sdr.model.checkpoint import shipped_model_dir
from mtsc_sdr.options import add_checkpoint, add_json
from mtsc_sdr.process import ChildProcess, ProcessFailed, stop_all
from mtsc_sdr.radio.calibration import gains_for_snr, use_record
from mtsc_sdr.radio.flowgraph import Flowgraph
from mtsc_sdr.radio.links import RADIO_KINDS, ChannelKind, LinkConfig, start_link
from mtsc_sdr.report import percentiles, row, run_meta
from mtsc_sdr.runtime import plots, protocol
from mtsc_sdr.runtime.bs import bs_argv
from mtsc_sdr.runtime.outputs import outputs_for



@dataclass
class ClientPlan:
    """What a client tells the base station about itself so that it chooses the client's compressed
    model (:mod:`mtsc_sdr.compress.planner`): its device profile and power mode, and its budgets
    (encode latency at the ``percentile``, ms; peak memory, MiB; the largest accuracy loss per task
    against the uncompressed client, in the task's units)."""

    profile: str
    latency_ms: Optional[float] = None
    percentile: Literal["p50", "p90"] = "p90"
    memory_mb: Optional[float] = None
    max_loss: dict[str, float] = field(default_factory=dict)
    power_mode: Optional[str] = None


@dataclass
class ClientSpec:
    """A client: one process per SNR point (or one for every point, with the run's
    ``client_per_point: false``). Items: ``n_per_task`` of each task from ``split``, the same at
    every point, up to ``window`` of them in flight; or the user's own file when ``image``,
    ``audio`` or ``video`` is set (one item, as ``mtsc-sdr client --image F [--question Q]
    [--task T]`` takes it; ``tasks``, ``split``, ``n_per_task`` and ``seed`` are then unused)."""

    tasks: list[str] = field(default_factory=lambda: list(task_table.names()))
    n_per_task: int = 10
    split: Literal["train", "val", "test"] = "val"
    seed: int = 0
    precision: Literal["int8", "fp32"] = "int8"
    runtime: Literal["torch", "onnxruntime", "tensorrt"] = "torch"
    artifact: Optional[str] = None            # a compressed client (`mtsc-sdr compress`); replaces precision
    device: Optional[str] = None              # the device profile this client stands for (reported)
    plan: Optional[ClientPlan] = None         # the base station chooses artifact and runtime (see plan_clients)
    csi: Literal["configured", "feedback"] = "configured"
    window: int = 4
    budget: Optional[int] = None
    channel: Optional[ChannelKind] = None     # None: the run's channel
    image: Optional[str] = None               # the user's own file (at most one of image, audio, video)
    audio: Optional[str] = None               # a WAV file
    video: Optional[str] = None               # a folder of frames, or a multi-frame GIF / WebP / PNG
    question: Optional[str] = None            # about image (VQA)
    task: Optional[str] = None                # for the file (None: from its modality and question)
    images_dir: Optional[str] = None          # folder the client writes reconstructed images (PNG) into
    kb: Optional[str] = None                  # the client's local knowledge base (`mtsc-sdr client --kb`; RAG models)

    def validate(self, path: str = "") -> None:
        names = task_table.names()
        bad = [t for t in self.tasks if t not in names]
        check(not bad and bool(self.tasks), f"{path}.tasks", f"must be a non-empty list of {list(names)}, got {self.tasks}")
        check(self.n_per_task >= 1, f"{path}.n_per_task", f"must be >= 1, got {self.n_per_task}")
        check(self.window >= 1, f"{path}.window", f"must be >= 1, got {self.window}")
        check(len(self.files()) <= 1, f"{path}.image", "give at most one of image, audio, video")
        check(self.task is None or self.task in names, f"{path}.task", f"must be one of {list(names)}, got {self.task}")
        check(bool(self.files()) or (self.question is None and self.task is None), f"{path}.question",
              "question and task go with a file (image, audio or video)")
        check(self.runtime == "torch" or bool(self.artifact), f"{path}.runtime",
              f"{self.runtime} runs a compressed client's graphs: set artifact (`mtsc-sdr compress export`)")
        check(self.artifact is None or (Path(self.artifact) / "manifest.json").is_file(), f"{path}.artifact",
              f"no manifest.json in {self.artifact!r} (make an artifact with `mtsc-sdr compress export`)")
        check_kb(self.kb, f"{path}.kb")

    def files(self) -> dict[str, str]:
        """The user's file as ``{"image" | "audio" | "video": path}`` ({} for split items)."""
        return {k: v for k, v in (("image", self.image), ("audio", self.audio), ("video", self.video)) if v}

    def label(self) -> str:
        """What this client's records call its precision: the artifact's name, else fp32 / int8."""
        if self.artifact is None:
            return self.precision
        from mtsc_sdr.compress.artifact import read

        return read(self.artifact, verify=False).name

    def item_options(self) -> list[str]:
        """The ``mtsc-sdr client`` options that choose this client's items."""
        if self.files():
            chosen = {**self.files(), "question": self.question, "task": self.task}
            return [arg for k, v in chosen.items() if v is not None for arg in (f"--{k}", v)]
        return ["--split", self.split, "--tasks", ",".join(self.tasks), "--n-per-task", str(self.n_per_task),
                "--seed", str(self.seed)]


def check_kb(kb: Optional[str], path: str) -> None:
    """A knowledge base field: None, or a directory holding a store (ConfigError naming ``path``)."""
    if kb is not None:
        from mtsc_sdr.rag.kb import STORE_FILE

        check((Path(kb) / STORE_FILE).is_file(), path,
              f"no knowledge base in {kb!r} (no {STORE_FILE}; make one with `mtsc-sdr kb add`)")


@dataclass
class RunConfig(LinkConfig):
    """A run; YAML files in ``configs/``. Units in the names; SNR is Es/N0 per payload symbol.

    The link fields (:class:`~mtsc_sdr.radio.links.LinkConfig`: ``channel``, impairments or
    ``profile``, radio settings) are the run's links' (clients may pick their own channel), except
    that ``snr_db`` is the sweep and each link's seed is derived from ``seed`` (:meth:`link_config`).
    """

    snr_db: list[float] = field(default_factory=lambda: [0.0, 10.0, 20.0])   # the sweep, one link per point
    name: str = "run"
    checkpoint: Optional[str] = None          # None: the default model's cache directory
    calibration: Optional[str] = None         # radios: "auto" (search calibration/), a record's path, or None
    calibration_max_age_days: float = 30.0    # an older record is used with a warning
    gains_from_calibration: bool = False      # radios: TX / RX gains from the record's table for snr_db
    clients: list[ClientSpec] = field(default_factory=lambda: [ClientSpec()])
    flush_samples: int = 2048                 # zeros after each burst (radios: >= the TX buffer)
    item_timeout_s: float = 5.0
    retries: int = 3
    concurrent_points: bool = False           # all SNR points at once (one link + client each)
    client_per_point: bool = True             # false: one client process per client, its points in turn
    timeout_s: float = 1800.0                 # whole run
    threads: int = 1                          # torch threads per process
    capture: bool = False                     # record the base station's input (out/recordings/)
    kb: Optional[str] = None                  # the base station's global knowledge base (`mtsc-sdr bs --kb`; RAG models)
    candidates: Optional[str] = None          # planned clients: measured artifacts (default results/compress/<model>)
    shared_weight_bytes: Optional[float] = None   # planned clients: the weights all of them may download together
    out: Optional[str] = None                 # None: results/run/<name>

    def validate(self, path: str = "") -> None:
        p = (lambda n: f"{path}.{n}" if path else n)  # noqa: E731
        check(bool(self.snr_db) and all(math.isfinite(s) for s in self.snr_db), p("snr_db"),
              f"must be a non-empty list of finite numbers, got {self.snr_db}")
        check(bool(self.clients), p("clients"), "needs at least one client")
        check(len(self.clients) <= 64, p("clients"), f"at most 64 clients, got {len(self.clients)}")
        self.validate_settings(path)
        radios = [c for c in self.clients if self.link_of(c) in RADIO_KINDS]
        if radios:
            check(len(self.snr_db) == 1, p("snr_db"), f"over {self.link_of(radios[0])} the air sets the SNR: give "
                  f"one value (a label and the clients' CSI), got {self.snr_db}")
            check(len(radios) == 1, p("clients"), f"one radio link carries one client, got {len(radios)} on radios")
        check(self.item_timeout_s > 0, p("item_timeout_s"), "must be > 0")
        check(self.retries >= 0, p("retries"), "must be >= 0")
        check(self.timeout_s > 0, p("timeout_s"), "must be > 0")
        check(self.threads >= 1, p("threads"), "must be >= 1")
        check(self.client_per_point or not self.concurrent_points, p("concurrent_points"),
              "with client_per_point false every link starts at once and each client process sends its "
              "points in turn: set concurrent_points false")
        check(self.calibration in (None, "auto") or Path(self.calibration).suffix in (".yaml", ".yml"),
              p("calibration"), f"must be 'auto' or a record's .yaml path, got {self.calibration!r}")
        check(self.calibration_max_age_days > 0, p("calibration_max_age_days"), "must be > 0")
        check(not self.gains_from_calibration or self.calibration is not None, p("gains_from_calibration"),
              "needs a calibration record: set calibration (auto or a path)")
        check_kb(self.kb, p("kb"))

    def out_dir(self) -> Path:
        return Path(self.out) if self.out else Path("results/run") / self.name

    def link_of(self, spec: ClientSpec) -> str:
        """The link kind a client uses: its own ``channel``, else the run's."""
        return spec.channel or self.channel

    def link_config(self, channel: str, snr_db: float, session: int) -> LinkConfig:
        """The :class:`~mtsc_sdr.radio.links.LinkConfig` that starts ``session``'s link."""
        return self.link(channel=channel, snr_db=snr_db, seed=self.seed + 1000 * session)


def load_config(path: str) -> RunConfig:
    return load_yaml(RunConfig, path)


def calibration_meta(cfg: RunConfig) -> Optional[dict]:
    """Runs over radios with ``calibration`` set: the record that matches the radios in use
    (:func:`mtsc_sdr.radio.calibration.use_record`) as ``{"id", "path", "warnings"}`` for the
    report's meta; the warnings (old, other frequency, none found) also go to stderr. With
    ``gains_from_calibration`` also ``tx_gain_db`` / ``rx_gain_db``: the gains the record's table
    gives for ``snr_db`` (:func:`~mtsc_sdr.radio.calibration.gains_for_snr`), which the radio links
    then use; an SNR outside the measured range is a configuration error naming ``snr_db``."""
    kinds = sorted({cfg.link_of(c) for c in cfg.clients} & set(RADIO_KINDS))
    if cfg.calibration is None or not kinds:
        return None

    match = use_record(cfg.calibration, kinds[0], cfg.radio_args or None, cfg.lo_freq_hz,
                       max_age_days=cfg.calibration_max_age_days)
    for w in match.warnings:
        print(f"run {cfg.name}: calibration: {w}", file=sys.stderr, flush=True)
    meta = {"id": match.id, "path": None if match.record is None else str(match.record.path),
            "warnings": match.warnings}
    if cfg.gains_from_calibration:
        check(match.record is not None, "gains_from_calibration", "no calibration record matches: "
              + "; ".join(match.warnings))
        try:   # over radios snr_db has one value (validate): the SNR asked of the air
            meta["tx_gain_db"], meta["rx_gain_db"] = gains_for_snr(match.record, cfg.snr_db[0])
        except ValueError as exc:
            raise ConfigError("snr_db", str(exc)) from None
    return meta


# -- processes ----------------------------------------------------------------------------------------


class RunFailed(RuntimeError):
    """A process of the run failed; ``status`` is the exit status the run should end with."""

    def __init__(self, message: str, status: int = 1):
        super().__init__(message)
        self.status = status


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "mtsc_sdr.cli", *args]


def _client_argv(cfg: RunConfig, spec: ClientSpec, checkpoint: str, control: str,
                 points: list[tuple[str, int, float]], work: Path) -> list[str]:
    """A client process's command line; ``points``: (TX endpoint, session, SNR dB) of each point
    it sends, in turn. Its files in ``work`` are named after the first point's session."""
    first = points[0][1]
    argv = _cli("client", "--checkpoint", checkpoint, "--precision", spec.precision,
                "--tx", *[tx for tx, _, _ in points], "--control", control,
                "--session", *[str(session) for _, session, _ in points],
                "--snr-db", *[repr(float(snr)) for _, _, snr in points], "--csi", spec.csi,
                *spec.item_options(), "--window", str(spec.window), "--item-timeout-s", repr(cfg.item_timeout_s),
                "--retries", str(cfg.retries), "--threads", str(cfg.threads), "--flush-samples", str(cfg.flush_samples),
                "--out", str(work / f"items_{first}.jsonl"), "--summary", str(work / f"client_{first}.json"))
    if spec.budget:
        argv += ["--budget", str(spec.budget)]
    if spec.artifact:
        argv += ["--artifact", spec.artifact]
    if spec.runtime != "torch":
        argv += ["--runtime", spec.runtime]
    if spec.images_dir:
        argv += ["--images", spec.images_dir]
    if spec.kb:
        argv += ["--kb", spec.kb]
    return argv


def _capture_info(cfg: RunConfig, folder: Path, calibration_id: str = "") -> dict[str, Any]:
    """``--capture-info`` of the base station, which records one recording per link slot in
    ``folder`` (old ones removed): the radio settings and calibration record where radios carry
    the links, and the run's configuration."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("bs-rx*.sigmf-*"):
        old.unlink()
    kinds = sorted({cfg.link_of(c) for c in cfg.clients})
    radios = [k for k in kinds if k in RADIO_KINDS]
    info: dict[str, Any] = {"description": f"mtsc-sdr run {cfg.name}: base station input over {', '.join(kinds)}",
                            "calibration_id": calibration_id, "fields": {"mtsc:run": to_dict(cfg)}}
    if radios:
        info.update(frequency_hz=cfg.lo_freq_hz, hw=f"{radios[0]} {cfg.radio_args}".strip(),
                    rx_gain_db=cfg.rx_gain_db, tx_gain_db=cfg.tx_gain_db)
    else:
        info["hw"] = " + ".join(f"{k} channel" for k in kinds)
    return info


def _client_name(points: list[tuple[str, int, float]], link: str) -> str:
    """``client 3 at 5 dB over software (mtsc-sdr client)``; a process sending several points:
    ``client (sessions 1-6) at -5, 0, 5, 10, 15, 20 dB in turn over software (mtsc-sdr client)``."""
    sessions, snrs = [s for _, s, _ in points], [x for _, _, x in points]
    if len(points) == 1:
        return f"client {sessions[0]} at {snrs[0]:g} dB over {link} (mtsc-sdr client)"
    return (f"client (sessions {sessions[0]}-{sessions[-1]}) at {', '.join(f'{x:g}' for x in snrs)} dB in turn "
            f"over {link} (mtsc-sdr client)")


def _wait_clients(clients: list[ChildProcess], watched: list, deadline: float) -> list[tuple[str, int]]:
    """Wait until every client exits; fail fast if a watched process (base station, links) dies.
    Returns (name, exit status) of each client."""
    while any(c.alive() for c in clients):
        for proc in watched:
            proc.check()                      # raises ProcessFailed naming it
        if time.monotonic() > deadline:
            raise RunFailed("the run did not finish within timeout_s; still running: "
                            + ", ".join(c.name for c in clients if c.alive()))
        time.sleep(0.1)
    return [(c.name, c.returncode) for c in clients]


def _has_lines(path: Path) -> bool:
    """Whether the file exists and holds a non-blank line."""
    return path.is_file() and bool(path.read_text().strip())


def _count_xruns(flowgraphs: list[tuple[dict, list]]) -> None:
    """Add the overflows / underflows the radio (or sim) flowgraphs of each point reported to it."""
    for point, fgs in flowgraphs:
        if fgs:
            point["overflows"] = sum(fg.xruns["overflows"] for fg in fgs)
            point["underflows"] = sum(fg.xruns["underflows"] for fg in fgs)


def plan_clients(cfg: RunConfig, checkpoint: str) -> Optional[dict[str, Any]]:
    """The base station's choice of a compressed client for every client with a ``plan``: one exact
    optimization over the measured artifacts in ``cfg.candidates`` for all of them at once
    (:func:`mtsc_sdr.compress.planner.plan_many`, with ``shared_weight_bytes`` as their shared
    budget). Each planned client gets the chosen artifact, its runtime and its device profile
    (in place). Returns the plan (JSON) for the report; None when no client asks for one.
    ValueError naming the client and the closest candidate when a client's request cannot be met."""
    planned = [(k, spec) for k, spec in enumerate(cfg.clients) if spec.plan is not None]
    if not planned:
        return None
    from mtsc_sdr.compress.artifact import load_candidates
    from mtsc_sdr.compress.planner import Client, Constraints, plan_many

    cands = load_candidates([cfg.candidates or str(Path("results/compress") / Path(checkpoint).name)])
    clients = [Client(spec.plan.profile, Constraints(latency_ms=spec.plan.latency_ms, percentile=spec.plan.percentile,
                                                     memory_mb=spec.plan.memory_mb, max_loss=dict(spec.plan.max_loss)),
                      spec.plan.power_mode, name=f"clients[{k}]") for k, spec in planned]
    shared = {"weight_bytes": cfg.shared_weight_bytes} if cfg.shared_weight_bytes else None
    result = plan_many(clients, cands, shared)
    if not result.feasible:
        raise ValueError(f"the base station cannot plan every client: {result.reason}")
    by_name = {c["name"]: c for c in cands}
    for (k, spec), p in zip(planned, result.clients):
        chosen = by_name[p.chosen]
        spec.artifact, spec.runtime, spec.device = chosen["directory"], chosen["runtime"], spec.plan.profile
    return json.loads(result.to_json())


def execute(cfg: RunConfig, *, progress: bool = False) -> dict[str, Any]:
    """Run the processes of ``cfg``; returns the report (also written to ``cfg.out_dir()``).

    Raises :class:`RunFailed` (or :class:`ProcessFailed`, or a flowgraph's error) when a process
    fails before the end -- after stopping everything and writing the report, whose ``failures``
    start with that error and list every item that got no answer. Item error records alone are
    not raised: they are in the returned report's ``failures``.
    """
    checkpoint = cfg.checkpoint or str(shipped_model_dir())
    protocol.checkpoint_identity(checkpoint)             # a missing / broken checkpoint fails here, named
    calibration = calibration_meta(cfg)                  # a corrupt record named here fails here too
    plans = plan_clients(cfg, checkpoint)                # the compressed clients the base station chooses
    out = cfg.out_dir()
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    for old in work.glob("*"):
        old.unlink()
    # one job = one client's items over their own link at one SNR; a wave of jobs runs at once, one
    # client process per job (client_per_point) or per client, sending its jobs in turn
    jobs = [(snr, k, spec) for snr in cfg.snr_db for k, spec in enumerate(cfg.clients)]
    if not cfg.client_per_point:            # one wave; each client's sessions numbered in a row
        waves = [sorted(jobs, key=lambda j: j[1])]
    elif cfg.concurrent_points:
        waves = [jobs]
    else:
        waves = [jobs[i:i + len(cfg.clients)] for i in range(0, len(jobs), len(cfg.clients))]
    n_slots = max(len(w) for w in waves)
    control = free_tcp_endpoint()
    slots = [(free_tcp_endpoint(), free_tcp_endpoint()) for _ in range(n_slots)]   # (tx, rx) per link
    deadline = time.monotonic() + cfg.timeout_s
    capture = {"capture": out / "recordings" / "bs",
               "capture_info": _capture_info(cfg, out / "recordings", (calibration or {}).get("id") or "")
               } if cfg.capture else {}
    bs = ChildProcess("base station (mtsc-sdr bs)", bs_argv(
        checkpoint, control, [rx for _, rx in slots], cfg.sample_rate_hz, work / "bs.json", threads=cfg.threads,
        constellation=work / "constellation.npz", knowledge=cfg.kb, **capture)).start()
    failures: list[str] = []
    points = []
    session = 0
    error: BaseException | None = None
    try:
        for wave in waves:
            links, clients, flowgraphs = [], [], []
            try:
                groups: dict[int, tuple[ClientSpec, list]] = {}   # client process -> (spec, its points)
                for (snr, k, spec), (tx, rx) in zip(wave, slots):
                    session += 1
                    link = cfg.link_of(spec)
                    settings = cfg.link_config(link, snr, session)
                    if settings.is_radio and calibration and "tx_gain_db" in calibration:
                        settings.tx_gain_db, settings.rx_gain_db = calibration["tx_gain_db"], calibration["rx_gain_db"]
                    procs = start_link(settings, tx, rx)
                    links += procs
                    groups.setdefault(session if cfg.client_per_point else k, (spec, []))[1].append((tx, session, snr))
                    points.append({"session": session, "snr_db": snr, "client": k, "precision": spec.label(),
                                   "runtime": spec.runtime, "device": spec.device, "channel": link})
                    flowgraphs.append((points[-1], [p for p in procs if isinstance(p, Flowgraph)]))
                summaries = []              # each client process's summary file (named after its first session)
                for spec, mine in groups.values():
                    clients.append(ChildProcess(_client_name(mine, cfg.link_of(spec)),
                                                _client_argv(cfg, spec, checkpoint, control, mine, work)).start())
                    summaries.append(work / f"client_{mine[0][1]}.json")
                if progress:
                    snrs = sorted({j[0] for j in wave})
                    kinds = sorted({cfg.link_of(j[2]) for j in wave})
                    print(f"run {cfg.name}: {' + '.join(kinds)}, {len(clients)} client process(es) at "
                          f"{', '.join(f'{x:g}' for x in snrs)} dB"
                          + ("" if cfg.client_per_point or len(snrs) == 1 else " (each sends the points in turn)")
                          + f", {len(links)} link process(es)", file=sys.stderr, flush=True)
                statuses = _wait_clients(clients, [bs, *links], deadline)
                for (name, code), proc, summary in zip(statuses, clients, summaries):
                    if code == protocol.EXIT_REFUSED:
                        tail = proc.output_tail(5).rstrip("\n")
                        raise RunFailed(f"{name} was refused by the base station:\n{tail}",
                                        protocol.EXIT_REFUSED)
                    if code not in (0, 1) or (code == 1 and not _has_lines(summary)):
                        raise proc.failure()   # 1 without a summary: it died (a traceback), not item errors
                    if code == 1:
                        failures.append(f"{name}: some items ended in an error record")
            finally:
                # SIGINT to all at once (a client writes records for its unfinished items), then each waited for
                stop_all(list(reversed(clients + links)))
                _count_xruns(flowgraphs)
    except (Exception, KeyboardInterrupt) as exc:    # a process, flowgraph or radio failed; Ctrl-C
        error = exc
        failures.insert(0, str(exc) or "interrupted (Ctrl-C)")
    finally:
        bs.stop()
    report = build_report(cfg, checkpoint, work, points, failures)
    if calibration is not None:
        report["meta"]["calibration"] = calibration
    if plans is not None:
        report["meta"]["plans"] = plans
    if cfg.capture:
        report["meta"]["recordings"] = sorted(str(p) for p in (out / "recordings").glob("bs-rx*.sigmf-meta"))
    (out / "report.json").write_text(json.dumps(report, indent=1))
    with open(out / "items.jsonl", "w") as f:
        for rec in report.pop("_items"):
            f.write(json.dumps(rec) + "\n")
    plots.metrics_vs_snr(report["rows"], out / "metrics_vs_snr.png")
    plots.latency_breakdown(report["rows"], out / "latency.png")
    if error is not None:   # the report is written, with what each client had finished
        raise error
    return report


# -- report ---------------------------------------------------------------------------------------------


def read_items(work: Path) -> list[dict]:
    """Every client's JSON lines (a line that is not JSON is reported, never silently skipped)."""
    items = []
    for file in sorted(work.glob("items_*.jsonl")):
        for n, line in enumerate(file.read_text().splitlines(), 1):
            if line.strip():
                try:
                    items.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise RunFailed(f"{file}:{n}: not a JSON line ({exc})") from None
    return items


def task_metric_rows(records: list[dict], channel: str, system: str = "mtsc") -> list[dict]:
    """Metric rows per (task, SNR, precision) from item records (errors excluded, counted); the
    scores come from the task's output kind (:func:`mtsc_sdr.runtime.outputs.outputs_for`)."""
    rows = []
    keys = sorted({(r["task"], r["snr_db"], r["precision"]) for r in records},
                  key=lambda k: (task_table.names().index(k[0]), k[1], k[2]))
    for task, snr, precision in keys:
        extra = {"precision": precision}
        group = [r for r in records if r["task"] == task and r["snr_db"] == snr and r["precision"] == precision]
        ok = [r for r in group if "error" not in r]
        rows.append(row(system, task, channel, snr, "error_items", len(group) - len(ok), n=len(group), **extra))
        if not ok:
            continue
        for metric, (value, per_item) in outputs_for(task).record_scores(task, ok).items():
            more = {"std_error": standard_error(per_item)} if per_item is not None else {}
            rows.append(row(system, task, channel, snr, metric, float(value), unit=METRIC_UNITS.get(metric),
                            n=len(ok), **more, **extra))
        est = [r["snr_est_db"] for r in ok]
        rows.append(row(system, task, channel, snr, "snr_est_db", float(np.mean(est)), unit="dB", n=len(ok), **extra))
    return rows


def latency_rows(records: list[dict], channel: str) -> list[dict]:
    """``latency_ms_p50/_p90/_p99`` per precision and stage (and ``total``), all tasks and SNRs
    together, and the total per task; each session's first item (warm-up) and resent items are left
    out."""
    answered = [r for r in records if "latency_ms" in r]
    first: dict[int, int] = {}
    for r in answered:
        first[r["session"]] = min(first.get(r["session"], r["seq"]), r["seq"])
    rows = []
    for precision in sorted({r["precision"] for r in answered}):
        # items sent more than once are left out too: which copy was answered is unknown
        timed = [r for r in answered if r["precision"] == precision and r["seq"] != first[r["session"]]
                 and r["attempts"] == 1]
        groups = [("all", stage, timed) for stage in (*protocol.STAGES, "link_round_trip", "total")]
        groups += [(task, "total", [r for r in timed if r["task"] == task]) for task in task_table.names()]
        for task, stage, recs in groups:
            vals = [r["latency_ms"][stage] for r in recs if r["latency_ms"].get(stage) is not None]
            for name, value in percentiles(vals).items():
                rows.append(row("mtsc", task, channel, None, f"latency_ms_{name}", value, unit="ms", stage=stage,
                                n=len(vals), precision=precision))
    return rows


def build_report(cfg: RunConfig, checkpoint: str, work: Path, points: list[dict], failures: list[str]) -> dict:
    link = {p["session"]: p["channel"] for p in points}              # session -> its link kind
    items = [dict(r, channel=link.get(r["session"], cfg.channel)) for r in read_items(work)]
    rows = []
    for channel in sorted({r["channel"] for r in items}):
        mine = [r for r in items if r["channel"] == channel]
        rows += task_metric_rows(mine, channel) + latency_rows(mine, channel)
    processes = {}
    for file in sorted(work.glob("client_*.json")):
        # one summary line per point the process sent; memory rows per process, named after its first point
        lines = [json.loads(line) for line in file.read_text().splitlines() if line.strip()]
        if not lines:
            continue
        for s in lines:
            processes.setdefault(f"client {s['session']}", []).append(s)
        s, name = lines[-1], f"client {lines[0]['session']}"
        ch = link.get(s["session"], cfg.channel)
        rows.append(row("mtsc", "all", ch, None, "peak_rss_mb", s["peak_rss_mb"], unit="MiB",
                        process=name, precision=s["precision"]))
        rows.append(row("mtsc", "all", ch, None, "weight_bytes", s["weight_bytes"], unit="bytes",
                        process=name, precision=s["precision"]))
    if (work / "bs.json").is_file():
        s = json.loads((work / "bs.json").read_text())
        processes["base station"] = s
        if "peak_rss_mb" in s:
            rows.append(row("mtsc", "all", cfg.channel, None, "peak_rss_mb", s["peak_rss_mb"], unit="MiB",
                            process="base station"))
        for name, unit in (("samples_dropped", "samples"), ("chunks_dropped", "chunks")):   # its IQ queues overflowed
            if name in s.get("bs", {}):
                rows.append(row("mtsc", "all", cfg.channel, None, name, s["bs"][name], unit=unit, process="base station"))
    for summaries in processes.values():
        for s in summaries if isinstance(summaries, list) else []:
            if s.get("run_s"):
                rows.append(row("mtsc", "all", link.get(s["session"], cfg.channel), s["snr_db"], "items_per_s",
                                s.get("items_ok", 0) / s["run_s"], unit="items/s", n=s.get("items_ok", 0),
                                process=f"client {s['session']}", precision=s["precision"]))
    for pt in points:
        for name in ("overflows", "underflows"):
            if name in pt:
                rows.append(row("mtsc", "all", pt["channel"], pt["snr_db"], name, pt[name], unit="events",
                                session=pt["session"]))
    errors = [r for r in items if "error" in r]
    failures = failures + [f"{r['item_id']} ({r['task']}, {r['snr_db']:g} dB): {r['error']}" for r in errors]
    meta = run_meta({"run": to_dict(cfg), "checkpoint": checkpoint,
                     "checkpoint_identity": protocol.checkpoint_identity(checkpoint)}, {"run": cfg.seed})
    return {"meta": meta, "rows": rows, "points": points, "processes": processes, "failures": failures,
            "_items": items}


# -- command line ------------------------------------------------------------------------------------


def format_summary(report: dict) -> str:
    """Metric table (task x SNR) and the latency breakdown, as printed by ``run`` and ``demo``."""
    rows = report["rows"]
    main = {spec.name: spec.main_metric for spec in task_table.specs()}
    lines = []
    for ch, prec in sorted({(r["channel"], r["precision"]) for r in rows if r.get("precision")}):
        mine = [r for r in rows if r["channel"] == ch and r.get("precision") == prec and r["system"] == "mtsc"]
        snrs = sorted({r["snr_db"] for r in mine if r["snr_db"] is not None and r["metric"] in main.values()})
        if not snrs:
            continue
        label = f"{ch}/{prec}"
        head = f"{'channel/client':<20} {'task':<14} {'metric':<9}" + "".join(f"{s:>8g}" for s in snrs)
        lines += [head, "-" * len(head)]
        for task, metric in main.items():
            vals = {r["snr_db"]: r["value"] for r in mine if r["task"] == task and r["metric"] == metric}
            lost = sum(r["value"] for r in mine if r["task"] == task and r["metric"] == "error_items")
            if vals:
                lines.append(f"{label:<20} {task:<14} {metric:<9}" + "".join(
                    f"{vals[s]:>8.2f}" if s in vals else f"{'-':>8}" for s in snrs)
                    + (f"   ({lost} items lost)" if lost else ""))
        lat = {r["stage"]: r["value"] for r in mine if r["metric"] == "latency_ms_p50" and r["task"] == "all"}
        if lat:
            lines.append(f"{label}: p50 latency per stage (ms): " + ", ".join(
                f"{s} {v:.2f}" for s, v in lat.items() if v is not None and s not in ("link_round_trip",)))
        pts = [pt for pt in report.get("points", []) if pt["channel"] == ch and pt.get("precision") == prec]
        devices = sorted({pt["device"] for pt in pts if pt.get("device")})
        memory = [r["value"] for r in rows if r["metric"] == "peak_rss_mb" and r.get("precision") == prec
                  and str(r.get("process", "")).startswith("client") and r["value"] is not None]
        if devices or memory:
            lines.append(f"{label}: " + ", ".join(
                ([f"device {', '.join(devices)}"] if devices else [])
                + ([f"runtime {', '.join(sorted({pt.get('runtime') or 'torch' for pt in pts}))}"] if pts else [])
                + ([f"client peak memory {max(memory):.0f} MiB"] if memory else [])))
        lines.append("")
    for p in ((report.get("meta") or {}).get("plans") or {}).get("clients", []):
        lines.append(f"planned: {p.get('client') or p.get('device')} ({p.get('device')}) -> {p.get('chosen')}")
    for f in report.get("failures", []):
        lines.append(f"FAILED: {f}")
    return "\n".join(lines)


def execute_command(cfg: RunConfig, command: str, *, progress: bool) -> tuple[Optional[dict], int]:
    """:func:`execute` for the command line ``mtsc-sdr COMMAND``: SIGTERM stops it as Ctrl-C does
    (everything torn down, then KeyboardInterrupt). Returns (report, 0), or (None, exit status)
    after printing ``mtsc-sdr COMMAND: why`` (naming the process) to stderr: 4 when the base station
    refused the checkpoint, 1 when a process, flowgraph or radio failed."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return execute(cfg, progress=progress), 0
    except RunFailed as exc:
        print(f"mtsc-sdr {command}: {exc}", file=sys.stderr)
        return None, exc.status
    except (ProcessFailed, RuntimeError, OSError, ValueError) as exc:
        print(f"mtsc-sdr {command}: {exc}", file=sys.stderr)
        return None, 1


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="run configuration YAML (see configs/)")
    p.add_argument("--out", help="output directory (default: the config's out, else results/run/<name>)")
    add_checkpoint(p, help="override the config's checkpoint")
    add_json(p)


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    if args.out:
        cfg.out = args.out
    if args.checkpoint:
        cfg.checkpoint = args.checkpoint
    report, status = execute_command(cfg, "run", progress=not args.json)
    if report is None:
        return status
    if args.json:
        print(json.dumps(report))
    else:
        print(format_summary(report))
        print(f"wrote {cfg.out_dir() / 'report.json'}, items.jsonl and plots")
    return 1 if report["failures"] else 0
