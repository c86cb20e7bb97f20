"""OpenVINO: an IR (.xml + .bin) or any model OpenVINO reads, compiled for CPU, GPU or AUTO.

A model is compiled at the shapes it runs: the resolved ``shapes`` where given, else its own
with a dynamic leading batch fixed to 1 (as ``benchmark_app -shape`` does, so the plugin plans
statically). Where other dimensions stay dynamic and nothing fixes them, compilation waits for
the first inputs and uses their shapes: OpenVINO's "dynamic" plans are slower and not what a
device would run.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.foreign import OPENVINO_LOAD, OPENVINO_RESHAPE, RESHAPE_HINT, mapped
from edgekit.runtimes.base import Runtime, TensorSpec, describe_shapes


def _spec(port: Any, index: int) -> TensorSpec:
    names = port.get_names()
    name = sorted(names)[0] if names else f"output_{index}"
    partial = port.get_partial_shape()
    shape = tuple(int(d.get_length()) if d.is_static else None for d in partial) if partial.rank.is_static else ()
    return TensorSpec(name=name, shape=shape, dtype=np.dtype(port.get_element_type().to_dtype()).name)


class OpenVinoRuntime(Runtime):
    name = "openvino"
    batch_samples = False  # the CPU plugin recompiles for every new shape

    def __init__(
        self,
        path: Path,
        *,
        threads: int | None = None,
        device: str = "CPU",
        hint: str = "LATENCY",
        shapes: dict[str, tuple[int, ...]] | None = None,
    ) -> None:
        import openvino as ov

        self._ov = ov
        self._core = ov.Core()
        self._device = device
        config: dict[str, object] = {"PERFORMANCE_HINT": hint}
        if device == "CPU":
            # On CPUs with AMX or AVX512-BF16 the plugin would otherwise run an fp32 model in bf16
            # (relative error ~1e-3): the artifact's own precision is what the user converted to.
            config["INFERENCE_PRECISION_HINT"] = "f32"
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        self._config = config
        with mapped(OPENVINO_LOAD, f"{path.name} is not a loadable OpenVINO model"):
            self._model = self._core.read_model(str(path))
        self._compiled: Any = None
        self._request: Any = None
        self._compiled_for: dict[str, tuple[int, ...]] | None = None
        self._fully: bool | None = None
        self._unsupported: list[str] = []
        super().__init__(
            path,
            [_spec(p, i) for i, p in enumerate(self._model.inputs)],
            [_spec(p, i) for i, p in enumerate(self._model.outputs)],
        )
        if shapes is not None:
            self.prepare(shapes)
        elif not any(d is None for spec in self.inputs for d in spec.shape[1:]):
            self.prepare({spec.name: tuple(1 if d is None else d for d in spec.shape) for spec in self.inputs})

    def prepare(self, shapes: dict[str, tuple[int, ...]]) -> None:
        """Reshape to ``shapes`` and compile; a failure names the shapes it was tried at."""
        if self._compiled_for == shapes:
            return
        model = self._model
        self._compiled_for = None
        # Shape inference or the plugin refusing: the model at this size.
        what = f"{self.path.name} cannot be compiled at input shapes {describe_shapes(shapes)}"
        with mapped(OPENVINO_RESHAPE, what, hint=RESHAPE_HINT):
            ports = list(model.inputs)
            wanted = [tuple(shapes[spec.name]) for spec in self.inputs]
            if any(_spec(port, i).shape != want for i, (port, want) in enumerate(zip(ports, wanted, strict=True))):
                model.reshape({port: list(want) for port, want in zip(ports, wanted, strict=True)})
            self._compiled = self._core.compile_model(model, self._device, self._config)
            supported = self._core.query_model(model, self._device) if self._device != "AUTO" else None
        self._request = self._compiled.create_infer_request()
        ops = model.get_ordered_ops()
        self._fully = None if supported is None else len(supported) >= len(ops)
        left_out = {
            op.get_type_name() for op in ops if supported is not None and op.get_friendly_name() not in supported
        }
        self._unsupported = sorted(left_out)
        self._compiled_for = dict(shapes)
        self._outputs = list(self._compiled.outputs)

    def _feed_shapes(self, feeds: dict[str, np.ndarray]) -> dict[str, tuple[int, ...]]:
        return {spec.name: tuple(np.shape(feeds[spec.name])) for spec in self.inputs}

    def _invoke(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        self.prepare(self._feed_shapes(feeds))
        ordered = [feeds[spec.name] for spec in self.inputs]
        result = self._request.infer(ordered)
        return [np.asarray(result[port]) for port in self._outputs]

    def bench_call(self, feeds: dict[str, np.ndarray]) -> Callable[[], object]:
        # As benchmark_app's sync mode: input tensors set once, then infer() on the request.
        prepared = self.check_feeds(feeds, raw=False)
        self.prepare(self._feed_shapes(prepared))
        for index, spec in enumerate(self.inputs):
            self._request.set_input_tensor(index, self._ov.Tensor(prepared[spec.name]))
        return self._request.infer

    def fully_accelerated(self) -> bool | None:
        return self._fully

    def unaccelerated_ops(self) -> list[str]:
        return self._unsupported

    def close(self) -> None:
        self._request = None
        self._compiled = None
