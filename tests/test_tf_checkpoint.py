"""TensorFlow checkpoints → Network, proven on checkpoints TensorFlow writes in the test itself.

Each fixture (tests/tf_models.py) trains a tiny model with one training era's names,
saves it as that training code does, and keeps TensorFlow's own inference outputs.
The reader's network, evaluated by lcconvert.forward, must give those outputs.

Tolerances:
- FLOAT_REL = 5e-5 of the largest output: both sides compute in float32 with
  different summation orders over at most 9·112 = 1008 products per output and a
  handful of layers, so rounding stays near 1e-6 relative (measured: ≤ 1.1e-6); a
  misplaced tensor, a missing γ (|γ| here is 0.5..1.6, one −0.7 per layer), a
  forgotten ÷99 or a wrong renorm variance moves outputs by more than 1e-2.
- LINEAR16 files: the noise floor is measured in the same run as the change the
  encoding alone makes (float network vs its LINEAR16 re-encoding, same forward
  pass); the file must reproduce TensorFlow within that floor plus FLOAT_REL.
"""
from __future__ import annotations

import os
import subprocess
import sys

os.environ["TF_USE_LEGACY_KERAS"] = "1"  # Keras 2 layer names with '/', as lczero-training used (FORMATS.md §6)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest
from conftest import MAIA

from lcconvert import forward, io, transforms
from lcconvert.codecs import Encoding
from lcconvert.constants import Family
from lcconvert.errors import FormatError, NetworkError, UnsupportedError
from lcconvert.formats import tf_checkpoint, tf_names

FLOAT_REL = 5e-5

# TensorFlow's own deprecation notices for the TF1 API the old training code used.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")

def _tf_models():
    pytest.importorskip("tensorflow")
    pytest.importorskip("tf_keras")
    import tf_models

    return tf_models


def _build(tmp_path_factory, name, builder, **kw):
    tm = _tf_models()
    return getattr(tm, builder)(str(tmp_path_factory.mktemp(name)), name, **kw)


@pytest.fixture(scope="module")
def se_net(tmp_path_factory):
    """SE tower, convolution policy, WDL, moves-left, SWA list; saved at steps 2 and 3."""
    return _build(tmp_path_factory, "se", "build_keras", swa=True)


@pytest.fixture(scope="module")
def classical_net(tmp_path_factory):
    """No SE, classical policy and value, input format 4 (rule50 already /100: no ÷99)."""
    return _build(tmp_path_factory, "classical", "build_keras", policy="classical", value="classical",
                  moves_left=False, se_ratio=0, blocks=1, filters=8, input_type="canonical_100")


@pytest.fixture(scope="module")
def ghost_net(tmp_path_factory):
    return _build(tmp_path_factory, "ghost", "build_keras", virtual_batch_size=4, blocks=1, filters=8)


@pytest.fixture(scope="module")
def renorm_net(tmp_path_factory):
    return _build(tmp_path_factory, "renorm", "build_keras", renorm=True, blocks=1, filters=8)


@pytest.fixture(scope="module")
def auto_named_net(tmp_path_factory):
    """Keras auto-names (conv2d_N, batch_normalization_N, dense_N): the 2019-12 → 2020-02 era."""
    return _build(tmp_path_factory, "auto", "build_keras", named=False, moves_left=False, blocks=2, filters=8)


@pytest.fixture(scope="module")
def mish_net(tmp_path_factory):
    return _build(tmp_path_factory, "mish", "build_keras", activation="mish", blocks=1, filters=8,
                  moves_left=False)


@pytest.fixture(scope="module")
def tf1_net(tmp_path_factory):
    tm = _tf_models()
    return tm.build_lczero_tf1(str(tmp_path_factory.mktemp("tf1")))


@pytest.fixture(scope="module")
def lz_net(tmp_path_factory):
    tm = _tf_models()
    return tm.build_leela_zero_tf1(str(tmp_path_factory.mktemp("lz")))


