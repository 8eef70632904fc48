"""The webhook server over real HTTPS on 127.0.0.1: reviews, reload, certificate swap.

Certificates come from files here (the cert-manager mode); the operator-made
CA, its Secret and the caBundle patch are exercised against the real API
server in e2e/test_injection.py.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import json
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from injection_testkit import TEMPLATE_FILE, apply_patch

from switchman_operator.webhook import WebhookSettings, run_webhook
from switchman_operator.webhook.certs import issue, make_ca, renew_at

POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"generateName": "chat-", "namespace": "apps"},
    "spec": {"containers": [{"name": "app", "image": "example.com/chat:1"}]},
}


def admission_review(pod: dict[str, Any], operation: str = "CREATE") -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "0f6e1b5e-1c8e-4a55-9d7d-1d2a0c1f0001",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": operation,
            "namespace": pod["metadata"]["namespace"],
            "object": pod,
        },
    }


def annotated(**annotations: str) -> dict[str, Any]:
    return {**POD, "metadata": {**POD["metadata"], "annotations": annotations}}


@dataclass
class Running:
    url: str
    ca_file: Path
    cert_dir: Path
    template: Path
    values: Path

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(verify=ssl.create_default_context(cafile=self.ca_file))

    async def review(self, body: Any, path: str = "/inject") -> tuple[int, Any]:
        async with self.client() as c:
            r = await c.post(self.url + path, json=body, timeout=5)
            return r.status_code, r.json()

    async def peer_cert(self) -> x509.Certificate:
        host, port = self.url.removeprefix("https://").split(":")
        ctx = ssl.create_default_context(cafile=self.ca_file)
        _, writer = await asyncio.open_connection(host, int(port), ssl=ctx)
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()
        return x509.load_der_x509_certificate(der)


def write_certs(cert_dir: Path, ca_file: Path, validity: float = 3600) -> None:
    ca = make_ca(86400)
    tls = issue(ca, ["127.0.0.1"], validity)
    cert_dir.mkdir(exist_ok=True)
    (cert_dir / "tls.crt").write_bytes(tls.cert_pem)
    (cert_dir / "tls.key").write_bytes(tls.key_pem)
    (cert_dir / "ca.crt").write_bytes(ca.cert_pem)
    ca_file.write_bytes(ca.cert_pem)


async def wait_for(cond: Any, within: float = 10.0, step: float = 0.05) -> None:
    for _ in range(int(within / step)):
        if await cond():
            return
        await asyncio.sleep(step)
    raise AssertionError(f"condition not met within {within} s")


@pytest.fixture
async def webhook(tmp_path: Path) -> AsyncIterator[Running]:
    cert_dir, ca_file = tmp_path / "tls", tmp_path / "trust.pem"
    write_certs(cert_dir, ca_file)
    template, values = tmp_path / "template.yaml", tmp_path / "values.json"
    template.write_text(TEMPLATE_FILE.read_text())
    values.write_text(json.dumps({"operatorAddress": "op.example:15010"}))
    settings = WebhookSettings(
        enabled=True,
        address="127.0.0.1:0",
        template_file=template,
        values_file=values,
        reload_interval=0.05,
        cert_mode="files",
        cert_dir=cert_dir,
        cert_validity=10.0,  # certificate files are re-checked every 0.5 s
        operator_namespace="switchman-system",
    )
    started: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        run_webhook(settings, None, on_started=lambda port: started.set_result(port))
    )
    port = await asyncio.wait_for(asyncio.shield(started), 10)
    try:
        yield Running(f"https://127.0.0.1:{port}", ca_file, cert_dir, template, values)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_annotated_pod_is_patched(webhook: Running) -> None:
    pod = annotated(**{"switchman.io/inject": "true"})
    status, body = await webhook.review(admission_review(pod))
    assert status == 200
    response = body["response"]
    assert response["uid"] == "0f6e1b5e-1c8e-4a55-9d7d-1d2a0c1f0001"
    assert response["allowed"] is True
    assert response["patchType"] == "JSONPatch"
    stored = apply_patch(pod, json.loads(base64.b64decode(response["patch"])))
    sidecar = stored["spec"]["initContainers"][0]
    assert sidecar["restartPolicy"] == "Always"
    env = {e["name"]: e.get("value") for e in sidecar["env"]}
    assert env["SWITCHMAN_OPERATOR_ADDRESS"] == "op.example:15010"
    # The CA the sidecar verifies the operator with is the mounted ca.crt.
    ca = stored["metadata"]["annotations"]["switchman.io/operator-ca"]
    assert ca == (webhook.cert_dir / "ca.crt").read_text()


async def test_namespace_path_injects_unannotated_pods(webhook: Running) -> None:
    _, plain = await webhook.review(admission_review(POD))
    assert plain["response"] == {"uid": plain["response"]["uid"], "allowed": True}
    _, labelled = await webhook.review(admission_review(POD), "/inject/namespace")
    assert labelled["response"]["patchType"] == "JSONPatch"


async def test_refusal_carries_the_message(webhook: Running) -> None:
    pod = annotated(**{"switchman.io/inject": "true", "switchman.io/log-level": "loud"})
    _, body = await webhook.review(admission_review(pod))
    assert body["response"]["allowed"] is False
    assert body["response"]["status"]["code"] == 400
    assert "switchman.io/log-level: 'loud' is not one of" in body["response"]["status"]["message"]


async def test_other_operations_and_bad_bodies(webhook: Running) -> None:
    _, body = await webhook.review(
        admission_review(annotated(**{"switchman.io/inject": "true"}), "UPDATE")
    )
    assert body["response"]["allowed"] is True and "patch" not in body["response"]
    status, body = await webhook.review({"kind": "Something"})
    assert status == 400 and "AdmissionReview" in body["error"]
    async with webhook.client() as c:
        r = await c.post(webhook.url + "/inject", content=b"{not json", timeout=5)
        assert r.status_code == 400


async def test_template_reload_keeps_last_good(webhook: Running) -> None:
    pod = annotated(**{"switchman.io/inject": "true"})

    async def image() -> str:
        _, body = await webhook.review(admission_review(pod))
        stored = apply_patch(pod, json.loads(base64.b64decode(body["response"]["patch"])))
        return str(stored["spec"]["initContainers"][0]["image"])

    webhook.values.write_text(json.dumps({"image": "registry.example/sidecar:2"}))
    await wait_for(lambda: _eq(image(), "registry.example/sidecar:2"))
    # A broken template is refused at load; the previous one keeps injecting.
    webhook.template.write_text("sidecar: {name: x, image: '${nope}'}\n")
    async with webhook.client() as c:

        async def rejected() -> bool:
            r = await c.get(webhook.url + "/readyz", timeout=5)
            return "nope" in (r.json()["templateError"] or "")

        await wait_for(rejected)
    assert await image() == "registry.example/sidecar:2"


async def _eq(value: Any, expected: Any) -> bool:
    return bool(await value == expected)


async def test_certificate_files_are_swapped_without_restart(webhook: Running) -> None:
    first = await webhook.peer_cert()
    write_certs(webhook.cert_dir, webhook.ca_file)

    async def swapped() -> bool:
        # The trust file now holds the new CA: the old certificate fails to verify.
        try:
            return (await webhook.peer_cert()).serial_number != first.serial_number
        except ssl.SSLCertVerificationError:
            return False

    await wait_for(swapped)
    status, _ = await webhook.review(admission_review(POD))
    assert status == 200


def test_renewal_is_due_at_two_thirds() -> None:
    now = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC)
    tls = issue(make_ca(3600, now), ["svc.ns.svc"], 300, now)
    cert = x509.load_pem_x509_certificate(tls.cert_pem)
    assert cert.not_valid_after_utc == now + datetime.timedelta(seconds=300)
    assert cert.not_valid_before_utc < now  # backdated for clock skew
    assert renew_at(tls.cert_pem) == now + datetime.timedelta(seconds=200)
    # A certificate never outlives its CA.
    short = issue(make_ca(60, now), ["a"], 300, now)
    assert x509.load_pem_x509_certificate(short.cert_pem).not_valid_after_utc == now + (
        datetime.timedelta(seconds=60)
    )
    assert x509.load_pem_x509_certificate(tls.ca_pem).subject != cert.subject
