"""Joint source-channel (JSC) coding with importance-aware, channel-adaptive variable rate.

Encoder (client): LAM encoder states (B, L, d) -> complex channel symbols.

1. Importance: a small head scores every token, ``importance`` float32 (B, L) (logits; padding
   tokens and the task token, whose id the frame header carries, get -inf).
2. Rate: :func:`choose_rate` picks, from the SNR (CSI), the budget and the tokens available, an
   index into ``rate_table`` = complex symbols per kept token. The SNR sets the least redundancy
   allowed; every token is kept whenever an allowed rate fits them all (with the most redundancy
   that does), otherwise the item keeps as many tokens as that floor allows.
3. Keep ``k = min(budget // rate_table[rate_idx], valid tokens)`` tokens with the highest scores,
   **in their original order**. Positions are not transmitted: the states already carry BART's
   position information, and the receiver's only consumer (LAM decoder cross-attention) treats
   its keys as a set, so order carries nothing it needs.
4. Each kept state is scaled by the gate ``sigmoid(importance)``, FiLM-conditioned on the SNR, and
   mapped by the rate's linear head to ``2 s`` reals = ``s`` complex symbols. Top-k itself has no
   gradient; the gate is how the loss teaches the importance head (tokens that help get larger
   gates, so more of the item's power; the same gate is used at inference, so training and
   inference see the same function).
5. Per item the used ``n_symbols = k s`` symbols are normalised to unit average power
   (``mean |x|^2 = 1`` over them; the PHY applies its back-off afterwards, see
   :mod:`mtsc_sdr.conventions`).

Layout of ``symbols`` complex64 (B, budget): token-major (token j's s symbols at
``[j s, (j+1) s)``), zeros after ``n_symbols``. Only the first ``n_symbols`` go on the air; the
frame header carries ``rate_idx``, and the receiver gets ``n_tokens = n_symbols // s`` from the
payload length.

Decoder (server): received (equalised) symbols + ``rate_idx`` + ``n_tokens`` + SNR estimate ->
received semantics float32 (B, K, d) with mask (B, K), K = max n_tokens in the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .config import ModelConfig


def choose_rate(snr_db: torch.Tensor, budget: int, rate_table, thresholds_db,
                n_valid: torch.Tensor | None = None) -> torch.Tensor:
    """Rate index per item from the SNR (CSI), the budget and the tokens available.

    The SNR sets the least redundancy allowed: ``s_min`` = the last (most symbols per token)
    entry below ``thresholds_db[0]``, one entry less per threshold passed. Then:

    * if some allowed rate ``s >= s_min`` fits *every* token (``n_valid * s <= budget``), the
      largest such rate: nothing is dropped, and the spare budget buys redundancy;
    * otherwise ``s_min`` itself, which keeps the most tokens the SNR allows (the most important
      ones, see :class:`JSCEncoder`).

    So a 16-token image at 512 symbols goes at 32 symbols per token at any SNR, and a 24-token VQA
    input (image + question) at 16 per token rather than dropping 8 tokens to reach 32; at low SNR
    or a small budget the item keeps fewer tokens, each better protected.

    Args:
        snr_db: float (B,) SNR (Es/N0, dB) the client expects at the receiver.
        budget: complex symbols per item.
        rate_table: ascending symbols per token; thresholds_db: ascending, len(rate_table) - 1.
        n_valid: int64 (B,) tokens that could be sent (None: unlimited, so ``s_min``).
    Returns:
        int64 (B,), never a rate whose single token exceeds ``budget``.
    """
    table = torch.as_tensor(rate_table, dtype=torch.int64, device=snr_db.device)
    fits = rates_that_fit(rate_table, budget)
    thr = torch.as_tensor(thresholds_db, dtype=torch.float32, device=snr_db.device)
    passed = (thr[None, :] <= snr_db.float()[:, None]).sum(1)      # thresholds <= snr
    lowest = (len(rate_table) - 1 - passed).clamp(max=fits - 1)     # (B,) index of s_min
    if n_valid is None:
        return lowest.to(torch.int64)
    idx = torch.arange(len(rate_table), device=snr_db.device)[None, :]
    allowed = (idx >= lowest[:, None]) & (idx < fits)                               # (B, R)
    keeps_all = allowed & (n_valid[:, None] * table[None, :] <= budget)
    best_all = torch.where(keeps_all, idx, torch.full_like(idx, -1)).max(dim=1).values
    return torch.where(best_all >= 0, best_all, lowest).to(torch.int64)


def rates_that_fit(rate_table, budget: int) -> int:
    """How many rates (from the first) have one token's symbols within ``budget``; ValueError
    when none does."""
    fits = sum(1 for s in rate_table if s <= budget)
    if fits == 0:
        raise ValueError(f"budget of {budget} symbols is less than the smallest rate {rate_table[0]}")
    return fits


class SNRFiLM(nn.Module):
    """Feature-wise affine conditioning on the SNR: x (B, K, d), snr_db (B,) -> (B, K, d)."""

    def __init__(self, d: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(1, d), nn.GELU(), nn.Linear(d, 2 * d))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, x: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.net((snr_db.float() / 10.0)[:, None]).chunk(2, dim=-1)
        return x * (1.0 + gamma[:, None, :]) + beta[:, None, :]


@dataclass
class AssembledCode:
    """What :meth:`JSCEncoder.assemble_reals` returns: fixed shapes, no complex dtype (what an
    exported encode graph outputs).

    Attributes:
        reals: float32 (B, budget, 2), the symbols as (re, im), unit average power over each
            item's first n_symbols, zeros after.
        rate_idx, n_tokens: int64 (B,). keep: bool (B, L), which tokens were kept.
    """

    reals: torch.Tensor
    rate_idx: torch.Tensor
    n_tokens: torch.Tensor
    keep: torch.Tensor


@dataclass
class JSCCode:
    """What :class:`JSCEncoder` returns.

    Attributes:
        symbols: complex64 (B, budget), unit average power over each item's first n_symbols.
        rate_idx: int64 (B,) index into the rate table (carried by the frame header).
        n_tokens: int64 (B,) kept tokens per item.
        kept_positions: int64 (B, K) kept token positions (ascending, -1 padding); client-side only.
        importance: float32 (B, L) importance logits (-inf at padding); client-side only.
    """

    symbols: torch.Tensor
    rate_idx: torch.Tensor
    n_tokens: torch.Tensor
    kept_positions: torch.Tensor
    importance: torch.Tensor


def kept_positions(keep: torch.Tensor, n_tokens: torch.Tensor) -> torch.Tensor:
    """bool (B, L) kept tokens, int64 (B,) how many -> their positions int64 (B, max n_tokens),
    ascending, padded with -1."""
    big = keep.shape[1]
    pos = torch.arange(big, device=keep.device).expand_as(keep)
    pos = torch.where(keep, pos, torch.full_like(pos, big)).sort(dim=1).values[:, :int(n_tokens.max()) if n_tokens.numel() else 0]
    return torch.where(pos == big, torch.full_like(pos, -1), pos)


class JSCEncoder(nn.Module):
    """LAM encoder states -> channel symbols (see the module docstring)."""

    def __init__(self, cfg: ModelConfig, skip_first: int = 1):
        super().__init__()
        d = cfg.d_model
        self.skip_first = skip_first     # leading positions never sent (the task token)
        #: which tokens are kept: "importance" (the model), or for ablations "fixed" (the first
        #: sendable positions) or "random" (uniform, from ``selection_generator``)
        self.selection = "importance"
        self.selection_generator: torch.Generator | None = None
        self.rate_table = tuple(cfg.rate_table)
        self.thresholds_db = tuple(cfg.rate_snr_thresholds_db)
        self.default_budget = cfg.symbols_per_item
        self.importance = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d), nn.GELU(), nn.Linear(d, 1))
        self.film = SNRFiLM(d)
        self.norm = nn.LayerNorm(d)
        self.heads = nn.ModuleList(nn.Linear(d, 2 * s) for s in self.rate_table)

    def forward(self, states: torch.Tensor, mask: torch.Tensor, snr_db: torch.Tensor,
                budget: int | None = None) -> JSCCode:
        """states float32 (B, L, d), mask bool (B, L), snr_db float (B,) -> :class:`JSCCode`:
        :meth:`project` then :meth:`assemble`."""
        score, codes = self.project(states, mask, snr_db)
        return self.assemble(score, codes, snr_db, budget)

    def project(self, states: torch.Tensor, mask: torch.Tensor, snr_db: torch.Tensor
                ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Every token's code at every rate, before any choice (steps 1 and 4 of the module
        docstring, applied to all tokens): the fixed-shape part of the encoder, which the client
        runtimes other than torch run as a graph (:mod:`mtsc_sdr.compress`).

        The first ``skip_first`` positions (the task token) are never sent: the frame header
        carries the task id and the server has its own task queries.

        Args:
            states: float32 (B, L, d) LAM encoder states; mask: bool (B, L); snr_db: float (B,).
        Returns:
            score float32 (B, L), importance logits, -inf where a token is not sendable; and
            codes: per rate index r, float32 (B, L, 2 s_r): token j's s_r complex symbols as
            (re, im) pairs, gated and SNR-conditioned, not yet power-normalised.
        """
        sendable = mask.clone()
        sendable[:, :self.skip_first] = False
        score = self.importance(states).squeeze(-1).masked_fill(~sendable, float("-inf"))
        h = self.film(self.norm(states), snr_db) * torch.sigmoid(score)[..., None]
        return score, [head(h) for head in self.heads]

    def assemble(self, score: torch.Tensor, codes: list[torch.Tensor], snr_db: torch.Tensor,
                 budget: int | None = None) -> JSCCode:
        """Steps 2, 3 and 5 of the module docstring on :meth:`project`'s output: choose the rate,
        keep the most important tokens of each item in their order, normalise the power
        (:meth:`assemble_reals`, as complex symbols with the kept positions).

        Args:
            score: float32 (B, L); codes: per rate, float32 (B, L, 2 s_r); snr_db: float (B,);
            budget: complex symbols per item (None: the model's default).
        """
        code = self.assemble_reals(score, codes, snr_db, budget)
        return JSCCode(torch.view_as_complex(code.reals), code.rate_idx, code.n_tokens,
                       kept_positions(code.keep, code.n_tokens), score)

    def assemble_reals(self, score: torch.Tensor, codes: list[torch.Tensor], snr_db: torch.Tensor,
                       budget: int | None = None) -> AssembledCode:
        """:meth:`assemble` in fixed shapes, with no data-dependent size and no Python loop over
        items, so that it exports into a graph and runs on a GPU without host syncs.

        Each token's rank by importance decides whether it is kept (rank < n_tokens); a kept
        token's slot is the number of kept tokens before it, so kept tokens keep their order.
        Every rate that fits the budget scatters its codes into its slots; each item takes its
        own rate's result.
        """
        budget = self.default_budget if budget is None else int(budget)
        fits = rates_that_fit(self.rate_table, budget)
        b = score.shape[0]
        n_sendable = torch.isfinite(score).sum(1)
        rate_idx = choose_rate(snr_db, budget, self.rate_table, self.thresholds_db, n_sendable)
        spt = torch.as_tensor(self.rate_table, device=score.device)[rate_idx]
        slots_per_rate = torch.as_tensor([budget // s for s in self.rate_table], device=score.device)
        n_tokens = torch.minimum(slots_per_rate[rate_idx], n_sendable).to(torch.int64)
        rank = self._ranking(score).argsort(dim=1, descending=True).argsort(dim=1)    # (B, L)
        keep = rank < n_tokens[:, None]
        slot = keep.cumsum(1) - 1                                                   # (B, L)
        reals = score.new_zeros((b, 2 * budget))
        for r in range(fits):
            s, slots = self.rate_table[r], budget // self.rate_table[r]
            dest = torch.where(keep & (slot < slots), slot, torch.full_like(slot, slots))   # slots: discarded
            z = score.new_zeros((b, slots + 1, 2 * s)).scatter_add(1, dest[..., None].expand(-1, -1, 2 * s),
                                                                    codes[r].float())
            z = torch.nn.functional.pad(z[:, :slots].reshape(b, 2 * s * slots), (0, 2 * (budget - s * slots)))
            reals = reals + z * (rate_idx == r)[:, None]
        power = reals.pow(2).sum(1) / (n_tokens * spt).clamp(min=1)
        reals = reals / torch.sqrt(power + 1e-12)[:, None]
        return AssembledCode(reals.view(b, budget, 2), rate_idx, n_tokens, keep)

    def _ranking(self, score: torch.Tensor) -> torch.Tensor:
        """Scores that decide which tokens are kept (B, L); -inf positions stay -inf."""
        if self.selection == "importance":
            return score
        if self.selection == "fixed":
            alt = -torch.arange(score.shape[1], dtype=score.dtype, device=score.device).expand_as(score)
        elif self.selection == "random":
            alt = torch.rand(score.shape, generator=self.selection_generator).to(score.device)
        else:
            raise ValueError(f"selection must be 'importance', 'fixed' or 'random', got {self.selection!r}")
        return alt.masked_fill(torch.isinf(score), float("-inf"))


def _groups(rate_idx: torch.Tensor):
    """(rate, item indices) for each rate present in the batch."""
    for r in torch.unique(rate_idx).tolist():
        yield int(r), torch.nonzero(rate_idx == r).flatten()


class JSCDecoder(nn.Module):
    """Received symbols -> received semantics, conditioned on the SNR estimate (FiLM)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.d_model
        self.rate_table = tuple(cfg.rate_table)
        self.heads = nn.ModuleList(nn.Linear(2 * s, d) for s in self.rate_table)
        # per received real, an SNR-dependent gain before the head (identity at init): lets the
        # decoder lean on weak code dimensions at high SNR and shrink them at low SNR, as an MMSE
        # estimator would, which a FiLM after the (SNR-blind) head cannot do
        self.input_gain = nn.ModuleList(SNRFiLM(2 * s) for s in self.rate_table)
        self.film = SNRFiLM(d)
        self.refine = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, cfg.ffn_dim), nn.GELU(),
                                    nn.Linear(cfg.ffn_dim, d))

    def forward(self, symbols: torch.Tensor, rate_idx: torch.Tensor, n_tokens: torch.Tensor,
                snr_est_db: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode.

        Args:
            symbols: complex64 (B, S) equalised received symbols, token-major as sent (S >= used).
            rate_idx: int64 (B,) from the frame header.
            n_tokens: int64 (B,) = received payload length // rate_table[rate_idx].
            snr_est_db: float (B,) the receiver's SNR estimate (Es/N0 after equalisation, dB).
        Returns:
            semantics float32 (B, K, d) and mask bool (B, K), K = max n_tokens (>= 1).
        """
        b = symbols.shape[0]
        kmax = max(1, int(n_tokens.max()))
        d = self.heads[0].out_features
        out = symbols.new_zeros((b, kmax, d), dtype=torch.float32)
        for r, items in _groups(rate_idx):
            s = self.rate_table[r]
            kr = int(n_tokens[items].max())
            if kr == 0:
                continue
            y = torch.view_as_real(symbols[items, :kr * s].reshape(len(items), kr, s))
            y = self.input_gain[r](y.reshape(len(items), kr, 2 * s), snr_est_db[items])
            h = self.heads[r](y)
            out = out.index_put((items[:, None], torch.arange(kr, device=h.device)[None, :]), h)
        mask = torch.arange(kmax, device=symbols.device)[None, :] < n_tokens[:, None]
        out = self.film(out, snr_est_db)
        out = out + self.refine(out)
        return out * mask[..., None], mask
