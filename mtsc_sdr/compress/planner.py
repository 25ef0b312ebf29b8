"""The compression planner: which compressed client artifact to run on a device, and why.

Inputs:

* a **device profile** (``firmware_profiles/devices/*.yaml``, :func:`load_profile`): memory, CPU
  cores, GPU CUDA cores, power modes and precision paths;
* the **candidates** (:func:`validate_candidates`): one record per compressed client artifact, from
  the compression manifest, with its accuracy per task on the validation split, weight bytes, peak
  memory (MB) and latency per encode (ms, p50 and p90) measured on one or more devices;
* the **constraints** (:class:`Constraints`): a latency budget on p50 or p90 (default **p90**: a
  budget is a promise about the slow items too, and p90 is the tail the measurements pin down
  well), a memory budget, and a floor per task -- an absolute minimum (``min_accuracy``) or a
  maximum loss against a reference candidate (``max_loss``, in the task's own units), or both.

Output: a :class:`Plan` -- the chosen candidate, the reason in words (what binds, what was rejected
and why), every figure with its provenance ("measured" or "estimated (model: ...)"), ``to_json()``.
:func:`format_plan` writes it for a terminal. A request nothing meets is not an error: the plan
says ``feasible=False`` and names the **closest** candidate, the one whose broken constraints add
up to the smallest normalized violation (sum over broken constraints of ``|figure - limit| /
|limit|``), with each broken constraint, its figure and its limit.

Objective
---------
Accuracy figures come in different units per task (VQA %, CIDEr, PSNR dB), so the score of a
candidate is the **mean over tasks of its accuracy relative to a reference**, ``mean_t acc[t] /
ref[t]``. The reference is the candidate named in the constraints, else the uncompressed one
(quantization fp32, no pruning, no distillation; torch first), else the per-task best of the set.
Scores within ``1e-6`` (relative) of the best count as ties; among them the lower latency wins.

Estimation model (latency)
--------------------------
A latency measured on the requested device is used as it is ("measured"). Otherwise it is scaled
from a measurement on another device (``x86-cpu`` first, then the others by name) by the ratio of
throughputs the profiles state:

* CPU runtimes (torch, onnxruntime) scale by **CPU throughput = cores x per-core factor**
  (:data:`CPU_CORE_FACTOR`: 1 for an x86-64 core with AVX2; 1/3 for a Jetson's Arm core, which does
  16 fp32 FLOP per cycle -- two 128-bit NEON FMA pipes -- at 1.5-2.2 GHz against 32 at about
  3 GHz). Linear scaling with cores is optimistic for small models on many cores.
* GPU runtimes (tensorrt) run only on a device with a GPU (elsewhere they are not candidates) and
  scale by the **CUDA-core ratio**. The profiles' int8 TOPS are not used: Orin figures are sparse,
  Xavier's dense, so they do not compare.
* **Power mode**: measurements are taken at a device's highest power mode; a lower mode multiplies
  latency by ``max watts / mode watts``. Clocks fall less than power (P ~ f V^2), so this
  overstates the slowdown: the estimate errs on the safe side. A figure measured on the device
  becomes "estimated" under a lower mode.

p50 and p90 scale by the same factor. Peak memory is the manifest's figure on every device
(memory does not scale with compute; it is marked estimated where the candidate was not measured on
the device); accuracy and weight bytes do not depend on the device.

Why an exact solver
-------------------
For one client the choice is a filter and an arg-max, but several clients sharing a base-station
budget (:func:`plan_many`) make a multiple-choice knapsack: its brute force grows as
``candidates ** clients``, and greedy rounding is not exact. The planner states both cases as one
0/1 integer program for :func:`scipy.optimize.milp` (HiGHS, ``mip_rel_gap=0``, so the optimum is
proven, not approximated): a binary ``x[c, i]`` per client ``c`` and candidate ``i``, ``sum_i x[c, i]
= 1`` per client, a row per shared budget, and per-client constraints as bounds (a candidate that
breaks one of its client's constraints has ``x[c, i] <= 0``; for a pick-one variable that is the
same as the constraint row, without a solver tolerance at the limit). The first solve maximizes
the summed score, the second minimizes the summed latency among the ties. The returned choice is
then checked against every constraint directly, not trusted.

Shared budgets (optional): ``shared={"weight_bytes": 50e6}`` bounds the sum over clients of a
candidate figure -- by default the weight bytes the base station delivers to its clients when it
deploys the plan over one downlink. Any numeric per-candidate figure can be bounded the same way
(``peak_memory_mb``, ``gflops``, or a manifest's own numeric field such as a ``bs_cost``).

Units: latency in ms per encode, memory in MB (2**20 bytes; device memory ``memory_gb * 1024``),
weights in bytes, accuracy in each task's own metric, power in W.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, Mapping, Optional, Sequence, Union

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp

from mtsc_sdr.config import ConfigError, check, from_dict, read_yaml, to_dict
from mtsc_sdr.radio.profiles import DeviceProfile, PowerMode, profiles_dir

from .artifact import Technique

# --------------------------------------------------------------------------------------------------
# Device profiles

#: Fields a device profile must state (:class:`DeviceProfile` has defaults; the planner does not
#: guess compute or memory). A ``jetson`` must also state ``gpu_cuda_cores``.
REQUIRED_PROFILE_FIELDS = ("name", "kind", "memory_gb", "cpu_cores")


def _devices_dir() -> Path:
    return profiles_dir() / "devices"


def known_profiles() -> list[str]:
    """The device profile names (file stems under ``firmware_profiles/devices/``), sorted."""
    return sorted(p.stem for p in _devices_dir().glob("*.yaml"))


def _profile_file(name_or_path: Union[str, Path]) -> Path:
    """A YAML path as given, else the file of an exact profile name, else of a unique prefix."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.parent != Path("."):
        return path
    known = known_profiles()
    name = str(name_or_path)
    matches = [name] if name in known else [k for k in known if k.startswith(name)]
    if len(matches) != 1:
        what = f"is ambiguous (matches {', '.join(matches)})" if matches else "matches no profile"
        raise ConfigError("profile", f"device profile {name!r} {what}; known: {', '.join(known)}")
    return _devices_dir() / f"{matches[0]}.yaml"


