"""Ctrl-C during training: a checkpoint being saved is finished whole first."""
import contextlib
import signal
import threading

@contextlib.contextmanager
def sigint_deferred():
    """Hold back the first SIGINT (Ctrl-C) until the block is done, then raise
    ``KeyboardInterrupt``; a second SIGINT raises at once. A no-op outside the main thread.

    mmengine formats the config while saving a checkpoint and turns *any* exception there,
    ``KeyboardInterrupt`` included, into ``SyntaxError: Failed to format the config file``;
    deferring the signal keeps the save whole and the interruption an interruption.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending = []

    def hold(signum, frame):
        if pending:
            raise KeyboardInterrupt
        pending.append(signum)

    previous = signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if pending:
        raise KeyboardInterrupt
