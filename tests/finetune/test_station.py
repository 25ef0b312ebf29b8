"""Split fine-tuning over the real link: the client's frames on an IQ stream, a base station in
fine-tuning mode, the gradients on the control link; a dead base station costs the batch."""

from __future__ import annotations

import copy
import threading

import numpy as np
import pytest
import torch

from mtsc_sdr.data import collate, examples
from mtsc_sdr.finetune.adapters import prepare
from mtsc_sdr.finetune.link import RemoteLink
from mtsc_sdr.finetune.split import ClientHalf, adamw, train_batch
from mtsc_sdr.finetune.station import TrainingBaseStation
from mtsc_sdr.model import load
from mtsc_sdr.runtime import protocol


def _serve(bs, stop: threading.Event):
    while not stop.is_set():
        bs.serve(stop_after_s=0.1)


def test_batches_train_both_halves_over_the_link_and_a_dead_base_station_costs_the_batch(micro_checkpoint):
    from mtsc_sdr.link import free_tcp_endpoint
    from mtsc_sdr.runtime.client import Client, ClientSettings

    model = load(micro_checkpoint)
    setup = prepare(model)
    iq = free_tcp_endpoint()
    bs = TrainingBaseStation(str(micro_checkpoint), [iq], "tcp://127.0.0.1:*", lr=1e-3)
    server_before = copy.deepcopy(bs.server)
    client_before = copy.deepcopy(model.client)
    stop = threading.Event()
    thread = threading.Thread(target=_serve, args=(bs, stop), daemon=True)
    thread.start()
    client = Client(model.client, protocol.checkpoint_identity(str(micro_checkpoint)), iq, bs.control.endpoint,
                    ClientSettings(session=7, snr_db=30.0, hello_timeout_s=30.0))
    try:
        client.handshake()
        link = RemoteLink(client, timeout_s=10.0)
        half = ClientHalf(model.client, adamw(1e-3))
        csi = torch.full((3,), 30.0)
        for seed in (1, 2):
            batch = collate(examples("val", ["vqa"], n_per_task=3, seed=seed))
            result = train_batch(half, link, batch, "vqa", csi)
            assert result.lost is None and np.isfinite(result.loss)
        assert bs.stats["train_steps"] == 2 and not bs.half.kept
        c = link.counters
        assert c.iq_bytes > 0 and c.activation_bytes == c.gradient_up_bytes > 0 and c.gradient_down_bytes > 0

        changed = [n for n, p in bs.server.named_parameters() if p.requires_grad
                   and not torch.equal(p, dict(server_before.named_parameters())[n])]
        assert changed and all(n.startswith(("jsc_decoder", "task_queries", "lam_decoder")) for n in changed)
        trained = {n.removeprefix("client.") for n in setup.shared + setup.personal}
        before = dict(client_before.named_parameters())
        moved = {n for n, p in model.client.named_parameters() if not torch.equal(p, before[n])}
        assert moved <= trained and all("lora_A" not in n for n in moved)       # A stays frozen
        assert any("lora_B" in n for n in moved) and any(n.startswith("jsc_encoder") for n in moved)

        stop.set()
        thread.join(timeout=10)
        bs.close()                                                               # the base station dies
        link.timeout_s = 1.0
        batch = collate(examples("val", ["vqa"], n_per_task=3, seed=3))
        frozen = copy.deepcopy(model.client)
        result = train_batch(half, link, batch, "vqa", csi)
        assert result.loss is None and result.lost == "forward"
        assert link.counters.frames_lost == 3 and link.counters.batches_lost == 1
        for (n, a), b in zip(frozen.named_parameters(), model.client.parameters()):
            assert torch.equal(a, b), n
    finally:
        stop.set()
        client.control.close(linger_ms=0)
        client.push.close(linger_ms=0)


