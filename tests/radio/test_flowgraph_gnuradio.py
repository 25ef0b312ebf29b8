"""GNU Radio flowgraphs with real GNU Radio (skipped with the reason when it is absent).

* every ``flowgraphs/*.grc`` compiles with grcc to exactly the checked-in Python, and that Python
  imports and parses its default options under the GNU Radio Python;
* ``sim_channel`` passes samples end to end over ZeroMQ (our PUSH binds its ``in_addr``, our PULL
  connects to its ``out_addr``); the noise it adds has the power that ``snr_db`` asks for under
  :mod:`mtsc_sdr.conventions`; fading keeps the average power; CFO rotates as asked;
* the launcher stops it cleanly, and a flowgraph that dies is reported with its output.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import zmq

from mtsc_sdr import conventions
from mtsc_sdr.link import free_tcp_endpoint
from mtsc_sdr.radio.flowgraph import (
    FLOWGRAPHS,
    Flowgraph,
    FlowgraphFailed,
    compile_grc,
    generated_source_lines,
)

pytestmark = pytest.mark.gnuradio

NAMES = sorted(FLOWGRAPHS)
N_SAMPLES = 1 << 17
CHUNK = 8192
RECV_TIMEOUT_MS = 10_000


@pytest.fixture(scope="module")
def compiled(gr_python, tmp_path_factory):
    out = tmp_path_factory.mktemp("grcc")
    return {name: compile_grc(FLOWGRAPHS[name].grc, out, python=gr_python) for name in NAMES}


@pytest.mark.parametrize("name", NAMES)
def test_grc_compiles_to_the_checked_in_python(compiled, name):
    fresh = compiled[name].read_text()
    checked_in = FLOWGRAPHS[name].script.read_text()
    assert generated_source_lines(fresh) == generated_source_lines(checked_in), (
        f"flowgraphs/{name}.py is stale: regenerate it with `mtsc-sdr flowgraph --compile {name}` "
        f"(or grcc -o flowgraphs flowgraphs/{name}.grc)")


_IMPORT_CHECK = r"""
import importlib.util, sys
spec = importlib.util.spec_from_file_location("fg", sys.argv[1])
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)          # imports gnuradio.zeromq / channels / iio / uhd
opts = mod.argument_parser().parse_args([])
print(sorted(vars(opts)))
"""


@pytest.mark.parametrize("name", NAMES)
def test_generated_python_imports_under_gnuradio(gr_python, name):
    script = FLOWGRAPHS[name].script
    proc = subprocess.run([gr_python, "-c", _IMPORT_CHECK, str(script)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(sorted(FLOWGRAPHS[name].params))


# --------------------------------------------------------------------------------------------
# sim_channel end to end
# --------------------------------------------------------------------------------------------


def _payload(n: int, seed: int) -> np.ndarray:
    """Complex Gaussian samples of average power PAYLOAD_POWER (what the PHY puts on the wire)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n) + 1j * rng.standard_normal(n)
    return (x * np.sqrt(conventions.PAYLOAD_POWER / 2)).astype(np.complex64)


def _through(gr_python, params: dict, x: np.ndarray) -> tuple[np.ndarray, int | None]:
    """Send ``x`` through sim_channel with ``params``; (received samples, its exit code after stop)."""
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    pull = ctx.socket(zmq.PULL)
    try:
        push.setsockopt(zmq.LINGER, 0)
        push.setsockopt(zmq.SNDTIMEO, RECV_TIMEOUT_MS)
        push.bind("tcp://127.0.0.1:*")
        in_addr = push.getsockopt_string(zmq.LAST_ENDPOINT)
        out_addr = free_tcp_endpoint()
        fg = Flowgraph("sim_channel", {"in_addr": in_addr, "out_addr": out_addr, **params},
                       python=gr_python, startup_timeout_s=60)
        with fg:
            pull.setsockopt(zmq.LINGER, 0)
            pull.setsockopt(zmq.RCVTIMEO, RECV_TIMEOUT_MS)
            pull.connect(out_addr)
            for i in range(0, len(x), CHUNK):
                push.send(x[i:i + CHUNK].tobytes())
            got, total = [], 0
            # channel_model's resampler keeps a few samples of history: expect all but ~16
            # (collect past N - 64, as the assertions require; stopping at exactly N - 64 when a
            # message ended there made the AWGN test fail now and then)
            while total <= len(x) - 64:
                try:
                    msg = pull.recv()
                except zmq.Again:
                    fg.check()
                    pytest.fail(f"sim_channel delivered {total} of {len(x)} samples, then nothing")
                got.append(np.frombuffer(msg, dtype=np.complex64))
                total += len(got[-1])
            fg.check()
        return np.concatenate(got), fg.returncode
    finally:
        push.close(0)
        pull.close(0)
        ctx.term()


