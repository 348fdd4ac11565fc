"""`jointml bench scale`, per-party peak RSS (`bench.memory`) and `jointml bench anchors`."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from jointml.bench.anchors import SPU_SETUP, compare_spu
from jointml.bench.memory import PartyRssWatcher, simulate_rss
from jointml.bench.scale import fit_exponent, fit_exponents, sizes, write_chart
from jointml.core.errors import ResourceError
from jointml.runtime import simulate


def _synthetic_rows() -> list[dict]:
    rows = []
    for n in (1_000, 10_000, 100_000):
        rows.append({"figure": "scale", "curve": "quadratic", "rows": n, "seconds": 2e-9 * n**2, "bytes": 40 * n,
                     "plaintext_seconds": 1e-7 * n, "peak_rss_mb": {"alice": 100 + n / 1000, "bob": None}})
        rows.append({"figure": "scale", "curve": "nlogn", "rows": n, "seconds": 1e-6 * n * math.log(n), "bytes": 8 * n,
                     "plaintext_seconds": None, "peak_rss_mb": {"bank": None}})
    return rows


def test_fit_recovers_the_exponent_of_each_curve() -> None:
    fits = fit_exponents(_synthetic_rows())
    assert fits["quadratic"]["seconds"] == pytest.approx(2.0, abs=1e-3)
    assert fits["quadratic"]["bytes"] == pytest.approx(1.0, abs=1e-3)
    assert fits["quadratic"]["plaintext_seconds"] == pytest.approx(1.0, abs=1e-3)
    # n log n over 1e3..1e5 fits between 1 and 1.2; the RSS of the largest party (alice's) grows sublinearly
    assert 1.0 < fits["nlogn"]["seconds"] < 1.2
    assert 0 < fits["quadratic"]["peak_rss_mb"] < 1
    assert "peak_rss_mb" not in fits["nlogn"] and "plaintext_seconds" not in fits["nlogn"]  # no figure: no fit
    # least squares, not two-point: the slope of noisy data is its regression slope
    xs, ys = [1.0, 10.0, 100.0, 1000.0], [1.0, 12.0, 90.0, 1100.0]
    slope = np.polyfit(np.log(xs), np.log(ys), 1)[0]
    assert fit_exponent(xs, ys) == pytest.approx(slope, abs=1e-3)
    assert fit_exponent([5.0, 5.0], [1.0, 2.0]) is None  # one size: no slope


def test_chart_is_a_png_with_one_panel_per_metric(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    from matplotlib.image import imread

    path = write_chart(_synthetic_rows(), tmp_path / "sub" / "scale.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = imread(path)
    assert img.shape[1] > 2.5 * img.shape[0]  # three panels side by side: seconds, bytes, peak RSS


def test_sizes_are_log_spaced_and_capped() -> None:
    full = sizes("ss_lr")
    assert full[0] == 10_000 and full[-1] == 1_000_000
    ratios = [b / a for a, b in zip(full, full[1:])]
    assert all(3 <= r <= 3.4 for r in ratios)
    assert sizes("psi_kkrt", max_rows=50_000) == [10_000, 30_000]
    assert max(sizes("secureboost")) == 300_000
    assert max(max(sizes(c, quick=True)) for c in ("ss_lr", "psi_ecdh", "psi_kkrt", "secureboost")) < 10_000


def _hog(ctx, mb: dict) -> str:
    # a party allocating (and touching) `mb[party]` MB, then holding it briefly
    a = np.ones(int(mb.get(ctx.me, 0) * 2**20 / 8))
    time.sleep(0.4)
    return f"{ctx.me}:{a.size}"


def test_simulate_rss_reports_each_party_process_separately() -> None:
    res, rss = simulate_rss(_hog, ["alice", "bob"], mode="process", args=({"bob": 200},))
    assert res == {"alice": "alice:0", "bob": f"bob:{200 * 2**20 // 8}"}  # the results are simulate's, unchanged
    assert set(rss) == {"alice", "bob"}
    assert rss["bob"] - rss["alice"] > 150  # bob's 200 MB are his, not alice's
    assert rss["alice"] > 10
    # threads share one process: no per-party figure rather than a misleading one
    assert simulate_rss(_hog, ["alice", "bob"], mode="thread", args=({},))[1] == {"alice": None, "bob": None}


def test_watcher_reads_party_peaks_from_the_launcher() -> None:
    with PartyRssWatcher(["alice", "bob"], interval=0.05) as w:
        simulate(_hog, ["alice", "bob"], mode="process", args=({"alice": 200},))
    rss = w.peak_rss_mb()
    assert rss["alice"] - rss["bob"] > 150


def test_anchors_without_spu_say_how_to_set_it_up(monkeypatch) -> None:
    monkeypatch.setenv("JOINTML_SPU_PYTHON", "/nonexistent/spu-venv/bin/python")
    with pytest.raises(ResourceError) as e:
        next(compare_spu(("ops", "lr", "psi")))
    assert SPU_SETUP in str(e.value)
    env = {**os.environ, "JOINTML_SPU_PYTHON": "/nonexistent/spu-venv/bin/python"}
    out = subprocess.run([sys.executable, "-m", "jointml.cli.main", "bench", "anchors"], capture_output=True, text=True,
                         env=env, timeout=60)
    assert out.returncode != 0
    assert SPU_SETUP in out.stderr and out.stdout == ""  # no figure printed as if measured


@pytest.mark.slow
def test_bench_scale_quick_writes_rows_chart_and_exponents(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    out = subprocess.run([sys.executable, "-m", "jointml.cli.main", "bench", "scale", "--quick", "--json", "--out",
                          str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [json.loads(l) for l in out.stdout.splitlines() if l.startswith("{")]
    points = [l for l in lines if l["figure"] == "scale"]
    assert {p["curve"] for p in points} == {"ss_lr", "psi_ecdh", "psi_kkrt", "secureboost"}
    for p in points:
        assert p["seconds"] > 0 and p["bytes"] > 0 and p["plaintext_seconds"] is not None
        assert p["peak_rss_mb"] and all(v and v > 10 for v in p["peak_rss_mb"].values())
    assert all(p["detail"]["aligned"] for p in points if p["curve"].startswith("psi"))
    assert out.stderr.count("[bench scale]") == len(points)  # a progress line per point
    fit = lines[-1]
    assert fit["figure"] == "scale_fit"
    # bytes grow about linearly with rows for every curve, even at these tiny sizes
    assert all(0.6 < fit["exponents"][c]["bytes"] < 1.6 for c in fit["exponents"])
    assert (tmp_path / "scale.png").read_bytes()[:4] == b"\x89PNG"
    assert len((tmp_path / "scale.jsonl").read_text().splitlines()) == len(points) + 1
