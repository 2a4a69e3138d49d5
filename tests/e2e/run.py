"""One command for the e2e suite on a real control plane: build (or reuse), start, test, tear down.

    python tests/e2e/run.py                      # the whole e2e suite
    python tests/e2e/run.py --deselect-known     # minus e2e_suite.KNOWN_FAILURES (reasons printed)
    python tests/e2e/run.py -- -k lease -x       # anything after -- goes to pytest
    python tests/e2e/run.py --build-only         # fill the cache (~/.cache/gpusched-e2e) and stop
    python tests/e2e/run.py --shell              # start, print the kubeconfigs, wait for Ctrl-C

The exit code is pytest's (2 with one `error:` line when the control plane cannot be built or started).
The operator runs as the ServiceAccount gpusched-system/gpusched-operator, bound by
deploy/operator/rbac.yaml (applied with kubectl) to the shipped ClusterRole only; the harness itself
(fake nodes, fake kubelet) is a cluster admin.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from e2e_controlplane import (  # noqa: E402 (after the path is set)
    ROOT,
    ControlPlane,
    ControlPlaneError,
    build,
    describe,
    env_for_suite,
    log,
)

SUITE = ["tests/scheduler", "tests/e2e"]
"""Where the e2e suite's tests live (e2e_suite picks the harness and `e2e` tests out of them)."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--build-only", action="store_true", help="build or find the binaries, then stop")
    parser.add_argument("--rebuild", action="store_true", help="build even when the cache has the binaries")
    parser.add_argument("--no-controller-manager", action="store_true", help="a bare kube-apiserver + etcd")
    parser.add_argument("--deselect-known", action="store_true", help="skip e2e_suite.KNOWN_FAILURES")
    parser.add_argument("--keep", type=Path, help="work directory to keep (logs, certs, kubeconfigs)")
    parser.add_argument("--shell", action="store_true", help="start the control plane and wait for Ctrl-C")
    parser.add_argument("pytest_args", nargs="*", help="after --: extra pytest arguments")
    args = parser.parse_args(argv)

    # SIGTERM (a CI timeout) must tear down like Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        started = time.monotonic()
        bins = build(force=args.rebuild)
        log(f"binaries ready in {time.monotonic() - started:.1f} s")
        if args.build_only:
            return 0
        with ControlPlane(
            bins, controller_manager=not args.no_controller_manager, workdir=args.keep
        ) as plane:
            log(f"kube-apiserver {describe(plane).get('gitVersion')}")
            operator = plane.deploy_operator_identity()
            env = {
                **os.environ,
                **env_for_suite(plane, operator),
                "PYTHONPATH": os.pathsep.join(
                    filter(None, [str(ROOT), str(HERE), os.environ.get("PYTHONPATH")])
                ),
            }
            if args.deselect_known:
                env["GPUSCHED_E2E_DESELECT_KNOWN"] = "1"
            if args.shell:
                for key in (
                    "GPUSCHED_E2E_KUBECONFIG",
                    "GPUSCHED_E2E_OPERATOR_KUBECONFIG",
                    "GPUSCHED_E2E_BIN",
                ):
                    print(f"export {key}={env[key]}")
                print("# Ctrl-C stops the control plane", flush=True)
                while True:
                    time.sleep(3600)
            cmd = [sys.executable, "-m", "pytest", "-p", "e2e_suite", "-q", *SUITE, *args.pytest_args]
            log("running " + " ".join(cmd[1:]))
            return subprocess.run(cmd, cwd=ROOT, env=env).returncode
    except ControlPlaneError as err:
        print(f"error: e2e control plane: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        log("interrupted: control plane stopped")
        return 130


if __name__ == "__main__":
    sys.exit(main())
