"""Human-friendly number formatting for reports (k/M/G, MB, s/min/h, J/Wh/kWh).

Every formatter takes ``None`` (or NaN) and returns the dash used for "no value", so report
code never has to guard against missing metrics.

>>> count(301_234), duration(300.0), size_bytes(4_200_000), percent(0.9123)
('301k', '5 min', '4.2 MB', '91.2 %')
"""

from __future__ import annotations

import math
from datetime import datetime

from ..config import JOULES_PER_KWH

MISSING = "—"


def number(value: float | None) -> float | None:
    """``value`` as a finite float, or None (for None, NaN, ±inf, bools and non-numbers).

    >>> number(3), number(float("nan")), number("x")
    (3.0, None, None)
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def sig(value: float | None, digits: int = 3) -> str:
    """A number with ``digits`` significant digits, without scientific notation when short.

    >>> sig(0.0012345), sig(12345.6), sig(7)
    ('0.00123', '12346', '7')
    """
    v = number(value)
    if v is None:
        return MISSING
    if v == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(v)))
    decimals = max(digits - 1 - magnitude, 0)
    if decimals > 8:
        return f"{v:.{digits - 1}e}"
    text = f"{v:.{decimals}f}"
    # "2.50" reads as more precise than it is; "2.5" is what people write.
    return text.rstrip("0").rstrip(".") if "." in text else text


def _scaled(value: float, steps: list[tuple[float, str]], digits: int = 3) -> str:
    for factor, suffix in steps:
        if abs(value) >= factor:
            return f"{sig(value / factor, digits)}{suffix}"
    return sig(value, digits)


def count(value: float | None) -> str:
    """Counts (parameters, FLOPs, images/s) with k/M/G/T suffixes.

    >>> count(1_500_000_000), count(950)
    ('1.5G', '950')
    """
    v = number(value)
    if v is None:
        return MISSING
    return _scaled(v, [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")])


def size_bytes(value: float | None) -> str:
    """Bytes in SI units (kB, MB, GB), as disk and memory sizes are usually quoted.

    >>> size_bytes(512), size_bytes(2_500_000_000)
    ('512 B', '2.5 GB')
    """
    v = number(value)
    if v is None:
        return MISSING
    for factor, unit in [(1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "kB")]:
        if abs(v) >= factor:
            return f"{sig(v / factor)} {unit}"
    return f"{sig(v)} B"


def duration(seconds: float | None) -> str:
    """A duration in s below two minutes, min below two hours, then "h min".

    >>> duration(0.0123), duration(42.34), duration(9000)
    ('12.3 ms', '42.3 s', '2 h 30 min')
    """
    v = number(seconds)
    if v is None:
        return MISSING
    if abs(v) < 1:
        return f"{sig(v * 1000)} ms"
    if abs(v) < 120:
        return f"{sig(v)} s"
    if abs(v) < 7200:
        return f"{sig(v / 60)} min"
    hours, rest = divmod(round(v / 60), 60)
    return f"{hours} h {rest} min"


def milliseconds(value: float | None) -> str:
    """Latency given in milliseconds.

    >>> milliseconds(1.234), milliseconds(2500)
    ('1.23 ms', '2.5 s')
    """
    v = number(value)
    return MISSING if v is None else duration(v / 1000)


def energy_j(joules: float | None) -> str:
    """Energy in J and kJ for short runs, in kWh (the unit on power bills) from 1 MJ up.

    >>> energy_j(540), energy_j(5400), energy_j(3.6e7)
    ('540 J', '5.4 kJ', '10 kWh')
    """
    v = number(joules)
    if v is None:
        return MISSING
    if abs(v) < 1e3:
        return f"{sig(v)} J"
    if abs(v) < 1e6:
        return f"{sig(v / 1e3)} kJ"
    return f"{sig(v / JOULES_PER_KWH)} kWh"


def percent(fraction: float | None, digits: int = 1) -> str:
    """A 0..1 fraction as a percentage.

    >>> percent(0.74567), percent(None)
    ('74.6 %', '—')
    """
    v = number(fraction)
    return MISSING if v is None else f"{v * 100:.{digits}f} %"


def percent_points(fraction: float | None, digits: int = 1) -> str:
    """A 0..1 spread (std) as percentage points, without the unit.

    >>> percent_points(0.0042)
    '0.4'
    """
    v = number(fraction)
    return MISSING if v is None else f"{v * 100:.{digits}f}"


def plain(value: float | None, digits: int = 3) -> str:
    """Scores in 0..1 (macro-F1) with a fixed number of decimals.

    >>> plain(0.91234)
    '0.912'
    """
    v = number(value)
    return MISSING if v is None else f"{v:.{digits}f}"


def timestamp(text: str | None) -> str:
    """An ISO-8601 time as "YYYY-MM-DD HH:MM:SS" (UTC kept as stored); other text unchanged.

    >>> timestamp("2024-05-01T12:00:03.123456+00:00")
    '2024-05-01 12:00:03'
    """
    if not text:
        return MISSING
    try:
        return datetime.fromisoformat(str(text)).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return str(text)


def integer(value: float | None) -> str:
    """Whole counts such as epochs; a non-integral mean keeps one decimal.

    >>> integer(10.0), integer(9.5)
    ('10', '9.5')
    """
    v = number(value)
    if v is None:
        return MISSING
    return str(int(v)) if v == int(v) else f"{v:.1f}"
