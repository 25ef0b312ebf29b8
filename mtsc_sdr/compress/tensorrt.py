"""TensorRT engines for the client's encode: built from its ONNX graph, run through torch's CUDA.

Why engines are built on the target
    A TensorRT engine is a plan of kernels chosen by timing them on one GPU with one TensorRT
    version: it is not portable across GPU models (compute capability, SM count, memory) or
    TensorRT releases, and the runtime refuses or misbehaves on a foreign plan. So the portable
    artefact is the ONNX graph, and :func:`build_engine` runs on the device that will run the
    engine (a Jetson, or any NVIDIA GPU). The build writes a JSON sidecar next to the engine
    (``<engine>.json``: GPU name, compute capability, TensorRT version, precision, input shape
    ranges, the ONNX file's sha256) and :class:`TensorRTSession` refuses an engine whose sidecar
    names another GPU model or TensorRT version, with a message that says to rebuild it.

Why explicit Q/DQ for int8
    TensorRT 10 deprecates implicit quantization (``IInt8Calibrator`` and its kin since 10.1,
    the ``INT8`` builder flag since 10.12; TensorRT 11 removes both). An int8 engine is therefore
    built from a graph that already holds ``QuantizeLinear`` / ``DequantizeLinear`` pairs (static
    post-training quantization done on the ONNX side, or quantization-aware training). TensorRT
    keeps those scales as they are and builds a strongly typed network: no precision flags, the
    graph's own types. TensorRT supports symmetric quantization only, so the graph's zero points
    must be 0 (int8, symmetric activations and weights), and its ``DequantizeLinear`` takes int8 /
    fp8 / int4, so biases stay float (not int32). :func:`build_engine` checks all this with the
    ``onnx`` package before it touches TensorRT (:func:`has_qdq`, :func:`qdq_problems`).

Precisions
    * ``fp32``: a strongly typed network of the fp32 graph, TF32 off (the results are fp32's).
    * ``fp16``: the builder may pick fp16 kernels (``BuilderFlag.FP16`` on a weakly typed
      network; the engine's inputs and outputs keep the graph's types). TensorRT 11 removed this
      flag: there, give it a graph already cast to fp16 and build it at ``fp32``.
    * ``int8``: the Q/DQ graph, strongly typed (see above).

Dynamic dimensions (the batch ``B``, a question's length ``T``) need an optimization profile:
a (min, opt, max) shape per input. :func:`derive_shape_ranges` reads them off the ONNX graph's
inputs (symbolic dims get ranges, static dims stay fixed); callers can override per dim name or
per input.

The session (:class:`TensorRTSession`) has the call surface the ONNX Runtime session has here:
``input_names``, ``output_names`` and ``run(output_names, feed) -> list[np.ndarray]``. Device
buffers are torch CUDA tensors (torch's CUDA is how a Jetson's PyTorch wheel reaches the GPU;
no pycuda), and the engine runs on torch's current stream.

:func:`ensure_engine` reuses an engine built here from the same graph, else builds it;
:func:`tensorrt_encoder` is the client's ``tensorrt`` runtime (:mod:`.runtimes`) on top.

``tensorrt`` and ``torch`` are imported inside the functions that need them; the pure logic
(shape ranges, Q/DQ detection, the sidecar check, dtype mapping, feed validation) needs neither.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
import warnings
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .artifact import file_sha256

PRECISIONS = ("fp32", "fp16", "int8")

#: (min, opt, max) of a symbolic leading (batch) dimension.
DEFAULT_BATCH_RANGE = (1, 1, 8)
#: (min, opt, max) of any other symbolic dimension (a question's tokens: the default model keeps 24).
DEFAULT_SEQUENCE_RANGE = (1, 24, 64)

SIDECAR_FORMAT = "mtsc-sdr/tensorrt-engine/1"

INT8_NEEDS_QDQ = ("implicit calibration is deprecated in TensorRT 10; quantize the graph with Q/DQ first "
                  "(mtsc-sdr compress ... int8-static)")

_QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})
_ONNX_DOMAINS = frozenset({"", "ai.onnx"})

Shape = tuple[int, ...]
ShapeRange = tuple[Shape, Shape, Shape]


class EngineCompatibilityError(RuntimeError):
    """The engine was built for another GPU model or TensorRT version (or its sidecar is missing)."""


# ---------------------------------------------------------------------------------------------
# dtype mapping (TensorRT DataType member names -> numpy / torch)
# ---------------------------------------------------------------------------------------------

#: ``tensorrt.DataType`` member name -> (numpy dtype name, torch dtype attribute name). ``BF16`` has
#: no numpy type: it travels as bfloat16 on the device and comes back to the host as float32.
TRT_IO_DTYPES: dict[str, tuple[str, str]] = {
    "FLOAT": ("float32", "float32"),
    "HALF": ("float16", "float16"),
    "BF16": ("float32", "bfloat16"),
    "INT8": ("int8", "int8"),
    "INT32": ("int32", "int32"),
    "INT64": ("int64", "int64"),
    "BOOL": ("bool", "bool"),
    "UINT8": ("uint8", "uint8"),
}

#: ONNX TensorProto elem_type -> numpy dtype name, for the graph's inputs.
_ONNX_ELEM_NUMPY = {1: "float32", 2: "uint8", 3: "int8", 5: "int16", 6: "int32", 7: "int64", 9: "bool",
                    10: "float16", 11: "float64", 12: "uint32", 13: "uint64"}


def io_dtypes(trt_dtype_name: str, tensor: str = "?") -> tuple[np.dtype, str]:
    """A TensorRT I/O tensor's ``DataType`` name (``"FLOAT"``, ``"INT64"``, ...) -> (numpy dtype of
    the host arrays, name of the torch dtype of the device buffer).

    Raises ``TypeError`` naming ``tensor`` for types that cannot cross the host boundary here
    (FP8, INT4, FP4, E8M0).
    """
    try:
        np_name, torch_name = TRT_IO_DTYPES[trt_dtype_name]
    except KeyError:
        raise TypeError(f"tensor {tensor!r}: TensorRT type {trt_dtype_name} is not supported as an engine input "
                        f"or output here (supported: {', '.join(TRT_IO_DTYPES)})") from None
    return np.dtype(np_name), torch_name


# ---------------------------------------------------------------------------------------------
# ONNX graph inspection: inputs, shape ranges, Q/DQ
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class OnnxInput:
    """One graph input: ``dims`` holds an int for a static dim, the symbol (str) for a named dynamic
    dim, ``None`` for an unnamed dynamic dim."""

    name: str
    dtype: str
    dims: tuple[int | str | None, ...]


def _load_onnx(model: Any):
    """An ``onnx.ModelProto`` from a proto or a path (graph only: external weights are not read)."""
    import onnx

    if isinstance(model, onnx.ModelProto):
        return model
    path = Path(model)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX graph not found: {path}")
    return onnx.load(str(path), load_external_data=False)


def onnx_inputs(model: Any) -> list[OnnxInput]:
    """The graph's real inputs (initializers listed as inputs by old exporters are left out), in
    graph order. ``model``: an ``onnx.ModelProto`` or a path."""
    proto = _load_onnx(model)
    initializers = {t.name for t in proto.graph.initializer}
    out = []
    for vi in proto.graph.input:
        if vi.name in initializers:
            continue
        tt = vi.type.tensor_type
        dims: list[int | str | None] = []
        for d in tt.shape.dim:
            if d.HasField("dim_value"):
                dims.append(int(d.dim_value))
            elif d.HasField("dim_param") and d.dim_param:
                dims.append(d.dim_param)
            else:
                dims.append(None)
        out.append(OnnxInput(vi.name, _ONNX_ELEM_NUMPY.get(tt.elem_type, f"onnx-elem-{tt.elem_type}"), tuple(dims)))
    return out


def _check_range(what: str, r: Sequence[int]) -> tuple[int, int, int]:
    if len(r) != 3:
        raise ValueError(f"{what}: a range is (min, opt, max), got {tuple(r)!r}")
    lo, opt, hi = (int(v) for v in r)
    if not 1 <= lo <= opt <= hi:
        raise ValueError(f"{what}: need 1 <= min <= opt <= max, got {(lo, opt, hi)}")
    return lo, opt, hi


def derive_shape_ranges(model: Any, *, dim_ranges: Mapping[str, Sequence[int]] | None = None,
                        shape_ranges: Mapping[str, Sequence[Sequence[int]]] | None = None,
                        batch_range: Sequence[int] = DEFAULT_BATCH_RANGE,
                        sequence_range: Sequence[int] = DEFAULT_SEQUENCE_RANGE) -> dict[str, ShapeRange]:
    """The optimization profile of a graph: input name -> (min_shape, opt_shape, max_shape).

    Per input dimension:

    * static (``dim_value``): fixed, min = opt = max;
    * symbolic named ``s`` with ``s`` in ``dim_ranges``: that (min, opt, max), so one symbol gets
      one range in every input that uses it (``{"T": (1, 24, 64)}``);
    * otherwise symbolic in position 0 (the batch): ``batch_range``; elsewhere (sequence dims):
      ``sequence_range``.

    ``shape_ranges`` (input name -> (min_shape, opt_shape, max_shape)) replaces the derived range
    of the inputs it names; it must keep the graph's rank and static dims. Raises ``ValueError``
    naming the input (or the dim) on a malformed range or an unknown input name.
    """
    inputs = onnx_inputs(model)
    names = [i.name for i in inputs]
    dim_ranges = {k: _check_range(f"dim_ranges[{k!r}]", v) for k, v in (dim_ranges or {}).items()}
    batch = _check_range("batch_range", batch_range)
    seq = _check_range("sequence_range", sequence_range)
    unknown = sorted(set(shape_ranges or {}) - set(names))
    if unknown:
        raise ValueError(f"shape_ranges names {', '.join(map(repr, unknown))}, not an input of the graph "
                         f"(inputs: {', '.join(names)})")
    out: dict[str, ShapeRange] = {}
    for inp in inputs:
        if shape_ranges and inp.name in shape_ranges:
            out[inp.name] = _check_shape_range(inp, shape_ranges[inp.name])
            continue
        lo, opt, hi = [], [], []
        for pos, d in enumerate(inp.dims):
            if isinstance(d, int):
                r = (d, d, d)
            elif d is not None and d in dim_ranges:
                r = dim_ranges[d]
            else:
                r = batch if pos == 0 else seq
            lo.append(r[0])
            opt.append(r[1])
            hi.append(r[2])
        out[inp.name] = (tuple(lo), tuple(opt), tuple(hi))
    return out


def _check_shape_range(inp: OnnxInput, r: Sequence[Sequence[int]]) -> ShapeRange:
    """A caller's (min, opt, max) shapes for ``inp``, checked against the graph's rank and static dims."""
    if len(r) != 3:
        raise ValueError(f"shape_ranges[{inp.name!r}]: give (min_shape, opt_shape, max_shape), got {r!r}")
    lo, opt, hi = (tuple(int(v) for v in s) for s in r)
    rank = len(inp.dims)
    for label, s in (("min", lo), ("opt", opt), ("max", hi)):
        if len(s) != rank:
            raise ValueError(f"shape_ranges[{inp.name!r}]: {label} shape {s} has rank {len(s)}, the graph's input "
                             f"has rank {rank} {_dims_text(inp.dims)}")
    for pos, d in enumerate(inp.dims):
        if not 1 <= lo[pos] <= opt[pos] <= hi[pos]:
            raise ValueError(f"shape_ranges[{inp.name!r}]: dim {pos} needs 1 <= min <= opt <= max, "
                             f"got {(lo[pos], opt[pos], hi[pos])}")
        if isinstance(d, int) and not lo[pos] == opt[pos] == hi[pos] == d:
            raise ValueError(f"shape_ranges[{inp.name!r}]: dim {pos} is static ({d}) in the graph, got "
                             f"{(lo[pos], opt[pos], hi[pos])}")
    return lo, opt, hi


def _dims_text(dims: Iterable[int | str | None]) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in dims) + ")"


def _walk_nodes(graph) -> Iterable[Any]:
    """Every node of ``graph`` and of its subgraphs (If / Loop / Scan bodies)."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from _walk_nodes(attr.g)
            for g in attr.graphs:
                yield from _walk_nodes(g)


