"""Certificates, identities and tokens: what a certificate names, who signs what, when a
certificate is due for renewal, bearer and join tokens stored only as hashes."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

from ringrift_runtime.security import certinfo, pki
from ringrift_runtime.security.certinfo import CertificateInfo, read_certificate
from ringrift_runtime.security.directory import CertificateDirectory, needs_issuing
from ringrift_runtime.security.identity import Identity, Kind, Role, agent, gateway, service, user
from ringrift_runtime.security.join import renewal_due
from ringrift_runtime.security.tokens import TokenStore


def test_identities_round_trip_and_refuse_what_is_not_one() -> None:
    for identity in (
        service("state", "demo"),
        gateway("gw-1", "demo"),
        agent("gpu-7", "demo"),
        user("ann", Role.VIEWER, "demo"),
    ):
        assert Identity.parse(identity.uri) == identity
    assert user("ann", Role.ADMIN, "demo").uri == "spiffe://ringrift/demo/user/admin/ann"
    for bad in ("spiffe://other/demo/agent/x", "spiffe://ringrift/demo/agent", "spiffe://ringrift/demo/user/root/x"):
        with pytest.raises(ValueError):
            Identity.parse(bad)
    with pytest.raises(ValueError):
        Identity(Kind.AGENT, "10.0.0.1:50060/../x", "demo")


def test_a_certificate_names_its_identity_and_only_the_ca_decides_it() -> None:
    ca = pki.create_ca("demo")
    issued = pki.issue(ca, gateway("gw-1", "demo"), ["10.0.0.5", "gw.example"])
    assert pki.identities(issued.cert) == [gateway("gw-1", "demo")]
    sans = x509.load_pem_x509_certificate(issued.cert).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    names = set(sans.value.get_values_for_type(x509.DNSName))
    assert {"gw-1.gateway.demo.ringrift", "gateway.demo.ringrift", "gw.example"} <= names  # any replica's name too
    key = pki.new_key()
    from cryptography.hazmat.primitives import serialization

    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    signed = pki.sign_request(ca, pki.request(key_pem), agent("gpu-7", "demo"), [])
    assert pki.identities(signed) == [agent("gpu-7", "demo")]  # the request names nothing; the CA does
    with pytest.raises(ValueError):
        pki.sign_request(ca, b"not a request", agent("gpu-7", "demo"), [])
    other = pki.create_ca("demo")
    assert pki.fingerprint(ca.cert) != pki.fingerprint(other.cert) and pki.fingerprint(ca.cert).startswith("sha256:")


def _info(tmp_path: Path, cert: bytes) -> CertificateInfo:
    path = tmp_path / "cert.pem"
    path.write_bytes(cert)
    return read_certificate(path)


def test_renewal_is_due_once_a_third_of_the_lifetime_is_left(tmp_path: Path) -> None:
    ca = pki.create_ca("demo")
    cert = _info(tmp_path, pki.issue(ca, agent("n", "demo"), [], days=30).cert)
    assert not renewal_due(cert, cert.not_after - dt.timedelta(days=11))
    assert renewal_due(cert, cert.not_after - dt.timedelta(days=9))
    short = _info(
        tmp_path, pki.issue(ca, agent("n", "demo"), [], days=12 / 86400).cert
    )  # 12 s: backdated by a tenth, not 5 min
    # 13.2 s, each end stored to the whole second (so 13 or 14 s), not 5 min 12 s.
    assert short.not_after - short.not_before <= dt.timedelta(seconds=14)
    assert not renewal_due(short, short.not_before + dt.timedelta(seconds=2))


def test_a_process_reads_its_own_certificate_as_cryptography_does_without_loading_it(tmp_path: Path) -> None:
    """certinfo (the interpreter's OpenSSL binding) reads the same identities and validity
    as cryptography does, and says what is wrong with a file that is not a certificate."""
    ca = pki.create_ca("demo")
    pem = pki.issue(ca, gateway("gw-1", "demo"), ["10.0.0.5", "gw.example"], days=30).cert
    info = _info(tmp_path, pem)
    parsed = x509.load_pem_x509_certificate(pem)
    assert info.identities() == pki.identities(pem) == [gateway("gw-1", "demo")]
    assert (info.not_before, info.not_after) == (parsed.not_valid_before_utc, parsed.not_valid_after_utc)
    assert certinfo._with_cryptography(pem) == info  # the fallback where the interpreter has no decoder
    assert _info(tmp_path, ca.cert).identities() == []  # the CA names no identity
    (tmp_path / "bad.pem").write_bytes(b"not a certificate")
    with pytest.raises(ValueError, match="no PEM certificate"):
        read_certificate(tmp_path / "bad.pem")
    with pytest.raises(FileNotFoundError):
        read_certificate(tmp_path / "missing.pem")


def test_the_directory_keeps_its_ca_and_issues_again_what_expires_soon(tmp_path: Path) -> None:
    folder = CertificateDirectory(tmp_path / "certs", ca_key_file=tmp_path / "ca" / "ca-key.pem")
    assert folder.init("demo") and not folder.init("demo")  # never overwritten
    assert (tmp_path / "ca" / "ca-key.pem").stat().st_mode & 0o777 == 0o600
    assert not (tmp_path / "certs" / "ca-key.pem").exists()  # the key lives where it was told
    files = folder.issue(service("state", "demo"), [], days=10)
    assert needs_issuing(files.cert, files.key, 30) and not needs_issuing(files.cert, files.key, 5)
    assert needs_issuing(tmp_path / "none.pem", files.key, 30)
    own = folder.issue_into(agent("n1", "demo"), [], tmp_path / "n1")
    assert own.cert.read_bytes() and own.ca.read_bytes() == folder.ca_file.read_bytes()
    assert own.key.stat().st_mode & 0o777 == 0o600


def test_tokens_are_stored_as_hashes_and_expire(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    token = store.add(user("ann", Role.OPERATOR, "demo"), 60)
    assert store.verify(token) == user("ann", Role.OPERATOR, "demo")
    assert token.split(".")[2] not in (tmp_path / "tokens.json").read_text()  # only the hash is kept
    assert store.verify(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert store.verify(token, now=10**12) is None  # expired
    with pytest.raises(ValueError):
        store.add(agent("n", "demo"), 60)  # processes present certificates


def test_join_tokens_are_one_cluster_s_and_may_be_bound_to_a_node(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    any_node, bound = store.add_join("demo", "", 600), store.add_join("demo", "gpu-7", 600)
    assert store.verify_join(any_node, "demo") == (any_node.split(".")[1], "")
    assert store.verify_join(bound, "demo") == (bound.split(".")[1], "gpu-7")
    assert store.verify_join(bound, "other") is None and store.verify_join(bound, "demo", now=10**12) is None
    assert store.verify(any_node) is None  # a join token is not a user's bearer token
    entries = json.loads((tmp_path / "tokens.json").read_text())
    assert all(any_node.split(".")[2] not in json.dumps(e) for e in entries.values())


def test_a_running_process_leaves_cryptography_unloaded(tmp_path: Path) -> None:
    """Every process's composition root, its security (its own identity, read from its
    certificate) and the renewal check leave `cryptography` unloaded: ~12 MiB a process
    that only signing and making keys need."""
    ca = pki.create_ca("demo")
    cert, key = pki.write(tmp_path, "agent", pki.issue(ca, agent("n1", "demo"), []))
    ca_file, _ = pki.write(tmp_path, "ca", ca)
    code = f"""
