"""VLM backbone: multi-view images + instruction (+ proprio) -> cognition token z_t (paper Sec. 3.1).

``VLMBackbone.encode(images [B, n_cam, 3, H, W], instructions, proprio [B, state_dim] | None) -> z [B, D]``.

Sequence layout for one row (PaliGemma prefix-LM convention, then our suffix)::

    [img view 0 (P tokens)] ... [img view n_cam-1] [<bos> instruction "\\n"] | [proprio] [COG]
    |-------------------------- prefix: bidirectional ------------------------| |-- suffix: causal --|

* Multi-view: each camera view is encoded separately by the vision tower (+ multimodal projector)
  and the ``n_cam * P`` image tokens are concatenated in camera order.
* Proprioception (optional, normalised state) is projected by a linear layer into one extra token
  embedding placed after the prompt.
* COG is a LEARNABLE embedding appended after the prompt (and the proprio token); z_t is the last
  hidden state at its position. Rows of a batch have different prompt lengths; they are padded on
  the left or the right (``padding_side``), position ids count only real tokens (1-indexed, as
  PaliGemma) and z_t is gathered at each row's own COG index, so a padded row gives the same z_t as
  the row alone.

Models plug in through ``VLMAdapter`` (tokenise, embed tokens, encode images, run the LM on
embeddings). ``PaliGemmaAdapter`` wraps transformers' PaliGemma (SigLIP + Gemma / Gemma2).
Real checkpoints load from a local directory only (``local_files_only=True``); named configs of
the same classes are built offline with random init (``NAMED_CONFIGS``):

* ``paligemma-tiny``: Gemma text (hidden 96, 2 layers), SigLIP (hidden 64, 2 layers, patch 16, 96 px)
* ``paligemma2-tiny``: the same with Gemma2 text (sliding window + soft-capping code paths)
* ``paligemma2-3b-shape``: the real PaliGemma-2-3B-224 dimensions, random init (GPU benchmarks only)

Tokenizer for named configs: no downloads are possible, so ``build_byte_tokenizer()`` constructs a
byte-level ``tokenizers`` BPE model with no merges (one token per UTF-8 byte, so any instruction is
representable, ids 0-255) plus special tokens ``<pad>`` 256, ``<bos>`` 257, ``<eos>`` 258,
``<unk>`` 259, ``<image>`` 260, wrapped as ``PreTrainedTokenizerFast``. The 3B-shape config keeps
the real 257152-entry vocabulary size but uses the byte tokenizer ids (random init anyway).
For real checkpoints the checkpoint's own tokenizer is loaded from the local path.

On CUDA the forward runs under bf16 autocast (``bf16=True``) and gradient checkpointing can be
enabled for training (``gradient_checkpointing=True``).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

# ---------------------------------------------------------------------------------------------- tokenizer

BYTE_SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>", "<image>")


def build_byte_tokenizer():
    """Byte-level tokenizer built in code (no files, no downloads): 256 byte tokens + 5 specials."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    byte_chars = pre_tokenizers.ByteLevel.alphabet()
    # Stable order: id i <-> byte i (bytes_to_unicode mapping).
    b2u = _bytes_to_unicode()
    vocab = {b2u[b]: b for b in range(256)}
    assert set(vocab) == set(byte_chars)
    for i, tok in enumerate(BYTE_SPECIALS):
        vocab[tok] = 256 + i
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tk.decoder = decoders.ByteLevel()
    tk.add_special_tokens(list(BYTE_SPECIALS))
    return PreTrainedTokenizerFast(
        tokenizer_object=tk, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>", unk_token="<unk>"
    )


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable unicode map (the one ByteLevel uses)."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


# ---------------------------------------------------------------------------------------------- configs


def _paligemma_config(name: str):
    from transformers import Gemma2Config, GemmaConfig, PaliGemmaConfig, SiglipVisionConfig

    n_special = 256 + len(BYTE_SPECIALS)
    if name in ("paligemma-tiny", "paligemma2-tiny"):
        vision = SiglipVisionConfig(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=96,
            patch_size=16,
            vision_use_head=False,
        )
        common = dict(
            vocab_size=n_special,
            hidden_size=96,
            intermediate_size=192,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=48,
            max_position_embeddings=1024,
            pad_token_id=256,
            bos_token_id=257,
            eos_token_id=258,
        )
        if name == "paligemma-tiny":
            text = GemmaConfig(**common)
        else:
            text = Gemma2Config(**common, sliding_window=512, query_pre_attn_scalar=48)
        cfg = PaliGemmaConfig(
            vision_config=vision,
            text_config=text,
            image_token_index=260,
            vocab_size=n_special,
            projection_dim=96,
            hidden_size=96,
        )
    elif name == "paligemma2-3b-shape":
        vision = SiglipVisionConfig(
            hidden_size=1152,
            intermediate_size=4304,
            num_hidden_layers=27,
            num_attention_heads=16,
            image_size=224,
            patch_size=14,
            vision_use_head=False,
        )
        text = Gemma2Config(
            vocab_size=257152,
            hidden_size=2304,
            intermediate_size=9216,
            num_hidden_layers=26,
            num_attention_heads=8,
            num_key_value_heads=4,
            head_dim=256,
            sliding_window=4096,
            query_pre_attn_scalar=256,
            final_logit_softcapping=30.0,
            attn_logit_softcapping=50.0,
            max_position_embeddings=8192,
            pad_token_id=256,
            bos_token_id=257,
            eos_token_id=258,
        )
        cfg = PaliGemmaConfig(
            vision_config=vision,
            text_config=text,
            image_token_index=257152 - 1,
            vocab_size=257152,
            projection_dim=2304,
            hidden_size=2304,
        )
    else:
        raise KeyError(name)
    return cfg


