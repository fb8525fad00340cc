"""The Dockerfile, checked without a container engine: what the chart relies on (a numeric
non-root user, the entrypoint, the ports) and what the runtime image must not carry."""

from __future__ import annotations

import json
import re

import pytest

from scaler.settings import Settings
from tests import dockerfile
from tests.dockerfile import Stage


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return dockerfile.stages(dockerfile.DOCKERFILE.read_text())


def test_every_stage_starts_from_one_exactly_pinned_python_image(stages: list[Stage]) -> None:
    assert len(stages) == 2
    bases = {stage.base for stage in stages}
    assert len(bases) == 1, bases
    # An exact patch release and Debian release: never "3.11-slim", "slim" or "latest".
    assert re.fullmatch(r"python:3\.11\.\d+-slim-(bookworm|trixie)", bases.pop())


def test_the_wheel_is_built_in_a_stage_of_its_own(stages: list[Stage]) -> None:
    build, runtime = stages
    assert build.name is not None
    assert any("pip wheel" in run for run in build.arguments("RUN"))
    assert runtime.arguments("COPY") == [
        f"--from={build.name} /opt/queue-scaler /opt/queue-scaler"]


def test_the_runtime_has_no_pip_and_no_compilers(stages: list[Stage]) -> None:
    runtime = stages[-1]
    runs = " ".join(runtime.arguments("RUN"))
    assert "pip uninstall --yes" in runs
    for removed in ("pip", "setuptools", "wheel"):
        assert re.search(rf"\b{removed}\b", runs.split("uninstall", 1)[1])
    assert "pip install" not in runs
    assert not re.search(r"\b(apt-get|apt|gcc|g\+\+|make|build-essential)\b", runs)


def test_it_runs_as_a_numeric_non_root_user(stages: list[Stage]) -> None:
    (user,) = stages[-1].arguments("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit(), user  # runAsNonRoot needs a number to check
    assert gid.isdigit(), user
    assert int(uid) > 0, user
    assert int(gid) > 0, user


def test_the_entrypoint_serves_and_the_default_ports_are_exposed(stages: list[Stage]) -> None:
    runtime = stages[-1]
    (entrypoint,) = runtime.arguments("ENTRYPOINT")
    assert json.loads(entrypoint) == ["queue-scaler", "serve"]  # exec form: gets SIGTERM
    assert not runtime.arguments("CMD")
    defaults = Settings()
    ports = {address.rsplit(":", 1)[1]
             for address in (defaults.grpc_address, defaults.http_address)}
    assert set(" ".join(runtime.arguments("EXPOSE")).split()) == ports


def test_what_the_build_stage_copies_exists() -> None:
    root = dockerfile.DOCKERFILE.parent
    build = dockerfile.stages(dockerfile.DOCKERFILE.read_text())[0]
    sources = [word for copy in build.arguments("COPY") for word in copy.split()[:-1]]
    assert sources
    assert all((root / source).exists() for source in sources), sources


def test_the_parser_joins_continuations_and_drops_comments() -> None:
    text = "ARG B=img:1\n# note\nFROM ${B} AS one\nRUN a \\\n  b\nFROM ${B}\nUSER 1:1\n"
    one, two = dockerfile.stages(text)
    assert (one.base, one.name, one.arguments("RUN")) == ("img:1", "one", ["a    b"])
    assert (two.base, two.name, two.arguments("USER")) == ("img:1", None, ["1:1"])