import sys
from pathlib import Path
import ringrift_agent.main, ringrift_gateway.main, ringrift_cohost.main, ringrift_cli.probe
from ringrift_runtime.security.certinfo import read_certificate
from ringrift_runtime.security.context import Security
from ringrift_runtime.security.join import renewal_due
from ringrift_runtime.security.tls import CertFiles
security = Security(False, "demo", CertFiles(Path({str(ca_file)!r}), Path({str(cert)!r}), Path({str(key)!r})), 5)
print(security.identity, renewal_due(read_certificate(Path({str(cert)!r}))))
print(sorted(name for name in sys.modules if name.split(".")[0] == "cryptography"))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.splitlines() == [f"{agent('n1', 'demo')} False", "[]"], out.stdout + out.stderr


def test_an_agent_loads_only_the_protos_of_the_services_it_calls() -> None:
    """An agent's composition root (and the join and renewal code it holds) leaves the
    gateway's and the managers' generated modules unloaded (~1.4 MiB an agent): the
    gateway's are imported at a join or renewal, the others never."""
    code = """
import sys
import ringrift_agent.main, ringrift_runtime.security.join
print(sorted(name for name in sys.modules if name.startswith("ringrift.") and name.endswith("_pb2")))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    loaded = {name.split(".")[1] for name in json.loads(out.stdout.replace("'", '"'))}
    assert loaded == {"common", "agent", "jobs", "nodes", "state"}, out.stdout
