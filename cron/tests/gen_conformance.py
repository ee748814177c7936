#!/usr/bin/env python3
"""Generates cron/tests/conformance.json, the conformance table for the codeai-cron crate.

The expected fire times do NOT come from the Rust code. They come from a brute-force reference
written below (``bruteforce``), and every case is cross-checked with two independent
implementations from PyPI:

* ``croniter`` (``croniter(expr, start_local_aware).get_next(datetime)``), and
* ``cronsim`` (``next(CronSim(expr, start_local_aware))``; given the expansion of @macros, which
  it does not parse).

The brute force walks whole-minute UTC instants one by one (skipping only whole local days/hours
that cannot match while the UTC offset stays the same), converts each to the zone's wall clock
with the standard library's ``zoneinfo``, matches the five fields with Vixie cron semantics, and
implements the crate's DST rules explicitly. A job is *fixed-time* when neither its minute nor
its hour field text starts with ``*`` and its hour field does not list all 24 hours:
    - gap (spring forward): at the transition instant T, if the job is fixed-time and any
      wall-clock minute in the skipped range [T + old offset, T + new offset) matches, fire once
      at T; other jobs simply never see the skipped times;
    - overlap (fall back): a wall-clock time that occurs twice fires on its second occurrence
      (zoneinfo ``fold == 1``) only when the job is not fixed-time;
    - candidates are whole minutes strictly after ``after``; an instant fires at most once.
These follow what croniter and cronsim agree on (see tests/README.md); where one of them differs in
a case, the case records it (see below and tests/README.md).

The expected values are always the brute force's. A case's ``source`` names the references
that agree with them (``croniter+cronsim``, ``croniter`` or ``cronsim``), or is ``bruteforce``
when neither does; a reference that disagrees has its answer kept under its own name
(``croniter``, ``cronsim``) for the record. croniter has known DST quirks and treats a
day-of-month such as ``*/2`` as restricted where Vixie cron does not.

Regenerate (from the repository root):

    pip install --user croniter cronsim   # or: pip install --break-system-packages croniter cronsim
    python3 cron/tests/gen_conformance.py

The zone rules come from the system tz database (/usr/share/zoneinfo, Debian tzdata 2025b when
this table was made) through ``zoneinfo``; the chrono-tz crate carries its own copy of the tz
database, and a rule change between the two would show up as a failing case.
"""

from __future__ import annotations

import json
import platform
import sys
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from importlib.metadata import version
from pathlib import Path
from zoneinfo import TZPATH as ZONEINFO_TZPATH
from zoneinfo import ZoneInfo

from croniter import croniter
from cronsim import CronSim

UTC = timezone.utc
MINUTE = timedelta(minutes=1)
OUT = Path(__file__).with_name("conformance.json")

# ---------------------------------------------------------------------------------------------
# Brute-force reference
# ---------------------------------------------------------------------------------------------

MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


@dataclass
class Spec:
    minutes: set[int]
    hours: set[int]
    doms: set[int]
    months: set[int]
    dows: set[int]  # 0 = Sunday
    dom_star: bool  # field text starts with '*'
    dow_star: bool
    fixed: bool  # fixed-time job: minute and hour text don't start with '*', hours not all 24


def _value(tok: str, lo: int, hi: int, names: list[str] | None, first: int) -> int:
    if tok.isdigit():
        v = int(tok)
    elif names and tok.upper() in names:
        v = names.index(tok.upper()) + first
    else:
        raise ValueError(f"bad value {tok!r}")
    if not lo <= v <= hi:
        raise ValueError(f"{v} out of range {lo}-{hi}")
    return v


def _field(text: str, lo: int, hi: int, names=None, first=0, dow=False) -> set[int]:
    # For the day of week, '*' and 'a/n' run to 6 (Saturday) so Sunday appears once; 7 -> 0.
    top = 6 if dow else hi
    out: set[int] = set()
    for item in text.split(","):
        base, _, step_text = item.partition("/")
        step = int(step_text) if step_text else 1
        if step < 1:
            raise ValueError("step 0")
        if base == "*":
            a, b = lo, top
        elif "-" in base:
            x, y = base.split("-")
            a, b = _value(x, lo, hi, names, first), _value(y, lo, hi, names, first)
        else:
            a = _value(base, lo, hi, names, first)
            b = max(top, a) if step_text else a
        out.update(range(a, b + 1, step))
    if dow:
        out = {0 if v == 7 else v for v in out}
    return out


