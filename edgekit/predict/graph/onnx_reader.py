"""The ONNX reader: the graph as written, every tensor's shape inferred at the given input sizes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekit.errors import ModelError, require_extra
from edgekit.foreign import ONNX_LOAD, mapped
from edgekit.predict.graph.ir import Op, Shapes, Tensor
from edgekit.quiet import silenced_stderr
from edgekit.runtimes.base import TensorSpec

ONNX_ITEMSIZE = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 16: 2}
ONNX_DTYPE = {1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 9: "bool",
               10: "float16", 11: "float64", 12: "uint32", 13: "uint64", 16: "bfloat16"}  # fmt: skip


def onnx_inputs(path: Path) -> list[TensorSpec]:
    """The graph inputs an ONNX file declares (initializers that older exporters list as inputs left out)."""
    require_extra("onnx", "convert", alone="onnx")
    import onnx

    with mapped(ONNX_LOAD, f"{path.name} is not a readable ONNX model"):
        model = onnx.load(str(path), load_external_data=False)
    constants = {init.name for init in model.graph.initializer}
    specs = []
    for value in model.graph.input:
        if value.name in constants:
            continue
        kind = value.type.tensor_type
        dims = list(kind.shape.dim)
        shape = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims)
        names = tuple(d.dim_param or None for d in dims)
        dtype = "string" if kind.elem_type == 8 else ONNX_DTYPE.get(kind.elem_type, "float32")
        specs.append(TensorSpec(value.name, shape, dtype, dim_names=names if any(names) else ()))
    return specs


def with_input_shapes(model: Any, shapes: Shapes) -> None:
    """Write the resolved sizes into the graph's inputs, so shape inference has numbers to carry."""
    for value in model.graph.input:
        if value.name not in shapes:
            continue
        dims = value.type.tensor_type.shape.dim
        want = shapes[value.name]
        del dims[:]
        for size in want:
            dims.add().dim_value = int(size)


def infer_shapes(model: Any) -> Any:
    """Every tensor's shape at the given input sizes. ONNX Runtime's symbolic inference follows
    computed sizes (Shape → Gather → Concat → Reshape, Resize by scales) that onnx's own inference
    leaves unknown: a Paddle text detector's 2.3 GMACs at 640×640 read as 1.2 MMACs without it."""
    import importlib.util

    from onnx import shape_inference

    if importlib.util.find_spec("onnxruntime") is not None:
        try:
            from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

            with silenced_stderr():
                inferred = SymbolicShapeInference.infer_shapes(model, auto_merge=True, guess_output_rank=True)
            if inferred is not None:
                return inferred
        except Exception:  # noqa: BLE001 - an op it does not know: onnx's own inference next
            pass
    try:
        return shape_inference.infer_shapes(model, data_prop=True)
    except Exception:  # noqa: BLE001 - an op shape inference does not know: shapes stay partial
        return model


def value_dependent_outputs(path: Path, shapes: Shapes) -> list[str]:
    """Outputs whose size the input sizes do not fix (NonZero, NMS): their size follows the values.
    Known for ONNX (shape inference at the given sizes leaves them symbolic); empty elsewhere."""
    if Path(path).suffix.lower() != ".onnx":
        return []
    import importlib.util

    if importlib.util.find_spec("onnx") is None:
        return []
    import onnx

    try:
        model = onnx.load(str(path))
    except Exception:  # noqa: BLE001 - an unreadable model is reported where it is read
        return []
    with_input_shapes(model, shapes)
    inferred = infer_shapes(model)
    found = []
    for output in inferred.graph.output:
        dims = output.type.tensor_type.shape.dim
        if output.type.HasField("tensor_type") and any(not d.HasField("dim_value") for d in dims):
            found.append(output.name)
    return found


def read_onnx(path: Path, shapes: Shapes, feeds: Any = None) -> tuple[list[Op], list[Tensor], str]:
    require_extra("onnx", "convert", alone="onnx")
    import onnx
    from onnx import helper

    with mapped(ONNX_LOAD, f"{path.name} is not a readable ONNX model"):
        model = onnx.load(str(path))
    if not model.graph.node:  # protobuf parses some garbage as an empty model
        raise ModelError(f"{path.name} is not a readable ONNX model: it has no operators", hint="is the file complete?")
    with_input_shapes(model, shapes)
    model = infer_shapes(model)
    graph = model.graph
    known: dict[str, tuple[tuple[int, ...], int]] = {}

    def record(value: Any) -> None:
        kind = value.type.tensor_type
        dims = tuple(d.dim_value if d.dim_value > 0 else 1 for d in kind.shape.dim)
        known[value.name] = (dims, kind.elem_type)

    for value in [*graph.input, *graph.value_info, *graph.output]:
        record(value)
    constants = {init.name for init in graph.initializer}
    for init in graph.initializer:
        known[init.name] = (tuple(init.dims), init.data_type)
    for node in graph.node:
        if node.op_type == "Constant":
            constants.update(node.output)
            for attr in node.attribute:
                if attr.name == "value":
                    known[node.output[0]] = (tuple(attr.t.dims), attr.t.data_type)

    def tensor(name: str) -> Tensor:
        shape, elem = known.get(name, ((), 1))
        return Tensor(name, shape, ONNX_ITEMSIZE.get(elem, 4), ONNX_DTYPE.get(elem, "float32"), name in constants)

    ops = []
    for node in graph.node:
        if node.op_type == "Constant":
            continue
        attrs = {
            a.name: helper.get_attribute_value(a) for a in node.attribute if a.name in ("group", "transA", "transB")
        }
        ops.append(
            Op(
                node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}",
                [tensor(n) for n in node.input if n],
                [tensor(n) for n in node.output if n],
                attrs,
            )
        )
    inputs = [tensor(v.name) for v in graph.input if v.name not in constants]
    return ops, inputs, "onnx"
