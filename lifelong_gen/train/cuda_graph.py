"""`--cuda-graph`: the whole training step replayed as one CUDA graph.

Owns `GraphedStep`, the callable the training loop runs for each step of a phase. A step of
these small networks launches about a thousand kernels (benchmarks/step_ops.py counts the
operators), each a few microseconds of GPU work, so an eager step waits on the host's
launches. Captured once, the step is one `cudaGraphLaunch`: the n_critic critic updates with
the gradient penalty's double backward, the generator and S update, both (fused,
capturable) Adam steps and the EMA update. This is the approach of PyTorch's whole-network
capture examples (the CUDA graphs section of the CUDA semantics notes, "Accelerating
PyTorch with CUDA Graphs"); torch.compile's graphs cannot hold the double backward.

What makes the step capturable (and is tested on the CPU, tests/test_sync_free.py): it reads
nothing back to the host, and every input is drawn on the device from the run's generator
(registered with the graph, so each replay draws new numbers and the generator's state in a
checkpoint stays right). The one value the host changes per step, the EMA's warm-up weight,
lives in a static buffer filled before each replay.

How a phase runs: the first `WARMUP` steps eager on the capture stream (they create the
optimisers' state and mine the neighbour tables, and the capture stream must have run the
work once before it is captured), then one capture, then a replay per step. Each domain
boundary (a new phase) and each resume captures anew. Losses come back as one stacked
tensor cloned per step, so the metrics log reads copies, never the graph's static outputs.
"""

from __future__ import annotations

import threading
from typing import Any, Optional, Protocol

import torch

from lifelong_gen.errors import LgenError
from lifelong_gen.train.phase import Losses, Phase


class GraphableTrainer(Protocol):
    """What GraphedStep uses of the trainer (train/trainer.py), declared here: the trainer imports this module."""

    device: torch.device
    rng: torch.Generator
    fw: Any
    ema_weight: Optional[torch.Tensor]
    global_step: int

    def ema_rate(self, global_step: int) -> float: ...

    def train_step(self, phase: Phase) -> Losses: ...

# One capture at a time in a process (torch.cuda.graph's rule): seeds trained in threads
# (train/seeds.py) each capture their own step.
_CAPTURE_LOCK = threading.Lock()

# Eager steps before the capture: the first creates Adam's state and mines neighbours; PyTorch's
# examples warm up for 3 iterations on the side stream.
WARMUP = 3


def check_cuda_graph(device: torch.device, compile_mode: str, distributed: bool) -> None:
    """--cuda-graph's requirements, each a one-line error."""
    if device.type != "cuda":
        raise LgenError(f"--cuda-graph captures the step on a GPU, but this run trains on {device.type}: "
                        "drop it or pass --device cuda")
    if compile_mode != "off":
        raise LgenError("--cuda-graph captures the eager step whole; --compile is another way to the same end: pick one")
    if distributed:
        raise LgenError("--cuda-graph runs in a single process for now; drop it under torchrun")


class GraphedStep:
    """One phase's training step: eager for WARMUP steps, then a CUDA graph replayed per step."""

    def __init__(self, trainer: GraphableTrainer, phase: Phase, graph_api: Any = None):
        """
        Args:
            trainer: its `train_step(phase)` is what is captured; `ema_weight` its static buffer.
            phase: the phase whose step is captured (a new phase needs a new GraphedStep).
            graph_api: stands in for torch.cuda's graph, stream and synchronisation calls (tests on
                the CPU); None: torch.cuda.
        """
        self.trainer, self.phase = trainer, phase
        self.api = graph_api if graph_api is not None else _CudaGraphs(trainer.device)
        self.graph: Optional[Any] = None
        self.keys: list[str] = []
        self.stacked: Optional[torch.Tensor] = None  # the graph's static output: every loss of the step
        self.eager_steps = 0

    def __call__(self) -> Losses:
        trainer = self.trainer
        assert trainer.ema_weight is not None
        trainer.ema_weight.fill_(trainer.ema_rate(trainer.global_step))  # before the step reads it
        if self.graph is None and self.eager_steps < WARMUP:
            self.eager_steps += 1
            with self.api.side_stream():
                return trainer.train_step(self.phase)
        if self.graph is None:
            self.graph = self._capture()
        self.graph.replay()
        assert self.stacked is not None
        return dict(zip(self.keys, self.stacked.clone().unbind()))

    def _capture(self) -> Any:
        """Capture one step; capturing runs nothing, so the caller replays it for this step."""
        trainer = self.trainer
        # Under bf16, CastOnce's recast of G's weights lands in the graph: the last warm-up step's G
        # update marked its copies stale, as every G update does.
        with _CAPTURE_LOCK:
            graph = self.api.new_graph(trainer.rng)
            with self.api.capturing(graph):
                losses = trainer.train_step(self.phase)
                self.keys = list(losses)
                self.stacked = torch.stack([losses[k] for k in self.keys])
        return graph


class _CudaGraphs:
    """torch.cuda's side of GraphedStep: the capture stream, graphs with the run's generator registered."""

    def __init__(self, device: torch.device):
        self.device = device
        self.stream = torch.cuda.Stream(device)

    def side_stream(self):
        """Run on the capture stream, ordered after the work queued before and before what follows."""
        return _OnStream(self.stream)

    def new_graph(self, generator: torch.Generator):
        graph = torch.cuda.CUDAGraph()
        # The run's generator, not only the default one: each replay must advance its Philox offset.
        graph.register_generator_state(generator)
        return graph

    def capturing(self, graph):
        # Thread-local: other threads (another seed's training) may call CUDA while this one captures.
        return torch.cuda.graph(graph, stream=self.stream, capture_error_mode="thread_local")


class _OnStream:
    def __init__(self, stream: "torch.cuda.Stream"):
        self.stream = stream
        self.context = torch.cuda.stream(stream)

    def __enter__(self):
        self.stream.wait_stream(torch.cuda.current_stream(self.stream.device))
        self.context.__enter__()

    def __exit__(self, *exc):
        self.context.__exit__(*exc)
        torch.cuda.current_stream(self.stream.device).wait_stream(self.stream)
        return False
