"""The TensorRT path's logic that needs no TensorRT and no GPU: shape ranges read off an ONNX graph,
Q/DQ detection and the int8 refusal, the engine sidecar's device check, dtype mapping and feed
validation. The engines themselves are built and run in hw_tests/test_tensorrt.py."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from mtsc_sdr.compress import tensorrt as trtmod
from mtsc_sdr.compress.tensorrt import (INT8_NEEDS_QDQ, SIDECAR_FORMAT, EngineCompatibilityError, TensorSpec,
                                        build_engine, check_engine_compatible, count_qdq_nodes, derive_shape_ranges,
                                        has_qdq, io_dtypes, onnx_inputs, qdq_problems, read_sidecar, sidecar_path,
                                        validate_feed)

import onnx  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402


def _model(nodes, inputs, outputs, initializers=(), opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model)
    return model


def encoder_graph():
    """image (batch, 3, 8, 8) f32, question_ids (batch, T) i64, snr_db (batch,) f32, mask (?, 4) f32
    (an unnamed dynamic dim) -> each passed through."""
    ins = [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 8, 8]),
           helper.make_tensor_value_info("question_ids", TensorProto.INT64, ["batch", "T"]),
           helper.make_tensor_value_info("snr_db", TensorProto.FLOAT, ["batch"]),
           helper.make_tensor_value_info("mask", TensorProto.FLOAT, [None, 4])]
    dims = [["batch", 3, 8, 8], ["batch", "T"], ["batch"], [None, 4]]
    outs = [helper.make_tensor_value_info(f"{i.name}_out", i.type.tensor_type.elem_type, d) for i, d in zip(ins, dims)]
    nodes = [helper.make_node("Identity", [i.name], [f"{i.name}_out"]) for i in ins]
    return _model(nodes, ins, outs)


def qdq_graph(zp_type=TensorProto.INT8, zp_value=0, int32_bias=False):
    """x (batch, 4) f32 -> QuantizeLinear -> DequantizeLinear (int8, symmetric by default) -> y,
    plus, with ``int32_bias``, a bias dequantized from int32 (quantize_static's default) added."""
    scale = helper.make_tensor("s", TensorProto.FLOAT, [], [0.05])
    zp = helper.make_tensor("zp", zp_type, [], [zp_value])
    inits = [scale, zp]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "s", "zp"], ["y" if not int32_bias else "xd"])]
    if int32_bias:
        inits += [helper.make_tensor("b_q", TensorProto.INT32, [4], [1, 2, 3, 4]),
                  helper.make_tensor("b_s", TensorProto.FLOAT, [], [0.01])]
        nodes += [helper.make_node("DequantizeLinear", ["b_q", "b_s"], ["b"], name="bias_dq"),
                  helper.make_node("Add", ["xd", "b"], ["y"])]
    return _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])], inits)


def test_onnx_inputs_read_names_types_and_dims_and_skip_initializers():
    w = helper.make_tensor("w", TensorProto.FLOAT, [4], [1.0] * 4)
    m = _model([helper.make_node("Add", ["x", "w"], ["y"])],
               [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4]),
                helper.make_tensor_value_info("w", TensorProto.FLOAT, [4])],        # old-style: initializer as input
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])], [w])
    assert [(i.name, i.dtype, i.dims) for i in onnx_inputs(m)] == [("x", "float32", ("batch", 4))]
    enc = {i.name: i for i in onnx_inputs(encoder_graph())}
    assert enc["question_ids"].dtype == "int64" and enc["question_ids"].dims == ("batch", "T")
    assert enc["mask"].dims == (None, 4)


def test_default_ranges_fix_static_dims_and_range_symbolic_ones(tmp_path):
    path = tmp_path / "enc.onnx"
    onnx.save(encoder_graph(), str(path))
    r = derive_shape_ranges(path)                          # a path works as well as a proto
    b_lo, b_opt, b_hi = trtmod.DEFAULT_BATCH_RANGE
    t_lo, t_opt, t_hi = trtmod.DEFAULT_SEQUENCE_RANGE
    assert r["image"] == ((b_lo, 3, 8, 8), (b_opt, 3, 8, 8), (b_hi, 3, 8, 8))
    assert r["question_ids"] == ((b_lo, t_lo), (b_opt, t_opt), (b_hi, t_hi))
    assert r["snr_db"] == ((b_lo,), (b_opt,), (b_hi,))
    assert r["mask"] == ((b_lo, 4), (b_opt, 4), (b_hi, 4))  # an unnamed leading dim is a batch too


