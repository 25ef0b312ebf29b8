"""Compressed client artifacts: what a plan names, the base station offers and a client runs.

An artifact is a directory::

    manifest.json                 what it is and what it measured (below)
    graphs/<task>-<budget>.onnx   the encode graphs (:mod:`.graph`), for the graph runtimes
    client/                       a structurally changed client's encoder weights and spec
                                  (pruning, :mod:`.prune`; distillation, :mod:`.distill`)

``manifest.json``::

    {"format": "mtsc-sdr-client-artifact", "version": 1, "name": "prune50+int8-dynamic",
     "technique": {"quantization": "int8-dynamic", "pruning": 0.5, "distillation": null,
                   "recovery_steps": 300},
     "runtime": "onnxruntime",
     "source": {"checkpoint": "models/default", "identity": {...checkpoint identity...}},
     "budgets": [512], "tasks": ["vqa", ...],
     "files": {"graphs/vqa-512.onnx": "<sha256>", ...},
     "weight_bytes": 1234567,            # distinct weights of the client's encode, as stored
     "accuracy": {"vqa": 88.5, ...},     # validation split, each task's main metric
     "accuracy_setup": {...},            # split, items, SNR, channel, seed
     "peak_memory_mb": {"x86-cpu": 512.0},
     "latency_ms": {"x86-cpu": {"p50": 0.61, "p90": 0.75}},
     "measured_on": {"x86-cpu": {...machine, threads...}}}

The measured fields are filled by :mod:`.measure`. The planner (:mod:`.planner`) reads these
manifests as its candidates. A client loads an artifact only with its source checkpoint (the task
decoders, the tokenizer and the input front end come from there): :func:`load_client` refuses
any other, and the client's ``hello`` carries the artifact's source identity so that a base
station with another checkpoint refuses it too.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from mtsc_sdr import tasks as task_table
from mtsc_sdr.config import check, from_dict
from mtsc_sdr.model.checkpoint import identity as checkpoint_identity

FORMAT = "mtsc-sdr-client-artifact"
#: 2: the analog image code's whole encode is in its graph (inputs image and snr_db).
#: 3: a model with retrieval inputs: the graphs of tasks with a question take ``context_ids``.
VERSION = 3
MANIFEST = "manifest.json"
#: Quantization of an artifact: torch's own (``fp32``, ``int8-torch``: :mod:`.quantize`) or one
#: of the graph methods (:mod:`.onnx_quant`).
QUANTIZATIONS = ("fp32", "int8-torch", "int8-weight-only", "int8-dynamic", "int8-static", "fp16")
RUNTIMES = ("torch", "onnxruntime", "tensorrt")


class ArtifactMismatch(ValueError):
    """An artifact made from another checkpoint than the one it is loaded or served with."""


@dataclass
class Technique:
    """How an artifact's client was compressed.

    Attributes:
        quantization: one of :data:`QUANTIZATIONS`.
        pruning: fraction of attention heads and FFN channels removed (None: no pruning).
        distillation: the LAM encoder layers a distilled student keeps (None: no distillation).
        recovery_steps: fine-tune steps after pruning / distillation.
    """

    quantization: str
    pruning: Optional[float] = None
    distillation: Optional[list[int]] = None
    recovery_steps: int = 0

    def validate(self, path: str = "technique") -> None:
        """The fields in range (called by :func:`mtsc_sdr.config.from_dict`); the planner's
        candidates are checked this far, since any quantization a measured artifact names will do."""
        check(bool(self.quantization) and isinstance(self.quantization, str), f"{path}.quantization", "must be set")
        check(self.pruning is None or 0.0 < self.pruning < 1.0, f"{path}.pruning",
              f"must be a fraction in (0, 1), got {self.pruning}")
        check(self.distillation is None or bool(self.distillation), f"{path}.distillation",
              "the layers to keep, at least one")
        check(self.recovery_steps >= 0, f"{path}.recovery_steps", f"must be >= 0, got {self.recovery_steps}")

    def for_runtime(self, runtime: str) -> "Technique":
        """Itself, after checking that this code makes it (:data:`QUANTIZATIONS`) for ``runtime``;
        ValueError naming the field otherwise."""
        self.validate()
        check(self.quantization in QUANTIZATIONS, "technique.quantization",
              f"must be one of {QUANTIZATIONS}, got {self.quantization!r}")
        check(runtime in RUNTIMES, "runtime", f"must be one of {RUNTIMES}, got {runtime!r}")
        check(runtime != "torch" or self.quantization in ("fp32", "int8-torch"), "technique.quantization",
              f"{self.quantization!r} quantizes graphs; the torch runtime runs fp32 or int8-torch")
        check(runtime == "torch" or self.quantization != "int8-torch", "technique.quantization",
              "int8-torch runs in the torch runtime only")
        return self

    @property
    def uncompressed(self) -> bool:
        """fp32, neither pruned nor distilled."""
        return self.quantization == "fp32" and not self.structural

    @property
    def structural(self) -> bool:
        """Whether the client's modules change shape (pruning or distillation)."""
        return self.pruning is not None or self.distillation is not None

    def name(self) -> str:
        """A short name, e.g. ``prune50+int8-dynamic``, ``distill-L0+fp32``."""
        parts = []
        if self.pruning is not None:
            parts.append(f"prune{round(100 * self.pruning)}")
        if self.distillation is not None:
            parts.append("distill-L" + "".join(str(i) for i in self.distillation))
        return "+".join(parts + [self.quantization])

    @classmethod
    def from_dict(cls, d: dict) -> "Technique":
        """From a manifest's ``technique``; ConfigError (a ValueError) naming a bad field."""
        return from_dict(cls, d, "technique")


