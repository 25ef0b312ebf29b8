"""Running the Flower apps (:mod:`.server_app`, :mod:`.client_app`): simulated on one machine, or
deployed with real SuperLink and SuperNode processes. Flower is pinned to 1.42.0 (its deployment
runtime changed in 2026: one HTTP API per SuperLink, apps started by a SuperExec).

**Simulation** (:func:`run_simulation`): Flower's simulation engine (Ray) runs ``num_clients``
virtual SuperNodes in this process's machine; partition ids ``0 .. num_clients - 1`` come from the
engine. The resources suit a 2-core machine (:func:`ray_backend_config`): Ray gets the machine's cores,
each virtual client one CPU (so at most that many clients train at once), no GPU, and a 100 MB
object store; Ray listens on loopback only (:data:`RAY_LOOPBACK_ENV`). The run configuration is
baked into the app objects (Flower's Python API passes none). Flower 1.42 marks this Python API
deprecated in favour of ``flwr run`` against a simulation SuperLink; it still works as before.

**Deployment** (:func:`run_deployment`), what it runs on loopback::

    export FLWR_HOME=<work>/flwr-home     # flwr keeps connections and unpacked apps here
    flower-superlink --insecure --disable-runtime-dependency-installation \\
        --host 127.0.0.1 --port <P>       # Fleet, Control and Runtime API: one HTTP port
    flower-supernode --insecure --superlink 127.0.0.1:<P> \\
        --host 127.0.0.1 --port <Q_i> \\  # the node's own Runtime API (one port per node)
        --node-config 'partition-id=<i> num-partitions=<n>'
    # <work>/flwr-home/config.toml: [superlink.mtsc] address = "127.0.0.1:<P>", insecure = true
    flwr run <work>/app mtsc --stream     # <work>/app/pyproject.toml: see write_app_dir
    flwr ls mtsc --format json            # the run's status: "finished:completed"

The app directory holds only a ``pyproject.toml`` (:func:`write_app_dir`): ``[tool.flwr.app]``
with ``components`` ``serverapp = "mtsc_sdr.finetune.server_app:app"`` and ``clientapp =
"mtsc_sdr.finetune.client_app:app"`` and the whole run configuration in
``[tool.flwr.app.config]``. ``flwr run`` bundles it (a FAB) and submits it to the SuperLink's
Control API; the SuperLink's SuperExec starts ``flwr-serverapp``, each SuperNode's starts a
``flwr-clientapp`` per message. Both import ``mtsc_sdr`` from the environment they run in: every
machine needs this project installed. Nothing is installed at run time: the SuperLink is told
``--disable-runtime-dependency-installation`` (it would ``uv sync`` the app's dependencies), a
SuperNode installs nothing unless given ``--allow-runtime-dependency-installation``. The Flower
processes find ``flower-superexec`` on ``PATH`` (this environment's ``bin`` is put first).
``FLWR_TELEMETRY_ENABLED=0`` and ``FLWR_DISABLE_UPDATE_CHECK=1`` keep them off the network.

**Beyond the machine** (Flower 1.42's flags; not what the loopback test runs):

* TLS. SuperLink: ``--ssl-ca-certfile ca.crt --ssl-certfile server.pem --ssl-keyfile
  server.key`` (all three; the server certificate names the host the nodes dial in its SANs)
  instead of ``--insecure``, and ``--host`` an address the nodes reach. Fleet, Control and Runtime
  API share that one port, so whoever reaches it may also submit runs (Flower's account login for
  the Control API is a separate, enterprise feature): expose it to the nodes only. SuperNode: ``--superlink
  <host>:<port> --root-certificates ca.crt`` (the CA that signed the SuperLink's certificate; not a
  client certificate). The ``flwr`` CLI: ``root-certificates = "ca.crt"`` in the connection's
  ``[superlink.<name>]`` table instead of ``insecure = true``.
* Node authentication (needs TLS). SuperLink: ``--enable-supernode-auth``; then only registered
  nodes may connect. Each node has an ECDSA key pair on a NIST curve in OpenSSH format
  (``ssh-keygen -t ecdsa -b 384 -N "" -f node0``); its public key is registered with
  ``flwr supernode register node0.pub <connection>`` (``flwr supernode list`` shows them), and
  the node starts with ``--auth-supernode-private-key node0``. (``--auth-list-public-keys`` and
  ``--auth-supernode-public-key`` are deprecated in 1.42.)
* A SuperNode's Runtime API (``--host``/``--port``, default 127.0.0.1:9094) and the SuperLink's
  SuperExec stay on the machine; ``--superexec-auth-secret-file`` adds a shared secret to them.

``run_deployment(..., secure=True)`` runs exactly that on loopback: a throwaway CA and a server
certificate for 127.0.0.1 / localhost (:func:`make_tls_files`), one ECDSA P-384 key pair per node
(:func:`make_node_key`), the SuperLink with TLS and ``--enable-supernode-auth``, each node's public
key registered with ``flwr supernode register`` before the node starts with its private key, and
``root-certificates`` in the connection (:func:`secure_commands` builds the command lines).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mtsc_sdr.process import ChildProcess, ProcessFailed, stop_all

from .runconfig import check_value

#: Environment of every Flower process and of the simulation: no telemetry, no update check, no
#: Ray usage report (nothing leaves the machine at run time).
OFFLINE_ENV = {"FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1", "RAY_USAGE_STATS_ENABLED": "0"}
#: Ray binds its GCS, raylet and workers to the machine's address on all interfaces unless told that
#: this is no cluster: then it takes 127.0.0.1 (the variable's name says Windows or macOS, but on
#: Linux too it only chooses the node address). Read when ray is first imported.
RAY_LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
#: Name of the SuperLink connection :func:`run_deployment` writes into ``FLWR_HOME``.
CONNECTION = "mtsc"
#: Flower app components (``module:attribute``).
SERVER_APP = "mtsc_sdr.finetune.server_app:app"
CLIENT_APP = "mtsc_sdr.finetune.client_app:app"


@dataclass
class FederationResult:
    """What a run left: the server's report (:mod:`.server_app`) and the final global state
    (float32 arrays by key)."""

    report: dict[str, Any]
    state: dict[str, np.ndarray]


def _simulation_env() -> None:
    for key, value in {**OFFLINE_ENV, **RAY_LOOPBACK_ENV}.items():
        os.environ.setdefault(key, value)


def _with_outputs(run_config: dict[str, Any], directory: Path) -> dict[str, Any]:
    """``run_config`` with ``report-path`` and ``state-out`` set (in ``directory`` unless given)."""
    config = dict(run_config)
    if not config.get("report-path"):
        config["report-path"] = str(directory / "report.json")
    if not config.get("state-out"):
        config["state-out"] = str(directory / "state.safetensors")
    return config


def _result(config: dict[str, Any]) -> FederationResult:
    from .server_app import load_state

    report_path, state_path = Path(config["report-path"]), Path(config["state-out"])
    if not report_path.exists():
        raise RuntimeError(f"the server app wrote no report ({report_path})")
    report = json.loads(report_path.read_text())
    if "error" in report:
        raise RuntimeError(f"the server app failed: {report['error']}")
    if not state_path.exists():
        raise RuntimeError(f"the server app wrote no final state ({state_path})")
    return FederationResult(report, load_state(state_path))


# -- simulation ---------------------------------------------------------------------------------


def ray_backend_config(num_cpus: int | None = None, cpus_per_client: float = 1.0,
                   object_store_mb: int = 100) -> dict[str, Any]:
    """Ray settings of the simulation engine: ``num_cpus`` for Ray (default: this machine's cores),
    ``cpus_per_client`` per virtual client (so ``num_cpus / cpus_per_client`` train at once), no
    GPU, an object store of ``object_store_mb`` MB (Ray's minimum is about 75), no dashboard."""
    cpus = num_cpus or os.cpu_count() or 1
    return {
        "client_resources": {"num_cpus": cpus_per_client, "num_gpus": 0.0},
        "init_args": {"num_cpus": cpus, "num_gpus": 0, "object_store_memory": object_store_mb * 1024 * 1024,
                      "include_dashboard": False, "logging_level": "WARNING"},
    }


def run_simulation(num_clients: int, rounds: int, run_config: dict[str, Any] | None = None,
                   backend_config: dict[str, Any] | None = None, *, workdir: str | Path | None = None,
                   verbose: bool = False) -> FederationResult:
    """Run the apps in Flower's simulation engine: ``num_clients`` virtual clients, ``rounds``
    rounds.

    Args:
        run_config: the run configuration (:mod:`.runconfig` keys and the task's); ``min-nodes``
            defaults to ``num_clients`` (every client is sampled every round).
        backend_config: Ray settings (default :func:`ray_backend_config`).
        workdir: where the report and final state go unless ``report-path`` / ``state-out`` are
            set (default: a temporary directory, removed afterwards).
        verbose: Flower's DEBUG logging.

    Raises:
        RuntimeError: the server app failed (the cause chained) or wrote no report.
    """
    _simulation_env()                   # before flwr and ray are imported (both read it at import)
    from flwr.simulation import run_simulation as flwr_run_simulation

    from .client_app import make_client_app
    from .server_app import make_server_app

    if num_clients < 1 or rounds < 1:
        raise ValueError(f"need at least one client and one round, got {num_clients} and {rounds}")
    config = {"min-nodes": num_clients, **(run_config or {}), "num-server-rounds": rounds}
    for key, value in config.items():
        check_value(key, value)
    with tempfile.TemporaryDirectory(prefix="mtsc-sim-") as tmp:
        config = _with_outputs(config, Path(workdir) if workdir else Path(tmp))
        saved_pythonpath = os.environ.get("PYTHONPATH")
        try:
            flwr_run_simulation(server_app=make_server_app(config), client_app=make_client_app(config),
                                num_supernodes=num_clients,
                                backend_config=backend_config if backend_config is not None else ray_backend_config(),
                                verbose_logging=verbose)
        finally:
            # Flower's Ray backend puts this process's sys.path into PYTHONPATH for its workers;
            # children started later (GNU Radio's Python above all) must not inherit it
            if saved_pythonpath is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = saved_pythonpath
            _shutdown_ray()
        return _result(config)


def _shutdown_ray() -> None:
    """Flower leaves Ray running after a simulation; the next one must start it afresh."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()


# -- deployment ---------------------------------------------------------------------------------


def write_app_dir(directory: str | Path, run_config: dict[str, Any]) -> Path:
    """Write a Flower app directory for these apps: a ``pyproject.toml`` whose
    ``[tool.flwr.app.config]`` is ``run_config`` (every key ``flwr run -c`` may then override).
    Returns the directory."""
    import tomli_w

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for key, value in run_config.items():
        check_value(key, value)
    pyproject = {
        "project": {"name": "mtsc-sdr-finetune", "version": "0.1.0",
                    "description": "Federated split fine-tuning of mtsc-sdr (Flower apps)",
                    "license": "Apache-2.0", "dependencies": ["flwr==1.42.0"]},
        "tool": {"flwr": {"app": {"publisher": "mtsc-sdr",
                                  "components": {"serverapp": SERVER_APP, "clientapp": CLIENT_APP},
                                  "config": dict(run_config)}}},
    }
    (directory / "pyproject.toml").write_text(tomli_w.dumps(pyproject))
    return directory


def write_connection(flwr_home: str | Path, address: str, *, name: str = CONNECTION, insecure: bool = True,
                     root_certificates: str | None = None) -> Path:
    """Write ``FLWR_HOME/config.toml`` with one SuperLink connection, the default (what ``flwr run``
    and ``flwr ls`` read). Returns the file."""
    import tomli_w

    connection: dict[str, Any] = {"address": address}
    if insecure:
        connection["insecure"] = True
    if root_certificates:
        connection["root-certificates"] = str(root_certificates)
    path = Path(flwr_home) / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tomli_w.dumps({"superlink": {"default": name, name: connection}}))
    return path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _flower_command(name: str) -> str:
    """A Flower console script of this environment (beside its Python), else from PATH."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found beside {sys.executable} or on PATH: install flwr==1.42.0")
    return found


def run_deployment(num_supernodes: int, rounds: int, run_config: dict[str, Any] | None = None, *,
                   workdir: str | Path, node_configs: list[dict[str, Any]] | None = None,
                   env: dict[str, str] | None = None, timeout_s: float = 600.0,
                   startup_timeout_s: float = 60.0, secure: bool = False) -> FederationResult:
    """Run the apps with a real ``flower-superlink`` and ``num_supernodes`` ``flower-supernode``
    processes on loopback (insecure: nothing leaves the machine; ``secure=True``: TLS and node
    authentication, as beyond the machine), ``flwr run``, wait for the run to finish, and stop
    every process. The commands are in the module docstring.

    Args:
        run_config: the run configuration; ``min-nodes`` defaults to ``num_supernodes``.
        workdir: the app directory, ``FLWR_HOME`` and (unless set) the report and final state go here.
        node_configs: extra ``--node-config`` entries per node (partition-id and num-partitions
            are set: node ``i`` is partition ``i`` of ``num_supernodes``).
        env: extra environment for the Flower processes (e.g. ``PYTHONPATH`` for a task module
            outside the installed package).
        timeout_s: how long the run may take, from ``flwr run`` on.
        startup_timeout_s: how long each process may take to report running.
        secure: TLS with a throwaway CA and SuperNode authentication with a key per node
            registered before it starts (files in ``workdir/security``).

    Raises:
        ProcessFailed: a process did not start, died, or the run did not finish in time.
        RuntimeError: the run finished other than ``completed``, or left no report.
    """
    if num_supernodes < 1 or rounds < 1:
        raise ValueError(f"need at least one SuperNode and one round, got {num_supernodes} and {rounds}")
    workdir = Path(workdir).resolve()
    config = _with_outputs({"min-nodes": num_supernodes, **(run_config or {}), "num-server-rounds": rounds}, workdir)
    app_dir = write_app_dir(workdir / "app", config)
    flwr_home = workdir / "flwr-home"
    host, port = "127.0.0.1", free_port()
    tls = make_tls_files(workdir / "security", (host, "localhost")) if secure else None
    node_keys = [make_node_key(workdir / "security" / f"node{i}")[0] for i in range(num_supernodes)] if secure else None
    link_args, node_args = secure_commands(host, port, tls, node_keys)
    write_connection(flwr_home, f"{host}:{port}", insecure=tls is None, root_certificates=tls and str(tls.ca))
    bin_dir = str(Path(sys.executable).parent)
    proc_env = {**OFFLINE_ENV, "FLWR_HOME": str(flwr_home),
                "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""), **(env or {})}

    superlink = ChildProcess(
        "flower-superlink",
        [_flower_command("flower-superlink"), *link_args, "--disable-runtime-dependency-installation",
         "--host", host, "--port", str(port)],
        stdout="merge", env=proc_env, cwd=str(workdir), ready_marker="Uvicorn running on",
        startup_timeout_s=startup_timeout_s)
    nodes = []
    for i in range(num_supernodes):
        node_config = {"partition-id": i, "num-partitions": num_supernodes, **((node_configs or [{}] * num_supernodes)[i])}
        nodes.append(ChildProcess(
            f"flower-supernode {i}",
            [_flower_command("flower-supernode"), *node_args[i if node_keys else 0], "--superlink", f"{host}:{port}",
             "--host", host, "--port", str(free_port()), "--node-config", _node_config_arg(node_config)],
            stdout="merge", env=proc_env, cwd=str(workdir), ready_marker="SuperNode ID",
            startup_timeout_s=startup_timeout_s))
    processes = [superlink, *nodes]
    leftovers: list = []
    try:
        superlink.start()
        for key in node_keys or []:             # only registered nodes may connect
            register = ChildProcess("flwr supernode register", [_flower_command("flwr"), "supernode", "register",
                                                                 f"{key}.pub", CONNECTION],
                                    stdout="capture", env=proc_env, cwd=str(workdir))
            register.start()
            register.communicate(60.0)
        for node in nodes:
            node.start()
        leftovers = _descendants(processes)
        flwr_run = ChildProcess(
            "flwr run", [_flower_command("flwr"), "run", str(app_dir), CONNECTION, "--stream"],
            stdout="merge", env=proc_env, cwd=str(workdir))
        processes.append(flwr_run)
        flwr_run.start()
        deadline = time.monotonic() + timeout_s
        while flwr_run.wait(1.0) is None:
            for proc in processes[:-1]:
                proc.check()
            if time.monotonic() > deadline:
                raise ProcessFailed("flwr run", None, flwr_run.output_tail(),
                                    what=f"did not finish within {timeout_s:g} s")
        flwr_run.check(expect_running=False)
        status = _run_status(proc_env, workdir)
        if status != "finished:completed":
            raise RuntimeError(f"the Flower run ended as {status!r}; its output:\n{flwr_run.output_tail(30)}"
                               f"\n--- SuperLink ---\n{superlink.output_tail(30)}")
        return _result(config)
    finally:
        leftovers += _descendants(processes)
        stop_all(list(reversed(processes)))
        _reap(leftovers)


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of a TLS deployment: the CA certificate, the SuperLink's certificate and its key."""

    ca: Path
    cert: Path
    key: Path


def make_tls_files(directory: str | Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost"),
                   days: int = 30) -> TlsFiles:
    """A throwaway CA and a server certificate it signs, naming ``hosts`` (IP addresses or DNS
    names) in its subject alternative names, as PEM files in ``directory`` (keys mode 0600). For
    tests and a first lab trial; a lab with a CA of its own uses that instead."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)

    def cert(subject, issuer, public_key, signing_key, extensions):
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
                   .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=days)))
        for ext, critical in extensions:
            builder = builder.add_extension(ext, critical=critical)
        return builder.sign(signing_key, hashes.SHA256())

    def write_key(path: Path, key) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))

    ca_key, server_key = ec.generate_private_key(ec.SECP384R1()), ec.generate_private_key(ec.SECP384R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mtsc-sdr throwaway CA")])
    ca_cert = cert(ca_name, ca_name, ca_key.public_key(), ca_key,
                   [(x509.BasicConstraints(ca=True, path_length=0), True)])
    sans = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    server_cert = cert(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]), ca_name,
                       server_key.public_key(), ca_key,
                       [(x509.BasicConstraints(ca=False, path_length=None), True),
                        (x509.SubjectAlternativeName(sans), False)])
    files = TlsFiles(directory / "ca.crt", directory / "server.pem", directory / "server.key")
    files.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    write_key(files.key, server_key)
    return files


def make_node_key(path: str | Path) -> tuple[Path, Path]:
    """A SuperNode's authentication key pair (ECDSA P-384, OpenSSH format, what ``ssh-keygen -t
    ecdsa -b 384`` makes): ``path`` (private, mode 0600) and ``path.pub``. Returns both paths."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    path = Path(path)
    key = ec.generate_private_key(ec.SECP384R1())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                  serialization.NoEncryption()))
    public = path.with_name(path.name + ".pub")
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                     serialization.PublicFormat.OpenSSH) + b"\n")
    return path, public


