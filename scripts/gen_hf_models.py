"""The torch modules of scripts/gen_hf.py: re-implementations of transformers' *eager* forward
code for each encoder family (BERT / MiniLM / RoBERTa / XLM-RoBERTa, ELECTRA, ALBERT, DistilBERT),
with the same parameter and buffer names as transformers (a state_dict from the Hub would load),
their heads (HFModel: base, seq-cls, token-cls, qa) and FAMILY, the per-family constants of the Hub
configs. gen_hf.py builds the config, initialises, prunes and exports them (see its docstring).
"""
import math

import torch
import torch.nn as nn

# Per-family constants of the Hub configs
FAMILY = {
    "bert": dict(prefix="bert", eps=1e-12, pad_id=0, type_vocab=2, act="gelu", pooler=True),
    "minilm": dict(prefix="bert", eps=1e-12, pad_id=0, type_vocab=2, act="gelu", pooler=True),
    "distilbert": dict(prefix="distilbert", eps=1e-12, pad_id=0, type_vocab=0, act="gelu", pooler=False),
    "roberta": dict(prefix="roberta", eps=1e-5, pad_id=1, type_vocab=1, act="gelu", pooler=True),
    "xlm-roberta": dict(prefix="roberta", eps=1e-5, pad_id=1, type_vocab=1, act="gelu", pooler=True),
    "albert": dict(prefix="albert", eps=1e-12, pad_id=0, type_vocab=2, act="gelu_new", pooler=True),
    "electra": dict(prefix="electra", eps=1e-12, pad_id=0, type_vocab=2, act="gelu", pooler=False),
}


# ----------------------------------------------------------------------------- activations
def gelu_new(x):  # transformers NewGELUActivation ("gelu_new"; ALBERT)
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class Act(nn.Module):
    def __init__(self, name):
        super().__init__()
        self.name = name

    def forward(self, x):
        if self.name == "gelu":  # GELUActivation -> F.gelu (erf)
            return nn.functional.gelu(x)
        return gelu_new(x)


# ----------------------------------------------------------------------------- BERT-like encoder
class BertEmbeddings(nn.Module):
    """BertEmbeddings / AlbertEmbeddings / ElectraEmbeddings (dim = embedding_size); with
    roberta=True RobertaEmbeddings (position ids from input_ids, padding_idx)."""

    def __init__(self, c, roberta=False):
        super().__init__()
        e = c["embedding_size"]
        self.roberta = roberta
        self.padding_idx = c["pad_id"]
        self.word_embeddings = nn.Embedding(c["vocab"], e, padding_idx=c["pad_id"])
        if roberta:
            self.position_embeddings = nn.Embedding(c["max_position_embeddings"], e, padding_idx=c["pad_id"])
        else:
            self.position_embeddings = nn.Embedding(c["max_position_embeddings"], e)
        self.token_type_embeddings = nn.Embedding(c["type_vocab"], e)
        self.LayerNorm = nn.LayerNorm(e, eps=c["eps"])
        self.dropout = nn.Dropout(0.1)
        self.register_buffer("position_ids", torch.arange(c["max_position_embeddings"]).expand((1, -1)),
                             persistent=False)
        self.register_buffer("token_type_ids", torch.zeros((1, c["max_position_embeddings"]), dtype=torch.long),
                             persistent=False)

    def forward(self, input_ids, token_type_ids=None):
        input_shape = input_ids.size()
        seq_length = input_shape[1]
        if self.roberta:
            position_ids = create_position_ids_from_input_ids(input_ids, self.padding_idx, 0)
        else:
            position_ids = self.position_ids[:, 0:seq_length]
        if token_type_ids is None:
            buffered = self.token_type_ids[:, :seq_length]
            token_type_ids = buffered.expand(input_shape[0], seq_length)
        inputs_embeds = self.word_embeddings(input_ids)
        embeddings = inputs_embeds + self.token_type_embeddings(token_type_ids)
        embeddings += self.position_embeddings(position_ids)
        embeddings = self.LayerNorm(embeddings)
        return self.dropout(embeddings)


