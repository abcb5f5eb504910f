"""Noise-shaping error filters: the published tables and their rate selection.

A table serves stream rates within +-5 % of its nominal rate.  FIR tables hold
``c[1..N]`` for ``NTF(z) = 1 - sum c[j] z^-j``; IIR tables (gesemann) hold ``a[1..4]`` and
``b[1..4]`` for ``NTF(z) = (1 + B(z) - A(z)) / (1 + B(z))``.  Both reduce to one
error-feedback form used by the requantizer kernel::

    o[n] = sum a[j] e[n-j] - sum b[j] o[n-j];   d = x - o;   y = Q(d + dither);  e = y - d

(an FIR table is the case ``b = []``).  The numbers are the ones SoX and FFmpeg ship,
taken from ``shared/reference/noise-shaping.md``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RATE_TOLERANCE = 0.05


@dataclass(frozen=True)
class ErrorFilter:
    """Error-feedback coefficients ``a`` (on past errors) and ``b`` (on past feedback)."""

    a: tuple[float, ...]
    b: tuple[float, ...] = ()

    def ntf(self, w: np.ndarray) -> np.ndarray:
        """Complex NTF at normalised angular frequencies ``w`` (radians per sample)."""
        z1 = np.exp(-1j * np.asarray(w, dtype=float))
        A = sum(c * z1 ** (j + 1) for j, c in enumerate(self.a))
        B = sum(c * z1 ** (j + 1) for j, c in enumerate(self.b)) if self.b else 0.0
        return (1.0 + B - A) / (1.0 + B)


def _fir(*c: float) -> ErrorFilter:
    return ErrorFilter(tuple(c))


# name -> {nominal rate: filter}; None as rate means "any rate".
TABLES: dict[str, dict[int | None, ErrorFilter]] = {
    "first-order": {None: _fir(1.0)},
    "lipshitz": {44100: _fir(2.033, -2.165, 1.959, -1.590, 0.6149)},
    "f-weighted": {46000: _fir(2.412, -3.370, 3.937, -4.174, 3.353, -2.205, 1.281, -0.569, 0.0847)},
    "modified-e-weighted": {46000: _fir(1.662, -1.263, 0.4827, -0.2913, 0.1268, -0.1124, 0.03252, -0.01265, -0.03524)},
    "improved-e-weighted": {46000: _fir(2.847, -4.685, 6.214, -7.184, 6.639, -5.032, 3.263, -1.632, 0.4191)},
    "gesemann": {
        44100: ErrorFilter((2.2061, -0.4706, -0.2534, -0.6214), (1.0587, 0.0676, -0.6054, -0.2738)),
        48000: ErrorFilter((2.2374, -0.7339, -0.1251, -0.6033), (0.903, 0.0116, -0.5853, -0.2571)),
    },
    "shibata": {
        48000: _fir(
            2.8720729351043701172, -5.0413231849670410156, 6.2442994117736816406, -5.8483986854553222656,
            3.7067542076110839844, -1.0495119094848632812, -1.1830236911773681641, 2.1126792430877685547,
            -1.9094531536102294922, 0.99913084506988525391, -0.17090806365013122559, -0.32615602016448974609,
            0.39127644896507263184, -0.26876461505889892578, 0.097676105797290802002, -0.023473845794796943665),
        44100: _fir(
            2.6773197650909423828, -4.8308925628662109375, 6.570110321044921875, -7.4572014808654785156,
            6.7263274192810058594, -4.8481650352478027344, 2.0412089824676513672, 0.7006359100341796875,
            -2.9537565708160400391, 4.0800385475158691406, -4.1845216751098632812, 3.3311812877655029297,
            -2.1179926395416259766, 0.879302978515625, -0.031759146600961685181, -0.42382788658142089844,
            0.47882103919982910156, -0.35490813851356506348, 0.17496839165687561035, -0.060908168554306030273),
        37800: _fir(
            1.6335992813110351562, -2.2615492343902587891, 2.4077029228210449219, -2.6341717243194580078,
            2.1440362930297851562, -1.8153258562088012695, 1.0816224813461303711, -0.70302653312683105469,
            0.15991993248462677002, 0.041549518704414367676, -0.29416576027870178223, 0.2518316805362701416,
            -0.27766478061676025391, 0.15785403549671173096, -0.10165894031524658203, 0.016833892092108726501),
        32000: _fir(
            0.82901298999786376953, -0.98922657966613769531, 0.59825712442398071289, -1.0028809309005737305,
            0.59938216209411621094, -0.79502451419830322266, 0.42723315954208374023, -0.54492527246475219727,
            0.30792605876922607422, -0.36871799826622009277, 0.18792048096656799316, -0.2261127084493637085,
            0.10573341697454452515, -0.11435490846633911133, 0.038800679147243499756, -0.040842197835445404053),
        22050: _fir(
            0.065229974687099456787, -0.54981261491775512695, -0.40278548002243041992, -0.31783768534660339355,
            -0.28201797604560852051, -0.16985194385051727295, -0.15433363616466522217, -0.12507140636444091797,
            -0.08903945237398147583, -0.064410120248794555664, -0.047146003693342208862, -0.032805237919092178345,
            -0.028495194390416145325, -0.011695005930960178375, -0.011831838637590408325),
    },
    "low-shibata": {
        48000: _fir(
            2.3925774097442626953, -3.4350297451019287109, 3.1853709220886230469, -1.8117271661758422852,
            -0.20124770700931549072, 1.4759907722473144531, -1.7210904359817504883, 0.97746700048446655273,
            -0.13790138065814971924, -0.38185903429985046387, 0.27421241998672485352, 0.066584214568138122559,
            -0.35223302245140075684, 0.37672343850135803223, -0.23964276909828186035, 0.068674825131893157959),
        44100: _fir(
            2.0833916664123535156, -3.0418450832366943359, 3.2047898769378662109, -2.7571926116943359375,
            1.4978630542755126953, -0.3427594602108001709, -0.71733748912811279297, 1.0737057924270629883,
            -1.0225815773010253906, 0.56649994850158691406, -0.20968692004680633545, -0.065378531813621520996,
            0.10322438180446624756, -0.067442022264003753662, -0.00495197344571352005),
    },
    "high-shibata": {
        44100: _fir(
            3.0259189605712890625, -6.0268716812133789062, 9.195003509521484375, -11.824929237365722656,
            12.767142295837402344, -11.917946815490722656, 9.1739168167114257812, -5.3712320327758789062,
            1.1393624544143676758, 2.4484779834747314453, -4.9719839096069335938, 6.0392003059387207031,
            -5.9359521865844726562, 4.903278350830078125, -3.5527443885803222656, 2.1909697055816650391,
            -1.1672389507293701172, 0.4903914332389831543, -0.16519790887832641602, 0.023217858746647834778),
    },
}

TABLE_NAMES = tuple(TABLES)
SHAPING_NAMES = ("none",) + TABLE_NAMES
"""The noise shapings a name selects, in the order presets, the live controls and the
help list them (designed and custom filters are given by their parameters)."""


def supported_rates(name: str) -> list[int]:
    """Nominal rates of a table family (empty for rate-independent filters)."""
    return sorted(r for r in TABLES[name] if r is not None)


def rates_text(name: str) -> str:
    """The nominal rates of a table family as users read them: ``44100, 48000 Hz (+-5 %)``."""
    return f"{', '.join(map(str, supported_rates(name)))} Hz (+-{RATE_TOLERANCE * 100:g} %)"


def select_table(name: str, sample_rate: float) -> ErrorFilter | None:
    """The table of family ``name`` that serves ``sample_rate`` (nearest nominal rate
    within +-5 %), or None when no table fits."""
    return table_for_rate(name, sample_rate)[1]


def table_for_rate(name: str, sample_rate: float) -> tuple[int | None, ErrorFilter | None]:
    """``(nominal rate, filter)`` of the table serving ``sample_rate``; ``(None, None)``
    when none fits, ``(None, filter)`` for a rate-independent filter."""
    best = (None, None, None)
    for nominal, filt in TABLES[name].items():
        if nominal is None:
            return None, filt
        off = abs(sample_rate - nominal) / nominal
        if off <= RATE_TOLERANCE and (best[0] is None or off < best[0]):
            best = (off, nominal, filt)
    return best[1], best[2]