NAMED_CONFIGS = ("paligemma-tiny", "paligemma2-tiny", "paligemma2-3b-shape")


# ---------------------------------------------------------------------------------------------- adapters


class VLMAdapter(ABC, nn.Module):
    """What ``VLMBackbone`` needs from an image-text-to-text model.

    Implementations hold the model's weights as submodules (so ``state_dict`` covers them).
    """

    hidden_size: int
    image_size: int  # square input resolution of the vision tower
    image_mean: tuple[float, float, float]
    image_std: tuple[float, float, float]

    @abstractmethod
    def prompt_ids(self, instruction: str) -> list[int]:
        """Token ids of the text prefix for one instruction (incl. BOS / separators)."""

    @abstractmethod
    def embed_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        """``[B, L] long -> [B, L, D]`` input embeddings (at the scale the LM expects)."""

    @abstractmethod
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """``[N, 3, S, S]`` normalised pixels -> ``[N, P, D]`` image tokens in the LM space."""

    @abstractmethod
    def forward_embeds(
        self,
        embeds: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        prefix_mask: torch.Tensor,
    ) -> torch.Tensor:
        """Run the LM on ``embeds [B, L, D]``; ``prefix_mask`` marks bidirectional-prefix tokens.

        Returns the last hidden state ``[B, L, D]``.
        """

    def enable_gradient_checkpointing(self) -> None:  # pragma: no cover - optional
        pass