@dataclass
class Artifact:
    """An artifact directory and its manifest (see the module docstring)."""

    directory: Path
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def runtime(self) -> str:
        return self.manifest["runtime"]

    @property
    def technique(self) -> Technique:
        return Technique.from_dict(self.manifest["technique"])

    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def source_identity(self) -> dict:
        return self.manifest["source"]["identity"]

    def graph_path(self, task: str, budget: int) -> Path:
        """The encode graph of ``task`` at ``budget`` symbols; ValueError naming what exists."""
        rel = graph_file(task, budget)
        if rel not in self.manifest.get("files", {}):
            have = sorted(self.manifest.get("files", {}))
            raise ValueError(f"artifact {self.directory} has no graph for {task} at {budget} symbols "
                             f"(budgets {self.manifest.get('budgets')}; files {have})")
        return self.directory / rel

    def check_source(self, identity: dict) -> None:
        """ArtifactMismatch naming every field where ``identity`` (a checkpoint's) differs from
        the artifact's source."""
        differs = {k: (v, identity.get(k)) for k, v in self.source_identity.items() if identity.get(k) != v}
        if differs:
            text = "; ".join(f"{k}: artifact {a!r}, checkpoint {b!r}" for k, (a, b) in differs.items())
            raise ArtifactMismatch(f"artifact {self.directory} was made from another checkpoint ({text})")

    def save(self) -> None:
        (self.directory / MANIFEST).write_text(json.dumps(self.manifest, indent=1) + "\n")


