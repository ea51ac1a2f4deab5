"""Running `nsl` and `nsl serve` as a user does: real subprocesses, real signals."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 10


def env_for(tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NSL_")}
    env.update(HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / ".config"), NO_COLOR="1", TERM="dumb",
               PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""), PYTHONUNBUFFERED="1")
    return env


def nsl_run(tmp_path, db, *args, check=True):
    p = subprocess.run([sys.executable, "-m", "nsl", "--db", str(db), *args], cwd=tmp_path, env=env_for(tmp_path),
                       capture_output=True, text=True, timeout=60)
    if check:
        assert p.returncode == 0, f"nsl {' '.join(args)} -> {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p


def start_serve(tmp_path, db, *args):
    """`nsl serve --port 0 ARGS` in a subprocess; returns (process, URL) once it printed where it listens."""
    proc = subprocess.Popen([sys.executable, "-m", "nsl", "--db", str(db), "serve", "--port", "0", *args],
                            cwd=tmp_path, env=env_for(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    line = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(TIMEOUT)
    if not line or not line[0].startswith("serving http://"):
        proc.kill()
        out, err = proc.communicate(timeout=TIMEOUT)
        pytest.fail(f"nsl serve did not report its URL: {line!r}\n{out}\n{err}")
    return proc, line[0].split()[1]


def stop(proc, sig=signal.SIGTERM) -> tuple[int, str]:
    """Send `sig` (SIGTERM) and wait for nsl serve to end: (exit code, stderr)."""
    proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate(timeout=TIMEOUT)
        pytest.fail(f"nsl serve did not stop on {signal.Signals(sig).name}")
    return proc.returncode, err
