"""Typed errors of the checkpoint layer.

Every message names the problem and the fix in one sentence, so that a CLI can print
``error: <message>`` and nothing else.
"""
from ..errors import RegNetError


class CheckpointError(RegNetError):
    """Base class: anything wrong with a checkpoint file or its contents."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The input file does not exist."""


class CheckpointReadError(CheckpointError):
    """The file exists but cannot be read: unreadable, truncated, corrupted or not a checkpoint."""


class UnsafeCheckpointError(CheckpointError):
    """The pickle needs more than weights-only unpickling (it could run code when loaded)."""


class UnknownFormatError(CheckpointError):
    """The tensors match no supported layout (pycls, torchvision, timm, mmdet, ours)."""


class AmbiguousFormatError(UnknownFormatError):
    """The tensors match more than one layout, so the source cannot be told apart."""


class NotRegNetError(CheckpointError):
    """The names fit a layout but the shapes are not a RegNet (e.g. a ResNet-50)."""


class ArchitectureMismatchError(CheckpointError):
    """The checkpoint's architecture differs from the one asked for (``--arch``, the model)."""


class OutputExistsError(CheckpointError, FileExistsError):
    """The output file exists and overwriting was not requested."""