def _softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _errors(out: forward.Outputs, tf_out: dict) -> dict[str, float]:
    """Largest |lcconvert − TensorFlow| per output, the comparable form of each."""
    errs = {"policy_logits": float(np.abs(out.policy_logits - tf_out["policy_logits"]).max())}
    if "wdl_logits" in tf_out:
        errs["wdl"] = float(np.abs(out.wdl - _softmax(tf_out["wdl_logits"].astype(np.float64))).max())
    if "value" in tf_out:
        errs["value"] = float(np.abs(out.value - tf_out["value"]).max())
    if "moves_left" in tf_out:
        errs["moves_left"] = float(np.abs(out.moves_left - tf_out["moves_left"]).max())
    return errs


def _scales(tf_out: dict) -> dict[str, float]:
    s = {"policy_logits": float(np.abs(tf_out["policy_logits"]).max())}
    if "wdl_logits" in tf_out:
        s["wdl"] = 1.0
    if "value" in tf_out:
        s["value"] = max(1.0, float(np.abs(tf_out["value"]).max()))
    if "moves_left" in tf_out:
        s["moves_left"] = max(1.0, float(np.abs(tf_out["moves_left"]).max()))
    return s


def assert_matches_tf(net, built, outputs=None, semantics="modern"):
    tf_out = outputs if outputs is not None else built.outputs
    out = forward.evaluate(net, built.engine_planes, semantics=semantics)
    errs, scales = _errors(out, tf_out), _scales(tf_out)
    for k, e in errs.items():
        assert e <= FLOAT_REL * scales[k], f"{k}: |lcconvert − TF| = {e:.3g} (scale {scales[k]:.3g})"
    return errs


def assert_linear16_file_matches_tf(path, float_net, built, semantics="modern"):
    """The file at `path` (LINEAR16) reproduces TF within the LINEAR16 noise floor measured here.

    The floor is what the encoding alone does to this network in the same forward
    pass: the float network against its LINEAR16 re-encoding (convert), or against
    the library's fold of it encoded as LINEAR16 (fold-bias, legacy semantics).
    """
    from lcconvert import fold

    written = io.load(str(path))
    assert written.encodings == ["LINEAR16"]
    planes = built.engine_planes
    f32 = forward.evaluate(float_net, planes)
    if semantics == "legacy":
        reference, _ = fold.fold(float_net, encoding=Encoding.LINEAR16)
    else:
        reference, _ = transforms.reencode(float_net, Encoding.LINEAR16)
    floor_out = forward.evaluate(reference, planes, semantics=semantics)
    out = forward.evaluate(written, planes, semantics=semantics)
    floor = {k: float(np.abs(getattr(floor_out, k) - getattr(f32, k)).max())
             for k in ("policy_logits", "wdl", "value", "moves_left") if getattr(f32, k) is not None}
    errs, scales = _errors(out, built.outputs), _scales(built.outputs)
    for k, e in errs.items():
        assert floor[k] > 0, f"{k}: the encoding changed nothing, the floor measures nothing"
        bound = floor[k] + FLOAT_REL * scales[k]
        assert e <= bound, f"{k}: |file − TF| = {e:.3g} > LINEAR16 floor {floor[k]:.3g} + float bound"
    return errs, floor


def _yaml(tmp_path, built, **overrides):
    import yaml

    config = {"name": built.config.get("name", "net"), "model": {**built.config["model"], **overrides}}
    path = tmp_path / "training.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


# -- TF2 / Keras named era --------------------------------------------------------

@pytest.mark.tf
def test_se_conv_policy_wdl_moves_left_matches_tensorflow(se_net):
    net = tf_checkpoint.read(se_net.directory, input_format="classic")
    assert net.source.kind == "checkpoint"
    assert (net.blocks, net.filters, net.se_channels) == (2, 16, 4)
    f = net.format
    assert (f.input, f.network, f.policy, f.value, f.moves_left, f.output) == (1, 4, 2, 2, 1, 2)
    assert net.min_version == (0, 21, 0)
    assert {t.encoding for _, t in net.tensors()} == {Encoding.FLOAT32}
    # residual conv1 has no gamma in the checkpoint (scale=False): absent, which means 1
    assert net.residual[0].conv1.gammas is None and net.residual[0].conv2.gammas is not None
    assert_matches_tf(net, se_net)


