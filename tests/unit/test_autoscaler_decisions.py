"""The autoscaler's decision: bounds, immediate scale-up, hysteresis and a rate limit on the way down."""

from __future__ import annotations

import dask
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dask_kube.operator.autoscaler import group_target, recommend
from dask_kube.operator.settings import AutoscalerSettings, OperatorSettings

WAIT_COUNT = AutoscalerSettings().scale_down_wait


@pytest.mark.parametrize(("current", "target", "minimum", "maximum", "history", "expected"), [
    pytest.param(1, 4, 1, 10, (), (4, ()), id="up-at-once"),
    pytest.param(1, 40, 1, 10, (), (10, ()), id="up-to-the-maximum"),
    pytest.param(3, 3, 1, 10, (), (3, ()), id="steady"),
    pytest.param(0, 0, 2, 10, (), (2, ()), id="below-minimum-grows-to-it"),
    pytest.param(8, 8, 1, 5, (), (5, ()), id="above-maximum-shrinks-to-it-now"),
    pytest.param(8, 0, 1, 5, (0, 0), (5, ()), id="above-maximum-ignores-history"),
    pytest.param(4, 1, 1, 10, (), (4, (1,)), id="down-waits-1"),
    pytest.param(4, 1, 1, 10, (1,), (4, (1, 1)), id="down-waits-2"),
    pytest.param(4, 1, 1, 10, (1, 1), (3, (1, 1, 1)), id="down-after-wait-count-one-step"),
    pytest.param(3, 1, 1, 10, (1, 1, 1), (2, (1, 1, 1)), id="keeps-going-down-once-started"),
    pytest.param(20, 0, 0, 100, (0, 0), (15, (0, 0, 0)), id="a-quarter-at-most"),
    pytest.param(2, 0, 0, 100, (0, 0), (1, (0, 0, 0)), id="at-least-one"),
    pytest.param(10, 2, 0, 100, (9, 5), (9, (9, 5, 2)), id="to-the-highest-recent-target"),
    pytest.param(4, 4, 1, 10, (1, 1), (4, ()), id="a-busy-pass-resets-the-wait"),
    pytest.param(4, 9, 1, 10, (1, 1), (9, ()), id="a-burst-resets-and-grows"),
    pytest.param(4, 0, 3, 10, (3, 3), (3, (3, 3, 3)), id="down-to-the-minimum-only"),
    pytest.param(3, 0, 3, 10, (3, 3), (3, ()), id="at-the-minimum-stays"),
    pytest.param(5, 5, 5, 5, (), (5, ()), id="fixed-size"),
    pytest.param(5, 1, 1, 10, (1, 1, 1, 1), (4, (1, 1, 1)), id="history-is-bounded"),
])
def test_recommend(current: int, target: int, minimum: int, maximum: int, history: tuple[int, ...],
                   expected: tuple[int, tuple[int, ...]]) -> None:
    assert recommend(current, target, minimum, maximum, history) == expected


bounds = st.tuples(st.integers(0, 20), st.integers(0, 20)).map(sorted)


@given(bounds=bounds, start=st.integers(0, 40), targets=st.lists(st.integers(0, 60), min_size=1, max_size=40))
def test_recommend_invariants(bounds: list[int], start: int, targets: list[int]) -> None:
    """Simulated passes: within bounds (once inside), scale-down only after WAIT_COUNT lower targets, and by
    at most a quarter (at least one) of the group; scale-up straight to the clamped target."""
    minimum, maximum = bounds
    current, history = start, ()
    lower_streak = 0
    for target in targets:
        wanted = min(maximum, max(minimum, target))
        lower_streak = lower_streak + 1 if wanted < current else 0
        replicas, history = recommend(current, target, minimum, maximum, history)
        assert minimum <= replicas <= maximum
        if current > maximum:
            assert replicas == maximum
            lower_streak = 0
        elif wanted >= current:
            assert replicas == wanted
        else:
            assert replicas >= wanted
            if lower_streak < WAIT_COUNT:
                assert replicas == current
            else:
                assert current - replicas <= max(1, int(current * 0.25))
        current = replicas


@given(bounds=bounds, start=st.integers(0, 40), target=st.integers(0, 60))
def test_a_steady_target_is_reached(bounds: list[int], start: int, target: int) -> None:
    minimum, maximum = bounds
    current, history = start, ()
    for _ in range(WAIT_COUNT + 40):
        current, history = recommend(current, target, minimum, maximum, history)
    assert current == min(maximum, max(minimum, target))


def test_the_policy_comes_from_settings() -> None:
    """A longer wait and a larger step, as `kubernetes.operator.autoscaler.*` would set them."""
    policy = AutoscalerSettings(scale_down_wait=1, max_scale_down_fraction=0.5)
    assert recommend(20, 0, 0, 100, (), policy) == (10, (0,))
    policy = AutoscalerSettings(scale_down_wait=5)
    assert recommend(4, 1, 1, 10, (1, 1, 1), policy) == (4, (1, 1, 1, 1))


def test_settings_read_the_config() -> None:
    with dask.config.set({"kubernetes.operator.autoscaler.scale-down-wait": 7,
                          "kubernetes.operator.autoscaler.interval-seconds": 1.5}):
        settings = OperatorSettings.from_config()
    assert settings.autoscaler == AutoscalerSettings(interval_seconds=1.5, scale_down_wait=7)


@pytest.mark.parametrize(("target", "workers", "group", "expected"), [
    (5, [], "c-default", 5),
    (5, ["c-default-worker-0a1b2c3d4e", "c-default-worker-ffffffffff"], "c-default", 5),
    (5, ["c-gpu-worker-0a1b2c3d4e", "c-default-worker-ffffffffff"], "c-default", 4),
    (5, ["c-gpu-worker-0a1b2c3d4e", "c-gpu-worker-1a1b2c3d4e"], "c-default", 3),
    (1, ["c-gpu-worker-0a1b2c3d4e", "c-gpu-worker-1a1b2c3d4e"], "c-default", 0),
    (4, ["c-default-worker-0a1b2c3d4e", "tcp://10.0.0.9:4000"], "c-gpu", 2),
])
def test_group_target_leaves_other_groups_workers_out(target: int, workers: list[str], group: str,
                                                      expected: int) -> None:
    assert group_target(target, workers, group) == expected
