"""``python -m helpers.factory serve --data-dir DIR [--host H] [--port P] [--api-key KEY] ...``"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from pathlib import Path

import uvicorn

from .app import DEFAULT_MAX_UPLOAD_MB, Settings, create_app
from .launcher import pid_alive

PARENT_POLL_SECONDS = 2.0


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


def _configure_logging(data_dir: Path, level: str) -> None:
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    to_file = logging.FileHandler(data_dir / "server.log", encoding="utf-8")
    to_file.setFormatter(formatter)
    to_stderr = logging.StreamHandler(sys.stderr)
    to_stderr.setFormatter(formatter)
    to_stderr.setLevel(logging.WARNING)
    root = logging.getLogger()
    root.setLevel(level.upper())
    root.handlers[:] = [to_file, to_stderr]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.factory",
                                     description="Local Classifier Factory (Mistral-compatible)")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the REST service")
    serve.add_argument("--data-dir", required=True, type=Path)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--api-key", default=None,
                       help="require 'Authorization: Bearer KEY' (default: env FACTORY_API_KEY)")
    serve.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_MB)
    serve.add_argument("--exit-with-parent", type=int, default=None, metavar="PID",
                       help="exit when process PID is gone (checked every 2 s)")
    serve.add_argument("--log-level", default="info")
    serve.add_argument("--access-log", action="store_true")
    args = parser.parse_args(argv)

    data_dir = args.data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    _configure_logging(data_dir, args.log_level)
    settings = Settings(
        data_dir=data_dir,
        api_key=args.api_key or os.environ.get("FACTORY_API_KEY") or None,
        max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
        url=f"http://{args.host}:{args.port}",
        parent_pid=args.exit_with_parent,
    )
    config = uvicorn.Config(
        create_app(settings), host=args.host, port=args.port, log_config=None,
        access_log=args.access_log, timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    if args.exit_with_parent:
        threading.Thread(target=_exit_with_parent, args=(server, args.exit_with_parent),
                         daemon=True).start()
    server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
