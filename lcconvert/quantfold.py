"""Quantization-aware choices for a batch-norm fold in LINEAR16: per-channel weight factors, weights kept
on their own grid, exact zeros, and an offset stored across two layers.

Why: LINEAR16 gives each layer one range, shared by all its channels (FORMATS.md §1). A fold moves
γ into the weights (W' = k·W) and/or the variances (σ'² = (k·s/γ)² − ε); one bad channel then costs
every other channel of the layer its precision — a tiny γ folded into the variances blows up that
layer's range, a large γ folded into the weights blows up theirs. One choice of k per block cannot
serve a block whose γ span four orders of magnitude with both signs; a choice per channel can:

* The weights layer keeps the original file's range [lo, hi] (written with that very min/max), so a
  channel whose k is 1 is re-encoded to the same uint16 values — exact — and every other channel is
  rounded on the original step: its k is capped so that its row k·W stays inside [lo, hi].
* With the weights' range fixed, a channel's output error falls as its t = k/a grows (a = γ/s):
  the weights' rounding is divided by t, the variance layer's step by 2t². The variance layer stores
  its min and max exactly, so `choose_factors` puts the most constrained channels at its two ends
  T_lo, T_hi, gives every other channel the better of k = 1 (exact weights) and the largest t its
  weights allow, and keeps the (T_lo, T_hi) with the smallest RMS of a modelled channel error.
* γ = 0: k = 0 and the channel's weights row is written as exact zeros (`encode_rows`), so the
  channel outputs exactly β, whatever its input.
* The offset b' − μ' = D is stored in two layers that are quantized independently: the means take
  the bulk and are encoded first; the biases then store D + μ̂' — for `beta_into` "means" only the
  means' rounding residual, a layer whose range (and so step) is one means step wide
  (`split_offset`). The offset then lands within ~1e-5 of a means step of the exact value.
* A channel whose weights are re-rounded anyway has a free variance: k = a·t follows any t, so its σ'²
  is put on the variance layer's grid (`snap_down`) and carries no scale error.
* Where the block's input planes are known (the input block), re-scaled rows are rounded against the
  inputs' second moment (`round_rows`, Babai's nearest plane), not entry by entry.
* Where the block's inputs are known (fold._InputMeans), the mean of what the weights' rounding adds
  to each channel (`rounding_shift`) goes back into the offset, and the inputs' spread
  (`input_spread`) sizes the rounding's effect in the model.

The error model mirrors fold.measure, which then measures the encoded result exactly.
"""
from __future__ import annotations

import numpy as np

from lcconvert.codecs import LINEAR16_STEPS, Encoding
from lcconvert.tensor import Tensor

# Nudges (float32 ulps of the layer's max) tried to put an exact 0 on a LINEAR16 grid: measured on
# random ranges, an exact 0 exists within 500 ulps for half of them and within 4,900 for all of 200.
ZERO_SEARCH_ULPS = 8192
# How much more a re-rounded weights row counts than the model says: on the input block of
# legacy/se-mixed (binary input planes) a re-rounded row moved the outputs about 2× what the model
# predicts relative to a rounded variance. Tried 1, 2, 4, 16 on legacy/se-mixed, classic-neg-gamma and a
# pathological maia-1100 (verify seeds 0 and 2): 4 gave se-mixed its smallest ratio to the floor (0.84,
# 0.97) with the others within their spread; the figures move by ±40% from seed to seed. Measured again
# with the input rows rounded against their inputs (round_rows), seeds 0–4, worst seed: 1 → se-mixed
# 1.64×, 2 → 1.58×, 4 → 0.69× (classic-neg-gamma and the maia variant ≤ 0.65× for all three).
NOISE_WEIGHT = 4.0


def _decode_one(q: np.ndarray, lo: np.float32, hi: np.float32) -> np.ndarray:
    """codecs.decode's LINEAR16 arithmetic for a few q values."""
    theta = q.astype(np.float32) * np.float32(1.0 / LINEAR16_STEPS)
    return lo * (np.float32(1.0) - theta) + hi * theta


