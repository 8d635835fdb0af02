"""An agent as an ONNX graph, written node by node from its arch.

Agents are a short chain of seven op types (Cast, Div/Mul, Flatten, Gemm, Conv, Tanh/Relu,
and Squeeze for the value output), so the graph is written directly with ``onnx.helper``
rather than traced: about 1 ms an MLP agent and 14-31 ms a Nature CNN (BENCHMARKS.md) against
2-7 s for ``torch.onnx.export(dynamo=True)`` (most of it rebuilding the exporter's op registry
on every call), which the export pays once per delivered member. The bytes depend
on the weights alone (no exporter version in them), and ``onnxscript`` is not needed.
``tests/test_export.py`` checks every arch family against the torch forward in onnxruntime.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn

from a2d_evo.nets.agent import Agent
from a2d_evo.nets.space import CNNArch

OPSET = 17
"""ONNX opset of the graph (onnxruntime 1.14 and later run it)."""

IR_VERSION = 8
"""ONNX IR version: the lowest that opset 17 allows, so that older runtimes load the file."""


def onnx_bytes(agent: Agent) -> bytes:
    """The agent as a serialized ONNX model.

    Input ``obs``: uint8 ``(N, C, H, W)`` images for a CNN (ALE frames, MinAtar planes...),
    float32 ``(N, obs_dim...)`` otherwise, ``N`` dynamic; the graph scales it as
    :func:`a2d_evo.nets.agent.obs_to_float` does first; outputs ``logits (N, A)`` and
    ``value (N,)``.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes: list[Any] = []
    inits: list[Any] = []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(value, name))
        return name

    def node(op: str, inputs: list[str], out: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def gemm(x: str, layer: nn.Module, name: str, out: str = "") -> str:
        w = const(f"{name}.weight", _array(layer.weight))
        b = const(f"{name}.bias", _array(layer.bias))
        return node("Gemm", [x, w, b], out or f"{name}.out", transB=1)

    x = "obs"
    if agent.image:
        x = node("Cast", [x], "obs.float", to=TensorProto.FLOAT)
    scale = float(agent.obs_scale)
    if scale != 1.0:
        inverse = 1.0 / scale
        if inverse == round(inverse):  # x / 255, as obs_to_float divides
            x = node("Div", [x, const("obs.divisor", _scalar(round(inverse)))], "obs.scaled")
        else:
            x = node("Mul", [x, const("obs.scale", _scalar(scale))], "obs.scaled")
    if isinstance(agent.arch, CNNArch):
        for i, c in agent.arch.active:
            conv = agent.convs[str(i)]
            w = const(f"convs.{i}.weight", _array(conv.weight))
            b = const(f"convs.{i}.bias", _array(conv.bias))
            x = node(
                "Conv",
                [x, w, b],
                f"convs.{i}.out",
                kernel_shape=[c.kernel, c.kernel],
                strides=[c.stride, c.stride],
                pads=[c.pad] * 4,
            )
            x = node("Relu", [x], f"convs.{i}.relu")
        x = node("Flatten", [x], "flat", axis=1)
        x = node("Relu", [gemm(x, agent.fc, "fc")], "fc.relu")
    else:
        x = node("Flatten", [x], "flat", axis=1)
        for i, layer in enumerate(agent.layers):
            x = node("Tanh", [gemm(x, layer, f"layers.{i}")], f"layers.{i}.tanh")
    gemm(x, agent.policy, "policy", out="logits")
    axes = const("value.axes", np.array([1], dtype=np.int64))
    node("Squeeze", [gemm(x, agent.value, "value"), axes], "value")

    dtype = TensorProto.UINT8 if agent.image else TensorProto.FLOAT
    graph = helper.make_graph(
        nodes,
        "a2d_evo_agent",
        [helper.make_tensor_value_info("obs", dtype, ["batch", *agent.obs_shape])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", agent.n_actions]),
            helper.make_tensor_value_info("value", TensorProto.FLOAT, ["batch"]),
        ],
        initializer=inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="a2d-evo",
        ir_version=IR_VERSION,
    )
    onnx.checker.check_model(model, full_check=True)
    return bytes(model.SerializeToString())


def _array(tensor: Any) -> np.ndarray:
    return np.ascontiguousarray(tensor.detach().cpu().float().numpy())


def _scalar(value: float) -> np.ndarray:
    return np.array(value, dtype=np.float32)