def _in_file(exc: ConfigError, file: Path) -> ConfigError:
    """``exc`` with the file named in its message (its ``field`` kept)."""
    err = ConfigError("", f"device profile {file}: {exc}")
    err.field = exc.field
    return err


def load_profile(name_or_path: Union[str, Path]) -> DeviceProfile:
    """A device profile from a file stem (``jetson-orin-nano-8gb``), a unique prefix of one
    (``jetson-orin-nano``) or a YAML path. An unknown or ambiguous name raises ``ValueError``
    listing the known names; a missing or bad field raises ``ValueError`` naming the field and file."""
    file = _profile_file(name_or_path)
    try:
        data = read_yaml(file)
        check(isinstance(data, dict), "", f"expected a mapping, got {type(data).__name__}")
        required = REQUIRED_PROFILE_FIELDS + (("gpu_cuda_cores",) if data.get("kind") == "jetson" else ())
        for name in required:
            check(name in data, name, "required field is missing")
        profile = from_dict(DeviceProfile, data)
        check(profile.kind != "jetson" or profile.gpu_cuda_cores > 0, "gpu_cuda_cores", "must be > 0 on a jetson")
        for i, mode in enumerate(profile.power_modes):
            check(mode.watts > 0, f"power_modes[{i}].watts", f"must be > 0, got {mode.watts}")
    except ConfigError as exc:
        raise _in_file(exc, file) from None
    return profile


def _as_profile(profile: Union[DeviceProfile, str, Path]) -> DeviceProfile:
    return profile if isinstance(profile, DeviceProfile) else load_profile(profile)


def power_mode_of(profile: DeviceProfile, power_mode: Union[int, str, None]) -> Optional[PowerMode]:
    """The power mode named by id (``1``, ``"1"``) or name (``"7W"``, any case); ``None`` -> the
    highest-watt mode (``None`` on a profile without modes). Unknown -> ``ValueError`` listing them."""
    modes = profile.power_modes
    if power_mode is None:
        return max(modes, key=lambda m: m.watts) if modes else None
    key = str(power_mode).strip()
    for mode in modes:
        if key == str(mode.id) or key.lower() == mode.name.lower():
            return mode
    listed = ", ".join(f"{m.id} ({m.name}, {m.watts:g} W)" for m in modes) or "none"
    raise ConfigError("power_mode", f"{profile.name} has no power mode {power_mode!r}; modes: {listed}")


def _power_factor(profile: DeviceProfile, mode: Optional[PowerMode]) -> float:
    """Latency multiplier of ``mode`` against the profile's highest mode: ``max watts / mode watts``."""
    if mode is None:
        return 1.0
    return max(m.watts for m in profile.power_modes) / mode.watts


# --------------------------------------------------------------------------------------------------
# Candidates

RUNTIMES = ("torch", "onnxruntime", "tensorrt")
#: Runtimes that run the client encode on the CPU, and those that need a GPU.
CPU_RUNTIMES = ("torch", "onnxruntime")
GPU_RUNTIMES = ("tensorrt",)
#: Precisions a profile lists; a candidate quantized to one its device lacks cannot run there.
PRECISIONS = ("fp32", "fp16", "bf16", "int8")
#: Where a latency is scaled from when the requested device has none (others follow by name).
PREFERRED_SOURCE = "x86-cpu"
#: fp32 throughput of one CPU core of a profile ``kind``, relative to an x86-64 core with AVX2.
CPU_CORE_FACTOR = {"cpu": 1.0, "jetson": 1.0 / 3.0}
PERCENTILES = ("p50", "p90")


def _number(value: Any, path: str, minimum: float = 0.0, strict: bool = True) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    check(ok, path, f"expected a number, got {value!r}")
    check(value > minimum if strict else value >= minimum, path,
          f"must be {'>' if strict else '>='} {minimum:g}, got {value!r}")


