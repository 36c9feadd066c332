"""Interceptors: one server interceptor for trace context and request ids, error
translation, access log and metrics; client interceptors for deadlines and trace context
propagation (W3C traceparent)."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from typing import Any

import grpc

from ringrift_runtime import errors, tracing
from ringrift_runtime.grpc.contracts import idempotency_level
from ringrift_runtime.grpc.int64 import int64_violations
from ringrift_runtime.grpc.status import rich_status, status_code_for, trailing_metadata_for
from ringrift_runtime.logs import (
    current_request_id,
    new_request_id,
    reset_request_id,
    set_request_id,
)
from ringrift_runtime.metrics import RpcMetrics
from ringrift_runtime.security.authz import Authorization, reset_caller, set_caller
from ringrift_runtime.security.identity import Identity
from ringrift_runtime.settings import ServerSettings

access_log = logging.getLogger("ringrift.access")
log = logging.getLogger("ringrift.grpc")

# Absolute monotonic deadline of the call being served, for propagation to outbound calls.
_INBOUND_DEADLINE: ContextVar[float | None] = ContextVar("ringrift_inbound_deadline", default=None)

QUIET_SERVICE_PREFIXES = ("/grpc.health.", "/grpc.reflection.")

# Called once a unary call has its verdict: (method, caller, status code name, request).
# The app decides what is worth an audit record (the gateway: users' mutating calls).
Audit = Callable[[str, Identity | None, str, Any], Awaitable[None]]


def inbound_deadline() -> float | None:
    """Monotonic time by which the call being served must be answered, if it has a deadline."""
    return _INBOUND_DEADLINE.get()


class _CallScope:
    """Everything that happens around one served call."""

    def __init__(self, interceptor: ServerInterceptor, method: str, context: grpc.aio.ServicerContext) -> None:
        self.interceptor = interceptor
        self.method = method
        self.context = context
        self.code = grpc.StatusCode.OK
        self.started = time.perf_counter()
        self._tokens: list[tuple[ContextVar, Any]] = []
        self._caller_token: object | None = None

    def __enter__(self) -> _CallScope:
        remaining = self.context.time_remaining()
        deadline = time.monotonic() + remaining if remaining is not None else None
        self._tokens.append((_INBOUND_DEADLINE, _INBOUND_DEADLINE.set(deadline)))
        # The call's span continues the caller's trace (traceparent) or starts one; its trace
        # id is the request id of every log line the call writes. Health checks and
        # reflection get no span (they would drown the traces).
        self.span: tracing.Span | None = None
        request_id = ""
        if not self.method.startswith(QUIET_SERVICE_PREFIXES):
            self.span, self._trace_token = tracing.start_server_span(self.method, self.context.invocation_metadata())
            request_id = tracing.trace_id_of(self.span)
        self._request_token = set_request_id(request_id or new_request_id())
        # Read the peer while the call is alive: a streaming handler's scope can close
        # after the client went away, and context.peer() on a finished call crashes
        # grpcio (SIGSEGV) when the call has been released.
        self.peer = self.context.peer()
        return self

    async def fail(self, exc: BaseException) -> None:
        """Translate ``exc`` into a status and abort the call (raises AbortError)."""
        if isinstance(exc, errors.RingriftError):
            self.code = status_code_for(exc)
            message, domain_error = exc.message, exc
        elif isinstance(exc, NotImplementedError):
            self.code = grpc.StatusCode.UNIMPLEMENTED
            message, domain_error = f"{self.method} is not implemented by this server yet", errors.NotImplementedYet("")
        else:
            self.code = grpc.StatusCode.INTERNAL
            log.error("unhandled error in %s", self.method, exc_info=exc)
            message, domain_error = f"internal error (request id {current_request_id()})", None
        status = rich_status(self.code, message, domain_error)
        await self.context.abort(self.code, status.message, trailing_metadata_for(status))

    def hold(self, caller_token: object) -> None:
        """The caller's identity is set for this call; reset when it ends."""
        self._caller_token = caller_token

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None and issubclass(exc_type, (asyncio.CancelledError, GeneratorExit)):
            self.code = grpc.StatusCode.CANCELLED
        elif exc_type is not None and self.code == grpc.StatusCode.OK:
            # An abort from the servicer itself (context.abort) or a failure we translated.
            self.code = self.context.code() or grpc.StatusCode.UNKNOWN
        elif self.context.code() not in (None, grpc.StatusCode.OK) and self.code == grpc.StatusCode.OK:
            self.code = self.context.code()
        elapsed = time.perf_counter() - self.started
        code_name = self.code.name
        self.interceptor.metrics.observe(self.method, code_name, elapsed)
        quiet = self.method.startswith(QUIET_SERVICE_PREFIXES) and not self.interceptor.log_health_checks
        # Reads that succeed are logged at DEBUG: a status polled thousands of times a
        # second would otherwise fill the log (and cost its CPU); every change and every
        # failure is logged at INFO.
        routine = code_name == "OK" and idempotency_level(self.method.lstrip("/")) == "NO_SIDE_EFFECTS"
        access_log.log(
            logging.DEBUG if quiet or routine else logging.INFO,
            "rpc %s %s %.1fms peer=%s",
            self.method,
            code_name,
            elapsed * 1000,
            self.peer,
        )
        reset_request_id(self._request_token)
        if self.span is not None:
            tracing.end_server_span(self.span, self._trace_token, code_name)
        if self._caller_token is not None:
            reset_caller(self._caller_token)
        for var, token in reversed(self._tokens):
            var.reset(token)


