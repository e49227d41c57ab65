"""Real TensorFlow checkpoints for the checkpoint-reader tests, built the way the training code builds them.

Why: the reader must be proven on what TensorFlow itself writes — object graphs,
optimizer slots, SWA lists, ghost-batch-norm shapes, renorm variables, TF1 name
scopes with their double slashes — not on files we imagine. Each builder makes a
tiny model with the layer and variable names of one training-code era
(FORMATS.md §6: lczero-training's tfprocess.py TF2 and TF1, Leela Zero's TF1
training), trains it a few steps on random data, saves a checkpoint as that code
does, and returns TensorFlow's own inference outputs.

The structure code here is written for the tests, after the facts in FORMATS.md
§6; it is not the training code. lczero-training ran on Keras 2, whose scoped
layer names ("residual_1/1/conv2d") Keras 3 rejects: TF_USE_LEGACY_KERAS=1 must be
set before TensorFlow is imported (tests/test_tf_checkpoint.py does it).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from lcconvert import policy_map

EPS = 1e-5
BN_MOMENTUM = 0.3  # low, so that three steps leave moving statistics close to real batch statistics


def tf():
    assert os.environ.get("TF_USE_LEGACY_KERAS") == "1", "set TF_USE_LEGACY_KERAS=1 before importing TensorFlow"
    import tensorflow

    return tensorflow


def policy_gather_matrix() -> np.ndarray:
    """float32 [80·64, 1858]: the conv-policy output → policy index matrix (lc0's map, as training applies it)."""
    table = policy_map.conv_policy_map()
    m = np.zeros((table.size, 1858), dtype=np.float32)
    rows = np.nonzero(table >= 0)[0]
    m[rows, table[rows]] = 1.0
    return m


def training_planes(rng: np.random.Generator, n: int, planes: int = 112, board: int = 8,
                    rule50_divisor: float | None = 99.0) -> tuple[np.ndarray, np.ndarray]:
    """(network input as TF trains on it, the same position as an engine feeds it): [n, planes, board, board].

    Chess: plane 109 is the rule50 count — raw plies for the engine, plies/99 for
    training of input formats < 4 (rule50_divisor=99), plies/100 in both for ≥ 4
    (rule50_divisor=None). Plane 111 is all ones.
    """
    x = (rng.random((n, planes, board, board)) < 0.25).astype(np.float32)
    engine = x.copy()
    if planes == 112:
        x[:, 104:111] = 0.0
        engine[:, 104:111] = 0.0
        x[:, 104:108] = engine[:, 104:108] = rng.integers(0, 2, (n, 4, 1, 1)).astype(np.float32)
        plies = rng.integers(0, 100, n).astype(np.float32)
        if rule50_divisor is None:
            x[:, 109] = engine[:, 109] = (plies / 100.0)[:, None, None]
        else:
            engine[:, 109] = plies[:, None, None]
            x[:, 109] = (plies / rule50_divisor)[:, None, None]
        x[:, 111] = engine[:, 111] = 1.0
    return x, engine


@dataclass
class Built:
    """A checkpoint and TensorFlow's outputs on `engine_planes` (the same positions as fed to `x`)."""

    directory: str
    prefix: str
    engine_planes: np.ndarray
    outputs: dict[str, np.ndarray]  # policy_logits [N,P], value [N] or wdl_logits [N,3], moves_left [N]
    swa_outputs: dict[str, np.ndarray] | None = None
    first_prefix: str | None = None  # an earlier save in the same folder
    first_outputs: dict[str, np.ndarray] | None = None
    config: dict = field(default_factory=dict)


# -- TF2 / Keras (lczero-training 2020-2023) ----------------------------------

def keras_model(filters=16, blocks=2, se_ratio=4, policy="convolution", value="wdl", moves_left=True,
                policy_channels=8, virtual_batch_size=None, renorm=False, named=True, activation="relu"):
    """A functional Keras model with lczero-training's layer names (or Keras auto-names when named=False)."""
    t = tf()
    K = t.keras.layers

    def nm(name):
        return name if named else None

    def bn(x, name, scale):
        kw = dict(epsilon=EPS, axis=1, center=True, scale=scale, momentum=BN_MOMENTUM, name=nm(name))
        if renorm:
            return K.BatchNormalization(fused=False, renorm=True, renorm_momentum=BN_MOMENTUM,
                                        renorm_clipping={"rmin": 1 / 1.5, "rmax": 1.5, "dmax": 0.5}, **kw)(x)
        return K.BatchNormalization(virtual_batch_size=virtual_batch_size, **kw)(x)

    def conv(x, channels, size, name, bias=False):
        return K.Conv2D(channels, size, use_bias=bias, padding="same", data_format="channels_first",
                        kernel_initializer="glorot_normal", name=nm(name))(x)

    def conv_block(x, channels, size, name, scale=False):
        return K.Activation(activation)(bn(conv(x, channels, size, name + "/conv2d"), name + "/bn", scale))

    inputs = t.keras.Input(shape=(112, 8, 8))
    flow = conv_block(inputs, filters, 3, "input", scale=True)
    for i in range(blocks):
        name = f"residual_{i + 1}"
        out1 = conv_block(flow, filters, 3, name + "/1")
        out2 = bn(conv(out1, filters, 3, name + "/2/conv2d"), name + "/2/bn", True)
        if se_ratio:
            pooled = K.GlobalAveragePooling2D(data_format="channels_first")(out2)
            squeezed = K.Dense(filters // se_ratio, activation=activation, name=nm(name + "/se/se/dense1"))(pooled)
            excited = K.Dense(2 * filters, name=nm(name + "/se/se/dense2"))(squeezed)
            gammas = K.Reshape((filters, 1, 1))(K.Lambda(lambda z: z[:, :filters])(excited))
            betas = K.Reshape((filters, 1, 1))(K.Lambda(lambda z: z[:, filters:])(excited))
            out2 = K.Add()([K.Multiply()([K.Activation("sigmoid")(gammas), out2]), betas])
        flow = K.Activation(activation)(K.Add()([flow, out2]))
    if policy == "convolution":
        pol = conv_block(flow, filters, 3, "policy1")
        pol = conv(pol, 80, 3, "policy", bias=True)
        gather = t.constant(policy_gather_matrix())
        policy_out = K.Lambda(lambda z: t.matmul(t.reshape(z, [-1, 80 * 64]), gather))(pol)
    else:
        pol = conv_block(flow, policy_channels, 1, "policy")
        policy_out = K.Dense(1858, name=nm("policy/dense"))(K.Flatten()(pol))
    val = K.Flatten()(conv_block(flow, 32, 1, "value"))
    val = K.Dense(128, activation=activation, name=nm("value/dense1"))(val)
    value_out = K.Dense(3 if value == "wdl" else 1, activation=None if value == "wdl" else "tanh",
                        name=nm("value/dense2"))(val)
    outputs = [policy_out, value_out]
    if moves_left:
        ml = K.Flatten()(conv_block(flow, 8, 1, "moves_left"))
        ml = K.Dense(128, activation=activation, name=nm("moves_left/dense1"))(ml)
        outputs.append(K.Dense(1, activation="relu", name=nm("moves_left/dense2"))(ml))
    return t.keras.Model(inputs=inputs, outputs=outputs)


def _perturb_bn(model, rng):
    """Give every gamma and beta values far from 1 and 0 (one negative gamma per layer).

    Three SGD steps barely move them; a reader that dropped or swapped γ/β must
    fail visibly, and a negative γ is what folds get wrong (FORMATS.md §3).
    """
    for layer in model.layers:
        for w in layer.weights:
            short = w.name.split("/")[-1].split(":")[0]
            if short == "gamma":
                g = rng.uniform(0.5, 1.6, w.shape).astype(np.float32)
                g.reshape(-1)[0] = -0.7
                w.assign(g)
            elif short == "beta":
                w.assign(rng.normal(0, 0.3, w.shape).astype(np.float32))


def _outputs(model, x, moves_left, value) -> dict[str, np.ndarray]:
    out = model(x, training=False)
    result = {"policy_logits": out[0].numpy()}
    if value == "wdl":
        result["wdl_logits"] = out[1].numpy()
    else:
        result["value"] = out[1].numpy()[:, 0]
    if moves_left:
        result["moves_left"] = out[2].numpy()[:, 0]
    return result


def build_keras(directory: str, name: str, *, seed: int = 0, input_type: str = "classic", swa: bool = False,
                train_steps: int = 3, batch: int = 8, **model_args) -> Built:
    """Train a Keras model a few steps and save it with tf.train.Checkpoint + CheckpointManager, as
    lczero-training does (optimizer, model, global_step, swa_count; SWA weights as `listed`)."""
    t = tf()
    rng = np.random.default_rng(seed)
    t.keras.utils.set_random_seed(seed)
    model = keras_model(**model_args)
    moves_left = model_args.get("moves_left", True)
    value = model_args.get("value", "wdl")
    divisor = None if input_type in ("canonical_100", "canonical_armageddon", "canonical_v2",
                                     "canonical_v2_armageddon") else 99.0
    optimizer = t.keras.optimizers.legacy.SGD(learning_rate=0.005, momentum=0.9, nesterov=True)
    global_step = t.Variable(0, name="global_step", trainable=False, dtype=t.int64)
    swa_count = t.Variable(0.0, name="swa_count", trainable=False)
    swa_weights = [t.Variable(w, trainable=False) for w in model.weights] if swa else None
    checkpoint = t.train.Checkpoint(optimizer=optimizer, model=model, global_step=global_step, swa_count=swa_count)
    checkpoint.listed = swa_weights
    manager = t.train.CheckpointManager(checkpoint, directory=directory, max_to_keep=5, checkpoint_name=name)

    def step():
        x, _ = training_planes(rng, batch, rule50_divisor=divisor)
        target = rng.dirichlet(np.ones(1858), batch).astype(np.float32)
        with t.GradientTape() as tape:
            out = model(x, training=True)
            loss = t.reduce_mean(t.nn.softmax_cross_entropy_with_logits(target, out[0]))
            loss += t.reduce_mean(t.square(out[1] - 0.3))
            if moves_left:
                loss += 0.01 * t.reduce_mean(t.square(out[2] - 40.0))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        global_step.assign_add(1)

    x_eval, engine = training_planes(rng, 8, rule50_divisor=divisor)
    for _ in range(train_steps - 1):
        step()
    _perturb_bn(model, rng)
    first_prefix = manager.save(checkpoint_number=int(global_step.numpy()))
    first_outputs = _outputs(model, x_eval, moves_left, value)
    step()
    _perturb_bn(model, rng)
    swa_outputs = None
    if swa:
        # One SWA update (n = 1): the average of the first save's weights and the current ones.
        for s, w in zip(swa_weights, model.weights):
            s.assign(s * 0.5 + w * 0.5)
        swa_count.assign(2.0)
        live = [w.numpy() for w in model.weights]
        for s, w in zip(swa_weights, model.weights):
            w.assign(s)
        swa_outputs = _outputs(model, x_eval, moves_left, value)
        for v, w in zip(live, model.weights):
            w.assign(v)
    prefix = manager.save(checkpoint_number=int(global_step.numpy()))
    config = {"name": name, "model": {"filters": model_args.get("filters", 16),
                                      "residual_blocks": model_args.get("blocks", 2),
                                      "se_ratio": model_args.get("se_ratio", 4),
                                      "policy": model_args.get("policy", "convolution"),
                                      "value": value, "moves_left": "v1" if moves_left else "none",
                                      "input_type": input_type,
                                      "default_activation": model_args.get("activation", "relu")}}
    if model_args.get("virtual_batch_size"):
        config["model"]["virtual_batch_size"] = model_args["virtual_batch_size"]
    return Built(directory, prefix, engine, _outputs(model, x_eval, moves_left, value), swa_outputs,
                 first_prefix, first_outputs, config)


# -- TF1 graphs (lczero-training 2018-2019, Leela Zero) ------------------------

def _tf1_conv(v1, x_nhwc, w):
    return v1.nn.conv2d(x_nhwc, w, strides=[1, 1, 1, 1], padding="SAME")


def _nchw_flat(t, x_nhwc):
    """Channel-major flatten (c·squares + square), as the NCHW training graphs flatten."""
    return t.reshape(t.transpose(x_nhwc, [0, 3, 1, 2]), [t.shape(x_nhwc)[0], -1])


def build_lczero_tf1(directory: str, name: str = "lc0tf1", *, filters=8, blocks=2, se_ratio=2, seed=1,
                     train_steps=3, batch=8) -> Built:
    """lczero-training's TF1 graph names: bnK/conv_weight, "bnK/" scopes (→ bnK//batch_normalization/...),
    bnK/fixed_gamma where scale=False, bnK/se_fc1_w, W_pol_conv2, fc2/weight, fc3/weight, policy_map,
    swa/<name> copies, Momentum slots; saved with tf.train.Saver. Convolution policy, WDL value.

    (The real graphs ran NCHW on GPUs; CPU TensorFlow convolves NHWC only, so this graph computes in
    NHWC with the same variables and flattens channel-major before the dense layers.)
    """
    t = tf()
    v1 = t.compat.v1
    rng = np.random.default_rng(seed)
    graph = t.Graph()
    with graph.as_default():
        v1.set_random_seed(seed)
        x = v1.placeholder(t.float32, [None, 112, 8, 8])
        training = v1.placeholder(t.bool, [])
        weights = []
        count = [0]

        def weight(shape, wname):
            w = t.Variable(v1.truncated_normal(shape, stddev=np.sqrt(2.0 / (np.prod(shape[:-1]) + shape[-1]))),
                           name=wname)
            weights.append(w)
            return w

        def bias(shape, wname):
            b = t.Variable(t.zeros(shape), name=wname)
            weights.append(b)
            return b

        def batch_norm(h, scope, scale):
            with v1.variable_scope(scope):
                out = v1.layers.batch_normalization(h, epsilon=EPS, axis=-1, center=True, scale=scale,
                                                    momentum=BN_MOMENTUM, training=training)
            # The training code listed every batch-norm variable with the weights (its SWA copies them too).
            if not scale:
                weights.append(t.Variable(t.ones([h.shape[-1]]), name=scope.rstrip("/") + "/fixed_gamma",
                                          trainable=False))
            weights.extend(v for v in v1.global_variables()
                           if v.name.startswith(scope.rstrip("/") + "//batch_normalization/")
                           or v.name.startswith(scope.rstrip("/") + "/batch_normalization/"))
            return out

        def key(trailing_slash=False):
            k = f"bn{count[0]}"
            count[0] += 1
            return k + ("/" if trailing_slash else "")

        def conv_block(h, cin, cout, size, scale=False):
            k = key()
            w = weight([size, size, cin, cout], k + "/conv_weight")
            return t.nn.relu(batch_norm(_tf1_conv(v1, h, w), k, scale))

        h = t.transpose(x, [0, 2, 3, 1])
        h = conv_block(h, 112, filters, 3, scale=True)
        for _ in range(blocks):
            k1, k2 = key(True), key(True)
            w1 = weight([3, 3, filters, filters], k1 + "conv_weight")
            w2 = weight([3, 3, filters, filters], k2 + "conv_weight")
            out = t.nn.relu(batch_norm(_tf1_conv(v1, h, w1), k1, False))
            out = batch_norm(_tf1_conv(v1, out, w2), k2, True)
            with v1.variable_scope(k2):
                pooled = t.reduce_mean(out, axis=[1, 2])
                s1 = t.nn.relu(pooled @ weight([filters, filters // se_ratio], "se_fc1_w")
                               + bias([filters // se_ratio], "se_fc1_b"))
                s2 = s1 @ weight([filters // se_ratio, 2 * filters], "se_fc2_w") + bias([2 * filters], "se_fc2_b")
                g, b = t.split(s2, 2, axis=1)
                out = t.sigmoid(g)[:, None, None, :] * out + b[:, None, None, :]
            h = t.nn.relu(out + h)
        pol = conv_block(h, filters, filters, 3)
        pol = _tf1_conv(v1, pol, weight([3, 3, filters, 80], "W_pol_conv2")) + bias([80], "b_pol_conv2")
        # Loaded after initialisation: a 38 MB constant in the graph would make the build slow.
        policy_map_var = t.Variable(t.zeros([80 * 64, 1858]), name="policy_map", trainable=False)
        policy_logits = _nchw_flat(t, pol) @ policy_map_var
        val = _nchw_flat(t, conv_block(h, filters, 32, 1))
        val = t.nn.relu(val @ weight([32 * 64, 128], "fc2/weight") + bias([128], "fc2/bias"))
        wdl = val @ weight([128, 3], "fc3/weight") + bias([3], "fc3/bias")

        target = v1.placeholder(t.float32, [None, 1858])
        loss = t.reduce_mean(t.nn.softmax_cross_entropy_with_logits(labels=target, logits=policy_logits))
        loss += t.reduce_mean(t.square(wdl - 0.2))
        with t.control_dependencies(v1.get_collection(v1.GraphKeys.UPDATE_OPS)):
            train = v1.train.MomentumOptimizer(0.05, 0.9, use_nesterov=True).minimize(loss)
        swa = [t.Variable(t.zeros(w.shape), name="swa/" + w.name.split(":")[0], trainable=False) for w in weights]
        global_step = t.Variable(0, name="global_step", trainable=False)
        perturb = []
        for var in v1.global_variables():
            n = var.name.split(":")[0]
            if n.endswith("batch_normalization/gamma"):
                perturb.append((var, lambda s: np.where(np.arange(s[0]) == 0, -0.7, rng.uniform(0.5, 1.6, s))))
            elif n.endswith("batch_normalization/beta"):
                perturb.append((var, lambda s: rng.normal(0, 0.3, s)))
        saver = v1.train.Saver()
        x_eval, engine = training_planes(rng, 8)
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            policy_map_var.load(policy_gather_matrix(), sess)
            for _ in range(train_steps):
                xb, _ = training_planes(rng, batch)
                tb = rng.dirichlet(np.ones(1858), batch).astype(np.float32)
                sess.run(train, {x: xb, target: tb, training: True})
            for var, make in perturb:
                var.load(make(tuple(var.shape.as_list())).astype(np.float32), sess)
            live = sess.run(weights)
            for s, value in zip(swa, live):
                s.load(value * 0.9, sess)  # a distinct SWA average, so reading it by mistake shows
            sess.run(global_step.assign(train_steps))
            logits, wdl_logits = sess.run([policy_logits, wdl], {x: x_eval, training: False})
            prefix = saver.save(sess, os.path.join(directory, name), global_step=train_steps)
    return Built(directory, prefix, engine, {"policy_logits": logits, "wdl_logits": wdl_logits},
                 config={"name": name, "model": {"filters": filters, "residual_blocks": blocks,
                                                 "se_ratio": se_ratio, "policy": "convolution", "value": "wdl"}})


def build_leela_zero_tf1(directory: str, name: str = "leelaz-model", *, filters=8, blocks=1, seed=2,
                         train_steps=3, batch=4) -> Built:
    """Leela Zero's TF1 graph names under the fp32_storage scope: first_conv, res_i_conv_1/2, bnK/
    batch_normalization/{beta,moving_mean,moving_variance} (center=True, scale=False), policy_head,
    w_fc_1, value_head, w_fc_2, w_fc_3; gsum/ accumulators, swa/ copies, Momentum slots."""
    t = tf()
    v1 = t.compat.v1
    rng = np.random.default_rng(seed)
    graph = t.Graph()
    with graph.as_default():
        v1.set_random_seed(seed)
        x = v1.placeholder(t.float32, [None, 18, 19, 19])
        training = v1.placeholder(t.bool, [])
        count = [0]
        weights = []

        def var(wname, shape, zero=False):
            init = v1.zeros_initializer() if zero else v1.truncated_normal_initializer(stddev=np.sqrt(2.0 / sum(shape)))
            w = v1.get_variable(wname, shape, initializer=init)
            weights.append(w)
            return w

        def batch_norm(h):
            scope = f"bn{count[0]}"
            count[0] += 1
            with v1.variable_scope(scope):
                return v1.layers.batch_normalization(h, epsilon=EPS, axis=-1, center=True, scale=False,
                                                     momentum=BN_MOMENTUM, training=training)

        def conv_block(h, cin, cout, size, wname):
            return t.nn.relu(batch_norm(_tf1_conv(v1, h, var(wname, [size, size, cin, cout]))))

        with v1.variable_scope("fp32_storage"):
            h = conv_block(t.transpose(x, [0, 2, 3, 1]), 18, filters, 3, "first_conv")
            for i in range(blocks):
                out = conv_block(h, filters, filters, 3, f"res_{i}_conv_1")
                out = batch_norm(_tf1_conv(v1, out, var(f"res_{i}_conv_2", [3, 3, filters, filters])))
                h = t.nn.relu(out + h)
            pol = _nchw_flat(t, conv_block(h, filters, 2, 1, "policy_head"))
            policy_logits = pol @ var("w_fc_1", [722, 362]) + var("b_fc_1", [362], zero=True)
            val = _nchw_flat(t, conv_block(h, filters, 1, 1, "value_head"))
            val = t.nn.relu(val @ var("w_fc_2", [361, 256]) + var("b_fc_2", [256], zero=True))
            value = t.tanh(val @ var("w_fc_3", [256, 1]) + var("b_fc_3", [1], zero=True))[:, 0]
        bn_vars = [v for v in v1.global_variables() if "/batch_normalization/" in v.name]
        target = v1.placeholder(t.float32, [None, 362])
        loss = t.reduce_mean(t.nn.softmax_cross_entropy_with_logits(labels=target, logits=policy_logits))
        loss += t.reduce_mean(t.square(value - 0.5))
        opt = v1.train.MomentumOptimizer(0.05, 0.9, use_nesterov=True)
        grads = opt.compute_gradients(loss)
        gsum = [v1.get_variable("gsum/" + v.name.split(":")[0], v.shape, trainable=False,
                                initializer=v1.zeros_initializer()) for _, v in grads]
        with t.control_dependencies(v1.get_collection(v1.GraphKeys.UPDATE_OPS)):
            train = opt.apply_gradients(grads)
        swa = [t.Variable(t.zeros(w.shape), name="swa/" + w.name.split(":")[0], trainable=False)
               for w in weights + bn_vars]
        t.Variable(0, name="global_step", trainable=False)
        t.Variable(0.0, name="swa_count", trainable=False)
        saver = v1.train.Saver()
        planes = (rng.random((4, 18, 19, 19)) < 0.2).astype(np.float32)
        planes[:, 16] = np.array([1, 0, 1, 0], np.float32)[:, None, None]
        planes[:, 17] = 1 - planes[:, 16]
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            for _ in range(train_steps):
                xb = (rng.random((batch, 18, 19, 19)) < 0.2).astype(np.float32)
                tb = rng.dirichlet(np.ones(362), batch).astype(np.float32)
                sess.run(train, {x: xb, target: tb, training: True})
            for v in bn_vars:
                if v.name.endswith("beta:0"):
                    v.load(rng.normal(0, 0.3, v.shape.as_list()).astype(np.float32), sess)
            logits, val_out = sess.run([policy_logits, value], {x: planes, training: False})
            assert gsum and swa
            prefix = saver.save(sess, os.path.join(directory, name), global_step=train_steps)
    return Built(directory, prefix, planes, {"policy_logits": logits, "value": val_out})
