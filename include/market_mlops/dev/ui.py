"""`make ui`: Airflow's UI and MLflow's UI on the demo's state (or any `MLOPS_HOME`), until Ctrl-C.

Starts `airflow standalone` (api-server, scheduler, dag-processor, triggerer on the embedded SQLite stack) and an
MLflow server on the same MLflow store, points the suite's links (task buttons, the Models page, Slack alerts) at that
MLflow, prints both URLs and the login, and stops both cleanly on Ctrl-C. The DAGs are paused first unless
`--unpaused`: the demo's state ends in November 2025, and an unpaused scheduler would start today's runs on it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

VENV_BIN = Path(sys.executable).parent


def wait_for_http(url: str, seconds: float, process: subprocess.Popen, log: Path) -> None:
    """Until `url` answers; a server that exits first, or never answers, raises with the tail of its log."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=5)
            return
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"{url}: the server exited ({process.returncode}):\n"
                                   f"{log.read_text(errors='replace')[-2000:]}") from None
            time.sleep(2)
    raise TimeoutError(f"{url} did not answer in {seconds:.0f} s:\n{log.read_text(errors='replace')[-2000:]}")


def stop(process: subprocess.Popen, grace: float = 60) -> None:
    """SIGINT to the process (standalone stops its components on it), then SIGKILL to its group if anything is left."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def ui_environment(home: Path, airflow_port: int, mlflow_url: str) -> dict[str, str]:
    """The environment both servers and the suite's links need: the embedded stack of `home` on these ports."""
    from market_mlops.dev.local_stack import stack_environment

    # The caller's own MLOPS__ exports are kept (the README's "keep the exports set for make ui"); the home's
    # settings file (the demo's landing source) is read by every process on the home through the config.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLOPS")) or k.startswith("MLOPS__")}
    env.update(stack_environment(home))
    env.update({"PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}", "AIRFLOW__API__PORT": str(airflow_port),
                "AIRFLOW__API__HOST": "127.0.0.1",  # this machine only, as the printed address says
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{airflow_port}/execution/",
                "AIRFLOW__CORE__PARALLELISM": "2", "AIRFLOW__API_AUTH__JWT_SECRET": os.urandom(16).hex(),
                "MLOPS_MLFLOW_UI_URL": mlflow_url})
    return env


def pause_every_dag(env: dict[str, str]) -> None:
    script = ("from airflow.models.dag import DagModel\nfrom airflow.utils.session import create_session\n"
              "with create_session() as s:\n    s.query(DagModel).update({DagModel.is_paused: True})\n")
    subprocess.run([sys.executable, "-c", script], env=env, check=True, capture_output=True, timeout=300)


def start_servers(home: Path, airflow_port: int, mlflow_port: int, paused: bool = True,
                  extra: dict[str, str] | None = None) -> tuple[subprocess.Popen, subprocess.Popen, dict[str, str]]:
    """Both servers on `home`'s state, answering; returns (airflow, mlflow, their environment). `extra`: more
    environment (the browser tier makes every user an admin, so it needs no login)."""
    mlflow_url = f"http://127.0.0.1:{mlflow_port}"
    env = {**ui_environment(home, airflow_port, mlflow_url), **(extra or {})}
    if paused:
        pause_every_dag(env)
    mlflow_log, airflow_log = home / "mlflow-ui.log", home / "standalone.log"
    mlflow = subprocess.Popen(
        [str(VENV_BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{home / 'mlflow' / 'mlflow.db'}",
         "--host", "127.0.0.1", "--port", str(mlflow_port), "--workers", "1"],
        env=env, stdout=mlflow_log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    airflow = subprocess.Popen([str(VENV_BIN / "airflow"), "standalone"], env=env, stdout=airflow_log.open("wb"),
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_http(f"{mlflow_url}/health", 120, mlflow, mlflow_log)
        wait_for_http(f"http://127.0.0.1:{airflow_port}/api/v2/monitor/health", 300, airflow, airflow_log)
    except BaseException:
        stop(airflow)
        stop(mlflow, grace=10)
        raise
    return airflow, mlflow, env


def login(home: Path) -> str:
    """The admin login `airflow standalone` generated for this home."""
    generated = home / "airflow" / "simple_auth_manager_passwords.json.generated"
    try:
        users = json.loads(generated.read_text())
    except (OSError, ValueError):
        return f"see {generated}"
    return ", ".join(f"{user} / {password}" for user, password in users.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--airflow-port", type=int, default=8080, help="Airflow's UI (default 8080)")
    parser.add_argument("--mlflow-port", type=int, default=5000, help="MLflow's UI (default 5000)")
    parser.add_argument("--unpaused", action="store_true", help="leave the DAGs as they are (the scheduler will run "
                        "what is due today)")
    args = parser.parse_args(argv)
    from market_mlops.config import REPO_ROOT

    home = Path(os.environ.get("MLOPS_HOME") or REPO_ROOT / ".state").resolve()
    if not (home / "mlflow" / "mlflow.db").exists():
        print(f"error: no suite state in {home}: run `make demo` first (or set MLOPS_HOME to a home that has one)",
              file=sys.stderr)
        return 2
    print(f"starting Airflow and MLflow on {home} (logs: {home / 'standalone.log'}, {home / 'mlflow-ui.log'}) ...",
          flush=True)
    airflow, mlflow, _ = start_servers(home, args.airflow_port, args.mlflow_port, paused=not args.unpaused)
    print(f"\nAirflow UI   http://127.0.0.1:{args.airflow_port}   login {login(home)}"
          f"\n             the Models page: Airflow's menu > Models"
          f"\nMLflow UI    http://127.0.0.1:{args.mlflow_port}"
          f"\nDAGs {'left as they were' if args.unpaused else 'paused (unpause one in the UI to schedule it)'}; "
          "Ctrl-C stops both.", flush=True)
    try:
        while airflow.poll() is None and mlflow.poll() is None:
            time.sleep(1)
        print("a server stopped on its own: see the logs above", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not leave a server behind
        stop(airflow)
        stop(mlflow, grace=10)


if __name__ == "__main__":
    sys.exit(main())
