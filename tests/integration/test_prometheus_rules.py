"""promtool on the rules: `check rules` accepts manifests/prometheus/rules.yaml, and the unit
tests in tests/prometheus/rules_test.yaml pass; each alert's test fails once its rule can no
longer fire, so none of them passes vacuously. promtool comes with the testbed's Prometheus
(Debian's prometheus package)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.testbed.pytest_plugin import Testbed

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "manifests" / "prometheus" / "rules.yaml"
UNIT_TESTS = REPO / "tests" / "prometheus" / "rules_test.yaml"
ALERTS = [rule["alert"] for group in yaml.safe_load(RULES.read_text())["groups"]
          for rule in group["rules"] if "alert" in rule]


@pytest.fixture(scope="session")
def promtool(testbed: Testbed) -> str:
    return testbed.variable("QUEUE_SCALER_TEST_PROMTOOL")


def run(promtool: str, *arguments: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *map(str, arguments)], cwd=REPO,  # noqa: S603
                          capture_output=True, text=True, timeout=120, check=False)


def test_promtool_accepts_the_rules_file(promtool: str) -> None:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    count = sum(len(group["rules"]) for group in groups)

    done = run(promtool, "check", "rules", RULES)

    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {count} rules found" in done.stdout, done.stdout


def test_the_rules_unit_tests_pass(promtool: str) -> None:
    done = run(promtool, "test", "rules", UNIT_TESTS)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout, done.stdout


@pytest.mark.parametrize("alert", ALERTS)
def test_the_unit_tests_fail_when_an_alert_can_no_longer_fire(
        promtool: str, alert: str, tmp_path: Path) -> None:
    rules: dict[str, Any] = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == alert:
                rule["expr"] = "vector(1) == 0"  # valid, and never true
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules))
    tests: dict[str, Any] = yaml.safe_load(UNIT_TESTS.read_text())
    tests["rule_files"] = [str(tmp_path / "rules.yaml")]
    (tmp_path / "rules_test.yaml").write_text(yaml.safe_dump(tests))

    done = run(promtool, "test", "rules", tmp_path / "rules_test.yaml")

    report = done.stdout + done.stderr
    assert done.returncode != 0, report
    assert f"alertname: {alert}," in report, report