def _quantize(x: np.ndarray, lo: np.float32, hi: np.float32) -> np.ndarray:
    """codecs.encode's LINEAR16 arithmetic with a given range (float32, round half to even)."""
    if hi == lo:
        return np.zeros(x.size, dtype="<u2")
    scaled = (x - lo) / (hi - lo) * np.float32(LINEAR16_STEPS)
    return np.clip(np.rint(scaled), 0, LINEAR16_STEPS).astype("<u2")


def zero_grid(lo: float, hi: float, max_ulps: int = ZERO_SEARCH_ULPS) -> tuple[np.float32, np.float32, int] | None:
    """(lo', hi', q): a LINEAR16 range containing [lo, hi] on which q decodes to exactly 0.0, or None."""
    lo32, hi32 = np.float32(lo), np.float32(hi)
    if lo32 == 0:
        return lo32, hi32, 0
    if hi32 == 0:
        return lo32, hi32, LINEAR16_STEPS
    if lo32 > 0:  # the range must contain 0: extend it down to exactly 0
        return np.float32(0.0), hi32, 0
    if hi32 < 0:
        return lo32, np.float32(0.0), LINEAR16_STEPS
    # Widen the range by the fewest ulps, alternating max up and min down: the smaller the nudge, the
    # closer every other value stays to its old grid point.
    h, lw = hi32, lo32
    for _ in range(max_ulps + 1):
        for cand_lo, cand_hi in ((lo32, h), (lw, hi32)):
            q0 = int(np.rint(-float(cand_lo) / (float(cand_hi) - float(cand_lo)) * LINEAR16_STEPS))
            qs = np.array([q for q in (q0 - 1, q0, q0 + 1) if 0 <= q <= LINEAR16_STEPS])
            hit = qs[_decode_one(qs, cand_lo, cand_hi) == 0]
            if hit.size:
                return cand_lo, cand_hi, int(hit[0])
        h = np.nextafter(h, np.float32(np.inf))
        lw = np.nextafter(lw, np.float32(-np.inf))
    return None


def layer_range(t: Tensor) -> tuple[float, float]:
    """The stored LINEAR16 range of a layer (its min/max fields), else its values' range."""
    if t.encoding is Encoding.LINEAR16 and t.raw is not None and t.min_val is not None and t.max_val is not None:
        return float(t.min_val), float(t.max_val)
    v = t.values
    return float(v.min()), float(v.max())


def encode_rows(rows: np.ndarray, lo: float, hi: float, zero_rows: np.ndarray, exact_zeros: bool,
                keep_grid: bool = False, gram: np.ndarray | None = None,
                feedback: np.ndarray | None = None) -> Tensor:
    """LINEAR16 of `rows` [C, n] (float32 values inside [lo, hi]) written with the range [lo, hi].

    exact_zeros: rows in `zero_rows` decode to exactly 0.0 — the range's max is nudged (by at most
    ZERO_SEARCH_ULPS ulps) until the grid holds an exact 0; fallback: the nearest grid point to 0.
    keep_grid: nudge by no more than a twentieth of a step, so rows re-encoded unchanged (k = 1) stay
    within 5% of a step of their old values. Values outside [lo, hi] are clipped (callers keep them inside).
    gram: the inputs' second moment (input_gram): the rows in `feedback` (default: all) are rounded
    against it (round_rows), the others plainly.
    """
    lo32, hi32 = np.float32(lo), np.float32(hi)
    zq = None
    if exact_zeros and zero_rows.any():
        limit = ZERO_SEARCH_ULPS
        if keep_grid:
            ulp = float(max(np.spacing(np.abs(lo32)), np.spacing(np.abs(hi32))))
            limit = int((float(hi32) - float(lo32)) / LINEAR16_STEPS / 20 / ulp)
        found = zero_grid(lo32, hi32, limit)
        if found is not None:
            lo32, hi32, zq = found
    x = np.ascontiguousarray(rows, dtype=np.float32)
    q = _quantize(x.ravel(), lo32, hi32).reshape(x.shape)
    if gram is not None:
        sel = np.ones(x.shape[0], bool) if feedback is None else feedback.copy()
        if zq is not None:
            sel &= ~zero_rows  # written as exact zeros below
        if sel.any():
            q[sel] = round_rows(x[sel], lo32, hi32, gram)
    if zq is not None:
        q[zero_rows] = zq
    return Tensor(Encoding.LINEAR16, q.tobytes(), float(lo32), float(hi32))


