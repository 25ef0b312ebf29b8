"""The receiver's compiled inner loops (numba): detection sums, STF plateau, LTF synchronisation
and estimates, the sparse-Bayesian channel fit, the pilot tracker, FFT windows, payload MMSE.

Why compiled code: :mod:`mtsc_sdr.phy.rx` spends its time on many small arrays (a 64-sample LTF
symbol, 52 subcarriers, 16 channel taps, a 16 x 16 posterior precision ten times per estimate).
Written with numpy, each step is one or a few microseconds of call overhead around tens of
nanoseconds of arithmetic, some 800 Python-level calls per frame (0.6-0.7 ms of CPU, 3.3-3.7
Msamples/s on back-to-back 512-symbol frames). Batching across frames does not fit a streaming
receiver (a frame's payload length, and whether there is a frame at all, is known only after its
own header decodes). Each kernel here replaces such a chain with one call; the arithmetic is the
same up to rounding (the detector's running sums in the same order as before, and anchored at the
same absolute positions, so chunking still does not change results). The measured effect is in
:mod:`mtsc_sdr.phy.rx`'s docstring.

Compilation: ``@njit(cache=True)`` through :func:`_compiled`. Functions compile lazily on first use
in a process (10-12 s for all of them), are shared by every :class:`~mtsc_sdr.phy.rx.Receiver`, and
are cached on disk (numba's order: ``NUMBA_CACHE_DIR`` when set, else ``__pycache__`` beside this
file, else, when that is not writable, the user-wide ``~/.cache/numba``). Where no cache directory
is writable the functions still work, compiled in each process (tests/phy/test_rx_kernels.py).

Shapes and dtypes are on each function; samples are complex64 slices of the receiver's buffer,
everything computed is complex128 / float64.
"""

from __future__ import annotations

import math

import numba
import numpy as np


def _compiled(func):
    """``numba.njit(cache=True)(func)``, or without the on-disk cache where no cache directory is
    writable (numba raises RuntimeError at decoration then)."""
    try:
        return numba.njit(cache=True)(func)
    except RuntimeError:
        return numba.njit(func)


@_compiled
def lag_metric_runs(seg, n_out, window, lag, threshold, run):
    """Detection runs: how many offsets of each ``run``-long stretch have ``M(d) > threshold``.

    ``M(d) = |P(d)|^2 / (E_a(d) E_b(d))`` with ``P(d) = sum_{k<window} conj(r[d+k]) r[d+k+lag]``
    and E_a, E_b the energies of the two windows (M = 0 where their product is below 1e-30). The
    sums are differences of running sums from ``seg[0]``, so they depend only on where seg starts.

    seg: complex (n_out + window + lag,). Returns int64 (n_out - run + 1,): ``runs[i]`` = the
    number of d in [i, i + run) with M(d) > threshold.
    """
    n = n_out + window + lag
    if seg.size < n:
        raise IndexError("lag_metric_runs: seg too short")
    cp = np.empty(n - lag + 1, dtype=np.complex128)  # running sum of conj(r[k]) r[k + lag]
    en = np.empty(n + 1)  # running sum of |r[k]|^2
    cp[0] = 0.0
    en[0] = 0.0
    acc = 0j
    e = 0.0
    for k in range(n):
        v = complex(seg[k])
        e += v.real * v.real + v.imag * v.imag
        en[k + 1] = e
        if k < n - lag:
            acc += v.conjugate() * complex(seg[k + lag])
            cp[k + 1] = acc
    above = np.empty(n_out + 1, dtype=np.int64)  # running count of offsets above the threshold
    above[0] = 0
    for d in range(n_out):
        p = cp[d + window] - cp[d]
        den = (en[d + window] - en[d]) * (en[d + lag + window] - en[d + lag])
        m = (p.real * p.real + p.imag * p.imag) / den if den > 1e-30 else 0.0
        above[d + 1] = above[d] + (1 if m > threshold else 0)
    return above[run:] - above[:n_out - run + 1]


