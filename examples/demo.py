"""`make demo`: Switchman on the local control plane, step by step.

Brings up the local Kubernetes control plane under .cluster/ (or reuses the
running one), installs the CRDs, applies the sample resources and shows what
`kubectl` users see. Leaves the cluster running; `make cluster-down` stops it.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "e2e"))

from cluster.harness import Cluster  # noqa: E402


def step(title: str) -> None:
    print(f"\n\033[1m==> {title}\033[0m", flush=True)


def run(cluster: Cluster, *args: str) -> str:
    print(f"$ kubectl {' '.join(args)}", flush=True)
    out = cluster.kubectl(*args).stdout
    print(out, end="" if out.endswith("\n") else "\n", flush=True)
    return out


def local_cluster() -> Cluster:
    workdir = REPO / ".cluster"
    if (workdir / "state.json").exists():
        existing = Cluster.load(workdir)
        if existing.pids:
            try:
                if existing.get("/readyz")[0] == 200:
                    return existing
            except OSError:
                pass
            existing.stop()
    return Cluster(workdir).start()


def main() -> int:
    step("Local control plane (etcd, kube-apiserver, kube-controller-manager on 127.0.0.1)")
    cluster = local_cluster()
    run(cluster, "version", "--output=yaml")
    step("Install the CRDs")
    run(cluster, "apply", "--server-side", "-f", str(REPO / "crds"))
    run(cluster, "wait", "--for=condition=Established", "--timeout=60s", "-f", str(REPO / "crds"))
    step("Apply the sample pool, policy and budget (examples/)")
    for name in ("namespace.yaml", "modelpool.yaml", "routingpolicy.yaml", "teambudget.yaml"):
        run(cluster, "apply", "-f", str(REPO / "examples" / name))
    step("What platform teams see")
    run(cluster, "get", "modelpools,routingpolicies,teambudgets", "-n", "checkout")
    step("A bad resource is refused at apply time")
    bad = "apiVersion: switchman.io/v1alpha1\nkind: TeamBudget\nmetadata: {name: oops}\n"
    bad += "spec: {team: checkout, limit: 100, hardAction: downgrade}\n"
    print("$ kubectl apply -f - <<< '...hardAction: downgrade without downgradeModel...'")
    proc = cluster.kubectl("apply", "-n", "checkout", "-f", "-", input=bad, check=False)
    print(proc.stderr.strip())
    print(f"\nThe cluster keeps running. export KUBECONFIG={cluster.kubeconfig}")
    print("Stop it with: make cluster-down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