@pytest.mark.tf
def test_rule50_plane_is_divided_by_99_for_input_formats_below_4(se_net):
    """The same checkpoint read as format 4 (no ÷99) must not match: the ÷99 is what makes it right."""
    good = tf_checkpoint.read(se_net.directory, input_format="classic")
    wrong = tf_checkpoint.read(se_net.directory, input_format="canonical_100")
    c = good.filters
    a = good.input.weights.values.reshape(c, 112, 3, 3)
    b = wrong.input.weights.values.reshape(c, 112, 3, 3)
    np.testing.assert_allclose(a[:, 109] * 99, b[:, 109], rtol=1e-6)
    np.testing.assert_array_equal(np.delete(a, 109, axis=1), np.delete(b, 109, axis=1))
    errs = _errors(forward.evaluate(wrong, se_net.engine_planes), se_net.outputs)
    assert errs["policy_logits"] > 100 * FLOAT_REL * _scales(se_net.outputs)["policy_logits"]


@pytest.mark.tf
def test_folder_prefix_and_index_file(se_net):
    """The folder means its `checkpoint` file's latest save (step 3); a prefix or .index names one save."""
    by_folder = tf_checkpoint.read(se_net.directory, input_format="classic")
    by_index = tf_checkpoint.read(se_net.prefix + ".index", input_format="classic")
    for (name, a), (_, b) in zip(by_folder.tensors(), by_index.tensors()):
        np.testing.assert_array_equal(a.values, b.values, err_msg=name)
    assert se_net.prefix.endswith("-3")
    older = tf_checkpoint.read(se_net.first_prefix, input_format="classic")
    assert_matches_tf(older, se_net, se_net.first_outputs)


@pytest.mark.tf
def test_swa_weights_read_on_request(se_net):
    live = tf_checkpoint.read(se_net.directory, input_format="classic")
    swa = tf_checkpoint.read(se_net.directory, input_format="classic", swa=True)
    assert_matches_tf(swa, se_net, se_net.swa_outputs)
    errs = _errors(forward.evaluate(live, se_net.engine_planes), se_net.swa_outputs)
    assert errs["policy_logits"] > 1e-3, "the SWA copy must differ from the live weights for this test to mean anything"


@pytest.mark.tf
def test_classical_policy_and_value_no_se(classical_net):
    net = tf_checkpoint.read(classical_net.prefix, input_format="canonical_100")
    f = net.format
    assert (f.input, f.network, f.policy, f.value, f.moves_left) == (4, 3, 1, 1, 0)
    assert net.se_channels == 0 and net.policy1 is None and net.moves_left is None
    assert net.min_version == (0, 26, 0)  # input format 4
    assert_matches_tf(net, classical_net)


@pytest.mark.tf
def test_ghost_batch_norm_shapes(ghost_net):
    import tensorflow as tf

    shapes = tf.train.load_checkpoint(ghost_net.prefix).get_variable_to_shape_map()
    means = [s for k, s in shapes.items() if k.endswith("moving_mean/.ATTRIBUTES/VARIABLE_VALUE")]
    assert means and all(s == [1, 1, 8, 1, 1] or s == [1, 1, 32, 1, 1] for s in means), means
    assert_matches_tf(tf_checkpoint.read(ghost_net.directory, input_format="classic"), ghost_net)


@pytest.mark.tf
def test_batch_renorm_variance_from_moving_stddev(renorm_net):
    import tensorflow as tf

    reader = tf.train.load_checkpoint(renorm_net.prefix)
    keys = reader.get_variable_to_shape_map()
    assert any("moving_stddev" in k for k in keys) and any("renorm_mean" in k for k in keys)
    net = tf_checkpoint.read(renorm_net.directory, input_format="classic")
    key = next(k for k in keys if k.endswith("layer_with_weights-1/moving_stddev/.ATTRIBUTES/VARIABLE_VALUE"))
    stddev = reader.get_tensor(key).reshape(-1).astype(np.float64)
    np.testing.assert_allclose(net.input.variances.values, stddev ** 2 - 1e-5, rtol=1e-6, atol=1e-9)
    assert_matches_tf(net, renorm_net)


