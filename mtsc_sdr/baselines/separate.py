"""The paper's baseline 1: separate source and channel coding over the same channel.

Each item is compressed (:mod:`.codecs`: stripped JPEG / WebP for images, raw DEFLATE with a preset
dictionary for text), protected by CRC-32 + the K=7 convolutional code punctured to the MCS rate,
Gray-QAM modulated into exactly ``symbols_per_item`` complex symbols of unit average power
(:mod:`.channel_code`), sent through the project's software channel (:mod:`mtsc_sdr.channel`), and
decoded with soft max-log demapping and Viterbi. A failed decode (CRC) gives what a real receiver
has: the mean image for images, None for text.

Channel (SNR = Es/N0 per complex symbol, Es = 1):

* ``'awgn'``: :class:`mtsc_sdr.channel.AWGN` with ``signal_power=1``.
* ``'rician'``: :class:`mtsc_sdr.channel.BlockFading` with one gain per item (``coherence_samples``
  = the item's symbols; Rician K ``k_factor_db``, E|h|^2 = 1) followed by the same AWGN; the
  receiver knows h exactly (perfect CSI) and equalises ``y / h`` with noise ``N0 / |h|^2`` in its
  LLRs.

Link adaptation: images use the genie choice :func:`.channel_code.choose_mcs` (highest rate whose
measured 10%-BLER threshold + margin is below the SNR; ``mcs_snr='average'`` uses the average SNR,
the transmitter's usual knowledge, ``'instantaneous'`` the item's ``|h|^2 snr`` on Rician), then
the codec fills that MCS's payload; when not even the lowest codec quality fits it, the lowest
faster MCS that fits is used instead (a chance of success beats a certain failure). Text is
lossless, so it uses the *most robust* MCS that still carries the compressed text (lowest rate that
fits), unless an MCS is forced. Text that fits no MCS is not sent (None, ``info['reason']``).

For the text tasks the receiver runs the project's model on the decoded input; that hookup lives
with the model: this class delivers the decoded question text (:meth:`transmit_text`), image
(:meth:`transmit_image`) or raw bytes (:meth:`transmit_bytes`).

Speed (2-core CPU, one item, median): 4-11 ms per 32x32 image at 256 symbols, 6-25 ms at 1024
(codec search 1-8 ms, soft Viterbi the rest, growing with the MCS's block length).
"""

from __future__ import annotations

import copy

import numpy as np

from mtsc_sdr.channel import AWGN, BlockFading

from .channel_code import MCS_BY_NAME, MCS_TABLE, BlockCode, Mcs, choose_mcs
from .codecs import decode_image, decode_text, encode_image, encode_text

__all__ = ["SeparateCodingBaseline"]

CHANNELS = ("awgn", "rician")