def count_qdq_nodes(model: Any) -> int:
    """Number of ONNX-domain ``QuantizeLinear`` / ``DequantizeLinear`` nodes in the graph, its
    subgraphs and its local functions. ``model``: an ``onnx.ModelProto`` or a path."""
    proto = _load_onnx(model)
    nodes = list(_walk_nodes(proto.graph))
    for fn in proto.functions:
        nodes.extend(fn.node)
    return sum(1 for n in nodes if n.op_type in _QDQ_OPS and n.domain in _ONNX_DOMAINS)


def has_qdq(model: Any) -> bool:
    """Whether the graph is explicitly quantized (holds Q/DQ nodes): what an int8 engine needs."""
    return count_qdq_nodes(model) > 0


def qdq_problems(model: Any) -> list[str]:
    """What TensorRT's ONNX parser cannot take in a Q/DQ graph, one line per node (empty: none seen).

    TensorRT quantizes symmetrically (every zero point 0) to int8 / fp8 / int4, so a zero point
    given as a non-zero or uint8 / int32 initializer, or a ``DequantizeLinear`` of an int32
    initializer (a bias quantized to int32, ``quantize_static``'s default; pass
    ``extra_options={"QuantizeBias": False}``) is reported. Only initializers are inspected (the
    values of external-data zero points are not read).
    """
    from onnx import TensorProto, numpy_helper

    ok_types = {TensorProto.INT8, TensorProto.FLOAT8E4M3FN, getattr(TensorProto, "INT4", -1)}
    proto = _load_onnx(model)
    inits = {t.name: t for t in proto.graph.initializer}
    problems = []
    for node in _walk_nodes(proto.graph):
        if node.op_type not in _QDQ_OPS or node.domain not in _ONNX_DOMAINS:
            continue
        label = f"{node.op_type} {node.name or node.output[0]!r}"
        x = inits.get(node.input[0]) if node.op_type == "DequantizeLinear" else None
        if x is not None and x.data_type not in ok_types:
            problems.append(f"{label}: dequantizes a {TensorProto.DataType.Name(x.data_type).lower()} initializer "
                            f"(TensorRT takes int8, fp8, int4; keep biases in float: quantize_static(..., "
                            f"extra_options={{'QuantizeBias': False}}))")
            continue
        zp = inits.get(node.input[2]) if len(node.input) > 2 else None
        if zp is None:
            continue
        if zp.data_type not in ok_types:
            problems.append(f"{label}: {TensorProto.DataType.Name(zp.data_type).lower()} zero point; TensorRT takes "
                            f"int8 (QuantType.QInt8), fp8 or int4")
        elif zp.data_location != TensorProto.EXTERNAL and numpy_helper.to_array(zp).astype(np.float32).any():
            problems.append(f"{label}: non-zero zero point; TensorRT quantizes symmetrically "
                            f"(ActivationSymmetric / WeightSymmetric)")
    return problems