def _align(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x, y cut to a common length with y's delay (channel_model drops the first few samples)."""
    probe = 4096
    corr = [abs(np.vdot(x[d:d + probe], y[:probe])) for d in range(16)]
    d = int(np.argmax(corr))
    n = min(len(y), len(x) - d)
    return x[d:d + n], y[:n]


@pytest.mark.parametrize("snr_db", [5.0, 20.0])
def test_sim_channel_awgn_matches_requested_snr(gr_python, snr_db):
    x = _payload(N_SAMPLES, seed=1)
    y, code = _through(gr_python, {"snr_db": snr_db, "seed": 7}, x)
    assert code == 0, "the launcher's SIGINT should stop the flowgraph cleanly (exit 0)"
    x, y = _align(x, y)
    assert len(y) > N_SAMPLES - 64
    gain = np.vdot(x, y) / np.vdot(x, x)
    assert abs(gain - 1) < 0.02, "no fading, unit-energy taps: the payload passes unchanged"
    noise = y - x
    n0 = float(np.mean(np.abs(noise) ** 2))
    expected = conventions.noise_power(snr_db)
    # 131k samples: the estimate's relative standard deviation is 1/sqrt(n) ~ 0.3 %
    assert n0 == pytest.approx(expected, rel=0.03)
    # complex circular noise: I and Q each carry N0/2
    assert np.var(noise.real) == pytest.approx(expected / 2, rel=0.04)
    assert np.var(noise.imag) == pytest.approx(expected / 2, rel=0.04)
    measured_snr_db = 10 * np.log10(np.mean(np.abs(x) ** 2) / n0)
    assert measured_snr_db == pytest.approx(snr_db, abs=0.15)


def test_sim_channel_is_reproducible_with_a_seed(gr_python):
    x = _payload(1 << 15, seed=2)
    y1, _ = _through(gr_python, {"snr_db": 10, "seed": 3}, x)
    y2, _ = _through(gr_python, {"snr_db": 10, "seed": 3}, x)
    n = min(len(y1), len(y2))
    np.testing.assert_array_equal(y1[:n], y2[:n])


@pytest.mark.parametrize("fading", ["rician", "rayleigh"])
def test_sim_channel_fading_keeps_average_power(gr_python, fading):
    """GNU Radio's fading_model (sum of sinusoids) keeps E|h|^2 = 1 with and without LOS."""
    x = np.full(N_SAMPLES, np.sqrt(conventions.PAYLOAD_POWER), dtype=np.complex64)
    y, _ = _through(gr_python, {"snr_db": 60, "fading": fading, "k_factor_db": 6, "doppler_hz": 2000,
                                "rate_sps": 1e6, "seed": 11}, x)
    g = np.abs(y[16:]) ** 2 / conventions.PAYLOAD_POWER  # |h|^2
    assert np.mean(g) == pytest.approx(1.0, abs=0.05)
    # Rician |h|^2 has var/mean^2 = (1 + 2K) / (1 + K)^2: 0.36 at K = 6 dB, 1 for Rayleigh (K = 0);
    # the 8-sinusoid model measures 0.85-1.0 for Rayleigh over 131k samples at fD*Ts = 2e-3
    k = 10 ** 0.6 if fading == "rician" else 0.0
    spread = np.var(g) / np.mean(g) ** 2
    assert spread == pytest.approx((1 + 2 * k) / (1 + k) ** 2, abs=0.2)


def test_sim_channel_cfo(gr_python):
    x = _payload(1 << 15, seed=4)
    y, _ = _through(gr_python, {"snr_db": 40, "cfo_hz": 1000, "rate_sps": 1e6, "seed": 5}, x)
    z = y[100:20000] * np.conj(x[103:20003])  # 3 samples of resampler delay
    step = np.angle(np.vdot(z[:-1], z[1:])) / (2 * np.pi)
    assert step == pytest.approx(1e-3, rel=0.01)


# --------------------------------------------------------------------------------------------
# Failures
# --------------------------------------------------------------------------------------------


def test_bad_parameter_value_is_reported_with_its_output(gr_python):
    with pytest.raises(FlowgraphFailed) as info:
        Flowgraph("sim_channel", {"fading": "sometimes", "out_addr": free_tcp_endpoint()}, python=gr_python).start()
    err = info.value
    assert err.returncode == 1
    assert "ValueError: --fading must be none, rician or rayleigh, got 'sometimes'" in err.output_tail
    assert "Traceback" in str(err)


def test_busy_port_is_reported(gr_python):
    ctx = zmq.Context()
    taken = ctx.socket(zmq.PUSH)
    try:
        taken.bind("tcp://127.0.0.1:*")
        busy = taken.getsockopt_string(zmq.LAST_ENDPOINT)
        with pytest.raises(FlowgraphFailed, match="(?i)address already in use"):
            Flowgraph("sim_channel", {"out_addr": busy}, python=gr_python).start()
    finally:
        taken.close(0)
        ctx.term()


def test_cli_runs_sim_channel_and_stops_on_sigint(gr_python):
    import signal

    out_addr = free_tcp_endpoint()
    # started with SIGINT ignored, as a non-interactive shell starts background jobs: the command
    # must still stop on SIGINT
    proc = subprocess.Popen(
        [sys.executable, "-m", "mtsc_sdr.cli", "flowgraph", "sim_channel", "--snr-db", "20",
         f"--out_addr={out_addr}", "--python", gr_python],
        stderr=subprocess.PIPE, text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        for line in proc.stderr:
            if "running (pid" in line:
                break
        else:
            pytest.fail(f"mtsc-sdr flowgraph exited with {proc.wait()} before running")
        proc.send_signal(signal.SIGINT)
        err = proc.communicate(timeout=30)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "sim_channel stopped" in err


def test_count_xruns_reads_event_letters_and_gr_uhd_interval_counts():
    from mtsc_sdr.radio.flowgraph import count_xruns

    assert count_xruns("OOOD\n") == ((4, 0), (0, 0))            # a letter per event, D = dropped packet
    assert count_xruns("OOOO[INFO] [UHD] linux\n") == ((4, 0), (0, 0))   # glued to the next log line
    assert count_xruns("UUL") == ((0, 3), (0, 0))                # L = late: reached the radio too late
    assert count_xruns("In the last 1000 ms, 3 overflows occurred.\n") == ((0, 0), (3, 0))
    assert count_xruns("[gr-uhd] In the last 500 ms, 2 underflows occurred.") == ((0, 0), (0, 2))
    assert count_xruns("Setting LO to 2.4 GHz; DO NOT unplug\n") == ((0, 0), (0, 0))   # words are not events
    assert count_xruns("LOCKED\n") == ((0, 0), (0, 0))


def test_flowgraph_xruns_take_the_larger_of_letters_and_reports():
    """UHD prints a letter per overflow and gr-uhd logs their count: the same events twice."""
    from mtsc_sdr.radio.flowgraph import Flowgraph, count_xruns

    fg = Flowgraph.__new__(Flowgraph)
    fg._xrun_letters, fg._xrun_reports = [0, 0], [0, 0]
    for line in ["OOO\n", "OO[INFO] ...\n", "In the last 1000 ms, 5 overflows occurred.\n", "U\n"]:
        letters, reports = count_xruns(line)
        for k in (0, 1):
            fg._xrun_letters[k] += letters[k]
            fg._xrun_reports[k] += reports[k]
    assert fg.xruns == {"overflows": 5, "underflows": 1}
