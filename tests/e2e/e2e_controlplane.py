"""A real Kubernetes control plane on loopback: etcd, kube-apiserver (RBAC on), kube-controller-manager.

Why: the operator's scenarios must run against the real API server, not only against the stand-in
written here (issue #12). The binaries are built from the k8s.io/kubernetes Go module of one release
through our small Go module in tests/e2e/kube/ (it imports the upstream command packages and pins every
k8s.io staging module to the same release), with the Go release that Kubernetes release names in its
.go-version (a newer Go served 503 on /openapi/v2 and /v3). They are cached under
~/.cache/gpusched-e2e/<release>-go<go>/, so only the first run pays the build.

Everything is generated per start in a private directory: a CA and the serving certificate (openssl),
the service-account signing key, a static token file for the two admin identities (the harness and
kube-controller-manager); every port is picked free on 127.0.0.1. `stop()` ends every process this
module started (and the kernel ends them too if the launcher dies: PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
GO_MODULE = HERE / "kube"
"""Our Go module: one main package per binary, all from the same k8s.io/kubernetes release."""
BINARIES = ("kube-apiserver", "kube-controller-manager", "etcd", "kubectl")
HELM_MODULE = "helm.sh/helm/v4"
HELM_VERSION = "v4.3.2"
CACHE = Path(os.environ.get("GPUSCHED_E2E_CACHE", "~/.cache/gpusched-e2e")).expanduser()
OPERATOR_SA = ("gpusched-system", "gpusched-operator")
"""The ServiceAccount deploy/operator/rbac.yaml binds to the shipped ClusterRole: the operator's identity."""


class ControlPlaneError(RuntimeError):
    """The control plane could not be built or started; the message says which part and why."""


def log(message: str) -> None:
    print(f"[e2e] {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------- build


def kubernetes_release() -> str:
    """The k8s.io/kubernetes version our Go module requires (the one release everything is built from)."""
    for line in (GO_MODULE / "go.mod").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "k8s.io/kubernetes" and parts[1].startswith("v"):
            return parts[1]
    raise ControlPlaneError(f"{GO_MODULE / 'go.mod'}: no k8s.io/kubernetes requirement")


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise ControlPlaneError("go is not on PATH (Go >= 1.21 is needed to fetch the pinned toolchain)")
    return go


def go_release(release: str) -> str:
    """The Go release named by the Kubernetes release's own .go-version (module download, no build)."""
    out = subprocess.run(
        [_go(), "mod", "download", "-json", f"k8s.io/kubernetes@{release}"],
        cwd=GO_MODULE,
        capture_output=True,
        text=True,
        env={**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod"},
    )
    if out.returncode != 0:
        raise ControlPlaneError(f"go mod download k8s.io/kubernetes@{release}: {out.stderr.strip()[-2000:]}")
    source = Path(json.loads(out.stdout)["Dir"])
    return (source / ".go-version").read_text().strip()


def bin_dir(release: str, go: str) -> Path:
    return CACHE / f"{release}-go{go}" / "bin"


def build(force: bool = False) -> Path:
    """Build (or find in the cache) kube-apiserver, kube-controller-manager, etcd, kubectl and helm."""
    release = kubernetes_release()
    go = go_release(release)
    target = bin_dir(release, go)
    wanted = [*BINARIES, "helm"]
    if not force and all((target / name).is_file() for name in wanted):
        log(f"binaries of Kubernetes {release} (go{go}) from the cache {target}")
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="bin-", dir=target.parent))
    version = "k8s.io/component-base/version"
    major, minor = release.lstrip("v").split(".")[:2]
    ldflags = (
        f"-s -w -X {version}.gitVersion={release} -X {version}.gitMajor={major} "
        f"-X {version}.gitMinor={minor} -X {version}.gitTreeState=clean"
    )
    env = {**os.environ, "GOTOOLCHAIN": f"go{go}", "GOFLAGS": "-trimpath -mod=mod", "CGO_ENABLED": "0"}
    started = time.monotonic()
    log(f"building {', '.join(BINARIES)} of Kubernetes {release} with go{go} (first time: minutes)")
    packages = [f"./{name}" for name in BINARIES]
    _run([_go(), "build", f"-ldflags={ldflags}", "-o", str(staging) + "/", *packages], GO_MODULE, env)
    built = time.monotonic() - started
    log(f"built the control plane in {built:.0f} s; helm {HELM_VERSION} next")
    helm_ldflags = f"-s -w -X helm.sh/helm/v4/internal/version.version={HELM_VERSION}"
    _run(
        [_go(), "install", f"-ldflags={helm_ldflags}", f"{HELM_MODULE}/cmd/helm@{HELM_VERSION}"],
        staging,
        {**env, "GOBIN": str(staging), "GOFLAGS": "-trimpath"},
    )
    log(f"built everything in {time.monotonic() - started:.0f} s")
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    return target


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> None:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise ControlPlaneError(f"{' '.join(cmd[:3])}: exit {result.returncode}: {result.stderr[-4000:]}")