def parse(expr: str) -> Spec:
    expr = MACROS.get(expr.strip().lower(), expr)
    f = expr.split()
    assert len(f) == 5, expr
    hours = _field(f[1], 0, 23)
    return Spec(
        minutes=_field(f[0], 0, 59),
        hours=hours,
        doms=_field(f[2], 1, 31),
        months=_field(f[3], 1, 12, MONTHS, 1),
        dows=_field(f[4], 0, 7, DAYS, 0, dow=True),
        dom_star=f[2].startswith("*"),
        dow_star=f[4].startswith("*"),
        fixed=not f[0].startswith("*") and not f[1].startswith("*") and len(hours) < 24,
    )


def date_matches(s: Spec, d: date) -> bool:
    if d.month not in s.months:
        return False
    dom_ok = d.day in s.doms
    dow_ok = (d.isoweekday() % 7) in s.dows
    if not s.dom_star and not s.dow_star:
        return dom_ok or dow_ok  # Vixie: both restricted -> either day fires
    return dom_ok and dow_ok


def wall_matches(s: Spec, w: datetime) -> bool:
    return w.minute in s.minutes and w.hour in s.hours and date_matches(s, w.date())


def is_ambiguous(wall: datetime, tz: ZoneInfo) -> bool:
    return wall.replace(tzinfo=tz, fold=0).utcoffset() != wall.replace(tzinfo=tz, fold=1).utcoffset()


def bruteforce(expr: str, tzname: str, after: datetime, n: int) -> list[datetime]:
    s = parse(expr)
    tz = ZoneInfo(tzname)
    # First candidate: the first whole minute strictly after `after`.
    t = after.replace(second=0, microsecond=0) + MINUTE
    out: list[datetime] = []
    limit = after + timedelta(days=366 * 30)
    while len(out) < n and t < limit:
        loc = t.astimezone(tz)
        off = loc.utcoffset()
        prev_off = (t - timedelta(seconds=1)).astimezone(tz).utcoffset()
        wall = loc.replace(tzinfo=None)

        fire = False
        if wall_matches(s, wall):
            second_pass = is_ambiguous(wall, tz) and loc.fold == 1
            fire = not second_pass or not s.fixed
        if not fire and s.fixed and off > prev_off:
            # t is a spring-forward transition: wall times [t+prev_off, t+off) never happen.
            m = (t + prev_off).replace(tzinfo=None)
            gap_end = (t + off).replace(tzinfo=None)
            while m < gap_end:
                if wall_matches(s, m):
                    fire = True
                    break
                m += MINUTE
        if fire:
            out.append(t)

        # Speed-up that cannot skip a fire: jump over a whole local day (or hour) that cannot
        # match, but only when the UTC offset is the same across the jump (no transition inside).
        if not date_matches(s, wall.date()):
            nxt = datetime.combine(wall.date() + timedelta(days=1), datetime.min.time())
        elif wall.hour not in s.hours:
            nxt = wall.replace(minute=0) + timedelta(hours=1)
        else:
            nxt = None
        if nxt is not None:
            jump = t + (nxt - wall)
            if (jump + timedelta(hours=2)).astimezone(tz).utcoffset() == off and jump - t > MINUTE:
                t = jump
                continue
        t += MINUTE
    return out


# ---------------------------------------------------------------------------------------------
# croniter
# ---------------------------------------------------------------------------------------------


def via_croniter(expr: str, tzname: str, after: datetime, n: int) -> list[datetime] | str:
    try:
        it = croniter(expr, after.astimezone(ZoneInfo(tzname)))
        return [it.get_next(datetime).astimezone(UTC) for _ in range(n)]
    except Exception as e:  # noqa: BLE001 - recorded as a disagreement
        return f"error: {e}"


def via_cronsim(expr: str, tzname: str, after: datetime, n: int) -> list[datetime] | str:
    # cronsim has no @macros: it is given their standard expansion.
    text = MACROS.get(expr.strip().lower(), expr)
    try:
        it = CronSim(text, after.astimezone(ZoneInfo(tzname)))
        return [next(it).astimezone(UTC) for _ in range(n)]
    except Exception as e:  # noqa: BLE001 - recorded as a disagreement
        return f"error: {e!r}"


REFERENCES = {"croniter": via_croniter, "cronsim": via_cronsim}


# ---------------------------------------------------------------------------------------------
# The cases
# ---------------------------------------------------------------------------------------------

ZONES = [
    "UTC",
    "America/New_York",
    "Europe/London",
    "Europe/Berlin",
    "Australia/Sydney",
    "Asia/Kolkata",
    "Pacific/Auckland",
    "America/Sao_Paulo",
]
DST_ZONES = ["America/New_York", "Europe/London", "Europe/Berlin", "Australia/Sydney", "Pacific/Auckland"]

