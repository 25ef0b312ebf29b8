"""The Flower apps end to end with the fake task (tests/finetune/fake_task.py): in the simulation
engine (Ray, virtual clients) and deployed (real flower-superlink / flower-supernode processes on
loopback). The aggregated state is checked exactly, and the report names every node's fate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("flwr")

from mtsc_sdr.finetune.federation import run_deployment, run_simulation, write_app_dir  # noqa: E402
from tests.finetune import fake_task  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TASK = {"task-module": "tests.finetune.fake_task"}


def initial_state() -> dict[str, np.ndarray]:
    return fake_task.trainable_state(fake_task.build_model({}))


def assert_state(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert sorted(got) == sorted(want)
    for key in want:
        assert got[key].dtype == np.float32
        np.testing.assert_array_equal(got[key], want[key])


def partitions(phase: dict, status: str = "accepted") -> list[int]:
    return sorted(c["partition_id"] for c in phase["clients"] if c["status"] == status)


@pytest.mark.slow
def test_simulation_three_clients_two_rounds(tmp_path):
    pytest.importorskip("ray")
    result = run_simulation(3, 2, dict(TASK), workdir=tmp_path)

    want = fake_task.expected_after_round(fake_task.expected_after_round(initial_state(), [0, 1, 2]), [0, 1, 2])
    assert_state(result.state, want)
    report = result.report
    assert report["num_rounds"] == 2 and [r["round"] for r in report["rounds"]] == [1, 2]
    for rnd in report["rounds"]:
        train = rnd["train"]
        assert partitions(train) == [0, 1, 2] and train["rejected"] == [] and train["absent"] == []
        assert {c["num_examples"] for c in train["clients"]} == {10, 20, 30}
        assert train["aggregated_metrics"]["num-examples"] == 60
        # the server's round number reached the task through the message's config
        assert {c["metrics"]["server-round"] for c in train["clients"]} == {rnd["round"]}
        # each node kept its personal state from the round before (never sent)
        assert {c["metrics"]["personal-rounds"] for c in train["clients"]} == {float(rnd["round"])}
        assert rnd["bytes_model_updates"]["down"] > 0 and rnd["bytes_model_updates"]["up"] > 0
        assert partitions(rnd["evaluate"]) == [0, 1, 2]
    assert report["trainable_params"] == 11
    assert (tmp_path / "report.json").exists()


@pytest.mark.slow
def test_simulation_poisoned_and_dropped_clients_do_not_stop_the_round(tmp_path):
    """Partition 1 sends NaN, partition 2 fails in training: partition 0 alone makes the round."""
    pytest.importorskip("ray")
    config = {**TASK, "fake-poison-partition": 1, "fake-poison": "nan", "fake-fail-partition": 2}
    result = run_simulation(3, 1, config, workdir=tmp_path)

    assert_state(result.state, fake_task.expected_after_round(initial_state(), [0]))
    train = result.report["rounds"][0]["train"]
    assert partitions(train) == [0]
    assert partitions(train, "rejected") == [1]
    assert len(train["rejected"]) == 1 and "non-finite" in train["rejected"][0]["reason"]
    assert len(train["absent"]) == 1 and train["absent"][0]["reason"].startswith("error reply")


def test_app_dir_names_the_components_and_the_run_config(tmp_path):
    try:
        import tomllib
    except ImportError:             # Python 3.10: the backport flwr depends on
        import tomli as tomllib

    write_app_dir(tmp_path, {**TASK, "num-server-rounds": 4, "max-update-norm": 2.5})
    app = tomllib.loads((tmp_path / "pyproject.toml").read_text())["tool"]["flwr"]["app"]
    assert app["components"] == {"serverapp": "mtsc_sdr.finetune.server_app:app",
                                 "clientapp": "mtsc_sdr.finetune.client_app:app"}
    assert app["config"] == {**TASK, "num-server-rounds": 4, "max-update-norm": 2.5}


@pytest.mark.slow
def test_deployment_two_supernodes_one_round_on_loopback(tmp_path):
    """Real flower-superlink and two flower-supernode processes, `flwr run`, torn down after."""
    # the fake task lives in tests/, outside the installed package: the app processes need the repo
    result = run_deployment(2, 1, dict(TASK), workdir=tmp_path, env={"PYTHONPATH": str(REPO)}, timeout_s=120)

    assert_state(result.state, fake_task.expected_after_round(initial_state(), [0, 1]))
    train = result.report["rounds"][0]["train"]
    assert partitions(train) == [0, 1] and train["rejected"] == [] and train["absent"] == []
    assert partitions(result.report["rounds"][0]["evaluate"]) == [0, 1]


def test_secure_commands_use_tls_and_node_authentication(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_ssh_private_key, load_ssh_public_key

    from mtsc_sdr.finetune.federation import make_node_key, make_tls_files, secure_commands

    assert secure_commands("127.0.0.1", 9091, None, None) == (["--insecure"], [["--insecure"]])
    tls = make_tls_files(tmp_path, ("127.0.0.1", "localhost"))
    key, pub = make_node_key(tmp_path / "node0")
    link, nodes = secure_commands("127.0.0.1", 9091, tls, [key])
    assert link == ["--ssl-ca-certfile", str(tls.ca), "--ssl-certfile", str(tls.cert), "--ssl-keyfile", str(tls.key),
                    "--enable-supernode-auth"]
    assert nodes == [["--root-certificates", str(tls.ca), "--auth-supernode-private-key", str(key)]]
    assert "--insecure" not in link + nodes[0]
    cert = x509.load_pem_x509_certificate(tls.cert.read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    assert oct(tls.key.stat().st_mode & 0o777) == "0o600" and oct(key.stat().st_mode & 0o777) == "0o600"
    private = load_ssh_private_key(key.read_bytes(), None)
    assert private.public_key().public_numbers() == load_ssh_public_key(pub.read_bytes()).public_numbers()
    with pytest.raises(ValueError, match="needs TLS"):
        secure_commands("127.0.0.1", 9091, None, [key])


@pytest.mark.slow
def test_deployment_with_tls_and_node_authentication_on_loopback(tmp_path):
    """The documented beyond-the-machine configuration, on loopback: TLS with a throwaway CA, and only
    SuperNodes whose keys were registered may join."""
    result = run_deployment(2, 1, dict(TASK), workdir=tmp_path, env={"PYTHONPATH": str(REPO)}, timeout_s=120,
                            secure=True)

    assert_state(result.state, fake_task.expected_after_round(initial_state(), [0, 1]))
    assert partitions(result.report["rounds"][0]["train"]) == [0, 1]
