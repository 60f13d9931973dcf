"""The fast path of main.py: every mask of a run learned as one batched computation.

main.train_masks learns one mask the way the assignment describes it. Here all masks (seeds x
combos x networks) train together: their losses are independent and Adam is element-wise, so
this is the same computation, only batched. tests/test_reference.py checks that both give the
same masks. Two shortcuts make a step cheap:
- with neuron masks only, the hidden pre-activations Z do not depend on the mask, so the masked
  logits are linear in the mask (StackedActors.mask_to_logits): one small matrix product;
- with input masks, only the inputs that the training data ever sets (27 of the 59) enter the
  product with W1, and the loss has its gradient written out (InputMaskedNetworks): a few passes
  over the data instead of autograd's dozen.
"""

from dataclasses import dataclass

import numpy as np
import torch

from decomposition.script import NON_NEGATIVE, POSITIVE, Range, Settings, keep_freed_memory
from ppo_agent import masked_hidden


@dataclass
class MaskSettings(Settings):
    """How fit_masks learns a batch of masks."""
    mask_learning_rate: float = 0.001
    """Adam learning rate of the mask parameters"""
    mask_learning_steps: int = 2000
    """gradient steps per mask"""
    input_penalty: float = 0.005
    """with input masks: loss added per kept input feature, so the smallest fitting function wins"""
    log_every: int = 500
    """gradient steps between two progress lines (0: none)"""

    RANGES = {"mask_learning_rate": POSITIVE, "mask_learning_steps": POSITIVE, "input_penalty": Range(0, 10),
              "log_every": NON_NEGATIVE}

    def fault(self):
        if self.mask_learning_rate > 10 and self.mask_learning_rate != float("inf"):
            return f"--mask-learning-rate {self.mask_learning_rate} is out of range: at most 10 (the default is 0.001)"
        return super().fault()


class Adam:
    """torch.optim.Adam's update (default betas and eps, no weight decay), written out.

    Constructing torch.optim.Adam imports torch._dynamo, about 1.3 s here: longer than all the
    mask training. tests/test_masks.py checks that this takes the same steps as torch's.
    """

    def __init__(self, parameters, lr, betas=(0.9, 0.999), eps=1e-8):
        self.parameters, self.lr, self.betas, self.eps = list(parameters), lr, betas, eps
        self.first = [torch.zeros_like(p) for p in self.parameters]
        self.second = [torch.zeros_like(p) for p in self.parameters]
        self.steps = 0

    def zero_grad(self):
        for p in self.parameters:
            p.grad = None

    @torch.no_grad()
    def step(self):
        self.steps += 1
        beta1, beta2 = self.betas
        step_size = self.lr / (1 - beta1 ** self.steps)
        correction2_sqrt = (1 - beta2 ** self.steps) ** 0.5
        for p, first, second in zip(self.parameters, self.first, self.second):
            first.lerp_(p.grad, 1 - beta1)
            second.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
            p.addcdiv_(first, (second.sqrt() / correction2_sqrt).add_(self.eps), value=-step_size)