# Expressions whose fire times sit around 01:00-03:00 local or every hour: DST-sensitive in
# every DST zone used (gaps and overlaps are 01-02 in London, 02-03 in Berlin/Sydney/Auckland,
# 02-03 / 01-02 in New York).
DST_EXPRS = [
    "30 2 * * *",
    "30 1 * * *",
    "*/30 * * * *",
    "0 * * * *",
    "*/15 2 * * *",
    "0 2 * * *",
    "0 3 * * *",
    "0 */2 * * *",
    "0 1 * * *",
    "15 1-3 * * *",
    "0 2,3 * * *",
    "45 2 * * 0",
    "0,30 1/1 * * *",
    "*/15 1-3 * * *",
    "0 0-23 * * *",
]

GENERAL_EXPRS = [
    "0 6 * * *",
    "0 8 * * 1",
    "0 7 1 * *",
    "0 4 * * 0",
    "*/15 * * * *",
    "0 9-17 * * MON-FRI",
    "0 0 1,15 * 5",
    "0 0 31 * *",
    "0 12 * JAN,JUL SUN",
    "5 4 * * 7",
    "0 0 * * 0",
    "@daily",
    "@weekly",
    "@monthly",
    "@yearly",
    "@hourly",
    "59 23 31 12 *",
    "30 */6 * * *",
    "0 22 * * 1-5",
    "15 10 * * sat,sun",
    "10-20/5 3 * * *",
    "0 5/6 * * *",
    "0 0 1-7 * 1",
    "0 0 28-31 * *",
    "*/7 * * * *",
    "0 0 1 */3 *",
    "1 2 3 4 *",
    "0 0 13 * fri",
    "0 12 * feb-apr mon-wed",
    "0 0 */2 * 1",
]

SPARSE_EXPRS = ["0 0 29 2 *", "0 12 29 2 *"]


def rfc3339(t: datetime) -> str:
    t = t.astimezone(UTC)
    if t.microsecond:
        return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def transitions(tzname: str, years=(2025, 2026, 2027)) -> list[datetime]:
    """The UTC instants at which the zone's offset changes in the given years."""
    tz = ZoneInfo(tzname)
    out = []
    t = datetime(years[0], 1, 1, tzinfo=UTC)
    end = datetime(years[-1] + 1, 1, 1, tzinfo=UTC)
    step = timedelta(hours=1)
    prev = t.astimezone(tz).utcoffset()
    while t < end:
        nxt = t + step
        off = nxt.astimezone(tz).utcoffset()
        if off != prev:
            lo, hi = t, nxt  # offset(lo) == prev, offset(hi) == off
            while hi - lo > timedelta(seconds=1):
                mid = lo + (hi - lo) / 2
                mid = mid.replace(microsecond=0)
                if mid.astimezone(tz).utcoffset() == prev:
                    lo = mid
                else:
                    hi = mid
            out.append(hi)
            prev = off
        t = nxt
    return out


GENERAL_AFTERS = [
    datetime(2025, 6, 15, 12, 0, 0, tzinfo=UTC),  # ordinary day, exact minute
    datetime(2026, 1, 31, 22, 30, 30, 500000, tzinfo=UTC),  # Jan 31, sub-second
    datetime(2026, 2, 28, 23, 59, 0, tzinfo=UTC),  # Feb 28 2026 (non-leap), exact
    datetime(2027, 2, 27, 12, 0, 0, 250000, tzinfo=UTC),  # Feb 2027 (non-leap)
    datetime(2028, 2, 28, 18, 0, 0, tzinfo=UTC),  # day before Feb 29 2028 (leap)
    datetime(2028, 2, 29, 23, 0, 0, tzinfo=UTC),  # Feb 29 2028
    datetime(2025, 12, 31, 23, 30, 0, tzinfo=UTC),  # year end
    datetime(2026, 12, 31, 12, 0, 59, 999000, tzinfo=UTC),  # year end, sub-second
    datetime(2026, 7, 4, 9, 17, 0, tzinfo=UTC),  # ordinary, odd minute
    datetime(2027, 4, 30, 23, 59, 59, tzinfo=UTC),  # month end (30-day month)
]


def dst_afters(tzname: str) -> list[datetime]:
    out = []
    for t in transitions(tzname):
        out.append(t - timedelta(hours=26))  # the day before and the transition day
        out.append(t - timedelta(minutes=90) + timedelta(seconds=30, milliseconds=500))
        out.append(t - MINUTE)  # exact minute just before
        out.append(t)  # exactly the transition: strictly-after excludes it
        out.append(t + timedelta(minutes=30))  # inside a second pass after fall-back
    return out


