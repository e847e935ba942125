"""Hunt for the rare non-identical resume (README, "What survives what", open problem).

    python tests/kill9_loop.py SEED N

Trains test_resume's reference run, then N times: starts the same run, SIGKILLs it at a
random moment (20-95% of a measured run's duration), resumes it, and prints whether the
weights match the reference, with the checkpoints, `latest` and snapshots found at the kill.
Not collected by pytest (no test_ prefix); the slow test is test_faults.py's.
"""

import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import lgen
from test_resume import ARGS, assert_same_weights

root = Path(sys.argv[3] if len(sys.argv) > 3 else "/tmp/kill9_loop")
shutil.rmtree(root, ignore_errors=True)
root.mkdir()
ref = root / "ref"
assert lgen(*ARGS, "--out", str(ref)).returncode == 0
rng = random.Random(int(sys.argv[1]))
TRAIN = [sys.executable, "-m", "lifelong_gen.cli", *ARGS]
t0 = time.time()
subprocess.run([*TRAIN, "--out", str(root / "t")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
dur = time.time() - t0
for i in range(int(sys.argv[2])):
    out = root / f"r{i}"
    p = subprocess.Popen([*TRAIN, "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(rng.uniform(0.2, 0.95) * dur)
    p.send_signal(signal.SIGKILL)
    p.wait()
    ck = out / "checkpoints"
    state = sorted(x.name for x in ck.iterdir()) if ck.exists() else None
    latest = (ck / "latest").read_text().strip() if (ck / "latest").exists() else None
    snaps = sorted(x.name for x in (out / "snapshots").iterdir()) if (out / "snapshots").exists() else None
    resumable = (out / "config.json").exists()
    r = lgen("train", "--resume", str(out), "--no-progress") if resumable else lgen(*ARGS, "--out", str(out))
    try:
        assert_same_weights(ref, out)
        ok = True
    except AssertionError:
        ok = False
    said = [line for line in r.stderr.splitlines() if any(w in line for w in ("resumed", "damaged", "no checkpoint"))]
    print(i, ok, state, latest, snaps, said, flush=True)
