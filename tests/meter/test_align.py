import numpy as np
import pytest
from scipy import signal

from rtq.errors import UsageError
from rtq.meter.align import _cross_correlation, align

FS = 48000


def programme(rng, n, channels=None):
    """Band-limited noise (a stand-in for music), 1-D or (n, channels)."""
    shape = (n,) if channels is None else (n, channels)
    b, a = signal.butter(4, 0.3)
    return signal.lfilter(b, a, 0.3 * rng.standard_normal(shape), axis=0)


def delayed(x, lag, n_out):
    """x delayed by ``lag`` frames (advanced when negative), cut or zero-padded to n_out frames."""
    out = np.zeros((n_out,) + x.shape[1:])
    src = x[max(-lag, 0):]
    dst = max(lag, 0)
    m = min(len(src), n_out - dst)
    out[dst:dst + m] = src[:m]
    return out


@pytest.mark.parametrize("lag, gain_db", [(1234, -3.0), (-567, 2.5), (0, 0.0), (47000, -20.0)])
def test_known_lag_and_gain_with_noise(lag, gain_db):
    rng = np.random.default_rng(abs(lag))
    ref = programme(rng, 3 * FS, channels=2)
    g = 10 ** (gain_db / 20)
    proc = g * delayed(ref, lag, len(ref) + 500)
    proc += 1e-3 * g * rng.standard_normal(proc.shape)  # about -50 dB below the programme
    got_lag, got_gain, ref_a, proc_a = align(ref, proc, FS)
    assert got_lag == lag
    assert got_gain == pytest.approx(gain_db, abs=0.01)
    n = min(len(ref) - max(-lag, 0), len(proc) - max(lag, 0))
    np.testing.assert_array_equal(ref_a, ref[max(-lag, 0):max(-lag, 0) + n])
    np.testing.assert_array_equal(proc_a, proc[max(lag, 0):max(lag, 0) + n])
    # Trimmed to the overlap: after undoing the gain only the added noise remains.
    np.testing.assert_allclose(proc_a / g - ref_a, 0.0, atol=6e-3)


def test_one_dimensional_signals_stay_one_dimensional():
    rng = np.random.default_rng(1)
    ref = programme(rng, FS)
    lag, gain_db, ref_a, proc_a = align(ref, 0.5 * delayed(ref, 300, len(ref)), FS)
    assert (lag, ref_a.ndim, proc_a.ndim, len(ref_a)) == (300, 1, 1, FS - 300)
    assert gain_db == pytest.approx(20 * np.log10(0.5), abs=1e-9)


def test_blockwise_correlation_equals_direct_correlation():
    rng = np.random.default_rng(2)
    ref, proc = rng.standard_normal((5000, 2)), rng.standard_normal((4200, 2))
    max_lag = 700
    corr, lags = _cross_correlation(ref, proc, max_lag, block=900)
    direct = sum(signal.correlate(proc[:, c], ref[:, c], mode="full") for c in range(2))
    direct_lags = signal.correlation_lags(len(proc), len(ref), mode="full")
    keep = np.abs(direct_lags) <= max_lag
    np.testing.assert_array_equal(lags, direct_lags[keep])
    np.testing.assert_allclose(corr, direct[keep], atol=1e-9)


def test_lag_is_searched_only_within_max_lag():
    rng = np.random.default_rng(3)
    ref = programme(rng, FS)
    proc = delayed(ref, 3000, len(ref)) + 0.1 * delayed(ref, 100, len(ref))  # weak early echo
    assert align(ref, proc, FS)[0] == 3000
    assert align(ref, proc, FS, max_lag_s=0.01)[0] == 100  # 3000 lies beyond 480 frames


@pytest.mark.parametrize("make_proc", [lambda ref: -ref, lambda ref: np.zeros_like(ref)],
                         ids=["inverted", "silent"])
def test_unusable_pairs_raise_usage_error(make_proc):
    ref = programme(np.random.default_rng(4), FS)
    with pytest.raises(UsageError, match="does not follow"):
        align(ref, make_proc(ref), FS)


def test_channel_mismatch_and_empty_input():
    with pytest.raises(UsageError, match="channels"):
        align(np.zeros((100, 2)), np.zeros((100, 1)), FS)
    with pytest.raises(UsageError, match="empty"):
        align(np.zeros((0, 1)), np.zeros((100, 1)), FS)
