"""The OpenMMLab glue: the Runner, its hooks, configs and the train and test commands.

Submodules import mmengine (and mmdet / mmseg lazily); import them explicitly, e.g.
``from regnet_backbone.runtime import engine``.
"""