PIN_ZONES = ["America/New_York", "Europe/Berlin", "Australia/Lord_Howe"]  # Lord Howe: 30-minute DST
# The DST rules, one pin each; conformance.rs checks that every one is pinned in New York and
# Berlin at least.
PINS = [
    "gap-fixed",  # a fixed-time job in a gap fires once, at the transition
    "gap-fixed-collapses",  # several fixed times in one gap: still one fire, at the transition
    "gap-star-hour",  # hour `*`: skips the missing times, no extra fire at the jump
    "gap-all-24-hours",  # an hour list of all 24 hours is not fixed: skips too
    "gap-star-minute",  # minute `*/15`, fixed hour: not fixed-time, skips
    "overlap-fixed",  # a fixed-time job fires once, in the first pass
    "overlap-fixed-second-pass",  # from inside the second pass: next day
    "overlap-star-minute-hour-range",  # `*/15 1-3 * * *`: both passes
    "overlap-star-hour",  # `0 * * * *`: both passes
    "overlap-all-24-hours",  # `0-23` and a list of all 24 hours: both passes
]


def pinned_cases(tzname: str) -> list[tuple[str, datetime, int, str]]:
    """Cases that pin each DST rule on the zone's first gap and first overlap of 2025 and 2026.

    The expressions are built from the zone's own transition: `m h` is the wall-clock time half
    way into the skipped or repeated range (02:30 in New York's gap, 01:30 in its overlap; 02:15
    and 01:45 for Lord Howe's 30-minute shifts).
    """
    tz = ZoneInfo(tzname)
    out = []
    all24 = ",".join(str(h) for h in range(24))
    seen_kinds: dict[tuple[int, bool], int] = {}
    for t in transitions(tzname, years=(2025, 2026)):
        before = (t - timedelta(seconds=1)).astimezone(tz).utcoffset()
        after = t.astimezone(tz).utcoffset()
        gap = after > before
        key = (t.year, gap)
        if key in seen_kinds:
            continue
        seen_kinds[key] = 1
        shift = abs(after - before)
        # The skipped range starts at T + old offset; the repeated one at T + new offset.
        start = (t + (before if gap else after)).replace(tzinfo=None)
        mid = start + shift / 2
        m, h = mid.minute, mid.hour
        if gap:
            a = t - timedelta(minutes=90) + timedelta(seconds=30, milliseconds=500)
            out += [
                (f"{m} {h} * * *", a, 4, "gap-fixed"),
                (f"{m} {h} * * *", t - MINUTE, 2, "gap-fixed"),
                (f"{start.minute},{m} {h} * * *", a, 4, "gap-fixed-collapses"),
                (f"{m} * * * *", a, 4, "gap-star-hour"),
                (f"{m} {all24} * * *", a, 4, "gap-all-24-hours"),
                (f"*/15 {h} * * *", a, 4, "gap-star-minute"),
            ]
        else:
            a = t - timedelta(minutes=90)
            out += [
                (f"{m} {h} * * *", a, 3, "overlap-fixed"),
                (f"{m} {h} * * *", t + shift / 4, 2, "overlap-fixed-second-pass"),
                ("*/15 1-3 * * *", t - timedelta(minutes=20), 8, "overlap-star-minute-hour-range"),
                ("0 * * * *", a, 4, "overlap-star-hour"),
                (f"{m} * * * *", a, 4, "overlap-star-hour"),
                (f"{m} 0-23 * * *", a, 4, "overlap-all-24-hours"),
                (f"{m} {all24} * * *", a, 4, "overlap-all-24-hours"),
            ]
    return out