@dataclass
class Candidate:
    """One compressed client artifact (a manifest record). ``accuracy``: task -> quality on the
    validation split (higher is better, the task's own units); ``latency_ms``: device profile name
    -> ``{"p50": ms, "p90": ms}`` per encode, measured there; ``peak_memory_mb`` in MB;
    ``gflops`` per encode; ``extra``: the record's other keys, kept unchecked."""

    name: str
    technique: Technique
    runtime: Literal["torch", "onnxruntime", "tensorrt"]
    accuracy: dict[str, float]
    weight_bytes: int
    peak_memory_mb: float
    latency_ms: dict[str, dict[str, float]]
    gflops: Optional[float] = None
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self, path: str = "") -> None:
        check(bool(self.name), f"{path}.name", "must be set")
        check(bool(self.accuracy), f"{path}.accuracy", "must name at least one task")
        for task, value in self.accuracy.items():
            _number(value, f"{path}.accuracy.{task}", -math.inf)
        _number(self.weight_bytes, f"{path}.weight_bytes", 0, strict=False)
        _number(self.peak_memory_mb, f"{path}.peak_memory_mb")
        check(bool(self.latency_ms), f"{path}.latency_ms", "must hold at least one device's measurement")
        for device, lat in self.latency_ms.items():
            where = f"{path}.latency_ms.{device}"
            check(isinstance(lat, dict) and set(lat) == set(PERCENTILES), where,
                  f"expected {{'p50': ms, 'p90': ms}}, got {lat!r}")
            for pct in PERCENTILES:
                _number(lat[pct], f"{where}.{pct}")
            check(lat["p50"] <= lat["p90"], where, f"p50 {lat['p50']} > p90 {lat['p90']}")
        if self.gflops is not None:
            _number(self.gflops, f"{path}.gflops", 0, strict=False)

    def figure(self, name: str) -> Optional[float]:
        """A numeric per-candidate figure by name (a field or an ``extra`` key); None if absent."""
        value = getattr(self, name, None) if name in _CANDIDATE_FIELDS else self.extra.get(name)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return float(value) if ok else None


_CANDIDATE_FIELDS = {f.name for f in fields(Candidate)} - {"extra"}


def _candidate(record: Union[Candidate, Mapping[str, Any]], path: str) -> Candidate:
    if isinstance(record, Candidate):
        record.validate(path)
        return record
    check(isinstance(record, Mapping), path, f"expected a mapping, got {record!r}")
    known = {k: v for k, v in record.items() if k in _CANDIDATE_FIELDS}
    return from_dict(Candidate, {**known, "extra": {k: v for k, v in record.items() if k not in known}}, path)


def validate_candidates(candidates: Sequence[Union[Candidate, Mapping[str, Any]]]) -> list[Candidate]:
    """Manifest records (or :class:`Candidate` objects) -> :class:`Candidate` list; a bad record
    raises ``ValueError`` naming the field (``candidates[2].latency_ms.x86-cpu.p90: expected a
    number, got 'fast'``). Names must be unique and every candidate must report the same tasks.
    Keys outside the schema go to ``extra``."""
    check(isinstance(candidates, (list, tuple)) and bool(candidates), "candidates",
          "expected a non-empty list of candidate records")
    out: list[Candidate] = []
    for i, record in enumerate(candidates):
        path = f"candidates[{i}]"
        cand = _candidate(record, path)
        check(cand.name not in {c.name for c in out}, f"{path}.name", f"duplicate candidate name {cand.name!r}")
        if out:
            check(set(cand.accuracy) == set(out[0].accuracy), f"{path}.accuracy",
                  f"tasks {sorted(cand.accuracy)} differ from {out[0].name}'s {sorted(out[0].accuracy)}")
        out.append(cand)
    return out


# --------------------------------------------------------------------------------------------------
# Latency estimation


@dataclass(frozen=True)
class LatencyEstimate:
    """A candidate's latency per encode on a device (ms), where it comes from and how."""

    p50_ms: float
    p90_ms: float
    source: str          # the device the underlying measurement was taken on
    provenance: str      # "measured" or "estimated (model: ...)"

    def at(self, percentile: str) -> float:
        return self.p50_ms if percentile == "p50" else self.p90_ms


def _cannot_run(cand: Candidate, profile: DeviceProfile) -> str:
    """Why ``cand`` cannot run on ``profile`` at all ("" when it can)."""
    if cand.runtime in GPU_RUNTIMES and profile.gpu_cuda_cores <= 0:
        return f"{cand.runtime} needs a GPU; {profile.name} has none"
    q = cand.technique.quantization
    # an artifact's quantization names its method (int8-dynamic, int8-static, int8-torch, ...); the
    # device needs the arithmetic it computes in (weight-only int8 computes in fp32)
    precision = "fp32" if q == "int8-weight-only" else "int8" if q.startswith("int8") else q
    if precision in PRECISIONS and precision not in profile.precisions:
        return f"{profile.name} has no {precision} path for {q} (precisions: {', '.join(profile.precisions)})"
    return ""


def _throughput_ratio(cand: Candidate, source: DeviceProfile, target: DeviceProfile) -> tuple[float, str]:
    """source throughput / target throughput for ``cand``'s runtime, and the model in words."""
    if cand.runtime in GPU_RUNTIMES:
        ratio = source.gpu_cuda_cores / target.gpu_cuda_cores
        return ratio, f"CUDA cores {source.gpu_cuda_cores} / {target.gpu_cuda_cores}"
    fs, ft = CPU_CORE_FACTOR[source.kind], CPU_CORE_FACTOR[target.kind]
    ratio = source.cpu_cores * fs / (target.cpu_cores * ft)
    return ratio, (f"CPU throughput ({source.cpu_cores} cores x {fs:.3g}) / ({target.cpu_cores} cores x {ft:.3g})"
                   f" = {ratio:.3g}")


def _source_profile(cand: Candidate, target: DeviceProfile,
                    profiles: Mapping[str, DeviceProfile]) -> Optional[DeviceProfile]:
    """The device to take ``cand``'s latency from: the target if measured there, else the
    preferred source, else the first measured device by name with a profile that runs ``cand``."""
    if target.name in cand.latency_ms:
        return target
    for device in sorted(cand.latency_ms, key=lambda d: (d != PREFERRED_SOURCE, d)):
        source = profiles.get(device)
        if source is not None and not _cannot_run(cand, source):
            return source
    return None