@_compiled
def lag_plateau(seg, n_out, window, lag):
    """The half-maximum region of ``|P(d)|`` (the unnormalised lag correlation of
    :func:`lag_metric_runs`) around its maximum, for d = 0 .. n_out - 1.

    seg: complex (>= n_out + window + lag,). Returns (i_max, a, b): the first maximum and the
    region [a, b] around it where ``|P| >= |P(i_max)| / 2`` (bounded by 0 and n_out - 1).
    """
    if seg.size < n_out + window + lag:
        raise IndexError("lag_plateau: seg too short")
    cp = np.empty(n_out + window, dtype=np.complex128)  # cp[k] = sum_{j<k} conj(r[j]) r[j + lag]
    acc = 0j
    for k in range(n_out + window):
        cp[k] = acc
        acc += complex(seg[k]).conjugate() * complex(seg[k + lag])
    mag = np.empty(n_out)
    i_max = 0
    for d in range(n_out):
        mag[d] = abs(cp[d + window] - cp[d])
        if mag[d] > mag[i_max]:
            i_max = d
    half = 0.5 * mag[i_max]
    a = i_max
    while a > 0 and not mag[a - 1] < half:
        a -= 1
    b = i_max
    while b < n_out - 1 and not mag[b + 1] < half:
        b += 1
    return i_max, a, b


@_compiled
def _rotated(x, lo, hi, cfo, ref):
    """x[lo:hi] (complex) times exp(-j 2 pi cfo (n - ref)) for n = lo .. hi - 1: complex128 (hi - lo,)."""
    if lo < 0 or hi > x.size:
        raise IndexError("_rotated: samples outside the buffer")
    w = -2.0 * math.pi * cfo
    out = np.empty(hi - lo, dtype=np.complex128)
    for i in range(hi - lo):
        th = w * float(lo + i - ref)
        out[i] = complex(x[i + lo]) * complex(math.cos(th), math.sin(th))
    return out


@_compiled
def _correlate(seg, ref):
    """np.correlate(seg, ref, 'valid'): out[i] = sum_k seg[i + k] conj(ref[k]), complex128
    (seg.size - ref.size + 1,). The loop over i is innermost (no dependency between its steps)."""
    n = seg.size - ref.size + 1
    out = np.zeros(n, dtype=np.complex128)
    for k in range(ref.size):
        c = ref[k].conjugate()
        for i in range(n):
            out[i] += seg[i + k] * c
    return out


@_compiled
def _phase(z):
    return math.atan2(z.imag, z.real)


@_compiled
def _lag_dot(a, lag):
    """np.vdot(a[:-lag], a[lag:])."""
    acc = 0j
    for k in range(a.size - lag):
        acc += a[k].conjugate() * a[k + lag]
    return acc