def factor_caps(row_lo: np.ndarray, row_hi: np.ndarray, lo: float, hi: float, sign: np.ndarray) -> np.ndarray:
    """The largest |k| per channel with k·W_c inside [lo, hi] (k of the given sign); inf for a zero row."""
    rlo, rhi = row_lo.astype(np.float64), row_hi.astype(np.float64)
    cap = np.full(rlo.shape, np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        pos = sign >= 0
        # k > 0: k·rhi ≤ hi and k·rlo ≥ lo; k < 0: |k|·(−rlo) ≤ hi and |k|·(−rhi) ≥ lo.
        up, down = np.where(pos, rhi, -rlo), np.where(pos, rlo, -rhi)
        cap = np.where(up > 0, np.minimum(cap, hi / np.where(up > 0, up, 1.0)), cap)
        cap = np.where(down < 0, np.minimum(cap, lo / np.where(down < 0, down, -1.0)), cap)
    return cap


def choose_factors(gamma: np.ndarray, s: np.ndarray, sigma_z: np.ndarray, rms_z: np.ndarray,
                   row_norm: np.ndarray, row_size: int, cap: np.ndarray, w_step: float,
                   engine_epsilon: float, exact_one: bool = True, input_var: float | None = None,
                   zero_below: float = 0.0, with_free: bool = False):
    """Per-channel weight factors k (module docstring): k = 0 where γ = 0, else sign(γ)·a·t, t chosen
    per channel once the variance layer's two ends T_lo ≤ T_hi are chosen (σ'² = t² − ε).

    A LINEAR16 layer stores its min and max exactly (q = 0 and 65535), so a channel placed at
    either end of the variance layer has an exact variance; channels in between are rounded by
    half a step, (T_hi² − T_lo²)/131070. Per channel the options are: t = T_lo or t = T_hi (exact
    variance; weights re-rounded), k = 1 (γ > 0: exact weights, t = s/γ, exact at an end), or the
    largest t its weights allow (t_cap = cap/a) in between. Model (output units, as fold.measure):
    re-rounded weights NOISE_WEIGHT·‖ΔW_c‖/‖W_c‖·rms(z)/t with ‖ΔW_c‖ = step·√(n/12); a rounded
    variance moves t by at most step/(4t), a scale error a·σ_z·step/(4t²). The (T_lo, T_hi) with the
    smallest RMS of the modelled channel errors wins. Means and biases are exact to ~1e-5 of a step
    (split_offset).

    zero_below: a channel with |γ| ≤ zero_below (the γ layer's own rounding bound: a LINEAR16 write of
    the original may store 0 there) may also be zeroed (k = 0), at the error |γ|·σ_z/s of a constant
    output, when that is the smallest option. Without it a γ of 1e-45 (a LINEAR16 "zero" decoded) asks
    for σ'² = s²/γ² ≈ 1e90, which no float32 holds.

    with_free: return (k, free) where `free` marks the channels given the in-between option t_cap,
    whose variance the caller puts on the layer's grid (snap_down) — the model counts no scale error
    for them.
    """
    a = np.abs(gamma) / s
    live = a > 0
    k = np.zeros(gamma.size)
    free = np.zeros(gamma.size, bool)
    if not live.any():
        return (k, free) if with_free else k
    a_l, cap_l, g_l = a[live], cap[live], gamma[live]
    floor_t = np.sqrt(engine_epsilon) * (1 + 1e-6)  # σ'² = t² − ε must stay > 0
    t_one = 1.0 / a_l  # k = 1 (γ > 0 only)
    t_cap = np.where(np.isfinite(cap_l), cap_l / a_l, np.inf)
    can_one = (g_l > 0) & (t_one > floor_t) & (t_one <= t_cap)
    if input_var is not None:  # measured inputs: step·√(Σ Var x_i / 12), the same for every channel
        noise_unit = NOISE_WEIGHT * w_step * np.sqrt(input_var / 12.0) * np.ones(a_l.size)
    else:  # no inputs measured: assume they favour no direction of weight space
        noise_unit = NOISE_WEIGHT * w_step * np.sqrt(row_size / 12.0) * np.divide(
            rms_z[live], row_norm[live], out=np.zeros(a_l.size), where=row_norm[live] > 0)
    one_noise = 0.0 if exact_one else 1.0
    scale_unit = a_l * sigma_z[live] / (4.0 * LINEAR16_STEPS)
    e_zero = np.where(np.abs(g_l) <= zero_below, a_l * sigma_z[live], np.inf)
    lo_max = float(np.min(t_cap))
    if not lo_max > floor_t:
        lo_max = floor_t * 2  # no channel can reach it: measure() will show the cost
    # A positive channel whose k = 1 puts it at or below every cap can itself be the low end: exact
    # weights and an exact variance for the most constrained channel.
    ones_low = t_one[can_one & (t_one <= lo_max)]
    lows = np.unique(np.concatenate([[lo_max, lo_max / 2, lo_max / 4], ones_low]))
    lows = lows[lows > floor_t] if np.any(lows > floor_t) else np.array([lo_max])
    if lows.size > 4:
        lows = np.unique(np.concatenate([lows[-2:], np.quantile(lows, [0, 0.5])]))
    highs = np.unique(np.concatenate([t_one[can_one], t_cap[np.isfinite(t_cap)], [lo_max]]))
    highs = highs[highs >= lows.min()]
    if highs.size > 48:  # a quantile subset keeps the search O(4·48·C)
        highs = np.unique(np.quantile(highs, np.linspace(0, 1, 48)))
    best = (np.inf, None)
    for t_lo in lows:
        hi_t = highs[highs >= t_lo][:, None]  # [nH, 1]
        spread = hi_t**2 - t_lo**2
        shape = (hi_t.shape[0], a_l.size)
        # the options, [nH, C]
        e_lo = np.broadcast_to(np.where(t_lo <= t_cap, noise_unit / t_lo, np.inf), shape)
        e_hi = np.broadcast_to(np.where(hi_t <= t_cap, noise_unit / hi_t, np.inf), shape)
        # A variance inside the layer moves by up to half a step, spread/131070: t by up to t − t_low,
        # t_low = √(max(t² − spread/131070, T_lo²)). The scale error a·σ_z·(t/t_low − 1) (a·σ_z·step/(4t²)
        # to first order) and the weights' rounding, divided by t_low instead of t — which matters where
        # half a step is most of t² (a σ'² of 12 rounded to the 2e-8 at the bottom of a layer reaching 4e6).
        half = spread / (2.0 * LINEAR16_STEPS)
        inside_one = can_one & (t_one >= t_lo) & (t_one <= hi_t)
        at_end = (t_one == t_lo) | (t_one == hi_t)  # stored exactly as the layer's min or max
        low_one = np.where(at_end, t_one, np.sqrt(np.maximum(t_one**2 - half, t_lo**2)))
        e_one = np.where(inside_one, np.hypot(one_noise * noise_unit / low_one,
                                              scale_unit * LINEAR16_STEPS * 4 * (t_one / low_one - 1)), np.inf)
        inside_cap = (t_cap >= t_lo) & (t_cap <= hi_t)
        tc = np.where(np.isfinite(t_cap), t_cap, 1.0)
        # A re-rounded channel's variance is put on the layer's grid, at most a step below t_cap², and its
        # k follows (fold._per_channel, snap_down): no scale error is left, its weights' rounding is divided
        # by t_low. The search still charges the scale error a rounded variance would carry (a·σ_z·step/
        # (4t²)): without that charge it spreads the variance layer wider, and legacy/se-mixed measured
        # 1.27× the floor on verify seed 0 (0.69× with it; seeds 0–4: 1.27 0.17 0.38 0.80 0.27 against
        # 0.69 0.09 0.48 0.43 0.28), though its blocks' own errors were smaller — the inputs of residual
        # blocks are not the isotropic ones the noise term assumes.
        low_cap = np.sqrt(np.maximum(tc**2 - 2 * half, t_lo**2))
        e_cap = np.where(inside_cap, np.hypot(noise_unit / low_cap, scale_unit * spread / tc**2), np.inf)
        errs = np.stack([e_lo, e_hi, e_one, e_cap, np.broadcast_to(e_zero, shape)])  # [5, nH, C]
        choice = np.argmin(errs, axis=0)
        # RMS over the channels: their errors reach the outputs together (one constrained channel
        # often sets the worst whatever T_hi is, while the others still gain).
        rms = np.sqrt(np.mean(np.min(errs, axis=0) ** 2, axis=1))
        j = int(np.argmin(rms))
        if rms[j] < best[0]:
            t_opts = np.stack([np.full(a_l.size, t_lo), np.full(a_l.size, hi_t[j, 0]), t_one, tc,
                               np.zeros(a_l.size)])
            best = (rms[j], (choice[j], t_opts))
    choice, t_opts = best[1] if best[1] is not None else (np.zeros(a_l.size, int), np.stack([np.full(a_l.size, lows[0])] * 4))
    t = t_opts[choice, np.arange(a_l.size)]
    k[live] = np.where(choice == 2, 1.0, np.sign(g_l) * a_l * t)  # t = 0 for the zero option
    free[live] = choice == 3
    return (k, free) if with_free else k


def _taps(per_square: np.ndarray, k: int) -> np.ndarray:
    """[C_in, k, k]: the board average of a per-square [rows, cols, C_in] input seen at each tap of a
    zero-padded k×k convolution (border squares see zeros outside the board)."""
    rows, cols, cin = per_square.shape
    pad = k // 2
    padded = np.pad(per_square, ((pad, pad), (pad, pad), (0, 0)))
    taps = np.empty((cin, k, k))
    for dy in range(k):
        for dx in range(k):
            taps[:, dy, dx] = padded[dy:dy + rows, dx:dx + cols].mean(axis=(0, 1))
    return taps


def input_spread(input_mean: np.ndarray, input_sq: np.ndarray, row_size: int) -> tuple[float, float]:
    """(Σ_i Var x_i, Σ_i E x_i²) over a block's receptive field i = (channel, tap), over positions and
    squares. Rounding the weights by independent errors of variance v moves a channel's conv output by
    v·Σ Var x_i once its mean is corrected (rounding_shift), by v·Σ E x_i² without."""
    k = int(round((row_size // input_mean.shape[2]) ** 0.5))
    m, q = _taps(input_mean, k), _taps(input_sq, k)
    return float(np.maximum(q - m**2, 0.0).sum()), float(q.sum())


def rounding_shift(delta_w: np.ndarray, input_mean: np.ndarray) -> np.ndarray:
    """δ_c = E[(Ŵ' − k·W)_c ∗ x]: the mean of what the weights' rounding adds to each channel's conv output.

    delta_w [C_out, C_in·kh·kw] (row-major [out][in][kh][kw]); input_mean [rows, cols, C_in], the
    block's mean input per square. A zero-padded k×k convolution sees, at tap (dy, dx), the mean of
    the input shifted by that tap over the board, zeros outside it — so border squares count.
    """
    k = int(round((delta_w.shape[1] // input_mean.shape[2]) ** 0.5))
    return delta_w @ _taps(input_mean, k).ravel()


def split_offset(target: np.ndarray, bulk: np.ndarray, encode) -> tuple[Tensor, Tensor]:
    """(biases, means) tensors with b̂ − μ̂ ≈ `target` (= D): the means hold `bulk` and are encoded
    first; the biases hold D + μ̂, what the means' rounding left over (plus the bulk's complement)."""
    means = encode(bulk.astype(np.float32), "means")
    biases = encode((target + means.values.astype(np.float64)).astype(np.float32), "biases")
    return biases, means


# -- rounding a row against its inputs -----------------------------------------------------

# Ridge added to the inputs' second-moment matrix before `round_rows` inverts it, as a fraction of its
# mean diagonal: the matrix comes from a few dozen positions (rank-deficient in the planes that are
# constant over the board), and the ridge keeps the error feedback from leaning on directions those
# positions happen not to excite.
GRAM_RIDGE = 0.01
# Entries rounded one by one before the rest of the row is updated by one matrix product (round_rows).
ROUND_BATCH = 128


def receptive_fields(planes: np.ndarray, k: int) -> np.ndarray:
    """[N·rows·cols, C·k·k] float64: each square's zero-padded k×k receptive field of `planes`
    [N, C, rows, cols], in the weights' row order [in][kh][kw]."""
    n, c, rows, cols = planes.shape
    pad = k // 2
    p = np.pad(planes.astype(np.float64), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    taps = np.stack([p[:, :, dy:dy + rows, dx:dx + cols] for dy in range(k) for dx in range(k)], axis=2)
    return taps.transpose(0, 3, 4, 1, 2).reshape(n * rows * cols, c * k * k)


def input_gram(planes: np.ndarray, k: int) -> np.ndarray:
    """E[x xᵀ] over squares and positions of a block's receptive field x (see receptive_fields), in float32:
    it only steers round_rows' error feedback (twice float64's speed; 0.05 s at 2,048 squares × 1,008)."""
    x = receptive_fields(planes, k).astype(np.float32)
    return x.T @ x / np.float32(x.shape[0])


def _upper_cholesky(h: np.ndarray) -> np.ndarray:
    """Upper R with h = Rᵀ R, by blocks of ROUND_BATCH: small factorizations and matrix products only.

    Why not np.linalg.cholesky on the whole matrix: on a shared machine, multithreaded LAPACK stalls on
    its synchronisation points — measured for a 927 × 927 matrix: 0.02–0.07 s single-threaded, 1.3–1.4 s
    with two threads on a loaded two-core machine, while a matrix product of that size stays at 0.05 s.
    Blocks of 128 and below factor single-threaded."""
    n = h.shape[0]
    low = np.zeros_like(h)
    for k0 in range(0, n, ROUND_BATCH):
        k1 = min(k0 + ROUND_BATCH, n)
        diag = h[k0:k1, k0:k1] - low[k0:k1, :k0] @ low[k0:k1, :k0].T
        lkk = np.linalg.cholesky(diag)
        low[k0:k1, k0:k1] = lkk
        if k1 < n:
            below = h[k1:, k0:k1] - low[k1:, :k0] @ low[k0:k1, :k0].T
            low[k1:, k0:k1] = below @ np.linalg.inv(lkk).T
    return low.T


def round_rows(rows: np.ndarray, lo: np.float32, hi: np.float32, gram: np.ndarray) -> np.ndarray:
    """uint16 LINEAR16 codes of `rows` [R, n] on the grid [lo, hi], chosen so that the conv output's error
    e·x is small for the inputs whose second moment is `gram` (E[(e·x)²] = e G eᵀ), not each entry's
    error alone.

    Babai's nearest-plane rounding (the sequential error feedback GPTQ applies to quantizing networks):
    with G = Rᵀ R (R upper), e G eᵀ = ‖R e‖², and entry i, taken from the last to the first, is rounded
    to the grid value nearest w_i + Σ_{k>i} (R_ik/R_ii)·e_k — the errors e_k of the entries already
    rounded, fed back — so each term of ‖R e‖² is at most R_ii²·(step/2)². Entries are ordered so that
    the largest E[x_i²] are rounded first; entries whose input is never non-zero cannot reach the output
    and are rounded plainly; the feedback from whole finished batches of ROUND_BATCH entries is one
    matrix product. With G = I it is plain rounding. Why it matters here: a board-constant input plane
    (the rule-50 count, up to ~100; the all-ones plane) sees the *sum* of its nine taps, so nine
    independent roundings in the same direction (weights that share a value round alike) add up on
    every square.
    """
    r, n = rows.shape
    q_plain = _quantize(rows.ravel().astype(np.float32), lo, hi).reshape(rows.shape)
    diag = np.diag(gram).astype(np.float64)
    seen = np.flatnonzero(diag > 0)
    if r == 0 or hi == lo or seen.size == 0:
        return q_plain
    order = seen[np.argsort(diag[seen], kind="stable")]  # ascending: the last is rounded first
    m = order.size
    g = gram[np.ix_(order, order)].astype(np.float64) + GRAM_RIDGE * float(np.mean(diag[seen])) * np.eye(m)
    rr = _upper_cholesky(g)
    coef = rr / np.diag(rr)[:, None]  # row i: R_ik / R_ii
    step = (float(hi) - float(lo)) / LINEAR16_STEPS
    w = rows[:, order].astype(np.float64)
    e = np.zeros((r, m))
    q = np.empty((r, m), dtype=np.int64)
    for b1 in range(m, 0, -ROUND_BATCH):
        b0 = max(b1 - ROUND_BATCH, 0)
        c = w[:, b0:b1] + e[:, b1:] @ coef[b0:b1, b1:].T  # feedback of the batches already rounded
        for i in range(b1 - 1, b0 - 1, -1):
            ci = c[:, i - b0] + e[:, i + 1:b1] @ coef[i, i + 1:b1]
            qi = np.clip(np.rint((ci - float(lo)) / step), 0, LINEAR16_STEPS).astype(np.int64)
            q[:, i] = qi
            # the decoder's float32 arithmetic, so the error fed back is the one stored
            e[:, i] = w[:, i] - _decode_one(qi, lo, hi)
    out = q_plain.astype(np.int64)
    out[:, order] = q
    return out.astype("<u2")


def snap_down(values: np.ndarray, which: np.ndarray) -> np.ndarray:
    """`values` (float64) with the entries in `which` moved down to the nearest value that a LINEAR16
    layer with the range [min(values), max(values)] stores exactly (codecs.decode's float32
    arithmetic), so that writing the layer leaves them where they are.

    Why: a channel's variance is free once its weights are re-rounded anyway — k = a·t follows any t —
    so a variance put on the layer's grid, with k taken from it, carries no scale error at all, where a
    rounded one carries a·σ_z·δt/t. Down, not to the nearest: the channel's k is at its cap.
    """
    out = values.astype(np.float64).copy()
    if not which.any():
        return out
    lo32, hi32 = np.float32(np.min(values)), np.float32(np.max(values))
    if hi32 == lo32:
        return out
    v = out[which]
    q = np.clip(np.floor((v - float(lo32)) / (float(hi32) - float(lo32)) * LINEAR16_STEPS), 0, LINEAR16_STEPS)
    q = q.astype(np.int64)
    for _ in range(2):  # the float32 decode may land one step either side of the float64 estimate
        d = _decode_one(q, lo32, hi32).astype(np.float64)
        q = np.where(d > v, np.maximum(q - 1, 0), q)
    d = _decode_one(q, lo32, hi32).astype(np.float64)
    up = _decode_one(np.minimum(q + 1, LINEAR16_STEPS), lo32, hi32).astype(np.float64)
    q = np.where(up <= v, np.minimum(q + 1, LINEAR16_STEPS), q)
    out[which] = _decode_one(q, lo32, hi32).astype(np.float64)
    return out