# ---------------------------------------------------------------------------------------------
# Sidecar: which device and TensorRT built an engine
# ---------------------------------------------------------------------------------------------

def sidecar_path(engine_path: str | Path) -> Path:
    """``<engine>.json`` beside the engine."""
    return Path(str(engine_path) + ".json")


def read_sidecar(engine_path: str | Path) -> dict:
    """The engine's sidecar; ``EngineCompatibilityError`` when it is missing or unreadable."""
    path = sidecar_path(engine_path)
    if not path.is_file():
        raise EngineCompatibilityError(
            f"{path} is missing: without it nothing says which GPU and TensorRT built {engine_path}. Rebuild the "
            f"engine on this device (mtsc-sdr compress export --format tensorrt), or open it with check_device=False")
    try:
        meta = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise EngineCompatibilityError(f"{path}: not a readable JSON sidecar ({exc})") from exc
    if not isinstance(meta, dict):
        raise EngineCompatibilityError(f"{path}: not a JSON object")
    return meta


def check_engine_compatible(meta: Mapping[str, Any], *, device_name: str, compute_capability: str,
                            tensorrt_version: str, engine: str = "the engine") -> None:
    """Refuse an engine built on another GPU model or with another TensorRT version.

    ``meta``: the engine's sidecar; the keyword arguments describe this machine (``compute_capability``
    as ``"major.minor"``, e.g. ``"8.7"`` for Jetson Orin). Raises :class:`EngineCompatibilityError`
    naming both sides; a sidecar that recorded ``"unknown"`` for the GPU gives a ``UserWarning``
    instead (nothing to compare).
    """
    if meta.get("format") != SIDECAR_FORMAT:
        raise EngineCompatibilityError(f"{engine}: sidecar format {meta.get('format')!r}, expected {SIDECAR_FORMAT!r}")
    for key in ("device_name", "compute_capability", "tensorrt_version"):
        if not isinstance(meta.get(key), str):
            raise EngineCompatibilityError(f"{engine}: sidecar field {key!r} is missing or not a string")
    rebuild = "rebuild it on this device with mtsc-sdr compress export --format tensorrt"
    built_gpu = (meta["device_name"], meta["compute_capability"])
    if "unknown" in built_gpu:
        warnings.warn(f"{engine}: its sidecar does not name the GPU that built it; cannot check that it suits "
                      f"{device_name} (sm {compute_capability})", UserWarning, stacklevel=2)
    elif built_gpu != (device_name, compute_capability):
        raise EngineCompatibilityError(
            f"{engine} was built on {meta['device_name']} (compute capability {meta['compute_capability']}), this GPU "
            f"is {device_name} (compute capability {compute_capability}): TensorRT engines are specific to the GPU "
            f"model that built them; {rebuild}")
    if meta["tensorrt_version"] != tensorrt_version:
        raise EngineCompatibilityError(
            f"{engine} was built with TensorRT {meta['tensorrt_version']}, this is TensorRT {tensorrt_version}: "
            f"engines are specific to the TensorRT version that built them; {rebuild}")