class StackedActors:
    """The actors of several agents stacked, to run many masked copies of all of them at once.

    Shapes: A agents, D inputs, H hidden neurons, O actions; `...` is any batch of masks.
    """

    def __init__(self, agents):
        first = [agent.actor[0] for agent in agents]
        second = [agent.actor[2] for agent in agents]
        with torch.no_grad():
            self.w1 = torch.stack([layer.weight.T for layer in first])         # (A, D, H)
            self.b1 = torch.stack([layer.bias for layer in first])[:, None]    # (A, 1, H)
            self.w2 = torch.stack([layer.weight.T for layer in second])        # (A, H, O)
            self.b2 = torch.stack([layer.bias for layer in second])[:, None]   # (A, 1, O)

    def pre_activations(self, observations, input_mask=None, fill=0.0):
        """Z of every network: observations (..., A or 1, N, D) -> (..., A, N, H).

        input_mask (..., A, D) keeps a feature (1) or replaces it by `fill` (0): with `fill`
        the feature's mean over the training data (broadcastable to (..., A, D)), the function
        no longer depends on the feature but still sees a typical value of it.
        """
        if input_mask is not None:
            keep = input_mask.unsqueeze(-2)
            observations = observations * keep + torch.as_tensor(fill).unsqueeze(-2) * (1 - keep)
        return observations @ self.w1 + self.b1

    def logits(self, pre_activations, neuron_mask):
        """Output of every network: Z (..., A, N, H) with neuron_mask (..., A, 3, H) -> (..., A, N, O)."""
        return masked_hidden(pre_activations, neuron_mask.unsqueeze(-3)) @ self.w2 + self.b2

    def mask_to_logits(self, pre_activations):
        """For fixed Z (C, A, N, H), the matrix P (C, A, 2H, N * O) with
        logits = [mask row 1, mask row 2] @ P + b2: with Z fixed, the logits are linear in the
        mask, so a mask-training step needs one small matrix product instead of the network."""
        z_and_relu = torch.cat([pre_activations, torch.relu(pre_activations)], dim=-1)  # (C, A, N, 2H)
        w2_twice = torch.cat([self.w2, self.w2], dim=-2)                                 # (A, 2H, O)
        per_neuron = z_and_relu.unsqueeze(-1) * w2_twice.unsqueeze(-3)                  # (C, A, N, 2H, O)
        return per_neuron.transpose(-3, -2).flatten(-2)


def stack_trajectories(trajectories):
    """Training sets as padded tensors: observations (C, N, D), actions (C, N), and weights (C, N)
    that average each set's loss over its own pairs (0 on padding)."""
    size = max(t.get_length() for t in trajectories)
    obs_size = len(trajectories[0].get_state_sequence()[0])
    observations = torch.zeros(len(trajectories), size, obs_size)
    actions = torch.zeros(len(trajectories), size, dtype=torch.long)
    weights = torch.zeros(len(trajectories), size)
    for c, trajectory in enumerate(trajectories):
        n = trajectory.get_length()
        observations[c, :n] = torch.as_tensor(np.array(trajectory.get_state_sequence()))
        actions[c, :n] = torch.tensor(trajectory.get_actions())
        weights[c, :n] = 1.0 / n
    return observations, actions, weights


def input_fills(observations, weights, kind):
    """What a dropped input becomes, per training set (C, D): its mean over the set (observations
    (C, N, D) weighted by weights (C, N)) for kind "mean", else 0."""
    means = (observations * weights[..., None]).sum(1)
    return means if kind == "mean" else torch.zeros_like(means)


def one_hot_of_largest(probs):
    """One-hot of the largest entry along dim -2 (the mask's states), the first one on a tie: the
    forward of the straight-through estimator (decomposition.extraction.STESoftmax)."""
    # max().indices picks the first maximum like argmax, and is several times faster on CPU here
    return torch.zeros_like(probs).scatter_(-2, probs.max(dim=-2, keepdim=True).indices, 1.0)


