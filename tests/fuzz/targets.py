"""The parsers of untrusted input, as fuzz targets: one registry for the hypothesis tests
(``tests/fuzz/``) and the deep fuzzer (``benchmarks/fuzz.py``).

A :class:`Target` is a name, the tuple of error types its parser documents, and ``make``: given a
scratch directory, it builds what the parser needs and returns ``(run, seeds)``. ``run(data)``
feeds ``data`` (bytes) to the real parser, the way the product meets such bytes (a ZeroMQ frame,
a file opened by its loader), then checks what a parse that succeeded promises; ``seeds`` are
valid inputs made by the project's own writers and encoders. :func:`feed` is the one verdict:
the parser either returns or raises one of its documented errors; anything else propagates and
is a failure (a crash). A target's docstring (its ``make`` function's) says what it covers.

Inputs that are several pieces (a message's frames, a recording's two files) are joined by a
separator the pieces never contain (:data:`FRAME_SEP`, a NUL between a JSON meta and its data).

Heavy modules (torch, faiss, flwr) are imported inside ``make``, so listing the targets is cheap
and the fuzzer can import the parsers under atheris' coverage instrumentation.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

Runner = Callable[[bytes], None]

#: Separates the frames of one multipart message in a fuzz input (not UTF-8, not in any seed frame).
FRAME_SEP = b"\xfe\xed\xfa\xce"


@dataclass(frozen=True)
class Target:
    name: str
    #: the error types the parser documents (a parse that fails raises one of these)
    errors: tuple[type[BaseException], ...]
    make: Callable[[Path], tuple[Runner, list[bytes]]]

    @property
    def doc(self) -> str:
        """What the target covers (the first paragraph of its ``make`` docstring)."""
        return " ".join((self.make.__doc__ or "").split("\n\n")[0].split())


def feed(target: Target, run: Runner, data: bytes) -> str | None:
    """Feed ``data``: None when it parsed, else the name of the documented error it raised.
    An undocumented exception propagates (the caller counts it as a crash)."""
    try:
        run(data)
    except target.errors as exc:
        return type(exc).__name__
    return None


def _fresh(directory: Path) -> Path:
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    return directory


# -- link: ZeroMQ messages ------------------------------------------------------------------------


def _messages(work: Path) -> tuple[Runner, list[bytes]]:
    """Tensor/control messages (``link.messages.decode``): the frames of one multipart message
    (JSON header, raw tensor frames) joined by FRAME_SEP; a bad message is a ``_Malformed`` naming
    a MessageStats counter, a good one has tensors of the declared shapes."""
    import numpy as np
    import zmq

    from mtsc_sdr.link import messages

    counters = set(messages.MessageStats().as_dict())

    def run(data: bytes) -> None:
        frames = [zmq.Frame(part) for part in data.split(FRAME_SEP)]
        try:
            msg = messages.decode(frames)
        except messages._Malformed as bad:
            assert bad.counter in counters, bad.counter
            raise
        assert len(msg.tensors) == len(frames) - 1

    seeds = []
    for kind, tensors, meta in (
            ("hello", {}, {"client": "c1", "tasks": ["vqa"]}),
            ("tensor", {"acts": np.arange(12, dtype=np.float32).reshape(3, 4)}, {}),
            ("activations", {"x": np.ones((2, 2), np.complex64), "mask": np.array([True, False]),
                             "n": np.array(7, np.int64)}, {"snr_db": 3.5}),
    ):
        frames = messages.encode(kind, 17, 42, 9123, tensors, meta)
        parts = [bytes(f) if isinstance(f, bytes) else f.tobytes() for f in frames]
        assert not any(FRAME_SEP in p for p in parts)
        seeds.append(FRAME_SEP.join(parts))
    return run, seeds


def _iq(work: Path) -> tuple[Runner, list[bytes]]:
    """IQ messages with gr-zeromq tag headers (``IQPull`` with ``pass_tags``, the one function
    every received message goes through): never raises; every message is either accepted or
    counted as exactly one kind of drop."""
    import numpy as np
    import zmq

    from mtsc_sdr.link import IQPull, Tag, UInt64, encode_tag_header

    ctx = zmq.Context()
    pull = IQPull("inproc://fuzz-iq", pass_tags=True, context=ctx)
    counted = ("messages", "empty_messages", "dropped")

    def run(data: bytes) -> None:
        before = pull.stats.as_dict()
        chunk = pull._accept(zmq.Frame(data))
        after = pull.stats.as_dict()
        assert sum(after[k] - before[k] for k in counted) == 1, (before, after)
        if chunk is not None:
            assert chunk.samples.dtype == np.complex64 and np.isfinite(chunk.samples.view(np.float32)).all()

    samples = (np.arange(8, dtype=np.float32) / 8).astype(np.complex64)
    seeds = [encode_tag_header(0) + samples.tobytes(),
             encode_tag_header(4096, [Tag(4096, "rx_time", (UInt64(12), 0.25)),
                                      Tag(4100, "rx_freq", 2.4e9, "usrp_source")]) + samples.tobytes(),
             encode_tag_header(7, [Tag(9, "burst", {"len": 8, "pdu": np.arange(3, dtype=np.uint8)})])
             + samples[:3].tobytes()]
    return run, seeds


def _pmt(work: Path) -> tuple[Runner, list[bytes]]:
    """GNU Radio PMTs (``link.pmtcodec.loads``): ``PMTDecodeError`` or a value and an offset
    inside the buffer."""
    import numpy as np

    from mtsc_sdr.link.pmtcodec import Pair, UInt64, dumps, loads

    def run(data: bytes) -> None:
        _, end = loads(data)
        assert 0 < end <= len(data)

    seeds = [dumps(v) for v in (
        "rx_time", (UInt64(5), 0.5), {"a": 1, "b": [2.0, 3 + 4j, None, True]},
        Pair({"burst_len": 64}, np.arange(4, dtype=np.uint8)), np.linspace(0, 1, 3).astype(np.complex64),
        -(1 << 40))]
    return run, seeds


def _tag_header(work: Path) -> tuple[Runner, list[bytes]]:
    """gr-zeromq's tag header (``link.tags.decode_tag_header``): ``TagHeaderError`` or tags and
    a header length inside the message."""
    from mtsc_sdr.link import Tag, UInt64, decode_tag_header, encode_tag_header

    def run(data: bytes) -> None:
        _, tags, end = decode_tag_header(data)
        assert end <= len(data) and all(t.offset >= 0 for t in tags)

    seeds = [encode_tag_header(0), encode_tag_header(1 << 40, [Tag(5, "rx_time", (UInt64(1), 0.5))]),
             encode_tag_header(3, [Tag(3, "a", 1), Tag(4, "b", [1.5, "x"], "src")]) + b"\0" * 16]
    return run, seeds


# -- phy: the frame header --------------------------------------------------------------------------


def _frame_header(work: Path) -> tuple[Runner, list[bytes]]:
    """The PHY frame header (``phy.header.decode``): one int8 LLR per QPSK bit slot (zero-padded
    or cut to N_SLOTS); never raises: a failed CRC or an invalid header is (None, ...), a header
    that passes re-encodes to bits whose CRC holds."""
    import numpy as np

    from mtsc_sdr.phy import coding
    from mtsc_sdr.phy import header as hdr

    def run(data: bytes) -> None:
        llr = np.zeros(hdr.N_SLOTS)
        raw = np.frombuffer(data[:hdr.N_SLOTS], dtype=np.int8)
        llr[:raw.size] = raw
        header, version, crc_ok = hdr.decode(llr)
        if header is not None:
            bits = hdr.header_bits(header)
            assert crc_ok and version == header.version
            assert coding.crc16_value(bits[:hdr.N_FIELD_BITS]) == coding.bits_to_int(bits[hdr.N_FIELD_BITS:])

    def llrs(h) -> bytes:
        sym = hdr.encode(h)
        llr = hdr.slot_llrs(sym, np.ones(sym.shape))
        return (np.sign(llr) * 64).astype(np.int8).tobytes()

    seeds = [llrs(hdr.FrameHeader(session_id=s, seq=q, payload_len=n, rate_idx=r, task_id=t))
             for s, q, n, r, t in ((1, 0, 1, 0, 0), (0xBEEF, 65535, 65535, 255, 15), (42, 7, 480, 3, 2))]
    return run, seeds


# -- files --------------------------------------------------------------------------------------------


def _file_runner(path: Path, load: Callable[[Path], object]) -> Runner:
    def run(data: bytes) -> None:
        path.write_bytes(data)
        load(path)
    return run


def _sigmf(work: Path) -> tuple[Runner, list[bytes]]:
    """SigMF recordings (``capture.sigmf_io.read_recording``): the meta file's bytes, a NUL, then
    the data file's; ``RecordingError`` or a recording whose samples read back."""
    import numpy as np

    from mtsc_sdr.capture.sigmf_io import SigMFWriter, read_recording, recording_paths

    meta_path, data_path = recording_paths(work / "rec")

    def run(data: bytes) -> None:
        meta, _, samples = data.partition(b"\0")
        meta_path.write_bytes(meta)
        data_path.write_bytes(samples)
        rec = read_recording(work / "rec")
        for ann in rec.annotations:
            rec.samples(ann["core:sample_start"], ann.get("core:sample_count", 0))
        rec.samples()

    seeds = []
    for i, n in enumerate((0, 16, 40)):
        with SigMFWriter(work / f"seed{i}", sample_rate_sps=1e6, source="fuzz seed", frequency_hz=2.4e9,
                         rx_gain_db=30.0, calibration_id="cal-1", description="a seed") as w:
            w.write((np.arange(n) * (1 + 1j) / 64).astype(np.complex64))
            if n:
                w.annotate(2, 8, "frame", "ok", session=3, snr_db=4.5)
        m, d = recording_paths(work / f"seed{i}")
        seeds.append(m.read_bytes() + b"\0" + d.read_bytes())
    return run, seeds