# ---------------------------------------------------------------------------------------------
# Feed validation
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TensorSpec:
    """An engine input: host ``dtype``, ``shape`` with -1 for a dynamic dim, and the optimization
    profile's ``min_shape`` / ``max_shape`` (equal to ``shape`` where static)."""

    name: str
    dtype: np.dtype
    shape: Shape
    min_shape: Shape
    max_shape: Shape


def validate_feed(feed: Mapping[str, Any], specs: Sequence[TensorSpec]) -> dict[str, np.ndarray]:
    """Check a feed against the engine's inputs; returns name -> C-contiguous array of the engine's dtype.

    Every input must be fed, and nothing else; ranks and static dims must match; dynamic dims must
    lie in the profile's [min, max]; the dtype must be the engine's, except that integers may go to
    a narrower integer input when every value fits (int64 ids into an int32 input). Raises
    ``ValueError`` naming the input.
    """
    by_name = {s.name: s for s in specs}
    missing = [n for n in by_name if n not in feed]
    if missing:
        raise ValueError(f"missing input {', '.join(map(repr, missing))}; the engine's inputs are "
                         f"{', '.join(by_name)}")
    extra = [n for n in feed if n not in by_name]
    if extra:
        raise ValueError(f"unknown input {', '.join(map(repr, extra))}; the engine's inputs are {', '.join(by_name)}")
    out = {}
    for name, spec in by_name.items():
        arr = np.asarray(feed[name])
        if arr.ndim != len(spec.shape):
            raise ValueError(f"input {name!r}: rank {arr.ndim} (shape {arr.shape}), the engine expects rank "
                             f"{len(spec.shape)} {_dims_text('?' if d < 0 else d for d in spec.shape)}")
        for pos, (n, d, lo, hi) in enumerate(zip(arr.shape, spec.shape, spec.min_shape, spec.max_shape)):
            if d >= 0 and n != d:
                raise ValueError(f"input {name!r}: dim {pos} is {n}, the engine's is static {d} (shape {arr.shape})")
            if not lo <= n <= hi:
                raise ValueError(f"input {name!r}: dim {pos} is {n}, outside the engine's profile range "
                                 f"[{lo}, {hi}] (shape {arr.shape}); rebuild with a wider shape range")
        out[name] = np.ascontiguousarray(_cast_feed(name, arr, spec.dtype))
    return out