@_compiled
def ltf_sync(x, s, ltf_sym, n_ltf, stf_len, ltf_gi, stf_period, search, n_cp, fft_backoff, energy_slack):
    """Stages 2-4 of the receiver for an STF starting at index ``s`` of ``x`` (complex (N,)):
    coarse CFO, LTF timing (first path), fine CFO and the confirmation statistic.

    ltf_sym: complex128 (64,) one LTF symbol. Needs x up to ``s + stf_len + ltf_gi + search +
    (n_ltf + 1) * 64``. Returns ``(t_first, u, cfo, rho, n_fine, seg)``: the first path's LTF
    start, the first FFT window ``u = t_first - fft_backoff``, the CFO (cycles/sample), the share
    of the LTF region's energy the known LTF explains over the n_cp lags, the number of samples
    of the fine CFO estimate, and the derotated LTF windows complex128 (n_ltf * 64 + n_cp,) from u.
    """
    n_fft = ltf_sym.size
    # coarse CFO from the lag-16 correlation inside the STF
    stf = _rotated(x, s + 24, s + 152, 0.0, 0)
    cfo_c = _phase(_lag_dot(stf, stf_period)) / (2 * math.pi * stf_period)
    # LTF matched filter around the predicted position of the first LTF symbol
    t_nom = s + stf_len + ltf_gi
    t_lo = t_nom - search
    n_t = 2 * search + 1
    seg = _rotated(x, t_lo, t_lo + n_t - 1 + (n_ltf + 1) * n_fft, cfo_c, s)
    xc = _correlate(seg, ltf_sym)
    lam = np.zeros(n_t)
    for j in range(n_ltf):
        for i in range(n_t):
            v = xc[j * n_fft + i]
            lam[i] += v.real * v.real + v.imag * v.imag
    # a further copy right after the claimed LTF (where the header must be) is penalised
    i_pk = 0
    best = -np.inf
    for i in range(n_t):
        v = xc[n_ltf * n_fft + i]
        score = lam[i] - (v.real * v.real + v.imag * v.imag)
        if score > best:
            best, i_pk = score, i
    # first path: the latest window start (of wl lags containing the peak) still holding
    # 1 - energy_slack of the best such window's correlation energy
    wl = n_cp - fft_backoff
    cl = np.empty(n_t + 1)
    cl[0] = 0.0
    for i in range(n_t):
        cl[i + 1] = cl[i] + lam[i]
    i0 = max(i_pk - wl + 1, 0)
    i1 = min(i_pk + 1, n_t + 1 - wl)
    w_max = -np.inf
    for i in range(i0, i1):
        w_max = max(w_max, cl[i + wl] - cl[i])
    last = i0
    for i in range(i0, i1):
        if cl[i + wl] - cl[i] >= (1.0 - energy_slack) * w_max:
            last = i
    t_first = t_lo + last
    # fine CFO: lag-64 autocorrelation over the guard interval and the LTF, then lag 128
    a = _rotated(x, t_first - 20, t_first + n_ltf * n_fft, cfo_c, s)
    cfo_f = cfo_c + _phase(_lag_dot(a, n_fft)) / (2 * math.pi * n_fft)
    w = -2.0 * math.pi * (cfo_f - cfo_c)
    for i in range(a.size):
        a[i] *= complex(math.cos(w * i), math.sin(w * i))
    cfo = cfo_f + _phase(_lag_dot(a, 2 * n_fft)) / (2 * math.pi * 2 * n_fft)
    # confirmation: the LTF copies' coherent sum over the n_cp lags of the channel model
    u = t_first - fft_backoff
    seg = _rotated(x, u, u + n_ltf * n_fft + n_cp, cfo, u)
    xc = _correlate(seg, ltf_sym)
    coh = 0.0
    for i in range(n_cp):
        c = 0j
        for j in range(n_ltf):
            c += xc[j * n_fft + i]
        coh += c.real * c.real + c.imag * c.imag
    e_win = 0.0
    for i in range(n_ltf * n_fft):
        e_win += seg[i].real * seg[i].real + seg[i].imag * seg[i].imag
    e_ltf = 0.0
    for k in range(n_fft):
        e_ltf += ltf_sym[k].real * ltf_sym[k].real + ltf_sym[k].imag * ltf_sym[k].imag
    rho = coh / (n_ltf * e_ltf * e_win + 1e-30)
    return t_first, u, cfo, rho, a.size - 2 * n_fft, seg