def _calibration(work: Path) -> tuple[Runner, list[bytes]]:
    """Calibration records (``radio.calibration.load_record``): YAML bytes; ``CalibrationError``
    naming file and field, or a validated record."""
    from mtsc_sdr.radio.calibration import DEFAULT_DIR, load_record, save_record

    root = Path(__file__).resolve().parents[2]
    seeds = []
    for file in sorted((root / DEFAULT_DIR).glob("*.yaml")):
        seeds.append(file.read_bytes())
        rec = load_record(file)
        rec.temperature_c = rec.results.cfo.xo_reference_hz = rec.results.cfo.xo_correction_hz = None
        seeds.append(save_record(rec, work / "seed.yaml").read_bytes())
    return _file_runner(work / "record.yaml", load_record), seeds


def _run_config(work: Path) -> tuple[Runner, list[bytes]]:
    """Run configurations (``runtime.run.load_config``): YAML bytes; ``ConfigError`` naming the
    field, or a validated RunConfig."""
    import yaml

    from mtsc_sdr.config import to_dict
    from mtsc_sdr.runtime.run import RunConfig, load_config

    root = Path(__file__).resolve().parents[2]
    seeds = [yaml.safe_dump(to_dict(RunConfig())).encode()]
    seeds += [(root / "configs" / n).read_bytes() for n in ("sim.yaml", "hil-ci.yaml", "demo.yaml")]
    return _file_runner(work / "run.yaml", lambda p: load_config(str(p))), seeds


