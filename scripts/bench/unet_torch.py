# PyTorch reference for `npm run bench`: diffusers' UNet2DConditionModel (the subset the project supports:
# CrossAttnDownBlock2D / DownBlock2D, UNetMidBlock2DCrossAttn, CrossAttnUpBlock2D / UpBlock2D, GEGLU feed-forward)
# written against plain torch, because Debian ships python3-torch but not diffusers. Built from the same config dict
# as the TypeScript model so both sides do the same work. Layouts and parameter names follow diffusers.
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def timestep_features(timesteps, dim, flip_sin_to_cos=True, freq_shift=0):
    half = dim // 2
    exponent = -math.log(10000) * torch.arange(half, dtype=torch.float32) / (half - freq_shift)
    angles = timesteps[:, None].float() * torch.exp(exponent)[None, :]
    emb = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)
    return torch.cat([emb[:, half:], emb[:, :half]], dim=-1) if flip_sin_to_cos else emb


class TimestepEmbedding(nn.Module):
    def __init__(self, in_channels, dim):
        super().__init__()
        self.linear_1 = nn.Linear(in_channels, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, x):
        return self.linear_2(F.silu(self.linear_1(x)))


class ResnetBlock2D(nn.Module):
    def __init__(self, in_channels, out_channels, temb_channels, groups, eps):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_channels, eps=eps)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb_channels, out_channels)
        self.norm2 = nn.GroupNorm(groups, out_channels, eps=eps)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.conv_shortcut(x) if self.conv_shortcut is not None else x) + h


class Attention(nn.Module):
    """diffusers AttnProcessor on torch < 2: baddbmm scores, softmax, bmm."""

    def __init__(self, query_dim, context_dim, heads, dim_head):
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.scale = dim_head**-0.5
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim, inner, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(inner, query_dim)])

    def split(self, t):
        b, n, c = t.shape
        return t.reshape(b, n, self.heads, c // self.heads).permute(0, 2, 1, 3).reshape(b * self.heads, n, c // self.heads)

    def forward(self, x, context=None):
        b, n, _ = x.shape
        context = x if context is None else context
        q, k, v = self.split(self.to_q(x)), self.split(self.to_k(context)), self.split(self.to_v(context))
        scores = torch.baddbmm(torch.empty(q.shape[0], n, k.shape[1], dtype=q.dtype), q, k.transpose(-1, -2), beta=0, alpha=self.scale)
        out = torch.bmm(scores.softmax(dim=-1), v)
        out = out.reshape(b, self.heads, n, -1).permute(0, 2, 1, 3).reshape(b, n, -1)
        return self.to_out[0](out)


class GEGLU(nn.Module):
    def __init__(self, dim, inner):
        super().__init__()
        self.proj = nn.Linear(dim, inner * 2)

    def forward(self, x):
        hidden, gate = self.proj(x).chunk(2, dim=-1)
        return hidden * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim, mult=4):
        super().__init__()
        self.net = nn.ModuleList([GEGLU(dim, dim * mult), nn.Dropout(0.0), nn.Linear(dim * mult, dim)])

    def forward(self, x):
        for module in self.net:
            x = module(x)
        return x


class BasicTransformerBlock(nn.Module):
    def __init__(self, dim, heads, dim_head, context_dim):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, dim, heads, dim_head)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = Attention(dim, context_dim, heads, dim_head)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)

    def forward(self, x, context):
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), context) + x
        return self.ff(self.norm3(x)) + x


class Transformer2DModel(nn.Module):
    def __init__(self, heads, dim_head, channels, layers, groups, context_dim, linear_projection):
        super().__init__()
        inner = heads * dim_head
        self.linear_projection = linear_projection
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, inner) if linear_projection else nn.Conv2d(channels, inner, 1)
        self.transformer_blocks = nn.ModuleList([BasicTransformerBlock(inner, heads, dim_head, context_dim) for _ in range(layers)])
        self.proj_out = nn.Linear(inner, channels) if linear_projection else nn.Conv2d(inner, channels, 1)

    def forward(self, x, context):
        b, c, h, w = x.shape
        hidden = self.norm(x)
        if self.linear_projection:
            hidden = self.proj_in(hidden.permute(0, 2, 3, 1).reshape(b, h * w, c))
        else:
            hidden = self.proj_in(hidden)
            hidden = hidden.permute(0, 2, 3, 1).reshape(b, h * w, hidden.shape[1])
        for block in self.transformer_blocks:
            hidden = block(hidden, context)
        if self.linear_projection:
            hidden = self.proj_out(hidden).reshape(b, h, w, c).permute(0, 3, 1, 2)
        else:
            hidden = self.proj_out(hidden.reshape(b, h, w, -1).permute(0, 3, 1, 2))
        return hidden + x


