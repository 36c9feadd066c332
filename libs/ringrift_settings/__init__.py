"""Every setting of every RingRift process, in one typed tree with one default each.

``ringrift_runtime.settings`` holds how settings load (defaults < TOML file <
``RINGRIFT_*`` environment < explicit overrides, unknown keys and bad values are errors)
and the sections every process has; the modules here add the business sections. This
is the only package that defines a business default (BEHAVIOUR.md's numbers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ringrift_runtime.settings import ProcessSettings, SettingsError, load_settings_of
from ringrift_settings.agent import AgentSettings, GpuDeclaration
from ringrift_settings.gateway import GatewaySettings
from ringrift_settings.jobs import JobSettings
from ringrift_settings.nodes import DEFAULT_GPU_POWER, NodeSelectorSettings
from ringrift_settings.pipeline import PipelineSettings, SelfplaySettings, SyncSettings, TrainingSettings
from ringrift_settings.state import StateSettings

__all__ = [
    "DEFAULT_GPU_POWER",
    "AgentSettings",
    "GatewaySettings",
    "GpuDeclaration",
    "JobSettings",
    "NodeSelectorSettings",
    "PipelineSettings",
    "RingriftSettings",
    "SelfplaySettings",
    "SettingsError",
    "StateSettings",
    "SyncSettings",
    "TrainingSettings",
    "load_settings",
]


class RingriftSettings(ProcessSettings):
    """All settings of a RingRift process."""

    state: StateSettings = StateSettings()
    agent: AgentSettings = AgentSettings()
    gateway: GatewaySettings = GatewaySettings()
    nodes: NodeSelectorSettings = NodeSelectorSettings()
    jobs: JobSettings = JobSettings()
    pipeline: PipelineSettings = PipelineSettings()
    selfplay: SelfplaySettings = SelfplaySettings()
    training: TrainingSettings = TrainingSettings()
    sync: SyncSettings = SyncSettings()


def load_settings(config_file: Path | str | None = None, **overrides: Any) -> RingriftSettings:
    """Build and validate this process's settings; raise SettingsError on any problem."""
    return load_settings_of(RingriftSettings, config_file, **overrides)
