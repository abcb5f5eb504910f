import numpy as np
import pytest

from rtq.meter.weighting import a_weighting_db, itu468_weighting_db, power_weighting, white_noise_gain_db

# Check points from shared/reference/theory.md.
FREQS = [31.5, 100, 1000, 2000, 6300, 10000, 20000]
A_DB = [-39.53, -19.14, 0.00, +1.20, -0.12, -2.49, -9.35]
ITU468_DB = [-29.92, -19.89, -0.04, +5.59, +12.18, +8.10, -22.22]


@pytest.mark.parametrize("f, expected", zip(FREQS, A_DB))
def test_a_weighting_check_points(f, expected):
    assert a_weighting_db(f) == pytest.approx(expected, abs=0.01)


@pytest.mark.parametrize("f, expected", zip(FREQS, ITU468_DB))
def test_itu468_check_points(f, expected):
    assert itu468_weighting_db(f) == pytest.approx(expected, abs=0.01)


@pytest.mark.parametrize("curve, expected", [(a_weighting_db, A_DB), (itu468_weighting_db, ITU468_DB)])
def test_vectorised_and_minus_inf_at_dc(curve, expected):
    got = curve(np.array([0.0] + FREQS))
    assert got.shape == (len(FREQS) + 1,)
    assert got[0] == -np.inf
    np.testing.assert_allclose(got[1:], expected, atol=0.01)
    np.testing.assert_allclose(curve(-np.array(FREQS)), got[1:])


def test_power_weighting_is_linear_power_of_the_db_curve():
    f = np.fft.rfftfreq(4096, 1 / 48000)
    np.testing.assert_allclose(power_weighting(f, "a"), 10 ** (a_weighting_db(f) / 10))
    np.testing.assert_allclose(power_weighting(f, "itu468"), 10 ** (itu468_weighting_db(f) / 10))
    assert power_weighting(f, "a")[0] == 0.0
    assert power_weighting(1000.0, "a") == pytest.approx(1.0, abs=1e-4)


def _formula_db(curve, f):
    """The theory.md formulas, written out independently of the module."""
    if curve == "a":
        ra = 12194 ** 2 * f ** 4 / ((f ** 2 + 20.6 ** 2) * np.sqrt((f ** 2 + 107.7 ** 2) * (f ** 2 + 737.9 ** 2))
                                   * (f ** 2 + 12194 ** 2))
        return 20 * np.log10(ra) + 2.0
    h1 = -4.737338981378384e-24 * f ** 6 + 2.043828333606125e-15 * f ** 4 - 1.363894795463638e-07 * f ** 2 + 1
    h2 = 1.306612257412824e-19 * f ** 5 - 2.118150887518656e-11 * f ** 3 + 5.559488023498642e-04 * f
    return 18.2 + 20 * np.log10(1.246332637532143e-04 * f / np.sqrt(h1 ** 2 + h2 ** 2))


@pytest.mark.parametrize("curve", ["a", "itu468"])
@pytest.mark.parametrize("fs", [44100, 48000, 96000])
def test_white_noise_gain_against_dense_trapezoid(curve, fs):
    f = np.linspace(1e-3, fs / 2, 2_000_001)
    mean_power = np.trapezoid(10 ** (_formula_db(curve, f) / 10), f) / (fs / 2)
    assert white_noise_gain_db(curve, fs) == pytest.approx(10 * np.log10(mean_power), abs=0.01)


def test_unknown_curve():
    with pytest.raises(ValueError, match="unknown weighting curve"):
        power_weighting(1000.0, "c")
