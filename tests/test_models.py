"""Compiled models: exact parameter counts, classifier groups, reuse statistics, forward passes."""

from pathlib import Path

import pytest
import torch

from normscope import VARIANTS, build_model, count_params, load_spec, summarize
from normscope.norms import ALL_VARIANTS, parse_variant

EX = Path(__file__).resolve().parents[1] / "examples"
ALL = sorted(EX.glob("*.yml"))
IMAGENET = {
    "vgg16_imagenet",
    "vgg19_imagenet",
    "resnet18_imagenet",
    "resnet50_imagenet",
    "resnet50_birds",
    "resnet50_birds_finetune",
    "vgg19_art",
}


def conv(cin, cout, k):
    return k * k * cin * cout + cout


def norm_params(kind, c, k=3):
    """Keras-convention (trainable, non-trainable) weights of one norm layer."""
    return {"none": (0, 0), "bn": (2 * c, 2 * c), "in": (2 * c, 0), "gdn": (k * k * c * c + c, 2 * c)}[kind]


def split(variant):
    norm, _, v2 = variant.partition("_")
    return norm, bool(v2)


def reused(norm, channels):
    per = {"none": 0, "bn": 2, "in": 2, "gdn": 1}[norm]
    return per * sum(channels)


@pytest.mark.parametrize("variant", VARIANTS)
def test_vgg16_study_counts(variant):
    norm, reuse = split(variant)
    blocks = [(3, 16, 2), (16, 32, 2), (32, 64, 3), (64, 128, 3)]
    trainable = non = 0
    for cin, cout, n in blocks:
        trainable += conv(cin, cout, 3) + (n - 1) * conv(cout, cout, 3)
        t, nt = norm_params(norm, cout, 3)
        trainable, non = trainable + t, non + nt
    features = 512 + (reused(norm, [16, 32, 64, 128]) if reuse else 0)
    trainable += features * 100 + 100
    s = summarize(EX / "vgg16.yml", norm=norm, reuse=reuse)
    assert (s.trainable_params, s.non_trainable_params) == (trainable, non)
    assert sum(s.classifier_inputs.values()) == features
    assert (
        features == {"none": 512, "bn": 512, "bn_v2": 992, "in": 512, "in_v2": 992, "gdn": 512, "gdn_v2": 752}[variant]
    )


@pytest.mark.parametrize("variant", VARIANTS)
def test_perceptnet_study_counts(variant):
    norm, reuse = split(variant)
    k = 1  # 1×1 GDN in gdn and gdn_v2 alike: the two differ by reuse only
    trainable = conv(3, 3, 1) + conv(3, 6, 5) + conv(6, 128, 5)
    non = 0
    for c in (3, 3, 6, 128):
        t, nt = norm_params(norm, c, k)
        trainable, non = trainable + t, non + nt
    features = 128 + (reused(norm, [3, 3, 6, 128]) if reuse else 0)
    trainable += features * 100 + 100
    s = summarize(EX / "perceptnet.yml", norm=norm, reuse=reuse)
    assert (s.trainable_params, s.non_trainable_params) == (trainable, non)
    assert features == {"none": 128, "bn_v2": 408, "in_v2": 408, "gdn_v2": 268}.get(variant, 128)


def test_perceptnet_gdn_reuse_and_kernel_contrasts():
    """perceptnet_gdn_v2 differs from perceptnet_gdn by reuse alone (140 statistics × 100
    classes = 14,000 weights); the thesis' configuration, perceptnet_gdn_v2_k3, adds 3×3
    GDN kernels (8·C² more γ weights per layer). Counted by hand and on the built module."""
    convs = conv(3, 3, 1) + conv(3, 6, 5) + conv(6, 128, 5)
    head = 128 * 100 + 100
    expected = {}
    for name, k, reuse in (
        ("perceptnet_gdn", 1, False),
        ("perceptnet_gdn_v2", 1, True),
        ("perceptnet_gdn_v2_k3", 3, True),
    ):
        gdn = [norm_params("gdn", c, k) for c in (3, 3, 6, 128)]
        trainable = convs + head + sum(t for t, _ in gdn) + (140 * 100 if reuse else 0)
        expected[name] = (trainable, sum(nt for _, nt in gdn))
        s = summarize(EX / f"{name}.yml")
        assert (s.trainable_params, s.non_trainable_params) == expected[name], name
        assert count_params(build_model(EX / f"{name}.yml")) == expected[name], name
    total = {name: sum(v) for name, v in expected.items()}
    assert total == {"perceptnet_gdn": 49_554, "perceptnet_gdn_v2": 63_554, "perceptnet_gdn_v2_k3": 195_058}
    assert total["perceptnet_gdn_v2"] - total["perceptnet_gdn"] == 14_000
    assert total["perceptnet_gdn_v2_k3"] - total["perceptnet_gdn_v2"] == 8 * (9 + 9 + 36 + 128**2)


