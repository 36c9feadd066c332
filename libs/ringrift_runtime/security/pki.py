"""The cluster's certificate authority, with the ``cryptography`` package: a CA, a
certificate per identity (the identity in a SAN URI, the hosts it serves as DNS and IP
SANs), certificate requests for nodes that join, fingerprints, and reading a
certificate's identity and expiry. Keys are ECDSA P-256; nothing is hand-rolled."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ringrift_runtime.durable import write_atomic
from ringrift_runtime.security.certinfo import CertificateInfo
from ringrift_runtime.security.identity import Identity, Kind, any_gateway

CA_DAYS = 3650
CERT_DAYS = 90


@dataclass(frozen=True)
class Pem:
    """A certificate and its private key, PEM-encoded."""

    cert: bytes
    key: bytes


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def create_ca(cluster: str, days: int = CA_DAYS) -> Pem:
    """A self-signed CA for one cluster."""
    key = new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"RingRift CA {cluster}")])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False, encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    return Pem(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def _san(identity: Identity, hosts: list[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(identity.uri)]
    served = [identity.dns, *([any_gateway(identity.cluster)] if identity.kind is Kind.GATEWAY else []), *hosts]
    for host in dict.fromkeys(served):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def _sign(ca: Pem, public_key: ec.EllipticCurvePublicKey, identity: Identity, hosts: list[str], days: float) -> bytes:
    ca_cert = x509.load_pem_x509_certificate(ca.cert)
    ca_key = serialization.load_pem_private_key(ca.key, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError("the CA key is not an EC key")
    now = _now()
    skew = min(dt.timedelta(minutes=5), dt.timedelta(days=days) / 10)  # clocks a little behind still accept it
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, str(identity))]))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - skew)
        .not_valid_after(min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .add_extension(_san(identity, hosts), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def issue(ca: Pem, identity: Identity, hosts: list[str], days: float = CERT_DAYS) -> Pem:
    """A new key and a certificate for ``identity``, valid for ``hosts`` (names and IPs)."""
    key = new_key()
    return Pem(_sign(ca, key.public_key(), identity, hosts, days), _key_pem(key))


def request(key_pem: bytes) -> bytes:
    """A certificate request for a key (what a joining node sends; the CA decides the
    identity, never the request)."""
    key = serialization.load_pem_private_key(key_pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("the key is not an EC key")
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM)


def sign_request(ca: Pem, csr_pem: bytes, identity: Identity, hosts: list[str], days: float = CERT_DAYS) -> bytes:
    """Sign a request's public key as ``identity``; ValueError for a malformed or forged request."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError:
        raise ValueError("is not a PEM certificate request") from None
    if not csr.is_signature_valid:
        raise ValueError("the certificate request is not signed by its own key")
    public_key = csr.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise ValueError("the certificate request must carry an EC P-256 key")
    return _sign(ca, public_key, identity, hosts, days)


def fingerprint(cert_pem: bytes) -> str:
    """``sha256:<hex>`` of the DER certificate (what a joining node pins the CA by)."""
    der = x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)
    return "sha256:" + hashlib.sha256(der).hexdigest()


def certificate_info(cert: bytes) -> CertificateInfo:
    """A certificate's (PEM or DER) SAN URIs and validity."""
    parsed = (
        x509.load_pem_x509_certificate(cert)
        if cert.lstrip().startswith(b"-----")
        else x509.load_der_x509_certificate(cert)
    )
    try:
        san = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = tuple(san.get_values_for_type(x509.UniformResourceIdentifier))
    except x509.ExtensionNotFound:
        uris = ()
    return CertificateInfo(uris, parsed.not_valid_before_utc, parsed.not_valid_after_utc)


def identities(cert: bytes) -> list[Identity]:
    """The RingRift identities a certificate (PEM or DER) names in its SAN URIs."""
    return certificate_info(cert).identities()


def expires(cert_pem: bytes) -> dt.datetime:
    return x509.load_pem_x509_certificate(cert_pem).not_valid_after_utc


def write(directory: Path, name: str, pem: Pem) -> tuple[Path, Path]:
    """<name>.pem and <name>-key.pem (readable by the owner only), replaced atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}-key.pem"
    write_atomic(key_path, pem.key, 0o600)
    write_atomic(cert_path, pem.cert, 0o644)
    return cert_path, key_path


def write_file(path: Path, data: bytes, private: bool) -> None:
    """One PEM file, replaced atomically (0600 when ``private``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data, 0o600 if private else 0o644)


def read(directory: Path, name: str) -> Pem:
    return Pem((directory / f"{name}.pem").read_bytes(), (directory / f"{name}-key.pem").read_bytes())
