# The two commands of the README. Each one sets up what it needs (tools/setup_env.sh is
# idempotent and cached: the one-time mmcv build is skipped once a working mmcv.ops exists).
SETUP := bash tools/setup_env.sh
# Extra tools/demo.py flags, e.g. `make demo DEMO_ARGS=--seg` (also trains the UperNet demo).
DEMO_ARGS ?=

.PHONY: study-refinement demo test test-slow test-oldest setup study gpu-check-prepare

demo:
	@py=$$($(SETUP)) && "$$py" tools/demo.py $(DEMO_ARGS)

# The paper's method at CPU size on real data: RegNetX vs AnyNetX_A on Fashion-MNIST, 24 + 24
# trials + 4 seed reruns, then the report and its verdict (~1 h on 2 shared cores, ~35 min of their
# CPU). Extra flags: `make study STUDY_ARGS='--seed 1 --out DIR'`.
STUDY_ARGS ?=
study:
	@py=$$($(SETUP)) && "$$py" tools/study.py demo $(STUDY_ARGS)

# The paper's refinement AnyNetX_A -> B -> C -> D -> E -> RegNet on the same recipe and window
# (a 60-step schedule): 6 spaces x (24 + 2 reruns), one verdict per step (43 min on 2 cores).
study-refinement:
	@py=$$($(SETUP)) && "$$py" tools/study.py refinement $(STUDY_ARGS)

# The unit suite; the whole benchmark runs (marked slow, a few minutes) are `make test-slow`.
test:
	@py=$$($(SETUP)) && "$$py" -m pytest -m 'not slow' tests

test-slow:
	@py=$$($(SETUP)) && "$$py" -m pytest -m slow tests

# The oldest supported stack (requirements/constraints-oldest.txt: Python 3.10, torch 2.1.2,
# mmcv 2.1.0 built as shipped, mmdet 3.3.0): the loading, conversion, reliability, migration and
# config tests, the packaging and stock-tool runs, and a detector's train, resume and test.
OLDEST_TESTS := tests/test_environment.py tests/test_backbone.py tests/test_checkpoints.py \
	tests/test_reliability.py tests/test_migration.py tests/test_configs.py \
	tests/test_packaging.py tests/test_remote_checkpoints.py tests/test_stock_tools.py \
	tests/test_tools.py::test_train_detector_writes_checkpoint_and_evaluates \
	tests/test_tools.py::test_resume_from_checkpoint_continues_at_saved_iteration \
	tests/test_tools.py::test_test_tool_evaluates_checkpoint_and_dumps_predictions \
	tests/test_tools.py::test_runner_checkpoint_converts_to_a_backbone_checkpoint
test-oldest:
	@py=$$($(SETUP) oldest) && REGNET_STACK=oldest "$$py" -m pytest $(OLDEST_TESTS)

setup:
	@$(SETUP)

# Downloads the pure-Python wheels the GPU check needs beyond a bare GPU image (mmengine, pytest and the
# dependencies they lack) into gpu_check/wheels (ignored; about 2.6 MB). Then, on the GPU machine:
# `bash tools/gpu_check.sh` with gpu_check/wheels carried along.
gpu-check-prepare:
	@py=$$($(SETUP)) && bash tools/prepare_gpu_check.sh "$$py"
