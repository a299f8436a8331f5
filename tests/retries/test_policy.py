"""The one retry policy: when it tries again, how long it waits, when it gives up, in both adapters."""

import asyncio

import pytest

from retries.policy import Retry


class Refused(Exception):
    def __init__(self, retryable: bool = True, retry_after: float | None = None) -> None:
        super().__init__("refused")
        self.retryable = retryable
        self.retry_after = retry_after


def test_waits_double_up_to_the_ceiling() -> None:
    policy = Retry(base_s=0.5, max_s=4.0)
    assert [policy.wait(n, OSError()) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 4.0, 4.0]


def test_the_other_side_can_set_the_wait_but_not_forever() -> None:
    policy = Retry(base_s=0.5, max_s=4.0)
    assert policy.wait(1, Refused(retry_after=7.0)) == 7.0
    assert policy.wait(1, Refused(retry_after=1e6)) == 40.0
    assert policy.wait(3, Refused(retry_after=0.0)) == 0.0


def test_it_gives_up_on_what_it_does_not_retry() -> None:
    policy = Retry((OSError,), attempts=3)
    assert policy.wait(1, ValueError()) is None  # not a failure it retries
    assert policy.wait(1, Refused(retryable=False)) is None
    assert policy.wait(2, OSError()) is not None and policy.wait(3, OSError()) is None
    stopping = Retry(stop=lambda: True)
    assert stopping.wait(1, OSError()) is None


def test_bad_policies_are_refused() -> None:
    with pytest.raises(ValueError, match="base_s"):
        Retry(base_s=-1)
    with pytest.raises(ValueError, match="attempts"):
        Retry(attempts=0)


def flaky(failures: int) -> tuple[list[int], object]:
    calls: list[int] = []

    def run() -> str:
        calls.append(len(calls))
        if len(calls) <= failures:
            raise OSError(f"down ({len(calls)})")
        return "done"

    return calls, run


def test_sync_retries_until_it_succeeds_and_reports_each_failure() -> None:
    seen: list[tuple[int, str]] = []
    calls, run = flaky(3)
    policy = Retry((OSError,), base_s=0.0, on_failure=lambda n, exc: seen.append((n, str(exc))))
    assert policy.call(run) == "done"  # type: ignore[arg-type]
    assert len(calls) == 4 and seen == [(1, "down (1)"), (2, "down (2)"), (3, "down (3)")]


def test_async_gives_up_with_the_last_failure() -> None:
    calls, run = flaky(10)

    async def arun() -> object:
        return run()  # type: ignore[operator]

    with pytest.raises(OSError, match=r"down \(3\)"):
        asyncio.run(Retry((OSError,), base_s=0.0, attempts=3).acall(arun))
    assert len(calls) == 3


def test_a_failure_it_does_not_retry_goes_straight_through() -> None:
    seen: list[int] = []

    def run() -> None:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        Retry((OSError,), on_failure=lambda n, exc: seen.append(n)).call(run)
    assert seen == []  # not a retried failure: not counted as one
