"""The fast path of main.py: every mask of a run learned as one batched computation.

main.train_masks learns one mask the way the assignment describes it. Here all masks (seeds x
combos x networks) train together: their losses are independent and Adam is element-wise, so
this is the same computation, only batched. tests/test_reference.py checks that both give the
same masks. Two shortcuts make a step cheap:
- with neuron masks only, the hidden pre-activations Z do not depend on the mask, so the masked
  logits are linear in the mask (StackedActors.mask_to_logits): one small matrix product;
- with input masks, only the inputs that the training data ever sets (27 of the 59) enter the
  product with W1 (input_mask_terms), and the masked network's loss has its forward and
  backward written out (InputMaskedLoss), a few passes over the data instead of autograd's dozen.
"""

import numpy as np
import torch


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


def input_mask_terms(actors, observations, input_fill):
    """For input masks, Z = ((x - fill) * keep) @ W1 + (fill @ W1 + b1), with keep (D,) the mask:
    a kept input contributes its value, a dropped one its fill.

    Inputs that no training observation sets and whose fill is 0 contribute nothing either way,
    so only the `used` ones (27 of the 59) enter the product. observations (C, N, D), input_fill
    (C, D). Returns used (D,) bool, centred = x - fill on the used inputs (C, N, U), the used rows
    of W1 (A, U, H) and base = fill @ W1 + b1 (A, C, 1, 1, H).
    """
    used = observations.ne(0).flatten(0, 1).any(0) | input_fill.ne(0).any(0)
    centred = (observations - input_fill[:, None, :])[..., used]
    base = (input_fill @ actors.w1 + actors.b1)[:, :, None, None]
    return used, centred, actors.w1[:, used], base


class InputMaskedLoss(torch.autograd.Function):
    """Cross-entropy of the networks under input and neuron masks, forward and backward written out.

    keep (A, C, S, U): the input masks over the used inputs; neuron_mask (A, C, S, 3, H), one-hot
    per neuron (the estimator's forward); centred, w1_used and base from input_mask_terms;
    w2 (A, H, O), b2 (A, 1, O); actions and weights (C, N), the training sets. Returns each
    mask's loss (A, C, S), the weighted cross-entropy of its logits against the actions.
    The hidden layer is Z * gate with gate = m1 + m2 * [Z > 0] (row 1 active, row 2 program),
    which equals ppo_agent.masked_hidden for one-hot masks. Written out, a step costs a few
    passes over the (A, C, S, N, H) tensors where autograd's graph takes a dozen, and every
    product runs on long rows (tests/test_masks.py checks the gradients against autograd's).
    """

    @staticmethod
    def forward(ctx, keep, neuron_mask, centred, w1_used, base, w2, b2, actions, weights):
        networks, combos, seeds, used = keep.shape
        hidden_size = w2.shape[1]
        masked_inputs = (keep.unsqueeze(-2) * centred[None, :, None]).reshape(networks, -1, used)  # (A, C*S*N, U)
        z_and_relu = torch.empty(2, networks, combos, seeds, centred.shape[1], hidden_size)  # both for backward
        z, relu = z_and_relu
        torch.bmm(masked_inputs, w1_used, out=z.view(networks, -1, hidden_size))
        z.add_(base)
        torch.clamp_min(z, 0.0, out=relu)
        gate = torch.addcmul(neuron_mask[..., 1:2, :], neuron_mask[..., 2:3, :], torch.sign(relu))
        hidden = (z * gate).reshape(networks, -1, hidden_size)                     # (A, C * S * N, H)
        # transposed, logits (A, O, C * S * N): the product and the softmax over 3 actions run on
        # long rows instead of rows of 3, several times faster
        logits = torch.baddbmm(b2.transpose(1, 2), w2.transpose(1, 2), hidden.transpose(1, 2))
        log_probs = torch.log_softmax(logits, dim=1)
        targets = actions[None, :, None, :].expand(networks, combos, seeds, -1).reshape(networks, 1, -1)
        nll = -log_probs.gather(1, targets).view(networks, combos, seeds, -1)     # (A, C, S, N)
        ctx.save_for_backward(z_and_relu, gate, centred, w1_used, w2, log_probs, targets, weights)
        return (nll * weights[:, None, :]).sum(-1)

    @staticmethod
    def backward(ctx, grad_loss):
        z_and_relu, gate, centred, w1_used, w2, log_probs, targets, weights = ctx.saved_tensors
        networks, combos, seeds = grad_loss.shape
        # d cross-entropy / d logits = probabilities - one-hot of the action, times the pair's weight
        grad_logits = log_probs.exp().scatter_add_(1, targets, torch.full_like(targets, -1, dtype=log_probs.dtype))
        grad_logits *= (grad_loss[..., None] * weights[:, None, :]).reshape(networks, 1, -1)
        grad_hidden = torch.bmm(grad_logits.transpose(1, 2), w2.transpose(1, 2))  # (A, C * S * N, H)
        grad_hidden = grad_hidden.view(gate.shape)                                 # (A, C, S, N, H)
        grad_z = (grad_hidden * gate).reshape(networks, -1, w2.shape[1])
        grad_inputs = torch.bmm(grad_z, w1_used.transpose(1, 2))                   # (A, C * S * N, U)
        grad_keep = (grad_inputs.view(networks, combos, seeds, -1, centred.shape[-1]) * centred[None, :, None]).sum(-2)
        grad_rows_1_2 = (grad_hidden * z_and_relu).sum(-2)                         # (2, A, C, S, H)
        grad_mask = torch.stack([torch.zeros_like(grad_rows_1_2[0]), *grad_rows_1_2], dim=-2)
        return grad_keep, grad_mask, None, None, None, None, None, None, None