def graph_file(task: str, budget: int) -> str:
    return f"graphs/{task}-{int(budget)}.onnx"


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read(directory: str | Path, verify: bool = True) -> Artifact:
    """The artifact in ``directory``; ValueError naming what is wrong (format, a field, a file
    that is missing or whose hash differs from the manifest's)."""
    directory = Path(directory)
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError, RecursionError) as exc:   # ValueError: not JSON, not UTF-8
        raise ValueError(f"{directory}: no readable {MANIFEST} ({type(exc).__name__}: {str(exc)[:200]})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"{directory / MANIFEST}: format is not {FORMAT!r}")
    if manifest.get("version") != VERSION:
        raise ValueError(f"{directory / MANIFEST}: version {manifest.get('version')!r}, this code reads {VERSION} "
                         "(export the artifact again: `mtsc-sdr compress export`)")
    for key in ("name", "technique", "runtime", "source", "budgets", "tasks", "files"):
        if key not in manifest:
            raise ValueError(f"{directory / MANIFEST}: lacks {key!r}")
    Technique.from_dict(manifest["technique"]).for_runtime(manifest["runtime"])
    files = manifest["files"]
    if not (isinstance(files, dict) and all(isinstance(v, str) for v in files.values())):
        raise ValueError(f"{directory / MANIFEST}: files: expected an object of sha256 per file, got {files!r:.80}")
    outside = [rel for rel in files if Path(rel).is_absolute() or ".." in Path(rel).parts]
    if outside:
        raise ValueError(f"{directory / MANIFEST}: files: {outside[0]!r} is not a path inside the artifact")
    if verify:
        for rel, digest in manifest["files"].items():
            path = directory / rel
            if not path.is_file():
                raise ValueError(f"artifact {directory}: {rel} is missing")
            if file_sha256(path) != digest:
                raise ValueError(f"artifact {directory}: {rel} differs from the manifest's hash")
    return Artifact(directory, manifest)


def _restructured(model, technique: Technique, seed: int, log):
    """The model with its client pruned or distilled per ``technique`` (and recovered), plus the
    spec to save; (model, None, None) when nothing changes shape."""
    from . import distill, prune

    if technique.pruning is not None:
        spec = prune.choose(model, technique.pruning, prune.calibration_batches(seed=seed), seed=seed)
        model = prune.with_client(model, prune.apply(model.client, spec))
        if technique.recovery_steps:
            prune.recover(model, technique.recovery_steps, seed=seed, log=log)
        return model, prune, spec
    if technique.distillation is not None:
        teacher = model
        spec = distill.StudentSpec(list(technique.distillation), distill.n_layers(teacher.client))
        student = distill.student(teacher.client, spec.keep_layers)
        if technique.recovery_steps:
            distill.distill(teacher, student, technique.recovery_steps, seed=seed, log=log)
        return prune.with_client(teacher, student), distill, spec
    return model, None, None


def _structured_client(checkpoint, art: Artifact):
    """The pruned or distilled client an artifact stores (rebuilt on ``checkpoint``, its source)."""
    from . import distill, prune

    loader = prune.load_pruned if art.technique.pruning is not None else distill.load_student
    return loader(checkpoint, art.directory / "client")


def build(checkpoint: str | Path, out: str | Path, technique: Technique, runtime: str, *,
          budgets: Optional[list[int]] = None, seed: int = 0, calibration_items: int = 64,
          client_from: str | Path | None = None, log=print) -> Artifact:
    """Make an artifact of ``checkpoint``'s client in ``out`` (replaced if it exists): pruning or
    distillation with recovery (seeded), then export and quantization of the graphs for every
    task and budget (graph runtimes). Measurements are left to :mod:`.measure`.

    Args:
        budgets: symbol budgets to export graphs for (default: the model's ``symbols_per_item``).
        calibration_items: validation items per task that calibrate ``int8-static``.
        client_from: another artifact of the same pruning / distillation whose client to reuse
            (its quantization may differ) instead of pruning or distilling again.
    """
    import torch

    from mtsc_sdr.model import load

    from . import graph, onnx_quant

    technique.for_runtime(runtime)
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    torch.manual_seed(seed)
    model = load(checkpoint)
    graph.prepare(model.client)
    if client_from is not None and technique.structural:
        other = read(client_from)
        if (other.technique.pruning, other.technique.distillation) != (technique.pruning, technique.distillation):
            raise ValueError(f"client_from {client_from}: its pruning / distillation differ from {technique.name()}")
        other.check_source(checkpoint_identity(checkpoint))
        shutil.copytree(other.directory / "client", out / "client")
        model.client = _structured_client(checkpoint, other)
    else:
        model, structure, spec = _restructured(model, technique, seed, log)
        if structure is not None:
            structure.save(model.client, spec, out / "client")
    client = graph.prepare(model.client)
    files = [p.relative_to(out).as_posix() for p in sorted((out / "client").iterdir())] if technique.structural else []
    budgets = [int(b) for b in (budgets or [model.cfg.symbols_per_item])]
    names = list(task_table.names())
    if runtime != "torch":
        for task in names:
            for budget in budgets:
                rel = graph_file(task, budget)
                graph.export(client, task, budget, out / rel)
                if technique.quantization != "fp32":
                    fp32 = out / (rel + ".fp32")
                    (out / rel).rename(fp32)
                    feeds = calibration_feeds(client, task, calibration_items, seed) \
                        if technique.quantization == "int8-static" else None
                    onnx_quant.quantize_graph(fp32, out / rel, technique.quantization, feeds,
                                              products_only=client.sends_analog(task))
                    fp32.unlink()
                files.append(rel)
                log(f"compress: {rel} ({technique.name()})")
    manifest = {"format": FORMAT, "version": VERSION, "name": technique.name(), "technique": asdict(technique),
                "runtime": runtime, "source": {"checkpoint": str(checkpoint), "identity": checkpoint_identity(checkpoint)},
                "budgets": budgets, "tasks": names, "files": {rel: file_sha256(out / rel) for rel in files},
                "weight_bytes": None, "accuracy": {}, "peak_memory_mb": {}, "latency_ms": {}, "measured_on": {}}
    art = Artifact(out, manifest)
    art.manifest["weight_bytes"] = encode_weight_bytes(art, client)
    art.save()
    return art


def compose(base: str | Path, parts: dict[str, str | Path], out: str | Path) -> Artifact:
    """A client whose encode graphs come from different artifacts of the same checkpoint: ``base``'s
    for every task except those in ``parts`` (task -> artifact directory), which take that
    artifact's graphs. Per-task compression: e.g. a distilled student for the tasks it serves as
    well as the full model and the full model where it does not. Graph runtimes only; both must
    share the runtime, the source checkpoint and the budgets. The manifest keeps ``base``'s
    technique, records ``composed_from`` ({task: artifact name}) and leaves the measurements empty.
    """
    base_art = read(base)
    if base_art.runtime == "torch":
        raise ValueError(f"{base}: compose takes graph artifacts (this one runs in torch)")
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(base_art.directory, out)
    manifest = dict(base_art.manifest)
    files = dict(manifest["files"])
    taken = {}
    for task, directory in parts.items():
        part = read(directory)
        for what, mine, theirs in (("runtime", base_art.runtime, part.runtime),
                                   ("budgets", base_art.manifest["budgets"], part.manifest["budgets"])):
            if mine != theirs:
                raise ValueError(f"compose: {directory}'s {what} {theirs} differ from {base}'s {mine}")
        part.check_source(base_art.source_identity)
        if task not in manifest["tasks"]:
            raise ValueError(f"compose: unknown task {task!r}; tasks are {manifest['tasks']}")
        for budget in manifest["budgets"]:
            rel = graph_file(task, budget)
            shutil.copyfile(part.graph_path(task, budget), out / rel)
            files[rel] = file_sha256(out / rel)
        taken[task] = part.name
    manifest.update(name=base_art.name + "|" + ",".join(f"{t}:{n}" for t, n in sorted(taken.items())),
                    files=files, composed_from=taken, accuracy={}, peak_memory_mb={}, latency_ms={}, measured_on={})
    manifest.pop("accuracy_setup", None)
    art = Artifact(out, manifest)
    art.manifest["weight_bytes"] = encode_weight_bytes(art, None)
    art.save()
    return art


# -- artifacts as the planner's candidates ----------------------------------------------------------


def candidate_dirs(roots: list[str]) -> list[Path]:
    """Artifact directories among ``roots`` (each an artifact or a folder of them)."""
    found = []
    for root in map(Path, roots):
        if (root / MANIFEST).is_file():
            found.append(root)
        elif root.is_dir():
            found += sorted(p.parent for p in root.glob(f"*/{MANIFEST}"))
    return found


def candidate_record(manifest: dict, directory: Path) -> dict:
    """A measured artifact's manifest as a planner candidate (:func:`.planner.validate_candidates`);
    ValueError when it has not been measured (or its measurements are not where they belong)."""
    if not manifest.get("latency_ms") or not manifest.get("accuracy"):
        raise ValueError(f"{directory}: not measured yet (`mtsc-sdr compress measure {directory}`)")
    missing = [k for k in ("weight_bytes", "peak_memory_mb") if k not in manifest]
    if missing:
        raise ValueError(f"{directory / MANIFEST}: lacks {', '.join(map(repr, missing))} "
                         f"(`mtsc-sdr compress measure {directory}`)")
    peak = manifest["peak_memory_mb"]
    if not (isinstance(peak, dict) and peak
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in peak.values())):
        raise ValueError(f"{directory / MANIFEST}: peak_memory_mb: expected an object of numbers per device, "
                         f"got {peak!r:.80}")
    return {"name": f"{manifest['name']}@{manifest['runtime']}", "technique": manifest["technique"],
            "runtime": manifest["runtime"], "accuracy": manifest["accuracy"],
            "weight_bytes": manifest["weight_bytes"], "peak_memory_mb": max(manifest["peak_memory_mb"].values()),
            "latency_ms": manifest["latency_ms"], "directory": str(directory)}