def _channel_config(work: Path) -> tuple[Runner, list[bytes]]:
    """Software-channel configurations (``channel.profile.ChannelProfile.from_yaml``): YAML bytes;
    ``ConfigError`` naming the field, or a validated profile."""
    import yaml

    from mtsc_sdr.channel.profile import ChannelProfile

    root = Path(__file__).resolve().parents[2]
    full = ChannelProfile.from_dict({k: {} for k in ("multipath", "fading", "timing", "sro", "cfo", "phase_noise",
                                                     "awgn", "iq_imbalance", "dc_offset")})
    seeds = [yaml.safe_dump(full.to_dict()).encode(), b"rate_sps: 2.0e6\nawgn: {snr_db: 10}\n"]
    seeds += [f.read_bytes() for f in sorted((root / "configs" / "channels").glob("*.yaml"))]
    return _file_runner(work / "channel.yaml", ChannelProfile.from_yaml), seeds


# -- checkpoints ----------------------------------------------------------------------------------------


def _micro_checkpoint(directory: Path) -> Path:
    """A micro model (untrained) saved by ``model.save``: the seed checkpoint (about 4 s)."""
    import torch

    from mtsc_sdr.model import ModelConfig, TextTokenizer, build_model, save
    from mtsc_sdr.model.tokenizer import corpus

    if not (directory / "config.json").is_file():
        torch.manual_seed(0)
        tok = TextTokenizer.train(corpus(n_scenes=10, n_audio=2, n_video=2))
        save(build_model(ModelConfig.micro(), tokenizer=tok), directory)
    return directory


