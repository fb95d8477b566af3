"""Scenario 2 of the benchmarks: the peer, dj-whisperer 0.5.3 (see runner.py)."""

from __future__ import annotations

from bench.peer.runner import FULL_CONFIGS, QUICK_CONFIGS, run_peer_benchmark

__all__ = ["FULL_CONFIGS", "QUICK_CONFIGS", "run_peer_benchmark"]
