"""The OpenVINO reader: an IR reshaped to the given input sizes, read through OpenVINO's own API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekit.errors import require_extra
from edgekit.foreign import OPENVINO_LOAD, OPENVINO_RESHAPE, RESHAPE_HINT, mapped
from edgekit.predict.graph.ir import STRUCTURAL, Op, Shapes, Tensor
from edgekit.runtimes.base import describe_shapes


def read_openvino(path: Path, shapes: Shapes, feeds: Any = None) -> tuple[list[Op], list[Tensor], str]:
    require_extra("openvino", "convert", alone="openvino")
    import openvino as ov

    with mapped(OPENVINO_LOAD, f"{path.name} is not a readable OpenVINO model"):
        model = ov.Core().read_model(str(path))
    ports = list(model.inputs)
    port_names = [sorted(p.get_names())[0] if p.get_names() else f"input_{i}" for i, p in enumerate(ports)]
    with mapped(OPENVINO_RESHAPE, f"{path.name} cannot take input shapes {describe_shapes(shapes)}", hint=RESHAPE_HINT):
        model.reshape(
            {port: list(shapes[name]) for port, name in zip(ports, port_names, strict=True) if name in shapes}
        )

    def tensor(output: Any, constant: bool) -> Tensor:
        shape = output.get_partial_shape()
        dims = tuple(d.get_length() if d.is_static else 1 for d in shape) if shape.rank.is_static else ()
        element = output.get_element_type()
        return Tensor(output.get_any_name() if output.get_names() else f"{id(output)}", dims,
                      max(1, element.bitwidth // 8), element.to_dtype().name, constant)  # fmt: skip

    ops: list[Op] = []
    names: dict[tuple[str, int], Tensor] = {}
    inputs: list[Tensor] = []
    for node in model.get_ordered_ops():
        kind = node.get_type_name()
        constant = kind == "Constant"
        outs = []
        for index, output in enumerate(node.outputs()):
            t = tensor(output, constant)
            t = Tensor(f"{node.get_friendly_name()}:{index}", t.shape, t.itemsize, t.dtype, constant)
            names[(node.get_friendly_name(), index)] = t
            outs.append(t)
        if kind == "Parameter":
            inputs.extend(outs)
        if kind.upper() in STRUCTURAL:
            continue
        ins = []
        for value in node.inputs():
            source = value.get_source_output()
            ins.append(names[(source.get_node().get_friendly_name(), source.get_index())])
        attrs = {}
        if kind == "MatMul":
            attrs = {k: v for k, v in node.get_attributes().items() if k in ("transpose_a", "transpose_b")}
        ops.append(Op(kind, ins, outs, attrs))
    return ops, inputs, "openvino"
