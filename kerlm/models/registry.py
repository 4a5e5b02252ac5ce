"""The registry of backbone classes and their named presets, at the bottom of `kerlm.models`.

A backbone module registers its class (`@register_backbone`) and the presets it builds
(`register_presets(cls, {...})`) where it defines them, so adding a backbone is one new
module (imported by `kerlm/models/__init__.py`) and nothing else. The registry imports no
kerlm module: backbones, presets, checkpoint loading and the converters all look classes up
here by name, which is what keeps `kerlm.models` free of import cycles.

A preset is `{"class": backbone class name, "description": str, "config": dict}`. Generic
presets leave out `vocabulary_size` (a task's tokenizer decides it); presets of published
architectures include theirs. What a backbone can do is its class's `capabilities`
(see `kerlm.models.Backbone`), so tasks can check a preset without building it.

Example:
>>> import kerlm.models  # registers the backbones
>>> presets_with("causal")
['decoder_base', 'decoder_small', 'decoder_tiny', 'gpt2_small']
>>> sorted(preset_capabilities("bart_base"))
['encode', 'seq2seq']
>>> get_preset("bert_base")["class"]
'EncoderBackbone'
"""

# What a backbone can do; a backbone's `capabilities` is a frozenset of these.
CAPABILITIES = {
    "encode": "bidirectional features of a text (`features` sees every token)",
    "causal": "a causal decoder-only LM with a key/value cache",
    "seq2seq": "an encoder and a decoder with cross-attention, with a key/value cache",
}
# Generic sizes: (layers, hidden dim, heads, feed-forward dim).
SIZES = {"tiny": (2, 128, 2, 512), "small": (4, 256, 4, 1024), "base": (12, 768, 12, 3072)}

BACKBONES = {}  # class name -> backbone class
PRESETS = {}  # preset name -> {"class", "description", "config"}


def register_backbone(cls):
    """Class decorator: make `cls` known by its name to presets, checkpoints and converters.

    `cls.capabilities` must be a frozenset of names in `CAPABILITIES`.
    """
    capabilities = getattr(cls, "capabilities", None)
    if not isinstance(capabilities, frozenset) or not capabilities <= set(CAPABILITIES):
        raise ValueError(f"{cls.__name__}.capabilities must be a frozenset of "
                         f"{sorted(CAPABILITIES)}; got {capabilities!r}")
    name = cls.__name__
    if BACKBONES.get(name, cls) is not cls:
        raise ValueError(f"Two backbone classes are named {name!r}")
    BACKBONES[name] = cls
    return cls


def register_presets(cls, presets):
    """Add `presets` (`{name: {"description", "config"}}`) built by backbone class `cls`."""
    for name, preset in presets.items():
        if name in PRESETS:
            raise ValueError(f"Preset {name!r} is registered twice "
                             f"({PRESETS[name]['class']} and {cls.__name__})")
        PRESETS[name] = {"class": cls.__name__, "description": preset["description"],
                         "config": dict(preset["config"])}


def sized_presets(kind, sizes=None, side=""):
    """Generic `{kind}_tiny/_small/_base` presets (no vocabulary size): `{name: preset}`.

    `sizes` overrides entries of `SIZES`; `side` is appended to the layer count in the
    description (" each side" for encoder-decoders).

    Example:
    >>> sized_presets("encoder")["encoder_tiny"]["description"]
    '2 layers, 128 d, 2 heads, ff 512.'
    """
    presets = {}
    for size, (layers, hidden, heads, ff) in {**SIZES, **(sizes or {})}.items():
        presets[f"{kind}_{size}"] = {
            "description": f"{layers} layers{side}, {hidden} d, {heads} heads, ff {ff}.",
            "config": dict(num_layers=layers, hidden_dim=hidden, num_heads=heads,
                           intermediate_dim=ff, max_sequence_length=512, dropout=0.1),
        }
    return presets


def backbone_class(name):
    """The registered backbone class called `name`, or a ValueError listing the known ones."""
    if name not in BACKBONES:
        raise ValueError(f"Unknown backbone class {name!r}; registered: "
                         f"{', '.join(sorted(BACKBONES))}")
    return BACKBONES[name]


def is_backbone(obj):
    """Whether `obj` is an instance of a registered backbone class."""
    return isinstance(obj, tuple(BACKBONES.values()))


def list_presets():
    """Names of all presets.

    Example:
    >>> [name for name in list_presets() if name.startswith("decoder_")]
    ['decoder_base', 'decoder_small', 'decoder_tiny']
    """
    return sorted(PRESETS)


def get_preset(name):
    """The preset dict for `name`, or a ValueError listing the known names."""
    if name not in PRESETS:
        raise ValueError(f"Unknown preset {name!r}: not a directory and not one of "
                         f"{', '.join(list_presets())}")
    return PRESETS[name]


def preset_capabilities(name):
    """The capabilities of the backbone preset `name` builds (from its class; nothing is
    built), or get_preset's ValueError."""
    return backbone_class(get_preset(name)["class"]).capabilities


def presets_with(capability):
    """Sorted names of the presets whose backbone has `capability` (a name in
    `CAPABILITIES`, else a ValueError)."""
    if capability not in CAPABILITIES:
        raise ValueError(f"Unknown backbone capability {capability!r}; capabilities: "
                         f"{', '.join(CAPABILITIES)}")
    return [name for name in list_presets() if capability in preset_capabilities(name)]
