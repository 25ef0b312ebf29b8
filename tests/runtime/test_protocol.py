"""The runtime protocol: downlink metadata validation and checkpoint identities."""

from __future__ import annotations

import pytest

from mtsc_sdr.runtime import protocol


def test_downlink_meta_validation():
    meta = protocol.DownlinkMeta(seq=1, task_id=0, rate_idx=2, n_tokens=3, snr_est_db=1.0, snr_payload_db=2.0,
                                 cfo_hz=3.0, rx_sync_ms=1, jsc_decoder_ms=1, lam_decoder_ms=1, t_frame_s=0,
                                 t_sent_s=0, host="h")
    assert protocol.DownlinkMeta.from_meta(meta.to_meta()) == meta
    with pytest.raises(ValueError, match="seq"):
        protocol.DownlinkMeta.from_meta(dict(meta.to_meta(), seq="1"))
    with pytest.raises(ValueError, match="lacks 'host'"):
        protocol.DownlinkMeta.from_meta({k: v for k, v in meta.to_meta().items() if k != "host"})
    with pytest.raises(ValueError):
        protocol.DownlinkMeta.from_meta([1, 2])


def test_checkpoint_identity_differences(micro_checkpoint):
    ident = protocol.checkpoint_identity(micro_checkpoint)
    assert set(ident) == {"format_version", "config", "tokenizer", "weights"}
    assert protocol.identity_differences(dict(ident), ident) == {}
    diff = protocol.identity_differences(dict(ident, weights="0" * 16), ident)
    assert list(diff) == ["weights"] and diff["weights"] == ["0" * 16, ident["weights"]]
    assert set(protocol.identity_differences(None, ident)) == set(ident)
    assert "weights: client" in protocol.describe_differences(diff)