# ----------------------------------------------------------------------------------------- start


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """In the child: the kernel sends SIGKILL when the launcher dies, so nothing outlives it."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise ControlPlaneError(f"openssl {args[0]}: {result.stderr.strip()[-1000:]}")


def ensure_openssl() -> None:
    """openssl makes the certificates; on a fresh Debian CI machine (root) install it with apt-get."""
    if shutil.which("openssl") is not None:
        return
    if os.geteuid() == 0 and shutil.which("apt-get") is not None:
        log("installing openssl with apt-get")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "openssl"], env=env, capture_output=True)
    if shutil.which("openssl") is None:
        raise ControlPlaneError("openssl is not on PATH and could not be installed (apt-get install openssl)")


def make_certificates(pki: Path) -> None:
    """A throw-away CA, kube-apiserver's serving certificate for 127.0.0.1, the SA signing key."""
    ensure_openssl()
    pki.mkdir(parents=True, exist_ok=True)
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
        "-days", "3", "-subj", "/CN=gpusched-e2e-ca", cwd=pki,
    )  # fmt: skip
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "apiserver.key", "-out", "apiserver.csr",
        "-subj", "/CN=kube-apiserver", cwd=pki,
    )  # fmt: skip
    (pki / "apiserver.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default.svc\n"
        "extendedKeyUsage=serverAuth\nkeyUsage=digitalSignature,keyEncipherment\n"
    )
    _openssl(
        "x509", "-req", "-in", "apiserver.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "apiserver.crt", "-days", "3", "-extfile", "apiserver.ext", cwd=pki,
    )  # fmt: skip
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=pki)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)


def write_kubeconfig(path: Path, server: str, ca: Path, user: str, token: str) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "e2e", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": user}}],
        "current-context": "e2e",
    }
    path.write_text(json.dumps(config, indent=1))  # JSON is YAML
    path.chmod(0o600)
    return path


AUDIT_POLICY: dict[str, Any] = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    # One event per request, when it is answered (a watch: also when its stream starts).
    "omitStages": ["RequestReceived"],
    "rules": [
        # Who asked what of which resource, and the answer's code: the request log the stand-in keeps
        # per token. Only the suite's identities: kube-controller-manager and the server itself
        # (system:apiserver) would drown them.
        {"level": "Metadata", "users": ["gpusched-e2e-admin"]},
        {"level": "Metadata", "userGroups": ["system:serviceaccounts"]},
        {"level": "None"},
    ],
}
"""kube-apiserver's audit policy (--audit-policy-file): the harness' and every ServiceAccount's requests."""