def secure_commands(host: str, port: int, tls: TlsFiles | None, node_keys: list[Path] | None
                    ) -> tuple[list[str], list[list[str]]]:
    """The security arguments of the SuperLink and of each SuperNode: ``--insecure`` for both
    without ``tls`` (loopback only); with it TLS (SuperLink: CA, certificate, key; nodes: the CA as
    root certificate) and, with ``node_keys`` (private key files, one per node), node
    authentication (``--enable-supernode-auth``; each node ``--auth-supernode-private-key``)."""
    n = len(node_keys or [])
    if tls is None:
        if node_keys:
            raise ValueError("node authentication needs TLS")
        return ["--insecure"], [["--insecure"]]
    link = ["--ssl-ca-certfile", str(tls.ca), "--ssl-certfile", str(tls.cert), "--ssl-keyfile", str(tls.key)]
    if node_keys:
        link.append("--enable-supernode-auth")
    nodes = [["--root-certificates", str(tls.ca)] + (["--auth-supernode-private-key", str(k)] if node_keys else [])
             for k in (node_keys or [None])]
    return link, nodes if n else nodes[:1]


def _node_config_arg(node_config: dict[str, Any]) -> str:
    """``--node-config`` text: space-separated ``key=value`` with TOML values."""
    parts = []
    for key, value in node_config.items():
        check_value(key, value)
        parts.append(f"{key}={json.dumps(value) if isinstance(value, (str, bool)) else value}")
    return " ".join(parts)


