"""The national supervision files, checked by Debian's promtool: the scrape configuration, the
recording and alert rules (with their unit tests), and every expression of the dashboard."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from tests.integration.harness import ROOT
from tests.integration.indicators_stack import require

PROMETHEUS = ROOT / "etc" / "prometheus"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require("promtool"), *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_scrape_configuration_and_rules_are_valid() -> None:
    done = promtool("check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_recording_and_alert_rules_pass_their_unit_tests() -> None:
    tests = sorted(str(p) for p in (PROMETHEUS / "tests").glob("*.yml"))
    assert tests
    done = promtool("test", "rules", *tests)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_dashboard_expression_parses(tmp_path: Path) -> None:
    dashboard = json.loads((ROOT / "etc" / "grafana" / "rpn-agency-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", ())]
    assert len(exprs) >= 10
    lines = ["groups:", "  - name: dashboard", "    rules:"]
    for i, expr in enumerate(exprs):
        lines += [f"      - record: dashboard:expr{i}", f"        expr: {json.dumps(expr)}"]
    rules = tmp_path / "dashboard.yml"
    rules.write_text("\n".join(lines) + "\n")
    done = promtool("check", "rules", str(rules))
    assert done.returncode == 0, done.stdout + done.stderr


def test_prometheus_and_the_test_stack_load_every_rule_file() -> None:
    from tests.integration.indicators_stack import RULE_FILES

    config = (PROMETHEUS / "prometheus.yml").read_text()
    files = sorted(p.name for p in (PROMETHEUS / "rules").glob("*.yml"))
    assert sorted(RULE_FILES) == files
    for name in files:
        assert f"  - rules/{name}\n" in config, name


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require("amtool"), *args], capture_output=True, text=True, timeout=60, check=False
    )


def receivers(*labels: str) -> list[str]:
    config = f"--config.file={PROMETHEUS / 'alertmanager.yml'}"
    done = amtool("config", "routes", "test", config, *labels)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip().split(",")


def test_the_agency_receives_the_watch_alerts_first() -> None:
    done = amtool("check-config", str(PROMETHEUS / "alertmanager.yml"))
    assert done.returncode == 0, done.stdout + done.stderr
    # Every watch alert of rpn-watch.yml carries notify: agence, and is routed to the agency.
    rules = (PROMETHEUS / "rules" / "rpn-watch.yml").read_text()
    alerts = len(re.findall(r"^\s+- alert: ", rules, re.MULTILINE))
    labelled = len(re.findall(r"^\s+notify: agence$", rules, re.MULTILINE))
    assert alerts >= 4 and labelled == alerts
    watch = ["alertname=RpnWatchErrorRate", "notify=agence", "anomaly=watch_error_rate"]
    assert receivers(*watch, "severity=warning") == ["agence"]
    assert receivers(*watch, "severity=critical") == ["agence", "exploitation"]
    assert receivers("alertname=RpnAmcDown", "severity=critical") == ["exploitation"]
