"""CLIP's ResNet family in PyTorch, written so OpenAI's released state-dict keys load unchanged.

Vision side (the "modified ResNet" of Radford et al., 2021):
    stem:   three 3x3 convolutions (the first with stride 2) and a 2x2 average pool
    layer1..layer4: Bottleneck blocks; every stride-2 block downsamples with an average pool
            *before* its strided path ("anti-aliased" downsampling), never with a strided convolution
    head:   attention pool: the spatial mean token attends over [mean, grid] with learned positions

The output of layer4 (the input of the attention pool) holds the "neurons" studied by
Goh et al. (2021): `C = 32 * width` channels on an `S/32 x S/32` grid.

Text side: a causal Transformer over BPE ids, `ln_final`, then the features at the end-of-text
token (the highest id of each row) times `text_projection`.

Attention is written out with plain matrix products (not `nn.MultiheadAttention`) so the ONNX
graph stays small and the positional embedding and causal mask can be sliced to the real length L.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class ClipConfig:
    embed_dim: int
    image_resolution: int
    vision_layers: tuple[int, int, int, int]
    vision_width: int
    context_length: int
    vocab_size: int
    transformer_width: int
    transformer_heads: int
    transformer_layers: int

    @property
    def vision_heads(self) -> int:
        return self.vision_width * 32 // 64

    @property
    def neuron_channels(self) -> int:
        return self.vision_width * 32

    @property
    def neuron_grid(self) -> int:
        return self.image_resolution // 32

    def to_dict(self) -> dict:
        d = asdict(self)
        d["vision_layers"] = list(self.vision_layers)
        return d


# The configurations of OpenAI's released ResNet checkpoints.
RELEASED_CONFIGS: dict[str, ClipConfig] = {
    "RN50": ClipConfig(1024, 224, (3, 4, 6, 3), 64, 77, 49408, 512, 8, 12),
    "RN101": ClipConfig(512, 224, (3, 4, 23, 3), 64, 77, 49408, 512, 8, 12),
    "RN50x4": ClipConfig(640, 288, (4, 6, 10, 6), 80, 77, 49408, 640, 10, 12),
    "RN50x16": ClipConfig(768, 384, (6, 8, 18, 8), 96, 77, 49408, 768, 12, 12),
    "RN50x64": ClipConfig(1024, 448, (3, 15, 36, 10), 128, 77, 49408, 1024, 16, 12),
}


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.avgpool = nn.AvgPool2d(stride) if stride > 1 else nn.Identity()
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu3 = nn.ReLU(inplace=True)
        self.downsample = None
        if stride > 1 or inplanes != planes * self.expansion:
            self.downsample = nn.Sequential(
                OrderedDict(
                    [
                        ("-1", nn.AvgPool2d(stride)),
                        ("0", nn.Conv2d(inplanes, planes * self.expansion, 1, stride=1, bias=False)),
                        ("1", nn.BatchNorm2d(planes * self.expansion)),
                    ]
                )
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.avgpool(out)
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu3(out + identity)


class AttentionPool2d(nn.Module):
    """Attention of the spatial-mean token over [mean, grid positions]; returns the mean token."""

    def __init__(self, spatial_dim: int, embed_dim: int, num_heads: int, output_dim: int):
        super().__init__()
        self.positional_embedding = nn.Parameter(
            torch.randn(spatial_dim**2 + 1, embed_dim) / embed_dim**0.5
        )
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.c_proj = nn.Linear(embed_dim, output_dim)
        self.num_heads = num_heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[0], x.shape[1]
        x = x.flatten(start_dim=2).transpose(1, 2)  # [N, HW, C]
        x = torch.cat([x.mean(dim=1, keepdim=True), x], dim=1)  # [N, 1+HW, C]
        x = x + self.positional_embedding[None, :, :]
        head_dim = c // self.num_heads
        q = self.q_proj(x[:, :1]) * head_dim**-0.5  # [N, 1, C]
        k = self.k_proj(x)
        v = self.v_proj(x)
        q = q.reshape(n, 1, self.num_heads, head_dim).transpose(1, 2)  # [N, h, 1, d]
        k = k.reshape(n, -1, self.num_heads, head_dim).transpose(1, 2)  # [N, h, T, d]
        v = v.reshape(n, -1, self.num_heads, head_dim).transpose(1, 2)
        weights = torch.softmax(q @ k.transpose(-2, -1), dim=-1)  # [N, h, 1, T]
        pooled = (weights @ v).transpose(1, 2).reshape(n, c)
        return self.c_proj(pooled)


class ModifiedResNet(nn.Module):
    def __init__(self, layers, output_dim: int, heads: int, input_resolution: int, width: int):
        super().__init__()
        self.input_resolution = input_resolution
        self.conv1 = nn.Conv2d(3, width // 2, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width // 2)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(width // 2, width // 2, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width // 2)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(width // 2, width, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(width)
        self.relu3 = nn.ReLU(inplace=True)
        self.avgpool = nn.AvgPool2d(2)

        self._inplanes = width
        self.layer1 = self._make_layer(width, layers[0])
        self.layer2 = self._make_layer(width * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(width * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(width * 8, layers[3], stride=2)
        self.attnpool = AttentionPool2d(input_resolution // 32, width * 32, heads, output_dim)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        modules = [Bottleneck(self._inplanes, planes, stride)]
        self._inplanes = planes * Bottleneck.expansion
        modules += [Bottleneck(self._inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*modules)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """Pixels [N,3,S,S] -> neurons [N,C,S/32,S/32] (output of layer4's last Bottleneck)."""
        x = x.type(self.conv1.weight.dtype)
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.relu2(self.bn2(self.conv2(x)))
        x = self.relu3(self.bn3(self.conv3(x)))
        x = self.avgpool(x)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attnpool(self.trunk(x))


class LayerNorm(nn.LayerNorm):
    """LayerNorm computed in float32 whatever the storage type (as OpenAI's code does)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.type(torch.float32)).type(x.dtype)


class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class SelfAttention(nn.Module):
    """Multi-head self-attention with nn.MultiheadAttention's parameter names (in_proj_*, out_proj)."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        n, length, width = x.shape
        head_dim = width // self.heads
        q, k, v = F.linear(x, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        q = q.reshape(n, length, self.heads, head_dim).transpose(1, 2) * head_dim**-0.5
        k = k.reshape(n, length, self.heads, head_dim).transpose(1, 2)
        v = v.reshape(n, length, self.heads, head_dim).transpose(1, 2)
        weights = torch.softmax(q @ k.transpose(-2, -1) + mask, dim=-1)
        out = (weights @ v).transpose(1, 2).reshape(n, length, width)
        return self.out_proj(out)


class ResidualAttentionBlock(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.attn = SelfAttention(width, heads)
        self.ln_1 = LayerNorm(width)
        self.mlp = nn.Sequential(
            OrderedDict(
                [
                    ("c_fc", nn.Linear(width, width * 4)),
                    ("gelu", QuickGELU()),
                    ("c_proj", nn.Linear(width * 4, width)),
                ]
            )
        )
        self.ln_2 = LayerNorm(width)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), mask)
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int):
        super().__init__()
        self.width = width
        self.layers = layers
        self.resblocks = nn.ModuleList([ResidualAttentionBlock(width, heads) for _ in range(layers)])

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        for block in self.resblocks:
            x = block(x, mask)
        return x