class ControlPlane:
    """etcd + kube-apiserver (+ kube-controller-manager without the node lifecycle controller).

    Use as a context manager, or start()/stop(). `kubeconfig` is an admin identity (system:masters)
    for the harness; `operator_kubeconfig()` makes the operator's, bound only to deploy/'s RBAC.
    """

    def __init__(
        self,
        bins: Path,
        controller_manager: bool = True,
        workdir: Path | None = None,
        watch_cache: bool = True,
        audit: bool = True,
    ) -> None:
        self.bins = bins
        self.controller_manager = controller_manager
        self.watch_cache = watch_cache
        """False: kube-apiserver serves every watch straight from etcd (--watch-cache=false), so a
        compacted etcd revision answers 410 Gone as it would behind an evicted watch cache window."""
        self.audit = audit
        self.keep = workdir is not None
        self.dir = workdir or Path(tempfile.mkdtemp(prefix="gpusched-e2e-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.processes: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.server = ""
        self.kubeconfig = self.dir / "admin.kubeconfig"
        self.ca = self.dir / "pki" / "ca.crt"
        self._admin_token = secrets.token_hex(16)
        self.etcd_url = ""
        """etcd's client URL (its v3 JSON gateway serves /v3/kv/range and /v3/kv/compaction there)."""
        self.audit_log = self.dir / "audit.log"
        """The real server's request log (JSON lines, one audit.k8s.io/v1 Event per request stage)."""

    def __enter__(self) -> ControlPlane:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ processes

    def _spawn(self, name: str, cmd: list[str]) -> subprocess.Popen[bytes]:
        logfile = open(self.dir / f"{name}.log", "wb")  # noqa: SIM115 (owned by the process)
        proc = subprocess.Popen(
            cmd,
            stdout=logfile,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        logfile.close()
        self.processes.append((name, proc))
        return proc

    def _wait(
        self, name: str, proc: subprocess.Popen[bytes], ready: Callable[[], bool], timeout: float
    ) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = (self.dir / f"{name}.log").read_text(errors="replace")[-3000:]
                raise ControlPlaneError(f"{name} exited with {proc.returncode}:\n{tail}")
            try:
                if ready():
                    return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.2)
        tail = (self.dir / f"{name}.log").read_text(errors="replace")[-3000:]
        raise ControlPlaneError(f"{name} not ready after {timeout:.0f} s:\n{tail}")

    def _get(self, path: str) -> tuple[int, bytes]:
        context = ssl.create_default_context(cafile=str(self.ca))
        request = urllib.request.Request(
            self.server + path, headers={"Authorization": f"Bearer {self._admin_token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=5, context=context) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    # ------------------------------------------------------------------ start / stop

    def start(self) -> ControlPlane:
        started = time.monotonic()
        pki = self.dir / "pki"
        make_certificates(pki)
        controller_token = secrets.token_hex(16)
        tokens = pki / "tokens.csv"
        # The harness' identity and kube-controller-manager's (whose controllers run under its own
        # user here, not per-controller ServiceAccounts): both cluster admins. Never the operator.
        tokens.write_text(
            f'{self._admin_token},gpusched-e2e-admin,gpusched-e2e-admin,"system:masters"\n'
            f'{controller_token},system:kube-controller-manager,kcm,"system:masters"\n'
        )
        tokens.chmod(0o600)

        client, peer = free_port(), free_port()
        etcd = self._spawn(
            "etcd",
            [
                str(self.bins / "etcd"),
                "--name=e2e",
                f"--data-dir={self.dir / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{client}",
                f"--advertise-client-urls=http://127.0.0.1:{client}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=e2e=http://127.0.0.1:{peer}",
                "--listen-metrics-urls=",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )

        def etcd_ready() -> bool:
            with urllib.request.urlopen(f"http://127.0.0.1:{client}/health", timeout=2) as response:
                return bool(json.loads(response.read()).get("health") == "true")

        self._wait("etcd", etcd, etcd_ready, 60)
        self.etcd_url = f"http://127.0.0.1:{client}"
        audit_flags = []
        if self.audit:
            policy = self.dir / "audit-policy.yaml"
            policy.write_text(json.dumps(AUDIT_POLICY, indent=1))  # JSON is YAML
            audit_flags = [
                f"--audit-policy-file={policy}",
                f"--audit-log-path={self.audit_log}",
                "--audit-log-format=json",
                "--audit-log-mode=blocking",  # written before the response: a test reads it at once
                "--audit-log-maxsize=0",
            ]

        port = free_port()
        self.server = f"https://127.0.0.1:{port}"
        apiserver = self._spawn(
            "kube-apiserver",
            [
                str(self.bins / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{client}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={port}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                f"--token-auth-file={tokens}",
                "--authorization-mode=Node,RBAC",
                "--anonymous-auth=false",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--service-cluster-ip-range=10.96.0.0/16",
                # The `kubernetes` Service's endpoints may not be a loopback address.
                "--endpoint-reconciler-type=none",
                "--allow-privileged=true",
                "--profiling=false",
                f"--cert-dir={pki}",
                f"--watch-cache={'true' if self.watch_cache else 'false'}",
                *audit_flags,
            ],
        )
        self._wait("kube-apiserver", apiserver, lambda: self._get("/readyz")[0] == 200, 180)
        write_kubeconfig(self.kubeconfig, self.server, self.ca, "gpusched-e2e-admin", self._admin_token)

        if self.controller_manager:
            kcm_config = write_kubeconfig(
                self.dir / "kcm.kubeconfig", self.server, self.ca, "kcm", controller_token
            )
            kcm = self._spawn(
                "kube-controller-manager",
                [
                    str(self.bins / "kube-controller-manager"),
                    f"--kubeconfig={kcm_config}",
                    f"--authentication-kubeconfig={kcm_config}",
                    f"--authorization-kubeconfig={kcm_config}",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={free_port()}",
                    "--leader-elect=false",
                    # The harness plays the kubelets; a node lifecycle controller would evict its pods
                    # whenever a loaded machine delays a heartbeat.
                    "--controllers=*,-node-lifecycle-controller",
                    f"--service-account-private-key-file={pki / 'sa.key'}",
                    f"--root-ca-file={pki / 'ca.crt'}",
                    "--use-service-account-credentials=false",
                    "--profiling=false",
                ],
            )
            # Ready when the namespace controller has made kube-root-ca.crt in `default`.
            self._wait(
                "kube-controller-manager",
                kcm,
                lambda: self._get("/api/v1/namespaces/default/configmaps/kube-root-ca.crt")[0] == 200,
                120,
            )
        log(f"control plane up at {self.server} in {time.monotonic() - started:.1f} s ({self.dir})")
        return self

    def stop(self) -> None:
        """End every process started here (newest first), then remove the work directory."""
        for _name, proc in reversed(self.processes):
            if proc.poll() is None:
                proc.terminate()
        for _name, proc in reversed(self.processes):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        self.processes.clear()
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    # ------------------------------------------------------------------ kubectl and identities

    def kubectl(
        self, *args: str, check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bins / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args]
        result = subprocess.run(cmd, capture_output=True, text=True, input=stdin, timeout=120)
        if check and result.returncode != 0:
            raise ControlPlaneError(f"kubectl {' '.join(args)}: exit {result.returncode}: {result.stderr}")
        return result

    def helm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bins / "helm"), f"--kubeconfig={self.kubeconfig}", *args]
        env = {**os.environ, "HELM_CACHE_HOME": str(self.dir / "helm/cache"),
               "HELM_CONFIG_HOME": str(self.dir / "helm/config"), "HELM_DATA_HOME": str(self.dir / "helm/data")}  # fmt: skip
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
        if check and result.returncode != 0:
            raise ControlPlaneError(f"helm {' '.join(args)}: exit {result.returncode}: {result.stderr}")
        return result

    def service_account_kubeconfig(self, namespace: str, name: str, path: Path) -> Path:
        """A kubeconfig with a token of that ServiceAccount (TokenRequest API, via kubectl)."""
        token = self.kubectl("create", "token", name, "-n", namespace, "--duration=24h").stdout.strip()
        return write_kubeconfig(path, self.server, self.ca, f"{namespace}-{name}", token)

    def deploy_operator_identity(self) -> Path:
        """kubectl-apply deploy/'s CRDs and the operator's RBAC as shipped; the operator's kubeconfig."""
        self.kubectl("create", "namespace", OPERATOR_SA[0])
        self.kubectl(
            "apply",
            "-f", str(ROOT / "deploy/crds/gpujobs.yaml"),
            "-f", str(ROOT / "deploy/agent/gpunode-crd.yaml"),
            "-f", str(ROOT / "deploy/operator/rbac.yaml"),
        )  # fmt: skip
        self.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/gpujobs.gpusched.io")
        return self.service_account_kubeconfig(*OPERATOR_SA, self.dir / "operator.kubeconfig")


def env_for_suite(plane: ControlPlane, operator_kubeconfig: Path) -> dict[str, str]:
    """What the scenario harness (tests/scheduler/conftest.py) and tests/e2e read."""
    return {
        "GPUSCHED_E2E_KUBECONFIG": str(plane.kubeconfig),
        "GPUSCHED_E2E_OPERATOR_KUBECONFIG": str(operator_kubeconfig),
        "GPUSCHED_E2E_OPERATOR_SA": "/".join(OPERATOR_SA),
        "GPUSCHED_E2E_BIN": str(plane.bins),
        "GPUSCHED_E2E_AUDIT_LOG": str(plane.audit_log) if plane.audit else "",
    }


def describe(plane: ControlPlane) -> dict[str, Any]:
    status, body = plane._get("/version")
    return json.loads(body) if status == 200 else {"status": status}