@pytest.mark.tf
def test_keras_auto_named_layers_by_order_and_shape(auto_named_net):
    net = tf_checkpoint.read(auto_named_net.directory)  # this era predates input types: classical
    assert net.format.input == 1 and net.format.policy == 2 and net.blocks == 2
    assert_matches_tf(net, auto_named_net)


@pytest.mark.tf
def test_mish_activation_comes_from_the_config(mish_net, tmp_path):
    """The activation is not in the weights: the YAML's default_activation decides it."""
    net = tf_checkpoint.read(mish_net.directory, config=str(_yaml(tmp_path, mish_net)))
    assert net.format.default_activation == 1 and net.min_version == (0, 29, 0)
    assert_matches_tf(net, mish_net)
    relu = tf_checkpoint.read(mish_net.directory, input_format="classic")
    errs = _errors(forward.evaluate(relu, mish_net.engine_planes), mish_net.outputs)
    assert errs["policy_logits"] > 1e-3


@pytest.mark.tf
def test_config_and_options(se_net, tmp_path):
    cfg = _yaml(tmp_path, se_net)
    net = tf_checkpoint.read(se_net.directory, config=str(cfg))
    assert net.format.input == 1
    assert_matches_tf(net, se_net)
    with pytest.raises(NetworkError, match="config says 32 filters, the checkpoint has 16"):
        tf_checkpoint.read(se_net.directory, config=str(_yaml(tmp_path, se_net, filters=32)))
    with pytest.raises(NetworkError, match="3 residual blocks"):
        tf_checkpoint.read(se_net.directory, config=str(_yaml(tmp_path, se_net, residual_blocks=3)))
    with pytest.raises(NetworkError, match="se_ratio 2 means 8 SE channels"):
        tf_checkpoint.read(se_net.directory, config=str(_yaml(tmp_path, se_net, se_ratio=2)))
    with pytest.raises(NetworkError, match="policy is 'classical'.*convolution head"):
        tf_checkpoint.read(se_net.directory, config=str(cfg), policy="classical")
    with pytest.raises(NetworkError, match="value is 'classical'"):
        tf_checkpoint.read(se_net.directory, input_format=1, value="classical")
    with pytest.raises(FormatError, match="input format is not stored in a checkpoint"):
        tf_checkpoint.read(se_net.directory)


@pytest.mark.tf
def test_swa_requested_without_swa_weights(classical_net):
    with pytest.raises(FormatError, match="no SWA weights"):
        tf_checkpoint.read(classical_net.directory, input_format=4, swa=True)


@pytest.mark.tf
def test_unmappable_variables_are_listed(tmp_path):
    _tf_models()
    import tensorflow as tf

    v1 = tf.compat.v1
    g = tf.Graph()
    with g.as_default():
        tf.Variable(tf.zeros([3, 3, 112, 4]), name="bn0/conv_weight")
        tf.Variable(tf.zeros([7, 5]), name="mystery/w")
        tf.Variable(0, name="global_step")
        saver = v1.train.Saver()
        with v1.Session(graph=g) as sess:
            sess.run(v1.global_variables_initializer())
            prefix = saver.save(sess, str(tmp_path / "odd"), global_step=1)
    with pytest.raises(FormatError, match=r"mystery/w \[7, 5\]") as e:
        tf_checkpoint.read(prefix)
    assert "global_step" not in str(e.value)


@pytest.mark.tf
def test_damaged_checkpoint(tmp_path):
    _tf_models()
    folder = _fake_checkpoint(tmp_path)  # an .index that is not an index
    with pytest.raises(FormatError, match="cannot read the checkpoint"):
        tf_checkpoint.read(str(folder), input_format=1)


