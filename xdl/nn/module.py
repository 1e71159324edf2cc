"""Module, Parameter, Sequential: the building blocks every layer derives from.

A Module has a hand-written ``forward`` that computes its output and saves what the
backward pass needs, and a ``backward`` that takes the gradient of the loss with
respect to the output and returns the gradient with respect to the input, *adding*
the gradients of its parameters into ``Parameter.grad``. There is no autograd tape:
a composite module calls its children's ``backward`` in reverse order.

Saving for backward is skipped inside :func:`no_grad` (what ``evaluate`` uses), so
evaluation caches nothing; ``train()`` / ``eval()`` only switch the behaviour of
dropout and batch normalisation, as in PyTorch.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Iterator

from xdl import backends

_grad_enabled = True


@contextlib.contextmanager
def no_grad():
    """Within the block, forward passes save nothing for backward."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = previous


def is_grad_enabled() -> bool:
    return _grad_enabled


class Parameter:
    """A trainable array and the gradient accumulated into it.

    ``grad`` is None until a backward pass adds to it; ``zero_grad`` resets it to None.
    ``data`` and ``grad`` share backend, device and dtype.
    """

    __slots__ = ("data", "grad", "requires_grad")

    def __init__(self, data, requires_grad: bool = True):
        self.data = data
        self.grad = None
        self.requires_grad = requires_grad

    def accumulate(self, grad) -> None:
        """``grad += g`` (the first gradient is stored as it is)."""
        if not self.requires_grad:
            return
        self.grad = grad if self.grad is None else self.grad + grad

    @property
    def shape(self):
        return tuple(self.data.shape)

    def __repr__(self):
        return f"Parameter(shape={self.shape}, dtype={self.data.dtype})"


class Module:
    """Base class of layers, losses and models (PyTorch's names and conventions).

    Subclasses set parameters, buffers and child modules as attributes, implement
    ``forward`` (calling :meth:`save_for_backward`) and ``backward``.
    """

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_saved", None)
        object.__setattr__(self, "training", True)

    # -- attribute registration ---------------------------------------------------
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(
                f"{type(self).__name__}.__init__ must call super().__init__() "
                f"before setting {name!r}"
            )
        if isinstance(value, Parameter):
            table = self._parameters
        elif isinstance(value, Module):
            table = self._modules
        elif name in self._buffers:  # a new array for a buffer keeps it a buffer
            table = self._buffers
        else:
            table = None
        for other in (self._parameters, self._buffers, self._modules):
            if other is not table:
                other.pop(name, None)
        if table is not None:  # in place: reassigning keeps the state_dict order
            table[name] = True if table is self._buffers else value
        object.__setattr__(self, name, value)

    def register_buffer(self, name: str, value) -> None:
        """A state array that is saved and moved with the module but not trained."""
        object.__setattr__(self, name, value)
        self._buffers[name] = True

    # -- forward / backward -------------------------------------------------------
    def forward(self, *inputs):
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def backward(self, *grad_outputs):
        raise NotImplementedError(f"{type(self).__name__}.backward")

    def backward_params(self, *grad_outputs) -> None:
        """Accumulate the parameter gradients only: the input is data and needs none.

        What a training step calls on the whole model. The default runs ``backward``
        and drops the input gradient; layers whose input gradient costs real work
        (a matrix product in Linear) skip computing it.
        """
        self.backward(*grad_outputs)

    def __call__(self, *inputs, **kwargs):
        return self.forward(*inputs, **kwargs)

    def save_for_backward(self, *values) -> None:
        """Keep ``values`` for ``backward`` (nothing is kept under :func:`no_grad`)."""
        object.__setattr__(self, "_saved", values if _grad_enabled else None)

    def saved_states(self) -> list:
        """What this module and every submodule saved in the last forward.

        With :meth:`restore_saved_states` it lets one module run forward twice before
        either pass is differentiated (a discriminator on real, then on generated
        images): keep the first pass's states, run the second, backpropagate it, then
        restore the first and backpropagate that.
        """
        return [(module, module._saved) for module in self.modules()]

    def restore_saved_states(self, states) -> None:
        """Put back what :meth:`saved_states` returned."""
        for module, saved in states:
            object.__setattr__(module, "_saved", saved)

    @property
    def saved(self):
        """What the last forward saved; a clear error if there is nothing."""
        if self._saved is None:
            raise RuntimeError(
                f"{type(self).__name__}.backward called without a forward pass to "
                "differentiate (no forward yet, or it ran under no_grad())"
            )
        return self._saved

    # -- traversal ----------------------------------------------------------------
    def children(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def named_modules(self, prefix: str = ""):
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        for _, module in self.named_modules():
            yield module

    def named_parameters(self, prefix: str = ""):
        for module_name, module in self.named_modules(prefix):
            for name, param in module._parameters.items():
                yield (f"{module_name}.{name}" if module_name else name), param

    def parameters(self) -> Iterator[Parameter]:
        for _, param in self.named_parameters():
            yield param

    def _buffer_slots(self):
        """(dotted name, owning module, attribute) of every buffer."""
        for module_name, module in self.named_modules():
            for name in module._buffers:
                yield (f"{module_name}.{name}" if module_name else name), module, name

    def named_buffers(self):
        for name, module, attr in self._buffer_slots():
            yield name, getattr(module, attr)

    def buffers(self):
        for _, value in self.named_buffers():
            yield value

    def zero_grad(self) -> None:
        for param in self.parameters():
            param.grad = None

    # -- modes --------------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    # -- state --------------------------------------------------------------------
    def state_dict(self) -> OrderedDict[str, object]:
        """Parameters and buffers by PyTorch's dotted names (``"0.weight"``, ...)."""
        state = OrderedDict((name, p.data) for name, p in self.named_parameters())
        for name, module, attr in self._buffer_slots():
            state[name] = getattr(module, attr)
        return state

    def load_state_dict(self, state, strict: bool = True) -> Module:
        """Copy arrays (any backend, or NumPy) into this module's parameters and buffers.

        Each array is moved to the parameter's backend and dtype. With ``strict``,
        missing or unexpected keys and any shape mismatch raise one error listing them.
        """
        targets = {name: ("param", p) for name, p in self.named_parameters()}
        for name, module, attr in self._buffer_slots():
            targets[name] = ("buffer", (module, attr))
        missing = [k for k in targets if k not in state]
        unexpected = [k for k in state if k not in targets]
        problems = []
        if strict and (missing or unexpected):
            problems.append(f"missing keys {missing}, unexpected keys {unexpected}")
        for name, (kind, target) in targets.items():
            if name not in state:
                continue
            current = target.data if kind == "param" else getattr(*target)
            value = state[name]
            if tuple(value.shape) != tuple(current.shape):
                problems.append(
                    f"{name}: expected shape {tuple(current.shape)}, got {tuple(value.shape)}"
                )
        if problems:
            raise ValueError(f"{type(self).__name__}.load_state_dict: " + "; ".join(problems))
        for name, (kind, target) in targets.items():
            if name not in state:
                continue
            current = target.data if kind == "param" else getattr(*target)
            value = backends.copy_to(state[name], current)
            if kind == "param":
                target.data = value
            else:
                object.__setattr__(target[0], target[1], value)
        return self

    def to(self, backend=None, dtype=None) -> Module:
        """Move parameters and buffers to ``backend`` (name or Backend) and/or ``dtype``.

        Integer buffers (counters) keep their dtype. Gradients are dropped.
        """
        for param in self.parameters():
            param.data = _moved(param.data, backend, dtype)
            param.grad = None
        for _, module, attr in self._buffer_slots():
            value = getattr(module, attr)
            object.__setattr__(module, attr, _moved(value, backend, dtype))
        return self

    # -- display ------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self):
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, child in self._modules.items():
            child_repr = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child_repr}")
        return lines[0] + ")" if len(lines) == 1 else "\n".join(lines) + "\n)"


