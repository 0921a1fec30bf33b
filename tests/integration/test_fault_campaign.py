"""The fault campaign (tests/faults/campaign.py --small) as a test: 40 real workflows on a
private Mistral through 2 trackers in hybrid mode while trackers are killed (-9) and SIGTERMed,
the engine API and the callback listener are unreachable, RabbitMQ is restarted (this
machine's broker: every Mistral here sees it for 15 s), the SQLite store is locked, and a
misbehaving client sends duplicated, delayed, reordered and forged callbacks; then the MongoDB
stage (tests/faults/mongo_stage.py): 16 more workflows while the trackers' MongoDB store refuses
connections twice for 7 s (mongomock behind a fault hook, or ST2BRIDGE_TEST_MONGO_URL's server
behind a relay). Nothing may be lost, wrong or completed twice; callbacks that find the store
down get 503, never 500. About 2 min on an idle machine (the campaign starts its own Mistral,
so it does not use the session's `mistral` fixture)."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_small_fault_campaign_loses_nothing(tmp_path):
    out = tmp_path / "campaign.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.faults.campaign",
            "--small",
            "--json-out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=420,
        cwd=str(ROOT),
    )
    report = proc.stdout[-6000:] + proc.stderr[-3000:]
    assert proc.returncode == 0, report
    figures = dict(
        re.findall(
            r"^  (lost|wrong|completed twice|forged callbacks accepted|HTTP 500)"
            r"\D*?(\d+)\s+goal 0",
            proc.stdout,
            re.M,
        )
    )
    assert figures == {
        "lost": "0",
        "wrong": "0",
        "completed twice": "0",
        "forged callbacks accepted": "0",
        "HTTP 500": "0",
    }, report
    res = json.loads(out.read_text())
    assert res["executions"] == 40, report
    assert set(res["faults"]) >= {
        "kill9",
        "sigterm",
        "api_down",
        "rabbit",
        "callback_down",
        "store_lock",
    }, report
    mongo = res["mongo"]
    assert mongo["executions"] == 16 and mongo["faults"] == {"mongo_down": 2}, report
    assert (len(mongo["lost"]), len(mongo["wrong"]), len(mongo["twice"])) == (0, 0, 0), report
    assert mongo["server_errors"] == 0 and mongo["forged_accepted"] == 0, report
    assert any(" 503" in k for k in mongo["callback_answers"]), report
    bad = res["bad_client"]
    assert any(k.startswith("forged-wrong 403") for k in bad), report
    assert any(k.startswith("forged-missing 401") for k in bad), report
    assert any(k.startswith("duplicate 200") for k in bad), report
    assert "MONGO STAGE PASS" in proc.stdout and "RESULT PASS" in proc.stdout