def create_position_ids_from_input_ids(input_ids, padding_idx, past_key_values_length=0):
    # RoBERTa: positions count non-pad tokens from padding_idx + 1; pads get padding_idx
    mask = input_ids.ne(padding_idx).int()
    incremental = (torch.cumsum(mask, dim=1).type_as(mask) + past_key_values_length) * mask
    return incremental.long() + padding_idx


class BertSelfAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.num_attention_heads = c["heads"]
        self.attention_head_size = c["hidden"] // c["heads"]
        self.all_head_size = self.num_attention_heads * self.attention_head_size
        self.query = nn.Linear(c["hidden"], self.all_head_size)
        self.key = nn.Linear(c["hidden"], self.all_head_size)
        self.value = nn.Linear(c["hidden"], self.all_head_size)
        self.dropout = nn.Dropout(0.1)

    def transpose_for_scores(self, x):
        new_shape = x.size()[:-1] + (self.num_attention_heads, self.attention_head_size)
        return x.view(new_shape).permute(0, 2, 1, 3)

    def forward(self, hidden_states, attention_mask):
        mixed_query = self.query(hidden_states)
        key_layer = self.transpose_for_scores(self.key(hidden_states))
        value_layer = self.transpose_for_scores(self.value(hidden_states))
        query_layer = self.transpose_for_scores(mixed_query)
        scores = torch.matmul(query_layer, key_layer.transpose(-1, -2))
        scores = scores / math.sqrt(self.attention_head_size)
        scores = scores + attention_mask
        probs = self.dropout(nn.functional.softmax(scores, dim=-1))
        context = torch.matmul(probs, value_layer).permute(0, 2, 1, 3).contiguous()
        new_shape = context.size()[:-2] + (self.all_head_size,)
        return context.view(new_shape)


class BertSelfOutput(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c["hidden"], c["hidden"])
        self.LayerNorm = nn.LayerNorm(c["hidden"], eps=c["eps"])
        self.dropout = nn.Dropout(0.1)

    def forward(self, hidden_states, input_tensor):
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + input_tensor)


class BertAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.self = BertSelfAttention(c)
        self.output = BertSelfOutput(c)

    def forward(self, hidden_states, attention_mask):
        return self.output(self.self(hidden_states, attention_mask), hidden_states)


class BertIntermediate(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c["hidden"], c["ffn"])
        self.intermediate_act_fn = Act(c["act"])

    def forward(self, x):
        return self.intermediate_act_fn(self.dense(x))


class BertOutput(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c["ffn"], c["hidden"])
        self.LayerNorm = nn.LayerNorm(c["hidden"], eps=c["eps"])
        self.dropout = nn.Dropout(0.1)

    def forward(self, hidden_states, input_tensor):
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + input_tensor)


class BertLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.attention = BertAttention(c)
        self.intermediate = BertIntermediate(c)
        self.output = BertOutput(c)

    def forward(self, hidden_states, attention_mask):
        attention_output = self.attention(hidden_states, attention_mask)
        return self.output(self.intermediate(attention_output), attention_output)


class BertEncoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layer = nn.ModuleList([BertLayer(c) for _ in range(c["layers"])])

    def forward(self, hidden_states, attention_mask):
        for layer in self.layer:
            hidden_states = layer(hidden_states, attention_mask)
        return hidden_states


class BertPooler(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c["hidden"], c["hidden"])
        self.activation = nn.Tanh()

    def forward(self, hidden_states):
        return self.activation(self.dense(hidden_states[:, 0]))


def extended_attention_mask(attention_mask, c, albert=False):
    """ModuleUtilsMixin.get_extended_attention_mask (AlbertModel inlines the same with unsqueeze)."""
    dtype = torch.float32
    if albert:
        ext = attention_mask.unsqueeze(1).unsqueeze(2)
    else:
        ext = attention_mask[:, None, None, :]
    ext = ext.to(dtype=dtype)
    if c["mask_value"] == "-10000":
        return (1.0 - ext) * -10000.0
    return (1.0 - ext) * torch.finfo(dtype).min


