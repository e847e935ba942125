"""`python tests/lgen_stop_at.py STEP ARGS...`: `lgen ARGS`, stopped (SIGSTOP, by itself) after global step STEP.

Tests that kill or signal a training part-way start it through this and wait until it is stopped
(conftest.wait_stopped): the run is then at STEP, its earlier checkpoints written, and cannot
have finished first, however fast or slow the machine. Under torchrun every rank stops at the
same step; they still bind to torchrun through `lgen train` itself (worker_lifetime.py).
SIGCONT lets it go on. Not collected by pytest (no test_ prefix).
"""

import os
import runpy
import signal
import sys

from lifelong_gen.cpu_sharing import choose_wait_policy

stop_at = int(sys.argv.pop(1))
choose_wait_policy()  # as `lgen train` does before torch loads (the imports below load it)

from lifelong_gen.train.callbacks import Callback  # noqa: E402
from lifelong_gen.train.trainer import Trainer  # noqa: E402


class StopAt(Callback):
    def after_step(self, trainer, phase, losses):
        if trainer.global_step == stop_at:
            os.kill(os.getpid(), signal.SIGSTOP)


built_in = Trainer._all_callbacks
Trainer._all_callbacks = lambda self: [*built_in(self), StopAt()]  # after the metrics log's after_step
sys.argv[0] = "lgen"
runpy.run_module("lifelong_gen.cli", run_name="__main__", alter_sys=True)
