"""What this machine has and how busy it is: psutil for CPU, memory and disk (works on
Linux and macOS), nvidia-smi for NVIDIA GPUs when it is installed. Blocking probes run
off the event loop."""

from __future__ import annotations

import asyncio
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import psutil

log = logging.getLogger("ringrift.agent.system")

NVIDIA_SMI_TIMEOUT_SECONDS = 5.0
MIB = 1024 * 1024


@dataclass(frozen=True)
class GpuReading:
    model: str
    memory_mb: int
    utilization_percent: float
    memory_used_mb: int


@dataclass(frozen=True)
class Usage:
    cpu_percent: float
    memory_percent: float
    free_ram_mb: int
    disk_percent: float
    gpu_utilization_percent: float
    gpu_memory_percent: float


def parse_nvidia_smi(text: str) -> list[GpuReading]:
    """Parse ``--query-gpu=name,memory.total,utilization.gpu,memory.used --format=csv,noheader,nounits``."""
    readings = []
    for line in text.strip().splitlines():
        parts = [part.strip() for part in line.split(",")]
        if len(parts) != 4:
            continue
        name, total, utilization, used = parts
        try:
            readings.append(GpuReading(name, int(float(total)), float(utilization), int(float(used))))
        except ValueError:
            continue
    return readings


class SystemProbe:
    def __init__(self, data_dir: Path, detect_gpus: bool = True) -> None:
        self._data_dir = data_dir
        self._nvidia_smi = shutil.which("nvidia-smi") if detect_gpus else None
        psutil.cpu_percent(interval=None)  # prime the counter: later calls measure since the last

    async def gpus(self) -> list[GpuReading]:
        if not self._nvidia_smi:
            return []
        try:
            process = await asyncio.create_subprocess_exec(
                self._nvidia_smi,
                "--query-gpu=name,memory.total,utilization.gpu,memory.used",
                "--format=csv,noheader,nounits",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
            )
            out, _ = await asyncio.wait_for(process.communicate(), NVIDIA_SMI_TIMEOUT_SECONDS)
        except (OSError, TimeoutError) as exc:
            log.warning("nvidia-smi failed: %s", exc)
            return []
        return parse_nvidia_smi(out.decode(errors="replace")) if process.returncode == 0 else []

    @staticmethod
    def cpu_cores() -> int:
        return psutil.cpu_count(logical=True) or 1

    @staticmethod
    def ram_mb() -> int:
        return psutil.virtual_memory().total // MIB

    def disk_mb(self) -> int:
        return psutil.disk_usage(str(self._data_dir)).total // MIB

    async def usage(self, gpus: list[GpuReading]) -> Usage:
        def measure() -> tuple[float, float, int, float]:
            memory = psutil.virtual_memory()
            disk = psutil.disk_usage(str(self._data_dir))
            return psutil.cpu_percent(interval=None), memory.percent, memory.available // MIB, disk.percent

        cpu, memory, free_ram, disk = await asyncio.to_thread(measure)
        gpu_util = sum(g.utilization_percent for g in gpus) / len(gpus) if gpus else 0.0
        gpu_mem = sum(100.0 * g.memory_used_mb / g.memory_mb for g in gpus if g.memory_mb) / len(gpus) if gpus else 0.0
        return Usage(cpu, memory, free_ram, disk, gpu_util, gpu_mem)
