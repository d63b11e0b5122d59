"""Cron schedules and the CronJob controller's decisions, without a server."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from localkube.controllers import cron
from localkube.controllers.cronjobs import job_from_template, plan_cronjob

UTC = dt.UTC


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(("schedule", "after", "expected"), [
    ("* * * * *", "2025-01-03 10:30:30", "2025-01-03 10:31:00"),
    ("* * * * *", "2025-01-03 10:30:00", "2025-01-03 10:31:00"),
    ("*/15 9-17 * * MON-FRI", "2025-01-03 16:50:00", "2025-01-03 17:00:00"),  # a Friday
    ("*/15 9-17 * * MON-FRI", "2025-01-03 17:45:00", "2025-01-06 09:00:00"),  # ... to Monday
    ("0 3 * * *", "2025-01-03 03:00:00", "2025-01-04 03:00:00"),
    ("30 2 1 jan,jul *", "2025-01-03 00:00:00", "2025-07-01 02:30:00"),
    ("5/20 * * * *", "2025-01-03 10:30:00", "2025-01-03 10:45:00"),
    ("0 0 13 * 5", "2025-01-01 00:00:00", "2025-01-03 00:00:00"),  # day of month OR day of week
    ("0 0 13 * *", "2025-01-01 00:00:00", "2025-01-13 00:00:00"),
    ("0 0 * * 7", "2025-01-01 00:00:00", "2025-01-05 00:00:00"),  # 7 is Sunday too
    ("0 0 29 2 *", "2025-01-01 00:00:00", "2028-02-29 00:00:00"),
    ("@hourly", "2025-01-03 10:30:00", "2025-01-03 11:00:00"),
    ("@weekly", "2025-01-03 10:30:00", "2025-01-05 00:00:00"),
    ("@monthly", "2025-01-03 10:30:00", "2025-02-01 00:00:00"),
    ("0 0 30 2 *", "2025-01-01 00:00:00", None),
])
def test_next_firing(schedule: str, after: str, expected: str | None) -> None:
    nxt = cron.parse(schedule).next_after(at(after))
    assert nxt == (at(expected) if expected else None)


@pytest.mark.parametrize("schedule", ["* * * *", "60 * * * *", "* 24 * * *", "*/0 * * * *", "5-1 * * * *",
                                      "* * * FOO *", "0 0 0 * *", "@every 5m"])
def test_invalid_schedules(schedule: str) -> None:
    with pytest.raises(cron.CronError):
        cron.parse(schedule)


def test_last_firing_until_now_and_how_many_were_missed() -> None:
    every = cron.parse("* * * * *")
    assert every.last_until(at("2025-01-03 10:27:00"), at("2025-01-03 10:30:30")) == (at("2025-01-03 10:30:00"), 3)
    assert every.last_until(at("2025-01-01 00:00:00"), at("2025-01-03 10:30:30")) == (at("2025-01-03 10:30:00"), 101)
    assert every.last_until(at("2025-01-03 10:30:00"), at("2025-01-03 10:30:59")) == (None, 0)
    weekly = cron.parse("@weekly")
    assert weekly.last_until(at("2024-01-01 00:00:00"), at("2025-01-03 10:30:30")) == (at("2024-12-29 00:00:00"), 52)


def cronjob(status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    base = {"schedule": "*/5 * * * *", "concurrencyPolicy": "Allow", "suspend": False,
            "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1,
            "jobTemplate": {"metadata": {"labels": {"team": "a"}}, "spec": {"template": {"spec": {}}}}}
    base.update(spec)
    return {"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "tick", "namespace": "ns", "uid": "cj-uid",
                         "creationTimestamp": "2025-01-03T10:00:00Z"},
            "spec": base, "status": status or {}}


def job(name: str, state: str = "", started: str = "2025-01-03T10:00:00Z") -> dict[str, Any]:
    status: dict[str, Any] = {"startTime": started}
    if state:
        status["conditions"] = [{"type": state, "status": "True", "lastTransitionTime": started}]
        if state == "Complete":
            status["completionTime"] = started
    return {"metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", "resourceVersion": "1",
                         "creationTimestamp": started}, "status": status}


NOW = at("2025-01-03 10:12:30")


def test_the_most_recent_missed_time_starts_one_job() -> None:
    plan = plan_cronjob(cronjob(), [], NOW)
    assert plan.create == at("2025-01-03 10:10:00")
    assert plan.status == {"lastScheduleTime": "2025-01-03T10:10:00Z"}
    assert plan.recheck_in == pytest.approx(150)
    made = job_from_template(cronjob(), plan.create)
    assert made["metadata"]["name"] == f"tick-{int(plan.create.timestamp()) // 60}"
    assert made["metadata"]["annotations"] == {"batch.kubernetes.io/cronjob-scheduled-timestamp":
                                               "2025-01-03T10:10:00Z"}
    assert made["metadata"]["labels"] == {"team": "a"}
    assert made["metadata"]["ownerReferences"][0]["kind"] == "CronJob"


def test_a_time_already_started_is_not_started_again() -> None:
    name = job_from_template(cronjob(), at("2025-01-03 10:10:00"))["metadata"]["name"]
    plan = plan_cronjob(cronjob({"lastScheduleTime": "2025-01-03T10:05:00Z"}), [job(name)], NOW)
    assert plan.create is None
    assert plan.status["active"][0]["name"] == name


@pytest.mark.parametrize(("spec", "expected"), [
    ({"concurrencyPolicy": "Forbid"}, (None, [])),
    ({"concurrencyPolicy": "Replace"}, (at("2025-01-03 10:10:00"), ["tick-old"])),
    ({"concurrencyPolicy": "Allow"}, (at("2025-01-03 10:10:00"), [])),
    ({"suspend": True}, (None, [])),
    ({"startingDeadlineSeconds": 60}, (None, [])),
    ({"startingDeadlineSeconds": 200}, (at("2025-01-03 10:10:00"), [])),
    ({"timeZone": "Asia/Kolkata", "schedule": "40 15 * * *"}, (at("2025-01-03 10:10:00"), [])),  # 15:40 IST
    ({"timeZone": "Nowhere/Else"}, (None, [])),
])
def test_concurrency_deadline_suspend_and_time_zone(spec: dict[str, Any], expected: tuple[Any, list[str]]) -> None:
    plan = plan_cronjob(cronjob({"lastScheduleTime": "2025-01-03T10:05:00Z"}, **spec), [job("tick-old")], NOW)
    assert (plan.create, plan.delete) == expected


def test_history_limits_and_last_success() -> None:
    jobs = [job(f"ok{i}", "Complete", f"2025-01-03T10:0{i}:00Z") for i in range(5)]
    jobs += [job("bad0", "Failed", "2025-01-03T10:01:00Z"), job("bad1", "Failed", "2025-01-03T10:02:00Z")]
    plan = plan_cronjob(cronjob({"lastScheduleTime": "2025-01-03T10:10:00Z",
                                 "active": [{"uid": "uid-ok4", "name": "ok4"}]}), jobs, NOW)
    assert plan.delete == ["ok0", "ok1", "bad0"]
    assert plan.status == {"lastScheduleTime": "2025-01-03T10:10:00Z", "lastSuccessfulTime": "2025-01-03T10:04:00Z"}
    assert plan.events == [("SawCompletedJob", "Saw completed job: ok4, condition: Complete", False)]
