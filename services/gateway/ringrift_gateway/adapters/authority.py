"""The gateway as the cluster's certificate authority for nodes: it signs a joining node's
request once its one-time join token checks out (consumed in StateService, so one token
joins one node whichever replica answers), and renews any agent's certificate for its own
identity. Only a gateway given the CA's key (security.ca_key_file) signs. `cryptography`
(pki) is imported at the first signing, not at start (~12 MiB a gateway holds otherwise)."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

from ringrift_contracts.ids import node_id_problem
from ringrift_runtime.errors import Conflict, InvalidArgument, PermissionDenied, Unauthenticated, WrongState
from ringrift_runtime.security.identity import Identity, Kind, agent
from ringrift_runtime.security.tokens import TokenStore

if TYPE_CHECKING:
    from ringrift_runtime.security import pki

USED_TOKENS = "join-tokens"  # StateService namespace: one key per join token once used
MAX_CSR_BYTES = 4096


class CertificateAuthority:
    def __init__(
        self,
        cluster: str,
        ca_file: Path | None,
        ca_key_file: Path | None,
        tokens: TokenStore | None,
        state,  # StateClient: persist_state
        cert_seconds: float,
    ) -> None:
        self._cluster = self.cluster = cluster
        self._ca_file, self._ca_key_file = ca_file, ca_key_file
        self._tokens = tokens
        self._state = state
        self._cert_seconds = cert_seconds
        self.address = ""  # this gateway's mutual-TLS address, set once bound

    def _ca(self) -> pki.Pem:
        from ringrift_runtime.security import pki

        if self._ca_file is None or self._ca_key_file is None:
            raise WrongState("this gateway does not sign certificates (no security.ca_key_file)")
        return pki.Pem(self._ca_file.read_bytes(), self._ca_key_file.read_bytes())

    async def _sign(self, csr_pem: bytes, identity: Identity) -> tuple[bytes, bytes, dt.datetime]:
        if not csr_pem or len(csr_pem) > MAX_CSR_BYTES:
            raise InvalidArgument.field(
                "csr_pem", f"must be a PEM certificate request of at most {MAX_CSR_BYTES} bytes"
            )

        def work() -> tuple[bytes, bytes, dt.datetime]:
            from ringrift_runtime.security import pki

            ca = self._ca()
            try:
                cert = pki.sign_request(ca, csr_pem, identity, [], days=self._cert_seconds / 86400)
            except ValueError as exc:
                raise InvalidArgument.field("csr_pem", str(exc)[:200]) from None
            return cert, ca.cert, pki.expires(cert)

        return await asyncio.to_thread(work)

    async def join(self, token: str, node_id: str) -> str:
        """Check and consume a join token for ``node_id``; the node's identity URI."""
        problem = node_id_problem(node_id)
        if problem:
            raise InvalidArgument.field("node_id", problem)
        found = await asyncio.to_thread(self._tokens.verify_join, token, self._cluster) if self._tokens else None
        if found is None:
            raise Unauthenticated("the join token is unknown, expired or of another cluster")
        token_id, bound = found
        if bound and bound != node_id:
            raise PermissionDenied(f"this join token is for node {bound}, not {node_id[:64]}")
        try:  # once: the first replica to record it wins
            await self._state.persist_state(USED_TOKENS, token_id, node_id.encode(), 0, 0)
        except Conflict:
            raise Unauthenticated("the join token was used already (tokens join one node once)") from None
        return agent(node_id, self._cluster).uri

    async def sign_join(self, token: str, node_id: str, csr_pem: bytes) -> tuple[bytes, bytes, dt.datetime]:
        if not csr_pem:
            raise InvalidArgument.field("csr_pem", "is required: a certificate request for the node's key")
        self._ca()  # refuse before spending the token when this gateway cannot sign
        await self.join(token, node_id)
        return await self._sign(csr_pem, agent(node_id, self._cluster))

    async def renew(self, caller: Identity | None, csr_pem: bytes) -> tuple[bytes, dt.datetime]:
        if caller is None or caller.kind is not Kind.AGENT:
            raise PermissionDenied("only a node renews its own certificate here")
        cert, _, expires = await self._sign(csr_pem, caller)
        return cert, expires
