"""Exact parameter count of model.transformer.TransformerLM, for each arch."""
from __future__ import annotations

from model.config import ModelConfig


def parameter_breakdown(config: ModelConfig) -> dict[str, int]:
    """Parameters by part; the total is their sum. K = kv_heads·D/H is the key/value width (D without GQA).

    1. token embedding: V·D
    2. learned position embedding (positional 'learned' only): T·D; RoPE and 'none' have no parameters
    3. per block, L times: two norms, 2·D gains (RMSNorm) or 4·D gains and biases (gpt2's LayerNorm); W_Q, W_O
       2·D² and W_K, W_V 2·D·K; the FFN's matrices 2·D·F (W1, W2) or 3·D·F (llama's SwiGLU: W1, W3, W2);
       gpt2's biases 3·D + K (Q, K, V, O) and F + D (W1, W2)
    4. final norm: D, or 2·D with gpt2's bias
    5. LM head: D·V untied, 0 tied to the token embedding (gpt2)
    reference: N = 2·V·D + [T·D] + L·(4·D² + 2·D·F + 2·D) + D
    gpt2:      N = V·D + T·D + L·(4·D² + 2·D·F + 8·D + F + D) + 2·D   (GPT-2 XL: 1,557,611,200)
    llama:     N = 2·V·D + L·(2·D² + 2·D·K + 3·D·F + 2·D) + D          (Llama 2 7B: 6,738,415,616)
    """
    V, T, L, D, F = (config.vocab_size, config.context_length, config.num_layers, config.d_model, config.d_ff)
    K = config.kv_width
    gpt2, llama = config.arch == "gpt2", config.arch == "llama"
    norm = 2 * D if gpt2 else D
    biases = 3 * D + K + F + D if gpt2 else 0
    return {
        "embedding": V * D,
        "position_embedding": T * D if config.positional == "learned" else 0,
        "blocks": L * (2 * D * D + 2 * D * K + (3 if llama else 2) * D * F + 2 * norm + biases),
        "final_norm": norm,
        "lm_head": 0 if gpt2 else D * V,
    }


def parameter_count(config: ModelConfig) -> int:
    return sum(parameter_breakdown(config).values())


def shard_rows(rows: int, parts: int, index: int) -> int:
    """The rows part `index` of `parts` holds of a tensor of `rows` rows: torch.chunk's chunk of ⌈rows/parts⌉, the
    last parts fewer, or none (empty past the last one), as FSDP2 and DTensor's Shard placements cut a tensor."""
    chunk = -(-rows // parts)
    return min(chunk, max(0, rows - index * chunk))


def parameter_tensor_shapes(config: ModelConfig, tensor_parallel: int = 1, tp_rank: int = 0) -> list[tuple[int, int]]:
    """(rows, columns) of each parameter tensor in model.parameters() order, a vector as (n, 1): per block norm1,
    W_Q, W_K, W_V, W_O, norm2, W1, [W3], W2, each weight followed by its bias where the arch has biases (gpt2); a
    linear layer's weight is [out, in] (W_K and W_V [K, D], W1 [F, D], W2 [D, F]); the embeddings and the LM head
    [V, D], [T, D]. Rows are what FSDP2 shards (dim 0).

    With tensor parallelism (model.tensor_parallel, torchtitan's plan), the part "tp" rank `tp_rank` of
    `tensor_parallel` holds (shard_rows): the rows of the column-wise layers' weights and biases (W_Q, W_K, W_V, W1,
    W3), of the embeddings and the LM head; the columns of the row-wise layers' weights (W_O, W2); the norms and the
    row-wise layers' biases whole."""
    V, T, L, D, F = (config.vocab_size, config.context_length, config.num_layers, config.d_model, config.d_ff)
    K = config.kv_width
    gpt2 = config.arch == "gpt2"

    def part(n: int) -> int:
        return shard_rows(n, tensor_parallel, tp_rank)

    def column_wise(out: int, into: int) -> list[tuple[int, int]]:
        return [(part(out), into), (part(out), 1)] if gpt2 else [(part(out), into)]

    def row_wise(out: int, into: int) -> list[tuple[int, int]]:
        return [(out, part(into)), (out, 1)] if gpt2 else [(out, part(into))]

    norm = [(D, 1)] * (2 if gpt2 else 1)  # a gain, and gpt2's bias
    ffn = column_wise(F, D) + ([(part(F), D)] if config.arch == "llama" else []) + row_wise(D, F)
    block = norm + column_wise(D, D) + column_wise(K, D) * 2 + row_wise(D, D) + norm + ffn
    shapes = [(part(V), D)] + ([(part(T), D)] if config.positional == "learned" else [])
    return shapes + block * L + norm + ([] if gpt2 else [(part(V), D)])


def parameter_tensor_sizes(config: ModelConfig) -> list[int]:
    """numel of each parameter tensor in model.parameters() order (parameter_tensor_shapes)."""
    return [rows * columns for rows, columns in parameter_tensor_shapes(config)]


def parameter_tensor_count(config: ModelConfig):
    """How many parameter tensors (the optimizer's per-tensor bookkeeping scales with this; L may be symbolic):
    per block 8 weights (norm1, W_Q, W_K, W_V, W_O, norm2, W1, W2), llama's W3, gpt2's 8 biases; the token
    embedding, [the position embedding], the final norm (and its bias), the LM head unless tied:
    reference 3 + [1] + 8·L, gpt2 4 + 16·L, llama 3 + 9·L (len(parameter_tensor_sizes))."""
    gpt2 = config.arch == "gpt2"
    per_layer = 8 + (config.arch == "llama") + 8 * gpt2
    return 1 + (config.positional == "learned") + 1 + gpt2 + (not gpt2) + per_layer * config.num_layers
