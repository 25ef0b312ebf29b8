"""Baselines on the same channel as the semantic model.

* :class:`SeparateCodingBaseline` (:mod:`.separate`): the paper's baseline 1, separate source
  coding (stripped JPEG / WebP, raw DEFLATE) + channel coding (CRC-32, K=7 convolutional code,
  Gray QAM, soft Viterbi) with genie link adaptation.
* :func:`capacity_bits`, :func:`codec_at_capacity` (:mod:`.capacity`): the "codec at channel
  capacity" bound.

Heavy parts (commpy, scipy, Pillow) load when used.
"""

from .capacity import capacity_bits, codec_at_capacity, ergodic_rician_se
from .channel_code import MCS_TABLE, THRESHOLD_SNR_DB, BlockCode, Mcs, QamModem, choose_mcs
from .codecs import decode_image, decode_text, encode_image, encode_text
from .separate import SeparateCodingBaseline

__all__ = [
    "SeparateCodingBaseline", "capacity_bits", "codec_at_capacity", "ergodic_rician_se",
    "MCS_TABLE", "THRESHOLD_SNR_DB", "BlockCode", "Mcs", "QamModem", "choose_mcs",
    "decode_image", "decode_text", "encode_image", "encode_text",
]