# -- TF1 eras ---------------------------------------------------------------------

@pytest.mark.tf
def test_lczero_tf1_saver_checkpoint(tf1_net):
    net = tf_checkpoint.read(tf1_net.directory)
    assert (net.blocks, net.filters, net.se_channels) == (2, 8, 4)
    assert net.format.policy == 2 and net.format.value == 2 and net.format.input == 1
    # fixed_gamma (scale=False) reads as ones; learned gammas are kept
    np.testing.assert_array_equal(net.residual[0].conv1.gammas.values, 1.0)
    assert net.residual[0].conv2.gammas.values[0] == pytest.approx(-0.7)
    assert_matches_tf(net, tf1_net)
    swa = tf_checkpoint.read(tf1_net.directory, swa=True)  # the builder stored 0.9 × the live weights
    np.testing.assert_allclose(swa.residual[1].se.w2.values, 0.9 * net.residual[1].se.w2.values, rtol=1e-6)


@pytest.mark.tf
def test_leela_zero_tf1_checkpoint(lz_net):
    net = tf_checkpoint.read(lz_net.prefix)
    assert net.family is Family.GO and (net.blocks, net.filters) == (1, 8)
    assert net.input.gammas is None and net.input.betas is not None and net.min_version is None
    assert_matches_tf(net, lz_net)


# -- the command line ---------------------------------------------------------------

@pytest.mark.tf
def test_cli_convert_checkpoint_to_linear16(se_net, tmp_path, run_cli):
    """No --encoding: a checkpoint written as protobuf is LINEAR16 by default (io.default_encoding)."""
    cfg = _yaml(tmp_path, se_net)
    out = tmp_path / "out.pb.gz"
    r = run_cli("convert", se_net.directory, "--config", cfg, out)
    assert r.exit_code == 0, r.output
    float_net = tf_checkpoint.read(se_net.directory, config=str(cfg))
    written = io.load(str(out))
    assert written.min_version == (0, 21, 0)
    errs, floor = assert_linear16_file_matches_tf(out, float_net, se_net)
    print("LINEAR16 convert: |file − TF|", errs, "noise floor", floor)
    r = run_cli("verify", out, "--against", se_net.directory, "--config", cfg)
    assert r.exit_code == 0, r.output


@pytest.mark.tf
def test_cli_fold_bias_checkpoint_legacy_semantics(se_net, tmp_path, run_cli):
    cfg = _yaml(tmp_path, se_net)
    out = tmp_path / "folded.pb.gz"
    r = run_cli("fold-bias", se_net.directory, out, "--config", cfg)  # LINEAR16 by default
    assert r.exit_code == 0, r.output
    written = io.load(str(out))
    for name, block in written.bn_blocks():
        assert block.gammas is None or np.all(block.gammas.values == 1), name
        assert block.betas is None or np.all(block.betas.values == 0), name
    float_net = tf_checkpoint.read(se_net.directory, config=str(cfg))
    errs, floor = assert_linear16_file_matches_tf(out, float_net, se_net, semantics="legacy")
    print("fold-bias legacy: |file − TF|", errs, "noise floor", floor)


@pytest.mark.tf
def test_cli_tf1_convert_and_inspect(tf1_net, tmp_path, run_cli):
    out = tmp_path / "tf1.pb.gz"
    r = run_cli("convert", tf1_net.directory, "--encoding", "linear16", out)
    assert r.exit_code == 0, r.output
    assert_linear16_file_matches_tf(out, tf_checkpoint.read(tf1_net.directory), tf1_net)
    r = run_cli("inspect", tf1_net.prefix + ".index", "--json")
    assert r.exit_code == 0, r.output