def _checkpoint_file(name: str) -> Callable[[Path], tuple[Runner, list[bytes]]]:
    def make(work: Path) -> tuple[Runner, list[bytes]]:
        from mtsc_sdr.model.checkpoint import load

        seed_dir = _micro_checkpoint(work.parent / "micro-checkpoint-seed")   # shared by the checkpoint targets
        ck = work / "ck"
        shutil.copytree(seed_dir, ck, dirs_exist_ok=True)
        return _file_runner(ck / name, lambda _: load(ck)), [(seed_dir / name).read_bytes()]
    make.__doc__ = (f"Checkpoints (``model.checkpoint.load``): the bytes of ``{name}`` beside a valid micro "
                    f"checkpoint's other files; ``CheckpointMismatch`` saying what, or a loaded model.")
    return make


def _checkpoint_weights(work: Path) -> tuple[Runner, list[bytes]]:
    """Checkpoint weights (``model.checkpoint.load_weights``, what ``load`` reads ``model.safetensors``
    with: the safetensors header and data, every key, shape and dtype checked against the model,
    then copied into it): the file's bytes, loaded into the micro model that ``load`` built once
    from a valid checkpoint's config and tokenizer; ``CheckpointMismatch`` saying what, or the
    model holding exactly the file's tensors.

    The model is built once (building it is most of ``load``'s time and does not read the weights
    file); it is reused as is: a load checks keys, shapes and dtypes only against the model's,
    which a load never changes, and copies nothing unless every check passed."""
    import torch
    from safetensors.torch import load as parse_safetensors

    from mtsc_sdr.model.checkpoint import WEIGHTS, _stored, load, load_weights

    seed_dir = _micro_checkpoint(work.parent / "micro-checkpoint-seed")   # shared by the checkpoint targets
    ck = work / "ck"
    shutil.copytree(seed_dir, ck, dirs_exist_ok=True)
    model = load(ck)
    own, _ = _stored(model)
    shapes = {k: (tuple(v.shape), v.dtype) for k, v in own.items()}
    file = ck / WEIGHTS

    def same(a: torch.Tensor, b: torch.Tensor) -> bool:      # bit for bit (NaNs too)
        return a.detach().numpy().tobytes() == b.numpy().tobytes()

    def run(data: bytes) -> None:
        file.write_bytes(data)
        load_weights(model, file)
        now, _ = _stored(model)
        assert {k: (tuple(v.shape), v.dtype) for k, v in now.items()} == shapes
        tensors = parse_safetensors(data)
        assert tensors.keys() == own.keys()
        assert all(same(now[k], v.to(now[k].dtype)) for k, v in tensors.items())

    return run, [(seed_dir / WEIGHTS).read_bytes()]


# -- compression manifests ----------------------------------------------------------------------------


def _compress_manifest(work: Path) -> tuple[Runner, list[bytes]]:
    """Compressed client artifacts' manifests (``compress.artifact.read`` with file hashes, then
    the planner's candidate record and ``planner.validate_candidates``): ``manifest.json`` bytes
    beside one graph file; ValueError naming the field, or a planner candidate."""
    from mtsc_sdr.compress.artifact import FORMAT, MANIFEST, VERSION, Artifact, candidate_record, file_sha256, read
    from mtsc_sdr.compress.planner import validate_candidates

    art_dir = work / "artifact"
    (art_dir / "graphs").mkdir(parents=True, exist_ok=True)
    graph = art_dir / "graphs" / "vqa-512.onnx"
    graph.write_bytes(b"not really onnx, but hashed")

    def run(data: bytes) -> None:
        (art_dir / MANIFEST).write_bytes(data)
        art = read(art_dir, verify=True)
        validate_candidates([candidate_record(art.manifest, art_dir)])

    seeds = []
    for technique, runtime in (({"quantization": "int8-dynamic", "pruning": 0.5, "distillation": None,
                                 "recovery_steps": 300}, "onnxruntime"),
                               ({"quantization": "fp32", "distillation": [0]}, "torch")):
        manifest = {"format": FORMAT, "version": VERSION, "name": "seed", "technique": technique,
                    "runtime": runtime, "source": {"checkpoint": "models/default", "identity": {"weights": "ab"}},
                    "budgets": [512], "tasks": ["vqa"], "files": {"graphs/vqa-512.onnx": file_sha256(graph)},
                    "weight_bytes": 1234, "accuracy": {"vqa": 88.5}, "peak_memory_mb": {"x86-cpu": 512.0},
                    "latency_ms": {"x86-cpu": {"p50": 0.61, "p90": 0.75}}, "measured_on": {"x86-cpu": {}}}
        Artifact(art_dir, manifest).save()
        seeds.append((art_dir / MANIFEST).read_bytes())
    return run, seeds


