"""Start (or find) the local Classifier Factory from a notebook: one service per data directory.

``start_local_factory(data_dir)`` returns the base URL to pass to
``Mistral(server_url=..., api_key="local")``. It reuses a running service recorded in
``data_dir/server.json`` when ``/health`` answers for the same data directory; otherwise it runs
``python -m helpers.factory serve`` in the background on a free port. That service exits when
the process that started it exits (``--exit-with-parent``); all state is on disk, so the next
kernel simply starts it again.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx


def _health(url: str, data_dir: Path, api_key: str | None = None) -> dict | None:
    """The /health answer of ``url`` if it serves ``data_dir``, else None.

    With a key (``api_key``, else ``FACTORY_API_KEY``) it is sent: a service with a key set
    answers /health only to callers who have it.
    """
    key = api_key or os.environ.get("FACTORY_API_KEY")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        response = httpx.get(f"{url}/health", timeout=2.0, headers=headers)
        body = response.json()
    except (httpx.HTTPError, ValueError):
        return None
    if response.status_code != 200 or not isinstance(body, dict):
        return None
    if Path(str(body.get("data_dir", ""))).resolve() != data_dir:
        return None
    parent = body.get("parent_pid")
    if parent and not pid_alive(int(parent)):
        return None  # its parent is gone, so it is about to exit: do not reuse it
    return body


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _recorded(data_dir: Path) -> dict | None:
    try:
        return json.loads((data_dir / "server.json").read_text())
    except (OSError, ValueError):
        return None


def running_factory_url(data_dir: str | os.PathLike, api_key: str | None = None) -> str | None:
    """The URL of a live service for ``data_dir``, if there is one."""
    data_dir = Path(data_dir).expanduser().resolve()
    record = _recorded(data_dir)
    if record and record.get("url") and _health(record["url"], data_dir, api_key):
        return record["url"]
    return None


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def start_local_factory(
    data_dir: str | os.PathLike,
    *,
    port: int | None = None,
    host: str = "127.0.0.1",
    timeout: float = 60,
    api_key: str | None = None,
    device: str = "auto",
    extra_args: Sequence[str] = (),
    exit_with: int | None = None,
) -> str:
    """Return the base URL of the service for ``data_dir``, starting it if needed.

    A newly started service exits soon after the process ``exit_with`` (default: this one)
    is gone; ``make run`` starts one for all its lessons with the shell that runs them.

    ``extra_args`` go to a newly started ``serve`` as they are (e.g. ``["--max-training-mb",
    "200"]``; ``python -m helpers.factory serve --help`` lists them).

    ``device`` (``auto``, ``cpu``, ``cuda``, ``mps``) is where a newly started service trains
    and runs the encoders (``auto``: CUDA, then Apple MPS, then CPU).

    ``api_key`` (optional) makes the service require ``Authorization: Bearer <api_key>``; it is
    passed through the environment, never on the command line.
    """
    data_dir = Path(data_dir).expanduser().resolve()
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    url = running_factory_url(data_dir, api_key)
    if url:
        return url
    # a free port can be taken by another process before the service binds it (concurrent
    # batch points): then try another one
    tries = 1 if port else 5
    for attempt in range(1, tries + 1):
        try:
            return _start(
                data_dir,
                port or _free_port(host),
                host,
                timeout,
                api_key,
                device,
                extra_args,
                exit_with=exit_with or os.getpid(),
            )
        except _PortTaken as exc:
            if attempt == tries:
                raise RuntimeError(
                    f"the Classifier Factory found its port in use {tries} time(s):\n{exc}"
                ) from None
    raise AssertionError("unreachable: the last attempt returns or raises")


class _PortTaken(RuntimeError):
    pass


def _start(
    data_dir: Path,
    port: int,
    host: str,
    timeout: float,
    api_key: str | None,
    device: str = "auto",
    extra_args: Sequence[str] = (),
    *,
    exit_with: int,
) -> str:
    url = f"http://{host}:{port}"
    env = {k: v for k, v in os.environ.items() if k != "FACTORY_API_KEY"}
    if api_key:
        env["FACTORY_API_KEY"] = api_key
    cmd = [
        sys.executable,
        "-m",
        "helpers.factory",
        "serve",
        "--host",
        host,
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--exit-with-parent",
        str(exit_with),
        "--device",
        device,
        *extra_args,
    ]
    stderr_path = data_dir / "server.stderr"
    fd = os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # owner-only
    os.chmod(stderr_path, 0o600)  # an earlier one may have been created with other modes
    with open(fd, "wb") as stderr:
        process = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=stderr,
            stderr=stderr,
            env=env,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = stderr_path.read_text(errors="replace")[-2000:]
            if "address already in use" in tail.lower():
                raise _PortTaken(tail)
            raise RuntimeError(f"the Classifier Factory exited at start-up:\n{tail}")
        body = _health(url, data_dir, api_key)
        if body and body.get("pid") == process.pid:
            return url
        time.sleep(0.2)
    process.terminate()
    raise TimeoutError(
        f"the Classifier Factory did not answer on {url} within {timeout} s; "
        f"see {data_dir / 'server.log'}"
    )


def stop_local_factory(
    data_dir: str | os.PathLike, timeout: float = 15, api_key: str | None = None
) -> bool:
    """Stop the service recorded for ``data_dir``; True if one was running."""
    data_dir = Path(data_dir).expanduser().resolve()
    record = _recorded(data_dir)
    if not record or not record.get("url"):
        return False
    body = _health(record["url"], data_dir, api_key)
    if not body or body.get("pid") != record.get("pid"):
        return False
    pid = int(body["pid"])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        try:  # reap it if it is our child
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                break
        except ChildProcessError:
            pass
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
    (data_dir / "server.json").unlink(missing_ok=True)
    return True
