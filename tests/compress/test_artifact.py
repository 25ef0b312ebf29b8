"""Compressed client artifacts: ONNX export matches torch per task, quantized graphs run and shrink,
manifests verify their files, and an artifact only loads with its source checkpoint."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from mtsc_sdr import tasks as task_table
from mtsc_sdr.compress.artifact import (ArtifactMismatch, Technique, build, load_client,
                                        read)
from mtsc_sdr.data import collate, examples

#: fp32 ONNX Runtime vs torch: symbols (unit average power) agree to this (max abs difference).
FP32_SYMBOL_TOL = 1e-4


@pytest.fixture(scope="module")
def budgets(micro_checkpoint):
    return [load_client(micro_checkpoint).model.cfg.symbols_per_item, 96]


@pytest.fixture(scope="module")
def fp32_artifact(micro_checkpoint, budgets, tmp_path_factory):
    return build(micro_checkpoint, tmp_path_factory.mktemp("art") / "fp32", Technique("fp32"), "onnxruntime",
                 budgets=budgets, log=lambda *a: None)


def _encode(loaded, task, budget, n=6):
    batch = collate(examples("val", [task], n_per_task=n, seed=4))
    snr = torch.linspace(-4.0, 19.0, n)
    up, times = loaded.encoder.encode(batch, task, snr, budget)
    return up, times


def test_onnxruntime_encode_matches_torch_for_every_task(micro_checkpoint, fp32_artifact, budgets):
    ref = load_client(micro_checkpoint)
    ort = load_client(micro_checkpoint, "onnxruntime", fp32_artifact.directory)
    assert ort.encoder.runtime == "onnxruntime" and ort.precision == "fp32"
    for task, budget in ((t, b) for t in task_table.names() for b in budgets):
        a, _ = _encode(ref, task, budget)
        b, times = _encode(ort, task, budget)
        assert set(times) == {"encode_graph"}
        assert torch.equal(a.rate_idx, b.rate_idx) and torch.equal(a.n_tokens, b.n_tokens), task
        assert torch.equal(a.task_ids, b.task_ids)
        assert b.symbols.shape == (6, budget) and b.symbols.dtype == torch.complex64
        assert float((a.symbols - b.symbols).abs().max()) < FP32_SYMBOL_TOL, task


def test_graph_encode_of_a_single_item_and_another_question_length(micro_checkpoint, fp32_artifact):
    """Batch and question length are dynamic: one item, with a question of another length."""
    ref = load_client(micro_checkpoint)
    ort = load_client(micro_checkpoint, "onnxruntime", fp32_artifact.directory)
    ex = examples("val", ["vqa"], n_per_task=1, seed=9)[0]
    batch = collate([ex])
    batch["question"] = ["what is it"]
    a, _ = ref.encoder.encode(batch, "vqa", torch.tensor([12.0]))
    b, _ = ort.encoder.encode(batch, "vqa", torch.tensor([12.0]))
    assert torch.equal(a.n_tokens, b.n_tokens) and float((a.symbols - b.symbols).abs().max()) < FP32_SYMBOL_TOL


def test_a_budget_the_artifact_lacks_is_named(micro_checkpoint, fp32_artifact):
    ort = load_client(micro_checkpoint, "onnxruntime", fp32_artifact.directory)
    with pytest.raises(ValueError, match="budgets"):
        _encode(ort, "vqa", 40)


def test_int8_dynamic_artifact_is_smaller_and_close(micro_checkpoint, fp32_artifact, tmp_path):
    art = build(micro_checkpoint, tmp_path / "dyn", Technique("int8-dynamic"), "onnxruntime", log=lambda *a: None)
    assert art.manifest["weight_bytes"] < 0.5 * fp32_artifact.manifest["weight_bytes"]
    ref = load_client(micro_checkpoint)
    q = load_client(micro_checkpoint, "onnxruntime", art.directory)
    for task in ("caption_image", "reconstruct"):
        a, _ = _encode(ref, task, None)
        b, _ = _encode(q, task, None)
        assert torch.equal(a.rate_idx, b.rate_idx)
        power = a.symbols.abs().pow(2).mean(dim=1)
        assert torch.allclose(b.symbols.abs().pow(2).mean(dim=1), power, atol=1e-3)   # normalised either way
        err = (a.symbols - b.symbols).abs().pow(2).mean(dim=1) / power
        assert float(err.max()) < 0.25, task                                         # int8 noise, not garbage


def test_manifest_records_the_source_and_verifies_files(micro_checkpoint, fp32_artifact, tmp_path):
    m = fp32_artifact.manifest
    assert m["format"] == "mtsc-sdr-client-artifact" and m["runtime"] == "onnxruntime"
    assert m["technique"]["quantization"] == "fp32" and m["budgets"][1] == 96
    assert set(m["tasks"]) == set(task_table.names()) and len(m["files"]) == 2 * len(m["tasks"])
    copy = tmp_path / "copy"
    shutil.copytree(fp32_artifact.directory, copy)
    graph = copy / next(iter(m["files"]))
    graph.write_bytes(graph.read_bytes()[:-1] + b"\0")
    with pytest.raises(ValueError, match="differs from the manifest"):
        read(copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["technique"]["quantization"] = "int3"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="technique.quantization"):
        read(copy, verify=False)


def test_an_artifact_loads_only_with_its_source_checkpoint(micro_checkpoint, fp32_artifact, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(micro_checkpoint, other)
    from safetensors.torch import load_file, save_file

    state = load_file(str(other / "model.safetensors"))
    key = next(k for k, v in state.items() if v.dtype == torch.float32)
    state[key] = state[key] + 1.0
    save_file(state, str(other / "model.safetensors"))
    with pytest.raises(ArtifactMismatch, match="weights"):
        load_client(other, "onnxruntime", fp32_artifact.directory)


def test_technique_validation_names_the_field():
    with pytest.raises(ValueError, match="technique.quantization"):
        Technique("int8-dynamic").for_runtime("torch")
    with pytest.raises(ValueError, match="technique.pruning"):
        Technique("fp32", pruning=1.5).for_runtime("onnxruntime")
    assert Technique("int8-static", pruning=0.5, recovery_steps=10).name() == "prune50+int8-static"


def test_the_tensorrt_runtime_without_a_gpu_says_why(micro_checkpoint, fp32_artifact):
    from mtsc_sdr.compress.tensorrt import gpu_available

    if gpu_available()[0]:
        pytest.skip("this machine has TensorRT and a GPU (hw_tests/test_tensorrt.py runs it)")
    with pytest.raises(ValueError, match="needs TensorRT and a CUDA GPU"):
        load_client(micro_checkpoint, "tensorrt", fp32_artifact.directory)


def test_a_run_with_a_compressed_client_over_the_software_channel(micro_checkpoint, fp32_artifact, tmp_path):
    """The client process on ONNX Runtime: every item answered, its encode timed as one stage."""
    from mtsc_sdr.config import from_dict
    from mtsc_sdr.runtime import protocol
    from mtsc_sdr.runtime.run import RunConfig, execute

    cfg = from_dict(RunConfig, {"name": "ort", "checkpoint": str(micro_checkpoint), "snr_db": [20.0],
                                "out": str(tmp_path / "run"), "clients": [
                                    {"runtime": "onnxruntime", "artifact": str(fp32_artifact.directory),
                                     "n_per_task": 2, "device": "x86-cpu"}]})
    report = execute(cfg)
    items = [json.loads(line) for line in (tmp_path / "run" / "items.jsonl").read_text().splitlines()]
    assert len(items) == 2 * len(task_table.names()) and all("error" not in r for r in items)
    assert {r["precision"] for r in items} == {"fp32"}
    for r in items:
        assert all(r["latency_ms"][s] is not None for s in protocol.stages("onnxruntime")), r["latency_ms"]
    assert report["points"][0]["runtime"] == "onnxruntime" and report["points"][0]["device"] == "x86-cpu"


def test_a_composed_client_takes_each_tasks_graphs_from_its_artifact(micro_checkpoint, fp32_artifact, budgets,
                                                                    tmp_path):
    from mtsc_sdr.compress.artifact import compose

    dyn = build(micro_checkpoint, tmp_path / "dyn", Technique("int8-dynamic"), "onnxruntime", budgets=budgets,
                log=lambda *a: None)
    art = compose(fp32_artifact.directory, {"caption_image": dyn.directory}, tmp_path / "mixed")
    assert art.name == "fp32|caption_image:int8-dynamic" and art.manifest["composed_from"] == {"caption_image": "int8-dynamic"}
    assert read(art.directory).manifest["latency_ms"] == {}
    mixed = load_client(micro_checkpoint, "onnxruntime", art.directory)
    for task, same_as in (("caption_image", dyn), ("vqa", fp32_artifact)):
        a, _ = _encode(load_client(micro_checkpoint, "onnxruntime", same_as.directory), task, None)
        b, _ = _encode(mixed, task, None)
        assert torch.equal(a.symbols, b.symbols), task
    with pytest.raises(ValueError, match="budgets"):
        other = build(micro_checkpoint, tmp_path / "one", Technique("fp32"), "onnxruntime", log=lambda *a: None)
        compose(fp32_artifact.directory, {"vqa": other.directory}, tmp_path / "bad")


def test_a_model_with_retrieval_inputs_reads_its_snippets_through_the_graphs(tmp_path):
    """The graphs of tasks with a question take the local snippets (``context_ids``, 1..context_tokens
    long): ONNX Runtime encodes them as torch does, and the snippets change what is sent. An
    engine's optimization profile bounds their length by the model's ``context_tokens``."""
    from dataclasses import replace

    import onnx

    from mtsc_sdr.compress.graph import dim_ranges
    from mtsc_sdr.compress.tensorrt import derive_shape_ranges
    from mtsc_sdr.model import ModelConfig, TextTokenizer, build_model, save
    from mtsc_sdr.model.tokenizer import corpus
    from mtsc_sdr.train.trainer import knowledge_tokenizer

    cfg = replace(ModelConfig.micro(), context_tokens=12)
    tok = knowledge_tokenizer(cfg, TextTokenizer.train(corpus(n_scenes=20, n_audio=5, n_video=5)))
    torch.manual_seed(0)
    save(build_model(cfg, tok), tmp_path / "ck")
    art = build(tmp_path / "ck", tmp_path / "art", Technique("fp32"), "onnxruntime", log=lambda *a: None)
    graph = onnx.load(str(art.graph_path("vqa", cfg.symbols_per_item)))
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.graph.input}
    assert dims["context_ids"] == ["batch", "context"]
    assert "context_ids" not in {i.name for i in onnx.load(str(art.graph_path("caption_image", cfg.symbols_per_item))).graph.input}
    assert derive_shape_ranges(graph, dim_ranges=dim_ranges(cfg))["context_ids"][2][1] == 12

    ref = load_client(tmp_path / "ck")
    ort = load_client(tmp_path / "ck", "onnxruntime", art.directory)
    snippets = ["the red circle belongs to alice.", "", "the blue square was made in oslo. bob owns the green circle.",
                "the white triangle belongs to zara. " * 4]                     # the last one is cut to 12 tokens
    items = [replace(e, local_context=s) for e, s in zip(examples("val", ["vqa"], n_per_task=4, seed=4), snippets)]
    snr = torch.linspace(-4.0, 19.0, 4)
    a, _ = ref.encoder.encode(collate(items), "vqa", snr, None)
    b, _ = ort.encoder.encode(collate(items), "vqa", snr, None)
    assert torch.equal(a.rate_idx, b.rate_idx) and float((a.symbols - b.symbols).abs().max()) < FP32_SYMBOL_TOL
    bare, _ = ort.encoder.encode(collate([replace(e, local_context="") for e in items]), "vqa", snr, None)
    assert float((bare.symbols[0] - b.symbols[0]).abs().max()) > 1e-3          # the snippet is read
