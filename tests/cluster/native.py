"""The compose file's services run natively: their environment and commands are read from docker-compose.yaml, with
the service names swapped for the tier's addresses, so the tier and the compose file cannot drift apart."""

from __future__ import annotations

import re
import shlex
import socket
import subprocess
import threading
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
VARIABLE = re.compile(r"\$\{(\w+)(?::?[-?][^}]*)?\}")


def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yaml").read_text())


def service_environment(name: str, values: dict[str, str], addresses: dict[str, str]) -> dict[str, str]:
    """The service's environment from docker-compose.yaml (anchors merged): `${VAR}` from `values`, and each
    `service:port[/database]` of the compose network replaced by its address in the tier (`addresses`, most specific
    first: postgres:5432/airflow before postgres:5432)."""
    out = {}
    for key, raw in dict(compose()["services"][name].get("environment", {})).items():
        value = VARIABLE.sub(lambda m: values[m.group(1)], str(raw))
        for where, address in sorted(addresses.items(), key=lambda kv: -len(kv[0])):
            value = value.replace(f"@{where}", f"@{address}").replace(f"//{where}", f"//{address}")
        out[key] = value
    return out


def service_steps(name: str, values: dict[str, str]) -> list[list[str]]:
    """The commands of the service's `bash -c "a && b && c"` after its secrets check (the last is its long-running
    program), with `$${VAR}` filled in from `values`."""
    command = compose()["services"][name]["command"]
    steps = shlex.split(command)[-1].split("&&") if command.strip().startswith("bash") else [command]
    filled = [shlex.split(re.sub(r"\$\$\{(\w+)\}", lambda m: values[m.group(1)], step)) for step in steps]
    return [step for step in filled if step[:3] != ["market-mlops", "secrets", "check"]]


class Forwarder:
    """A TCP forwarder: the machine's PostgreSQL and Redis listen on 127.0.0.1 only, so workers in their own
    network namespace reach them through this, on the host side of their veth pair; every Celery client reaches
    Redis through one, so the tier can take the broker down and up."""

    def __init__(self, listen: tuple[str, int], target: tuple[str, int]) -> None:
        self.target = target
        self.server = socket.create_server(listen, reuse_port=False)
        self.host, self.port = listen[0], self.server.getsockname()[1]
        self.open: list[socket.socket] = []
        threading.Thread(target=self._accept, args=(self.server,), daemon=True).start()

    def down(self) -> None:
        """An outage of the server behind: open connections drop, new ones are refused."""
        self.close()
        self.open = []

    def up(self) -> None:
        self.server = socket.create_server((self.host, self.port), reuse_port=False)
        threading.Thread(target=self._accept, args=(self.server,), daemon=True).start()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            self.open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        try:  # wakes the thread blocked in accept(): a closed socket it still waits on stays listening on the port
            self.server.shutdown(socket.SHUT_RDWR)
        except OSError:  # not listening (already down)
            pass
        self.server.close()
        for s in self.open:
            s.close()


def run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, text=True)


class Namespace:
    """A network namespace with a veth pair to the host: the worker sees the host as `host_ip` only (no shared
    loopback), and gets its own hostname (a UTS namespace) so Airflow records which worker ran a task."""

    def __init__(self, name: str, index: int) -> None:
        self.name, self.host_ip, self.ip = name, f"10.231.{index}.1", f"10.231.{index}.2"
        self.veth = f"vh-{name}"[:15]
        run("ip", "netns", "add", name)
        run("ip", "link", "add", self.veth, "type", "veth", "peer", "name", "eth0", "netns", name)
        run("ip", "addr", "add", f"{self.host_ip}/30", "dev", self.veth)
        run("ip", "link", "set", self.veth, "up")
        for cmd in (["ip", "addr", "add", f"{self.ip}/30", "dev", "eth0"], ["ip", "link", "set", "eth0", "up"],
                    ["ip", "link", "set", "lo", "up"]):
            run("ip", "netns", "exec", name, *cmd)

    def wrap(self, argv: list[str], hostname: str) -> list[str]:
        inner = f"hostname {shlex.quote(hostname)} && exec {shlex.join(argv)}"
        return ["ip", "netns", "exec", self.name, "unshare", "--uts", "sh", "-c", inner]

    @staticmethod
    def remove_stale(prefix: str) -> None:
        """Namespaces of an earlier run that was killed before its teardown (their addresses would shadow ours)."""
        listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
        for name in (n for n in listing if n.startswith(prefix)):
            if not subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout.strip():
                subprocess.run(["ip", "link", "del", f"vh-{name}"[:15]], capture_output=True)
                subprocess.run(["ip", "netns", "del", name], capture_output=True)

    def delete(self) -> None:
        subprocess.run(["ip", "link", "del", self.veth], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
