"""Prometheus: Debian's prometheus package (it brings promtool), run as a server of our own on
127.0.0.1 with its configuration, TSDB and logs in the state folder (nothing in /etc/prometheus
or /var/lib/prometheus is read or written). It scrapes and evaluates every second, loads the
project's alert and recording rules (manifests/prometheus/rules.yaml) and finds its scrape
targets in file_sd files that tests write: one JSON file per scaler under `targets/`, picked up
on change, so a test points Prometheus at a scaler it started on a loopback port."""

from __future__ import annotations

import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from tests.testbed import install
from tests.testbed.service import HOST, Service

PROMETHEUS = Path("/usr/bin/prometheus")
PROMTOOL = Path("/usr/bin/promtool")
RULES = Path(__file__).resolve().parents[2] / "manifests" / "prometheus" / "rules.yaml"
# The scrape job the rules select (`up{job="queue-scaler"}`), as a ServiceMonitor for the
# Service of that name calls it.
JOB = "queue-scaler"


class Prometheus(Service):
    name = "prometheus"
    primary_variable = "QUEUE_SCALER_TEST_PROMETHEUS"
    port_names = ("http",)

    @property
    def version(self) -> str:
        done = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "prometheus"],  # noqa: S607
                              capture_output=True, text=True, check=False, timeout=30)
        return done.stdout.strip() or "not installed"

    @property
    def targets(self) -> Path:
        """The folder of file_sd files (`*.json`) the queue-scaler job reads its targets from."""
        return self.state / "targets"

    @property
    def rules(self) -> Path:
        """The rules file Prometheus loads: a copy of the project's, rewritten by tests that
        check the current rules (then POST /-/reload)."""
        return self.state / "rules.yaml"

    def install(self) -> None:
        if not (PROMETHEUS.is_file() and PROMTOOL.is_file()):
            # --no-install-recommends (install.py) keeps prometheus-node-exporter out, and the
            # policy-rc.d keeps the package's own server on :9090 from starting.
            install.apt_install("prometheus", log=self.logs / "install.log")

    def config_files(self) -> dict[Path, str]:
        # file_sd files are watched (inotify) and also re-read every refresh_interval.
        config = "\n".join([
            "# Written by tests/testbed/prometheus.py before every start.",
            "global:",
            "  scrape_interval: 1s",
            "  scrape_timeout: 1s",
            "  evaluation_interval: 1s",
            "rule_files:",
            f"  - {self.rules}",
            "scrape_configs:",
            f"  - job_name: {JOB}",
            # As the rules ask (a ServiceMonitor's honorLabels): the scaler's own `namespace`
            # label is kept.
            "    honor_labels: true",
            "    file_sd_configs:",
            f"      - files: ['{self.targets}/*.json']",
            "        refresh_interval: 2s",
        ]) + "\n"
        return {self.state / "prometheus.yml": config}

    def prepare(self) -> None:
        """The project's rules as they are now, and no targets left by earlier sessions (their
        scalers are gone)."""
        shutil.copyfile(RULES, self.rules)
        shutil.rmtree(self.targets, ignore_errors=True)
        self.targets.mkdir()

    def command(self) -> list[str]:
        return [str(PROMETHEUS),
                f"--config.file={self.state / 'prometheus.yml'}",
                f"--web.listen-address={HOST}:{self.ports['http']}",
                f"--storage.tsdb.path={self.state / 'data'}",
                "--storage.tsdb.retention.time=1d",
                # POST /-/reload: tests reload the rules they rewrite.
                "--web.enable-lifecycle"]

    def is_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=3) as reply:
                return bool(reply.status == 200)
        except (urllib.error.URLError, OSError, ValueError):
            return False

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.ports['http']}"

    def exports(self) -> dict[str, str]:
        return {
            "QUEUE_SCALER_TEST_PROMETHEUS": self.url,
            "QUEUE_SCALER_TEST_PROMETHEUS_TARGETS": str(self.targets),
            "QUEUE_SCALER_TEST_PROMETHEUS_RULES": str(self.rules),
            "QUEUE_SCALER_TEST_PROMTOOL": str(PROMTOOL),
        }