@pytest.mark.tf
def test_cli_leela_zero_checkpoint_to_text(lz_net, tmp_path, run_cli):
    out = tmp_path / "lz.txt"
    r = run_cli("fold-bias", lz_net.prefix, out, "--beta-into", "biases")
    assert r.exit_code == 0, r.output
    text = io.load(str(out))
    assert text.source.kind == "text" and text.family is Family.GO
    out_legacy = forward.evaluate(text, lz_net.engine_planes, semantics="legacy")
    errs = _errors(out_legacy, lz_net.outputs)
    # Text holds decimal floats (text.py writes the shortest round-tripping form): float32 bound applies.
    scales = _scales(lz_net.outputs)
    for k, e in errs.items():
        assert e <= FLOAT_REL * scales[k], (k, e)


@pytest.mark.tf
def test_cli_checkpoint_errors(se_net, tmp_path, run_cli):
    out = tmp_path / "x.pb.gz"
    r = run_cli("convert", se_net.directory, out)
    assert r.exit_code == 2 and "input format is not stored in a checkpoint" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and se_net.directory in r.stderr
    r = run_cli("convert", se_net.directory, "--config", _yaml(tmp_path, se_net, filters=64), out)
    assert r.exit_code == 2 and "config says 64 filters" in r.stderr
    assert not out.exists()
    r = run_cli("inspect", se_net.directory, "--input-format", "classic", "--swa")
    assert r.exit_code == 0 and "checkpoint" in r.output and "2 blocks x 16 filters" in r.output


# -- without TensorFlow, and pieces that need no TensorFlow ------------------------

def _fake_checkpoint(tmp_path):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "net-7.index").write_bytes(b"not read without TensorFlow")
    (folder / "net-7.data-00000-of-00001").write_bytes(b"")
    (folder / "checkpoint").write_text('model_checkpoint_path: "net-7"\nall_model_checkpoint_paths: "net-7"\n')
    return folder


def test_without_tensorflow(tmp_path):
    """`import tensorflow` fails: other commands work, a checkpoint gives the one-line install message."""
    folder = _fake_checkpoint(tmp_path)
    script = ("import sys; sys.modules['tensorflow'] = None\n"
              "from lcconvert.cli import main\n"
              "main()\n")

    def run(*args):
        return subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True,
                              timeout=120)

    r = run("inspect", MAIA)
    assert r.returncode == 0, r.stderr
    r = run("convert", MAIA, tmp_path / "copy.pb.gz")
    assert r.returncode == 0, r.stderr
    r = run("convert", folder, tmp_path / "out.pb.gz")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert str(folder) in lines[0] and "needs TensorFlow: pip install 'lcconvert[tf]'" in lines[0]


def test_checkpoint_paths_resolve_without_tensorflow(tmp_path):
    folder = _fake_checkpoint(tmp_path)
    prefix = str(folder / "net-7")
    assert tf_checkpoint.resolve_prefix(str(folder)) == prefix
    assert tf_checkpoint.resolve_prefix(prefix) == prefix
    assert tf_checkpoint.resolve_prefix(prefix + ".index") == prefix
    # CheckpointManager writes absolute paths; a moved folder still resolves by base name.
    (folder / "checkpoint").write_text('model_checkpoint_path: "/gone/elsewhere/net-7"\n')
    assert tf_checkpoint.resolve_prefix(str(folder)) == prefix
    (folder / "checkpoint").write_text('model_checkpoint_path: "net-9"\n')
    with pytest.raises(FormatError, match="net-9.index"):
        tf_checkpoint.resolve_prefix(str(folder))
    (folder / "checkpoint").write_text("garbage\n")
    with pytest.raises(FormatError, match="model_checkpoint_path"):
        tf_checkpoint.resolve_prefix(str(folder))
    with pytest.raises(FormatError, match="not a TensorFlow checkpoint"):
        tf_checkpoint.resolve_prefix(str(tmp_path / "nothing"))


