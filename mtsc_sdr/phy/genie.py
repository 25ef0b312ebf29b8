"""Genie receiver: perfect timing, CFO and channel knowledge. The yardstick for the real receiver.

It sees the same received samples as :class:`mtsc_sdr.phy.rx.Receiver` but is told where the frame
starts, the exact CFO and the exact channel impulse response, so its only error is the noise on the
payload subcarriers (plus any ISI the channel really causes). It does no pilot tracking: with exact
knowledge there is nothing to track (no phase noise or sample-rate offset in the scenarios it is
meant for).
"""

from __future__ import annotations

import math

import numpy as np

from mtsc_sdr.phy import header as hdr
from mtsc_sdr.phy import ofdm, spreading


def genie_receive(samples: np.ndarray, start: int, payload_len: int, *, channel_taps=(1.0,),
                  cfo: float = 0.0, cfo_ref: int = 0, version: int = hdr.PHY_VERSION) -> np.ndarray:
    """Equalised payload (complex64, (payload_len,)) in the transmitter's units.

    samples: the received stream; start: index in ``samples`` of the frame's first sample (channel
    tap 0 arrives there); channel_taps: the channel's impulse response (tap i delayed by i samples);
    cfo: cycles per sample, the stream being ``(x * h)[n] * exp(j 2 pi cfo (n - cfo_ref))``;
    version: the frame's header version (2: the payload is DFT-spread, undone after zero-forcing).
    """
    n_sym = ofdm.n_payload_symbols(payload_len)
    lo = start + ofdm.PREAMBLE_LEN + ofdm.SYM_LEN * hdr.N_HEADER_SYM
    seg = np.asarray(samples[lo:lo + ofdm.SYM_LEN * n_sym], dtype=np.complex128)
    if seg.size != ofdm.SYM_LEN * n_sym:
        raise ValueError("samples: the frame runs past the end of the stream")
    n = np.arange(lo, lo + seg.size) - cfo_ref
    seg = seg * np.exp(-2j * np.pi * cfo * n)
    Y = np.fft.fft(seg.reshape(n_sym, ofdm.SYM_LEN)[:, ofdm.N_CP:], axis=1) / math.sqrt(ofdm.N_FFT)
    H = np.fft.fft(np.asarray(channel_taps, dtype=np.complex128), ofdm.N_FFT)
    X = Y[:, ofdm.DATA_BINS] / (H[ofdm.DATA_BINS] * ofdm.AMP_USED)
    X = X.reshape(-1)[:payload_len]
    if hdr.spreads_payload(version):
        X = spreading.despread(X)
    return X.astype(np.complex64)