def _moved(value, backend, dtype):
    """``value`` on ``backend`` (None: where it is) as ``dtype`` if it is a float array."""
    target = backends.backend_of(value) if backend is None else backend
    is_float = "float" in backends.dtype_name(value.dtype)
    new_dtype = dtype if (dtype is not None and is_float) else value.dtype
    return backends.to_device(value, target, dtype=new_dtype)


#: Functions ``fuse(layers, x)`` that return a stage running the first few of
#: ``layers`` on input ``x`` as one computation (an object with ``layers``, the ones it
#: replaces, ``__call__``, ``backward`` and ``backward_params``), or None.
_fusions: list = []


def register_fusion(fuse) -> None:
    """Let :class:`Sequential` run a run of layers through ``fuse``'s stage."""
    _fusions.append(fuse)


class Sequential(Module):
    """Children applied in order; backward runs them in reverse.

    forward: y = f_n(... f_2(f_1(x)))
    backward: dx = f_1'(... f_n'(dy))

    Where a registered fusion accepts a run of children for the input at hand (a
    Conv2d → ReLU → MaxPool2d on the Toeplitz or DFT path: :mod:`xdl.nn.conv_relu_pool`),
    that run goes through the fused stage, with the same result; the stages of the
    last forward are what backward runs.
    """

    def __init__(self, *layers):
        """``Sequential(a, b, c)`` names the children 0, 1, 2; ``Sequential(OrderedDict(
        features=..., classifier=...))`` names them, as in PyTorch."""
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], dict):
            named = list(layers[0].items())
        else:
            named = [(str(index), layer) for index, layer in enumerate(layers)]
        for name, layer in named:
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential: {name!r} is a {type(layer).__name__}, "
                                "not a Module")
            setattr(self, name, layer)

    def __len__(self):
        return len(self._modules)

    def __getitem__(self, index):
        return list(self._modules.values())[index]

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, layer: Module) -> Sequential:
        setattr(self, str(len(self)), layer)
        return self

    def _stage(self, layers, x):
        """The fused stage for the start of ``layers``, else its first layer."""
        for fuse in _fusions:
            stage = fuse(layers, x)
            if stage is not None:
                return stage
        return layers[0]

    def forward(self, x):
        layers, stages = list(self._modules.values()), []
        while layers:
            stage = self._stage(layers, x)
            x = stage(x)
            stages.append(stage)
            layers = layers[1 if isinstance(stage, Module) else len(stage.layers):]
        self.save_for_backward(stages)
        return x

    def backward(self, grad):
        (stages,) = self.saved
        for stage in reversed(stages):
            grad = stage.backward(grad)
        return grad

    def backward_params(self, grad) -> None:
        """As backward, but the first layer skips its input gradient."""
        (stages,) = self.saved
        for stage in reversed(stages[1:]):
            grad = stage.backward(grad)
        if stages:
            stages[0].backward_params(grad)
