"""OFDM numerology, training sequences and the frame layout shared by TX, RX and the genie.

Why OFDM
--------
The payload is analog-valued (JSC-coded) complex symbols, not constellation points, so the receiver
can never make decisions on it to refine its estimates: everything (timing, CFO, channel, phase
drift) has to come from known training (the preamble, the pilots, and the header once its CRC has
passed). OFDM makes that cheap and robust: a one-tap equaliser per subcarrier
handles multipath within the cyclic prefix, an LS/LMMSE channel estimate from three long training
symbols covers every subcarrier at once, and four pilots per symbol track common phase (residual CFO,
phase noise) and the timing drift caused by sample-rate offset. A single-carrier design would need
a time-domain equaliser trained on the preamble and a decision-free way to track phase across long
bursts, which is harder to get within 1 dB of a genie.

Numerology (802.11a-like, values in samples at the baseband sample rate ``fs``)
--------------------------------------------------------------------------------
* FFT size ``N_FFT = 64``, cyclic prefix ``N_CP = 16`` -> OFDM symbol = 80 samples.
* Used subcarriers -26..26 without DC (52); DC (bin 0) and the guard bands (|k| >= 27) stay empty.
* Pilots on k = -21, -7, 7, 21 in every header and payload symbol; the other 48 carry data.
* FFTs are unitary (``fft(x) / 8``) so a bin's noise power equals the per-sample noise power N0.

Frame (lengths in samples; ``L`` payload symbols)::

    | STF 160 | LTF 224 (GI 32 + 3 x 64) | header N_HEADER_SYM x 80 | payload ceil(L/48) x 80 |

    frame_length(L) = 384 + 80 * (N_HEADER_SYM + ceil(L / 48))      (N_HEADER_SYM = 7)

* STF: energy on every 4th subcarrier (12 bins, QPSK) -> period 16 samples, 10 periods. Used for
  detection (normalised lag-16 autocorrelation) and coarse CFO, unambiguous to +-fs/32 (+-3.1 %).
* LTF: BPSK on all 52 used subcarriers, a 32-sample guard interval and three identical 64-sample
  symbols. Used for fine timing (cross-correlation), fine CFO (lag-64 autocorrelation, +-fs/128,
  then lag 128 for precision), the channel estimate and the SNR estimate (noise from the spread of
  the three symbols around their mean). A third copy (802.11 uses two) halves the residual CFO
  that pilots must track and lowers channel-estimation noise: at 0 dB on frequency-selective
  channels, where pilots can sit in fades, that residual CFO was what made headers fail.
* Header: QPSK, see :mod:`mtsc_sdr.phy.header`.
* Payload: the L analog symbols, DFT-spread over the whole payload (header version 2,
  :mod:`mtsc_sdr.phy.spreading`: importance-weighted payloads would otherwise clip), fill the 48
  data subcarriers of consecutive symbols in order of increasing frequency (k = -26 .. 26); the
  unused slots of the last symbol carry a known unit-power QPSK filler so every payload symbol has
  the same average power. Version-1 frames carry the symbols unspread.

Power: every part of the frame (STF, LTF, header, payload) has the same average power on the wire,
``PAYLOAD_POWER`` (conventions.py), because each uses unit-power values on its bins scaled by
``sqrt(PAYLOAD_POWER * 64 / n_bins)``. A unit-power payload therefore has average power exactly
``PAYLOAD_POWER`` in the time domain (cyclic prefix included, in expectation).

Sequences were chosen once by a random search for low peak-to-average power (STF 2.3 dB, LTF 3.3 dB
at 4x oversampling) and are fixed constants of the protocol version.
"""

from __future__ import annotations

import math

import numpy as np

from mtsc_sdr.conventions import PAYLOAD_POWER

N_FFT = 64
N_CP = 16
SYM_LEN = N_FFT + N_CP  # 80
STF_PERIOD = 16
STF_LEN = 160
LTF_GI = 32
N_LTF = 3
LTF_LEN = LTF_GI + N_LTF * N_FFT  # 224
PREAMBLE_LEN = STF_LEN + LTF_LEN  # 384

#: Used subcarriers (signed indices), DC excluded.
USED = np.array([k for k in range(-26, 27) if k != 0])
PILOTS = np.array([-21, -7, 7, 21])
DATA = np.array([k for k in USED if k not in set(PILOTS.tolist())])
N_USED = USED.size  # 52
N_DATA = DATA.size  # 48
#: FFT bin indices (numpy order) of the used / pilot / data subcarriers.
USED_BINS = USED % N_FFT
PILOT_BINS = PILOTS % N_FFT
DATA_BINS = DATA % N_FFT
#: Positions of pilots / data within the 52 used subcarriers (in order of USED).
PILOT_POS = np.searchsorted(USED, PILOTS)
DATA_POS = np.searchsorted(USED, DATA)