def fit_masks(actors, observations, actions, weights, neuron_theta, input_theta, args, set_names,
              discretize, input_fill=None):
    """Adam on a batch of masks; every mask has its own independent loss.

    observations (C, N, D), actions and weights (C, N): one training set per row C, named by
    set_names. neuron_theta (S, C, A, 3, H) and input_theta (S, C, A, 2, D) or None: S seeds,
    A networks; input_fill (C, D) replaces the dropped inputs; discretize maps logits to one-hot
    masks (softmax and the straight-through estimator). Returns the best masks seen (the lowest
    objective per mask), the initial and best cross-entropy (S, C, A), and the loss curves
    (steps, S, C, A).
    """
    parameters = [neuron_theta] + ([input_theta] if input_theta is not None else [])
    optimizer = Adam(parameters, lr=args.mask_learning_rate)
    seeds, combos, networks = neuron_theta.shape[:3]
    num_actions = actors.b2.shape[-1]
    if input_theta is None:
        mask_to_logits = actors.mask_to_logits(actors.pre_activations(observations.unsqueeze(1)))
    else:
        used, centred, w1_used, z_base = input_mask_terms(actors, observations, input_fill)

    targets = actions[:, None, :, None].expand(seeds, combos, networks, -1, 1)

    def masked_loss():
        """The cross-entropy (S, C, A) of every mask on its training set, and the masks' penalty."""
        neuron_mask = discretize(neuron_theta)
        if input_theta is None:
            rows_1_2 = neuron_mask[..., 1:, :].flatten(-2).permute(1, 2, 0, 3)  # (C, A, S, 2H)
            logits = (rows_1_2 @ mask_to_logits).permute(2, 0, 1, 3)             # (S, C, A, N * O)
            logits = logits.reshape(*logits.shape[:3], -1, num_actions) + actors.b2
            nll = -torch.log_softmax(logits, dim=-1).gather(-1, targets).squeeze(-1)  # (S, C, A, N)
            return (nll * weights[:, None, :]).sum(-1), 0.0
        keep = discretize(input_theta)[..., 1, :]
        loss = InputMaskedLoss.apply(keep[..., used].permute(2, 1, 0, 3), neuron_mask.permute(2, 1, 0, 3, 4),
                                     centred, w1_used, z_base, actors.w2, actors.b2, actions, weights)  # (A, C, S)
        return loss.permute(2, 1, 0), args.input_penalty * keep.sum(-1)

    best_objective = torch.full(neuron_theta.shape[:-2], float("inf"))
    best_loss = torch.zeros(neuron_theta.shape[:-2])
    best_neuron = neuron_theta.detach().clone()
    best_input = None if input_theta is None else input_theta.detach().clone()
    curves = []
    for step in range(args.mask_learning_steps):
        loss, penalty = masked_loss()
        objective = loss + penalty
        with torch.no_grad():  # keep, per mask, the one that produced the lowest objective
            curves.append(loss.clone())
            better = objective < best_objective
            best_objective = torch.where(better, objective, best_objective)
            best_loss = torch.where(better, loss, best_loss)
            best_neuron = torch.where(better[..., None, None], neuron_theta, best_neuron)
            if input_theta is not None:
                best_input = torch.where(better[..., None, None], input_theta, best_input)
        if args.log_every and step % args.log_every == 0:
            log_losses(step, args.mask_learning_steps, loss.detach(), set_names)
        optimizer.zero_grad()
        objective.sum().backward()
        optimizer.step()
    curves = torch.stack(curves)
    best_input_mask = None if best_input is None else discretize(best_input)[..., 1, :]
    return discretize(best_neuron), best_input_mask, curves[0], best_loss, curves


def log_losses(step, steps, loss, set_names):
    """One line: the loss of each training set's masks, averaged over seeds and networks."""
    per_set = loss.mean(dim=(0, 2))
    print(f"step {step:>5}/{steps}  loss  " +
          "  ".join(f"{name} {value:.4f}" for name, value in zip(set_names, per_set.tolist())), flush=True)