@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_files_equal_overrides(variant):
    """examples/vgg16_in_v2.yml (a few lines) compiles to the same model as --norm in --reuse."""
    norm, reuse = split(variant)
    for family in ("vgg16", "perceptnet"):
        path = EX / (family + ("" if variant == "none" else f"_{variant}") + ".yml")
        a, b = summarize(path), summarize(EX / f"{family}.yml", norm=norm, reuse=reuse)
        assert a.name == b.name == path.stem
        assert a.to_dict()["layers"] == b.to_dict()["layers"]
        assert a.classifier_inputs == b.classifier_inputs


@pytest.mark.parametrize(
    "name,torchvision_name,norm",
    [
        ("vgg16_imagenet", "vgg16", "none"),
        ("vgg16_imagenet", "vgg16_bn", "bn"),
        ("vgg19_imagenet", "vgg19", "none"),
        ("resnet18_imagenet", "resnet18", "bn"),
    ],
)
def test_imagenet_counts_match_torchvision(name, torchvision_name, norm):
    import torchvision

    with torch.device("meta"):
        reference = getattr(torchvision.models, torchvision_name)()
    expected = sum(p.numel() for p in reference.parameters())
    buffers = sum(b.numel() for n, b in reference.named_buffers() if not n.endswith("num_batches_tracked"))
    s = summarize(EX / f"{name}.yml", norm=norm)
    assert s.total_params == expected + buffers  # Keras total: running stats included
    if name == "vgg19_imagenet":  # first two blocks frozen (train.freeze)
        frozen = conv(3, 64, 3) + conv(64, 64, 3) + conv(64, 128, 3) + conv(128, 128, 3)
        assert s.trainable_params == expected - frozen
    else:
        assert s.trainable_params == expected


def test_known_totals_from_the_references():
    assert summarize(EX / "vgg16_imagenet.yml").total_params == 138_357_544
    assert summarize(EX / "vgg19_imagenet.yml").total_params == 143_667_240
    # BaseNet by hand: 456 + 2416 + 20050 + 1275
    assert summarize(EX / "basenet.yml").total_params == 24_197


def _admitted(path):
    spec = load_spec(path)
    has_slots = any(layer.slot for layer in spec.layers)
    return VARIANTS if has_slots else ("none",)


@pytest.mark.parametrize("path", ALL, ids=[p.stem for p in ALL])
def test_every_example_forward_in_every_variant(path):
    spec = load_spec(path)
    shape = spec.input_shape
    if spec.name in IMAGENET:
        shape = (3, 64, 64)  # the full-size forward is tested below
    for variant in _admitted(path):
        norm, reuse = split(variant)
        model = build_model(path, norm=norm, reuse=reuse, input_shape=shape).eval()
        with torch.no_grad():
            out = model(torch.randn(2, *shape))
        assert out.shape == (2, spec.classes), (path.stem, variant)
        assert torch.isfinite(out).all()
        groups = model.classifier_groups
        assert list(groups)[0] == "features"
        assert model.classifier.in_features == model.classifier_input_size == list(groups.values())[-1].stop


def test_imagenet_vgg16_full_size_forward():
    model = build_model(EX / "vgg16_imagenet.yml").eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 224, 224)).shape == (1, 1000)


def _classifier_input(model, x):
    seen = {}
    handle = model.classifier.register_forward_hook(lambda m, i, o: seen.update(x=i[0]))
    model(x)
    handle.remove()
    return seen["x"]