def test_training_yaml(tmp_path):
    pytest.importorskip("yaml")
    from lcconvert.formats import training_config as tc

    p = tmp_path / "t.yaml"
    p.write_text("name: x\nmodel:\n  filters: 64\n  residual_blocks: 6\n  se_ratio: 8\n  policy: classical\n"
                 "  value: wdl\n  moves_left: none\n  input_type: canonical_v2\n  default_activation: mish\n")
    c = tc.load(str(p))
    assert (c.filters, c.residual_blocks, c.se_ratio, c.input, c.policy, c.value, c.moves_left,
            c.default_activation) == (64, 6, 8, 5, 1, 2, 0, 1)
    assert c.merged(input=1, policy=None).input == 1 and c.merged(policy=None).policy == 1
    p.write_text("model:\n  filters: 8\n")
    c = tc.load(str(p))
    assert c.input == 1 and c.policy is None  # absent input_type meant classic to the training code
    p.write_text("model:\n  policy: attention\n")
    with pytest.raises(UnsupportedError, match="attention"):
        tc.load(str(p))
    p.write_text("model:\n  value: sideways\n")
    with pytest.raises(FormatError, match=r"t.yaml: value: unknown value 'sideways'"):
        tc.load(str(p))
    p.write_text("training: {}\n")
    with pytest.raises(FormatError, match="no `model:` section"):
        tc.load(str(p))
    p.write_text("model: [\n")
    with pytest.raises(FormatError, match="not valid YAML"):
        tc.load(str(p))
    assert tc.parse_input_format("4") == 4 and tc.parse_input_format(132) == 132
    with pytest.raises(FormatError, match="input format"):
        tc.parse_input_format(7)


def test_name_table():
    """Table facts that need no TensorFlow: normalization and TF1 ordinal layout."""
    assert tf_names.normalize("fp32_storage/bn1//batch_normalization/beta:0") == "bn1/batch_normalization/beta"
    shapes = {"bn0/conv_weight": (3, 3, 112, 4), "bn1/conv_weight": (3, 3, 4, 4), "bn2/conv_weight": (3, 3, 4, 4),
              "bn2/se_fc1_w": (4, 2), "bn3/conv_weight": (1, 1, 4, 8), "bn4/conv_weight": (1, 1, 4, 32),
              "fc1/weight": (512, 1858), "policy_map": (5120, 1858)}
    m = tf_names.resolve(shapes)
    targets = {a.name: a.target for a in m.assignments}
    assert targets["bn2/se_fc1_w"] == "residual.0.se.w1"
    assert targets["bn3/conv_weight"] == "policy.weights" and targets["bn4/conv_weight"] == "value.weights"
    assert m.ignored == ["policy_map"] and not m.unmapped
    # an SE unit in the scope of a first convolution is not a layout the training code builds
    m = tf_names.resolve({**shapes, "bn1/se_fc1_w": (4, 2)})
    assert m.unmapped == ["bn1/se_fc1_w"]


@pytest.mark.tf
@pytest.mark.parametrize("damage", ["missing-data", "truncated-data"])
def test_half_deleted_checkpoint_is_one_line_in_a_real_process(se_net, tmp_path, damage):
    """A real `lcconvert` process, so TensorFlow's own stderr (fd 2) is captured too."""
    import shutil

    folder = tmp_path / "ckpt"
    shutil.copytree(se_net.directory, folder)
    shards = sorted(folder.glob("*.data-00000-of-00001"))
    assert shards
    for shard in shards:
        if damage == "missing-data":
            shard.unlink()
        else:
            shard.write_bytes(shard.read_bytes()[:1000])
    cfg = _yaml(tmp_path, se_net)
    out = tmp_path / "out.pb.gz"
    r = subprocess.run([sys.executable, "-m", "lcconvert.cli", "convert", str(folder), str(out), "--config",
                        str(cfg)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert str(folder) in lines[0] and "Traceback" not in r.stderr
    assert not out.exists()


@pytest.mark.tf
def test_reading_a_checkpoint_prints_nothing_but_the_result(se_net, tmp_path):
    cfg = _yaml(tmp_path, se_net)
    out = tmp_path / "out.pb.gz"
    r = subprocess.run([sys.executable, "-m", "lcconvert.cli", "convert", se_net.directory, str(out), "--config",
                        str(cfg)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip().splitlines() == [f"wrote {out}"]