class CLIP(nn.Module):
    def __init__(self, config: ClipConfig):
        super().__init__()
        self.config = config
        self.context_length = config.context_length
        self.visual = ModifiedResNet(
            layers=config.vision_layers,
            output_dim=config.embed_dim,
            heads=config.vision_heads,
            input_resolution=config.image_resolution,
            width=config.vision_width,
        )
        self.transformer = Transformer(
            config.transformer_width, config.transformer_layers, config.transformer_heads
        )
        self.vocab_size = config.vocab_size
        self.token_embedding = nn.Embedding(config.vocab_size, config.transformer_width)
        self.positional_embedding = nn.Parameter(torch.empty(config.context_length, config.transformer_width))
        self.ln_final = LayerNorm(config.transformer_width)
        self.text_projection = nn.Parameter(torch.empty(config.transformer_width, config.embed_dim))
        self.logit_scale = nn.Parameter(torch.ones([]) * torch.log(torch.tensor(1 / 0.07)))
        causal = torch.full((config.context_length, config.context_length), float("-inf")).triu(1)
        self.register_buffer("causal_mask", causal, persistent=False)
        self.initialize_parameters()

    def initialize_parameters(self) -> None:
        """OpenAI's initialisation (used for random-weight checkpoints and for training from scratch)."""
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        pool = self.visual.attnpool
        std = pool.c_proj.in_features**-0.5
        for proj in (pool.q_proj, pool.k_proj, pool.v_proj, pool.c_proj):
            nn.init.normal_(proj.weight, std=std)
        for stage in (self.visual.layer1, self.visual.layer2, self.visual.layer3, self.visual.layer4):
            for name, param in stage.named_parameters():
                if name.endswith("bn3.weight"):
                    nn.init.zeros_(param)
        width, layers = self.transformer.width, self.transformer.layers
        proj_std = width**-0.5 * (2 * layers) ** -0.5
        attn_std = width**-0.5
        fc_std = (2 * width) ** -0.5
        for block in self.transformer.resblocks:
            nn.init.normal_(block.attn.in_proj_weight, std=attn_std)
            nn.init.normal_(block.attn.out_proj.weight, std=proj_std)
            nn.init.normal_(block.mlp.c_fc.weight, std=fc_std)
            nn.init.normal_(block.mlp.c_proj.weight, std=proj_std)
        nn.init.normal_(self.text_projection, std=width**-0.5)

    @property
    def dtype(self) -> torch.dtype:
        return self.visual.conv1.weight.dtype

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.visual(pixels.type(self.dtype))

    def encode_text(self, ids: torch.Tensor) -> torch.Tensor:
        """ids [N,L], 1 <= L <= context length -> features at each row's highest id [N,D]."""
        length = ids.shape[1]
        x = self.token_embedding(ids).type(self.dtype) + self.positional_embedding[:length].type(self.dtype)
        x = self.transformer(x, self.causal_mask[:length, :length].type(self.dtype))
        x = self.ln_final(x).type(self.dtype)
        # The end-of-text token has the highest id of each row; ids < 2^24 are exact in float32.
        eot = ids.type(torch.float32).argmax(dim=-1)
        index = eot[:, None, None].expand(-1, 1, x.shape[-1])
        return torch.gather(x, 1, index).squeeze(1) @ self.text_projection

    def bilinear(self) -> torch.Tensor:
        """W = (c_proj.weight @ v_proj.weight)^T, shape [C, D]: logit ~ x_img^T W x_text."""
        pool = self.visual.attnpool
        w = pool.c_proj.weight.double() @ pool.v_proj.weight.double()
        return w.t().float()

    def forward(self, pixels: torch.Tensor, ids: torch.Tensor):
        image = self.encode_image(pixels)
        text = self.encode_text(ids)
        image = image / image.norm(dim=1, keepdim=True)
        text = text / text.norm(dim=1, keepdim=True)
        logits_per_image = self.logit_scale.exp() * image @ text.t()
        return logits_per_image, logits_per_image.t()
