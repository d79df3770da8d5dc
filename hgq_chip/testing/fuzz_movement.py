"""The fuzzer grammar's data-movement and global-pooling steps (``model_fuzz`` draws them).

Steps (JSON-able dicts, built by ``fuzz_build``):

- ``zeropad``: ZeroPadding1D/2D, ``pad`` = [[before, after] per spatial axis];
- ``crop``: Cropping1D/2D, ``crop`` likewise (at least one position is kept);
- ``upsample``: UpSampling1D/2D (nearest), ``size`` per spatial axis;
- ``permute``: Permute, ``dims`` (1-based, a permutation of every axis but the batch);
- ``concat``: Concatenate of 2 or 3 shape-preserving branches of the current tensor along
  ``axis`` (negative or positive), so its inputs have different derived types;
- ``global``: GlobalMax/AveragePooling1D/2D (``kind`` max or avg); an average over a
  number of positions that is not a power of two is refused by ``convert`` (typed).

Each maker takes the ``_Draw`` of ``model_fuzz`` and the current shape (no batch axis) and
returns ``(step, output shape)``.
"""

from __future__ import annotations


def zeropad_step(d, shape) -> tuple[dict, tuple]:
    pad = [[d.ch.integer(0, 2), d.ch.integer(0, 2)] for _ in shape[:-1]]
    out = tuple(n + a + b for n, (a, b) in zip(shape[:-1], pad)) + (shape[-1],)
    return {"op": "zeropad", "pad": pad, "name": d.name("zpad")}, out


def crop_step(d, shape) -> tuple[dict, tuple]:
    crop = []
    for n in shape[:-1]:
        before = d.ch.integer(0, min(2, n - 1))
        crop.append([before, d.ch.integer(0, min(2, n - 1 - before))])
    out = tuple(n - a - b for n, (a, b) in zip(shape[:-1], crop)) + (shape[-1],)
    return {"op": "crop", "crop": crop, "name": d.name("crop")}, out


def upsample_step(d, shape) -> tuple[dict, tuple]:
    size = [d.ch.integer(1, 2) if n <= 6 else 1 for n in shape[:-1]]
    out = tuple(n * s for n, s in zip(shape[:-1], size)) + (shape[-1],)
    return {"op": "upsample", "size": size, "name": d.name("up")}, out


def permute_step(d, shape) -> tuple[dict, tuple]:
    axes = list(range(1, len(shape) + 1))
    dims = []
    while axes:
        dims.append(axes.pop(d.ch.integer(0, len(axes) - 1)))
    return {"op": "permute", "dims": dims, "name": d.name("permute")}, tuple(shape[a - 1] for a in dims)


def global_step(d, shape) -> tuple[dict, tuple]:
    return {"op": "global", "kind": d.ch.choice(("max", "avg")), "name": d.name("glob")}, (shape[-1],)


def concat_step(d, shape, branch_maker) -> tuple[dict, tuple]:
    """``branch_maker(d, shape)`` draws one shape-preserving branch (a list of steps)."""
    branches = [branch_maker(d, shape) for _ in range(d.ch.integer(2, 3))]
    rank = len(shape)
    axis = d.ch.integer(1, rank)
    out = list(shape)
    out[axis - 1] *= len(branches)
    if d.ch.chance(50):
        axis -= rank + 1  # the same axis, counted from the end
    return {"op": "concat", "branches": branches, "axis": axis, "name": d.name("cat")}, tuple(out)


def movement_maker(op: str):
    """The maker of ``op`` (one of MOVEMENT_OPS but the last, ``concat``)."""
    return {"zeropad": zeropad_step, "crop": crop_step, "upsample": upsample_step, "permute": permute_step,
            "global": global_step}[op]


MOVEMENT_OPS = ("zeropad", "crop", "upsample", "permute", "global", "concat")


def build_movement_layer(step: dict, rank: int):
    """The Keras layer of a movement step (not ``concat``, which ``fuzz_build`` wires itself);
    ``rank`` = number of spatial axes of its input."""
    import keras

    op, name = step["op"], step["name"]
    pairs = [tuple(p) for p in step.get("pad", step.get("crop", ()))]
    if op == "zeropad":
        return (keras.layers.ZeroPadding1D(pairs[0], name=name) if rank == 1
                else keras.layers.ZeroPadding2D(tuple(pairs), name=name))
    if op == "crop":
        return (keras.layers.Cropping1D(pairs[0], name=name) if rank == 1
                else keras.layers.Cropping2D(tuple(pairs), name=name))
    if op == "upsample":
        return (keras.layers.UpSampling1D(step["size"][0], name=name) if rank == 1
                else keras.layers.UpSampling2D(tuple(step["size"]), name=name))
    if op == "permute":
        return keras.layers.Permute(tuple(step["dims"]), name=name)
    cls = {("max", 1): keras.layers.GlobalMaxPooling1D, ("max", 2): keras.layers.GlobalMaxPooling2D,
           ("avg", 1): keras.layers.GlobalAveragePooling1D, ("avg", 2): keras.layers.GlobalAveragePooling2D}
    return cls[step["kind"], rank](name=name)
