"""Request validation: collect every violation of one request, then raise one
InvalidArgument naming each field. The contracts' own rules (ids, config keys, epochs,
pages) are ``ringrift_contracts.check.Check``."""

from __future__ import annotations

from ringrift_runtime.errors import FieldViolation, InvalidArgument


class Validator:
    """Collects field violations of one request."""

    def __init__(self) -> None:
        self._violations: list[FieldViolation] = []

    def fail(self, field: str, description: str) -> None:
        self._violations.append(FieldViolation(field, description))

    def require(self, field: str, value: object, description: str = "is required") -> None:
        if not value:
            self.fail(field, description)

    def check(self, field: str, ok: bool, description: str) -> None:
        if not ok:
            self.fail(field, description)

    def max_length(self, field: str, value: str, limit: int) -> None:
        if len(value) > limit:
            self.fail(field, f"is {len(value)} characters long; the limit is {limit}")

    @property
    def valid(self) -> bool:
        return not self._violations

    def raise_if_invalid(self) -> None:
        if self._violations:
            raise InvalidArgument(self._violations)
