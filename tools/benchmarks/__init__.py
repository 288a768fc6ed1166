"""What ``tools/benchmark.py`` and ``tools/gpu_check.py`` time, and how they report it.

The timing itself (interleaved rounds, CUDA events, peak memory, the matmul peak) is the small
core :mod:`regnet_backbone.benchmark`; this package holds the rest, outside the installed library:

* :mod:`.modes`: a mode (precision + channels_last / deploy / compile) and the step it times.
* :mod:`.rivals`: the one builder registry: ours, mmdet's ``RegNet``, torchvision, timm,
  onnxruntime.
* :mod:`.cpu_report`: the CPU fp32 report against mmdet (inference, train, memory, detector).
* :mod:`.matrix`: every implementation in every mode on a device (CPU or CUDA).
* :mod:`.families`: RegNet against EfficientNet and ResNet-50 at matched flops.
* :mod:`.offline`, :mod:`.pytest_report`, :mod:`.gpu_report`: the GPU check's environment and
  offline install, its pytest plugin, and its markdown report (``tools/gpu_check.py``).

The goals these figures are read against are written in ``docs/benchmarks.md``, not here.
"""
