"""The network of a process: the compute device, the process prepared for it, VGG trunks built
once from resolved weights and kept for the process's life (a worker loads the network once,
not once per pair), and the process's evaluator."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from nst_ops.evaluation import DEFAULT_COMPILE, Evaluator, make_evaluator
from nst_ops.params import ParamError, StyleParams
from nst_ops.vgg import DEFAULT_PRECISION, VGGFeatures, check_layers, layer_names
from workflows.errors import InputError
from workflows.host import keep_freed_memory
from workflows.weights import ResolvedWeights


def pick_device(name: str) -> torch.device:
    """cpu | cuda | cuda:N | auto (cuda when available); InputError for anything else or a
    GPU this machine does not have."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    kind, _, index = name.partition(":")
    if name != "cpu" and (kind != "cuda" or not (index == "" or index.isdigit())):
        raise InputError(f"--device {name}: expected cpu, cuda, cuda:N or auto")
    if kind == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {name}: CUDA is not available on this machine")
    if index and int(index) >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise InputError(
            f"--device {name}: this machine has {count} GPU(s), cuda:0 … cuda:{count - 1}"
        )
    return torch.device(name)


def check_model_layers(model: str, params: StyleParams) -> None:
    """ParamError naming content_layers or style_layers when `model` (vgg16 | vgg19) lacks one
    of their layers (StyleParams admits the layers of either model)."""
    for name in ("content_layers", "style_layers"):
        try:
            check_layers(model, getattr(params, name))
        except ValueError as e:
            raise ParamError(name, str(e)) from None


def prepare_process(device: torch.device, precision: str) -> None:
    """Process-wide settings for computing on `device`: TF32 matmuls and convolutions on CUDA
    when `precision` is tf32 (off otherwise); on the CPU, freed memory kept for reuse
    (workflows.host: 20% faster iterations at 512 px)."""
    if device.type == "cuda":
        tf32 = precision == "tf32"
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
    else:
        keep_freed_memory()


def process_evaluator(compile: str, device: torch.device) -> Evaluator:
    """The process's evaluator (nst_ops.evaluation: eager or captured; its captured graphs are
    reused across pairs); InputError naming --compile for an unknown setting."""
    try:
        return make_evaluator(compile, device)
    except ValueError as e:
        raise InputError(f"--{e}") from None


@dataclass
class TrunkCache:
    """VGG trunks built from one set of weights, one per (pooling, depth), kept for the life of
    the process so that a worker loads the network once, not once per pair."""

    weights: ResolvedWeights
    device: torch.device
    precision: str = DEFAULT_PRECISION
    built: dict[tuple[str, int], VGGFeatures] = field(default_factory=dict)
    builds: int = 0

    def get(self, params: StyleParams) -> VGGFeatures:
        """The trunk for a pair's params: to its deepest content or style layer."""
        check_model_layers(self.weights.model, params)
        layers = params.content_layers + params.style_layers
        names = layer_names(self.weights.model)
        return self.reaching(names[max(names.index(n) for n in layers)], params.pooling)

    def reaching(self, layer: str, pooling: str) -> VGGFeatures:
        """The trunk that ends at `layer` (a name of this model) with `pooling`."""
        depth = layer_names(self.weights.model).index(layer)
        key = (pooling, depth)
        if key not in self.built:
            extractor = VGGFeatures(
                self.weights.model,
                [layer],
                self.weights.state_dict,
                pooling,
                precision=self.precision,
            ).to(self.device)
            if self.device.type == "cuda":
                extractor = extractor.to(memory_format=torch.channels_last)
            self.built[key] = extractor
            self.builds += 1
        return self.built[key]


class ExtractorCache:
    """What a process computes with, its three parts apart: the process prepared for its
    device (`prepare_process`), its VGG trunks (`trunks`, a TrunkCache: `get`, `reaching`)
    and its evaluator (`evaluator`, `process_evaluator`)."""

    def __init__(
        self,
        weights: ResolvedWeights,
        device: torch.device,
        precision: str = DEFAULT_PRECISION,
        compile: str = DEFAULT_COMPILE,
    ) -> None:
        self.evaluator = process_evaluator(compile, device)  # an unknown setting: before work
        prepare_process(device, precision)
        self.trunks = TrunkCache(weights, device, precision)
        self.weights, self.device, self.precision = weights, device, precision

    @property
    def builds(self) -> int:
        return self.trunks.builds

    def get(self, params: StyleParams) -> VGGFeatures:
        return self.trunks.get(params)

    def reaching(self, layer: str, pooling: str) -> VGGFeatures:
        return self.trunks.reaching(layer, pooling)
