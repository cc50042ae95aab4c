"""Provenance of tests/data/cdnow/validation.csv: `clv_validation` on CDNOW computed with the
Python `lifetimes` package (0.11.3), independently of cxmetrics' own code.

Calibration period: the first purchase (1997-01-01) to 1997-09-30; holdout: 1997-10-01 to
1998-06-30 (273 days = 39 weeks). `lifetimes.utils.calibration_and_holdout_data` with daily
periods gives each customer's calibration frequency (repeat purchase days), recency and T in
days (divided by 7 here: cxmetrics' `unit: week`), the holdout's purchase days
(`frequency_holdout`) and the mean amount of the holdout's orders (`monetary_value_holdout`).

"The same fit": the BG/NBD and Gamma-Gamma parameters are the ones cxmetrics fitted on the
calibration period (its `clv_model` rows `bgnbd_calibration` and `gamma_gamma_calibration`,
given below to 17 digits and asserted by the test as well); lifetimes then evaluates
`conditional_expected_number_of_purchases_up_to_time(39, ...)` and
`conditional_expected_average_profit` with them. lifetimes' own fit of the same data is
printed for comparison (it agrees to about 1e-5; its optimiser stops earlier).

Run: python3 tests/data/cdnow/make_validation.py > tests/data/cdnow/validation.csv
"""
import os
import sys

import pandas as pd
from lifetimes import BetaGeoFitter, GammaGammaFitter
from lifetimes.utils import calibration_and_holdout_data

HERE = os.path.dirname(os.path.abspath(__file__))
BGNBD = dict(r=0.24259351022232523, alpha=4.4135020428060745, a=0.7928876646441708, b=2.4258911150769285)
GAMMA_GAMMA = dict(p=6.249984078785851, q=3.744160628383029, v=15.442108934082352)

rows = []
with open(os.path.join(HERE, "CDNOW_sample.txt")) as f:
    for line in f:
        c, _, d, _, amount = line.split()
        rows.append((c, pd.Timestamp(d), float(amount)))
tx = pd.DataFrame(rows, columns=["customer_id", "date", "amount"])
data = calibration_and_holdout_data(
    tx, "customer_id", "date",
    calibration_period_end="1997-09-30", observation_period_end="1998-06-30",
    freq="D", monetary_value_col="amount",
)
x = data["frequency_cal"]
t_x = data["recency_cal"] / 7.0
big_t = data["T_cal"] / 7.0
duration = data["duration_holdout"].iloc[0] / 7.0
assert duration == 39.0

bgf = BetaGeoFitter()
bgf.params_ = pd.Series(BGNBD)
predicted = bgf.conditional_expected_number_of_purchases_up_to_time(duration, x, t_x, big_t)
ggf = GammaGammaFitter()
ggf.params_ = pd.Series(GAMMA_GAMMA)
spend_predicted = ggf.conditional_expected_average_profit(x, data["monetary_value_cal"])

own = BetaGeoFitter().fit(x, t_x, big_t)
print("lifetimes' own fit:", {k: float(v) for k, v in own.params_.items()}, file=sys.stderr)

frame = pd.DataFrame({
    "bucket": [str(int(v)) if v < 7 else "7+" for v in x],
    "predicted": predicted.values,
    "actual": data["frequency_holdout"].values,
    "error": (predicted - data["frequency_holdout"]).abs().values,
    "spend": (x > 0) & (data["frequency_holdout"] > 0),
    "spend_predicted": spend_predicted.values,
    "spend_actual": data["monetary_value_holdout"].values,
})
print("frequency_bucket,customers,predicted_purchases_mean,actual_purchases_mean,"
      "purchases_mae,spend_customers,predicted_spend_mean,actual_spend_mean")
order = ["0", "1", "2", "3", "4", "5", "6", "7+", "all"]
for b in order:
    g = frame if b == "all" else frame[frame["bucket"] == b]
    s = g[g["spend"]]
    text = lambda v: "" if v != v else repr(float(v))
    print(",".join([b, str(len(g))]
                   + [text(v) for v in (g["predicted"].mean(), g["actual"].mean(), g["error"].mean())]
                   + [str(len(s))]
                   + [text(v) for v in (s["spend_predicted"].mean(), s["spend_actual"].mean())]))
