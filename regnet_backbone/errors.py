"""The package's root exception: every expected failure (a bad config, checkpoint, arch, data
folder...) is a :class:`RegNetError`, whose message is one line naming the problem and the fix.
The CLIs turn it into ``error: <message>`` and a non-zero exit (:mod:`regnet_backbone.runtime.cli`).
"""


class RegNetError(Exception):
    """Base class of this package's expected errors; the message is one line for the terminal."""


class ArchitectureError(RegNetError, ValueError):
    """An arch (a preset name, RegNet parameters, AnyNet stage lists) or a backbone argument
    that does not describe a network this package can build."""
