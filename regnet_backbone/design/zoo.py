"""Former name of :mod:`regnet_backbone.design.summary` (the summaries and the README's table);
the model zoo itself is :mod:`regnet_backbone.design.presets`."""
from .summary import all_presets, describe, markdown_table  # noqa: F401
