"""Cron expressions for scheduled jobs: the five classic fields, parsed and checked here.

`minute hour day-of-month month day-of-week`, each `*`, a number, a range `a-b`, a step
`*/n` or `a-b/n`, or a comma list of those; month and weekday names (`jan`, `mon`) are
accepted; weekday 0 and 7 are Sunday. As in cron, when both day-of-month and day-of-week
are restricted a day matches if *either* does. Times are UTC.

No party data: a schedule only says when the coordinator submits a job again.

>>> c = CronSchedule("30 2 * * mon-fri")
>>> c.next_after(dt.datetime(2026, 12, 4, 3, 0, tzinfo=dt.timezone.utc)).isoformat()   # a Friday, after 02:30
'2026-12-07T02:30:00+00:00'
>>> CronSchedule("61 * * * *")
Traceback (most recent call last):
...
jointml.core.errors.ConfigError: field 'cron': cron field 'minute' value 61 is outside 0-59 (in '61 * * * *')
"""

from __future__ import annotations

import datetime as dt

from ..core.errors import ConfigError

__all__ = ["CronSchedule"]

_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day-of-month", 1, 31), ("month", 1, 12), ("day-of-week", 0, 7))
_NAMES = {
    "month": {m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())},
    "day-of-week": {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())},
}
_SEARCH_DAYS = 366 * 5  # long enough for any valid expression (Feb 29 recurs every 4 years; 5 covers a gap of 8)


class CronSchedule:
    """A parsed cron expression; `next_after(t)` is the first matching minute strictly after `t`."""

    def __init__(self, expr: str):
        self.expr = str(expr)
        parts = self.expr.split()
        if len(parts) != 5:
            raise ConfigError(f"a cron expression has 5 fields (minute hour day month weekday), got {self.expr!r}",
                              field="cron")
        sets = [self._field(p, *f) for p, f in zip(parts, _FIELDS)]
        self.minutes, self.hours, self.days, self.months, dow = sets
        self.weekdays = {d % 7 for d in dow}  # 7 is Sunday too
        self.dom_any, self.dow_any = parts[2] == "*", parts[4] == "*"

    def _field(self, text: str, name: str, lo: int, hi: int) -> set[int]:
        out: set[int] = set()
        for item in text.lower().split(","):
            rng, _, step_s = item.partition("/")
            step = self._num(step_s, name, 1, hi) if step_s else 1
            if rng == "*":
                a, b = lo, hi
            elif "-" in rng:
                a_s, b_s = rng.split("-", 1)
                a, b = self._num(a_s, name, lo, hi), self._num(b_s, name, lo, hi)
                if a > b:
                    raise ConfigError(f"cron field '{name}': range {rng} runs backwards (in {self.expr!r})", field="cron")
            else:
                a = b = self._num(rng, name, lo, hi)
                if step_s:
                    b = hi
            out.update(range(a, b + 1, step))
        return out

    def _num(self, s: str, name: str, lo: int, hi: int) -> int:
        v = _NAMES.get(name, {}).get(s)
        if v is None:
            if not s.isdigit():
                raise ConfigError(f"cron field '{name}': {s!r} is not a number (in {self.expr!r})", field="cron")
            v = int(s)
        if not lo <= v <= hi:
            raise ConfigError(f"cron field '{name}' value {v} is outside {lo}-{hi} (in {self.expr!r})", field="cron")
        return v

    def _day_matches(self, d: dt.date) -> bool:
        if d.month not in self.months:
            return False
        dom, dow = d.day in self.days, (d.weekday() + 1) % 7 in self.weekdays
        if self.dom_any or self.dow_any:
            return dom and dow
        return dom or dow

    def next_after(self, t: dt.datetime) -> dt.datetime:
        """The first time (UTC, whole minute) after `t` that the expression names.

        >>> CronSchedule("*/15 * * * *").next_after(dt.datetime(2026, 1, 1, 10, 7, 30, tzinfo=dt.timezone.utc)).time()
        datetime.time(10, 15)
        """
        if t.tzinfo is None:
            raise ConfigError("cron: give an aware time (UTC)", field="cron")
        t = t.astimezone(dt.timezone.utc).replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
        day = t.date()
        for _ in range(_SEARCH_DAYS):
            if self._day_matches(day):
                first = day == t.date()
                for h in sorted(self.hours):
                    if first and h < t.hour:
                        continue
                    for m in sorted(self.minutes):
                        if first and h == t.hour and m < t.minute:
                            continue
                        return dt.datetime(day.year, day.month, day.day, h, m, tzinfo=dt.timezone.utc)
            day += dt.timedelta(days=1)
        raise ConfigError(f"cron expression {self.expr!r} names no date in the next {_SEARCH_DAYS // 366} years",
                          field="cron")