class SeparateCodingBaseline:
    """Separate source + channel coding with ``symbols_per_item`` complex symbols per item.

    Args:
        symbols_per_item: B, complex symbols per item (the semantic model's budget).
        seed: explicit seed; item ``i`` (counted over all transmit calls) draws its noise and
            fading from ``SeedSequence(seed).spawn``-style child ``i``, so runs are reproducible.
        mean_image: what a failed image decode yields: an int (a constant image, default mid-grey
            128) or a uint8 (H, W, 3) mean image of the training distribution.
        k_factor_db: Rician K of ``channel='rician'`` (the channel profile's default, 6 dB).
        margin_db: SNR margin of the genie MCS choice over the 10%-BLER thresholds.
        mcs_snr: 'average' or 'instantaneous' (see the module docstring).
        codecs: image codecs to try.
        decoder: Viterbi implementation, 'fast' (project's) or 'commpy'.
    """

    def __init__(self, symbols_per_item: int, seed: int, mean_image: int | np.ndarray = 128,
                 k_factor_db: float | None = 6.0, margin_db: float = 0.5,
                 mcs_snr: str = "average", codecs: tuple[str, ...] = ("jpeg", "webp"),
                 decoder: str = "fast"):
        if symbols_per_item < 1:
            raise ValueError(f"symbols_per_item must be >= 1, got {symbols_per_item}")
        if mcs_snr not in ("average", "instantaneous"):
            raise ValueError(f"mcs_snr must be 'average' or 'instantaneous', got {mcs_snr!r}")
        self.symbols_per_item = int(symbols_per_item)
        self.seed = seed
        self.mean_image = mean_image
        self.k_factor_db = k_factor_db
        self.margin_db = margin_db
        self.mcs_snr = mcs_snr
        self.codecs = codecs
        self.decoder = decoder
        self._seq = np.random.SeedSequence(seed)
        self._codes: dict[str, BlockCode] = {}

    def code(self, mcs: Mcs | str) -> BlockCode:
        """The (cached) block code of ``mcs`` for this symbol budget."""
        name = mcs if isinstance(mcs, str) else mcs.name
        if name not in self._codes:
            self._codes[name] = BlockCode(MCS_BY_NAME[name], self.symbols_per_item, self.decoder)
        return self._codes[name]

    def _mean(self, shape) -> np.ndarray:
        if isinstance(self.mean_image, np.ndarray):
            if self.mean_image.shape != tuple(shape):
                raise ValueError(f"mean_image has shape {self.mean_image.shape}, items {shape}")
            return self.mean_image.astype(np.uint8, copy=True)
        return np.full(shape, int(self.mean_image), dtype=np.uint8)

    # --- channel -----------------------------------------------------------------------------------

    def _draw_channel(self, channel: str):
        """Stages of the next item's channel: (fading stage or None, noise seed)."""
        if channel not in CHANNELS:
            raise ValueError(f"channel must be one of {CHANNELS}, got {channel!r}")
        fade_seed, noise_seed = self._seq.spawn(1)[0].spawn(2)
        fading = None
        if channel == "rician":
            fading = BlockFading(self.symbols_per_item, fade_seed, k_factor_db=self.k_factor_db)
        return fading, noise_seed

    def _send(self, x: np.ndarray, snr_db: float, fading, noise_seed) -> tuple[np.ndarray, np.ndarray]:
        """(B,) unit-power symbols -> equalised symbols and N0 per symbol (perfect CSI)."""
        y = x.astype(np.complex64)
        h = np.complex64(1.0)
        if fading is not None:
            y = fading(y)
            h = fading.current_gain
        noise = AWGN(snr_db, seed=noise_seed, signal_power=1.0)
        y = noise(y)
        g = float(abs(h) ** 2)
        return y.astype(np.complex128) / complex(h), np.full(y.size, noise.noise_power / max(g, 1e-30))

    def _gain_probe(self, fading) -> float:
        """|h|^2 of the item's block without disturbing the stream (for mcs_snr='instantaneous')."""
        probe = copy.deepcopy(fading)
        probe(np.ones(1, dtype=np.complex64))
        return float(abs(probe.current_gain) ** 2)

    # --- transmit ----------------------------------------------------------------------------------

    def transmit_bytes(self, data: bytes, snr_db: float, channel: str = "awgn",
                       mcs: Mcs | str | None = None) -> tuple[bytes | None, dict]:
        """Send raw bytes in one block: the most robust MCS that carries them (or ``mcs``) ->
        (decoded bytes or None, info: mcs, bytes, success, reason)."""
        fading, noise_seed = self._draw_channel(channel)
        if mcs is None:
            fitting = [m for m in MCS_TABLE if self.code(m).capacity_bytes >= len(data)]
            if not fitting:
                return None, {"mcs": None, "bytes": len(data), "success": False,
                              "reason": "source exceeds the block's largest capacity"}
            mcs = fitting[0]
        code = self.code(mcs)
        if len(data) > code.capacity_bytes:
            return None, {"mcs": code.mcs.name, "bytes": len(data), "success": False,
                          "reason": f"source exceeds the capacity of {code.mcs.name}"}
        y, n0 = self._send(code.encode(data), snr_db, fading, noise_seed)
        out = code.decode(y, n0)
        return out, {"mcs": code.mcs.name, "bytes": len(data), "success": out is not None,
                     "reason": "" if out is not None else "CRC failed"}

    def transmit_text(self, text: str, snr_db: float, channel: str = "awgn",
                      mcs: Mcs | str | None = None) -> tuple[str | None, dict]:
        """Question / caption text -> (decoded text or None, info: coder, bytes, mcs, success)."""
        out, info = self.transmit_bytes(encode_text(text), snr_db, channel, mcs)
        decoded = None if out is None else decode_text(out)
        info = {"coder": "deflate-raw+dict", **info, "success": decoded is not None}
        return decoded, info

    def transmit_image(self, img: np.ndarray, snr_db: float, channel: str = "awgn",
                       mcs: Mcs | str | None = None) -> tuple[np.ndarray, dict]:
        """uint8 (H, W, 3) image -> (received image, or the mean image on failure, info: codec,
        quality, subsampling, bytes, mcs, success, psnr_tx_db (codec-only PSNR))."""
        img = np.asarray(img)
        fading, noise_seed = self._draw_channel(channel)
        auto = mcs is None
        if auto:
            snr = snr_db
            if self.mcs_snr == "instantaneous" and fading is not None:
                snr = snr_db + 10.0 * np.log10(max(self._gain_probe(fading), 1e-30))
            mcs = choose_mcs(snr, self.margin_db)
        code = self.code(mcs)
        enc = encode_image(img, code.capacity_bytes, self.codecs)
        if enc is None and auto:
            # nothing fits the genie's MCS: a certain failure; a faster MCS that fits at least
            # gives a chance of success (expected quality above the mean image's)
            for m in MCS_TABLE[MCS_TABLE.index(code.mcs) + 1:]:
                enc = encode_image(img, self.code(m).capacity_bytes, self.codecs)
                if enc is not None:
                    code = self.code(m)
                    break
        info = {"mcs": code.mcs.name, "codec": None, "quality": None, "subsampling": None,
                "bytes": 0, "success": False, "psnr_tx_db": None}
        if enc is None:
            info["reason"] = "no codec setting fits the block"
            return self._mean(img.shape), info
        info.update(codec=enc.codec, quality=enc.quality, subsampling=enc.subsampling,
                    bytes=enc.n_bytes, psnr_tx_db=enc.psnr_db)
        y, n0 = self._send(code.encode(enc.data), snr_db, fading, noise_seed)
        out = code.decode(y, n0)
        rec = None if out is None else decode_image(out, img.shape)
        if rec is None:
            info["reason"] = "CRC failed" if out is None else "codec could not decode"
            return self._mean(img.shape), info
        info["success"] = True
        return rec, info
