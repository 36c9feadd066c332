"""A node joining a cluster from another machine, kubeadm-join style, and keeping its
certificate fresh.

1. Discovery: connect to the gateway's token port without trusting it yet, read the
   certificate chain it sends and keep the CA certificate whose fingerprint is the one the
   operator pinned (``ringrift certs fingerprint``); check the gateway's certificate was
   signed by it. Nothing secret has been sent.
2. Join: over TLS verified against that CA, send the one-time join token and a request for
   a fresh key (which never leaves the node); get the certificate as agent <node_id>.
3. Renewal: once less than a third of the certificate's lifetime is left, a new key and a
   request go to the gateway over mutual TLS with the current certificate; the new files
   replace the old atomically and every server port and channel picks them up.

`cryptography` (through pki) is imported by the steps that make keys, requests and
fingerprints, when they run: an agent that only checks when its certificate is due
(certinfo) does not hold it in memory (~12 MiB).
"""

from __future__ import annotations

import _ssl  # the certificate encodings of CPython's chain accessor
import asyncio
import datetime as dt
import importlib
import ipaddress
import json
import logging
import socket
import ssl
from pathlib import Path
from typing import Any

import grpc

from ringrift_runtime.security.certinfo import CertificateInfo, read_certificate
from ringrift_runtime.security.identity import any_gateway
from ringrift_runtime.security.tls import CertFiles, channel_credentials

log = logging.getLogger("ringrift.security.join")

RENEW_AT_FRACTION = 1 / 3  # renew once less than this share of the lifetime is left


class JoinError(RuntimeError):
    """Joining failed; the message says what to fix."""


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise JoinError(f"security.join_gateway {address[:80]!r} is not host:port (a gateway's token port)")
    return host.strip("[]"), int(port)


def discover_ca(address: str, fingerprint: str, timeout: float = 10.0) -> bytes:
    """The CA certificate (PEM) the gateway at ``address`` presents, if its fingerprint is
    ``fingerprint``; JoinError otherwise. Blocking: call it in a thread."""
    host, port = _split(address)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # trust comes from the pinned fingerprint below
    context.set_alpn_protocols(["h2"])
    try:
        ipaddress.ip_address(host)
        server_name = None
    except ValueError:
        server_name = host
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=server_name) as tls,
        ):
            # CPython's own chain accessor (private in 3.10-3.12, public from 3.13).
            chain = [c.public_bytes(_ssl.ENCODING_PEM) for c in tls._sslobj.get_unverified_chain()]  # type: ignore[union-attr]
    except OSError as exc:
        raise JoinError(f"cannot reach the gateway's token port at {address}: {exc}") from None
    if len(chain) < 2:
        raise JoinError(f"the gateway at {address} sends no CA certificate: is that its token port?")
    from ringrift_runtime.security import pki  # cryptography: while joining only

    wanted = fingerprint.strip().lower()
    for pem in chain[1:]:
        if pki.fingerprint(pem.encode() if isinstance(pem, str) else pem) == wanted:
            ca_pem = pem.encode() if isinstance(pem, str) else pem
            _check_signed_by(chain[0].encode() if isinstance(chain[0], str) else chain[0], ca_pem)
            return ca_pem
    raise JoinError(
        f"the gateway at {address} presents a CA whose fingerprint is not {wanted[:80]}: "
        "check the fingerprint (`ringrift certs fingerprint` on the cluster) and the address"
    )


def _check_signed_by(leaf_pem: bytes, ca_pem: bytes) -> None:
    from cryptography import x509

    leaf = x509.load_pem_x509_certificate(leaf_pem)
    ca = x509.load_pem_x509_certificate(ca_pem)
    try:
        leaf.verify_directly_issued_by(ca)
    except (ValueError, TypeError, Exception) as exc:  # InvalidSignature and friends
        raise JoinError(f"the gateway's certificate is not signed by the pinned CA ({type(exc).__name__})") from None