def _source_profiles(candidates: Sequence[Candidate]) -> dict[str, DeviceProfile]:
    """The profiles of every device the candidates were measured on (those that have one)."""
    known = set(known_profiles())
    devices = {d for c in candidates for d in c.latency_ms if d in known}
    return {d: load_profile(d) for d in sorted(devices)}


def _estimate(cand: Candidate, target: DeviceProfile, mode: Optional[PowerMode],
              profiles: Mapping[str, DeviceProfile]) -> tuple[Optional[LatencyEstimate], str]:
    """(estimate, "") or (None, why there is none)."""
    why = _cannot_run(cand, target)
    if why:
        return None, why
    source = _source_profile(cand, target, profiles)
    if source is None:
        return None, (f"no latency measured on {target.name}, nor on a device with a profile to scale from "
                      f"(measured on: {', '.join(sorted(cand.latency_ms))})")
    factor, steps = 1.0, []
    if source is not target:
        ratio, words = _throughput_ratio(cand, source, target)
        factor, steps = ratio, [words]
    power = _power_factor(target, mode)
    if power != 1.0:
        top = max(m.watts for m in target.power_modes)
        factor *= power
        steps.append(f"power {top:g} W / {mode.watts:g} W ({mode.name})")
    lat = cand.latency_ms[source.name]
    if not steps:
        return LatencyEstimate(lat["p50"], lat["p90"], source.name, "measured"), ""
    provenance = f"estimated (model: {source.name} measurement x {' x '.join(steps)})"
    return LatencyEstimate(lat["p50"] * factor, lat["p90"] * factor, source.name, provenance), ""


def estimate_latency(candidate: Union[Candidate, Mapping[str, Any]], profile: Union[DeviceProfile, str],
                     power_mode: Union[int, str, None] = None) -> LatencyEstimate:
    """``candidate``'s latency per encode on ``profile`` at ``power_mode`` (default: the highest),
    measured or estimated by the module's model. ``ValueError`` saying why when it cannot run there
    or there is nothing to estimate from."""
    cand = candidate if isinstance(candidate, Candidate) else validate_candidates([candidate])[0]
    target = _as_profile(profile)
    est, why = _estimate(cand, target, power_mode_of(target, power_mode), _source_profiles([cand]))
    if est is None:
        raise ValueError(f"{cand.name}: {why}")
    return est


# --------------------------------------------------------------------------------------------------
# Constraints


@dataclass
class Constraints:
    """What a client asks of its candidate. ``latency_ms``: budget per encode (ms) on the
    ``percentile`` (p50 or p90, default p90); ``memory_mb``: peak memory budget (MB; the device's
    own memory always applies too); ``min_accuracy``: task -> lowest acceptable value;
    ``max_loss``: task -> largest acceptable drop below the ``reference`` candidate (task units);
    ``reference``: the candidate scores and losses are relative to (default: see the module)."""

    latency_ms: Optional[float] = None
    percentile: Literal["p50", "p90"] = "p90"
    memory_mb: Optional[float] = None
    min_accuracy: dict[str, float] = field(default_factory=dict)
    max_loss: dict[str, float] = field(default_factory=dict)
    reference: Optional[str] = None

    def validate(self, path: str = "") -> None:
        p = (lambda n: f"{path}.{n}" if path else n)  # noqa: E731
        for name in ("latency_ms", "memory_mb"):
            if getattr(self, name) is not None:
                _number(getattr(self, name), p(name))
        for task, value in self.min_accuracy.items():
            _number(value, p(f"min_accuracy.{task}"), -math.inf)
        for task, value in self.max_loss.items():
            _number(value, p(f"max_loss.{task}"), 0, strict=False)
        check(self.percentile in PERCENTILES, p("percentile"),
              f"expected one of {PERCENTILES}, got {self.percentile!r}")


@dataclass
class Client:
    """One client of the base station: its device, constraints and power mode (id or name)."""

    profile: Union[DeviceProfile, str, Path]
    constraints: Constraints = field(default_factory=Constraints)
    power_mode: Union[int, str, None] = None
    name: str = ""


@dataclass(frozen=True)
class Violation:
    """A broken constraint: its name, the sentence (figure and limit), and the normalized excess
    ``|figure - limit| / |limit|``."""

    constraint: str
    text: str
    excess: float


@dataclass(frozen=True)
class _Floor:
    value: float
    why: str


def _reference(candidates: Sequence[Candidate], name: Optional[str]) -> tuple[dict[str, float], str]:
    """Per-task reference accuracy and its label (see the module docstring for the rule)."""
    if name is not None:
        ref = next((c for c in candidates if c.name == name), None)
        check(ref is not None, "reference",
              f"no candidate {name!r}; candidates: {', '.join(c.name for c in candidates)}")
    else:
        plain = [c for c in candidates if c.technique.uncompressed]
        ref = min(plain, key=lambda c: c.runtime != "torch") if plain else None
    if ref is not None:
        values, label = dict(ref.accuracy), ref.name
    else:
        values = {t: max(c.accuracy[t] for c in candidates) for t in candidates[0].accuracy}
        label = "the per-task best of the candidates"
    for task, value in values.items():
        check(value > 0, f"reference.accuracy.{task}", f"must be > 0 to normalize scores ({label}: {value})")
    return values, label


