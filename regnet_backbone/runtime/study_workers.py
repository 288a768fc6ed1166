"""Kept for old imports; the code lives in runtime/study/workers.py (and ``judge`` in
runtime/study/attempt.py)."""
from .study.attempt import judge  # noqa: F401
from .study.workers import WorkerBackend, WorkerDied, run_request, serve  # noqa: F401
