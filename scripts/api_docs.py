"""docs/api.md from the protos' comments: every service with its RPCs, every message with
its fields and every enum with its values, in file order. Called by gen_protos.py; the
drift test in tests/unit/test_protos.py regenerates it and compares."""

from __future__ import annotations

from google.protobuf import descriptor_pb2

FieldDescriptor = descriptor_pb2.FieldDescriptorProto
# Paths in SourceCodeInfo (descriptor.proto's field numbers).
FILE_MESSAGES, FILE_ENUMS, FILE_SERVICES = 4, 5, 6
MESSAGE_FIELDS, MESSAGE_NESTED, MESSAGE_ENUMS = 2, 3, 4
ENUM_VALUES, SERVICE_METHODS = 2, 2

SCALARS = {
    value: name.removeprefix("TYPE_").lower()
    for name, value in FieldDescriptor.Type.items()
    if name not in ("TYPE_MESSAGE", "TYPE_ENUM", "TYPE_GROUP")
}

HEADER = """# RingRift API reference

Generated from the comments in `protos/` by `scripts/gen_protos.py`; do not edit (the test
suite fails when this file and the protos disagree). Every package is `v1`: changes are
additive only, checked by `buf breaking` against the released contracts in `releases/`.
Services are reached over gRPC with mutual TLS (or a bearer token on the gateway's token
port); most users call the gateway's `ringrift.orchestrator.v1.OrchestratorService`.
"""


def _comments(file: descriptor_pb2.FileDescriptorProto) -> dict[tuple[int, ...], str]:
    return {
        tuple(location.path): " ".join(line.strip() for line in location.leading_comments.strip().splitlines())
        for location in file.source_code_info.location
        if location.leading_comments
    }


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _link(type_name: str) -> str:
    name = type_name.lstrip(".")
    if name.startswith("ringrift."):
        return f"[`{name}`](#{name})"
    return f"`{name}`"


class _Renderer:
    def __init__(self, files: descriptor_pb2.FileDescriptorSet) -> None:
        self.files = [f for f in files.file if f.package.startswith("ringrift.")]
        self.maps: dict[str, descriptor_pb2.DescriptorProto] = {}
        for file in self.files:
            for message in file.message_type:
                self._collect_maps(f".{file.package}.{message.name}", message)
        self.out: list[str] = [HEADER]

    def _collect_maps(self, name: str, message: descriptor_pb2.DescriptorProto) -> None:
        for nested in message.nested_type:
            if nested.options.map_entry:
                self.maps[f"{name}.{nested.name}"] = nested
            else:
                self._collect_maps(f"{name}.{nested.name}", nested)

    def _type(self, field: descriptor_pb2.FieldDescriptorProto) -> str:
        if field.type_name in self.maps:
            key, value = self.maps[field.type_name].field
            if not value.type_name:
                return f"`map<{SCALARS[key.type]}, {SCALARS[value.type]}>`"
            return f"map of `{SCALARS[key.type]}` to {self._type(value)}"
        base = _link(field.type_name) if field.type_name else f"`{SCALARS[field.type]}`"
        if field.label == FieldDescriptor.LABEL_REPEATED:
            return f"repeated {base}"
        return f"optional {base}" if field.proto3_optional else base

    def render(self) -> str:
        self.out.append("Services:\n")
        for file in self.files:
            for service in file.service:
                name = f"{file.package}.{service.name}"
                self.out.append(f"- [`{name}`](#{name}) ({len(service.method)} RPCs)")
        self.out.append("")
        for file in self.files:
            comments = _comments(file)
            self.out.append(f"## {file.package} (`{file.name}`)\n")
            for s_index, service in enumerate(file.service):
                self._service(file.package, service, comments, (FILE_SERVICES, s_index))
            for m_index, message in enumerate(file.message_type):
                self._message(file.package, message, comments, (FILE_MESSAGES, m_index))
            for e_index, enum in enumerate(file.enum_type):
                self._enum(file.package, enum, comments, (FILE_ENUMS, e_index))
        return "\n".join(self.out).rstrip() + "\n"

    def _service(self, scope: str, service, comments, path: tuple[int, ...]) -> None:
        name = f"{scope}.{service.name}"
        self.out.append(f'<a id="{name}"></a>\n### service {name}\n')
        if path in comments:
            self.out.append(comments[path] + "\n")
        self.out.append("| RPC | Request | Response | Description |\n|---|---|---|---|")
        for index, method in enumerate(service.method):
            request = ("stream " if method.client_streaming else "") + _link(method.input_type)
            response = ("stream " if method.server_streaming else "") + _link(method.output_type)
            text = _cell(comments.get((*path, SERVICE_METHODS, index), ""))
            self.out.append(f"| `{method.name}` | {request} | {response} | {text} |")
        self.out.append("")

    def _message(self, scope: str, message, comments, path: tuple[int, ...]) -> None:
        if message.options.map_entry:
            return
        name = f"{scope}.{message.name}"
        self.out.append(f'<a id="{name}"></a>\n### {name}\n')
        if path in comments:
            self.out.append(comments[path] + "\n")
        if message.field:
            self.out.append("| Field | Number | Type | Description |\n|---|---|---|---|")
            for index, field in enumerate(message.field):
                text = _cell(comments.get((*path, MESSAGE_FIELDS, index), ""))
                self.out.append(f"| `{field.name}` | {field.number} | {self._type(field)} | {text} |")
            self.out.append("")
        for index, nested in enumerate(message.nested_type):
            self._message(name, nested, comments, (*path, MESSAGE_NESTED, index))
        for index, enum in enumerate(message.enum_type):
            self._enum(name, enum, comments, (*path, MESSAGE_ENUMS, index))

    def _enum(self, scope: str, enum, comments, path: tuple[int, ...]) -> None:
        name = f"{scope}.{enum.name}"
        self.out.append(f'<a id="{name}"></a>\n### enum {name}\n')
        if path in comments:
            self.out.append(comments[path] + "\n")
        self.out.append("| Value | Number | Description |\n|---|---|---|")
        for index, value in enumerate(enum.value):
            text = _cell(comments.get((*path, ENUM_VALUES, index), ""))
            self.out.append(f"| `{value.name}` | {value.number} | {text} |")
        self.out.append("")


def render(files: descriptor_pb2.FileDescriptorSet) -> str:
    return _Renderer(files).render()