def test_dim_ranges_give_one_symbol_one_range_in_every_input():
    r = derive_shape_ranges(encoder_graph(), dim_ranges={"batch": (2, 4, 16), "T": (3, 12, 24)})
    assert r["image"] == ((2, 3, 8, 8), (4, 3, 8, 8), (16, 3, 8, 8))
    assert r["question_ids"] == ((2, 3), (4, 12), (16, 24))
    assert r["snr_db"] == ((2,), (4,), (16,))
    assert r["mask"][2] == (trtmod.DEFAULT_BATCH_RANGE[2], 4)   # unnamed: not "batch", keeps the default


def test_shape_ranges_override_one_input_and_are_checked():
    m = encoder_graph()
    r = derive_shape_ranges(m, shape_ranges={"question_ids": [[1, 1], [2, 8], [4, 32]]})
    assert r["question_ids"] == ((1, 1), (2, 8), (4, 32))
    assert r["snr_db"][2] == (trtmod.DEFAULT_BATCH_RANGE[2],)
    with pytest.raises(ValueError, match="'question_ids'.*rank"):
        derive_shape_ranges(m, shape_ranges={"question_ids": [[1], [2], [4]]})
    with pytest.raises(ValueError, match="'image'.*dim 1 is static"):
        derive_shape_ranges(m, shape_ranges={"image": [[1, 1, 8, 8], [1, 3, 8, 8], [1, 3, 8, 8]]})
    with pytest.raises(ValueError, match="'snr_db'.*min <= opt <= max"):
        derive_shape_ranges(m, shape_ranges={"snr_db": [[4], [2], [8]]})
    with pytest.raises(ValueError, match="'audio'.*not an input"):
        derive_shape_ranges(m, shape_ranges={"audio": [[1], [1], [1]]})
    with pytest.raises(ValueError, match=r"dim_ranges\['T'\]"):
        derive_shape_ranges(m, dim_ranges={"T": (0, 1, 2)})


def test_qdq_detection_counts_onnx_domain_nodes_in_subgraphs_too():
    assert not has_qdq(encoder_graph())
    assert count_qdq_nodes(qdq_graph()) == 2 and has_qdq(qdq_graph())

    scale = helper.make_tensor("s", TensorProto.FLOAT, [], [0.1])
    q8 = helper.make_tensor("q8", TensorProto.INT8, [4], [1, 2, 3, 4])
    branch = helper.make_graph([helper.make_node("DequantizeLinear", ["q8", "s"], ["d"])], "then", [],
                               [helper.make_tensor_value_info("d", TensorProto.FLOAT, [4])])
    other = helper.make_graph([helper.make_node("Constant", [], ["d2"], value=helper.make_tensor(
        "c", TensorProto.FLOAT, [4], [0.0] * 4))], "else", [], [helper.make_tensor_value_info("d2", TensorProto.FLOAT, [4])])
    nested = _model([helper.make_node("If", ["cond"], ["y"], then_branch=branch, else_branch=other)],
                    [helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
                    [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])], [scale, q8])
    assert count_qdq_nodes(nested) == 1

    contrib = qdq_graph()
    for node in contrib.graph.node:
        node.domain = "com.microsoft"                        # not ONNX's: TensorRT's parser does not take these
    assert not has_qdq(contrib)


def test_qdq_problems_report_what_tensorrt_cannot_take():
    assert qdq_problems(qdq_graph()) == []
    asym = qdq_graph(zp_value=3)
    assert len(qdq_problems(asym)) == 2 and all("non-zero zero point" in p for p in qdq_problems(asym))
    assert all("uint8 zero point" in p for p in qdq_problems(qdq_graph(zp_type=TensorProto.UINT8)))
    (bias,) = qdq_problems(qdq_graph(int32_bias=True))
    assert "'bias_dq'" in bias and "int32" in bias and "QuantizeBias" in bias


