"""How every tool in ``tools/`` ends: one ``error:`` line for a mistake the user can fix.

* User errors are the typed errors of this package: the engine's ``ToolError``, the checkpoint
  layer's ``CheckpointError``, the synthetic data generator's ``SyntheticDataError``. The CLI
  prints ``error: <message>`` (one line) on stderr and exits with status 1.
* ``--debug`` (see :func:`add_debug_flag`) or the environment variable ``REGNET_DEBUG=1`` shows
  the full traceback instead, for bug reports.
* Ctrl-C prints one line (``interrupted; ...``, e.g. where the last complete checkpoint is and
  how to resume) and exits with status 130. mmengine turns a Ctrl-C that lands while it formats
  the config during a checkpoint save into ``SyntaxError``; that is recognised as Ctrl-C too.
* Anything else is a bug: its traceback is shown, unchanged.

This module is the tools' side of the package: it is the one place that prints and exits.
"""
import argparse
import os
import sys
from typing import Callable, Optional, Tuple, Type

DEBUG_ENV = 'REGNET_DEBUG'
INTERRUPTED_STATUS = 130


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    """What the train and test commands share: ``--launcher``, ``--local-rank`` (passed by
    torch.distributed.launch; torchrun sets ``LOCAL_RANK`` instead) and ``--debug``."""
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    add_debug_flag(parser)


def parse_run_args(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """Parse, and export ``--local-rank`` as ``LOCAL_RANK`` for mmengine."""
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    """``--debug``: full tracebacks instead of one-line errors."""
    parser.add_argument('--debug', action='store_true',
                        help=f'show full tracebacks instead of one-line errors (also: '
                        f'{DEBUG_ENV}=1)')


def debug_enabled(flag: bool = False) -> bool:
    """``--debug`` given, or ``REGNET_DEBUG`` set to something other than ``''``/``0``."""
    return bool(flag) or os.environ.get(DEBUG_ENV, '') not in ('', '0')


def user_errors() -> Tuple[Type[BaseException], ...]:
    """The exception types that are user errors: the package's root, :class:`RegNetError`
    (checkpoints, configs, runs, studies, data, sampling, export all derive from it)."""
    from ..errors import RegNetError
    return (RegNetError, )


def is_interrupt(error: BaseException) -> bool:
    """Ctrl-C, possibly disguised by a library that caught and re-raised it."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


def one_line(error: BaseException) -> str:
    """The message of ``error`` on a single line."""
    text = ' '.join(part.strip() for part in str(error).splitlines() if part.strip())
    return text.strip('\'"') or type(error).__name__


def run(body: Callable[[], Optional[int]], debug: bool = False,
        on_interrupt: Optional[Callable[[], str]] = None) -> int:
    """Run a tool's ``body`` and return its exit status, handling errors as described above.

    Args:
        body: the tool's work; returns an exit status or None (0).
        debug: ``--debug`` was given (``REGNET_DEBUG=1`` works too).
        on_interrupt: gives the one line printed after Ctrl-C (default: ``interrupted``).
    """
    debug = debug_enabled(debug)
    try:
        return body() or 0
    except BaseException as error:  # noqa: B902 - sorted below; bugs are re-raised
        if debug or isinstance(error, SystemExit):
            raise
        if is_interrupt(error):
            try:
                line = on_interrupt() if on_interrupt else 'interrupted.'
            except Exception:  # the message must not turn an interrupt into a traceback
                line = 'interrupted.'
            print(line, file=sys.stderr, flush=True)
            return INTERRUPTED_STATUS
        if isinstance(error, user_errors()):
            print(f'error: {one_line(error)}', file=sys.stderr, flush=True)
            return 1
        raise