class InputMaskedNetworks:
    """The loss of every mask under input and neuron masks, with its gradient written out.

    For input masks, Z = ((x - fill) * keep) @ W1 + (fill @ W1 + b1): a kept input contributes
    its value, a dropped one its fill. Inputs that no training observation sets and whose fill is
    0 contribute nothing either way, so only the `used` ones (27 of the 59) enter the product.
    The hidden layer is Z * gate with gate = m1 + m2 * [Z > 0] (row 1 active, row 2 program),
    which equals ppo_agent.masked_hidden for one-hot masks. Written out, a step costs a few passes
    over the (A, C, S, N, H) tensors where autograd's graph takes a dozen, and every product runs
    on long rows (tests/test_masks.py checks the gradients against autograd's).

    observations (C, N, D), actions and weights (C, N): the training sets; input_fill (C, D);
    seeds: the number S of masks per (combo, network).
    """

    def __init__(self, actors, observations, actions, weights, input_fill, seeds):
        self.used = observations.ne(0).flatten(0, 1).any(0) | input_fill.ne(0).any(0)    # (D,)
        self.centred = (observations - input_fill[:, None, :])[..., self.used]           # (C, N, U)
        self.w1_used = actors.w1[:, self.used]                                          # (A, U, H)
        self.base = (input_fill @ actors.w1 + actors.b1)[:, :, None, None]               # (A, C, 1, 1, H)
        self.w2, self.b2 = actors.w2, actors.b2
        # the action and weight of every row of the (A, C * S * N) layout below
        networks, (combos, examples) = len(actors.w2), actions.shape
        self.targets = actions[None, :, None].expand(networks, combos, seeds, examples).reshape(networks, 1, -1)
        self.pair_weights = weights[None, :, None].expand(networks, combos, seeds, examples).reshape(networks, 1, -1)

    def loss(self, keep, neuron_mask):
        """Each mask's weighted cross-entropy (S, C, A) on its training set. keep (S, C, A, D):
        the input masks; neuron_mask (S, C, A, 3, H), one-hot per neuron. Keeps what
        `gradients` needs."""
        keep, neuron_mask = keep[..., self.used].permute(2, 1, 0, 3), neuron_mask.permute(2, 1, 0, 3, 4)
        networks, combos, seeds, used = keep.shape                                 # network first below
        hidden_size, examples = self.w2.shape[1], self.centred.shape[1]
        masked_inputs = (keep.unsqueeze(-2) * self.centred[None, :, None]).reshape(networks, -1, used)
        z_and_relu = torch.empty(2, networks, combos, seeds, examples, hidden_size)  # both for the gradient
        z, relu = z_and_relu
        torch.bmm(masked_inputs, self.w1_used, out=z.view(networks, -1, hidden_size))
        z.add_(self.base)
        torch.clamp_min(z, 0.0, out=relu)
        gate = torch.addcmul(neuron_mask[..., 1:2, :], neuron_mask[..., 2:3, :], torch.sign(relu))
        hidden = (z * gate).reshape(networks, -1, hidden_size)                     # (A, C * S * N, H)
        # transposed, logits (A, O, C * S * N): the product and the softmax over 3 actions run on
        # long rows instead of rows of 3, several times faster
        logits = torch.baddbmm(self.b2.transpose(1, 2), self.w2.transpose(1, 2), hidden.transpose(1, 2))
        self.log_probs = torch.log_softmax(logits, dim=1)
        nll = -self.log_probs.gather(1, self.targets)                              # (A, 1, C * S * N)
        self.z_and_relu, self.gate = z_and_relu, gate
        return (nll * self.pair_weights).view(networks, combos, seeds, -1).sum(-1).permute(2, 1, 0)

    def gradients(self):
        """The gradients of the summed loss of the last `loss` call: with respect to keep (S, C, A, D)
        and to the neuron mask (S, C, A, 3, H)."""
        networks, combos, seeds = self.z_and_relu.shape[1:4]
        hidden_size = self.w2.shape[1]
        # d cross-entropy / d logits = probabilities - one-hot of the action, times the pair's weight
        grad_logits = self.log_probs.exp().scatter_add_(
            1, self.targets, torch.full_like(self.targets, -1, dtype=self.log_probs.dtype))
        grad_logits *= self.pair_weights
        grad_hidden = torch.bmm(grad_logits.transpose(1, 2), self.w2.transpose(1, 2)).view(self.gate.shape)
        grad_z = (grad_hidden * self.gate).reshape(networks, -1, hidden_size)
        grad_inputs = torch.bmm(grad_z, self.w1_used.transpose(1, 2))                   # (A, C * S * N, U)
        grad_used = (grad_inputs.view(networks, combos, seeds, -1, self.centred.shape[-1])
                     * self.centred[None, :, None]).sum(-2)
        grad_keep = torch.zeros(seeds, combos, networks, len(self.used))
        grad_keep[..., self.used] = grad_used.permute(2, 1, 0, 3)
        grad_rows_1_2 = (grad_hidden * self.z_and_relu).sum(-2)                    # (2, A, C, S, H)
        grad_mask = torch.stack([torch.zeros_like(grad_rows_1_2[0]), *grad_rows_1_2], dim=-2)
        return grad_keep, grad_mask.permute(2, 1, 0, 3, 4)


