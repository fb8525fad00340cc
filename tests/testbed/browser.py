"""Headless Chromium from Debian, for tests that look at a page as a person would: the DOM
after the browser has parsed and laid it out (`--dump-dom`), and a screenshot.

Every call starts a fresh browser with a new, empty profile, and with the switches that keep it
from reaching out on its own (without them Chromium tries update, sync and field-trial servers,
and logs the refused connections). Pages are fetched from 127.0.0.1 only.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.testbed import install
from tests.testbed.places import Places

PACKAGE = "chromium"
# Root (the test machine) has no user namespaces for Chromium's sandbox, hence --no-sandbox.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--hide-scrollbars",
         "--mute-audio")


class BrowserError(install.InstallError):
    """Chromium could not be had or failed on a page; the message has its output's tail."""


def ensure_chromium(places: Places | None = None) -> str:
    """The path of Debian's `chromium`, installed with apt first when it is missing (under the
    testbed's lock, so that two test runs do not install it at once)."""
    found = shutil.which(PACKAGE)
    if found is not None:
        return found
    places = places or Places.from_environment()
    with places.lock("chromium"):
        return install.ensure_command(PACKAGE, PACKAGE,
                                      places.state_dir("chromium") / "install.log")


class Chromium:
    def __init__(self, executable: str | None = None, timeout_s: float = 90.0) -> None:
        self.executable = executable or ensure_chromium()
        self.timeout_s = timeout_s

    def dump_dom(self, url: str) -> str:
        """The document of `url` as the browser serialises it after loading."""
        return self._run("--dump-dom", url)

    def screenshot(self, url: str, path: Path, width: int = 1280, height: int = 800) -> None:
        """A PNG of the window's first `height` pixels at `url`."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        self._run(f"--screenshot={path}", f"--window-size={width},{height}", url)
        if not path.is_file() or path.stat().st_size == 0:
            raise BrowserError(f"chromium wrote no screenshot to {path}")

    def _run(self, *arguments: str) -> str:
        with tempfile.TemporaryDirectory(prefix="queue-scaler-chromium-") as profile:
            done = subprocess.run(  # noqa: S603 - Debian's chromium, our own arguments
                [self.executable, *FLAGS, f"--user-data-dir={profile}", *arguments],
                capture_output=True, text=True, timeout=self.timeout_s, check=False,
                stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            tail = "\n".join(done.stderr.splitlines()[-20:])
            raise BrowserError(f"chromium {' '.join(arguments)} exited {done.returncode}:\n"
                               f"{tail}")
        return done.stdout
