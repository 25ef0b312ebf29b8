"""The knowledge-editing benchmark on a few items with the shipped RAG model: every phase runs,
each target gets its row, and the phases measure what they say (a fact added to a base is
answered, a removed one is not claimed)."""

from __future__ import annotations

import json

from tests.benchmarks.helpers import load_benchmark


def test_a_short_run_reports_every_phase_and_target(tmp_path, capsys):
    bench = load_benchmark("rag_update")
    code = bench.main(["--scenes", "3", "--unrelated", "8", "--latency-items", "2", "--index-docs", "2000",
                       "--out", str(tmp_path), "--json"])
    report = json.loads((tmp_path / "report.json").read_text())
    assert code in (0, 1)
    metrics = {r["metric"] for r in report["rows"]}
    assert {"accuracy_without_documents", "accuracy_after_add", "follows_replacement", "follows_reworded_replacement",
            "still_claims_after_remove", "follows_local_when_bases_disagree", "unrelated_accuracy_change",
            "recall_at_5", "item_latency_ms_p50", "query_latency_ms_p50", "flat_speedup_over_faiss_flatip",
            "docs_per_s"} <= metrics
    rows = {(r["metric"], r.get("base"), r.get("phrasing")): r for r in report["rows"]}
    assert rows[("accuracy_after_add", "global", "seen")]["value"] > rows[("accuracy_without_documents", None, "seen")]["value"]
    assert rows[("follows_replacement", "global", "seen")]["value"] > 50.0
    assert rows[("still_claims_after_remove", "local", None)]["value"] < 50.0
    assert all("meets_target" in r for r in report["rows"] if "target" in r)
    per_template = report["by_question_template"]["accuracy_after_add/local"]
    assert "whose object is the {s}?" in per_template or "the {s} belongs to who?" in per_template
    assert all(0.0 <= v <= 100.0 for v in per_template.values())
    assert report["meta"]["config"]["checkpoint"] == "models/rag"
