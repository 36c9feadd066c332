"""libs/ringrift_client/methods.py from the gateway's service in protos/: one typed method
per RPC (snake_case), sync and asyncio, with the RPC's comment as its docstring. Called by
gen_protos.py; the drift test regenerates it and compares."""

from __future__ import annotations

import re

from google.protobuf import descriptor_pb2

SERVICE = "ringrift.orchestrator.v1.OrchestratorService"
SERVICE_METHODS = 2
FILE_SERVICES = 6


def snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def _module(file_name: str) -> tuple[str, str]:
    """("ringrift.orchestrator.v1", "orchestrator_pb2") of a proto file."""
    folder, _, base = file_name.rpartition("/")
    return folder.replace("/", "."), base.removesuffix(".proto") + "_pb2"


def render(files: descriptor_pb2.FileDescriptorSet) -> str:
    by_type: dict[str, tuple[str, str]] = {}
    service, service_index = None, 0
    comments: dict[tuple[int, ...], str] = {}
    for file in files.file:
        for message in file.message_type:
            by_type[f".{file.package}.{message.name}"] = _module(file.name)
        for index, candidate in enumerate(file.service):
            if f"{file.package}.{candidate.name}" == SERVICE:
                service, service_index = candidate, index
                comments = {
                    tuple(loc.path): " ".join(line.strip() for line in loc.leading_comments.strip().splitlines())
                    for loc in file.source_code_info.location
                    if loc.leading_comments and tuple(loc.path[:2]) == (FILE_SERVICES, index)
                }
    assert service is not None, f"{SERVICE} is not in the protos"
    modules: dict[tuple[str, str], str] = {}

    def alias(type_name: str) -> str:
        package, module = by_type[type_name]
        modules.setdefault((package, module), module)
        return f"{module}.{type_name.rsplit('.', 1)[1]}"

    sync_methods, async_methods = [], []
    for index, method in enumerate(service.method):
        name, request, reply = snake(method.name), alias(method.input_type), alias(method.output_type)
        doc = comments.get((FILE_SERVICES, service_index, SERVICE_METHODS, index), method.name).replace('"""', "'''")
        signature = f"self, request: {request} | None = None, /, *, timeout: float | None = None, **fields: Any"
        build = f"_request({request}, request, fields)"
        if method.server_streaming:
            sync_methods.append(
                f"    def {name}({signature}) -> Iterator[{reply}]:\n"
                f'        """{doc}"""\n'
                f'        return self._stream("{method.name}", {build}, timeout)\n'
            )
            async_methods.append(
                f"    def {name}({signature}) -> AsyncIterator[{reply}]:\n"
                f'        """{doc}"""\n'
                f'        return self._stream("{method.name}", {build}, timeout)\n'
            )
        else:
            sync_methods.append(
                f"    def {name}({signature}) -> {reply}:\n"
                f'        """{doc}"""\n'
                f'        return self._unary("{method.name}", {build}, timeout)  # type: ignore[no-any-return]\n'
            )
            async_methods.append(
                f"    async def {name}({signature}) -> {reply}:\n"
                f'        """{doc}"""\n'
                f'        return await self._unary("{method.name}", {build}, timeout)  # type: ignore[no-any-return]\n'
            )
    imports = "\n".join(f"from {package} import {module}" for (package, module) in sorted(modules))
    return f'''"""Every RPC of {SERVICE} as a typed method, sync (Methods) and asyncio
(AsyncMethods). Generated from protos/ by scripts/gen_protos.py; do not edit.

Each method takes the request message, or its fields as keyword arguments
(``client.get_job(job_id="...")``), and an optional ``timeout`` in seconds."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any, TypeVar

{imports}

M = TypeVar("M")


def _request(cls: type[M], request: M | None, fields: dict[str, Any]) -> M:
    if request is None:
        return cls(**fields)
    if fields:
        raise TypeError("give the request message or its fields, not both")
    if not isinstance(request, cls):
        raise TypeError(f"expected {{cls.__name__}}, got {{type(request).__name__}}")
    return request


class Methods:
    """The gateway's RPCs over a blocking channel."""

    def _unary(self, method: str, request: Any, timeout: float | None) -> Any:
        raise NotImplementedError

    def _stream(self, method: str, request: Any, timeout: float | None) -> Iterator[Any]:
        raise NotImplementedError

{chr(10).join(sync_methods)}

class AsyncMethods:
    """The gateway's RPCs over an asyncio channel."""

    async def _unary(self, method: str, request: Any, timeout: float | None) -> Any:
        raise NotImplementedError

    def _stream(self, method: str, request: Any, timeout: float | None) -> AsyncIterator[Any]:
        raise NotImplementedError

{chr(10).join(async_methods)}'''
