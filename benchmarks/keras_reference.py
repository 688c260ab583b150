"""The notebook's Keras U-Net, timed the way benchmarks/speed.py times roadseg. Runs inside the
separate TensorFlow virtualenv that speed.py creates; prints one JSON object.

Training: model.fit over one epoch of STEPS batches of NumPy arrays (a warm-up epoch first, which
traces the graph), median images/s of REPEATS epochs; every epoch's figure is printed too, since
TensorFlow's speed on this machine varies from epoch to epoch. Inference: a tf.function forward.

With a fourth argument `mixed_bfloat16` the Keras mixed-precision policy of that name is set first
(bf16 compute, fp32 variables; the logits layer in fp32, as Keras' mixed-precision guide advises).

Usage (speed.py does this): .bench-venv/keras/bin/python benchmarks/keras_reference.py 96x128 REPEATS STEPS [POLICY]
"""
import json
import os
import statistics
import sys
import time

import numpy as np
import tensorflow as tf
from tensorflow.keras.layers import Conv2D, Conv2DTranspose, Dropout, Input, MaxPooling2D, concatenate


def conv_block(inputs, n_filters, dropout_prob=0.0, max_pooling=True):
    conv = Conv2D(n_filters, 3, activation="relu", padding="same", kernel_initializer="he_normal")(inputs)
    conv = Conv2D(n_filters, 3, activation="relu", padding="same", kernel_initializer="he_normal")(conv)
    if dropout_prob > 0:
        conv = Dropout(dropout_prob)(conv)
    next_layer = MaxPooling2D(pool_size=(2, 2))(conv) if max_pooling else conv
    return next_layer, conv


def upsampling_block(expansive_input, contractive_input, n_filters):
    up = Conv2DTranspose(n_filters, 3, strides=(2, 2), padding="same")(expansive_input)
    merge = concatenate([up, contractive_input], axis=3)
    conv = Conv2D(n_filters, 3, activation="relu", padding="same", kernel_initializer="he_normal")(merge)
    return Conv2D(n_filters, 3, activation="relu", padding="same", kernel_initializer="he_normal")(conv)


def unet_model(input_size, n_filters=32, n_classes=23):
    inputs = Input(input_size)
    c1 = conv_block(inputs, n_filters)
    c2 = conv_block(c1[0], n_filters * 2)
    c3 = conv_block(c2[0], n_filters * 4)
    c4 = conv_block(c3[0], n_filters * 8, dropout_prob=0.3)
    c5 = conv_block(c4[0], n_filters * 16, dropout_prob=0.3, max_pooling=False)
    u6 = upsampling_block(c5[0], c4[1], n_filters * 8)
    u7 = upsampling_block(u6, c3[1], n_filters * 4)
    u8 = upsampling_block(u7, c2[1], n_filters * 2)
    u9 = upsampling_block(u8, c1[1], n_filters)
    conv9 = Conv2D(n_filters, 3, activation="relu", padding="same", kernel_initializer="he_normal")(u9)
    conv10 = Conv2D(n_classes, 1, padding="same", dtype="float32")(conv9)
    return tf.keras.Model(inputs=inputs, outputs=conv10)


def main() -> None:
    h, w = (int(v) for v in sys.argv[1].split("x"))
    repeats = int(sys.argv[2])
    steps = int(sys.argv[3]) if len(sys.argv) > 3 else 4
    policy = sys.argv[4] if len(sys.argv) > 4 else "float32"
    tf.keras.mixed_precision.set_global_policy(policy)
    train_batch = 32 if h * w <= 96 * 128 else 8
    model = unet_model((h, w, 3))
    assert model.count_params() == 8_640_471
    model.compile(optimizer="adam", loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    rng = np.random.default_rng(0)
    n_train = train_batch * steps
    x = rng.random((n_train, h, w, 3), dtype=np.float32)
    y = rng.integers(0, 23, (n_train, h, w, 1)).astype(np.uint8)
    model.fit(x, y, batch_size=train_batch, epochs=1, verbose=0)  # warm-up: tracing
    train = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.fit(x, y, batch_size=train_batch, epochs=1, verbose=0)
        train.append(n_train / (time.perf_counter() - t0))
    xb = x[:32] if n_train >= 32 else np.concatenate([x] * (32 // n_train + 1))[:32]
    infer_fn = tf.function(lambda t: model(t, training=False))
    infer_fn(xb)
    infer = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        infer_fn(xb).numpy()
        infer.append(32 / (time.perf_counter() - t0))
    one = xb[:1]
    infer_fn(one)
    latency = []
    for _ in range(repeats * 3):
        t0 = time.perf_counter()
        infer_fn(one).numpy()
        latency.append((time.perf_counter() - t0) * 1000)
    print(json.dumps({"train_images_per_s": statistics.median(train), "train_runs": train, "train_batch": train_batch,
                      "infer_images_per_s": statistics.median(infer), "latency_ms": statistics.median(latency),
                      "tensorflow": tf.__version__, "threads": os.cpu_count(), "policy": policy}))


if __name__ == "__main__":
    main()