@_compiled
def sbl_channel(A, AhA, h_ls, var_h, iters):
    """LMMSE of an impulse response of L taps from the LS estimate ``h_ls`` (complex (M,)) on the
    used subcarriers, each tap's prior power re-estimated from its posterior (sparse Bayesian
    learning / EM, ``iters`` iterations): taps holding only noise are driven to zero.

    A: complex128 (M, L) taps -> used bins; AhA: float64 (L, L) ``Re(A^H A)`` (A^H A is real when
    the used bins are symmetric about DC); var_h: noise variance of h_ls per subcarrier.
    Posterior precision ``m = A^H A / var_h + diag(1 / p_tap)`` (SPD, Cholesky ``m = C C^T``),
    mean ``C^-T C^-1 A^H h / var_h``, variances ``diag(m^-1)`` = squared column norms of ``C^-1``.
    Returns (H on the used bins complex128 (M,), taps the data determined: sum of
    1 - posterior / prior variance).
    """
    M, L = A.shape
    e_ls = 0.0
    for k in range(M):
        e_ls += h_ls[k].real * h_ls[k].real + h_ls[k].imag * h_ls[k].imag
    e_ls /= M
    p_total = max(e_ls - var_h, 1e-2 * var_h)
    b = np.zeros(L, dtype=np.complex128)  # A^H h / var_h
    for t in range(L):
        acc = 0j
        for k in range(M):
            acc += A[k, t].conjugate() * h_ls[k]
        b[t] = acc / var_h
    gram = AhA / var_h
    p_tap = np.full(L, p_total / L)
    prior = p_tap.copy()
    mu = np.zeros(L, dtype=np.complex128)
    post = np.zeros(L)
    C = np.zeros((L, L))      # lower Cholesky factor, row-major
    inv_d = np.zeros(L)       # 1 / C[j, j]
    CiT = np.zeros((L, L))    # CiT[i, r] = (C^-1)[r, i], r >= i
    y = np.zeros(L, dtype=np.complex128)
    for _ in range(iters):
        prior[:] = p_tap
        for j in range(L):
            s = gram[j, j] + 1.0 / p_tap[j]
            for k in range(j):
                s -= C[j, k] * C[j, k]
            if not s > 0.0:
                raise np.linalg.LinAlgError("SBL posterior precision not positive definite")
            d = math.sqrt(s)
            C[j, j] = d
            inv_d[j] = 1.0 / d
            for i in range(j + 1, L):
                s = gram[i, j]
                for k in range(j):
                    s -= C[i, k] * C[j, k]
                C[i, j] = s * inv_d[j]
        for i in range(L):
            CiT[i, i] = inv_d[i]
            acc2 = inv_d[i] * inv_d[i]
            for r in range(i + 1, L):
                s = 0.0
                for k in range(i, r):
                    s -= C[r, k] * CiT[i, k]
                v = s * inv_d[r]
                CiT[i, r] = v
                acc2 += v * v
            post[i] = acc2
        # mean = C^-T C^-1 b
        for r in range(L):
            acc = 0j
            for i in range(r + 1):
                acc += CiT[i, r] * b[i]
            y[r] = acc
        for i in range(L):
            acc = 0j
            for r in range(i, L):
                acc += CiT[i, r] * y[r]
            mu[i] = acc
        for t in range(L):
            p_tap[t] = mu[t].real * mu[t].real + mu[t].imag * mu[t].imag + post[t] + 1e-9 * p_total
    fitted = 0.0
    for t in range(L):
        fitted += 1.0 - post[t] / prior[t]
    h = np.zeros(M, dtype=np.complex128)
    for k in range(M):
        acc = 0j
        for t in range(L):
            acc += A[k, t] * mu[t]
        h[k] = acc
    return h, fitted

@_compiled
def _cis_powers(theta, out):
    """out[m] = exp(j m theta) for m = 0 .. out.size - 1, by recurrence (a relative error of
    about m ulp; one sin/cos for all)."""
    e = complex(math.cos(theta), math.sin(theta))
    p = 1.0 + 0j
    for m in range(out.size):
        out[m] = p
        p *= e


@_compiled
def _cis_signed(pw, k):
    """exp(j k theta) from the table of :func:`_cis_powers` for a signed integer k."""
    return pw[k] if k >= 0 else pw[-k].conjugate()


