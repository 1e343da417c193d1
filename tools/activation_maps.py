"""The DRN paper's activation-map comparison (Yu, Koltun, Funkhouser, CVPR 2017, figure 6)
on our own models: for one input, the strongest feature map (the channel with the highest
mean activation) at the last levels of DRN-A, DRN-C and DRN-D, side by side in one PNG.

Columns are the levels by dilation: DRN-A's last two stages (dilation 2, then 4) have
nothing after them, so their gridding stays in the output; DRN-C/D add levels 7 (dilation 2)
and 8 (dilation 1) that smooth it away ("degridding", paper section 4).

    python tools/activation_maps.py run_a/model.keras run_c/model.keras run_d/model.keras \
        --output docs/activation_maps.png

loads segmenters saved by ``keras-drn train`` (normalised with the ``info.json`` beside each
model); ``tools/compare_variants.py --figure PATH`` renders the same figure from the models
it has just trained.
"""

import argparse
import os
import pathlib

import keras
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from keras_drn.data import CLASS_NAMES, make_scenes
from keras_drn.models.drn import feature_model
from keras_drn.evaluation.visualize import save_png, to_uint8

# (title, DRN-A level, DRN-C/D level) per column.
COLUMNS = (
    ("dilation 2", 3, 5),
    ("dilation 4", 4, 6),
    ("degrid, dilation 2", None, 7),
    ("degrid, dilation 1", None, 8),
)
LABEL_WIDTH = 72
HEADER_HEIGHT = 16
_COLOURS = np.array([(0, 0, 4), (87, 16, 110), (188, 55, 84), (249, 142, 9), (252, 255, 164)],
                    dtype="float32")  # inferno-like: dark is low, bright is high


def figure_scene(size, seed=0):
    """A 0-1 RGB ``(size, size, 3)`` synthetic scene with a thin line (the first one of the
    seed's scenes whose object is a line)."""
    images, _, labels = make_scenes(16, size=size, seed=seed + 1)
    lines = np.flatnonzero(labels == CLASS_NAMES.index("line") - 1)
    return images[lines[0] if len(lines) else 0]


def heatmap(values, side):
    """A 2-D map -> ``(side, side, 3)`` uint8, min-max scaled, nearest-neighbour upscaled."""
    values = np.asarray(values, dtype="float32")
    scaled = (values - values.min()) / max(float(values.max() - values.min()), 1e-6)
    position = scaled * (len(_COLOURS) - 1)
    low = np.floor(position).astype(int).clip(0, len(_COLOURS) - 2)
    weight = (position - low)[..., None]
    rgb = (1 - weight) * _COLOURS[low] + weight * _COLOURS[low + 1]
    rows = np.linspace(0, values.shape[0], side, endpoint=False).astype(int)
    cols = np.linspace(0, values.shape[1], side, endpoint=False).astype(int)
    return rgb[rows][:, cols].round().astype("uint8")


def strongest_maps(model, image):
    """``{column title: 2-D map or None}``: for each column of ``COLUMNS`` the channel of
    that level with the highest mean activation on ``image`` (raw 0-255 ``(H, W, 3)``: the
    models carry their normalisation)."""
    arch = "A" if any(layer.name == "maxpool" for layer in model.layers) else "CD"
    wanted = {title: (a if arch == "A" else cd) for title, a, cd in COLUMNS}
    levels = sorted({n for n in wanted.values() if n is not None})
    # Eager call: one image, no compilation (predict would compile per model on JAX).
    features = feature_model(model, levels)(image[None].astype("float32"), training=False)
    maps = {}
    for title, level in wanted.items():
        if level is None:
            maps[title] = None
            continue
        feature = np.asarray(keras.ops.convert_to_numpy(features[f"level{level}"]))[0]
        maps[title] = feature[..., int(np.argmax(feature.mean(axis=(0, 1))))]
    return maps


def render(models, picture, image, side=None):
    """The figure as a uint8 array: one row per model (``{name: model}``), columns the
    input ``picture`` (0-1 RGB) and the strongest maps of ``COLUMNS`` computed on ``image``
    (the same scene as the models take it, 0-255). Tiles are ``side`` pixels (default the
    scene's side); the array is ``(HEADER_HEIGHT + rows * side, LABEL_WIDTH + 5 * side, 3)``."""
    side = side or picture.shape[0]
    font = ImageFont.load_default()
    titles = ["input"] + [title for title, _, _ in COLUMNS]
    canvas = Image.new("RGB", (LABEL_WIDTH + len(titles) * side,
                               HEADER_HEIGHT + len(models) * side), "white")
    draw = ImageDraw.Draw(canvas)
    for column, title in enumerate(titles):
        draw.text((LABEL_WIDTH + column * side + 4, 2), title, fill="black", font=font)
    tile_input = np.asarray(Image.fromarray(to_uint8(picture)).resize((side, side),
                                                                      Image.NEAREST))
    for row, (name, model) in enumerate(models.items()):
        top = HEADER_HEIGHT + row * side
        draw.text((4, top + side // 2 - 6), name.upper().replace("_", "-"), fill="black",
                  font=font)
        canvas.paste(Image.fromarray(tile_input), (LABEL_WIDTH, top))
        for column, values in enumerate(strongest_maps(model, image).values(), start=1):
            left = LABEL_WIDTH + column * side
            if values is None:
                draw.rectangle((left, top, left + side - 1, top + side - 1), fill=(200, 200, 200))
                draw.text((left + 4, top + side // 2 - 6), "no such level", fill="black",
                          font=font)
            else:
                canvas.paste(Image.fromarray(heatmap(values, side)), (left, top))
    return np.asarray(canvas)


def save_figure(models, picture, image, path, side=None):
    """Renders ``render(models, picture, image, side)`` to the PNG ``path``."""
    save_png(render(models, picture, image, side), path)


def main(argv=None):
    from keras_drn.workflows import runs

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="segmenters saved by keras-drn train")
    parser.add_argument("--output", default="activation_maps.png", help="PNG to write")
    parser.add_argument("--size", type=int, default=192, help="side of the synthetic scene")
    parser.add_argument("--seed", type=int, default=0, help="seed of the scene")
    args = parser.parse_args(argv)
    picture = figure_scene(args.size, args.seed)
    rows = {}
    for path in args.models:
        _, info = runs.run_of(path)
        model = runs.load_model(path)
        image = 255 * picture
        rows[info.get("backbone") or pathlib.Path(path).parent.name] = (model, image)
    canvas = []
    for name, (model, image) in rows.items():
        canvas.append(render({name: model}, picture, image.astype("float32"))[HEADER_HEIGHT:])
    header = render({}, picture, picture)[:HEADER_HEIGHT]
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    save_png(np.concatenate([header] + canvas, axis=0), args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