def _run_status(env: dict[str, str], workdir: Path) -> str:
    """The status of the run on the connection (``flwr ls --format json``; the only run)."""
    ls = ChildProcess("flwr ls", [_flower_command("flwr"), "ls", CONNECTION, "--format", "json"],
                      stdout="capture", env=env, cwd=str(workdir))
    ls.start()
    text = ls.communicate(60.0)
    runs = json.loads(text[text.index("{"):]).get("runs", [])
    if len(runs) != 1:
        raise RuntimeError(f"expected one run on the SuperLink, `flwr ls` shows {len(runs)}")
    return str(runs[0].get("status"))


def _descendants(processes: list[ChildProcess]) -> list:
    """Every live descendant of ``processes`` (psutil objects): Flower's SuperExec and app
    processes start in sessions of their own, out of reach of a process-group signal."""
    try:
        import psutil
    except ImportError:
        return []
    found = []
    for proc in processes:
        if proc.pid is not None and proc.running:
            try:
                found += psutil.Process(proc.pid).children(recursive=True)
            except psutil.Error:
                pass
    return found


def _reap(leftovers: list, timeout_s: float = 5.0) -> None:
    """Wait for the processes our children started to end (a SuperExec exits once its parent
    is gone); terminate, then kill, any that do not."""
    if not leftovers:
        return
    import psutil

    _, alive = psutil.wait_procs(list({p.pid: p for p in leftovers}.values()), timeout=timeout_s)
    for action in ("terminate", "kill"):
        for proc in alive:
            try:
                getattr(proc, action)()
            except psutil.Error:
                pass
        _, alive = psutil.wait_procs(alive, timeout=timeout_s)


__all__ = ["CLIENT_APP", "CONNECTION", "FederationResult", "OFFLINE_ENV", "RAY_LOOPBACK_ENV", "SERVER_APP",
           "TlsFiles", "free_port", "make_node_key", "make_tls_files", "secure_commands", "ray_backend_config", "run_deployment", "run_simulation", "write_app_dir",
           "write_connection"]
