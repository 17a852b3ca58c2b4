"""The ``fit`` filter: accepting, GPU type offered on the market, free capacity left in the call."""

from __future__ import annotations

from federation_builders import a_cluster, a_job, a_snapshot, cand, ctx

from hyperion.core.federation.plugins.fit import Fit


def test_fit_checks_capacity_type_market_and_accepting() -> None:
    c = a_cluster(free={"H100": 4, "A100": 8}, od={"H100": 2.0, "A100": 1.0}, spot={"H100": 0.8})
    snap = a_snapshot([c])
    f, x = Fit(), ctx(snap)
    assert f.filter(a_job(gpus=4), cand(a_job(gpus=4), c, snapshot=snap), x) is None
    assert f.filter(a_job(gpus=5), cand(a_job(gpus=5), c, snapshot=snap), x) == "4 H100 GPU(s) free, the job needs 5"
    assert f.filter(a_job(), cand(a_job(), c, "A100", spot=True, snapshot=snap), x) == "A100 not offered on spot"
    assert f.filter(a_job(), cand(a_job(), c, "T4", snapshot=snap), x) == "T4 not offered on demand"
    closed = a_cluster(accepting=False)
    assert f.filter(a_job(), cand(a_job(), closed), ctx(a_snapshot([closed]))) == "not accepting work"


def test_fit_reads_what_earlier_placements_left() -> None:
    c = a_cluster(free={"H100": 8})
    x = ctx(a_snapshot([c]))
    x.free[("c1", "H100")] = 2
    assert Fit().filter(a_job(gpus=3), cand(a_job(gpus=3), c), x) == "2 H100 GPU(s) free, the job needs 3"


def test_a_queueing_member_takes_a_job_beyond_its_free_gpus_up_to_what_is_installed() -> None:
    onprem = a_cluster(free={"H100": 0}, queues=True, capacity_gpus={"H100": 8})
    x = ctx(a_snapshot([onprem]))
    assert Fit().filter(a_job(gpus=8), cand(a_job(gpus=8), onprem), x) is None  # it waits in the queue
    assert Fit().filter(a_job(gpus=9), cand(a_job(gpus=9), onprem), x) == "0 H100 GPU(s) free, the job needs 9"
    not_queueing = a_cluster(free={"H100": 0}, capacity_gpus={"H100": 8})
    assert Fit().filter(a_job(), cand(a_job(), not_queueing), ctx(a_snapshot([not_queueing]))) is not None