# -- knowledge bases ---------------------------------------------------------------------------------------


def _kb_seed(work: Path):
    """A small knowledge base made by ``KnowledgeBase.add`` with the tests' hash embedder:
    ``(embedder, {file name: bytes})`` of its store and saved index."""
    from mtsc_sdr.rag import KnowledgeBase
    from mtsc_sdr.rag.kb import STORE_FILE
    from tests.rag.fakes import HashEmbedder

    embedder = HashEmbedder(dim=8)
    seed = _fresh(work / "kb-seed")
    with KnowledgeBase.open(seed, embedder) as kb:
        kb.add([{"id": "d1", "text": "a red circle left of a blue square", "metadata": {"scene": 3}},
                {"id": "d2", "text": " ".join(f"w{i}" for i in range(150)), "metadata": {}}])
        kb._store.checkpoint()
    files = {f.name: f.read_bytes() for f in seed.iterdir() if f.name in (STORE_FILE, "index.faiss", "index.json")}
    return embedder, files


def _kb_runner(work: Path, embedder, files: dict[str, bytes], fuzzed: str) -> Runner:
    import numpy as np

    from mtsc_sdr.rag import KnowledgeBase

    kb_dir = work / "kb"

    def run(data: bytes) -> None:
        _fresh(kb_dir)
        for name, content in files.items():
            (kb_dir / name).write_bytes(content)
        (kb_dir / fuzzed).write_bytes(data)
        with KnowledgeBase.open(kb_dir, embedder, create=False) as kb:
            for doc_id in kb._store.document_ids():
                kb.get(doc_id)
            kb.query_vectors(np.eye(1, embedder.dim, dtype=np.float32), k=2, where={"scene": 3})
            kb.check()
    return run


def _kb_store(work: Path) -> tuple[Runner, list[bytes]]:
    """Knowledge-base stores (``rag.KnowledgeBase.open`` of a ``store.sqlite``, then every
    document, a filtered query and the consistency check): the SQLite file's bytes;
    ``KnowledgeBaseError`` (StoreError, EmbedderMismatch) or a usable base."""
    embedder, files = _kb_seed(work)
    return _kb_runner(work, embedder, files, "store.sqlite"), [files["store.sqlite"]]


def _kb_manifest(work: Path) -> tuple[Runner, list[bytes]]:
    """Knowledge-base index sidecars (``index.json``, read by ``KnowledgeBase.open``): any bytes
    are a valid, stale or unreadable sidecar, whose index is used or rebuilt; nothing raises.
    (``index.faiss`` itself is not a target: faiss trusts its length fields, see benchmarks/FUZZ.md.)"""
    embedder, files = _kb_seed(work)
    return _kb_runner(work, embedder, files, "index.json"), [files["index.json"]]


# -- federated model updates --------------------------------------------------------------------------------