class CallerLimits:
    """Unary calls in flight and streams open, per caller, each under its cap."""

    def __init__(self, max_calls: int, max_streams: int) -> None:
        self._caps = {False: max_calls, True: max_streams}
        self._open: dict[tuple[bool, str], int] = {}

    def enter(self, method: str, caller: str, stream: bool) -> bool:
        """Count a call in (True), or raise ResourceExhausted; health and reflection pass uncounted (False)."""
        if method.startswith(QUIET_SERVICE_PREFIXES):
            return False
        key = (stream, caller)
        count = self._open.get(key, 0)
        if count >= self._caps[stream]:
            what = "streams open" if stream else "calls in flight"
            raise errors.ResourceExhausted(f"{caller[:80]} has {count} {what} here, the most allowed; retry later")
        self._open[key] = count + 1
        return True

    def leave(self, caller: str, stream: bool) -> None:
        key = (stream, caller)
        left = self._open.get(key, 1) - 1
        if left > 0:
            self._open[key] = left
        else:
            self._open.pop(key, None)


def caller_key(identity: Identity | None, peer: str) -> str:
    """Whom a call is counted against: its identity, or its peer's host without one."""
    if identity is not None:
        return str(identity)
    return (peer or "unknown").rsplit(":", 1)[0]


MAX_WRAPPED_METHODS = 1024