class DownBlock(nn.Module):
    def __init__(self, cross, in_channels, out_channels, o):
        super().__init__()
        self.resnets = nn.ModuleList(
            [ResnetBlock2D(in_channels if i == 0 else out_channels, out_channels, o["temb"], o["groups"], o["eps"]) for i in range(o["layers"])]
        )
        if cross:
            self.attentions = nn.ModuleList(
                [Transformer2DModel(o["heads"], out_channels // o["heads"], out_channels, 1, o["groups"], o["context_dim"], o["linear"]) for _ in range(o["layers"])]
            )
        self.cross = cross
        self.downsamplers = nn.ModuleList([nn.Conv2d(out_channels, out_channels, 3, stride=2, padding=1)]) if o["sampler"] else None

    def forward(self, h, temb, context):
        skips = []
        for i, resnet in enumerate(self.resnets):
            h = resnet(h, temb)
            if self.cross:
                h = self.attentions[i](h, context)
            skips.append(h)
        if self.downsamplers is not None:
            h = self.downsamplers[0](h)
            skips.append(h)
        return h, skips


class UpBlock(nn.Module):
    def __init__(self, cross, in_channels, prev_channels, out_channels, o):
        super().__init__()
        layers = o["layers"]
        self.resnets = nn.ModuleList()
        for i in range(layers):
            skip = in_channels if i == layers - 1 else out_channels
            res_in = prev_channels if i == 0 else out_channels
            self.resnets.append(ResnetBlock2D(res_in + skip, out_channels, o["temb"], o["groups"], o["eps"]))
        if cross:
            self.attentions = nn.ModuleList(
                [Transformer2DModel(o["heads"], out_channels // o["heads"], out_channels, 1, o["groups"], o["context_dim"], o["linear"]) for _ in range(layers)]
            )
        self.cross = cross
        self.upsamplers = nn.ModuleList([nn.Conv2d(out_channels, out_channels, 3, padding=1)]) if o["sampler"] else None

    def forward(self, h, skips, temb, context):
        for i, resnet in enumerate(self.resnets):
            h = resnet(torch.cat([h, skips.pop()], dim=1), temb)
            if self.cross:
                h = self.attentions[i](h, context)
        if self.upsamplers is not None:
            h = self.upsamplers[0](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return h


class MidBlock(nn.Module):
    def __init__(self, channels, o):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(channels, channels, o["temb"], o["groups"], o["eps"]) for _ in range(2)])
        self.attentions = nn.ModuleList([Transformer2DModel(o["heads"], channels // o["heads"], channels, 1, o["groups"], o["context_dim"], o["linear"])])

    def forward(self, h, temb, context):
        h = self.resnets[0](h, temb)
        return self.resnets[1](self.attentions[0](h, context), temb)


class UNet2DConditionModel(nn.Module):
    def __init__(self, config):
        super().__init__()
        blocks = config["block_out_channels"]
        count = len(blocks)
        heads = config.get("num_attention_heads") or config.get("attention_head_dim", 8)
        heads = heads if isinstance(heads, list) else [heads] * count
        layers = config.get("layers_per_block", 2)
        groups = config["norm_num_groups"]
        eps = config.get("norm_eps", 1e-5)
        temb = blocks[0] * 4
        common = dict(temb=temb, groups=groups, eps=eps, context_dim=config["cross_attention_dim"], linear=config.get("use_linear_projection", False))
        self.flip_sin_to_cos = config.get("flip_sin_to_cos", True)
        self.freq_shift = config.get("freq_shift", 0)
        self.conv_in = nn.Conv2d(config["in_channels"], blocks[0], 3, padding=1)
        self.time_embedding = TimestepEmbedding(blocks[0], temb)
        self.down_blocks = nn.ModuleList()
        out = blocks[0]
        for i, kind in enumerate(config["down_block_types"]):
            prev, out = out, blocks[i]
            o = dict(common, layers=layers, heads=heads[i], sampler=i < count - 1)
            self.down_blocks.append(DownBlock(kind == "CrossAttnDownBlock2D", prev, out, o))
        self.mid_block = MidBlock(blocks[-1], dict(common, heads=heads[-1]))
        self.up_blocks = nn.ModuleList()
        rev, rev_heads = list(reversed(blocks)), list(reversed(heads))
        out = rev[0]
        for i, kind in enumerate(config["up_block_types"]):
            prev, out = out, rev[i]
            o = dict(common, layers=layers + 1, heads=rev_heads[i], sampler=i < count - 1)
            self.up_blocks.append(UpBlock(kind == "CrossAttnUpBlock2D", rev[min(i + 1, count - 1)], prev, out, o))
        self.conv_norm_out = nn.GroupNorm(groups, blocks[0], eps=eps)
        self.conv_out = nn.Conv2d(blocks[0], config["out_channels"], 3, padding=1)

    def forward(self, sample, timesteps, context):
        features = timestep_features(timesteps, self.conv_in.out_channels, self.flip_sin_to_cos, self.freq_shift)
        temb = self.time_embedding(features)
        h = self.conv_in(sample)
        skips = [h]
        for block in self.down_blocks:
            h, block_skips = block(h, temb, context)
            skips.extend(block_skips)
        h = self.mid_block(h, temb, context)
        for block in self.up_blocks:
            taken = skips[-len(block.resnets):]
            del skips[-len(block.resnets):]
            h = block(h, taken, temb, context)
        return self.conv_out(F.silu(self.conv_norm_out(h)))