class PaliGemmaAdapter(VLMAdapter):
    """transformers ``PaliGemmaForConditionalGeneration`` (SigLIP vision + Gemma/Gemma2 text).

    Only the inner ``PaliGemmaModel`` (vision tower, projector, language model) is kept: the LM head
    (tied to the embeddings) is not needed for z_t.
    """

    def __init__(self, model: nn.Module, tokenizer, image_mean=(0.5, 0.5, 0.5), image_std=(0.5, 0.5, 0.5)):
        super().__init__()
        from transformers import PaliGemmaForConditionalGeneration, PaliGemmaModel

        if isinstance(model, PaliGemmaForConditionalGeneration):
            model = model.model
        if not isinstance(model, PaliGemmaModel):
            raise TypeError(f"PaliGemmaAdapter: expected a PaliGemma model, got {type(model).__name__}")
        self.model = model
        self.tokenizer = tokenizer
        cfg = model.config
        self.hidden_size = int(cfg.text_config.hidden_size)
        self.image_size = int(cfg.vision_config.image_size)
        self.image_mean = tuple(float(x) for x in image_mean)
        self.image_std = tuple(float(x) for x in image_std)
        self._newline = tokenizer("\n", add_special_tokens=False)["input_ids"]
        if tokenizer.bos_token_id is None:
            raise ValueError("PaliGemmaAdapter: the tokenizer has no bos_token")

    # -- construction
    @classmethod
    def from_name(
        cls, name: str, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> PaliGemmaAdapter:
        """Random-init model of a named config (offline), with the byte tokenizer."""
        from transformers import PaliGemmaForConditionalGeneration

        cfg = _paligemma_config(name)
        cfg._attn_implementation = "sdpa"
        cfg.text_config._attn_implementation = "eager" if "2" in name.split("-")[0] else "sdpa"
        cfg.vision_config._attn_implementation = "sdpa"
        with torch.device(device or "cpu"):
            model = PaliGemmaForConditionalGeneration(cfg).model
        if dtype is not None:
            model = model.to(dtype)
        return cls(model, build_byte_tokenizer())

    @classmethod
    def from_pretrained(
        cls, path: str | Path, load_weights: bool = True, dtype: torch.dtype | None = None
    ) -> PaliGemmaAdapter:
        """A local checkpoint directory (config.json, weights, tokenizer files). Never downloads.

        ``load_weights=False`` builds the architecture from ``config.json`` only (the weights are
        then expected from a VLA checkpoint).
        """
        from transformers import AutoTokenizer, PaliGemmaConfig, PaliGemmaForConditionalGeneration

        path = Path(path)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"VLM checkpoint directory {path} has no config.json (downloads are disabled; "
                "pass a local directory or a named config: " + ", ".join(NAMED_CONFIGS) + ")"
            )
        if load_weights:
            model = PaliGemmaForConditionalGeneration.from_pretrained(
                path, local_files_only=True, dtype=dtype
            )
        else:
            model = PaliGemmaForConditionalGeneration(
                PaliGemmaConfig.from_pretrained(path, local_files_only=True)
            )
            if dtype is not None:
                model = model.to(dtype)
        tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
        mean, std = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
        pp = path / "preprocessor_config.json"
        if pp.is_file():
            d = json.loads(pp.read_text())
            mean, std = tuple(d.get("image_mean", mean)), tuple(d.get("image_std", std))
        return cls(model, tok, mean, std)

    # -- VLMAdapter
    def prompt_ids(self, instruction: str) -> list[int]:
        ids = self.tokenizer(instruction, add_special_tokens=False)["input_ids"]
        return [self.tokenizer.bos_token_id, *ids, *self._newline]

    def embed_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model.get_input_embeddings()(ids)

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        out = self.model.get_image_features(pixels.to(self.model.dtype))
        return out.pooler_output

    def forward_embeds(self, embeds, attention_mask, position_ids, prefix_mask):
        # token_type_ids: 0 = prefix (bidirectional block), 1 = suffix (causal), PaliGemma convention.
        token_type_ids = (~prefix_mask).long()
        out = self.model(
            inputs_embeds=embeds,
            attention_mask=attention_mask.long(),
            position_ids=position_ids,
            token_type_ids=token_type_ids,
            use_cache=False,
        )
        return out.last_hidden_state

    def enable_gradient_checkpointing(self) -> None:
        fn = getattr(self.model, "activation_checkpointing_enable", None)  # transformers >= 5
        if fn is not None:
            fn({"use_reentrant": False})
        else:
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def build_adapter(name_or_path: str, device=None, dtype=None, load_weights: bool = True) -> VLMAdapter:
    """A named config (random init) or a local checkpoint directory."""
    if name_or_path in NAMED_CONFIGS:
        return PaliGemmaAdapter.from_name(name_or_path, device=device, dtype=dtype)
    p = Path(name_or_path)
    if p.is_dir():
        return PaliGemmaAdapter.from_pretrained(p, load_weights=load_weights, dtype=dtype)
    raise ValueError(
        f"vlm: {name_or_path!r} is neither a named config ({', '.join(NAMED_CONFIGS)}) "
        "nor an existing local checkpoint directory"
    )


# ---------------------------------------------------------------------------------------------- backbone