def _floors(cons: Constraints, tasks: Sequence[str], ref: Mapping[str, float], ref_label: str) -> dict[str, _Floor]:
    """Per-task accuracy floor: the higher of ``min_accuracy`` and reference minus ``max_loss``."""
    for form in ("min_accuracy", "max_loss"):
        for task in getattr(cons, form):
            check(task in tasks, f"{form}.{task}", f"unknown task; the candidates report {', '.join(tasks)}")
    floors: dict[str, _Floor] = {}
    for task in tasks:
        options = []
        if task in cons.min_accuracy:
            options.append(_Floor(cons.min_accuracy[task], "min"))
        if task in cons.max_loss:
            options.append(_Floor(ref[task] - cons.max_loss[task],
                                  f"{ref_label} {ref[task]:.4g} - max loss {cons.max_loss[task]:.4g}"))
        if options:
            floors[task] = max(options, key=lambda f: f.value)
    return floors


def _excess(figure: float, limit: float) -> float:
    return abs(figure - limit) / abs(limit) if limit else abs(figure - limit)


def _tag(provenance: str) -> str:
    return provenance.split(" ", 1)[0]


# --------------------------------------------------------------------------------------------------
# One client's view of the candidates


@dataclass
class _Client:
    """A client resolved: profile, mode, limits, and every candidate's figures and violations."""

    label: str
    profile: DeviceProfile
    mode: Optional[PowerMode]
    cons: Constraints
    floors: dict[str, _Floor]
    ref_label: str
    scores: np.ndarray                       # (n,) mean relative accuracy
    estimates: list[Optional[LatencyEstimate]]
    cannot_run: list[str]                    # "" where the candidate can run
    violations: list[list[Violation]]

    @property
    def device_memory_mb(self) -> float:
        return self.profile.memory_gb * 1024.0

    def allowed(self) -> np.ndarray:
        return np.array([not w and not v for w, v in zip(self.cannot_run, self.violations)])

    def latency(self, i: int) -> float:
        est = self.estimates[i]
        return est.at(self.cons.percentile) if est else math.inf


def _memory_provenance(est: Optional[LatencyEstimate], device: str) -> str:
    if est is None or est.source == device:
        return "measured"
    return f"estimated (model: the manifest's peak memory, measured with the candidate on {est.source})"


def _violations(cand: Candidate, est: LatencyEstimate, client: _Client) -> list[Violation]:
    """Every constraint of ``client`` that ``cand`` (latency ``est``) breaks, checked directly."""
    out = []
    cons, pct = client.cons, client.cons.percentile
    if cons.latency_ms is not None and est.at(pct) > cons.latency_ms:
        out.append(Violation("latency_ms", f"latency {pct} {est.at(pct):.4g} ms ({_tag(est.provenance)}) > "
                                           f"{cons.latency_ms:g} ms", _excess(est.at(pct), cons.latency_ms)))
    mem_tag = _tag(_memory_provenance(est, client.profile.name))
    for name, limit, what in (("memory_mb", cons.memory_mb, "budget"),
                              ("device_memory_mb", client.device_memory_mb, f"{client.profile.name} memory")):
        if limit is not None and cand.peak_memory_mb > limit:
            out.append(Violation(name, f"peak memory {cand.peak_memory_mb:.4g} MB ({mem_tag}) > {limit:g} MB {what}",
                                 _excess(cand.peak_memory_mb, limit)))
    for task, floor in client.floors.items():
        value = cand.accuracy[task]
        if value < floor.value:
            out.append(Violation(f"accuracy.{task}", f"{task} {value:.4g} < {floor.value:.4g} ({floor.why})",
                                 _excess(value, floor.value)))
    return out


def _resolve(client: Client, index: int, candidates: Sequence[Candidate],
             sources: Mapping[str, DeviceProfile]) -> _Client:
    profile = _as_profile(client.profile)
    cons = client.constraints
    cons.validate()
    mode = power_mode_of(profile, client.power_mode)
    tasks = list(candidates[0].accuracy)
    ref, ref_label = _reference(candidates, cons.reference)
    scores = np.array([np.mean([c.accuracy[t] / ref[t] for t in tasks]) for c in candidates])
    pairs = [_estimate(c, profile, mode, sources) for c in candidates]
    label = client.name or (profile.name if index < 0 else f"client {index} ({profile.name})")
    out = _Client(label, profile, mode, cons, _floors(cons, tasks, ref, ref_label), ref_label, scores,
                  [e for e, _ in pairs], [w for _, w in pairs], [])
    out.violations = [_violations(c, e, out) if e else [] for c, e in zip(candidates, out.estimates)]
    return out


# --------------------------------------------------------------------------------------------------
# The exact choice

#: Scores within this fraction of the best are ties (then the lower latency wins).
TIE_TOL = 1e-6
#: HiGHS options: prove the optimum (no relative gap), not approximate it.
MILP_OPTIONS = {"mip_rel_gap": 0.0, "presolve": True}


class PlanVerificationError(RuntimeError):
    """The solver returned a choice that breaks a constraint (the plan is not used)."""


def _solve(c: np.ndarray, bounds: Bounds, rows: list[LinearConstraint]):
    res = milp(c, integrality=np.ones_like(c), bounds=bounds, constraints=rows, options=MILP_OPTIONS)
    if res.status not in (0, 2):
        raise RuntimeError(f"milp failed: {res.message}")
    return res


