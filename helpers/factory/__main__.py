"""``python -m helpers.factory serve --data-dir DIR [--host H] [--port P] [options]``

The API key comes from ``FACTORY_API_KEY`` or ``--api-key-file``; ``--api-key KEY`` still works
but every local user can read it in ``ps``. Limits: see :mod:`helpers.factory.limits`.
"""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import os
import sys
import threading
import time
from pathlib import Path

import uvicorn

from .app import create_app
from .deps import DEFAULT_MAX_UPLOAD_MB, Settings
from .header_timeout import http_protocol
from .launcher import pid_alive, start_local_factory
from .limits import LOOPBACK_HOSTS, Limits
from .predictors import GAP_S, MAX_BATCH, MAX_WAIT_S
from .store import StateError
from .trainers import Registry
from .trainers.base import DEVICE_CHOICES

PARENT_POLL_SECONDS = 2.0
LOG_BYTES = 10 * 1024 * 1024  # server.log rotates at 10 MiB, keeping 3 old files
WILDCARD_HOSTS = {"0.0.0.0", "::", ""}


def _parent_alive(pid: int, original_ppid: int) -> bool:
    if pid == original_ppid and os.getppid() != original_ppid:
        return False  # we were re-parented: the parent is gone
    return pid_alive(pid)


def _exit_with_parent(server: uvicorn.Server, pid: int) -> None:
    original_ppid = os.getppid()
    while not server.should_exit:
        if not _parent_alive(pid, original_ppid):
            logging.getLogger(__name__).info("parent process %d is gone: exiting", pid)
            server.should_exit = True
            return
        time.sleep(PARENT_POLL_SECONDS)


class _LogFile(logging.handlers.RotatingFileHandler):
    """server.log; when it cannot be written (a full disk), one line on stderr instead of a
    traceback per record — the records still reach stderr through the other handler."""

    failed = False

    def handleError(self, record: logging.LogRecord) -> None:
        if not self.failed:
            self.failed = True
            error = sys.exc_info()[1]
            sys.stderr.write(f"cannot write {self.baseFilename}: {error}\n")


def _configure_logging(data_dir: Path, level: str) -> None:
    formatter = logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
    to_file = _LogFile(data_dir / "server.log", maxBytes=LOG_BYTES, backupCount=3, encoding="utf-8")
    to_file.setFormatter(formatter)
    to_stderr = logging.StreamHandler(sys.stderr)
    to_stderr.setFormatter(formatter)
    to_stderr.setLevel(logging.WARNING)
    root = logging.getLogger()
    root.setLevel(level.upper())
    root.handlers[:] = [to_file, to_stderr]


def _api_key(args: argparse.Namespace) -> str | None:
    if args.api_key:
        logging.getLogger(__name__).warning(
            "--api-key is visible to every local user in the process list; prefer "
            "FACTORY_API_KEY or --api-key-file"
        )
        return args.api_key
    if args.api_key_file:
        key = args.api_key_file.read_text(encoding="utf-8").strip()
        if not key:
            raise SystemExit(f"{args.api_key_file} is empty")
        return key
    return os.environ.get("FACTORY_API_KEY") or None