def build_cases() -> list[tuple[str, str, datetime, int, str | None]]:
    cases: list[tuple[str, str, datetime, int, str | None]] = []
    index: dict[tuple[str, str, datetime], int] = {}

    def add(expr, tz, after, n=5, pin=None):
        key = (expr, tz, after)
        if key in index:
            if pin is not None:
                i = index[key]
                e, z, a, n0, _ = cases[i]
                cases[i] = (e, z, a, max(n0, n), pin)
            return
        index[key] = len(cases)
        cases.append((expr, tz, after, n, pin))

    # 1. DST-sensitive expressions around every transition of every DST zone, 2025-2027.
    #    Each transition has five `after`s (T-26h, T-90m+30.5s, T-1m, T, T+30m); the core
    #    gap/overlap expressions get two of them per transition (rotating), the others three
    #    spread over the zone's transitions.
    core = ["30 2 * * *", "30 1 * * *", "*/30 * * * *", "0 * * * *", "*/15 2 * * *", "0 2 * * *"]
    pairs = [(0, 3), (1, 2), (0, 4), (3, 4), (1, 3), (2, 4)]
    for zi, tz in enumerate(DST_ZONES):
        afters = dst_afters(tz)
        for ei, expr in enumerate(DST_EXPRS):
            if expr in core:
                for ti in range(len(afters) // 5):
                    for k in pairs[(ti + ei + zi) % len(pairs)]:
                        add(expr, tz, afters[ti * 5 + k])
            else:
                for j in range(3):
                    add(expr, tz, afters[(ei * 11 + zi * 3 + j * 7) % len(afters)])
    # 2. General expressions: each in every zone at one of the general `after`s (rotating), plus
    #    one DST-day `after` in the DST zones.
    for ei, expr in enumerate(GENERAL_EXPRS):
        for zi, tz in enumerate(ZONES):
            add(expr, tz, GENERAL_AFTERS[(ei * 3 + zi) % len(GENERAL_AFTERS)])
            if tz in DST_ZONES:
                afters = dst_afters(tz)
                add(expr, tz, afters[(ei * 7 + zi) % len(afters)])
    # 3. Leap-day expressions (sparse: three fire times each).
    for expr in SPARSE_EXPRS:
        for tz in ["UTC", "America/New_York", "Australia/Sydney", "Asia/Kolkata"]:
            for after in (GENERAL_AFTERS[2], GENERAL_AFTERS[5]):
                add(expr, tz, after, 3)
    # 4. One pin per DST rule (PINS) in each of PIN_ZONES.
    for tz in PIN_ZONES:
        for expr, after, n, pin in pinned_cases(tz):
            add(expr, tz, after, n, pin)
    return cases


def tzdata_version() -> str:
    for base in ZONEINFO_TZPATH:
        zi = Path(base) / "tzdata.zi"
        if zi.exists():
            first = zi.read_text().splitlines()[0]
            return f"{first.removeprefix('# version ').strip()} ({base})"
    return "unknown"


def main() -> int:
    out_cases = []
    disagreements = {name: 0 for name in REFERENCES}
    disagreements["all"] = 0
    pins_seen: dict[str, set[str]] = {}
    for i, (expr, tz, after, n, pin) in enumerate(build_cases()):
        brute = bruteforce(expr, tz, after, n)
        assert len(brute) == n, (expr, tz, after, brute)
        case = {
            "id": i + 1,
            "expr": expr,
            "tz": tz,
            "after": rfc3339(after),
            "expected": [rfc3339(t) for t in brute],
        }
        agree = []
        for name, ref in REFERENCES.items():
            got = ref(expr, tz, after, n)
            if got == brute:
                agree.append(name)
            else:
                disagreements[name] += 1
                case[name] = got if isinstance(got, str) else [rfc3339(t) for t in got]
        if not agree:
            disagreements["all"] += 1
        case["source"] = "+".join(agree) if agree else "bruteforce"
        if pin is not None:
            case["pin"] = pin
            pins_seen.setdefault(pin, set()).add(tz)
        out_cases.append(case)

    doc = {
        "about": (
            "Expected cron fire times for codeai-cron, computed by tests/gen_conformance.py with "
            "a brute-force reference of the crate's documented rules (Python zoneinfo), "
            "cross-checked with croniter and cronsim. The expected values are always the brute "
            "force's. 'source' names the references that agree with them ('croniter+cronsim', "
            "'croniter', 'cronsim'), or is 'bruteforce' when neither does; a reference that "
            "disagrees has its answer kept under its name. 'disagreements' counts the cases each "
            "reference disagrees on ('all': both). Regenerate: python3 cron/tests/gen_conformance.py"
        ),
        "generator": {
            "python": platform.python_version(),
            "croniter": version("croniter"),
            "cronsim": version("cronsim"),
            "tzdata": tzdata_version(),
        },
        "pins": PINS,
        "case_count": len(out_cases),
        "disagreements": disagreements,
        "cases": out_cases,
    }
    for pin in PINS:
        assert set(PIN_ZONES) <= pins_seen.get(pin, set()), (pin, pins_seen.get(pin))
    OUT.write_text(json.dumps(doc, indent=1) + "\n")
    by_tz: dict[str, int] = {}
    by_source: dict[str, int] = {}
    for c in out_cases:
        by_tz[c["tz"]] = by_tz.get(c["tz"], 0) + 1
        by_source[c["source"]] = by_source.get(c["source"], 0) + 1
    print(f"wrote {len(out_cases)} cases to {OUT}; disagreements with the brute force: {disagreements}")
    print("per source:", by_source)
    print("per zone:", by_tz)
    return 0


if __name__ == "__main__":
    sys.exit(main())