def fit_masks(actors, observations, actions, weights, neuron_theta, input_theta, settings, set_names,
              discretize, input_fill=None, log=None):
    """Adam on a batch of masks; every mask has its own independent loss.

    observations (C, N, D), actions and weights (C, N): one training set per row C, named by
    set_names. neuron_theta (S, C, A, 3, H) and input_theta (S, C, A, 2, D) or None: S seeds,
    A networks; input_fill (C, D) replaces the dropped inputs; discretize maps logits to one-hot
    masks (softmax and the straight-through estimator). Returns the best masks seen (the lowest
    objective per mask), the initial and best cross-entropy (S, C, A), and the loss curves
    (steps, S, C, A). settings is a MaskSettings: every settings.log_every steps, log(step, steps,
    loss, set_names) reports the loss (S, C, A), by default one line per step with each training
    set's mean (log_losses).
    """
    settings.checked()
    keep_freed_memory()
    log = log_losses if log is None else log
    if input_theta is None:
        objective = NeuronMaskObjective(actors, observations, actions, weights, neuron_theta, discretize)
    else:
        objective = InputMaskObjective(actors, observations, actions, weights, input_fill, neuron_theta,
                                       input_theta, settings.input_penalty)
    neuron_theta, input_theta = objective.neuron_theta, objective.input_theta
    optimizer = Adam(objective.parameters, lr=settings.mask_learning_rate)
    best_objective = torch.full(neuron_theta.shape[:-2], float("inf"))
    best_loss = torch.zeros(neuron_theta.shape[:-2])
    best_neuron = neuron_theta.detach().clone()
    best_input = None if input_theta is None else input_theta.detach().clone()
    curves = []
    for step in range(settings.mask_learning_steps):
        loss, penalty, set_gradients = objective.evaluate()
        with torch.no_grad():  # keep, per mask, the one that produced the lowest objective
            curves.append(loss)
            total = loss + penalty
            better = total < best_objective
            best_objective = torch.where(better, total, best_objective)
            best_loss = torch.where(better, loss, best_loss)
            best_neuron = torch.where(better[..., None, None], neuron_theta, best_neuron)
            if input_theta is not None:
                best_input = torch.where(better[..., None, None], input_theta, best_input)
        if settings.log_every and step % settings.log_every == 0:
            log(step, settings.mask_learning_steps, loss, set_names)
        optimizer.zero_grad()
        set_gradients()
        optimizer.step()
    curves = torch.stack(curves)
    best_input_mask = None if best_input is None else discretize(best_input)[..., 1, :]
    return discretize(best_neuron), best_input_mask, curves[0], best_loss, curves


def fit_masks_by_size(actors, observations, actions, weights, neuron_theta, input_theta, settings, discretize,
                      input_fill=None, log=None, parts=4):
    """fit_masks on training sets of very different sizes: the sets sorted by size and fit in `parts`
    batches, each padded only to its own largest set (one batch where the largest set is at most
    twice the median). The same masks as one batch (padding weighs
    nothing), at a fraction of the cost. Returns the best neuron masks (S, C, A, 3, H), input masks
    (S, C, A, D) or None, and best cross-entropy (S, C, A); `log` sees the steps of all batches in turn."""
    sizes = weights.gt(0).sum(1)
    if sizes.max() <= 2 * sizes.median():      # little padding to save: one batch, one step loop
        parts = 1
    neuron_masks, best_loss = torch.zeros_like(neuron_theta), torch.zeros(neuron_theta.shape[:3])
    input_masks = None if input_theta is None else torch.zeros(*input_theta.shape[:3], input_theta.shape[-1])
    steps, batches = settings.mask_learning_steps, torch.tensor_split(torch.argsort(sizes, stable=True), parts)
    # progress in steps of the whole work: a batch's steps cost in proportion to its sets x pairs
    costs = np.array([len(rows) * int(sizes[rows].max()) if len(rows) else 0 for rows in batches], dtype=float)
    shares = np.concatenate([[0], np.cumsum(costs)]) / max(costs.sum(), 1) * parts * steps
    for part, rows in enumerate(batches):
        if not len(rows):
            continue
        n = int(sizes[rows].max())
        part_log = None if log is None else (
            lambda step, _, loss, names, done=shares[part], scale=(shares[part + 1] - shares[part]) / steps:
            log(int(done + step * scale), parts * steps, loss, names))
        masks, inputs, _, loss, _ = fit_masks(
            actors, observations[rows, :n], actions[rows, :n], weights[rows, :n],
            torch.nn.Parameter(neuron_theta[:, rows].detach().clone()),
            None if input_theta is None else torch.nn.Parameter(input_theta[:, rows].detach().clone()),
            settings, None, discretize, None if input_fill is None else input_fill[rows], part_log)
        neuron_masks[:, rows], best_loss[:, rows] = masks.detach(), loss.detach()
        if inputs is not None:
            input_masks[:, rows] = inputs.detach()
    return neuron_masks, input_masks, best_loss


