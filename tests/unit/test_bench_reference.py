"""The pure parts of benchmarks/reference.py: statistics, overhead ratio, goals, Markdown.
No engine: the benchmark itself needs a real Mistral."""

import importlib
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def br():
    return importlib.import_module("benchmarks.reference")


def row(br, topology, mode, e2e, det=(), lost=0, dup=0, execs=(100.0,), outside=(), launches=()):
    r = br.new_row(type("A", (), {"n": 3, "x": 2, "m": len(e2e)})(), topology, mode)
    r["lost"], r["duplicated"] = lost, dup
    if mode != "engine":
        r.update(
            engine_requests_per_execution=4.5,
            engine_requests_besides_submit=2.0,
            tracker_cpu_s=0.12,
        )
    return br.finish_row(r, list(execs), list(e2e), list(det), list(outside), list(launches))


def test_stats(br):
    s = br.stats([3.0, 1.0, 2.0, None])
    assert s == {"n": 3, "min": 1.0, "avg": 2.0, "max": 3.0, "p50": 2.0, "p99": 3.0}
    assert br.stats([])["n"] == 0 and br.stats([])["avg"] is None
    hundred = br.stats(range(1, 101))
    assert (hundred["p50"], hundred["p99"], hundred["avg"]) == (51, 100, 50.5)


def test_overhead(br):
    assert br.overhead(101.0, 100.0) == (1.01, 1.0)
    assert br.overhead(90.0, 100.0) == (0.9, -10.0)
    assert br.overhead(None, 100.0) == (None, None)
    assert br.overhead(100.0, 0) == (None, None)
    # net: the time outside the engine's execution, bridge minus engine, over the engine's e2e
    assert br.net_overhead_pct(250.0, 200.0, 1000.0) == 5.0
    assert br.net_overhead_pct(None, 200.0, 1000.0) is None


def test_rows_overheads_and_goals(br):
    rows = [
        row(br, "sequence", "engine", [1000.0, 1000.0], outside=[200.0, 200.0]),
        row(br, "sequence", "callback", [1005.0, 1005.0], det=[10.0, 30.0], outside=[230.0, 210.0]),
        row(br, "sequence", "poll", [5000.0, 5000.0], det=[4000.0, 4500.0], dup=1),
    ]
    assert rows[1]["per_task_ms"]["avg"] == pytest.approx(100.0 / 3, abs=0.01)
    br.add_overheads(rows)
    assert rows[1]["overhead_ratio"] == 1.005 and rows[1]["overhead_pct"] == 0.5
    assert rows[1]["net_overhead_pct"] == 2.0 and rows[2]["net_overhead_pct"] is None
    assert rows[2]["overhead_pct"] == 400.0
    assert "overhead_ratio" not in rows[0]
    g = {name: (value, verdict) for name, value, _, verdict in br.goals(rows)}
    assert g["callback detection p50 ms (all topologies)"] == (30.0, "MISS")  # nearest rank of 2
    assert g["callback detection p99 ms (all topologies)"] == (30.0, "PASS")
    assert g["callback overhead % (worst topology)"] == (0.5, "PASS")
    assert g["callback overhead % (sum of topology averages)"] == (0.5, "PASS")
    assert g["callback net overhead % (worst topology; engine run time taken out)"] == (2.0, "MISS")
    assert g["callback net overhead % (sum over topologies; engine run time taken out)"] == (
        2.0,
        "MISS",
    )
    assert g["poll: lost / duplicated completions"] == ("0 / 1", "MISS")
    assert g["callback: lost / duplicated completions"] == ("0 / 0", "PASS")


def test_goals_without_callback_runs(br):
    g = {name: verdict for name, _, _, verdict in br.goals([row(br, "parallel", "engine", [5.0])])}
    assert g["callback detection p50 ms (all topologies)"] == "n/a"
    assert g["callback overhead % (worst topology)"] == "n/a"
    assert g["callback net overhead % (sum over topologies; engine run time taken out)"] == "n/a"


