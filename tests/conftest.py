"""Helpers the test files share, as fixtures.

With ``--import-mode=importlib`` (pytest.ini) a test module cannot ``import conftest``, and a
``tests`` package of ours would lose to the top-level ``tests`` package the mmsegmentation wheel
installs into site-packages; fixtures need neither.

The tools import whichever ``regnet_backbone`` Python finds first, so a tool run as a subprocess
gets this checkout at the front of ``PYTHONPATH`` (the shared cached venv may hold an editable
install of another checkout).
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tool_env(**extra) -> dict:
    """``os.environ`` for a subprocess: this checkout first on ``PYTHONPATH``, two OpenMP threads
    and ``REGNET_DEBUG`` unset (the tools' one-line errors), then ``extra`` (values turned into
    strings)."""
    env = {k: v for k, v in os.environ.items() if k != 'REGNET_DEBUG'}
    env.update(PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get('PYTHONPATH')])),
               OMP_NUM_THREADS='2')
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _run_tool(*args, cwd=ROOT, env=None, timeout=600) -> subprocess.CompletedProcess:
    """``python ARGS...`` (a tool's path and its arguments; paths and numbers are fine) in
    ``cwd`` with :func:`_tool_env` plus ``env``; stdout and stderr captured as text."""
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd, env=_tool_env(**(env or {})),
                          capture_output=True, text=True, timeout=timeout)


def _explain(proc: subprocess.CompletedProcess, tail: int = 4000) -> str:
    """An assertion message: the exit status and the last ``tail`` characters of each stream."""
    return (f'exit {proc.returncode}\nSTDOUT:\n{proc.stdout[-tail:]}\n'
            f'STDERR:\n{proc.stderr[-tail:]}')


@pytest.fixture(scope='session')
def tool_env():
    """:func:`_tool_env`, for subprocesses started otherwise (``Popen``, shell scripts)."""
    return _tool_env


@pytest.fixture(scope='session')
def run_tool():
    """:func:`_run_tool`: ``run_tool(TOOL, *args, cwd=ROOT, env=None, timeout=600)``."""
    return _run_tool


@pytest.fixture(scope='session')
def explain():
    """:func:`_explain`: ``assert proc.returncode == 0, explain(proc)``."""
    return _explain
