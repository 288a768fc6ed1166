"""Errors of the runtime (tools, configs, runs): each a :class:`ToolError`, whose message is one
line meant for the terminal."""
from ..checkpoints.errors import CheckpointNotFoundError as _CheckpointNotFound
from ..errors import RegNetError


class ToolError(RegNetError):
    """A problem the user can fix; the message is one line meant for the terminal."""


class ConfigError(ToolError, ValueError):
    """The config file is missing, unreadable, or not an mmdet / mmseg / mmpretrain config."""


class DatasetNotFoundError(ToolError, FileNotFoundError):
    """A path the config's dataset reads does not exist."""


class CheckpointNotFoundError(ToolError, _CheckpointNotFound):
    """A checkpoint named on the command line does not exist (a
    :class:`regnet_backbone.checkpoints.CheckpointNotFoundError` too)."""


class PretrainedNotFoundError(ToolError, FileNotFoundError):
    """The backbone's ``init_cfg`` names a pretrained checkpoint that is not there."""


class CheckpointRefusedError(ToolError):
    """A checkpoint cannot be used: unreadable, unsafe, not a Runner checkpoint (``--resume``),
    or its tensors do not fit the model (strict loading)."""


class WorkDirLockedError(ToolError):
    """Another training run holds the work dir's lock."""
