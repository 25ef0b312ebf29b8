"""Physical layer: OFDM framing for analog-valued payload symbols, and a streaming receiver.

Public API::

    from mtsc_sdr.phy import Transmitter, Receiver, ReceiverConfig, FrameHeader, RxFrame, frame_length

    tx = Transmitter()
    samples = tx.build(payload, FrameHeader(session_id=1, seq=0, payload_len=payload.size))
    rx = Receiver()
    frames = rx.process(chunk) + rx.flush()       # list[RxFrame]

See :mod:`mtsc_sdr.phy.ofdm` for the frame format, :mod:`mtsc_sdr.phy.rx` for the receiver,
:mod:`mtsc_sdr.phy.scaling` for driver sample formats and :mod:`mtsc_sdr.phy.genie` for the
perfect-knowledge reference receiver. SNR everywhere is Es/N0 per complex payload symbol on the
wire (mtsc_sdr.conventions).
"""

from mtsc_sdr.phy.genie import genie_receive
from mtsc_sdr.phy.header import PHY_VERSION, FrameHeader
from mtsc_sdr.phy.ofdm import SUBCARRIER_SNR_GAIN_DB
from mtsc_sdr.phy.rx import DropRecord, Receiver, ReceiverConfig, RxFrame
from mtsc_sdr.phy.scaling import SCALING, from_driver, to_driver
from mtsc_sdr.phy.tx import Transmitter, frame_length

__all__ = [
    "PHY_VERSION", "SCALING", "SUBCARRIER_SNR_GAIN_DB", "DropRecord", "FrameHeader", "Receiver",
    "ReceiverConfig", "RxFrame", "Transmitter", "frame_length", "from_driver", "genie_receive",
    "to_driver",
]
