"""OpenVINO: an IR (.xml + .bin) or any model OpenVINO reads, compiled for CPU, GPU or AUTO."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgekit.errors import ModelError
from edgekit.runtimes.base import RuntimeBase, TensorSpec


def _spec(port, index: int) -> TensorSpec:  # noqa: ANN001 - openvino.Output
    names = port.get_names()
    name = sorted(names)[0] if names else f"output_{index}"
    partial = port.get_partial_shape()
    shape = tuple(int(d.get_length()) if d.is_static else None for d in partial)
    return TensorSpec(name=name, shape=shape, dtype=np.dtype(port.get_element_type().to_dtype()).name)


class OpenVinoRuntime(RuntimeBase):
    name = "openvino"

    def __init__(self, path: Path, *, threads: int | None = None, device: str = "CPU", hint: str = "LATENCY") -> None:
        import openvino as ov

        self._ov = ov
        core = ov.Core()
        config: dict[str, object] = {"PERFORMANCE_HINT": hint}
        if device == "CPU":
            # On CPUs with AMX or AVX512-BF16 the plugin would otherwise run an fp32 model in bf16
            # (relative error ~1e-3): the artifact's own precision is what the user converted to.
            config["INFERENCE_PRECISION_HINT"] = "f32"
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        try:
            model = core.read_model(str(path))
            # Edge inference is one frame at a time: a dynamic batch is fixed to 1 before compiling
            # (as benchmark_app's -shape does), so the plugin can plan for static shapes.
            new_shapes = {}
            for port in model.inputs:
                shape = port.get_partial_shape()
                if shape.rank.is_static and len(shape) > 0 and shape[0].is_dynamic:
                    fixed = [1] + [d.get_length() if d.is_static else -1 for d in list(shape)[1:]]
                    new_shapes[port.get_any_name()] = fixed
            if new_shapes:
                model.reshape(new_shapes)
            self._compiled = core.compile_model(model, device, config)
            supported = core.query_model(model, device) if device != "AUTO" else None
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses of its own
            raise ModelError(f"{path} is not a loadable OpenVINO model: {str(exc).splitlines()[0]}") from exc
        self._request = self._compiled.create_infer_request()
        ops = model.get_ordered_ops()
        self._fully = None if supported is None else len(supported) >= len(ops)
        self._unsupported = (
            []
            if supported is None
            else sorted({op.get_type_name() for op in ops if op.get_friendly_name() not in supported})
        )
        inputs = [_spec(p, i) for i, p in enumerate(self._compiled.inputs)]
        super().__init__(path, inputs, [_spec(p, i) for i, p in enumerate(self._compiled.outputs)])

    def _invoke(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        ordered = [feeds[spec.name] for spec in self.inputs]
        result = self._request.infer(ordered)
        return [np.asarray(result[port]) for port in self._compiled.outputs]

    def bench_call(self, feeds: dict[str, np.ndarray]) -> Callable[[], object]:
        # As benchmark_app's sync mode: input tensors set once, then infer() on the request.
        prepared = self.check_feeds(feeds, raw=False)
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