def _optimize(scores: np.ndarray, latencies: np.ndarray, allowed: np.ndarray,
              shared: Sequence[tuple[np.ndarray, float]]) -> Optional[np.ndarray]:
    """0/1 choice matrix (clients x candidates) maximizing the summed score, then minimizing the
    summed latency among ties; None when no choice meets the bounds and rows."""
    k, n = scores.shape
    bounds = Bounds(np.zeros(k * n), allowed.astype(float).ravel())
    rows = [LinearConstraint(np.kron(np.eye(k), np.ones(n)), 1, 1)]
    rows += [LinearConstraint(np.tile(coef, k)[None, :], -np.inf, limit) for coef, limit in shared]
    first = _solve(-scores.ravel(), bounds, rows)
    if first.status == 2:
        return None
    best = -first.fun
    rows.append(LinearConstraint(scores.ravel()[None, :], best - TIE_TOL * max(1.0, abs(best)), np.inf))
    second = _solve(np.where(allowed, latencies, 0.0).ravel(), bounds, rows)
    if second.status == 2:
        raise RuntimeError("milp: the tie-break found no solution the first solve had found")
    return second.x.reshape(k, n)


def _verify(x: np.ndarray, clients: Sequence[_Client], candidates: Sequence[Candidate],
            shared: Mapping[str, float]) -> list[int]:
    """The chosen index per client, after checking the solver's answer against every constraint
    directly; :class:`PlanVerificationError` naming what it breaks otherwise."""
    problems, choice = [], []
    for values, client in zip(x, clients):
        picked = np.flatnonzero(np.round(values))
        if len(picked) != 1 or not np.allclose(values, np.round(values), atol=1e-6):
            problems.append(f"{client.label}: not exactly one candidate chosen ({values.round(6).tolist()})")
            choice.append(-1)
            continue
        i = int(picked[0])
        choice.append(i)
        cand = candidates[i]
        est, why = _estimate(cand, client.profile, client.mode, _source_profiles([cand]))
        broken = [why] if est is None else [v.text for v in _violations(cand, est, client)]
        problems += [f"{client.label}: {cand.name}: {b}" for b in broken]
    if -1 not in choice:
        for name, limit in shared.items():
            total = sum(candidates[i].figure(name) for i in choice)
            if total > limit:
                problems.append(f"shared {name} {_fmt(total)} > {_fmt(limit)}")
    if problems:
        raise PlanVerificationError("milp returned a plan that fails verification: " + "; ".join(problems))
    return choice


# --------------------------------------------------------------------------------------------------
# Plans


@dataclass
class Plan:
    """The plan for one client. ``chosen``: the candidate to run (None when infeasible);
    ``closest``: when infeasible, the candidate breaking the constraints by the least;
    ``figures``: the chosen (else closest) candidate's figures (``latency_ms_p50`` / ``_p90`` in ms,
    ``peak_memory_mb``, ``weight_bytes``, ``accuracy`` per task, ``score`` = mean relative accuracy);
    ``provenance``: figure -> "measured" or "estimated (model: ...)"; ``candidates``: every
    candidate's figures on this device and its status."""

    device: str
    power_mode: Optional[str]
    feasible: bool
    chosen: Optional[str]
    closest: Optional[str]
    reason: str
    figures: dict[str, Any]
    provenance: dict[str, str]
    constraints: dict[str, Any]
    reference: str
    candidates: list[dict[str, Any]]
    client: str = ""

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    def to_json(self, indent: Optional[int] = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)


@dataclass
class MultiPlan:
    """The plan for several clients sharing the base station's budgets: one :class:`Plan` per
    client, and per shared figure its ``limit`` and the chosen ``total``."""

    feasible: bool
    reason: str
    clients: list[Plan]
    shared: dict[str, dict[str, Optional[float]]]

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    def to_json(self, indent: Optional[int] = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)


_FIGURE_KEYS = ("latency_ms_p50", "latency_ms_p90", "peak_memory_mb", "weight_bytes", "accuracy", "score")


def _figures(cand: Candidate, est: Optional[LatencyEstimate], score: float, device: str) -> tuple[dict, dict]:
    figures = {"latency_ms_p50": est.p50_ms if est else None, "latency_ms_p90": est.p90_ms if est else None,
               "peak_memory_mb": cand.peak_memory_mb, "weight_bytes": cand.weight_bytes,
               "accuracy": dict(cand.accuracy), "score": float(score)}
    lat = est.provenance if est else "-"
    provenance = {"latency_ms_p50": lat, "latency_ms_p90": lat, "peak_memory_mb": _memory_provenance(est, device),
                  "weight_bytes": "measured", "accuracy": "measured", "score": "measured"}
    return figures, provenance


def _constraint_summary(client: _Client) -> str:
    cons, parts = client.cons, []
    if cons.latency_ms is not None:
        parts.append(f"latency {cons.percentile} <= {cons.latency_ms:g} ms")
    if cons.memory_mb is not None:
        parts.append(f"peak memory <= {cons.memory_mb:g} MB")
    parts.append(f"{client.profile.name} memory {client.device_memory_mb:g} MB")
    parts += [f"{t} >= {f.value:.4g} ({f.why})" for t, f in client.floors.items()]
    return ", ".join(parts)


def _why_not(client: _Client, i: int, name: str) -> str:
    broken = client.cannot_run[i] or "; ".join(v.text for v in client.violations[i])
    return f"{name} ({broken})"


def _closest(client: _Client) -> Optional[int]:
    """The runnable candidate with the smallest summed normalized violation (ties: higher score)."""
    runnable = [i for i, w in enumerate(client.cannot_run) if not w]
    if not runnable:
        return None
    return min(runnable, key=lambda i: (sum(v.excess for v in client.violations[i]), -client.scores[i]))