def test_render_markdown(br):
    rows = br.add_overheads(
        [
            row(br, "with_items", "engine", [200.0], outside=[100.0]),
            row(
                br,
                "with_items",
                "hybrid",
                [210.0],
                det=[12.5],
                execs=[150.0, 250.0],
                outside=[110.0],
                launches=[96.0],
            ),
        ]
    )
    res = {
        "rows": rows,
        "scale": {
            "executions": 2000,
            "argv": ["--executions", "2000", "--json-out", "/t/x"],
            "load_start": 1.6,
            "load_end": 0.8,
            "figures": {"polls/s": (399.5, "PASS"), "CPU ms": (0.1156, "PASS")},
        },
    }
    md = br.render_markdown(res)
    lines = md.splitlines()
    assert lines[0].startswith("| topology | tasks | mode |")
    assert "| with_items | 1 | engine | 100 / 100 / 100 |" in md
    hybrid = next(line for line in lines if "| hybrid |" in line)
    assert "150 / 200 / 250" in hybrid and "12.5 / 12.5 / 12.5" in hybrid
    assert "| 210 | 110 (96 + 14) | ×1.050 (+5.0%) | 4.5 (2.0) | 0.12 | 0 / 0 |" in hybrid
    assert "| with_items | 1 | engine | 100 / 100 / 100 | 100.0 | – | 200 | 100 | – |" in md
    assert "| callback detection p50 ms (all topologies) | – | <= 20 | n/a |" in md
    assert "| polls/s | 399.5 | PASS |" in md and "| CPU ms | 0.116 | PASS |" in md
    assert (
        "(`python -m benchmarks.tracker --executions 2000`; "
        "load average 1.6 at its start, 0.8 at its end)" in md
    )
    # every table row has as many cells as its header
    for table in md.split("\n\n"):
        rows_ = [line for line in table.splitlines() if line.startswith("|")]
        assert len({line.count("|") for line in rows_}) <= 1, table


def test_scale_figures(br):
    sres = {
        "results": [
            {
                "measure": {"checks_per_s": 400.0, "lateness_ms": {"p99": 300.0}},
                "verdicts": {"checks/s": "PASS"},
                "idle": {"cpu_pct": 0.1},
                "first_round_s": 4.5,
            }
        ]
    }
    f = br.scale_figures(sres)
    assert f["checks/s"] == (400.0, "PASS") and f["lateness p99 ms"] == (300.0, "")
    assert f["idle CPU % (N tracked, none due)"] == (0.1, "")
    assert f["first round after the burst, s"] == (4.5, "")


def test_charts_skipped_without_matplotlib(br, monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails
    assert br.charts({"rows": [row(br, "sequence", "engine", [5.0])]}, tmp_path / "c") == []
    assert "charts skipped: matplotlib is not installed" in capsys.readouterr().out
    assert not (tmp_path / "c").exists()


def test_charts_written(br, tmp_path):
    pytest.importorskip("matplotlib")
    rows = br.add_overheads(
        [
            row(br, "sequence", "engine", [500.0]),
            row(br, "sequence", "callback", [510.0], det=[15.0]),
            row(br, "parallel", "poll", [5000.0], det=[4900.0]),
        ]
    )
    written = br.charts({"rows": rows}, tmp_path)
    assert [Path(p).name for p in written] == ["reference-detection.png", "reference-e2e.png"]
    assert all(Path(p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in written)


def test_goals_of_callback_with_workflow_events_only(br):
    rows = br.add_overheads(
        [
            row(br, "sequence", "engine", [1000.0], outside=[200.0]),
            row(br, "sequence", "callback", [1030.0], det=[20.0], outside=[230.0]),
            row(br, "sequence", "callback-wf", [1004.0], det=[20.0], outside=[204.0]),
        ]
    )
    g = {name: (value, verdict) for name, value, _, verdict in br.goals(rows)}
    assert g["callback net overhead % (sum over topologies; engine run time taken out)"] == (
        3.0,
        "MISS",
    )
    assert g["callback-wf net overhead % (sum over topologies; engine run time taken out)"] == (
        0.4,
        "PASS",
    )
    assert g["callback-wf overhead % (worst topology)"] == (0.4, "PASS")
    assert g["callback-wf: lost / duplicated completions"] == ("0 / 0", "PASS")
