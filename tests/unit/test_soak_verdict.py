"""bench.soak's verdict: a figure past the first window is flat when it grows at most
15 % or by less than its kind's noise floor; steady growth beyond that is not."""

from bench.soak import FLAT, flat, growth


def _day(day: int, db: int, etcd: int, state_mb: float, jobs: int = 300) -> dict:
    return {
        "day": day, "db_bytes": db, "etcd_bytes": etcd, "rss_mb": {"state": state_mb},
        "live_jobs": jobs, "events_kept": 1500,
    }  # fmt: skip


def test_steady_figures_are_flat_and_growth_past_the_floor_is_not() -> None:
    steady = [_day(1, 4_000_000, 50_000, 110), _day(2, 4_800_000, 60_000, 114), _day(3, 5_600_000, 62_000, 116)]
    assert growth(steady)["db_bytes"] > FLAT  # by 0.8 MB: SQLite grows its file by pages
    assert all(flat(name, steady) for name in growth(steady))
    etcd_creeping = [*steady[:2], _day(3, 4_800_000, 130_000, 114)]  # etcd gets no allowance
    assert not flat("etcd_bytes", etcd_creeping)
    leaking = [*steady[:2], _day(3, 9_000_000, 60_000, 114)]  # the database grew by 4 MB in a window
    assert not flat("db_bytes", leaking)
    swelling = [*steady[:2], _day(3, 4_800_000, 60_000, 150)]
    assert not flat("rss_mb.state", swelling) and flat("rss_mb.state", steady)
    piling = [*steady[:2], _day(3, 4_800_000, 60_000, 114, jobs=400)]  # jobs no longer cleaned up
    assert not flat("live_jobs", piling)