def _federated_update(work: Path) -> tuple[Runner, list[bytes]]:
    """Federated model updates (``finetune.strategy.CheckedFedAvg.aggregate_train``): a train
    reply's content as Flower's RecordDict protobuf bytes (what a SuperNode sends); bytes Flower
    cannot decode are :class:`UndecodableReply`; every decoded reply is accepted or rejected with
    a reason, never raises."""
    import numpy as np
    from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
    from flwr.common.serde import recorddict_from_proto, recorddict_to_proto
    from flwr.proto.recorddict_pb2 import RecordDict as ProtoRecordDict
    from flwr.supercore.task_identity import TaskIdentity
    from google.protobuf.message import DecodeError

    from mtsc_sdr.finetune.strategy import CheckedFedAvg, encode

    TaskIdentity.run_id, TaskIdentity.task_id, TaskIdentity.node_id = 1, 1, 1   # what a Flower runtime sets
    global_state = {"a.lora_B": np.zeros((3, 2), np.float32), "b.weight": np.ones(4, np.float32)}

    class Grid:
        def get_node_ids(self):
            return [11]

    def run(data: bytes) -> None:
        strategy = CheckedFedAvg(min_available_nodes=1, min_train_nodes=1, max_update_norm=50.0, max_examples=1000)
        (sent,) = strategy.configure_train(1, encode(global_state), ConfigRecord(), Grid())
        try:
            content = recorddict_from_proto(ProtoRecordDict.FromString(data))
        except (DecodeError, ValueError, AttributeError) as exc:
            # Flower's own decoding (upstream: 1.42 raises ValueError / AttributeError for a value
            # whose oneof is unset); the strategy never sees such bytes
            raise UndecodableReply(f"{type(exc).__name__}: {exc}") from None
        reply = Message(content, reply_to=sent)
        arrays, _ = strategy.aggregate_train(1, [reply])
        outcome = strategy.rounds[-1].train.outcomes[11]
        assert outcome.status in ("accepted", "rejected"), outcome
        assert (arrays is not None) == (outcome.status == "accepted")

    seeds = []
    for delta, n in ((0.25, 10), (-1.0, 1)):
        content = RecordDict({
            "arrays": ArrayRecord({k: Array(v + np.float32(delta)) for k, v in global_state.items()}),
            "metrics": MetricRecord({"num-examples": n, "loss": 0.5, "acc": [0.1, 0.2]}),
            "client": ConfigRecord({"partition-id": 3})})
        seeds.append(recorddict_to_proto(content).SerializeToString())
    return run, seeds


class UndecodableReply(ValueError):
    """Bytes that Flower cannot decode into a RecordDict (so no reply reaches the strategy)."""


# -- the registry ---------------------------------------------------------------------------------------------


def _errors(module: str, *names: str) -> Callable[[], tuple[type[BaseException], ...]]:
    def resolve() -> tuple[type[BaseException], ...]:
        import importlib

        mod = importlib.import_module(module)
        return tuple(getattr(mod, n) for n in names)
    return resolve


_SPECS: list[tuple[str, Callable[[], tuple[type[BaseException], ...]], Callable]] = [
    ("message", _errors("mtsc_sdr.link.messages", "_Malformed"), _messages),
    ("iq_message", lambda: (), _iq),
    ("pmt", _errors("mtsc_sdr.link.pmtcodec", "PMTDecodeError"), _pmt),
    ("tag_header", _errors("mtsc_sdr.link.tags", "TagHeaderError"), _tag_header),
    ("frame_header", lambda: (), _frame_header),
    ("sigmf", _errors("mtsc_sdr.capture.sigmf_io", "RecordingError"), _sigmf),
    ("calibration", _errors("mtsc_sdr.radio.calibration", "CalibrationError"), _calibration),
    ("run_config", _errors("mtsc_sdr.config", "ConfigError"), _run_config),
    ("channel_config", _errors("mtsc_sdr.config", "ConfigError"), _channel_config),
    ("checkpoint_config", _errors("mtsc_sdr.model.checkpoint", "CheckpointMismatch"), _checkpoint_file("config.json")),
    ("checkpoint_tokenizer", _errors("mtsc_sdr.model.checkpoint", "CheckpointMismatch"),
     _checkpoint_file("tokenizer.json")),
    ("checkpoint_weights", _errors("mtsc_sdr.model.checkpoint", "CheckpointMismatch"), _checkpoint_weights),
    # documented as ValueError: "ValueError naming what is wrong" (read, validate_candidates)
    ("compress_manifest", lambda: (ValueError,), _compress_manifest),
    ("kb_store", _errors("mtsc_sdr.rag.errors", "KnowledgeBaseError"), _kb_store),
    ("kb_manifest", lambda: (), _kb_manifest),
    ("federated_update", lambda: (UndecodableReply,), _federated_update),
]

#: every target's name, in a fixed order
NAMES: tuple[str, ...] = tuple(name for name, _, _ in _SPECS)


def get(name: str) -> Target:
    """The target ``name`` (its error types imported now); KeyError listing the names."""
    for n, errors, make in _SPECS:
        if n == name:
            return Target(n, errors(), make)
    raise KeyError(f"no fuzz target {name!r}; targets: {', '.join(NAMES)}")