#: Amplitude per used bin that gives time-domain average power PAYLOAD_POWER for unit-power values.
AMP_USED = math.sqrt(PAYLOAD_POWER * N_FFT / N_USED)
#: Equalised symbols have per-subcarrier SNR = snr * SUBCARRIER_SNR_GAIN (energy of 52 bins spread
#: over 64 samples); the SNR the JSC decoder sees per payload symbol is snr_db + SUBCARRIER_SNR_GAIN_DB.
SUBCARRIER_SNR_GAIN = N_FFT / N_USED
SUBCARRIER_SNR_GAIN_DB = 10.0 * math.log10(SUBCARRIER_SNR_GAIN)

# --- training sequences --------------------------------------------------------------------------
_STF_BINS = np.array([k for k in range(-24, 25, 4) if k != 0])
_STF_QPSK = "030303101230"
_LTF_BITS = "1010010001000101001100001111100000010011101011110010"


def _unitary_ifft(bins: np.ndarray, values: np.ndarray) -> np.ndarray:
    spec = np.zeros(N_FFT, dtype=np.complex128)
    spec[np.asarray(bins) % N_FFT] = values
    return np.fft.ifft(spec) * math.sqrt(N_FFT)


#: STF frequency values on _STF_BINS (unit magnitude) and one 64-sample period-16 symbol at wire power.
STF_VALUES = np.exp(1j * (np.pi / 2 * np.array([int(c) for c in _STF_QPSK]) + np.pi / 4))
_STF_SYMBOL = _unitary_ifft(_STF_BINS, STF_VALUES * math.sqrt(PAYLOAD_POWER * N_FFT / _STF_BINS.size))
STF = np.tile(_STF_SYMBOL, 3)[:STF_LEN].astype(np.complex64)

#: LTF BPSK values on USED (order of USED) and one 64-sample LTF symbol at wire power.
LTF_VALUES = 1.0 - 2.0 * np.array([int(c) for c in _LTF_BITS], dtype=np.float64)
LTF_SYMBOL = _unitary_ifft(USED, LTF_VALUES * AMP_USED)
LTF = np.concatenate([LTF_SYMBOL[-LTF_GI:]] + [LTF_SYMBOL] * N_LTF).astype(np.complex64)
PREAMBLE = np.concatenate([STF, LTF])


def lfsr_bits(n: int, seed: int = 0x7F) -> np.ndarray:
    """``n`` bits of the maximal-length sequence of x^7 + x^4 + 1 (period 127), as uint8."""
    state = seed & 0x7F
    out = np.empty(n, dtype=np.uint8)
    for i in range(n):
        bit = ((state >> 6) ^ (state >> 3)) & 1
        out[i] = bit
        state = ((state << 1) | bit) & 0x7F
    return out


#: Pilot polarity per OFDM symbol (header and payload symbols counted together), period 127.
PILOT_POLARITY = 1.0 - 2.0 * lfsr_bits(127).astype(np.float64)
#: Base pilot values on PILOTS for polarity +1.
PILOT_BASE = np.array([1.0, 1.0, 1.0, -1.0])


def pilot_values(n_sym: int, first: int = 0) -> np.ndarray:
    """Pilot values (n_sym, 4) of symbols ``first .. first + n_sym - 1`` (unit magnitude, real)."""
    idx = (np.arange(n_sym) + first) % PILOT_POLARITY.size
    return PILOT_POLARITY[idx, None] * PILOT_BASE[None, :]


_FILLER_BITS = lfsr_bits(2 * N_DATA, seed=0x5A)
#: Known unit-power QPSK filler for the unused data slots of the last payload symbol.
FILLER = ((1.0 - 2.0 * _FILLER_BITS[0::2]) + 1j * (1.0 - 2.0 * _FILLER_BITS[1::2])) / math.sqrt(2.0)


def n_payload_symbols(payload_len: int) -> int:
    """OFDM symbols needed for ``payload_len`` complex payload symbols."""
    return -(-int(payload_len) // N_DATA)


def modulate(grid: np.ndarray) -> np.ndarray:
    """OFDM symbols from unit-power values on the used subcarriers.

    grid: complex (n_sym, 52) values in order of USED (data and pilots together), unit average power.
    Returns complex128 (n_sym * 80,) time samples with cyclic prefix, average power PAYLOAD_POWER.
    """
    n_sym = grid.shape[0]
    spec = np.zeros((n_sym, N_FFT), dtype=np.complex128)
    spec[:, USED_BINS] = grid * AMP_USED
    sym = np.fft.ifft(spec, axis=1) * math.sqrt(N_FFT)
    return np.concatenate([sym[:, -N_CP:], sym], axis=1).reshape(-1)


def assemble(data: np.ndarray, first_symbol: int = 0) -> np.ndarray:
    """Place data values (n_sym, 48) and the pilots of symbols first_symbol.. on the used grid (n_sym, 52)."""
    n_sym = data.shape[0]
    grid = np.empty((n_sym, N_USED), dtype=np.complex128)
    grid[:, DATA_POS] = data
    grid[:, PILOT_POS] = pilot_values(n_sym, first_symbol)
    return grid
