"""The GPUJob the README tutorial applies is valid against the shipped CRD's schema."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_tutorial_gpujob_matches_the_crd_schema() -> None:
    crd = yaml.safe_load((ROOT / "deploy/crds/gpujobs.yaml").read_text())
    version = next(v for v in crd["spec"]["versions"] if v["storage"])
    job = yaml.safe_load((ROOT / "examples/k8s/gpujob.yaml").read_text())
    assert job["kind"] == crd["spec"]["names"]["kind"]
    assert job["apiVersion"] == f"{crd['spec']['group']}/{version['name']}"
    # OpenAPI v3.0 schemas use draft-4 keywords (exclusiveMinimum: true); x-kubernetes-* are ignored.
    validator = jsonschema.Draft4Validator(version["schema"]["openAPIV3Schema"])
    assert list(validator.iter_errors(job)) == []
    bad = {**job, "spec": {**job["spec"], "gpus": "two"}}
    assert list(validator.iter_errors(bad)), "the schema accepted gpus: 'two'"
