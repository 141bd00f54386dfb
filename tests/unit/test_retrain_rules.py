from datetime import datetime, timedelta, timezone

import numpy as np

from batch.retrain_rules import check_readiness, deploy_decision

CUTOFF = datetime(2017, 9, 1, tzinfo=timezone.utc)


def millis(moments):
    return np.array([int(m.timestamp() * 1000) for m in moments])


def days_before(*days):
    return millis([CUTOFF - timedelta(days=d) for d in days])


def test_first_model_needs_only_the_total():
    times = days_before(*range(30, 330))  # 300 outcomes, none in the last week
    assert check_readiness(times, CUTOFF, None, 200, 100).ready
    result = check_readiness(times, CUTOFF, None, 1000, 100)
    assert not result.ready and result.reason.startswith("Insufficient total outcomes: 300 total")


def test_new_outcomes_are_recent_and_after_the_last_training_window():
    times = days_before(*([20] * 500 + [3] * 150))
    trained_until = CUTOFF - timedelta(days=10)
    ready = check_readiness(times, CUTOFF, trained_until, 600, 100)
    assert ready.ready and ready.new == 150
    assert ready.reason == ("Ready to retrain: 650 total outcomes, 150 new in the 7 days before "
                            "2017-09-01 00:00 UTC")
    again = check_readiness(times, CUTOFF, CUTOFF - timedelta(days=3), 600, 100)  # already trained on them
    assert not again.ready and again.new == 0
    assert again.reason.startswith("Insufficient new outcomes: 650 total outcomes, 0 new")


def test_force_overrides_both_thresholds():
    result = check_readiness(days_before(40), CUTOFF, CUTOFF, 1000, 100, force=True)
    assert result.ready and result.reason.startswith("Forced retrain (criteria overridden)")


def test_auc_tolerance():
    assert deploy_decision("conversion", {"auc": 0.851}, {"auc": 0.86})[0]
    deploy, why = deploy_decision("conversion", {"auc": 0.849}, {"auc": 0.86})
    assert not deploy and "0.8490 <= 0.8600 - 0.01" in why
    assert deploy_decision("conversion", {"auc": 0.7}, None) == (True, "no deployed model to compare with")


def test_rmse_tolerance():
    assert deploy_decision("adr", {"rmse": 10.09}, {"rmse": 10.0})[0]
    assert not deploy_decision("revpar", {"rmse": 10.2}, {"rmse": 10.0})[0]
