"""The OpenMMLab runtime: registration, the Runner engine behind the tools, and studies.

Submodules import mmengine (and mmdet / mmseg lazily); import them explicitly, e.g.
``from regnet_backbone.runtime import engine``.
"""
