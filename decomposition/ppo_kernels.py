"""The kernels of the batched PPO engine (decomposition.ppo): the learners' networks stacked, and
the operations that make an update cheap on a CPU. None changes anything but floating-point
rounding, and none lets a learner's numbers depend on the other learners in its batch.

- DistinctRows: the networks run once per distinct observation of a minibatch (ComboGrid has a
  few hundred observations; a minibatch of 512 rows holds about 160 distinct ones).
- StackedPolicies: the actor's and the critic's first layers are one layer, and every parameter
  is a view of one tensor (L, P), so clipping and Adam see one tensor.
- SparseFirstLayer with NonzeroInputs: on 0/1 observations the first layer adds the weight rows
  of the inputs that are 1 instead of multiplying by all 59.
- RowChunkedLinear: weight gradients summed over fixed chunks of rows, so that padding rows add
  exact zeros.
- fast_tanh: tanh from a sigmoid, twice as fast here.
- StackedAdam: torch's fused Adam kernel, one pass over the parameters.
"""

import copy
from functools import partial
from itertools import groupby

import torch
import torch.nn.functional as F


ROW_CHUNK = 32
"""Distinct observations are padded to a multiple of this many rows, and weight gradients are summed
over rows this many at a time (see RowChunkedLinear)."""


class RowChunkedLinear(torch.autograd.Function):
    """The batched layer baddbmm(bias, x, weight^T), whose weight and bias gradients are summed over
    rows in chunks of ROW_CHUNK, one chunk after another.

    The learners share one row count, the largest number of distinct observations among them, so a
    learner carries padding rows whose gradient is zero. A matrix product's rounding depends on the
    length it sums over; summing fixed-size chunks in order makes the padding add exact zeros, and a
    learner's gradient the same whatever its neighbours. x (L, M, D) with M a multiple of ROW_CHUNK.
    """

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        grad_x = torch.bmm(grad, weight) if ctx.needs_input_grad[0] else None
        learners, _, outputs = grad.shape
        x_chunks = x.reshape(-1, ROW_CHUNK, x.shape[-1])
        grad_chunks = grad.reshape(-1, ROW_CHUNK, outputs)
        bias_parts = bias_chunk_sums(grad)
        # the same sums either way; here x^T grad is several times faster for wide layers, grad^T x
        # for the actor's three outputs (and the chunks are summed in the product's own layout)
        if outputs < 8:
            weight_parts = torch.bmm(grad_chunks.transpose(1, 2), x_chunks).view(learners, -1, outputs, x.shape[-1])
            return grad_x, *chunk_sums(weight_parts, bias_parts)
        weight_parts = torch.bmm(x_chunks.transpose(1, 2), grad_chunks).view(learners, -1, x.shape[-1], outputs)
        grad_weight, grad_bias = chunk_sums(weight_parts, bias_parts)
        return grad_x, grad_weight.transpose(1, 2), grad_bias