class BertModel(nn.Module):
    """BertModel (bert, minilm) and RobertaModel / XLMRobertaModel (roberta=True)."""

    def __init__(self, c, add_pooling_layer=True, roberta=False):
        super().__init__()
        self.c = c
        self.embeddings = BertEmbeddings(c, roberta=roberta)
        self.encoder = BertEncoder(c)
        self.pooler = BertPooler(c) if add_pooling_layer else None

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        ext = extended_attention_mask(attention_mask, self.c)
        sequence_output = self.encoder(self.embeddings(input_ids, token_type_ids), ext)
        out = dict(last_hidden_state=sequence_output)
        if self.pooler is not None:
            out["pooler_output"] = self.pooler(sequence_output)
        return out


class ElectraModel(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.embeddings = BertEmbeddings(c)
        if c["embedding_size"] != c["hidden"]:
            self.embeddings_project = nn.Linear(c["embedding_size"], c["hidden"])
        self.encoder = BertEncoder(c)

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        ext = extended_attention_mask(attention_mask, self.c)
        h = self.embeddings(input_ids, token_type_ids)
        if hasattr(self, "embeddings_project"):
            h = self.embeddings_project(h)
        return dict(last_hidden_state=self.encoder(h, ext))


# ----------------------------------------------------------------------------- ALBERT
class AlbertAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.num_attention_heads = c["heads"]
        self.attention_head_size = c["hidden"] // c["heads"]
        self.all_head_size = self.num_attention_heads * self.attention_head_size
        self.query = nn.Linear(c["hidden"], self.all_head_size)
        self.key = nn.Linear(c["hidden"], self.all_head_size)
        self.value = nn.Linear(c["hidden"], self.all_head_size)
        self.attention_dropout = nn.Dropout(0.0)
        self.output_dropout = nn.Dropout(0.0)
        self.dense = nn.Linear(c["hidden"], c["hidden"])
        self.LayerNorm = nn.LayerNorm(c["hidden"], eps=c["eps"])

    def transpose_for_scores(self, x):
        new_shape = x.size()[:-1] + (self.num_attention_heads, self.attention_head_size)
        return x.view(new_shape).permute(0, 2, 1, 3)

    def forward(self, hidden_states, attention_mask):
        query_layer = self.transpose_for_scores(self.query(hidden_states))
        key_layer = self.transpose_for_scores(self.key(hidden_states))
        value_layer = self.transpose_for_scores(self.value(hidden_states))
        scores = torch.matmul(query_layer, key_layer.transpose(-1, -2))
        scores = scores / math.sqrt(self.attention_head_size)
        scores = scores + attention_mask
        probs = self.attention_dropout(nn.functional.softmax(scores, dim=-1))
        context = torch.matmul(probs, value_layer).transpose(2, 1).flatten(2)
        projected = self.output_dropout(self.dense(context))
        return self.LayerNorm(hidden_states + projected)


class AlbertLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.full_layer_layer_norm = nn.LayerNorm(c["hidden"], eps=c["eps"])
        self.attention = AlbertAttention(c)
        self.ffn = nn.Linear(c["hidden"], c["ffn"])
        self.ffn_output = nn.Linear(c["ffn"], c["hidden"])
        self.activation = Act(c["act"])
        self.dropout = nn.Dropout(0.0)

    def forward(self, hidden_states, attention_mask):
        attention_output = self.attention(hidden_states, attention_mask)
        ffn_output = self.ffn_output(self.activation(self.ffn(attention_output)))
        return self.full_layer_layer_norm(ffn_output + attention_output)


class AlbertLayerGroup(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.albert_layers = nn.ModuleList([AlbertLayer(c)])  # inner_group_num 1

    def forward(self, hidden_states, attention_mask):
        for layer in self.albert_layers:
            hidden_states = layer(hidden_states, attention_mask)
        return hidden_states


class AlbertTransformer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.num_hidden_layers = c["layers"]
        self.embedding_hidden_mapping_in = nn.Linear(c["embedding_size"], c["hidden"])
        self.albert_layer_groups = nn.ModuleList([AlbertLayerGroup(c)])  # num_hidden_groups 1

    def forward(self, hidden_states, attention_mask):
        hidden_states = self.embedding_hidden_mapping_in(hidden_states)
        for i in range(self.num_hidden_layers):
            group_idx = int(i / (self.num_hidden_layers / 1))
            hidden_states = self.albert_layer_groups[group_idx](hidden_states, attention_mask)
        return hidden_states


class AlbertModel(nn.Module):
    def __init__(self, c, add_pooling_layer=True):
        super().__init__()
        self.c = c
        self.embeddings = BertEmbeddings(c)
        self.encoder = AlbertTransformer(c)
        if add_pooling_layer:
            self.pooler = nn.Linear(c["hidden"], c["hidden"])
            self.pooler_activation = nn.Tanh()
        else:
            self.pooler = None
            self.pooler_activation = None

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        ext = extended_attention_mask(attention_mask, self.c, albert=True)
        sequence_output = self.encoder(self.embeddings(input_ids, token_type_ids), ext)
        out = dict(last_hidden_state=sequence_output)
        if self.pooler is not None:
            out["pooler_output"] = self.pooler_activation(self.pooler(sequence_output[:, 0]))
        return out


# ----------------------------------------------------------------------------- DistilBERT
class DistilEmbeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.word_embeddings = nn.Embedding(c["vocab"], c["hidden"], padding_idx=c["pad_id"])
        self.position_embeddings = nn.Embedding(c["max_position_embeddings"], c["hidden"])
        self.LayerNorm = nn.LayerNorm(c["hidden"], eps=1e-12)
        self.dropout = nn.Dropout(0.1)
        self.register_buffer("position_ids", torch.arange(c["max_position_embeddings"]).expand((1, -1)),
                             persistent=False)

    def forward(self, input_ids):
        input_embeds = self.word_embeddings(input_ids)
        seq_length = input_embeds.size(1)
        position_ids = self.position_ids[:, :seq_length]
        embeddings = input_embeds + self.position_embeddings(position_ids)
        return self.dropout(self.LayerNorm(embeddings))


class MultiHeadSelfAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.n_heads = c["heads"]
        self.dim = c["hidden"]
        self.mask_value = c["mask_value"]
        self.dropout = nn.Dropout(0.1)
        self.q_lin = nn.Linear(c["hidden"], c["hidden"])
        self.k_lin = nn.Linear(c["hidden"], c["hidden"])
        self.v_lin = nn.Linear(c["hidden"], c["hidden"])
        self.out_lin = nn.Linear(c["hidden"], c["hidden"])

    def forward(self, query, key, value, mask):
        bs, q_length, dim = query.size()
        k_length = key.size(1)
        dim_per_head = self.dim // self.n_heads
        mask_reshp = (bs, 1, 1, k_length)

        def shape(x):
            return x.view(bs, -1, self.n_heads, dim_per_head).transpose(1, 2)

        def unshape(x):
            return x.transpose(1, 2).contiguous().view(bs, -1, self.n_heads * dim_per_head)

        q = shape(self.q_lin(query))
        k = shape(self.k_lin(key))
        v = shape(self.v_lin(value))
        q = q / math.sqrt(dim_per_head)
        scores = torch.matmul(q, k.transpose(2, 3))
        mask = (mask == 0).view(mask_reshp).expand_as(scores)
        if self.mask_value == "-inf":  # transformers < 4.22
            scores = scores.masked_fill(mask, -float("inf"))
        else:
            scores = scores.masked_fill(mask, torch.tensor(torch.finfo(scores.dtype).min))
        weights = self.dropout(nn.functional.softmax(scores, dim=-1))
        context = unshape(torch.matmul(weights, v))
        return self.out_lin(context)


class FFN(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dropout = nn.Dropout(0.1)
        self.lin1 = nn.Linear(c["hidden"], c["ffn"])
        self.lin2 = nn.Linear(c["ffn"], c["hidden"])
        self.activation = Act(c["act"])

    def forward(self, x):
        return self.dropout(self.lin2(self.activation(self.lin1(x))))


class TransformerBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.attention = MultiHeadSelfAttention(c)
        self.sa_layer_norm = nn.LayerNorm(c["hidden"], eps=1e-12)
        self.ffn = FFN(c)
        self.output_layer_norm = nn.LayerNorm(c["hidden"], eps=1e-12)

    def forward(self, x, attn_mask):
        sa_output = self.sa_layer_norm(self.attention(x, x, x, attn_mask) + x)
        return self.output_layer_norm(self.ffn(sa_output) + sa_output)


class DistilTransformer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layer = nn.ModuleList([TransformerBlock(c) for _ in range(c["layers"])])

    def forward(self, x, attn_mask):
        for layer in self.layer:
            x = layer(x, attn_mask)
        return x


class DistilBertModel(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embeddings = DistilEmbeddings(c)
        self.transformer = DistilTransformer(c)

    def forward(self, input_ids, attention_mask):
        return dict(last_hidden_state=self.transformer(self.embeddings(input_ids), attention_mask))


# ----------------------------------------------------------------------------- heads
class ClassificationHead(nn.Module):
    """RobertaClassificationHead (tanh) / ElectraClassificationHead (gelu): features[:, 0, :]."""

    def __init__(self, c, act):
        super().__init__()
        self.dense = nn.Linear(c["hidden"], c["hidden"])
        self.dropout = nn.Dropout(0.1)
        self.out_proj = nn.Linear(c["hidden"], c["num_labels"])
        self.act = act

    def forward(self, features):
        x = self.dropout(features[:, 0, :])
        x = self.dense(x)
        x = torch.tanh(x) if self.act == "tanh" else nn.functional.gelu(x)
        return self.out_proj(self.dropout(x))


def make_base(c, pooler):
    f = c["family"]
    if f == "distilbert":
        return DistilBertModel(c)
    if f == "albert":
        return AlbertModel(c, add_pooling_layer=pooler)
    if f == "electra":
        return ElectraModel(c)
    return BertModel(c, add_pooling_layer=pooler, roberta=f in ("roberta", "xlm-roberta"))


class HFModel(nn.Module):
    """<Family>Model / <Family>ForSequenceClassification / ForTokenClassification /
    ForQuestionAnswering: the base model sits under the family's base_model_prefix."""

    def __init__(self, c):
        super().__init__()
        self.family, self.head, self.prefix = c["family"], c["head"], c["prefix"]
        f, h = self.family, self.head
        # which heads build their base model with the pooler
        pooler = FAMILY[f]["pooler"] and (h == "base" or (h == "seq-cls" and f in ("bert", "minilm", "albert")))
        setattr(self, self.prefix, make_base(c, pooler))
        self.dropout = nn.Dropout(0.1)
        if h == "seq-cls":
            if f == "distilbert":
                self.pre_classifier = nn.Linear(c["hidden"], c["hidden"])
                self.classifier = nn.Linear(c["hidden"], c["num_labels"])
            elif f in ("roberta", "xlm-roberta"):
                self.classifier = ClassificationHead(c, "tanh")
            elif f == "electra":
                self.classifier = ClassificationHead(c, "gelu")
            else:
                self.classifier = nn.Linear(c["hidden"], c["num_labels"])
        elif h == "token-cls":
            self.classifier = nn.Linear(c["hidden"], c["num_labels"])
        elif h == "qa":
            self.qa_outputs = nn.Linear(c["hidden"], 2)

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        base = getattr(self, self.prefix)
        if self.family == "distilbert":
            out = base(input_ids, attention_mask)
        else:
            out = base(input_ids, attention_mask, token_type_ids)
        h, f = self.head, self.family
        if h == "base":
            return out
        seq = out["last_hidden_state"]
        if h == "seq-cls":
            if f == "distilbert":
                pooled = nn.ReLU()(self.pre_classifier(seq[:, 0]))
                logits = self.classifier(self.dropout(pooled))
            elif f in ("roberta", "xlm-roberta", "electra"):
                logits = self.classifier(seq)
            else:
                logits = self.classifier(self.dropout(out["pooler_output"]))
            return dict(logits=logits)
        if h == "token-cls":
            return dict(logits=self.classifier(self.dropout(seq)))
        if f == "distilbert":
            seq = self.dropout(seq)
        logits = self.qa_outputs(seq)
        start_logits, end_logits = logits.split(1, dim=-1)
        return dict(start_logits=start_logits.squeeze(-1).contiguous(),
                    end_logits=end_logits.squeeze(-1).contiguous())