def _new_request() -> tuple[bytes, bytes]:
    """(key PEM, certificate request PEM) for a fresh EC P-256 key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from ringrift_runtime.security import pki

    key = ec.generate_private_key(ec.SECP256R1())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, pki.request(key_pem)


def _sidecar(files: CertFiles) -> Path:
    return files.cert.with_name(files.cert.name + ".gateway.json")


async def join(
    address: str, fingerprint: str, token: str, node_id: str, cluster: str, files: CertFiles, timeout: float = 30.0
) -> None:
    """Discover and pin the CA, join with the token, write ``files`` (key 0600)."""
    if not (fingerprint and token):
        raise JoinError("joining needs security.join_ca_fingerprint and security.join_token besides join_gateway")
    ca_pem = await asyncio.to_thread(discover_ca, address, fingerprint)
    key_pem, csr = _new_request()
    orchestrator_pb2, orchestrator_pb2_grpc = await _orchestrator()
    credentials = grpc.ssl_channel_credentials(root_certificates=ca_pem)
    options = [("grpc.ssl_target_name_override", any_gateway(cluster))]
    async with grpc.aio.secure_channel(address, credentials, options=options) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
        try:
            reply = await stub.JoinCluster(
                orchestrator_pb2.JoinClusterRequest(join_token=token, node_id=node_id, csr_pem=csr), timeout=timeout
            )
        except grpc.aio.AioRpcError as exc:
            raise JoinError(f"the gateway refused the join: {exc.code().name}: {exc.details()}") from None
    if reply.cluster != cluster:
        raise JoinError(f"the gateway is of cluster {reply.cluster[:64]!r}, not {cluster!r} (etcd.cluster_name)")
    await asyncio.to_thread(_write, files, ca_pem, reply.certificate_pem, key_pem)
    await asyncio.to_thread(_sidecar(files).write_text, json.dumps({"gateway": reply.gateway_address}))
    expires = (await asyncio.to_thread(read_certificate, files.cert)).not_after
    log.info("joined cluster %s as agent %s (certificate until %s)", cluster, node_id, expires)


async def _orchestrator() -> tuple[Any, Any]:
    """The gateway's generated modules, imported in a thread when first needed: at start
    they would import every service's protos (~2.5 MiB held by each agent for calls it
    makes at its join and each renewal)."""
    messages = await asyncio.to_thread(importlib.import_module, "ringrift.orchestrator.v1.orchestrator_pb2")
    stubs = await asyncio.to_thread(importlib.import_module, "ringrift.orchestrator.v1.orchestrator_pb2_grpc")
    return messages, stubs


def _write(files: CertFiles, ca: bytes, cert: bytes, key: bytes) -> None:
    from ringrift_runtime.security import pki  # loaded already: the key and request were made with it

    pki.write_file(files.key, key, private=True)
    pki.write_file(files.cert, cert, private=False)
    pki.write_file(files.ca, ca, private=False)


def renewal_due(cert: CertificateInfo, now: dt.datetime | None = None) -> bool:
    lifetime = cert.not_after - cert.not_before
    left = cert.not_after - (now or dt.datetime.now(dt.UTC))
    return left < lifetime * RENEW_AT_FRACTION


def renewal_gateway(files: CertFiles, configured: str) -> str:
    """Where to renew: the gateway named at join time, else ``configured``."""
    try:
        recorded = json.loads(_sidecar(files).read_text()).get("gateway", "")
    except (OSError, ValueError):
        recorded = ""
    return recorded or configured


async def renew(address: str, cluster: str, files: CertFiles, timeout: float = 30.0) -> dt.datetime:
    """A new key and certificate for this identity, from the gateway over mutual TLS."""
    key_pem, csr = _new_request()
    orchestrator_pb2, orchestrator_pb2_grpc = await _orchestrator()
    options = [("grpc.ssl_target_name_override", any_gateway(cluster))]
    credentials = await asyncio.to_thread(channel_credentials, files)
    async with grpc.aio.secure_channel(address, credentials, options=options) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
        reply = await stub.RenewCertificate(orchestrator_pb2.RenewCertificateRequest(csr_pem=csr), timeout=timeout)
    ca_pem = await asyncio.to_thread(files.ca.read_bytes)
    await asyncio.to_thread(_write, files, ca_pem, reply.certificate_pem, key_pem)
    return (await asyncio.to_thread(read_certificate, files.cert)).not_after


async def keep_renewed(address: str, cluster: str, files: CertFiles, check_seconds: float) -> None:
    """Renew whenever due, checked every ``check_seconds``; failures are retried (loudly)."""
    while True:
        try:
            if renewal_due(await asyncio.to_thread(read_certificate, files.cert)):
                expires = await renew(renewal_gateway(files, address), cluster, files)
                log.info("certificate renewed until %s", expires)
        except (OSError, ValueError, grpc.aio.AioRpcError) as exc:
            log.warning("certificate renewal failed (retrying in %.0fs): %s", check_seconds, exc)
        await asyncio.sleep(check_seconds)