def bias_chunk_sums(grad):
    """A batched layer's bias gradient per chunk of ROW_CHUNK rows, (L, chunks, O), from grad (L, M, O)."""
    learners, rows, outputs = grad.shape
    return grad.reshape(-1, ROW_CHUNK, outputs).sum(1).view(learners, rows // ROW_CHUNK, outputs)


def chunk_sums(*parts):
    """Each of parts (L, chunks, ...) summed over its chunks one after another: padding chunks of
    zeros then change nothing (torch's sum over that axis can group the terms by its length)."""
    sums = [p[:, 0].clone() for p in parts]
    for k in range(1, parts[0].shape[1]):
        for total, p in zip(sums, parts):
            total += p[:, k]
    return sums


def observation_keys(observations, binary):
    """One integer per observation (L, N, D) that two observations share exactly when they are equal,
    for observations that are 0/1 vectors (binary); each row its own key otherwise. Up to 60 inputs
    the key is the vector read as a binary number; above, the rank of its 20-input groups in
    lexicographic order (a key's order among a learner's rows does not depend on the other learners)."""
    learners, rows, size = observations.shape
    if not binary:
        return torch.arange(rows).expand(learners, rows)
    # sums of at most 20 distinct powers of two: float32 holds every partial sum exactly
    count = -(-size // 20)
    powers = torch.zeros(max(count, 3), size)
    powers[torch.arange(size) // 20, torch.arange(size)] = 2.0 ** (torch.arange(size) % 20)
    groups = F.linear(observations.reshape(-1, size), powers).long()  # twice as fast here as x @ powers.T
    if count <= 3:
        return ((groups[:, 2] << 40) + (groups[:, 1] << 20) + groups[:, 0]).view(learners, rows)
    return torch.unique(groups, dim=0, return_inverse=True)[1].view(learners, rows)


def padded(count):
    """The row count that holds `count` distinct observations: a multiple of ROW_CHUNK, at least one chunk."""
    return max(1, -(-count // ROW_CHUNK)) * ROW_CHUNK


class DistinctRows:
    """Rows of observations stored once per distinct observation: `observations` (L, M, D), each
    learner's distinct ones in the order of their keys, padded to a multiple of ROW_CHUNK rows with
    copies of its first; `inverse` (L, N), the row of `observations` each row equals; for 0/1
    observations, `nonzero` (NonzeroInputs), where their ones are.

    A policy's outputs on a row are its outputs on that row's distinct observation, so the network
    runs on M rows rather than N: about a third as many in PPO's minibatches here.
    """

    def __init__(self, observations, inverse, nonzero=None):
        self._observations, self.inverse, self.nonzero = observations, inverse, nonzero

    @property
    def observations(self):
        """(L, M, D); a minibatch's are gathered when first asked for (SparseFirstLayer reads `nonzero`)."""
        if callable(self._observations):
            self._observations = self._observations()
        return self._observations

    @property
    def inputs(self):
        """What the first layer reads: `nonzero` for 0/1 observations, else the observations."""
        return self.observations if self.nonzero is None else self.nonzero

    @classmethod
    def of(cls, observations, binary):
        """The distinct rows among observations (L, N, D), 0/1 vectors if binary (observation_keys)."""
        keys = observation_keys(observations, binary)
        sorted_keys, order = keys.sort(dim=1, stable=True)
        starts = torch.ones_like(keys, dtype=torch.bool)
        starts[:, 1:] = sorted_keys[:, 1:] != sorted_keys[:, :-1]
        slots = starts.cumsum(1) - 1  # the distinct observation at each sorted position
        inverse = torch.empty_like(slots).scatter_(1, order, slots)
        first_row = torch.zeros(keys.shape[0], padded(int(slots[:, -1].max()) + 1), dtype=torch.long)
        first_row.scatter_(1, slots, order)
        distinct = gather_rows(observations, first_row)
        return cls(distinct, inverse, NonzeroInputs.of(distinct) if binary else None)

    def select(self, rows):
        """The distinct rows among rows (L, n) of these rows (indices into N)."""
        ids = self.inverse.gather(1, rows)
        present = torch.zeros(self.observations.shape[:2], dtype=torch.bool).scatter_(1, ids, True)
        slots = present.cumsum(1) - 1
        size = padded(int(slots[:, -1].max()) + 1)
        # each present distinct observation goes to its slot; the absent ones to a column dropped after
        target = torch.where(present, slots, size)
        source = torch.zeros(len(ids), size + 1, dtype=torch.long)
        source.scatter_(1, target, torch.arange(present.shape[1]).expand_as(target))
        source = source[:, :size]
        nonzero = None if self.nonzero is None else self.nonzero.select(source, present, slots)
        return DistinctRows(partial(gather_rows, self.observations, source), slots.gather(1, ids), nonzero)

    def spread(self, outputs):
        """Outputs (L, M, ...) per distinct observation -> outputs (L, N, ...) per row."""
        return gather_rows(outputs, self.inverse)


def gather_rows(values, rows):
    """values (L, N, ...) and row indices (L, n) -> values[l, rows[l, j], ...] (L, n, ...)."""
    if values.requires_grad:
        index = rows.view(*rows.shape, *[1] * (values.dim() - 2))
        return values.gather(1, index.expand(-1, -1, *values.shape[2:]))
    # as whole rows of one table: several times faster than gather for observations
    learners, size = values.shape[:2]
    flat_rows = (rows + size * torch.arange(learners).unsqueeze(1)).flatten()
    return values.reshape(learners * size, -1).index_select(0, flat_rows).view(*rows.shape, *values.shape[2:])


class NonzeroInputs:
    """Where the ones of 0/1 observations (L, M, D) are, for SparseFirstLayer: a ComboGrid observation
    has 2 to 4 ones in 59, so a first layer that adds the weights of those inputs does a small part
    of a matrix product's work.

    `lists` (L, M, k): each row's inputs that are 1, ascending, padded with -1. For the weight
    gradient, one entry per one, sorted by learner, input and row: `offsets` (L * D,), where each
    (learner, input)'s entries start; `rows` (E,), the row l * M + m each entry's gradient comes
    from; `weights` (E,), 1, or 0 for an entry whose row a minibatch left out.
    """

    def __init__(self, lists, offsets, rows, weights):
        self.lists, self.offsets, self.rows, self.weights = lists, offsets, rows, weights

    @classmethod
    def of(cls, observations):
        learners, rows, size = observations.shape
        ones = observations.reshape(learners * rows, size).nonzero()  # (row, input), by row then input
        counts = torch.bincount(ones[:, 0], minlength=learners * rows)
        position = torch.arange(len(ones)) - (counts.cumsum(0) - counts)[ones[:, 0]]
        lists = torch.full((learners * rows, max(1, int(counts.max()))), -1)
        lists[ones[:, 0], position] = ones[:, 1]
        learner, column, row = observations.transpose(1, 2).nonzero().T  # by learner, input, row
        per_input = torch.bincount(learner * size + column, minlength=learners * size)
        return cls(lists.view(learners, rows, -1), per_input.cumsum(0) - per_input, learner * rows + row,
                   torch.ones(len(row)))

    def select(self, source, present, slots):
        """These rows' NonzeroInputs at rows `source` (L, m); present (L, M) marks the rows selected and
        slots (L, M) gives their new row. Every entry stays, with weight 0 if its row is left out."""
        # a left-out entry keeps a valid row (its weight is 0): the slot of the row before it, or 0
        new_rows = slots.clamp_min(0) + source.shape[1] * torch.arange(len(slots)).unsqueeze(1)
        return NonzeroInputs(gather_rows(self.lists, source), self.offsets, new_rows.view(-1).index_select(0, self.rows),
                    present.view(-1).float().index_select(0, self.rows))


class SparseFirstLayer(torch.autograd.Function):
    """The first layer on 0/1 observations given as NonzeroInputs, without a matrix product: a row's output is
    the sum of the weight rows of its inputs that are 1 (weight is stored input-major, (L, D, O)),
    then the bias, by one embedding_bag over `table`, the policies' parameters viewed as rows of O.
    The terms are added in the order the product adds them, so the outputs are the product's, bit
    for bit (test). The weight gradient sums, for each learner and input, the gradients of the rows
    where that input is 1, in row order; padding rows are not among them, so a learner's gradient
    does not depend on its neighbours. The bias gradient is summed by chunks, as in RowChunkedLinear."""

    @staticmethod
    def forward(ctx, nonzero, table, weight, bias, table_rows):
        # weight (L, D, O) and bias (L, O) are the parameters `table` holds, named for autograd
        learners, size, outputs = weight.shape
        lists, rows = nonzero.lists, nonzero.lists.shape[1]
        # learner l's parameters are table rows l * table_rows ...: weight rows, the bias row, and zeros last
        base = (torch.arange(learners) * table_rows).view(learners, 1, 1)
        bias_row = torch.full_like(lists[..., :1], size)
        indices = torch.cat([torch.where(lists >= 0, lists, table_rows - 1), bias_row], -1)
        sums = F.embedding_bag((indices + base).view(learners * rows, -1), table, mode="sum")
        ctx.nonzero = nonzero
        return sums.view(learners, rows, outputs)

    @staticmethod
    def backward(ctx, grad):
        nonzero = ctx.nonzero
        learners, rows, outputs = grad.shape
        grad_weight = F.embedding_bag(nonzero.rows, grad.reshape(learners * rows, outputs), nonzero.offsets, mode="sum",
                                      per_sample_weights=nonzero.weights)
        return None, None, grad_weight.view(learners, -1, outputs), *chunk_sums(bias_chunk_sums(grad)), None


def fast_tanh(x):
    """tanh(x) computed as 2 sigmoid(2x) - 1: within 2e-7 of torch.tanh, and about twice as fast on
    this CPU, where torch.tanh was a fifth of an update."""
    return torch.sigmoid(x * 2).mul_(2).sub_(1)


class Tanh(torch.autograd.Function):
    """fast_tanh, whose backward is tanh's: 1 - tanh(x)^2."""

    @staticmethod
    def forward(ctx, x):
        y = fast_tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        return torch.ops.aten.tanh_backward(grad, ctx.saved_tensors[0])


class FirstHiddenLayers(torch.autograd.Function):
    """(ReLU of the first `hidden` columns of z, Tanh of the others): the actor's and the critic's
    first hidden layers from their one product; the backward writes both gradients into one tensor."""

    @staticmethod
    def forward(ctx, z, hidden):
        actor, critic = torch.relu(z[..., :hidden]), fast_tanh(z[..., hidden:])
        ctx.save_for_backward(actor, critic)
        return actor, critic

    @staticmethod
    def backward(ctx, grad_actor, grad_critic):
        actor, critic = ctx.saved_tensors
        hidden = actor.shape[-1]
        grad = actor.new_empty(*actor.shape[:-1], hidden + critic.shape[-1])
        torch.ops.aten.threshold_backward.grad_input(grad_actor, actor, 0, grad_input=grad[..., :hidden])
        torch.ops.aten.tanh_backward.grad_input(grad_critic, critic, grad_input=grad[..., hidden:])
        return grad, None


class StackedPolicies:
    """The actor and critic of L learners, stacked: each parameter has shape (L, *shape).

    The actor's and the critic's first layers read the same observations, so they are stored as
    one layer `first` of W = H + C outputs (the actor's H, then the critic's C) and computed as one
    product. Its weight is stored input-major, (L, D, W). All parameters are views of one tensor
    `flat` (L, P), so that clipping and Adam run on one tensor; P is a whole number of rows of W,
    the last of them zeros, and a multiple of 16 (StackedAdam), so that `table` (L * table_rows, W)
    views flat as the rows SparseFirstLayer reads: first.weight's D rows, then first.bias.
    """

    def __init__(self, agents):
        states = [agent.state_dict() for agent in agents]
        self.names, self.hidden = list(states[0]), len(states[0]["actor.0.bias"])
        self.width = self.hidden + len(states[0]["critic.0.bias"])
        stacked = [self._merged(s) for s in states]
        self.shapes = {name: value.shape for name, value in stacked[0].items()}
        used = sum(shape.numel() for shape in self.shapes.values())
        self.table_rows = -(-used // self.width) + 1
        while self.table_rows * self.width % 16:
            self.table_rows += 1
        flat = torch.zeros(len(states), self.table_rows * self.width)  # Adam keeps the padding at 0
        flat[:, :used] = torch.stack([torch.cat([value.flatten() for value in s.values()]) for s in stacked])
        self._set_flat(flat)

    @staticmethod
    def _merged(state):
        first = {"first.weight": torch.cat([state["actor.0.weight"], state["critic.0.weight"]]).T,
                 "first.bias": torch.cat([state["actor.0.bias"], state["critic.0.bias"]])}
        return {**first, **{name: v for name, v in state.items() if name.split(".")[1] != "0"}}

    def _set_flat(self, flat):
        self.flat, self.params, start = flat, {}, 0
        self.table = flat.view(-1, self.width)
        for name, shape in self.shapes.items():
            size = shape.numel()
            self.params[name] = flat[:, start:start + size].view(len(flat), *shape).requires_grad_()
            start += size
        self.padding = flat.shape[1] - start

    @staticmethod
    def _linear(x, weight, bias):
        if torch.is_grad_enabled():
            return RowChunkedLinear.apply(x, weight, bias)
        return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))

    def _layer(self, name, x):
        return self._linear(x, self.params[f"{name}.weight"], self.params[f"{name}.bias"])

    def _rows_of(self, part):
        """The rows of `first` that are the actor's (part 0) or the critic's (part 1) first layer."""
        return slice(0, self.hidden) if part == 0 else slice(self.hidden, self.width)

    def _first_layer(self, x, part):
        """The actor's (part 0) or the critic's (part 1) first layer alone, for acting and the rollout's
        values (no gradient): its columns of `first` read where they lie."""
        rows = self._rows_of(part)
        weight, bias = self.params["first.weight"][:, :, rows], self.params["first.bias"][:, rows]
        return torch.baddbmm(bias.unsqueeze(1), x, weight)

    def _value_head(self, critic_hidden):
        hidden = Tanh.apply(self._layer("critic.2", critic_hidden))
        # a product and a sum, not a matrix product: batched products with one output column take
        # a path whose rounding depends on the batch size, and a learner must not see its neighbours
        return (hidden * self.params["critic.4.weight"]).sum(-1) + self.params["critic.4.bias"]

    def logits(self, x):
        """x (L, B, D) -> action logits (L, B, A), for acting (the update uses logits_and_values)."""
        return self._layer("actor.2", self._first_layer(x, 0).relu_())

    def value(self, x):
        """x (L, B, D) -> state values (L, B), for the rollout (the update uses logits_and_values)."""
        return self._value_head(Tanh.apply(self._first_layer(x, 1)))

    def logits_and_values(self, x):
        """Both, with one product for the two first layers; x (L, B, D), or NonzeroInputs (SparseFirstLayer)."""
        weight, bias = self.params["first.weight"], self.params["first.bias"]
        if isinstance(x, NonzeroInputs):
            first = SparseFirstLayer.apply(x, self.table, weight, bias, self.table_rows)
        else:
            first = self._linear(x, weight.transpose(1, 2), bias)
        actor_hidden, critic_hidden = FirstHiddenLayers.apply(first, self.hidden)
        return self._layer("actor.2", actor_hidden), self._value_head(critic_hidden)

    def flat_grad(self):
        """The gradients of all parameters as one tensor (L, P), laid out as `flat`."""
        grads = [p.grad.flatten(1) for p in self.params.values()]
        return torch.cat([*grads, self.flat.new_zeros(len(self.flat), self.padding)], 1)

    def keep(self, learners):
        self._set_flat(self.flat[learners])

    def subset(self, learners):
        """A copy of these learners' policies (indices into the current ones), to act for them alone."""
        part = copy.copy(self)
        part._set_flat(self.flat[learners].detach())
        return part

    def state_dict(self, learner):
        """Learner `learner`'s PPOAgent state_dict."""
        state = {name: p[learner].detach().clone() for name, p in self.params.items() if not name.startswith("first")}
        for part, network in enumerate(("actor", "critic")):
            rows = self._rows_of(part)
            state[f"{network}.0.weight"] = self.params["first.weight"][learner, :, rows].T.detach().clone()
            state[f"{network}.0.bias"] = self.params["first.bias"][learner, rows].detach().clone()
        return {name: state[name] for name in self.names}


class StackedAdam:
    """Adam (torch.optim.Adam's fused update) on stacked parameters (L, P), one learning rate per learner.

    The kernel updates each element on its own, in vector lanes except for a tensor's scalar tail, and
    hands its threads pieces of whole 16-element units: with P a multiple of 16, no tail is left, so a
    learner's update is the same whichever tensor holds its row. Consecutive learners with the same
    learning rate are therefore updated as one tensor, in one call."""

    def __init__(self, params, eps, betas=(0.9, 0.999)):
        assert params.shape[1] % 16 == 0, "rows of a multiple of 16 elements (see the class docstring)"
        self.eps, self.betas, self.steps = eps, betas, torch.tensor(0.0)  # every learner steps at every update
        self.first, self.second = torch.zeros_like(params), torch.zeros_like(params)

    def keep(self, learners):
        self.first, self.second = self.first[learners], self.second[learners]

    @torch.no_grad()
    def step(self, params, grad, learning_rates):
        self.steps += 1
        start = 0
        for rate, learners in groupby(learning_rates.tolist()):  # runs of consecutive equal rates
            end = start + len(list(learners))
            run = [t[start:end].view(-1) for t in (params, grad, self.first, self.second)]
            # torch.optim.Adam(fused=True)'s kernel: one pass over the parameters instead of ten
            torch._fused_adam_(*([t] for t in run), [], [self.steps], lr=rate, beta1=self.betas[0],
                               beta2=self.betas[1], weight_decay=0.0, eps=self.eps, amsgrad=False, maximize=False)
            start = end