def test_int8_without_qdq_is_refused_before_tensorrt_is_touched(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)    # importing it now fails: it must not be reached
    path = tmp_path / "plain.onnx"
    onnx.save(encoder_graph(), str(path))
    with pytest.raises(ValueError) as exc:
        build_engine(path, tmp_path / "plain.engine", precision="int8")
    assert INT8_NEEDS_QDQ in str(exc.value) and "implicit calibration is deprecated in TensorRT 10" in str(exc.value)
    bad = tmp_path / "asym.onnx"
    onnx.save(qdq_graph(zp_value=3), str(bad))
    with pytest.raises(ValueError, match="(?s)2 Q/DQ node.*non-zero zero point"):
        build_engine(bad, tmp_path / "asym.engine", precision="int8")
    with pytest.raises(ValueError, match="precision 'int4'"):
        build_engine(path, tmp_path / "x.engine", precision="int4")
    with pytest.raises(ValueError, match="'image'"):
        build_engine(path, tmp_path / "x.engine", precision="fp32",
                     shape_ranges={"image": [[1, 3, 8], [1, 3, 8], [1, 3, 8]]})
    # a valid request gets as far as TensorRT, and says it is missing
    qpath = tmp_path / "q.onnx"
    onnx.save(qdq_graph(), str(qpath))
    with pytest.raises(RuntimeError, match="TensorRT is not importable"):
        build_engine(qpath, tmp_path / "q.engine", precision="int8")
    assert not (tmp_path / "q.engine").exists() and not (tmp_path / "plain.engine").exists()


def _meta(**over):
    meta = {"format": SIDECAR_FORMAT, "device_name": "Orin", "compute_capability": "8.7", "tensorrt_version": "10.3.0"}
    meta.update(over)
    return meta


def test_sidecar_check_accepts_the_same_gpu_and_refuses_another():
    here = dict(device_name="Orin", compute_capability="8.7", tensorrt_version="10.3.0")
    check_engine_compatible(_meta(), **here)
    with pytest.raises(EngineCompatibilityError, match="built on NVIDIA H200.*this GPU is Orin.*rebuild"):
        check_engine_compatible(_meta(device_name="NVIDIA H200", compute_capability="9.0"), **here)
    with pytest.raises(EngineCompatibilityError, match="compute capability 8.6"):
        check_engine_compatible(_meta(compute_capability="8.6"), **here)
    with pytest.raises(EngineCompatibilityError, match="TensorRT 10.7.0, this is TensorRT 10.3.0"):
        check_engine_compatible(_meta(tensorrt_version="10.7.0"), **here)
    with pytest.raises(EngineCompatibilityError, match="'device_name'"):
        check_engine_compatible({k: v for k, v in _meta().items() if k != "device_name"}, **here)
    with pytest.raises(EngineCompatibilityError, match="format"):
        check_engine_compatible(_meta(format="other/1"), **here)
    with pytest.warns(UserWarning, match="does not name the GPU"):
        check_engine_compatible(_meta(device_name="unknown", compute_capability="unknown"), **here)


def test_sidecar_sits_beside_the_engine_and_a_missing_one_is_an_error(tmp_path):
    engine = tmp_path / "encode_vqa.engine"
    assert sidecar_path(engine) == tmp_path / "encode_vqa.engine.json"
    with pytest.raises(EngineCompatibilityError, match="check_device=False"):
        read_sidecar(engine)
    sidecar_path(engine).write_text(json.dumps(_meta()))
    assert read_sidecar(engine)["device_name"] == "Orin"
    sidecar_path(engine).write_text("{not json")
    with pytest.raises(EngineCompatibilityError, match="not a readable JSON"):
        read_sidecar(engine)


def test_io_dtypes_map_tensorrt_types_to_numpy_and_torch():
    assert io_dtypes("FLOAT") == (np.dtype(np.float32), "float32")
    assert io_dtypes("HALF") == (np.dtype(np.float16), "float16")
    assert io_dtypes("INT64") == (np.dtype(np.int64), "int64")
    assert io_dtypes("INT32") == (np.dtype(np.int32), "int32")
    assert io_dtypes("BOOL") == (np.dtype(np.bool_), "bool")
    assert io_dtypes("BF16") == (np.dtype(np.float32), "bfloat16")   # bf16 on the device, float32 on the host
    import torch

    assert all(isinstance(getattr(torch, name), torch.dtype) for _, name in trtmod.TRT_IO_DTYPES.values())
    with pytest.raises(TypeError, match="'codes'.*FP8"):
        io_dtypes("FP8", "codes")


SPECS = [TensorSpec("image", np.dtype(np.float32), (-1, 3, 8, 8), (1, 3, 8, 8), (8, 3, 8, 8)),
         TensorSpec("question_ids", np.dtype(np.int32), (-1, -1), (1, 1), (8, 64))]


def _feed(**over):
    feed = {"image": np.zeros((2, 3, 8, 8), np.float32), "question_ids": np.ones((2, 5), np.int32)}
    feed.update(over)
    return feed