def test_in_v2_reuses_per_image_channel_statistics():
    torch.manual_seed(0)
    model = build_model(EX / "vgg16.yml", norm="in", reuse=True).eval()
    x = torch.randn(3, 3, 32, 32)
    acts = {}
    model.layers["conv2"].register_forward_hook(lambda m, i, o: acts.update(conv2=o))
    model.layers["conv10"].register_forward_hook(lambda m, i, o: acts.update(conv10=o))
    with torch.no_grad():
        z = _classifier_input(model, x)
    assert list(model.classifier_groups) == ["features"] + [f"in{i}.{s}" for i in range(1, 5) for s in ("mean", "var")]
    g = model.classifier_groups
    torch.testing.assert_close(z[:, g["in1.mean"]], acts["conv2"].mean(dim=(2, 3)))
    torch.testing.assert_close(z[:, g["in4.var"]], acts["conv10"].var(dim=(2, 3), unbiased=False), rtol=1e-4, atol=1e-5)


def test_bn_v2_reuses_running_statistics_in_eval_and_batch_statistics_in_training():
    torch.manual_seed(0)
    model = build_model(EX / "vgg16.yml", norm="bn", reuse=True)
    x = torch.randn(4, 3, 32, 32)
    model.train()
    z = _classifier_input(model, x)
    g = model.classifier_groups
    assert torch.allclose(z[0, g["bn1.mean"]], z[3, g["bn1.mean"]])  # same for every image
    model.eval()
    with torch.no_grad():
        z = _classifier_input(model, x)
    bn1 = model.layers["bn1"]
    torch.testing.assert_close(z[1, g["bn1.mean"]], bn1.running_mean)
    torch.testing.assert_close(z[1, g["bn1.var"]], bn1.running_var)


def test_gdn_v2_reuses_denominators():
    model = build_model(EX / "perceptnet.yml", norm="gdn", reuse=True)
    assert list(model.classifier_groups) == [
        "features",
        "gdn1.denominator",
        "gdn2.denominator",
        "gdn3.denominator",
        "gdn4.denominator",
    ]
    assert model.layers["gdn1"].kernel_size == 1 and model.layers["gdn4"].kernel_size == 1
    assert build_model(EX / "perceptnet.yml", norm="gdn").layers["gdn1"].kernel_size == 1
    thesis = build_model(EX / "perceptnet_gdn_v2_k3.yml")
    assert thesis.layers["gdn1"].kernel_size == 3 and thesis.layers["gdn4"].kernel_size == 3
    assert list(thesis.classifier_groups) == list(model.classifier_groups)


def test_readable_state_dict_keys():
    keys = set(build_model(EX / "vgg16_bn_v2.yml").state_dict())
    assert {"layers.conv1.weight", "layers.bn4.running_var", "layers.classifier.weight"} <= keys