def _cast_feed(name: str, arr: np.ndarray, want: np.dtype) -> np.ndarray:
    if arr.dtype == want:
        return arr
    if arr.dtype.kind in "iu" and want.kind in "iu":
        info = np.iinfo(want)
        if arr.size == 0 or (int(arr.min()) >= info.min and int(arr.max()) <= info.max):
            return arr.astype(want)
        raise ValueError(f"input {name!r}: {arr.dtype} values in [{arr.min()}, {arr.max()}] do not fit the "
                         f"engine's {want}")
    raise ValueError(f"input {name!r}: dtype {arr.dtype}, the engine expects {want}")


# ---------------------------------------------------------------------------------------------
# Device and TensorRT
# ---------------------------------------------------------------------------------------------

def gpu_available() -> tuple[bool, str]:
    """(True, "") when ``import tensorrt`` works and torch sees a CUDA GPU; else (False, reason),
    the reason hardware tests skip with."""
    reasons = []
    try:
        importlib.import_module("tensorrt")
    except (ImportError, OSError) as exc:
        reasons.append(f"TensorRT is not importable ({exc}); it comes with JetPack on a Jetson, "
                       f"elsewhere `pip install tensorrt` on a machine with an NVIDIA GPU")
    try:
        import torch
    except ImportError as exc:
        reasons.append(f"torch is not importable ({exc})")
    else:
        if not torch.cuda.is_available():
            reasons.append(f"torch {torch.__version__} sees no CUDA GPU (torch.cuda.is_available() is False; "
                           f"CUDA build: {torch.version.cuda or 'none, a CPU-only wheel'})")
    return (not reasons, "; ".join(reasons))


def device_identity() -> tuple[str, str]:
    """(GPU name, compute capability "major.minor") of the current CUDA device, from torch.cuda or
    else cuda-python's runtime API (TensorRT itself does not report them); ("unknown", "unknown")
    when neither can tell."""
    try:
        import torch

        if torch.cuda.is_available():
            idx = torch.cuda.current_device()
            major, minor = torch.cuda.get_device_capability(idx)
            return torch.cuda.get_device_name(idx), f"{major}.{minor}"
    except Exception:                                    # no usable torch.cuda: ask the next source
        pass
    try:
        try:
            from cuda.bindings import runtime as cudart
        except ImportError:
            from cuda import cudart
        err, dev = cudart.cudaGetDevice()
        err2, prop = cudart.cudaGetDeviceProperties(dev)
        if int(err) == 0 and int(err2) == 0:
            name = prop.name.decode(errors="replace") if isinstance(prop.name, bytes) else str(prop.name)
            return name.rstrip("\x00").strip(), f"{prop.major}.{prop.minor}"
    except Exception:                                    # no cuda-python, or no device
        pass
    return "unknown", "unknown"


