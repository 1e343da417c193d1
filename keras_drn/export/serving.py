"""The graph an export writes: the model itself, or with ``end_to_end`` uint8 RGB in and class
ids out (``ClassIds``). The normalisation is never added here: end to end, the model carries
it in its ``preprocessing`` layer (``keras_drn.models.preprocessing``)."""

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="keras_drn")
class ClassIds(layers.Layer):
    """Argmax over the last axis, as ``output_dtype``: logits -> class ids; a binary model's
    single logit gives 1 where it is positive (probability above 0.5), else 0.

    Input shape: ``(batch, ..., classes)``. Output shape: ``(batch, ...)``.
    """

    def __init__(self, output_dtype="uint8", **kwargs):
        super().__init__(**kwargs)
        self.output_dtype = output_dtype

    def call(self, inputs):
        if inputs.shape[-1] == 1:
            return ops.cast(inputs[..., 0] > 0, self.output_dtype)
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            # keras.ops.argmax on TensorFlow ranks -0.0 below +0.0 with a bitcast and a
            # BitwiseAnd, an op LiteRT has no builtin for; tf.math.argmax is one ARG_MAX.
            return ops.cast(tf.math.argmax(inputs, axis=-1), self.output_dtype)
        return ops.cast(ops.argmax(inputs, axis=-1), self.output_dtype)

    def get_config(self):
        config = super().get_config()
        config.update(output_dtype=self.output_dtype)
        return config


def serving_model(model, job):
    """``model`` as exported: itself, or with ``job.end_to_end`` a model taking uint8 RGB
    ``(batch, H, W, 3)``, casting it to float32 (0-255, what the model's ``preprocessing``
    layer takes) and returning ``ClassIds`` of its output: ``(batch, H, W)`` masks or
    ``(batch,)`` top-1 ids."""
    if not job.end_to_end:
        return model
    inputs = keras.Input(batch_shape=job.batch_shape, dtype="uint8", name="image")
    ids = ClassIds(job.output_dtype, name="class_ids")(model(ops.cast(inputs, "float32")))
    return keras.Model(inputs, ids, name=f"{model.name}_end_to_end")