class NeuronMaskObjective:
    """The cross-entropy of neuron masks alone, by autograd through the linear-in-mask shortcut
    (StackedActors.mask_to_logits)."""

    def __init__(self, actors, observations, actions, weights, neuron_theta, discretize):
        self.neuron_theta, self.input_theta, self.parameters = neuron_theta, None, [neuron_theta]
        seeds, combos, networks = neuron_theta.shape[:3]
        self.targets = actions[:, None, :, None].expand(seeds, combos, networks, -1, 1)
        self.mask_to_logits = actors.mask_to_logits(actors.pre_activations(observations.unsqueeze(1)))
        self.b2, self.weights, self.discretize = actors.b2, weights, discretize

    def evaluate(self):
        """The cross-entropy (S, C, A) of every mask on its training set, no penalty, and a function
        that sets the parameters' gradients."""
        neuron_mask = self.discretize(self.neuron_theta)
        rows_1_2 = neuron_mask[..., 1:, :].flatten(-2).permute(1, 2, 0, 3)      # (C, A, S, 2H)
        logits = (rows_1_2 @ self.mask_to_logits).permute(2, 0, 1, 3)            # (S, C, A, N * O)
        logits = logits.reshape(*logits.shape[:3], -1, self.b2.shape[-1]) + self.b2
        nll = -torch.log_softmax(logits, dim=-1).gather(-1, self.targets).squeeze(-1)  # (S, C, A, N)
        loss = (nll * self.weights[:, None, :]).sum(-1)
        return loss.detach(), 0.0, lambda: loss.sum().backward()


class InputMaskObjective:
    """The cross-entropy of input and neuron masks plus the penalty per kept input, with the
    gradients written out (InputMaskedNetworks) in the order autograd takes: the network's, then
    the estimator's (it passes the mask's gradient on to the probabilities), then the softmax's own
    backward. Both parameters are views of one tensor, so that Adam updates them in one pass."""

    def __init__(self, actors, observations, actions, weights, input_fill, neuron_theta, input_theta, penalty):
        self.parameters = [torch.cat([neuron_theta.detach().flatten(), input_theta.detach().flatten()])]
        self.neuron_theta, self.input_theta = (part.view(theta.shape) for part, theta in zip(
            self.parameters[0].split([neuron_theta.numel(), input_theta.numel()]), (neuron_theta, input_theta)))
        self.networks = InputMaskedNetworks(actors, observations, actions, weights, input_fill, len(neuron_theta))
        self.penalty = penalty

    def evaluate(self):
        """The cross-entropy (S, C, A), the penalty of the kept inputs, and a function that sets the
        parameters' gradients."""
        with torch.no_grad():
            neuron_probs, input_probs = torch.softmax(self.neuron_theta, dim=-2), torch.softmax(self.input_theta, dim=-2)
            keep = (input_probs[..., 1, :] > input_probs[..., 0, :]).float()  # = one_hot_of_largest's row 1
            loss = self.networks.loss(keep, one_hot_of_largest(neuron_probs))

        def set_gradients():
            grad_keep, grad_neuron_mask = self.networks.gradients()
            grad_input_mask = torch.zeros_like(input_probs)
            grad_input_mask[..., 1, :] = grad_keep + self.penalty
            self.parameters[0].grad = torch.cat([
                torch.ops.aten._softmax_backward_data(grad, probs, -2, probs.dtype).flatten()
                for grad, probs in ((grad_neuron_mask, neuron_probs), (grad_input_mask, input_probs))])

        return loss, self.penalty * keep.sum(-1), set_gradients