def load_candidates(roots: list[str]) -> list[dict]:
    dirs = candidate_dirs(roots)
    if not dirs:
        raise ValueError(f"no artifacts under {roots} (make them with `mtsc-sdr compress export --measure`)")
    return [candidate_record(read(d, verify=False).manifest, d) for d in dirs]


def calibration_feeds(client, task: str, n: int, seed: int) -> list[dict]:
    """Feeds of ``n`` validation items of ``task`` in batches of 8, SNRs spread over -5..20 dB
    (every rate class): what ``int8-static`` calibrates its activation ranges on."""
    import torch

    from mtsc_sdr.data import collate, examples

    from .graph import graph_inputs, signature

    sig = signature(client, task)
    items = examples("val", [task], n_per_task=n, seed=seed + 101)
    feeds = []
    for i in range(0, len(items), 8):
        chunk = items[i:i + 8]
        snr = torch.linspace(-5.0, 20.0, len(chunk))
        inputs = graph_inputs(client, collate(chunk), task, snr)
        feeds.append({k: inputs[k].numpy() for k in sig.inputs})
    return feeds


def encode_weight_bytes(art: Artifact, client) -> int:
    """Bytes of the client encode's weights as the artifact's runtime holds them: the distinct
    initializers of its graphs (the same tensor in several task graphs counted once), or for
    the torch runtime the encode modules' parameters and buffers (:func:`encode_modules`; int8
    with ``int8-torch``)."""
    if art.runtime == "torch":
        from .quantize import quantize_client, weight_bytes

        c = quantize_client(client) if art.technique.quantization == "int8-torch" else client
        return sum(weight_bytes(m) for m in encode_modules(c))
    import onnx
    from onnx import numpy_helper

    seen, total = set(), 0
    for rel in (r for r in art.manifest["files"] if r.endswith(".onnx")):
        for init in onnx.load(str(art.directory / rel)).graph.initializer:
            arr = numpy_helper.to_array(init)
            key = (arr.dtype.str, arr.shape, hashlib.sha256(arr.tobytes()).hexdigest())
            if key not in seen:
                seen.add(key)
                total += arr.nbytes
    return total


