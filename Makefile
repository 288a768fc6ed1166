# The two commands of the README. Each one sets up what it needs (tools/setup_env.sh is
# idempotent and cached: the one-time mmcv build is skipped once a working mmcv.ops exists).
SETUP := bash tools/setup_env.sh
# Extra tools/demo.py flags, e.g. `make demo DEMO_ARGS=--seg` (also trains the UperNet demo).
DEMO_ARGS ?=

.PHONY: demo test setup

demo:
	@py=$$($(SETUP)) && "$$py" tools/demo.py $(DEMO_ARGS)

test:
	@py=$$($(SETUP)) && "$$py" -m pytest tests

setup:
	@$(SETUP)