def main(argv: list[str] | None = None) -> int:
    defaults = Limits()
    parser = argparse.ArgumentParser(
        prog="python -m helpers.factory",
        description="Local Classifier Factory (Mistral-compatible)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the REST service")
    serve.add_argument("--data-dir", required=True, type=Path)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--api-key-file",
        type=Path,
        default=None,
        help="require 'Authorization: Bearer KEY', KEY read from this file "
        "(default: env FACTORY_API_KEY; no key: no auth)",
    )
    serve.add_argument(
        "--api-key", default=None, help="the key itself (visible in `ps`: prefer the two above)"
    )
    serve.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also accept this Host header (default: loopback names only)",
    )
    serve.add_argument(
        "--allowed-origin",
        action="append",
        default=[],
        metavar="URL",
        help="accept cross-origin requests from this origin",
    )
    serve.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_MB)
    serve.add_argument("--max-body-mb", type=float, default=defaults.max_body_bytes / 2**20)
    serve.add_argument("--max-request-chars", type=int, default=defaults.max_request_chars)
    serve.add_argument("--max-input-chars", type=int, default=defaults.max_input_chars)
    serve.add_argument("--max-labels", type=int, default=defaults.max_labels)
    serve.add_argument("--max-training-steps", type=int, default=defaults.max_training_steps)
    serve.add_argument(
        "--max-training-mb",
        type=float,
        default=defaults.max_training_bytes / 2**20,
        help="the most training + validation data one job may use, in MiB",
    )
    serve.add_argument(
        "--max-train-memory",
        type=float,
        default=defaults.max_train_memory_fraction,
        help="fraction of the available memory one training may need",
    )
    serve.add_argument("--body-timeout", type=float, default=defaults.body_timeout_s)
    serve.add_argument("--header-timeout", type=float, default=defaults.header_timeout_s)
    serve.add_argument("--batch-max", type=int, default=MAX_BATCH)
    serve.add_argument("--batch-wait-ms", type=float, default=MAX_WAIT_S * 1000)
    serve.add_argument("--batch-gap-ms", type=float, default=GAP_S * 1000)
    serve.add_argument(
        "--exit-with-parent",
        type=int,
        default=None,
        metavar="PID",
        help="exit when process PID is gone (checked every 2 s)",
    )
    serve.add_argument("--log-level", default="info")
    serve.add_argument("--access-log", action="store_true")
    serve.add_argument(
        "--device",
        choices=DEVICE_CHOICES,
        default="auto",
        help="where encoders train and predict (auto: CUDA, then MPS, then CPU)",
    )
    start = commands.add_parser(
        "start",
        help="start a service for DATA_DIR in the background (or find the running one) and "
        "print its URL",
    )
    start.add_argument("--data-dir", required=True, type=Path)
    start.add_argument(
        "--exit-with-parent",
        type=int,
        required=True,
        metavar="PID",
        help="the service exits when process PID is gone (e.g. the shell running the lessons)",
    )
    start.add_argument("--device", choices=DEVICE_CHOICES, default="auto")
    args = parser.parse_args(argv)
    if args.command == "start":
        if not pid_alive(args.exit_with_parent):
            parser.error(f"--exit-with-parent {args.exit_with_parent}: no such process")
        print(
            start_local_factory(args.data_dir, device=args.device, exit_with=args.exit_with_parent)
        )
        return 0

    os.umask(0o077)  # everything this service creates is owner-only
    data_dir = args.data_dir.expanduser().resolve()
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    _configure_logging(data_dir, args.log_level)
    hosts = [*LOOPBACK_HOSTS, *args.allowed_host]
    if args.host not in WILDCARD_HOSTS:
        hosts.append(args.host)
    settings = Settings(
        data_dir=data_dir,
        api_key=_api_key(args),
        max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
        url=f"http://{args.host}:{args.port}",
        parent_pid=args.exit_with_parent,
        limits=Limits(
            max_body_bytes=int(args.max_body_mb * 2**20),
            max_request_chars=args.max_request_chars,
            max_input_chars=args.max_input_chars,
            max_labels=args.max_labels,
            max_training_steps=args.max_training_steps,
            max_training_bytes=int(args.max_training_mb * 2**20),
            max_train_memory_fraction=args.max_train_memory,
            body_timeout_s=args.body_timeout,
            header_timeout_s=args.header_timeout,
        ),
        allowed_hosts=tuple(hosts),
        allowed_origins=tuple(args.allowed_origin),
        batch_max=args.batch_max,
        batch_wait_ms=args.batch_wait_ms,
        batch_gap_ms=args.batch_gap_ms,
    )
    try:
        app = create_app(settings, registry=Registry(device=args.device))
    except StateError as exc:
        logging.getLogger(__name__).error("%s", exc)  # to server.log and stderr, no traceback
        return 3
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_config=None,
        access_log=args.access_log,
        timeout_graceful_shutdown=5,
        http=http_protocol(args.header_timeout),
    )
    server = uvicorn.Server(config)
    if args.exit_with_parent:
        threading.Thread(
            target=_exit_with_parent, args=(server, args.exit_with_parent), daemon=True
        ).start()
    server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