def test_validate_feed_passes_a_good_feed_contiguous_in_the_engines_dtype():
    img = np.zeros((2, 8, 8, 3), np.float32).transpose(0, 3, 1, 2)          # not C-contiguous
    out = validate_feed(_feed(image=img, question_ids=np.arange(10, dtype=np.int64).reshape(2, 5)), SPECS)
    assert out["image"].flags.c_contiguous and out["image"].dtype == np.float32
    assert out["question_ids"].dtype == np.int32                             # int64 ids fit an int32 input
    np.testing.assert_array_equal(out["question_ids"], np.arange(10).reshape(2, 5))


@pytest.mark.parametrize("feed,match", [
    ({"image": np.zeros((2, 3, 8, 8), np.float32)}, "missing input 'question_ids'"),
    (_feed(audio=np.zeros(3, np.float32)), "unknown input 'audio'"),
    (_feed(image=np.zeros((3, 8, 8), np.float32)), "'image': rank 3"),
    (_feed(image=np.zeros((2, 1, 8, 8), np.float32)), "'image': dim 1 is 1, the engine's is static 3"),
    (_feed(image=np.zeros((9, 3, 8, 8), np.float32)), r"'image': dim 0 is 9, outside .*\[1, 8\]"),
    (_feed(question_ids=np.ones((2, 65), np.int32)), r"'question_ids': dim 1 is 65, outside .*\[1, 64\]"),
    (_feed(image=np.zeros((2, 3, 8, 8), np.float64)), "'image': dtype float64, the engine expects float32"),
    (_feed(question_ids=np.full((2, 5), 2 ** 40, np.int64)), "'question_ids': int64 values .* do not fit"),
    (_feed(question_ids=np.ones((2, 5), np.float32)), "'question_ids': dtype float32"),
])
def test_validate_feed_names_the_input_it_refuses(feed, match):
    with pytest.raises(ValueError, match=match):
        validate_feed(feed, SPECS)


def test_gpu_available_gives_the_reason_and_the_session_refuses_without_a_gpu(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    ok, reason = trtmod.gpu_available()
    assert not ok and "TensorRT is not importable" in reason
    monkeypatch.setattr(trtmod, "gpu_available", lambda: (False, "no GPU in this test"))
    with pytest.raises(RuntimeError, match="no GPU in this test"):
        trtmod.TensorRTSession(tmp_path / "x.engine")


def test_ensure_engine_reuses_an_engine_built_here_from_this_graph_and_rebuilds_otherwise(tmp_path, monkeypatch):
    from types import SimpleNamespace

    builds = []

    def fake_build(onnx_path, engine_path, *, precision, **kw):
        builds.append(precision)
        engine_path.write_bytes(b"plan")
        sidecar_path(engine_path).write_text(json.dumps(_meta(precision=precision,
                                                              onnx_sha256=trtmod.file_sha256(onnx_path))))

    monkeypatch.setattr(trtmod, "_import_tensorrt",
                        lambda: SimpleNamespace(__version__="10.3.0", BuilderFlag=SimpleNamespace(FP16=0)))
    monkeypatch.setattr(trtmod, "device_identity", lambda: ("Orin", "8.7"))
    monkeypatch.setattr(trtmod, "build_engine", fake_build)
    graph = tmp_path / "encode_vqa_64.onnx"
    onnx.save(encoder_graph(), str(graph))

    engine = trtmod.ensure_engine(graph)
    assert engine == tmp_path / "encode_vqa_64.fp16.engine" and builds == ["fp16"]   # no Q/DQ: fp16
    assert trtmod.ensure_engine(graph) == engine and builds == ["fp16"]              # reused
    changed = encoder_graph()
    changed.doc_string = "re-exported"
    onnx.save(changed, str(graph))                                                   # the graph changed
    assert trtmod.ensure_engine(graph, engine) == engine and builds == ["fp16", "fp16"]
    meta = json.loads(sidecar_path(engine).read_text())
    meta.update(device_name="NVIDIA H200", compute_capability="9.0")                 # an engine from another GPU
    sidecar_path(engine).write_text(json.dumps(meta))
    trtmod.ensure_engine(graph, engine)
    trtmod.ensure_engine(graph, engine)
    assert builds == ["fp16", "fp16", "fp16"]                                        # rebuilt once, then reused
    onnx.save(qdq_graph(), str(graph))                                               # a Q/DQ graph: int8
    assert trtmod.ensure_engine(graph).name == "encode_vqa_64.int8.engine" and builds[-1] == "int8"
