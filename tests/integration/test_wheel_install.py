"""The image's install, without a container engine: the Dockerfile's build stage (its COPY and
RUN steps, read from the file) replayed in a temporary folder, then the installed scaler served
from that venv, outside the repository, and asked over gRPC and HTTP."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import port_for
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from scaler._proto import externalscaler_pb2 as pb
from scaler._proto import externalscaler_pb2_grpc as pb_grpc
from tests import dockerfile


@pytest.fixture(scope="module")
def image_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder standing for the image's filesystem after the build stage: the paths of the
    Dockerfile (/src, /wheels, /opt/queue-scaler) live under it."""
    root = tmp_path_factory.mktemp("image")
    build = dockerfile.stages(dockerfile.DOCKERFILE.read_text())[0]
    (workdir,) = build.arguments("WORKDIR")
    source = root / workdir.lstrip("/")
    source.mkdir(parents=True)
    repository = dockerfile.DOCKERFILE.parent
    for copy in build.arguments("COPY"):
        *names, destination = copy.split()
        for name in names:
            target = source / destination / Path(name).name if destination.endswith("/") \
                else source / destination
            if (repository / name).is_dir():
                shutil.copytree(repository / name, target,
                                ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(repository / name, target)
    for run in build.arguments("RUN"):
        command = (run.replace("/wheels", str(root / "wheels"))
                   .replace("/opt/", f"{root}/opt/")
                   .replace("python -m", f"{sys.executable} -m"))
        # The Dockerfile's RUN lines are shell commands: run as a shell would run them.
        done = subprocess.run(command, shell=True, cwd=source,  # noqa: S602 capture_output=True, text=True,
                              timeout=900, check=False)
        assert done.returncode == 0, f"{run}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return root


@pytest.fixture
def served(image_root: Path, tmp_path: Path) -> Iterator[tuple[str, str]]:
    grpc_port, http_port = port_for.select_random(), port_for.select_random()
    while http_port == grpc_port:
        http_port = port_for.select_random()
    program = image_root / "opt" / "queue-scaler" / "bin" / "queue-scaler"
    process = subprocess.Popen(  # noqa: S603 - the venv's own entry point
        [str(program), "serve", "--grpc-address", f"127.0.0.1:{grpc_port}",
         "--http-address", f"127.0.0.1:{http_port}"],
        cwd=tmp_path, env={"PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        yield f"127.0.0.1:{grpc_port}", f"http://127.0.0.1:{http_port}"
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
        assert process.returncode == 0, output


def _ready(http: str, timeout_s: float = 30.0) -> int:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"{http}/readyz", timeout=2) as reply:
                return int(reply.status)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_the_build_stage_leaves_a_venv_without_pip_and_with_the_scaler(image_root: Path
                                                                       ) -> None:
    venv = image_root / "opt" / "queue-scaler"
    assert not list(venv.glob("lib/python3*/site-packages/pip"))
    wheels = sorted(path.name for path in (image_root / "wheels").glob("*.whl"))
    assert any(name.startswith("queue_scaler-") for name in wheels), wheels
    assert any(name.startswith("grpcio-") for name in wheels), wheels
    installed = venv / "lib" / f"python3.{sys.version_info.minor}" / "site-packages"
    assert (installed / "scaler" / "_proto" / "externalscaler_pb2.py").is_file()
    assert (installed / "scaler" / "py.typed").is_file()
    assert not (installed / "tests").exists()


def test_the_installed_scaler_serves_grpc_and_http(served: tuple[str, str]) -> None:
    address, http = served
    assert _ready(http) == 200
    with grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="externalscaler.ExternalScaler"), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as refused:
            pb_grpc.ExternalScalerStub(channel).IsActive(
                pb.ScaledObjectRef(name="so", namespace="ns",
                                   scalerMetadata={"source": "sqs"}), timeout=5)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "source" in (refused.value.details() or "")
    with urllib.request.urlopen(f"{http}/metrics", timeout=5) as reply:
        assert b"queue_scaler_" in reply.read()
