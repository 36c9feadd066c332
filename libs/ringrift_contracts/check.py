"""Request checks with the contracts' rules: a Validator (it collects every violation,
then raises one InvalidArgument) that knows ids, config keys, epochs and pages."""

from __future__ import annotations

from ringrift_contracts import ids, limits
from ringrift_runtime.validation import Validator


class Check(Validator):
    def job_id(self, field: str, value: str) -> None:
        self.check(field, ids.is_job_id(value), "is required: letters, digits, '-', '_' (at most 64)")

    def record_id(self, field: str, value: str, required: bool = True) -> None:
        if value or required:
            self.check(field, ids.is_record_id(value), "is required: letters, digits, '.', '-', '_' (at most 64)")

    def node_id(self, field: str, value: str) -> None:
        problem = ids.node_id_problem(value)
        if problem:
            self.fail(field, problem)

    def sha256(self, field: str, value: str) -> None:
        self.check(field, bool(ids.SHA256_PATTERN.match(value)), "must be 64 lower-case hex digits")

    def kind(self, field: str, value: str) -> None:
        self.check(
            field,
            ids.is_kind(value),
            "is required: a job kind such as 'selfplay' (lower-case letters, digits, '-', '_')",
        )

    def config_key(self, field: str, value: str, required: bool = True) -> None:
        if not value:
            if required:
                self.fail(field, "is required (e.g. 'square8_2p')")
            return
        try:
            ids.parse_config_key(value)
        except ValueError as exc:
            self.fail(field, str(exc))

    def trained_config(self, field: str, value: str, configs: list[str]) -> None:
        """A config key that is well formed and, when the cluster lists its configs, one of them."""
        self.config_key(field, value)
        if value and configs:
            self.check(field, value in configs, f"is not one of the configs this cluster trains ({', '.join(configs)})")

    def leader_epoch(self, field: str, epoch: int) -> None:
        """An epoch a call made on behalf of the leader must carry."""
        self.check(field, epoch > 0, "is required: this call is made on behalf of the leader")

    def attempt(self, field: str, attempt: int, required: bool = True) -> None:
        low = 1 if required else 0
        self.check(field, low <= attempt <= limits.MAX_ATTEMPT, f"must be between {low} and {limits.MAX_ATTEMPT}")

    def page(self, field: str, page_size: int, page_token: str) -> int:
        """The page size to use (the default for 0); a bad size or token is a violation."""
        size = page_size or limits.DEFAULT_PAGE_SIZE
        self.check(
            f"{field}.page_size", 0 <= page_size <= limits.MAX_PAGE_SIZE, f"must be at most {limits.MAX_PAGE_SIZE}"
        )
        self.check(
            f"{field}.page_token", not page_token or ids.is_record_id(page_token), "is not a token from a previous page"
        )
        return size

    def batch(self, field: str, count: int, limit: int = limits.MAX_BATCH) -> None:
        self.check(field, 1 <= count <= limit, f"must hold 1 to {limit} items")

    def idempotency_key(self, field: str, value: str) -> None:
        self.max_length(field, value, limits.MAX_IDEMPOTENCY_KEY)
