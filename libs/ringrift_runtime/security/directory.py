"""A folder of a cluster's certificates: its CA (created once, never overwritten) and one
certificate per identity, named ``<kind>-<name>.pem`` (``user-<role>-<name>.pem`` for
users) beside its key. ``ringrift certs`` and ``ringrift up`` manage one; compose keeps
one in a volume."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from ringrift_runtime.security import pki
from ringrift_runtime.security.identity import Identity
from ringrift_runtime.security.tls import CertFiles

CA_NAME = "ca"
RENEW_WITHIN_DAYS = 30.0


def needs_issuing(cert: Path, key: Path, renew_within_days: float) -> bool:
    """No certificate or key yet, or the certificate expires within ``renew_within_days``."""
    if not (cert.exists() and key.exists()):
        return True
    try:
        left = pki.expires(cert.read_bytes()) - dt.datetime.now(dt.UTC)
    except ValueError:
        return True  # unreadable: issue a good one
    return left < dt.timedelta(days=renew_within_days)


def file_name(identity: Identity) -> str:
    role = f"{identity.role.value}-" if identity.role else ""
    return f"{identity.kind.value}-{role}{identity.name}"


class CertificateDirectory:
    def __init__(self, path: Path, ca_key_file: Path | None = None) -> None:
        """``ca_key_file``: where the CA's private key lives when not beside the certificates
        (compose keeps it in a volume only the certificate job and the gateways mount)."""
        self.path = path
        self._ca_key_file = ca_key_file

    @property
    def ca_file(self) -> Path:
        return self.path / f"{CA_NAME}.pem"

    @property
    def ca_key_file(self) -> Path:
        return self._ca_key_file or self.path / f"{CA_NAME}-key.pem"

    def has_ca(self) -> bool:
        return self.ca_file.exists() and self.ca_key_file.exists()

    def init(self, cluster: str) -> bool:
        """Create the CA unless one is there; True when it was created."""
        if self.has_ca():
            return False
        if self.ca_file.exists() or self.ca_key_file.exists():
            raise FileExistsError(
                f"half a CA: {self.ca_file} or {self.ca_key_file} is missing (fix it, or remove the other)"
            )
        ca = pki.create_ca(cluster)
        pki.write_file(self.ca_key_file, ca.key, private=True)
        pki.write_file(self.ca_file, ca.cert, private=False)
        return True

    def ca(self) -> pki.Pem:
        if not self.has_ca():
            raise FileNotFoundError(f"no CA in {self.path}: create one with `ringrift certs init --dir {self.path}`")
        return pki.Pem(self.ca_file.read_bytes(), self.ca_key_file.read_bytes())

    def fingerprint(self) -> str:
        return pki.fingerprint(self.ca().cert)

    def files(self, identity: Identity) -> CertFiles:
        name = file_name(identity)
        return CertFiles(self.ca_file, self.path / f"{name}.pem", self.path / f"{name}-key.pem")

    def issue(self, identity: Identity, hosts: list[str], days: int = pki.CERT_DAYS) -> CertFiles:
        """A certificate for ``identity`` (replacing an older one of it)."""
        pki.write(self.path, file_name(identity), pki.issue(self.ca(), identity, hosts, days))
        return self.files(identity)

    def issue_into(self, identity: Identity, hosts: list[str], folder: Path) -> CertFiles:
        """A certificate for ``identity`` in a folder of its own, as the process mounts it:
        ``ca.pem``, ``cert.pem`` and ``key.pem`` (compose gives each container only its own)."""
        pem = pki.issue(self.ca(), identity, hosts)
        files = CertFiles(folder / "ca.pem", folder / "cert.pem", folder / "key.pem")
        pki.write_file(files.key, pem.key, private=True)
        pki.write_file(files.cert, pem.cert, private=False)
        pki.write_file(files.ca, self.ca_file.read_bytes(), private=False)
        return files

    def ensure(self, identity: Identity, hosts: list[str], renew_within_days: float = RENEW_WITHIN_DAYS) -> CertFiles:
        """The identity's certificate, issued when there is none yet or it expires within
        ``renew_within_days`` (running processes pick the new one up without a restart)."""
        files = self.files(identity)
        if needs_issuing(files.cert, files.key, renew_within_days):
            return self.issue(identity, hosts)
        return files


def security_env(files: CertFiles, cluster: str) -> dict[str, str]:
    """RINGRIFT_* variables of a process that presents ``files``."""
    return {
        "RINGRIFT_ETCD__CLUSTER_NAME": cluster,
        "RINGRIFT_SECURITY__CA_FILE": str(files.ca),
        "RINGRIFT_SECURITY__CERT_FILE": str(files.cert),
        "RINGRIFT_SECURITY__KEY_FILE": str(files.key),
    }