def _reason_chosen(client: _Client, i: int, names: Sequence[str], shared_limited: bool) -> str:
    allowed = np.flatnonzero(client.allowed())
    sc = client.scores
    text = (f"{names[i]} on {client.profile.name}: mean accuracy {sc[i]:.4f} of {client.ref_label}'s, "
            f"the highest of the {len(allowed)} of {len(names)} candidates that meet {_constraint_summary(client)}")
    if shared_limited:
        text = (f"{names[i]} on {client.profile.name}: mean accuracy {sc[i]:.4f} of {client.ref_label}'s, the best "
                f"this client gets within the shared budget ({len(allowed)} of {len(names)} candidates meet "
                f"{_constraint_summary(client)})")
    tied = [names[j] for j in allowed if j != i and abs(sc[j] - sc[i]) <= TIE_TOL * max(1.0, abs(sc[i]))]
    if tied:
        text += (f". Tied on accuracy with {', '.join(tied)}; chosen for its lower latency "
                 f"{client.cons.percentile} {client.latency(i):.4g} ms")
    rejected = [j for j in range(len(names)) if j not in set(allowed)]
    better = [j for j in rejected if sc[j] > sc[i] and not client.cannot_run[j]]
    if better:
        binding = sorted({v.constraint for j in better for v in client.violations[j]})
        text += (f". Binding: {', '.join(binding)} -- better-scoring candidates ruled out: "
                 + ", ".join(_why_not(client, j, names[j]) for j in better))
    others = [j for j in rejected if j not in better]
    if others:
        text += ". Also rejected: " + ", ".join(_why_not(client, j, names[j]) for j in others)
    return text + "."


def _reason_infeasible(client: _Client, closest: Optional[int], names: Sequence[str]) -> str:
    if closest is None:
        return (f"No candidate can run on {client.profile.name}: "
                + ", ".join(_why_not(client, j, names[j]) for j in range(len(names))) + ".")
    broken = "; ".join(v.text for v in client.violations[closest])
    return (f"No candidate meets {_constraint_summary(client)}. Closest: {names[closest]}, which breaks {broken}.")


def _client_plan(client: _Client, candidates: Sequence[Candidate], chosen: Optional[int],
                 closest: Optional[int], reason: str) -> Plan:
    names = [c.name for c in candidates]
    allowed = client.allowed()
    table = []
    for i, cand in enumerate(candidates):
        figures, provenance = _figures(cand, client.estimates[i], client.scores[i], client.profile.name)
        status = ("chosen" if i == chosen else "admissible" if allowed[i] else
                  "rejected: " + (client.cannot_run[i] or "; ".join(v.text for v in client.violations[i])))
        table.append({"name": cand.name, "runtime": cand.runtime, "technique": to_dict(cand.technique),
                      **figures, "provenance": provenance, "status": status})
    shown_index = chosen if chosen is not None else closest
    shown = table[shown_index] if shown_index is not None else {}
    figures = {k: shown[k] for k in _FIGURE_KEYS} if shown else {}
    return Plan(device=client.profile.name, power_mode=client.mode.name if client.mode else None,
                feasible=chosen is not None, chosen=names[chosen] if chosen is not None else None,
                closest=names[closest] if closest is not None else None, reason=reason, figures=figures,
                provenance=dict(shown.get("provenance", {})), constraints=to_dict(client.cons),
                reference=client.ref_label,
                candidates=table, client=client.label)


def _shared_rows(candidates: Sequence[Candidate], shared: Mapping[str, float]) -> list[tuple[np.ndarray, float]]:
    rows = []
    for name, limit in shared.items():
        _number(limit, f"shared.{name}", 0, strict=False)
        coef = [c.figure(name) for c in candidates]
        missing = [c.name for c, v in zip(candidates, coef) if v is None]
        check(not missing, f"shared.{name}", f"not a numeric figure of candidate(s) {', '.join(missing)}")
        rows.append((np.array(coef, dtype=float), float(limit)))
    return rows


def _infeasible_shared(clients: Sequence[_Client], rows, shared: Mapping[str, float]) -> tuple[list[int], str]:
    """Each client's admissible candidate using the least of the shared budgets (normalized), and
    the reason: the budgets that even the smallest choices overrun, or that none fits them together."""
    def use(i: int) -> float:
        return sum(coef[i] / limit if limit else coef[i] for coef, limit in rows)
    picks = [min(np.flatnonzero(c.allowed()), key=lambda i: (use(i), -c.scores[i])) for c in clients]
    over = []
    for (coef, limit), name in zip(rows, shared):
        least = sum(coef[np.flatnonzero(c.allowed())].min() for c in clients)
        if least > limit:
            over.append(f"shared {name}: the smallest total the clients' admissible candidates reach is "
                        f"{_fmt(float(least))} > {_fmt(float(limit))}")
    budgets = ", ".join(f"{n} <= {_fmt(float(v))}" for n, v in shared.items())
    why = "; ".join(over) or f"no combination of admissible candidates meets the shared budgets {budgets} together"
    return picks, why