def _import_tensorrt():
    try:
        import tensorrt as trt
    except (ImportError, OSError) as exc:
        raise RuntimeError(f"TensorRT is not importable ({exc}): engines are built and run on the device that has "
                           f"the GPU (JetPack on a Jetson, `pip install tensorrt` elsewhere)") from exc
    return trt


_LOGGER = None


def _logger(trt):
    """The process's one TensorRT logger (TensorRT keeps the first one it is given): prints warnings
    and errors to stderr and keeps the latest errors for the messages this module raises."""
    global _LOGGER
    if _LOGGER is None:
        worst = int(trt.ILogger.Severity.WARNING)
        errors = (int(trt.ILogger.Severity.INTERNAL_ERROR), int(trt.ILogger.Severity.ERROR))

        class _RecordingLogger(trt.ILogger):
            def __init__(self):
                trt.ILogger.__init__(self)
                self.errors: deque[str] = deque(maxlen=20)
                self.n_errors = 0

            def log(self, severity, msg):
                level = int(severity)
                if level in errors:
                    self.errors.append(str(msg))
                    self.n_errors += 1
                if level <= worst:
                    print(f"[TensorRT] {getattr(severity, 'name', level)}: {msg}", file=sys.stderr)

        _LOGGER = _RecordingLogger()
    return _LOGGER


def _errors_since(logger, mark: int) -> str:
    """TensorRT's error messages logged since ``logger.n_errors`` was ``mark``, as a message tail."""
    new = min(logger.n_errors - mark, len(logger.errors))
    errs = list(logger.errors)[len(logger.errors) - new:] if new > 0 else []
    return ("; TensorRT said: " + " | ".join(errs)) if errs else ""