class ServerInterceptor(grpc.aio.ServerInterceptor):
    """Authorization (who is calling, and may they), per-caller limits, request id, error
    translation, access log and metrics for every served method."""

    def __init__(
        self,
        metrics: RpcMetrics,
        log_health_checks: bool = False,
        authorization: Authorization | None = None,
        audit: Audit | None = None,
        limits: CallerLimits | None = None,
    ) -> None:
        self.metrics = metrics
        self.log_health_checks = log_health_checks
        self.authorization = authorization  # None: an insecure cluster (no identities to check)
        self.audit = audit
        defaults = ServerSettings()
        self.limits = limits or CallerLimits(defaults.max_calls_per_caller, defaults.max_streams_per_caller)
        # The wrapped handler of each method, made once (the server's handler for a method
        # does not change): not two closures and a handler object per call.
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(method, handler)
        if len(self._wrapped) < MAX_WRAPPED_METHODS:  # methods are few; a client cannot grow it unseen
            self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(method, handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(method, handler.unary_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_stream is not None:  # reflection
            return grpc.stream_stream_rpc_method_handler(
                self._wrap_stream(method, handler.stream_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        assert handler.stream_unary is not None
        return grpc.stream_unary_rpc_method_handler(
            self._wrap_unary(method, handler.stream_unary),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _identify(self, context: grpc.aio.ServicerContext) -> Identity | None:
        return self.authorization.identify(context) if self.authorization is not None else None

    def _authorize(self, method: str, context: grpc.aio.ServicerContext) -> Identity | None:
        identity = self._identify(context)
        if self.authorization is not None:
            self.authorization.check(method, identity)
        return identity

    async def _audited(self, method: str, identity: Identity | None, code: str, request: Any) -> None:
        if self.audit is None:
            return
        try:
            await self.audit(method, identity, code, request)
        except Exception:  # the call's answer stands; the record's loss is logged loudly
            log.error("audit record of %s by %s (%s) was not stored", method, identity, code, exc_info=True)

    def _wrap_unary(self, method: str, behavior: Callable[..., Any]):
        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            with _CallScope(self, method, context) as scope:
                identity, counted, caller = None, False, ""
                try:
                    identity = self._identify(context)
                    if self.authorization is not None:
                        self.authorization.check(method, identity)
                    scope.hold(set_caller(identity))
                    caller = caller_key(identity, scope.peer)
                    counted = self.limits.enter(method, caller, stream=False)
                    _check_int64(request)
                    result = behavior(request, context)
                    reply = await result if inspect.isawaitable(result) else result
                except (grpc.aio.AbortError, asyncio.CancelledError):
                    raise
                except Exception as exc:
                    code = status_code_for(exc).name if isinstance(exc, errors.RingriftError) else "INTERNAL"
                    await self._audited(method, identity, code, request)
                    await scope.fail(exc)
                else:
                    await self._audited(method, identity, "OK", request)
                    return reply
                finally:
                    if counted:
                        self.limits.leave(caller, stream=False)

        return unary

    def _wrap_stream(self, method: str, behavior: Callable[..., Any]):
        async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            with _CallScope(self, method, context) as scope:
                counted, caller = False, ""
                try:
                    identity = self._authorize(method, context)
                    scope.hold(set_caller(identity))
                    caller = caller_key(identity, scope.peer)
                    counted = self.limits.enter(method, caller, stream=True)
                    _check_int64(request)
                    responses = behavior(request, context)
                    if inspect.isawaitable(responses):
                        responses = await responses
                    if hasattr(responses, "__aiter__"):
                        async for response in responses:
                            yield response
                    else:
                        for response in responses or ():
                            yield response
                except (grpc.aio.AbortError, asyncio.CancelledError):
                    raise
                except Exception as exc:
                    await scope.fail(exc)
                finally:
                    if counted:
                        self.limits.leave(caller, stream=True)

        return stream


def _check_int64(request: Any) -> None:
    """A request with an unsigned integer past what the databases store is refused here."""
    if hasattr(request, "DESCRIPTOR"):
        violations = int64_violations(request)
        if violations:
            raise errors.InvalidArgument(violations)


def _with_defaults(details: grpc.aio.ClientCallDetails, default_timeout: float) -> grpc.aio.ClientCallDetails:
    timeout = details.timeout if details.timeout is not None else default_timeout
    inbound = inbound_deadline()
    if inbound is not None:
        timeout = min(timeout, max(0.0, inbound - time.monotonic()))
    metadata = grpc.aio.Metadata(*(details.metadata or ()))
    tracing.inject(metadata)
    return details._replace(timeout=timeout, metadata=metadata)


class DeadlineInterceptor(grpc.aio.UnaryUnaryClientInterceptor, grpc.aio.UnaryStreamClientInterceptor):
    """Every outbound call gets a deadline (the caller's, else the method's configured
    one, never beyond the deadline of the call being served) and the current trace
    context."""

    def __init__(self, deadline_for: Callable[[str, bool], float]) -> None:
        self._deadline_for = deadline_for

    async def intercept_unary_unary(self, continuation, client_call_details, request):
        method = _method_name(client_call_details.method)
        return await continuation(_with_defaults(client_call_details, self._deadline_for(method, False)), request)

    async def intercept_unary_stream(self, continuation, client_call_details, request):
        method = _method_name(client_call_details.method)
        return await continuation(_with_defaults(client_call_details, self._deadline_for(method, True)), request)


def _method_name(method: str | bytes) -> str:
    text = method.decode() if isinstance(method, bytes) else method
    return text.lstrip("/")