def plan_many(clients: Sequence[Client], candidates: Sequence[Union[Candidate, Mapping[str, Any]]],
              shared: Optional[Mapping[str, float]] = None) -> MultiPlan:
    """One candidate per client maximizing the summed score (mean relative accuracy per client),
    each client within its own constraints and all together within ``shared`` budgets
    (figure name -> limit on the sum over clients; e.g. ``{"weight_bytes": 50e6}``). Ties go to the
    lower summed latency. An infeasible request returns ``feasible=False`` with each client's closest
    candidate and the broken constraints; a solver answer that fails verification raises
    :class:`PlanVerificationError`."""
    cands = validate_candidates(candidates)
    check(bool(clients), "clients", "at least one client")
    shared = dict(shared or {})
    sources = _source_profiles(cands)
    resolved = [_resolve(c, i if len(clients) > 1 else -1, cands, sources) for i, c in enumerate(clients)]
    rows = _shared_rows(cands, shared)
    names = [c.name for c in cands]

    def shared_totals(choice: Optional[list[int]]) -> dict:
        return {n: {"limit": float(v), "total": sum(cands[i].figure(n) for i in choice) if choice else None}
                for n, v in shared.items()}

    stuck = [c for c in resolved if not c.allowed().any()]
    if stuck:
        plans = [_client_plan(c, cands, None, _closest(c), _reason_infeasible(c, _closest(c), names))
                 if c in stuck else
                 _client_plan(c, cands, None, None, f"{c.label} could run a candidate, but the plan is infeasible "
                                                    "because of the other clients.")
                 for c in resolved]
        reason = " ".join((f"{p.client}: " if len(plans) > 1 else "") + p.reason for p, c in zip(plans, resolved)
                          if c in stuck)
        return MultiPlan(False, reason, plans, shared_totals(None))

    allowed = np.array([c.allowed() for c in resolved])
    scores = np.array([c.scores for c in resolved])
    latencies = np.array([[c.latency(i) for i in range(len(cands))] for c in resolved])
    x = _optimize(scores, latencies, allowed, rows)
    if x is None:
        picks, why = _infeasible_shared(resolved, rows, shared)
        reason = f"No plan meets the shared budgets: {why}."
        plans = [_client_plan(c, cands, None, i, f"{reason} Closest for {c.label}: {names[i]}, the admissible "
                                                 "candidate using the least of the shared budgets.")
                 for c, i in zip(resolved, picks)]
        return MultiPlan(False, reason, plans, shared_totals(None))

    choice = _verify(x, resolved, cands, shared)
    plans = []
    for c, i in zip(resolved, choice):
        limited = bool(shared) and c.scores[i] < c.scores[c.allowed()].max() - TIE_TOL
        plans.append(_client_plan(c, cands, i, None, _reason_chosen(c, i, names, limited)))
    totals = shared_totals(choice)
    reason = " ".join((f"{p.client}: " if len(plans) > 1 else "") + p.reason for p in plans)
    if shared:
        used = ", ".join(f"{n} {_fmt(t['total'])} of {_fmt(t['limit'])}" for n, t in totals.items())
        reason += f" Shared: {used}."
    return MultiPlan(True, reason, plans, totals)


def plan(profile: Union[DeviceProfile, str, Path], candidates: Sequence[Union[Candidate, Mapping[str, Any]]],
         constraints: Optional[Constraints] = None, *, power_mode: Union[int, str, None] = None) -> Plan:
    """The candidate to run on ``profile`` (a :class:`DeviceProfile`, a profile name or prefix, or a
    path) at ``power_mode`` (id or name; default the highest), maximizing mean relative accuracy
    within ``constraints``. See :func:`plan_many` for the rules; this is its one-client case."""
    return plan_many([Client(profile, constraints or Constraints(), power_mode)], candidates).clients[0]


# --------------------------------------------------------------------------------------------------
# Text


def _fmt(value: Any) -> str:
    """None -> "-", a mapping -> "k v, ...", a whole number in full, other numbers to 4 digits."""
    if value is None:
        return "-"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_fmt(v)}" for k, v in value.items())
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _format_one(p: Plan) -> list[str]:
    mode = f", power mode {p.power_mode}" if p.power_mode else ""
    head = p.chosen if p.feasible else f"infeasible (closest: {p.closest or 'none'})"
    lines = [f"{p.client + ': ' if p.client and p.client != p.device else ''}{p.device}{mode} -> {head}",
             f"  why: {p.reason}"]
    if p.figures:
        lines.append(f"  figures of {p.chosen or p.closest}:")
        lines += [f"    {k:<15} {_fmt(v):<28} {p.provenance[k]}" for k, v in p.figures.items()]
    lines.append("  candidates:")
    width = max(len(c["name"]) for c in p.candidates)
    lines.append(f"    {'name':<{width}}  {'runtime':<11} {'p50 ms':>8} {'p90 ms':>8} {'mem MB':>8} "
                 f"{'score':>7}  {'latency':<10} status")
    for c in p.candidates:
        lines.append(f"    {c['name']:<{width}}  {c['runtime']:<11} {_fmt(c['latency_ms_p50']):>8} "
                     f"{_fmt(c['latency_ms_p90']):>8} {_fmt(c['peak_memory_mb']):>8} {c['score']:>7.4f}  "
                     f"{_tag(c['provenance']['latency_ms_p90']):<10} {c['status']}")
    return lines


def format_plan(plan: Union[Plan, MultiPlan]) -> str:
    """A plan as text for a terminal: the choice, the reason, the figures with their provenance,
    and every candidate's figures and status."""
    if isinstance(plan, Plan):
        return "\n".join(_format_one(plan))
    lines = [f"Plan for {len(plan.clients)} clients: {'feasible' if plan.feasible else 'infeasible'}"]
    for name, t in plan.shared.items():
        lines.append(f"  shared {name}: {_fmt(t['total'])} of {_fmt(t['limit'])}")
    if not plan.feasible:
        lines.append(f"  why: {plan.reason}")
    for p in plan.clients:
        lines += ["", *_format_one(p)]
    return "\n".join(lines)
