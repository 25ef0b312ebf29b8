"""The split training step: at high SNR its gradients are the one-process gradients of the same
batch; a lost frame costs the batch and nothing steps."""

from __future__ import annotations

import copy

import pytest
import torch

from mtsc_sdr.data import collate, examples
from mtsc_sdr.finetune.adapters import prepare
from mtsc_sdr.finetune.link import LocalLink
from mtsc_sdr.finetune.split import ClientHalf, ServerHalf, train_batch
from mtsc_sdr.model import load
from mtsc_sdr.phy.ofdm import SUBCARRIER_SNR_GAIN_DB

#: SGD step size of the comparison: a parameter's change is -LR times its gradient
LR = 1e-2
#: high enough that the channel noise and the PHY's estimation errors are negligible
SNR_DB = 60.0


def sgd(params):
    return torch.optim.SGD(params, lr=LR)


@pytest.fixture(scope="module")
def prepared(micro_checkpoint):
    model = load(micro_checkpoint).eval()          # eval: no dropout, so both passes are the same function
    setup = prepare(model)
    return model, setup


def _deltas(before, after, names):
    a, b = dict(before.named_parameters()), dict(after.named_parameters())
    return {n: (b[n] - a[n]).detach() for n in names}


@pytest.mark.parametrize("task", ["vqa", "caption_video"])
def test_split_gradients_equal_one_process_gradients_at_high_snr(prepared, task):
    model, setup = prepared
    batch = collate(examples("val", [task], n_per_task=4, seed=3))
    csi = torch.full((4,), SNR_DB + SUBCARRIER_SNR_GAIN_DB)

    split = copy.deepcopy(model)
    server = ServerHalf(split.server, sgd)
    told = []                                   # the SNR estimates the PHY gave the server
    forward = server.forward
    server.forward = lambda *a: told.append(a[-1]) or forward(*a)
    link = LocalLink(server, snr_db=SNR_DB, seed=1)
    result = train_batch(ClientHalf(split.client, sgd), link, batch, task, csi)

    # the same batch in one process, the server told the same SNR estimates (the model is
    # conditioned on them; the PHY's estimate is within a few tenths of a dB of the genie's)
    one = copy.deepcopy(model)
    opt = sgd([p for p in one.parameters() if p.requires_grad])
    up = one.client.encode(batch, task, csi, analog=False)
    res = one.transmit(up, csi, fading=None, generator=torch.Generator().manual_seed(0), analog=False,
                       snr_est_db=torch.tensor(told, dtype=torch.float32))
    loss_one = one.client.task_loss(task, res.downlink.semantics, batch)
    loss_one.backward()
    opt.step()
    assert result.lost is None and abs(result.loss - float(loss_one.detach())) < 1e-4 * float(loss_one.detach())

    names = setup.shared + setup.personal + setup.server
    d_one, d_split = _deltas(model, one, names), _deltas(model, split, names)
    flat_one = torch.cat([d_one[n].flatten() for n in names])
    flat_split = torch.cat([d_split[n].flatten() for n in names])
    assert float(flat_one.norm()) > 0
    assert float((flat_split - flat_one).norm() / flat_one.norm()) < 5e-3     # measured 1e-3 and 3e-4
    for group in (setup.shared, setup.server):           # each side's own gradients too
        a = torch.cat([d_one[n].flatten() for n in group])
        b = torch.cat([d_split[n].flatten() for n in group])
        assert float((b - a).norm() / a.norm()) < 1e-2, group[0]
    assert link.counters.iq_bytes > 0 and link.counters.gradient_down_bytes > 0


def test_a_lost_frame_costs_the_batch_and_nothing_steps(prepared):
    model, setup = prepared
    task = "vqa"
    batch = collate(examples("val", [task], n_per_task=3, seed=5))
    split = copy.deepcopy(model)
    server = ServerHalf(split.server, sgd)
    link = LocalLink(server, snr_db=-30.0, seed=2)      # nothing decodes at -30 dB
    before = copy.deepcopy(split)
    result = train_batch(ClientHalf(split.client, sgd), link, batch, task, torch.full((3,), 10.0))
    assert result.loss is None and result.lost == "forward"
    assert link.counters.frames_lost == 3 and link.counters.batches_lost == 1 and not server.kept
    for (n, a), b in zip(before.named_parameters(), split.parameters()):
        assert torch.equal(a, b), n
    assert all(p.grad is None for p in split.parameters())


def test_interleaved_clients_batches_both_train(prepared):
    """Two clients' batches interleave at one base station: the second backward comes after the
    first one's step moved the weights, so its forward runs again instead of failing."""
    model, _ = prepared
    split = copy.deepcopy(model)
    server = ServerHalf(split.server, sgd)
    links = [LocalLink(server, snr_db=30.0, seed=s, session=s) for s in (1, 2)]
    halves = [ClientHalf(copy.deepcopy(split.client), sgd) for _ in links]
    batch = collate(examples("val", ["vqa"], n_per_task=2, seed=7))
    csi = torch.full((2,), 30.0)
    sems = [link.forward(half.encode(batch, "vqa", csi)) for link, half in zip(links, halves)]
    for link, half, sem in zip(links, halves, sems):
        loss, grads = half.semantics_grads("vqa", batch, sem)
        half.backward(link.backward(grads))
    assert server.steps == 2 and server.recomputed == 2 and not server.kept