@_compiled
def pilot_sums(Y, pilot_bins, pilot_known, h_p, t, z_step, n_grid, pilot_k, n_pad):
    """The pilots' matched products and their sums over a grid of timing drifts, for
    :meth:`~mtsc_sdr.phy.rx.Receiver._track`.

    Y: complex (n, n_fft) bins of n symbols; pilot_bins: int (P,) their FFT bins; pilot_known:
    float (n, P) the known pilot values; h_p: complex (P,) the channel at the pilots (times the
    pilots' amplitude); t: float (n,) the symbols' window centres (samples after the LTF centre);
    the drifts (samples per sample) are ``zeta_g = (g - n_grid // 2) z_step``, g < n_grid; pilot_k:
    int (P,) the pilots' signed subcarrier indices. Returns ``z`` complex128 (n, P),
    ``Y[:, pilot_bins] * known * conj(h_p)``, and ``cz`` complex128 (n_grid, n_pad),
    ``cz[g, i] = sum_k z[i, k] exp(-j 2 pi zeta_g t[i] k / n_fft)`` for i < n (n_fft = Y's row
    length; the phasors by recurrence over g: n P sines and cosines instead of n_grid n P), zero
    for n <= i < n_pad (ready for an FFT of length n_pad over symbols).
    """
    n, P = pilot_known.shape
    n_fft = Y.shape[1]
    z = np.empty((n, P), dtype=np.complex128)
    ph = np.empty((n, P), dtype=np.complex128)  # the phasors of drift zeta_g
    step = np.empty((n, P), dtype=np.complex128)  # ... and their ratio from g to g + 1
    for i in range(n):
        for k in range(P):
            z[i, k] = Y[i, pilot_bins[k]] * pilot_known[i, k] * h_p[k].conjugate()
            th = -2.0 * math.pi / n_fft * z_step * t[i] * pilot_k[k]
            step[i, k] = complex(math.cos(th), math.sin(th))
            th0 = -(n_grid // 2) * th
            ph[i, k] = complex(math.cos(th0), math.sin(th0))
    cz = np.zeros((n_grid, n_pad), dtype=np.complex128)
    for g in range(n_grid):
        for i in range(n):
            acc = 0j
            for k in range(P):
                acc += ph[i, k] * z[i, k]
                ph[i, k] *= step[i, k]
            cz[g, i] = acc
    return z, cz


@_compiled
def _parabola(v_left, v_mid, v_right):
    """Offset (in grid steps, within +-0.5) of the vertex of the parabola through three
    neighbouring values; 0 when they do not curve down."""
    den = v_left - 2.0 * v_mid + v_right
    if den >= 0.0:
        return 0.0
    return min(max(0.5 * (v_left - v_right) / den, -0.5), 0.5)


@_compiled
def track_fit(spec, bins, ref, omegas, anchor, scale, omega_std, z_step, min_gain, Y, used_bins, used_k, pilot_pos,
              z, cz, t, window):
    """The pilot tracker's fit and correction (:meth:`~mtsc_sdr.phy.rx.Receiver._track`).

    Fit: spec complex (G, F) is the DFT over symbols of the pilot sums ``cz`` (complex (G, >= n), row
    g for the timing drift ``zeta_g = (g - G // 2) z_step``); at its bins ``bins`` (int (B,)),
    residual CFOs ``omegas`` (float (B,), rad/sample, increasing) with phasors ``ref`` (complex
    (B,)) referring them to the first symbol, the objective is ``scale |anchor + spec * ref| -
    0.5 (omega / omega_std)^2``. A drift is only taken when it gains ``min_gain`` over the best at
    zeta = 0; both coordinates are refined parabolically.

    Correction: the phase of symbol i is ``theta0 + omega t_i`` (t: float (n,) window centres),
    theta0 the phase of the anchor plus all pilots (z: complex (n, P) their matched products at
    positions pilot_pos among the used subcarriers), plus, when ``window`` > 0, the phase of the
    residual's moving average over +-window symbols; a drift rotates subcarrier k (used_k: int
    (U,) signed indices, used_bins: int (U,) their FFT bins) by ``2 pi k zeta t_i / n_fft``.
    Y: complex (n, n_fft) bins. Returns (the corrected used bins complex128 (n, U), zeta).
    """
    G = spec.shape[0]
    B = bins.size
    obj = np.empty((G, B))
    g_best, b_best = 0, 0
    for g in range(G):
        for b in range(B):
            obj[g, b] = scale * abs(anchor + spec[g, bins[b]] * ref[b]) - 0.5 * (omegas[b] / omega_std) ** 2
            if obj[g, b] > obj[g_best, b_best]:
                g_best, b_best = g, b
    g0 = G // 2
    b0 = 0
    for b in range(B):
        if obj[g0, b] > obj[g0, b0]:
            b0 = b
    g, b = g_best, b_best
    if g != g0 and obj[g, b] - obj[g0, b0] < min_gain:
        g, b = g0, b0  # the drift is not significant against the noise: fitting it would only add noise
    zeta = 0.0
    if g != g0:
        zeta = (g - g0) * z_step
        if 0 < g < G - 1:
            zeta += _parabola(obj[g - 1, b], obj[g, b], obj[g + 1, b]) * z_step
    omega = omegas[b]
    if 0 < b < B - 1:
        omega += _parabola(obj[g, b - 1], obj[g, b], obj[g, b + 1]) * (omegas[b + 1] - omegas[b])

    n, n_fft, U = Y.shape[0], Y.shape[1], used_bins.size
    slope = np.ones((n, U), dtype=np.complex128)
    pw = np.empty(np.max(np.abs(used_k)) + 1, dtype=np.complex128)
    c = np.empty(n, dtype=np.complex128)
    for i in range(n):
        if g != g0:
            _cis_powers(-2.0 * math.pi * zeta / n_fft * t[i], pw)
            for k in range(U):
                slope[i, k] = _cis_signed(pw, used_k[k])
            acc = 0j
            for p in range(pilot_pos.size):
                acc += z[i, p] * slope[i, pilot_pos[p]]
        else:
            acc = cz[g0, i]
        th = -omega * t[i]
        c[i] = acc * complex(math.cos(th), math.sin(th))
    total = complex(anchor)
    for i in range(n):
        total += c[i]
    theta0 = _phase(total)
    phi = np.empty(n)
    for i in range(n):
        phi[i] = theta0 + omega * t[i]
    if window > 0 and n > 1:
        cs = np.zeros(n + 1, dtype=np.complex128)
        rot = complex(math.cos(theta0), -math.sin(theta0))
        for i in range(n):
            cs[i + 1] = cs[i] + c[i] * rot
        for i in range(n):
            phi[i] += _phase(cs[min(i + window + 1, n)] - cs[max(i - window, 0)])
    out = np.empty((n, U), dtype=np.complex128)
    for i in range(n):
        corr = complex(math.cos(phi[i]), -math.sin(phi[i]))
        for k in range(U):
            out[i, k] = Y[i, used_bins[k]] * (slope[i, k] * corr)
    return out, zeta


@_compiled
def fft_windows(x, lo, n_sym, sym_len, n_cp, n_fft, cfo, t0):
    """The FFT windows of n_sym OFDM symbols starting at index lo of x (complex (N,)), the CFO
    removed and the unitary 1/sqrt(n_fft) applied: complex128 (n_sym, n_fft), row i holding
    ``x[lo + i sym_len + n_cp + k] exp(-j 2 pi cfo (t0 + i sym_len + k)) / sqrt(n_fft)``, k < n_fft
    (t0: the first window's first sample relative to the CFO's phase reference). The rotation is
    a per-symbol phasor times a per-sample ramp (an outer product of two short exponentials)."""
    if lo < 0 or lo + n_sym * sym_len > x.size:
        raise IndexError("fft_windows: symbols outside the buffer")
    w = -2.0 * math.pi * cfo
    ramp = np.empty(n_fft, dtype=np.complex128)
    for k in range(n_fft):
        ramp[k] = complex(math.cos(w * k), math.sin(w * k)) / math.sqrt(n_fft)
    out = np.empty((n_sym, n_fft), dtype=np.complex128)
    for i in range(n_sym):
        th = w * (t0 + sym_len * i)
        rot = complex(math.cos(th), math.sin(th))
        base = lo + i * sym_len + n_cp
        for k in range(n_fft):
            out[i, k] = complex(x[base + k]) * (rot * ramp[k])
    return out


@_compiled
def mmse_data(Yc, h, data_pos, n0, n_values):
    """Per-subcarrier MMSE of the data subcarriers of a DFT-spread payload.

    Yc: complex (n, U) tracked used bins; h: complex (U,) the channel on them (in transmitter
    units); data_pos: int (D,) the data subcarriers' positions among the U; the payload fills them
    symbol by symbol, the first ``n_values`` slots. Returns ``(y, mean_c)``: the equalised values
    complex128 (n_values,), ``Yc h* / (|h|^2 + n0)``, and the mean over those slots of the MMSE
    gain ``c = |h|^2 / (|h|^2 + n0)``."""
    D = data_pos.size
    w = np.empty(D, dtype=np.complex128)
    c_sum = 0.0
    for d in range(D):
        hk = h[data_pos[d]]
        g2 = hk.real * hk.real + hk.imag * hk.imag
        w[d] = hk.conjugate() / (g2 + n0)
        c = g2 / (g2 + n0)
        c_sum += c * ((n_values - 1 - d) // D + 1 if d < n_values else 0)  # slots of subcarrier d
    y = np.empty(n_values, dtype=np.complex128)
    for j in range(n_values):
        i, d = divmod(j, D)
        y[j] = Yc[i, data_pos[d]] * w[d]
    return y, c_sum / n_values


@_compiled
def header_training(Yc, x, h_ls, n_ltf):
    """The LS channel estimate with the header as training: the LTF's ``h_ls`` (complex (U,),
    the mean of n_ltf symbols) and the header's n symbols Yc (complex (n, U)) over what was sent
    x (complex (n, U)), each symbol weighing as one LTF symbol. Returns complex128 (U,)."""
    n, U = Yc.shape
    out = np.empty(U, dtype=np.complex128)
    for k in range(U):
        acc = 0j
        for i in range(n):
            acc += Yc[i, k] / x[i, k]
        out[k] = (n_ltf * h_ls[k] + acc) / (n_ltf + n)
    return out


@_compiled
def residual_energy(Yc, h, x):
    """sum |Yc - h x|^2 over symbols and subcarriers: Yc, x complex (n, U), h complex (U,)."""
    n, U = Yc.shape
    acc = 0.0
    for i in range(n):
        for k in range(U):
            r = Yc[i, k] - h[k] * x[i, k]
            acc += r.real * r.real + r.imag * r.imag
    return acc


@_compiled
def ltf_estimates(seg, dft_used, ltf_x, n_ltf, min_spread):
    """LS channel and noise estimates from the derotated LTF windows.

    seg: complex (>= n_ltf * n_fft,) from the first LTF window on (:func:`ltf_sync`); dft_used:
    complex (n_fft, U) the unitary DFT onto the used bins; ltf_x: float (U,) the LTF's values on
    them (times their amplitude). Returns ``(h_ls, n0, e_ls, narrow)``: the LS estimate complex128
    (U,) (the symbols' mean over the known values), the noise power per bin from the symbols'
    spread around their mean, the mean ``|h_ls|^2``, and whether the mean's power sits on fewer
    than ``min_spread`` effective subcarriers (squared sum over sum of squares of the
    per-subcarrier powers: a tone or spur, not a frame).
    """
    n_fft, U = dft_used.shape
    Y = np.dot(np.ascontiguousarray(seg[:n_ltf * n_fft]).reshape(n_ltf, n_fft), dft_used)  # (n_ltf, U)
    ym = np.empty(U, dtype=np.complex128)
    p_sum = p_sq = 0.0
    dev = e_ls = 0.0
    h_ls = np.empty(U, dtype=np.complex128)
    for k in range(U):
        acc = 0j
        for j in range(n_ltf):
            acc += Y[j, k]
        ym[k] = acc / n_ltf
        pw = ym[k].real * ym[k].real + ym[k].imag * ym[k].imag
        p_sum += pw
        p_sq += pw * pw
        for j in range(n_ltf):
            d = Y[j, k] - ym[k]
            dev += d.real * d.real + d.imag * d.imag
        h_ls[k] = ym[k] / ltf_x[k]
        e_ls += h_ls[k].real * h_ls[k].real + h_ls[k].imag * h_ls[k].imag
    n0 = max(dev / ((n_ltf - 1) * U), 1e-30)
    return h_ls, n0, e_ls / U, p_sum * p_sum < min_spread * p_sq
