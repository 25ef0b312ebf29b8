"""Helpers shared by the backbone tests."""

from __future__ import annotations

import torch


def lam_outputs(m) -> tuple[torch.Tensor, torch.Tensor]:
    """LAM encoder states (2, 5, d) and decoder task semantics (2, 3, d) of an
    :class:`~mtsc_sdr.model.split.MTSCModel` ``m`` on fixed random inputs, eval mode, no_grad."""
    g = torch.Generator().manual_seed(1)
    x, q, sem = (torch.randn(2, n, m.cfg.d_model, generator=g) for n in (5, 3, 4))
    mask = torch.ones(2, 5, dtype=torch.bool)
    m.eval()
    with torch.no_grad():
        return m.client.lam_encoder(x, mask), m.server.lam_decoder(q, sem, mask[:, :4])
