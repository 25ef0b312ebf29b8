"""The sample-scaling table: to_driver / from_driver for pyadi-iio, gr-iio and UHD."""

from __future__ import annotations

import numpy as np
import pytest

from mtsc_sdr.phy import SCALING, FrameHeader, Transmitter, from_driver, to_driver
from tests.phy.impairments import random_payload


def test_table_has_the_three_backends():
    assert set(SCALING) == {"pyadi-iio", "gr-iio", "uhd"}
    assert SCALING["pyadi-iio"].tx_scale == 2 ** 14 and SCALING["pyadi-iio"].integer
    assert SCALING["gr-iio"].tx_scale == SCALING["uhd"].tx_scale == 1.0


def test_pyadi_tx_is_integer_valued_and_scaled_by_2_14():
    x = np.array([1.0 + 0j, -1.0j, 0.5 - 0.25j, 1e-5 + 0j], dtype=np.complex64)
    y, clipped = to_driver(x, "pyadi-iio")
    assert clipped == 0
    assert np.array_equal(y, np.array([16384, -16384j, 8192 - 4096j, 0], dtype=np.complex64))
    assert np.all(y.real == np.rint(y.real)) and np.all(y.imag == np.rint(y.imag))
    assert np.max(np.abs(y.real)) <= 2 ** 14 < 2 ** 15  # never wraps in pyadi-iio's int16 cast


@pytest.mark.parametrize("backend", ["gr-iio", "uhd"])
def test_float_backends_pass_through(backend):
    x = (np.random.default_rng(0).standard_normal(100) * 0.3 + 0.1j).astype(np.complex64)
    y, clipped = to_driver(x, backend)
    assert clipped == 0 and y.dtype == np.complex64 and np.array_equal(y, x)
    back, sat = from_driver(y, backend)
    assert sat == 0 and np.array_equal(back, x)


def test_round_trip_of_a_frame_through_each_backend():
    x = Transmitter().build(random_payload(np.random.default_rng(1), 480), FrameHeader(1, 0, 480))
    for backend in SCALING:
        y, clipped = to_driver(x, backend)
        assert clipped == 0  # the PHY keeps |x| <= 1
        if backend == "pyadi-iio":
            # the Pluto loops its 2**14-scaled DAC input back at 12-bit ADC scale: 2**14 -> 2**11
            y = np.rint(y / 8.0)
        back, sat = from_driver(y, backend)
        tol = 1.0 / 2 ** 11 if backend == "pyadi-iio" else 0.0
        assert np.max(np.abs(back - x)) <= tol and sat == 0


def test_overflow_is_clipped_and_counted_or_refused():
    x = np.array([0.5, 1.5 + 0j, 0.2 - 3j, -1.0], dtype=np.complex64)
    y, clipped = to_driver(x, "pyadi-iio")
    assert clipped == 2
    assert np.array_equal(y, np.array([8192, 16384, 3277 - 16384j, -16384], dtype=np.complex64))
    y, clipped = to_driver(x, "uhd")
    assert clipped == 2 and np.max(np.abs(y.real)) <= 1 and np.max(np.abs(y.imag)) <= 1
    with pytest.raises(OverflowError, match="2 samples"):
        to_driver(x, "gr-iio", overflow="raise")


def test_from_driver_counts_adc_saturation_and_accepts_interleaved_ints():
    raw = np.array([2047, -2048, 100, -100, 0, 2047], dtype=np.int16)  # I, Q interleaved
    x, sat = from_driver(raw, "pyadi-iio")
    assert sat == 2
    assert x.dtype == np.complex64 and np.allclose(x, np.array([2047 - 2048j, 100 - 100j, 2047j]) / 2 ** 11)
    c, sat = from_driver(np.array([2047 - 5j, 3 + 3j]), "pyadi-iio")
    assert sat == 1 and np.allclose(c, np.array([2047 - 5j, 3 + 3j]) / 2 ** 11)


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match="backend"):
        to_driver(np.zeros(3, np.complex64), "hackrf")
    with pytest.raises(ValueError, match="overflow"):
        to_driver(np.zeros(3, np.complex64), "uhd", overflow="wrap")
    with pytest.raises(ValueError, match="NaN"):
        to_driver(np.array([np.nan], np.complex64), "uhd")
    with pytest.raises(ValueError, match="even"):
        from_driver(np.zeros(3, np.int16), "pyadi-iio")
