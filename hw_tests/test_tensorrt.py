"""TensorRT engines on an NVIDIA GPU (a Jetson or any CUDA GPU with TensorRT; skipped elsewhere
with the reason :func:`~mtsc_sdr.compress.tensorrt.gpu_available` gives): ``pytest -ra hw_tests``.

A small encode-like torch module (image (B, 3, 16, 16) float32, question_ids (B, T) int64,
snr_db (B,) float32 -> (B, 6) float32, with B and T dynamic) is exported to ONNX and built here,
on the device that runs it, then run through :class:`~mtsc_sdr.compress.tensorrt.TensorRTSession`
and compared with ONNX Runtime (CPU) on the same graph, at several batch sizes and question lengths:

* fp32: ``|trt - ort| <= 1e-4 * (|ort| + max|ort|)`` (TF32 is off in fp32 engines);
* fp16: the same with 1e-2;
* int8: a Q/DQ graph from ``onnxruntime.quantization.quantize_static`` (QDQ format, per-channel
  symmetric int8 weights, symmetric int8 activations, float biases, calibrated on 8 random batches), compared
  with ONNX Runtime running that same Q/DQ graph: ``max|trt - ort| <= 0.05 * max|ort|`` (one
  quantization step of an activation can differ where the two round differently), and with the
  fp32 graph: ``<= 0.15 * max|ort_fp32|``;
* int8 on a graph without Q/DQ is refused before TensorRT builds anything;
* an engine built here is reused while it fits (:func:`~mtsc_sdr.compress.tensorrt.ensure_engine`),
  one whose sidecar names another GPU model is refused; a graph TensorRT cannot parse raises with
  the parser's errors.
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from mtsc_sdr.compress.tensorrt import gpu_available

GPU_OK, GPU_REASON = gpu_available()

pytestmark = pytest.mark.skipif(not GPU_OK, reason=f"no TensorRT GPU here: {GPU_REASON}")

INPUTS = ("image", "question_ids", "snr_db")
DIM_RANGES = {"batch": (1, 2, 8), "T": (1, 8, 32)}
VOCAB = 50
TOL = {"fp32": 1e-4, "fp16": 1e-2}


def tiny_encoder():
    """image (B, 3, 16, 16), question_ids (B, T) int64, snr_db (B,) -> (B, 6): conv + embedding + linear."""
    import torch
    from torch import nn

    class TinyEncoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
            self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
            self.emb = nn.Embedding(VOCAB, 16)
            self.fc = nn.Linear(16, 6)

        def forward(self, image, question_ids, snr_db):
            a = torch.relu(self.conv2(torch.relu(self.conv1(image)))).mean(dim=(2, 3))     # (B, 16)
            q = self.emb(question_ids).mean(dim=1)                                           # (B, 16)
            return self.fc(a + q) + 0.1 * snr_db[:, None]                                    # (B, 6)

    torch.manual_seed(0)
    return TinyEncoder().eval()


def feed(batch: int, t: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"image": rng.uniform(-1, 1, (batch, 3, 16, 16)).astype(np.float32),
            "question_ids": rng.integers(0, VOCAB, (batch, t), dtype=np.int64),
            "snr_db": rng.uniform(-5, 20, batch).astype(np.float32)}


def export_onnx(path: Path) -> Path:
    """The tiny encoder as ONNX with dynamic ``batch`` and ``T``: torch's dynamo exporter where
    onnxscript is installed, else the TorchScript one."""
    import torch

    model = tiny_encoder()
    args = tuple(torch.from_numpy(v) for v in feed(2, 5).values())
    dynamo = importlib.util.find_spec("onnxscript") is not None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            b, t = torch.export.Dim("batch", min=1, max=64), torch.export.Dim("T", min=1, max=128)
            torch.onnx.export(model, args, str(path), input_names=list(INPUTS), output_names=["z"], dynamo=True,
                              dynamic_shapes={"image": {0: b}, "question_ids": {0: b, 1: t}, "snr_db": {0: b}},
                              opset_version=18, verbose=False)
        else:
            torch.onnx.export(model, args, str(path), input_names=list(INPUTS), output_names=["z"], opset_version=17,
                              dynamic_axes={"image": {0: "batch"}, "question_ids": {0: "batch", 1: "T"},
                                            "snr_db": {0: "batch"}, "z": {0: "batch"}})
    return path


def quantize_qdq(src: Path, dst: Path) -> Path:
    """Static int8 Q/DQ (what TensorRT takes): symmetric int8 weights per channel and activations,
    float biases (TensorRT's DequantizeLinear takes no int32)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._feeds = iter([feed(4, 8, seed=100 + i) for i in range(8)])

        def get_next(self):
            return next(self._feeds, None)

    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    op_types_to_quantize=["Conv", "MatMul", "Gemm"],
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False})
    return dst