def test_channels_last_and_compile_give_the_same_logits():
    torch.manual_seed(0)
    model = build_model(EX / "vgg16_gdn_v2.yml").eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
        cl = model.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
        compiled = torch.compile(model, backend="aot_eager")(x)
    torch.testing.assert_close(cl, ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(compiled, ref, rtol=1e-4, atol=1e-5)


def test_aux_heads():
    model = build_model(EX / "inception_cifar.yml")
    logits, aux = model.forward_with_aux(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 100)
    assert [(a.shape, w) for a, w in aux] == [((2, 100), 0.3)]


def test_residual_block_is_a_sum():
    """fashion_resnet's identity block: output = relu(branch + input)."""
    model = build_model(EX / "fashion_resnet.yml", norm="none").eval()
    acts = {}
    for name in ("add1", "conv2", "act1"):
        model.layers[name].register_forward_hook(lambda m, i, o, name=name: acts.update({name: (i[0], o)}))
    with torch.no_grad():
        model(torch.randn(2, 1, 28, 28))
    add_in, add_out = acts["add1"]
    branch = acts["conv2"][1]
    shortcut = acts["act1"][1]
    torch.testing.assert_close(add_in, branch + shortcut)
    torch.testing.assert_close(add_out, torch.relu(branch + shortcut))


def test_bn_momentum_option_in_keras_convention(tmp_path):
    base = (EX / "vgg16.yml").read_text()
    assert build_model(EX / "vgg16.yml", norm="bn").layers["bn1"].momentum == pytest.approx(0.01)
    p = tmp_path / "m.yml"
    p.write_text(base.replace("norm_options:\n", "norm_options:\n  bn: {momentum: 0.9}\n"))
    model = build_model(p, norm="bn")
    assert model.layers["bn3"].momentum == pytest.approx(0.1)
    seen = {}
    bn1 = model.layers["bn1"]
    bn1.register_forward_hook(lambda m, i, o: seen.update(x=i[0]))
    model.train()(torch.randn(8, 3, 32, 32))
    # one step from the initial 0: running = 0.9·0 + 0.1·batch mean
    torch.testing.assert_close(bn1.running_mean, 0.1 * seen["x"].mean(dim=(0, 2, 3)))


@pytest.mark.parametrize("path", ALL, ids=[p.stem for p in ALL])
def test_graph_parameter_counts_equal_the_built_module(path):
    """The summary counts parameters from the graph alone (no torch); for every example
    and variant, layer by layer, they equal what the built module holds."""
    spec = load_spec(path)
    if spec.input_shape is None or spec.classes is None:
        pytest.skip("input or classes come from the data")
    variants = ALL_VARIANTS if any(layer.slot for layer in load_spec(path, norm="bn").layers) else ("none",)
    for variant in variants:
        norm, reuse = parse_variant(variant)
        with torch.device("meta"):
            model = build_model(path, norm=norm, reuse=reuse)
        s = summarize(path, norm=norm, reuse=reuse)
        for row in s.layers:
            module = model.layers[row.name] if row.name in model.layers else None
            assert (row.trainable, row.non_trainable) == (count_params(module) if module else (0, 0)), (
                variant,
                row.name,
            )
        assert (s.trainable_params, s.non_trainable_params) == count_params(model), variant


def _pooled(tmp_path, pool: str, x: torch.Tensor) -> torch.Tensor:
    """The output of one avgpool layer (given as YAML) on a 1-channel input."""
    path = tmp_path / "pool.yml"
    h, w = x.shape[-2:]
    path.write_text(
        f"name: pool\ninput: [1, {h}, {w}]\nclasses: 2\nlayers:\n  - avgpool: {pool}\n  - flatten\n  - dense\n"
    )
    model = build_model(path).eval()
    out = []
    model.layers["avgpool1"].register_forward_hook(lambda m, i, o: out.append(o))
    with torch.no_grad():
        model(x.view(1, 1, h, w))
    return out[0][0, 0]


def _window_means(x: torch.Tensor, rows: list[range], cols: list[range]) -> torch.Tensor:
    """Each window's mean over its positions inside the map (Keras' 'same' average pooling)."""
    return torch.tensor([[float(x[r][:, c].mean()) for c in cols] for r in rows])


def test_avgpool_padding_is_not_averaged_in(tmp_path):
    """avgpool with padding averages over the window's positions inside the map, as Keras
    does: a map of ones stays ones, and every window is the mean of the values it covers."""
    ones = _pooled(tmp_path, "{size: 3, stride: 1, padding: same}", torch.ones(4, 4))
    torch.testing.assert_close(ones, torch.ones(4, 4), atol=0, rtol=0)
    x = torch.arange(16, dtype=torch.float32).view(4, 4) ** 1.5
    # 3×3 windows at stride 1, one position of padding on each side
    around = [range(max(0, i - 1), min(4, i + 2)) for i in range(4)]
    got = _pooled(tmp_path, "{size: 3, stride: 1, padding: same}", x)
    torch.testing.assert_close(got, _window_means(x, around, around), atol=1e-5, rtol=1e-6)
    # the corner: mean of x[0:2, 0:2] = (0 + 1 + 4^1.5 + 5^1.5) / 4
    assert got[0, 0].item() == pytest.approx((0 + 1 + 8 + 5**1.5) / 4, rel=1e-6)
    # asymmetric 'same' padding (2×2 at stride 2 on 5×5: none before, one after)
    y = torch.randn(5, 5)
    halves = [range(0, 2), range(2, 4), range(4, 5)]
    got = _pooled(tmp_path, "{size: 2, padding: same}", y)
    torch.testing.assert_close(got, _window_means(y, halves, halves), atol=1e-6, rtol=1e-6)
    # an explicit padding is not averaged in either
    got = _pooled(tmp_path, "{size: 3, stride: 1, padding: 1}", x)
    torch.testing.assert_close(got, _window_means(x, around, around), atol=1e-5, rtol=1e-6)