class VLMBackbone(nn.Module):
    """Adapter + learnable cognition token + optional proprio token -> z_t (last hidden state of COG)."""

    def __init__(
        self,
        adapter: VLMAdapter,
        state_dim: int | None = None,
        padding_side: str = "right",
        bf16: bool = True,
        gradient_checkpointing: bool = False,
    ):
        super().__init__()
        if padding_side not in ("left", "right"):
            raise ValueError(f"VLMBackbone.padding_side must be 'left' or 'right', got {padding_side!r}")
        self.adapter = adapter
        self.padding_side = padding_side
        self.bf16 = bf16
        D = adapter.hidden_size
        self.z_dim = D
        self.state_dim = state_dim
        # Learnable COG embedding, at the scale of the (scaled) token embeddings.
        with torch.no_grad():
            ref = adapter.embed_tokens(torch.tensor([[0, 1, 2, 3]], device=_dev(adapter))).float()
        scale = float(ref.std()) if torch.isfinite(ref.std()) and ref.std() > 0 else 1.0
        self.cog_token = nn.Parameter(torch.randn(D, device=_dev(adapter)) * scale)
        self.proprio_proj = nn.Linear(state_dim, D, device=_dev(adapter)) if state_dim else None
        self.register_buffer("_mean", torch.tensor(adapter.image_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(adapter.image_std).view(1, 3, 1, 1), persistent=False)
        if gradient_checkpointing:
            adapter.enable_gradient_checkpointing()

    @property
    def device(self) -> torch.device:
        return self.cog_token.device

    def _pixels(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 5 or images.shape[2] != 3:
            raise ValueError(
                f"VLMBackbone.encode: images must be [B, n_cam, 3, H, W], got {tuple(images.shape)}"
            )
        B, C = images.shape[:2]
        x = images.reshape(B * C, *images.shape[2:]).to(self.device)
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        S = self.adapter.image_size
        if x.shape[-2:] != (S, S):
            x = F.interpolate(x, size=(S, S), mode="bilinear", align_corners=False, antialias=True)
        return (x - self._mean) / self._std

    def build_inputs(self, images, instructions, proprio=None):
        """Assemble ``(embeds, attention_mask, position_ids, prefix_mask, cog_index)`` for the LM."""
        B = images.shape[0]
        if len(instructions) != B:
            raise ValueError(f"VLMBackbone.encode: {len(instructions)} instructions for batch size {B}")
        if proprio is not None:
            if self.proprio_proj is None:
                raise ValueError(
                    "VLMBackbone.encode: proprio given but the backbone was built with state_dim=None"
                )
            if proprio.shape != (B, self.state_dim):
                raise ValueError(
                    f"VLMBackbone.encode: proprio must be [B={B}, state_dim={self.state_dim}], "
                    f"got {tuple(proprio.shape)}"
                )
        elif self.proprio_proj is not None:
            raise ValueError("VLMBackbone.encode: proprio [B, state_dim] is required (built with state_dim)")
        n_cam = images.shape[1]
        img = self.adapter.encode_images(self._pixels(images))  # [B*n_cam, P, D]
        img = img.reshape(B, n_cam * img.shape[1], img.shape[2])
        dt = img.dtype
        ids = [self.adapter.prompt_ids(s) for s in instructions]
        lens = [len(t) for t in ids]
        Lt = max(lens)
        n_suffix = 2 if self.proprio_proj is not None else 1
        n_img = img.shape[1]
        L = n_img + Lt + n_suffix
        dev = self.device
        tok = torch.zeros(B, Lt, dtype=torch.long, device=dev)
        for b, t in enumerate(ids):
            tok[b, : len(t)] = torch.tensor(t, dtype=torch.long, device=dev)
        tok_emb = self.adapter.embed_tokens(tok).to(dt)  # [B, Lt, D]
        suffix = [self.cog_token.to(dt).expand(B, 1, -1)]
        if self.proprio_proj is not None:
            suffix.insert(0, self.proprio_proj(proprio.to(dev).float()).to(dt).unsqueeze(1))
        suffix = torch.cat(suffix, 1)  # [B, n_suffix, D]
        attn = torch.zeros(B, L, dtype=torch.bool, device=dev)
        prefix = torch.zeros(B, L, dtype=torch.bool, device=dev)
        cog_index = torch.zeros(B, dtype=torch.long, device=dev)
        rows = []
        for b in range(B):
            n_valid = n_img + lens[b] + n_suffix
            start = 0 if self.padding_side == "right" else L - n_valid
            row = torch.cat([img[b], tok_emb[b, : lens[b]], suffix[b]], 0)  # [n_valid, D]
            rows.append((start, n_valid, row))
            attn[b, start : start + n_valid] = True
            prefix[b, start : start + n_img + lens[b]] = True
            cog_index[b] = start + n_valid - 1
        # One differentiable scatter (no in-place writes into a leaf).
        embeds = torch.stack([F.pad(row, (0, 0, start, L - start - n)) for (start, n, row) in rows], 0)
        # Positions count real tokens only, 1-indexed (PaliGemma); pads get 1 (masked out anyway).
        pos = torch.cumsum(attn.long(), 1).clamp(min=1)
        return embeds, attn, pos, prefix, cog_index

    def forward(self, images: torch.Tensor, instructions: list[str], proprio: torch.Tensor | None = None):
        return self.encode(images, instructions, proprio)

    def encode(
        self, images: torch.Tensor, instructions: list[str], proprio: torch.Tensor | None = None
    ) -> torch.Tensor:
        """z_t ``[B, D]`` (float32): the last hidden state at each row's cognition-token position."""
        use_amp = self.bf16 and self.device.type == "cuda"
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_amp):
            embeds, attn, pos, prefix, cog_index = self.build_inputs(images, list(instructions), proprio)
            hidden = self.adapter.forward_embeds(embeds, attn, pos, prefix)
        z = hidden[torch.arange(hidden.shape[0], device=hidden.device), cog_index]
        return z.float()


def _dev(module: nn.Module) -> torch.device:
    for p in module.parameters():
        return p.device
    return torch.device("cpu")


def build_vlm(
    name_or_path: str,
    state_dim: int | None = None,
    device=None,
    dtype=None,
    padding_side="right",
    bf16: bool = True,
    gradient_checkpointing: bool = False,
    load_weights: bool = True,
) -> VLMBackbone:
    """Convenience: ``VLMBackbone(build_adapter(...))``."""
    adapter = build_adapter(name_or_path, device=device, dtype=dtype, load_weights=load_weights)
    return VLMBackbone(
        adapter,
        state_dim=state_dim,
        padding_side=padding_side,
        bf16=bf16,
        gradient_checkpointing=gradient_checkpointing,
    )


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