def build_engine(onnx_path: str | Path, engine_path: str | Path, *, precision: str = "fp16",
                 shape_ranges: Mapping[str, Sequence[Sequence[int]]] | None = None,
                 dim_ranges: Mapping[str, Sequence[int]] | None = None, workspace_mb: int = 1024) -> dict:
    """Build a TensorRT engine from an ONNX graph on this device; writes ``engine_path`` and its
    sidecar ``<engine_path>.json``.

    ``precision``: ``"fp32"``, ``"fp16"`` or ``"int8"`` (the graph must hold Q/DQ nodes; checked
    before TensorRT is touched, ``ValueError`` otherwise). ``shape_ranges``: input name ->
    (min_shape, opt_shape, max_shape) for inputs whose derived range (:func:`derive_shape_ranges`,
    with ``dim_ranges`` per dim symbol, e.g. ``{"T": (1, 24, 64)}``) does not suit.
    ``workspace_mb``: the builder's workspace memory pool, MiB.

    Returns the sidecar's content: ``engine_path``, ``precision``, ``tensorrt_version``,
    ``device_name``, ``compute_capability``, ``build_s`` (parse + build, seconds), ``engine_bytes``,
    ``onnx_sha256``, ``shape_ranges``, ``inputs``, ``outputs``. Parser failures raise
    ``RuntimeError`` with every parser error.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if int(workspace_mb) < 1:
        raise ValueError(f"workspace_mb must be >= 1, got {workspace_mb}")
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    proto = _load_onnx(onnx_path)
    if precision == "int8" and not has_qdq(proto):
        raise ValueError(f"{onnx_path}: int8 needs a graph with QuantizeLinear/DequantizeLinear nodes and this one "
                         f"has none: {INT8_NEEDS_QDQ}")
    if precision == "int8":
        problems = qdq_problems(proto)
        if problems:
            raise ValueError(f"{onnx_path}: {len(problems)} Q/DQ node(s) TensorRT cannot take:\n  "
                             + "\n  ".join(problems[:10]) + ("\n  ..." if len(problems) > 10 else ""))
    ranges = derive_shape_ranges(proto, dim_ranges=dim_ranges, shape_ranges=shape_ranges)
    del proto

    trt = _import_tensorrt()
    if precision == "fp16" and not hasattr(trt.BuilderFlag, "FP16"):
        raise RuntimeError(f"TensorRT {trt.__version__} has no BuilderFlag.FP16 (removed in TensorRT 11, where every "
                           f"network is strongly typed): cast the ONNX graph to fp16 first and build it at fp32")
    logger = _logger(trt)
    mark = logger.n_errors
    t0 = time.perf_counter()
    builder = trt.Builder(logger)
    strongly_typed = precision in ("fp32", "int8")
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if strongly_typed else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise RuntimeError(f"TensorRT's ONNX parser rejected {onnx_path} ({len(errors)} error(s)):\n  "
                           + "\n  ".join(errors) + _errors_since(logger, mark))

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) << 20)
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    elif hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)      # the graph says fp32: no TF32 inner products

    inputs = [network.get_input(i) for i in range(network.num_inputs)]
    outputs = [network.get_output(i).name for i in range(network.num_outputs)]
    dynamic = [t for t in inputs if any(d < 0 for d in t.shape)]
    if dynamic:
        profile = builder.create_optimization_profile()
        for t in dynamic:
            if t.name not in ranges:
                raise RuntimeError(f"TensorRT's network has a dynamic input {t.name!r} the ONNX graph's inputs do not "
                                   f"list ({', '.join(ranges)})")
            lo, opt, hi = ranges[t.name]
            profile.set_shape(t.name, lo, opt, hi)
        config.add_optimization_profile(profile)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT could not build an engine from {onnx_path} at {precision}"
                           + _errors_since(logger, mark))
    blob = bytes(memoryview(serialized))
    build_s = time.perf_counter() - t0
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    engine_path.write_bytes(blob)

    device_name, cc = device_identity()
    info = {
        "format": SIDECAR_FORMAT,
        "engine_path": str(engine_path),
        "precision": precision,
        "tensorrt_version": trt.__version__,
        "device_name": device_name,
        "compute_capability": cc,
        "build_s": round(build_s, 3),
        "engine_bytes": len(blob),
        "onnx_path": str(onnx_path),
        "onnx_sha256": file_sha256(onnx_path),
        "shape_ranges": {k: [list(s) for s in v] for k, v in ranges.items()},
        "inputs": [t.name for t in inputs],
        "outputs": outputs,
    }
    sidecar_path(engine_path).write_text(json.dumps(info, indent=2) + "\n")
    return info


class TensorRTSession:
    """Runs a serialized engine with the ONNX Runtime session's call surface.

    ``TensorRTSession(engine_path)`` checks the sidecar against this GPU and TensorRT (unless
    ``check_device=False``), deserializes the engine on the current CUDA device and makes one
    execution context. ``run`` is not thread-safe (one context); open one session per thread.
    """

    def __init__(self, engine_path: str | Path, *, check_device: bool = True):
        ok, reason = gpu_available()
        if not ok:
            raise RuntimeError(f"cannot run a TensorRT engine here: {reason}")
        import torch

        trt = _import_tensorrt()
        self.engine_path = Path(engine_path)
        if not self.engine_path.is_file():
            raise FileNotFoundError(f"TensorRT engine not found: {self.engine_path}")
        self.meta: dict = {}
        if check_device:
            self.meta = read_sidecar(self.engine_path)
            name, cc = device_identity()
            check_engine_compatible(self.meta, device_name=name, compute_capability=cc,
                                    tensorrt_version=trt.__version__, engine=str(self.engine_path))
        self._trt = trt
        self._torch = torch
        self.device = torch.device("cuda", torch.cuda.current_device())
        logger = _logger(trt)
        mark = logger.n_errors
        self._runtime = trt.Runtime(logger)
        self._engine = self._runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
        if self._engine is None:
            raise RuntimeError(f"TensorRT could not deserialize {self.engine_path}" + _errors_since(logger, mark))
        self._context = self._engine.create_execution_context()
        if self._context is None:
            raise RuntimeError(f"TensorRT could not create an execution context for {self.engine_path}"
                               + _errors_since(logger, mark))

        self.input_specs: list[TensorSpec] = []
        self._torch_dtypes: dict[str, Any] = {}
        self._np_dtypes: dict[str, np.dtype] = {}
        outputs = []
        for i in range(self._engine.num_io_tensors):
            name = self._engine.get_tensor_name(i)
            np_dtype, torch_name = io_dtypes(self._engine.get_tensor_dtype(name).name, name)
            self._np_dtypes[name] = np_dtype
            self._torch_dtypes[name] = getattr(torch, torch_name)
            shape = tuple(int(d) for d in self._engine.get_tensor_shape(name))
            if self._engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                lo, hi = shape, shape
                if any(d < 0 for d in shape):
                    prof = self._engine.get_tensor_profile_shape(name, 0)
                    lo, hi = tuple(int(d) for d in prof[0]), tuple(int(d) for d in prof[2])
                self.input_specs.append(TensorSpec(name, np_dtype, shape, lo, hi))
            else:
                outputs.append(name)
        self.input_names: list[str] = [s.name for s in self.input_specs]
        self.output_names: list[str] = outputs

    def run(self, output_names: Sequence[str] | None, feed: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """feed: input name -> host array (validated by :func:`validate_feed`) -> the requested
        outputs (all, in engine order, when ``output_names`` is None) as host numpy arrays."""
        torch = self._torch
        wanted = list(self.output_names if output_names is None else output_names)
        unknown = [n for n in wanted if n not in self.output_names]
        if unknown:
            raise ValueError(f"unknown output {', '.join(map(repr, unknown))}; the engine's outputs are "
                             f"{', '.join(self.output_names)}")
        arrays = validate_feed(feed, self.input_specs)
        ctx = self._context
        logger = _logger(self._trt)
        mark = logger.n_errors
        keep = []                                            # device buffers live until the stream is done
        with torch.cuda.device(self.device):
            stream = torch.cuda.current_stream(self.device)
            for name, arr in arrays.items():
                t = torch.from_numpy(arr).to(self.device, dtype=self._torch_dtypes[name])
                if not ctx.set_input_shape(name, tuple(arr.shape)):
                    raise ValueError(f"input {name!r}: TensorRT refused shape {arr.shape}")
                ctx.set_tensor_address(name, t.data_ptr())
                keep.append(t)
            pending = ctx.infer_shapes()
            if pending:
                raise ValueError(f"TensorRT cannot infer shapes: inputs {', '.join(pending)} are insufficiently "
                                 f"specified")
            outs = {}
            for name in self.output_names:
                shape = tuple(int(d) for d in ctx.get_tensor_shape(name))
                if any(d < 0 for d in shape):
                    raise RuntimeError(f"output {name!r}: shape {shape} is not known after setting the input shapes "
                                       f"(data-dependent outputs are not supported)")
                buf = torch.empty(shape, dtype=self._torch_dtypes[name], device=self.device)
                ctx.set_tensor_address(name, buf.data_ptr())
                outs[name] = buf
            if not ctx.execute_async_v3(stream.cuda_stream):
                raise RuntimeError(f"TensorRT failed to enqueue {self.engine_path}"
                                   + _errors_since(logger, mark))
            stream.synchronize()
        del keep
        return [_to_host(outs[n], self._np_dtypes[n]) for n in wanted]


def _to_host(t, np_dtype: np.dtype) -> np.ndarray:
    """A device tensor -> a numpy copy (bfloat16 comes back as float32)."""
    import torch

    if t.dtype == torch.bfloat16:
        t = t.float()
    return t.cpu().numpy().astype(np_dtype, copy=False)


# ---------------------------------------------------------------------------------------------
# The client's `tensorrt` runtime
# ---------------------------------------------------------------------------------------------

def default_precision(onnx_path: str | Path) -> str:
    """``int8`` for a Q/DQ graph; else ``fp16``, or ``fp32`` where TensorRT has no FP16 flag (11)."""
    if has_qdq(onnx_path):
        return "int8"
    return "fp16" if hasattr(_import_tensorrt().BuilderFlag, "FP16") else "fp32"


def ensure_engine(onnx_path: str | Path, engine_path: str | Path | None = None, *, precision: str | None = None,
                  **build_kwargs) -> Path:
    """The engine of ``onnx_path`` for this device: ``engine_path`` (default
    ``<graph stem>.<precision>.engine`` beside the graph) when its sidecar says it was built here
    (same GPU model and TensorRT version) from this very graph (sha256) at this precision; else
    built now (:func:`build_engine` with ``build_kwargs``). ``precision`` None:
    :func:`default_precision`."""
    onnx_path = Path(onnx_path)
    precision = default_precision(onnx_path) if precision is None else precision
    engine_path = (onnx_path.with_name(f"{onnx_path.stem}.{precision}.engine") if engine_path is None
                   else Path(engine_path))
    if engine_path.is_file() and sidecar_path(engine_path).is_file():
        try:
            meta = read_sidecar(engine_path)
            name, cc = device_identity()
            check_engine_compatible(meta, device_name=name, compute_capability=cc,
                                    tensorrt_version=_import_tensorrt().__version__, engine=str(engine_path))
            if meta.get("precision") == precision and meta.get("onnx_sha256") == file_sha256(onnx_path):
                return engine_path
        except EngineCompatibilityError:
            pass                                             # built elsewhere or stale: build it here
    build_engine(onnx_path, engine_path, precision=precision, **build_kwargs)
    return engine_path


def tensorrt_encoder(client, artifact, threads: int = 1, precision: str | None = None):
    """The ``tensorrt`` runtime of :mod:`.runtimes`: a ``GraphEncoder`` whose sessions are
    :class:`TensorRTSession` s on engines built on this device from the artifact's graphs, on
    first use (:func:`ensure_engine`; kept beside the graphs and reused while they fit)."""
    import torch

    from .graph import dim_ranges
    from .runtimes import GraphEncoder

    ok, reason = gpu_available()
    if not ok:
        raise ValueError(f"runtime 'tensorrt' needs TensorRT and a CUDA GPU: {reason}")
    torch.set_num_threads(threads)
    ranges = dim_ranges(client.cfg)
    return GraphEncoder("tensorrt", client, artifact,
                        lambda path: TensorRTSession(ensure_engine(path, precision=precision, dim_ranges=ranges)))

