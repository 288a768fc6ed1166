# The two commands of the README. Each one sets up what it needs (tools/setup_env.sh is
# idempotent and cached: the one-time mmcv build is skipped once a working mmcv.ops exists).
SETUP := bash tools/setup_env.sh
# Extra tools/demo.py flags, e.g. `make demo DEMO_ARGS=--seg` (also trains the UperNet demo).
DEMO_ARGS ?=

.PHONY: demo test setup study gpu-check-prepare

demo:
	@py=$$($(SETUP)) && "$$py" tools/demo.py $(DEMO_ARGS)

# The paper's method at CPU size on real data: RegNetX vs AnyNetX_A on Fashion-MNIST, 24 + 24
# trials + 4 seed reruns, then the report and its verdict (~1 h on 2 shared cores, ~35 min of their
# CPU). Extra flags: `make study STUDY_ARGS='--seed 1 --out DIR'`.
STUDY_ARGS ?=
study:
	@py=$$($(SETUP)) && "$$py" tools/study.py demo $(STUDY_ARGS)

test:
	@py=$$($(SETUP)) && "$$py" -m pytest tests

setup:
	@$(SETUP)

# Downloads the pure-Python wheels the GPU check needs beyond a bare GPU image (mmengine, pytest and the
# dependencies they lack) into gpu_check/wheels (ignored; about 2.6 MB). Then, on the GPU machine:
# `bash tools/gpu_check.sh` with gpu_check/wheels carried along.
gpu-check-prepare:
	@py=$$($(SETUP)) && bash tools/prepare_gpu_check.sh "$$py"
