# The two commands of the README. Each one sets up what it needs (tools/setup_env.sh is
# idempotent and cached: the one-time mmcv build is skipped once a working mmcv.ops exists).
SETUP := bash tools/setup_env.sh

.PHONY: demo test setup

demo:
	@py=$$($(SETUP)) && "$$py" tools/demo.py

test:
	@py=$$($(SETUP)) && "$$py" -m pytest tests

setup:
	@$(SETUP)