def ort_run(path: Path, f: dict[str, np.ndarray]) -> np.ndarray:
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, f)[0]


@pytest.fixture(scope="module")
def graphs(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("trt")
    fp32 = export_onnx(d / "encode.onnx")
    return {"fp32": fp32, "qdq": quantize_qdq(fp32, d / "encode_qdq.onnx"), "dir": d}


@pytest.fixture(scope="module")
def fp32_engine(graphs) -> Path:
    """``encode.fp32.engine`` beside the graph, built by :func:`ensure_engine`."""
    from mtsc_sdr.compress.tensorrt import ensure_engine

    return ensure_engine(graphs["fp32"], precision="fp32", dim_ranges=DIM_RANGES, workspace_mb=256)


def _assert_close(got: np.ndarray, ref: np.ndarray, rtol: float, what: str) -> None:
    scale = float(np.abs(ref).max())
    err = np.abs(got.astype(np.float64) - ref)
    bound = rtol * (np.abs(ref) + scale)
    print(f"{what}: max |err| {err.max():.3g}, max |ref| {scale:.3g}")
    assert got.shape == ref.shape and got.dtype == np.float32, (got.shape, got.dtype)
    assert np.all(err <= bound), f"{what}: max |err| {err.max():.3g} over the bound (rtol {rtol})"


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_engine_matches_onnxruntime(graphs, fp32_engine, precision, tmp_path):
    import torch

    from mtsc_sdr.compress.tensorrt import TensorRTSession, build_engine, file_sha256, read_sidecar

    if precision == "fp32":
        engine = fp32_engine
        info = read_sidecar(engine)
    else:
        engine = tmp_path / f"encode_{precision}.engine"
        info = build_engine(graphs["fp32"], engine, precision=precision, dim_ranges=DIM_RANGES, workspace_mb=256)
    print(f"\n{precision}: {json.dumps({k: info[k] for k in ('tensorrt_version', 'device_name', 'build_s', 'engine_bytes')})}")
    assert info["precision"] == precision and info["engine_bytes"] == engine.stat().st_size > 0
    assert info["device_name"] == torch.cuda.get_device_name()
    assert info["onnx_sha256"] == file_sha256(graphs["fp32"])
    assert info["shape_ranges"]["question_ids"] == [[1, 1], [2, 8], [8, 32]]

    sess = TensorRTSession(engine)
    assert sess.input_names == list(INPUTS) and sess.output_names == ["z"]
    for batch, t in ((1, 1), (3, 5), (8, 32)):
        f = feed(batch, t, seed=batch * 100 + t)
        (got,) = sess.run(None, f)
        _assert_close(got, ort_run(graphs["fp32"], f), TOL[precision], f"{precision} B={batch} T={t}")
    assert len(sess.run(["z"], feed(2, 3))) == 1
    with pytest.raises(ValueError, match="'image': dim 0 is 9"):
        sess.run(None, feed(9, 3))


def test_ensure_engine_reuses_the_engine_built_here(graphs, fp32_engine):
    from mtsc_sdr.compress.tensorrt import ensure_engine

    before = fp32_engine.stat().st_mtime_ns
    assert ensure_engine(graphs["fp32"], precision="fp32", dim_ranges=DIM_RANGES) == fp32_engine
    assert fp32_engine.stat().st_mtime_ns == before


def test_int8_qdq_engine_matches_onnxruntime(graphs, tmp_path):
    from mtsc_sdr.compress.tensorrt import TensorRTSession, build_engine, count_qdq_nodes, qdq_problems

    assert count_qdq_nodes(graphs["qdq"]) > 0 and qdq_problems(graphs["qdq"]) == []
    engine = tmp_path / "encode_int8.engine"
    info = build_engine(graphs["qdq"], engine, precision="int8", dim_ranges=DIM_RANGES, workspace_mb=256)
    print(f"\nint8: {info['engine_bytes']} bytes, built in {info['build_s']} s")
    sess = TensorRTSession(engine)
    for batch, t in ((1, 4), (6, 12)):
        f = feed(batch, t, seed=7 + batch)
        (got,) = sess.run(None, f)
        ref_q, ref_fp32 = ort_run(graphs["qdq"], f), ort_run(graphs["fp32"], f)
        err_q = float(np.abs(got - ref_q).max())
        err_fp32 = float(np.abs(got - ref_fp32).max())
        print(f"int8 B={batch} T={t}: max |trt - ort(qdq)| {err_q:.3g}, max |trt - ort(fp32)| {err_fp32:.3g}, "
              f"max |ort| {np.abs(ref_q).max():.3g}")
        assert got.shape == ref_q.shape and got.dtype == np.float32
        assert err_q <= 0.05 * float(np.abs(ref_q).max())
        assert err_fp32 <= 0.15 * float(np.abs(ref_fp32).max())


def test_int8_refuses_a_graph_without_qdq(graphs, tmp_path):
    from mtsc_sdr.compress.tensorrt import INT8_NEEDS_QDQ, build_engine

    engine = tmp_path / "plain_int8.engine"
    with pytest.raises(ValueError) as exc:
        build_engine(graphs["fp32"], engine, precision="int8", dim_ranges=DIM_RANGES)
    assert INT8_NEEDS_QDQ in str(exc.value)
    assert not engine.exists()


def test_engine_from_another_gpu_is_refused(fp32_engine, tmp_path):
    from mtsc_sdr.compress.tensorrt import EngineCompatibilityError, TensorRTSession, sidecar_path

    engine = tmp_path / fp32_engine.name
    engine.write_bytes(fp32_engine.read_bytes())
    meta = json.loads(sidecar_path(fp32_engine).read_text())
    meta.update(device_name="Some Other GPU", compute_capability="5.3")
    sidecar_path(engine).write_text(json.dumps(meta))
    with pytest.raises(EngineCompatibilityError, match="Some Other GPU"):
        TensorRTSession(engine)
    assert TensorRTSession(engine, check_device=False).output_names == ["z"]


def test_parser_errors_are_raised_with_their_messages(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from mtsc_sdr.compress.tensorrt import build_engine

    graph = helper.make_graph([helper.make_node("NoSuchOp", ["x"], ["y"], domain="mtsc.test")], "bad",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("mtsc.test", 1)])
    path = tmp_path / "bad.onnx"
    onnx.save(model, str(path))
    with pytest.raises(RuntimeError, match="NoSuchOp") as exc:
        build_engine(path, tmp_path / "bad.engine", precision="fp32")
    print(f"\n{exc.value}")
    assert not (tmp_path / "bad.engine").exists()


def test_the_shipped_client_encode_from_tensorrt_engines_matches_torch(tmp_path):
    """Every task's encode graph of models/default built into engines on this GPU (fp32 and fp16):
    rates and token counts equal to torch's, symbols within the stated error (mean squared error
    relative to the unit symbol power: 1e-6 for fp32, 1e-3 for fp16)."""
    import torch

    from mtsc_sdr import tasks
    from mtsc_sdr.compress.artifact import Technique, build, load_client
    from mtsc_sdr.data import collate, examples
    from mtsc_sdr.model.checkpoint import shipped_model_dir

    ck = shipped_model_dir()
    art = build(ck, tmp_path / "fp32", Technique("fp32"), "onnxruntime", log=lambda *a: None)
    ref = load_client(ck)
    for precision, tol in (("fp32", 1e-6), ("fp16", 1e-3)):
        from mtsc_sdr.compress.runtimes import GraphEncoder
        from mtsc_sdr.compress.tensorrt import TensorRTSession, ensure_engine

        trt = GraphEncoder("tensorrt", ref.model, art,
                           lambda path: TensorRTSession(ensure_engine(path, precision=precision)))
        for task in tasks.names():
            batch = collate(examples("val", [task], n_per_task=4, seed=2))
            snr = torch.tensor([-3.0, 4.0, 10.0, 18.0])
            a, _ = ref.encoder.encode(batch, task, snr)
            b, _ = trt.encode(batch, task, snr)
            assert torch.equal(a.rate_idx, b.rate_idx) and torch.equal(a.n_tokens, b.n_tokens), (precision, task)
            assert float((a.symbols - b.symbols).abs().pow(2).mean()) < tol, (precision, task)
