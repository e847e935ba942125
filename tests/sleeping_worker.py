"""A torchrun worker that joins the process group the way `lgen train` does, says so, and waits.

    torchrun --nproc_per_node 2 tests/sleeping_worker.py DIR

Each rank writes DIR/ready-RANK once `distributed.init_from_env` returned (which binds it to
its launcher), then sleeps until killed: test_worker_lifetime.py kills torchrun and watches.
"""

import os
import sys
import time
from pathlib import Path

from lifelong_gen.train import distributed

ctx = distributed.init_from_env("cpu")
(Path(sys.argv[1]) / f"ready-{ctx.rank}").write_text(f"{os.getpid()}\n")
while True:
    time.sleep(60)
