"""The leader's background loops (BEHAVIOUR.md, Background loops): the LoopManager that
runs them, and one module per loop saying what it decides."""

from ringrift_gateway.domain.loops.manager import Health, Loop, LoopManager, LoopStatus, backoff_delay, start_order

__all__ = ["Health", "Loop", "LoopManager", "LoopStatus", "backoff_delay", "start_order"]
