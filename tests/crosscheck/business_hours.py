"""Independent implementation of support_kpis' business-hours columns (docs/metrics/support_kpis.md):
each ticket's business time computed in Python with zoneinfo, day by day, from the job's
schedule; aggregated in DuckDB; compared with what cxmetrics wrote. Usage:

    python3 tests/crosscheck/business_hours.py TICKETS OUTPUT AS_OF TIMEZONE PERIOD CONFIG.json

CONFIG.json: {"hours": <the business_hours mapping>, "sla": {channel: seconds, "default": s}}.
"""
import datetime
import json
import sys
from zoneinfo import ZoneInfo

from common import clean_tickets, compare, connect, local_date

UTC = datetime.timezone.utc
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=UTC)
DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def micros(dt):
    return (dt - EPOCH) // datetime.timedelta(microseconds=1)


def instant(tz, day, seconds):
    """A local day and time as UTC microseconds: a time in a DST gap is the first instant after
    the gap, a time that happens twice the earlier one (fold=0)."""
    wanted = datetime.datetime.combine(day, datetime.time()) + datetime.timedelta(seconds=seconds)
    for minute in range(0, 24 * 60):
        local = wanted + datetime.timedelta(minutes=minute)
        utc = local.replace(tzinfo=tz, fold=0).astimezone(UTC)
        if utc.astimezone(tz).replace(tzinfo=None) == local:
            return micros(utc)
    raise ValueError("no valid local time")


def calendars(hours):
    def parse(c):
        week = {}
        for day, intervals in c["schedule"].items():
            for text in intervals:
                a, b = text.split("-")
                sa = int(a[:2]) * 3600 + int(a[3:]) * 60
                sb = int(b[:2]) * 3600 + int(b[3:]) * 60
                week.setdefault(DAYS.index(day), []).append((sa, sb if sb > sa else sb + 86400))
        return ZoneInfo(c["timezone"]), week, {datetime.date.fromisoformat(h) for h in c.get("holidays", [])}

    default = parse(hours)
    per_channel = {}
    for name, over in hours.get("channels", {}).items():
        per_channel[name] = parse({k: over.get(k, hours.get(k)) for k in ("timezone", "schedule", "holidays")})
    return default, per_channel


def business(cal, a, b):
    """Business microseconds in [a, b]: the union of the schedule's intervals clipped to it."""
    tz, week, holidays = cal
    first = datetime.datetime.fromtimestamp(a / 1e6, UTC).astimezone(tz).date() - datetime.timedelta(days=2)
    last = datetime.datetime.fromtimestamp(b / 1e6, UTC).astimezone(tz).date() + datetime.timedelta(days=1)
    spans = []
    day = first
    while day <= last:
        if day not in holidays:
            for sa, sb in week.get(day.weekday(), []):
                s = instant(tz, day, sa)
                e = instant(tz, day + datetime.timedelta(days=sb // 86400), sb % 86400)
                s, e = max(s, a), min(e, b)
                if e > s:
                    spans.append((s, e))
        day += datetime.timedelta(days=1)
    spans.sort()
    total, end = 0, None
    for s, e in spans:
        if end is not None and s <= end:
            if e > end:
                total += e - end
                end = e
        else:
            total += e - s
            end = e
    return total


def main():
    tickets, output, as_of, tz, period, config = sys.argv[1:]
    config = json.load(open(config))
    default, per_channel = calendars(config["hours"])
    targets = {k: int(v * 1_000_000) for k, v in config["sla"].items()}
    con = connect(tz)
    clean_tickets(con, tickets, as_of, tz)
    rows = con.execute("""
        SELECT ticket_id, channel, epoch_us(created_at::TIMESTAMPTZ), epoch_us(first_response_at),
               epoch_us(resolved_at), coalesce(abandoned, false)
        FROM tickets""").fetchall()
    per_ticket = []
    for tid, channel, created, responded, resolved, abandoned in rows:
        cal = per_channel.get(channel, default)
        frt = business(cal, created, responded) if responded is not None else None
        res = business(cal, created, resolved) if resolved is not None else None
        met = None if frt is None else frt <= targets.get(channel, targets["default"])
        per_ticket.append((tid, None if frt is None or abandoned else frt / 1e6,
                           None if res is None else res / 1e6, met))
    con.execute("CREATE TABLE b (ticket_id VARCHAR, frtb DOUBLE, resb DOUBLE, met BOOLEAN)")
    con.executemany("INSERT INTO b VALUES (?, ?, ?, ?)", per_ticket)
    dims = [("'all'", "'all'"), ("'channel'", "channel")]
    parts = [f"""
        SELECT date_trunc('{period}', {local_date('created_at', tz)})::DATE AS period, {n}, {v},
            avg(frtb), quantile_cont(frtb, 0.5), quantile_cont(frtb, 0.9),
            avg(resb), quantile_cont(resb, 0.5), quantile_cont(resb, 0.9),
            count(*) FILTER (WHERE met), count(met),
            coalesce(sum(frtb), 0), coalesce(sum(resb), 0), count(frtb)
        FROM tickets JOIN b USING (ticket_id) GROUP BY ALL""" for n, v in dims]
    expected = {}
    for r in con.execute(" UNION ALL ".join(parts)).fetchall():
        met, responded = r[9], r[10]
        expected[tuple(r[:3])] = tuple(r[3:9]) + (None if responded == 0 else met / responded,
                                                  float(r[11]), float(r[12]), r[13], met, responded)
    cols = ["first_response_business_mean_s", "first_response_business_median_s", "first_response_business_p90_s",
            "resolution_business_mean_s", "resolution_business_median_s", "resolution_business_p90_s",
            "sla_first_response_rate", "first_response_business_total_s", "resolution_business_total_s",
            "first_responses", "sla_met", "responded"]
    got = con.execute(f"SELECT period, dimension, dimension_value, {', '.join(cols)} FROM read_parquet('{output}')").fetchall()
    compare("support_kpis (business hours)", got, expected, cols, 3)


if __name__ == "__main__":
    main()
