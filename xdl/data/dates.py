"""Human-readable dates and their ISO 8601 form, for the date-translation seq2seq recipe.

``date_pairs(n, seed, split)`` draws ``n`` dates between 1950-01-01 and 2049-12-31 and
writes each in one of :data:`FORMATS`, chosen at random ("3 March 2021", "Mar 3, 21",
"Wednesday, March 3, 2021", "3.3.2021", ...); the target is "2021-03-03". Week-day
names are those of the date itself. Two-digit years mean 1950–2049 (50–99 → 19yy,
00–49 → 20yy), so every source has exactly one target; numeric forms put the day
first ("3.3.2021" is 3 March). The held-out split is every tenth day (day ordinal
divisible by 10): no test date is ever seen in training, in any format. One seed
always gives the same pairs.
"""

from __future__ import annotations

import datetime

import numpy as np

FIRST = datetime.date(1950, 1, 1)
LAST = datetime.date(2049, 12, 31)

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def _ordinal(day: int) -> str:
    if 10 <= day % 100 <= 20:
        return f"{day}th"
    return f"{day}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(day % 10, 'th')}"


def _fields(d: datetime.date) -> dict:
    month, weekday = MONTHS[d.month - 1], WEEKDAYS[d.weekday()]
    return {"d": d.day, "dd": f"{d.day:02d}", "m": d.month, "mm": f"{d.month:02d}",
            "Y": d.year, "yy": f"{d.year % 100:02d}", "Month": month, "Mon": month[:3],
            "month": month.lower(), "MONTH": month.upper(), "Weekday": weekday,
            "Wkd": weekday[:3], "dth": _ordinal(d.day)}


#: The written forms, as str.format templates over the fields of :func:`_fields`.
FORMATS = [
    "{d} {Month} {Y}",                 # 3 March 2021
    "{dd} {Mon} {Y}",                  # 03 Mar 2021
    "{Mon} {d}, {yy}",                 # Mar 3, 21
    "{Month} {d}, {Y}",                # March 3, 2021
    "{Weekday}, {Month} {d}, {Y}",     # Wednesday, March 3, 2021
    "{Wkd} {d} {Mon} {Y}",             # Wed 3 Mar 2021
    "{d}.{m}.{Y}",                     # 3.3.2021
    "{dd}/{mm}/{yy}",                  # 03/03/21
    "{month} {d} {Y}",                 # march 3 2021
    "{dth} of {Month} {Y}",            # 3rd of March 2021
    "{MONTH} {d}, {Y}",                # MARCH 3, 2021
    "{Weekday} {d} {Month} {Y}",       # Wednesday 3 March 2021
    "{Mon} {dth}, {Y}",                # Mar 3rd, 2021
    "{d}-{Mon}-{yy}",                  # 3-Mar-21
    "{Y}.{mm}.{dd}",                   # 2021.03.03
]


def format_date(d: datetime.date, template: str) -> str:
    """``d`` written with one of :data:`FORMATS`."""
    return template.format(**_fields(d))


def in_split(d: datetime.date, split: str) -> bool:
    """Whether ``d`` belongs to ``split``: "test" holds every tenth day, "train" the rest."""
    held_out = d.toordinal() % 10 == 0
    if split == "test":
        return held_out
    if split == "train":
        return not held_out
    raise ValueError(f"date split must be 'train' or 'test', got {split!r}")


def date_pairs(n: int, seed: int = 0, split: str = "train") -> list[tuple[str, str]]:
    """``n`` (human-readable date, ISO date) pairs of ``split``, drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    days = [FIRST + datetime.timedelta(days=int(k))
            for k in range((LAST - FIRST).days + 1)]
    days = [d for d in days if in_split(d, split)]
    chosen = rng.integers(0, len(days), size=n)
    templates = rng.integers(0, len(FORMATS), size=n)
    return [(format_date(days[i], FORMATS[t]), days[i].isoformat())
            for i, t in zip(chosen.tolist(), templates.tolist())]