def encode_modules(client) -> list:
    """The modules (and parameters) a client's encode uses: modality encoders, task and modality
    embeddings, LAM encoder (with the token embedding it shares with the text decoder), JSC
    encoder and the analog image code."""
    from torch import nn

    mods = [client.image_encoder, client.audio_encoder, client.video_encoder, client.lam_encoder,
            client.jsc_encoder]
    if client.analog is not None:
        mods.append(client.analog)
    return mods + [nn.ParameterList([client.task_embed, client.modality_embed])]


@dataclass
class LoadedClient:
    """A client ready to run: ``model`` the ClientModel (task decoders, tokenizer, front end; the
    torch runtime's encode too), ``encoder`` the runtime's encoder (:mod:`.runtimes`), the
    artifact (None: the checkpoint's own client), the encode's weight bytes, and ``precision``:
    what the client's records call it (fp32 / int8, or the artifact's name)."""

    model: Any
    encoder: Any
    artifact: Optional[Artifact]
    weight_bytes: int
    precision: str


def load_client(checkpoint: str | Path, runtime: str = "torch", artifact: str | Path | None = None,
                precision: str = "fp32", threads: int = 1) -> LoadedClient:
    """The client half of ``checkpoint`` in eval mode, with the encoder of ``runtime``.

    Without an artifact: the checkpoint's client in torch, ``precision`` fp32 or int8
    (:mod:`.quantize`). With one: the artifact's client (pruned / distilled weights, graphs)
    after checking that ``checkpoint`` is its source (ArtifactMismatch otherwise); the
    artifact's runtime is used unless ``runtime`` names another graph runtime (an onnxruntime
    artifact's graphs also build TensorRT engines).
    """
    from mtsc_sdr.model import load

    from .graph import prepare
    from .quantize import PRECISIONS, quantize_client, weight_bytes
    from .runtimes import open_encoder

    if artifact is None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if runtime != "torch":
            raise ValueError(f"runtime {runtime!r} runs an artifact's graphs: give --artifact "
                             "(`mtsc-sdr compress export` makes one)")
        client = load(checkpoint).client.eval()
        if precision == "int8":
            client = quantize_client(client)
        return LoadedClient(client, open_encoder("torch", client, None, threads), None,
                            sum(weight_bytes(m) for m in encode_modules(client)), precision)
    art = read(artifact)
    art.check_source(checkpoint_identity(checkpoint))
    if art.runtime == "torch" and runtime != "torch":
        raise ValueError(f"artifact {art.directory} is for the torch runtime (it has no graphs)")
    if art.runtime != "torch" and runtime == "torch":
        runtime = art.runtime
    tech = art.technique
    client = prepare(_structured_client(checkpoint, art) if tech.structural else load(checkpoint).client)
    if tech.quantization == "int8-torch":
        client = quantize_client(client)
    return LoadedClient(client, open_encoder(runtime, client, art, threads), art, int(art.manifest["weight_bytes"]),
                        art.name)
