"""The software channel: impairments as composable stages.

Streaming (numpy, chunk-invariant, seeded): :class:`StreamingChannel` of stages :class:`AWGN`,
:class:`BlockFading`, :class:`TappedDelayLine`, :class:`CarrierOffset`, :class:`PhaseNoise`,
:class:`IntegerDelay`, :class:`Resampler` (fractional delay + SRO), :class:`IQImbalance`,
:class:`DCOffset`; built from a YAML-loadable :class:`ChannelProfile` by :func:`build_channel`.

Batched and differentiable (torch, for training): :mod:`mtsc_sdr.channel.torch_channel`, imported
on demand so that importing this package never imports torch.

SNR everywhere is Es/N0 per complex symbol on the payload (:mod:`mtsc_sdr.conventions`).
"""

from .awgn import AWGN
from .base import BlockStream, Stage, make_rng, seed_sequence
from .fading import BlockFading, k_factor_linear, rician_gains
from .frontend import DCOffset, IQImbalance
from .multipath import TappedDelayLine, exponential_pdp
from .oscillator import CarrierOffset, PhaseNoise
from .profile import (
    OVERRIDE_SHORTCUTS,
    AwgnConfig,
    CfoConfig,
    ChannelProfile,
    DcOffsetConfig,
    FadingConfig,
    IqImbalanceConfig,
    MultipathConfig,
    PhaseNoiseConfig,
    SroConfig,
    TimingConfig,
    build_channel,
    build_stages,
    stage_seed,
)
from .streaming import StreamingChannel
from .timing import IntegerDelay, Resampler

__all__ = [
    "AWGN", "BlockFading", "BlockStream", "CarrierOffset", "DCOffset", "IQImbalance", "IntegerDelay",
    "PhaseNoise", "Resampler", "Stage", "StreamingChannel", "TappedDelayLine",
    "AwgnConfig", "CfoConfig", "ChannelProfile", "DcOffsetConfig", "FadingConfig", "IqImbalanceConfig",
    "MultipathConfig", "PhaseNoiseConfig", "SroConfig", "TimingConfig", "OVERRIDE_SHORTCUTS",
    "build_channel", "build_stages", "stage_seed", "exponential_pdp", "k_factor_linear", "make_rng",
    "rician_gains", "seed_sequence",
]