def log_losses(step, steps, loss, set_names):
    """One line: the loss of each training set's masks, averaged over seeds and networks."""
    per_set = loss.mean(dim=(0, 2))
    print(f"step {step:>5}/{steps}  loss  " +
          "  ".join(f"{name} {value:.4f}" for name, value in zip(set_names, per_set.tolist())), flush=True)


MARGIN_CLIP = (-5.0, 0.5)
"""The logit margins that polish_masks' tie-break sums are clipped to: a pair far from its action
counts no more than one a little off, and a pair already taken gains little from a larger margin."""


@torch.no_grad()
def polish_masks(actors, observations, actions, weights, neuron_masks, input_masks=None, fill=0.0, max_rounds=300):
    """Local search on one-hot neuron masks, one per row K: while some single neuron's change of
    state (inactive, active, program) makes the network choose the training actions on more of the
    pairs (weighted), or as many with a larger clipped margin, make the best such change.

    actors: StackedActors of one network per mask; observations (K, N, D), actions and weights
    (K, N), 0 on padding; neuron_masks (K, 3, H) where it starts; input_masks (K, D) and fill fixed.
    Softmax, straight-through and Adam look at the cross-entropy, a smooth stand-in: this looks at
    the greedy choices themselves, which the cross-entropy only approaches.
    """
    pre = actors.pre_activations(observations, input_masks, fill)              # (K, N, H)
    # logits as the other actions' logits less the training action's: the margin is minus their largest
    count, pairs, outputs = *actions.shape, actors.w2.shape[-1]
    every = torch.arange(outputs).expand(count, pairs, outputs)
    others = every[every != actions[..., None]].view(count, pairs, outputs - 1)              # (K, N, O-1)
    hidden = actors.w2.shape[1]
    w2 = actors.w2[:, :, None, :].expand(-1, -1, pairs, -1)                    # (K, H, N, O)
    w2 = (w2.gather(-1, others[:, None].expand(-1, hidden, -1, -1))
          - w2.gather(-1, actions[:, None, :, None].expand(-1, hidden, -1, -1)))  # (K, H, N, O-1)
    bias = actors.b2.expand(-1, pairs, -1)
    bias = bias.gather(-1, others) - bias.gather(-1, actions[..., None])       # (K, N, O-1)
    # each neuron's part of those logits under each of its states: (K, H, 3, N, O-1)
    per_state = torch.stack([torch.zeros_like(pre), pre, torch.relu(pre)], 1).permute(0, 3, 1, 2)
    per_state = per_state.unsqueeze(-1) * w2[:, :, None]
    choice = neuron_masks.argmax(-2)                                           # (K, H)
    active, weights = torch.arange(count), weights[:, None, None]              # the rows still improving
    for _ in range(max_rounds):
        current = per_state[torch.arange(len(active))[:, None], torch.arange(hidden), choice[active]]  # (A, H, N, O-1)
        logits = current.sum(1) + bias                                         # (A, N, O-1)
        moved = logits[:, None, None] - current[:, :, None] + per_state        # (A, H, 3, N, O-1)
        score = _choice_score(-moved.amax(-1), weights)                        # (A, H, 3)
        best = score.flatten(1).max(1)
        better = best.values > score.gather(2, choice[active][..., None]).amax((1, 2)) + 1e-12
        best = best.indices
        if not better.all():  # a row with no better change is at its local optimum for good: drop it
            active, per_state, bias, weights, best = (x[better] for x in (active, per_state, bias, weights, best))
            if not len(active):
                break
        choice[active, best // 3] = best % 3
    return torch.zeros_like(neuron_masks).scatter_(-2, choice[:, None, :], 1.0)


def _choice_score(margin, weights):
    """The weighted pairs on which the action is the greedy choice (its logit's margin over the
    others' largest is positive), plus a tie-break worth less than one pair of a set of up to
    10,000: the weighted mean of the clipped margins. margin and weights (..., N); in float64 so
    that the tie-break counts."""
    margin = margin.double()
    low, high = MARGIN_CLIP
    tie_break = (margin.clamp(low, high) - low) / (high - low)                 # in [0, 1]
    return ((margin > 0).double() + 1e-4 * tie_break).mul(weights).sum(-1)