def test_labels_never_cross_the_link(micro_checkpoint, monkeypatch):
    """Every byte on the IQ stream and the control link during fine-tuning, both ways: none of
    the answers, captions or questions, as text or as the token ids the client trains on."""
    from mtsc_sdr.link import free_tcp_endpoint
    from tests.runtime.helpers import record_wire
    from mtsc_sdr.runtime.client import Client, ClientSettings

    wire = record_wire(monkeypatch)

    model = load(micro_checkpoint)
    prepare(model)
    iq = free_tcp_endpoint()
    bs = TrainingBaseStation(str(micro_checkpoint), [iq], "tcp://127.0.0.1:*", lr=1e-3)
    stop = threading.Event()
    thread = threading.Thread(target=_serve, args=(bs, stop), daemon=True)
    thread.start()
    client = Client(model.client, protocol.checkpoint_identity(str(micro_checkpoint)), iq, bs.control.endpoint,
                    ClientSettings(session=9, snr_db=30.0, hello_timeout_s=30.0))
    secrets = []
    try:
        client.handshake()
        link, half = RemoteLink(client, timeout_s=10.0), ClientHalf(model.client, adamw(1e-3))
        for task in ("vqa", "caption_video", "caption_image"):
            items = examples("val", [task], n_per_task=3, seed=11)
            assert train_batch(half, link, collate(items), task, torch.full((3,), 30.0)).lost is None
            secrets += [text for ex in items for text in (*ex.references, ex.question) if text]
    finally:
        stop.set()
        thread.join(timeout=10)
        client.close()
        bs.close()
    data = b"".join(wire)
    assert len(data) > 100_000 and len(secrets) >= 12
    tok = model.tokenizer
    for text in secrets:
        assert text.encode() not in data, text
        ids = tok.encode_target(text, 64)
        for dtype in (np.int64, np.int32):
            assert np.asarray(ids, dtype).tobytes() not in data, text
            assert np.asarray(ids[1:-1], dtype).tobytes() not in data, text


@pytest.mark.parametrize("option", [["--capture", "rec"], ["--kb", "kb"]])
def test_the_station_refuses_base_station_options_it_does_not_implement(option):
    from mtsc_sdr.config import ConfigError
    from mtsc_sdr.finetune.station import main

    with pytest.raises(ConfigError, match="does not record captures or read knowledge bases"):
        main(["--rx", "tcp://127.0.0.1:1", "--control", "tcp://127.0.0.1:2", *option])


def test_a_node_reaches_a_curve_station_with_the_key_its_run_config_names(micro_checkpoint, tmp_path):
    """The Flower client app's link to a station beyond loopback: ``curve-server-key`` (and
    ``curve-keys`` for an allow-list) in the run config make the control link CURVE."""
    from mtsc_sdr.finetune import task
    from mtsc_sdr.link import free_tcp_endpoint
    from mtsc_sdr.link.curve import CurveServer, curve_keypair
    from mtsc_sdr.link.keys import create_keypair
    from mtsc_sdr.link.security import LinkSecurity

    station_keys, node = curve_keypair(), create_keypair(tmp_path, "node0")
    iq = free_tcp_endpoint()
    bs = TrainingBaseStation(str(micro_checkpoint), [iq], "tcp://127.0.0.1:*", lr=1e-3,
                             security=LinkSecurity(server=CurveServer(station_keys, frozenset({node.public.encode()}))))
    stop = threading.Event()
    thread = threading.Thread(target=_serve, args=(bs, stop), daemon=True)
    thread.start()
    config = {"checkpoint": str(micro_checkpoint), "control-endpoint": bs.control.endpoint, "tx-endpoints": iq,
              "link-timeout-s": 30.0, "curve-server-key": station_keys.public.decode(),
              "curve-keys": str(tmp_path / "node0")}
    try:
        client, _ = task._connect(config, 0, load(micro_checkpoint).client)   # the handshake, over CURVE
        try:
            assert client._curve and task.DEFAULTS["session-base"] in bs.sessions
        finally:
            client.control.close(linger_ms=0)
            client.push.close(linger_ms=0)
    finally:
        stop.set()
        thread.join(timeout=10)
        bs.close()
    with pytest.raises(ValueError, match="curve-server-key"):
        task._security({"curve-keys": str(tmp_path / "node0")})
