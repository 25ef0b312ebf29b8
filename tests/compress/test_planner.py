"""The compression planner: device profiles, the candidate schema, the latency estimation model, and
the exact choice (single client and several clients sharing a budget) against brute force."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
from pathlib import Path

import pytest

from mtsc_sdr.compress import planner
from mtsc_sdr.compress.planner import (Client, Constraints, PlanVerificationError, estimate_latency, format_plan,
                                       known_profiles, load_profile, plan, plan_many, validate_candidates)

TASKS = ("vqa", "caption_image", "reconstruct")
REF_ACCURACY = {"vqa": 60.0, "caption_image": 80.0, "reconstruct": 28.0}   # %, CIDEr, PSNR dB
NANO = "jetson-orin-nano-8gb"


def cand(name, quantization="fp32", runtime="torch", accuracy=None, p90=10.0, memory_mb=300.0,
         weight_bytes=10_000_000, device="x86-cpu", **extra):
    """A manifest record measured on ``device`` (p50 = 0.8 p90)."""
    return {"name": name, "technique": {"quantization": quantization, "pruning": None, "distillation": None},
            "runtime": runtime, "accuracy": dict(accuracy or REF_ACCURACY), "weight_bytes": weight_bytes,
            "peak_memory_mb": memory_mb, "latency_ms": {device: {"p50": 0.8 * p90, "p90": p90}}, **extra}


def scaled(factor):
    return {t: v * factor for t, v in REF_ACCURACY.items()}


# ------------------------------------------------------------------------------------------------
# Profiles


def test_profile_names_prefixes_and_paths():
    assert set(known_profiles()) >= {NANO, "x86-cpu", "jetson-agx-orin-64gb"}
    assert load_profile("jetson-orin-nano").name == NANO
    assert load_profile(NANO).name == NANO
    assert load_profile(planner._devices_dir() / "x86-cpu.yaml").cpu_cores == 2
    for name in known_profiles():
        assert load_profile(name).name == name
    with pytest.raises(ValueError, match="ambiguous") as err:
        load_profile("jetson-orin")
    assert NANO in str(err.value) and "jetson-orin-nx-16gb" in str(err.value)
    with pytest.raises(ValueError, match="matches no profile") as err:
        load_profile("raspberry")
    assert all(name in str(err.value) for name in known_profiles())


def test_exact_name_wins_over_prefix(tmp_path, monkeypatch):
    devices = tmp_path / "devices"
    devices.mkdir()
    for name in ("box", "box-2"):
        (devices / f"{name}.yaml").write_text(f"name: {name}\nkind: cpu\nmemory_gb: 4\ncpu_cores: 4\n")
    monkeypatch.setenv("MTSC_PROFILES_DIR", str(tmp_path))
    assert load_profile("box").name == "box"
    assert load_profile("box-").name == "box-2"


@pytest.mark.parametrize("text,field", [
    ("name: d\nkind: cpu\nmemory_gb: lots\ncpu_cores: 2\n", "memory_gb"),
    ("name: d\nkind: cpu\nmemory_gb: 4\n", "cpu_cores"),
    ("name: d\nkind: jetson\nmemory_gb: 4\ncpu_cores: 6\n", "gpu_cuda_cores"),
    ("name: d\nkind: phone\nmemory_gb: 4\ncpu_cores: 6\n", "kind"),
    ("name: d\nkind: cpu\nmemory_gb: 4\ncpu_cores: 2\npower_modes: [{id: 0, name: low, watts: 0}]\n",
     "power_modes[0].watts"),
    ("- just a list\n", ""),
])
def test_bad_profile_names_field_and_file(tmp_path, text, field):
    file = tmp_path / "bad-device.yaml"
    file.write_text(text)
    with pytest.raises(ValueError) as err:
        load_profile(file)
    assert field in str(err.value) and str(file) in str(err.value)
    assert getattr(err.value, "field", "") == field


# ------------------------------------------------------------------------------------------------
# Candidate schema and constraints


def _break(record, path, value):
    """``record`` with the key at dotted ``path`` set to ``value`` (deleted when value is ...)."""
    *parents, last = path.split(".")
    target = record
    for key in parents:
        target = target[key]
    if value is ...:
        del target[last]
    else:
        target[last] = value
    return record


@pytest.mark.parametrize("path,value,field", [
    ("name", ..., "candidates[1].name"),
    ("runtime", "tflite", "candidates[1].runtime"),
    ("accuracy.vqa", "high", "candidates[1].accuracy.vqa"),
    ("accuracy", {}, "candidates[1].accuracy"),
    ("latency_ms.x86-cpu", {"p50": 1.0}, "candidates[1].latency_ms.x86-cpu"),
    ("latency_ms.x86-cpu.p50", 99.0, "candidates[1].latency_ms.x86-cpu"),
    ("latency_ms.x86-cpu.p90", -1.0, "candidates[1].latency_ms.x86-cpu.p90"),
    ("latency_ms", {}, "candidates[1].latency_ms"),
    ("weight_bytes", 1.5, "candidates[1].weight_bytes"),
    ("peak_memory_mb", 0, "candidates[1].peak_memory_mb"),
    ("technique.pruning", 1.5, "candidates[1].technique.pruning"),
    ("technique.quantization", ..., "candidates[1].technique.quantization"),
    ("technique.sparsity", 0.5, "candidates[1].technique.sparsity"),
    ("gflops", "many", "candidates[1].gflops"),
])
def test_schema_errors_name_the_field(path, value, field):
    records = [cand("a"), _break(cand("b"), path, value)]
    with pytest.raises(ValueError) as err:
        validate_candidates(records)
    assert str(err.value).startswith(field)


def test_schema_set_level_errors_and_extras():
    with pytest.raises(ValueError, match=r"candidates\[1\]\.name: duplicate"):
        validate_candidates([cand("a"), cand("a")])
    with pytest.raises(ValueError, match=r"candidates\[1\]\.accuracy: tasks"):
        validate_candidates([cand("a"), cand("b", accuracy={"vqa": 50.0})])
    with pytest.raises(ValueError, match="candidates"):
        validate_candidates([])
    (kept,) = validate_candidates([cand("a", path="models/a.onnx", bs_cost=2.5)])
    assert kept.extra == {"path": "models/a.onnx", "bs_cost": 2.5} and kept.figure("bs_cost") == 2.5


def test_constraint_errors_name_the_field():
    cands = [cand("ref"), cand("q", "int8", accuracy=scaled(0.98))]
    for cons, field in [(Constraints(min_accuracy={"bleu": 1.0}), "min_accuracy.bleu"),
                        (Constraints(max_loss={"vqa": -1.0}), "max_loss.vqa"),
                        (Constraints(latency_ms=0), "latency_ms"),
                        (Constraints(percentile="p99"), "percentile"),
                        (Constraints(reference="nope"), "reference")]:
        with pytest.raises(ValueError) as err:
            plan("x86-cpu", cands, cons)
        assert str(err.value).startswith(field), (field, str(err.value))
    with pytest.raises(ValueError, match="power_mode.*15W"):
        plan(NANO, cands, power_mode="turbo")
    with pytest.raises(ValueError, match="shared.bs_cost"):
        plan_many([Client("x86-cpu")], cands, shared={"bs_cost": 1.0})


# ------------------------------------------------------------------------------------------------
# Estimation model


def test_measured_and_estimated_figures_are_marked():
    cands = [cand("x86-only", p90=12.0), cand("on-nano", p90=7.0, device=NANO)]
    p = plan(NANO, cands)
    table = {c["name"]: c for c in p.candidates}
    est = table["x86-only"]["provenance"]
    assert est["latency_ms_p90"].startswith("estimated (model: x86-cpu measurement x CPU throughput")
    assert est["peak_memory_mb"].startswith("estimated")
    assert est["accuracy"] == "measured" and est["weight_bytes"] == "measured"
    assert table["on-nano"]["provenance"]["latency_ms_p90"] == "measured"
    assert table["on-nano"]["provenance"]["peak_memory_mb"] == "measured"
    # the CPU model: x86 (2 cores x 1) against the Nano (6 Arm cores x 1/3)
    ratio = 2 * planner.CPU_CORE_FACTOR["cpu"] / (6 * planner.CPU_CORE_FACTOR["jetson"])
    assert table["x86-only"]["latency_ms_p90"] == pytest.approx(12.0 * ratio)
    assert table["x86-only"]["latency_ms_p50"] == pytest.approx(0.8 * 12.0 * ratio)
    (line,) = [line for line in format_plan(p).splitlines() if line.strip().startswith("x86-only")]
    assert "estimated" in line


def test_gpu_runtime_needs_a_gpu_and_scales_by_cuda_cores():
    trt = cand("trt", "int8", "tensorrt", p90=4.0, device="jetson-orin-nx-16gb")
    est = estimate_latency(trt, "jetson-xavier-nx-8gb")
    assert est.p90_ms == pytest.approx(4.0 * 1024 / 384)
    assert est.provenance.startswith("estimated (model: jetson-orin-nx-16gb") and "CUDA cores" in est.provenance
    with pytest.raises(ValueError, match="tensorrt needs a GPU; x86-cpu has none"):
        estimate_latency(trt, "x86-cpu")
    p = plan("x86-cpu", [cand("ref"), trt])
    assert p.chosen == "ref"
    assert "trt (tensorrt needs a GPU; x86-cpu has none)" in p.reason
    # a precision the device lacks: bf16 on a Xavier (Volta)
    with pytest.raises(ValueError, match="no bf16 path"):
        estimate_latency(cand("bf", "bf16", device="jetson-xavier-nx-8gb"), "jetson-xavier-nx-8gb")


def test_an_artifacts_quantization_method_needs_its_arithmetic_on_the_device(tmp_path):
    """int8-dynamic / -static / -torch compute in int8; int8-weight-only computes in fp32."""
    import yaml

    src = Path(__file__).resolve().parents[2] / "firmware_profiles" / "devices" / "x86-cpu.yaml"
    profile = yaml.safe_load(src.read_text())
    profile.update(name="fp32-only", precisions=["fp32"])
    path = tmp_path / "fp32-only.yaml"
    path.write_text(yaml.safe_dump(profile))
    with pytest.raises(ValueError, match="no int8 path for int8-dynamic"):
        estimate_latency(cand("q", "int8-dynamic"), path)
    assert estimate_latency(cand("w", "int8-weight-only"), path).p90_ms > 0


def test_power_mode_scales_latency_up_by_the_watts_ratio():
    record = cand("a", p90=10.0)
    full = estimate_latency(record, NANO)
    assert estimate_latency(record, NANO, "15W") == full
    low = estimate_latency(record, NANO, "7W")
    assert low.p90_ms == pytest.approx(full.p90_ms * 15 / 7) and low.p90_ms > full.p90_ms
    assert estimate_latency(record, NANO, 1) == low and estimate_latency(record, NANO, "1") == low
    assert "power 15 W / 7 W" in low.provenance
    # a figure measured on the device is measured at its highest mode, estimated below it
    on_device = cand("b", p90=10.0, device=NANO)
    assert estimate_latency(on_device, NANO).provenance == "measured"
    slow = estimate_latency(on_device, NANO, "7W")
    assert slow.p90_ms == pytest.approx(10.0 * 15 / 7) and slow.provenance.startswith("estimated")
    # a lower power mode can turn a feasible plan infeasible
    assert plan(NANO, [on_device], Constraints(latency_ms=15)).feasible
    assert not plan(NANO, [on_device], Constraints(latency_ms=15), power_mode="7W").feasible


# ------------------------------------------------------------------------------------------------
# The choice


def test_constraints_bind_and_ties_go_to_lower_latency():
    cands = [cand("ref", p90=40.0, memory_mb=900, weight_bytes=40_000_000),
             cand("int8-torch", "int8", accuracy=scaled(0.99), p90=20.0),
             cand("int8-ort", "int8", "onnxruntime", accuracy=scaled(0.99), p90=12.0),
             cand("pruned", "int8", accuracy=scaled(0.90), p90=5.0)]
    cands[3]["technique"]["pruning"] = 0.5
    p = plan("x86-cpu", cands, Constraints(latency_ms=30, memory_mb=512, max_loss={"vqa": 1.0}))
    assert p.feasible and p.chosen == "int8-ort" and p.reference == "ref"
    assert "Tied on accuracy with int8-torch" in p.reason
    assert "ref (latency p90 40 ms (measured) > 30 ms; peak memory 900 MB (measured) > 512 MB budget)" in p.reason
    assert "pruned (vqa 54 < 59 (ref 60 - max loss 1))" in p.reason
    assert p.figures["latency_ms_p90"] <= 30 and p.figures["peak_memory_mb"] <= 512
    assert p.provenance["latency_ms_p90"] == "measured"
    # both floor forms: the higher floor applies
    p2 = plan("x86-cpu", cands, Constraints(min_accuracy={"vqa": 59.5}, max_loss={"vqa": 5.0}))
    assert p2.chosen == "ref"
    assert {c["name"]: c["status"] for c in p2.candidates}["int8-ort"] == "rejected: vqa 59.4 < 59.5 (min)"
    # the plan travels as JSON and reads as text
    back = json.loads(p.to_json())
    assert back["chosen"] == "int8-ort" and back["provenance"]["latency_ms_p90"] == "measured"
    text = format_plan(p)
    assert "int8-ort" in text and "why:" in text and "measured" in text


def test_infeasible_names_the_closest_and_what_it_breaks():
    cands = [cand("slow", p90=20.0),                               # 20 -> 42.9 ms at 7 W: 0.43 over
             cand("big", p90=16.0, memory_mb=550),                 # 34.3 ms (0.14) and 550 MB (0.07)
             cand("weak", "int8", accuracy={**REF_ACCURACY, "vqa": 50.0}, p90=10.0),   # vqa 50 < 58 (0.138)
             cand("trt", "int8", "tensorrt", p90=1.0, device="jetson-orin-nx-16gb", memory_mb=2000)]
    cons = Constraints(latency_ms=30, memory_mb=512, min_accuracy={"vqa": 58.0}, reference="slow")
    p = plan("jetson-orin-nano", cands, cons, power_mode="7W")
    assert not p.feasible and p.chosen is None and p.closest == "weak"
    assert "Closest: weak, which breaks vqa 50 < 58 (min)" in p.reason
    assert p.figures["accuracy"]["vqa"] == 50.0
    without_weak = plan("jetson-orin-nano", cands[:2] + cands[3:], cons, power_mode="7W")
    assert without_weak.closest == "big"
    assert "latency p90 34.29 ms (estimated) > 30 ms" in without_weak.reason
    assert "peak memory 550 MB (estimated) > 512 MB budget" in without_weak.reason
    nothing_runs = plan("x86-cpu", [cands[3]])
    assert not nothing_runs.feasible and nothing_runs.closest is None
    assert "No candidate can run on x86-cpu" in nothing_runs.reason
    assert "infeasible (closest: none)" in format_plan(nothing_runs)


def test_a_solver_answer_that_breaks_a_constraint_is_refused(monkeypatch):
    cands = [cand("ok", p90=10.0), cand("too-slow", p90=50.0)]

    def wrong_milp(c, integrality, bounds, constraints, options):   # picks the candidate that breaks latency
        return SimpleNamespace(status=0, success=True, fun=-1.0, x=np.array([0.0, 1.0]), message="")

    monkeypatch.setattr(planner, "milp", wrong_milp)
    with pytest.raises(PlanVerificationError, match=r"fails verification.*too-slow: latency p90 50 ms"):
        plan("x86-cpu", cands, Constraints(latency_ms=30))


# ------------------------------------------------------------------------------------------------
# Against brute force


def random_candidates(rng, n):
    """``n`` random candidates plus the fp32 reference; a random mix of runtimes, precisions and
    measurement devices (x86, the Nano itself, an Orin NX for TensorRT)."""
    records = [cand("ref", p90=float(rng.uniform(20, 60)), memory_mb=float(rng.uniform(400, 900)),
                    weight_bytes=40_000_000, bs_cost=float(rng.uniform(1, 4)))]
    for i in range(n):
        runtime = str(rng.choice(planner.RUNTIMES, p=[0.4, 0.4, 0.2]))
        device = "jetson-orin-nx-16gb" if runtime == "tensorrt" else str(rng.choice(["x86-cpu", NANO], p=[0.7, 0.3]))
        records.append(cand(f"c{i}", str(rng.choice(["fp32", "fp16", "int8"])), runtime,
                            {t: v * float(rng.uniform(0.92, 1.02)) for t, v in REF_ACCURACY.items()},
                            p90=float(rng.uniform(2, 60)), memory_mb=float(rng.uniform(100, 1200)),
                            weight_bytes=int(rng.integers(1_000_000, 50_000_000)), device=device,
                            bs_cost=float(rng.uniform(0.5, 4))))
    return records


def random_constraints(rng):
    return Constraints(latency_ms=float(rng.uniform(25, 70)), percentile=str(rng.choice(["p50", "p90"])),
                       memory_mb=float(rng.uniform(600, 1300)), min_accuracy={"vqa": float(rng.uniform(54, 58))},
                       max_loss={"reconstruct": float(rng.uniform(1, 3))}, reference="ref")


def options(records, client):
    """Brute force's own view of a client: name -> (score, latency) of every admissible candidate,
    from the public estimate and the constraints checked here."""
    profile = load_profile(client.profile)
    cons = client.constraints
    ref = next(r for r in records if r["name"] == cons.reference)["accuracy"]
    out = {}
    for r in records:
        try:
            est = estimate_latency(r, profile, client.power_mode)
        except ValueError:
            continue
        latency = est.p90_ms if cons.percentile == "p90" else est.p50_ms
        floors = {**cons.min_accuracy}
        for task, loss in cons.max_loss.items():
            floors[task] = max(floors.get(task, -np.inf), ref[task] - loss)
        if (latency <= cons.latency_ms and r["peak_memory_mb"] <= min(cons.memory_mb, profile.memory_gb * 1024)
                and all(r["accuracy"][t] >= f for t, f in floors.items())):
            out[r["name"]] = (float(np.mean([r["accuracy"][t] / ref[t] for t in TASKS])), latency)
    return out


def brute_force(records, clients, shared=None):
    """The best combination by enumeration: highest summed score, then lowest summed latency."""
    by_name = {r["name"]: r for r in records}
    views = [options(records, c) for c in clients]
    combos = [combo for combo in itertools.product(*views)
              if all(sum(by_name[n][k] for n in combo) <= limit for k, limit in (shared or {}).items())]
    if not combos:
        return None
    score = {combo: sum(v[n][0] for v, n in zip(views, combo)) for combo in combos}
    best = max(score.values())
    ties = [combo for combo in combos if score[combo] >= best - planner.TIE_TOL * max(1.0, abs(best))]
    return min(ties, key=lambda combo: sum(v[n][1] for v, n in zip(views, combo)))


@pytest.mark.parametrize("seed", range(12))
def test_single_client_choice_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    records = random_candidates(rng, 10)
    for client in (Client("x86-cpu", random_constraints(rng)),
                   Client(NANO, random_constraints(rng), power_mode=str(rng.choice(["15W", "7W"])))):
        expected = brute_force(records, [client])
        p = plan(client.profile, records, client.constraints, power_mode=client.power_mode)
        assert p.feasible == (expected is not None)
        if expected is None:
            assert p.closest is not None and "Closest" in p.reason
            continue
        assert p.chosen == expected[0]
        cons = client.constraints
        assert p.figures[f"latency_ms_{cons.percentile}"] <= cons.latency_ms
        assert p.figures["peak_memory_mb"] <= cons.memory_mb
        assert p.figures["accuracy"]["vqa"] >= cons.min_accuracy["vqa"]


@pytest.mark.parametrize("seed", range(10))
def test_multi_client_shared_budget_equals_brute_force(seed):
    rng = np.random.default_rng(100 + seed)
    records = random_candidates(rng, 6)
    devices = [("x86-cpu", None), (NANO, "15W"), (NANO, "7W"), ("jetson-agx-orin-64gb", "MAXN")]
    clients = [Client(d, random_constraints(rng), mode, name=f"cl{i}")
               for i, (d, mode) in enumerate(devices[j] for j in rng.permutation(4)[:2 + seed % 2])]
    # budgets between the least and the most the clients' admissible candidates can use, so they bind
    views = [options(records, c) for c in clients]
    shared = {}
    for name in ("weight_bytes", "bs_cost")[:1 + (seed % 3 == 0)]:
        per_client = [[r[name] for r in records if r["name"] in v] or [0] for v in views]
        low, high = sum(map(min, per_client)), sum(map(max, per_client))
        shared[name] = float(low + rng.uniform(0.1, 0.7) * (high - low))
    expected = brute_force(records, clients, shared)
    mp = plan_many(clients, records, shared=shared)
    assert mp.feasible == (expected is not None), mp.reason
    if expected is None:
        assert not any(p.chosen for p in mp.clients)
        return
    assert tuple(p.chosen for p in mp.clients) == expected
    for name, t in mp.shared.items():
        assert t["total"] <= t["limit"] == shared[name]


def test_multi_client_budget_trades_one_clients_accuracy_for_the_others():
    cands = [cand("ref", p90=10.0, weight_bytes=40_000_000),
             cand("q-good", "int8", accuracy=scaled(0.99), p90=8.0, weight_bytes=20_000_000),
             cand("q-small", "int8", accuracy=scaled(0.95), p90=6.0, weight_bytes=8_000_000)]
    clients = [Client("x86-cpu", name="a"), Client("x86-cpu", Constraints(latency_ms=9), name="b")]
    alone = plan_many(clients, cands)
    assert [p.chosen for p in alone.clients] == ["ref", "q-good"]
    mp = plan_many(clients, cands, shared={"weight_bytes": 50_000_000})
    assert mp.feasible and [p.chosen for p in mp.clients] == ["q-good", "q-good"]
    assert mp.shared["weight_bytes"] == {"limit": 50_000_000, "total": 40_000_000.0}
    assert "within the shared budget" in mp.clients[0].reason
    tight = plan_many(clients, cands, shared={"weight_bytes": 10_000_000})
    assert not tight.feasible
    assert "shared weight_bytes: the smallest total the clients' admissible candidates reach is 16000000 > " \
           "10000000" in tight.reason
    assert [p.closest for p in tight.clients] == ["q-small", "q-small"]
    assert "infeasible" in format_plan(tight)
    stuck = plan_many([Client("x86-cpu", Constraints(latency_ms=1), name="a"), clients[1]], cands)
    assert not stuck.feasible and stuck.clients[0].closest == "q-small" and "a: No candidate meets" in stuck.reason
    assert json.loads(stuck.to_json())["clients"][1]["chosen"] is None


def test_the_planner_does_not_import_torch():
    code = "import sys, mtsc_sdr.compress.planner; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr
