"""Reference values of the BG/NBD conditional expectation and P(alive), computed with mpmath
at 40 significant digits from the textbook formulas (Fader, Hardie & Lee 2005, eq. 10 and the
P(alive) of their note), independently of cxmetrics' own (transformed) evaluation.

    python3 tests/data/bgnbd/make_grid.py > tests/data/bgnbd/grid.csv

Columns: unit_days, r, alpha, a, b, x, t_x, T (model units), tau (model units), expected, p_alive.
"""
import sys

import mpmath as mp

mp.mp.dps = 40

PARAMS = [
    # (unit in days, r, alpha, a, b)
    (1, "0.300356", "15.205823", "1.197986", "5.747159"),  # the heavy buyers' fit (day unit)
    (7, "0.2426", "4.414", "0.7929", "2.426"),  # CDNOW, published (week unit)
    (1, "1.5", "30", "1.000000001", "3"),  # a within 1e-9 of 1
    (7, "2", "5", "20", "40"),  # large a and b
    (1, "0.01", "100", "0.5", "0.8"),  # small r, a < 1
    (7, "0.8", "0.05", "0.3", "0.2"),  # tiny alpha: z close to 1 for new customers
]
XS = [0, 1, 2, 10, 100, 1000, 2579, 10000]
TS = [0, 1, 30, 365, 1000, 2586, 3650]  # days
MONTHS = [1, 12, 36, 60]
MONTH_DAYS = mp.mpf("365.25") / 12


def expected(r, alpha, a, b, x, tx, T, t):
    z = t / (alpha + T + t)
    head = (a + b + x - 1) / (a - 1)
    tail = ((alpha + T) / (alpha + T + t)) ** (r + x) * mp.hyp2f1(r + x, b + x, a + b + x - 1, z)
    odds = a / (b + x - 1) * ((alpha + T) / (alpha + tx)) ** (r + x) if x > 0 else 0
    return head * (1 - tail) / (1 + odds), 1 / (1 + odds)


def main():
    out = sys.stdout
    out.write("unit_days,r,alpha,a,b,x,t_x,T,tau,expected,p_alive\n")
    for unit, r, alpha, a, b in PARAMS:
        r, alpha, a, b = map(mp.mpf, (r, alpha, a, b))
        for T_days in TS:
            for x in XS:
                if x > T_days:
                    continue
                # The last purchase on the last day, or halfway (at least x days after the first).
                txs = sorted({T_days, max(x, T_days // 2)}) if x > 0 else [0]
                for tx_days in txs:
                    for months in MONTHS:
                        T = mp.mpf(T_days) / unit
                        tx = mp.mpf(tx_days) / unit
                        tau = months * MONTH_DAYS / unit
                        e, p = expected(r, alpha, a, b, mp.mpf(x), tx, T, tau)
                        out.write(",".join([
                            str(unit), mp.nstr(r, 17), mp.nstr(alpha, 17), mp.nstr(a, 17), mp.nstr(b, 17),
                            str(x), repr(float(tx)), repr(float(T)), repr(float(tau)),
                            mp.nstr(e, 20), mp.nstr(p, 20),
                        ]) + "\n")


if __name__ == "__main__":
    main()
